"""Network-namespace and process helpers for the differential tests.

Everything here acts only on what it created itself: a namespace with a unique
name (``sockscope-t-<hex>``), processes it started (ended by pid), and temp
dirs it made.  Nothing is looked up or killed by name.

* :class:`Netns` makes a private netns with ``lo`` up and a hermetic
  ``/etc/netns/NAME/{hosts,resolv.conf}`` (``ip netns exec`` bind-mounts them
  over ``/etc``), so ``-r`` answers come from a known hosts file and no
  resolver query can leave loopback.  ``run(argv)`` runs a command inside it.
* :class:`Population` starts ``tests/population.py`` inside a netns, waits for
  its ``READY`` line, and can ask it for a fresh TIME-WAIT pair.
* :func:`stop_pids` terminates processes by pid: SIGTERM, wait, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

TESTS_DIR = Path(__file__).resolve().parent
POPULATION_SCRIPT = TESTS_DIR / "population.py"

#: The hosts file every test netns sees: distinct names for v4 and v6 loopback
#: so that ``-r`` output tells them apart.
HOSTS = "127.0.0.1\tlocalhost\n::1\tip6-localhost ip6-loopback\n"
#: Nothing listens on 127.0.0.53:53 inside the netns: any DNS query gets a port
#: unreachable at once, and never leaves loopback.
RESOLV = "nameserver 127.0.0.53\noptions timeout:1 attempts:1\n"


def netns_list() -> list[str]:
    """Names from ``ip netns list`` (the first word of each line)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


class Netns:
    """A private network namespace with a unique name; delete() removes all traces."""

    def __init__(self, prefix: str = "sockscope-t-") -> None:
        self.name = prefix + secrets.token_hex(4)
        self.etc_dir = Path("/etc/netns") / self.name
        self._created = False
        try:
            subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True, text=True)
            self._created = True
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True,
                           capture_output=True, text=True)
            self.etc_dir.mkdir(parents=True, exist_ok=False)
            (self.etc_dir / "hosts").write_text(HOSTS)
            (self.etc_dir / "resolv.conf").write_text(RESOLV)
        except BaseException:
            self.delete()
            raise

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed to run inside this netns."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 60,
            input: bytes | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the netns; stdout/stderr captured as text (bytes kept via surrogateescape)."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run(self.argv(argv), capture_output=True, env=full_env, timeout=timeout,
                              input=input, **kw)
        return subprocess.CompletedProcess(
            proc.args, proc.returncode,
            proc.stdout.decode("utf-8", "surrogateescape"),
            proc.stderr.decode("utf-8", "surrogateescape"),
        )

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(argv), **kw)

    def delete(self) -> None:
        """Delete the namespace and its /etc/netns dir (idempotent)."""
        try:
            if self._created:
                subprocess.run(["ip", "netns", "del", self.name], capture_output=True, text=True)
                self._created = False
        finally:
            shutil.rmtree(self.etc_dir, ignore_errors=True)

    def exists(self) -> bool:
        return self.name in netns_list()


def proc_identity(pid: int) -> str | None:
    """``pid``'s start time (field 22 of /proc/PID/stat): tells a pid from a reused one."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def stop_pids(pids: dict[int, str | None], timeout: float = 5.0) -> None:
    """SIGTERM each pid we started, wait up to ``timeout``, then SIGKILL the rest.

    ``pids`` maps pid -> its start time as recorded when we started it; a pid
    whose start time changed is someone else's now and is left alone.
    """
    def ours(pid: int) -> bool:
        ident = proc_identity(pid)
        return ident is not None and (pids[pid] is None or ident == pids[pid]) and _alive(pid)

    alive = []
    for pid in pids:
        if ours(pid):
            try:
                os.kill(pid, signal.SIGTERM)
                alive.append(pid)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if ours(pid)]
        if alive:
            time.sleep(0.02)
    for pid in alive:
        if ours(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (reaps it if it is our child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child (the population's own child): look at /proc
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


@contextmanager
def forked_copy() -> Iterator[int]:
    """A forked copy of this process (so a second holder of every socket here),
    alive until the block ends; its pid."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # holds the inherited sockets until the parent is done
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    try:
        yield child
    finally:
        os.close(w)
        os.waitpid(child, 0)


def end_holders(holders: Sequence[subprocess.Popen[bytes]], spaces: Sequence[Netns] = ()) -> None:
    """End processes a test started to hold sockets (stdin closed, then stopped by pid, waited for),
    then delete the namespaces ``spaces``."""
    for h in holders:
        if h.stdin:
            h.stdin.close()
    stop_pids({h.pid: None for h in holders})
    for h in holders:
        h.wait(timeout=10)
    for ns in spaces:
        ns.delete()


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """One line from ``proc.stdout`` (unbuffered reads), or raise on timeout / EOF."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete line within {timeout} s (got {buf!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            raise EOFError(f"process exited (status {proc.poll()}) before a line; got {buf!r}")
        buf += chunk
    return buf.decode()


@contextmanager
def holding(argv: Sequence[str], timeout: float = 30) -> Iterator[tuple[Netns, subprocess.Popen[bytes], str]]:
    """A private namespace with ``argv`` running in it, and the first line it printed (a holder
    prints one once its sockets are made, then holds them until its stdin closes); the holder
    ended by pid and the namespace deleted on the way out (also on failure)."""
    ns = Netns()
    holder = None
    try:
        holder = ns.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        yield ns, holder, read_line(holder, timeout)
    finally:
        if holder is not None:
            if holder.stdin:
                holder.stdin.close()
            stop_pids({holder.pid: None})
            holder.wait(timeout=10)
        ns.delete()


#: What every scene script gets before its own code: its process name, a socket's
#: inode, the ``WORD {json}`` lines ScriptScene reads, and holding on until the
#: test closes its stdin.
SCENE_HELPERS = r'''
import json, os, sys

def comm(name):
    with open("/proc/self/comm", "w") as f:
        f.write(name)

def ino(s):
    return os.fstat(s.fileno()).st_ino

def say(word, **kw):
    sys.stdout.write(word + " " + json.dumps(kw) + "\n")
    sys.stdout.flush()

def hold():
    sys.stdin.buffer.read()  # until the test closes our stdin
'''


class ScriptScene:
    """Processes running one script in roles, in a private namespace of their own.

    ``start(role)`` runs ``python SCRIPT ROLE *args`` (the script after
    :data:`SCENE_HELPERS`) and waits for its
    ``READY {json}`` line (a ``"child"`` pid in it is tracked too); ``expect``
    reads the next ``WORD {json}`` line of a role.  ``close()`` ends every
    process (stdin closed, then by pid), deletes the namespace and the script's
    directory, also after a failure."""

    def __init__(self, script: str, prefix: str) -> None:
        self.netns = Netns()
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.script = os.path.join(self.tmp, "scene.py")
        Path(self.script).write_text(SCENE_HELPERS + script)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ids: dict[int, str | None] = {}
        self.info: dict[str, dict[str, Any]] = {}

    def start(self, role: str, *args: str) -> dict[str, Any]:
        p = self.netns.popen([sys.executable, self.script, role, *args], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
        self.procs.append(p)
        self.ids[p.pid] = proc_identity(p.pid)
        line = read_line(p, 20)
        assert line.startswith("READY "), line
        info: dict[str, Any] = json.loads(line[6:])
        if "child" in info:
            self.ids[info["child"]] = proc_identity(info["child"])
        self.info[role] = info
        return info

    def expect(self, role: str, word: str) -> dict[str, Any]:
        """The next line of ``role``, which must be ``WORD {json}``; its data joins the role's info."""
        p = self.procs[list(self.info).index(role)]
        line = read_line(p, 20)
        assert line.startswith(word + " "), line
        data: dict[str, Any] = json.loads(line[len(word) + 1 :])
        self.info[role].update(data)
        return data

    def close(self) -> None:
        try:
            for p in self.procs:
                if p.stdin is not None:
                    try:
                        p.stdin.close()
                    except OSError:
                        pass
            for p in self.procs:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
                if p.stdout is not None:
                    p.stdout.close()
            stop_pids(self.ids)
        finally:
            self.netns.delete()
            shutil.rmtree(self.tmp, ignore_errors=True)

    @classmethod
    @contextmanager
    def running(cls, script: str, prefix: str, *roles: str) -> Iterator[ScriptScene]:
        """A scene with ``roles`` started (root only: the namespace), closed after the block, also
        on failure; leaving nothing behind (namespace, directory) is checked."""
        if os.geteuid() != 0:
            import pytest

            pytest.fail("these tests need root (ip netns add)", pytrace=False)
        sc = cls(script, prefix)
        try:
            for role in roles:
                sc.start(role)
            yield sc
        finally:
            sc.close()
        assert not sc.netns.exists()
        assert not os.path.exists(sc.tmp)


class Population:
    """``tests/population.py`` running inside ``netns``: start(), info, ensure_timewait(), stop()."""

    def __init__(self, netns: Netns, *, python: str = sys.executable, ready_timeout: float = 60) -> None:
        self.netns = netns
        self.tmpdir = tempfile.mkdtemp(prefix="sockscope-pop-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.pids: list[int] = []
        self.identities: dict[int, str | None] = {}
        self.tw_time = 0.0
        try:
            self.proc = netns.popen([python, str(POPULATION_SCRIPT), self.tmpdir],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None)
            # `ip netns exec` execs the command itself: the Popen pid is the population's pid.
            self.pids = [self.proc.pid]
            line = read_line(self.proc, ready_timeout)
            if not line.startswith("READY "):
                raise RuntimeError(f"population did not say READY: {line!r}")
            self.info = json.loads(line[len("READY "):])
            self.pids = list(dict.fromkeys([self.proc.pid, *self.info["pids"]]))
            self.identities = {pid: proc_identity(pid) for pid in self.pids}
            self.tw_time = float(self.info["tw_time"])
        except BaseException:
            self.stop()
            raise

    def ensure_timewait(self, min_left: float = 30.0) -> None:
        """Make a fresh TIME-WAIT pair unless the newest one has ``min_left`` s of its 60 s left."""
        if time.time() - self.tw_time < 60.0 - min_left:
            return
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"tw\n")
        self.proc.stdin.flush()
        line = read_line(self.proc, 15)
        if not line.startswith("OK "):
            raise RuntimeError(f"population refused a TIME-WAIT refresh: {line!r}")
        self.tw_time = float(json.loads(line[3:])["tw_time"])

    def stop(self) -> None:
        """End every process we started (by pid), reap, remove the temp dir."""
        try:
            if self.proc is not None:
                if self.proc.stdin is not None:
                    try:
                        self.proc.stdin.close()  # EOF: the population exits by itself
                    except OSError:
                        pass
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self.proc.terminate()
                    try:
                        self.proc.wait(timeout=3)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait(timeout=5)
                if self.proc.stdout is not None:
                    self.proc.stdout.close()
            # The population's child exits when the main process is gone (its
            # pipe reaches EOF); make sure, by pid and start time.
            others = {pid: ident for pid, ident in self.identities.items()
                      if self.proc is None or pid != self.proc.pid}
            stop_pids(others)
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def alive_pids(self) -> list[int]:
        """Our pids still running (a pid whose start time changed was reused: not ours)."""
        return [pid for pid in self.pids
                if proc_identity(pid) is not None
                and proc_identity(pid) == self.identities.get(pid, proc_identity(pid)) and _alive(pid)]


class AsUser:
    """This checkout's ``python -m sockscope``, runnable as another ``user`` from any checkout location.

    The checkout (and the venv's interpreter) may sit where that user cannot
    read, e.g. a clone under ``/root``.  So the package is copied to a
    temporary directory the user can read (sockscope's core is standard
    library only), and run with the first interpreter (>= 3.11) the user can
    execute: this one, its base, or ``python3`` on ``PATH``; ``-P`` keeps the
    current directory off ``sys.path``.  ``argv(...)`` is the command line,
    ``env`` what to add to the environment; ``close()`` removes the copy.
    ``reason`` says why it cannot work (no interpreter the user can run)."""

    def __init__(self, user: str) -> None:
        import sockscope

        self.user = user
        self.tmp = tempfile.mkdtemp(prefix="sockscope-pkg-")
        os.chmod(self.tmp, 0o755)
        shutil.copytree(Path(sockscope.__file__).resolve().parent, Path(self.tmp) / "sockscope",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for root, dirs, files in os.walk(self.tmp):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        self.env = {"PYTHONPATH": self.tmp, "PYTHONDONTWRITEBYTECODE": "1"}
        self.python = ""
        candidates = [sys.executable, getattr(sys, "_base_executable", ""), os.path.realpath(sys.executable),
                      shutil.which("python3") or "", "/usr/bin/python3"]
        for exe in dict.fromkeys(c for c in candidates if c):
            probe = subprocess.run(
                [*self._setpriv(), exe, "-P", "-c",
                 "import sys, sockscope; assert sys.version_info >= (3, 11); print(sockscope.__file__)"],
                capture_output=True, text=True, env={**os.environ, **self.env}, cwd=self.tmp)
            if probe.returncode == 0 and probe.stdout.strip().startswith(self.tmp + "/"):
                self.python = exe
                break
        self.reason = "" if self.python else f"no Python >= 3.11 that user {user} can run"

    def _setpriv(self) -> list[str]:
        return ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--clear-groups"]

    def argv(self, *args: str) -> list[str]:
        return [*self._setpriv(), self.python, "-P", "-m", "sockscope", *args]

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
