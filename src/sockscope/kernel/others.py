"""netlink_diag and packet_diag: the ``nl`` and ``p_raw``/``p_dgr`` tables (sans IO
decoders, plus two small dump helpers that use the transport)."""

from __future__ import annotations

import struct

from sockscope._addr import AF_NETLINK, AF_PACKET
from sockscope.errors import DecodeError

from sockscope.kernel import netlink as nl
from sockscope.records import Endpoint, SkMem, Socket, make_socket, state_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

NDIAG_PROTO_ALL = 255
NDIAG_SHOW_MEMINFO = 1
NDIAG_SHOW_GROUPS = 2
NETLINK_DIAG_MEMINFO = 0
NETLINK_DIAG_GROUPS = 1

PACKET_SHOW_INFO = 1
PACKET_SHOW_MEMINFO = 0x10
PACKET_SHOW_FILTER = 0x20
PACKET_DIAG_FILTER = 7
PACKET_DIAG_INFO = 0
PACKET_DIAG_UID = 5
PACKET_DIAG_MEMINFO = 6

_NREQ = struct.Struct("=BBHIIII")
_NMSG = struct.Struct("=BBBBIIIIQ")  # family type protocol state portid dst_portid dst_group ino cookie
_PREQ = struct.Struct("=BBHIIII")
_PMSG = struct.Struct("=BBHIQ")  # family type num ino cookie
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_MEM2 = struct.Struct("=III")  # rmem_alloc rcvbuf wmem_alloc


def decode_skmem(raw: memoryview) -> SkMem | None:
    """``SK_MEMINFO_*`` u32 array (7 to 9 values) as :class:`SkMem`; None when too short."""
    n = min(len(raw) // 4, 9)
    if n < 7:
        return None
    return SkMem(*struct.unpack_from(f"={n}I", raw, 0))


def encode_netlink_request(seq: int = 1) -> bytes:
    payload = _NREQ.pack(AF_NETLINK, NDIAG_PROTO_ALL, 0, 0, NDIAG_SHOW_GROUPS | NDIAG_SHOW_MEMINFO, 0, 0)
    return nl.encode_message(nl.SOCK_DIAG_BY_FAMILY, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, payload)


def encode_packet_request(seq: int = 1) -> bytes:
    payload = _PREQ.pack(AF_PACKET, 0, 0, 0, PACKET_SHOW_INFO | PACKET_SHOW_MEMINFO | PACKET_SHOW_FILTER, 0, 0)
    return nl.encode_message(nl.SOCK_DIAG_BY_FAMILY, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, payload)


def _dump_loop(buf: bytes | memoryview, out: list[Socket], one: Callable[[memoryview], Socket], op: str) -> bool:
    payloads, done = nl.diag_messages(buf, op)
    out.extend(one(p) for p in payloads)
    return done


def decode_netlink_message(p: memoryview) -> Socket:
    """One ``netlink_diag_msg``: local = (protocol, portid), peer = (dst_group, dst_portid)."""
    if len(p) < _NMSG.size:
        raise DecodeError("truncated netlink_diag_msg")
    _fam, _type, proto, st, portid, dst_portid, dst_group, ino, cookie = _NMSG.unpack_from(p, 0)
    attrs = nl.parse_attrs(p, _NMSG.size)
    rq = wq = 0
    skmem = None
    mem = attrs.get(NETLINK_DIAG_MEMINFO)
    if mem is not None and len(mem) >= 12:
        rq, _rb, wq = _MEM2.unpack_from(mem, 0)
        skmem = decode_skmem(mem)
    groups = None
    g = attrs.get(NETLINK_DIAG_GROUPS)
    if g is not None and len(g) >= 4:
        groups = _U32.unpack_from(g, 0)[0]
    signed = _I32.unpack(_U32.pack(portid))[0]
    dst_signed = _I32.unpack(_U32.pack(dst_portid))[0]
    return make_socket(
        "nl", AF_NETLINK, state_of(7), rq, wq,
        Endpoint(str(proto), signed), Endpoint(str(dst_group) if st == 1 else "", dst_signed if st == 1 else 0),
        ino, None, cookie, 0, None, None, None, (), None, proto,
        skmem=skmem, groups=groups,
    )


def decode_packet_message(p: memoryview) -> Socket:
    """One ``packet_diag_msg``: local.port = interface index, protocol = ethertype."""
    if len(p) < _PMSG.size:
        raise DecodeError("truncated packet_diag_msg")
    _fam, ptype, num, ino, cookie = _PMSG.unpack_from(p, 0)
    attrs = nl.parse_attrs(p, _PMSG.size)
    rq = 0
    ifindex = 0
    uid = None
    skmem = None
    mem = attrs.get(PACKET_DIAG_MEMINFO)
    if mem is not None and len(mem) >= 4:
        rq = _U32.unpack_from(mem, 0)[0]
        skmem = decode_skmem(mem)
    info = attrs.get(PACKET_DIAG_INFO)
    pinfo = None
    if info is not None and len(info) >= 4:
        ifindex = _U32.unpack_from(info, 0)[0]
        if len(info) >= 24:
            _idx, version, _res, thresh, _ts, pflags = struct.unpack_from("=6I", info, 0)
            pinfo = (version, thresh, pflags)
    u = attrs.get(PACKET_DIAG_UID)
    if u is not None and len(u) >= 4:
        uid = _U32.unpack_from(u, 0)[0]
    bpf = None
    f = attrs.get(PACKET_DIAG_FILTER)
    if f is not None:
        bpf = tuple(struct.iter_unpack("=HBBI", bytes(f[: len(f) // 8 * 8])))
    netid = "p_raw" if ptype == 3 else "p_dgr"
    return make_socket(
        netid, AF_PACKET, state_of(7), rq, 0, Endpoint("", ifindex), Endpoint("", 0),
        ino, uid, cookie, ifindex, None, None, None, (), None, num, skmem=skmem, packet_info=pinfo, bpf=bpf,
    )


def decode_netlink_dump(buf: bytes | memoryview, out: list[Socket]) -> bool:
    return _dump_loop(buf, out, decode_netlink_message, "netlink diag")


def decode_packet_dump(buf: bytes | memoryview, out: list[Socket]) -> bool:
    return _dump_loop(buf, out, decode_packet_message, "packet diag")


def dump_netlink(details: bool = False) -> list[Socket]:
    from sockscope.kernel import transport

    out: list[Socket] = []
    transport.dump(encode_netlink_request(), lambda b: decode_netlink_dump(b, out), "netlink diag")
    return out


def dump_packet(details: bool = False) -> list[Socket]:
    from sockscope.kernel import transport

    out: list[Socket] = []
    transport.dump(encode_packet_request(), lambda b: decode_packet_dump(b, out), "packet diag")
    return out
