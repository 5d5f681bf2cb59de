"""``sockscope serve`` against real sockets in a private network namespace.

Every test runs the CLI as a subprocess (``python -m sockscope serve``) inside
a fresh ``unshare -n`` namespace, talks to it with real sockets (from the test
process, through setns in a helper thread, or with subprocess clients), and
checks the server's own fd count in ``/proc/PID/fd`` against its idle baseline
after each scenario.  Fixtures end everything they started, also on failure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from servicehelpers import (
    FIXTURES,
    LOADGEN,
    PY,
    SOCKSCOPE,
    NetNS,
    ServeProc,
    close_all,
    ns,
    recv_all,
    serve,
    tcp_client,
    workdir,
)

__all__ = ["ns", "serve", "workdir"]  # fixtures, imported for pytest

Serve = Callable[..., ServeProc]
GREETING = b"Thank you for connecting"
MiB = 1 << 20


def _one_error_line(stderr: bytes) -> str:
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    return lines[0]


# --- the tutorial pair ------------------------------------------------------


def test_tutorial_client_against_our_server(ns: NetNS, serve: Serve) -> None:
    server = serve(*ns.serve_host_args)
    out = ns.run([PY, str(FIXTURES / "tutorial_client.py")], timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout == GREETING + b"\n"
    server.wait_log(" end=")
    conns = server.connections()
    assert len(conns) == 1
    assert conns[0]["proto"] == "tcp" and conns[0]["bout"] == str(len(GREETING)) and conns[0]["bin"] == "0"
    assert conns[0]["peer"].startswith(ns.hostname_addr + ":")
    server.wait_fds()


def test_default_bind_is_loopback_only(ns: NetNS, serve: Serve) -> None:
    expected = set()
    for name in ("localhost", socket.gethostname()):
        for *_, sockaddr in socket.getaddrinfo(name, 12345, type=socket.SOCK_STREAM):
            host = str(sockaddr[0])
            if host.startswith("127.") or host == "::1":
                expected.add(f"[{host}]:12345" if ":" in host else f"{host}:12345")
    server = serve()
    local = {line.split()[3] for line in ns.listening(12345)}
    assert local == expected
    assert "loopback only" in server.log()
    # and an explicit --host reaches every interface
    wide = serve("--host", "0.0.0.0", "--port", "12346")
    assert {line.split()[3] for line in ns.listening(12346)} == {"0.0.0.0:12346"}
    assert "loopback only" not in wide.log()


def test_host_name_that_is_not_loopback_is_not_bound(workdir: Path) -> None:
    """localhost has v4 and v6; the host name maps to a non-loopback address (private /etc/hosts)."""
    hosts = workdir / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n::1 localhost\n10.99.0.1 {socket.gethostname()}\n")
    private = NetNS(hosts_file=hosts)
    try:
        assert private.hostname_addr == "10.99.0.1" and not private.hostname_is_loopback
        server = ServeProc(private, [], workdir)
        assert {line.split()[3] for line in private.listening(12345)} == {"127.0.0.1:12345", "[::1]:12345"}
        log = server.log()
        assert "resolves to 10.99.0.1, which is not loopback: not bound (use --host 10.99.0.1" in log
        assert "listening on tcp 127.0.0.1:12345, [::1]:12345 " in log
        refused = private.run([PY, str(FIXTURES / "tutorial_client.py")])
        assert refused.returncode == 1 and b"ConnectionRefusedError" in refused.stderr
        # with --host the host name's address is served, and the tutorial client works unmodified
        named = ServeProc(private, private.serve_host_args + ["--port", "12345"], workdir, wait=False)
        named.wait_log("listening on tcp 10.99.0.1:12345 ")
        out = private.run([PY, str(FIXTURES / "tutorial_client.py")])
        assert out.stdout == GREETING + b"\n", out.stderr
        assert server.stop()[0] == 0 and named.stop()[0] == 0
    finally:
        private.close()


def test_listing_shows_the_listener_with_its_process(ns: NetNS, serve: Serve) -> None:
    server = serve("--port", "12399")
    ss = ns.run(["ss", "-Htlnp", "sport = :12399"], text=True, check=True).stdout
    assert f"pid={server.pid}," in ss and "127.0.0.1:12399" in ss
    listing = ns.sockscope("-tlnp", text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    rows = [line for line in listing.stdout.splitlines() if "127.0.0.1:12399" in line]
    assert len(rows) == 1, listing.stdout
    assert rows[0].split()[0] == "LISTEN" and f"pid={server.pid}," in rows[0]


def test_listing_shows_a_connect_session_from_both_ends(ns: NetNS, serve: Serve) -> None:
    server = serve("--mode", "echo", "--port", "12398")
    client = ns.popen(
        [*SOCKSCOPE, "connect", "127.0.0.1", "12398", "--send-file", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert client.stdin is not None and client.stdout is not None
    client.stdin.write(b"ping\n")
    client.stdin.flush()
    assert client.stdout.readline() == b"ping\n"  # the session is up, both ends open
    listing = ns.sockscope("-tnp", text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines() if ":12398" in line]
    assert len(rows) == 2, listing.stdout
    by_local = {row[3]: row for row in rows}
    served = by_local["127.0.0.1:12398"]
    assert served[0] == "ESTAB" and f"pid={server.pid}," in served[-1]
    (client_row,) = [row for local, row in by_local.items() if local != "127.0.0.1:12398"]
    assert client_row[4] == "127.0.0.1:12398" and f"pid={client.pid}," in client_row[-1]
    client.stdin.close()  # EOF: connect half-closes, the echo server closes, connect exits 0
    assert client.wait(10) == 0
    server.wait_fds()


# --- echo -------------------------------------------------------------------


def test_echo_tcp_1mib_byte_exact(ns: NetNS, serve: Serve, workdir: Path) -> None:
    server = serve("--mode", "echo")
    payload = os.urandom(MiB)
    (workdir / "in.bin").write_bytes(payload)
    out = ns.sockscope("connect", "127.0.0.1", "12345", "--send-file", str(workdir / "in.bin"), "--raw")
    assert out.returncode == 0, out.stderr
    assert out.stdout == payload
    server.wait_log(" end=")
    (conn,) = server.connections()
    assert conn["bin"] == conn["bout"] == str(MiB) and conn["end"] == "eof"
    server.wait_fds()


def test_echo_unix_1mib_byte_exact(ns: NetNS, serve: Serve, workdir: Path) -> None:
    path = str(workdir / "echo.sock")
    server = serve("--unix", path, "--mode", "echo")
    payload = os.urandom(MiB)
    out = ns.sockscope("connect", "--unix", path, "--send", "-", "--raw", input=payload)
    assert out.returncode == 0, out.stderr
    assert out.stdout == payload
    server.wait_log(" end=")
    (conn,) = server.connections()
    assert conn["proto"] == "unix" and conn["peer"].startswith("pid=") and conn["bout"] == str(MiB)
    server.wait_fds()


def test_echo_loadgen_1mib_clients(ns: NetNS, serve: Serve) -> None:
    server = serve("--mode", "echo", "-q")
    out = ns.run([*LOADGEN, "--clients", "8", "--size", str(MiB), "--rounds", "2", "--json"], timeout=60)
    report = json.loads(out.stdout)
    assert out.returncode == 0, report
    assert report["errors"] == 0 and report["ok"] == 8
    assert report["bytes_received"] == 8 * 2 * MiB
    server.wait_fds()


def test_udp_greet_and_echo(ns: NetNS, serve: Serve) -> None:
    greet = serve("--udp")
    echo = serve("--udp", "--mode", "echo", "--port", "12346")

    def exchange() -> tuple[bytes, bytes]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(b"anything", ("127.0.0.1", 12345))
            first = s.recvfrom(65536)[0]
            blob = os.urandom(60000)
            s.sendto(blob, ("127.0.0.1", 12346))
            second = s.recvfrom(65536)[0]
            assert second == blob
            return first, second

    first, second = ns.call(exchange)
    assert first == GREETING and len(second) == 60000
    greet.wait_log(" end=reply")
    assert greet.connections()[0]["proto"] == "udp"
    assert echo.wait_log("in=60000 out=60000")
    greet.wait_fds()
    echo.wait_fds()


# --- load and limits --------------------------------------------------------


def test_load_2000_concurrent_echo_clients(ns: NetNS, serve: Serve) -> None:
    server = serve("--mode", "echo")
    started = time.monotonic()
    out = ns.run(
        [*LOADGEN, "--clients", "2000", "--size", "4096", "--rounds", "5", "--json"], timeout=120, text=True
    )
    elapsed = time.monotonic() - started
    report = json.loads(out.stdout)
    assert out.returncode == 0, report
    assert report["errors"] == 0 and report["ok"] == 2000
    assert report["held"] == 2000  # all open at the same time
    assert report["bytes_received"] == 2000 * 5 * 4096
    assert elapsed < 30, f"load run took {elapsed:.1f}s"
    server.wait_log(" end=", count=2000, timeout=20)
    conns = server.connections()
    assert len(conns) == 2000
    assert all(c["bin"] == c["bout"] == str(5 * 4096) and c["end"] == "eof" for c in conns)
    server.wait_fds()


def test_max_conns_under_300_clients(ns: NetNS, serve: Serve) -> None:
    server = serve("--mode", "echo", "--max-conns", "100")
    socks = ns.call(lambda: [tcp_client(12345) for _ in range(300)])
    try:
        server.wait_log("end=limit", count=200)
        served = refused = 0
        for sock in socks:
            try:
                sock.sendall(b"ping")
                reply = sock.recv(16)
            except (ConnectionResetError, BrokenPipeError):
                reply = b""
            if reply == b"ping":
                served += 1
            else:
                assert reply == b""
                refused += 1
        assert (served, refused) == (100, 200)
        assert server.alive()
        assert server.fd_count() == server.baseline + 100
    finally:
        close_all(socks)
    server.wait_fds()
    # healthy afterwards: a full house again
    again = ns.call(lambda: [tcp_client(12345) for _ in range(100)])
    try:
        for sock in again:
            sock.sendall(b"again")
            assert sock.recv(16) == b"again"
    finally:
        close_all(again)
    server.wait_fds()
    assert server.ends().get("limit") == 200


def test_idle_timeout_closes_200_idle_connections(ns: NetNS, serve: Serve) -> None:
    server = serve("--mode", "echo", "--idle-timeout", "1")
    socks = ns.call(lambda: [tcp_client(12345) for _ in range(200)])
    busy = ns.call(lambda: tcp_client(12345))
    try:
        deadline = time.monotonic() + 2.5  # keep one connection busy past the timeout
        while time.monotonic() < deadline:
            busy.sendall(b"x")
            assert busy.recv(1) == b"x"
            time.sleep(0.2)
        server.wait_log("end=idle", count=200, timeout=10)
        for sock in socks:
            assert recv_all(sock, timeout=5) == b""  # the server closed it
        busy.sendall(b"still here")
        assert busy.recv(32) == b"still here"
    finally:
        close_all([*socks, busy])
    server.wait_fds()
    assert server.ends()["idle"] == 200


# --- abuse: no fd leaks -----------------------------------------------------


def _abuse(port: int) -> list[socket.socket]:
    """Resets, half-closes, garbage, a non-reader, slowloris; returns sockets left open."""
    keep: list[socket.socket] = []
    linger0 = struct.pack("ii", 1, 0)
    for i in range(30):  # RST right away, and RST with data in flight
        s = tcp_client(port)
        if i % 2:
            s.sendall(os.urandom(200_000))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0)
        s.close()
    for _ in range(20):  # connect and vanish
        tcp_client(port).close()
    for _ in range(20):  # half-close, then read everything
        s = tcp_client(port)
        s.sendall(b"half")
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
        s.close()
    for _ in range(10):  # half-close and never read, then leave it open
        s = tcp_client(port)
        s.sendall(os.urandom(1000))
        s.shutdown(socket.SHUT_WR)
        keep.append(s)
    for _ in range(10):  # garbage, binary and huge
        s = tcp_client(port)
        s.sendall(os.urandom(300_000) + b"\r\n\0\xff" * 1000)
        s.close()
    flood = tcp_client(port)  # writes until it cannot, never reads
    flood.setblocking(False)
    try:
        while True:
            flood.send(b"\0" * 65536)
    except BlockingIOError:
        pass  # the send buffers are full: the server reads slower than we write
    except (BrokenPipeError, ConnectionResetError):
        pass  # greet mode discards input and ends the connection after its linger or idle time
    keep.append(flood)
    slow = [tcp_client(port) for _ in range(10)]  # slowloris: a byte now and then
    for _ in range(4):
        for s in slow:
            s.send(b"G")
        time.sleep(0.3)
    keep.extend(slow)
    return keep


@pytest.mark.parametrize("mode", ["echo", "greet"])
def test_no_fd_leak_under_abuse(ns: NetNS, serve: Serve, mode: str) -> None:
    server = serve("--mode", mode, "--idle-timeout", "1.5")
    held = ns.call(lambda: _abuse(12345))
    try:
        # everything still open is idle now: the server must close it by itself
        server.wait_fds(timeout=15)
        assert server.alive()
    finally:
        close_all(held)
    server.wait_fds()
    # still serving
    if mode == "echo":
        reply = ns.sockscope("connect", "127.0.0.1", "--send", "ok", "--timeout", "5")
        assert reply.stdout == b"ok\n", reply.stderr
    else:
        reply = ns.sockscope("connect", "127.0.0.1", "--timeout", "5")
        assert reply.stdout == GREETING + b"\n", reply.stderr
    server.wait_fds()
    ends = server.ends()
    assert sum(ends.values()) >= 102
    assert ends.get("idle", 0) + ends.get("linger", 0) >= 1


# --- stopping ---------------------------------------------------------------


def test_sigterm_during_50_transfers_exits_0_within_5s(ns: NetNS, serve: Serve) -> None:
    server = serve("--mode", "echo")
    load = ns.popen(
        [*LOADGEN, "--clients", "50", "--size", "65536", "--duration", "30", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while server.fd_count() < server.baseline + 50:
        assert time.monotonic() < deadline, "the 50 clients never connected"
        assert load.poll() is None, load.communicate()
        time.sleep(0.05)
    time.sleep(0.5)  # transfers in full swing
    rc, took = server.stop(signal.SIGTERM)
    assert rc == 0, server.log()[-2000:]
    assert took < 5, f"took {took:.2f}s to stop"
    log = server.log()
    assert "stopping on SIGTERM" in log and "50 connection(s) in flight" in log
    assert server.ends().get("shutdown") == 50
    out, _err = load.communicate(timeout=30)
    report = json.loads(out)
    assert report["round_trips"] > 0  # they really were transferring


def test_sigint_lets_in_flight_connection_finish(ns: NetNS, serve: Serve) -> None:
    server = serve("--mode", "echo", "--grace", "3")
    client = ns.call(lambda: tcp_client(12345))
    try:
        client.sendall(b"first half, ")
        assert client.recv(64) == b"first half, "
        server.proc.send_signal(signal.SIGINT)
        server.wait_log("stopping on SIGINT")
        # no longer accepting
        with pytest.raises(ConnectionRefusedError):
            ns.call(lambda: tcp_client(12345)).close()
        client.sendall(b"second half")
        client.shutdown(socket.SHUT_WR)
        assert recv_all(client) == b"second half"
    finally:
        client.close()
    assert server.proc.wait(10) == 0
    assert "1 connection(s) in flight" in server.log()
    assert server.ends() == {"eof": 1}


def test_second_signal_skips_the_grace_period(ns: NetNS, serve: Serve) -> None:
    server = serve("--mode", "echo", "--grace", "60")
    client = ns.call(lambda: tcp_client(12345))
    try:
        client.sendall(b"busy")
        assert client.recv(16) == b"busy"
        server.proc.send_signal(signal.SIGTERM)
        server.wait_log("stopping on SIGTERM")
        rc, took = server.stop(signal.SIGTERM)
        assert rc == 0 and took < 3
        assert recv_all(client) == b""  # closed by the server
    finally:
        client.close()
    assert server.ends() == {"shutdown": 1}


def test_idle_server_stops_at_once(ns: NetNS, serve: Serve) -> None:
    server = serve()
    rc, took = server.stop(signal.SIGTERM)
    assert rc == 0 and took < 2


# --- errors -----------------------------------------------------------------


def test_port_in_use_by_tutorial_server(ns: NetNS, serve: Serve) -> None:
    tutorial = ns.popen([PY, str(FIXTURES / "tutorial_server.py")], stdout=subprocess.DEVNULL)
    ns.wait_listening(12345)
    out = ns.sockscope("serve", *ns.serve_host_args, timeout=20)
    assert out.returncode == 1
    assert _one_error_line(out.stderr) == f"sockscope: port 12345 already in use on {ns.hostname_addr}"
    assert tutorial.poll() is None


def test_port_in_use_by_ourselves_tcp_and_udp(ns: NetNS, serve: Serve) -> None:
    serve("--port", "12350")
    serve("--port", "12350", "--udp")
    tcp = ns.sockscope("serve", "--port", "12350", "--host", "127.0.0.1")
    assert tcp.returncode == 1
    assert _one_error_line(tcp.stderr) == "sockscope: port 12350 already in use on 127.0.0.1"
    udp = ns.sockscope("serve", "--port", "12350", "--udp")
    assert udp.returncode == 1
    assert _one_error_line(udp.stderr) == "sockscope: udp port 12350 already in use on 127.0.0.1"


def test_bad_host(ns: NetNS) -> None:
    out = ns.sockscope("serve", "--host", "no-such-host.invalid", timeout=30)
    assert out.returncode == 4
    assert _one_error_line(out.stderr).startswith("sockscope: cannot resolve host 'no-such-host.invalid': ")
    for bad in ("a..b", "x" * 64):  # not host names (an empty label, one over 63 characters): was a traceback
        out = ns.sockscope("serve", "--host", bad)
        assert out.returncode == 4
        assert _one_error_line(out.stderr) == (  # (in these words under every Python: not the codec's own)
            f"sockscope: cannot resolve host {bad!r}: not a host name "
            f"({'an empty label' if bad == 'a..b' else 'a label of 64 characters, over 63'})")
    out = ns.sockscope("serve", "--host", "192.0.2.1")  # TEST-NET-1: not an address of this namespace
    assert out.returncode == 1
    assert _one_error_line(out.stderr) == (
        "sockscope: cannot bind 192.0.2.1 port 12345: address not available on this host"
    )


def test_usage_errors_exit_255(ns: NetNS) -> None:
    for args in (
        ["--port", "70000"],
        ["--mode", "shout"],
        ["--unix", "/tmp/x", "--host", "::1"],
        ["--udp", "--unix", "/x"],
        ["--idle-timeout", "-1"],
    ):
        out = ns.sockscope("serve", *args)
        assert out.returncode == 255, (args, out.stderr)
        lines = out.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sockscope: serve: "), lines
        assert "see sockscope serve --help" in lines[0] and "Traceback" not in lines[0]


def test_help_documents_exit_statuses() -> None:
    out = subprocess.run([*SOCKSCOPE, "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert "exit status:" in out.stdout and "already in use" in out.stdout
    for option in ("--host", "--port", "--tcp", "--udp", "--unix", "--mode", "--message", "--max-conns",
                   "--idle-timeout", "--backlog"):
        assert option in out.stdout


# --- UNIX sockets -------------------------------------------------------------


def test_unix_path_removed_on_exit(ns: NetNS, serve: Serve, workdir: Path) -> None:
    path = workdir / "greet.sock"
    server = serve("--unix", str(path), "--message", "hello unix")
    assert path.is_socket()
    out = ns.sockscope("connect", "--unix", str(path))
    assert out.stdout == b"hello unix\n"
    rc, _ = server.stop()
    assert rc == 0
    assert not path.exists()


def test_unix_stale_path_is_replaced(ns: NetNS, serve: Serve, workdir: Path) -> None:
    path = workdir / "stale.sock"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))  # a socket file with nobody listening: a crashed run
    crashed.close()
    assert path.is_socket()
    server = serve("--unix", str(path))
    assert "replaced stale UNIX socket" in server.log()
    assert ns.sockscope("connect", "--unix", str(path)).stdout == GREETING + b"\n"
    server.stop()
    assert not path.exists()


def test_unix_live_path_is_refused(ns: NetNS, serve: Serve, workdir: Path) -> None:
    path = workdir / "live.sock"
    first = serve("--unix", str(path))
    out = ns.sockscope("serve", "--unix", str(path))
    assert out.returncode == 1
    assert _one_error_line(out.stderr) == f"sockscope: UNIX socket {path} is in use by a live server"
    assert first.alive()
    assert ns.sockscope("connect", "--unix", str(path)).stdout == GREETING + b"\n"
    first.stop()
    assert not path.exists()


def test_unix_path_that_is_not_a_socket_is_left_alone(ns: NetNS, workdir: Path) -> None:
    path = workdir / "precious.txt"
    path.write_text("keep me")
    out = ns.sockscope("serve", "--unix", str(path))
    assert out.returncode == 1
    assert _one_error_line(out.stderr) == f"sockscope: {path} exists and is not a socket; refusing to replace it"
    assert path.read_text() == "keep me"


def test_unix_abstract_name(ns: NetNS, serve: Serve) -> None:
    name = f"@sockscope-test-{os.getpid()}"
    server = serve("--unix", name, "--mode", "echo")
    out = ns.sockscope("connect", "--unix", name, "--send", "abstract")
    assert out.stdout == b"abstract\n", out.stderr
    server.wait_fds()
