"""unix_diag requests and replies, sans IO."""

from __future__ import annotations

import os
import struct

from sockscope.errors import DecodeError
from sockscope.kernel import netlink as nl
from sockscope.kernel.others import decode_skmem
from sockscope.records import Endpoint, Socket, make_socket, state_of

AF_UNIX = 1

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
_MSG = struct.Struct("=BBBxIQ")  # family type state pad ino cookie
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


def decode_dump(
    buf: bytes | memoryview,
    out: list[Socket],
    details: bool = False,
    op: str = "unix_diag",
) -> bool:
    """Decode one datagram of a unix_diag dump into ``out``; True when done."""
    payloads, done = nl.diag_messages(buf, op)
    out.extend(decode_message(p, details) for p in payloads)
    return done


def decode_message(payload: memoryview, details: bool = False) -> Socket:
    """One ``unix_diag_msg`` with its attributes."""
    if len(payload) < MSG_LEN:
        raise DecodeError(f"truncated unix_diag_msg ({len(payload)} bytes)")
    _fam, stype, st, ino, cookie = _MSG.unpack_from(payload, 0)
    attrs = nl.parse_attrs(payload, MSG_LEN)
    name = ""
    peer = 0
    rq = wq = 0
    uid = None
    shutdown = None
    a = attrs.get(UNIX_DIAG_NAME)
    if a is not None:
        name = unix_name(bytes(a))
    a = attrs.get(UNIX_DIAG_PEER)
    if a is not None:
        peer = _u32(a, "UNIX_DIAG_PEER")
    a = attrs.get(UNIX_DIAG_RQLEN)
    if a is not None:
        if len(a) < 8:
            raise DecodeError("truncated UNIX_DIAG_RQLEN")
        rq, wq = _RQLEN.unpack_from(a, 0)
    a = attrs.get(UNIX_DIAG_UID)
    if a is not None:
        uid = _u32(a, "UNIX_DIAG_UID")
    extra: dict[str, object] = {}
    if details:
        a = attrs.get(UNIX_DIAG_SHUTDOWN)
        if a is not None and len(a):
            shutdown = a[0]
        a = attrs.get(UNIX_DIAG_VFS)
        if a is not None and len(a) >= 8:
            extra["unix_vfs"] = _RQLEN.unpack_from(a, 0)
        a = attrs.get(UNIX_DIAG_ICONS)
        if a is not None:
            extra["unix_pending"] = struct.unpack_from(f"={len(a) // 4}I", a, 0)
        a = attrs.get(UNIX_DIAG_MEMINFO)
        if a is not None:
            extra["skmem"] = decode_skmem(a)
    return make_socket(
        NETIDS.get(stype, "u_dgr"), AF_UNIX, state_of(st), rq, wq,
        Endpoint(name, 0), Endpoint("", 0), ino, uid, cookie, 0,
        peer, None, shutdown, (), None, None, **extra,
    )


def _u32(a: memoryview, what: str) -> int:
    if len(a) < 4:
        raise DecodeError(f"truncated {what}")
    return int(_U32.unpack_from(a, 0)[0])


__all__ = ["encode_request", "decode_dump", "decode_message", "unix_name", "NETIDS", "AF_UNIX"]
