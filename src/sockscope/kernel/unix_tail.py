"""The UNIX decoder's tail strategy: a unix_diag datagram of the kernel's usual replies read with a
few C loops over all its messages, no Python code per message (:func:`by_tail`; ``unix.decode``
reads any other datagram by its general strategy).

The kernel writes a UNIX socket's attributes in one order (net/unix/diag.c, sk_diag_fill): NAME
(bound sockets only, as long as the name), VFS (bound to a path: 12 bytes), PEER (connected ones:
8), ICONS (listeners: 4, and 4 for each connection waiting), RQLEN, MEMINFO, SHUTDOWN, UID, each
asked-for one of a fixed size but NAME and ICONS.  So the messages of a datagram differ only in
their head (a name or not) and their middle (a VFS, a peer, a listener's ICONS, or none), and end
with the same fixed attributes, at fixed offsets from each message's end.  And every message of a
dump starts with the same header but its length (type, flags, sequence, port id).

So one split of the datagram at the dump's sequence number cuts it into the messages (the four bytes
have no 0 byte, as a split's search skips fastest: socket data is full of zeros); each piece is a
message from its port id on, then the next message's length, type and flags.  The first bytes of every
piece (side by side, by one ``%`` format of them all: rows of one length) give the port id, the
columns of the unix_diag_msg and each message's first attribute header (a name's length, or none);
the last bytes (each piece right-aligned in a field of one width by another format: each ends a row)
the fixed attributes, the 8 bytes before them (a peer, or a listener's empty ICONS after its VFS)
and the next message's length, type and flags, each row 12 bytes wider for a VFS that ends before
the tail; the name is one slice.
What a message holds between its name and its tail is then known by its length alone: nothing,
4 (an ICONS with no connection waiting), 8 (a PEER), 12 (a VFS), or a VFS and one of those; each
such attribute's header is checked where it must be.  Every assumption is checked: the split
against each message's length, each message's length against its name and middle, every
attribute header's bytes (all messages at once: a column of words as the lanes of one integer,
see :func:`_lanes`); a datagram that does not fit (a listener with connections waiting among
them, say) is read by the general strategy, which raises on malformed bytes.  What the tail
strategy reads is then exactly what the general one would (tests/test_unix_decode.py holds them
to that, on misleading bytes too; tests/test_unix_details.py its details).
"""

from __future__ import annotations

import _struct
import sys
from itertools import compress, repeat
from _operator import getitem, lshift, or_

from sockscope.kernel import netlink as nl
from sockscope.kernel.layout import (
    UNIX_DIAG_ICONS, UNIX_DIAG_MEMINFO, UNIX_DIAG_MSG, UNIX_DIAG_NAME, UNIX_DIAG_PEER, UNIX_DIAG_RQLEN,
    UNIX_DIAG_SHUTDOWN, UNIX_DIAG_UID, UNIX_DIAG_VFS)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

FIXED = _struct.Struct("=IH10x" + UNIX_DIAG_MSG.struct.format.lstrip("="))  # nlmsghdr (length, type) + unix_diag_msg
_HDR = _struct.Struct("=IH")
_U32 = _struct.Struct("=I")
_FIXED = FIXED

_HEAD_LEN = 4 + UNIX_DIAG_MSG.size + 4  # of a piece: the port id, the unix_diag_msg, the first attribute header
_HEAD_FMT = b"%%.%db" % _HEAD_LEN  # a piece's first _HEAD_LEN bytes, by a format
_FIRST = 1 + UNIX_DIAG_MSG.size // 4  # the first attribute header, as a word of those rows
_NAME_AT = 4 + UNIX_DIAG_MSG.size + 4  # a name's bytes, in a piece
_NO_NAME = slice(0, 0)
PEER_WORD = nl.attr_word(8, UNIX_DIAG_PEER)  # a PEER attribute's header, read as a word
VFS_WORD = nl.attr_word(12, UNIX_DIAG_VFS)  # a VFS attribute's (the path's inode and device)
_ICONS_WORD = nl.attr_word(4, UNIX_DIAG_ICONS)  # a listener's ICONS, no connection waiting
_MIDDLE = (UNIX_DIAG_NAME, UNIX_DIAG_VFS, UNIX_DIAG_PEER, UNIX_DIAG_ICONS)  # what may come before the tail
_NEXT = bytes(8)  # the last message's "next length, type and flags"


class _Tail:
    """The fixed attributes that end every message of a datagram (their (length, type) headers,
    as the first message has them), read as words from ``size`` bytes before each message's end:
    first the 8 bytes before them (a PEER attribute where there is one: header, peer inode; a
    listener's empty ICONS is the second word), then each fixed attribute.  ``words``: (word index,
    the header word every message must have there); ``first``: the first fixed attribute's header
    word; ``rq`` (rqueue, then wqueue), ``uid``: their word index, or None where the attribute is not
    among them.  ``details``: whether the tail holds only the fixed attributes
    the kernel writes (RQLEN, MEMINFO, SHUTDOWN, UID), and where the SHUTDOWN byte's word (``shut``)
    and the MEMINFO words (``mem``, ``mem_n`` of them) are."""

    __slots__ = ("size", "words", "first", "rq", "uid", "details", "shut", "mem", "mem_n")

    def __init__(self, heads: tuple[tuple[int, int], ...]) -> None:
        self.words: list[tuple[int, int]] = []
        self.rq: int | None = None
        self.uid: int | None = None
        self.shut: int | None = None
        self.mem: int | None = None
        self.mem_n = 0
        self.details = all(t in _AFTER_PEER for _alen, t in heads)
        at = 2  # in words: the peer's header and inode come first
        for alen, atype in heads:
            self.words.append((at, nl.attr_word(alen, atype)))
            if atype == UNIX_DIAG_RQLEN:
                self.rq = at + 1
            elif atype == UNIX_DIAG_UID:
                self.uid = at + 1
            elif atype == UNIX_DIAG_SHUTDOWN and alen > 4:
                self.shut = at + 1
            elif atype == UNIX_DIAG_MEMINFO:
                self.mem, self.mem_n = at + 1, min((alen - 4) // 4, nl.SKMEM_MAX)
            at += nl.align4(alen) // 4
        self.size = at * 4
        self.first = self.words[0][1]


_AFTER_PEER = (UNIX_DIAG_RQLEN, UNIX_DIAG_MEMINFO, UNIX_DIAG_SHUTDOWN, UNIX_DIAG_UID)  # (each of a fixed size)
_TAILS: dict[tuple[tuple[int, int], ...], _Tail] = {}
_MIN_ALEN = {UNIX_DIAG_RQLEN: 12, UNIX_DIAG_UID: 8}  # what the listing reads of them must be there


def tail_of(mv: memoryview, length: int) -> _Tail | None:
    """The :class:`_Tail` of the message at the start of ``mv``: its attributes after the name, VFS,
    peer and ICONS, where they are all of the kinds this strategy reads (else None)."""
    heads: list[tuple[int, int]] = []
    a = _FIXED.size
    while a + 4 <= length:
        alen, atype = nl.NLATTR.unpack_from(mv, a)
        if alen < 4 or a + alen > length:
            return None
        heads.append((alen, atype))
        a += nl.align4(alen)
    if a != length:
        return None
    k = 0
    for skip in _MIDDLE:
        if k < len(heads) and heads[k][1] == skip:
            k += 1
    fixed = tuple(heads[k:])
    if not fixed or any(t & ~nl.NLA_TYPE_MASK or t in _MIDDLE or alen < _MIN_ALEN.get(t, 4) for alen, t in fixed):
        return None  # none, flagged types, a name, VFS, peer or ICONS among them, too short: not for this strategy
    if len({t for _alen, t in fixed}) != len(fixed):
        return None  # a kind twice (the kernel writes each once; a reader of attributes takes the last)
    tail = _TAILS.get(fixed)
    if tail is None:
        if len(_TAILS) > 64:
            _TAILS.clear()
        tail = _TAILS[fixed] = _Tail(fixed)
    return tail


def by_tail(raw: bytes) -> tuple[list[list[Any]], memoryview, None, list[int], Callable[[str], list[Any]]] | None:
    """The datagram's columns of ``unix._NOW``, its view, its messages' offsets (None: end to end,
    made when asked for) and lengths by the tail strategy (see the module doc), and the maker of its
    columns of ``unix._LATER`` and of its details (shutdown, skmem, unix_vfs, unix_pending); or None
    where it does not fit.  No step runs Python code per message."""
    total = len(raw)
    if not _FIXED.size + 4 <= total < 1 << 19 or _HDR.unpack_from(raw)[1] != nl.SOCK_DIAG_BY_FAMILY:
        return None  # (the checks below take lengths for 19-bit numbers)
    length = _U32.unpack_from(raw)[0]
    mv = memoryview(raw)
    tail = tail_of(mv[:length], length) if _FIXED.size + 4 <= length <= total else None
    if tail is None:
        return None
    # the messages: each from its port id on, then the next one's length, type and flags (the last: _NEXT)
    seq = raw[8:12]
    if 0 in seq:
        return None  # (not a sequence number this split is quick at: another strategy)
    pieces = (raw + _NEXT).split(seq)
    body = pieces[1:]
    n = len(body)
    sizes = list(map(len, body))
    row = tail.size + 8  # a tail row: the tail, then the next message's length, type and flags
    if len(pieces[0]) != 8 or min(sizes) < max(row, _HEAD_LEN):
        return None  # the sequence number also in the first message's header, or a message too short
    # each message's head (its first bytes: one ``%`` format of them all, the precision cuts them, no
    # object a message) and its tail (``netlink.piece_ends``: each ends a row of ``wide`` bytes)
    values = tuple(body)
    heads = (_HEAD_FMT * n) % values
    tails, wide = nl.piece_ends(values, sizes, row + 12, pad=True)  # (a VFS may end 12 bytes before a row)
    step = wide // 4  # words from a tail row to the next
    tail_words = memoryview(tails).cast("I")
    tw = tail_words[(wide - row) // 4 :]  # (from the first tail row)
    for at, word in tail.words:
        if tw[at::step].tobytes() != _U32.pack(word) * n:
            return None
    if tw[tail.size // 4 + 1 :: step][:-1].tobytes() != raw[4:8] * (n - 1):
        return None  # a message of another type or flags (the next's, read after each message)
    # The checks of every message at once: its words as the 32-bit lanes of one integer (no carry
    # ever crosses a lane), one C loop per operation.
    one = _lanes(_ONE * n)  # 1 in every lane
    lens_raw = _U32.pack(length) + tw[tail.size // 4 :: step][:-1].tobytes()
    lens_l = _lanes(lens_raw)
    # each message as long as the split says (a piece is 4 bytes shorter): the walk over the lengths frames them so
    if lens_l != _lanes(_struct.pack(f"={n}I", *sizes)) + 4 * one:
        return None
    hv = memoryview(heads)
    if hv.cast("I")[:: _HEAD_LEN // 4].tobytes() != raw[12:16] * n:
        return None  # a message of another port id
    firsts_raw = hv.cast("I")[_FIRST :: _HEAD_LEN // 4].tobytes()
    first = _lanes(firsts_raw)  # each message's first attribute header
    alen = (first >> _ALEN_AT) & (0xFFFF * one)
    named = one - _nonzero((first >> _TYPE_AT) & (0xFFFF * one), one)  # 1: UNIX_DIAG_NAME (unflagged)
    if named & (one - _nonzero(alen & (0xFFFC * one), one)):  # a name shorter than its header
        return None
    # what a message holds beyond its unix_diag_msg, its name (aligned) and the tail: 0, 4 (a
    # listener's ICONS with no connection waiting), 8 (a peer), or a VFS (12) and one of those; the
    # next checks read their headers.  (A message without a name has, where its first header is,
    # a VFS's, the ICONS', the peer's or the first fixed attribute's header: checked too.)
    bare = (_FIXED.size + tail.size - 8) * one + ((alen + 3 * one) & (0xFFFFFFFC * one) & (named * 0xFFFFFFFF))
    rest = (lens_l + (1 << 20) * one - bare) ^ ((1 << 20) * one)  # a shortfall sets bit 20
    firsts = memoryview(firsts_raw).cast("I").tolist()
    names, vfs, icons, ino, dev = {}, 0, 0, 0, 0
    for word in set(firsts):
        size, atype = nl.NLATTR.unpack(_U32.pack(word))
        names[word] = slice(_NAME_AT, 4 + UNIX_DIAG_MSG.size + size) if atype == UNIX_DIAG_NAME else _NO_NAME
    if rest & (0xFFFFFFF7 * one):  # more than a peer in some message
        if rest & (0xFFFFFFE3 * one) or (rest >> 1) & rest & (8 * one):
            return None  # (only 0, 4, 8, 12, 16 and 20 are)
        vfs = ((rest >> 4) | ((rest >> 3) & (rest >> 2))) & one  # 1 in the lanes of 12, 16 and 20
        rest -= 12 * vfs  # what is left: 0, 4 (the ICONS), 8 (a peer)
        icons = (rest >> 2) & one
        if icons and (_lanes(tw[1::step].tobytes()) ^ (_ICONS_WORD * one)) & (icons * 0xFFFFFFFF):
            return None
        if vfs:  # a VFS ends 0, 4 (an ICONS after it) or 8 bytes (a peer) before the tail's fixed
            # attributes: its three words are read from the rows' 5 words that begin 3 before the tail
            # row (the rows are 12 bytes wider for it), each message's from where its VFS is
            tv = tail_words[(wide - row) // 4 - 3 :]
            w = [_lanes(tv[j::step].tobytes()) for j in range(5)]
            full = vfs * 0xFFFFFFFF
            by_icons, by_peer = icons * 0xFFFFFFFF & full, ((rest >> 3) & one) * 0xFFFFFFFF & full
            by_end = full ^ by_icons ^ by_peer  # (0, 4, 8 bytes after it: one of the three)
            if ((w[0] & by_peer) | (w[1] & by_icons) | (w[2] & by_end)) != VFS_WORD * vfs:
                return None
            ino = (w[1] & by_peer) | (w[2] & by_icons) | (w[3] & by_end)
            dev = (w[2] & by_peer) | (w[3] & by_icons) | (w[4] & by_end)
    peers = ((rest >> 3) & one) * 0xFFFFFFFF  # all ones in the lanes of messages with a peer (masked: a 4 next door)
    if (_lanes(tw[0::step].tobytes()) ^ (PEER_WORD * one)) & peers:
        return None
    # the checks hold: read the columns
    cols = UNIX_DIAG_MSG.columns(hv, _HEAD_LEN, ("type", "state", "inode"), 4)
    if 2 * named.bit_count() > n:  # mostly named: each message's name (or b"") sliced
        cols.append(list(map(getitem, body, map(names.__getitem__, firsts))))
    else:  # mostly without a name (the usual: clients, pairs): b"", then each named one's put in place
        name_col = [b""] * n
        for i in compress(range(n), _view(named, n)):
            name_col[i] = body[i][names[firsts[i]]]
        cols.append(name_col)
    rq, uid = tail.rq, tail.uid
    cols.append(tw[rq::step].tolist() if rq is not None else [0] * n)

    def more(name: str) -> list[Any]:
        if name == "cookie":  # a u64 at an offset that is no multiple of 8 in these rows: two words,
            # the high ones read only where one is not 0
            words, stride = hv.cast("I"), _HEAD_LEN // 4
            low, high = words[_COOKIE_LOW::stride], words[_COOKIE_HIGH::stride]
            return (low.tolist() if not _lanes(high.tobytes()) else
                    list(map(or_, low.tolist(), map(lshift, high.tolist(), repeat(32)))))
        if name == "peer":
            return _words(_lanes(tw[1::step].tobytes()) & peers, n) if peers else [0] * n
        if name == "wqueue":
            return tw[rq + 1 :: step].tolist() if rq is not None else [0] * n
        if name == "uid":
            return tw[uid::step].tolist() if uid is not None else [None] * n
        if name == "unix_vfs":  # (the path's inode, device) where there is a VFS, else None
            if not vfs:
                return [None] * n
            at = compress(range(n), _view(vfs, n))  # (the rows with a VFS: paths, a few of all)
            inos, devs = _view(ino, n), _view(dev, n)  # (read at those rows alone)
            out: list[Any] = [None] * n
            for i in at:
                out[i] = (inos[i], devs[i])
            return out
        if name == "unix_pending":  # a listener's connections waiting: none (its ICONS empty), else None
            out = [None] * n
            if icons:
                for i in compress(range(n), _view(icons, n)):  # (the listeners: a few of all)
                    out[i] = ()
            return out
        return _from_tails(tail, tw, step, n, name)

    return cols, mv, None, memoryview(lens_raw).cast("I").tolist(), more  # (offsets: when asked for)


_ONE = _U32.pack(1)
_ALEN_AT, _TYPE_AT = (0, 16) if sys.byteorder == "little" else (16, 0)  # (length, type) in a header's word
_COOKIE_LOW = 1 + UNIX_DIAG_MSG.offset("cookie") // 4 + (sys.byteorder != "little")  # the cookie's words in a head row
_COOKIE_HIGH = 1 + UNIX_DIAG_MSG.offset("cookie") // 4 + (sys.byteorder == "little")


def _lanes(words: bytes) -> int:
    """Native u32 words as the 32-bit lanes of one integer."""
    return int.from_bytes(words, sys.byteorder)


def _words(lanes: int, n: int) -> list[int]:
    """The ``n`` lanes of :func:`_lanes`' integer as a list."""
    return _view(lanes, n).tolist()


def _view(lanes: int, n: int) -> memoryview:
    """The ``n`` lanes of :func:`_lanes`' integer as a view of native words (no int made for a lane
    not read)."""
    return memoryview(lanes.to_bytes(4 * n, sys.byteorder)).cast("I")


def _nonzero(lanes: int, one: int) -> int:
    """1 in each lane of ``lanes`` that is not 0, else 0 (``one``: 1 in every lane)."""
    low = 0x7FFFFFFF * one
    return (((lanes & low) + low) | lanes) >> 31 & one


def _from_tails(tail: _Tail, tw: memoryview, step: int, n: int, name: str) -> list[Any]:
    """A detail column (``shutdown``, ``skmem``) of a datagram :func:`by_tail` read, from its tails
    (``tw``: a row of ``step`` words a message; ``tail``: its :class:`_Tail`); AttributeError where the
    tail holds an attribute of another kind: ``unix_details`` reads those by the batch's bytes."""
    if not tail.details:
        raise AttributeError(name)
    if name == "shutdown":  # (the u8 is its word's first byte, in either byte order)
        return [None] * n if tail.shut is None else tw.cast("B")[tail.shut * 4 :: step * 4].tolist()
    col = nl.skmem_column(tw, tail.mem, step, tail.mem_n) if tail.mem is not None else None
    return [None] * n if col is None else col  # (9-tuples: inet_details.named_skmem)
