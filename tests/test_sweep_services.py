"""The subcommands (serve, connect, top, exporter) against hostile input and hostile surroundings.

Each test failed before its fix: a traceback instead of one line, a hang, memory read
without bound, a value accepted that made the command useless, or a log nobody reads
stalling the exporter.  Everything runs in a fresh private network namespace
(``servicehelpers.NetNS``), talks only to loopback, and ends what it started by pid.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from servicehelpers import SOCKSCOPE, NetNS, ServeProc, ns, serve, stop_process, workdir

__all__ = ["ns", "serve", "workdir"]  # fixtures, imported for pytest

Serve = Callable[..., ServeProc]
EXPORTER = [*SOCKSCOPE, "exporter"]
F_SETPIPE_SZ = 1031


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, f"expected one line on stderr, got {stderr!r}"
    return lines[0]


def _http(ns: NetNS, port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """One request on a fresh connection inside ``ns``: (status line, headers, body)."""

    def talk() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            parts = []
            while chunk := sock.recv(65536):
                parts.append(chunk)
            return b"".join(parts)

    raw = ns.call(talk)
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


def _exporter(ns: NetNS, port: int, *args: str, **kw: object) -> subprocess.Popen[bytes]:
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    proc: subprocess.Popen[bytes] = ns.popen([*EXPORTER, "--web.listen-address", f"127.0.0.1:{port}", *args],
                                             **kw)  # type: ignore[arg-type]
    return proc


# --- exporter ----------------------------------------------------------------------------


def test_exporter_log_nobody_reads_stalls_neither_scrapes_nor_exit(ns: NetNS, tmp_path: Path) -> None:
    """Every scrape of a failing collection logs a line; with stderr a full pipe the scrapes
    still answer and SIGTERM still ends it (the log printed from the render thread blocked
    them all, and the exit after them)."""
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, 4096)  # full after ~40 lines
    proc = None
    try:
        proc = _exporter(ns, 9466, "--proc", str(tmp_path / "no-proc"), stderr=w)
        os.close(w)
        w = -1
        banner = b""
        deadline = time.monotonic() + 20
        while b"serving" not in banner:  # read up to the start-up line, then never again
            assert time.monotonic() < deadline and proc.poll() is None, banner
            banner += os.read(r, 4096)
        for i in range(150):
            status, _, body = _http(ns, 9466, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status == "HTTP/1.1 200 OK", (i, status)
            assert b"sockscope_scrape_success 0.0" in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if w >= 0:
            os.close(w)
        if proc is not None:
            stop_process(proc)
        os.close(r)


@pytest.mark.parametrize(("accept", "gzipped"), [
    ("gzip", True), ("GZIP", True), ("x-gzip", True), ("br, gzip;q=0.5", True), ("*", True),
    ("gzip;q=0", False), ("gzip; q=0.000", False), ("identity", False), ("*;q=0", False),
    ("gzip;q=0, *", False), ("deflate", False),
])
def test_exporter_gzip_follows_accept_encoding(ns: NetNS, accept: str, gzipped: bool) -> None:
    """RFC 9110's Accept-Encoding: tokens in any case, q=0 refuses a coding, ``*`` stands for the rest."""
    proc = _exporter(ns, 9466)
    try:
        ns.wait_listening(9466, timeout=20)
        req = f"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}\r\n\r\n".encode()
        status, headers, body = _http(ns, 9466, req)
        assert status == "HTTP/1.1 200 OK"
        assert headers.get("content-encoding") == ("gzip" if gzipped else None), headers
        text = gzip.decompress(body) if gzipped else body
        assert text.startswith(b"# HELP sockscope_")
    finally:
        stop_process(proc)


def test_exporter_answers_an_absolute_form_request_target(ns: NetNS) -> None:
    """``GET http://host/metrics`` (absolute form, which a server must accept) is the metrics, not a 404."""
    proc = _exporter(ns, 9466)
    try:
        ns.wait_listening(9466, timeout=20)
        for target, want in ((b"http://127.0.0.1:9466/metrics", b"# HELP sockscope_"),
                             (b"HTTP://127.0.0.1:9466/metrics?x=1", b"# HELP sockscope_"),
                             (b"http://127.0.0.1:9466", b"<html>")):
            status, _, body = _http(ns, 9466, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status == "HTTP/1.1 200 OK", (target, status)
            assert body.startswith(want), (target, body[:80])
        status, _, _ = _http(ns, 9466, b"GET http://127.0.0.1:9466/nope HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == "HTTP/1.1 404 Not Found"
    finally:
        stop_process(proc)


def test_exporter_idle_timeout_of_zero_is_never(ns: NetNS) -> None:
    """``--web.idle-timeout 0`` keeps a keep-alive connection for its next request, as serve's
    ``--idle-timeout 0`` does ("never"); it answered ``Connection: keep-alive`` and then closed the
    connection at once, so the second request on it got nothing."""
    proc = _exporter(ns, 9467, "--web.idle-timeout", "0")
    try:
        ns.wait_listening(9467, timeout=20)

        def twice() -> list[bytes]:
            got = []
            with socket.create_connection(("127.0.0.1", 9467), timeout=10) as sock:
                for _ in range(2):
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    data = b""
                    while b"</html>" not in data:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    got.append(data)
                    time.sleep(0.5)  # idle between the two
            return got

        first, second = ns.call(twice)
        assert first.startswith(b"HTTP/1.1 200 OK") and b"keep-alive" in first.lower(), first[:200]
        assert second.startswith(b"HTTP/1.1 200 OK"), second[:200]
    finally:
        stop_process(proc)


#: Inside the netns: keep N connections each asking with a wrong password (``Connection: close``),
#: opening a new one as soon as one is answered, until its stdin closes (S seconds at most); then print
#: how many were answered.
FLOOD = r'''
import base64, selectors, socket, sys, time
port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
sel = selectors.DefaultSelector()
def request(i):
    token = base64.b64encode(f"prometheus:wrong{i}".encode()).decode()
    return f"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {token}\r\n\r\n".encode()
def one(i):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(request(i))
    except OSError:  # closed at once: every connection was busy
        pass
    sel.register(s, selectors.EVENT_READ, i)
for i in range(n):
    one(i)
sel.register(sys.stdin, selectors.EVENT_READ, None)
print("READY", flush=True)
answered, i, end = 0, n, time.monotonic() + seconds
while time.monotonic() < end:
    for key, _ in sel.select(0.05):
        if key.data is None:  # (stdin: closed, the scrapes are done)
            end = 0
            continue
        try:
            data = key.fileobj.recv(65536)
        except OSError:
            data = b""
        if not data:
            sel.unregister(key.fileobj)
            key.fileobj.close()
            answered += 1
            i += 1
            one(i)
print(answered, flush=True)
'''


def _scrapes_beside(ns: NetNS, flood_script: str, args: list[str], scrape: bytes,
                    count: int = 100) -> tuple[list[str], str]:
    """``count`` scrapes of the exporter at 9466, 0.05 s apart, while ``flood_script`` (``args``; it prints
    READY, floods until its stdin closes, then prints one line) runs in the netns from 0.5 s before the
    first: each scrape's status line (an exception's name where the connection failed; an answered one
    must carry the metrics), and the flood's last line.  The flood must outlast the scrapes; it is
    stopped however this ends."""
    from nsutil import read_line

    flood = ns.popen([sys.executable, "-c", flood_script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert read_line(flood, 20).strip() == "READY"
        time.sleep(0.5)  # (the slots and the queue full of the flood's)
        statuses = []
        for _ in range(count):
            try:
                status, _, body = _http(ns, 9466, scrape)
            except OSError as exc:
                status, body = type(exc).__name__, b""
            statuses.append(status)
            assert status != "HTTP/1.1 200 OK" or body.startswith(b"# HELP sockscope_")
            time.sleep(0.05)
        assert flood.poll() is None and flood.stdin is not None  # (the flood lasted as long as the scrapes)
        flood.stdin.close()
        return statuses, read_line(flood, 30)
    finally:
        stop_process(flood)


def test_wrong_passwords_cannot_lock_the_scrapers_out(ns: NetNS, tmp_path: Path) -> None:
    """Requests with wrong basic-auth passwords each wait for a bcrypt check (one at a time, ~0.3 s
    here): a client keeping --web.max-connections of them queued held every connection busy, so a
    scraper with the right (cached) password was closed at once.  Past MAX_AUTH_PENDING checks
    waiting, credentials not cached get 401 at once instead; that still left about one scrape in ten
    refused: one arriving while every connection was busy was closed at once, and one just admitted
    was, its head unread, the connection "waiting longest" that the next newcomer evicted.  Now it
    waits in the queue for the next free slot, and within ADMIT_GRACE it is not evicted: under the
    flood (kept up until the scrapes are done) 99 of 100 scrapes get the metrics at least."""
    import base64

    import bcrypt

    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=12)).decode()
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
    token = base64.b64encode(b"prometheus:right").decode()
    scrape = f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n\r\n".encode()
    proc = _exporter(ns, 9466, "--web.config.file", str(cfg), "--web.max-connections", "32")
    try:
        ns.wait_listening(9466, timeout=20)
        status, _, _ = _http(ns, 9466, scrape)  # checked once, then cached
        assert status == "HTTP/1.1 200 OK"
        # counted over 100 scrapes: before the queue and the grace 11 to 22 failed (five runs: closed at
        # once, or evicted before their head was read); now none (fifteen runs)
        statuses, answered = _scrapes_beside(ns, FLOOD, ["9466", "32", "120"], scrape)
        assert int(answered) > 0  # the flood was answered (401), not stalled
        assert statuses.count("HTTP/1.1 200 OK") >= 99, statuses  # (before: none)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        stop_process(proc)


#: Inside the netns: connect from 127.0.0.2 and send nothing, as fast as the server lets it (the listen
#: backlog full, a connect waits), the K most recent connections kept open (older ones reset), until its
#: stdin closes; then print how many it opened and in how many seconds.
IDLE_FLOOD = r'''
import collections, select, socket, sys, time
port, keep = int(sys.argv[1]), int(sys.argv[2])
socks, opened, t0 = collections.deque(), 0, time.monotonic()
print("READY", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # (close: a reset)
    s.bind(("127.0.0.2", 0))
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    socks.append(s)
    opened += 1
    if len(socks) > keep:
        socks.popleft().close()
print(opened, round(time.monotonic() - t0, 2), flush=True)
'''


def test_idle_connections_from_one_address_cannot_lock_another_addresss_scrapers_out(ns: NetNS) -> None:
    """A client at 127.0.0.2 opening connections that send nothing as fast as the server lets it (some
    2,000 a second) against --web.max-connections 32, while a scraper at 127.0.0.1 scrapes 50 times.
    Every rule at the cap went by age alone, so the flood's connections pushed the scraper's out of the
    queue and out of their slots before their heads were read (a full queue's newcomer takes the slot
    of the connection waiting longest for its first head; a server busy with the flood reads a head late):
    51, 69 and 74 of 100 answered in three runs.  Counted by client address, the scraper takes the place
    of the flood's connection queued last, gets the next slot before the flood's older queued ones, and
    is not closed for the flood's newcomers while it waits for its head to be read: 100 of 100.
    50 scrapes tell the two apart in half the time (a scrape under this flood takes ~0.5 s): by age
    alone, at most 74 of 100 were answered, and 49 of 50 then has a chance of ~5e-6."""
    proc = _exporter(ns, 9466, "--web.max-connections", "32")
    try:
        ns.wait_listening(9466, timeout=20)
        statuses, last = _scrapes_beside(ns, IDLE_FLOOD, ["9466", "1000"], b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                                         count=50)
        opened, seconds = last.split()
        assert int(opened) / float(seconds) > 500, (opened, seconds)  # a flood indeed (~2,000 a second here)
        assert statuses.count("HTTP/1.1 200 OK") >= 49, statuses  # (by age alone: 51-74 of 100; by address: all)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        stop_process(proc)


def test_exporter_header_timeout_of_zero_is_a_usage_error(ns: NetNS) -> None:
    """A 0 s header deadline closed every connection before its request: refused, not served."""
    r = ns.run([*EXPORTER, "--web.listen-address", "127.0.0.1:9466", "--web.header-timeout", "0"],
               timeout=20, text=True)
    assert r.returncode == 255
    assert "--web.header-timeout: must be more than 0" in _one_line(r.stderr)


def _deep(path: Path) -> None:
    path.write_text("tls_server_config: " + "[" * 5000 + "]" * 5000 + "\n")


def _versions(path: Path) -> None:
    path.write_text("tls_server_config: {cert_file: a, key_file: b, min_version: [TLS12]}\n")


def _max_version(path: Path) -> None:
    path.write_text("tls_server_config:\n  cert_file: a\n  key_file: b\n  max_version: {TLS13: 1}\n")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


@pytest.mark.parametrize(("make", "msg"), [
    (_deep, "nested too deeply"),
    (_versions, "min_version must be a string"),
    (_max_version, "max_version must be a string"),
    (_fifo, "not a regular file"),
])
def test_hostile_web_config_files_are_one_line_errors(ns: NetNS, tmp_path: Path,
                                                      make: Callable[[Path], None], msg: str) -> None:
    """Deep nesting (a RecursionError), a list or mapping for a TLS version (a TypeError): tracebacks;
    a FIFO: a hang at start, and in the server's event loop on a reload."""
    path = tmp_path / "web.yml"
    make(path)
    r = ns.run([*EXPORTER, "--once", "--web.config.file", str(path)], timeout=30, text=True)
    assert r.returncode == 1
    assert _one_line(r.stderr) == f"sockscope: web config {str(path)!r}: {msg}"


# --- serve -----------------------------------------------------------------------------


def test_serve_backlog_beyond_a_c_int_is_a_usage_error(ns: NetNS) -> None:
    """listen() takes a C int: a larger --backlog was an OverflowError's traceback."""
    r = ns.sockscope("serve", "--port", "0", "--backlog", "99999999999", timeout=30, text=True)
    assert r.returncode == 255
    assert "--backlog: too large (at most 2147483647)" in _one_line(r.stderr)


def test_serve_udp_greeting_larger_than_a_datagram_is_a_usage_error(ns: NetNS, serve: Serve) -> None:
    """Every reply failed (EMSGSIZE, logged end=error) and no client ever got an answer."""
    r = ns.sockscope("serve", "--udp", "--port", "0", "--message", "a" * 65508, timeout=15, text=True)
    assert r.returncode == 255
    assert "--message: 65508 bytes do not fit in one UDP datagram (max 65507)" in _one_line(r.stderr)
    serve("--udp", "--port", "7000", "--message", "a" * 65507)  # the largest that fits is served
    r = ns.sockscope("connect", "--udp", "--raw", "127.0.0.1", "7000", timeout=15)
    assert r.returncode == 0 and r.stdout == b"a" * 65507


def test_serve_sighup_stops_it_like_sigterm_and_removes_the_unix_path(
        ns: NetNS, serve: Serve, workdir: Path) -> None:
    """A closed terminal (SIGHUP) killed the server and left its UNIX socket file behind."""
    path = workdir / "hup.sock"
    server = serve("--unix", str(path))
    assert path.is_socket()
    rc, took = server.stop(signal.SIGHUP)
    assert rc == 0 and took < 5
    assert not path.exists()
    assert "stopping on SIGHUP" in server.log()


def test_serve_under_nohup_ignores_sighup(ns: NetNS, workdir: Path) -> None:
    """... but SIGHUP ignored on purpose (nohup) stays ignored."""
    path = workdir / "nohup.sock"
    log = workdir / "nohup.log"
    with open(log, "wb") as f:
        proc = ns.popen(["nohup", *SOCKSCOPE, "serve", "--unix", str(path)], stdout=subprocess.DEVNULL, stderr=f)
    try:
        deadline = time.monotonic() + 20
        while "listening on" not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert proc.poll() is None and path.is_socket()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert not path.exists()
    finally:
        stop_process(proc)


# --- connect -----------------------------------------------------------------------------


def test_connect_timeout_of_zero_is_a_usage_error(ns: NetNS) -> None:
    """--timeout 0 failed every step: 127.0.0.1 'did not resolve' (exit 4)."""
    r = ns.sockscope("connect", "127.0.0.1", "1", "--timeout", "0", timeout=30, text=True)
    assert r.returncode == 255
    assert "--timeout: must be more than 0" in _one_line(r.stderr)


def _stdin_closed(argv: list[str]) -> list[str]:
    return ["sh", "-c", 'exec "$@" <&-', "sh", *argv]


def test_connect_with_standard_input_closed(ns: NetNS, serve: Serve, workdir: Path) -> None:
    """fd 0 closed: ``--send -`` was an AttributeError's traceback (sys.stdin is None), and so was
    the end of every ``--send-file FILE`` exchange (it compared the file with sys.stdin.buffer)."""
    for extra in ([], ["--udp"], ["--udp", "-c", "1"]):
        r = ns.run(_stdin_closed([*SOCKSCOPE, "connect", *extra, "--send", "-", "127.0.0.1", "7000"]),
                   timeout=30, text=True)
        assert r.returncode == 2, (extra, r.stderr)
        assert _one_line(r.stderr) == "sockscope: cannot read the data to send: standard input is closed"
    serve("--mode", "echo", "--port", "7000")
    data = workdir / "data"
    data.write_bytes(b"some data\n")
    r = ns.run(_stdin_closed([*SOCKSCOPE, "connect", "--send-file", str(data), "127.0.0.1", "7000"]),
               timeout=30, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, "some data\n", "")


def test_connect_endless_stdin_to_a_server_that_closes_is_quiet(ns: NetNS, serve: Serve) -> None:
    """``yes | connect --send -`` to the greeting server (which closes while stdin still streams):
    about every other run ended with "RuntimeWarning: coroutine 'Queue.put' was never awaited"
    on stderr (the reader thread's hand-over, left behind by the loop's end)."""
    serve("--port", "7000")
    cmd = " ".join([*SOCKSCOPE, "connect", "--send", "-", "127.0.0.1", "7000"])
    for _ in range(8):
        r = ns.run(["sh", "-c", f"yes | {cmd}"], timeout=30, text=True)
        assert (r.returncode, r.stdout, r.stderr) == (0, "Thank you for connecting\n", "")


@pytest.mark.parametrize("ping", [[], ["-c", "1"]])
def test_connect_udp_endless_data_is_refused_without_reading_it_all(ns: NetNS, ping: list[str]) -> None:
    """An endless --send-file for one datagram was read into memory first (1 GB in 3 s): now it is
    refused once it is more than a datagram (exit 2), in a process limited to 1 GiB."""
    started = time.monotonic()
    r = ns.run(["prlimit", "--as=1073741824", "--", *SOCKSCOPE, "connect", "--udp", *ping,
                "--send-file", "/dev/zero", "127.0.0.1", "9"], timeout=60, text=True)
    assert r.returncode == 2, r.stderr[-2000:]
    assert _one_line(r.stderr) == "sockscope: the data to send does not fit in one UDP datagram (max 65507 bytes)"
    assert time.monotonic() - started < 20


# --- top -------------------------------------------------------------------------------------


@pytest.mark.parametrize("term", ["sockscope-no-such-terminal", None])
def test_top_on_a_terminal_curses_cannot_drive_is_one_line(ns: NetNS, term: str | None) -> None:
    """TERM unknown or unset: curses' setupterm error was a traceback."""
    env = {k: v for k, v in os.environ.items() if k != "TERM"}
    if term is not None:
        env["TERM"] = term
    master, slave = os.openpty()
    try:
        r = ns.run([*SOCKSCOPE, "top", "-d", "0.5"], timeout=30, text=True, env=env, capture_output=False,
                   stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode == 1
    line = _one_line(r.stderr)
    assert line.startswith("sockscope: top: cannot drive this terminal (")
    assert ("TERM is not set" if term is None else f"TERM={term!r}") in line
    assert line.endswith("use --once for a plain-text snapshot")


def test_top_sort_alias_proc_in_the_processes_view(ns: NetNS) -> None:
    """``-s proc`` sorted the sockets view by Process but was 'unknown' in the processes view
    (whose Process column has another key)."""
    for view, want in (([], "view sockets  sort Process asc"), (["-P"], "view processes  sort Process asc")):
        r = ns.sockscope("top", "--once", "-d", "0", *view, "-s", "proc", timeout=30, text=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[2].startswith(want), r.stdout
