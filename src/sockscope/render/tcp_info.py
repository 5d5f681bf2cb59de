"""ss's ``tcp_stats_print`` (the ``-i`` text) for many sockets at once, column by column.

:func:`texts` takes the tcp_info of a batch's rows (the kernel's fields by name,
:class:`~sockscope.kernel.tcpinfo.TcpInfo`, best column by column:
:class:`~sockscope.kernel.tcpinfo.InfoColumns`).  ss's text is a row of *pieces*
(:data:`_PIECES`: one function of a few fields each, in ss's order).  Most fields
hold one value in every row of a batch (mss, window scales, counters still zero),
so a batch is first described by its *shape*: each column's one value, or that it
varies.  A shape is compiled once into a plan (:func:`_compile`): the pieces of
the fields alike in every row run together into one text, and each other piece
is a per-row look-up in a cache of its texts (a dict's, in C).  Then one join per
row.  The text of one record (:func:`sockscope.render.details.tcp_info_text`) is
this with one row: one implementation of ss's words and order.
"""

from __future__ import annotations

from itertools import repeat

from sockscope.filter.states import LISTEN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

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
    a look-up of one already made is a dict's, in C.  ``misses`` counts the texts made."""

    __slots__ = ("make", "misses", "looked", "counter", "many")

    def __init__(self, make: Any, counter: bool = False) -> None:
        super().__init__()
        self.make = make
        self.misses = 0
        self.looked = 0  # values looked up (counted for a counter's)
        self.counter = counter  # a counter's texts: its numbers may be made by str() instead
        self.many = False  # a counter's numbers mostly new (missed too often): made by str()

    def __missing__(self, key: Any) -> str:
        global _MADE
        if len(self) > 65536:
            self.clear()
        _MADE += 1
        if _MADE > _BUDGET:  # every cache's texts together bounded too (~100 MiB)
            _MADE = 0
            for texts in (*_CACHES.values(), _MS, *_BW):
                if texts is not self:
                    texts.clear()
        self.misses += 1
        text: str = self.make(key)
        self[key] = text
        return text


_MADE = 0  # texts made since the caches were last cleared
_BUDGET = 1 << 20


_MS = _Texts(lambda usecs: f"{usecs / 1000:g}")
_BW = (_Texts(lambda bps: _bw_text(bps, False)), _Texts(lambda bps: _bw_text(bps, True)))
#: ``usecs / 1000`` as C's ``%g`` (ss's milliseconds)
ms = _MS.__getitem__


def bw(bps: float, numeric: bool) -> str:
    """ss's rate text (``sprint_bw``)."""
    return _BW[numeric][bps]


# The pieces: each takes the fixed arguments its entry in _PIECES gives (the -n flag, a prefix), then
# its fields' values, and gives its text ("" for none).
def _option_words(o: int) -> str:
    return ((" ts" if o & 1 else "") + (" sack" if o & 2 else "") + (" ecn" if o & 8 else "")
            + (" ecnseen" if o & 16 else "") + (" fastopen" if o & 32 else ""))


def _cong(c: str | None) -> str:
    return f" {c}" if c else ""


def _wscale(o: int, snd: int, rcv: int) -> str:
    return f" wscale:{snd},{rcv}" if o & 4 else ""


def _rto(v: int) -> str:
    return " rto:" + ms(v) if v and v != 3000000 else ""


def _rtt(v: int, var: int) -> str:
    return " rtt:" + ms(v) + "/" + ms(var) if v else ""


def _ms_after(prefix: str, v: int) -> str:
    return prefix + ms(v) if v else ""


def _slash_ms(v: int) -> str:
    return "/" + ms(v)


def _counter(prefix: str, v: int) -> str:
    return f"{prefix}{v}" if v else ""


def _ssthresh(v: int) -> str:
    return f" ssthresh:{v}" if v and v < 0xFFFF else ""


def _dctcp(d: Any) -> str:
    if d is None:
        return ""
    en, ce, alpha, ab_ecn, ab_tot = d
    return f" dctcp:(ce_state:{ce},alpha:{alpha},ab_ecn:{ab_ecn},ab_tot:{ab_tot})" if en else " dctcp:fallback_mode"


def _bbr(numeric: bool, b: Any) -> str:
    if b is None:
        return ""
    rate, mrtt, pg, cg = b
    return (f" bbr:(bw:{bw(rate * 8.0, numeric)}bps,mrtt:{mrtt / 1000.0:g}"
            + (f",pacing_gain:{pg / 256.0:g}" if pg else "") + (f",cwnd_gain:{cg / 256.0:g}" if cg else "") + ")")


def _bbr_bw(numeric: bool, rate: int) -> str:  # the bbr piece column by column (every row has bbr_info)
    return f" bbr:(bw:{bw(rate * 8.0, numeric)}bps"


def _bbr_mrtt(mrtt: int) -> str:
    return ",mrtt:" + ms(mrtt)


def _gain(name: str, v: int) -> str:
    return f",{name}:{v / 256.0:g}" if v else ""


def _send(numeric: bool, m: int, c: int, r: int) -> str:
    return f" send {bw(c * m * 8000000.0 / r, numeric)}bps" if r > 0 and m and c else ""


def _pacing(numeric: bool, mp: int, p: int) -> str:
    if not p or p == _NONE:
        return ""
    return f" pacing_rate {bw(p * 8.0, numeric)}bps" + (f"/{bw(mp * 8.0, numeric)}bps" if mp and mp != _NONE else "")


def _delivery(numeric: bool, v: int) -> str:
    return f" delivery_rate {bw(v * 8.0, numeric)}bps" if v else ""


def _app_limited(v: int) -> str:
    return " app_limited" if v else ""


def _busy(busy: int, rwnd: int, sndbuf: int) -> str:
    if not busy:
        return ""
    text = f" busy:{busy // 1000}ms"
    if rwnd:
        text += f" rwnd_limited:{rwnd // 1000}ms({100.0 * rwnd / busy:.1f}%)"
    if sndbuf:
        text += f" sndbuf_limited:{sndbuf // 1000}ms({100.0 * sndbuf / busy:.1f}%)"
    return text


def _retrans(r: int, t: int) -> str:
    return f" retrans:{r}/{t}" if r or t else ""


def _sacked(v: int, state: int) -> str:
    return f" sacked:{v}" if v and state != LISTEN else ""


def _reordering(v: int) -> str:
    return f" reordering:{v}" if v != 3 else ""


def _minrtt(v: int) -> str:
    return " minrtt:" + ms(v) if v and v != 0xFFFFFFFF else ""


def _counters(*names: str) -> list[tuple[Any, tuple[str, ...], tuple[Any, ...]]]:
    return [(_counter, (name,), (f" {word}:",)) for name, word in (n.split("=") for n in names)]


_N = object()  # a fixed argument: -n
#: ss's pieces in its order: (piece, its fields, fixed arguments); fields are tcp_info's (TcpInfo's
#: names) and "cong", "state", "dctcp", "bbr" (a row's bbr_info or None), "bbr_rate", "bbr_min_rtt",
#: "bbr_pacing_gain", "bbr_cwnd_gain" (where every row has one); the option words only with flags
_PIECES: list[tuple[Any, tuple[str, ...], tuple[Any, ...]]] = [
    (_option_words, ("options",), ()),
    (_cong, ("cong",), ()),
    (_wscale, ("options", "snd_wscale", "rcv_wscale"), ()),
    (_rto, ("rto",), ()),
    *_counters("backoff=backoff"),
    (_rtt, ("rtt", "rttvar"), ()),
    (_ms_after, ("ato",), (" ato:",)),
    *_counters("snd_mss=mss", "pmtu=pmtu", "rcv_mss=rcvmss", "advmss=advmss", "snd_cwnd=cwnd"),
    (_ssthresh, ("snd_ssthresh",), ()),
    *_counters("bytes_sent=bytes_sent", "bytes_retrans=bytes_retrans", "bytes_acked=bytes_acked",
               "bytes_received=bytes_received", "segs_out=segs_out", "segs_in=segs_in",
               "data_segs_out=data_segs_out", "data_segs_in=data_segs_in"),
    (_dctcp, ("dctcp",), ()),
    (_bbr, ("bbr",), (_N,)),
    (_bbr_bw, ("bbr_rate",), (_N,)),
    (_bbr_mrtt, ("bbr_min_rtt",), ()),
    (_gain, ("bbr_pacing_gain",), ("pacing_gain",)),
    (_gain, ("bbr_cwnd_gain",), ("cwnd_gain",)),
    (")", ("bbr_cwnd_gain",), ()),
    (_send, ("snd_mss", "snd_cwnd", "rtt"), (_N,)),
    *_counters("last_data_sent=lastsnd", "last_data_recv=lastrcv", "last_ack_recv=lastack"),
    (_pacing, ("max_pacing_rate", "pacing_rate"), (_N,)),
    (_delivery, ("delivery_rate",), (_N,)),
    *_counters("delivered=delivered", "delivered_ce=delivered_ce"),
    (_app_limited, ("delivery_rate_app_limited",), ()),
    (_busy, ("busy_time", "rwnd_limited", "sndbuf_limited"), ()),
    *_counters("unacked=unacked"),
    (_retrans, ("retrans", "total_retrans"), ()),
    *_counters("lost=lost"),
    (_sacked, ("sacked", "state"), ()),
    *_counters("dsack_dups=dsack_dups", "fackets=fackets"),
    (_reordering, ("reordering",), ()),
    *_counters("reord_seen=reord_seen"),
    (_ms_after, ("rcv_rtt",), (" rcv_rtt:",)),
    *_counters("rcv_space=rcv_space", "rcv_ssthresh=rcv_ssthresh", "notsent_bytes=notsent"),
    (_minrtt, ("min_rtt",), ()),
    *_counters("rcv_ooopack=rcv_ooopack", "snd_wnd=snd_wnd"),
]
_BBR_COLS = ("bbr_rate", "bbr_min_rtt", "bbr_pacing_gain", "bbr_cwnd_gain")
_EXTRA = ("cong", "state", "dctcp", "bbr", *_BBR_COLS)
#: the tcp_info fields the pieces read, then the other columns: every column a batch is described by
_INFO_NAMES = tuple(dict.fromkeys(f for _p, fields, _x in _PIECES for f in fields if f not in _EXTRA))
_COLS = (*_INFO_NAMES, *_EXTRA)
_INDEX = {name: i for i, name in enumerate(_COLS)}
_VARIES = object()  # a column's values differ (and, where _ZERO_TOLD, none is 0: else _VARIES0)
_VARIES0 = object()
#: per column: whether its shape tells a 0 among its values (_VARIES0): the first field of a counter
#: (a counter of numbers all new, none 0, is its prefix and the numbers) and rtt's (made apart)
_ZERO_TOLD = tuple(map({fields[0] for make, fields, _x in _PIECES if make is _counter or make is _rtt}.__contains__,
                       _COLS))
#: (option words, -n) -> _PIECES with -n put in, their columns' indices, and whether a piece is left
#: out where its first column is None
_PLACED: dict[tuple[bool, bool], list[tuple[Any, tuple[int, ...], tuple[Any, ...], bool]]] = {
    (flags, numeric): [(make, tuple(_INDEX[f] for f in fields), tuple(numeric if x is _N else x for x in fixed),
                        fields[0] in ("dctcp", "bbr", *_BBR_COLS))
                       for make, fields, fixed in _PIECES if flags or make is not _option_words]
    for flags in (False, True) for numeric in (False, True)}

_AT_FIELD: list[int] | None = None  # where _INFO_NAMES are in a TcpInfo
#: (piece, fixed arguments, the other fields' values, the varying field's position) -> value -> text
_CACHES: dict[tuple[Any, ...], _Texts] = {}
#: a batch's shape (flags, numeric, each column's one value or _VARIES) -> its plan
_PLANS: dict[tuple[Any, ...], list[Any]] = {}


def _cache(make: Callable[..., str], fixed: tuple[Any, ...], values: list[Any], at: tuple[int, ...],
           lead: str = "") -> _Texts:
    """The texts of ``lead + make(*fixed, *values)`` where the values at positions ``at`` vary: keyed
    by the one varying value, or by the tuple of them."""
    key = (make, fixed, tuple(values), at, lead)
    got = _CACHES.get(key)
    if got is None:
        if len(_CACHES) > 4096:
            _CACHES.clear()
        if len(at) == 1:
            pre, post = values[: at[0]], values[at[0] + 1 :]
            got = _Texts(lambda v: lead + make(*fixed, *pre, v, *post), make is _counter)
        else:
            def whole(vs: tuple[Any, ...]) -> str:
                args = list(values)
                for k, v in zip(at, vs):
                    args[k] = v
                return lead + make(*fixed, *args)
            got = _Texts(whole)
        _CACHES[key] = got
    return got


def _compile(shape: Sequence[Any], flags: bool, numeric: bool) -> list[Any]:
    """The plan of a batch's shape: texts (alike in every row, run together) and per-row parts,
    (cache, column index) or (cache, column indices), each text led by the text alike in every row
    before it, or (None, column index): the column's numbers by ``str`` (after a text)."""
    plan: list[Any] = []
    text = ""

    def part(make: Callable[..., str], fixed: tuple[Any, ...], vals: list[Any], at: list[int],
             varying: list[int]) -> None:
        nonlocal text
        plan.append((_cache(make, fixed, vals, tuple(varying), text),
                     at[varying[0]] if len(varying) == 1 else tuple(at[k] for k in varying)))
        text = ""

    for make, at_, fixed, optional in _PLACED[(flags, numeric)]:
        if len(at_) == 1:
            v = shape[at_[0]]
            if v is None and optional:
                continue  # no row has one
            if type(make) is str:
                text += make
                continue
            if v is not _VARIES and v is not _VARIES0:  # the same in every row (one row: always)
                text += make(*fixed, v)
                continue
            vals = [v]
        else:
            vals = [shape[i] for i in at_]
            if _VARIES not in vals and _VARIES0 not in vals:
                text += make(*fixed, *vals)
                continue
        at = list(at_)
        varying = [k for k, v in enumerate(vals) if v is _VARIES or v is _VARIES0]
        if make is _counter and vals[0] is _VARIES and _cache(make, fixed, vals, (0,), text).many:
            text += str(fixed[0])  # every row has it: the prefix, then the numbers
            plan.append(text)
            plan.append((None, at[0]))
            text = ""
        elif make is _rtt and vals[0] is _VARIES:  # every row has it: rtt and rttvar apart
            part(_ms_after, (" rtt:",), vals[:1], at[:1], [0])
            if vals[1] is _VARIES or vals[1] is _VARIES0:
                part(_slash_ms, (), vals[1:], at[1:], [0])
            else:
                text += "/" + ms(vals[1])
        else:
            part(make, fixed, vals, at, varying)
    if text:
        plan.append(text)
    return plan


def texts(infos: Sequence[Any], congs: Sequence[str | None], bbrs: Sequence[Any], dctcps: Sequence[Any],
          states: Sequence[int], flags: bool, numeric: bool, lead: str = "") -> list[str]:
    """The ``-i`` text of each row ("" where a row has no tcp_info): ``infos`` are
    :class:`~sockscope.kernel.tcpinfo.TcpInfo` (or None), or the rows' tcp_info column by
    column (:class:`~sockscope.kernel.tcpinfo.InfoColumns`: every row has one;
    :class:`~sockscope.kernel.tcpinfo.SparseInfo`: some have), ``congs`` the congestion
    control names, ``bbrs``/``dctcps`` their info tuples (or None), ``states`` the
    sockets' kernel states; ``flags``: the option words (ts, sack, …: ss shows them with
    ``-o``/``-e``); ``numeric``: exact rates (``-n``).  ``lead`` starts every row's text
    (also a row without tcp_info's), in the same join: the table's line break and tab."""
    from sockscope.kernel.tcpinfo import InfoColumns, SparseInfo

    picked = False  # the other columns given for the rows with tcp_info alone
    if isinstance(infos, InfoColumns):  # every row has one, already column by column
        n = infos.n
        rows: Sequence[int] = range(n)
        info = infos
    elif isinstance(infos, SparseInfo):  # some rows have one, those column by column
        n, rows, info = infos.n, infos.at, infos.cols  # (rows in any order: the texts are put back in place)
        if not rows:
            return [lead] * n
        if infos.others is not None:  # their other columns as the decoder read them, in the rows' order
            congs, bbrs, dctcps = infos.others
            picked = True
    else:
        n = len(infos)
        rows = [i for i, t in enumerate(infos) if t is not None]
        if not rows:
            return [lead] * n
        if len(rows) == 1:  # a record's: its values are the shape, the plan its text
            i = rows[0]
            global _AT_FIELD
            if _AT_FIELD is None:
                from sockscope.kernel.tcpinfo import TcpInfo

                _AT_FIELD = [TcpInfo._fields.index(name) for name in _INFO_NAMES]
            plan = _compile([*map(infos[i].__getitem__, _AT_FIELD), congs[i], states[i], dctcps[i], bbrs[i],
                             None, None, None, None], flags, numeric)
            full = [lead] * n
            full[i] = lead + "".join(plan)
            return full
        if len(rows) == n:
            rows = range(n)
        info = InfoColumns.of(infos if len(rows) == n else [infos[i] for i in rows])
    if type(rows) is not range:  # the other columns of the rows with tcp_info
        states = [states[i] for i in rows]
        if not picked:
            bbrs, dctcps, congs = [bbrs[i] for i in rows], [dctcps[i] for i in rows], [congs[i] for i in rows]
    m = len(rows)
    if not m:
        return []
    # each column's one value, or its values where they vary
    cols: list[Any] = info.shape(_INFO_NAMES)
    cols += [c[0] if c.count(c[0]) == m else list(c) for c in (congs, states, dctcps)]
    bbr_shape = getattr(bbrs, "shape", None)
    if bbr_shape is not None:  # every row has bbr_info, already column by column (FieldRows)
        cols += (None, *bbr_shape())
    elif None in bbrs:  # some rows without: the piece row by row
        cols += (bbrs[0] if bbrs.count(bbrs[0]) == m else list(bbrs), *[None] * len(_BBR_COLS))
    else:
        cols.append(None)
        cols += [c[0] if c.count(c[0]) == m else list(c) for c in zip(*bbrs)]
    # the batch's shape: each column's one value, or that its values vary
    shape = tuple([c if type(c) is not list else _VARIES0 if told and 0 in c else _VARIES
                   for c, told in zip(cols, _ZERO_TOLD)])
    if m == 1:
        plan = _compile(shape, flags, numeric)
    else:
        key = (flags, numeric, *shape)
        plan = _PLANS.get(key)  # type: ignore[assignment]
        if plan is None:
            if len(_PLANS) > 256:
                _PLANS.clear()
            plan = _PLANS[key] = _compile(shape, flags, numeric)
    parts: list[Any] = [repeat(lead)] if lead else []
    for p in plan:
        if type(p) is str:
            parts.append(repeat(p))
            continue
        cache, at = p
        if cache is None:
            parts.append(list(map(str, cols[at])))
            continue
        if type(at) is tuple:
            parts.append(list(map(cache.__getitem__, zip(*[cols[i] for i in at]))))
        else:
            parts.append(list(map(cache.__getitem__, cols[at])))
            if cache.counter:
                cache.looked += m
                if cache.looked >= 4096 and cache.misses * 2 > cache.looked:
                    cache.many = True  # a counter's numbers mostly new: by str() from the next batch on
                    _PLANS.clear()
    if len(plan) <= 1 and (not plan or type(plan[0]) is str):  # every row's text alike
        out = [lead + (plan[0] if plan else "")] * m
    elif len(parts) == 1:
        out = parts[0]
    else:
        out = list(map("".join, zip(*parts)))
    if type(rows) is range:
        return out
    full = [lead] * n
    for i, text in zip(rows, out):
        full[i] = text
    return full


# --------------------------------------------------------------------------
# What ss 6.1 prints after the tcp_info text (tcp_show_info), and an MPTCP socket's -i text


def extras_text(extra: Any) -> str:
    """A TCP socket's MD5 keys (`` md5keys:ADDR/LEN=KEY,…``) and upper layer protocol
    (`` tcp-ulp-NAME``, then kTLS's version, cipher and configurations, or an MPTCP subflow's
    flags, tokens and sequence numbers), from :func:`~sockscope.kernel.inet_attrs.extras_of`'s
    (md5keys, ulp); "" for None.  (ss 6.1 writes a key's bytes straight to its output, ahead of
    the table it buffers: here they stay in the cell, escaped as ss escapes them.)"""
    if extra is None:
        return ""
    keys, ulp = extra
    out = []
    if keys is not None:
        from sockscope._addr import ntop

        out.append(" md5keys:" + ",".join(f"{ntop(fam, addr)}/{plen}={_escape_key(key)}"
                                          for fam, plen, addr, key in keys))
    if ulp is not None:
        name, tls, sub = ulp
        if name is not None:
            out.append(f" tcp-ulp-{name}")
        if tls is not None:
            out.append(_tls_text(tls))
        if sub is not None:
            out.append(_subflow_text(sub))
    return "".join(out)


def _escape_key(key: bytes) -> str:
    """ss's ``print_escape_buf(key, len, " ,")``: printable bytes as they are, a backslash, a
    space, a comma and any other byte as a backslash and three octal digits."""
    return "".join(chr(c) if 0x20 < c < 0x7F and c not in b"\\," else f"\\{c:03o}" for c in key)


_TLS_VERSIONS = {0x0303: "1.2", 0x0304: "1.3"}
_TLS_CIPHERS = {51: "aes-gcm-128", 52: "aes-gcm-256"}
_TLS_CONFS = {1: "none", 2: "sw", 3: "hw", 4: "hw-record"}


def _tls_text(tls: tuple[Any, ...]) -> str:
    version, cipher, txconf, rxconf, zc_ro_tx, _rx_no_pad = tls  # (ss 6.1 does not print rx_no_pad)
    out = []
    if version is not None:
        out.append(f" version: {_TLS_VERSIONS.get(version, f'unknown({version})')}")
    if cipher in _TLS_CIPHERS:
        out.append(f" cipher: {_TLS_CIPHERS[cipher]}")
    for name, conf in (("rxconf", rxconf), ("txconf", txconf)):
        if conf is not None:
            out.append(f" {name}: {_TLS_CONFS.get(conf, f'unknown({conf})')}")
    if zc_ro_tx:
        out.append(" zc_ro_tx")
    return "".join(out)


def _subflow_text(sub: tuple[Any, ...]) -> str:
    """An MPTCP subflow's attributes (indexed by ``MPTCP_SUBFLOW_ATTR_*``) as ss 6.1 prints them."""
    _, tok_rem, tok_loc, _relwrite, seq, sfseq, ssnoff, maplen, flags, id_rem, id_loc = sub
    out = []
    if flags:
        out.append(" flags:" + "".join(c for bit, c in enumerate("MmJjBbecv") if flags & (1 << bit)))
    if None not in (tok_rem, tok_loc, id_rem, id_loc):
        out.append(f" token:{tok_rem:04x}(id:{id_rem})/{tok_loc:04x}(id:{id_loc})")
    for word, value in (("seq", seq), ("sfseq", sfseq), ("ssnoff", ssnoff), ("maplen", maplen)):
        if value is not None:
            out.append(f" {word}:{value:x}")
    return "".join(out)


def mptcp_text(info: tuple[int, ...] | None) -> str:
    """An MPTCP socket's -i text (ss 6.1's ``mptcp_stats_print``) from its ``struct mptcp_info``
    (:func:`~sockscope.kernel.inet_attrs.mptcp_info`): each count and sequence number that is not 0."""
    if info is None:
        return ""
    (subflows, signal, accepted, subflows_max, signal_max, accepted_max, flags, token, write_seq, snd_una,
     rcv_nxt) = info[:11]
    out = [f" {name}:{v}" for name, v in (("subflows", subflows), ("add_addr_signal", signal),
                                          ("add_addr_accepted", accepted), ("subflows_max", subflows_max),
                                          ("add_addr_signal_max", signal_max),
                                          ("add_addr_accepted_max", accepted_max)) if v]
    if flags & 1:
        out.append(" fallback")
    if flags & 2:
        out.append(" remote_key")
    out += [f" {name}:{v:x}" for name, v in (("token", token), ("write_seq", write_seq), ("snd_una", snd_una),
                                             ("rcv_nxt", rcv_nxt)) if v]
    return "".join(out)
