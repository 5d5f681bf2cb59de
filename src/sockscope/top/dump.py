"""top's per-tick dump: the sockets, plus two tcp_info counters per TCP socket.

Rates need only ``bytes_received`` and ``bytes_acked``.  The TCP dump asks the
kernel for ``INET_DIAG_INFO``; the records are made from the decoder's batches
without decoding any attribute (the core's plain records), and the two
counters are read from the same batches by name
(:meth:`~sockscope.kernel.inet.Batch.info_fields`: one strided read per field
where the datagram's messages are alike), keyed by socket cookie.  Every table
comes from the one source, :func:`sockscope.query.batches`, with its /proc
fallback (no counters then).
"""

from __future__ import annotations

from typing import Callable

from sockscope.kernel.inet import Batch
from sockscope.query import Query, batches, records
from sockscope.records import Socket

_EXT_INFO = 1 << (2 - 1)  # INET_DIAG_INFO alone

#: cookie -> (bytes_received, bytes_acked)
Counters = dict[int, tuple[int, int]]


def dump(q: Query, warn: Callable[[str], None]) -> tuple[list[Socket], Counters]:
    """The sockets of ``q`` (in ss's table order) and the TCP byte counters by cookie."""
    counters: Counters = {}
    socks: list[Socket] = []
    if "tcp" in q.tables:
        q = q.replace(ext=q.ext | _EXT_INFO)
    for table, batch in batches(q, warn):
        if isinstance(batch, list):
            socks += batch
            continue
        socks += records(table, batch)
        if table == "tcp" and isinstance(batch, Batch) and batch.n:
            received, acked = batch.info_fields(("bytes_received", "bytes_acked"))
            counters.update((c, (r, a)) for c, r, a in zip(batch.cookie, received, acked) if r is not None)
    return socks, counters


__all__ = ["dump", "Counters"]
