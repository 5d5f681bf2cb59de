"""The exporter's HTTP server under many and hostile clients, and its listen flags.

Each test starts ``sockscope exporter`` in a fresh network namespace (the
``Holder``/``Served`` helpers of test_exporter.py) and talks to it from a
client process in the same namespace, on loopback only.  The checks are on
mechanisms (a real backlog, a connection cap, deadlines that close idle and
dripping clients, bounded threads), not on speed: bench/exporterload.py
measures that.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from test_exporter import EXPORTER, Holder, Served, fetch, parse_exposition, value

#: Inside the netns: hold N idle connections (and D drippers sending a byte every 0.2 s),
#: print READY, then at stdin EOF (or at once with --wait) report how many the server closed, and when.
HOLD = r'''
import json, select, socket, sys, time
host, port, n, drippers, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
t0 = time.monotonic()
idle = []
for _ in range(n):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    s.connect((host, port)); idle.append(s)
drip = []
for _ in range(drippers):
    s = socket.create_connection((host, port)); drip.append(s)
print("READY", flush=True)
closed = {}
payload = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 10000
sent = 0
deadline = time.monotonic() + wait
while time.monotonic() < deadline or wait == 0:
    if wait == 0 and select.select([sys.stdin], [], [], 0)[0]:
        break
    for s in drip:
        if id(s) not in closed:
            try:
                s.send(payload[sent % len(payload):sent % len(payload) + 1])
            except OSError:
                closed[id(s)] = round(time.monotonic() - t0, 2)
    sent += 1
    ready = select.select([s for s in idle + drip if id(s) not in closed], [], [], 0.2)[0]
    for s in ready:
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            closed[id(s)] = round(time.monotonic() - t0, 2)
    if len(closed) == n + drippers:
        break
print(json.dumps({"idle_closed": sum(id(s) in closed for s in idle), "drip_closed": sum(id(s) in closed for s in drip),
                  "times": sorted(closed.values())}), flush=True)
'''


@pytest.fixture
def holder() -> Iterator[Holder]:
    """An empty fresh netns (with a holder process holding nothing)."""
    h = Holder({})
    try:
        yield h
    finally:
        h.close()


def hold(h: Holder, port: int, n: int, drippers: int = 0, wait: float = 0,
         host: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    return h.netns.popen([sys.executable, "-c", HOLD, host, str(port), str(n), str(drippers), str(wait)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def read_json_line(p: subprocess.Popen[bytes], timeout: float = 60) -> Any:
    from nsutil import read_line

    return json.loads(read_line(p, timeout))


def end_clients(p: subprocess.Popen[bytes], timeout: float = 30) -> Any:
    """Close a client script's stdin (its signal to report and end), read its JSON line, reap it."""
    assert p.stdin is not None
    p.stdin.close()
    try:
        return read_json_line(p, timeout)
    finally:
        p.wait()
        if p.stdout:
            p.stdout.close()


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1))  # type: ignore[union-attr]


def server_conns(h: Holder, port: int) -> int:
    r = h.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"])
    return len(r.stdout.splitlines())


def test_listen_backlog_is_real(holder: Holder) -> None:
    h = holder
    srv = Served(h.netns)
    try:
        r = h.run(["ss", "-Hltn", "( sport = :9466 )"])
        (row,) = r.stdout.splitlines()
        assert row.split()[2] == "1024", row  # Send-Q of a listener: its backlog (was 5)
    finally:
        assert srv.stop() == 0, srv.stderr


def test_idle_and_dripping_clients_are_cut_off_at_the_header_deadline(holder: Holder) -> None:
    h = holder
    srv = Served(h.netns, "--web.header-timeout", "1")
    p = hold(h, 9466, 20, drippers=3, wait=15)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == b"READY"
        got = read_json_line(p, 30)
        # every one closed by the server: idle ones and those dripping a byte every 0.2 s alike
        assert (got["idle_closed"], got["drip_closed"]) == (20, 3), got
        assert max(got["times"]) < 10, got
    finally:
        p.kill()
        p.wait()
        if p.stdout:
            p.stdout.close()
        if p.stdin:
            p.stdin.close()
        assert srv.stop() == 0, srv.stderr
    assert "Traceback" not in srv.stderr


def test_connection_cap_keeps_scrapes_served_with_few_threads(holder: Holder) -> None:
    h = holder
    srv = Served(h.netns, "--web.max-connections", "50")
    p = hold(h, 9466, 300)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == b"READY"
        time.sleep(0.5)  # let the server accept (and evict) what the backlog holds
        assert server_conns(h, 9466) <= 50 + 50  # served, and queued (unread) for a slot: as many at most
        assert threads_of(srv.proc.pid) <= 6  # the loop, two render workers, one for bcrypt, spares
        for status, _, body in fetch(h.netns, srv.url, 10):
            assert status == 200
            _, samples = parse_exposition(body)
            assert value(samples, "sockscope_scrape_success") == 1
        assert threads_of(srv.proc.pid) <= 6
        assert server_conns(h, 9466) <= 50
    finally:
        out = end_clients(p)
        assert srv.stop() == 0, srv.stderr
    assert out["idle_closed"] >= 250  # evicted to make room, not left to pile up


#: Inside the netns: N connections that pipeline GETs and never read a response (a small receive buffer),
#: sending until the server takes no more for 1 s (or 8 MB each); print READY, and at stdin EOF how many
#: the server has closed.
NO_READ = r'''
import json, select, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
chunk = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
socks = []
for _ in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (before connect: the window it offers)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    socks.append([s, 0])
last = time.monotonic()
while time.monotonic() - last < 1:
    for e in socks:
        if e[1] < 8 << 20:
            try:
                e[1] += e[0].send(chunk[e[1] % len(chunk):])
                last = time.monotonic()
            except BlockingIOError:
                pass
    time.sleep(0.01)
print("READY", flush=True)
sys.stdin.read()
p = select.poll()
for s, _ in socks:
    p.register(s, select.POLLRDHUP)  # (and POLLERR, POLLHUP: always)
print(json.dumps({"closed": len(p.poll(0))}), flush=True)
'''

#: Inside the netns: GET the URL until a 200 (or 15 s); prints what each try got and the seconds it took.
SCRAPE_UNTIL_200 = r'''
import json, sys, time, urllib.request
t0, tries = time.monotonic(), []
while time.monotonic() - t0 < 15 and 200 not in tries:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
            tries.append(r.status if r.read().startswith(b"# HELP ") else "no exposition")
    except Exception as e:
        tries.append(type(getattr(e, "reason", e)).__name__)
        time.sleep(0.2)
print(json.dumps({"tries": tries, "seconds": round(time.monotonic() - t0, 2)}))
'''


def stuck_responses(h: Holder, port: int) -> dict[str, tuple[int, int]]:
    """The server's connections on ``port`` with requests it has not read and responses not taken:
    peer -> (Recv-Q, Send-Q)."""
    r = h.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"])
    rows = [line.split() for line in r.stdout.splitlines()]
    return {row[3]: (int(row[0]), int(row[1])) for row in rows if int(row[0]) > 0 and int(row[1]) > 0}


def test_clients_that_do_not_read_cannot_lock_the_scrapers_out(holder: Holder) -> None:
    """A connection whose client pipelines requests and never reads waits in its write for
    write_timeout (30 s).  It counted as busy, so max_connections of them had every new connection
    closed at once, scrapers too; stuck WRITE_STALL_GRACE (1 s), it is now evicted as an idle one is."""
    h = holder
    srv = Served(h.netns, "--web.max-connections", "4")
    p = h.netns.popen([sys.executable, "-c", NO_READ, "9466", "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        from nsutil import read_line

        assert read_line(p, 60).strip() == "READY"
        # every slot is held by a connection whose server stopped reading requests, its responses stuck
        deadline, before = time.monotonic() + 30, {}
        while True:
            now = stuck_responses(h, 9466)
            if len(now) == 4 and now == before:
                break
            assert time.monotonic() < deadline, now
            before = now
            time.sleep(0.5)
        for _ in range(2):
            r = h.run([sys.executable, "-c", SCRAPE_UNTIL_200, srv.url], timeout=60)
            got = json.loads(r.stdout)
            assert got["tries"][-1] == 200, got  # (before: closed at once, for write_timeout)
        assert server_conns(h, 9466) <= 4
    finally:
        out = end_clients(p)
        assert srv.stop() == 0, srv.stderr
    assert out["closed"] >= 1  # evicted to make room
    assert "Traceback" not in srv.stderr


#: Inside the netns: a server with the limits given (JSON) and a collector the script holds, so that
#: scrapes waiting for it keep their connections busy; then one scenario, printing what each client got
#: (a status line, "" when closed without an answer, and when, in seconds since the start) as JSON.
#: Clients connect from 127.0.0.1 (the scraper) unless bound to FLOODER (another peer: lo is 127/8).
SLOTS = r'''
import asyncio, json, select, socket, sys, threading, time
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from sockscope.exporter_web import Address, Limits, Server, bind
scenario, limits = sys.argv[1], json.loads(sys.argv[2])
class Held:
    def __init__(self):
        self.entered, self.go = threading.Semaphore(0), threading.Event()
    def collect(self):
        self.entered.release()
        self.go.wait(120)
        yield GaugeMetricFamily("held", "Held.", value=1)
held, logs = Held(), []
held.go.set()  # (held only from busy() to let_go())
reg = CollectorRegistry(auto_describe=False)
reg.register(held)
srv = Server([bind(Address("127.0.0.1", 9466), 64)], reg, limits=Limits(**limits), log=logs.append)
threading.Thread(target=srv.run, daemon=True).start()
GET = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
GZ = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
SCRAPER, FLOODER = "127.0.0.1", "127.0.0.2"
T0 = time.monotonic()
def now():
    return round(time.monotonic() - T0, 2)
def connect(head=b"", src=SCRAPER):
    s = socket.create_connection(("127.0.0.1", 9466), timeout=60, source_address=(src, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # (close: a reset)
    if head:
        s.sendall(head)
    return s
def quiet(s, seconds):
    """Nothing comes on s (no byte, no close) for that long."""
    return not select.select([s], [], [], seconds)[0]
def answer(s, timeout=60):
    data = b""
    s.settimeout(timeout)
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return ["(still open)", now()]
    return [data.split(b"\r\n", 1)[0].decode(), now()]
def busy(src=SCRAPER):
    """Two scrapes waiting for two renders (two encodings: two render workers): both slots busy."""
    while held.entered.acquire(blocking=False):
        pass
    held.go.clear()
    socks = [connect(GET, src), connect(GZ, src)]
    for _ in socks:
        assert held.entered.acquire(timeout=60), "no render started"
    return socks
def let_go(socks):
    held.go.set()
    return [answer(s)[0] for s in socks]
def counts():
    """{client address: [served, queued]} as the server holds them now (read in its loop); and whether
    its own counts by peer say the same."""
    async def read():
        got = {}
        for i, group in enumerate((srv.slots.conns, srv.slots.queue)):
            for c in group:
                got.setdefault(c.writer.get_extra_info("peername")[0], [0, 0])[i] += 1
        if not hasattr(srv.slots, "held"):
            return got, True
        served = srv.slots.served
        peers = {peer: [served[peer], n - served[peer]] for peer, n in srv.slots.held.items()}
        return got, peers == got and set(served) <= set(peers)
    return asyncio.run_coroutine_threadsafe(read(), server_loop()).result(10)
def server_loop():
    """The server's event loop, once its thread has made it (a client can connect before: the socket
    listens from bind() on)."""
    for _ in range(400):
        if srv._loop is not None:
            return srv._loop
        time.sleep(0.025)
    raise SystemExit("the server's loop did not start in 10 s")
exact = []
def until(want):
    """The server comes to hold ``want`` ({client address: [served, queued]}) within 10 s: True, or what
    it held last (and every look finds its counts by peer exact)."""
    for _ in range(200):
        got, ok = counts()
        exact.append(ok)
        if got == want:
            return True
        time.sleep(0.05)
    return got
def settled():
    """The server's bookkeeping comes to hold no connection, served or queued (every client gone)."""
    async def held_conns():
        return (len(srv.slots.conns) + len(srv.slots.queue) + len(getattr(srv.slots, "held", ()))
                + len(getattr(srv.slots, "served", ())))
    for _ in range(200):
        if asyncio.run_coroutine_threadsafe(held_conns(), server_loop()).result(10) == 0:
            return True
        time.sleep(0.05)
    return False
out = {}
if scenario == "queue":
    b = busy()
    q1, q2 = connect(GET), connect(GET)  # queued: both slots busy
    t = now()
    out["full"] = [t, answer(connect(GET), 20)]  # the queue full, no connection waiting for a head
    out["quiet"] = [quiet(q1, 1), quiet(q2, 0)]  # unread, unanswered
    out["busy"] = let_go(b)
    out["queued"] = [answer(q1)[0], answer(q2)[0]]  # given the slots as they freed: served in turn
    b = busy()
    gone = connect()
    gone.close()  # queued, then its client went away (a reset)
    q3 = connect(GET)
    out["gone"] = let_go(b) + [answer(q3)[0]]
elif scenario == "deadline":
    b = busy()
    t = now()
    idle, sent = connect(), connect(GET)  # queued for longer than the head's deadline
    out["queued"] = [t, answer(idle, 30), answer(sent, 30)]
    out["busy"] = let_go(b)
    b = busy()
    t = now()
    late = connect()  # queued for most of its deadline, then given a slot: the rest for its head
    time.sleep(limits["header_timeout"] - 1)
    out["busy2"] = let_go(b)
    out["late"] = [t, answer(late, 30)]
elif scenario == "grace":
    t = now()
    a = connect()  # the slot, and nothing sent
    b = connect(GET)  # at the cap, a within its grace: b waits in the queue
    out["quiet"] = [quiet(a, 1), quiet(b, 0)]
    out["a"], out["b"] = [t, answer(a, 30)], answer(b)  # a evicted once its grace is over, for b
    c = connect()
    d = connect(GET)  # queued: c is within its grace
    time.sleep(0.5)
    c.sendall(GET)  # c's head comes within its grace: c is served, d once c is done
    out["cd"] = [answer(c)[0], answer(d)[0]]
elif scenario == "full":
    t = now()
    a, b = connect(), connect()  # the slot (within its grace all along) and the queue, idle
    c = connect(GET)  # the queue full: a gives way, grace or not; b gets the slot, c queues
    d = connect(GET)  # and again: b gives way, c gets the slot (and is served), d queues
    out["ab"] = [t, answer(a, 30), answer(b, 30)]
    out["cd"] = [answer(c)[0], answer(d)[0]]
elif scenario == "flood":
    f = [connect(src=FLOODER) for _ in range(5)]  # both slots (within their grace all along) and the queue
    out["flooder"] = until({FLOODER: [2, 3]})
    t = now()
    s = connect()  # the scraper at the full queue, its head not sent yet
    out["displaced"] = [t, answer(f[4], 20)]  # the flooder's connection queued last: closed, for it
    out["queued"] = until({FLOODER: [2, 2], SCRAPER: [0, 1]})
    f[0].close()  # a slot frees: the scraper's, ahead of the flooder's two queued before it
    out["seated"] = until({FLOODER: [1, 2], SCRAPER: [1, 0]})
    more = [connect(src=FLOODER) for _ in range(4)]  # the queue full again, then three take a slot each
    out["victims"] = [answer(c, 20)[0] for c in f[1:4]]  # the flooder's own, not the scraper's
    s.sendall(GET)
    out["scraper"] = answer(s, 20)
    for c in f + more:
        c.close()
elif scenario == "displace":
    b = busy(FLOODER)  # both slots busy: the flooder's scrapes wait for their render
    f = [connect(src=FLOODER) for _ in range(2)]  # the queue full of the flooder's, idle
    out["flooder"] = until({FLOODER: [2, 2]})
    t = now()
    s = connect(GET)  # the scraper at the full queue, no connection waiting for a head
    out["displaced"] = [t, answer(f[1], 20)]  # the flooder's connection queued last: closed, for it
    out["queued"] = until({FLOODER: [2, 1], SCRAPER: [0, 1]})
    t = now()
    out["refused"] = [t, answer(connect(src=FLOODER), 20)]  # the flooder's newcomer: closed at once, as ever
    out["busy"] = let_go(b)
    out["scraper"] = answer(s)[0]
    f[0].close()
out["after"] = [answer(connect(GET))[0] for _ in range(3)]
out["settled"] = settled()
out["exact"] = exact
out["logs"] = logs
srv.stop()
print(json.dumps(out))
'''

OK = "HTTP/1.1 200 OK"


def slots_scenario(h: Holder, scenario: str, **limits: Any) -> Any:
    """Run one scenario of :data:`SLOTS` in the netns; every one ends with the server still serving
    and its bookkeeping empty once the clients are gone."""
    r = h.run([sys.executable, "-c", SLOTS, scenario, json.dumps(limits)], timeout=180)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["after"] == [OK] * 3, out
    assert out["settled"] is True and out["logs"] == [], out
    return out


def test_at_the_cap_a_connection_waits_in_the_queue_for_a_slot(holder: Holder) -> None:
    """Every connection busy (scrapes waiting for their render), a new one is no longer closed at
    once: it waits, unread, in the queue, and is served when a slot frees.  Only with the queue full
    (as many as max_connections) is a newcomer closed at once.  A queued connection whose client went
    away is closed when its turn comes, the slot going to the next."""
    out = slots_scenario(holder, "queue", max_connections=2, max_queued=2, header_timeout=30, max_requests=0)
    t, (status, closed) = out["full"]
    assert status == "" and closed - t < 10, out  # closed at once, not at the 30 s deadline
    assert out["quiet"] == [True, True], out
    assert out["busy"] == [OK, OK] and out["queued"] == [OK, OK], out
    assert out["gone"] == [OK, OK, OK], out


def test_a_queued_connection_has_its_head_deadline_from_its_arrival(holder: Holder) -> None:
    """A queued connection is closed at its head's deadline (header_timeout from its arrival), whether
    it has sent its head or not; given a slot late, it has only what is left of it (the queue gives a
    dripper no more time)."""
    out = slots_scenario(holder, "deadline", max_connections=2, max_queued=2, header_timeout=4, max_requests=0)
    t, idle, sent = out["queued"]
    for status, closed in (idle, sent):
        assert status == "" and closed - t >= 4 - 0.1, out  # closed unanswered, at the deadline, not before
    assert out["busy"] == [OK, OK] and out["busy2"] == [OK, OK], out
    t, (status, closed) = out["late"]
    # given its slot 3 s after it came: closed 1 s later, at 4 s (from its slot's start it would be 7 s)
    assert status == "" and 4 - 0.1 <= closed - t < 6, out


def test_a_connection_just_admitted_is_not_evicted_within_its_grace(holder: Holder) -> None:
    """A connection given its slot has admit_grace to send its head before a newcomer may take the
    slot (here 3 s; the CLI's is ADMIT_GRACE): the newcomer waits in the queue meanwhile.  One that has
    sent nothing when its grace is over is evicted for the newcomer; one whose head comes within it
    is served, and the newcomer after it."""
    out = slots_scenario(holder, "grace", max_connections=1, max_queued=1, admit_grace=3, header_timeout=30)
    assert out["quiet"] == [True, True], out  # (before: the first closed at once for the second)
    t, (status, closed) = out["a"]
    assert status == "" and closed - t >= 3 - 0.1, out  # evicted, not before its grace was over
    assert out["b"][0] == OK and out["b"][1] >= closed, out
    assert out["cd"] == [OK, OK], out


def test_with_the_queue_full_idle_connections_give_way_within_their_grace(holder: Holder) -> None:
    """With the queue full, a newcomer takes the slot of the connection waiting longest for its first
    head even within its grace (the first queued gets the slot, the newcomer queues): idle clients
    connecting faster than graces run out cannot have every scraper closed at once."""
    out = slots_scenario(holder, "full", max_connections=1, max_queued=1, admit_grace=60, header_timeout=60)
    t, a, b = out["ab"]
    assert [a[0], b[0]] == ["", ""] and max(a[1], b[1]) - t < 20, out  # evicted, well within their 60 s
    assert out["cd"] == [OK, OK], out


def test_a_flood_from_another_address_cannot_keep_a_scraper_out(holder: Holder) -> None:
    """A client from 127.0.0.2 holds both slots (its connections within their grace all along) and the
    whole queue with idle connections.  A scraper from 127.0.0.1 arriving at the full queue takes the
    place of the flooder's connection queued last; the next slot that frees is its, ahead of the
    flooder's connections queued before it; and the flooder's next newcomers, the queue full again,
    each take the slot of one of the flooder's own connections, not the scraper's, though it has not
    sent its head yet and has waited for it longer (before: closed at the full queue, or taken)."""
    out = slots_scenario(holder, "flood", max_connections=2, max_queued=3, admit_grace=60, header_timeout=60)
    assert out["flooder"] is True, out
    t, (status, closed) = out["displaced"]
    assert status == "" and closed - t < 10, out  # closed at once, not at its 60 s deadline
    assert out["queued"] is True and out["seated"] is True, out
    assert out["victims"] == ["", "", ""], out
    assert out["scraper"][0] == OK, out
    assert out["exact"] and all(out["exact"]), out  # the counts by peer, at every look


def test_a_scraper_at_a_queue_full_of_another_addresss_takes_a_place_in_it(holder: Holder) -> None:
    """Both slots busy and the queue full, all of 127.0.0.2's: a scraper from 127.0.0.1 is not closed at
    once (no connection waits for a head) but takes the place of 127.0.0.2's connection queued last,
    which is closed, and is served when a slot frees.  A newcomer of 127.0.0.2 is still closed at once:
    it holds as many queued as the scraper's address."""
    out = slots_scenario(holder, "displace", max_connections=2, max_queued=2, header_timeout=30, max_requests=0)
    assert out["flooder"] is True, out
    t, (status, closed) = out["displaced"]
    assert status == "" and closed - t < 10, out
    assert out["queued"] is True, out
    t, (status, closed) = out["refused"]
    assert status == "" and closed - t < 10, out
    assert out["busy"] == [OK, OK] and out["scraper"] == OK, out
    assert out["exact"] and all(out["exact"]), out


#: Inside the netns: keep-alive, methods, bodies and oversized heads, with http.client and raw sockets.
PROTOCOL = r'''
import http.client, json, socket
out = {}
c = http.client.HTTPConnection("127.0.0.1", 9466, timeout=10)
c.request("GET", "/metrics"); r = c.getresponse(); body = r.read()
c.request("GET", "/metrics?x=1"); r2 = c.getresponse(); r2.read()
out["keepalive"] = [r.status, r2.status, r.getheader("Connection"), len(body) > 1000]
c.request("HEAD", "/metrics"); r = c.getresponse(); out["head"] = [r.status, r.read().decode()]
c.request("POST", "/metrics", body=b""); r = c.getresponse(); out["post"] = [r.status, r.getheader("Allow")]; r.read()
c.close()
def raw(data):
    s = socket.create_connection(("127.0.0.1", 9466), timeout=10)
    try:
        s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got.split(b"\r\n", 1)[0].decode()
            got += chunk
    except OSError as e:
        return type(e).__name__
out["body"] = raw(b"GET /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
out["huge"] = raw(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 40000 + b"\r\n\r\n")
out["garbage"] = raw(b"\x16\x03\x01 hello\r\n\r\n")
out["http2"] = raw(b"GET / HTTP/2.0\r\n\r\n")
print(json.dumps(out))
'''


def test_http_keep_alive_methods_and_bad_requests(holder: Holder) -> None:
    h = holder
    srv = Served(h.netns)
    try:
        r = h.run([sys.executable, "-c", PROTOCOL])
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["keepalive"] == [200, 200, "keep-alive", True]
        assert out["head"] == [200, ""]
        assert out["post"] == [405, "GET, HEAD"]
        assert out["body"] == "HTTP/1.1 400 Bad Request"
        assert out["huge"] in ("", "ConnectionResetError")  # over 16 KiB of head: cut off
        assert out["garbage"] == "HTTP/1.1 400 Bad Request"
        assert out["http2"] == "HTTP/1.1 505 HTTP Version Not Supported"
        (status, _, _), = fetch(h.netns, srv.url)  # still serving
        assert status == 200
    finally:
        assert srv.stop() == 0, srv.stderr
    assert "Traceback" not in srv.stderr


def test_every_listen_address_is_served(holder: Holder) -> None:
    h = holder
    srv = Served(h.netns, "--web.listen-address", ":9466", "--listen", "127.0.0.1:9467",
                 "--web.listen-address", "[::1]:9468", "--web.telemetry-path", "/m")
    try:
        banner = srv.banner + srv.read_err(10) + srv.read_err(10)
        assert banner.splitlines() == ["sockscope exporter: serving http://[::]:9466/m",
                                       "sockscope exporter: serving http://127.0.0.1:9467/m",
                                       "sockscope exporter: serving http://[::1]:9468/m"]
        # :PORT is every address of the host, IPv4 and IPv6, as node_exporter's
        for url in ("http://127.0.0.1:9466/m", "http://[::1]:9466/m", "http://127.0.0.1:9467/m",
                    "http://[::1]:9468/m"):
            (status, ctype, _), = fetch(h.netns, url)
            assert status == 200 and ctype.startswith("text/plain"), url
        (status, _, body), = fetch(h.netns, "http://127.0.0.1:9467/metrics")
        assert status == 404 and "/m" in body
    finally:
        assert srv.stop() == 0, srv.stderr


def test_listen_errors_are_one_line(holder: Holder) -> None:
    h = holder
    r = h.run([*EXPORTER, "--web.listen-address", "127.0.0.1:9466", "--listen", "127.0.0.1:9466"])
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "sockscope: cannot listen on 127.0.0.1:9466: Address already in use\n"
    r = h.run([*EXPORTER, "--web.listen-address", "a..b:9466"])  # not a host name: was a traceback
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "sockscope: cannot listen on a..b:9466: not a host name (an empty label)\n"
    for argv, msg in ((["--web.listen-address", "[]:1"], "empty brackets"),
                      (["--web.listen-address", ":99999"], "port out of range: 99999"),
                      (["--web.listen-address", "x:\x1b[31m"], "not a port number: '\\x1b[31m'"),
                      (["--web.max-connections", "0"], "must be at least 1"),
                      (["--web.telemetry-path", "metrics"], "not a URL path"),
                      (["--nope"], "unrecognized arguments: --nope")):
        r = h.run([*EXPORTER, *argv])
        assert r.returncode == 255, (argv, r.stderr)  # usage errors exit as the listing's do (was 2)
        assert r.stderr.count("\n") == 1 and msg in r.stderr and "\x1b" not in r.stderr, r.stderr


@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_a_signal_stops_it_cleanly(holder: Holder, sig: str) -> None:
    import signal

    h = holder
    srv = Served(h.netns)
    p = hold(h, 9466, 5)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == b"READY"
        srv.proc.send_signal(getattr(signal, f"SIG{sig}"))
        assert srv.proc.wait(timeout=10) == 0
        assert server_conns(h, 9466) == 0
    finally:
        end_clients(p)
        srv.stop()
    assert srv.stderr == ""


#: Inside the netns: the server with a collector that raises answers 500, logs one line, keeps serving.
FAILING = r'''
import json, threading, urllib.request, urllib.error
from prometheus_client import CollectorRegistry
from sockscope.exporter_web import Address, Server, bind
class Bad:
    def collect(self):
        raise RuntimeError("boom")
reg = CollectorRegistry(auto_describe=False)
reg.register(Bad())
logs = []
srv = Server([bind(Address("127.0.0.1", 9466), 16)], reg, log=logs.append)
t = threading.Thread(target=srv.run)
t.start()
out = []
for path in ("/metrics", "/metrics", "/"):
    for _ in range(100):
        try:
            with urllib.request.urlopen("http://127.0.0.1:9466" + path, timeout=10) as r:
                out.append(r.status)
            break
        except urllib.error.HTTPError as e:
            out.append(e.code)
            break
        except urllib.error.URLError:
            import time; time.sleep(0.05)
srv.stop()
t.join(10)
print(json.dumps({"status": out, "logs": logs, "alive": t.is_alive()}))
'''


def test_a_failing_render_is_a_500_and_one_log_line(holder: Holder) -> None:
    r = holder.run([sys.executable, "-c", FAILING])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == [500, 500, 200]
    assert not out["alive"]
    assert len(out["logs"]) == 2
    assert all(line.startswith("http: rendering the metrics failed: RuntimeError: boom") for line in out["logs"])


def test_log_lines_are_one_line_with_control_characters_escaped(holder: Holder, tmp_path: Path) -> None:
    odd = tmp_path / "a\nb\x1b[31m"
    r = holder.run([*EXPORTER, "--once", "--proc", str(odd)])
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "\x1b" not in r.stderr, r.stderr
    want = f"sockscope: scrape error: summary: cannot read {tmp_path}/a\\x0ab\\x1b[31m/thread-self/net/sockstat\n"
    assert r.stderr == want


# --------------------------------------------------------------------------------------------
# --web.max-requests: scrapes served at once (promhttp's MaxRequestsInFlight)

#: Inside the netns, driven by lines on stdin, one JSON line out for each:
#: ``hold K``: K more GET /metrics at once whose clients never read (a 4 KiB receive window): once the
#: first bytes of each come, [status, bytes of the response, bytes the kernel holds of it (both ends,
#: once still)] for each;
#: ``ask PATH``: a GET on the one keep-alive connection kept for every ask: [status, headers, the body's
#: first 300 characters, its local port];
#: ``until200 PATH``: asks until a 200 (or 60 s): the statuses;
#: ``drop``: the held connections reset (their responses untaken).
IN_FLIGHT = r'''
import http.client, json, select, socket, subprocess, sys, time
port = int(sys.argv[1])
held, asker = [], http.client.HTTPConnection("127.0.0.1", port, timeout=30)
def in_kernel(lports):
    """Bytes queued in the kernel (Recv-Q + Send-Q, both ends) per client port of ``lports``."""
    r = subprocess.run(["ss", "-Htn", "state", "established"], capture_output=True, text=True, check=True)
    out = dict.fromkeys(lports, 0)
    for row in r.stdout.splitlines():
        q, local, peer = int(row.split()[0]) + int(row.split()[1]), row.split()[2], row.split()[3]
        for addr in (local, peer):
            if int(addr.rpartition(":")[2]) in out and addr != f"127.0.0.1:{port}":
                out[int(addr.rpartition(":")[2])] += q
    return out
def hold(k):
    socks = []
    for _ in range(k):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (before connect: the window it offers)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # close: a reset
        s.connect(("127.0.0.1", port))
        socks.append(s)
    for s in socks:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    heads = []
    for s in socks:
        if not select.select([s], [], [], 60)[0]:
            sys.exit("hold: no answer in 60 s")
        heads.append(s.recv(4096, socket.MSG_PEEK).partition(b"\r\n\r\n")[0].decode())
        held.append(s)
    lports, before = [s.getsockname()[1] for s in socks], None
    while (now := in_kernel(lports)) != before:  # (until the kernel takes no more)
        before = now
        time.sleep(0.2)
    return [[int(head.split()[1]), len(head) + 4 + int(head.lower().partition("content-length: ")[2].split("\r\n")[0]),
             now[lport]] for head, lport in zip(heads, lports)]
def ask(path):
    asker.request("GET", path)
    r = asker.getresponse()
    body = r.read().decode()
    return [r.status, dict(r.getheaders()), body[:300], asker.sock.getsockname()[1]]
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "hold":
        out = hold(int(arg))
    elif cmd == "ask":
        out = ask(arg)
    elif cmd == "until200":
        out, t0 = [], time.monotonic()
        while 200 not in out and time.monotonic() - t0 < 60:
            out.append(ask(arg)[0])
            time.sleep(0.05)
    else:
        for s in held:
            s.close()
        out = len(held)
    print(json.dumps(out), flush=True)
'''

#: asyncio's high-water mark: a write leaving more than this unsent waits (its scrape stays in flight)
WRITE_HIGH_WATER = 64 * 1024


@pytest.fixture
def big() -> Iterator[Holder]:
    """A netns with 3,000 TCP listeners (an exposition of about 460 KB with ``--max-listeners 3000``) and
    small TCP send buffers (64 KiB at most), so that a client that does not read leaves most of a
    scrape's response unsent in the exporter: its scrape stays in flight until it goes or reads."""
    h = Holder({"bulk": [30000, 3000, 5]})
    try:
        r = h.run(["sysctl", "-qw", "net.ipv4.tcp_wmem=4096 16384 65536"])  # (this namespace's own)
        assert r.returncode == 0, r.stderr
        yield h
    finally:
        h.close()


class InFlight:
    """``IN_FLIGHT`` running in the netns; ``do(line)`` returns its JSON answer."""

    def __init__(self, h: Holder, port: int = 9466) -> None:
        self.proc = h.netns.popen([sys.executable, "-c", IN_FLIGHT, str(port)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)

    def do(self, line: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return read_json_line(self.proc, 90)

    def hold(self, k: int = 1) -> None:
        got = self.do(f"hold {k}")
        assert len(got) == k, got
        for status, length, in_kernel in got:
            # most of each response waits in the exporter: its write waits, so its scrape is in flight
            assert status == 200 and length - in_kernel > 2 * WRITE_HIGH_WATER, (length, in_kernel)

    def close(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        self.proc.wait(timeout=30)


def test_max_requests_refuses_a_scrape_past_the_limit_with_promhttps_503(big: Holder) -> None:
    """With N scrapes in flight (here: responses their clients do not take), one more scrape gets
    promhttp's 503 at once, on a connection kept alive; the link page and 404s do not count; once
    the held clients go, their places are given back and scrapes get 200 again."""
    srv = Served(big.netns, "--web.max-requests", "2", "--max-listeners", "3000")
    c = InFlight(big)
    try:
        c.hold()
        status, _, body, port = c.do("ask /metrics")  # one in flight: under the limit
        assert status == 200 and body.startswith("# HELP ")
        c.hold()
        assert c.do("ask /")[0] == 200
        assert c.do("ask /nope")[0] == 404
        status, headers, body, port2 = c.do("ask /metrics")
        assert status == 503
        assert body == "Limit of concurrent requests reached (2), try again later.\n"
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Connection"] == "keep-alive" and port2 == port  # the connection kept, as for a 404
        assert c.do("drop") == 2
        statuses = c.do("until200 /metrics")  # (the exporter sees the resets in its own time)
        assert statuses[-1] == 200 and set(statuses[:-1]) <= {503}, statuses
        assert c.do("ask /metrics")[3] == port  # still the same connection
        for status, _, body in fetch(big.netns, srv.url, 2):
            assert status == 200 and body.startswith("# HELP ")
    finally:
        c.close()
        assert srv.stop() == 0, srv.stderr
    assert "Traceback" not in srv.stderr


def test_max_requests_0_is_no_limit(big: Holder) -> None:
    srv = Served(big.netns, "--web.max-requests", "0", "--max-listeners", "3000")
    c = InFlight(big)
    try:
        c.hold(41)
        status, _, body, _ = c.do("ask /metrics")
        assert status == 200 and body.startswith("# HELP ")
        assert c.do("drop") == 41
    finally:
        c.close()
        assert srv.stop() == 0, srv.stderr


def test_max_requests_takes_a_count_of_at_least_0(holder: Holder) -> None:
    for given, msg in (("-1", "must be at least 0: '-1'"), ("x", "not an integer: 'x'"),
                       ("1.5", "not an integer: '1.5'")):
        r = holder.run([*EXPORTER, "--web.max-requests", given])
        assert (r.returncode, r.stdout) == (255, ""), r.stderr
        assert r.stderr == f"sockscope: exporter: argument --web.max-requests: {msg} (see sockscope exporter --help)\n"


def test_max_requests_is_40_by_default_as_node_exporters(big: Holder) -> None:
    srv = Served(big.netns, "--max-listeners", "3000")
    c = InFlight(big)
    try:
        c.hold(40)
        status, _, body, _ = c.do("ask /metrics")
        assert (status, body) == (503, "Limit of concurrent requests reached (40), try again later.\n")
        assert c.do("drop") == 40
        assert c.do("until200 /metrics")[-1] == 200
    finally:
        c.close()
        assert srv.stop() == 0, srv.stderr


#: Inside the netns: the server with max_requests 1 and a collector the script holds (each collection
#: waits until let go; the first then fails, the later ones give a big exposition); prints what each
#: step got.  A client that never reads holds the last scrape until write_timeout (5 s).
HELD_RENDER = r'''
import http.client, json, select, socket, threading, time
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from sockscope.exporter_web import Address, Limits, Server, bind
class Held:
    def __init__(self):
        self.entered, self.go, self.calls = threading.Event(), threading.Event(), 0
    def collect(self):
        self.calls += 1
        self.entered.set()
        self.go.wait(60)
        if self.calls == 1:
            raise RuntimeError("boom")
        g = GaugeMetricFamily("held_big", "A big exposition.", labels=["n"])
        for i in range(5000):
            g.add_metric([f"{i:0100d}"], i)
        yield g
held, logs = Held(), []
reg = CollectorRegistry(auto_describe=False)
reg.register(held)
srv = Server([bind(Address("127.0.0.1", 9466), 16)], reg, limits=Limits(max_requests=1, write_timeout=5),
             log=logs.append)
threading.Thread(target=srv.run, daemon=True).start()
def get(path):
    c = http.client.HTTPConnection("127.0.0.1", 9466, timeout=60)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return [r.status, body[:100]]
out, first = {}, []
t = threading.Thread(target=lambda: first.append(get("/metrics")))
t.start()
out["entered"] = held.entered.wait(60)  # the first scrape waits for its render
out["waiting"] = get("/metrics")
out["page"] = get("/")
held.go.set()
t.join(60)
out["failed"] = first
out["after_failure"] = get("/metrics")[0]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", 9466))
s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
out["unread"] = s.recv(12, socket.MSG_PEEK).decode() if select.select([s], [], [], 60)[0] else "nothing"
statuses, t0 = [], time.monotonic()
while 200 not in statuses and time.monotonic() - t0 < 60:
    statuses.append(get("/metrics")[0])
    time.sleep(0.1)
out["until200"] = statuses
out["logs"] = logs
srv.stop()
print(json.dumps(out))
'''


def test_max_requests_counts_a_scrape_waiting_for_its_render_and_every_way_out_frees_it(holder: Holder) -> None:
    """A scrape counts from its arrival: waiting for the render already holds a place (a second one
    gets 503).  A render that fails gives its place back (a 500, then 200), and so does a response
    its client never takes, at write_timeout."""
    r = holder.run(["sysctl", "-qw", "net.ipv4.tcp_wmem=4096 16384 65536"])  # (a response of 500 KB waits)
    assert r.returncode == 0, r.stderr
    r = holder.run([sys.executable, "-c", HELD_RENDER], timeout=180)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["entered"] is True
    assert out["waiting"] == [503, "Limit of concurrent requests reached (1), try again later.\n"]
    assert out["page"][0] == 200
    assert out["failed"] == [[500, "rendering the metrics failed; see the exporter's stderr\n"]]
    assert out["after_failure"] == 200
    assert out["unread"] == "HTTP/1.1 200"
    statuses = out["until200"]
    assert statuses[-1] == 200 and set(statuses[:-1]) <= {503}, statuses
    assert out["logs"] == ["http: rendering the metrics failed: RuntimeError: boom"]
