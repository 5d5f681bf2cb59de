"""Prometheus metrics for ``sockscope exporter``: one sock_diag pass per scrape.

Contract
--------
* :func:`collect` takes a :class:`Snapshot` of the calling thread's network
  namespace: one dump per (table, family) over one NETLINK_SOCK_DIAG socket,
  aggregated while it is decoded (no per-socket record is built for TCP, UDP
  and UNIX, so 100k sockets take a fraction of a second), plus the ``ss -s``
  counters from ``/proc/thread-self/net``.  It never raises: a table that
  fails is left out and named in ``Snapshot.errors``.
* :func:`list_netns` and :func:`collect_all_netns` do the same for every
  network namespace (``--all-netns``): the named ones in ``/var/run/netns``
  and those of running processes (``/proc/*/ns/net``), deduplicated by the
  namespace inode.  Each is collected in a short-lived thread that enters it
  with ``setns(2)`` (a thread's namespace is its own; the thread then exits).
* The metric families, the prometheus_client collector and the metric
  names are in :mod:`sockscope.exporter_metrics`; the HTTP server in
  :mod:`sockscope.exporter_web`.  Importing this module needs nothing beyond
  the standard library.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from sockscope._addr import AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX, ZERO16, ntop4, ntop6
from sockscope.errors import NotSupported, PermissionDenied, SockscopeError
from sockscope.exporter_defaults import DEFAULT_LISTEN, DEFAULT_MAX_LISTENERS
from sockscope.netns import NETNS_RUN_DIR, found as _found_netns
from sockscope.netns import setns as _setns
from sockscope.filter.states import LISTEN, SS_ALL, SS_STATE_NAMES
from sockscope.kernel.layout import INET_DIAG_INFO
from sockscope.records import Socket, State

FAMILY_NAMES = {AF_UNIX: "unix", AF_INET: "inet", AF_INET6: "inet6", AF_NETLINK: "netlink", AF_PACKET: "packet"}
#: ss's tables, in ss's order (sctp, dccp, mptcp are left out: asking for them can load kernel modules).
DEFAULT_TABLES = ("nl", "p_raw", "p_dgr", "u_str", "u_dgr", "u_seq", "raw", "udp", "tcp")
#: every ``source`` label value of sockscope_scrape_errors_total
ERROR_SOURCES = ("tcp", "udp", "raw", "unix", "netlink", "packet", "summary", "netns", "collector")

_TCP_STATES = ("ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "UNCONN",
               "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING")
#: (family, protocol) -> the states always exported (0 when empty); others appear when seen.
EXPECTED: dict[tuple[str, str], tuple[str, ...]] = {
    ("inet", "tcp"): _TCP_STATES, ("inet6", "tcp"): _TCP_STATES,
    ("inet", "udp"): ("ESTAB", "UNCONN"), ("inet6", "udp"): ("ESTAB", "UNCONN"),
    ("inet", "raw"): ("ESTAB", "UNCONN"), ("inet6", "raw"): ("ESTAB", "UNCONN"),
    ("unix", "u_str"): ("ESTAB", "LISTEN", "UNCONN"), ("unix", "u_seq"): ("ESTAB", "LISTEN", "UNCONN"),
    ("unix", "u_dgr"): ("ESTAB", "UNCONN"),
    ("netlink", "nl"): ("UNCONN",), ("packet", "p_raw"): ("UNCONN",), ("packet", "p_dgr"): ("UNCONN",),
}
_PROTO_RANK = {"tcp": 0, "u_str": 1, "u_seq": 2}


# --------------------------------------------------------------------------
# Snapshots: what one collection found


@dataclass(frozen=True, slots=True)
class NetnsRef:
    """A network namespace: its label, inode, and paths that open it (tried in order)."""

    label: str
    inode: int
    paths: tuple[str, ...]


def list_netns(proc: str = "/proc", run_dir: str = NETNS_RUN_DIR) -> list[NetnsRef]:
    """Every network namespace (:func:`sockscope.netns.found`): named ones (label = name) and those of
    processes (``ino:<inode>``)."""
    return [NetnsRef(label, ino, paths) for label, ino, paths in _found_netns(proc, run_dir)]


@dataclass(slots=True)
class Listener:
    """One listening socket (or the sum of several sharing an address via SO_REUSEPORT)."""

    protocol: str
    label: str
    accept_queue: int
    backlog: int
    port: int = 0


@dataclass(slots=True)
class TcpTotals:
    """tcp_info counters summed over the TCP sockets open at collection time."""

    retrans_segments: int = 0
    retrans_bytes: int = 0
    received_bytes: int = 0
    sent_bytes: int = 0
    #: False when some tcp_info was too short for bytes_sent/bytes_retrans (kernel < 5.5)
    has_sent: bool = True
    #: False when TCP was read from /proc (no tcp_info): the sums are then not exported
    valid: bool = False


@dataclass(slots=True)
class Snapshot:
    """The aggregates of one collection in one network namespace."""

    netns: str | None = None
    sockets: dict[tuple[str, str, str], int] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)
    tcp: TcpTotals = field(default_factory=TcpTotals)
    summary: Any = None  # sockscope.summary.Summary, or None when it failed
    errors: list[tuple[str, str]] = field(default_factory=list)
    duration: float = 0.0


def collect(proc: str = "/proc", tables: Iterable[str] = DEFAULT_TABLES) -> Snapshot:
    """One snapshot of the calling thread's network namespace; never raises (see ``errors``)."""
    t0 = time.perf_counter()
    snap = Snapshot()
    want = set(tables)
    own = f"{proc}/thread-self"
    try:
        # first, before our own diag socket exists (a closed netlink socket is freed after an
        # RCU grace period: it would still count in "sockets: used")
        from sockscope import summary

        snap.summary = summary.read(own)
    except Exception as exc:  # noqa: BLE001
        snap.errors.append(("summary", describe_error(exc)))
    dumper = _Dumper()
    steps: list[tuple[str, bool, Callable[[], None]]] = [
        ("netlink", "nl" in want, lambda: _others(dumper, snap, "nl", want)),
        ("packet", bool(want & {"p_raw", "p_dgr"}), lambda: _others(dumper, snap, "packet", want)),
        ("unix", bool(want & {"u_str", "u_dgr", "u_seq"}), lambda: _unix(dumper, snap, want, own)),
        ("raw", "raw" in want, lambda: _raw(snap, own)),
        ("udp", "udp" in want, lambda: _inet(dumper, snap, "udp", own)),
        ("tcp", "tcp" in want, lambda: _inet(dumper, snap, "tcp", own)),
    ]
    try:
        for source, wanted, step in steps:
            try:
                if wanted:
                    step()
            except Exception as exc:  # noqa: BLE001 - one failing table must not fail the scrape
                dumper.reset()
                snap.errors.append((source, describe_error(exc)))
    finally:
        dumper.close()
    snap.duration = time.perf_counter() - t0
    return snap


def describe_error(exc: BaseException) -> str:
    """A collection error as one line for a scrape's error metric: sockscope's own message, else the
    exception's type and text."""
    return str(exc) if isinstance(exc, SockscopeError) else f"{type(exc).__name__}: {exc}"


class _Dumper:
    """One sock_diag socket reused for every dump of a collection; reopened after a failed dump."""

    def __init__(self) -> None:
        self.sock: Any = None  # a socket.socket once open

    def dump(self, request: bytes, decode: Callable[[bytes], bool], op: str) -> None:
        from sockscope.kernel import transport

        if self.sock is None:
            self.sock = transport.open_diag()
        try:
            transport.dump(request, decode, op, self.sock)
        except BaseException:
            self.reset()  # unread replies of an aborted dump must not reach the next one
            raise

    def reset(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    close = reset


# --------------------------------------------------------------------------
# Counting the core's batches (TCP, UDP, UNIX): no record is built

_U32 = struct.Struct("=I")
_EXT_INFO_ONLY = 1 << (INET_DIAG_INFO - 1)
#: the tcp_info fields summed over open sockets (read by name from the decoder's batches)
_TCP_INFO_SUMS = ("total_retrans", "bytes_received", "bytes_sent", "bytes_retrans")


def _inet_counter(table: str, counts: list[int], listen: list[tuple[Any, ...]], tot: TcpTotals,
                  op: str) -> Callable[[bytes], bool]:
    """A ``transport.dump`` callback counting one inet dump by state, keeping its listeners and
    summing tcp_info, from the core decoder's batches (:func:`sockscope.kernel.inet.decode`)."""
    from sockscope.kernel import inet

    def decode(buf: bytes) -> bool:
        b, done = inet.decode(buf, op)
        for st in b.state:
            counts[st] += 1
        if LISTEN in b.state:
            v6 = b.v6only or [None] * b.n
            for fam, st, key, port, ifindex, rq, wq, v6only in zip(b.family, b.state, b.src, b.sport, b.ifindex,
                                                                    b.rqueue, b.wqueue, v6):
                if st == LISTEN:
                    raw = _U32.pack(key) if type(key) is int else key
                    listen.append((table, fam, raw, port, ifindex, rq, wq, bool(v6only)))
        if table == "tcp" and b.n:
            segs, recv, sent, rbytes = b.info_fields(_TCP_INFO_SUMS)
            tot.retrans_segments += sum(filter(None, segs))
            tot.received_bytes += sum(filter(None, recv))
            tot.sent_bytes += sum(filter(None, sent))
            tot.retrans_bytes += sum(filter(None, rbytes))
            if sent.count(None) != segs.count(None):  # a tcp_info too short for bytes_sent (an older kernel)
                tot.has_sent = False
        return done

    return decode


def _unix_counter(counts: Counter[tuple[int, int]], listen: list[tuple[Any, ...]] | None) -> Callable[[bytes], bool]:
    """A ``transport.dump`` callback counting a unix_diag dump by (type, state) (the core's batches),
    and keeping each listener's type, name and queues in ``listen`` (a dump of listeners)."""
    from sockscope.kernel import unix

    def decode(buf: bytes) -> bool:
        b, done = unix.decode(buf, "unix diag")
        counts.update(zip(b.type, b.state))  # (a C loop)
        if listen is not None:
            listen.extend(zip(b.type, b.name, b.rqueue, b.wqueue))
        return done

    return decode


def _add_counts(snap: Snapshot, family: str, table: str, counts: list[int]) -> None:
    for state in EXPECTED.get((family, table), ()):
        snap.sockets.setdefault((family, table, state), 0)
    for st, n in enumerate(counts):
        if n:
            key = (family, table, SS_STATE_NAMES.get(st, "UNKNOWN"))
            snap.sockets[key] = snap.sockets.get(key, 0) + n


def _inet(dumper: _Dumper, snap: Snapshot, table: str, own: str) -> None:
    from sockscope.kernel import inet

    op = f"{table} diag"
    done: list[tuple[int, list[int]]] = []
    listen: list[tuple[Any, ...]] = []
    tot = TcpTotals()
    try:
        for fam in (AF_INET, AF_INET6):
            counts = [0] * 256
            ext = _EXT_INFO_ONLY if table == "tcp" else 0
            if table == "udp" and _no_udp(snap, fam):  # (the walk would find nothing)
                done.append((fam, counts))
                continue
            dumper.dump(inet.encode_request(fam, inet.PROTOCOLS[table], SS_ALL, ext),
                        _inet_counter(table, counts, listen, tot, op), op)
            done.append((fam, counts))
    except (NotSupported, PermissionDenied):
        # like `ss`: read /proc/net/{tcp,udp}{,6} instead (no tcp_info there)
        from sockscope import procnet

        for fam in (AF_INET, AF_INET6):
            _add_records(snap, procnet.read_inet(table, fam, SS_ALL, proc=own), [(FAMILY_NAMES[fam], table)])
        return
    for fam, counts in done:
        _add_counts(snap, FAMILY_NAMES[fam], table, counts)
    names: dict[int, str] = {}
    for t, fam, src, port, ifindex, rq, wq, v6only in listen:
        snap.listeners.append(Listener(t, inet_label(fam, src, port, ifindex, v6only, names), rq, wq, port))
    if table == "tcp":
        tot.valid = True
        snap.tcp = tot


def _no_udp(snap: Snapshot, fam: int) -> bool:
    """Whether the namespace has no UDP socket of ``fam`` that a dump would find, by the counts the
    snapshot read first (sockstat's ``UDP: inuse`` / ``UDP6: inuse``: see
    :func:`sockscope.kernel.sockstat.no_udp`, which the listing reads the same file for)."""
    counts = snap.summary
    return counts is not None and (counts.udp4 if fam == AF_INET else counts.udp6) == 0


def _unix(dumper: _Dumper, snap: Snapshot, want: set[str], own: str) -> None:
    from sockscope.kernel import unix

    counts: Counter[tuple[int, int]] = Counter()
    listen: list[tuple[Any, ...]] = []
    try:
        # the listeners with their names and queues, then the others counted: their names and
        # queues are not asked for (the kernel counts the bytes queued on each socket it is asked of)
        dumper.dump(unix.encode_request(1 << LISTEN, unix.UDIAG_SHOW_NAME | unix.UDIAG_SHOW_RQLEN),
                    _unix_counter(counts, listen), "unix diag")
        dumper.dump(unix.encode_request(SS_ALL & ~(1 << LISTEN), 0), _unix_counter(counts, None), "unix diag")
    except (NotSupported, PermissionDenied):
        from sockscope import procnet

        types: set[str] = {t for t in ("u_str", "u_dgr", "u_seq") if t in want}
        _add_records(snap, procnet.read_unix(SS_ALL, types, proc=own), [("unix", t) for t in types])
        return
    for stype, table in unix.NETIDS.items():
        if table in want:
            by_state = [0] * 256
            for (t, st), n in counts.items():
                if t == stype:
                    by_state[st] += n
            _add_counts(snap, "unix", table, by_state)
    for stype, name, rq, wq in listen:
        table = unix.NETIDS.get(stype, "u_dgr")
        if table in want:
            snap.listeners.append(Listener(table, unix_label(unix.unix_name(name)), rq, wq))


def _raw(snap: Snapshot, own: str) -> None:
    # as the core does: raw sockets are read from /proc/net/raw{,6} (few; raw_diag may be absent)
    from sockscope import procnet

    for fam in (AF_INET, AF_INET6):
        _add_records(snap, procnet.read_inet("raw", fam, SS_ALL, proc=own), [(FAMILY_NAMES[fam], "raw")])


def _others(dumper: _Dumper, snap: Snapshot, which: str, want: set[str]) -> None:
    """Netlink or packet sockets, through the core's decoders and our one diag socket."""
    from sockscope.kernel import others

    out: list[Socket] = []
    try:
        if which == "nl":
            dumper.dump(others.encode_netlink_request(), lambda b: others.decode_netlink_dump(b, out), "netlink diag")
            tables: tuple[tuple[str, str], ...] = (("netlink", "nl"),)
        else:
            dumper.dump(others.encode_packet_request(), lambda b: others.decode_packet_dump(b, out), "packet diag")
            tables = (("packet", "p_raw"), ("packet", "p_dgr"))
    except NotSupported:
        return  # no netlink_diag / packet_diag in this kernel: nothing to count, not an error
    _add_records(snap, (s for s in out if s.netid in want), [ft for ft in tables if ft[1] in want])


def _add_records(snap: Snapshot, socks: Iterable[Socket], expect: Iterable[tuple[str, str]]) -> None:
    """Count records (the /proc and netlink/packet paths); ``expect``: the (family, table)s dumped."""
    for family, table in expect:
        _add_counts(snap, family, table, [])
    names: dict[int, str] = {}
    for s in socks:
        key = (FAMILY_NAMES.get(s.family, str(s.family)), s.netid, s.state.ss_name)
        snap.sockets[key] = snap.sockets.get(key, 0) + 1
        if s.state == State.LISTEN and s.netid in _PROTO_RANK:
            if s.family == AF_UNIX:
                label = unix_label(s.local.address)
            else:
                raw = socket.inet_pton(s.family, s.local.address)
                label = inet_label(s.family, raw, s.local.port, s.ifindex, bool(s.v6only), names)
            snap.listeners.append(Listener(s.netid, label, s.recv_q, s.send_q, s.local.port))


def inet_label(family: int, src: bytes, port: int, ifindex: int, v6only: bool, names: dict[int, str]) -> str:
    """A listener's local address as ``ss -n`` prints it: ``0.0.0.0:22``, ``[::1]:80``,
    ``*:8080`` (dual-stack ``::``), ``127.0.0.1%lo:9999``."""
    if family == AF_INET:
        addr = ntop4(src[:4])
    elif src == ZERO16 and not v6only:
        addr = "*"
    else:
        addr = f"[{ntop6(src)}]"
    if ifindex:
        name = names.get(ifindex)
        if name is None:
            try:
                name = socket.if_indextoname(ifindex)
            except OSError:
                name = str(ifindex)
            names[ifindex] = name
        addr += "%" + name
    return f"{addr}:{port}"


def unix_label(name: str) -> str:
    """A UNIX listener's name as ss prints it: the path, ``@abstract``, ``*`` when unnamed."""
    return name or "*"


# --------------------------------------------------------------------------
# Listener folding: the cardinality bound


def fold_listeners(listeners: Iterable[Listener], max_listeners: int) -> list[Listener]:
    """At most ``max_listeners`` listeners by (protocol, label), the rest summed per protocol
    under ``label="other"``.

    Listeners sharing a label (SO_REUSEPORT groups) are summed first.  The
    ones kept are the fullest (accept queue / backlog), then the longest
    queues, then by protocol (tcp, u_str, u_seq), port and label: when every
    queue is empty the choice is stable from scrape to scrape, and a
    saturated listener is never hidden in "other".
    """
    merged = _summed(listeners, lambda ls: ls.label)

    def rank(ls: Listener) -> tuple[float, int, int, int, str]:
        fill = ls.accept_queue / ls.backlog if ls.backlog else float(ls.accept_queue > 0) * 1e9
        return (-fill, -ls.accept_queue, _PROTO_RANK.get(ls.protocol, 9), ls.port, ls.label)

    ordered = sorted(merged.values(), key=rank)
    kept = ordered[: max(0, max_listeners)]
    kept.sort(key=lambda ls: (_PROTO_RANK.get(ls.protocol, 9), ls.port, ls.label))
    other = _summed(ordered[max(0, max_listeners):], lambda ls: "other")
    return kept + sorted(other.values(), key=lambda ls: _PROTO_RANK.get(ls.protocol, 9))


def _summed(listeners: Iterable[Listener], label: Callable[[Listener], str]) -> dict[tuple[str, str], Listener]:
    """Listeners summed by (protocol, label(listener))."""
    out: dict[tuple[str, str], Listener] = {}
    for ls in listeners:
        key = (ls.protocol, label(ls))
        m = out.get(key)
        if m is None:
            out[key] = Listener(ls.protocol, key[1], ls.accept_queue, ls.backlog, ls.port)
        else:
            m.accept_queue += ls.accept_queue
            m.backlog += ls.backlog
    return out


# --------------------------------------------------------------------------
# Network namespaces (--all-netns): discovery and setns live in sockscope.netns

def collect_in(ref: NetnsRef, proc: str = "/proc", tables: Iterable[str] = DEFAULT_TABLES) -> Snapshot | None:
    """Collect in namespace ``ref`` from a short-lived thread that enters it; never raises.

    None when the namespace is gone (deleted, or its process exited, since it
    was listed): that is not a failed scrape, just one namespace fewer."""
    t0 = time.perf_counter()
    fd, why = _open_netns(ref, proc)
    if fd is None:
        return None
    if fd < 0:
        return Snapshot(ref.label, errors=[("netns", f"cannot open netns {ref.label}: {why}")],
                        duration=time.perf_counter() - t0)
    result: list[Snapshot] = []
    tables = tuple(tables)

    def work() -> None:
        try:
            _setns(fd)  # this thread only; it exits right after
        except OSError as exc:
            result.append(Snapshot(errors=[("netns", f"setns {ref.label}: {exc.strerror}")]))
            return
        try:
            result.append(collect(proc, tables))
        except BaseException as exc:  # noqa: BLE001 - collect() should not raise; be sure
            result.append(Snapshot(errors=[("collector", describe_error(exc))]))

    try:
        worker = threading.Thread(target=work, name=f"sockscope-netns-{ref.label}", daemon=True)
        worker.start()
        worker.join()
    finally:
        os.close(fd)
    snap = result[0] if result else Snapshot(errors=[("collector", "netns worker ended without a result")])
    snap.netns = ref.label
    snap.duration = time.perf_counter() - t0
    return snap


def _open_netns(ref: NetnsRef, proc: str) -> tuple[int | None, str]:
    """(fd, "") of the namespace itself; (None, "") when it is gone; (-1, why) when it cannot be opened."""
    why = ""
    try:
        nsfs = os.stat(f"{proc}/thread-self/ns/net").st_dev
    except OSError:
        nsfs = -1
    for path in ref.paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError):
            continue  # `ip netns del` removed the name, or the process exited
        except OSError as exc:
            why = f"{path}: {exc.strerror}"
            continue
        st = os.fstat(fd)
        if st.st_ino == ref.inode and nsfs in (-1, st.st_dev):
            return fd, ""
        os.close(fd)  # the name was unmounted (a plain file until it is unlinked) or now names another one
    return (-1, why) if why else (None, "")


def collect_all_netns(proc: str = "/proc", tables: Iterable[str] = DEFAULT_TABLES,
                      run_dir: str = NETNS_RUN_DIR) -> list[Snapshot]:
    """One snapshot per network namespace still there when its turn comes (sorted by label)."""
    refs = list_netns(proc, run_dir)
    snaps = [snap for ref in refs if (snap := collect_in(ref, proc, tables)) is not None]
    return sorted(snaps, key=lambda s: s.netns or "")


__all__ = [
    "DEFAULT_LISTEN", "DEFAULT_MAX_LISTENERS", "DEFAULT_TABLES", "ERROR_SOURCES", "Listener", "NetnsRef",
    "Snapshot", "TcpTotals", "collect", "collect_all_netns", "collect_in", "fold_listeners", "inet_label",
    "list_netns", "unix_label", "describe_error",
]
