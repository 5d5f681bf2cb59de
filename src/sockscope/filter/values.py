"""The values inside filter conditions: C-style numbers, IPv4/IPv6 prefixes as
iproute2 reads them, protocol name tables, and the name look-ups (:class:`Resolver`).

Numbers are read as C's ``strtol(base 0)`` reads them, in time linear in the
text, and saturate where C's would: a 4,301-digit port is simply out of range
(Python's ``int()`` of so many digits raises ``ValueError``; it is never asked).
"""

from __future__ import annotations

import os
import sys

from sockscope.filter.expr import AF_INET, AF_INET6, AF_UNSPEC

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from sockscope.render.rpcbind import Registrations as RpcPorts

# ipaddress and _socket (name look-ups) are imported where first needed: a
# filter of ports alone needs neither, and start-up time is a feature.

# iproute2 lib/ll_proto.c (names compared case-insensitively) and lib/rt_names.c.
LL_PROTOS = {
    "loop": 0x0060, "pup": 0x0200, "pupat": 0x0201, "ip": 0x0800, "x25": 0x0805, "arp": 0x0806,
    "bpq": 0x08FF, "ieeepup": 0x0A00, "ieeepupat": 0x0A01, "dec": 0x6000, "dna_dl": 0x6001,
    "dna_rc": 0x6002, "dna_rt": 0x6003, "lat": 0x6004, "diag": 0x6005, "cust": 0x6006,
    "sca": 0x6007, "rarp": 0x8035, "atalk": 0x809B, "aarp": 0x80F3, "ipx": 0x8137,
    "ipv6": 0x86DD, "ppp_disc": 0x8863, "ppp_ses": 0x8864, "atmmpoa": 0x884C,
    "atmfate": 0x8884, "802_3": 0x0001, "ax25": 0x0002, "all": 0x0003, "802_2": 0x0004,
    "snap": 0x0005, "ddcmp": 0x0006, "wan_ppp": 0x0007, "ppp_mp": 0x0008, "localtalk": 0x0009,
    "can": 0x000C, "ppptalk": 0x0010, "tr_802_2": 0x0011, "mobitex": 0x0015, "control": 0x0016,
    "irda": 0x0017, "econet": 0x0018, "tipc": 0x88CA, "aoe": 0x88A2, "802.1q": 0x8100,
    "802.1ad": 0x88A8, "lldp": 0x88CC, "ipv4": 0x0800,
}
NL_PROTOS = {
    "rtnl": 0, "unused": 1, "usersock": 2, "fw": 3, "tcpdiag": 4, "nflog": 5, "xfrm": 6,
    "selinux": 7, "iscsi": 8, "audit": 9, "fiblookup": 10, "connector": 11, "nft": 12,
    "ip6fw": 13, "dec-rt": 14, "uevent": 15, "genl": 16, "scsi-trans": 18, "ecryptfs": 19,
    "rdma": 20, "crypto": 21,
}

_SPACE = " \t\n\v\f\r"
_OCT, _DEC, _HEX = frozenset("01234567"), frozenset("0123456789"), frozenset("0123456789abcdefABCDEF")
#: What a number of more significant digits reads as: beyond every range a filter checks (C saturates too).
_HUGE = 1 << 100
_MAX_DIGITS = 24  # 8**24 = 2**72 and 10**24 > 2**79: more digits are always out of range


def c_num(text: str, pos: int = 0) -> tuple[int, int] | None:
    """(signed value, end) of the number C's strto[u]l(base 0) reads at ``pos``
    (leading white space, a sign, then 0x… hex, 0… octal or decimal); None: no digits."""
    n = len(text)
    while pos < n and text[pos] in _SPACE:
        pos += 1
    sign = 1
    if pos < n and text[pos] in "+-":
        sign = -1 if text[pos] == "-" else 1
        pos += 1
    if pos >= n or text[pos] not in _DEC:
        return None
    if text[pos] == "0" and text[pos + 1:pos + 2] in ("x", "X") and text[pos + 2:pos + 3] in _HEX:
        digits, base, start = _HEX, 16, pos + 2
    elif text[pos] == "0":
        digits, base, start = _OCT, 8, pos
    else:
        digits, base, start = _DEC, 10, pos
    end = start
    while end < n and text[end] in digits:
        end += 1
    first = start
    while first < end - 1 and text[first] == "0":
        first += 1
    if end - first > _MAX_DIGITS:
        return sign * _HUGE, end
    return sign * int(text[start:end], base), end


def c_int(text: str, low: int, high: int) -> int | None:
    """The whole of ``text`` as a base-0 C integer in [low, high], else None."""
    r = c_num(text)
    if r is None or r[1] != len(text) or not low <= r[0] <= high:
        return None
    return r[0]


def ipv4(text: str) -> bytes | None:
    """iproute2's ``get_addr_ipv4``: 1 to 4 base-0 parts, missing ones zero (``127/8``)."""
    parts: list[int] = []
    pos = 0
    for i in range(4):
        r = c_num(text, pos)
        if r is None or not 0 <= r[0] <= 255:
            return None
        parts.append(r[0])
        pos = r[1]
        if pos == len(text):
            return bytes(parts + [0] * (4 - len(parts)))
        if i == 3 or text[pos] != ".":
            return None
        pos += 1
    return None


class Resolver:
    """The name lookups a filter may need.  Override any method to make them hermetic.

    Every method returns None/empty for "not found" and never raises.  ``rpc``: rpcbind's
    registrations, where the listing asked for them (``-r``: render/rpcbind.py).
    """

    rpc: RpcPorts | None = None  # (also for a subclass whose __init__ does not call this one)

    def __init__(self, rpc: RpcPorts | None = None) -> None:
        self.rpc = rpc

    def hosts(self, name: str, family: int) -> list[tuple[int, bytes]]:
        """All (family, packed address) of ``name``: A then AAAA for AF_UNSPEC."""
        import _socket as socket  # the C module: socket.py's enum set-up costs start-up time

        found: list[tuple[int, str]] = []  # (family, address text), in the resolver's order
        for fam in ((AF_INET, AF_INET6) if family == AF_UNSPEC else (family,)):
            try:
                if fam == AF_INET:  # (ss's gethostbyname2 order, unsorted: the first is the kernel filter's)
                    found += [(AF_INET, text) for text in socket.gethostbyname_ex(name)[2]]
                else:
                    found += [(int(info[0]), str(info[4][0]).split("%", 1)[0])
                              for info in socket.getaddrinfo(name, None, fam, socket.SOCK_STREAM)]
            except (OSError, UnicodeError, ValueError):
                continue
        out: list[tuple[int, bytes]] = []
        for fam, text in found:
            try:
                raw = socket.inet_pton(fam, text)
            except (OSError, ValueError):
                continue
            if (fam, raw) not in out:
                out.append((fam, raw))
        return out

    def service(self, name: str, proto: str) -> int | None:
        """The port of service ``name`` for ``proto`` ("tcp"/"udp") from the services database."""
        import _socket as socket

        try:
            return socket.getservbyname(name, proto)
        except (OSError, ValueError):
            return None

    def rpc_service(self, name: str, proto: str) -> list[int]:
        """The ports rpcbind has ``name`` (``rpc.PROGRAM``, as ``ss -r`` shows them) registered on for
        ``proto``, in its order; none unless the listing asked rpcbind."""
        return self.rpc.ports(name, proto) if self.rpc is not None else []

    def ifindex(self, name: str) -> int | None:
        """The index of interface ``name`` in the current network namespace."""
        import _socket as socket

        try:
            return socket.if_nametoindex(name)
        except (OSError, ValueError):
            return None

    def cgroup_id(self, path: str) -> int | None:
        """A cgroup id as ss reads ``cgroup PATH`` (iproute2's ``get_cgroup2_id``): the 8-byte
        file handle of PATH as given, on whatever filesystem (on ext4 a number no cgroup has:
        ``cgroup /`` matches nothing, as in ss), else of PATH relative to the cgroup2 mount
        (on cgroup2 the handle is the id).  None when neither gives one."""
        if "\0" in path:
            return None
        got = _handle_id(-100, path)  # AT_FDCWD
        if got is not None:
            return got or None  # (ss: a handle of another size is no id, and no second try)
        rel = path.lstrip("/")
        mount = cgroup2_mount() if rel else None
        if mount is None:
            return None
        try:
            fd = os.open(mount, os.O_RDONLY)
        except OSError:
            return None
        try:
            return _handle_id(fd, rel) or None
        finally:
            os.close(fd)


def _handle_id(dirfd: int, path: str) -> int | None:
    """name_to_handle_at(2) with room for 8 bytes: the handle as an int (host order, as ss copies it), 0 if the
    handle is shorter, None if the call fails (a longer handle, no such path, no handles)."""
    try:
        import ctypes  # here: only a cgroup filter needs it

        call = ctypes.CDLL(None, use_errno=True).name_to_handle_at
    except (ImportError, OSError, AttributeError):  # no ctypes, or a C library without the call
        return None
    try:
        name = os.fsencode(path)
    except ValueError:  # (a lone surrogate no file name can hold)
        return None
    # struct file_handle: handle_bytes (room for 8), handle_type, f_handle[8]
    buf = ctypes.create_string_buffer((8).to_bytes(4, sys.byteorder) + bytes(12), 16)
    mount_id = ctypes.c_int()
    if call(dirfd, name, buf, ctypes.byref(mount_id), 0) != 0:
        return None
    if int.from_bytes(buf.raw[0:4], sys.byteorder) != 8:
        return 0
    return int.from_bytes(buf.raw[8:16], sys.byteorder)


def cgroup2_mount() -> str | None:
    """Where cgroup2 is mounted in this mount namespace (the first such mount), None if nowhere."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split(" ")[4].replace("\\040", " ")
    except OSError:
        pass
    return None


def _get_addr(name: str, fam: int) -> tuple[int, bytes, bool] | None:
    """iproute2's ``get_addr_1`` for inet: (family, packed, is default/any/all)."""
    if name in ("default", "all", "any"):
        return fam, bytes({AF_INET: 4, AF_INET6: 16}.get(fam, 0)), True
    if ":" in name:
        if fam not in (AF_UNSPEC, AF_INET6):
            return None
        import _socket as socket

        try:
            return AF_INET6, socket.inet_pton(socket.AF_INET6, name), False
        except (OSError, ValueError):
            return None
    if fam not in (AF_UNSPEC, AF_INET):
        return None
    raw = ipv4(name)
    return None if raw is None else (AF_INET, raw, False)


def get_prefix(arg: str, fam: int) -> tuple[int, bytes, int] | None:
    """iproute2's ``get_prefix_1``: (family, packed, prefix length) or None."""
    addr, slash, mask = arg.partition("/")
    r = _get_addr(addr, fam)
    if r is None:
        return None
    family, raw, special = r
    bitlen = {AF_INET: 32, AF_INET6: 128}.get(family, 0)
    if slash:
        if special:
            return None
        plen = c_int(mask, 0, 0xFFFFFFFF)
        if plen is None:
            m = _get_addr(mask, AF_INET)
            if m is None or m[0] != AF_INET:
                return None
            host = ~int.from_bytes(m[1] or bytes(4), "big") & 0xFFFFFFFF
            if host & (host + 1):
                return None
            plen = 32 - host.bit_length()
        if plen > bitlen:
            return None
        bitlen = plen
    elif special:
        bitlen = 0
    return family, raw, bitlen


def may_be_hostname(text: str) -> bool:
    """False for text no resolver could know (spares a pointless DNS query)."""
    return bool(text) and not any(c in text for c in ":/[]*\\ \t\0")



__all__ = ["Resolver", "LL_PROTOS", "NL_PROTOS", "c_num", "c_int", "ipv4", "get_prefix", "may_be_hostname"]
