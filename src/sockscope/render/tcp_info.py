"""ss's ``tcp_stats_print`` (the ``-i`` text) for many sockets at once, column by column.

:func:`texts` takes the tcp_info of a batch's rows (the kernel's fields by name,
:class:`~sockscope.kernel.tcpinfo.TcpInfo`) and makes every field's piece for all
rows in one comprehension per field, then one join per row: the Python work per
socket is a few list items, not a function of ~60 branches.  The text of one
record (:func:`sockscope.render.details.tcp_info_text`) is this with one row: one
implementation of ss's words and order.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence

    _Dict = dict[Any, str]
else:
    _Dict = dict

_NONE = 0xFFFFFFFFFFFFFFFF  # a rate the kernel does not know (~0ULL)


def _bw_text(bps: float, numeric: bool) -> str:
    if numeric:
        return f"{bps:.0f}"
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if bps >= limit:
            return f"{bps / limit:.3g}{suffix}"
    return f"{bps:g}"


class _Texts(_Dict):
    """value -> text, made on first use and kept (bounded): a table repeats few values, and
    a look-up of one already made is a dict's, in C."""

    __slots__ = ("make",)

    def __init__(self, make: Any) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: Any) -> str:
        if len(self) > 65536:
            self.clear()
        text: str = self.make(key)
        self[key] = text
        return text


_MS = _Texts(lambda usecs: f"{usecs / 1000:g}")
_BW = (_Texts(lambda bps: _bw_text(bps, False)), _Texts(lambda bps: _bw_text(bps, True)))
#: ``usecs / 1000`` as C's ``%g`` (ss's milliseconds)
ms = _MS.__getitem__


def bw(bps: float, numeric: bool) -> str:
    """ss's rate text (``sprint_bw``)."""
    return _BW[numeric][bps]


def _option_words(o: int) -> str:
    return ((" ts" if o & 1 else "") + (" sack" if o & 2 else "") + (" ecn" if o & 8 else "")
            + (" ecnseen" if o & 16 else "") + (" fastopen" if o & 32 else ""))


def _plain(col: Sequence[int], prefix: str) -> list[str] | None:
    """``prefix`` and the value, where the value is not zero (ss prints no zero counters);
    None where every value is zero (the rows then get no piece at all).  A column of few
    distinct values (mss, cwnd, window sizes) takes its texts from a cache, in C."""
    if not any(col):
        return None
    if len(col) > 16 and len(set(col)) * 4 <= len(col):
        cache = _PLAIN.get(prefix)
        if cache is None:
            cache = _PLAIN[prefix] = _Texts(lambda v, p=prefix: f"{p}{v}" if v else "")
        return list(map(cache.__getitem__, col))
    return [f"{prefix}{v}" if v else "" for v in col]


_PLAIN: dict[str, _Texts] = {}


def _dctcp(d: Any) -> str:
    if d is None:
        return ""
    en, ce, alpha, ab_ecn, ab_tot = d
    return f" dctcp:(ce_state:{ce},alpha:{alpha},ab_ecn:{ab_ecn},ab_tot:{ab_tot})" if en else " dctcp:fallback_mode"


def _bbr(b: Any, numeric: bool) -> str:
    if b is None:
        return ""
    rate, mrtt, pg, cg = b
    return (f" bbr:(bw:{bw(rate * 8.0, numeric)}bps,mrtt:{mrtt / 1000.0:g}"
            + (f",pacing_gain:{pg / 256.0:g}" if pg else "") + (f",cwnd_gain:{cg / 256.0:g}" if cg else "") + ")")


def _busy(busy: int, rwnd: int, sndbuf: int) -> str:
    if not busy:
        return ""
    text = f" busy:{busy // 1000}ms"
    if rwnd:
        text += f" rwnd_limited:{rwnd // 1000}ms({100.0 * rwnd / busy:.1f}%)"
    if sndbuf:
        text += f" sndbuf_limited:{sndbuf // 1000}ms({100.0 * sndbuf / busy:.1f}%)"
    return text


def texts(infos: Sequence[Any], congs: Sequence[str | None], bbrs: Sequence[Any], dctcps: Sequence[Any],
          states: Sequence[int], flags: bool, numeric: bool) -> list[str]:
    """The ``-i`` text of each row ("" where a row has no tcp_info): ``infos`` are
    :class:`~sockscope.kernel.tcpinfo.TcpInfo` (or None), or the rows' tcp_info column by
    column (:class:`~sockscope.kernel.tcpinfo.InfoColumns`), ``congs`` the congestion
    control names, ``bbrs``/``dctcps`` their info tuples (or None), ``states`` the
    sockets' kernel states; ``flags``: the option words (ts, sack, …: ss shows them with
    ``-o``/``-e``); ``numeric``: exact rates (``-n``)."""
    from sockscope.kernel.tcpinfo import InfoColumns

    rows: Sequence[int]
    if isinstance(infos, InfoColumns):  # every row has one, already column by column
        n = infos.n
        rows = range(n)
        cols: Any = infos
    else:
        n = len(infos)
        rows = [i for i, t in enumerate(infos) if t is not None]
        if not rows:
            return [""] * n
        if len(rows) < n:
            infos, bbrs, dctcps = [infos[i] for i in rows], [bbrs[i] for i in rows], [dctcps[i] for i in rows]
            congs, states = [congs[i] for i in rows], [states[i] for i in rows]
        cols = zip(*infos)
    (_, _, _, _, backoff, options, snd_wscale, rcv_wscale, app_limited, _, rto, ato, snd_mss, rcv_mss, unacked,
     sacked, lost, retrans, fackets, last_data_sent, _, last_data_recv, last_ack_recv, pmtu, rcv_ssthresh, rtt,
     rttvar, snd_ssthresh, snd_cwnd, advmss, reordering, rcv_rtt, rcv_space, total_retrans, pacing_rate,
     max_pacing_rate, bytes_acked, bytes_received, segs_out, segs_in, notsent_bytes, min_rtt, data_segs_in,
     data_segs_out, delivery_rate, busy_time, rwnd_limited, sndbuf_limited, delivered, delivered_ce, bytes_sent,
     bytes_retrans, dsack_dups, reord_seen, rcv_ooopack, snd_wnd, *_) = cols
    words: dict[int, str] = {}
    pieces: list[list[str]] = []

    def add(piece: list[str] | None) -> None:
        if piece is not None:
            pieces.append(piece)
    # ss's order (tcp_stats_print)
    if flags:
        add([words[o] if o in words else words.setdefault(o, _option_words(o)) for o in options])
    add([f" {c}" if c else "" for c in congs])
    add([f" wscale:{s},{r}" if o & 4 else "" for o, s, r in zip(options, snd_wscale, rcv_wscale)])
    add([" rto:" + ms(v) if v and v != 3000000 else "" for v in rto])
    add(_plain(backoff, " backoff:"))
    add([" rtt:" + ms(v) + "/" + ms(var) if v else "" for v, var in zip(rtt, rttvar)])
    add([" ato:" + ms(v) if v else "" for v in ato])
    for col, prefix in ((snd_mss, " mss:"), (pmtu, " pmtu:"), (rcv_mss, " rcvmss:"), (advmss, " advmss:"),
                        (snd_cwnd, " cwnd:")):
        add(_plain(col, prefix))
    add([f" ssthresh:{v}" if v and v < 0xFFFF else "" for v in snd_ssthresh])
    for col, prefix in ((bytes_sent, " bytes_sent:"), (bytes_retrans, " bytes_retrans:"),
                        (bytes_acked, " bytes_acked:"), (bytes_received, " bytes_received:"),
                        (segs_out, " segs_out:"), (segs_in, " segs_in:"), (data_segs_out, " data_segs_out:"),
                        (data_segs_in, " data_segs_in:")):
        add(_plain(col, prefix))
    if any(d is not None for d in dctcps):
        add(list(map(_dctcp, dctcps)))
    if any(b is not None for b in bbrs):
        add([_bbr(b, numeric) for b in bbrs])
    add([f" send {bw(c * m * 8000000.0 / r, numeric)}bps" if r > 0 and m and c else ""
         for r, m, c in zip(rtt, snd_mss, snd_cwnd)])
    for col, prefix in ((last_data_sent, " lastsnd:"), (last_data_recv, " lastrcv:"), (last_ack_recv, " lastack:")):
        add(_plain(col, prefix))
    add([(f" pacing_rate {bw(p * 8.0, numeric)}bps"
          + (f"/{bw(mp * 8.0, numeric)}bps" if mp and mp != _NONE else "")) if p and p != _NONE else ""
         for p, mp in zip(pacing_rate, max_pacing_rate)])
    add([f" delivery_rate {bw(v * 8.0, numeric)}bps" if v else "" for v in delivery_rate])
    add(_plain(delivered, " delivered:"))
    add(_plain(delivered_ce, " delivered_ce:"))
    add([" app_limited" if v else "" for v in app_limited])
    if any(busy_time):
        add(list(map(_busy, busy_time, rwnd_limited, sndbuf_limited)))
    add(_plain(unacked, " unacked:"))
    add([f" retrans:{r}/{t}" if r or t else "" for r, t in zip(retrans, total_retrans)])
    add(_plain(lost, " lost:"))
    add([f" sacked:{v}" if v and st != 10 else "" for v, st in zip(sacked, states)])
    add(_plain(dsack_dups, " dsack_dups:"))
    add(_plain(fackets, " fackets:"))
    add([f" reordering:{v}" if v != 3 else "" for v in reordering])
    add(_plain(reord_seen, " reord_seen:"))
    add([" rcv_rtt:" + ms(v) if v else "" for v in rcv_rtt])
    add(_plain(rcv_space, " rcv_space:"))
    add(_plain(rcv_ssthresh, " rcv_ssthresh:"))
    add(_plain(notsent_bytes, " notsent:"))
    add([" minrtt:" + ms(v) if v and v != 0xFFFFFFFF else "" for v in min_rtt])
    add(_plain(rcv_ooopack, " rcv_ooopack:"))
    add(_plain(snd_wnd, " snd_wnd:"))
    out = list(map("".join, zip(*pieces))) if pieces else [""] * len(rows)
    if len(rows) == n:
        return out
    full = [""] * n
    for i, text in zip(rows, out):
        full[i] = text
    return full
