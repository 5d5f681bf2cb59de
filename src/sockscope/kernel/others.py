"""netlink_diag and packet_diag: the ``nl`` and ``p_raw``/``p_dgr`` tables, sans IO
(plus the two dump helpers that use the transport).

Each dump decodes to a :class:`Batch` of columns, like the inet and UNIX
decoders (their layouts: :data:`~sockscope.kernel.layout.NETLINK_DIAG_MSG`,
:data:`~sockscope.kernel.layout.PACKET_DIAG_MSG`); :func:`records` makes
:class:`~sockscope.records.Socket` records of one on demand (the records, and
the dataclass machinery behind them, are imported only then: ``ss -a`` lists
these tables without them)."""

from __future__ import annotations

import _struct  # struct.py only re-exports this C module: one module fewer to import

from sockscope._addr import AF_NETLINK, AF_PACKET
from sockscope.errors import DecodeError
from sockscope.filter.states import CLOSE, ESTABLISHED
from sockscope.kernel import netlink as nl
from sockscope.kernel.layout import NETLINK_DIAG_MSG, PACKET_DIAG_MSG, PACKET_DIAG_RING

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

    from sockscope.records import SkMem, Socket

NDIAG_PROTO_ALL = 255
NDIAG_SHOW_MEMINFO = 1
NDIAG_SHOW_GROUPS = 2
NETLINK_DIAG_MEMINFO = 0
NETLINK_DIAG_GROUPS = 1

PACKET_SHOW_INFO = 1
PACKET_SHOW_RING_CFG = 4
PACKET_SHOW_FANOUT = 8
PACKET_SHOW_MEMINFO = 0x10
PACKET_SHOW_FILTER = 0x20
PACKET_DIAG_FILTER = 7
PACKET_DIAG_INFO = 0
PACKET_DIAG_RX_RING = 2
PACKET_DIAG_TX_RING = 3
PACKET_DIAG_FANOUT = 4
PACKET_DIAG_UID = 5
PACKET_DIAG_MEMINFO = 6

_NREQ = _struct.Struct("=BBHIIII")
_PREQ = _struct.Struct("=BBHIIII")
_NMSG = NETLINK_DIAG_MSG.struct
_PMSG = PACKET_DIAG_MSG.struct
_U32 = _struct.Struct("=I")
_RING = PACKET_DIAG_RING.struct
_I32 = _struct.Struct("=i")
_MEM2 = _struct.Struct("=III")  # rmem_alloc rcvbuf wmem_alloc

#: a batch's columns, by table
NETLINK_COLUMNS = ("protocol", "state", "portid", "dst_portid", "dst_group", "inode", "cookie", "rqueue", "wqueue",
                   "groups", "skmem")
PACKET_COLUMNS = ("type", "protocol", "inode", "cookie", "rqueue", "ifindex", "uid", "skmem", "packet_info", "bpf",
                  "rings")


class Batch:
    """The sockets of a netlink_diag (``table`` "nl") or packet_diag ("packet") dump,
    column by column: :data:`NETLINK_COLUMNS` or :data:`PACKET_COLUMNS` (lists, row
    ``i`` of each).  Netlink ``portid``/``dst_portid`` are signed (-1: not bound yet);
    ``skmem`` is the raw ``SK_MEMINFO`` tuple or None; ``groups`` the first word of the
    bound groups (None if not sent); packet ``protocol`` is the ethertype, ``type`` 3
    (SOCK_RAW) or 2 (SOCK_DGRAM), ``packet_info`` (version, thresh, flags) or None,
    ``bpf`` the filter's instructions or None, ``rings`` (rx ring, tx ring, fanout) or None where
    it has none of them (a ring: :data:`~sockscope.kernel.layout.PACKET_DIAG_RING`'s seven u32; fanout:
    id | type << 16)."""

    __slots__ = ("table", "n", "cols")

    def __init__(self, table: str, cols: dict[str, list[Any]]) -> None:
        self.table = table
        self.cols = cols
        self.n = len(cols["inode"])

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "cols")[name]
        except KeyError:
            raise AttributeError(name) from None

    def select(self, keep: Sequence[Any]) -> Batch:
        """The rows whose ``keep`` is true, as a new batch."""
        from itertools import compress

        return Batch(self.table, {k: list(compress(v, keep)) for k, v in self.cols.items()})


def encode_netlink_request(seq: int = nl.DUMP_SEQ) -> bytes:
    payload = _NREQ.pack(AF_NETLINK, NDIAG_PROTO_ALL, 0, 0, NDIAG_SHOW_GROUPS | NDIAG_SHOW_MEMINFO, 0, 0)
    return nl.encode_message(nl.SOCK_DIAG_BY_FAMILY, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, payload)


def encode_packet_request(seq: int = nl.DUMP_SEQ) -> bytes:
    payload = _PREQ.pack(AF_PACKET, 0, 0, 0, PACKET_SHOW_INFO | PACKET_SHOW_MEMINFO | PACKET_SHOW_FILTER
                         | PACKET_SHOW_RING_CFG | PACKET_SHOW_FANOUT, 0, 0)
    return nl.encode_message(nl.SOCK_DIAG_BY_FAMILY, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, payload)


def _skmem(raw: memoryview) -> tuple[int, ...] | None:
    """``SK_MEMINFO_*`` u32 array (7 to 9 values); None when too short."""
    n = min(len(raw) // 4, nl.SKMEM_MAX)
    return _struct.unpack_from(f"={n}I", raw, 0) if n >= nl.SKMEM_MIN else None


def _netlink_row(p: memoryview) -> tuple[Any, ...]:
    """One ``netlink_diag_msg`` as a row of :data:`NETLINK_COLUMNS`."""
    if len(p) < _NMSG.size:
        raise DecodeError("truncated netlink_diag_msg")
    _fam, _type, proto, st, portid, dst_portid, dst_group, ino, cookie = _NMSG.unpack_from(p, 0)
    attrs = nl.parse_attrs(p, _NMSG.size)
    rq = wq = 0
    skmem = None
    mem = attrs.get(NETLINK_DIAG_MEMINFO)
    if mem is not None and len(mem) >= 12:
        rq, _rb, wq = _MEM2.unpack_from(mem, 0)
        skmem = _skmem(mem)
    groups = None
    g = attrs.get(NETLINK_DIAG_GROUPS)
    if g is not None and len(g) >= 4:
        groups = _U32.unpack_from(g, 0)[0]
    signed = _I32.unpack(_U32.pack(portid))[0]
    dst_signed = _I32.unpack(_U32.pack(dst_portid))[0]
    return proto, st, signed, dst_signed, dst_group, ino, cookie, rq, wq, groups, skmem


def _packet_row(p: memoryview) -> tuple[Any, ...]:
    """One ``packet_diag_msg`` as a row of :data:`PACKET_COLUMNS`."""
    if len(p) < _PMSG.size:
        raise DecodeError("truncated packet_diag_msg")
    _fam, ptype, num, ino, cookie = _PMSG.unpack_from(p, 0)
    attrs = nl.parse_attrs(p, _PMSG.size)
    rq = ifindex = 0
    uid = skmem = pinfo = bpf = None
    mem = attrs.get(PACKET_DIAG_MEMINFO)
    if mem is not None and len(mem) >= 4:
        rq = _U32.unpack_from(mem, 0)[0]
        skmem = _skmem(mem)
    info = attrs.get(PACKET_DIAG_INFO)
    if info is not None and len(info) >= 4:
        ifindex = _U32.unpack_from(info, 0)[0]
        if len(info) >= 24:
            _idx, version, _res, thresh, _ts, pflags = _struct.unpack_from("=6I", info, 0)
            pinfo = (version, thresh, pflags)
    u = attrs.get(PACKET_DIAG_UID)
    if u is not None and len(u) >= 4:
        uid = _U32.unpack_from(u, 0)[0]
    f = attrs.get(PACKET_DIAG_FILTER)
    if f is not None:
        bpf = tuple(_struct.iter_unpack("=HBBI", bytes(f[: len(f) // 8 * 8])))
    rx, tx, fan = (attrs.get(PACKET_DIAG_RX_RING), attrs.get(PACKET_DIAG_TX_RING), attrs.get(PACKET_DIAG_FANOUT))
    rings = None
    if rx is not None or tx is not None or fan is not None:
        rings = (_RING.unpack_from(rx) if rx is not None and len(rx) >= _RING.size else None,
                 _RING.unpack_from(tx) if tx is not None and len(tx) >= _RING.size else None,
                 _U32.unpack_from(fan)[0] if fan is not None and len(fan) >= 4 else None)
    return ptype, num, ino, cookie, rq, ifindex, uid, skmem, pinfo, bpf, rings


_KINDS: dict[str, tuple[tuple[str, ...], Callable[[memoryview], tuple[Any, ...]], str]] = {
    "nl": (NETLINK_COLUMNS, _netlink_row, "netlink diag"),
    "packet": (PACKET_COLUMNS, _packet_row, "packet diag"),
}


def decode(buf: bytes | memoryview, table: str) -> tuple[Batch, bool]:
    """One datagram of a netlink_diag (``table`` "nl") or packet_diag ("packet") dump as a
    :class:`Batch`, and whether the dump ended in it; malformed bytes raise :class:`DecodeError`."""
    names, row, op = _KINDS[table]
    payloads, done = nl.diag_messages(buf, op)
    rows = [row(p) for p in payloads]
    cols = [list(c) for c in zip(*rows)] if rows else [[] for _ in names]
    return Batch(table, dict(zip(names, cols))), done


def concat(parts: list[Batch]) -> Batch:
    """One batch of several of one table (a dump's datagrams), in order."""
    return Batch(parts[0].table, {k: [x for p in parts for x in p.cols[k]] for k in parts[0].cols})


def dump(table: str) -> Batch:
    """The whole ``nl`` or ``packet`` table of this namespace, as one batch."""
    from sockscope.kernel import transport

    parts: list[Batch] = []

    def take(data: bytes) -> bool:
        b, done = decode(data, table)
        parts.append(b)
        return done

    request = encode_netlink_request() if table == "nl" else encode_packet_request()
    transport.dump(request, take, _KINDS[table][2])
    return concat(parts)


def records(b: Batch) -> list[Socket]:
    """The batch's rows as :class:`~sockscope.records.Socket` records: netlink ones with
    local = (protocol, portid) and peer = (dst_group, dst_portid) when connected; packet
    ones with local.port = the interface index and protocol = the ethertype."""
    from sockscope.records import Endpoint, make_socket, state_of

    close = state_of(CLOSE)
    c = b.cols
    if b.table == "nl":  # (the ends, protocol and interface as the filter's stand-in reads them: filter_rows)
        return [make_socket(
            "nl", AF_NETLINK, close, rq, wq, Endpoint(la, lp), Endpoint(pa, pp),
            ino, None, cookie, 0, None, None, None, (), None, proto, skmem=_skmem_record(mem), groups=groups)
            for (la, lp, pa, pp, proto, _), ino, cookie, rq, wq, groups, mem in zip(
                filter_rows(b), c["inode"], c["cookie"], c["rqueue"], c["wqueue"], c["groups"], c["skmem"])]
    return [make_socket(
        "p_raw" if ptype == 3 else "p_dgr", AF_PACKET, close, rq, 0, Endpoint(la, lp), Endpoint(pa, pp),
        ino, uid, cookie, ifindex, None, None, None, (), None, num, skmem=_skmem_record(mem), packet_info=pinfo,
        bpf=bpf, packet_rings=rings)
        for (la, lp, pa, pp, num, ifindex), ptype, ino, cookie, rq, uid, mem, pinfo, bpf, rings in zip(
            filter_rows(b), c["type"], c["inode"], c["cookie"], c["rqueue"], c["uid"], c["skmem"], c["packet_info"],
            c["bpf"], c["rings"])]


def filter_rows(b: Batch) -> list[tuple[str, int, str, int, int, int]]:
    """Each row's fields a filter's predicate reads: local address and port (netlink: protocol and
    port id; packet: the interface), peer address and port (a connected netlink socket's
    destination group and port id), protocol, interface.  :func:`records` takes its ends from here;
    the filter asks a stand-in of them (``LazyPredicate.rows_mask``: no record made)."""
    c = b.cols
    if b.table == "nl":
        return [(str(proto), portid, *((str(group), dst) if st == ESTABLISHED else ("", 0)), proto, 0)
                for proto, st, portid, dst, group in zip(c["protocol"], c["state"], c["portid"], c["dst_portid"],
                                                         c["dst_group"])]
    return [("", ifindex, "", 0, num, ifindex) for num, ifindex in zip(c["protocol"], c["ifindex"])]


def _skmem_record(raw: tuple[int, ...] | None) -> SkMem | None:
    from sockscope.records import SkMem

    return None if raw is None else SkMem(*raw)


def decode_skmem(raw: memoryview) -> SkMem | None:
    """``SK_MEMINFO_*`` u32 array (7 to 9 values) as :class:`~sockscope.records.SkMem`; None when too short."""
    return _skmem_record(_skmem(raw))


def decode_netlink_dump(buf: bytes | memoryview, out: list[Socket]) -> bool:
    """:func:`decode`, then :func:`records` into ``out``; True when the dump is complete."""
    b, done = decode(buf, "nl")
    out += records(b)
    return done


def decode_packet_dump(buf: bytes | memoryview, out: list[Socket]) -> bool:
    """:func:`decode`, then :func:`records` into ``out``; True when the dump is complete."""
    b, done = decode(buf, "packet")
    out += records(b)
    return done
