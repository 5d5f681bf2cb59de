"""Socket populations for the benchmark: many loopback sockets in a private netns.

Contract
--------
``build(netns, n, *, time_wait=0, listeners=0, udp=0, unix=0)`` returns a
:class:`Population` once every socket exists; ``Population.close()`` (or leaving
its ``with`` block) ends every holder process by pid and deletes the network
namespace if ``build`` created it.  Cleanup also runs when building fails.

* ``netns`` is created (``ip netns add`` + loopback up) unless it already
  exists; an existing namespace is used as it is and never deleted.
* ``n`` TCP ESTABLISHED sockets: both ends of ``n / 2`` loopback connections
  (``n`` must be even).  The listeners they were accepted from are closed
  afterwards, so ``ss -tanH | wc -l`` is exactly ``n + listeners + time_wait``.
* ``listeners`` extra TCP LISTEN sockets; ``udp`` UDP sockets (bound, every
  second one connected to the one before it); ``unix`` UNIX sockets (stream and
  datagram socket pairs, one unbound datagram socket if the count is odd).
* ``time_wait`` TIME-WAIT sockets: loopback connections whose client closed
  first.  They belong to no process and the kernel expires them after 60 s
  (``TCP_TIMEWAIT_LEN``); :attr:`Population.time_wait_deadline` says when the
  first of them go.  ``add_time_wait(k)`` adds more later.
* Sockets are held by *holder* processes (this file run with ``--holder``
  through ``ip netns exec``), each raising ``RLIMIT_NOFILE`` to its hard limit
  and holding at most ``hard - 256`` sockets; 100k sockets take several
  holders.  A holder exits when its stdin closes, so holders also die with
  their builder.  Kept sockets have ``SO_LINGER`` 0: they vanish with a RST
  instead of leaving TIME-WAIT sockets behind.

Address plan (all on ``lo``; every port is below the ephemeral range):

=========== =============== ================ =====================================
block       addresses       ports            use
=========== =============== ================ =====================================
ESTABLISHED 127.1.x.y       20000-20049      10,000 connections per address
TIME-WAIT   127.2.x.y       21000-21049      10,000 connections per address
LISTEN      127.3.x.y       22000-22999      one listener per (address, port)
UDP         127.4.x.y       23000-23999      one socket per (address, port)
=========== =============== ================ =====================================

Connections are spread round-robin over 50 ports, so ``dport = :20000``
(:data:`FILTER_PORT`) matches about 1% of the ESTABLISHED sockets (the client ends
of 1/50 of the connections), and no (address, port) sees more than 200
connections: the 28k ephemeral ports are never short.

CLI: ``python bench/population.py --netns NAME --sockets 10000 [--time-wait
50000] [--listeners L] [--udp U] [--unix X]`` builds, prints a ``READY`` line,
holds until Ctrl-C or SIGTERM, then cleans up.  Standard library only, so any
Python >= 3.11 runs it.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Self

#: The kernel keeps a TIME-WAIT socket this long (TCP_TIMEWAIT_LEN).
TIME_WAIT_SECONDS = 60.0
#: ESTABLISHED connections are spread over this many ports per address.
SPREAD_PORTS = 50
#: ``dport = :FILTER_PORT`` matches about 1% of the ESTABLISHED sockets.
FILTER_PORT = 20000
#: File descriptors a holder keeps free for itself (stdio, the interpreter's own).
FD_RESERVE = 256
_NETNS_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LINGER_RST = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class Layout:
    """Where the ``index``-th endpoint of one kind of socket lives."""

    block: int  # second octet of the 127.0.0.0/8 address
    base_port: int
    ports: int  # distinct ports per address
    per_addr: int  # endpoints per address

    def endpoint(self, index: int) -> tuple[str, int]:
        """The (address, port) of endpoint number ``index``."""
        addr, rest = divmod(index, self.per_addr)
        hi, lo = divmod(addr, 250)
        if hi > 255:
            raise ValueError(f"endpoint {index} is beyond 127.{self.block}.0.0/16")
        return f"127.{self.block}.{hi}.{lo + 1}", self.base_port + rest % self.ports


ESTABLISHED = Layout(block=1, base_port=FILTER_PORT, ports=SPREAD_PORTS, per_addr=10_000)
TIME_WAIT = Layout(block=2, base_port=21000, ports=SPREAD_PORTS, per_addr=10_000)
LISTEN = Layout(block=3, base_port=22000, ports=1000, per_addr=1000)
UDP = Layout(block=4, base_port=23000, ports=1000, per_addr=1000)


@dataclass(frozen=True)
class HolderSpec:
    """What one holder process creates: index ranges ``(first, count)`` into the layouts."""

    established: tuple[int, int] = (0, 0)  # connections, two sockets each
    time_wait: tuple[int, int] = (0, 0)  # connections left in TIME-WAIT
    listen: tuple[int, int] = (0, 0)
    udp: tuple[int, int] = (0, 0)
    unix: int = 0
    hold: bool = True  # keep the sockets until stdin closes (False: exit when done)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def argv(self) -> list[str]:
        """The holder's command line after the interpreter."""
        return [os.path.abspath(__file__), "--holder", self.to_json()]

    @classmethod
    def from_json(cls, text: str) -> HolderSpec:
        raw = json.loads(text)
        return cls(
            established=tuple(raw["established"]),
            time_wait=tuple(raw["time_wait"]),
            listen=tuple(raw["listen"]),
            udp=tuple(raw["udp"]),
            unix=int(raw["unix"]),
            hold=bool(raw["hold"]),
        )

    def peak_fds(self) -> int:
        """File descriptors this holder has open at most: kept sockets plus temporary listeners."""
        kept = 2 * self.established[1] + self.listen[1] + self.udp[1] + self.unix
        return kept + ESTABLISHED.ports * math.ceil(self.established[1] / ESTABLISHED.per_addr)


def holder_capacity() -> int:
    """Sockets one holder may keep: the hard ``RLIMIT_NOFILE`` less a reserve."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    return max(hard - FD_RESERVE, 2)


def _shares(total: int, parts: int) -> list[int]:
    """``total`` cut into ``parts`` near-equal counts."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _ranges(counts: Sequence[int], start: int = 0, align: int = 1) -> list[tuple[int, int]]:
    """(first, count) index ranges, each starting on a multiple of ``align`` past ``start``.

    With ``align`` = a layout's ``per_addr`` no two ranges share an address, so
    two holders never bind the same temporary listener.
    """
    out = []
    for count in counts:
        out.append((start, count))
        start += math.ceil(count / align) * align
    return out


def plan(n: int, *, listeners: int = 0, udp: int = 0, unix: int = 0, capacity: int) -> list[HolderSpec]:
    """The fewest holders (each with at most ``capacity`` fds open) for a population."""
    if n < 0 or n % 2:
        raise ValueError(f"n must be even and >= 0 (both ends of n/2 connections), got {n}")
    if min(listeners, udp, unix) < 0:
        raise ValueError("socket counts must be >= 0")
    total = n + listeners + udp + unix
    if total == 0:
        return []
    holders = math.ceil(total / capacity)
    while True:
        specs = [
            HolderSpec(established=e, listen=ls, udp=u, unix=x)
            for e, ls, u, x in zip(
                _ranges(_shares(n // 2, holders), align=ESTABLISHED.per_addr),
                _ranges(_shares(listeners, holders)),
                _ranges(_shares(udp, holders)),
                _shares(unix, holders),
                strict=True,
            )
        ]
        if all(s.peak_fds() <= capacity for s in specs):
            return specs
        holders += 1


# --------------------------------------------------------------------------- holder side


def _linger_rst(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)


def _connect_pairs(layout: Layout, first: int, count: int, keep: list[int] | None) -> int:
    """Make ``count`` loopback connections; keep both ends, or close them client first."""
    listeners: dict[tuple[str, int], socket.socket] = {}
    try:
        for index in range(first, first + count):
            endpoint = layout.endpoint(index)
            server = listeners.get(endpoint)
            if server is None:
                server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind(endpoint)
                server.listen(1024)
                listeners[endpoint] = server
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.connect(endpoint)
            accepted, _ = server.accept()
            if keep is None:  # the side that closes first is left in TIME-WAIT
                client.close()
                accepted.close()
            else:
                _linger_rst(client)
                _linger_rst(accepted)
                keep.append(client.detach())
                keep.append(accepted.detach())
    finally:
        for server in listeners.values():
            server.close()
    return count


def _listen(first: int, count: int, keep: list[int]) -> int:
    for index in range(first, first + count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(LISTEN.endpoint(index))
        sock.listen(128)
        keep.append(sock.detach())
    return count


def _udp(first: int, count: int, keep: list[int]) -> int:
    for index in range(first, first + count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(UDP.endpoint(index))
        if index % 2:
            sock.connect(UDP.endpoint(index - 1))
        keep.append(sock.detach())
    return count


def _unix(count: int, keep: list[int]) -> int:
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM)
    for pair in range(count // 2):
        a, b = socket.socketpair(socket.AF_UNIX, kinds[pair % 2])
        keep.extend((a.detach(), b.detach()))
    if count % 2:
        keep.append(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).detach())
    return count


def populate(spec: HolderSpec, keep: list[int]) -> dict[str, int]:
    """Create the sockets of ``spec`` in this process; kept fds go to ``keep``."""
    established = _connect_pairs(ESTABLISHED, *spec.established, keep)
    return {
        "established": 2 * established,
        "listen": _listen(*spec.listen, keep),
        "udp": _udp(*spec.udp, keep),
        "unix": _unix(spec.unix, keep),
        "time_wait": _connect_pairs(TIME_WAIT, *spec.time_wait, None),
    }


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def holder_main(spec_json: str) -> int:
    """Holder process: build, report ``READY {counts}``, hold until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the builder's to handle
    spec = HolderSpec.from_json(spec_json)
    _raise_nofile()
    keep: list[int] = []
    try:
        counts = populate(spec, keep)
    except OSError as exc:
        print(f"ERROR {exc}", flush=True)
        return 1
    print("READY " + json.dumps(counts), flush=True)
    if spec.hold:
        sys.stdin.buffer.read()  # EOF: the builder closed the pipe or died
    return 0


# --------------------------------------------------------------------------- builder side


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def netns_exists(name: str) -> bool:
    """Whether ``ip netns list`` shows ``name``."""
    return any(line.split()[:1] == [name] for line in _ip("netns", "list").splitlines())


def _ensure_netns(name: str) -> bool:
    """Create netns ``name`` with loopback up unless it exists; True if created."""
    if not _NETNS_NAME.fullmatch(name):
        raise ValueError(f"bad netns name {name!r}")
    if netns_exists(name):
        return False
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
    except BaseException:
        _ip("netns", "delete", name)
        raise
    return True


def netns_sysctl(netns: str, key: str, value: int | None = None) -> int:
    """Read (and with ``value``, first write) an integer sysctl inside ``netns``."""
    args = ["ip", "netns", "exec", netns, "sysctl", "-n", key]
    if value is not None:
        subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw", f"{key}={value}"], check=True)
    return int(subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()[0])


@dataclass
class Population:
    """A built population; ``close()`` it (idempotent).  See the module docstring."""

    netns: str
    created_netns: bool
    python: str = sys.executable
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("established", "listen", "udp", "unix", "time_wait"), 0)
    )
    #: ``time.monotonic()`` after which the oldest TIME-WAIT sockets start to expire.
    time_wait_deadline: float | None = None
    #: holders that make this population's TIME-WAIT sockets (``renew_time_wait`` runs them again)
    time_wait_specs: list[Any] = field(default_factory=list)
    #: a directory of UNIX socket files, removed on close
    scratch: str | None = None
    #: populations of other namespaces built with this one (a host of many namespaces), closed with it
    companions: list[Population] = field(default_factory=list)
    _holders: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _next_time_wait: int = 0
    _closed: bool = False

    @property
    def pids(self) -> list[int]:
        """Pids of the holder processes alive (they hold the sockets)."""
        return [p.pid for p in self._holders if p.poll() is None]

    def expected_tcp(self) -> int:
        """Rows ``ss -tanH`` should print (TIME-WAIT included while they last)."""
        c = self.counts
        return c["established"] + c["listen"] + c["time_wait"] + c.get("syn_recv", 0)

    def tcp_states(self) -> collections.Counter[str]:
        """``ss -tanH`` in the namespace, counted by its State column."""
        out = subprocess.run(
            ["ip", "netns", "exec", self.netns, "ss", "-tanH"], capture_output=True, text=True, check=True
        ).stdout
        return collections.Counter(line.split(None, 1)[0] for line in out.splitlines() if line.strip())

    def add_time_wait(self, n: int, *, timeout: float = 600.0) -> None:
        """Add ``n`` TIME-WAIT sockets (parallel short-lived holders); they last 60 s."""
        if n <= 0:
            return
        self.prepare_time_wait(n)
        workers = max(1, min(os.cpu_count() or 1, math.ceil(n / 10_000)))
        # Every batch starts on a fresh address: no shared listener, no shared 4-tuple.
        ranges = _ranges(_shares(n, workers), self._next_time_wait, TIME_WAIT.per_addr)
        specs = [HolderSpec(time_wait=r, hold=False) for r in ranges]
        last_first, last_count = ranges[-1]
        per = TIME_WAIT.per_addr
        self._next_time_wait = last_first + math.ceil(last_count / per) * per
        started = time.monotonic()
        self._run(specs, timeout)
        if self.time_wait_deadline is None:
            self.time_wait_deadline = started + TIME_WAIT_SECONDS

    def renew_time_wait(self, timeout: float = 600.0) -> None:
        """Make ``time_wait_specs``' TIME-WAIT sockets (again, once the earlier ones have expired)."""
        self.counts["time_wait"] = 0
        self.prepare_time_wait(sum(job["count"] for spec in self.time_wait_specs for job in spec.jobs))
        started = time.monotonic()
        self._run(self.time_wait_specs, timeout)
        self.time_wait_deadline = started + TIME_WAIT_SECONDS

    def prepare_time_wait(self, n: int) -> None:
        """In a namespace we made: never reuse a TIME-WAIT tuple, and room for ``n`` more of them."""
        if self.created_netns:
            netns_sysctl(self.netns, "net.ipv4.tcp_tw_reuse", 0)
            buckets = netns_sysctl(self.netns, "net.ipv4.tcp_max_tw_buckets")
            wanted = self.counts["time_wait"] + n + 1024
            if buckets < wanted:
                netns_sysctl(self.netns, "net.ipv4.tcp_max_tw_buckets", wanted)

    def _run(self, specs: Sequence[HolderSpec], timeout: float) -> None:
        """Start one holder per spec (anything with ``argv()`` and ``hold``), wait for every READY,
        add up the counts."""
        procs = []
        for spec in specs:
            argv = ["ip", "netns", "exec", self.netns, self.python, *spec.argv()]
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self._holders.append(proc)
            procs.append(proc)
        for counts in _await_ready(procs, timeout):
            for key, value in counts.items():
                self.counts[key] = self.counts.get(key, 0) + value
        for proc, spec in zip(procs, specs, strict=True):
            if not spec.hold:
                proc.wait(timeout)
                if proc.stdin:
                    proc.stdin.close()
                if proc.stdout:
                    proc.stdout.close()
                self._holders.remove(proc)

    def close(self) -> None:
        """End the holders by pid (stdin EOF, then SIGTERM, then SIGKILL); delete our netns (and
        close the companions)."""
        holders, self._holders = self._holders, []
        companions, self.companions = self.companions, []
        try:
            for proc in holders:
                if proc.stdin:
                    try:
                        proc.stdin.close()
                    except OSError:
                        pass
            deadline = time.monotonic() + 10.0
            for proc in holders:
                _end(proc, max(deadline - time.monotonic(), 0.1))
        finally:
            if self.scratch:
                shutil.rmtree(self.scratch, ignore_errors=True)
                self.scratch = None
            if self.created_netns and not self._closed:
                self._closed = True
                subprocess.run(["ip", "netns", "delete", self.netns], check=False)
            for other in companions:
                other.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _end(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Wait ``grace`` seconds for ``proc``, then SIGTERM it, then SIGKILL it (by pid)."""
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()


def _await_ready(procs: Sequence[subprocess.Popen[bytes]], timeout: float) -> list[dict[str, int]]:
    """Read each holder's first line; return their counts in order, or raise."""
    buffers = {p.stdout.fileno(): b"" for p in procs if p.stdout}
    by_fd = {p.stdout.fileno(): p for p in procs if p.stdout}
    results: dict[int, dict[str, int]] = {}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for fd in buffers:
            sel.register(fd, selectors.EVENT_READ)
        while len(results) < len(procs):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"holders not ready after {timeout:.0f} s")
            for key, _ in sel.select(left):
                fd = int(key.fd)
                chunk = os.read(fd, 4096)
                buffers[fd] += chunk
                if b"\n" in buffers[fd] or not chunk:
                    sel.unregister(fd)
                    line = buffers[fd].split(b"\n", 1)[0].decode(errors="replace")
                    if not line.startswith("READY "):
                        proc = by_fd[fd]
                        raise RuntimeError(f"holder {proc.pid} failed: {line or f'exit {proc.wait()}'}")
                    results[fd] = json.loads(line[6:])
    return [results[p.stdout.fileno()] for p in procs if p.stdout]


def build(
    netns: str,
    n: int,
    *,
    time_wait: int = 0,
    listeners: int = 0,
    udp: int = 0,
    unix: int = 0,
    python: str = sys.executable,
    timeout: float = 600.0,
) -> Population:
    """Build a population in ``netns`` (created if needed); see the module docstring."""
    specs = plan(n, listeners=listeners, udp=udp, unix=unix, capacity=holder_capacity())
    population = Population(netns, _ensure_netns(netns), python)
    try:
        population._run(specs, timeout)
        population.add_time_wait(time_wait, timeout=timeout)
    except BaseException:
        population.close()
        raise
    return population


# --------------------------------------------------------------------------- CLI


class _Stop(Exception):
    """Raised by the SIGINT/SIGTERM handler so that ``finally`` cleans up."""


def _on_signal(signum: int, frame: object) -> None:
    raise _Stop


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="population.py",
        description="Hold a loopback socket population in a network namespace until Ctrl-C/SIGTERM.",
    )
    p.add_argument("--holder", metavar="SPEC", help=argparse.SUPPRESS)
    p.add_argument("--netns", help="namespace name (created and later deleted if missing)")
    p.add_argument("--sockets", type=int, default=0, help="TCP ESTABLISHED sockets (even: both ends)")
    p.add_argument("--time-wait", type=int, default=0, metavar="N", help="TIME-WAIT sockets (expire after 60 s)")
    p.add_argument("--listeners", type=int, default=0, metavar="N", help="extra TCP LISTEN sockets")
    p.add_argument("--udp", type=int, default=0, metavar="N", help="UDP sockets (half connected)")
    p.add_argument("--unix", type=int, default=0, metavar="N", help="UNIX sockets (stream/dgram pairs)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the holders")
    args = p.parse_args(argv)
    if args.holder is None and not args.netns:
        p.error("--netns is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.holder is not None:
        return holder_main(args.holder)
    # Both signals explicitly: a shell starting us in the background ignores SIGINT.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    population: Population | None = None
    try:
        population = build(
            args.netns,
            args.sockets,
            time_wait=args.time_wait,
            listeners=args.listeners,
            udp=args.udp,
            unix=args.unix,
            timeout=args.timeout,
        )
        counts = " ".join(f"{k}={v}" for k, v in population.counts.items())
        pids = ",".join(map(str, population.pids))
        print(f"READY netns={args.netns} {counts} holders={pids}", flush=True)
        while True:
            signal.pause()
    except _Stop:
        return 0
    finally:
        if population is not None:
            population.close()
        print("population: cleaned up", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
