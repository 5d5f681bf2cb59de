"""inet_diag (TCP, UDP, …) requests and replies, sans IO.

``inet_diag_req_v2`` is encoded by :func:`encode_request`; replies are decoded
by :func:`decode_dump`, the hot loop: one pass over a received datagram with
precompiled structs, appending :class:`~sockscope.records.Socket` records.
"""

from __future__ import annotations

import struct
import sys

from sockscope._addr import AF_INET, AF_INET6, ntop4, ntop6
from sockscope.errors import DecodeError
from sockscope.kernel import netlink as nl

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Sequence

    from sockscope.records import Socket

# The records (and the dataclass machinery behind them) are imported by the
# decoders that build them, on first use: the listing's fast paths below never
# need them, and start-up time is a feature.

# include/uapi/linux/inet_diag.h
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_REQ_PROTOCOL = 3
INET_DIAG_MEMINFO = 1
INET_DIAG_INFO = 2
INET_DIAG_VEGASINFO = 3
INET_DIAG_CONG = 4
INET_DIAG_TOS = 5
INET_DIAG_TCLASS = 6
INET_DIAG_SKMEMINFO = 7
INET_DIAG_SHUTDOWN = 8
INET_DIAG_PROTOCOL = 10
INET_DIAG_SKV6ONLY = 11
INET_DIAG_DCTCPINFO = 9
INET_DIAG_MARK = 15
INET_DIAG_BBRINFO = 16
INET_DIAG_CLASS_ID = 17
INET_DIAG_CGROUP_ID = 21
INET_DIAG_SOCKOPT = 22

IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_DCCP = 33
IPPROTO_SCTP = 132
IPPROTO_RAW = 255
IPPROTO_MPTCP = 262

NETIDS = {
    IPPROTO_TCP: "tcp",
    IPPROTO_UDP: "udp",
    IPPROTO_DCCP: "dccp",
    IPPROTO_SCTP: "sctp",
    IPPROTO_RAW: "raw",
    IPPROTO_MPTCP: "mptcp",
}

# struct inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid
_REQ = struct.Struct("=BBBxI")
_SOCKID_LEN = 48
# struct inet_diag_msg: family state timer retrans | sport dport (be16) src dst (16 each)
# if cookie(u32[2]) | expires rqueue wqueue uid inode
_MSG = struct.Struct("=BBBBHH16s16sIQIIIII")
MSG_LEN = _MSG.size  # 72

_SWAP_PORTS = sys.byteorder == "little"
_ZERO16 = bytes(16)


def encode_request(
    family: int,
    protocol: int,
    states: int,
    ext: int = 0,
    bytecode: bytes | None = None,
    seq: int = 1,
    ports: tuple[int, int] = (0, 0),
) -> bytes:
    """A complete netlink dump request for one (family, protocol).

    ``ports`` (sport, dport; 0 for any) go into the request's socket id: the
    TCP dump skips every other socket with one comparison, before it builds
    the socket's entry and runs the ``bytecode`` on it (ss leaves them 0).
    sockscope sets them for TCP only, whose dump has compared them (in
    network byte order) for as long as it has existed; other dumps get what
    ss sends."""
    payload = _REQ.pack(family, protocol if protocol < 256 else IPPROTO_TCP, ext, states)
    payload += _SOCKID_PORTS.pack(*ports) + bytes(_SOCKID_LEN - 4)
    if bytecode:
        payload += nl.encode_attr(INET_DIAG_REQ_BYTECODE, bytecode)
    if protocol > 255:
        payload += nl.encode_attr(INET_DIAG_REQ_PROTOCOL, struct.pack("=I", protocol))
    return nl.encode_message(nl.SOCK_DIAG_BY_FAMILY, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, payload)


_SOCKID_PORTS = struct.Struct(">HH")
_SOCKID_TAIL = struct.Struct("=IQ")


def encode_sockid(sport: int, dport: int, src: bytes, dst: bytes, ifindex: int, cookie: int) -> bytes:
    """``struct inet_diag_sockid`` (48 bytes); addresses are 4 or 16 raw bytes."""
    return (
        _SOCKID_PORTS.pack(sport, dport) + src.ljust(16, b"\0") + dst.ljust(16, b"\0")
        + _SOCKID_TAIL.pack(ifindex, cookie)
    )


def encode_destroy(family: int, protocol: int, sockid: bytes, seq: int = 1) -> bytes:
    """A ``SOCK_DESTROY`` request (acknowledged) for one socket."""
    payload = _REQ.pack(family, protocol, 0, 0) + sockid
    return nl.encode_message(nl.SOCK_DESTROY, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, payload)


def decode_events(buf: bytes | memoryview, out: list[Socket]) -> None:
    """Destroy notifications (sock_diag multicast): each message with all its
    attributes; the netid comes from ``INET_DIAG_PROTOCOL``."""
    msgs: list[Socket] = []
    decode_dump(buf, "?", msgs, details=True, op="sock_diag events")
    for s in msgs:
        out.append(_replace_netid(s, NETIDS.get(s.protocol or 0, "???")))


def _replace_netid(s: Socket, netid: str) -> Socket:
    from dataclasses import replace

    return replace(s, netid=netid)


def decode_dump(
    buf: bytes | memoryview,
    netid: str,
    out: list[Socket],
    details: bool = False,
    op: str = "inet_diag",
) -> bool:
    """Decode one datagram of an inet_diag dump into ``out``.

    Returns True when the dump is complete (``NLMSG_DONE`` seen).  Kernel
    errors (in ``NLMSG_ERROR`` or carried by ``NLMSG_DONE``) raise the
    matching :class:`~sockscope.errors.NetlinkError`; malformed bytes raise
    :class:`DecodeError`.
    """
    from sockscope.records import STATES, Endpoint, make_socket, state_of

    if not details:
        length = _uniform_length(buf)
        if length:  # every message of one length: records made column by column, by C-level maps
            mv = memoryview(buf)
            body = mv[: len(mv) // length * length]
            ok, done = _uniform_check(mv, _same_headers(body, length), length, op)
            if ok:
                recs = _column_records(body, length, netid, _States(STATES, state_of), Endpoint, make_socket)
                if recs is not None:
                    out += recs
                    return done
    uniform = None if details else _uniform_messages(buf, op)
    rows: Iterable[tuple]  # type: ignore[type-arg]
    if uniform is not None:  # every message of one length: unpacked at once, framed lazily
        rows, length, done = uniform
        mv = memoryview(buf)
        payloads: Any = _Payloads(mv, length)
    else:
        payloads, done = nl.diag_messages(buf, op)
        for p in payloads:
            if len(p) < MSG_LEN:
                raise DecodeError(f"truncated inet_diag_msg ({len(p)} bytes)")
        rows = map(_MSG.unpack_from, payloads)
    append = out.append
    mk = make_socket
    new = tuple.__new__  # Endpoint(address, port) without the named tuple's Python-level __new__
    ep = Endpoint
    states = _States(STATES, state_of)
    text4 = _TEXT4
    text6 = _TEXT6
    port = _PORT
    for i, (fam, st, timer, retrans, sport, dport, src, dst, ifindex, cookie, expires, rq, wq, uid, ino) in (
            enumerate(rows)):
        v6only = None
        if fam == AF_INET:
            local = new(ep, (text4[src], port[sport]))
            peer = new(ep, (text4[dst], port[dport]))
        else:
            local = new(ep, (text6[src], port[sport]))
            peer = new(ep, (text6[dst], port[dport]))
            if src == _ZERO16 or dst == _ZERO16:
                v6only = _v6only(nl.parse_attrs(payloads[i], MSG_LEN).get)
        if details:
            append(mk(netid, fam, states[st], rq, wq, local, peer, ino,
                      uid, cookie, ifindex, None, timer=timer, expires=expires, retrans=retrans,
                      **_details(payloads[i][MSG_LEN:], fam, netid)))
        else:
            append(mk(netid, fam, states[st], rq, wq, local, peer, ino,
                      uid, cookie, ifindex, None, v6only, None, (), None, None, timer, expires, retrans))
    return done


class _Texts(dict):  # type: ignore[type-arg]
    """raw 16-byte sockid address -> text (IPv4 in the first 4 bytes), computed on first use."""

    __slots__ = ("family",)

    def __init__(self, family: int) -> None:
        super().__init__()
        self.family = family

    def __missing__(self, raw: bytes) -> str:
        if len(self) >= 1 << 16:  # bounded: a long-running caller (top, the exporter) sees ever new peers
            self.clear()
        text = self[raw] = ntop4(raw[:4]) if self.family == AF_INET else ntop6(raw)
        return text


class _Ports(dict):  # type: ignore[type-arg]
    """port as read natively from the network-order field -> the port number."""

    def __missing__(self, raw: int) -> int:
        n = self[raw] = ((raw & 0xFF) << 8) | (raw >> 8) if _SWAP_PORTS else raw
        return n


class _States(dict):  # type: ignore[type-arg]
    """kernel state number -> State (the table's, or made for numbers it lacks)."""

    def __init__(self, table: Any, make: Any) -> None:
        super().__init__(enumerate(table))
        self.make = make

    def __missing__(self, n: int) -> Any:
        return self.make(n)


class _Texts4(dict):  # type: ignore[type-arg]
    """IPv4 address as a native u32 (the strided columns' key) -> text, computed on first use."""

    __slots__ = ()

    def __missing__(self, raw: int) -> str:
        if len(self) >= 1 << 16:  # bounded, as _Texts
            self.clear()
        text = self[raw] = ntop4(_U32.pack(raw))
        return text


_TEXT4 = _Texts(AF_INET)
_TEXT4I = _Texts4()
_TEXT6 = _Texts(AF_INET6)
_PORT = _Ports()


class _Payloads:
    """The payload of message ``i`` of a datagram of messages of one length, made when asked for."""

    __slots__ = ("mv", "length")

    def __init__(self, mv: memoryview, length: int) -> None:
        self.mv = mv
        self.length = length

    def __getitem__(self, i: int) -> memoryview:
        return self.mv[i * self.length + 16 : (i + 1) * self.length]


_WHOLE: dict[int, struct.Struct] = {}


def _uniform_messages(buf: bytes | memoryview, op: str) -> tuple[list[tuple], int, bool] | None:  # type: ignore[type-arg]
    """Every inet_diag_msg of a datagram as :data:`_MSG`'s tuples by one
    ``iter_unpack``, when its messages have one length: ``(rows, length,
    done)``; None when they do not (or it is not a plain dump datagram)."""
    length = _uniform_length(buf)
    if not length:
        return None
    mv = memoryview(buf)
    n = len(mv) // length
    whole = _WHOLE.get(length)
    if whole is None:
        whole = _WHOLE[length] = struct.Struct(f"=16x{_MSG.format.lstrip('=')}{length - 16 - MSG_LEN}x")
    body = mv[: n * length]
    ok, done = _uniform_check(mv, _same_headers(body, length), length, op)
    if not ok:
        return None
    return list(whole.iter_unpack(body)), length, done


def decode_raw(buf: bytes | memoryview, out: list[tuple], op: str = "inet_diag") -> bool:  # type: ignore[type-arg]
    """The listing's fast path: like :func:`decode_dump`, but appends plain
    tuples ``(family, state, sport, dport, src, dst, ifindex, recv_q, send_q,
    inode, v6only)`` (addresses as 16 raw bytes) instead of records.

    The hottest loop of a listing, so the framing of
    :func:`~sockscope.kernel.netlink.diag_messages` is inlined here (one pass
    instead of two: about a third of this function's time at 10k sockets)."""
    mv = memoryview(buf)
    end = len(mv)
    off = 0
    hdr_unpack = nl.NLMSGHDR.unpack_from
    msg_unpack = _MSG.unpack_from
    append = out.append
    swap = _SWAP_PORTS
    while off < end:
        if end - off < 16:
            raise DecodeError(f"truncated netlink header at offset {off}")
        length, mtype, _flags, _seq, _pid = hdr_unpack(mv, off)
        if length < 16 or off + length > end:
            raise DecodeError(f"bad netlink message length {length} at offset {off}")
        if mtype == nl.SOCK_DIAG_BY_FAMILY or mtype == nl.TCPDIAG_GETSOCK:
            if length < 16 + MSG_LEN:
                raise DecodeError(f"truncated inet_diag_msg ({length - 16} bytes)")
            (fam, st, _t, _r, sport, dport, src, dst, ifindex, _cookie,
             _expires, rq, wq, _uid, ino) = msg_unpack(mv, off + 16)
            if swap:
                sport = ((sport & 0xFF) << 8) | (sport >> 8)
                dport = ((dport & 0xFF) << 8) | (dport >> 8)
            v6only = None
            if fam == AF_INET6 and (src == _ZERO16 or dst == _ZERO16):
                v6only = _v6only(nl.parse_attrs(mv[off + 16 + MSG_LEN : off + length]).get)
            append((fam, st, sport, dport, src, dst, ifindex, rq, wq, ino, v6only))
        elif mtype == nl.NLMSG_DONE or mtype == nl.NLMSG_ERROR:
            nl.diag_messages(mv[off:], op)  # raises the kernel's error, if any
            return True
        off += (length + 3) & ~3
    return False


def encode_request_compat(states: int, ext: int = 0, bytecode: bytes | None = None, seq: int = 1,
                          ports: tuple[int, int] = (0, 0)) -> bytes:
    """A legacy ``TCPDIAG_GETSOCK`` dump request (``struct inet_diag_req``): the
    kernel walks its TCP tables once for IPv4 and IPv6 together (the v2
    request walks them once per family).  Replies carry the same type.
    ``ports`` as for :func:`encode_request`."""
    payload = (_REQ_V1.pack(AF_INET, 0, 0, ext) + _SOCKID_PORTS.pack(*ports) + bytes(_SOCKID_LEN - 4)
               + _REQ_V1_TAIL.pack(states, 0))
    if bytecode:
        payload += nl.encode_attr(INET_DIAG_REQ_BYTECODE, bytecode)
    return nl.encode_message(nl.TCPDIAG_GETSOCK, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, payload)


_REQ_V1 = struct.Struct("=BBBB")
_REQ_V1_TAIL = struct.Struct("=II")


def _uniform_length(buf: bytes | memoryview) -> int:
    """The length of the first message of a sock_diag datagram, if the
    datagram may be read as messages of that one length; else 0."""
    if len(buf) < 16:
        return 0
    length, mtype = nl.NLMSGHDR.unpack_from(buf, 0)[:2]
    if length < 16 + MSG_LEN or length & 3 or length > len(buf):
        return 0
    if mtype != nl.SOCK_DIAG_BY_FAMILY and mtype != nl.TCPDIAG_GETSOCK:
        return 0
    return int(length)


def _uniform_check(mv: memoryview, same_headers: int, length: int, op: str) -> tuple[bool, bool]:
    """Whether the ``len(mv) // length`` messages read at once were really
    messages of one length (``same_headers`` of them carry the first one's
    header), and whether the dump ended after them."""
    n = len(mv) // length
    # the first message of another length is read at its true offset, so its
    # header differs: then the messages are framed one by one (TIME-WAIT
    # sockets, for one, come without attributes among sockets with them)
    if same_headers != n:
        return False, False
    if n * length == len(mv):
        return True, False
    # after n whole messages: only NLMSG_DONE (or an error) may follow
    payloads, done = nl.diag_messages(mv[n * length :], op)  # raises the kernel's error, if any
    return not payloads and done, done


def decode_columns(buf: bytes | memoryview, family: int, op: str = "inet_diag"
                   ) -> tuple[list[Sequence[Any]], bool] | None:
    """The listing's fastest path: one datagram of a ``family`` dump as columns.

    Within one dump the kernel usually gives every socket the same attributes,
    so all messages of a datagram have one length and one C-level
    ``iter_unpack`` decodes them at once.  Returns ``(columns, done)`` with the
    columns ``(header, state, sport, dport, src, dst, ifindex, rqueue,
    wqueue, inode)`` (ports in network byte order as read natively; IPv4
    addresses as a native u32, IPv6 as 16 bytes), or None when this datagram
    needs :func:`decode_raw`: messages of another family (a legacy dump mixes
    them), a scoped address (its interface is named) or an IPv6 wildcard (its
    v6only attribute matters).  Messages of several lengths are framed one by
    one (slower, still no per-row work after that).
    """
    length = _uniform_length(buf)
    if not length:
        return None
    mv = memoryview(buf)
    n = len(mv) // length
    cols, same = _strided(mv[: n * length], length, family)
    ok, done = _uniform_check(mv, same, length, op)
    if not ok:
        got = _framed_columns(mv, family, op)
        if got is None:
            return None
        cols, done = got
    if cols[1].count(family) != len(cols[1]):  # a legacy dump mixes families
        return None
    del cols[1]
    if any(cols[6]):
        return None
    if family == AF_INET6 and (_ZERO16 in cols[4] or _ZERO16 in cols[5]):
        return None
    return cols, done


def _strided(body: memoryview, length: int, family: int) -> tuple[list[Sequence[Any]], int]:
    """:func:`decode_columns`' columns of messages all ``length`` long (a
    multiple of 4), each read as one strided view of the datagram (``cast``,
    then a step of one message): a C loop per column, no tuple per message.
    IPv6 addresses (16 bytes) come from one small ``iter_unpack``.  Also how
    many messages carry the first one's header (length and type); the header
    column is that header, repeated."""
    n = len(body) // length
    w, h = body.cast("I"), body.cast("H")
    step4, step2 = length // 4, length // 2
    same = _same_headers(body, length)
    # offsets (bytes): family 16, state 17, sport 20, dport 22, src 24, dst 40,
    # ifindex 56, rqueue 72, wqueue 76, inode 84 (nlmsghdr + inet_diag_msg)
    if family == AF_INET:
        srcs: Sequence[Any] = w[6::step4].tolist()
        dsts: Sequence[Any] = w[10::step4].tolist()
    else:
        srcs, dsts = _addresses6(body, length)
    cols: list[Sequence[Any]] = [
        [bytes(body[:6])] * n, body[16::length].tolist(), body[17::length].tolist(),
        h[10::step2].tolist(), h[11::step2].tolist(), srcs, dsts,
        w[14::step4].tolist(), w[18::step4].tolist(), w[19::step4].tolist(), w[21::step4].tolist(),
    ]
    return cols, same


#: message length -> struct of an IPv6 message's two addresses
_ADDRS6: dict[int, struct.Struct] = {}


def _addresses6(body: memoryview, length: int) -> tuple[Sequence[bytes], Sequence[bytes]]:
    """The source and destination addresses (16 bytes each) of IPv6 messages all ``length`` long."""
    st = _ADDRS6.get(length)
    if st is None:
        st = _ADDRS6[length] = struct.Struct(f"=24x16s16s{length - 56}x")
    srcs, dsts = zip(*st.iter_unpack(body))
    return srcs, dsts


def _same_headers(body: memoryview, length: int) -> int:
    """How many of the messages of ``body`` (all read as ``length`` long, a
    multiple of 4) carry the first one's length and type: all of them, or 0."""
    n = len(body) // length
    lens, types = body.cast("I")[0::length // 4].tolist(), body.cast("H")[2::length // 2].tolist()
    return n if lens.count(length) == n and types.count(types[0]) == n else 0


def _column_records(body: memoryview, length: int, netid: str, states: Any, endpoint: Any,
                    make: Callable[..., Socket]) -> list[Socket] | None:
    """:func:`decode_dump`'s records for messages all ``length`` long, made by
    C-level maps over strided columns (as :func:`_strided`); None when the
    datagram mixes families (a legacy dump) or holds an IPv6 wildcard (its
    v6only attribute is read message by message)."""
    from itertools import repeat
    from operator import lshift, or_

    w, h = body.cast("I"), body.cast("H")
    step4, step2 = length // 4, length // 2
    fams = body[16::length].tolist()
    fam = fams[0]
    if fams.count(fam) != len(fams):
        return None
    if fam == AF_INET:
        text = _TEXT4I.__getitem__
        srcs: Iterable[Any] = w[6::step4].tolist()
        dsts: Iterable[Any] = w[10::step4].tolist()
    elif fam == AF_INET6:
        srcs, dsts = _addresses6(body, length)
        if _ZERO16 in srcs or _ZERO16 in dsts:
            return None
        text = _TEXT6.__getitem__
    else:
        return None
    new = tuple.__new__  # Endpoint(address, port) without the named tuple's Python-level __new__
    port = _PORT.__getitem__
    local = map(new, repeat(endpoint), zip(map(text, srcs), map(port, h[10::step2].tolist())))
    peer = map(new, repeat(endpoint), zip(map(text, dsts), map(port, h[11::step2].tolist())))
    # the cookie: two u32 words, read as one native u64 by decode_dump's loop
    low, up = (15, 16) if sys.byteorder == "little" else (16, 15)
    cookies, high = w[low::step4].tolist(), w[up::step4].tolist()
    if any(high):
        cookies = list(map(or_, cookies, map(lshift, high, repeat(32))))
    # make_socket's positional fields: netid, family, state, rqueue, wqueue, local, peer, inode, uid,
    # cookie, ifindex, owners, v6only, mem, tcp_info..., timer, expires, retrans (as decode_dump's loop)
    return list(map(make, repeat(netid), fams, map(states.__getitem__, body[17::length].tolist()),
                    w[18::step4].tolist(), w[19::step4].tolist(), local, peer, w[21::step4].tolist(),
                    w[20::step4].tolist(), cookies, w[14::step4].tolist(), repeat(None), repeat(None),
                    repeat(None), repeat(()), repeat(None), repeat(None), body[18::length].tolist(),
                    w[17::step4].tolist(), body[19::length].tolist()))

_FIXED: dict[int, struct.Struct] = {}


def _framed_columns(mv: memoryview, family: int, op: str) -> tuple[list[Sequence[Any]], bool] | None:
    """:func:`decode_columns` for a datagram of messages of several lengths:
    framed one by one in Python (the fixed part of each unpacked at once),
    then transposed.  None when it holds no socket at all."""
    st = _FIXED.get(family)
    if st is None:
        addr = "I12x" if family == AF_INET else "16s"
        st = _FIXED[family] = struct.Struct(f"=IH10x BB2x HH {addr}{addr} I12x II4xI")
    unpack = st.unpack_from
    hdr = nl.NLMSGHDR.unpack_from
    fixed = st.size
    rows: list[tuple] = []  # type: ignore[type-arg]
    append = rows.append
    off = 0
    end = len(mv)
    done = False
    while off < end:
        if end - off >= fixed:
            row = unpack(mv, off)
            length, mtype = row[0], row[1]
        elif end - off >= 16:
            length, mtype = hdr(mv, off)[:2]
            row = None
        else:
            raise DecodeError(f"truncated netlink header at offset {off}")
        if length < 16 or off + length > end:
            raise DecodeError(f"bad netlink message length {length} at offset {off}")
        if mtype == nl.SOCK_DIAG_BY_FAMILY or mtype == nl.TCPDIAG_GETSOCK:
            if row is None or length < fixed:
                raise DecodeError(f"truncated inet_diag_msg ({length - 16} bytes)")
            append(row)
        elif mtype == nl.NLMSG_DONE or mtype == nl.NLMSG_ERROR:
            if nl.diag_messages(mv[off:], op)[0]:  # raises the kernel's error, if any
                return None
            done = True  # as decode_raw: either ends the dump
            break
        off += (length + 3) & ~3
    if not rows:
        return None
    cols: list[Sequence[Any]] = list(zip(*rows))
    del cols[1]  # the message type: the columns now read as decode_columns' (header, family, …)
    return cols, done


def _bbr(a: memoryview) -> tuple[int, int, int, int]:
    return _bbr_info(*struct.unpack_from("=5I", bytes(a[:20]).ljust(20, b"\0")))


def _bbr_info(bw_lo: int, bw_hi: int, min_rtt: int, pacing_gain: int, cwnd_gain: int) -> tuple[int, int, int, int]:
    """``struct tcp_bbr_info``'s five u32 -> (bw in bytes/s, min_rtt µs, pacing_gain, cwnd_gain)."""
    return ((bw_hi << 32) | bw_lo, min_rtt, pacing_gain, cwnd_gain)


def _dctcp(a: memoryview) -> tuple[int, int, int, int, int]:
    en, ce, alpha, ab_ecn, ab_tot = struct.unpack_from("=HHIII", bytes(a[:16]).ljust(16, b"\0"))
    return (en, ce, alpha, ab_ecn, ab_tot)


def decode_info(buf: bytes | memoryview, out: list[tuple], op: str = "inet_diag") -> bool:  # type: ignore[type-arg]
    """``ss -i``'s fast path: :func:`decode_raw`'s tuples, each followed by what
    ``-i`` prints from the attributes: ``(…, tcp_info (a decoded
    :class:`~sockscope.kernel.tcpinfo.TcpInfo`) or None, congestion control
    or None, bbr_info or None, dctcp_info or None)``.

    A datagram whose messages share one length and one attribute layout (the
    usual case) is unpacked by one ``iter_unpack`` whose format covers the
    message, the attributes and the tcp_info fields (:func:`_uniform_info`);
    other datagrams are walked message by message, picking the five
    attributes it needs rather than through
    :func:`~sockscope.kernel.netlink.parse_attrs` (a dict of every attribute
    per socket costs ``-tani`` 7%)."""
    got = _uniform_info(buf, op)
    if got is not None:
        rows, done = got
        out.extend(rows)
        return done
    tcp_info = _tcpinfo_decode()
    payloads, done = nl.diag_messages(buf, op)
    append = out.append
    unpack = nl.NLATTR.unpack_from
    for p in payloads:
        if len(p) < MSG_LEN:
            raise DecodeError(f"truncated inet_diag_msg ({len(p)} bytes)")
        (fam, st, _t, _r, sport, dport, src, dst, ifindex, _cookie,
         _expires, rq, wq, _uid, ino) = _MSG.unpack_from(p, 0)
        if _SWAP_PORTS:
            sport = ((sport & 0xFF) << 8) | (sport >> 8)
            dport = ((dport & 0xFF) << 8) | (dport >> 8)
        v6only = info = cong = bbr = dctcp = None
        off = MSG_LEN
        end = len(p)
        while off + 4 <= end:
            alen, atype = unpack(p, off)
            if alen < 4 or off + alen > end:
                raise DecodeError(f"bad attribute length {alen} (type {atype & nl.NLA_TYPE_MASK})")
            atype &= nl.NLA_TYPE_MASK
            if atype == INET_DIAG_INFO:
                info = tcp_info(p[off + 4 : off + alen])
            elif atype == INET_DIAG_CONG:
                cong = _cong(p[off + 4 : off + alen])
            elif atype == INET_DIAG_SKV6ONLY and alen > 4:
                v6only = bool(p[off + 4])
            elif atype == INET_DIAG_BBRINFO and alen >= 16:
                bbr = _bbr(p[off + 4 : off + alen])
            elif atype == INET_DIAG_DCTCPINFO and alen >= 20:
                dctcp = _dctcp(p[off + 4 : off + alen])
            off += (alen + 3) & ~3
        if fam != AF_INET6 or (src != _ZERO16 and dst != _ZERO16):
            v6only = None  # as decode_raw: only wildcards need it
        append((fam, st, sport, dport, src, dst, ifindex, rq, wq, ino, v6only, info, cong, bbr, dctcp))
    return done


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


def _uniform_info(buf: bytes | memoryview, op: str) -> tuple[list[tuple], bool] | None:  # type: ignore[type-arg]
    """:func:`decode_info`'s tuples of a datagram of messages of one length and
    one attribute layout, by one ``iter_unpack``; None for any other datagram."""
    length = _uniform_length(buf)
    if not length:
        return None
    mv = memoryview(buf)
    attrs = []
    off = 16 + MSG_LEN
    unpack = nl.NLATTR.unpack_from
    while off + 4 <= length:
        alen, atype = unpack(mv, off)
        if alen < 4 or off + alen > length:
            return None
        attrs.append((off, alen, atype))
        off += (alen + 3) & ~3
    key = (length, *attrs)
    layout = _INFO_LAYOUTS.get(key) or _info_layout(tuple(attrs), length)
    if layout is None:
        return None
    st, heads, parts = layout
    n = len(mv) // length
    body = mv[: n * length]
    # every message with the first one's header and attribute headers (a small
    # tuple each: the big ones are made, and dropped, one at a time below)
    columns = list(zip(*heads.iter_unpack(body)))
    if any(col.count(col[0]) != n for col in columns):
        return None
    ok, done = _uniform_check(mv, n, length, op)
    if not ok:
        return None
    from sockscope.kernel.tcpinfo import FIELDS, decode, from_fields

    port = _PORT
    info_at = bytes_at = cong_at = bbr_at = dctcp_at = v6_at = 0
    info_len = 0
    for kind, at, plen in parts:
        if kind == "info":
            info_at, info_len = at, plen
        elif kind == "info_bytes":
            bytes_at = at
        elif kind == "cong":
            cong_at = at
        elif kind == "bbr":
            bbr_at = at
        elif kind == "dctcp":
            dctcp_at = at
        else:
            v6_at = at
    names = _CONG_NAMES
    out: list[tuple] = []  # type: ignore[type-arg]
    append = out.append
    for r in st.iter_unpack(body):
        fam = r[1]
        src = r[7]
        dst = r[8]
        if info_at:
            info = from_fields(r[info_at : info_at + FIELDS], info_len)
        elif bytes_at:
            info = decode(r[bytes_at])
        else:
            info = None
        cong = None
        if cong_at:
            raw = r[cong_at]
            cong = names.get(raw)
            if cong is None:
                cong = names[raw] = _cong(memoryview(raw))
        bbr = _bbr_info(*r[bbr_at : bbr_at + 5]) if bbr_at else None
        dctcp = r[dctcp_at : dctcp_at + 5] if dctcp_at else None
        v6only = None
        if v6_at and fam == AF_INET6 and (src == _ZERO16 or dst == _ZERO16):
            v6only = bool(r[v6_at])
        append((fam, r[2], port[r[5]], port[r[6]], src, dst, r[9], r[12], r[13], r[15], v6only,
                info, cong, bbr, dctcp))
    return out, done


def _v6only(get: Callable[[int], memoryview | None]) -> bool | None:
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


def _details(raw: memoryview, fam: int, netid: str) -> dict[str, Any]:
    """The detail fields of one message's attributes (the ``details=True`` path)."""
    get = nl.parse_attrs(raw).get
    d: dict[str, Any] = {}
    v6only = _v6only(get)
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


__all__ = [
    "decode_raw", "decode_info", "decode_columns", "encode_request", "encode_request_compat", "encode_sockid",
    "encode_destroy", "decode_events", "decode_dump",
    "NETIDS", "MSG_LEN", "AF_INET", "AF_INET6",
]
