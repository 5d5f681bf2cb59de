"""The metrics of ``sockscope exporter``: families from snapshots, and the collector.

:func:`families` turns the snapshots of one scrape
(:mod:`sockscope.exporter`) into prometheus_client metric families;
:class:`SocketCollector` is the prometheus_client custom collector (one
collection per scrape, shared by concurrent scrapes).  ``prometheus_client``
is imported only inside functions: importing this module needs nothing
beyond the standard library.

Metrics (every name has HELP text, and ``promtool check metrics`` passes;
with ``--all-netns`` every series also has a first label ``netns``: the name
in /var/run/netns, else ``ino:<inode>``)::

    sockscope_sockets{family,protocol,state}             gauge
    sockscope_listener_accept_queue{protocol,listener}   gauge
    sockscope_listener_backlog{protocol,listener}        gauge
    sockscope_tcp_retransmitted_segments                 gauge  (sum over open sockets)
    sockscope_tcp_retransmitted_bytes                    gauge  (sum over open sockets)
    sockscope_tcp_received_bytes                         gauge  (sum over open sockets)
    sockscope_tcp_sent_bytes                             gauge  (sum over open sockets)
    sockscope_sockstat_*                                 gauges (the ss -s counters: /proc/net/sockstat{,6}, snmp)
    sockscope_scrape_duration_seconds                    gauge
    sockscope_scrape_success                             gauge
    sockscope_scrape_errors_total{source}                counter (every source, 0 until it fails)
    sockscope_build_info{version,python_version}         gauge, always 1

Cardinality (per namespace) is bounded and never depends on connections:
``sockscope_sockets`` has at most 12 states per (family, protocol) and in
practice 41 series (every state a table can hold is always exported, 0 when
empty); the listener gauges have at most ``max_listeners`` listeners plus one
``listener="other"`` per protocol (tcp, u_str, u_seq) holding the sums of the
rest; ``source`` has 9 values.  The TCP sums are gauges, not counters: they
are sums over the sockets open at scrape time, and drop when sockets close.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Iterable

from sockscope import __version__
from sockscope.errors import SockscopeError
from sockscope.exporter import (DEFAULT_MAX_LISTENERS, DEFAULT_TABLES, ERROR_SOURCES, Snapshot, describe_error,
                                collect, collect_all_netns, fold_listeners)
from sockscope.exporter_defaults import INSTALL_HINT

#: the ss -s counters: (name, HELP, sockscope.summary.Summary attribute)
_SOCKSTAT = (
    ("sockets_used", "Sockets in use in this network namespace (ss -s Total).", "sockets_used"),
    ("tcp_established", "TCP connections in ESTABLISHED or CLOSE-WAIT (ss -s estab, snmp CurrEstab).", "tcp_estab"),
    ("tcp_allocated", "TCP sockets allocated (sockstat alloc; machine-wide).", "tcp_alloc"),
    ("tcp_orphaned", "TCP sockets held by no file descriptor (ss -s orphaned).", "tcp_orphan"),
    ("tcp_timewait", "TCP sockets in TIME-WAIT (ss -s timewait).", "tcp_timewait"),
    ("tcp_closed", "ss -s closed: allocated minus (in use minus TIME-WAIT).", "tcp_closed"),
    ("tcp_sockets", "ss -s TCP: allocated plus TIME-WAIT.", "tcp_total"),
)
#: the same, one series per IP family: (name, HELP, IPv4 attribute, IPv6 attribute)
_SOCKSTAT_BY_FAMILY = (
    ("tcp_inuse", "TCP sockets in use (ss -s TCP row).", "tcp_inuse4", "tcp_inuse6"),
    ("udp_inuse", "UDP sockets in use (ss -s UDP row).", "udp4", "udp6"),
    ("raw_inuse", "RAW sockets in use (ss -s RAW row).", "raw4", "raw6"),
    ("frag_inuse", "IP fragment queues in use (ss -s FRAG row).", "frag4", "frag6"),
)
SOCKSTAT_PREFIX = "sockscope_sockstat_"
_TCP_SUMS = (  # (name suffix, HELP start, TcpTotals attribute)
    ("retransmitted_segments", "tcp_info total_retrans", "retrans_segments"),
    ("retransmitted_bytes", "tcp_info bytes_retrans", "retrans_bytes"),
    ("received_bytes", "tcp_info bytes_received", "received_bytes"),
    ("sent_bytes", "tcp_info bytes_sent (retransmissions included)", "sent_bytes"),
)

ErrorCounts = dict[tuple[str | None, str], int]


def require_prometheus_client() -> None:
    """Raise :class:`SockscopeError` with the install hint when prometheus_client is missing."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise SockscopeError(INSTALL_HINT) from None


def _clean(value: str) -> str:
    """A label value that encodes as UTF-8 (socket paths may hold any bytes)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def build_info() -> dict[str, str]:
    """The labels of ``sockscope_build_info``."""
    return {"version": __version__, "python_version": platform.python_version()}


def families(snaps: list[Snapshot], errors: ErrorCounts, max_listeners: int, with_netns: bool) -> list[Any]:
    """The metric families of one scrape (prometheus_client ``Metric`` objects)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    base = ["netns"] if with_netns else []

    def lv(snap_ns: str | None, *values: str) -> list[str]:
        return ([_clean(snap_ns or "")] if with_netns else []) + [_clean(v) for v in values]

    sockets = GaugeMetricFamily(
        "sockscope_sockets", "Sockets by address family, protocol (ss netid) and state (ss name), "
        "from one sock_diag dump per scrape.", labels=base + ["family", "protocol", "state"])
    aq = GaugeMetricFamily(
        "sockscope_listener_accept_queue", "Connections waiting in a listener's accept queue (ss Recv-Q); "
        "listener=\"other\" sums the listeners beyond --max-listeners.", labels=base + ["protocol", "listener"])
    bl = GaugeMetricFamily(
        "sockscope_listener_backlog", "A listener's accept queue limit, the listen() backlog (ss Send-Q); "
        "listener=\"other\" sums the listeners beyond --max-listeners.", labels=base + ["protocol", "listener"])
    tcp = [GaugeMetricFamily(f"sockscope_tcp_{n}", f"{h} summed over the TCP sockets open at scrape time "
                             "(a gauge: it drops when sockets close).", labels=base) for n, h, _ in _TCP_SUMS]
    stat = [GaugeMetricFamily(SOCKSTAT_PREFIX + n, h, labels=base) for n, h, _ in _SOCKSTAT]
    stat_fam = [GaugeMetricFamily(SOCKSTAT_PREFIX + n, h, labels=base + ["family"])
                for n, h, _, _ in _SOCKSTAT_BY_FAMILY]
    tcp_mem = GaugeMetricFamily(SOCKSTAT_PREFIX + "tcp_memory_bytes",
                                "Memory of TCP socket buffers (sockstat TCP mem in bytes; machine-wide).", labels=base)
    dur = GaugeMetricFamily("sockscope_scrape_duration_seconds",
                            "Time the collection of this scrape took.", labels=base)
    ok = GaugeMetricFamily("sockscope_scrape_success",
                           "1 if this scrape collected everything, 0 if some part failed "
                           "(see sockscope_scrape_errors_total).", labels=base)
    errs = CounterMetricFamily("sockscope_scrape_errors_total",
                               "Collections in which a part failed, by source, since the exporter started.",
                               labels=base + ["source"])
    info = build_info()
    build = GaugeMetricFamily("sockscope_build_info", "Always 1; the labels say which sockscope and Python run.",
                              labels=list(info))
    build.add_metric(list(info.values()), 1)
    page = os.sysconf("SC_PAGE_SIZE")
    for snap in snaps:
        ns = snap.netns
        for (fam, proto, state), n in sorted(snap.sockets.items()):
            sockets.add_metric(lv(ns, fam, proto, state), n)
        for ls in fold_listeners(snap.listeners, max_listeners):
            aq.add_metric(lv(ns, ls.protocol, ls.label), ls.accept_queue)
            bl.add_metric(lv(ns, ls.protocol, ls.label), ls.backlog)
        for fam_metric, (_, _, attr) in zip(tcp, _TCP_SUMS):
            if snap.tcp.valid and (snap.tcp.has_sent or attr in ("retrans_segments", "received_bytes")):
                fam_metric.add_metric(lv(ns), getattr(snap.tcp, attr))
        s = snap.summary
        if s is not None:
            for fam_metric, (_, _, attr) in zip(stat, _SOCKSTAT):
                fam_metric.add_metric(lv(ns), getattr(s, attr))
            for fam_metric, (_, _, a4, a6) in zip(stat_fam, _SOCKSTAT_BY_FAMILY):
                fam_metric.add_metric(lv(ns, "inet"), getattr(s, a4))
                fam_metric.add_metric(lv(ns, "inet6"), getattr(s, a6))
            tcp_mem.add_metric(lv(ns), s.tcp_mem * page)
        dur.add_metric(lv(ns), snap.duration)
        ok.add_metric(lv(ns), 0 if snap.errors else 1)
    # every source of every namespace shown has a series from the first scrape (0 until it fails),
    # so rate() and increase() see the first error
    counts: ErrorCounts = {(s.netns, source): 0 for s in snaps for source in ERROR_SOURCES}
    shown = {s.netns for s in snaps}
    for (ns, source), n in errors.items():
        if not with_netns or ns in shown or ns is None:
            counts[(ns, source)] = n
    for (ns, source), n in sorted(counts.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        errs.add_metric(lv(ns, source), n)
    return [sockets, aq, bl, *tcp, *stat, *stat_fam, tcp_mem, dur, ok, errs, build]
class SocketCollector:
    """The prometheus_client collector: one collection per scrape, shared by concurrent scrapes.

    Scrapes that arrive while a collection runs wait for it and get its
    result (one sock_diag pass serves them all); errors are counted, logged
    to ``log`` and exported, never raised.
    """

    def __init__(self, *, max_listeners: int = DEFAULT_MAX_LISTENERS, all_netns: bool = False,
                 proc: str = "/proc", tables: Iterable[str] = DEFAULT_TABLES,
                 log: Callable[[str], None] | None = None) -> None:
        self.max_listeners = max_listeners
        self.all_netns = all_netns
        self.proc = proc
        self.tables = tuple(tables)
        self.log = log
        self._lock = threading.Lock()
        self._pending: Future[tuple[list[Snapshot], dict[tuple[str | None, str], int]]] | None = None
        self._errors: dict[tuple[str | None, str], int] = {}
        self.last: list[Snapshot] = []

    def describe(self) -> list[Any]:
        """The metric families without samples (so registering does not scrape)."""
        return families([], {}, self.max_listeners, self.all_netns)

    def collect(self) -> list[Any]:
        snaps, errors = self._shared_collection()
        return families(snaps, errors, self.max_listeners, self.all_netns)

    def _shared_collection(self) -> tuple[list[Snapshot], dict[tuple[str | None, str], int]]:
        with self._lock:
            fut = self._pending
            leader = fut is None
            if fut is None:
                fut = self._pending = Future()
        if leader:
            try:
                fut.set_result(self._collect_once())
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                fut.set_exception(exc)
            finally:
                with self._lock:
                    self._pending = None
        return fut.result()

    def _collect_once(self) -> tuple[list[Snapshot], dict[tuple[str | None, str], int]]:
        t0 = time.perf_counter()
        try:
            if self.all_netns:
                snaps = collect_all_netns(self.proc, self.tables)
            else:
                snaps = [collect(self.proc, self.tables)]
        except Exception as exc:  # noqa: BLE001 - e.g. /proc unreadable while listing namespaces
            source = "netns" if self.all_netns else "collector"
            snaps = [Snapshot(errors=[(source, describe_error(exc))], duration=time.perf_counter() - t0)]
        with self._lock:
            live = {s.netns for s in snaps}
            for key in [k for k in self._errors if k[0] is not None and k[0] not in live]:
                del self._errors[key]  # namespaces that are gone take their counters along
            for snap in snaps:
                for source in sorted({src for src, _ in snap.errors}):
                    key = (snap.netns, source)
                    self._errors[key] = self._errors.get(key, 0) + 1
            errors = dict(self._errors)
            self.last = snaps
        if self.log is not None:
            for snap in snaps:
                for source, msg in snap.errors:
                    where = f" (netns {snap.netns})" if snap.netns else ""
                    self.log(f"scrape error{where}: {source}: {msg}")
        return snaps, errors




__all__ = ["SOCKSTAT_PREFIX", "SocketCollector", "build_info", "families", "require_prometheus_client"]
