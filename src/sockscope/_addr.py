"""Address bytes -> text, cached, without the socket module.

Most sockets share a few local addresses, so the text of each raw address is
computed once per process.  IPv6 text follows glibc's ``inet_ntop`` (what ss
prints): RFC 5952 compression, and ``::ffff:a.b.c.d`` / ``::a.b.c.d`` for
v4-mapped and v4-compatible addresses.
"""

from __future__ import annotations

from ipaddress import IPv6Address

AF_INET = 2
AF_INET6 = 10

_cache4: dict[bytes, str] = {}
_cache6: dict[bytes, str] = {}
_V4MAPPED = b"\0" * 10 + b"\xff\xff"
_ZERO12 = b"\0" * 12


def ntop4(raw: bytes) -> str:
    """Text of a 4-byte IPv4 address (network order)."""
    s = _cache4.get(raw)
    if s is None:
        s = _cache4[raw] = "%d.%d.%d.%d" % (raw[0], raw[1], raw[2], raw[3])
    return s


def ntop6(raw: bytes) -> str:
    """Text of a 16-byte IPv6 address (network order), as glibc prints it."""
    s = _cache6.get(raw)
    if s is None:
        head = raw[:12]
        if head == _V4MAPPED:
            s = "::ffff:" + ntop4(raw[12:])
        elif head == _ZERO12 and raw[12:14] != b"\0\0":
            s = "::" + ntop4(raw[12:])  # glibc: a zero run of exactly six words
        else:
            s = IPv6Address(raw).compressed
        _cache6[raw] = s
    return s


def ntop(family: int, raw: bytes) -> str:
    """Text of an address of ``family``; ``raw`` may be longer (sock_diag pads to 16)."""
    if family == AF_INET:
        return ntop4(bytes(raw[:4]))
    return ntop6(bytes(raw[:16]))
