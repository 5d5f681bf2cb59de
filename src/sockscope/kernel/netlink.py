"""Netlink framing, sans IO: message headers, dumps, DONE/ERROR, attributes.

Contract: functions here take ``bytes``/``memoryview`` and return Python
values; they never perform I/O.  Malformed input raises
:class:`~sockscope.errors.DecodeError` and nothing else.
"""

from __future__ import annotations

import _struct  # struct.py only re-exports this C module: one module fewer to import
import sys as _sys

from sockscope.errors import DecodeError, NetlinkError, netlink_error
from sockscope.kernel.layout import NLATTR as NLATTR  # (the one definition: layout, with every struct)

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Iterator

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

# include/uapi/linux/sock_diag.h
SOCK_DIAG_BY_FAMILY = 20
SOCK_DESTROY = 21
#: the legacy inet_diag request/reply type for TCP (one dump of both families)
TCPDIAG_GETSOCK = 18

NLA_TYPE_MASK = 0x3FFF

NLMSGHDR = _struct.Struct("=IHHII")  # len, type, flags, seq, pid
_I32 = _struct.Struct("=i")
HDRLEN = NLMSGHDR.size


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
