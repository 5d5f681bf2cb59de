"""top's per-tick dump: the sockets, plus two tcp_info counters per TCP socket.

Rates need only ``bytes_received`` and ``bytes_acked``.  The core's details
path (``Query(ext=EXT_INFO)``) decodes every attribute and the whole
``tcp_info`` into a record: measured at ~35 µs per socket, ~350 ms per tick
at 10k sockets, more than the 25 % CPU budget on its own.  So for TCP this
module asks the kernel for ``INET_DIAG_INFO`` but decodes each datagram twice
cheaply: the core's fast path (:func:`sockscope.kernel.inet.decode_dump`
without details) for the records, and :func:`scan_counters` for the two
counters (fixed offsets in ``tcp_info``: 120 and 128), keyed by socket cookie.
Other tables, and any failure of the netlink path (no sock_diag, denied),
go through :func:`sockscope.query.run` unchanged (with its /proc fallback;
no counters then).
"""

from __future__ import annotations

import struct
from typing import Callable

from sockscope.errors import NotSupported, PermissionDenied
from sockscope.query import Query, run
from sockscope.records import Socket

SOCK_DIAG_BY_FAMILY = 20
INET_DIAG_INFO = 2
_EXT_INFO = 1 << (INET_DIAG_INFO - 1)
_HDR = struct.Struct("=IH")  # nlmsg_len, nlmsg_type
_COOKIE = struct.Struct("=Q")
_ATTR = struct.Struct("=HH")
_COUNTERS = struct.Struct("=QQ")  # bytes_acked, bytes_received
_MSG_LEN = 72  # struct inet_diag_msg
_COOKIE_OFF = 44  # family state timer retrans sport dport src[16] dst[16] if
_ACKED_OFF = 120  # 8 u8 + 24 u32 + pacing_rate + max_pacing_rate
_NEED = _ACKED_OFF + 16

#: cookie -> (bytes_received, bytes_acked)
Counters = dict[int, tuple[int, int]]


def scan_counters(buf: bytes | memoryview, out: Counters) -> None:
    """Add (bytes_received, bytes_acked) of each inet_diag message in ``buf`` to ``out``."""
    mv = memoryview(buf)
    end = len(mv)
    off = 0
    hdr = _HDR.unpack_from
    attr = _ATTR.unpack_from
    cookie_of = _COOKIE.unpack_from
    counters = _COUNTERS.unpack_from
    while off + 16 <= end:
        length, mtype = hdr(mv, off)
        if length < 16 or off + length > end:
            return  # the core's decoder reports malformed input
        if mtype == SOCK_DIAG_BY_FAMILY and length >= 16 + _MSG_LEN:
            a = off + 16 + _MSG_LEN
            stop = off + length
            while a + 4 <= stop:
                alen, atype = attr(mv, a)
                if alen < 4:
                    break
                if atype & 0x3FFF == INET_DIAG_INFO:
                    if alen >= 4 + _NEED:
                        acked, received = counters(mv, a + 4 + _ACKED_OFF)
                        out[cookie_of(mv, off + 16 + _COOKIE_OFF)[0]] = (received, acked)
                    break
                a += (alen + 3) & ~3
        off += (length + 3) & ~3


def dump(q: Query, warn: Callable[[str], None]) -> tuple[list[Socket], Counters]:
    """The sockets of ``q`` (in ss's table order) and the TCP byte counters by cookie."""
    counters: Counters = {}
    if "tcp" not in q.tables or q.force_proc or not (q.families & {2, 10}):
        return list(run(q, warn=warn)), counters
    from sockscope.kernel import inet, transport

    tcp: list[Socket] = []
    try:
        for fam in (2, 10):
            if fam not in q.families:
                continue
            part: list[Socket] = []

            def decode(b: bytes, part: list[Socket] = part) -> bool:
                scan_counters(b, counters)
                return inet.decode_dump(b, "tcp", part, False, "tcp diag")

            transport.dump(inet.encode_request(fam, 6, q.states, _EXT_INFO), decode, "tcp diag")
            tcp.extend(part)
    except (NotSupported, PermissionDenied):
        return list(run(q, warn=warn)), {}
    rest = q.tables - {"tcp"}
    socks = list(run(q.replace(tables=frozenset(rest)), warn=warn)) if rest else []
    # run() yields tcp after every other table this query can hold (ss's order)
    socks.extend(tcp)
    return socks, counters


__all__ = ["dump", "scan_counters", "Counters"]
