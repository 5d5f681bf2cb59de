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

from sockscope.filter.expr import (
    AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX,
    And, Autobound, CgroupCond, DevCond, Expr, HostCond, LinkCond, MarkCond,
    NetlinkCond, Not, Or, OtherFamilyCond, PortCmp, UnixCond,
)
from sockscope.filter.glob import fnmatch_regex, glob_matcher  # (fnmatch_regex: named here before)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Optional

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


class _End:
    """A mutable :class:`~sockscope.records.Endpoint` for :class:`Row` (the predicate reads
    ``address`` and ``port``)."""

    __slots__ = ("address", "port")

    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port


class Row:
    """Stands for a socket's record where the predicate reads one (family, local and peer ends,
    inode, peer inode, protocol, interface; mark and cgroup id None, as a UNIX, netlink or packet
    record has them), moved through a batch's rows (:func:`unix_mask`, :func:`rows_mask`): no
    record made a row, and no import of the records' module (~6 ms of a listing's start)."""

    __slots__ = ("family", "local", "peer", "inode", "peer_inode", "protocol", "ifindex")
    mark = cgroup_id = None

    def __init__(self, family: int) -> None:
        self.family, self.local, self.peer = family, _End("", 0), _End("", 0)
        self.inode = self.peer_inode = self.ifindex = 0
        self.protocol: int | None = None


def rows_mask(predicate: Callable[[Any], bool], family: int,
              rows: Iterable[tuple[str, int, str, int, int | None, int]]) -> list[bool]:
    """``predicate`` of each row (local address and port, peer address and port, protocol,
    interface: the fields of its record) of sockets of ``family``."""
    row = Row(family)
    local, peer = row.local, row.peer
    out: list[bool] = []
    for local.address, local.port, peer.address, peer.port, row.protocol, row.ifindex in rows:
        out.append(predicate(row))
    return out


#: the leaves a UNIX socket's answer is known for: from its name, from its inode and its peer's
#: compared (=, >=, <=) with the leaf's port, or the same for every UNIX socket
_UNIX_LEAVES = (UnixCond, Autobound, HostCond, PortCmp, LinkCond, NetlinkCond, DevCond, MarkCond, CgroupCond,
                OtherFamilyCond)


def unix_mask(expr: Expr, predicate: Callable[[Any], bool], names: list[bytes], inodes: list[int],
              peers: list[int], cut: Callable[[list[bytes]], list[bytes]],
              texts: Callable[[list[bytes]], list[str]]) -> list[bool]:
    """``predicate`` (compiled from ``expr``) of each UNIX socket of a batch's columns: its raw name
    (``cut`` gives the bytes ss matches, ``texts`` its record's ``local.address``, of a list of
    them), inode and peer inode (0 none), the answers the batch's records would get.

    An expression of one ``src`` glob (``-x src /run/*``) is :func:`~sockscope.filter.glob.glob_mask`
    of the distinct names.  Otherwise a record's stand-in is moved through the rows.  A UNIX
    socket's ports are its inode and its peer's, which the expression compares with its ports
    alone: where no port of the expression lies between the batch's least and greatest inode (nor
    its peers'), every socket's inode compares alike (the usual case: inodes are large numbers,
    ports small), and the predicate is asked once for each distinct name, with a peer and
    without; otherwise once a socket."""
    distinct = list(dict.fromkeys(names))
    if isinstance(expr, UnixCond) and expr.side == "src":
        from sockscope.filter.glob import glob_mask

        hits = dict(zip(distinct, glob_mask(expr.pattern, cut(distinct))))
        return list(map(hits.__getitem__, names))
    text = dict(zip(distinct, texts(distinct)))
    row = Row(AF_UNIX)  # (peer, protocol and interface as a UNIX record has them)
    end = row.local
    leaves = list(expr.leaves())
    ports = sorted({leaf.port for leaf in leaves if isinstance(leaf, (HostCond, PortCmp)) and leaf.port != -1})
    linked = list(filter(None, peers))
    if all(isinstance(leaf, _UNIX_LEAVES) for leaf in leaves) and _alike(inodes, ports) and _alike(linked, ports):
        keys = list(zip(names, map(bool, peers)))
        answers: dict[tuple[bytes, bool], bool] = {}
        row.inode, peer = (inodes or [0])[0], (linked or [0])[0]
        for key in dict.fromkeys(keys):
            end.address, row.peer_inode = text[key[0]], peer if key[1] else 0
            answers[key] = predicate(row)
        return list(map(answers.__getitem__, keys))
    out: list[bool] = []
    for name, inode, peer in zip(names, inodes, peers):
        end.address, row.inode, row.peer_inode = text[name], inode, peer
        out.append(predicate(row))
    return out


def _alike(values: list[int], ports: list[int]) -> bool:
    """Whether no port of the sorted ``ports`` lies from the least to the greatest of ``values``:
    then every one of them compares (=, >=, <=) with each port alike."""
    from bisect import bisect_left, bisect_right

    return not values or bisect_left(ports, min(values)) == bisect_right(ports, max(values))


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
        return _first_word(s.protocol or 0) << 96
    return None


def _first_word(number: int) -> int:
    """A protocol number as ss holds it in an address's first four bytes (a little-endian u32), read
    as the first-byte-highest int the keys are."""
    return int.from_bytes((number & 0xFFFFFFFF).to_bytes(4, "little"), "big")


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
    match = glob_matcher(c.pattern)
    if c.side == "dst":
        hit = bool(match(b""))
        return lambda s: hit and s.family == AF_UNIX
    encode = os.fsencode  # (the name's bytes, as ss matches them)
    return lambda s: s.family == AF_UNIX and bool(match(encode(s.local.address)))


def _link(c: LinkCond | NetlinkCond) -> Tri:
    """A ``link:``/``netlink:`` host.  On a socket of another family ss's check is its generic one
    (``run_ssfilter``): the port against the socket's (ss's lport/rport), then a protocol given
    against the first four bytes of the socket's address as ss holds them (:func:`_local_key`),
    none given: any (``-a not src link:*`` takes no UNIX or netlink socket)."""
    fam = AF_PACKET if isinstance(c, LinkCond) else AF_NETLINK
    port = c.ifindex if isinstance(c, LinkCond) else c.portid
    proto = c.proto
    local = c.side == "src"
    get_port = _local_port if local else _peer_port
    key = _local_key if local else _peer_key
    want = None if proto is None else _first_word(proto)

    def f(s: Socket) -> bool:
        if port != -1 and get_port(s) != port:
            return False
        if s.family != fam:
            if want is None:
                return True
            x = key(s)
            return x is not None and x >> 96 == want
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


__all__ = ["compile_predicate", "ephemeral_port_range", "fnmatch_regex", "glob_matcher", "unix_mask", "rows_mask",
           "Row", "DEFAULT_EPHEMERAL"]
