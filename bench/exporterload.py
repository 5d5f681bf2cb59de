#!/usr/bin/env python3
"""Load test for ``sockscope exporter``'s HTTP server: parallel scrapes and idle connections.

Runs as root in a private network namespace it makes itself (``unshare
--net``: loopback only, gone when the run ends), starts the given exporter
there on 127.0.0.1:9466, and measures:

1. ``--parallel`` scrapes started at once (a barrier), ``--rounds`` times:
   the time to connect and the time to the whole response, p50/p99/max.
   Each scrape's ``sockscope_scrape_duration_seconds`` is reported too
   ("collection"): the response time less that is the server's share.  (On
   a host with many sockets in other namespaces the kernel walks them all
   for each dump, so the collection can dominate.)
2. ``--idle`` idle TCP connections opened to the exporter (never sending a
   byte), then ``--scrapes`` sequential scrapes while they are held: latency,
   how many of the idle ones the server had closed, the exporter's threads
   and RSS; then after ``--idle-wait`` seconds, how many are closed.

Every loop is bounded by counts and timeouts; the exporter is ended by its
pid.  Standard library only.

Examples::

    sudo python bench/exporterload.py --sockscope .venv/bin/sockscope
    sudo python bench/exporterload.py --sockscope /path/to/other/sockscope --idle 5000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from typing import Any

ADDR = ("127.0.0.1", 9466)
#: sockscope_scrape_duration_seconds of every scrape: the collection's share of the response time
COLLECTION: list[float] = []
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9466\r\nConnection: close\r\n\r\n"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(values, 50) * 1e3, 2), "p99_ms": round(pct(values, 99) * 1e3, 2),
            "max_ms": round(max(values) * 1e3, 2) if values else float("nan"), "n": len(values)}


def scrape(timeout: float = 10.0) -> tuple[float, float, bool]:
    """(connect seconds, total seconds, 200 and a body) of one scrape."""
    t0 = time.perf_counter()
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect(ADDR)
        t1 = time.perf_counter()
        s.sendall(REQUEST)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        t2 = time.perf_counter()
        ok = data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
        m = re.search(rb"^sockscope_scrape_duration_seconds (\S+)", data, re.M)
        if m:
            COLLECTION.append(float(m.group(1)))
        return t1 - t0, t2 - t0, ok and b"sockscope_sockets" in data
    except OSError:
        return float("nan"), time.perf_counter() - t0, False
    finally:
        s.close()


def parallel(n: int, rounds: int) -> dict[str, Any]:
    COLLECTION.clear()
    connect: list[float] = []
    total: list[float] = []
    failed = 0
    def one(barrier: threading.Barrier, out: list[tuple[float, float, bool]]) -> None:
        barrier.wait()
        out.append(scrape())  # list.append is atomic

    for _ in range(rounds):
        barrier = threading.Barrier(n)
        out: list[tuple[float, float, bool]] = []
        threads = [threading.Thread(target=one, args=(barrier, out)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for c, t, ok in out:
            if ok:
                connect.append(c)
                total.append(t)
            else:
                failed += 1
        time.sleep(0.2)
    return {"connect": ms(connect), "response": ms(total), "collection": ms(COLLECTION), "failed": failed}


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("Threads", "VmRSS"):
                out[key] = int(val.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def closed_count(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has closed (EOF or reset pending)."""
    poller = select.poll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    n = 0
    for fd, _ in poller.poll(0):
        try:
            if not by_fd[fd].recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                n += 1
        except BlockingIOError:
            pass
        except OSError:
            n += 1
    return n


def open_idle(n: int, timeout: float, inflight: int = 256) -> tuple[list[socket.socket], int]:
    """Up to ``n`` connections, ``inflight`` connects at a time (non-blocking), within ``timeout`` seconds."""
    poller = select.poll()
    pending: dict[int, socket.socket] = {}
    done: list[socket.socket] = []
    failed = started = 0
    deadline = time.monotonic() + timeout
    while (started < n or pending) and time.monotonic() < deadline:
        while started < n and len(pending) < inflight:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(ADDR)
            pending[s.fileno()] = s
            poller.register(s.fileno(), select.POLLOUT)
            started += 1
        for fd, _ in poller.poll(100):
            s = pending.pop(fd)
            poller.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                done.append(s)
            else:
                failed += 1
                s.close()
    for s in pending.values():  # still in SYN retransmits at the deadline
        s.close()
    return done, failed + len(pending) + (n - started)


def idle(n: int, scrapes: int, wait: float, pid: int) -> dict[str, Any]:
    before = proc_status(pid)
    t0 = time.perf_counter()
    socks, refused = open_idle(n, 120.0)
    opened = time.perf_counter() - t0
    time.sleep(1.0)
    held = proc_status(pid)
    connect: list[float] = []
    total: list[float] = []
    failed = 0
    COLLECTION.clear()
    for _ in range(scrapes):
        c, t, ok = scrape()
        if ok:
            connect.append(c)
            total.append(t)
        else:
            failed += 1
        time.sleep(0.05)
    during = proc_status(pid)
    closed_during = closed_count(socks)
    deadline = time.monotonic() + wait
    closed_after = closed_during
    while time.monotonic() < deadline and closed_after < len(socks):
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        closed_after = closed_count(socks)
    after = proc_status(pid)
    for s in socks:
        s.close()
    return {"opened": len(socks), "not_connected_within_120s": refused, "open_seconds": round(opened, 2),
            "scrapes_connect": ms(connect), "scrapes_response": ms(total), "scrapes_collection": ms(COLLECTION),
            "scrapes_failed": failed,
            "closed_by_server_during": closed_during, f"closed_by_server_after_{wait:g}s": closed_after,
            "exporter_before": before, "exporter_holding": held, "exporter_after_scrapes": during,
            "exporter_at_end": after}


def wait_port(timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(ADDR, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the exporter did not start listening")


def inside(args: argparse.Namespace) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    exp = subprocess.Popen([args.sockscope, "exporter", "--listen", f"{ADDR[0]}:{ADDR[1]}", *args.exporter_arg],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port()
        scrape()  # warm up (imports, first collection)
        indent = None if args.json else 1
        # one JSON object per phase, printed as soon as it is measured
        print(json.dumps({"sockscope": args.sockscope, "exporter_args": args.exporter_arg}), flush=True)
        print(json.dumps({"sequential": parallel(1, 20)}, indent=indent), flush=True)
        print(json.dumps({f"parallel_{args.parallel}": parallel(args.parallel, args.rounds)}, indent=indent),
              flush=True)
        if args.idle:
            print(json.dumps({f"idle_{args.idle}": idle(args.idle, args.scrapes, args.idle_wait, exp.pid)},
                             indent=indent), flush=True)
    finally:
        exp.terminate()
        try:
            exp.wait(10)
        except subprocess.TimeoutExpired:
            exp.kill()
            exp.wait()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockscope", required=True, help="the sockscope executable to test")
    ap.add_argument("--exporter-arg", action="append", default=[], help="extra exporter argument (repeatable)")
    ap.add_argument("--parallel", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--scrapes", type=int, default=20)
    ap.add_argument("--idle-wait", type=float, default=15.0, help="seconds to wait for idle ones to be closed")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not (1 <= args.parallel <= 500 and 1 <= args.rounds <= 50 and 0 <= args.idle <= 20000
            and 1 <= args.scrapes <= 200 and 0 <= args.idle_wait <= 300):
        ap.error("out of the bounded ranges (parallel<=500, rounds<=50, idle<=20000, scrapes<=200, idle-wait<=300)")
    if args.inside:
        return inside(args)
    if os.geteuid() != 0:
        ap.error("needs root (a private network namespace)")
    return subprocess.run(["unshare", "--net", sys.executable, os.path.abspath(__file__), "--inside", *sys.argv[1:]],
                          timeout=900).returncode


if __name__ == "__main__":
    sys.exit(main())
