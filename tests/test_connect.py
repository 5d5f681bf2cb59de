"""``sockscope connect`` against real servers in a private network namespace.

The CLI runs as a subprocess (``python -m sockscope connect``) inside a fresh
``unshare -n`` namespace; the servers are the verbatim tutorial server, our own
``sockscope serve``, or plain sockets made inside the namespace by the test.
The percentile maths of :mod:`sockscope.services.stats` is checked directly.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sockscope.services.stats import format_ms, percentile, summarize

from servicehelpers import FIXTURES, PY, SOCKSCOPE, NetNS, ServeProc, ns, serve, workdir

__all__ = ["ns", "serve", "workdir"]  # fixtures, imported for pytest

Serve = Callable[..., ServeProc]
GREETING = b"Thank you for connecting"
ATTEMPT = re.compile(r"^connected to 127\.0\.0\.1:(\d+): seq=(\d+) time=(\d+\.\d{3}) ms$")
SUMMARY = re.compile(r"^min/avg/max/p50/p99 = (\d+\.\d{3})/(\d+\.\d{3})/(\d+\.\d{3})/(\d+\.\d{3})/(\d+\.\d{3}) ms$")


def _one_error_line(stderr: bytes) -> str:
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    return lines[0]


# --- the tutorial pair ------------------------------------------------------


def test_our_client_against_the_tutorial_server(ns: NetNS) -> None:
    ns.popen([PY, str(FIXTURES / "tutorial_server.py")], stdout=subprocess.DEVNULL)
    ns.wait_listening(12345)
    theirs = ns.run([PY, str(FIXTURES / "tutorial_client.py")], timeout=20)
    ours = ns.sockscope("connect", timeout=20)
    assert theirs.returncode == 0 and ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout == GREETING + b"\n"
    assert ours.stderr == b""
    raw = ns.sockscope("connect", "--raw", timeout=20)
    assert raw.stdout == GREETING


def test_explicit_host_and_port_forms(ns: NetNS, serve: Serve) -> None:
    serve("--port", "2345", "--message", "hi")
    for args in (["127.0.0.1", "2345"], ["2345"], [socket.gethostname(), "2345"], ["localhost", "2345"],
                 ["127.0.0.1:2345"], ["localhost:2345"], [f"{socket.gethostname()}:2345"]):
        out = ns.sockscope("connect", *args)
        assert (out.returncode, out.stdout) == (0, b"hi\n"), (args, out.stderr)


def test_one_argument_host_and_port_forms(ns: NetNS, serve: Serve) -> None:
    """``HOST:PORT`` and ``[ADDRESS]:PORT`` as the listing prints them; an IPv6 address alone is a HOST
    (the default port), with or without brackets; a bad port after the colon is a usage error."""
    serve("--host", "::1", "--port", "12345", "--message", "six")
    for args in (["[::1]:12345"], ["::1"], ["[::1]"], ["::1", "12345"], ["[::1]", "12345"]):
        out = ns.sockscope("connect", *args)
        assert (out.returncode, out.stdout) == (0, b"six\n"), (args, out.stderr)
    for bad in ("localhost:", "localhost:99999", "[::1]:x", "127.0.0.1:0"):
        out = ns.sockscope("connect", bad)
        assert out.returncode == 255 and b"argument PORT" in out.stderr and out.stdout == b"", (bad, out.stderr)
    out = ns.sockscope("connect", "[::1]:12345", "12345")
    assert out.returncode == 255 and b"PORT is given too" in out.stderr, out.stderr
    # brackets that do not make [ADDRESS]:PORT: a usage error saying so, as who's and the exporter's
    # (sockscope.hostport.split; before: looked up as a host name, "cannot resolve host")
    out = ns.sockscope("connect", "[::1]x")
    assert out.returncode == 255 and _one_error_line(out.stderr) == (
        "sockscope: connect: argument HOST: missing port in '[::1]x': write [::1]:PORT (see sockscope connect --help)")


def test_an_unbracketed_ipv6_address_with_what_looks_like_a_port_gets_a_hint(ns: NetNS) -> None:
    """``::1:9`` is the IPv6 address ::1:9 (port 12345), as ncat and getaddrinfo read it; when that
    connection fails, the one line says how port 9 of ::1 is written.  No hint where the port was
    given, the address was bracketed, or its last group is no decimal number."""
    out = ns.sockscope("connect", "--timeout", "2", "::1:9")
    assert out.returncode != 0 and _one_error_line(out.stderr).endswith(
        "(for port 9 of ::1, write [::1]:9)"), out.stderr
    assert _one_error_line(out.stderr).startswith("sockscope: cannot connect to [::1:9]:12345 ")
    for args in (["::1"], ["[::1]:9"], ["::1:9", "7"], ["::1:ab"]):
        out = ns.sockscope("connect", "--timeout", "2", *args)
        assert out.returncode != 0 and "for port" not in _one_error_line(out.stderr), (args, out.stderr)


# --- sending ------------------------------------------------------------------


def test_send_text_stdin_and_file(ns: NetNS, serve: Serve, workdir: Path) -> None:
    serve("--mode", "echo")
    assert ns.sockscope("connect", "--send", "héllo").stdout == "héllo\n".encode()
    assert ns.sockscope("connect", "--send", "line\n").stdout == b"line\n"  # no newline added twice
    assert ns.sockscope("connect", "--send-file", "-", input=b"from stdin").stdout == b"from stdin\n"
    blob = os.urandom(MiB := 1 << 20)
    (workdir / "blob").write_bytes(blob)
    out = ns.sockscope("connect", "--send-file", str(workdir / "blob"), "--raw")
    assert out.returncode == 0 and out.stdout == blob and len(blob) == MiB


def test_greeting_is_printed_even_when_we_send(ns: NetNS, serve: Serve) -> None:
    server = serve()
    out = ns.sockscope("connect", "--send", "x" * 100_000)
    assert out.returncode == 0, out.stderr
    assert out.stdout == GREETING + b"\n"
    server.wait_fds()


def test_unreadable_send_file_exits_2(ns: NetNS, serve: Serve, workdir: Path) -> None:
    serve("--mode", "echo")
    out = ns.sockscope("connect", "--send-file", str(workdir / "missing"))
    assert out.returncode == 2
    assert _one_error_line(out.stderr) == f"sockscope: cannot read {workdir / 'missing'}: no such file or directory"


# --- errors -----------------------------------------------------------------


def test_refused(ns: NetNS) -> None:
    out = ns.sockscope("connect", "127.0.0.1", "9")
    assert out.returncode == 1
    assert _one_error_line(out.stderr) == "sockscope: cannot connect to 127.0.0.1:9: connection refused"
    assert out.stdout == b""


def test_refused_by_name_mentions_the_address(ns: NetNS) -> None:
    out = ns.sockscope("connect", "localhost", "9")
    assert out.returncode == 1
    assert _one_error_line(out.stderr) == "sockscope: cannot connect to localhost:9 (127.0.0.1:9): connection refused"


def test_host_that_does_not_resolve(ns: NetNS) -> None:
    out = ns.sockscope("connect", "no-such-host.invalid", "80", timeout=30)
    assert out.returncode == 4
    assert _one_error_line(out.stderr).startswith("sockscope: cannot resolve host 'no-such-host.invalid': ")
    for args in (["a..b", "80"], ["x" * 64 + ":80"]):  # not host names: was a traceback
        out = ns.sockscope("connect", *args)
        assert out.returncode == 4, (args, out.stderr)
        fault = "an empty label" if args[0] == "a..b" else "a label of 64 characters, over 63"
        assert _one_error_line(out.stderr) == (f"sockscope: cannot resolve host {args[0].split(':')[0]!r}: "
                                               f"not a host name ({fault})"), out.stderr


def test_connect_timeout(ns: NetNS) -> None:
    """A listener whose accept queue is full drops SYNs: the connect itself times out."""

    def jam() -> list[socket.socket]:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 4000))
        listener.listen(0)
        held = [listener]
        for _ in range(3):  # fill the accept queue; later SYNs are dropped
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", 4000))
            held.append(c)
        time.sleep(0.2)
        return held

    held = ns.call(jam)
    try:
        started = time.monotonic()
        out = ns.sockscope("connect", "127.0.0.1", "4000", "--timeout", "0.5")
        took = time.monotonic() - started
        assert out.returncode == 3, out.stderr
        assert _one_error_line(out.stderr) == "sockscope: cannot connect to 127.0.0.1:4000: timed out after 0.5s"
        assert took < 5
    finally:
        for s in held:
            s.close()


def test_timeout_waiting_for_data(ns: NetNS) -> None:
    def silent() -> socket.socket:
        s = socket.socket()
        s.bind(("127.0.0.1", 4001))
        s.listen(8)  # connections complete in the kernel; nobody ever writes
        return s

    listener = ns.call(silent)
    try:
        out = ns.sockscope("connect", "127.0.0.1", "4001", "--timeout", "0.5")
        assert out.returncode == 3
        assert _one_error_line(out.stderr) == "sockscope: 127.0.0.1:4001: no data for 0.5s"
    finally:
        listener.close()


def test_unix_missing_path_is_refused(ns: NetNS, workdir: Path) -> None:
    out = ns.sockscope("connect", "--unix", str(workdir / "nope.sock"))
    assert out.returncode == 1
    assert _one_error_line(out.stderr) == (
        f"sockscope: cannot connect to {workdir / 'nope.sock'}: no such file or directory"
    )


def test_usage_errors_exit_255(ns: NetNS) -> None:
    for args in (
        ["--unix", "/x", "localhost"],
        ["localhost", "70000"],
        ["localhost", "http"],
        ["--send", "a", "--send-file", "b"],
        ["--count", "3", "--send", "x"],
        ["--count", "0"],
        ["--count", "9" * 21],  # more than any count (ping's bound: a C long's), refused at once
        ["--count", "9" * 5000],
    ):
        out = ns.sockscope("connect", *args)
        assert out.returncode == 255, (args, out.stderr)
        lines = out.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sockscope: connect: "), lines
        assert "see sockscope connect --help" in lines[0] and "Traceback" not in lines[0]


def test_help_documents_exit_statuses() -> None:
    out = subprocess.run([*SOCKSCOPE, "connect", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for line in ("0  success", "1  connection refused", "3  timed out", "4  host name does not resolve"):
        assert line in out.stdout


# --- UDP --------------------------------------------------------------------


def test_udp_greet_echo_refused_and_silent(ns: NetNS, serve: Serve) -> None:
    serve("--udp")
    serve("--udp", "--mode", "echo", "--port", "12346")
    assert ns.sockscope("connect", "--udp").stdout == GREETING + b"\n"
    assert ns.sockscope("connect", "--udp", "127.0.0.1", "12346", "--send", "dgram").stdout == b"dgram\n"
    refused = ns.sockscope("connect", "--udp", "127.0.0.1", "9", "--send", "x")
    assert refused.returncode == 1
    assert _one_error_line(refused.stderr) == "sockscope: 127.0.0.1:9: connection refused"
    too_big = ns.sockscope("connect", "--udp", "127.0.0.1", "12346", "--send-file", "-", input=b"x" * 70000)
    assert too_big.returncode == 2

    def mute() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 4002))
        return s

    sink = ns.call(mute)
    try:
        silent = ns.sockscope("connect", "--udp", "127.0.0.1", "4002", "--timeout", "0.3")
        assert silent.returncode == 3
        assert _one_error_line(silent.stderr) == "sockscope: 127.0.0.1:4002: no reply within 0.3s"
    finally:
        sink.close()


# --- tcping -----------------------------------------------------------------


def test_tcping_counts_and_summary(ns: NetNS, serve: Serve) -> None:
    server = serve()
    out = ns.sockscope("connect", "127.0.0.1", "--count", "5", "--interval", "0.05")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "TCPING 127.0.0.1:12345"
    attempts = [ATTEMPT.match(line) for line in lines[1:6]]
    assert all(attempts), lines
    assert [int(m.group(2)) for m in attempts if m] == [1, 2, 3, 4, 5]
    times = [float(m.group(3)) for m in attempts if m]
    assert lines[6] == ""
    assert lines[7] == "--- 127.0.0.1:12345 tcping statistics ---"
    assert lines[8] == "5 attempts, 5 connected, 0 failed"
    summary = SUMMARY.match(lines[9])
    assert summary, lines[9]
    lo, avg, hi, p50, p99 = (float(g) for g in summary.groups())
    assert lo == min(times) and hi == max(times) and p99 == max(times)
    assert p50 == sorted(times)[2] and lo <= avg <= hi
    assert len(lines) == 10
    server.wait_log(" end=", count=5)
    server.wait_fds()


def test_tcping_failures(ns: NetNS) -> None:
    out = ns.sockscope("connect", "127.0.0.1", "9", "-c", "3", "-i", "0")
    assert out.returncode == 1
    lines = out.stdout.decode().splitlines()
    assert lines[1:4] == [f"127.0.0.1:9: seq={i} connection refused" for i in (1, 2, 3)]
    assert lines[-2:] == ["--- 127.0.0.1:9 tcping statistics ---", "3 attempts, 0 connected, 3 failed"]


def test_tcping_until_interrupted(ns: NetNS, serve: Serve) -> None:
    serve()
    proc = ns.popen([*SOCKSCOPE, "connect", "127.0.0.1", "--interval", "0.1"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    seen = [proc.stdout.readline() for _ in range(4)]  # header + 3 attempts
    assert all(ATTEMPT.match(line.decode().rstrip("\n")) for line in seen[1:]), seen
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    tail = rest.decode().splitlines()
    assert "--- 127.0.0.1:12345 tcping statistics ---" in tail
    counts = re.search(r"^(\d+) attempts, (\d+) connected, 0 failed$", rest.decode(), re.M)
    assert counts and int(counts.group(1)) >= 3 and counts.group(1) == counts.group(2)


def test_udping_and_unix_ping(ns: NetNS, serve: Serve, workdir: Path) -> None:
    serve("--udp", "--mode", "echo")
    out = ns.sockscope("connect", "--udp", "127.0.0.1", "-c", "3", "-i", "0", "--send", "p")
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert text.count("reply from 127.0.0.1:12345: seq=") == 3 and "3 attempts, 3 replied, 0 failed" in text
    path = str(workdir / "u.sock")
    serve("--unix", path)
    out = ns.sockscope("connect", "--unix", path, "-c", "2", "-i", "0")
    assert out.returncode == 0 and "2 attempts, 2 connected, 0 failed" in out.stdout.decode()


# --- statistics -------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert percentile(list(map(float, range(1, 101))), 99) == 99.0
    assert percentile([5.0], 50) == 5.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_summary_line() -> None:
    s = summarize([0.003, 0.001, 0.002])
    assert s is not None
    assert (s.count, s.min, s.max, s.p50) == (3, 0.001, 0.003, 0.002)
    assert s.line() == "min/avg/max/p50/p99 = 1.000/2.000/3.000/2.000/3.000 ms"
    assert summarize([]) is None
    assert format_ms(0.000142) == "0.142"
