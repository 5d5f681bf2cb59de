"""Filter syntax tree -> ``Callable[[Socket], bool]``, ss's ``run_ssfilter`` in Python.

Contract
--------
:func:`compile_predicate` returns a function of one
:class:`~sockscope.records.Socket` that answers like ss's userspace check,
for every family, with these rules:

* inet hosts match as ss's userspace check (``run_ssfilter``) matches them,
  which ss runs on every socket, after the kernel's bytecode for inet ones: the
  prefix's first bits against the first bits of a 16-byte address whatever its
  family (an IPv4 address is its 4 bytes then zeros), and a v4 prefix also
  against the IPv4 part of a v4-mapped address.  So ``src 0.0.0.0/8`` takes
  ``::1`` too, and a socket of another family has the bytes ss gives it: a
  UNIX socket's local address is a pointer to its name or, unnamed, zeros.  The
  pointer is into ss's stack, which ASLR moves from run to run, so a short
  prefix matches it in some runs of ss (a /8 of zeros in about one run in 16,
  a 1-bit prefix in one in two); sockscope answers as ss does when the
  pointer's first bits differ from the prefix's: only a prefix of length 0
  matches it.  A netlink or packet socket's is its protocol number (a
  little-endian u32); their remote is zeros.  For a prefix
  that is not negated the kernel's answer is within this one, so the listing
  trusts the bytecode alone there (:meth:`Expr.needs_userspace`).
* ports are ss's "lport/rport": the inet ports; for UNIX the inode and the
  peer's inode; for packet the interface index (and 0); for netlink the port
  id (and -1: ss gives a netlink socket's peer no port).  ``autobound`` is
  ss's userspace rule: inet port in the ephemeral range, UNIX unnamed or
  ``@`` + 5 hex digits, netlink negative port id, packet no interface and
  protocol.
* a vsock host, or one read under ``--tipc``/``--xdp`` (:class:`OtherFamilyCond`),
  matches no socket sockscope lists (it lists none of those families).
* unix patterns are glibc ``fnmatch(…, FNM_CASEFOLD)`` globs on the local
  name's bytes, in the C locale ss runs in (``?`` is one byte, only ASCII letters
  fold); ``dst`` sees "" (ss keeps no peer name there).
* ``fwmark``/``cgroup`` read ``socket.mark``/``socket.cgroup_id``; a UNIX,
  netlink or packet socket has 0 for both (ss's), and for an inet socket None
  makes the node *unknown*.  Unknowns propagate (Kleene logic: ``False and ?`` is
  False, ``True or ?`` is True, ``not ?`` is ?); an expression that stays
  unknown yields ``unknown`` (default True: rely on the kernel's bytecode,
  which already applied the condition to inet sockets).
"""

from __future__ import annotations

import os
import re

from sockscope.filter.expr import (
    AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX,
    And, Autobound, CgroupCond, DevCond, Expr, HostCond, LinkCond, MarkCond,
    NetlinkCond, Not, Or, OtherFamilyCond, PortCmp, UnixCond,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional

    from sockscope.records import Socket

    Tri = Callable[[Socket], Optional[bool]]

#: ss's fallback when ``/proc/sys/net/ipv4/ip_local_port_range`` is unreadable.
DEFAULT_EPHEMERAL = (1024, 4999)
_HEX = frozenset("0123456789abcdef")


def ephemeral_port_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The current network namespace's ephemeral port range, as ss reads it."""
    try:
        with open(path, encoding="ascii") as f:
            low, high = f.read().split()[:2]
        return int(low), int(high)
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL


def compile_predicate(expr: Expr | None, *, port_range: tuple[int, int] | None = None,
                      unknown: bool = True, kernel: bool = True) -> Callable[[Socket], bool]:
    """A function telling whether a socket passes ``expr`` (always True for None).

    ``port_range`` is the ephemeral range used by ``autobound`` (default:
    read once now, like ss).  ``unknown`` is the answer when the result
    depends on a mark or cgroup id the record does not carry.  ``kernel``: an
    inet socket must also pass the kernel's bytecode (its hosts matched the
    kernel's way: a v4 prefix takes IPv4 and v4-mapped addresses, a v6 prefix
    IPv6 ones), as what ss reads through sock_diag does; False for what ss
    reads from /proc (a table whose sock_diag module the kernel lacks), where
    a socket has no mark and no cgroup id: 0 for ``fwmark``/``cgroup``.
    """
    if expr is None:
        return lambda s: True
    port_range = port_range or ephemeral_port_range()
    f = _build(expr, port_range, proc=not kernel)
    k = (_build(expr, port_range, True) if kernel and any(isinstance(leaf, HostCond) and leaf.prefixes
                                                            for leaf in expr.leaves()) else None)

    def predicate(s: Socket) -> bool:
        r = f(s)
        if k is not None and r is not False and (s.family == AF_INET or s.family == AF_INET6):
            x = k(s)
            r = False if x is False else (r if x is True else None)
        return unknown if r is None else r

    return predicate


def _local_port(s: Socket) -> int:
    fam = s.family
    if fam == AF_UNIX:
        return s.inode
    return s.local.port


def _peer_port(s: Socket) -> int:
    fam = s.family
    if fam == AF_UNIX:
        return s.peer_inode or 0
    if fam == AF_PACKET:
        return 0
    if fam == AF_NETLINK:  # ss sets none: -1 ("dport = :0" takes no netlink socket, the kernel's peer or not)
        return -1
    return s.peer.port


_addr_cache: dict[str, tuple[int, int] | None] = {}


def _addr_value(text: str) -> tuple[int, int] | None:
    """(4 or 6, address as int) of a socket's address text; cached."""
    try:
        return _addr_cache[text]
    except KeyError:
        pass
    import ipaddress  # here: a filter of ports alone never needs it

    try:
        a = ipaddress.ip_address(text)
        v: tuple[int, int] | None = (a.version, int(a))
    except ValueError:
        v = None
    if len(_addr_cache) > 4096:
        _addr_cache.clear()
    _addr_cache[text] = v
    return v


def _kernel_host(c: HostCond) -> Tri:
    """A host as the kernel's bytecode matches it (``inet_diag_bc_run``), for inet sockets:
    a v4 prefix takes IPv4 and v4-mapped IPv6 addresses, a v6 prefix IPv6 ones alone."""
    port = c.port
    local = c.side == "src"
    get_port = _local_port if local else _peer_port
    nets = [(n.version, int(n.network_address), n.prefixlen) for n in c.prefixes]

    def f(s: Socket) -> bool:
        if port != -1 and get_port(s) != port:
            return False
        if not nets:
            return True
        v = _addr_value(s.local.address if local else s.peer.address)
        if v is None:
            return False
        version, x = v
        for nv, net, plen in nets:
            if nv == 4 and version == 6:
                if x >> 32 != 0xFFFF:
                    continue  # not v4-mapped
                y, bits = x & 0xFFFFFFFF, 32
            elif nv != version:
                continue
            else:
                y, bits = x, (32 if version == 4 else 128)
            if (y >> (bits - plen)) == (net >> (bits - plen)):
                return True
        return False

    return f


def _host(c: HostCond) -> Tri:
    port = c.port
    local = c.side == "src"
    get_port = _local_port if local else _peer_port
    # each prefix as ss holds it: its bytes from the start of a 16-byte buffer (an int, the first
    # byte highest), its length, and whether it is IPv4 (which also matches v4-mapped addresses)
    nets = [(int(n.network_address) << (96 if n.version == 4 else 0), n.prefixlen, n.version == 4)
            for n in c.prefixes]
    any_len0 = any(plen == 0 for _, plen, _ in nets)
    key = _local_key if local else _peer_key

    def f(s: Socket) -> bool:
        if port != -1 and get_port(s) != port:
            return False
        if not nets:
            return True
        x = key(s)
        if x is None:  # a pointer (a UNIX socket's name): only a prefix of length 0 takes it
            return any_len0
        mapped = s.family == AF_INET6 and x >> 32 == 0xFFFF
        for net, plen, v4 in nets:
            shift = 128 - plen
            if x >> shift == net >> shift:
                return True
            if v4 and mapped and ((x & 0xFFFFFFFF) << 96) >> shift == net >> shift:
                return True
        return False

    return f


def _inet_key(text: str) -> int | None:
    v = _addr_value(text)
    if v is None:
        return None
    version, x = v
    return x << 96 if version == 4 else x


def _local_key(s: Socket) -> int | None:
    """The 16 bytes ss's userspace check compares a ``src`` prefix with (its ``sockstat.local``),
    as an int, first byte highest: an inet address (IPv4 in the first four bytes); for UNIX
    a pointer to the name (None: it never equals a prefix) or, unnamed, zeros; for netlink and
    packet sockets the protocol number as a little-endian u32 in the first four."""
    fam = s.family
    if fam == AF_INET or fam == AF_INET6:
        return _inet_key(s.local.address)
    if fam == AF_UNIX:
        return 0 if s.local.address == "" else None
    if fam == AF_NETLINK or fam == AF_PACKET:
        return int.from_bytes((s.protocol or 0).to_bytes(4, "little"), "big") << 96
    return None


def _peer_key(s: Socket) -> int | None:
    """As :func:`_local_key`, for ``dst`` (``sockstat.remote``): zeros for UNIX, netlink and
    packet sockets, whose remote ss's sock_diag readers leave unset."""
    fam = s.family
    if fam == AF_INET or fam == AF_INET6:
        return _inet_key(s.peer.address)
    if fam == AF_UNIX or fam == AF_NETLINK or fam == AF_PACKET:
        return 0
    return None


def _unix(c: UnixCond) -> Tri:
    match = fnmatch_regex(c.pattern).fullmatch
    if c.side == "dst":
        hit = match(b"") is not None
        return lambda s: hit and s.family == AF_UNIX
    encode = os.fsencode  # (the name's bytes, as ss matches them)
    return lambda s: s.family == AF_UNIX and match(encode(s.local.address)) is not None


def _link(c: LinkCond | NetlinkCond) -> Tri:
    fam = AF_PACKET if isinstance(c, LinkCond) else AF_NETLINK
    port = c.ifindex if isinstance(c, LinkCond) else c.portid
    proto = c.proto
    local = c.side == "src"
    get_port = _local_port if local else _peer_port

    def f(s: Socket) -> bool:
        if s.family != fam or (port != -1 and get_port(s) != port):
            return False
        if proto is None:
            return True
        if local:
            return s.protocol == proto
        if fam == AF_NETLINK:  # ss compares the destination group
            return (int(s.peer.address) if s.peer.address.isdigit() else 0) == proto
        return proto == 0

    return f


def _port_cmp(c: PortCmp) -> Tri:
    get_port = _local_port if c.side == "src" else _peer_port
    port = c.port
    if c.op == "ge":
        return lambda s: get_port(s) >= port
    return lambda s: get_port(s) <= port


def _autobound(port_range: tuple[int, int]) -> Tri:
    low, high = port_range

    def f(s: Socket) -> bool:
        fam = s.family
        if fam == AF_UNIX:
            a = s.local.address
            return a == "" or (len(a) == 6 and a[0] == "@" and _HEX.issuperset(a[1:]))
        if fam == AF_PACKET:
            return s.local.port == 0 and not s.protocol
        if fam == AF_NETLINK:
            return s.local.port < 0
        return low <= s.local.port <= high

    return f


def _mark(c: MarkCond, proc: bool) -> Tri:
    mark, mask = c.mark, c.mask

    def f(s: Socket) -> bool | None:
        m: int | None = getattr(s, "mark", None)
        if m is None:  # 0 as in ss for other families and what ss reads from /proc; else not read
            return (0 & mask) == mark if proc or s.family not in (AF_INET, AF_INET6) else None
        return (m & mask) == mark

    return f


def _cgroup(c: CgroupCond, proc: bool) -> Tri:
    cid = c.cgroup_id

    def f(s: Socket) -> bool | None:
        v: int | None = getattr(s, "cgroup_id", None)
        if v is None:  # as for marks: 0, no cgroup's id
            return cid == 0 if proc or s.family not in (AF_INET, AF_INET6) else None
        return v == cid

    return f


def _chain(head: Tri, steps: list[tuple[bool, Tri]]) -> Tri:
    """A left-associative and/or chain (``steps``: (is_and, operand)), short-circuit, Kleene."""

    def f(s: Socket) -> bool | None:
        acc = head(s)
        for is_and, g in steps:
            if is_and:
                if acc is False:
                    continue
                y = g(s)
                acc = False if y is False else (True if (acc and y) else None)
            else:
                if acc is True:
                    continue
                y = g(s)
                acc = True if y is True else (False if (acc is False and y is False) else None)
        return acc

    return f


def _not(a: Tri) -> Tri:
    def f(s: Socket) -> bool | None:
        x = a(s)
        return None if x is None else not x

    return f


def _build(e: Expr, port_range: tuple[int, int], kernel: bool = False, proc: bool = False) -> Tri:
    """``kernel``: hosts matched the bytecode's way; ``proc``: a missing mark or cgroup id is 0
    (what ss reads from /proc has none), not unknown."""
    if isinstance(e, (And, Or)):
        steps: list[tuple[bool, Tri]] = []
        while isinstance(e, (And, Or)):  # iterative on the left spine: long chains
            steps.append((isinstance(e, And), _build(e.right, port_range, kernel, proc)))
            e = e.left
        steps.reverse()
        return _chain(_build(e, port_range, kernel, proc), steps)
    if isinstance(e, Not):
        return _not(_build(e.expr, port_range, kernel, proc))
    if isinstance(e, HostCond):
        return _kernel_host(e) if kernel else _host(e)
    if isinstance(e, UnixCond):
        return _unix(e)
    if isinstance(e, (LinkCond, NetlinkCond)):
        return _link(e)
    if isinstance(e, PortCmp):
        return _port_cmp(e)
    if isinstance(e, DevCond):
        idx = e.ifindex
        return lambda s: s.ifindex == idx
    if isinstance(e, MarkCond):
        return _mark(e, proc)
    if isinstance(e, CgroupCond):
        return _cgroup(e, proc)
    if isinstance(e, Autobound):
        return _autobound(port_range)
    if isinstance(e, OtherFamilyCond):
        return lambda s: False
    raise TypeError(f"not a filter node: {e!r}")


_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "\\x21-\\x7e", "lower": "a-z", "print": "\\x20-\\x7e",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"), "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z", "xdigit": "0-9A-Fa-f",
}


_NEVER = re.compile(b"(?!)")


class _NoMatch(Exception):
    """glibc gives up on the whole pattern (unknown [:class:])."""


def fnmatch_regex(pattern: str | bytes) -> re.Pattern[bytes]:
    """A regex for glibc ``fnmatch(pattern, name, FNM_CASEFOLD)`` (no PATHNAME/PERIOD) in the C
    locale, as ss runs it (ss sets no locale): on bytes, the name's and the pattern's
    (``os.fsencode`` of a text), only ASCII letters case-folded.

    ``*`` and ``?`` match any byte including ``/``; ``\\x`` is a literal
    x (a trailing ``\\`` matches nothing); ``[...]`` takes ``!``/``^``
    negation, ranges (the name's character folded, then compared with the
    folded ends: ``[?-^]`` takes no letter), ``[:class:]`` and one-character
    ``[.c.]`` (neither is case-folded; an unknown class or symbol, or an
    unterminated ``[.``, matches nothing); an unterminated ``[`` is literal.
    Malformed brackets (unknown class, a range ending in ``[``) may differ
    from glibc, whose answer then depends on the order it tries items in.
    """
    # the pattern's bytes as the characters U+0000..U+00FF: the regex is built as text, then
    # encoded back byte for byte
    pattern = (pattern if isinstance(pattern, bytes) else os.fsencode(pattern)).decode("latin-1")
    out: list[str] = []
    i, n = 0, len(pattern)
    try:
        while i < n:
            c = pattern[i]
            i += 1
            if c == "*":
                out.append(".*")
            elif c == "?":
                out.append(".")
            elif c == "\\":
                if i == n:
                    return _NEVER  # glibc: a trailing backslash matches nothing
                out.append(re.escape(pattern[i]))
                i += 1
            elif c == "[" and (r := _bracket(pattern, i)) is not None:
                out.append(r[0])
                i = r[1]
            else:
                out.append(re.escape(c))
    except _NoMatch:
        return _NEVER
    return re.compile("".join(out).encode("latin-1"), re.IGNORECASE | re.DOTALL)


def _bracket(p: str, i: int) -> tuple[str, int] | None:
    """(regex, index after "]") for a bracket expression opening before ``i``; None: literal "["."""
    n = len(p)
    negate = i < n and p[i] in "!^"
    if negate:
        i += 1
    items: list[str] = []  # case-folded like the name
    classes: list[str] = []  # tested on the name as is
    ranges: list[str] = []  # a range: the name's character folded, then compared with the folded ends
    first = True
    while i < n:
        c = p[i]
        if c == "]" and not first:
            alts = [f"[{''.join(items)}]"] if items else []
            if classes:
                alts.append(f"(?-i:[{''.join(classes)}])")
            alts += ranges
            one = "(?:" + "|".join(alts) + ")" if alts else "(?!)"
            return (f"(?!{one})." if negate else one), i + 1
        first = False
        if c == "[" and p.startswith("[:", i) and (end := p.find(":]", i + 2)) >= 0:
            name = p[i + 2:end]
            if name not in _CLASSES:
                raise _NoMatch
            classes.append(_CLASSES[name])
            i = end + 2
            continue
        if c == "[" and p.startswith("[.", i):  # a collating symbol: glibc knows single characters
            end = p.find(".]", i + 2)
            if end != i + 3:  # unterminated, or several characters: the whole pattern matches nothing
                raise _NoMatch
            classes.append(_cls(p[i + 2]))  # compared as is, not case-folded (as glibc does)
            i = end + 2
            continue
        if c == "\\" and i + 1 < n:
            i += 1
            c = p[i]
        lo = c
        i += 1
        if i + 1 < n and p[i] == "-" and p[i + 1] != "]":
            hi = p[i + 1]
            i += 2
            if hi == "\\" and i < n:
                hi = p[i]
                i += 1
            lo, hi = _fold(lo), _fold(hi)  # (glibc folds a range's ends and the name's character)
            if ord(hi) >= ord(lo):
                ups = "".join(u for u in _UPPER if lo <= _fold(u) <= hi)  # (capitals folded into it)
                ranges.append(f"(?-i:(?![A-Z])[{_cls(lo)}-{_cls(hi)}]" + (f"|[{ups}])" if ups else ")"))
            continue
        items.append(_cls(lo))
    return None


def _cls(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _fold(c: str) -> str:
    """glibc's FNM_CASEFOLD fold of one character (tolower in the C locale: ASCII capitals alone)."""
    return chr(ord(c) + 32) if "A" <= c <= "Z" else c


__all__ = ["compile_predicate", "ephemeral_port_range", "fnmatch_regex", "DEFAULT_EPHEMERAL"]
