"""The data behind ``sockscope top``: samples, rates, opened/closed, sorting, filtering.

No curses here.  :class:`Model` takes one :class:`Sample` per tick: it dumps
the socket tables of its query (one sock_diag dump per table and family),
refreshes the incremental owner map (:class:`~sockscope.top.owners.OwnerCache`:
only new inodes are looked up), and compares with the previous sample:

* a socket is identified by its kernel cookie (or, from the /proc fallback,
  by its table, addresses and inode);
* opened = keys not in the previous sample, closed = keys gone since;
* receive/send rates come from tcp_info's ``bytes_received`` and
  ``bytes_acked`` between two samples (read by :mod:`sockscope.top.dump`,
  or from ``Socket.tcp_info`` when a record carries it; ``None``, shown as
  ``-``, for UDP and UNIX).  A socket opened since the previous sample counts
  all its bytes.

:class:`View` holds what the user chose (socket or process rows, sort column,
order, filter) and turns a sample into the rows to show.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

from sockscope._addr import AF_UNIX
from sockscope.query import Query
from sockscope.filter.states import SS_STATE_NAMES
from sockscope.records import Socket, State
from sockscope.render.endpoint import endpoint, escape
from sockscope.top.owners import OwnerCache


#: header order of the per-state totals
STATE_ORDER = ("ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "UNCONN",
               "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING", "UNKNOWN", "BOUND-INACTIVE")


class Row:
    """One socket of a sample: the record, its holders (pid, fd), its rates."""

    __slots__ = ("sock", "key", "holders", "rx", "tx", "new", "counters", "_text")

    def __init__(self, sock: Socket, key: object, holders: Sequence[tuple[int, int]],
                 rx: float | None, tx: float | None, new: bool,
                 counters: tuple[int, int] | None = None) -> None:
        self.sock = sock
        self.key = key
        self.holders = holders
        self.rx = rx
        self.tx = tx
        self.new = new
        self.counters = counters  # (bytes_received, bytes_acked)
        self._text: str | None = None


class Sample(NamedTuple):
    """One tick's worth of data."""

    time: float  # monotonic
    wall: float
    dt: float  # seconds since the previous sample (0 for the first)
    rows: list[Row]
    totals: dict[str, int]
    opened: int
    closed: int
    closed_owners: dict[int, int]  # pid -> sockets closed since the previous sample
    names: dict[int, str]  # pid -> comm, for the pids in ``rows``
    owners_complete: bool
    warnings: list[str]
    first: bool
    owners_why: str = ""  # when owners are not complete: why, where known (OwnerMap.why)


def key_of(s: Socket) -> object:
    if s.cookie is not None:
        return s.cookie
    return (s.netid, s.local, s.peer, s.inode)


def _info_counters(s: Socket) -> tuple[int, int] | None:
    """(bytes_received, bytes_acked) from a decoded ``Socket.tcp_info``, if any."""
    info = getattr(s, "tcp_info", None)
    if info is None:
        return None
    try:
        return int(info.bytes_received), int(info.bytes_acked)
    except (AttributeError, TypeError, ValueError):
        return None


Dump = Callable[[Query, Callable[[str], None]], "tuple[list[Socket], dict[int, tuple[int, int]]]"]


class Model:
    """Takes samples of ``query``'s sockets; see the module docstring."""

    def __init__(self, query: Query, *, proc: str = "/proc", owners: OwnerCache | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 dump: Dump | None = None) -> None:
        self.query = query
        self.owners = owners if owners is not None else OwnerCache(proc)
        self.clock = clock
        if dump is None:
            from sockscope.top.dump import dump as _dump

            dump = _dump
        self._dump = dump
        self._prev: dict[object, Row] = {}
        self._prev_names: dict[int, str] = {}
        self._prev_time: float | None = None
        self.warnings: list[str] = []
        self._warned: set[str] = set()

    def _warn(self, msg: str) -> None:
        if msg not in self._warned:
            self._warned.add(msg)
            self.warnings.append(msg)

    def sample(self) -> Sample:
        socks, counters = self._dump(self.query, self._warn)
        now = self.clock()
        first = self._prev_time is None
        dt = 0.0 if first else max(now - self._prev_time, 1e-6)  # type: ignore[operator]
        live = {s.inode for s in socks if s.inode}
        owners = self.owners
        owners.refresh(live, lambda missing: _hint_pids(missing, socks, owners))
        index_get = owners.index.get  # holders lists are never changed in place: rows keep them
        counters_get = counters.get
        prev = self._prev
        cur: dict[object, Row] = {}
        rows: list[Row] = []
        append = rows.append
        by_state: dict[int, int] = {}
        opened = 0
        empty: Sequence[tuple[int, int]] = ()
        for s in socks:
            k: object
            c: tuple[int, int] | None
            if s.cookie is None:
                k = (s.netid, s.local, s.peer, s.inode)
                c = None
            else:
                k = s.cookie
                c = counters_get(s.cookie)
            if c is None and s.netid == "tcp":
                c = _info_counters(s)
            h = (index_get(s.inode) or empty) if s.inode else empty
            st = int(s.state)
            by_state[st] = by_state.get(st, 0) + 1
            rx: float | None = None
            tx: float | None = None
            old = prev.get(k)
            if old is not None:
                if c is not None:
                    p = old.counters
                    if p is not None:
                        rx = (c[0] - p[0]) / dt if c[0] > p[0] else 0.0
                        tx = (c[1] - p[1]) / dt if c[1] > p[1] else 0.0
                    else:
                        rx, tx = c[0] / dt, c[1] / dt
                r = Row(s, k, h, rx, tx, False, c)
            elif first:
                r = Row(s, k, h, None, None, False, c)
            else:
                opened += 1
                if c is not None:
                    rx, tx = c[0] / dt, c[1] / dt
                r = Row(s, k, h, rx, tx, True, c)
            cur[k] = r
            append(r)
        totals: dict[str, int] = {}
        for st, n in by_state.items():
            name = SS_STATE_NAMES.get(st, "UNKNOWN")
            totals[name] = totals.get(name, 0) + n
        closed = 0
        closed_owners: dict[int, int] = {}
        if not first:
            for key, old in prev.items():
                if key not in cur:
                    closed += 1
                    for pid in {pid for pid, _fd in old.holders}:
                        closed_owners[pid] = closed_owners.get(pid, 0) + 1
        names: dict[int, str] = {}
        for r in rows:
            for pid, _fd in r.holders:
                if pid not in names:
                    names[pid] = owners.name(pid)
        for pid in closed_owners:
            if pid not in names:
                names[pid] = self._prev_names.get(pid) or owners.name(pid)
        self._prev = cur
        self._prev_names = names
        self._prev_time = now
        return Sample(now, time.time(), dt, rows, totals, opened, closed, closed_owners, names,
                      owners.complete, list(self.warnings), first, owners.why)


def every_netns(dump: Dump) -> Dump:
    """A :data:`Dump` that runs ``dump`` inside every network namespace (listed
    again at each tick: namespaces come and go) and labels each socket with
    its namespace (``Socket.netns``), its device names learnt while inside."""

    from sockscope import netns

    def dump_all(q: Query, warn: Callable[[str], None]) -> tuple[list[Socket], dict[int, tuple[int, int]]]:
        socks: list[Socket] = []
        counters: dict[int, tuple[int, int]] = {}  # socket cookies are unique across namespaces

        def one(label: str) -> Iterator[None]:
            part, more = dump(q, warn)
            socks.extend(netns.labelled(part, label))
            counters.update(more)
            return iter(())

        for _ in netns.visit(netns.namespaces(), one):
            pass
        return socks, counters

    return dump_all


def _hint_pids(missing: set[int], socks: list[Socket], owners: OwnerCache) -> set[int]:
    """Likely holders of the ``missing`` inodes: whoever owns the listener
    accepting on the same port (or UNIX name), or the UNIX peer."""
    listeners: dict[tuple[str, int | str], int] = {}
    by_inode: dict[int, Socket] = {}
    for s in socks:
        if s.state == State.LISTEN and s.inode:
            key = (s.netid, s.local.port if s.family != AF_UNIX else s.local.address)
            listeners.setdefault(key, s.inode)
        if s.inode in missing:
            by_inode[s.inode] = s
    pids: set[int] = set()
    for s in by_inode.values():
        key = (s.netid, s.local.port if s.family != AF_UNIX else s.local.address)
        lst = listeners.get(key)
        if lst:
            pids.update(pid for pid, _fd in owners.holders(lst))
        if s.family == AF_UNIX and s.peer_inode:
            pids.update(pid for pid, _fd in owners.holders(s.peer_inode))
    return pids


# --------------------------------------------------------------------------
# Views: columns, sorting, filtering


class Column(NamedTuple):
    name: str  # header
    key: str
    right: bool  # right-aligned
    elastic: float  # 0: as wide as its content; > 0: share of the spare width
    minimum: int


SOCKET_COLUMNS = (
    Column("Net", "netid", False, 0, 3),
    Column("State", "state", False, 0, 5),
    Column("Recv-Q", "recv_q", True, 0, 6),
    Column("Send-Q", "send_q", True, 0, 6),
    Column("Local", "local", False, 3, 9),
    Column("Peer", "peer", False, 3, 9),
    Column("Rx/s", "rx", True, 0, 5),
    Column("Tx/s", "tx", True, 0, 5),
    Column("Process", "process", False, 2, 7),
)
#: the last socket column with --all-netns (like the listing's)
NETNS_COLUMN = Column("Netns", "netns", False, 1, 5)

PROCESS_COLUMNS = (
    Column("PID", "pid", True, 0, 5),
    Column("Process", "name", False, 1, 7),
    Column("Socks", "socks", True, 0, 5),
    Column("Estab", "estab", True, 0, 5),
    Column("Listen", "listen", True, 0, 6),
    Column("Recv-Q", "recv_q", True, 0, 6),
    Column("Send-Q", "send_q", True, 0, 6),
    Column("Rx/s", "rx", True, 0, 5),
    Column("Tx/s", "tx", True, 0, 5),
    Column("New", "opened", True, 0, 3),
    Column("Gone", "closed", True, 0, 4),
)


def human(n: float | None) -> str:
    """A byte count or rate in at most 5 characters: 999, 1.2K, 12K, 123K, 1.2M…"""
    if n is None:
        return "-"
    if n < 999.5:
        return str(int(round(n)))
    for unit in "KMGTP":
        n /= 1024
        if n < 9.95:
            return f"{n:.1f}{unit}"
        if n < 999.5:
            return f"{int(round(n))}{unit}"
    return f"{int(n)}E"


def _count(n: int, width: int = 6) -> str:
    s = str(n)
    return s if len(s) <= width else human(n)


class ProcRow(NamedTuple):
    pid: int  # 0: sockets no visible process holds
    name: str
    socks: int
    estab: int
    listen: int
    recv_q: int
    send_q: int
    rx: float | None
    tx: float | None
    opened: int
    closed: int


def process_rows(sample: Sample, rows: Iterable[Row]) -> list[ProcRow]:
    """``rows`` grouped by holding process (a socket shared by two counts for both)."""
    acc: dict[int, list[Any]] = {}
    for r in rows:
        pids = {pid for pid, _fd in r.holders} or {0}
        s = r.sock
        for pid in pids:
            a = acc.get(pid)
            if a is None:
                a = acc[pid] = [0, 0, 0, 0, 0, None, None, 0]
            a[0] += 1
            if s.state == State.ESTABLISHED:
                a[1] += 1
            elif s.state == State.LISTEN:
                a[2] += 1
            a[3] += s.recv_q
            a[4] += s.send_q
            if r.rx is not None:
                a[5] = (a[5] or 0.0) + r.rx
                a[6] = (a[6] or 0.0) + (r.tx or 0.0)
            if r.new:
                a[7] += 1
    for pid in sample.closed_owners:
        acc.setdefault(pid, [0, 0, 0, 0, 0, None, None, 0])
    out = []
    for pid, a in acc.items():
        name = sample.names.get(pid, "") if pid else "(no process)"
        out.append(ProcRow(pid, name, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7],
                           sample.closed_owners.get(pid, 0)))
    return out


def socket_cells(r: Row, names: dict[int, str], netns: bool = False) -> list[str]:
    """The cells of one socket row (``netns``: with the Netns cell last)."""
    s = r.sock
    if r.holders:
        pid = r.holders[0][0]
        proc = f"{escape(names.get(pid, ''))}/{pid}"
        others = len({p for p, _fd in r.holders}) - 1
        if others:
            proc += f"+{others}"
    else:
        proc = ""
    return [
        s.netid,
        SS_STATE_NAMES.get(int(s.state), "UNKNOWN"),
        _count(s.recv_q), _count(s.send_q),
        endpoint(s, "local"), endpoint(s, "peer"),
        human(r.rx), human(r.tx), proc,
    ] + ([escape(s.netns or "")] if netns else [])


def process_cells(p: ProcRow) -> list[str]:
    return [str(p.pid) if p.pid else "-", escape(p.name), str(p.socks), str(p.estab), str(p.listen),
            _count(p.recv_q), _count(p.send_q), human(p.rx), human(p.tx), str(p.opened), str(p.closed)]


def _rate_key(v: float | None) -> float:
    return -1.0 if v is None else v


def _proc_key(v: object) -> tuple[int, float, str]:
    """A sort key for any ProcRow field (None, a rate not known, sorts below 0)."""
    if v is None:
        return (0, 0.0, "")
    if isinstance(v, str):
        return (1, 0.0, v)
    return (1, float(v), "")  # type: ignore[arg-type]


_SOCKET_SORT: dict[str, Callable[[Row], Any]] = {
    "netid": lambda r: r.sock.netid,
    "state": lambda r: SS_STATE_NAMES.get(int(r.sock.state), ""),
    "recv_q": lambda r: r.sock.recv_q,
    "send_q": lambda r: r.sock.send_q,
    "local": lambda r: (r.sock.family, r.sock.local.address, r.sock.local.port),
    "peer": lambda r: (r.sock.family, r.sock.peer.address, r.sock.peer.port, r.sock.peer_inode or 0),
    "rx": lambda r: (_rate_key(r.rx), _rate_key(r.tx)),
    "tx": lambda r: (_rate_key(r.tx), _rate_key(r.rx)),
    "process": lambda r: (r.holders[0][0] if r.holders else 1 << 30),
    "netns": lambda r: r.sock.netns or "",
}
#: columns whose natural order is largest first
_DESCENDING = frozenset({"recv_q", "send_q", "rx", "tx", "socks", "estab", "listen", "opened", "closed"})


@dataclasses.dataclass
class View:
    """What the user chose: rows of sockets or processes, sort column, filter."""

    processes: bool = False
    show_netid: bool = True  # False when only one table is shown (like ss's Netid column)
    netns: bool = False  # sockets of every namespace: a Netns column
    sort: str = "rx"
    reverse: bool = False  # against the column's natural order
    filter_text: str = ""
    predicate: Callable[[Socket], bool] | None = None
    substring: bool = False  # the filter is a plain substring match on the row text

    @property
    def columns(self) -> tuple[Column, ...]:
        if self.processes:
            return PROCESS_COLUMNS
        cols = SOCKET_COLUMNS if self.show_netid else SOCKET_COLUMNS[1:]
        return cols + (NETNS_COLUMN,) if self.netns else cols

    def sort_index(self) -> int:
        for i, c in enumerate(self.columns):
            if c.key == self.sort:
                return i
        return 0

    def set_sort_index(self, i: int) -> None:
        cols = self.columns
        self.sort = cols[max(0, min(i, len(cols) - 1))].key
        self.reverse = False

    def toggle_processes(self) -> None:
        old = self.sort
        self.processes = not self.processes
        keys = [c.key for c in self.columns]
        if old not in keys:
            self.sort = {"process": "name", "name": "process", "pid": "process"}.get(old, "rx")
            if self.sort not in keys:
                self.sort = "rx"

    def _descending(self) -> bool:
        return (self.sort in _DESCENDING) != self.reverse

    def socket_rows(self, sample: Sample) -> list[Row]:
        rows = self._filtered(sample)
        key = _SOCKET_SORT.get(self.sort, _SOCKET_SORT["rx"])
        # a stable sort: ties keep the kernel's dump order, the same from tick to tick
        rows.sort(key=key, reverse=self._descending())
        return rows

    def process_rows(self, sample: Sample) -> list[ProcRow]:
        prows = process_rows(sample, self._filtered(sample))
        idx = {c.key: i for i, c in enumerate(PROCESS_COLUMNS)}
        i = idx.get(self.sort, idx["rx"])
        prows.sort(key=lambda p: p.pid)
        prows.sort(key=lambda p: _proc_key(p[i]), reverse=self._descending())
        return prows

    def _filtered(self, sample: Sample) -> list[Row]:
        rows = sample.rows
        if self.predicate is not None:
            pred = self.predicate
            return [r for r in rows if pred(r.sock)]
        if self.substring and self.filter_text:
            needle = self.filter_text.lower()
            names = sample.names
            out = []
            for r in rows:
                if r._text is None:
                    r._text = " ".join(socket_cells(r, names, self.netns)).lower()
                if needle in r._text:
                    out.append(r)
            return out
        return list(rows)


def compile_filter(text: str, protocols: tuple[str, ...] = ("tcp", "udp")
                   ) -> tuple[Callable[[Socket], bool] | None, bool, str]:
    """(predicate, substring?, note) for the ``/`` filter text.

    The ss filter language (:func:`sockscope.filter.parse` and
    :func:`~sockscope.filter.compile_predicate`); leading ``state``/``exclude``
    words are handled with :mod:`sockscope.filter.states`.  Text that is not a
    filter expression (or any expression, with a core that has no filter
    parser) becomes a case-insensitive substring match on the row text:
    ``substring`` is True and ``note`` says why.  An empty text clears the
    filter.  Bad state words raise ``UsageError``.  ``fwmark``/``cgroup``
    conditions match nothing: top's records carry no marks or cgroups.
    """
    import shlex

    text = text.strip()
    if not text:
        return None, False, ""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    parse: Any = None
    compile_predicate: Any = None
    try:
        from sockscope.filter import compile_predicate, parse
    except ImportError:
        pass
    from sockscope.errors import SockscopeError
    from sockscope.filter.states import BOUND_INACTIVE, NEW_SYN_RECV, SS_ALL, SYN_RECV, parse_state_words

    mask = -1
    rest = words
    if words and words[0] in ("state", "exclude", "excl"):
        mask, rest = parse_state_words(words, 0)
        if mask == SS_ALL:
            mask |= 1 << BOUND_INACTIVE
    inner: Callable[[Socket], bool] | None = None
    if rest:
        if parse is None:
            if mask != -1:
                raise _usage("only 'state'/'exclude' words are understood by this version "
                             "(no ss filter expressions)")
            return None, True, "no ss filter expressions in this version: matching text"
        try:
            inner = compile_predicate(parse(rest, protocols=[p for p in protocols if p in ("tcp", "udp")]),
                                      unknown=False)
        except SockscopeError as exc:
            if mask != -1:
                raise
            return None, True, f"not an ss filter ({exc}): matching text"
    if mask == -1:
        return inner, False, ""
    m = mask

    def by_state(s: Socket) -> bool:
        n = int(s.state)
        return bool(m >> (SYN_RECV if n == NEW_SYN_RECV else n) & 1)

    if inner is None:
        return by_state, False, ""
    f = inner
    return (lambda s: by_state(s) and f(s)), False, ""


def _usage(msg: str) -> Exception:
    from sockscope.errors import UsageError

    return UsageError(msg)


__all__ = ["Model", "Sample", "Row", "View", "ProcRow", "Column", "SOCKET_COLUMNS", "PROCESS_COLUMNS",
           "human", "socket_cells", "every_netns", "NETNS_COLUMN", "process_cells", "process_rows", "compile_filter",
           "STATE_ORDER", "key_of"]
