"""unix_diag requests and replies, sans IO."""

from __future__ import annotations

import os
import _struct  # struct.py only re-exports this C module: one module fewer to import
import sys
from itertools import accumulate, compress, repeat

from sockscope._addr import AF_UNIX
from sockscope.errors import DecodeError
from sockscope.kernel import netlink as nl
from sockscope.kernel.layout import (  # (the attributes' numbers are described with unix_diag_msg)
    UNIX_DIAG_ICONS, UNIX_DIAG_MEMINFO, UNIX_DIAG_MSG, UNIX_DIAG_NAME, UNIX_DIAG_PEER, UNIX_DIAG_RQLEN,
    UNIX_DIAG_SHUTDOWN, UNIX_DIAG_UID, UNIX_DIAG_VFS)
from sockscope.kernel.unix_tail import FIXED as _FIXED, by_tail as _by_tail  # (the tail strategy)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

    from sockscope.records import Socket

# The records (dataclasses, enum: ~15 ms of imports) are imported by the functions that make
# them: the listing's column path (decode, the table's cells) never needs them.

# include/uapi/linux/unix_diag.h: what a request asks for (udiag_show), the attributes of a reply
UDIAG_SHOW_NAME, UDIAG_SHOW_VFS, UDIAG_SHOW_PEER, UDIAG_SHOW_ICONS = 0x01, 0x02, 0x04, 0x08
UDIAG_SHOW_RQLEN, UDIAG_SHOW_MEMINFO, UDIAG_SHOW_UID = 0x10, 0x20, 0x40

SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET = 1, 2, 5

NETIDS = {SOCK_STREAM: "u_str", SOCK_DGRAM: "u_dgr", SOCK_SEQPACKET: "u_seq"}

_REQ = _struct.Struct("=BBHIIIII")  # family protocol pad states ino show cookie[2]
_MSG = UNIX_DIAG_MSG.struct  # family type state pad ino cookie
_U32 = _struct.Struct("=I")

#: what ss asks for (its table's columns); the owner's uid (UDIAG_SHOW_UID) is added where records
#: carry it or ``-e`` shows it: the kernel's work and 8 bytes a socket that the table leaves unread
DEFAULT_SHOW = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN


def encode_request(states: int, show: int = DEFAULT_SHOW, seq: int = nl.DUMP_SEQ) -> bytes:
    """A complete netlink dump request for UNIX sockets in ``states``."""
    payload = _REQ.pack(AF_UNIX, 0, 0, states, 0, show, 0, 0)
    return nl.encode_message(nl.SOCK_DIAG_BY_FAMILY, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, payload)


def unix_name(raw: bytes) -> str:
    """ss's text for a UNIX socket name: ``@`` for every NUL of an abstract
    name, a path up to its first NUL."""
    if raw[:1] == b"\0":
        return os.fsdecode(raw.replace(b"\0", b"@"))
    return os.fsdecode(raw.split(b"\0", 1)[0])


def unix_names(raws: list[bytes]) -> list[str]:
    """:func:`unix_name` of each of ``raws`` (``os.fsdecode``'s decoding, without a call of it per name).

    The names, NUL-free once cut or escaped, are decoded joined by NULs and split there: one
    decoding instead of one per name, and the same text (UTF-8's errors are each within a name:
    a NUL is never part of a sequence of several bytes)."""
    enc, errors, decode = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors(), bytes.decode
    cut = name_bytes(raws)
    if enc.lower().replace("-", "").replace("_", "") == "utf8" and len(cut) > 1:
        return b"\0".join(cut).decode(enc, errors).split("\0")
    return [decode(raw, enc, errors) for raw in cut]


def name_bytes(raws: list[bytes]) -> list[bytes]:
    """The bytes of each raw name's :func:`unix_name` text (its ``os.fsencode``; what ss's filter
    matches): an abstract name with its NULs as ``@``, a path up to its first NUL."""
    return [raw.replace(b"\0", b"@") if raw[:1] == b"\0" else raw.partition(b"\0")[0] for raw in raws]


class Batch:
    """The sockets of one datagram of a unix_diag dump, column by column.

    ``type`` (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET), ``state``, ``inode``,
    ``cookie``, ``name`` (the raw UNIX_DIAG_NAME bytes, b"" for none), ``peer``
    (the peer's inode, 0 for none), ``rqueue``/``wqueue`` (UNIX_DIAG_RQLEN),
    ``uid`` (None where not sent); :meth:`attrs` is row ``i``'s attribute bytes.
    Where the tail strategy (:mod:`~sockscope.kernel.unix_tail`) read the datagram, the columns
    of :data:`_LATER` are made when first read (psutil's columns need none of them, the table two),
    and so are the details of :data:`_TAIL_DETAILS` (``-m``'s and ``-e``'s); of any other batch
    those are AttributeError (``unix_details`` reads them)."""

    __slots__ = ("n", "type", "state", "inode", "cookie", "name", "peer", "rqueue", "wqueue", "uid", "shutdown",
                 "skmem", "unix_vfs", "unix_pending", "_mv", "_starts", "_lens", "_more")

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
    _starts: list[int] | None  # None: made from the lengths when asked for (the messages lie end to end)
    _lens: list[int]
    _more: Callable[[str], list[Any]] | None  # makes a column of :data:`_LATER` when first asked for

    def __getattr__(self, name: str) -> Any:
        # (called for unset slots only) the columns few consumers read (cookie, peer, wqueue, uid)
        # are made from the datagram when first asked for: psutil's columns and the table skip some
        more = object.__getattribute__(self, "_more")
        if name in _TAIL_DETAILS and not object.__getattribute__(self, "n"):
            return []  # (a dump's last datagram, its end alone: read by the general strategy)
        if more is None and name in _TAIL_DETAILS:  # the details of a batch the general strategy read,
            # or of a selection: read from its bytes
            from sockscope.kernel.unix_details import read

            for field, col in read(self).items():
                setattr(self, field, [None] * self.n if col is None else col)
            return object.__getattribute__(self, name)
        if more is None or (name not in _LATER and name not in _TAIL_DETAILS):
            raise AttributeError(name)
        col = more(name)
        setattr(self, name, col)
        return col

    def attrs(self, i: int) -> memoryview:
        start = self._offsets()[i]
        return self._mv[start + _FIXED.size : start + self._lens[i]]

    def select(self, keep: Sequence[Any]) -> Batch:
        """The rows whose ``keep`` is true, as a new batch."""
        self._offsets()
        b = Batch.__new__(Batch)
        for name in ("type", "state", "inode", "cookie", "name", "peer", "rqueue", "wqueue", "uid", "_starts", "_lens"):
            setattr(b, name, list(compress(getattr(self, name), keep)))
        b.n = len(b.inode)
        b._mv, b._more = self._mv, None
        return b

    def _offsets(self) -> list[int]:
        """Each row's message offset in ``_mv`` (made now where it was left for later)."""
        if self._starts is None:
            self._starts = list(accumulate(self._lens, initial=0))[:-1]
        assert self._starts is not None
        return self._starts


#: the attributes the listing reads, by type: (column, struct code of the payload)
_PICK = {UNIX_DIAG_NAME: "name", UNIX_DIAG_PEER: "peer", UNIX_DIAG_RQLEN: "rq", UNIX_DIAG_UID: "uid"}
_COLUMNS = ("type", "state", "inode", "cookie", "name", "peer", "rqueue", "wqueue", "uid")
_LATER = frozenset(("cookie", "peer", "wqueue", "uid"))  # made when first asked for, where the decoder can
#: made when asked for where the tail strategy read every message (unix_details reads the others' bytes)
_TAIL_DETAILS = frozenset(("shutdown", "skmem", "unix_vfs", "unix_pending"))
_NOW = tuple(c for c in _COLUMNS if c not in _LATER)
_DEFAULTS: dict[str, Any] = {"name": b"", "peer": 0, "rqueue": 0, "wqueue": 0, "uid": None}  # when not sent
_SHAPES: dict[tuple[int, ...], Any] = {}


def decode(buf: bytes | memoryview, op: str = "unix_diag") -> tuple[Batch, bool]:
    """One datagram of a unix_diag dump as a :class:`Batch`, and whether the dump ended.

    A datagram of the kernel's usual replies is read by the tail strategy
    (:func:`_by_tail`: a few C loops over all its messages, no Python code per
    message); any other (the dump's end, other messages, other layouts,
    malformed bytes) by the general one: one walk over the messages' lengths (``netlink.walk_dump``),
    then :func:`_grouped`, which raises :class:`DecodeError` on malformed bytes."""
    raw = buf if type(buf) is bytes else bytes(buf)
    fast = _by_tail(raw)
    if fast is not None:
        return _batch(*fast), False
    mv = memoryview(buf)
    starts, done = nl.walk_dump(mv, op, _FIXED.size)  # (raises on malformed bytes, the kernel's error)
    u32 = _U32.unpack_from
    lens = [u32(mv, start)[0] for start in starts]
    return _batch(_grouped(mv, starts, lens), mv, starts, lens), done


def _batch(cols: Sequence[Sequence[Any]], mv: memoryview, starts: list[int] | None, lens: list[int],
           more: Callable[[str], list[Any]] | None = None) -> Batch:
    """A batch of ``cols`` (the columns of :data:`_COLUMNS`, in order; with ``more`` those of
    :data:`_LATER` are left out, and made by it when asked for)."""
    b = Batch.__new__(Batch)
    for name, col in zip(_NOW if more is not None else _COLUMNS, cols):
        setattr(b, name, col if type(col) is list else list(col))
    b.n, b._mv, b._starts, b._lens, b._more = len(lens), mv, starts, lens, more
    return b


def _grouped(mv: memoryview, starts: list[int], lens: list[int]) -> Sequence[Sequence[Any]]:
    """The general strategy: the messages grouped by length (a stable sort), each group read by
    one struct whose format covers the message, its attribute headers and the attributes the
    listing reads, compiled once per attribute layout (:func:`_shape`) and checked: a group whose
    messages differ in layout is read message by message.  The rows go back to the kernel's
    order by the inverse of that sort."""
    n = len(starts)
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
    return list(zip(*rows)) if rows else [()] * len(_COLUMNS)


class _Shape:
    """How to read messages of one length and attribute layout: the struct, the getter of its
    attribute headers (equal in every message of a group), and ``canon``: a row of the struct ->
    the :data:`_COLUMNS` values (absent attributes filled with their defaults)."""

    __slots__ = ("struct", "heads", "canon")

    def __init__(self, st: _struct.Struct, heads: Any, canon: Any) -> None:
        self.struct, self.heads, self.canon = st, heads, canon


def _shape(mv: memoryview, start: int, length: int) -> _Shape:
    """The :class:`_Shape` of the message at ``start`` (cached by its layout)."""
    from _operator import itemgetter

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
    shape: _Shape = _Shape(_struct.Struct("".join(fmt)), itemgetter(*heads) if heads else _nothing, canon)
    _SHAPES[key] = shape
    return shape


def _nothing(row: Any) -> None:
    return None


def netids(b: Batch) -> list[str]:
    """ss's table name of each row (u_str, u_dgr, u_seq)."""
    return [NETIDS.get(t, "u_dgr") for t in b.type]


def records(b: Batch, details: bool = False) -> list[Socket]:
    """The batch's rows as records (with ``details``: shutdown, vfs, pending connections, skmem, read
    column by column: :func:`sockscope.kernel.unix_details.detail_columns`), made by C-level maps."""
    from sockscope.records import STATES, Endpoint, make_socket, state_of

    raws = b.name
    distinct = list(dict.fromkeys(raws))
    text = dict(zip(distinct, unix_names(distinct))).__getitem__
    new = tuple.__new__  # Endpoint(name, 0) without the named tuple's Python-level __new__
    local = map(new, repeat(Endpoint), zip(map(text, raws), repeat(0)))
    states = [STATES[s] if 0 <= s < len(STATES) else state_of(s) for s in set(b.state)]
    state = map(dict(zip(set(b.state), states)).__getitem__, b.state)
    netid = map(NETIDS.get, b.type, repeat("u_dgr"))
    none = repeat(None)
    # make_socket's positional fields: netid, family, state, recv_q, send_q, local, peer, inode, uid, cookie,
    # ifindex, peer_inode, v6only, shutdown, owners, netns, protocol, timer, expires, retrans, mark, cgroup_id,
    # cong, tcp_info, skmem, unix_vfs, unix_pending
    if not details:
        return list(map(make_socket, netid, repeat(AF_UNIX), state, b.rqueue, b.wqueue, local,
                        repeat(Endpoint("", 0)), b.inode, b.uid, b.cookie, repeat(0), b.peer))
    from sockscope.kernel.inet_details import named_skmem
    from sockscope.kernel.unix_details import detail_columns

    cols = detail_columns(b)
    if cols["skmem"] is not None:
        cols["skmem"] = named_skmem(cols["skmem"])

    def col(name: str) -> Any:
        got = cols[name]
        return none if got is None else got

    return list(map(make_socket, netid, repeat(AF_UNIX), state, b.rqueue, b.wqueue, local, repeat(Endpoint("", 0)),
                    b.inode, b.uid, b.cookie, repeat(0), b.peer, none, col("shutdown"), repeat(()), none, none,
                    repeat(0), repeat(0), repeat(0), none, none, none, none, col("skmem"), col("unix_vfs"),
                    col("unix_pending")))


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


__all__ = [
    "Batch", "decode", "records", "name_bytes", "netids", "encode_request", "decode_dump", "unix_name", "unix_names",
    "NETIDS", "AF_UNIX", "UNIX_DIAG_NAME", "UNIX_DIAG_VFS", "UNIX_DIAG_PEER", "UNIX_DIAG_ICONS", "UNIX_DIAG_RQLEN",
    "UNIX_DIAG_MEMINFO", "UNIX_DIAG_SHUTDOWN", "UNIX_DIAG_UID",
]
