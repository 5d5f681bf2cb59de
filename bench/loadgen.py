#!/usr/bin/env python3
"""Load generator for ``sockscope serve`` (or any echo/greeting server).

Opens ``--clients`` connections concurrently (at most ``--ramp`` connects in
flight at once), holds them all open at a barrier, then every client runs its
echo rounds (send ``--size`` bytes, read them back, compare byte for byte) or,
in greet mode, reads the greeting to EOF and compares it.  It reports the
connections held concurrently, connect and round-trip latencies
(min/avg/max/p50/p99), bytes moved, throughput, and every error by kind.

Exit status: 0 when every client succeeded, 1 when any failed, 2 on usage.

Examples::

    python bench/loadgen.py --port 12345 --clients 2000 --size 4096 --rounds 10
    python bench/loadgen.py --unix /tmp/echo.sock --clients 100 --duration 10 --json
    python bench/loadgen.py --mode greet --clients 500

Standard library only (plus :mod:`sockscope.services.stats`, found through the
repository's ``src/`` when sockscope is not installed).  The soft
RLIMIT_NOFILE is raised as far as the hard limit allows for the clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from sockscope.services.stats import summarize
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from sockscope.services.stats import summarize


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """One load run."""

    host: str = "127.0.0.1"
    port: int = 12345
    unix: str | None = None
    clients: int = 100
    size: int = 4096
    rounds: int = 10
    duration: float | None = None
    mode: str = "echo"
    message: bytes = b"Thank you for connecting"
    ramp: int = 256
    hold: float = 0.0
    connect_timeout: float = 10.0
    io_timeout: float = 30.0


@dataclass(slots=True)
class Results:
    """What the clients measured; filled concurrently, read once at the end."""

    connect_times: list[float] = field(default_factory=list)
    rtts: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    open_now: int = 0
    held: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    ok: int = 0

    def fail(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < 5:
            self.samples.append(f"{kind}: {detail}")


class Barrier:
    """Released once every client has either connected or given up."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.released = asyncio.Event()
        self.go = asyncio.Event()  # set by the runner once the hold time is over

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.released.set()


def raise_nofile(wanted: int) -> int:
    """Raise the soft fd limit toward ``wanted`` (within the hard limit); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        return ceiling
    return soft


def _kind(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "early-eof"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, BrokenPipeError):
        return "broken-pipe"
    return type(exc).__name__


async def _open(cfg: LoadConfig) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if cfg.unix is not None:
        return await asyncio.open_unix_connection(cfg.unix)
    return await asyncio.open_connection(cfg.host, cfg.port)


async def _client(
    index: int, cfg: LoadConfig, res: Results, gate: asyncio.Semaphore, barrier: Barrier, payload: bytes
) -> None:
    writer: asyncio.StreamWriter | None = None
    stage = "connect"
    arrived = False
    try:
        async with gate:
            started = time.perf_counter()
            reader, stream = await asyncio.wait_for(_open(cfg), cfg.connect_timeout)
            writer = stream
            res.connect_times.append(time.perf_counter() - started)
        res.open_now += 1
        res.held = max(res.held, res.open_now)
        stage = "transfer"
        if cfg.mode == "greet":
            data = await asyncio.wait_for(reader.read(), cfg.io_timeout)
            res.bytes_received += len(data)
            if data != cfg.message:
                res.fail("mismatch", f"client {index}: greeting {data[:40]!r}")
                return
            res.ok += 1
            return
        arrived = True
        barrier.arrive()
        await barrier.go.wait()
        deadline = None if cfg.duration is None else time.perf_counter() + cfg.duration
        done = 0
        while (deadline is None and done < cfg.rounds) or (deadline is not None and time.perf_counter() < deadline):
            started = time.perf_counter()
            stream.write(payload)
            await asyncio.wait_for(stream.drain(), cfg.io_timeout)
            res.bytes_sent += len(payload)
            echoed = await asyncio.wait_for(reader.readexactly(len(payload)), cfg.io_timeout)
            res.bytes_received += len(echoed)
            res.rtts.append(time.perf_counter() - started)
            if echoed != payload:
                res.fail("mismatch", f"client {index} round {done}: echo differs")
                return
            done += 1
        stream.write_eof()
        tail = await asyncio.wait_for(reader.read(), cfg.io_timeout)
        if tail:
            res.fail("extra-data", f"client {index}: {len(tail)} unexpected bytes after the last round")
            return
        res.ok += 1
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
        res.fail(f"{stage}-{_kind(exc)}", f"client {index}: {exc!r}")
    finally:
        if not arrived:
            barrier.arrive()  # never keep the others waiting for a client that failed
        if writer is not None:
            res.open_now -= 1
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def run_load(cfg: LoadConfig) -> dict[str, Any]:
    """Run the load; return the report as a dict (see :func:`format_report`)."""
    res = Results()
    gate = asyncio.Semaphore(cfg.ramp)
    barrier = Barrier(cfg.clients)
    block = os.urandom(cfg.size + 4096) if cfg.size else b""
    t0 = time.perf_counter()
    tasks = []
    for i in range(cfg.clients):
        offset = (i * 7919) % 4096
        payload = block[offset : offset + cfg.size]
        tasks.append(asyncio.ensure_future(_client(i, cfg, res, gate, barrier, payload)))
    barrier_at: float | None = None
    if cfg.mode == "echo":
        await barrier.released.wait()
        barrier_at = time.perf_counter()
        if cfg.hold:
            await asyncio.sleep(cfg.hold)
        barrier.go.set()
    transfer_from = time.perf_counter()
    await asyncio.gather(*tasks)
    finished = time.perf_counter()
    transfer = max(finished - transfer_from, 1e-9)
    connect = summarize(res.connect_times)
    rtt = summarize(res.rtts)
    return {
        "target": cfg.unix if cfg.unix is not None else f"{cfg.host}:{cfg.port}",
        "mode": cfg.mode,
        "clients": cfg.clients,
        "connected": len(res.connect_times),
        "held": res.held,
        "ok": res.ok,
        "errors": sum(res.errors.values()),
        "errors_by_kind": dict(res.errors),
        "error_samples": res.samples,
        "connect_phase_s": (barrier_at - t0) if barrier_at is not None else None,
        "transfer_s": transfer,
        "total_s": finished - t0,
        "size": cfg.size,
        "rounds": cfg.rounds if cfg.duration is None else None,
        "duration": cfg.duration,
        "round_trips": len(res.rtts),
        "bytes_sent": res.bytes_sent,
        "bytes_received": res.bytes_received,
        "throughput_mib_s_each_way": res.bytes_received / transfer / 2**20,
        "round_trips_per_s": len(res.rtts) / transfer,
        "connect_latency": connect.as_ms() if connect else None,
        "rtt": rtt.as_ms() if rtt else None,
    }


def _ms_line(stats: dict[str, float] | None) -> str:
    if not stats:
        return "-"
    keys = ("min_ms", "avg_ms", "max_ms", "p50_ms", "p99_ms")
    return "min/avg/max/p50/p99 = " + "/".join(f"{stats[k]:.3f}" for k in keys) + " ms"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable report."""
    lines = [
        f"target {report['target']} ({report['mode']}): {report['clients']} clients, "
        f"{report['connected']} connected, {report['held']} held concurrently, "
        f"{report['ok']} ok, {report['errors']} errors",
    ]
    if report["connect_phase_s"] is not None:
        lines.append(f"all connected in {report['connect_phase_s']:.3f} s")
    lines.append(f"connect latency: {_ms_line(report['connect_latency'])}")
    if report["mode"] == "echo":
        lines.append(
            f"echo: {report['round_trips']} round trips of {report['size']} B, "
            f"{report['bytes_received'] / 2**20:.1f} MiB each way in {report['transfer_s']:.3f} s: "
            f"{report['throughput_mib_s_each_way']:.1f} MiB/s each way, "
            f"{report['round_trips_per_s']:.0f} round trips/s"
        )
        lines.append(f"round trip: {_ms_line(report['rtt'])}")
    for kind, n in sorted(report["errors_by_kind"].items()):
        lines.append(f"error {kind}: {n}")
    lines.extend(f"  e.g. {s}" for s in report["error_samples"])
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of the load generator."""
    p = argparse.ArgumentParser(
        prog="loadgen.py",
        description="Concurrent echo/greet load against a TCP or UNIX stream server; byte-exact checks.",
        epilog="exit status: 0 no errors, 1 some client failed, 2 usage",
    )
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=12345, help="server port (default 12345)")
    p.add_argument("--unix", metavar="PATH", help="connect to a UNIX stream socket instead")
    p.add_argument("-n", "--clients", type=int, default=100, help="concurrent clients (default 100)")
    p.add_argument("--size", type=int, default=4096, help="bytes per echo round (default 4096)")
    p.add_argument("--rounds", type=int, default=10, help="echo rounds per client (default 10)")
    p.add_argument("--duration", type=float, help="run echo rounds for this many seconds instead of --rounds")
    p.add_argument("--mode", choices=("echo", "greet"), default="echo", help="echo (default) or greet")
    p.add_argument("--message", default="Thank you for connecting", help="greeting expected in greet mode")
    p.add_argument("--ramp", type=int, default=256, help="connects in flight at once (default 256)")
    p.add_argument("--hold", type=float, default=0.0, help="seconds to hold all connections open before the echo")
    p.add_argument("--connect-timeout", type=float, default=10.0, help="per connect (default 10 s)")
    p.add_argument("--io-timeout", type=float, default=30.0, help="per read/write wait (default 30 s)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse argv, run, print the report; 0 when there was no error."""
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.clients < 1 or a.size < 0 or a.rounds < 0 or a.ramp < 1:
        parser.error("--clients and --ramp must be >= 1; --size and --rounds >= 0")
    cfg = LoadConfig(
        host=a.host,
        port=a.port,
        unix=a.unix,
        clients=a.clients,
        size=a.size,
        rounds=a.rounds,
        duration=a.duration,
        mode=a.mode,
        message=a.message.encode(),
        ramp=a.ramp,
        hold=a.hold,
        connect_timeout=a.connect_timeout,
        io_timeout=a.io_timeout,
    )
    raise_nofile(cfg.clients + 256)
    report = asyncio.run(run_load(cfg))
    print(json.dumps(report, indent=2) if a.json else format_report(report))
    return 0 if report["errors"] == 0 and report["ok"] == cfg.clients else 1


__all__ = ["LoadConfig", "Results", "Barrier", "run_load", "format_report", "raise_nofile", "main"]

if __name__ == "__main__":
    sys.exit(main())
