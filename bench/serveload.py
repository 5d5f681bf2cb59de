#!/usr/bin/env python3
"""Hostile load for ``sockscope serve``: how well-behaved clients fare during an attack.

It makes a private network namespace for itself (``unshare(CLONE_NEWNET)``,
``lo`` up; needs root), starts the server there (``--server``, default
``python -m sockscope``, to which ``serve ...`` is appended), records the
server's fds and RSS, runs one attack from a child process and, meanwhile,
well-behaved clients from the main process, and reports their success rate
and latency (p50/p99), the server's fds and RSS before/during/after, and the
log's growth.  Everything is on loopback inside that namespace, bounded in
count and time (each phase has a deadline; children are ended by pid), and
the run stops by itself.

Scenarios (``--scenario``):

``drip``   ``--drippers`` clients (default 300) at ``--max-conns`` (default 200)
           each send one byte every 2 s, reconnecting when closed.
``flood``  ``--holders`` idle connections (default = --max-conns) fill the
           slots, reconnecting when closed, while ``--flood-tasks`` tasks
           connect and close as fast as they can.
``pipe``   no attack: the server's stderr is a pipe nobody reads.
``none``   no attack at all: the baseline of this machine, right now.
``udp``    a UDP flood (as fast as one process sends) against ``--udp``;
           good clients send one datagram each and wait 200 ms for the reply.

The attack comes from 127.0.0.2 and the good clients from 127.0.0.1;
the attacking process runs at ``--attack-nice`` (default 10), so that on a
small shared machine it measures the server's policy more than the CPU the
load generator takes from it (the server's ``cpu_wait_s`` says how long it
was runnable without a CPU);
``--same-peer`` puts everyone on 127.0.0.1.  Good TCP clients connect, send
a 32-byte line, wait for its echo (2 s at most) and close, ``--good-rate``
times a second for ``--duration`` seconds.

Examples::

    python bench/serveload.py --scenario drip
    python bench/serveload.py --scenario flood --server '/path/to/old/venv/bin/sockscope'
    python bench/serveload.py --scenario udp --serve-args=-q --json

Standard library only (plus :mod:`sockscope.services.stats` for percentiles).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    from sockscope.services.stats import summarize
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from sockscope.services.stats import summarize

CLONE_NEWNET = 0x40000000
GOOD, BAD = "127.0.0.1", "127.0.0.2"
HOST = "127.0.0.1"
LINE = b"0123456789abcdef0123456789abcde\n"
MAX_CHILD_SECONDS = 300


def _enter_private_netns() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        sys.exit(f"serveload: cannot make a network namespace: {os.strerror(err)} (run as root)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def _proc_stats(pid: int) -> dict[str, Any]:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/schedstat") as sched:  # ns on a CPU, ns runnable but waiting for one
        waited = int(sched.read().split()[1]) / 1e9
    return {"fds": fds, "rss_kib": rss, "cpu_s": round(cpu, 2), "cpu_wait_s": round(waited, 2)}


# --- attackers (child process) ---------------------------------------------------


async def _dripper(port: int, source: str, deadline: float, counts: dict[str, int]) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, port, local_addr=(source, 0)), 2.0
            )
        except (OSError, TimeoutError):
            counts["connect_failed"] += 1
            await asyncio.sleep(0.1)
            continue
        counts["connected"] += 1
        try:
            while loop.time() < deadline:
                sent_at = loop.time()
                writer.write(b"d")  # one byte every 2 s
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(16), 2.0) == b"":
                        break  # closed by the server
                    # the echo came back: wait out the rest of the 2 s, still noticing a close
                    left = sent_at + 2.0 - loop.time()
                    if left > 0 and await asyncio.wait_for(reader.read(16), left) == b"":
                        break
                except TimeoutError:
                    pass
        except OSError:
            pass
        counts["closed"] += 1
        writer.close()
        await asyncio.sleep(0.05)


async def _holder(port: int, source: str, deadline: float, counts: dict[str, int]) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, port, local_addr=(source, 0)), 2.0
            )
        except (OSError, TimeoutError):
            await asyncio.sleep(0.1)
            continue
        counts["connected"] += 1
        try:
            await asyncio.wait_for(reader.read(16), max(0.1, deadline - loop.time()))
        except (OSError, TimeoutError):
            pass
        writer.close()
        await asyncio.sleep(0.05)


async def _flooder(port: int, source: str, deadline: float, counts: dict[str, int]) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, port, local_addr=(source, 0)), 2.0
            )
            counts["flood_connects"] += 1
            writer.close()
        except (OSError, TimeoutError):
            counts["flood_failed"] += 1
            await asyncio.sleep(0.01)


async def _attack_tcp(args: argparse.Namespace) -> dict[str, int]:
    counts = {"connected": 0, "closed": 0, "connect_failed": 0, "flood_connects": 0, "flood_failed": 0}
    deadline = asyncio.get_running_loop().time() + args.seconds
    tasks = []
    if args.role == "drip":
        tasks = [_dripper(args.port, args.source, deadline, counts) for _ in range(args.count)]
    else:
        tasks = [_holder(args.port, args.source, deadline, counts) for _ in range(args.count)]
        tasks += [_flooder(args.port, args.source, deadline, counts) for _ in range(args.tasks)]
    await asyncio.gather(*tasks)
    return counts


def _attack_udp(args: argparse.Namespace) -> dict[str, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.source, 0))
    sock.setblocking(False)
    sent = blocked = 0
    deadline = time.monotonic() + args.seconds
    target = (HOST, args.port)
    while time.monotonic() < deadline:
        for _ in range(1000):
            try:
                sock.sendto(b"flood", target)
                sent += 1
            except OSError:
                blocked += 1
        try:
            while sock.recv(64):  # drop whatever came back
                pass
        except OSError:
            pass
    return {"sent": sent, "send_failed": blocked, "rate_per_s": int(sent / args.seconds)}


def _child_main(args: argparse.Namespace) -> int:
    signal.alarm(int(args.seconds) + 30)  # a safety net: never outlive the run
    os.nice(args.nice)
    result = _attack_udp(args) if args.role == "udp" else asyncio.run(_attack_tcp(args))
    print(json.dumps(result), flush=True)
    return 0


# --- good clients (main process) ---------------------------------------------------


async def _good_tcp(
    port: int, source: str, lat: list[float], fails: dict[str, int], connect_lat: list[float]
) -> None:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port, local_addr=(source, 0)), 2.0)
    except (OSError, TimeoutError) as exc:
        fails[f"connect {type(exc).__name__}"] = fails.get(f"connect {type(exc).__name__}", 0) + 1
        return
    connect_lat.append(time.monotonic() - started)
    try:
        writer.write(LINE)
        reply = await asyncio.wait_for(reader.readexactly(len(LINE)), 2.0 - (time.monotonic() - started))
        if reply == LINE:
            lat.append(time.monotonic() - started)
        else:
            fails["wrong reply"] = fails.get("wrong reply", 0) + 1
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        fails[type(exc).__name__] = fails.get(type(exc).__name__, 0) + 1
    finally:
        writer.close()


async def _good_tcp_phase(
    port: int, source: str, rate: float, seconds: float, connect_lat: list[float]
) -> tuple[list[float], dict[str, int]]:
    lat: list[float] = []
    fails: dict[str, int] = {}
    tasks = []
    n = int(rate * seconds)
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(_good_tcp(port, source, lat, fails, connect_lat)))
    await asyncio.gather(*tasks)
    return lat, fails


def _good_udp_phase(port: int, source: str, rate: float, seconds: float) -> tuple[list[float], dict[str, int]]:
    lat: list[float] = []
    fails: dict[str, int] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t0 = time.monotonic()
            sock.sendto(b"good %d" % i, (HOST, port))
            got = False
            while (left := 0.2 - (time.monotonic() - t0)) > 0:
                sock.settimeout(left)
                try:
                    data = sock.recv(64)
                except TimeoutError:
                    break
                if data:  # greet mode: any reply counts once per request
                    got = True
                    break
            if got:
                lat.append(time.monotonic() - t0)
            else:
                fails["no reply in 200 ms"] = fails.get("no reply in 200 ms", 0) + 1
    return lat, fails


# --- orchestration ---------------------------------------------------------------


def _start_server(args: argparse.Namespace, workdir: Path) -> tuple[subprocess.Popen[bytes], Path | None]:
    argv = [*shlex.split(args.server), "serve", "--port", str(args.port), *shlex.split(args.serve_args)]
    if args.scenario == "udp":
        argv += ["--udp", "--mode", "greet"]
    else:
        argv += ["--mode", "echo", "--max-conns", str(args.max_conns)]
    if args.scenario == "pipe":
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # read up to the start-up line, then never again
            line = proc.stderr.readline()
            if not line or b"listening on" in line:
                break
        return proc, None
    log_path = workdir / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 20
    while b"listening on" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"serveload: the server did not start: {log_path.read_text()[-500:]}")
        time.sleep(0.05)
    return proc, log_path


def _start_attack(args: argparse.Namespace, seconds: float) -> subprocess.Popen[bytes] | None:
    source = GOOD if args.same_peer else BAD
    base = [sys.executable, __file__, "--port", str(args.port), "--source", source, "--seconds", f"{seconds:.1f}",
            "--nice", str(args.attack_nice)]
    if args.scenario == "drip":
        return subprocess.Popen([*base, "--role", "drip", "--count", str(args.drippers)], stdout=subprocess.PIPE)
    if args.scenario == "flood":
        holders = args.holders if args.holders is not None else args.max_conns
        role = ["--role", "flood", "--count", str(holders), "--tasks", str(args.flood_tasks)]
        return subprocess.Popen([*base, *role], stdout=subprocess.PIPE)
    if args.scenario == "udp":
        return subprocess.Popen([*base, "--role", "udp"], stdout=subprocess.PIPE)
    return None


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    _enter_private_netns()
    report: dict[str, Any] = {"scenario": args.scenario, "server": args.server, "serve_args": args.serve_args}
    with tempfile.TemporaryDirectory(prefix="serveload-") as tmp:
        server, log_path = _start_server(args, Path(tmp))
        attack = None
        try:
            time.sleep(0.3)
            report["before"] = _proc_stats(server.pid)
            warmup = args.warmup if args.scenario not in ("pipe", "none") else 0.0
            attack = _start_attack(args, warmup + args.duration + 1.0)
            time.sleep(warmup)
            log_start = log_path.stat().st_size if log_path else 0
            phase_start = time.monotonic()
            connect_lat: list[float] = []
            if args.scenario == "udp":
                lat, fails = _good_udp_phase(args.port, GOOD, args.good_rate, args.duration)
            else:
                phase = _good_tcp_phase(args.port, GOOD, args.good_rate, args.duration, connect_lat)
                lat, fails = asyncio.run(phase)
            elapsed = time.monotonic() - phase_start
            report["during"] = _proc_stats(server.pid)
            if log_path:
                grown = log_path.stat().st_size - log_start
                report["log_bytes_per_min"] = int(grown / elapsed * 60)
            if attack is not None:
                out, _ = attack.communicate(timeout=args.duration + 60)
                report["attack"] = json.loads(out or b"{}")
            time.sleep(args.settle)
            report["after"] = _proc_stats(server.pid)
            total = len(lat) + sum(fails.values())
            summary = summarize(lat)
            report["good"] = {
                "sent": total,
                "served": len(lat),
                "success_pct": round(100.0 * len(lat) / total, 2) if total else 0.0,
                "failures": fails,
                **({k: round(v, 2) for k, v in summary.as_ms().items()} if summary else {}),
            }
            connects = summarize(connect_lat)
            if connects:
                report["good"]["connect_p99_ms"] = round(connects.p99 * 1e3, 2)
            report["server_alive"] = server.poll() is None
        finally:
            if attack is not None:
                _stop(attack)
            _stop(server)
            if server.stderr is not None:
                server.stderr.close()
    return report


def _print(report: dict[str, Any]) -> None:
    good = report["good"]
    print(f"scenario {report['scenario']}: server {report['server']} {report['serve_args']}".rstrip())
    print(
        f"  good clients: {good['served']}/{good['sent']} served ({good['success_pct']}%), "
        f"p50 {good.get('p50_ms', float('nan')):.2f} ms, p99 {good.get('p99_ms', float('nan')):.2f} ms, "
        f"failures {good['failures'] or 'none'}"
        + (f"; connect p99 {good['connect_p99_ms']:.2f} ms" if "connect_p99_ms" in good else "")
    )
    for when in ("before", "during", "after"):
        st = report[when]
        print(
            f"  server {when:6}: fds {st['fds']}, RSS {st['rss_kib'] / 1024:.1f} MiB, "
            f"CPU {st['cpu_s']:.2f} s (waited {st['cpu_wait_s']:.2f} s for one)"
        )
    if "log_bytes_per_min" in report:
        print(f"  log growth during the attack: {report['log_bytes_per_min'] / 1e6:.2f} MB/min")
    if "attack" in report:
        print(f"  attack: {report['attack']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", choices=("drip", "flood", "pipe", "udp", "none"), default="drip")
    p.add_argument("--server", default=f"{shlex.quote(sys.executable)} -m sockscope", help="command before 'serve'")
    p.add_argument("--serve-args", default="", help="more arguments for serve (e.g. -q)")
    p.add_argument("--port", type=int, default=12345)
    p.add_argument("--max-conns", type=int, default=200)
    p.add_argument("--drippers", type=int, default=300)
    p.add_argument("--holders", type=int, help="flood: idle holders (default --max-conns)")
    p.add_argument("--flood-tasks", type=int, default=50)
    p.add_argument("--good-rate", type=float, default=50.0, help="good clients per second (default 50)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of good clients (default 10)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of attack before measuring (default 3)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds after the attack before 'after' (default 3)")
    p.add_argument("--same-peer", action="store_true", help="attack from the good clients' address too")
    p.add_argument(
        "--attack-nice",
        type=int,
        default=10,
        help="nice value of the attacking process (default 10: on a small shared machine the attacker "
        "should not win by taking the server's CPU; 0 to let it)",
    )
    p.add_argument("--json", action="store_true")
    # child roles (internal)
    p.add_argument("--role", choices=("drip", "flood", "udp"), help=argparse.SUPPRESS)
    p.add_argument("--source", default=BAD, help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--tasks", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role:
        args.seconds = min(args.seconds, MAX_CHILD_SECONDS)
        return _child_main(args)
    if not 0 < args.duration <= MAX_CHILD_SECONDS - 60 or args.drippers > 5000 or args.flood_tasks > 500:
        p.error("bounded run: --duration in (0, 240], --drippers <= 5000, --flood-tasks <= 500")
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
