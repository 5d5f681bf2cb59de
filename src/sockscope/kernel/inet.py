"""inet_diag (TCP, UDP, …) requests and replies, sans IO: the one decoder of ``inet_diag_msg``.

``inet_diag_req_v2`` is encoded by :func:`encode_request` (the legacy one-walk TCP request by
:func:`encode_request_compat`); a received datagram becomes a :class:`Batch` by :func:`decode`:
column by column where its messages have one length, framed (their fixed parts gathered side by
side) where TIME-WAIT and SYN-RECV mini-sockets sit between full ones.  Every consumer reads
batches; :func:`records` makes :class:`~sockscope.records.Socket` records of one on demand
(:func:`decode_dump` is decode then records, for callers that want records).
"""

from __future__ import annotations

import _struct  # struct.py only re-exports this C module: one module fewer to import
import sys
from itertools import accumulate, repeat
from _operator import add, eq, ne

from sockscope._addr import AF_INET, AF_INET6, V4MAPPED, ZERO16, Texts, ntop4, ntop6
from sockscope.kernel import netlink as nl
from sockscope.kernel.layout import INET_DIAG_INFO, INET_DIAG_MSG, INET_DIAG_SKV6ONLY, TCP_INFO, gather, gather_rows

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Any, Iterable, Sequence

    from sockscope.records import Socket

# The records (and the dataclass machinery behind them) are imported by the
# decoders that build them, on first use: the listing's fast paths below never
# need them, and start-up time is a feature.

# The attributes (their numbers and decoders: kernel.inet_attrs) are imported where one is read:
# a listing whose rows need none of them (no -e/-i, no IPv6 wildcard) never imports them.

INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_REQ_PROTOCOL = 3

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
#: a table's name -> its protocol number (the one name for each: ``NETIDS`` turned round)
PROTOCOLS = {name: proto for proto, name in NETIDS.items()}

# struct inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid
_REQ = _struct.Struct("=BBBxI")
_REQ_RAW = _struct.Struct("=BBBBI")  # struct inet_diag_req_raw: the pad byte is the raw protocol
_SOCKID_LEN = 48
# struct inet_diag_msg: family state timer retrans | sport dport (be16) src dst (16 each)
# if cookie(u32[2]) | expires rqueue wqueue uid inode
_MSG = INET_DIAG_MSG.struct  # family state timer retrans sport dport src dst if cookie expires rq wq uid inode
MSG_LEN = _MSG.size  # 72


def encode_request(
    family: int,
    protocol: int,
    states: int,
    ext: int = 0,
    bytecode: bytes | None = None,
    seq: int = nl.DUMP_SEQ,
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
        payload += nl.encode_attr(INET_DIAG_REQ_PROTOCOL, _struct.pack("=I", protocol))
    return nl.encode_message(nl.SOCK_DIAG_BY_FAMILY, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, payload)


_SOCKID_PORTS = _struct.Struct(">HH")
_SOCKID_TAIL = _struct.Struct("=IQ")


def encode_sockid(sport: int, dport: int, src: bytes, dst: bytes, ifindex: int, cookie: int) -> bytes:
    """``struct inet_diag_sockid`` (48 bytes); addresses are 4 or 16 raw bytes."""
    return (
        _SOCKID_PORTS.pack(sport, dport) + src.ljust(16, b"\0") + dst.ljust(16, b"\0")
        + _SOCKID_TAIL.pack(ifindex, cookie)
    )


def encode_destroy(family: int, protocol: int, sockid: bytes, seq: int = nl.DUMP_SEQ, raw_protocol: int = 0) -> bytes:
    """A ``SOCK_DESTROY`` request (acknowledged) for one socket; a raw socket's (IPPROTO_RAW) names its
    protocol in ``raw_protocol`` (struct inet_diag_req_raw's pad byte: raw_diag finds it by that)."""
    payload = _REQ_RAW.pack(family, protocol, 0, raw_protocol, 0) + sockid
    return nl.encode_message(nl.SOCK_DESTROY, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, payload)


def encode_request_compat(states: int, ext: int = 0, bytecode: bytes | None = None, seq: int = nl.DUMP_SEQ,
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


_REQ_V1 = _struct.Struct("=BBBB")
_REQ_V1_TAIL = _struct.Struct("=II")


# --------------------------------------------------------------------------
# The decoder: one datagram of an inet_diag dump -> one column Batch

_L = INET_DIAG_MSG
_HEAD_COLS = ("state", "timer", "retrans", "sport", "dport", "ifindex", "cookie", "expires", "rqueue", "wqueue",
              "uid", "inode")
_HEAD = 16 + MSG_LEN  # nlmsghdr + inet_diag_msg: what every message has before its attributes
_U32 = _struct.Struct("=I")
_U32_FROM = _U32.unpack_from


class Batch:
    """The sockets of one datagram of an inet dump, column by column (lists, row ``i`` of each).

    ``fam`` is the one family of every row, or 0 when the datagram mixes them (a
    legacy TCP dump does).  Addresses (``src``, ``dst``) are *keys*: an IPv4
    address is its native u32 (an ``int``), an IPv6 one its 16 bytes, so one
    column can hold both and a text cache can be keyed by them.  Ports are host
    order.  ``v6only`` is None unless some row is an IPv6 wildcard (only those
    need it: ss prints ``*`` for a dual-stack ``::``); then a list, None for the
    other rows.  ``info`` (with ``decode(info=True)``): five columns, tcp_info
    (:class:`~sockscope.kernel.tcpinfo.TcpInfo`), congestion control name,
    bbr_info, dctcp_info and the extras (MD5 keys, upper layer protocol; the
    column None where no row has them).  :meth:`attrs` is row ``i``'s attribute bytes."""

    __slots__ = ("n", "fam", "family", *_HEAD_COLS, "src", "dst", "v6only", "info", "_mv", "_starts", "_ends",
                 "_lens", "_length", "_stride", "_body", "_groups", "_pieces", "_bound")

    n: int
    fam: int
    family: list[int]
    state: list[int]
    timer: list[int]
    retrans: list[int]
    sport: list[int]
    dport: list[int]
    ifindex: list[int]
    cookie: list[int]
    expires: list[int]
    rqueue: list[int]
    wqueue: list[int]
    uid: list[int]
    inode: list[int]
    src: list[Any]
    dst: list[Any]
    v6only: list[bool | None] | None
    info: tuple[list[Any], list[Any], list[Any], list[Any], list[Any] | None] | None
    _mv: memoryview
    _starts: list[int]
    _ends: list[int]
    _length: int  # every message's length when they are all alike (attributes at a stride), else 0
    _stride: int  # the stride of the fixed parts in _body (read column at once), or 0: columns set
    _body: memoryview  # the messages (_length) or their fixed parts alone (framed), _stride bytes each
    _lens: list[int]  # framed: each message's length (its start and end are made from them when asked for)
    _groups: tuple[bytes | tuple[bytes, list[bytes]], dict[int, list[int]], dict[int, memoryview]]  # lengths()
    _pieces: tuple[bytes, list[bytes]] | None  # framed by a cut: its pieces (netlink.cut_dump), else None
    _bound: bool  # of a dump whose sockets inet6_bind binds (_BOUND_BY_INET6): v6only follows from the address

    def __getattr__(self, name: str) -> Any:
        # a batch read column at once reads a column from the datagram when it is first asked
        # for: the table never reads timers, cookies or uids (called only for unset slots)
        if name == "_pieces":  # (a batch not cut, or made of another's rows: gathered() copies the messages)
            return None
        stride = object.__getattribute__(self, "_stride")
        if stride:
            length = self._length
            if name in _HEAD_COLS:
                col = _L.columns(self._body, stride, (name,))[0]
            elif name == "src" or name == "dst":  # both families in one batch: keys of both kinds
                fams, body = self.family, self._body
                raw, ints = _L.columns(body, stride, (name,))[0], _L.as_ints(body, stride, name)
                col = [a if f == AF_INET6 else i for f, i, a in zip(fams, ints, raw)]
            elif name == "v6only":
                _wildcards(self)
                return self.v6only
            elif name == "_starts":  # whole messages: a range; framed: the sums of the lengths before
                col = list(range(0, self.n * length, length)) if length else [0, *accumulate(self._lens[:-1])]
            elif name == "_ends":  # whole messages: a range; framed: each start plus its length
                col = (list(range(length, self.n * length + 1, length)) if length else
                       list(map(add, self._starts, self._lens)))
            elif name == "_lens":  # whole messages (a framed batch has its own)
                col = [length] * self.n
            else:
                raise AttributeError(name)
            setattr(self, name, col)
            return col
        raise AttributeError(name)

    def read(self, names: tuple[str, ...]) -> None:
        """Read the head columns ``names`` (of :data:`_HEAD_COLS`) of a batch read column at once,
        in one planned pass (:meth:`Layout.strided <sockscope.kernel.layout.Layout.strided>`: a
        slice and a ``tolist`` a column), for a consumer that reads several: :meth:`__getattr__`
        reads one a call.  (The columns of any other batch are set already; a column read before
        is read again, the same.)"""
        stride = self._stride
        if stride:
            for name, col in zip(names, _L.strided(self._body, stride, names)):
                setattr(self, name, col)

    def texts(self, name: str) -> list[str]:
        """The address text of every row of ``name`` (``"src"`` or ``"dst"``), by C-level maps.  Where
        the families mix and the keys were not read, from each row's raw address in its family's table
        (:data:`FAM_TEXT`): the keys of both kinds cost a Python step a row."""
        if not self.fam and self._stride:
            try:
                keys = object.__getattribute__(self, name)  # (not made here where it is not set)
            except AttributeError:
                raw = _L.columns(self._body, self._stride, (name,))[0]
                return list(map(dict.__getitem__, map(FAM_TEXT.__getitem__, self.family), raw))
        else:
            keys = getattr(self, name)
        return list(map(ADDR_TEXT.__getitem__, keys))

    def info_fields(self, names: Sequence[str]) -> list[list[Any]]:
        """Fields of each row's tcp_info by name (:data:`~sockscope.kernel.layout.TCP_INFO`), one list
        per name: None where the row has no tcp_info or one too short for the field.  Where every
        message has one length and one attribute layout, each field is one strided read."""
        from sockscope.kernel.inet_attrs import info_at

        at = info_at(self._mv, self._length, self.n) if self._length and self.n else None
        if at is not None:
            start, size = at
            fit = [nm for nm in names if TCP_INFO.offset(nm) + TCP_INFO.struct_size(nm) <= size]
            got = dict(zip(fit, TCP_INFO.columns(self._body, self._length, fit, base=start)))
            return [got.get(nm) or [None] * self.n for nm in names]
        out: list[list[Any]] = [[] for _ in names]
        for i in range(self.n):
            p = nl.parse_attrs(self.attrs(i)).get(INET_DIAG_INFO)
            for col, nm in zip(out, names):
                off, size = TCP_INFO.offset(nm), TCP_INFO.struct_size(nm)
                col.append(None if p is None or off + size > len(p) else
                           int.from_bytes(p[off : off + size], sys.byteorder))
        return out

    def attrs(self, i: int) -> memoryview:
        """Row ``i``'s attributes (what follows its inet_diag_msg)."""
        return self._mv[self._starts[i] + 16 + MSG_LEN : self._ends[i]]

    def lengths(self) -> dict[int, list[int]]:
        """A framed batch's rows by their message's length (ascending rows each), made once: -i's
        columns and the details' read them alike, and the messages of each side by side (:meth:`gathered`)."""
        try:
            return self._groups[1]
        except AttributeError:
            from bisect import bisect_right
        lens = self._lens  # (a cut datagram's starts are not made for this; the sort is stable: rows ascend)
        order = sorted(range(self.n), key=lens.__getitem__)
        ordered, rows, lo = list(map(lens.__getitem__, order)), {}, 0
        while lo < self.n:  # each length's run of the sorted rows
            hi = bisect_right(ordered, ordered[lo], lo)
            rows[ordered[lo]], lo = order[lo:hi], hi
        self._groups = (self._pieces or self._mv.tobytes(), rows, {})  # (what gathered() copies from)
        return rows

    def gathered(self, length: int) -> memoryview:
        """The messages of ``length`` (:meth:`lengths`) side by side, copied once: the pieces of a cut
        datagram joined (``netlink.gather_pieces``: whole from their 8th byte), else ``layout.gather``."""
        rows, (src, _, made) = self.lengths(), self._groups
        if length not in made:
            made[length] = (nl.gather_pieces(src, rows[length]) if isinstance(src, tuple) else
                            gather(src, list(map(self._starts.__getitem__, rows[length])), length))
        return made[length]

    @staticmethod
    def of(socks: list[Socket]) -> Batch:
        """A batch of records read elsewhere (the /proc fallback): the same columns, no attributes."""
        from _socket import inet_pton  # the C module: ``socket`` builds enums at import

        b = Batch.__new__(Batch)
        b.n = len(socks)
        b.family = [s.family for s in socks]
        b.fam = _one_family(b.family)
        for name, attr in (("timer", "timer"), ("retrans", "retrans"), ("ifindex", "ifindex"), ("cookie", "cookie"),
                           ("expires", "expires"), ("rqueue", "recv_q"), ("wqueue", "send_q"), ("uid", "uid"),
                           ("inode", "inode")):
            setattr(b, name, [getattr(s, attr) for s in socks])
        b.state = [int(s.state) for s in socks]
        b.sport = [s.local.port for s in socks]
        b.dport = [s.peer.port for s in socks]
        b.src = [_key(inet_pton(s.family, s.local.address)) for s in socks]
        b.dst = [_key(inet_pton(s.family, s.peer.address)) for s in socks]
        b.v6only = [s.v6only for s in socks] if any(s.v6only is not None for s in socks) else None
        b.info = None
        b._mv = memoryview(b"")
        b._starts = b._ends = b._lens = [0] * b.n
        b._length = b._stride = 0
        return b

    def split(self) -> tuple[Batch, Batch]:
        """The IPv4 rows and the IPv6 rows, as two batches (a legacy TCP dump mixes the
        families in one datagram; ss lists IPv4 first).  The messages (or, framed, their fixed
        parts) are regrouped by family and read as two uniform datagrams: no column is read twice."""
        four = list(map(eq, self.family, repeat(AF_INET)))  # (C loops: no Python code a row)
        six = list(map(ne, self.family, repeat(AF_INET)))
        if not self._stride or self.info is not None:
            return self.select(four), self.select(six)
        return self._regroup(four), self._regroup(six)

    def _regroup(self, mask: list[bool]) -> Batch:
        """The rows whose ``mask`` is true: their messages (or fixed parts) copied into one
        buffer and read column at once (every slice and the copy in C)."""
        from itertools import compress

        stride = self._stride
        if True not in mask:
            return Batch.of([])
        b = Batch.__new__(Batch)
        if self._length:  # whole messages, from the datagram read column at once: the copy holds
            # the attributes too (gather_rows reads whole rows: a NLMSG_DONE after them is left out)
            _heads(gather_rows(_datagram(self._mv), stride, mask), stride, b)
            b._mv, b._length = b._body, stride
        else:  # framed: the fixed parts, gathered already (the attributes stay in the datagram)
            _heads(gather_rows(_datagram(self._body), stride, mask), stride, b)
            b._mv, b._length = self._mv, 0
            b._starts, b._lens = list(compress(self._starts, mask)), list(compress(self._lens, mask))
        b.info = None
        b.fam, b._bound = _one_family(b.family), self._bound
        _wildcards(b)
        return b

    def select(self, keep: Sequence[Any]) -> Batch:
        """The rows whose ``keep`` is true, as a new batch."""
        from itertools import compress

        b = Batch.__new__(Batch)
        for name in ("family", *_HEAD_COLS, "src", "dst", "_starts", "_ends", "_lens"):
            setattr(b, name, list(compress(getattr(self, name), keep)))
        b.n = len(b.inode)
        b.fam = _one_family(b.family)
        b.v6only = None if self.v6only is None else list(compress(self.v6only, keep))
        if self.info is None:
            b.info = None
        else:
            infos, congs, bbrs, dctcps, tails = self.info
            b.info = (infos.select(keep) if hasattr(infos, "select") else list(compress(infos, keep)),
                      list(compress(congs, keep)), list(compress(bbrs, keep)), list(compress(dctcps, keep)),
                      None if tails is None else list(compress(tails, keep)))
        b._mv = self._mv
        b._length = b._stride = 0
        return b


def decode(buf: bytes | memoryview, op: str = "inet_diag", info: bool = False) -> tuple[Batch, bool]:
    """One datagram of an inet_diag (or legacy TCPDIAG) dump as a :class:`Batch`,
    and whether the dump ended in it (``NLMSG_DONE``).

    Messages of one length (the usual case: the kernel gives every socket of a
    dump the same attributes) are read column by column, one C loop per field
    (:meth:`Layout.columns <sockscope.kernel.layout.Layout.columns>`).  Any other
    datagram (TIME-WAIT and SYN-RECV mini-sockets carry fewer attributes than the
    full sockets around them) is framed: the fixed parts (header and ``inet_diag_msg``)
    are put side by side in C (cut at the dump's sequence number, else found by a
    walk over the lengths: :func:`_framed`) and read column at once the same way.
    Kernel errors (in ``NLMSG_ERROR`` or
    carried by ``NLMSG_DONE``) raise the matching
    :class:`~sockscope.errors.NetlinkError`; malformed bytes :class:`~sockscope.errors.DecodeError`."""
    mv = memoryview(buf)
    b = Batch.__new__(Batch)
    b._mv = mv
    length = _uniform_length(mv)
    got = _uniform(mv, length, op, b) if length else None
    done = got if got is not None else _framed(mv, op, b)
    b.fam = _one_family(b.family)
    b._bound = op in _BOUND_BY_INET6
    if b.fam:  # (a batch of both families finds its v6only when asked: Batch.split never asks)
        _wildcards(b)
    if info:
        from sockscope.kernel.inet_attrs import info_columns

        b.info = info_columns(b, mv, length if got is not None else 0)
    else:
        b.info = None
    return b, done


def _uniform_length(buf: bytes | memoryview) -> int:
    """The length of the first message of a sock_diag datagram, if the
    datagram may be read as messages of that one length; else 0."""
    if len(buf) < 16:
        return 0
    length, mtype = nl.NLMSGHDR.unpack_from(buf, 0)[:2]
    if length < _HEAD or length & 3 or length > len(buf):
        return 0
    if mtype != nl.SOCK_DIAG_BY_FAMILY and mtype != nl.TCPDIAG_GETSOCK:
        return 0
    return int(length)


def _uniform(mv: memoryview, length: int, op: str, b: Batch) -> bool | None:
    """Fill ``b`` from a datagram of messages all ``length`` long, and say whether
    the dump ended; None (``b`` untouched) when its messages are not all alike."""
    n = len(mv) // length
    body = mv[: n * length]
    w4, w2 = body.cast("I"), body.cast("H")
    lens, types = w4[0 :: length // 4].tolist(), w2[2 :: length // 2].tolist()
    # the first message of another length is read at its true offset, so its header differs
    if lens.count(length) != n or types.count(types[0]) != n:
        return None
    done = False
    if n * length != len(mv):  # after n whole messages only NLMSG_DONE (or an error) may follow
        payloads, done = nl.diag_messages(mv[n * length :], op)  # raises the kernel's error, if any
        if payloads or not done:
            return None
    _heads(body, length, b)
    b._length = length
    return done


def _heads(body: memoryview, stride: int, b: Batch) -> None:
    """Set ``b``'s family and address columns from ``body``: messages (or their fixed parts)
    ``stride`` bytes apart; its other columns are read from it when first asked for."""
    fams = body[16::stride].tolist()
    b._body = body  # (Batch.__getattr__ reads the other columns)
    b._stride = stride
    b.family = fams
    b.n = n = len(fams)
    four = fams.count(AF_INET)
    if four == n:  # IPv4: the address's four bytes as one native u32, a C loop each
        b.src, b.dst = _L.as_ints(body, stride, "src"), _L.as_ints(body, stride, "dst")
    elif not four:
        b.src, b.dst = _L.columns(body, stride, ("src", "dst"))
    # else both families (a legacy dump): the addresses (and v6only) when first asked for, which
    # a consumer that splits the batch by family (Batch.split) never does


def _one_family(fams: list[int]) -> int:
    """The family of every row, or 0 when they differ (or there is none)."""
    return fams[0] if fams and fams.count(fams[0]) == len(fams) else 0


def _key(raw: bytes) -> Any:  # the address key of 4 (IPv4) or 16 (IPv6) raw bytes
    return _U32_FROM(raw)[0] if len(raw) == 4 else raw


def _framed(mv: memoryview, op: str, b: Batch) -> bool:
    """Fill ``b`` from a datagram of messages of several lengths: their fixed parts side by side (cut
    out at the dump's sequence number by ``netlink.cut_dump``; else where ``netlink.walk_dump`` finds
    the messages, copied), read column at once."""
    raw = _datagram(mv)
    cut = nl.cut_dump(raw, op, _HEAD, _SPLIT_MAX)
    if cut is None:
        starts, done = nl.walk_dump(mv, op, _HEAD)
        heads = gather(raw, starts, _HEAD)
        b._starts, b._lens, b._pieces = starts, heads.cast("I")[:: _HEAD // 4].tolist(), None
    else:
        heads, b._lens, done, b._pieces = cut  # (the starts are made from the lengths when asked for)
    b._length = 0
    fams = heads[_FAMILY_AT::_HEAD].tolist()
    if fams.count(AF_INET) not in (0, len(fams)):
        # both families (a legacy dump): the fixed parts are regrouped by family where the batch is
        # split (ss lists IPv4 first); their addresses are read whole only where a column is asked for
        b.family, b.n, b._stride, b._body = fams, len(fams), _HEAD, heads
        return done
    _heads(heads, _HEAD, b)
    return done


_SPLIT_MAX = 256  # the longest first message of a datagram that nl.cut_dump cuts (the walk costs less above)
_FAMILY_AT = 16 + INET_DIAG_MSG.offset("family")  # a message's family byte, in a fixed part


def _datagram(mv: memoryview) -> bytes:
    """The bytes ``mv`` shows: the datagram itself where it is those bytes (no copy), else a copy."""
    whole = mv.obj
    return whole if type(whole) is bytes and len(whole) == mv.nbytes else mv.tobytes()


#: the dumps whose sockets ``inet6_bind`` binds (TCP, UDP): one bound to an IPv6 address is v6only, one
#: bound to a v4-mapped address is not, and neither changes once bound (``IPV6_V6ONLY`` is refused then)
_BOUND_BY_INET6 = frozenset({"tcp diag", "udp diag", "TCPDIAG_FILE"})


def _wildcards(b: Batch) -> None:
    """``v6only`` for the IPv6 rows with ``::`` on either side (a listener's peer is ``::``): in a dump
    of :data:`_BOUND_BY_INET6` where the local address is not ``::``, from that address; else from
    the attributes, column at once in messages of one length (:func:`netlink.u8_column`)."""
    b.v6only = None
    if b.fam == AF_INET or not b.n or (ZERO16 not in b.src and ZERO16 not in b.dst):
        return
    v6: list[bool | None] = [None] * b.n
    rows = []
    for i, (s, d) in enumerate(zip(b.src, b.dst)):
        if s == ZERO16 or d == ZERO16:  # (kernel.inet_attrs is not loaded for this: start-up time)
            if b._bound and s != ZERO16:
                v6[i] = s[:12] != V4MAPPED
            else:
                rows.append(i)
    got = nl.u8_column(b._body, b._length, _HEAD, rows, INET_DIAG_SKV6ONLY) if rows and b._length else None
    for k, i in enumerate(rows):
        v6[i] = got[k] if got is not None else nl.u8_flag(nl.parse_attrs(b.attrs(i)).get(INET_DIAG_SKV6ONLY))
    b.v6only = v6


# --------------------------------------------------------------------------
# Records from batches


def _addr_text(key: Any) -> str:
    return ntop4(_U32.pack(key)) if type(key) is int else ntop6(key)


#: the address text of an address key (see :class:`Batch`), computed on first use (bounded: a
#: long-running caller, top or the exporter, sees ever new peers)
ADDR_TEXT = Texts(_addr_text)
#: the address text of a row of a batch of both families: its family's table of the 16 raw bytes of the
#: address field (:meth:`Batch.texts`: no key made a row, each looked up where its family's are)
FAM_TEXT = {AF_INET: Texts(lambda raw: ntop4(raw[:4])), AF_INET6: Texts(ntop6)}


class _States(dict[int, object]):
    """kernel state number -> State (the table's, or made for numbers it lacks)."""

    def __init__(self, table: Any, make: Any) -> None:
        super().__init__(enumerate(table))
        self.make = make

    def __missing__(self, n: int) -> Any:
        return self.make(n)


def records(b: Batch, netid: str, details: bool = False) -> list[Socket]:
    """The batch's rows as :class:`~sockscope.records.Socket` records (with
    ``details``, every attribute decoded; else made column by column, by C-level maps)."""
    from sockscope.records import STATES, Endpoint, make_socket, state_of

    states = _States(STATES, state_of)
    new = tuple.__new__  # Endpoint(address, port) without the named tuple's Python-level __new__
    b.read(_HEAD_COLS)
    local = map(new, repeat(Endpoint), zip(b.texts("src"), b.sport))
    peer = map(new, repeat(Endpoint), zip(b.texts("dst"), b.dport))
    st = map(states.__getitem__, b.state)
    if not details:
        # make_socket's positional fields: netid, family, state, rqueue, wqueue, local, peer, inode, uid, cookie,
        # ifindex, peer_inode, v6only, shutdown, owners, netns, protocol, timer, expires, retrans
        v6: Iterable[Any] = b.v6only if b.v6only is not None else repeat(None)
        return list(map(make_socket, repeat(netid), b.family, st, b.rqueue, b.wqueue, local, peer, b.inode, b.uid,
                        b.cookie, b.ifindex, repeat(None), v6, repeat(None), repeat(()), repeat(None), repeat(None),
                        b.timer, b.expires, b.retrans))
    from sockscope.kernel.inet_details import detail_columns, named_skmem

    cols = detail_columns(b, netid)  # (every detail field: a column, or None where no row has one)
    if cols["skmem"] is not None:
        cols["skmem"] = named_skmem(cols["skmem"])

    def col(name: str) -> Iterable[Any]:
        got = cols[name]
        return repeat(None) if got is None else got

    # make_socket's positional fields from ifindex on: peer_inode, v6only, shutdown, owners, netns, protocol, timer,
    # expires, retrans, mark, cgroup_id, cong, tcp_info, skmem, unix_vfs, unix_pending, groups, bbr_info, dctcp_info,
    # packet_info, tos, tclass, class_id, sockopt, bpf, mptcp_info, md5keys, ulp
    none = repeat(None)
    return list(map(make_socket, repeat(netid), b.family, st, b.rqueue, b.wqueue, local, peer, b.inode, b.uid,
                    b.cookie, b.ifindex, none, col("v6only"), col("shutdown"), repeat(()), none, col("protocol"),
                    b.timer, b.expires, b.retrans, col("mark"), col("cgroup_id"), col("cong"), col("tcp_info"),
                    col("skmem"), none, none, none, col("bbr_info"), col("dctcp_info"), none, col("tos"),
                    col("tclass"), col("class_id"), col("sockopt"), none, col("mptcp_info"), col("md5keys"),
                    col("ulp")))


def decode_dump(buf: bytes | memoryview, netid: str, out: list[Socket], details: bool = False,
                op: str = "inet_diag") -> bool:
    """:func:`decode`, then :func:`records` into ``out``; True when the dump is complete."""
    b, done = decode(buf, op)
    out += records(b, netid, details)
    return done


__all__ = [
    "Batch", "decode", "records", "decode_dump", "ADDR_TEXT",
    "encode_request", "encode_request_compat", "encode_sockid", "encode_destroy",
    "NETIDS", "MSG_LEN", "AF_INET", "AF_INET6",
]
