"""Address bytes -> text, cached, without the socket module; and :class:`Texts`, the bounded table
of texts made on first use that the decoders' address texts (``kernel.inet.ADDR_TEXT``, ``FAM_TEXT``)
and the detail texts' and JSON's per-value texts are kept in (``render.tcp_info`` keeps a table of
its own: it counts its misses and bounds all its tables together).

Most sockets share a few local addresses, so the text of each raw address is
computed once per process.  IPv6 text follows glibc's ``inet_ntop`` (what ss
prints): RFC 5952 compression, and ``::ffff:a.b.c.d`` / ``::a.b.c.d`` for
v4-mapped and v4-compatible addresses.
"""

from __future__ import annotations

import _struct  # struct.py only re-exports this C module: one module fewer to import

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

_WORDS = _struct.Struct(">8H")

#: the address families sockscope knows (<linux/socket.h>), defined here once
AF_UNSPEC = 0
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16
AF_PACKET = 17
AF_TIPC = 30
AF_VSOCK = 40
AF_XDP = 44

#: IPv6's unspecified address ``::`` as raw bytes (and as the decoders' address key)
ZERO16 = bytes(16)
#: the first 12 bytes of a v4-mapped IPv6 address (``::ffff:a.b.c.d``)
V4MAPPED = b"\0" * 10 + b"\xff\xff"

_LIMIT = 1 << 16  # entries per cache before it starts over
_cache4: dict[bytes, str] = {}
_cache6: dict[bytes, str] = {}
_ZERO12 = b"\0" * 12


def ntop4(raw: bytes) -> str:
    """Text of a 4-byte IPv4 address (network order)."""
    s = _cache4.get(raw)
    if s is None:
        if len(_cache4) >= _LIMIT:  # bounded: a long-running caller sees ever new peers
            _cache4.clear()
        s = _cache4[raw] = "%d.%d.%d.%d" % (raw[0], raw[1], raw[2], raw[3])
    return s


def ntop6(raw: bytes) -> str:
    """Text of a 16-byte IPv6 address (network order), as glibc prints it."""
    s = _cache6.get(raw)
    if s is None:
        if len(_cache6) >= _LIMIT:
            _cache6.clear()
        head = raw[:12]
        if head == V4MAPPED:
            s = "::ffff:" + ntop4(raw[12:])
        elif head == _ZERO12 and raw[12:14] != b"\0\0":
            s = "::" + ntop4(raw[12:])  # glibc: a zero run of exactly six words
        else:
            s = _compress6(raw)
        _cache6[raw] = s
    return s


def _compress6(raw: bytes) -> str:
    """RFC 5952 text: the longest run (>= 2) of zero words, the first on a tie, becomes ``::``."""
    words = _WORDS.unpack(raw)
    best_at, best_len, at, n = -1, 0, -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if n == 0:
                at = i
            n += 1
            if n > best_len:
                best_at, best_len = at, n
        else:
            n = 0
    hexes = ["%x" % w for w in words]
    if best_len < 2:
        return ":".join(hexes)
    return ":".join(hexes[:best_at]) + "::" + ":".join(hexes[best_at + best_len :])


def ntop(family: int, raw: bytes) -> str:
    """Text of an address of ``family``; ``raw`` may be longer (sock_diag pads to 16)."""
    if family == AF_INET:
        return ntop4(bytes(raw[:4]))
    return ntop6(bytes(raw[:16]))


class Texts(dict):  # type: ignore[type-arg]  # (dict[Any, str]: typing is not imported at run time)
    """A value -> its text, made on first use by ``make``; ``known`` texts to begin with.  Cleared
    when it holds ``bound`` texts: the values may be ever new (a long listing's inodes, a path each)."""

    __slots__ = ("make", "known", "bound")

    def __init__(self, make: Callable[[Any], str], known: dict[Any, str] | None = None, bound: int = 1 << 16) -> None:
        self.known = known or {}
        super().__init__(self.known)
        self.make = make
        self.bound = bound

    def __missing__(self, key: Any) -> str:
        if len(self) >= self.bound:
            self.clear()
            self.update(self.known)
        text: str = self.make(key)
        self[key] = text
        return text
