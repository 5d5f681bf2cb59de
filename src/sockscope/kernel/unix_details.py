"""The records' details of a UNIX batch, column by column: what :func:`details_of` gives message by
message (shutdown, the bound path's inode and device, a listener's pending connections, skmem).

The kernel writes a UNIX socket's attributes in one order (net/unix/diag.c, ``sk_diag_fill``): NAME
(bound sockets), VFS (bound to a path), PEER (connected), ICONS (listeners), then RQLEN, MEMINFO,
SHUTDOWN and UID as asked for, each of a fixed size.  So, for every message of a batch at once (each
step one C-level gather of a few bytes a message and strided reads of them):

* the fixed attributes end every message: the tail the first message has is read from each one's
  end, its headers checked in every message;
* what follows the message's head is its name (its first attribute's length, if that is a NAME),
  then a VFS attribute or not (its header checked);
* what is left between those and the tail must be nothing, a PEER attribute or a listener's ICONS
  (its header checked, its length all that is left): so every attribute of the message is known and
  none can repeat.  A listener's pending connections (few) are read listener by listener.

Where the names' decoder read a datagram by its tail strategy (``unix_tail.by_tail``: the usual
datagrams, with VFS and empty ICONS attributes too), it has every detail already and gives the columns
itself (``Batch.shutdown``, ``.skmem``, ``.unix_vfs``, ``.unix_pending``); the checks below (:func:`read`)
are for the other datagrams (a listener with connections waiting among their sockets, say), each
read alone: one such datagram leaves the others' columns as the tail strategy read them.

A message that does not fit (any layout not the kernel's usual) is read by
:func:`details_of`, message by message, as is a whole batch whose first message's tail is not of
that kind; tests/test_unix_details.py holds the two to the same columns, on made bytes too.
"""

from __future__ import annotations

import _struct
from itertools import compress, repeat
from _operator import add, eq, rshift, sub

from sockscope.kernel import netlink as nl
from sockscope.kernel.layout import (
    UNIX_DIAG_ICONS, UNIX_DIAG_MEMINFO, UNIX_DIAG_MSG, UNIX_DIAG_NAME, UNIX_DIAG_PEER, UNIX_DIAG_SHUTDOWN,
    UNIX_DIAG_VFS)
from sockscope.kernel.unix_tail import VFS_WORD, tail_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Collection

    from sockscope.kernel.unix import Batch

FIELDS = ("shutdown", "unix_vfs", "unix_pending", "skmem")
_HEAD = 16 + UNIX_DIAG_MSG.size  # a message's header and unix_diag_msg: its attributes follow


def detail_columns(b: Batch, fields: Collection[str] = FIELDS) -> dict[str, list[Any] | None]:
    """Each detail field's column (None: None in every row) of the UNIX batch ``b``: the batch's own
    (each datagram's: what the tail strategy read, else :func:`read` of its bytes), else :func:`read`.
    Only those of ``fields`` are made (the table's: what its options show); the others are None."""
    n = b.n
    out: dict[str, list[Any] | None] = dict.fromkeys(FIELDS)
    if not n:
        return out
    names = [name for name in FIELDS if name in fields]
    try:
        made: Any = [getattr(b, name) for name in names]
    except AttributeError:  # (a tail of an unusual kind: see from_tails)
        got = read(b)
        return {name: got[name] if name in fields else None for name in FIELDS}
    for name, col in zip(names, made):  # (counted only where the first is None: most columns have none)
        out[name] = None if col[0] is None and col.count(None) == n else col
    return out


def read(b: Batch) -> dict[str, list[Any] | None]:
    """:func:`detail_columns` of ``b`` read from its messages' bytes, by the checks of the module doc."""
    n = b.n
    out: dict[str, list[Any] | None] = dict.fromkeys(FIELDS)
    if not n:
        return out
    starts = b._offsets()
    lens = b._lens
    raw = b._mv.tobytes()
    tail = tail_of(memoryview(raw)[starts[0] : starts[0] + lens[0]], lens[0])  # (the tail strategy's reading)
    size = tail.size - 8 if tail is not None else 0  # (its rows begin with the 8 bytes before the fixed ones)
    if tail is None or min(lens) < _HEAD + size or len(raw) & 3 or lens[0] & 3:
        return _walked(b, range(n))
    heads = [(4 * at - 8, word) for at, word in tail.words]  # (offset in the fixed attributes, header word)
    words = memoryview(raw).cast("I")  # (every offset read below is a multiple of 4: messages, attributes)
    at_tail = list(map(sub, map(add, starts, lens), repeat(size)))
    if any(_at(words, at_tail, at).count(word) != n for at, word in heads):
        return _walked(b, range(n))  # (a message whose tail is another: read each one)
    # each message's first attribute (its name, if a NAME), then a VFS or not, then a PEER, a listener's
    # ICONS or nothing
    first = _halves(_at(words, starts, _HEAD))
    skip = [(a + 3) & ~3 if t == UNIX_DIAG_NAME and a >= 4 else -1 if t == UNIX_DIAG_NAME else 0
            for a, t in zip(first[0::2], first[1::2])]  # (-1: a NAME shorter than its header)
    at_vfs = [start + _HEAD + k if 0 <= k <= ln - _HEAD - size - 4 else start + _HEAD
              for start, ln, k in zip(starts, lens, skip)]  # (a name past the tail: read in place, odd anyway)
    has_vfs = list(map(eq, _at(words, at_vfs), repeat(VFS_WORD)))
    room = [ln - _HEAD - k - size for ln, k in zip(lens, skip)]  # after the name: VFS, PEER, ICONS, or nothing
    at_mid = [a + 12 if v and r >= 16 else a for a, v, r in zip(at_vfs, has_vfs, room)]  # after the VFS
    mids = _halves(_at(words, at_mid))  # the header there: a PEER's, a listener's ICONS
    pending: list[tuple[int, int]] = []  # (row, its ICONS' length): the listeners (their pending connections)
    odd: list[int] = []
    for i, (k, v, r, alen, atype) in enumerate(zip(skip, has_vfs, room, mids[0::2], mids[1::2])):
        mid = r - 12 * v
        if k < 0 or (mid and not (mid == 8 == alen and atype == UNIX_DIAG_PEER)):
            if k >= 0 and atype == UNIX_DIAG_ICONS and alen == mid >= 4:
                pending.append((i, mid))
            else:
                odd.append(i)
    if tail.shut is not None:  # (the u8 is its word's first byte, in either byte order)
        out["shutdown"] = list(map(raw.__getitem__, map(add, at_tail, repeat(4 * tail.shut - 8))))
    if tail.mem is not None and tail.mem_n >= nl.SKMEM_MIN:  # skmem (fewer values: none)
        out["skmem"] = nl.skmem_tuples([_at(words, at_tail, 4 * (tail.mem + j) - 8) for j in range(tail.mem_n)])
    if any(has_vfs):
        where = list(compress(at_vfs, has_vfs))
        pairs = dict(zip(compress(range(n), has_vfs), zip(_at(words, where, 4), _at(words, where, 8))))
        out["unix_vfs"] = list(map(pairs.get, range(n)))  # (ino, dev); None where there is no VFS
    if pending:  # a listener's ICONS: the inodes of the connections waiting for it (none: an empty one)
        waiting: list[Any] = [None] * n
        out["unix_pending"] = waiting
        for i, mid in pending:
            waiting[i] = _struct.unpack_from(f"={(mid - 4) // 4}I", raw, at_mid[i] + 4) if mid > 4 else ()
    if odd:  # message by message (a listener's pending connections among them)
        walked = _walked(b, odd)
        for name in FIELDS:
            got = walked[name]
            col = out[name]
            if col is None:
                if got is None:
                    continue
                col = out[name] = [None] * n
            for i, v in zip(odd, got if got is not None else repeat(None)):
                col[i] = v
    for name in FIELDS:
        col = out[name]
        if col is not None and col.count(None) == n:
            out[name] = None
    return out


def _at(words: memoryview, offsets: list[int], plus: int = 0) -> list[int]:
    """The native u32 at each of ``offsets`` (+ ``plus``; multiples of 4) of the bytes ``words`` shows:
    a C-level map, no object made a message but the int (a slice and a join of them cost ~4 ms for 20k)."""
    if plus:
        return list(map(words.__getitem__, map(rshift, map(add, offsets, repeat(plus)), repeat(2))))
    return list(map(words.__getitem__, map(rshift, offsets, repeat(2))))


def _halves(words: list[int]) -> list[int]:
    """Attribute headers read as u32 words, as their (length, type) halves side by side."""
    return memoryview(_struct.pack(f"={len(words)}I", *words)).cast("H").tolist()


def details_of(raw: memoryview) -> dict[str, Any]:
    """The details of one message's attributes (``raw``), by ``parse_attrs`` (the reference)."""
    attrs = nl.parse_attrs(raw)
    extra: dict[str, Any] = {}
    a = attrs.get(UNIX_DIAG_SHUTDOWN)
    if a is not None and len(a):
        extra["shutdown"] = a[0]
    a = attrs.get(UNIX_DIAG_VFS)
    if a is not None and len(a) >= 8:
        extra["unix_vfs"] = _struct.unpack_from("=II", a, 0)
    a = attrs.get(UNIX_DIAG_ICONS)
    if a is not None:
        extra["unix_pending"] = _struct.unpack_from(f"={len(a) // 4}I", a, 0)
    a = attrs.get(UNIX_DIAG_MEMINFO)
    if a is not None:
        from sockscope.kernel.others import decode_skmem

        extra["skmem"] = decode_skmem(a)
    return extra



def _walked(b: Batch, rows: Any) -> dict[str, list[Any] | None]:
    """The columns of ``rows`` of ``b``, message by message (:func:`details_of`)."""
    got = [details_of(b.attrs(i)) for i in rows]
    out: dict[str, list[Any] | None] = {}
    for name in FIELDS:
        col = [d.get(name) for d in got]
        out[name] = None if col.count(None) == len(col) else col
    return out
