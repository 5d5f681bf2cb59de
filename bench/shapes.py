"""Populations shaped like real hosts', for the benchmark (issue 14's "Speed" list).

Contract
--------
``build(name, netns, *, scale=1.0)`` builds population ``name`` (a key of
:data:`SHAPES`) in ``netns`` and returns a :class:`population.Population`
whose ``counts`` say what exists and whose ``close()`` ends every process by
pid, removes the UNIX socket files and deletes the namespace if it made it.
``scale`` multiplies every count (the smoke test uses 0.01); each count stays
at least 1 (connections: at least one, so two sockets).

=============== ======================================================================
name            what (at scale 1)
=============== ======================================================================
``dual10k``     10,000 TCP: IPv4 clients on 10 ``[::]`` listeners (``::ffff:`` mapped)
``mixed10k``    10,000 TCP: IPv4 and IPv6 connections alternating
``mixed100k``   100,000 TCP: the same, over 6 holder processes
``procs1000``   8,000 TCP held by 1,000 processes (8 each, client and server ends in
                different processes), then 2,000 TIME-WAIT between them
``prefork256``  one listener whose fd 256 worker processes hold, 8 accepted
                connections each (their 2,048 clients in one other process)
``unix20k``     20,000 UNIX: stream connections to named and abstract listeners,
                stream and datagram pairs, named datagram servers with connected
                clients, abstract datagram, unbound sockets
``udp10k``      10,000 UDP (IPv4, bound; every second one connected)
``hostmix15k``  ~15,700 over 40 processes: TCP over IPv4, IPv6 and ``[::]``
                (mapped), listeners of both families, 2,000 TIME-WAIT (both
                families), 600 UDP (both), 6,000 UNIX
``listen10k``   10,000 listeners in 40 processes: IPv4 and IPv6 (``::1``) on addresses of
                their own, ``SO_REUSEPORT`` groups of 50 on ``[::]`` and ``0.0.0.0``;
                1,000 connections
``synrecv10k``  2,000 SYN-RECV behind deferred-accept listeners (IPv4, IPv6, mapped),
                their clients, 3,000 connections, 1,000 TIME-WAIT
``threads4x32`` 2,000 connections (both ends) in 4 processes of 32 threads each,
                which share their process's fd table (``ss -T`` reads each thread's)
``netns40``     40 network namespaces (a container host), each with the same
                352 sockets: 100 TCP connections over IPv4 and 40 over IPv6, a
                listener of each family, 10 UDP, 60 UNIX
=============== ======================================================================

Holders are this file run with ``--holder SPEC`` through ``ip netns exec``
(the machinery of :mod:`population`: stdin EOF ends them, at most ``hard
RLIMIT_NOFILE - 256`` fds each).  A holder with ``workers`` forks that many
processes after building; each keeps its share of the ``spread`` fds
(round-robin, so a connection's two ends usually land in two processes) plus
the ``shared`` ones (the prefork listener), dies with its parent
(``PR_SET_PDEATHSIG``) or at stdin EOF, and is reaped by the parent.
TIME-WAIT is made last, by holders that exit when done (the kernel drops
TIME-WAIT after 60 s: measure right after building).

Address plan (on ``lo``; ports below the ephemeral range; each holder
``slot`` has its own port range, so holders never share a listener):

===================== ============= ===========================================
use                   addresses     ports
===================== ============= ===========================================
connections           127.11.x.y    30000 + 50 * slot ...   (IPv6: ::1, same ports)
``[::]`` (mapped)     127.12.x.y    31000 + 10 * slot ...   (listener ``[::]``)
TIME-WAIT             127.13.x.y    31500 + 50 * slot ...   (IPv6: ::1, 32000 ...)
kept listeners        127.14.x.y    29000 ...               (IPv6: ::1, 28000 ...)
UDP                   127.15.x.y    27000 ...               (IPv6: ::1, 26000 ...)
===================== ============= ===========================================
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import json
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


def _population_module() -> ModuleType:
    """bench/population.py, by path and once (``tests/`` has a module of the same name)."""
    name = "bench_population"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("population.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


population = _population_module()
Job = dict[str, Any]
PER_ADDR = 10_000  # IPv4 connections per 127.b.x.y address
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ShapeSpec:
    """What one holder builds (JSON on its command line)."""

    jobs: tuple[Job, ...] = ()
    slot: int = 0
    workers: int = 0  # processes forked after building to hold the "spread" fds
    parent_works: bool = False  # the holder itself keeps a share of the "spread" fds too
    unix_dir: str = ""
    hold: bool = True
    threads: int = 1  # threads of each holding process (the holder, each worker): idle, sharing its fd table

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def argv(self) -> list[str]:
        return [os.path.abspath(__file__), "--holder", self.to_json()]

    def fds(self) -> int:
        """Kept fds plus temporary listeners, at most (the holder before it forks)."""
        total = 0
        for job in self.jobs:
            if job["kind"] in ("tcp", "tw"):
                total += (2 if job["kind"] == "tcp" else 0) * job["count"] + 2 * job["ports"]
            else:
                total += job["count"]
        return total


# --------------------------------------------------------------------------- holder side


def _v4(block: int, index: int, per_addr: int) -> str:
    hi, lo = divmod(index // per_addr, 250)
    return f"127.{block}.{hi}.{lo + 1}"


def _connections(job: Job, put: Callable[[str, int], None] | None) -> dict[str, int]:
    """``count`` loopback connections (families per ``fam``); kept (``put``) or closed client first.

    With ``defer`` (seconds of ``TCP_DEFER_ACCEPT`` on the listeners, which must then be kept:
    ``listen_to``), nothing is accepted: the client's bare ACK completes its side (ESTAB), and each
    listener keeps its end a SYN-RECV request socket (a mini-socket with no inode) until data comes,
    which never does.  At most ~1,000 a listener (its request queue is its backlog)."""
    listeners: dict[tuple[int, str, int], socket.socket] = {}
    fam, defer = job["fam"], job.get("defer", 0)
    try:
        for i in range(job["count"]):
            port = job["port"] + i % job["ports"]
            v = ("4", "6")[i % 2] if fam == "alt" else fam
            if v == "6":
                key, target = (socket.AF_INET6, "::1", port), ("::1", port)
            elif v == "46":
                target = (_v4(job["block"], i, PER_ADDR), port)
                key = (socket.AF_INET6, "::", port)
            else:
                target = (_v4(job["block"], i, PER_ADDR), port)
                key = (socket.AF_INET, *target)
            server = listeners.get(key)
            if server is None:
                server = socket.socket(key[0], socket.SOCK_STREAM)
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if v == "46":
                    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                if defer:
                    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer)
                server.bind(key[1:])
                server.listen(1024)
                listeners[key] = server
            client = socket.socket(socket.AF_INET6 if v == "6" else socket.AF_INET, socket.SOCK_STREAM)
            client.connect(target)
            if defer:  # the listener holds its end back as a SYN-RECV request socket: only the client is kept
                assert put is not None
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, population._LINGER_RST)
                put(job["client_to"], client.detach())
                continue
            accepted, _ = server.accept()
            if put is None:  # the side that closes first is left in TIME-WAIT
                client.close()
                accepted.close()
                continue
            for sock, to in ((client, job["client_to"]), (accepted, job["server_to"])):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, population._LINGER_RST)
                put(to, sock.detach())
        kept = 0
        if put is not None and job.get("listen_to"):
            for server in listeners.values():
                put(job["listen_to"], server.detach())
            kept = len(listeners)
    finally:
        for server in listeners.values():
            server.close()
    if put is None:
        return {"time_wait": job["count"]}
    if defer:
        return {"established": job["count"], "syn_recv": job["count"], "listen": kept}
    return {"established": 2 * job["count"], "listen": kept}


def _listen(job: Job, put: Callable[[str, int], None]) -> dict[str, int]:
    """``count`` listeners, IPv4 (``fam`` "4") on addresses 127.block.x.y or IPv6 ("6") on ``::1``; or,
    with ``group`` N, N at a time on one wildcard port with ``SO_REUSEPORT`` (a server's workers each
    listening on it): ``0.0.0.0``, ``[::]`` v6only ("6"), or ``[::]`` dual-stack ("46")."""
    group, fam = job.get("group", 0), job["fam"]
    for i in range(job["count"]):
        six = fam != "4"
        sock = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_STREAM)
        if group:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if six:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(fam == "6"))
            sock.bind(("::" if six else "0.0.0.0", job["port"] + i // group))
        else:
            sock.bind(("::1", job["port"] + i) if six else (_v4(job["block"], i, 1000), job["port"] + i % 1000))
        sock.listen(128)
        put(job["to"], sock.detach())
    return {"listen": job["count"]}


def _udp(job: Job, put: Callable[[str, int], None]) -> dict[str, int]:
    six = job["fam"] == "6"
    for i in range(job["count"]):
        sock = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("::1", job["port"] + i) if six else (_v4(job["block"], i, 1000), job["port"] + i % 1000))
        if i % 2:
            sock.connect(("::1", job["port"] + i - 1) if six else (_v4(job["block"], i - 1, 1000),
                                                                   job["port"] + (i - 1) % 1000))
        put(job["to"], sock.detach())
    return {"udp": job["count"]}


def _unix(job: Job, put: Callable[[str, int], None], unix_dir: str, slot: int) -> dict[str, int]:
    """Units of 12 after two stream listeners (one named, one abstract); the rest unbound datagram."""
    count, to, tag = job["count"], job["to"], f"{slot}-{job['tag']}"
    stream, dgram, au = socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.AF_UNIX

    def keep(*socks: socket.socket) -> None:
        for sock in socks:
            put(to, sock.detach())

    units, rest = divmod(count - 2, 12) if count >= 2 else (0, count)
    if count >= 2:
        named, abstract = os.path.join(unix_dir, f"l{tag}"), f"\0sockscope-bench-l{tag}"
        servers = []
        for address in (named, abstract):
            server = socket.socket(au, stream)
            server.bind(address)
            server.listen(128)
            servers.append((server, address))
        for u in range(units):
            for server, address in servers:  # 4: a client (unnamed) and its accepted end, twice
                client = socket.socket(au, stream)
                client.connect(address)
                keep(client, server.accept()[0])
            keep(*socket.socketpair(au, stream), *socket.socketpair(au, dgram))  # 4
            path = os.path.join(unix_dir, f"d{tag}-{u}")
            server = socket.socket(au, dgram)
            server.bind(path)
            client = socket.socket(au, dgram)
            client.connect(path)
            lone = socket.socket(au, dgram)
            lone.bind(f"\0sockscope-bench-d{tag}-{u}")
            keep(server, client, lone, socket.socket(au, stream))  # 4
        keep(*(server for server, _ in servers))
    for _ in range(rest):
        keep(socket.socket(au, dgram))
    return {"unix": count}


def _idle_threads(count: int) -> None:
    """``count`` more threads in this process, each waiting for ever (a server's pool, between requests)."""
    never = threading.Event()
    for _ in range(count):
        threading.Thread(target=never.wait, daemon=True).start()


def _worker(mine: list[int], wake: int, parent: int, threads: int = 1) -> None:
    """A forked worker: keep ``mine`` (and stdio), start its other ``threads``, say ready, hold until
    stdin's EOF."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)
    keep = sorted({0, 1, 2, wake, *mine})
    for low, high in zip(keep, [*keep[1:], 1 << 20], strict=True):
        if high > low + 1:
            os.closerange(low + 1, high)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    _idle_threads(threads - 1)
    os.write(wake, b".")
    os.close(wake)
    while os.read(0, 4096):
        pass
    os._exit(0)


def _fork(spec: ShapeSpec, keep: dict[str, list[int]]) -> list[int]:
    """Fork the workers, hand out the fds; return their pids once each has said ready."""
    share_count = spec.workers + (1 if spec.parent_works else 0)
    spread = keep["spread"]
    shares = [spread[k::share_count] for k in range(share_count)]
    first = 1 if spec.parent_works else 0
    ready, wake = os.pipe()
    gc.freeze()  # fewer copied pages in the children
    parent, pids = os.getpid(), []
    for k in range(spec.workers):
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready)
                _worker(shares[first + k] + keep["shared"], wake, parent, spec.threads)
            finally:
                os._exit(1)
        pids.append(pid)
    os.close(wake)
    said = 0
    while said < spec.workers:
        chunk = os.read(ready, 4096)
        if not chunk:
            break
        said += len(chunk)
    os.close(ready)
    if said < spec.workers:
        raise OSError(f"only {said} of {spec.workers} workers started")
    mine = set(keep["own"]) | (set(shares[0]) if spec.parent_works else set())
    for fd in [*spread, *keep["shared"]]:
        if fd not in mine:
            os.close(fd)
    return pids


def _reap(pids: Sequence[int], grace: float = 10.0) -> None:
    """Wait for the workers (they saw stdin's EOF too); SIGKILL, by pid, those still there."""
    left, deadline = set(pids), time.monotonic() + grace
    while left and time.monotonic() < deadline:
        for pid in list(left):
            if os.waitpid(pid, os.WNOHANG)[0]:
                left.discard(pid)
        time.sleep(0.02)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def holder_main(spec_json: str) -> int:
    """Holder process: build the jobs, fork the workers, ``READY {counts}``, hold until stdin's EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the builder's to handle
    raw = json.loads(spec_json)
    spec = ShapeSpec(**{**raw, "jobs": tuple(raw["jobs"])})
    population._raise_nofile()
    keep: dict[str, list[int]] = {"own": [], "shared": [], "spread": []}

    def put(to: str, fd: int) -> None:
        keep[to].append(fd)

    counts: dict[str, int] = {}
    pids: list[int] = []
    try:
        for job in spec.jobs:
            kind = job["kind"]
            if kind in ("tcp", "tw"):
                got = _connections(job, put if kind == "tcp" else None)
            elif kind == "unix":
                got = _unix(job, put, spec.unix_dir, spec.slot)
            else:
                got = (_listen if kind == "listen" else _udp)(job, put)
            for key, value in got.items():
                counts[key] = counts.get(key, 0) + value
        if spec.workers:
            pids = _fork(spec, keep)
        _idle_threads(spec.threads - 1)  # (after the fork: a forked worker starts its own)
    except OSError as exc:
        print(f"ERROR {exc}", flush=True)
        return 1
    counts["processes"] = len(pids) + 1 if spec.hold else 0
    print("READY " + json.dumps(counts), flush=True)
    if spec.hold:
        sys.stdin.buffer.read()  # EOF: the builder closed the pipe or died
    _reap(pids)
    return 0


# --------------------------------------------------------------------------- plans (builder side)


def _n(count: float, scale: float) -> int:
    return max(1, round(count * scale))


def _conns(fam: str, count: int, slot: int, *, to: str = "own", block: int = 11, port: int = 30000,
           ports: int = 50, **extra: Any) -> Job:
    job = {"kind": "tcp", "fam": fam, "count": count, "block": block, "port": port + ports * slot,
           "ports": ports, "client_to": to, "server_to": to}
    return {**job, **extra}


def _tw(fam: str, count: int, slot: int) -> Job:
    return {"kind": "tw", "fam": fam, "count": count, "block": 13, "ports": 50,
            "port": (32000 if fam == "6" else 31500) + 50 * slot}


def _by_capacity(count: int, per_item: int, capacity: int, make: Callable[[int, int], ShapeSpec]) -> list[ShapeSpec]:
    """``count`` items of ``per_item`` fds over the fewest holders; ``make(slot, share)`` plans one."""
    holders = max(1, math.ceil(count * per_item / (capacity - 200)))
    return [make(slot, share) for slot, share in enumerate(population._shares(count, holders)) if share]


Plan = tuple[list[ShapeSpec], list[ShapeSpec]]  # (holders, TIME-WAIT makers run last)


def _plan_dual(scale: float, capacity: int) -> Plan:
    def make(slot: int, share: int) -> ShapeSpec:
        job = _conns("46", share, slot, block=12, port=31000, ports=min(10, share), listen_to="own")
        return ShapeSpec((job,), slot)
    return _by_capacity(_n(5000, scale), 2, capacity, make), []


def _plan_mixed(connections: int) -> Callable[[float, int], Plan]:
    def plan(scale: float, capacity: int) -> Plan:
        return _by_capacity(_n(connections, scale), 2, capacity, lambda s, k: ShapeSpec((_conns("alt", k, s),), s)), []
    return plan


def _plan_procs(scale: float, capacity: int) -> Plan:
    processes = _n(1000, scale)
    job = _conns("4", 4 * processes, 0, to="spread")
    return [ShapeSpec((job,), workers=processes - 1, parent_works=True)], [ShapeSpec((_tw("4", _n(2000, scale), 0),),
                                                                                      hold=False)]


def _plan_prefork(scale: float, capacity: int) -> Plan:
    workers = _n(256, scale)
    job = _conns("4", 8 * workers, 0, ports=1, listen_to="shared", server_to="spread")
    return [ShapeSpec((job,), workers=workers)], []


def _plan_unix(scale: float, capacity: int) -> Plan:
    def make(slot: int, share: int) -> ShapeSpec:
        return ShapeSpec(({"kind": "unix", "count": share, "tag": "u", "to": "own"},), slot)
    return _by_capacity(_n(20_000, scale), 1, capacity, make), []


def _plan_udp(scale: float, capacity: int) -> Plan:
    def make(slot: int, share: int) -> ShapeSpec:
        return ShapeSpec(({"kind": "udp", "fam": "4", "count": share, "block": 15 + slot, "port": 27000,
                           "to": "own"},), slot)
    return _by_capacity(_n(10_000, scale), 1, capacity, make), []


def _plan_hostmix(scale: float, capacity: int) -> Plan:
    def sized(count: int) -> int:
        return _n(count, scale)

    jobs = (
        _conns("4", sized(2000), 0, to="spread"),
        _conns("6", sized(1000), 1, to="spread"),
        _conns("46", sized(500), 0, block=12, port=31000, ports=min(10, sized(500)), to="spread",
               listen_to="spread"),
        {"kind": "listen", "fam": "4", "count": sized(40), "block": 14, "port": 29000, "to": "spread"},
        {"kind": "listen", "fam": "6", "count": sized(20), "port": 28000, "to": "spread"},
        {"kind": "udp", "fam": "4", "count": sized(400), "block": 15, "port": 27000, "to": "spread"},
        {"kind": "udp", "fam": "6", "count": sized(200), "port": 26000, "to": "spread"},
        {"kind": "unix", "count": sized(6000), "tag": "m", "to": "spread"},
    )
    late = [ShapeSpec((_tw("4", sized(1500), 0), _tw("6", sized(500), 0)), hold=False)]
    return [ShapeSpec(jobs, workers=sized(40) - 1, parent_works=True)], late


def _plan_synrecv(scale: float, capacity: int) -> Plan:
    """A server whose clients connected and have sent nothing yet: behind its deferred-accept listeners
    (IPv4, IPv6, and IPv4 clients of a dual-stack one, ``::ffff:`` mapped) 2,000 SYN-RECV
    mini-sockets, between 3,000 full connections and TIME-WAIT's mini-sockets."""
    hour = 3600  # TCP_DEFER_ACCEPT: the request sockets outlast any run

    # (each a port of its own, `[::]`'s taking IPv4's too, below the ephemeral range (32768–60999): the
    # 3,000 clients made first bind ports there, and a wildcard listener's port taken by one is in use)
    def deferred(fam: str, count: int, port: int, **extra: Any) -> Job:
        return _conns(fam, count, 0, port=port, defer=hour, listen_to="own", **extra)

    jobs = (
        _conns("4", _n(3000, scale), 0),
        deferred("4", _n(1200, scale), 25000, block=16, ports=4),
        deferred("6", _n(500, scale), 25100, ports=2),
        deferred("46", _n(300, scale), 25200, block=17, ports=1),
    )
    late = [ShapeSpec((_tw("4", _n(800, scale), 0), _tw("6", _n(200, scale), 0)), hold=False)]
    return [ShapeSpec(jobs)], late


def _plan_listen(scale: float, capacity: int) -> Plan:
    """An ingress or proxy host: 10,000 listeners held by 40 processes: 3,000 IPv4 and 2,000 IPv6 bound
    to addresses of their own, and SO_REUSEPORT groups of 50 on 50 ``[::]`` dual-stack ports and on 50
    ``0.0.0.0`` ones; and 1,000 connections."""
    def listen(fam: str, count: int, port: int, **extra: Any) -> Job:
        return {"kind": "listen", "fam": fam, "count": _n(count, scale), "port": port, "to": "spread", **extra}

    jobs = (
        listen("4", 3000, 40000, block=20),
        listen("6", 2000, 42000),
        listen("46", 2500, 45000, group=50),
        listen("4", 2500, 46000, group=50),
        _conns("4", _n(1000, scale), 0, to="spread"),
    )
    return [ShapeSpec(jobs, workers=_n(40, scale) - 1, parent_works=True)], []


def _plan_threads(scale: float, capacity: int) -> Plan:
    """Thread-pool servers (a JVM's, say): 4 processes of 32 threads each, which share their process's
    fd table, holding 2,000 connections (both ends)."""
    jobs = (_conns("4", _n(2000, scale), 0, to="spread"),)
    return [ShapeSpec(jobs, workers=3, parent_works=True, threads=max(2, _n(32, scale)))], []


def _plan_netns(scale: float, capacity: int) -> Plan:
    """One namespace of a container host (built in each of :data:`NETNS_COUNT` namespaces): a service's
    connections over IPv4 and IPv6 and its two listeners, a few UDP sockets, UNIX sockets."""
    jobs = (
        _conns("4", _n(100, scale), 0),
        _conns("6", _n(40, scale), 1),
        {"kind": "listen", "fam": "4", "count": 1, "block": 14, "port": 29000, "to": "own"},
        {"kind": "listen", "fam": "6", "count": 1, "port": 28000, "to": "own"},
        {"kind": "udp", "fam": "4", "count": _n(10, scale), "block": 15, "port": 27000, "to": "own"},
        {"kind": "unix", "count": _n(60, scale), "tag": "n", "to": "own"},
    )
    return [ShapeSpec(jobs)], []


#: the namespaces of ``netns40`` (each built by its plan), the population's own among them
NETNS_COUNT = 40


@dataclass(frozen=True)
class Shape:
    """One population: its table label, the rows measured on it, its plan (``namespaces``: built
    in that many network namespaces, the population's own and ``namespaces - 1`` more)."""

    name: str
    label: str
    rows: tuple[str, ...]
    plan: Callable[[float, int], Plan] = field(repr=False)
    namespaces: int = 1


TCP_ROWS = ("tan", "tan_floor", "tanp", "tanp_walk", "net_connections", "nc_tcp_walk")
SHAPES: dict[str, Shape] = {s.name: s for s in (
    Shape("dual10k", "10k TCP, IPv4 clients on `[::]` (mapped)", TCP_ROWS, _plan_dual),
    Shape("mixed10k", "10k TCP, IPv4/IPv6 alternating", TCP_ROWS, _plan_mixed(5000)),
    Shape("mixed100k", "100k TCP, IPv4/IPv6 alternating", TCP_ROWS, _plan_mixed(50_000)),
    Shape("procs1000", "8k TCP in 1,000 processes + 2k TIME-WAIT", TCP_ROWS, _plan_procs),
    Shape("prefork256", "listener shared by 256 processes, 8 conns each",
          ("tanp", "tanp_walk", "tan", "tan_floor", "net_connections", "nc_tcp_walk"), _plan_prefork),
    Shape("unix20k", "20k UNIX (named, abstract, unnamed)",
          ("xa", "xa_floor", "nc_unix", "xam", "xae", "xsrc", "xsrc_floor"), _plan_unix),
    Shape("udp10k", "10k UDP", ("uan", "uan_floor", "nc_udp", "uanm"), _plan_udp),
    Shape("hostmix15k", "host-like mix ~15.7k (TCP 4/6 + TIME-WAIT, UDP, UNIX)",
          ("a", "a_floor", "l", "t", "t_floor", "tan", "tan_floor", "tanp", "tanp_walk", "tani", "xa", "xa_floor",
           "uan", "s", "nc_all", "nc_all_walk", "tano", "tane", "tanm", "tanmi", "json", "xsrc", "xsrc_floor",
           "asport", "asport_floor"),
          _plan_hostmix),
    Shape("listen10k", "10k listeners (IPv4, IPv6 on ::1, SO_REUSEPORT groups on [::] and 0.0.0.0) in 40 "
          "processes + 1k connections", ("tln", "tln_floor", "l", "tlnp", "tanp_walk", "net_connections"),
          _plan_listen),
    Shape("synrecv10k", "10k TCP: 2k SYN-RECV (deferred accept, IPv4/IPv6/mapped) among full sockets + 1k TIME-WAIT",
          (*TCP_ROWS, "tano", "tani"), _plan_synrecv),
    Shape("threads4x32", "2k TCP connections in 4 processes of 32 threads each (thread pools)",
          ("tanT", "tanp", "tanp_walk", "tan", "tan_floor", "net_connections"), _plan_threads),
    Shape("netns40", f"{NETNS_COUNT} network namespaces (a container host), 352 sockets each",
          ("allnetns_tan", "allnetns_tanp", "allnetns_a"), _plan_netns, namespaces=NETNS_COUNT),
)}


def build(name: str, netns: str, *, scale: float = 1.0, python: str = sys.executable,
          timeout: float = 600.0) -> Any:
    """Build population ``name`` in ``netns``; a :class:`population.Population` (close it).  A shape of
    several namespaces is built in ``netns`` and in ``netns-1`` … (the population's ``companions``, each
    with its own counts, closed with it)."""
    shape = SHAPES[name]
    pop = _build_one(shape, netns, scale, python, timeout)
    try:
        for k in range(1, shape.namespaces):
            pop.companions.append(_build_one(shape, f"{netns}-{k}", scale, python, timeout))
    except BaseException:
        pop.close()
        raise
    return pop


def _build_one(shape: Shape, netns: str, scale: float, python: str, timeout: float) -> Any:
    specs, late = shape.plan(scale, population.holder_capacity())
    pop = population.Population(netns, population._ensure_netns(netns), python)
    try:
        if any(job["kind"] == "unix" for spec in specs for job in spec.jobs):
            pop.scratch = tempfile.mkdtemp(prefix="sockscope-bench-unix-")
            specs = [ShapeSpec(**{**asdict(s), "unix_dir": pop.scratch}) for s in specs]
        pop._run(specs, timeout)
        pop.time_wait_specs = late
        if late:
            pop.renew_time_wait(timeout)
    except BaseException:
        pop.close()
        raise
    return pop


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "--holder":
        return holder_main(args[1])
    print("usage: shapes.py --holder SPEC (started by build(); see the module docstring)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
