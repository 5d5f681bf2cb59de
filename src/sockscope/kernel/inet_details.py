"""The records' details of a whole inet batch, column by column: what :func:`details_of
<sockscope.kernel.inet_attrs.details_of>` gives message by message, read by strided views where
messages share one length and one attribute layout.

``--json``, ``--csv``, ``-e``, ``-m``, ``-o`` and the other detail texts read whole records with
every attribute decoded.  Message by message (``nl.parse_attrs``, then a decoder per attribute)
that took ~12 µs a TCP socket with tcp_info and skmem, more than the table's whole row.  Here:

* a datagram whose messages all have one length and one attribute layout (checked for every
  message at once: ``inet_attrs.alike``) is read attribute by attribute, each field one strided
  read of all its messages (:func:`_uniform`);
* a framed one (TIME-WAIT and SYN-RECV mini-sockets between full ones: several lengths) length
  by length, the messages of each length copied side by side (in C) and read so; the columns are
  put back in the batch's order by one permutation;
* what is left (a length of one message, a layout that varies within a length, a payload that
  ends inside a field) message by message, by ``details_of`` itself.

Each attribute is read as ``details_of`` reads it (the same minimum lengths, the last of a type
counts); tests/test_inet_details.py holds the two to the same records, on the kernel's datagrams
and on made ones.
"""

from __future__ import annotations

import sys
from itertools import repeat
from _operator import lshift, or_

from sockscope.kernel import netlink as nl
from sockscope.kernel.inet_attrs import (
    CONG_NAMES, alike, attr_layout, bbr_of, cong_of, dctcp_of, details_of, extras_of, mptcp_info)
from sockscope.kernel.layout import (
    INET_DIAG_BBRINFO, INET_DIAG_CGROUP_ID, INET_DIAG_CLASS_ID, INET_DIAG_CONG, INET_DIAG_DCTCPINFO, INET_DIAG_INFO,
    INET_DIAG_MARK, INET_DIAG_MD5SIG, INET_DIAG_MSG, INET_DIAG_PROTOCOL, INET_DIAG_SHUTDOWN, INET_DIAG_SKMEMINFO,
    INET_DIAG_SKV6ONLY, INET_DIAG_SOCKOPT, INET_DIAG_TCLASS, INET_DIAG_TOS, INET_DIAG_ULP_INFO, TCP_BBR_INFO,
    TCP_DCTCP_INFO)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from sockscope.kernel.inet import Batch

#: the detail fields, in the records' order (:class:`~sockscope.records.Socket`)
FIELDS = ("v6only", "shutdown", "protocol", "mark", "cgroup_id", "cong", "tcp_info", "skmem", "bbr_info",
          "dctcp_info", "tos", "tclass", "class_id", "sockopt", "mptcp_info", "md5keys", "ulp")

#: u8 attributes: (field, whether a flag)
_U8 = {INET_DIAG_SKV6ONLY: ("v6only", True), INET_DIAG_SHUTDOWN: ("shutdown", False),
       INET_DIAG_TOS: ("tos", False), INET_DIAG_TCLASS: ("tclass", False), INET_DIAG_PROTOCOL: ("protocol", False)}
_U32 = {INET_DIAG_MARK: "mark", INET_DIAG_CLASS_ID: "class_id"}
#: the fields each attribute gives
_FIELDS_OF = {**{t: frozenset((name,)) for t, (name, _flag) in _U8.items()},
              **{t: frozenset((name,)) for t, name in _U32.items()},
              INET_DIAG_CGROUP_ID: frozenset(("cgroup_id",)), INET_DIAG_SOCKOPT: frozenset(("sockopt",)),
              INET_DIAG_CONG: frozenset(("cong",)), INET_DIAG_SKMEMINFO: frozenset(("skmem",)),
              INET_DIAG_INFO: frozenset(("tcp_info", "mptcp_info")), INET_DIAG_BBRINFO: frozenset(("bbr_info",)),
              INET_DIAG_DCTCPINFO: frozenset(("dctcp_info",)), INET_DIAG_MD5SIG: frozenset(("md5keys", "ulp")),
              INET_DIAG_ULP_INFO: frozenset(("md5keys", "ulp"))}
_LOW, _HIGH = (0, 1) if sys.byteorder == "little" else (1, 0)  # a u64's words, native order
_HEAD = 16 + INET_DIAG_MSG.size  # a message's header and inet_diag_msg: its attributes follow
ALL = frozenset(FIELDS)
_MIN_JOINED = 2  # messages of one length read side by side (one alone: message by message)


def detail_columns(b: Batch, netid: str, fields: frozenset[str] = ALL) -> dict[str, list[Any] | None]:
    """Each detail field's column (None: None in every row) of the batch ``b`` of table ``netid``;
    only those of ``fields`` read (the others None): a table's detail texts need few of them."""
    n = b.n
    if not fields & ALL or not n:
        return dict.fromkeys(FIELDS)
    if b._length:  # one length (the datagram read column at once)
        got = _uniform(b._mv, b._length, n, netid, fields)
        return got if got is not None else _walked(b, range(n), netid, fields)
    if n < _MIN_JOINED:
        return _walked(b, range(n), netid, fields)
    groups: list[tuple[list[int], dict[str, list[Any] | None]]] = []
    rest: list[int] = []
    for length, rows in b.lengths().items():  # each length's rows (their messages copied side by side once)
        got = None
        if len(rows) >= _MIN_JOINED:
            got = _uniform(b.gathered(length), length, len(rows), netid, fields)
        if got is None:
            rest += rows
        else:
            groups.append((rows, got))
    if not groups:
        return _walked(b, range(n), netid, fields)
    if rest:
        rest.sort()
        groups.append((rest, _walked(b, rest, netid, fields)))
    order = [i for rows, _ in groups for i in rows]
    back = sorted(range(n), key=order.__getitem__)  # row i of the batch: item back[i] of the groups' rows
    out: dict[str, list[Any] | None] = dict.fromkeys(FIELDS)
    for name in fields & ALL:
        parts = [(cols[name], len(rows)) for rows, cols in groups]
        if all(col is None for col, _k in parts):
            out[name] = None
            continue
        joined: list[Any] = []
        for col, k in parts:
            joined += col if col is not None else [None] * k
        out[name] = list(map(joined.__getitem__, back))
    return out


def _walked(b: Batch, rows: Any, netid: str, fields: frozenset[str] = ALL) -> dict[str, list[Any] | None]:
    """The columns of ``rows`` of ``b``, message by message (``details_of``)."""
    got = [details_of(b.attrs(i), b.family[i], netid) for i in rows]
    out: dict[str, list[Any] | None] = {}
    for name in FIELDS:
        col = [d.get(name) for d in got] if name in fields else None
        out[name] = None if col is None or col.count(None) == len(col) else col
    return out


def _uniform(mv: memoryview, length: int, n: int, netid: str, fields: frozenset[str] = ALL
             ) -> dict[str, list[Any] | None] | None:
    """The columns of ``n`` messages of ``length`` bytes at the start of ``mv``, attribute by attribute,
    where they share the first one's attribute layout; else None."""
    if not n or length & 3 or length < _HEAD:
        return None
    attrs = attr_layout(mv, length)
    if attrs is None:
        return None
    body = mv[: n * length]
    if not alike(body, length, n, attrs):
        return None
    out: dict[str, list[Any] | None] = dict.fromkeys(FIELDS)
    words = body.cast("I")
    step = length // 4
    extras = False
    for off, alen, atype in attrs:  # (a later attribute of a type counts, as in parse_attrs)
        start, plen = off + 4, alen - 4
        atype &= nl.NLA_TYPE_MASK
        if not _FIELDS_OF.get(atype, ALL) & fields:
            continue
        if atype in _U8:
            name, flag = _U8[atype]
            col = body[start::length].tolist() if plen else None
            out[name] = col if col is None or not flag else list(map(bool, col))
        elif atype in _U32:
            out[_U32[atype]] = words[start // 4 :: step].tolist() if plen >= 4 else None
        elif atype == INET_DIAG_CGROUP_ID:
            out["cgroup_id"] = _u64(words, start // 4, step) if plen >= 8 else None
        elif atype == INET_DIAG_SOCKOPT:  # two bytes, the low one first (details_of's a[0] | a[1] << 8)
            out["sockopt"] = (list(map(or_, body[start::length].tolist(), map(
                lshift, body[start + 1 :: length].tolist(), repeat(8)))) if plen >= 2 else None)
        elif atype == INET_DIAG_CONG:
            out["cong"] = _congs(body, length, start, plen, n)
        elif atype == INET_DIAG_SKMEMINFO:
            out["skmem"] = nl.skmem_column(words, start // 4, step, plen // 4)
        elif atype == INET_DIAG_INFO:  # (of the table's: tcp_info, or an MPTCP socket's mptcp_info)
            if netid == "tcp" and "tcp_info" in fields:
                out["tcp_info"] = _infos(body, length, start, plen, n)
            elif netid == "mptcp" and "mptcp_info" in fields:
                out["mptcp_info"] = _each(body, length, start, plen, n, mptcp_info)
        elif atype == INET_DIAG_BBRINFO:
            out["bbr_info"] = None if plen < 12 else (
                _bbrs(words, start // 4, step) if plen >= TCP_BBR_INFO.size else
                _each(body, length, start, plen, n, bbr_of))
        elif atype == INET_DIAG_DCTCPINFO:
            out["dctcp_info"] = None if plen < 16 else (
                list(zip(*TCP_DCTCP_INFO.columns(body, length, TCP_DCTCP_INFO.names, start)))
                if plen >= TCP_DCTCP_INFO.size else _each(body, length, start, plen, n, dctcp_of))
        elif atype == INET_DIAG_MD5SIG or atype == INET_DIAG_ULP_INFO:
            extras = True
    if extras and fields & {"md5keys", "ulp"}:  # (rare: MD5 keys, an upper layer protocol) message by message
        got: list[Any] = [extras_of(nl.parse_attrs(body[k + _HEAD : k + length]).get)
                          for k in range(0, n * length, length)]  # (a pair for every message: one layout)
        for name, at in (("md5keys", 0), ("ulp", 1)):
            pair: list[Any] = [g[at] for g in got] if name in fields else [None] * n
            out[name] = None if pair.count(None) == n else pair
    return out


def _u64(words: memoryview, at: int, step: int) -> list[int]:
    low, high = words[at + _LOW :: step].tolist(), words[at + _HIGH :: step].tolist()
    return low if not any(high) else list(map(or_, low, map(lshift, high, repeat(32))))


def _congs(body: memoryview, length: int, start: int, plen: int, n: int) -> list[str]:
    """INET_DIAG_CONG's names: each distinct payload decoded once (``cong_of``)."""
    raw = body.tobytes()
    ends = range(start + plen, start + plen + n * length, length)
    texts: list[bytes] = list(map(raw.__getitem__, map(slice, range(start, start + n * length, length), ends)))
    names = CONG_NAMES
    if len(names) > 256:  # (bounded: a payload is whatever the kernel sent)
        names.clear()
    for t in set(texts).difference(names):
        names[t] = cong_of(memoryview(t))
    return list(map(names.__getitem__, texts))


def named_skmem(col: list[Any]) -> list[Any]:
    """A skmem column's 9-tuples as :class:`~sockscope.records.SkMem` (the records'; a table's texts read
    the tuples, without loading the records' module: ~8 ms of a listing's start-up)."""
    from sockscope.records import SkMem

    new = tuple.__new__
    return [m if m is None else new(SkMem, m) for m in col]


def _infos(body: memoryview, length: int, start: int, plen: int, n: int) -> list[Any]:
    from sockscope.kernel import tcpinfo

    cols = tcpinfo.read(body, length, start, plen, n)
    return cols.rows() if cols is not None else _each(body, length, start, plen, n, tcpinfo.decode)


def _bbrs(words: memoryview, at: int, step: int) -> list[tuple[int, int, int, int]]:
    lo, hi, mrtt, pg, cg = (words[at + j :: step].tolist() for j in range(5))
    if any(hi):  # bw >= 4 GiB/s somewhere
        lo = list(map(or_, lo, map(lshift, hi, repeat(32))))
    return list(zip(lo, mrtt, pg, cg))


def _each(body: memoryview, length: int, start: int, plen: int, n: int, decode: Callable[[memoryview], Any]
          ) -> list[Any]:
    """``decode`` of each message's payload (a layout the strided reads do not cover)."""
    return [decode(body[k : k + plen]) for k in range(start, start + n * length, length)]
