"""inet_diag attributes, sans IO: what follows each ``inet_diag_msg``.

:func:`details_of` decodes every attribute of one message (the records'
details); :func:`info_columns` gives ``ss -i``'s columns (tcp_info,
congestion control, bbr_info, dctcp_info) of a whole batch, by strided
reads where the messages share one attribute layout;
:func:`info_at` says where tcp_info sits when they do (for
:meth:`Batch.info_fields <sockscope.kernel.inet.Batch.info_fields>`).
"""

from __future__ import annotations

import _struct  # struct.py only re-exports this C module: one module fewer to import
import sys

from sockscope.errors import DecodeError
from sockscope.kernel import netlink as nl
from sockscope.kernel.layout import (  # (the attributes' numbers are described with inet_diag_msg)
    INET_DIAG_BBRINFO, INET_DIAG_CGROUP_ID, INET_DIAG_CLASS_ID, INET_DIAG_CONG, INET_DIAG_DCTCPINFO, INET_DIAG_INFO,
    INET_DIAG_MARK, INET_DIAG_MD5SIG, INET_DIAG_MSG, INET_DIAG_PROTOCOL, INET_DIAG_SHUTDOWN,
    INET_DIAG_SKMEMINFO, INET_DIAG_SKV6ONLY, INET_DIAG_SOCKOPT, INET_DIAG_TCLASS, INET_DIAG_TOS, INET_DIAG_ULP_INFO,
    MPTCP_INFO, MPTCP_SUBFLOW_ATTRS, TCP_BBR_INFO, TCP_DCTCP_INFO, TCP_DIAG_MD5SIG)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable

    from sockscope.kernel.inet import Batch

_MSG = INET_DIAG_MSG.struct
MSG_LEN = INET_DIAG_MSG.size


_BBR = TCP_BBR_INFO.struct
_DCTCP = TCP_DCTCP_INFO.struct


def bbr_of(a: memoryview) -> tuple[int, int, int, int]:
    """INET_DIAG_BBRINFO: (bandwidth, min_rtt, pacing_gain, cwnd_gain); a short payload read as zeros."""
    return _bbr_info(*_BBR.unpack_from(bytes(a[: _BBR.size]).ljust(_BBR.size, b"\0")))


def _bbr_info(bw_lo: int, bw_hi: int, min_rtt: int, pacing_gain: int, cwnd_gain: int) -> tuple[int, int, int, int]:
    """``struct tcp_bbr_info``'s five u32 -> (bw in bytes/s, min_rtt µs, pacing_gain, cwnd_gain)."""
    return ((bw_hi << 32) | bw_lo, min_rtt, pacing_gain, cwnd_gain)


def dctcp_of(a: memoryview) -> tuple[int, int, int, int, int]:
    """INET_DIAG_DCTCPINFO: (enabled, ce_state, alpha, ab_ecn, ab_tot); a short payload read as zeros."""
    en, ce, alpha, ab_ecn, ab_tot = _DCTCP.unpack_from(bytes(a[: _DCTCP.size]).ljust(_DCTCP.size, b"\0"))
    return (en, ce, alpha, ab_ecn, ab_tot)


CONG_NAMES: dict[bytes, str] = {}


def cong_of(a: memoryview) -> str:
    """INET_DIAG_CONG: the congestion control's name (a C string)."""
    return bytes(a).split(b"\0", 1)[0].decode("ascii", "replace")


_U32 = _struct.Struct("=I")
_U64 = _struct.Struct("=Q")

_MPTCP_INFO = MPTCP_INFO.struct
_MD5SIG = TCP_DIAG_MD5SIG.struct
_ULP_NAME, _ULP_TLS, _ULP_MPTCP = 1, 2, 3  # enum inet_ulp_info


def mptcp_info(a: memoryview) -> tuple[int, ...]:
    """An MPTCP socket's INFO attribute (:data:`~sockscope.kernel.layout.MPTCP_INFO`) as its 14 fields;
    a shorter one (an older kernel's) is read as if zero-padded, as ss does."""
    return _MPTCP_INFO.unpack(bytes(a[: _MPTCP_INFO.size]).ljust(_MPTCP_INFO.size, b"\0"))


def mptcp_infos(b: Batch) -> list[tuple[int, ...] | None]:
    """Each row's ``struct mptcp_info`` (an MPTCP batch's INFO attributes), message by message."""
    out: list[tuple[int, ...] | None] = []
    for i in range(b.n):
        a = nl.parse_attrs(b.attrs(i)).get(INET_DIAG_INFO)
        out.append(None if a is None else mptcp_info(a))
    return out


def extras_of(get: Callable[[int], memoryview | None]) -> tuple[Any, Any] | None:
    """(md5keys, ulp) from a message's attributes, None when it has neither: ``md5keys`` a tuple
    of (family, prefix length, address (16 bytes), key) of INET_DIAG_MD5SIG; ``ulp`` (name, tls,
    mptcp) of INET_DIAG_ULP_INFO: ``tls`` (version, cipher, txconf, rxconf, zc_ro_tx, rx_no_pad),
    ``mptcp`` the subflow's attributes by number (``MPTCP_SUBFLOW_ATTR_*``: tokens, ids,
    sequence numbers, flags), each None where absent."""
    md5, ulp = get(INET_DIAG_MD5SIG), get(INET_DIAG_ULP_INFO)
    if md5 is None and ulp is None:
        return None
    keys = None
    if md5 is not None:
        raw = bytes(md5)
        size = _MD5SIG.size
        keys = tuple((fam, plen, addr, key[:klen]) for fam, plen, klen, addr, key in
                     (_MD5SIG.unpack_from(raw, off) for off in range(0, len(raw) - size + 1, size)))
    info = None
    if ulp is not None:
        nested = nl.parse_attrs(ulp)
        name = nested.get(_ULP_NAME)
        tls = nested.get(_ULP_TLS)
        sub = nested.get(_ULP_MPTCP)
        info = (cong_of(name) if name is not None else None,
                _tls(nl.parse_attrs(tls)) if tls is not None else None,
                _subflow(nl.parse_attrs(sub)) if sub is not None else None)
    return keys, info


def _tls(attrs: dict[int, memoryview]) -> tuple[Any, ...]:
    """The fields of :data:`~sockscope.kernel.layout.TLS_INFO_FIELDS`: the four u16 (None where
    absent), then whether the two flags are there."""
    def u16(t: int) -> int | None:
        a = attrs.get(t)
        return int.from_bytes(a[:2], sys.byteorder) if a is not None and len(a) >= 2 else None

    return (u16(1), u16(2), u16(3), u16(4), 5 in attrs, 6 in attrs)


def _subflow(attrs: dict[int, memoryview]) -> tuple[int | None, ...]:
    """An MPTCP subflow's attributes (:data:`~sockscope.kernel.layout.MPTCP_SUBFLOW_ATTRS`), indexed
    by their numbers (0 unused), None where absent or short."""
    out: list[int | None] = [None] * (max(MPTCP_SUBFLOW_ATTRS) + 1)
    for t, (_name, size) in MPTCP_SUBFLOW_ATTRS.items():
        a = attrs.get(t)
        if a is not None and len(a) >= size:
            out[t] = int.from_bytes(a[:size], sys.byteorder)
    return tuple(out)


_tcpinfo: Any = None


def _tcpinfo_decode() -> Any:
    """tcpinfo.decode, imported on first use (its 63-field dataclass costs start-up time)."""
    global _tcpinfo
    if _tcpinfo is None:
        from sockscope.kernel import tcpinfo

        _tcpinfo = tcpinfo.decode
    return _tcpinfo


def details_of(raw: memoryview, fam: int, netid: str) -> dict[str, Any]:
    """The detail fields of one message's attributes (the ``details=True`` path)."""
    get = nl.parse_attrs(raw).get
    d: dict[str, Any] = {}
    v6only = nl.u8_flag(get(INET_DIAG_SKV6ONLY))
    if v6only is not None:
        d["v6only"] = v6only
    a = get(INET_DIAG_SHUTDOWN)
    if a is not None and len(a):
        d["shutdown"] = a[0]
    a = get(INET_DIAG_MARK)
    if a is not None and len(a) >= 4:
        d["mark"] = _U32.unpack_from(a, 0)[0]
    a = get(INET_DIAG_CGROUP_ID)
    if a is not None and len(a) >= 8:
        d["cgroup_id"] = _U64.unpack_from(a, 0)[0]
    a = get(INET_DIAG_CONG)
    if a is not None:
        d["cong"] = cong_of(a)
    a = get(INET_DIAG_SKMEMINFO)
    if a is not None:
        from sockscope.kernel.others import decode_skmem

        d["skmem"] = decode_skmem(a)
    a = get(INET_DIAG_INFO)
    if a is not None and netid == "tcp":
        d["tcp_info"] = _tcpinfo_decode()(a)
    elif a is not None and netid == "mptcp":
        d["mptcp_info"] = mptcp_info(a)
    extras = extras_of(get)
    if extras is not None:
        d["md5keys"], d["ulp"] = extras
    for key, atype in (("tos", INET_DIAG_TOS), ("tclass", INET_DIAG_TCLASS)):
        a = get(atype)
        if a is not None and len(a):
            d[key] = a[0]
    a = get(INET_DIAG_CLASS_ID)
    if a is not None and len(a) >= 4:
        d["class_id"] = _U32.unpack_from(a, 0)[0]
    a = get(INET_DIAG_SOCKOPT)
    if a is not None and len(a) >= 2:
        d["sockopt"] = a[0] | (a[1] << 8)
    a = get(INET_DIAG_BBRINFO)
    if a is not None and len(a) >= 12:
        d["bbr_info"] = bbr_of(a)
    a = get(INET_DIAG_DCTCPINFO)
    if a is not None and len(a) >= 16:
        d["dctcp_info"] = dctcp_of(a)
    a = get(INET_DIAG_PROTOCOL)
    if a is not None and len(a):
        d["protocol"] = a[0]
    return d


def info_columns(b: Batch, mv: memoryview, length: int) -> tuple[Any, list[Any], list[Any], list[Any], Any]:
    """``-i``'s columns: tcp_info, congestion control, bbr_info, dctcp_info, and the rare
    attributes ss prints after them (:func:`extras_of`: MD5 keys, the upper layer protocol; None
    where no row has them).  A datagram of one message length and one attribute layout is read
    column by column (:func:`_uniform_info`); a framed one length by length (:func:`_grouped_info`),
    its tcp_info a :class:`~sockscope.kernel.tcpinfo.SparseInfo`; what is left message by message."""
    got = _uniform_info(mv, length, b.n) if length else None
    if got is not None:
        return got
    n = b.n
    cols: tuple[list[Any], ...] = ([None] * n, [None] * n, [None] * n, [None] * n, [None] * n)
    if length or n < 2:
        _walk_info(b, range(n), cols)
        return _tails_or_none(cols)
    from sockscope.kernel.tcpinfo import InfoColumns, SparseInfo

    rest, parts = _grouped_info(b, cols)
    _walk_info(b, rest, cols)
    walked = [i for i in rest if cols[0][i] is not None]
    if walked:
        parts.append((walked, InfoColumns.of([cols[0][i] for i in walked]),
                      [[col[i] for i in walked] for col in cols[1:4]]))
    if not parts:
        return _tails_or_none(cols)
    # the other columns of the rows with tcp_info, in their order (one length of full sockets among
    # mini-sockets, the usual case: as _uniform_info read them)
    if len(parts) == 1:
        others = parts[0][2]
    else:
        from itertools import chain

        others = [list(chain.from_iterable(p[2][k] for p in parts)) for k in range(3)]
    return _tails_or_none((SparseInfo(n, [i for rows, _, _ in parts for i in rows],
                                      InfoColumns.joined([c for _, c, _ in parts]), (*others,)), *cols[1:]))


def _tails_or_none(cols: tuple[Any, ...]) -> tuple[Any, list[Any], list[Any], list[Any], Any]:
    """``cols`` with the extras' column None where no row has any (the common case)."""
    tails = cols[4]
    return cols[0], cols[1], cols[2], cols[3], None if tails.count(None) == len(tails) else tails


def _grouped_info(b: Batch, cols: tuple[list[Any], ...]) -> tuple[list[int], list[tuple[list[int], Any, Any]]]:
    """Fill ``cols[1:]`` for the rows of a framed batch, messages of one length at a time: those
    of each length copied side by side (in C, once: ``Batch.gathered``) and read as a uniform datagram by
    :func:`_uniform_info` (TIME-WAIT and SYN-RECV mini-sockets among full ones: usually two
    lengths, three or four with IPv6).  Returns the rows left (a length of one message, or an
    attribute layout that varies), and (rows, their tcp_info column by column, their congestion
    control, bbr_info and dctcp_info columns) of each length that has one."""
    from sockscope.kernel.tcpinfo import InfoColumns

    rest: list[int] = []
    parts: list[tuple[list[int], Any, Any]] = []
    for length, rows in b.lengths().items():
        k = len(rows)
        got = None
        if k > 1 and not length & 3:
            got = _uniform_info(b.gathered(length), length, k)
        if got is None:
            rest += rows
            continue
        infos = got[0]
        if type(infos) is not list:
            parts.append((rows, infos, got[1:4]))
        elif infos.count(None) != k:  # (decoded socket by socket: a payload ending inside a field)
            parts.append((rows, InfoColumns.of(infos), got[1:4]))
        for col, values in zip(cols[1:], got[1:]):
            if values is None or type(values) is list and values.count(None) == k:  # (a mini-socket's: none)
                continue
            for i, v in zip(rows, values):
                col[i] = v
    rest.sort()
    return rest, parts


def _walk_info(b: Batch, rows: Iterable[int], cols: tuple[list[Any], ...]) -> None:
    """Fill ``cols`` for ``rows`` (of ``b``), message by message."""
    tcp_info = _tcpinfo_decode()
    unpack = nl.NLATTR.unpack_from
    for i in rows:
        p = b.attrs(i)
        info = cong = bbr = dctcp = extra = None
        rare = False
        off, end = 0, len(p)
        while off + 4 <= end:
            alen, atype = unpack(p, off)
            if alen < 4 or off + alen > end:
                raise DecodeError(f"bad attribute length {alen} (type {atype & nl.NLA_TYPE_MASK})")
            atype &= nl.NLA_TYPE_MASK
            if atype == INET_DIAG_INFO:
                info = tcp_info(p[off + 4 : off + alen])
            elif atype == INET_DIAG_CONG:
                cong = cong_of(p[off + 4 : off + alen])
            elif atype == INET_DIAG_BBRINFO and alen >= 16:
                bbr = bbr_of(p[off + 4 : off + alen])
            elif atype == INET_DIAG_DCTCPINFO and alen >= 20:
                dctcp = dctcp_of(p[off + 4 : off + alen])
            elif atype == INET_DIAG_MD5SIG or atype == INET_DIAG_ULP_INFO:
                rare = True
            off += (alen + 3) & ~3
        if rare:
            extra = extras_of(nl.parse_attrs(p).get)
        for col, v in zip(cols, (info, cong, bbr, dctcp, extra)):
            col[i] = v


def attr_layout(mv: memoryview, length: int, until: int = -1) -> list[tuple[int, int, int]] | None:
    """The attributes of the first message (``length`` bytes) of ``mv``: (offset, length, type)
    each, up to the first of type ``until``; None when they do not fit the message."""
    attrs = []
    off = 16 + MSG_LEN
    unpack = nl.NLATTR.unpack_from
    while off + 4 <= length:
        alen, atype = unpack(mv, off)
        if alen < 4 or off + alen > length:
            return None
        attrs.append((off, alen, atype))
        if atype & nl.NLA_TYPE_MASK == until:
            break
        off += (alen + 3) & ~3
    return attrs


def _same(view: memoryview, start: int, step: int, n: int) -> bool:
    """Whether the ``n`` items of ``view`` at ``start``, ``start + step``, … are one value: each
    compared with the next, in C (no int made)."""
    return view[start : start + (n - 1) * step : step] == view[start + step : start + n * step : step]


def alike(body: memoryview, length: int, n: int, attrs: list[tuple[int, int, int]]) -> bool:
    """Whether each of the ``n`` messages of ``body`` (``length`` long, a multiple of 4) has the first
    one's attribute headers ``attrs``.  (Their length and type are not read: the framing checked them,
    and a batch's messages of one length joined from its pieces have another message's there:
    ``netlink.gather_pieces``.)"""
    words = body.cast("I")
    step = length // 4
    return all(_same(words, off // 4, step, n) for off, _alen, _atype in attrs)


def info_at(mv: memoryview, length: int, n: int) -> tuple[int, int] | None:
    """Where the tcp_info payload sits in each of ``n`` messages all ``length`` long
    ((offset in the message, payload length)), when every message has the first one's
    attributes up to it; else None."""
    attrs = attr_layout(mv, length, INET_DIAG_INFO)
    if not attrs or attrs[-1][2] & nl.NLA_TYPE_MASK != INET_DIAG_INFO or not alike(mv[: n * length], length, n, attrs):
        return None
    return attrs[-1][0] + 4, attrs[-1][1] - 4


def _uniform_info(mv: memoryview, length: int, n: int) -> tuple[Any, list[Any], list[Any], list[Any], Any] | None:
    """:func:`info_columns` for messages of one length and one attribute layout, column by column:
    the tcp_info as :class:`~sockscope.kernel.tcpinfo.InfoColumns` (each field read when asked for),
    the others by strided reads too; None for other datagrams."""
    attrs = attr_layout(mv, length)
    if attrs is None or not n:
        return None
    body = mv[: n * length]
    if not alike(body, length, n, attrs):
        return None
    from sockscope.kernel import tcpinfo

    infos: Any = [None] * n
    congs: list[Any] = [None] * n
    bbrs: Any = [None] * n
    dctcps: list[Any] = [None] * n
    tails = None  # (the extras: where the layout has them, message by message)
    for off, alen, atype in attrs:  # the last of a type counts, as in the walk
        start, plen = off + 4, alen - 4
        atype &= nl.NLA_TYPE_MASK
        if atype == INET_DIAG_INFO:
            infos = tcpinfo.read(body, length, start, plen, n)
            if infos is None:  # a payload ending inside a field: zero-padded socket by socket
                raw = body.tobytes()
                infos = [tcpinfo.decode(raw[i : i + plen]) for i in range(start, n * length, length)]
        elif atype == INET_DIAG_CONG:
            if all(_same(body, start + k, length, n) for k in range(plen)):  # one name in every message
                congs = [cong_of(body[start : start + plen])] * n
                continue
            raw = body.tobytes()
            texts = list(map(raw.__getitem__, map(slice, range(start, n * length, length),
                                                    range(start + plen, n * length + plen, length))))
            names = CONG_NAMES
            for t in set(texts).difference(names):
                names[t] = cong_of(memoryview(t))
            congs = list(map(names.__getitem__, texts))
        elif atype == INET_DIAG_BBRINFO and plen >= 12:
            if plen < TCP_BBR_INFO.size:  # short: the walk pads it
                return None
            lo, hi, mrtt, pg, cg = TCP_BBR_INFO.strided(body, length, TCP_BBR_INFO.names, start, alike=True)
            if hi != 0:  # bw >= 4 GiB/s somewhere: (hi << 32) | lo row by row
                lo = [a | (b << 32) for a, b in zip(*(c if type(c) is list else [c] * n for c in (lo, hi)))]
            bbrs = tcpinfo.FieldRows(n, [lo, mrtt, pg, cg])
        elif atype == INET_DIAG_DCTCPINFO and plen >= TCP_DCTCP_INFO.size:
            dctcps = list(zip(*(TCP_DCTCP_INFO.column(body, length, f, start) for f in TCP_DCTCP_INFO.names)))
        elif (atype == INET_DIAG_MD5SIG or atype == INET_DIAG_ULP_INFO) and tails is None:
            at = 16 + MSG_LEN
            tails = [extras_of(nl.parse_attrs(body[k + at : k + length]).get) for k in range(0, n * length, length)]
    return infos, congs, bbrs, dctcps, tails
