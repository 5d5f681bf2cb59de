"""Netlink framing, sans IO: message headers, dumps, DONE/ERROR, attributes.

Contract: functions here take ``bytes``/``memoryview`` and return Python
values; they never perform I/O.  Malformed input raises
:class:`~sockscope.errors.DecodeError` and nothing else.
"""

from __future__ import annotations

import _struct  # struct.py only re-exports this C module: one module fewer to import
import sys as _sys
from itertools import repeat
from _operator import add, and_, getitem, itemgetter

from sockscope.errors import DecodeError, NetlinkError, netlink_error
from sockscope.kernel.layout import NLATTR as NLATTR  # (the one definition: layout, with every struct)

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from struct import error as _StructError  # (the stubs of _struct leave it out)
    from typing import Any, Callable, Iterator
else:
    _StructError = _struct.error

# include/uapi/linux/netlink.h
NETLINK_SOCK_DIAG = 4
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
#: the first 6 bytes of a dump's NLMSG_DONE (its length, 20, and its type)
DONE_HEAD = (16 + 4).to_bytes(4, _sys.byteorder) + NLMSG_DONE.to_bytes(2, _sys.byteorder)

#: The sequence number of sockscope's dump requests.  The kernel repeats it in every message of the
#: dump, so a decoder can cut a datagram into its messages by one search for these bytes, in C,
#: before it checks the cut against the messages' lengths (:func:`cut_dump`).  None of
#: the four bytes is 0 and each has its high bit set: rare in socket data (counters, ports, ASCII
#: names), so the search skips ahead, and a false match is rare (it only sends the datagram to the
#: walk over its lengths).
DUMP_SEQ = 0xF1E3D5C7

# include/uapi/linux/sock_diag.h
SOCK_DIAG_BY_FAMILY = 20
SOCK_DESTROY = 21
#: the legacy inet_diag request/reply type for TCP (one dump of both families)
TCPDIAG_GETSOCK = 18

NLA_TYPE_MASK = 0x3FFF

NLMSGHDR = _struct.Struct("=IHHII")  # len, type, flags, seq, pid
_I32 = _struct.Struct("=i")
HDRLEN = NLMSGHDR.size


def attr_word(length: int, attr_type: int) -> int:
    """An attribute's header (length, type) as the native u32 its four bytes are: what a column of
    attribute headers read as words holds (the UNIX decoder's and its details' checks)."""
    return int.from_bytes(NLATTR.pack(length, attr_type), _sys.byteorder)


def align4(n: int) -> int:
    """Round ``n`` up to netlink's 4-byte alignment."""
    return (n + 3) & ~3


def encode_message(msg_type: int, flags: int, seq: int, payload: bytes, pid: int = 0) -> bytes:
    """One netlink message: header + payload (padded)."""
    length = HDRLEN + len(payload)
    pad = b"\0" * (align4(length) - length)
    return NLMSGHDR.pack(length, msg_type, flags, seq, pid) + payload + pad


def encode_attr(attr_type: int, payload: bytes) -> bytes:
    """One netlink attribute (``struct nlattr``) with padding."""
    length = NLATTR.size + len(payload)
    return NLATTR.pack(length, attr_type) + payload + b"\0" * (align4(length) - length)


def iter_messages(buf: bytes | memoryview, op: str = "sock_diag") -> Iterator[tuple[int, int, memoryview]]:
    """Yield ``(type, flags, payload)`` for each message in one datagram.

    Raises :class:`DecodeError` on truncation; ``NLMSG_ERROR`` with a
    non-zero error becomes :class:`NetlinkError`.  ``NLMSG_DONE`` is yielded
    (its payload may carry an error: see :func:`done_error`).
    """
    mv = memoryview(buf)
    end = len(mv)
    off = 0
    unpack = NLMSGHDR.unpack_from
    while off < end:
        if end - off < HDRLEN:
            raise DecodeError(f"truncated netlink header at offset {off}")
        length, mtype, flags, _seq, _pid = unpack(mv, off)
        if length < HDRLEN or off + length > end:
            raise DecodeError(f"bad netlink message length {length} at offset {off}")
        if mtype == NLMSG_ERROR:
            code = error_code(mv[off + HDRLEN : off + length])
            if code:
                raise netlink_error(op, -code)
        yield mtype, flags, mv[off + HDRLEN : off + length]
        off += align4(length)


def diag_messages(buf: bytes | memoryview, op: str) -> tuple[list[memoryview], bool]:
    """Frame one datagram of a sock_diag dump: the payloads of its
    ``SOCK_DIAG_BY_FAMILY`` messages (``TCPDIAG_GETSOCK`` in a legacy TCP
    dump), and whether ``NLMSG_DONE`` ended the dump.

    Kernel errors (``NLMSG_ERROR``, or an error carried by ``NLMSG_DONE``)
    raise :class:`NetlinkError`; truncation raises :class:`DecodeError`.
    Every decoder of a dump shares this framing (the listing's hot loop,
    ``inet.decode_raw``, inlines it).
    """
    payloads: list[memoryview] = []
    for mtype, _flags, payload in iter_messages(buf, op):
        if mtype == SOCK_DIAG_BY_FAMILY or mtype == TCPDIAG_GETSOCK:
            payloads.append(payload)
        elif mtype == NLMSG_DONE:
            check_done(payload, op)
            return payloads, True
    return payloads, False


def walk_dump(mv: memoryview, op: str, head: int) -> tuple[list[int], bool]:
    """A sock_diag datagram's message offsets and whether the dump ended in it: one pass over the
    messages' lengths and types (other messages skipped, NLMSG_DONE or NLMSG_ERROR ending it), which
    raises :class:`DecodeError` on malformed bytes (a message shorter than ``head``, its header and
    its family's fixed part) and the kernel's error."""
    unpack = _LEN_TYPE.unpack_from
    starts: list[int] = []
    keep = starts.append
    off = 0
    end = len(mv)
    done = False
    while off < end:
        if end - off < 16:
            raise DecodeError(f"truncated netlink header at offset {off}")
        length, mtype = unpack(mv, off)
        if length < 16 or off + length > end:
            raise DecodeError(f"bad netlink message length {length} at offset {off}")
        if mtype in _DIAG:
            if length < head:
                raise DecodeError(f"truncated sock_diag message ({length - 16} bytes, less than its fixed part)")
            keep(off)
            try:  # the hot loop: the messages after it, while they are sock_diag ones, whole at least to
                # their attributes (a last one that runs past the datagram's end is caught below)
                off += (length + 3) & ~3
                length, mtype = unpack(mv, off)
                while length >= head and mtype in _DIAG:
                    keep(off)
                    off += (length + 3) & ~3
                    length, mtype = unpack(mv, off)
            except _StructError:  # past the datagram's end
                pass
            continue  # (the outer loop looks at what stopped the hot one)
        if mtype == NLMSG_DONE or mtype == NLMSG_ERROR:
            diag_messages(mv[off:], op)  # raises the kernel's error, if any
            done = True
            break
        off += (length + 3) & ~3
    if starts and starts[-1] + unpack(mv, starts[-1])[0] > end:  # only the last one can overrun
        raise DecodeError(f"bad netlink message length {unpack(mv, starts[-1])[0]} at offset {starts[-1]}")
    return starts, done


def cut_dump(raw: bytes, op: str, head: int, longest: int
             ) -> tuple[memoryview, list[int], bool, tuple[bytes, list[bytes]]] | None:
    """The ``head`` bytes that start each of a sock_diag datagram's messages (their header, not
    read but for the length: a 16-byte gap, then the family's fixed part), side by side; the
    messages' lengths; whether the dump ended in it; and the pieces it was cut into (see below),
    with the sequence number that cut them (:func:`gather_pieces` joins some of them into whole
    messages side by side, with no Python code per message).  Made with no Python code per message:
    every message of a dump repeats the request's sequence number (:data:`DUMP_SEQ`), so one split
    of the datagram (its NLMSG_DONE aside) at those four bytes cuts it into pieces, each a message
    from its port id to the next message's length, type and flags.  Believed only where it checks:
    each message as long as its piece says, at least ``head`` long, 4-aligned, all of one sock_diag
    type; else None, and :func:`walk_dump` frames the datagram (a false match in a socket's bytes, a
    sequence number with a 0 byte, as socket data is full of, another kind of message among
    them), which also raises on malformed bytes.  The search costs by the byte and the walk by
    the message: None too where the first message is longer than ``longest``."""
    seq = raw[8:12]
    if len(raw) < head or not head <= _U32_FROM(raw)[0] <= longest or 0 in seq:
        return None
    done = raw[-20:-14] == DONE_HEAD  # (the usual last datagram: the messages, then NLMSG_DONE)
    pieces = (raw[:-20] if done else raw).split(seq)
    first = pieces[0]
    n = len(pieces) - 1
    if len(first) != 8 or not n:
        return None
    body = pieces[1:]
    values = tuple(body)
    # every piece's first bytes, each after 12 bytes of gap (the message's header: its port id
    # follows, then its fixed part from byte 16), by one ``%`` format of them all (no object a
    # message); and each piece's last 8, the next message's length, type and flags (piece_ends)
    heads = memoryview(_head_format(head) * n % values)
    sizes = list(map(len, body))
    tails, wide = piece_ends(values[:-1], sizes[:-1], 8)
    ends = memoryview(first + tails)
    # (the first message's length, type and flags are the first 8 bytes; message k's end row k - 1,
    # at byte k * wide: word k * at)
    at = wide // 4
    lens, types = ends.cast("I")[::at].tolist(), ends.cast("H")[2 :: 2 * at].tolist()
    sizes = list(map(add, sizes, repeat(4)))  # a piece is its message less 4 bytes, the
    sizes[-1] += 8  # last one less 12 (nothing of a next message after it)
    if (lens != sizes or types.count(types[0]) != n or types[0] not in _DIAG or min(lens) < head
            or any(map(and_, lens, repeat(3)))):  # (then every piece holds a whole fixed part)
        return None
    if done:
        diag_messages(raw[-20:], op)  # raises the kernel's error, if any
    return heads, lens, done, (seq, body)


def piece_ends(values: tuple[bytes, ...], sizes: list[int], size: int, pad: bool = False) -> tuple[bytes, int]:
    """The last ``size`` bytes (a multiple of 4) of each of the pieces ``values`` (their lengths
    ``sizes``) side by side, each at the end of a row, and the rows' stride.  One ``%`` format of
    the pieces right-aligned in fields as wide as the widest, so that each piece's end ends its
    field: no object a piece (a slice of each and a join cost twice as much).  Where that text
    would pass :data:`FORMAT_MAX` bytes (one long piece among short ones: a large block costs the
    allocator more than the slices), or a piece is shorter than ``size``, the ends' slices joined
    (rows of ``size``: a short piece's is short, for the caller's checks to refuse).  ``pad``: a
    piece shorter than ``size`` is welcome, spaces before it fill its row (the rows at least ``size``
    wide), so that every row holds as many bytes before each piece's end."""
    if not values:
        return b"", size
    wide = max(sizes)
    if pad and wide < size:
        wide = size
    if wide * len(values) <= FORMAT_MAX and not wide & 3 and (pad or min(sizes) >= size):
        return (b"%%%db" % wide * len(values)) % values, wide
    ends = map(_cut, values, repeat(slice(-size, None)))
    return b"".join(map(bytes.rjust, ends, repeat(size)) if pad else ends), size


def gather_pieces(pieces: tuple[bytes, list[bytes]], rows: list[int]) -> memoryview:
    """The messages ``rows`` of a datagram :func:`cut_dump` cut (``pieces``), all of one length,
    side by side: one join of their pieces with the sequence number between them.  A piece is its
    message from the port id (byte 12) on, then the next message's first 8 bytes, so each message
    is then whole from byte 8 (its sequence number) to its end, at a stride of its length: the
    first 8 bytes of each are another message's (only the last row's end may lack the 8 bytes
    after it).  What reads the messages' attributes reads them there; their length and type the
    cut has checked already."""
    seq, body = pieces
    return memoryview(seq.join([_PAD8, *map(body.__getitem__, rows)]))


_DIAG = SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK  # the types of a dump's messages
_LEN_TYPE = _struct.Struct("=IH")  # nlmsghdr's length and type
_U32_FROM = _struct.Struct("=I").unpack_from
_GAP = bytes(16)  # zeros for the first 12 bytes of each message's header, in cut_dump's fixed parts
#: the most bytes a ``%`` format of a datagram's pieces makes (more: their slices joined; a larger block
#: costs the allocator more, past glibc's mmap threshold of 128 KiB)
FORMAT_MAX = 1 << 17
_HEAD_FORMATS: dict[int, bytes] = {}
_PAD8 = bytes(8)  # the first message's first 8 bytes, in gather_pieces' rows
_cut: Callable[[bytes, slice], bytes] = getitem  # type: ignore[assignment]  # (C: bytes.__getitem__ is slower)


def _head_format(head: int) -> bytes:
    """cut_dump's format of one piece's fixed part: 12 bytes of gap, then the piece's first ``head - 12``."""
    got = _HEAD_FORMATS.get(head)
    if got is None:
        got = _HEAD_FORMATS[head] = _GAP[:12] + b"%%.%db" % (head - 12)
    return got


def error_code(payload: memoryview | bytes) -> int:
    """The (negative errno or 0) ``error`` of an ``NLMSG_ERROR`` payload."""
    if len(payload) < 4:
        raise DecodeError("truncated NLMSG_ERROR")
    return int(_I32.unpack_from(payload, 0)[0])


def done_error(payload: memoryview | bytes) -> int:
    """The error carried in an ``NLMSG_DONE`` payload (0 when none or absent)."""
    if len(payload) < 4:
        return 0
    return -int(_I32.unpack_from(payload, 0)[0])


def check_done(payload: memoryview | bytes, op: str) -> None:
    """Raise the matching :class:`NetlinkError` if a DONE message carries an error."""
    code = done_error(payload)
    if code:
        raise netlink_error(op, code)


def u8_flag(payload: memoryview | None) -> bool | None:
    """A u8 attribute's payload as a flag (None where the attribute is absent or empty)."""
    return bool(payload[0]) if payload is not None and len(payload) else None


def u8_column(body: memoryview, stride: int, head: int, rows: list[int], kind: int) -> list[bool | None] | None:
    """:func:`u8_flag` of attribute ``kind`` of the messages ``rows`` (ascending) of ``body``, messages
    ``stride`` bytes apart whose attributes start ``head`` bytes in, read column at once: where the
    attributes up to it stand alike in every one of them (the kernel fills a dump's sockets'
    attributes in one order), as in the first.  None where they do not, where it is not a flag or
    the first has none (read each with :func:`parse_attrs`)."""
    start, at, heads = rows[0] * stride, head, []
    while at + 4 <= stride:
        size, got = NLATTR.unpack_from(body, start + at)
        if size < 4:
            break
        heads.append(at)
        if got & 0x3FFF == kind:  # (NLA_TYPE_MASK: the type without its flags)
            if size != 5 or at + 5 > stride:  # (its byte past the message: parse_attrs says what is wrong)
                return None
            pick, words, n = itemgetter(*rows, rows[0]), body.cast("I"), len(rows)
            for h in heads:  # each header, in every row: the first row's
                col = pick(words[h // 4 :: stride // 4])
                if col.count(col[0]) != n + 1:
                    return None
            return list(map(bool, pick(body[at + 4 :: stride])[:n]))
        at += (size + 3) & ~3
    return None


#: SK_MEMINFO (linux/sock_diag.h: ``SK_MEMINFO_*`` u32): fewer values than this is no skmem; past 9
#: (drops) the kernel's newer ones are not read
SKMEM_MIN, SKMEM_MAX = 7, 9


def skmem_tuples(cols: list[Any]) -> list[Any]:
    """Rows of SK_MEMINFO from its ``cols`` (``SKMEM_MIN`` to ``SKMEM_MAX`` columns, each a list or a
    ``repeat`` of one value): each row's as a 9-tuple, backlog and drops None where absent (the
    records make them :class:`~sockscope.records.SkMem`: ``inet_details.named_skmem``)."""
    return list(zip(*cols, *[repeat(None)] * (SKMEM_MAX - len(cols))))


def skmem_column(words: memoryview, at: int, step: int, k: int) -> list[Any] | None:
    """The SK_MEMINFO attribute of rows of ``step`` words side by side (``words``), its ``k`` values at
    word ``at`` of each row: :func:`skmem_tuples`; fewer than ``SKMEM_MIN`` values: None (no skmem), as
    ``others.decode_skmem`` reads one message's.  A value the same in every row is not read row by
    row, and where all are (idle sockets share theirs) every row gets the same tuple: one object,
    which a text maker can tell by identity (:func:`sockscope.render.details.skmem_texts`)."""
    if k < SKMEM_MIN:
        return None
    k, n = min(k, SKMEM_MAX), len(words[at::step])
    if not n:
        return []
    cols: list[Any] = []
    first: list[int] = []  # the values of a column the same in every row
    for j in range(k):
        col = words[at + j :: step]
        if col.tobytes() == col[:1].tobytes() * n:
            first.append(col[0])
            cols.append(repeat(col[0]))
        else:
            cols.append(col.tolist())
    if len(first) == k:
        return [(*first, *(None,) * (SKMEM_MAX - k))] * n
    return skmem_tuples(cols)


def parse_attrs(buf: memoryview | bytes, offset: int = 0) -> dict[int, memoryview]:
    """Attributes from ``offset`` to the end as ``{type: payload}``.

    Unknown types are kept (as raw payloads); a later duplicate wins.
    """
    mv = memoryview(buf)
    end = len(mv)
    attrs: dict[int, memoryview] = {}
    off = offset
    unpack = NLATTR.unpack_from
    while off + 4 <= end:
        alen, atype = unpack(mv, off)
        if alen < 4 or off + alen > end:
            raise DecodeError(f"bad attribute length {alen} (type {atype & NLA_TYPE_MASK})")
        attrs[atype & NLA_TYPE_MASK] = mv[off + 4 : off + alen]
        off += (alen + 3) & ~3
    return attrs


__all__ = [
    "NETLINK_SOCK_DIAG",
    "SOCK_DIAG_BY_FAMILY",
    "SOCK_DESTROY",
    "NLM_F_REQUEST",
    "NLM_F_DUMP",
    "NLM_F_ACK",
    "NLMSG_DONE",
    "NLMSG_ERROR",
    "NetlinkError",
    "align4",
    "encode_message",
    "encode_attr",
    "iter_messages",
    "diag_messages",
    "parse_attrs",
    "check_done",
    "done_error",
    "error_code",
]
