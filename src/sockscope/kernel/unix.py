"""unix_diag requests and replies, sans IO."""

from __future__ import annotations

import os
import struct
from itertools import repeat

from sockscope._addr import AF_UNIX
from sockscope.errors import DecodeError
from sockscope.kernel import netlink as nl
from sockscope.kernel.layout import UNIX_DIAG_MSG

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence

    from sockscope.records import Socket

# The records (dataclasses, enum: ~15 ms of imports) are imported by the functions that make
# them: the listing's column path (decode, the table's cells) never needs them.

# include/uapi/linux/unix_diag.h
UDIAG_SHOW_NAME = 0x01
UDIAG_SHOW_VFS = 0x02
UDIAG_SHOW_PEER = 0x04
UDIAG_SHOW_ICONS = 0x08
UDIAG_SHOW_RQLEN = 0x10
UDIAG_SHOW_MEMINFO = 0x20
UDIAG_SHOW_UID = 0x40

UNIX_DIAG_NAME = 0
UNIX_DIAG_VFS = 1
UNIX_DIAG_PEER = 2
UNIX_DIAG_ICONS = 3
UNIX_DIAG_RQLEN = 4
UNIX_DIAG_MEMINFO = 5
UNIX_DIAG_SHUTDOWN = 6
UNIX_DIAG_UID = 7

SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_SEQPACKET = 5

NETIDS = {SOCK_STREAM: "u_str", SOCK_DGRAM: "u_dgr", SOCK_SEQPACKET: "u_seq"}

_REQ = struct.Struct("=BBHIIIII")  # family protocol pad states ino show cookie[2]
_MSG = UNIX_DIAG_MSG.struct  # family type state pad ino cookie
MSG_LEN = _MSG.size  # 16
_U32 = struct.Struct("=I")
_RQLEN = struct.Struct("=II")

DEFAULT_SHOW = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_UID


def encode_request(states: int, show: int = DEFAULT_SHOW, seq: int = 1) -> bytes:
    """A complete netlink dump request for UNIX sockets in ``states``."""
    payload = _REQ.pack(AF_UNIX, 0, 0, states, 0, show, 0, 0)
    return nl.encode_message(nl.SOCK_DIAG_BY_FAMILY, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, payload)


def unix_name(raw: bytes) -> str:
    """ss's text for a UNIX socket name: ``@`` for every NUL of an abstract
    name, a path up to its first NUL."""
    if raw[:1] == b"\0":
        return os.fsdecode(raw.replace(b"\0", b"@"))
    return os.fsdecode(raw.split(b"\0", 1)[0])


class Batch:
    """The sockets of one datagram of a unix_diag dump, column by column.

    ``type`` (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET), ``state``, ``inode``,
    ``cookie``, ``name`` (the raw UNIX_DIAG_NAME bytes, b"" for none), ``peer``
    (the peer's inode, 0 for none), ``rqueue``/``wqueue`` (UNIX_DIAG_RQLEN),
    ``uid`` (None where not sent); :meth:`attrs` is row ``i``'s attribute bytes."""

    __slots__ = ("n", "type", "state", "inode", "cookie", "name", "peer", "rqueue", "wqueue", "uid", "_mv", "_starts",
                 "_lens")

    n: int
    type: list[int]
    state: list[int]
    inode: list[int]
    cookie: list[int]
    name: list[bytes]
    peer: list[int]
    rqueue: list[int]
    wqueue: list[int]
    uid: list[int | None]
    _mv: memoryview
    _starts: list[int]
    _lens: list[int]

    def attrs(self, i: int) -> memoryview:
        start = self._starts[i]
        return self._mv[start + _FIXED.size : start + self._lens[i]]

    def select(self, keep: Sequence[Any]) -> Batch:
        """The rows whose ``keep`` is true, as a new batch."""
        from itertools import compress

        b = Batch.__new__(Batch)
        for name in ("type", "state", "inode", "cookie", "name", "peer", "rqueue", "wqueue", "uid", "_starts", "_lens"):
            setattr(b, name, list(compress(getattr(self, name), keep)))
        b.n = len(b.inode)
        b._mv = self._mv
        return b


_FIXED = struct.Struct("=IH10x" + _MSG.format.lstrip("="))  # nlmsghdr (length, type) + unix_diag_msg
_HDR = struct.Struct("=IH")
_U32 = struct.Struct("=I")
#: the attributes the listing reads, by type: (column, struct code of the payload)
_PICK = {UNIX_DIAG_NAME: "name", UNIX_DIAG_PEER: "peer", UNIX_DIAG_RQLEN: "rq", UNIX_DIAG_UID: "uid"}
_COLUMNS = ("type", "state", "inode", "cookie", "name", "peer", "rqueue", "wqueue", "uid")
_DEFAULTS: dict[str, Any] = {"name": b"", "peer": 0, "rqueue": 0, "wqueue": 0, "uid": None}  # when not sent
_SHAPES: dict[tuple[int, ...], Any] = {}


def decode(buf: bytes | memoryview, op: str = "unix_diag") -> tuple[Batch, bool]:
    """One datagram of a unix_diag dump as a :class:`Batch`, and whether the dump ended.

    The messages are framed by one walk over their lengths (the only loop that
    runs Python code per message); then the messages are grouped by length (a
    sort) and each group is unpacked by one struct whose format covers the
    message, its attribute headers and the attributes the listing reads (name,
    peer, queues, uid), compiled once per attribute layout (:func:`_shape`) and
    checked: a group whose messages differ in layout is read message by message.
    The rows go back to the kernel's order by the inverse of that sort."""
    mv = memoryview(buf)
    end = len(mv)
    u32 = _U32.unpack_from
    starts: list[int] = []
    add = starts.append
    off = 0
    while off < end:
        if end - off < 16:
            raise DecodeError(f"truncated netlink header at offset {off}")
        length = u32(mv, off)[0]
        if length < 16 or off + length > end:
            raise DecodeError(f"bad netlink message length {length} at offset {off}")
        add(off)
        off += (length + 3) & ~3
    n = len(starts)
    lens, types = (list(c) for c in zip(*map(_HDR.unpack_from, repeat(mv, n), starts))) if n else ([], [])
    done = False
    if types.count(nl.SOCK_DIAG_BY_FAMILY) != n:  # the dump's end (or another message) among them
        stop = next((i for i, t in enumerate(types) if t == nl.NLMSG_DONE or t == nl.NLMSG_ERROR), n)
        if stop < n:
            nl.diag_messages(mv[starts[stop] :], op)  # raises the kernel's error, if any
            done = True
        keep = [i for i in range(stop) if types[i] == nl.SOCK_DIAG_BY_FAMILY]  # others (NOOP …) skipped
        starts, lens = [starts[i] for i in keep], [lens[i] for i in keep]
        n = len(starts)
    if n and min(lens) < _FIXED.size:
        raise DecodeError(f"truncated unix_diag_msg ({min(lens) - 16} bytes)")
    # grouped by length (a stable sort), each group read by one struct
    order = sorted(range(n), key=lens.__getitem__)
    rows: list[Any] = []
    lo = 0
    while lo < n:
        length = lens[order[lo]]
        hi = lo + 1
        while hi < n and lens[order[hi]] == length:
            hi += 1
        at = [starts[k] for k in order[lo:hi]]
        shape = _shape(mv, at[0], length)
        got = list(map(shape.struct.unpack_from, repeat(mv, hi - lo), at))
        if hi - lo > 1 and len(set(map(shape.heads, got))) != 1:  # layouts differ: each its own
            for start in at:
                own = _shape(mv, start, length)
                rows.append(own.canon(own.struct.unpack_from(mv, start)))
        else:
            rows += map(shape.canon, got)
        lo = hi
    if n:  # back to the kernel's order
        rows = list(map(rows.__getitem__, sorted(range(n), key=order.__getitem__)))
    b = Batch.__new__(Batch)
    cols = list(zip(*rows)) if rows else [()] * len(_COLUMNS)
    for name, col in zip(_COLUMNS, cols):
        setattr(b, name, list(col))
    b.n, b._mv, b._starts, b._lens = n, mv, starts, lens
    return b, done


class _Shape:
    """How to read messages of one length and attribute layout: the struct, the getter of its
    attribute headers (equal in every message of a group), and ``canon``: a row of the struct ->
    the :data:`_COLUMNS` values (absent attributes filled with their defaults)."""

    __slots__ = ("struct", "heads", "canon")

    def __init__(self, st: struct.Struct, heads: Any, canon: Any) -> None:
        self.struct, self.heads, self.canon = st, heads, canon


def _shape(mv: memoryview, start: int, length: int) -> _Shape:
    """The :class:`_Shape` of the message at ``start`` (cached by its layout)."""
    from operator import itemgetter

    attrs: list[int] = []
    a, end = start + _FIXED.size, start + length
    while a + 4 <= end:
        alen, atype = nl.NLATTR.unpack_from(mv, a)
        if alen < 4 or a + alen > end:
            raise DecodeError(f"bad attribute length {alen} (type {atype & nl.NLA_TYPE_MASK})")
        attrs += (a - start, alen, atype)
        a += (alen + 3) & ~3
    key = (length, *attrs)
    known: _Shape | None = _SHAPES.get(key)
    if known is not None:
        return known
    fmt = ["=4x2x10x", _MSG.format.lstrip("=")]  # type, state, inode, cookie: fields 1, 2, 3, 4 (family 0)
    at: dict[str, int] = {"type": 1, "state": 2, "inode": 3, "cookie": 4}  # column -> index in a row
    heads: list[int] = []
    index, pos = 5, _FIXED.size
    for k in range(0, len(attrs), 3):
        off, alen, atype = attrs[k : k + 3]
        fmt.append(f"{off - pos}xHH")
        heads += (index, index + 1)
        index += 2
        plen = alen - 4
        col = _PICK.get(atype & nl.NLA_TYPE_MASK)
        if col == "name":
            fmt.append(f"{plen}s")
            at["name"] = index
            index += 1
        elif col in ("peer", "uid") and plen >= 4:
            fmt.append(f"I{plen - 4}x")
            at[col] = index
            index += 1
        elif col == "rq" and plen >= 8:
            fmt.append(f"II{plen - 8}x")
            at["rqueue"], at["wqueue"] = index, index + 1
            index += 2
        elif col is not None:
            raise DecodeError(f"truncated UNIX_DIAG_{col.upper() if col != 'rq' else 'RQLEN'}")
        else:
            fmt.append(f"{plen}x")
        pos = off + alen
    fmt.append(f"{length - pos}x")
    # absent attributes: their defaults, appended to the row
    consts = tuple(value for name, value in _DEFAULTS.items() if name not in at)
    for name in _DEFAULTS:
        if name not in at:
            at[name] = index
            index += 1
    pick = itemgetter(*(at[name] for name in _COLUMNS))
    canon = (lambda row: pick(row + consts)) if consts else pick
    if len(_SHAPES) > 4096:  # bounded: names make many layouts
        _SHAPES.clear()
    shape: _Shape = _Shape(struct.Struct("".join(fmt)), itemgetter(*heads) if heads else _nothing, canon)
    _SHAPES[key] = shape
    return shape


def _nothing(row: Any) -> None:
    return None


def concat(parts: list[Batch]) -> Batch:
    """One batch of several (a dump's datagrams), in order."""
    if len(parts) == 1:
        return parts[0]
    b = Batch.__new__(Batch)
    for name in ("type", "state", "inode", "cookie", "name", "peer", "rqueue", "wqueue", "uid"):
        setattr(b, name, [x for p in parts for x in getattr(p, name)])
    # the messages' offsets index one buffer: join the datagrams, shifting each one's offsets
    bufs, starts, base = [], [], 0
    for p in parts:
        bufs.append(p._mv)
        starts += [s + base for s in p._starts]
        base += len(p._mv)
    b._mv = memoryview(b"".join(bufs))
    b._starts = starts
    b._lens = [x for p in parts for x in p._lens]
    b.n = len(b.inode)
    return b


def netids(b: Batch) -> list[str]:
    """ss's table name of each row (u_str, u_dgr, u_seq)."""
    return [NETIDS.get(t, "u_dgr") for t in b.type]


def records(b: Batch, details: bool = False) -> list[Socket]:
    """The batch's rows as records (with ``details``: shutdown, vfs, pending connections, skmem)."""
    from sockscope.records import Endpoint, make_socket, state_of

    out = []
    names: dict[bytes, str] = {}
    for i, (stype, st, ino, cookie, raw, peer, rq, wq, uid) in enumerate(zip(
            b.type, b.state, b.inode, b.cookie, b.name, b.peer, b.rqueue, b.wqueue, b.uid)):
        name = names.get(raw)
        if name is None:
            name = names[raw] = unix_name(raw) if raw else ""
        extra: dict[str, Any] = _details(b.attrs(i)) if details else {}
        out.append(make_socket(
            NETIDS.get(stype, "u_dgr"), AF_UNIX, state_of(st), rq, wq,
            Endpoint(name, 0), Endpoint("", 0), ino, uid, cookie, 0,
            peer, None, extra.pop("shutdown", None), (), None, None, **extra,
        ))
    return out


def decode_dump(
    buf: bytes | memoryview,
    out: list[Socket],
    details: bool = False,
    op: str = "unix_diag",
) -> bool:
    """:func:`decode`, then :func:`records` into ``out``; True when done."""
    b, done = decode(buf, op)
    out += records(b, details)
    return done


def _details(raw: memoryview) -> dict[str, Any]:
    attrs = nl.parse_attrs(raw)
    extra: dict[str, Any] = {}
    a = attrs.get(UNIX_DIAG_SHUTDOWN)
    if a is not None and len(a):
        extra["shutdown"] = a[0]
    a = attrs.get(UNIX_DIAG_VFS)
    if a is not None and len(a) >= 8:
        extra["unix_vfs"] = _RQLEN.unpack_from(a, 0)
    a = attrs.get(UNIX_DIAG_ICONS)
    if a is not None:
        extra["unix_pending"] = struct.unpack_from(f"={len(a) // 4}I", a, 0)
    a = attrs.get(UNIX_DIAG_MEMINFO)
    if a is not None:
        from sockscope.kernel.others import decode_skmem

        extra["skmem"] = decode_skmem(a)
    return extra


__all__ = [
    "Batch", "decode", "records", "netids", "concat", "encode_request", "decode_dump", "unix_name", "NETIDS", "AF_UNIX",
]
