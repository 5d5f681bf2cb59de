"""sockscope.process_connections(pid, kind) side by side with psutil.Process(pid).net_connections(kind).

A process started here, inside a private network namespace, holds a known mix:
TCP listeners (IPv4, IPv6, dual-stack), a connected TCP pair (both ends in the
process, one end dup'ed: psutil reports an inet socket once, at its first fd),
UDP sockets bound and connected, and UNIX sockets (a stream pair, a bound
datagram socket, one dup'ed: a UNIX socket is reported once per fd).  Every
kind psutil knows is compared; so are the errors (a pid that does not exist,
a bad kind, a procfs directory that is none).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from nsutil import Netns

HOLDER = r'''
import os, socket, sys, tempfile
d = tempfile.mkdtemp()
keep = []
def tcp(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM); s.bind(addr); s.listen(4); keep.append(s); return s
l4 = tcp(socket.AF_INET, ("127.0.0.1", 7401))
l6 = tcp(socket.AF_INET6, ("::1", 7402))
dual = tcp(socket.AF_INET6, ("::", 7403))
c = socket.create_connection(("127.0.0.1", 7401)); srv, _ = l4.accept(); keep += [c, srv]
c6 = socket.create_connection(("127.0.0.1", 7403)); srv6, _ = dual.accept(); keep += [c6, srv6]
keep.append(os.dup(c.fileno()))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 7404)); keep.append(u)
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(("::1", 7405)); u6.connect(("::1", 7402))
keep.append(u6)
a, b = socket.socketpair(); keep += [a, b, os.dup(a.fileno())]
x = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); x.bind(os.path.join(d, "x.sock")); keep.append(x)
print("READY", flush=True)
sys.stdin.read()
os.unlink(os.path.join(d, "x.sock")); os.rmdir(d)
'''

COMPARE = r'''
import json, sys, psutil, sockscope
pid = int(sys.argv[1])
out = {}
for kind in ("inet", "inet4", "inet6", "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix", "all"):
    ours = sockscope.process_connections(pid, kind)
    theirs = psutil.Process(pid).net_connections(kind)
    out[kind] = [sorted(map(repr, ours)), sorted(map(repr, theirs)), [type(c).__name__ for c in ours[:1]]]
print(json.dumps(out))
'''


@pytest.fixture
def holder() -> Iterator[tuple[Netns, int]]:
    ns = Netns()
    proc = None
    try:
        proc = ns.popen([sys.executable, "-c", HOLDER], stdin=__import__("subprocess").PIPE,
                        stdout=__import__("subprocess").PIPE)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"READY"
        yield ns, proc.pid
    finally:
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except Exception:
                proc.kill()
                proc.wait()
        ns.delete()
    assert not ns.exists()


def test_process_connections_equal_psutil(holder: tuple[Netns, int]) -> None:
    ns, pid = holder
    r = ns.run([sys.executable, "-c", COMPARE, str(pid)], timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    for kind, (ours, theirs, _type) in got.items():
        assert ours == theirs, kind
    assert len(got["tcp"][0]) == 7  # 3 listeners, 2 pairs' 4 ends: the dup'ed end once
    assert len(got["udp"][0]) == 2
    assert len(got["unix"][0]) == 4  # the pair's ends, one of them twice (dup), the bound socket
    assert got["all"][2] == ["pconn"]


def test_process_connections_errors() -> None:
    import os
    import subprocess

    import psutil

    import sockscope
    from sockscope.errors import SockscopeError
    from sockscope.psutil_api import NoSuchProcess

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that existed and is gone
    with pytest.raises(psutil.NoSuchProcess):
        psutil.Process(child.pid).net_connections()
    with pytest.raises(NoSuchProcess, match=f"no process with pid {child.pid}") as err:
        sockscope.process_connections(child.pid)
    assert isinstance(err.value, SockscopeError) and isinstance(err.value, ProcessLookupError)
    with pytest.raises(ValueError, match="invalid kind"):
        sockscope.process_connections(os.getpid(), "???")
    with pytest.raises(ValueError):
        sockscope.process_connections(-1)
    with pytest.raises(TypeError):
        sockscope.process_connections("1")  # type: ignore[arg-type]
    with pytest.raises(OSError, match="is not a procfs"):
        sockscope.process_connections(os.getpid(), procfs="/nonexistent-procfs")
    assert sockscope.process_connections(os.getpid(), procfs="/proc") == sockscope.process_connections(os.getpid())


def test_process_connections_unreadable_fds(monkeypatch: pytest.MonkeyPatch) -> None:
    """fds listed but not readable: AccessDenied (psutil's), not an empty list; another error
    reading them: CannotInspect saying what it was, not "no such process" nor [].  These are the
    package's one hierarchy's classes, the ones ``who`` raises too."""
    import os
    import socket

    import sockscope
    from sockscope import errors, psutil_api, who
    from sockscope.errors import AccessDenied, CannotInspect, NoSuchProcess

    assert (psutil_api.AccessDenied, psutil_api.NoSuchProcess) == (AccessDenied, NoSuchProcess)
    assert (sockscope.AccessDenied, sockscope.CannotInspect, sockscope.NoSuchProcess) == (
        AccessDenied, CannotInspect, NoSuchProcess)
    assert (who.CannotInspect, who.NoSuchProcess) == (CannotInspect, NoSuchProcess)
    assert issubclass(AccessDenied, CannotInspect) and issubclass(CannotInspect, errors.SockscopeError)

    def denied(path: str, **kw: object) -> str:
        raise PermissionError(13, "Permission denied", path)

    real = os.listdir

    def broken(path: object = ".") -> list[str]:
        if isinstance(path, int):
            raise OSError(5, "Input/output error")
        return real(path)  # type: ignore[arg-type]

    pair = socket.socketpair()
    try:
        assert len(sockscope.process_connections(os.getpid(), "unix")) >= 2
        with monkeypatch.context() as m:
            m.setattr(os, "readlink", denied)
            with pytest.raises(AccessDenied, match=rf"pid {os.getpid()}: permission denied \(") as err:
                sockscope.process_connections(os.getpid(), "unix")
            assert isinstance(err.value, PermissionError)
        with monkeypatch.context() as m:
            m.setattr(os, "listdir", broken)
            with pytest.raises(CannotInspect, match="Input/output error") as err2:
                sockscope.process_connections(os.getpid(), "unix")
            assert not isinstance(err2.value, (AccessDenied, NoSuchProcess, PermissionError))
    finally:
        for sock in pair:
            sock.close()


ONE_UNIX = r'''
import json, os, socket, sys, tempfile
d = tempfile.mkdtemp()
x = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
x.bind(os.path.join(d, "one.sock")); x.listen(1)
import psutil, sockscope
pid = os.getpid()
out = [[sorted(map(repr, f(kind))) for f in (lambda k: sockscope.process_connections(pid, k),
                                              lambda k: psutil.Process(pid).net_connections(k))]
       for kind in ("unix", "all")]
x.close(); os.unlink(os.path.join(d, "one.sock")); os.rmdir(d)
print(json.dumps(out))
'''


def test_process_connections_of_one_unix_socket() -> None:
    """A process holding exactly one socket, a UNIX listener bound to a path: one row, psutil's."""
    ns = Netns()
    try:
        r = ns.run([sys.executable, "-c", ONE_UNIX], timeout=120)
        assert r.returncode == 0, r.stderr
        for ours, theirs in json.loads(r.stdout):
            assert ours == theirs and len(ours) == 1, (ours, theirs)
    finally:
        ns.delete()
    assert not ns.exists()
