"""argv words (or a ``-F`` file) -> filter syntax tree, with ss's grammar and quirks.

Contract
--------
:func:`parse` takes the words after the ``state …`` part and returns an
:class:`~.expr.Expr`, or None for an empty expression.  Every failure is a
:class:`~.expr.FilterSyntaxError` (nothing else escapes, whatever the input):
a grammar error exits 255, a value that does not parse (an address, port,
device, mark, cgroup: :class:`~.expr.FilterValueError`) exits 1, as in ss.
Input is bounded: :func:`parse_file` reads at most :data:`MAX_FILE` bytes,
tokens are made in linear time (:mod:`.lexer`), and nesting deeper than
:data:`MAX_DEPTH` is refused.

Grammar (ss's ``ssfilter.y``): ``list := expr | list [and|or] expr`` (no
operator = and), evaluated flat, left to right: ``A or B and C`` is
``(A or B) and C``.  ``expr := ( list ) | not expr | src|dst [=] HOST |
sport|dport [OP] HOST | dev|fwmark|cgroup [=|!=] VALUE | autobound``.

Hosts follow ss's ``parse_hostcond`` (a family prefix, ``[v6]``, ``*``,
``host:port``, ``/len`` or ``/netmask``, DNS fallback, services), read in the
preferred family (-4/-6/-0/-x/-f, ``--vsock``/``--tipc``/``--xdp``).  Ports
are C ints as in ss: ``dport = :99999`` or ``:-2`` parses and matches nothing
(``:-1`` is any port, as in ss); but ``>=``/``<=``/``>``/``<`` refuse an inet
port outside 0..65535, which ss compares cut to 16 bits in the kernel and
whole in userspace (so ``dport <= :99999`` means ``dport <= :34463`` there).
vsock hosts (``vsock:CID[:PORT]``) and hosts read under ``--tipc``/``--xdp``
narrow the listing to that family, which sockscope does not list
(:class:`~.expr.OtherFamilyCond`); ``tipc:`` and ``xdp:`` prefixes are
sockscope's spelling of the latter.  Where ss accepts nonsense, this parser
refuses it: ``*`` as the bound of ``>=``/``<=``, ``fwmark`` with trailing
garbage, ports compared with ``>=`` on unix hosts.

Lookups (DNS, services, interfaces, cgroups) go through a :class:`Resolver`;
pass a subclass to make them hermetic.
"""

from __future__ import annotations

import sys

from sockscope.errors import UsageError
from sockscope.filter.expr import (
    AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_TIPC, AF_UNIX, AF_UNSPEC, AF_VSOCK, AF_XDP,
    Autobound, CgroupCond, DevCond, Expr, FilterSyntaxError, FilterValueError, HostCond, LinkCond,
    MarkCond, NetlinkCond, Not, Or, OtherFamilyCond, And, PortCmp, UnixCond,
)
from sockscope.filter.lexer import Token, tokenize
from sockscope.filter.values import (
    LL_PROTOS, NL_PROTOS, Resolver, c_int, c_num, get_prefix, ipv4, may_be_hostname,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from typing import Sequence

#: the comparison operators spelled as words (``sport ge :1024``), as the lexer names them
OPERATORS = frozenset(("ge", "le", "ne", "eq", "gt", "lt"))
_PREFIXES = (("unix:", AF_UNIX), ("link:", AF_PACKET), ("netlink:", AF_NETLINK),
             ("vsock:", AF_VSOCK), ("inet:", AF_INET), ("inet6:", AF_INET6),
             ("tipc:", AF_TIPC), ("xdp:", AF_XDP))
#: Deeper nesting is refused (the parser and the back ends recurse on it).
MAX_DEPTH = 100
#: The most bytes ``-F FILE`` reads: a filter is a few lines; a larger file is refused.
MAX_FILE = 1 << 20
_FAMILIES = frozenset((AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_VSOCK, AF_TIPC, AF_XDP))
_INT = (-(1 << 31), (1 << 31) - 1)  # ss reads ports with get_integer: a C int
_KEYS = ("src", "dst", "sport", "dport", "dev", "fwmark", "cgroup")


def parse(words: Sequence[str], *, family: int = AF_UNSPEC,
          protocols: Sequence[str] = ("tcp", "udp"), resolver: Resolver | None = None) -> Expr | None:
    """Parse a filter expression given as argv words; None when there are no tokens.

    ``family`` is ss's "preferred family": the last of -4/-6/-0/-x/-f/--vsock/
    --tipc/--xdp given (AF_INET, AF_INET6, AF_PACKET, AF_UNIX, AF_NETLINK,
    AF_VSOCK, AF_TIPC, AF_XDP), or AF_UNSPEC (another value is a ValueError:
    a programming error, not bad input).  A host without a prefix is read in
    that family.  ``protocols`` are the tables being listed among "tcp"/"udp":
    service names are looked up for those (a name with different tcp and udp
    ports is an error, like ss).
    """
    if family not in _FAMILIES:
        raise ValueError(f"unsupported preferred family {family}")
    display, tokens = tokenize(list(words))
    return _Parser(display, tokens, family, tuple(protocols), resolver or Resolver()).parse()


def parse_file(path: str, words: Sequence[str] = (), *, family: int = AF_UNSPEC,
               protocols: Sequence[str] = ("tcp", "udp"), resolver: Resolver | None = None) -> Expr | None:
    """``-F FILE``: ``words`` (the command line's expression) then the file's lines.

    A path starting with ``-`` reads standard input (as ss does); lines
    starting with ``#`` are skipped, and so are lines starting with ``0``,
    as ss 6.1 skips them (its comment test reads ``'#'`` and ``0`` alike), so
    that a filter file means the same to both.  An unreadable file, or one
    larger than :data:`MAX_FILE` bytes, is a UsageError.
    """
    text = read_file(path)
    lines = [line for line in text.splitlines() if not line.startswith(("#", "0"))]
    return parse([*words, *lines], family=family, protocols=protocols, resolver=resolver)


def read_file(path: str) -> str:
    """The text of filter file ``path`` (``-``…: standard input), at most :data:`MAX_FILE` bytes."""
    try:
        if path.startswith("-"):
            if sys.stdin is None:
                return ""  # a closed standard input reads as empty, as in ss
            stream = getattr(sys.stdin, "buffer", None)
            raw: bytes | str = (stream or sys.stdin).read(MAX_FILE + 1)
        else:
            with open(path, "rb") as f:
                raw = f.read(MAX_FILE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read filter file {path}: {exc.strerror or exc}") from exc
    except (ValueError, MemoryError) as exc:  # a closed stdin; a device that never ends
        raise UsageError(f"cannot read filter file {path}: {exc}") from exc
    if len(raw) > MAX_FILE:
        raise UsageError(f"filter file {path} is larger than {MAX_FILE >> 20} MiB")
    return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw


class _Parser:
    def __init__(self, display: str, tokens: list[Token], family: int,
                 protocols: tuple[str, ...], resolver: Resolver) -> None:
        self.display = display
        self.tokens = tokens
        self.i = 0
        self.family = family
        self.protocols = protocols
        self.resolver = resolver
        self.depth = 0

    def error(self, reason: str, tok: Token | None = None) -> FilterSyntaxError:
        """A grammar error (ss: exit 255)."""
        return FilterSyntaxError(self.display, reason, tok.start if tok else len(self.display))

    def bad(self, reason: str, tok: Token) -> FilterValueError:
        """A value that does not parse (ss: "Cannot parse …", exit 1)."""
        return FilterValueError(self.display, reason, tok.start)

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token | None:
        tok = self.peek()
        if tok is not None:
            self.i += 1
        return tok

    def parse(self) -> Expr | None:
        if not self.tokens:
            return None
        e = self.parse_list()
        tok = self.peek()
        if tok is not None:
            raise self.error('unexpected ")" without "("', tok)
        return e

    def parse_list(self) -> Expr:
        left = self.parse_expr(None)
        while (tok := self.peek()) is not None and tok.kind != ")":
            if tok.kind in ("and", "or"):
                self.i += 1
                right = self.parse_expr(tok)
                left = And(left, right) if tok.kind == "and" else Or(left, right)
            else:
                left = And(left, self.parse_expr(None))
        return left

    def parse_expr(self, after: Token | None) -> Expr:
        tok = self.take()
        if tok is None:
            raise self.error(f'nothing after "{after.text}"' if after else "unexpected end of filter")
        kind = tok.kind
        if kind in ("(", "not"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"more than {MAX_DEPTH} nested parentheses or negations", tok)
            try:
                return self.nested(tok)
            finally:
                self.depth -= 1
        if kind in ("src", "dst"):
            op = self.peek()
            if op is not None and op.kind == "eq":
                self.i += 1
            elif op is not None and op.kind in OPERATORS:
                raise self.error(f'"{tok.text}" takes only "=" (write "not {tok.text} …" to negate)', op)
            return self.host(self.value(tok, "an address"), tok.text, False)
        if kind in ("sport", "dport"):
            return self.port_cond(tok)
        if kind in ("dev", "fwmark", "cgroup"):
            return self.simple_cond(tok)
        if kind == "autobound":
            return Autobound()
        if kind == ")":
            raise self.error('unexpected ")"', tok)
        if tok.text in ("state", "exclude", "excl"):
            reason = f'"{tok.text}" must come before the filter expression'
        else:
            reason = f'unexpected "{tok.text}"'
        raise (self.bad if kind == "word" and not self.parses_as_host(tok) else self.error)(reason, tok)

    def parses_as_host(self, tok: Token) -> bool:
        """ss's lexer reads every other word as a host (a port after sport/dport)
        before its grammar sees it: one that does not parse is its "Cannot parse
        dst/src address" (exit 1), one that does is a grammar error (exit 255)."""
        keys = [t.kind for t in self.tokens[:self.i - 1] if t.kind in _KEYS]
        try:
            self.host(tok, "dst", bool(keys) and keys[-1] in ("sport", "dport"))
        except FilterValueError:
            return False
        return True

    def nested(self, tok: Token) -> Expr:
        if tok.kind == "not":
            return Not(self.parse_expr(tok))
        if (nxt := self.peek()) is not None and nxt.kind == ")":
            raise self.error('empty "( )"', nxt)
        inner = self.parse_list()
        if self.take() is None:
            raise self.error('"(" is never closed', tok)
        return inner

    def value(self, key: Token, what: str) -> Token:
        tok = self.take()
        if tok is None:
            raise self.error(f'"{key.text}" needs {what}')
        if tok.kind != "word":
            raise self.error(f'"{key.text}" needs {what}, not "{tok.text}"', tok)
        return tok

    def port_cond(self, key: Token) -> Expr:
        side = "src" if key.kind == "sport" else "dst"
        op = self.peek()
        kind = "eq"
        if op is not None and op.kind in OPERATORS:
            self.i += 1
            kind = op.kind
        val = self.value(key, "a port")
        leaf = self.host(val, side, True)
        if kind == "eq":
            return leaf
        if kind == "ne":
            return Not(leaf)
        assert op is not None
        if isinstance(leaf, HostCond):
            port, fam = leaf.port, leaf.family
        elif isinstance(leaf, LinkCond):
            port, fam = leaf.ifindex, AF_PACKET
        elif isinstance(leaf, NetlinkCond):
            port, fam = leaf.portid, AF_NETLINK
        elif isinstance(leaf, OtherFamilyCond):
            port, fam = leaf.port, leaf.family
        else:
            raise self.error(f'"{op.text}" compares ports; unix sockets have none', val)
        if port == -1:
            raise self.error(f'"{op.text}" needs a port number, not "{val.text}"', val)
        if fam in (AF_UNSPEC, AF_INET, AF_INET6) and not 0 <= port <= 0xFFFF:
            # ss compares such a port cut to 16 bits in the kernel and whole in userspace
            raise self.error(f'"{op.text}" compares 16-bit ports: {port} is out of range', val)
        if kind in ("ge", "le"):
            return PortCmp(side, kind, port, fam)
        return Not(PortCmp(side, "le" if kind == "gt" else "ge", port, fam))

    def simple_cond(self, key: Token) -> Expr:
        op = self.peek()
        negate = False
        if op is not None and op.kind in ("eq", "ne"):
            self.i += 1
            negate = op.kind == "ne"
        elif op is not None and op.kind in OPERATORS:
            raise self.error(f'"{key.text}" takes "=" or "!="', op)
        what = {"dev": "an interface", "fwmark": "a mark", "cgroup": "a cgroup path"}[key.kind]
        val = self.value(key, what)
        text = val.text
        leaf: Expr
        if key.kind == "dev":
            idx = self.resolver.ifindex(text)
            if idx:
                leaf = DevCond(idx, text)
            elif (num := c_int(text, 0, 0xFFFFFFFF)) is not None:
                leaf = DevCond(num)
            else:
                raise self.bad(f'cannot find device "{text}"', val)
        elif key.kind == "fwmark":
            mark, slash, mask = text.partition("/")
            m = c_int(mark, 0, 0xFFFFFFFF)
            k = c_int(mask, 0, 0xFFFFFFFF) if slash else 0xFFFFFFFF
            if m is None or k is None:
                raise self.bad(f'"{text}" is not a mark (MARK or MARK/MASK)', val)
            leaf = MarkCond(m, k)
        else:
            cid = self.resolver.cgroup_id(text)
            if cid is None:
                raise self.bad(f'cannot find cgroup "{text}"', val)
            leaf = CgroupCond(text, cid)
        return Not(leaf) if negate else leaf

    # -- hosts (ss's parse_hostcond) -------------------------------------------------

    def host(self, tok: Token, side: str, is_port: bool) -> Expr:
        """A host (or a port's word) read in the preferred family, or its prefix's; that family is
        then the preferred one for the hosts after it, as ss's ``parse_hostcond`` leaves it
        (``-a src unix:/tmp/* or src /run/*`` reads the second as a UNIX glob too)."""
        text = tok.text
        fam = self.family
        for prefix, f in _PREFIXES:
            if text.startswith(prefix):
                fam, text = f, text[len(prefix):]
                break
        leaf = self._host(tok, text, fam, side, is_port)
        if fam != AF_UNSPEC:
            self.family = fam
        return leaf

    def _host(self, tok: Token, text: str, fam: int, side: str, is_port: bool) -> Expr:
        if fam == AF_UNIX:
            return UnixCond(side, text)
        if fam in (AF_PACKET, AF_NETLINK):
            return self.link_host(tok, text, side, is_port, fam)
        if fam == AF_VSOCK:
            return self.vsock_host(tok, text, side, is_port)
        addr, port_text = text, None
        if text.startswith("["):
            close = text.find("]", 1)
            if close < 0:
                raise self.bad(f'missing "]" in "{tok.text}"', tok)
            addr, port_text = text[1:close], text[close + 1:]
        elif text.startswith("*"):
            port_text = text[1:]
        else:
            slash = text.find("/")
            colon = text.rfind(":", max(slash, 0))
            if colon >= 0:
                addr, port_text = text[:colon], text[colon:]
        if is_port:
            # ss reads the whole word as the port (brackets stripped): so
            # "dport = *:22" is any port, as in ss.
            port_text = text[1:text.find("]", 1)] if text.startswith("[") else text
        port = -1
        if port_text:
            if port_text[0] == ":":
                port_text = port_text[1:]
            if port_text and port_text[0] != "*":
                port = self.port(port_text, tok)
        if fam in (AF_TIPC, AF_XDP):
            return self.other_inet_host(tok, addr if not is_port else "*", side, port, fam)
        prefixes: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
        name = None
        if not is_port and addr and addr[0] != "*":
            import ipaddress

            pfx = get_prefix(addr, fam)
            if pfx is not None:
                if pfx[0] != AF_UNSPEC:
                    prefixes = (ipaddress.ip_network((pfx[1], pfx[2]), strict=False),)
            else:
                found = self.resolver.hosts(addr, fam) if may_be_hostname(addr) else []
                bits = {AF_INET: 32, AF_INET6: 128}
                prefixes = tuple(ipaddress.ip_network((raw, bits[f])) for f, raw in found
                                 if f in bits and (fam == AF_UNSPEC or f == fam))
                if not prefixes:
                    raise self.bad(f'an inet prefix is expected rather than "{addr}"', tok)
                name = addr
        return HostCond(side, port, prefixes, fam, name)

    def port(self, text: str, tok: Token) -> int:
        """A port as ss reads it: any C int (one outside 0..65535 matches nothing;
        -1 means any), else a service name of the listed protocols, else (``-r``) a name
        rpcbind's registrations give their ports (``rpc.mountd``)."""
        r = c_num(text)
        if r is not None and r[1] == len(text) and _INT[0] <= r[0] <= _INT[1]:
            return r[0]
        found = {p for proto in ("udp", "tcp") if proto in self.protocols
                 and (p := self.resolver.service(text, proto)) is not None}
        if not found:  # (ss then asks rpcbind's registrations, where -r had it read them)
            found = {p for proto in ("udp", "tcp") if proto in self.protocols
                     for p in self.resolver.rpc_service(text, proto)}
        if len(found) > 1:
            raise self.bad(f'ambiguous port "{text}"', tok)
        if not found:
            raise self.bad(f'"{text}" does not look like a port', tok)
        return found.pop()

    def vsock_host(self, tok: Token, text: str, side: str, is_port: bool) -> Expr:
        """``CID[:PORT]``, each a C unsigned int or ``*`` (ss: ``get_u32``, split at the first colon)."""
        port_text: str | None
        if is_port:
            addr, port_text = "*", text[1:] if text.startswith(":") else text
        elif ":" in text:
            addr, _, port_text = text.partition(":")
        else:
            addr, port_text = text, None
        port = -1
        if port_text is not None and port_text != "*":
            if (num := c_int(port_text, 0, 0xFFFFFFFF)) is None:
                raise self.bad(f'"{port_text}" is not a vsock port', tok)
            port = num
        if addr and addr != "*":
            if (cid := c_int(addr, 0, 0xFFFFFFFF)) is None:
                raise self.bad(f'"{addr}" is not a vsock CID', tok)
            addr = str(cid)
        return OtherFamilyCond(side, AF_VSOCK, addr or "*", port)

    def other_inet_host(self, tok: Token, addr: str, side: str, port: int, fam: int) -> Expr:
        """A host under ``--tipc``/``--xdp``: ss reads it as an IPv4 host of that
        family, without DNS or a prefix length."""
        if addr[:1] in ("", "*") or addr in ("default", "all", "any"):
            addr = "*"
        elif "/" in addr or (raw := ipv4(addr)) is None:
            raise self.bad(f'an inet prefix is expected rather than "{addr}"', tok)
        else:
            addr = ".".join(map(str, raw))
        return OtherFamilyCond(side, fam, addr, port)

    def link_host(self, tok: Token, text: str, side: str, is_port: bool, fam: int) -> Expr:
        """``link:PROTO:IFACE`` and ``netlink:PROTO:PORTID`` (ss's find_port split: first colon)."""
        addr, port_text = text, None
        if is_port:
            port_text = text
        elif (colon := text.find(":")) >= 0:
            addr, port_text = text[:colon], text[colon:]
        port = -1
        if port_text is not None:
            if port_text.startswith(":"):
                port_text = port_text[1:]
            if port_text and port_text != "*":
                num = c_int(port_text, -(1 << 31), (1 << 31) - 1)
                if num is not None:
                    port = num
                elif fam == AF_NETLINK and port_text == "kernel":
                    port = 0
                elif fam == AF_PACKET and (idx := self.resolver.ifindex(port_text)):
                    port = idx
                elif fam == AF_PACKET:
                    raise self.bad(f'cannot find device "{port_text}"', tok)
                else:
                    raise self.bad(f'"{port_text}" is not a netlink port id', tok)
        proto = None
        if not is_port and addr and addr != "*":
            if fam == AF_PACKET:
                proto = LL_PROTOS.get(addr.lower())
                if proto is None:
                    proto = c_int(addr, 0, 0xFFFF)
            else:
                proto = NL_PROTOS.get(addr)
                if proto is None:
                    proto = c_int(addr, 0, 255)
            if proto is None:
                what = "link-layer protocol" if fam == AF_PACKET else "netlink protocol"
                raise self.bad(f'"{addr}" is not a {what}', tok)
        if fam == AF_PACKET:
            return LinkCond(side, proto, port)
        return NetlinkCond(side, proto, port)



__all__ = ["parse", "parse_file", "read_file", "tokenize", "Resolver", "Token", "MAX_DEPTH", "MAX_FILE"]
