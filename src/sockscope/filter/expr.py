"""The ss filter expression: syntax tree, canonical printer, parse error.

Contract
--------
* Every node is a frozen, slotted record (:func:`node`, dataclass-like); equal trees compare equal and hash
  alike.  Leaves hold *resolved* values (ports as numbers, addresses as
  :mod:`ipaddress` networks, interface and cgroup ids), so the two back ends
  (:mod:`.bytecode`, :mod:`.predicate`) never look anything up.
* ``str(node)`` is canonical ss syntax that :func:`.parser.parse` reads back to
  an equal tree (``parse(str(t)) == t``).  Operators are printed flat and
  left-associative, exactly as ss groups them: ``A or B and C`` is
  ``And(Or(A, B), C)``; a right operand that is itself ``and``/``or`` gets
  parentheses.
* ``sport = X`` and ``src X``-with-only-a-port build the same :class:`HostCond`
  (ss does the same); ``>``, ``<`` and ``!=`` are :class:`Not` around
  ``<=``, ``>=`` and ``=`` (also like ss).
* :class:`FilterSyntaxError` is a :class:`~sockscope.errors.UsageError`
  (exit status 255, a grammar error); its subclass :class:`FilterValueError`
  (exit status 1, like ss) is a value that does not parse.  ``str(exc)`` is
  one printable line quoting the expression, ``exc.caret`` two lines (the
  expression, a ``^`` under the bad token).
"""

from __future__ import annotations

from sockscope._addr import (
    AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_TIPC, AF_UNIX, AF_UNSPEC, AF_VSOCK, AF_XDP, ntop6,
)
from sockscope.errors import FilterSyntaxError, FilterValueError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from typing import Iterator, TypeVar, Union

    from typing_extensions import dataclass_transform

    T = TypeVar("T")
    Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
else:
    def dataclass_transform(**_kwargs: object) -> object:  # typing's, for the type checker only
        return lambda f: f

#: Families ss filters on that sockscope does not list (:class:`OtherFamilyCond`).
OTHER_FAMILIES = (AF_VSOCK, AF_TIPC, AF_XDP)

#: Host prefixes, as written in a filter, by address family (``tipc:`` and ``xdp:`` are sockscope's).
FAMILY_PREFIX = {AF_INET: "inet:", AF_INET6: "inet6:", AF_UNIX: "unix:",
                 AF_PACKET: "link:", AF_NETLINK: "netlink:", AF_VSOCK: "vsock:",
                 AF_TIPC: "tipc:", AF_XDP: "xdp:"}
_INT32 = (-(1 << 31), (1 << 31) - 1)
_SIDE_PORT = {"src": "sport", "dst": "dport"}
_U32 = 0xFFFFFFFF


# Characters a value token must escape with a backslash to read back as one token.
_ESCAPE = frozenset(" \t\\()")


def escape(text: str) -> str:
    """``text`` as one filter token: blanks, backslashes and parentheses escaped."""
    if not _ESCAPE.intersection(text):
        return text
    return "".join("\\" + c if c in _ESCAPE else c for c in text)


_MISSING = object()


@dataclass_transform(frozen_default=True)
def node(cls: type[T]) -> type[T]:
    """What ``@dataclass(frozen=True, slots=True)`` gives these small records
    (fields from the annotations, in order, defaults from class attributes;
    ``__init__`` by position or keyword then ``__post_init__``; immutable;
    ``__eq__``/``__hash__``/``__repr__`` by fields), without ``dataclasses``:
    generating a dataclass costs about half a millisecond of start-up each,
    and a filter on the command line should cost little more than ss's."""
    names = tuple(cls.__dict__.get("__annotations__", {}))  # nodes do not inherit fields
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    body = {k: v for k, v in cls.__dict__.items() if k not in names and k not in ("__dict__", "__weakref__")}
    body.update(__slots__=names, _fields=names, _defaults=defaults, __match_args__=names)
    return type(cls.__name__, cls.__bases__, body)


class Expr:
    """Base class of every node."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _defaults: dict[str, object] = {}

    def __init__(self, *args: object, **kwargs: object) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} arguments, {len(args)} given")
        values = dict(zip(fields, args))
        for k, v in kwargs.items():
            if k not in fields or k in values:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated argument {k!r}")
            values[k] = v
        for name in fields:
            v = values.get(name, _MISSING)
            if v is _MISSING:
                v = self._defaults.get(name, _MISSING)
                if v is _MISSING:
                    raise TypeError(f"{type(self).__name__}: missing argument {name!r}")
            object.__setattr__(self, name, v)
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is immutable")

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, n) for n in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields) + ")"

    def __str__(self) -> str:
        return _fmt(self)

    def __and__(self, other: Expr) -> Expr:
        return And(self, other)

    def __or__(self, other: Expr) -> Expr:
        return Or(self, other)

    def __invert__(self) -> Expr:
        return Not(self)

    def leaves(self) -> Iterator[Expr]:
        """The leaf conditions, left to right (the order ss parses them in)."""
        stack: list[Expr] = [self]
        while stack:
            e = stack.pop()
            if isinstance(e, (And, Or)):
                stack += (e.right, e.left)
            elif isinstance(e, Not):
                stack.append(e.expr)
            else:
                yield e

    def families(self) -> frozenset[int] | None:
        """The address families the expression restricts the listing to.

        ss lets a host prefix (``inet:`` ``inet6:`` ``unix:`` ``link:``
        ``netlink:``, or the family given to the parser by -4/-6/-0/-x/-f)
        *replace* the set of families to show, and the last such host in the
        text wins.  None: no host carries a family, list what the options say.
        """
        fam = 0
        for leaf in self.leaves():
            f = leaf._declared_family()
            if f:
                fam = f
        return frozenset((fam,)) if fam else None

    def needs_userspace(self) -> bool:
        """True when kernel bytecode alone cannot give ss's answer for inet tables.

        That is when a node has no bytecode (``dev``, unix/link/netlink hosts
        and ports: then none is sent at all) or when ss also checks it in
        userspace with different rules (``autobound``: kernel = port not
        locked by bind, userspace = port in the ephemeral range; a negated
        prefix).  When False
        and the bytecode was sent, the predicate may be skipped for what the
        kernel returned.  (When ``compile_bytecode`` returns None, always run
        the predicate: that also happens for programs too long to send.)
        """
        return any(leaf._userspace() for leaf in self.leaves()) or self._negates_a_prefix()

    def _negates_a_prefix(self) -> bool:
        """A host with a prefix under an odd number of ``not``: ss's userspace check takes more
        sockets for a prefix than the kernel's bytecode, so its negation takes fewer."""
        stack: list[tuple[Expr, bool]] = [(self, False)]
        while stack:
            e, negated = stack.pop()
            if isinstance(e, (And, Or)):
                stack += ((e.left, negated), (e.right, negated))
            elif isinstance(e, Not):
                stack.append((e.expr, not negated))
            elif negated and isinstance(e, HostCond) and e.prefixes:
                return True
        return False

    # Leaves override these.
    def _declared_family(self) -> int:
        return 0

    def _userspace(self) -> bool:
        return False

    def _text(self) -> str:
        raise NotImplementedError

    def _negated_text(self) -> str | None:
        """A dedicated ``!=``/``>``/``<`` spelling of ``not self``, if any."""
        return None


def _side(side: str) -> None:
    if side not in ("src", "dst"):
        raise ValueError(f"side must be 'src' or 'dst', not {side!r}")


def _net_text(net: Network) -> str:
    """ss's spelling of a prefix: ``1.2.3.4``, ``10.0.0.0/8``, ``[::1]``, ``[fe80::/10]``."""
    if net.version == 4:
        text = str(net.network_address)
        return text if net.prefixlen == 32 else f"{text}/{net.prefixlen}"
    text = ntop6(net.network_address.packed)
    return f"[{text}]" if net.prefixlen == 128 else f"[{text}/{net.prefixlen}]"


@node
class HostCond(Expr):
    """``src``/``dst`` HOST, and ``sport``/``dport`` ``=`` PORT (an inet host).

    ``port`` -1 means any port; any other C int is allowed, as in ss (one
    outside 0..65535 matches no socket).  ``prefixes`` empty means any address;
    otherwise the socket address must fall in one of them (a v4 prefix also
    matches v4-mapped IPv6 addresses).  Several prefixes only come from a DNS
    ``name``, which is what gets printed.  ``family`` is the family the host
    was declared with (``inet:``/``inet6:`` or the parser's preferred family),
    0 if none: it narrows :meth:`families`, not the match.
    """

    side: str
    port: int = -1
    prefixes: tuple[Network, ...] = ()
    family: int = AF_UNSPEC
    name: str | None = None

    def __post_init__(self) -> None:
        _side(self.side)
        if not _INT32[0] <= self.port <= _INT32[1]:
            raise ValueError(f"port out of range: {self.port}")
        if self.family not in (AF_UNSPEC, AF_INET, AF_INET6):
            raise ValueError(f"not an inet family: {self.family}")
        if self.prefixes:
            import ipaddress  # here: a filter of ports alone never needs it
        for net in self.prefixes:
            if not isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                raise TypeError(f"not an ip network: {net!r}")
            if self.family and net.version != (4 if self.family == AF_INET else 6):
                raise ValueError(f"{net} is not of the declared family")
        if self.name is None and len(self.prefixes) > 1:
            raise ValueError("several prefixes need the DNS name they came from")
        if self.name is not None and (not self.prefixes or not self.name):
            raise ValueError("a DNS name needs its resolved prefixes")

    def _declared_family(self) -> int:
        return self.family

    def _host_text(self) -> str:
        pre = FAMILY_PREFIX.get(self.family, "")
        host = self.name if self.name is not None else _net_text(self.prefixes[0])
        if self.port != -1:
            host += f":{self.port}"
        return pre + escape(host)

    def _text(self) -> str:
        if self.prefixes:
            return f"{self.side} {self._host_text()}"
        pre = FAMILY_PREFIX.get(self.family, "")
        if self.port == -1:
            return f"{self.side} {pre}*"
        return f"{_SIDE_PORT[self.side]} = {pre}:{self.port}"

    def _negated_text(self) -> str | None:
        if self.prefixes or self.port == -1:
            return None
        pre = FAMILY_PREFIX.get(self.family, "")
        return f"{_SIDE_PORT[self.side]} != {pre}:{self.port}"


@node
class UnixCond(Expr):
    """``src``/``dst`` ``unix:PATTERN``: a case-insensitive glob on the socket name.

    Names are ss's: a path, ``@name`` for an abstract name, "" when unnamed.
    As in ss, ``dst`` only ever sees "" (so only ``*``-like patterns match).
    """

    side: str
    pattern: str

    def __post_init__(self) -> None:
        _side(self.side)

    def _declared_family(self) -> int:
        return AF_UNIX

    def _userspace(self) -> bool:
        return True

    def _text(self) -> str:
        return f"{self.side} unix:{escape(self.pattern)}"


@node
class LinkCond(Expr):
    """``src``/``dst`` ``link:PROTO[:IFACE]``: packet sockets.

    ``proto`` is the ethertype (None: any); ``ifindex`` the interface index
    (-1: any), compared with the socket's bound interface.
    """

    side: str
    proto: int | None = None
    ifindex: int = -1

    def __post_init__(self) -> None:
        _side(self.side)
        if self.proto is not None and not 0 <= self.proto <= 0xFFFF:
            raise ValueError(f"ethertype out of range: {self.proto}")
        if not -(1 << 31) <= self.ifindex < (1 << 31):
            raise ValueError(f"interface index out of range: {self.ifindex}")

    def _declared_family(self) -> int:
        return AF_PACKET

    def _userspace(self) -> bool:
        return True

    def _text(self) -> str:
        proto = "*" if self.proto is None else str(self.proto)
        port = "" if self.ifindex == -1 else f":{self.ifindex}"
        return f"{self.side} link:{proto}{port}"


@node
class NetlinkCond(Expr):
    """``src``/``dst`` ``netlink:PROTO[:PORTID]`` (``kernel`` = port id 0).

    ``proto`` is the netlink protocol (None: any); for ``dst`` ss compares it
    with the destination group, as it does.  ``portid`` -1 means any.
    """

    side: str
    proto: int | None = None
    portid: int = -1

    def __post_init__(self) -> None:
        _side(self.side)
        if self.proto is not None and not 0 <= self.proto <= 255:
            raise ValueError(f"netlink protocol out of range: {self.proto}")
        if not -(1 << 31) <= self.portid < (1 << 31):
            raise ValueError(f"port id out of range: {self.portid}")

    def _declared_family(self) -> int:
        return AF_NETLINK

    def _userspace(self) -> bool:
        return True

    def _text(self) -> str:
        proto = "*" if self.proto is None else str(self.proto)
        port = "" if self.portid == -1 else f":{self.portid}"
        return f"{self.side} netlink:{proto}{port}"


@node
class PortCmp(Expr):
    """``sport``/``dport`` ``>=`` (op ``"ge"``) or ``<=`` (op ``"le"``) PORT.

    ``family`` is the declared family of the port's host (``inet:``, ``link:``…), 0 if none.
    Inet ports are 0..65535 (ss accepts any C int here, but compares it cut to 16 bits
    in the kernel and whole in userspace: the parser refuses those); link and
    netlink ports (interface index, port id) are C ints, vsock ones u32.
    """

    side: str
    op: str
    port: int
    family: int = AF_UNSPEC

    def __post_init__(self) -> None:
        _side(self.side)
        if self.op not in ("ge", "le"):
            raise ValueError(f"op must be 'ge' or 'le', not {self.op!r}")
        if self.family not in (AF_UNSPEC, AF_INET, AF_INET6, AF_PACKET, AF_NETLINK, *OTHER_FAMILIES):
            raise ValueError(f"no port comparison for family {self.family}")
        inet = self.family in (AF_UNSPEC, AF_INET, AF_INET6)
        low, high = (0, 0xFFFF) if inet else (0, _U32) if self.family == AF_VSOCK else _INT32
        if not low <= self.port <= high:
            raise ValueError(f"port out of range: {self.port}")

    def _declared_family(self) -> int:
        return self.family

    def _userspace(self) -> bool:
        return self.family not in (AF_UNSPEC, AF_INET, AF_INET6)  # no bytecode: not an inet port

    def _port(self) -> str:
        return f"{FAMILY_PREFIX.get(self.family, '')}:{self.port}"

    def _text(self) -> str:
        return f"{_SIDE_PORT[self.side]} {'>=' if self.op == 'ge' else '<='} {self._port()}"

    def _negated_text(self) -> str | None:
        return f"{_SIDE_PORT[self.side]} {'<' if self.op == 'ge' else '>'} {self._port()}"


@node
class OtherFamilyCond(Expr):
    """A host of a family ss filters but sockscope does not list: ``vsock:CID[:PORT]``
    (``--vsock``), or an IPv4 host read under ``--tipc``/``--xdp`` (ss reads
    those as inet hosts of that family).  Like any host with a family, it
    narrows the listing to that family; it matches no socket sockscope lists.

    ``address`` is ``*`` (any), the vsock CID in decimal, or a dotted IPv4
    address; ``port`` -1 means any.
    """

    side: str
    family: int
    address: str = "*"
    port: int = -1

    def __post_init__(self) -> None:
        _side(self.side)
        if self.family not in OTHER_FAMILIES:
            raise ValueError(f"not a family sockscope only filters on: {self.family}")
        low, high = (-1, _U32) if self.family == AF_VSOCK else _INT32
        if not low <= self.port <= high:
            raise ValueError(f"port out of range: {self.port}")
        if not self.address or any(c in self.address for c in " \t\\():[]"):
            raise ValueError(f"not an address: {self.address!r}")

    def _declared_family(self) -> int:
        return self.family

    def _userspace(self) -> bool:
        return True

    def _text(self) -> str:
        port = "" if self.port == -1 else f":{self.port}"
        return f"{self.side} {FAMILY_PREFIX[self.family]}{self.address}{port}"


@node
class DevCond(Expr):
    """``dev NAME|INDEX``: the interface the socket is bound to (0: none).

    ``name`` is the interface name as written (None when given as a number).
    """

    ifindex: int
    name: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.ifindex <= _U32:
            raise ValueError(f"interface index out of range: {self.ifindex}")
        if self.name == "":
            raise ValueError("empty interface name")

    def _userspace(self) -> bool:
        return True

    def _value(self) -> str:
        return escape(self.name) if self.name is not None else str(self.ifindex)

    def _text(self) -> str:
        return f"dev {self._value()}"

    def _negated_text(self) -> str | None:
        return f"dev != {self._value()}"


@node
class MarkCond(Expr):
    """``fwmark MARK[/MASK]``: true when ``socket.mark & mask == mark``."""

    mark: int
    mask: int = _U32

    def __post_init__(self) -> None:
        if not (0 <= self.mark <= _U32 and 0 <= self.mask <= _U32):
            raise ValueError("mark and mask are 32-bit unsigned")

    def _value(self) -> str:
        return f"{self.mark:#x}" if self.mask == _U32 else f"{self.mark:#x}/{self.mask:#x}"

    def _text(self) -> str:
        return f"fwmark {self._value()}"

    def _negated_text(self) -> str | None:
        return f"fwmark != {self._value()}"


@node
class CgroupCond(Expr):
    """``cgroup PATH``: the socket's cgroup v2 id equals ``cgroup_id`` (PATH's)."""

    path: str
    cgroup_id: int

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("empty cgroup path")
        if not 0 <= self.cgroup_id < (1 << 64):
            raise ValueError(f"cgroup id out of range: {self.cgroup_id}")

    def _text(self) -> str:
        return f"cgroup {escape(self.path)}"

    def _negated_text(self) -> str | None:
        return f"cgroup != {escape(self.path)}"


@node
class Autobound(Expr):
    """``autobound``: the local port was chosen by the kernel."""

    def _userspace(self) -> bool:
        return True

    def _text(self) -> str:
        return "autobound"


@node
class Not(Expr):
    """``not X`` / ``! X``."""

    expr: Expr


@node
class And(Expr):
    """``A and B`` / ``A && B`` / ``A & B`` / ``A B``."""

    left: Expr
    right: Expr


@node
class Or(Expr):
    """``A or B`` / ``A || B`` / ``A | B``."""

    left: Expr
    right: Expr


def _fmt(e: Expr) -> str:
    """Canonical text of ``e`` (flat, left-associative operators; iterative on the left spine)."""
    tail: list[str] = []
    while isinstance(e, (And, Or)):
        tail.append(f"{'and' if isinstance(e, And) else 'or'} {_atom(e.right)}")
        e = e.left
    if isinstance(e, Not):
        special = e.expr._negated_text()
        head = special if special is not None else f"not {_atom(e.expr)}"
    else:
        head = e._text()
    return " ".join([head, *reversed(tail)])


def _atom(e: Expr) -> str:
    return f"( {_fmt(e)} )" if isinstance(e, (And, Or)) else _fmt(e)


__all__ = [
    "AF_UNSPEC", "AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_TIPC", "AF_VSOCK", "AF_XDP",
    "FilterValueError",
    "FilterSyntaxError", "Expr", "HostCond", "UnixCond", "LinkCond", "NetlinkCond",
    "PortCmp", "OtherFamilyCond", "DevCond", "MarkCond", "CgroupCond", "Autobound", "Not", "And", "Or",
    "escape",
]
