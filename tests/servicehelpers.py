"""Namespace, process and socket helpers for the ``serve``/``connect`` tests.

Everything acts only on what it created: a private network namespace made by
``unshare -n`` (held open by one ``sleep`` process that dies with pytest,
through PR_SET_PDEATHSIG), processes this module started (ended by pid), and
temp directories it made.  Nothing is looked up or killed by name.

* :class:`NetNS` – a fresh netns with ``lo`` up (optionally also a private
  mount namespace in which a given file is ``/etc/hosts``).  ``argv()``/``run()``/``popen()``
  run commands inside it through ``nsenter -t PID -n`` (which execs, so the pid
  of a Popen is the pid of the command), and ``call(fn)`` runs ``fn`` in a
  thread that entered the netns with setns(2), so sockets made there live in
  the namespace even when used from the test's own thread afterwards.
* :class:`ServeProc` – ``python -m sockscope serve …`` inside a netns, stderr to
  a log file; waits for the ``listening on`` line, counts the server's fds in
  ``/proc/PID/fd``, parses its per-connection log lines, stops it by signal.
* Host name: on this machine ``socket.gethostname()`` resolves through
  /etc/hosts to 127.0.0.1, which exists in every fresh netns, so the tutorial
  fixtures run byte-for-byte verbatim.  Should the name resolve to some other
  address, :class:`NetNS` adds that address (/32) to ``lo`` *inside the private
  namespace only*, so the verbatim fixtures still work; our server then needs
  ``--host`` (it never binds a non-loopback address by default), and
  :attr:`NetNS.serve_host_args` says so.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FIXTURES = TESTS / "fixtures"
PY = sys.executable
SOCKSCOPE = [PY, "-m", "sockscope"]
LOADGEN = [PY, str(REPO / "bench" / "loadgen.py")]
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")

LOG_LINE = re.compile(
    r"^\S+ (?P<proto>tcp|udp|unix) (?P<peer>\S+) in=(?P<bin>\d+) out=(?P<bout>\d+) "
    r"duration=(?P<duration>[\d.]+)s end=(?P<end>[\w-]+)$"
)


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child if pytest dies, so nothing outlives the run."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def hostname_address() -> str:
    """The IPv4 address ``socket.gethostname()`` resolves to (what the tutorial scripts use)."""
    return socket.gethostbyname(socket.gethostname())


class NetNS:
    """A private network namespace with ``lo`` up; :meth:`close` ends everything started in it."""

    def __init__(self, hosts_file: Path | None = None) -> None:
        self._procs: list[subprocess.Popen[Any]] = []
        self._nsenter = ["-n"]
        unshare = ["unshare", "-n"]
        setup = "ip link set lo up && echo ready && exec sleep 100000"
        if hosts_file is not None:  # a private mount namespace sees this file as /etc/hosts
            unshare += ["-m", "--propagation", "private"]
            setup = f"mount --bind '{hosts_file}' /etc/hosts && {setup}"
            self._nsenter = ["-n", "-m"]
        self.holder = subprocess.Popen(
            [*unshare, "sh", "-c", setup],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline()
        if line.strip() != b"ready":
            self.close()
            raise RuntimeError(f"could not create a network namespace with {' '.join(unshare)}")
        self.pid = self.holder.pid
        if hosts_file is None:
            self.hostname_addr = hostname_address()
        else:
            code = "import socket; print(socket.gethostbyname(socket.gethostname()))"
            self.hostname_addr = self.run([PY, "-c", code], check=True, text=True).stdout.strip()
        self.hostname_is_loopback = ipaddress.ip_address(self.hostname_addr).is_loopback
        if not self.hostname_is_loopback:
            self.run(["ip", "addr", "add", f"{self.hostname_addr}/32", "dev", "lo"], check=True)

    @property
    def serve_host_args(self) -> list[str]:
        """Extra ``serve`` arguments for the tutorial client to reach it ([] here: loopback)."""
        return [] if self.hostname_is_loopback else ["--host", socket.gethostname()]

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed to run inside the namespace."""
        return ["nsenter", "-t", str(self.pid), *self._nsenter, "--", *argv]

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace; it is ended (by pid) in :meth:`close`."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc: subprocess.Popen[Any] = subprocess.Popen(self.argv(argv), preexec_fn=_die_with_parent, **kw)
        self._procs.append(proc)
        return proc

    def run(
        self, argv: Sequence[str], timeout: float = 60, check: bool = False, **kw: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside the namespace to completion (killed on timeout)."""
        kw.setdefault("capture_output", True)
        if "input" not in kw:
            kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(self.argv(argv), timeout=timeout, check=check, preexec_fn=_die_with_parent, **kw)

    def sockscope(self, *args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``python -m sockscope ARGS`` inside the namespace."""
        return self.run([*SOCKSCOPE, *args], timeout=timeout, **kw)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a thread that has entered this namespace; return its result."""
        box: dict[str, Any] = {}

        def target() -> None:
            fd = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller
                box["error"] = exc

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]

    def listening(self, port: int, proto: str = "t") -> list[str]:
        """``ss -H -<proto>ln`` lines for ``port`` inside the namespace."""
        out = self.run(["ss", "-H", f"-{proto}ln", f"sport = :{port}"], check=True, text=True).stdout
        return [line for line in out.splitlines() if line.strip()]

    def wait_listening(self, port: int, timeout: float = 10.0) -> None:
        """Wait until something listens on TCP ``port`` in the namespace."""
        deadline = time.monotonic() + timeout
        while not self.listening(port):
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on port {port} after {timeout}s")
            time.sleep(0.05)

    def close(self) -> None:
        """End every process started here (by pid), then the namespace holder."""
        for proc in [*self._procs, self.holder]:
            stop_process(proc)
        if self.holder.stdout is not None:
            self.holder.stdout.close()


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
    """Signal a process we started (by pid), escalate to SIGKILL, reap it; its exit status."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        except ProcessLookupError:
            pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode


class ServeProc:
    """``sockscope serve`` running inside a namespace, logging to a file."""

    def __init__(self, ns: NetNS, args: Sequence[str], workdir: Path, wait: bool = True) -> None:
        self.ns = ns
        self.args = list(args)
        self.log_path = workdir / f"serve-{time.monotonic_ns()}.log"
        with open(self.log_path, "wb") as log:
            self.proc = ns.popen([*SOCKSCOPE, "serve", *args], stdout=subprocess.DEVNULL, stderr=log)
        self.pid = self.proc.pid
        self.baseline = -1  #: fd count once listening and idle (-1: not waited for)
        if wait:
            self.wait_log("listening on")
            self.baseline = self.fd_count()

    def log(self) -> str:
        """Everything the server wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    def wait_log(self, needle: str, count: int = 1, timeout: float = 10.0) -> str:
        """Wait until ``needle`` occurs ``count`` times in the log; the log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if text.count(needle) >= count:
                return text
            if self.proc.poll() is not None and text.count(needle) < count:
                raise AssertionError(f"serve exited ({self.proc.returncode}) before {needle!r}:\n{text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} x{count} not in the serve log after {timeout}s:\n{text[-3000:]}")
            time.sleep(0.05)

    def connections(self) -> list[dict[str, str]]:
        """The per-connection log lines, parsed."""
        return [m.groupdict() for m in map(LOG_LINE.match, self.log().splitlines()) if m]

    def ends(self) -> dict[str, int]:
        """How many connections ended for each reason."""
        out: dict[str, int] = {}
        for conn in self.connections():
            out[conn["end"]] = out.get(conn["end"], 0) + 1
        return out

    def fd_count(self) -> int:
        """Open file descriptors of the server process right now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def wait_fds(self, target: int | None = None, timeout: float = 10.0) -> int:
        """Wait until the fd count is back to ``target`` (default: the idle baseline); the count."""
        target = self.baseline if target is None else target
        assert target >= 0, "no fd baseline: the server was not waited for"
        deadline = time.monotonic() + timeout
        while True:
            count = self.fd_count()
            if count == target:
                return count
            if time.monotonic() > deadline:
                fds = sorted(os.listdir(f"/proc/{self.pid}/fd"), key=int)
                links = [os.readlink(f"/proc/{self.pid}/fd/{fd}") for fd in fds]
                raise AssertionError(f"server holds {count} fds, baseline {target}: {links}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        """Send ``sig``, wait for the exit; (exit status, seconds it took)."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        return rc, time.monotonic() - started


def tcp_client(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    """A connected blocking TCP socket (call it inside :meth:`NetNS.call`)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    return sock


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until EOF."""
    sock.settimeout(timeout)
    parts: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def close_all(socks: Sequence[socket.socket]) -> None:
    for sock in socks:
        try:
            sock.close()
        except OSError:
            pass


@pytest.fixture
def ns() -> Iterator[NetNS]:
    """A fresh private network namespace, torn down with everything started in it."""
    netns = NetNS()
    try:
        yield netns
    finally:
        netns.close()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A private temp dir, removed after the test."""
    with tempfile.TemporaryDirectory(prefix="sockscope-svc-") as path:
        yield Path(path)


@pytest.fixture
def serve(ns: NetNS, workdir: Path) -> Iterator[Callable[..., ServeProc]]:
    """Factory: ``serve(*args)`` starts ``sockscope serve ARGS`` in ``ns`` (stopped after the test)."""
    started: list[ServeProc] = []

    def start(*args: str, wait: bool = True) -> ServeProc:
        server = ServeProc(ns, args, workdir, wait=wait)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            stop_process(server.proc)
