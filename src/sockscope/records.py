"""The typed records every part of sockscope shares.

Records are immutable.  :class:`Socket` is a frozen, slotted dataclass; the two
small value types (:class:`Endpoint`, :class:`Owner`) are named tuples, so that
they unpack like psutil's ``addr`` and cost little to build by the hundred
thousand.  Every source (netlink, /proc) fills the same fields, with ``None``
where the data is absent.
"""

from __future__ import annotations

import enum

from sockscope import _lazy_inspect  # noqa: F401  (before dataclasses: see that module)
from sockscope.filter import states as _k
from sockscope.kernel.layout import MPTCP_INFO, MPTCP_SUBFLOW_ATTRS, PACKET_DIAG_RING, TLS_INFO_FIELDS
from dataclasses import MISSING, dataclass  # noqa: E402
from collections import namedtuple
from _operator import attrgetter

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, NamedTuple


class State(enum.IntEnum):
    """Kernel socket states (``include/net/tcp_states.h``; the numbers: :mod:`sockscope.filter.states`)."""

    UNKNOWN = _k.UNKNOWN
    ESTABLISHED = _k.ESTABLISHED
    SYN_SENT = _k.SYN_SENT
    SYN_RECV = _k.SYN_RECV
    FIN_WAIT1 = _k.FIN_WAIT1
    FIN_WAIT2 = _k.FIN_WAIT2
    TIME_WAIT = _k.TIME_WAIT
    CLOSE = _k.CLOSE
    CLOSE_WAIT = _k.CLOSE_WAIT
    LAST_ACK = _k.LAST_ACK
    LISTEN = _k.LISTEN
    CLOSING = _k.CLOSING
    NEW_SYN_RECV = _k.NEW_SYN_RECV
    BOUND_INACTIVE = _k.BOUND_INACTIVE

    @property
    def ss_name(self) -> str:
        """The name ss prints in its State column."""
        return _k.SS_STATE_NAMES[self]



#: State members indexed by number, for a lookup cheaper than ``State(n)``.
STATES: tuple[State, ...] = tuple(State)


def state_of(n: int) -> State:
    """The :class:`State` for a kernel state number (UNKNOWN when out of range)."""
    return STATES[n] if 0 <= n < len(STATES) else State.UNKNOWN


if TYPE_CHECKING:

    class Endpoint(NamedTuple):
        address: str
        port: int

    class Owner(NamedTuple):
        pid: int
        fd: int
        name: str
        tid: int | None = None

    class SkMem(NamedTuple):
        rmem_alloc: int
        rcvbuf: int
        wmem_alloc: int
        sndbuf: int
        fwd_alloc: int
        wmem_queued: int
        optmem: int
        backlog: int | None = None
        drops: int | None = None

else:
    Endpoint = namedtuple("Endpoint", "address port")
    Endpoint.__doc__ = """One end of a socket.

    For inet sockets ``address`` is the textual IP ("127.0.0.1", "::1") and
    ``port`` the port number (0 = none).  For UNIX sockets ``address`` is the
    path, ``@name`` for an abstract name, or "" when unnamed, and ``port`` is 0.
    """
    Owner = namedtuple("Owner", "pid fd name tid", defaults=(None,))
    Owner.__doc__ = "A process (with ``tid``: a thread, ss -T) holding a socket through one of its fds."
    SkMem = namedtuple(
        "SkMem", "rmem_alloc rcvbuf wmem_alloc sndbuf fwd_alloc wmem_queued optmem backlog drops",
        defaults=(None, None),
    )
    SkMem.__doc__ = "``SK_MEMINFO_*`` (ss -m's ``skmem:(r,rb,t,tb,f,w,o,bl,d)``); None where the kernel sent fewer."


@dataclass(frozen=True, slots=True)
class Socket:
    """One socket as the kernel reports it.

    ``netid`` is ss's table name: tcp, udp, raw, u_str, u_dgr, u_seq, nl,
    p_raw, p_dgr.  ``recv_q``/``send_q`` are ss's Recv-Q/Send-Q (for a
    listener: the accept queue and the backlog).  ``owners`` lists every
    (pid, fd) holding the socket, filled only when processes were asked for.
    ``ifindex`` is the interface the socket is bound to (0: none; ss prints
    it as ``%name``).  ``cookie`` is the kernel's socket cookie (ss's ``sk:``),
    None for a socket read from /proc, which has none.  ``protocol`` is the netlink protocol or the packet
    ethertype for those families; for a netlink socket ``local.port`` /
    ``peer.port`` are port ids and ``peer.address`` the destination group;
    for a packet socket ``local.port`` is the interface index.

    ``timer``/``expires``/``retrans`` are the kernel's timer (0 none, 1 on,
    2 keepalive, 3 timewait, 4 persist), its expiry in ms and the retransmit
    or probe count.  The remaining fields are filled only when details were
    asked for (else None): ``v6only`` (always filled for IPv6 wildcard
    addresses), ``shutdown`` (bit 0 = no more receives, bit 1 = no more
    sends), ``mark``, ``cgroup_id``, ``cong`` (congestion control),
    ``tcp_info`` (:class:`~sockscope.kernel.tcpinfo.TcpInfo`), ``skmem``
    (:class:`SkMem`), ``unix_vfs`` ((inode, device) of a UNIX path) and
    ``unix_pending`` (inodes of connections waiting in a UNIX listener),
    ``groups`` (a netlink socket's multicast groups), ``bbr_info`` ((bw in
    bytes/s, min_rtt µs, pacing_gain, cwnd_gain) with gains <<8) and
    ``dctcp_info`` ((enabled, ce_state, alpha, ab_ecn, ab_tot)) and
    ``packet_info`` ((version, copy_thresh, flags) of a packet socket),
    ``tos``/``tclass``/``class_id`` (ss --tos), ``sockopt`` (the 16 flag
    bits of ``inet_diag_sockopt``, ss --inet-sockopt) and ``bpf`` (a packet
    socket's classic BPF program as (code, jt, jf, k) tuples, ss -b), ``mptcp_info``
    (an MPTCP socket's ``struct mptcp_info``, 14 fields), ``md5keys`` ((family,
    prefix length, address, key) of each TCP-MD5 key) and ``ulp`` ((name, kTLS's
    fields, an MPTCP subflow's) of the TCP upper layer protocol), ss -i's tail, and
    ``packet_rings`` ((rx ring, tx ring, fanout) of a packet socket: ss -e's
    ``ring_rx(…)``, ``ring_tx(…)``, ``fanout(…)``).
    """

    netid: str
    family: int
    state: State
    recv_q: int
    send_q: int
    local: Endpoint
    peer: Endpoint
    inode: int
    uid: int | None = None
    cookie: int | None = None
    ifindex: int = 0
    peer_inode: int | None = None
    v6only: bool | None = None
    shutdown: int | None = None
    owners: tuple[Owner, ...] = ()
    netns: str | None = None
    protocol: int | None = None
    timer: int = 0
    expires: int = 0
    retrans: int = 0
    mark: int | None = None
    cgroup_id: int | None = None
    cong: str | None = None
    tcp_info: Any = None
    skmem: "SkMem | None" = None
    unix_vfs: tuple[int, int] | None = None
    unix_pending: tuple[int, ...] | None = None
    groups: int | None = None
    bbr_info: tuple[int, int, int, int] | None = None
    dctcp_info: tuple[int, int, int, int, int] | None = None
    packet_info: tuple[int, int, int] | None = None
    tos: int | None = None
    tclass: int | None = None
    class_id: int | None = None
    sockopt: int | None = None
    bpf: tuple[tuple[int, int, int, int], ...] | None = None
    mptcp_info: tuple[int, ...] | None = None
    md5keys: tuple[tuple[int, int, bytes, bytes], ...] | None = None
    ulp: tuple[Any, Any, Any] | None = None
    packet_rings: tuple[Any, Any, int | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of this record (used by --json and --csv)."""
        d: dict[str, Any] = {
            "netid": self.netid,
            "family": FAMILY_NAMES.get(self.family, str(self.family)),
            "state": self.state.ss_name,
            "recv_q": self.recv_q,
            "send_q": self.send_q,
            "local_address": self.local.address,
            "local_port": self.local.port,
            "peer_address": self.peer.address,
            "peer_port": self.peer.port,
            "inode": self.inode,
            "uid": self.uid,
            "cookie": self.cookie,
            "ifindex": self.ifindex,
            "peer_inode": self.peer_inode,
            "v6only": self.v6only,
            "shutdown": self.shutdown,
            "owners": [o._asdict() for o in self.owners],
            "netns": self.netns,
            "protocol": self.protocol,
            "timer": self.timer,
            "expires": self.expires,
            "retrans": self.retrans,
            "mark": self.mark,
            "cgroup_id": self.cgroup_id,
            "cong": self.cong,
            "tcp_info": self.tcp_info.to_dict() if self.tcp_info is not None else None,
            "skmem": self.skmem._asdict() if self.skmem is not None else None,
            "bbr_info": list(self.bbr_info) if self.bbr_info is not None else None,
            "dctcp_info": list(self.dctcp_info) if self.dctcp_info is not None else None,
            "mptcp_info": None if self.mptcp_info is None else _mptcp_dict(self.mptcp_info),
            "md5keys": None if self.md5keys is None else _md5_list(self.md5keys),
            "ulp": None if self.ulp is None else _ulp_dict(self.ulp),
            "packet_rings": None if self.packet_rings is None else _rings_dict(self.packet_rings),
        }
        return d


_MPTCP_FIELDS = tuple(name for name in MPTCP_INFO.names if name[0] != "_")


def _mptcp_dict(info: tuple[int, ...]) -> dict[str, Any]:
    return dict(zip(_MPTCP_FIELDS, info))


def _md5_list(keys: tuple[tuple[int, int, bytes, bytes], ...]) -> list[dict[str, Any]]:
    return [_md5_dict(k) for k in keys]


def _md5_dict(key: tuple[int, int, bytes, bytes]) -> dict[str, Any]:
    from sockscope._addr import ntop

    fam, plen, addr, secret = key
    return {"address": ntop(fam, addr), "prefixlen": plen,
            "key": secret.decode("utf-8", "surrogateescape")}


def _rings_dict(rings: tuple[Any, Any, int | None]) -> dict[str, Any]:
    rx, tx, fanout = rings
    names = PACKET_DIAG_RING.names
    return {"rx": None if rx is None else dict(zip(names, rx)), "tx": None if tx is None else dict(zip(names, tx)),
            "fanout": None if fanout is None else {"id": fanout & 0xFFFF, "type": fanout >> 16}}


def _ulp_dict(ulp: tuple[Any, Any, Any]) -> dict[str, Any]:
    name, tls, sub = ulp
    return {"name": name,
            "tls": None if tls is None else dict(zip(TLS_INFO_FIELDS, tls)),
            "mptcp": None if sub is None else {field: sub[t] for t, (field, _) in MPTCP_SUBFLOW_ATTRS.items()}}


#: the JSON and CSV text of a family number (any other: the number as text)
FAMILY_NAMES = {1: "unix", 2: "inet", 10: "inet6", 16: "netlink", 17: "packet"}

#: how :meth:`Socket.to_dict` turns the nested fields it does not write as they are into JSON values
#: (where not None): the columnar JSON writer (:mod:`sockscope.render.machine`) reads the same
NESTED_JSON: dict[str, Callable[[Any], Any]] = {
    "mptcp_info": _mptcp_dict, "md5keys": _md5_list, "ulp": _ulp_dict, "packet_rings": _rings_dict,
}


def fast_constructor(cls: type) -> Callable[..., Any]:
    """A constructor for a frozen slotted dataclass (fields in order; those
    with defaults may be left out or given by keyword).

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__`` per
    field, about 2 µs for this record.  Here a plain twin class with the same
    slots, in the same order, is filled by an ordinary ``__init__`` (whose
    attribute stores the interpreter specialises to direct slot writes), and
    the object then becomes a ``cls`` by ``__class__`` assignment (the last
    line of that ``__init__``), which CPython allows between classes of
    identical layout: 0.55 µs.  The result
    is a true ``cls`` instance, frozen like any other.  Only for trusted,
    already-typed values.
    """
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    names = list(fields)
    ns: dict[str, Any] = {"_cls": cls}
    params = []
    for n in names:
        default = fields[n].default
        if default is MISSING:
            params.append(n)
        else:
            ns["_d_" + n] = default
            params.append(f"{n}=_d_{n}")
    body = "".join(f"        self.{n} = {n}\n" for n in names)
    # the twin's __init__ ends by making its object a ``cls``: calling the twin class itself is the constructor
    src = (f"class _Twin:\n    __slots__ = {tuple(cls.__slots__)!r}\n"  # type: ignore[attr-defined]
           f"    def __init__(self, {', '.join(params)}):\n{body}        self.__class__ = _cls\n")
    exec(src, ns)  # noqa: S102 - generated from the dataclass's own field names
    return ns["_Twin"]  # type: ignore[no-any-return]


#: ``make_socket(netid, …, inode, [more fields positionally or by keyword])``: the decoders' fast path.
make_socket: Callable[..., Socket] = fast_constructor(Socket)

_FIELD_NAMES = tuple(Socket.__dataclass_fields__)
_FIELD_AT = {name: i for i, name in enumerate(_FIELD_NAMES)}
_FIELDS_OF = attrgetter(*_FIELD_NAMES)


def evolve(s: Socket, **changes: Any) -> Socket:
    """``dataclasses.replace(s, **changes)``, made as the decoders make records (:data:`make_socket`):
    every field read in one C call and passed by position, ~3 µs against replace's ~19 (records
    relabelled by the thousand: each namespace's of ``--all-netns``, owners added for ``-p``)."""
    values = list(_FIELDS_OF(s))
    for name, value in changes.items():
        at = _FIELD_AT.get(name)
        if at is None:
            raise TypeError(f"Socket has no field {name!r}")
        values[at] = value
    return make_socket(*values)


def state_mask(states: State | str | int | Iterable[State | str | int] | None) -> int:
    """The kernel's state mask of ``sockscope.sockets(states=…)``: one state or several, each a ``State``
    (or its number), its name, ss's column name ("ESTAB", "UNCONN") or ss's state word ("listening",
    "connected", "bucket"…), in any case."""
    if states is None:
        return _k.EVERY_STATE
    if isinstance(states, (bytes, bytearray)) or not isinstance(states, (str, int)) and not hasattr(states, "__iter__"):
        raise TypeError(f"states are State members, their names or numbers, not {type(states).__name__}")
    from sockscope.errors import UsageError

    by_name = {s.name: 1 << s for s in STATES} | {v: 1 << k for k, v in _k.SS_STATE_NAMES.items() if k < 12}
    mask = 0
    for s in (states,) if isinstance(states, (str, int)) else states:
        if isinstance(s, str):
            bits = by_name.get(s.upper().replace("-", "_")) or by_name.get(s.upper())
            mask |= bits if bits is not None else _k.scan_state(s)  # (or a UsageError naming the word)
        elif isinstance(s, int) and not isinstance(s, bool):
            if not 0 <= s < len(STATES):  # (a huge number would make a huge mask)
                raise UsageError(f"unknown state {s}" if s.bit_length() < 64 else "unknown state: a number too big")
            mask |= 1 << s
        else:
            raise TypeError(f"a state is a State, its name or its number, not {type(s).__name__}")
    return mask


__all__ = ["State", "Endpoint", "Owner", "Socket", "SkMem", "STATES", "state_of", "make_socket", "evolve", "state_mask"]
