"""inet_diag attributes, sans IO: what follows each ``inet_diag_msg``.

:func:`details_of` decodes every attribute of one message (the records'
details); :func:`info_columns` gives ``ss -i``'s columns (tcp_info,
congestion control, bbr_info, dctcp_info) of a whole batch, by one
``iter_unpack`` where the messages share one attribute layout;
:func:`info_at` says where tcp_info sits when they do (for
:meth:`Batch.info_fields <sockscope.kernel.inet.Batch.info_fields>`).
"""

from __future__ import annotations

import struct

from sockscope.errors import DecodeError
from sockscope.kernel import netlink as nl
from sockscope.kernel.layout import INET_DIAG_MSG

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from sockscope.kernel.inet import Batch

# include/uapi/linux/inet_diag.h
INET_DIAG_MEMINFO = 1
INET_DIAG_INFO = 2
INET_DIAG_VEGASINFO = 3
INET_DIAG_CONG = 4
INET_DIAG_TOS = 5
INET_DIAG_TCLASS = 6
INET_DIAG_SKMEMINFO = 7
INET_DIAG_SHUTDOWN = 8
INET_DIAG_DCTCPINFO = 9
INET_DIAG_PROTOCOL = 10
INET_DIAG_SKV6ONLY = 11
INET_DIAG_MARK = 15
INET_DIAG_BBRINFO = 16
INET_DIAG_CLASS_ID = 17
INET_DIAG_CGROUP_ID = 21
INET_DIAG_SOCKOPT = 22

_MSG = INET_DIAG_MSG.struct
MSG_LEN = INET_DIAG_MSG.size


def _bbr(a: memoryview) -> tuple[int, int, int, int]:
    return _bbr_info(*struct.unpack_from("=5I", bytes(a[:20]).ljust(20, b"\0")))


def _bbr_info(bw_lo: int, bw_hi: int, min_rtt: int, pacing_gain: int, cwnd_gain: int) -> tuple[int, int, int, int]:
    """``struct tcp_bbr_info``'s five u32 -> (bw in bytes/s, min_rtt µs, pacing_gain, cwnd_gain)."""
    return ((bw_hi << 32) | bw_lo, min_rtt, pacing_gain, cwnd_gain)


def _dctcp(a: memoryview) -> tuple[int, int, int, int, int]:
    en, ce, alpha, ab_ecn, ab_tot = struct.unpack_from("=HHIII", bytes(a[:16]).ljust(16, b"\0"))
    return (en, ce, alpha, ab_ecn, ab_tot)


_INFO_LAYOUTS: dict[tuple, tuple[struct.Struct, struct.Struct, list[tuple[str, int, int]]]] = {}  # type: ignore[type-arg]
_CONG_NAMES: dict[bytes, str] = {}


def _info_layout(key: tuple, length: int) -> tuple[struct.Struct, struct.Struct, list[tuple[str, int, int]]] | None:  # type: ignore[type-arg]
    """For messages of ``length`` bytes whose attributes are ``key`` ((offset,
    length, type) each): the struct that unpacks one whole message, the
    indices of the attribute header words in its tuples, and where the parts
    ``-i`` wants sit in them: (kind, first index, payload length)."""
    from sockscope.kernel import tcpinfo

    fmt = ["=6s10x", _MSG.format.lstrip("=")]
    index = 1 + 15  # head, then the message's 15 fields
    parts: list[tuple[str, int, int]] = []
    pos = 16 + MSG_LEN
    for off, alen, atype in key:
        fmt.append(f"{off - pos}x" if off > pos else "")
        fmt.append("I")
        index += 1
        plen = alen - 4
        atype &= nl.NLA_TYPE_MASK
        if atype == INET_DIAG_INFO and plen >= tcpinfo.SIZE:
            fmt.append(tcpinfo.FORMAT.lstrip("=") + f"{plen - tcpinfo.SIZE}x")
            parts.append(("info", index, plen))
            index += tcpinfo.FIELDS
        elif atype in (INET_DIAG_INFO, INET_DIAG_CONG):  # a short tcp_info: zero-padded by tcpinfo.decode
            fmt.append(f"{plen}s")
            parts.append(("info_bytes" if atype == INET_DIAG_INFO else "cong", index, plen))
            index += 1
        elif atype == INET_DIAG_BBRINFO and 12 <= plen < 20:  # short: the framed path pads it
            return None
        elif atype == INET_DIAG_BBRINFO and plen >= 20:
            fmt.append(f"5I{plen - 20}x")
            parts.append(("bbr", index, plen))
            index += 5
        elif atype == INET_DIAG_DCTCPINFO and plen >= 16:
            fmt.append(f"HHIII{plen - 16}x")
            parts.append(("dctcp", index, plen))
            index += 5
        elif atype == INET_DIAG_SKV6ONLY and plen >= 1:
            fmt.append(f"B{plen - 1}x")
            parts.append(("v6only", index, plen))
            index += 1
        else:
            fmt.append(f"{plen}x")
        pos = off + alen
    fmt.append(f"{length - pos}x")
    # the headers alone (the message's, then each attribute's), to check a datagram cheaply
    heads = ["=6s"]
    pos = 6
    for off, _alen, _atype in key:
        heads.append(f"{off - pos}xI")
        pos = off + 4
    heads.append(f"{length - pos}x")
    got = _INFO_LAYOUTS[(length, *key)] = (struct.Struct(" ".join(f for f in fmt if f)),
                                           struct.Struct("".join(heads)), parts)
    return got


def v6only_of(get: Callable[[int], memoryview | None]) -> bool | None:
    """SKV6ONLY from an inet_diag_msg's attributes (None when absent)."""
    a = get(INET_DIAG_SKV6ONLY)
    return bool(a[0]) if a is not None and len(a) else None


def _cong(a: memoryview) -> str:
    """INET_DIAG_CONG: the congestion control's name (a C string)."""
    return bytes(a).split(b"\0", 1)[0].decode("ascii", "replace")


_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")


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
    v6only = v6only_of(get)
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
        d["cong"] = _cong(a)
    a = get(INET_DIAG_SKMEMINFO)
    if a is not None:
        from sockscope.kernel.others import decode_skmem

        d["skmem"] = decode_skmem(a)
    a = get(INET_DIAG_INFO)
    if a is not None and netid == "tcp":
        d["tcp_info"] = _tcpinfo_decode()(a)
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
        d["bbr_info"] = _bbr(a)
    a = get(INET_DIAG_DCTCPINFO)
    if a is not None and len(a) >= 16:
        d["dctcp_info"] = _dctcp(a)
    a = get(INET_DIAG_PROTOCOL)
    if a is not None and len(a):
        d["protocol"] = a[0]
    return d




def info_columns(b: Batch, mv: memoryview, length: int) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """``-i``'s columns: tcp_info, congestion control, bbr_info, dctcp_info.  A
    datagram of one message length and one attribute layout is unpacked by one
    ``iter_unpack`` covering each message, its attributes and the tcp_info
    fields (:func:`_info_layout`); others are walked message by message."""
    got = _uniform_info(mv, length, b.n) if length else None
    if got is not None:
        return got
    tcp_info = _tcpinfo_decode()
    unpack = nl.NLATTR.unpack_from
    cols: tuple[list[Any], list[Any], list[Any], list[Any]] = ([], [], [], [])
    for i in range(b.n):
        p = b.attrs(i)
        info = cong = bbr = dctcp = None
        off, end = 0, len(p)
        while off + 4 <= end:
            alen, atype = unpack(p, off)
            if alen < 4 or off + alen > end:
                raise DecodeError(f"bad attribute length {alen} (type {atype & nl.NLA_TYPE_MASK})")
            atype &= nl.NLA_TYPE_MASK
            if atype == INET_DIAG_INFO:
                info = tcp_info(p[off + 4 : off + alen])
            elif atype == INET_DIAG_CONG:
                cong = _cong(p[off + 4 : off + alen])
            elif atype == INET_DIAG_BBRINFO and alen >= 16:
                bbr = _bbr(p[off + 4 : off + alen])
            elif atype == INET_DIAG_DCTCPINFO and alen >= 20:
                dctcp = _dctcp(p[off + 4 : off + alen])
            off += (alen + 3) & ~3
        for col, v in zip(cols, (info, cong, bbr, dctcp)):
            col.append(v)
    return cols


_INFO_AT: dict[tuple[Any, ...], tuple[struct.Struct, int, int]] = {}


def _attr_layout(mv: memoryview, length: int, until: int = -1) -> list[tuple[int, int, int]] | None:
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


def info_at(mv: memoryview, length: int, n: int) -> tuple[int, int] | None:
    """Where the tcp_info payload sits in each of ``n`` messages all ``length`` long
    ((offset in the message, payload length)), when every message has the first one's
    attributes up to it; else None."""
    attrs = _attr_layout(mv, length, INET_DIAG_INFO)
    if not attrs or attrs[-1][2] & nl.NLA_TYPE_MASK != INET_DIAG_INFO:
        return None
    key = (length, *attrs)
    got = _INFO_AT.get(key)
    if got is None:
        heads, pos = ["="], 0
        for a_off, _alen, _atype in attrs:
            heads.append(f"{a_off - pos}xI")
            pos = a_off + 4
        heads.append(f"{length - pos}x")
        got = _INFO_AT[key] = (struct.Struct("".join(heads)), attrs[-1][0] + 4, attrs[-1][1] - 4)
    st, start, size = got
    if any(col.count(col[0]) != n for col in zip(*st.iter_unpack(mv[: n * length]))):
        return None
    return start, size


def _uniform_info(mv: memoryview, length: int, n: int) -> tuple[list[Any], list[Any], list[Any], list[Any]] | None:
    """:func:`_info_columns` for messages of one length and one attribute layout; None for others."""
    attrs = _attr_layout(mv, length)
    if attrs is None:
        return None
    layout = _INFO_LAYOUTS.get((length, *attrs)) or _info_layout(tuple(attrs), length)
    if layout is None:
        return None
    st, heads, parts = layout
    body = mv[: n * length]
    # every message with the first one's attribute headers (a small tuple each)
    if any(col.count(col[0]) != n for col in zip(*heads.iter_unpack(body))):
        return None
    from sockscope.kernel.tcpinfo import FIELDS, columns
    from sockscope.kernel.tcpinfo import decode as decode_info

    info_at = bytes_at = cong_at = bbr_at = dctcp_at = info_len = 0
    for kind, i, plen in parts:
        if kind == "info":
            info_at, info_len = i, plen
        elif kind == "info_bytes":
            bytes_at = i
        elif kind == "cong":
            cong_at = i
        elif kind == "bbr":
            bbr_at = i
        elif kind == "dctcp":
            dctcp_at = i
    # every field of every message as a column (in C), then the parts -i reads
    cols = list(zip(*st.iter_unpack(body)))
    infos: Any
    if info_at:
        infos = columns(cols[info_at : info_at + FIELDS], info_len, n)
    else:
        infos = list(map(decode_info, cols[bytes_at])) if bytes_at else [None] * n
    congs: list[Any] = [None] * n
    if cong_at:
        names = _CONG_NAMES
        for raw in set(cols[cong_at]).difference(names):
            names[raw] = _cong(memoryview(raw))
        congs = list(map(names.__getitem__, cols[cong_at]))
    bbrs = list(map(_bbr_info, *cols[bbr_at : bbr_at + 5])) if bbr_at else [None] * n
    dctcps = list(zip(*cols[dctcp_at : dctcp_at + 5])) if dctcp_at else [None] * n
    return infos, congs, bbrs, dctcps
