"""``struct tcp_info`` (INET_DIAG_INFO for TCP), sans IO, tolerant of version skew.

A shorter struct from an older kernel is zero-padded (as ss does); a longer one
from a newer kernel has its unknown tail ignored.  The window scales are the
two nibbles of byte 6: send scale low, receive scale high (pyroute2 swaps
them; ss gets it right).
"""

from __future__ import annotations

from typing import Any, NamedTuple  # imported only when tcp_info is asked for (-i)

from sockscope.kernel.layout import TCP_INFO

_FMT = TCP_INFO.struct
SIZE = _FMT.size  # 252
FORMAT = _FMT.format  # for callers that unpack a tcp_info inside a larger struct
FIELDS = len(_FMT.unpack(bytes(SIZE)))  # values it unpacks to (the wscale and flag bytes not yet split)

TCPI_OPT_TIMESTAMPS = 1
TCPI_OPT_SACK = 2
TCPI_OPT_WSCALE = 4
TCPI_OPT_ECN = 8
TCPI_OPT_ECN_SEEN = 16
TCPI_OPT_SYN_DATA = 32


class TcpInfo(NamedTuple):
    """The kernel's ``tcp_info`` (times in µs as the kernel gives them).

    A named tuple, like :class:`~sockscope.records.SkMem`: a value nested in a
    :class:`~sockscope.records.Socket` record, built once per socket (a tuple
    builds ten times faster than a 63-field frozen dataclass)."""

    state: int
    ca_state: int
    retransmits: int
    probes: int
    backoff: int
    options: int
    snd_wscale: int
    rcv_wscale: int
    delivery_rate_app_limited: bool
    fastopen_client_fail: int
    rto: int
    ato: int
    snd_mss: int
    rcv_mss: int
    unacked: int
    sacked: int
    lost: int
    retrans: int
    fackets: int
    last_data_sent: int
    last_ack_sent: int
    last_data_recv: int
    last_ack_recv: int
    pmtu: int
    rcv_ssthresh: int
    rtt: int
    rttvar: int
    snd_ssthresh: int
    snd_cwnd: int
    advmss: int
    reordering: int
    rcv_rtt: int
    rcv_space: int
    total_retrans: int
    pacing_rate: int
    max_pacing_rate: int
    bytes_acked: int
    bytes_received: int
    segs_out: int
    segs_in: int
    notsent_bytes: int
    min_rtt: int
    data_segs_in: int
    data_segs_out: int
    delivery_rate: int
    busy_time: int
    rwnd_limited: int
    sndbuf_limited: int
    delivered: int
    delivered_ce: int
    bytes_sent: int
    bytes_retrans: int
    dsack_dups: int
    reord_seen: int
    rcv_ooopack: int
    snd_wnd: int
    rcv_wnd: int
    rehash: int
    total_rto: int
    total_rto_recoveries: int
    total_rto_time: int
    received_ce: int
    length: int  # bytes the kernel actually sent

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


def decode(raw: bytes | memoryview) -> TcpInfo:
    """Decode a ``tcp_info`` of any length (short: zero-padded; long: tail ignored)."""
    b = bytes(raw[:SIZE])
    n = len(raw)
    if len(b) < SIZE:
        b = b + bytes(SIZE - len(b))
    return from_fields(_FMT.unpack(b), n)


def from_fields(v: tuple[int, ...], length: int) -> TcpInfo:
    """A :class:`TcpInfo` from the :data:`FIELDS` values :data:`FORMAT` unpacks
    (here, or inside a larger struct) of a tcp_info the kernel sent ``length`` bytes of."""
    wscale = v[6]
    flags = v[7]
    return _new(TcpInfo, (
        v[0], v[1], v[2], v[3], v[4], v[5], wscale & 0x0F, wscale >> 4, bool(flags & 1), (flags >> 1) & 3,
        *v[8:], length,
    ))


_new = tuple.__new__


__all__ = ["TcpInfo", "decode", "from_fields", "SIZE", "FORMAT", "FIELDS"]


class InfoColumns(list):  # type: ignore[type-arg]
    """The tcp_info of ``n`` sockets held column by column: one list per :class:`TcpInfo`
    field, in its order (what ``-i``'s text reads, without a tuple per socket)."""

    __slots__ = ("n",)

    def __init__(self, cols: list[list[Any]], n: int) -> None:
        super().__init__(cols)
        self.n = n

    def rows(self) -> list[TcpInfo]:
        """The :class:`TcpInfo` of each socket."""
        return [_new(TcpInfo, v) for v in zip(*self)]

    def select(self, keep: Any) -> InfoColumns:
        """The sockets whose ``keep`` is true."""
        from itertools import compress

        cols = [list(compress(c, keep)) for c in self]
        return InfoColumns(cols, len(cols[0]) if cols else 0)


def columns(raw: list[Any], length: int, n: int) -> InfoColumns:
    """:class:`InfoColumns` from the :data:`FIELDS` columns :data:`FORMAT` unpacks (of ``n``
    tcp_info the kernel sent ``length`` bytes of): the window scales and flags split, as
    :func:`from_fields` splits them."""
    wscale, flags = raw[6], raw[7]
    return InfoColumns([
        *raw[:6], [w & 0x0F for w in wscale], [w >> 4 for w in wscale], [bool(f & 1) for f in flags],
        [(f >> 1) & 3 for f in flags], *raw[8:], [length] * n,
    ], n)
