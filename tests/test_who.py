"""``sockscope who``: real processes and sockets in a private network namespace.

A module-scoped *scene* runs in its own netns (``sockscope-t-<hex>``):

* ``who-server`` listens on TCP 127.0.0.1:7100, UDP 127.0.0.1:7200, a UNIX
  path and an abstract name, then forks ``who-shared``, which keeps only the
  TCP listener (a socket shared by two processes);
* ``who-client`` connects to all three (TCP, UNIX path, connected UDP);
* ``who-pair`` makes a UNIX socketpair and forks ``who-pair-child``; each
  keeps one end (a socketpair across a fork).

Every process reports its pids and socket inodes (``fstat``), so the chains
``who`` prints are checked against the truth.  Teardown ends every process by
pid (stdin EOF, then signals) and deletes the netns, also on failure.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nsutil import AsUser, ScriptScene, read_line  # noqa: E402

SOCKSCOPE = [sys.executable, "-m", "sockscope"]
TCP_PORT, UDP_PORT, FREE_PORT = 7100, 7200, 7999
ABSTRACT = "sockscope-who-test"

SCENE = r'''
import json, os, socket, sys
A4, U = socket.AF_INET, socket.AF_UNIX

role, tmp = sys.argv[1], sys.argv[2]
if role == "server":
    comm("who-server")
    lst = socket.socket(A4, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 7100))
    lst.listen(8)
    udp = socket.socket(A4, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 7200))
    ul = socket.socket(U, socket.SOCK_STREAM)
    ul.bind(tmp + "/who.sock")
    ul.listen(4)
    ab = socket.socket(U, socket.SOCK_STREAM)
    ab.bind("\0sockscope-who-test")
    ab.listen(4)
    dual = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)  # [::]:7101, dual-stack
    dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    dual.bind(("::", 7101))
    dual.listen(4)
    child = os.fork()
    if child == 0:
        comm("who-shared")
        for s in (udp, ul, ab, dual):
            s.close()
        hold()
        os._exit(0)
    say("READY", pid=os.getpid(), child=child, listener=ino(lst), udp=ino(udp), unix_listener=ino(ul),
        abstract=ino(ab), listener_fd=lst.fileno(), dual=ino(dual))
    a, _ = lst.accept()
    ua, _ = ul.accept()
    data, addr = udp.recvfrom(100)
    da, _ = dual.accept()
    say("ACCEPTED", tcp=ino(a), tcp_fd=a.fileno(), unix=ino(ua), unix_fd=ua.fileno(), dual_acc=ino(da))
    hold()
elif role == "client":
    comm("who-client")
    c = socket.create_connection(("127.0.0.1", 7100))
    u = socket.socket(U, socket.SOCK_STREAM)
    u.connect(tmp + "/who.sock")
    d = socket.socket(A4, socket.SOCK_DGRAM)
    d.connect(("127.0.0.1", 7200))
    d.send(b"hi")
    v = socket.create_connection(("127.0.0.1", 7101))
    say("READY", pid=os.getpid(), tcp=ino(c), tcp_fd=c.fileno(), tcp_port=c.getsockname()[1],
        unix=ino(u), unix_fd=u.fileno(), udp=ino(d), udp_port=d.getsockname()[1], dual=ino(v))
    hold()
elif role == "pair":
    comm("who-pair")
    a, b = socket.socketpair()
    child = os.fork()
    if child == 0:
        comm("who-pair-child")
        a.close()
        hold()
        os._exit(0)
    b_ino = ino(b)
    b.close()
    say("READY", pid=os.getpid(), child=child, mine=ino(a), mine_fd=a.fileno(), theirs=b_ino)
    hold()
elif role == "edge":
    # what the listing prints in its less common shapes: a scoped link-local
    # listener, a v4-mapped connection, a device-bound IPv4 listener, UNIX
    # names with a newline, a byte that is not UTF-8, a printable non-ASCII
    comm("who-edge")
    A6 = socket.AF_INET6
    ll = socket.socket(A6, socket.SOCK_STREAM)
    ll.bind(("fe80::1", 9000, 0, socket.if_nametoindex("v0")))
    ll.listen(4)
    dual = socket.socket(A6, socket.SOCK_STREAM)
    dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    dual.bind(("::", 9003))
    dual.listen(4)
    mc = socket.create_connection(("127.0.0.1", 9003))
    ma, _ = dual.accept()
    lo = socket.socket(A4, socket.SOCK_STREAM)
    lo.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
    lo.bind(("127.0.0.1", 9999))
    lo.listen(4)
    names = {"newline": os.fsencode(tmp) + b"/odd\nname.sock", "raw": os.fsencode(tmp) + b"/raw-\xff.sock",
             "cafe": os.fsencode(tmp) + "/café.sock".encode()}
    unix = {}
    for key, path in names.items():
        u = socket.socket(U, socket.SOCK_STREAM)
        u.bind(path)
        u.listen(4)
        unix[key] = u
    twin = socket.socket(A4, socket.SOCK_DGRAM)  # held by the forked twin only
    twin.bind(("127.0.0.1", 9101))
    child = os.fork()
    if child == 0:  # same name (comm), one socket
        for s in (ll, dual, mc, ma, lo, *unix.values()):
            s.close()
        hold()
        os._exit(0)
    say("READY", pid=os.getpid(), child=child, ll=ino(ll), dual=ino(dual), mapped_client=ino(mc),
        mapped=ino(ma), mapped_port=mc.getsockname()[1], lo=ino(lo), twin=ino(twin),
        **{k: ino(u) for k, u in unix.items()})
    twin.close()
    hold()
elif role == "sleeper":
    s = socket.socket(A4, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    t = socket.socket(A4, socket.SOCK_STREAM)  # unbound: in no socket table
    say("READY", pid=os.getpid(), udp=ino(s), unbound=ino(t), unbound_fd=t.fileno())
    hold()
'''


class Scene(ScriptScene):
    """The processes of the scene; ``who(argv)`` runs ``sockscope who`` in the netns."""

    def __init__(self) -> None:
        super().__init__(SCENE, "sockscope-who-")

    def start(self, role: str, *args: str) -> dict[str, Any]:
        return super().start(role, self.tmp, *args)  # the scene keeps its files beside the script

    def who(self, *argv: str, user: AsUser | None = None,
            encoding: str = "utf-8") -> subprocess.CompletedProcess[str]:
        env = {"PYTHONIOENCODING": encoding}
        if user is not None:  # as another user, from a copy that user can read
            return self.netns.run(user.argv("who", *argv), timeout=60, env={**env, **user.env}, cwd=user.tmp)
        return self.netns.run([*SOCKSCOPE, "who", *argv], timeout=60, env=env)

    def who_json(self, *argv: str) -> dict[str, Any]:
        r = self.who("--json", *argv)
        assert r.returncode == 0, r.stderr
        data: dict[str, Any] = json.loads(r.stdout)
        return data


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    if os.geteuid() != 0:
        pytest.fail("these tests need root (ip netns add)", pytrace=False)
    sc = Scene()
    try:
        sc.start("server")
        sc.start("client")
        sc.expect("server", "ACCEPTED")
        sc.start("pair")
        for cmd in (["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                    ["ip", "link", "set", "v0", "up"], ["ip", "link", "set", "v1", "up"],
                    ["ip", "addr", "add", "fe80::1/64", "dev", "v0", "nodad"]):
            r = sc.netns.run(cmd)
            assert r.returncode == 0, (cmd, r.stderr)
        sc.start("edge")
        yield sc
    finally:
        sc.close()
    assert not sc.netns.exists()
    assert not os.path.exists(sc.tmp)
    assert not _running(sc.ids), "scene processes left behind"


def _running(ids: dict[int, str | None], wait: float = 5.0) -> list[int]:
    """Those of our pids (same start time) still running (not zombies) after ``wait`` s."""
    import time

    deadline = time.monotonic() + wait
    while True:
        left = []
        for pid, ident in ids.items():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and (ident is None or fields[19] == ident):
                left.append(pid)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _by_inode(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {m["socket"]["inode"]: m for m in report["matches"]}


def _pids(end: dict[str, Any]) -> list[tuple[int, str, int]]:
    return [(p["pid"], p["name"], p["fd"]) for p in end["processes"]]


# --------------------------------------------------------------------------


def test_port_both_sides(scene: Scene) -> None:
    srv, cli = scene.info["server"], scene.info["client"]
    rep = scene.who_json(f":{TCP_PORT}")
    m = _by_inode(rep)
    # listener (shared), the accepted socket, the client's socket: nothing else
    assert set(m) == {srv["listener"], srv["tcp"], cli["tcp"]}
    # server side: held by who-server, peer is the client's socket held by who-client
    s = m[srv["tcp"]]
    assert _pids(s) == [(srv["pid"], "who-server", srv["tcp_fd"])]
    assert s["socket"]["state"] == "ESTAB" and s["socket"]["local_port"] == TCP_PORT
    assert s["peer"]["where"] == "local"
    assert [p["socket"]["inode"] for p in s["peer"]["sockets"]] == [cli["tcp"]]
    assert _pids(s["peer"]["sockets"][0]) == [(cli["pid"], "who-client", cli["tcp_fd"])]
    # client side, the mirror image
    c = m[cli["tcp"]]
    assert _pids(c) == [(cli["pid"], "who-client", cli["tcp_fd"])]
    assert c["socket"]["local_port"] == cli["tcp_port"] and c["socket"]["peer_port"] == TCP_PORT
    assert [p["socket"]["inode"] for p in c["peer"]["sockets"]] == [srv["tcp"]]
    assert _pids(c["peer"]["sockets"][0])[0][:2] == (srv["pid"], "who-server")
    # process details: user and command line
    proc = c["processes"][0]
    assert proc["user"] == "root" and proc["uid"] == 0
    assert proc["cmdline"][-3:] == [scene.script, "client", scene.tmp]


def test_port_text_output(scene: Scene) -> None:
    srv, cli = scene.info["server"], scene.info["client"]
    r = scene.who(f":{TCP_PORT}")
    assert r.returncode == 0, r.stderr
    blocks = r.stdout.strip().split("\n\n")
    assert len(blocks) == 3
    client_block = next(b for b in blocks if f"(inode {cli['tcp']})" in b.splitlines()[0])
    lines = client_block.splitlines()
    assert lines[0] == (f"tcp ESTAB  127.0.0.1:{cli['tcp_port']} ↔ 127.0.0.1:{TCP_PORT}  "
                        f"(inode {cli['tcp']})")
    assert lines[1] == f"  process  pid {cli['pid']} who-client  user root  fd {cli['tcp_fd']}"
    assert lines[2].strip().endswith(f"scene.py client {scene.tmp}")
    assert lines[3] == (f"  peer     tcp ESTAB  127.0.0.1:{TCP_PORT} ↔ 127.0.0.1:{cli['tcp_port']}  "
                        f"(inode {srv['tcp']})")
    assert lines[4] == f"  process  pid {srv['pid']} who-server  user root  fd {srv['tcp_fd']}"
    listener_block = next(b for b in blocks if "LISTEN" in b.splitlines()[0])
    assert "  peer     none (listening)" in listener_block.splitlines()


def test_host_port_and_pid_from_the_client_side(scene: Scene) -> None:
    srv, cli = scene.info["server"], scene.info["client"]
    # the client's own port: only the client's socket and the server's accepted one
    m = _by_inode(scene.who_json(f"127.0.0.1:{cli['tcp_port']}"))
    assert set(m) == {cli["tcp"], srv["tcp"]}
    # no socket of that port on another address
    r = scene.who(f"127.0.0.2:{cli['tcp_port']}")
    assert r.returncode == 1
    # the client's pid: its four sockets in fd order, each with the server at the other end
    rep = scene.who_json(str(cli["pid"]))
    got = [x["socket"]["inode"] for x in rep["matches"]]
    assert got == [cli["tcp"], cli["unix"], cli["udp"], cli["dual"]]
    fds = [x["processes"][0]["fd"] for x in rep["matches"]]
    assert fds == sorted(fds) and fds[:2] == [cli["tcp_fd"], cli["unix_fd"]]
    peers = {x["socket"]["inode"]: x["peer"] for x in rep["matches"]}
    assert [_pids(p)[0][0] for p in peers[cli["tcp"]]["sockets"]] == [srv["pid"]]
    assert [p["socket"]["inode"] for p in peers[cli["unix"]]["sockets"]] == [srv["unix"]]
    # connected UDP client -> the server's unconnected socket
    assert [p["socket"]["inode"] for p in peers[cli["udp"]]["sockets"]] == [srv["udp"]]
    assert rep["unresolved"] == []


def test_wildcard_listener_and_v4_mapped_peer(scene: Scene) -> None:
    srv, cli = scene.info["server"], scene.info["client"]
    # 127.0.0.1:7101 is answered by the [::]:7101 listener; its accepted socket
    # is IPv6 with v4-mapped addresses, the client's is IPv4
    m = _by_inode(scene.who_json("127.0.0.1:7101"))
    assert set(m) == {srv["dual"], srv["dual_acc"], cli["dual"]}
    assert m[srv["dual"]]["socket"]["local_address"] == "::"
    acc = m[srv["dual_acc"]]
    assert acc["socket"]["family"] == "inet6" and acc["socket"]["local_address"] == "::ffff:127.0.0.1"
    assert [p["socket"]["inode"] for p in acc["peer"]["sockets"]] == [cli["dual"]]
    assert [p["socket"]["inode"] for p in m[cli["dual"]]["peer"]["sockets"]] == [srv["dual_acc"]]
    # [::1]:7101 is answered by the same listener, and nothing is connected there
    assert [m["socket"]["inode"] for m in scene.who_json("[::1]:7101")["matches"]] == [srv["dual"]]
    assert scene.who("[::1]:7100").returncode == 1  # 7100 listens on 127.0.0.1 only
    text = scene.who("127.0.0.1:7101").stdout
    assert "tcp LISTEN  *:7101 ↔ *:*" in text  # ss's '*' for a dual-stack wildcard


def test_udp_server_sees_its_connected_client(scene: Scene) -> None:
    srv, cli = scene.info["server"], scene.info["client"]
    m = _by_inode(scene.who_json(f":{UDP_PORT}"))
    assert set(m) == {srv["udp"], cli["udp"]}
    assert m[srv["udp"]]["socket"]["netid"] == "udp"
    assert [p["socket"]["inode"] for p in m[srv["udp"]]["peer"]["sockets"]] == [cli["udp"]]


def test_shared_socket_two_processes(scene: Scene) -> None:
    srv = scene.info["server"]
    m = _by_inode(scene.who_json(f":{TCP_PORT}"))
    lst = m[srv["listener"]]
    assert sorted(_pids(lst)) == sorted([(srv["pid"], "who-server", srv["listener_fd"]),
                                         (srv["child"], "who-shared", srv["listener_fd"])])
    assert lst["socket"]["state"] == "LISTEN" and lst["peer"] == {"where": "none", "sockets": []}
    # asked by the child's pid: only the shared listener
    rep = scene.who_json(str(srv["child"]))
    assert [x["socket"]["inode"] for x in rep["matches"]] == [srv["listener"]]
    assert len(rep["matches"][0]["processes"]) == 2


def test_unix_socketpair_across_fork(scene: Scene) -> None:
    pair = scene.info["pair"]
    rep = scene.who_json(str(pair["pid"]))
    (m,) = rep["matches"]
    assert m["socket"]["inode"] == pair["mine"] and m["socket"]["netid"] == "u_str"
    assert m["socket"]["peer_inode"] == pair["theirs"]
    assert _pids(m) == [(pair["pid"], "who-pair", pair["mine_fd"])]
    assert m["peer"]["where"] == "local"
    (peer,) = m["peer"]["sockets"]
    assert peer["socket"]["inode"] == pair["theirs"]
    assert [p[:2] for p in _pids(peer)] == [(pair["child"], "who-pair-child")]
    # the same from the child's side, and by inode
    (c,) = scene.who_json(str(pair["child"]))["matches"]
    assert c["socket"]["inode"] == pair["theirs"]
    assert _pids(c["peer"]["sockets"][0])[0][0] == pair["pid"]
    (i,) = scene.who_json(f"inode:{pair['theirs']}")["matches"]
    assert _pids(i)[0][0] == pair["child"]


def test_unix_path_and_abstract(scene: Scene) -> None:
    srv, cli = scene.info["server"], scene.info["client"]
    path = os.path.join(scene.tmp, "who.sock")
    m = _by_inode(scene.who_json(path))
    # the listener and the connection accepted from it carry the path
    assert set(m) == {srv["unix_listener"], srv["unix"]}
    acc = m[srv["unix"]]
    assert acc["socket"]["local_address"] == path
    assert [p["socket"]["inode"] for p in acc["peer"]["sockets"]] == [cli["unix"]]
    assert _pids(acc["peer"]["sockets"][0])[0][:2] == (cli["pid"], "who-client")
    (ab,) = scene.who_json("@" + ABSTRACT)["matches"]
    assert ab["socket"]["inode"] == srv["abstract"] and ab["socket"]["state"] == "LISTEN"
    assert _pids(ab)[0][0] == srv["pid"]


def test_no_match_exits_1(scene: Scene) -> None:
    r = scene.who(f":{FREE_PORT}")
    assert r.returncode == 1
    assert r.stdout == ""
    # the scene's namespace is not the only one: the one line says how to look in every one
    assert r.stderr.startswith(f"sockscope: no socket matches :{FREE_PORT} in this network namespace (")
    assert r.stderr.endswith(" --all-netns looks in every one)\n") and r.stderr.count("\n") == 1
    r = scene.who("--all-netns", f":{FREE_PORT}")
    assert r.returncode == 1 and r.stderr == f"sockscope: no socket matches :{FREE_PORT}\n"
    r = scene.who("--json", "@no-such-name")
    assert r.returncode == 1
    assert json.loads(r.stdout)["matches"] == []
    assert "no socket matches @no-such-name" in r.stderr
    r = scene.who(os.path.join(scene.tmp, "nothing.sock"))
    assert r.returncode == 1


def test_vanished_pid(scene: Scene) -> None:
    p = scene.netns.popen([sys.executable, scene.script, "sleeper", scene.tmp],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        info = json.loads(read_line(p, 20)[6:])
        rep = scene.who_json(str(info["pid"]))
        assert [(m["socket"]["inode"], m["processes"][0]["pid"]) for m in rep["matches"]] == \
            [(info["udp"], info["pid"])]
        # the unbound TCP socket is in no table: reported, not hidden
        assert rep["unresolved"] == [{"pid": info["pid"], "fd": info["unbound_fd"], "inode": info["unbound"]}]
        text = scene.who(str(info["pid"])).stdout
        assert f"pid {info['pid']} fd {info['unbound_fd']}: socket inode {info['unbound']} is in none" in text
    finally:
        assert p.stdin is not None and p.stdout is not None
        p.stdin.close()
        p.wait(timeout=10)
        p.stdout.close()
    r = scene.who(str(info["pid"]))
    assert r.returncode == 1
    port = f" (a port is written :{info['pid']})" if info["pid"] <= 65535 else ""
    assert r.stderr == f"sockscope: no such process: {info['pid']}{port}\n"


def test_a_bare_number_that_is_no_process_says_how_to_write_a_port(scene: Scene) -> None:
    """`who 12345` looks for pid 12345 (digits are a PID, as ss's users expect of `who`); where that
    process is not there, or holds no socket, the one line says how a port is written: lsof's and
    ss's users write `:12345`.  A number above any port says nothing of ports."""
    free = _free_pid()
    r = scene.who(str(free))
    assert r.returncode == 1
    assert r.stderr == f"sockscope: no such process: {free}" + (
        f" (a port is written :{free})\n" if free <= 65535 else "\n")
    r = scene.who("2147483647")  # (no pid is that high: pid_max is at most 2^22)
    assert r.returncode == 1 and r.stderr == "sockscope: no such process: 2147483647\n"
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        r = scene.who(str(p.pid))  # alive, no socket
        assert r.returncode == 1
        assert r.stderr == f"sockscope: pid {p.pid} holds no sockets" + (
            f" (a port is written :{p.pid})\n" if p.pid <= 65535 else "\n")
    finally:
        assert p.stdin is not None
        p.stdin.close()
        p.wait(timeout=10)


def _free_pid() -> int:
    """A pid no process has now (the lowest free one above 300, below 65536 where there is one)."""
    for pid in range(300, 65536):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    return 2 ** 22 + 1


def test_bad_target_is_a_usage_error(scene: Scene) -> None:
    r = scene.who("what?")
    assert r.returncode == 255
    assert r.stderr.startswith("sockscope: cannot understand target 'what?'")
    assert scene.who(":99999").returncode == 255


def test_without_root_shows_what_it_can(scene: Scene, nobody: AsUser) -> None:
    srv = scene.info["server"]
    r = scene.who("--json", f":{TCP_PORT}", user=nobody)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["complete"] is False
    m = _by_inode(rep)
    assert srv["listener"] in m  # the sockets are all there ...
    lst = m[srv["listener"]]
    assert lst["processes"] == []  # ... but not who holds them
    assert "run as root" in lst["no_process"]
    assert "could not be read (run as root)" in r.stderr
    # a pid it may not inspect: a clear message, exit 1
    r = scene.who(str(srv["pid"]), user=nobody)
    assert r.returncode == 1
    assert "permission denied" in r.stderr and "run as root" in r.stderr


def test_fds_listed_but_not_readable_are_no_empty_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process whose fd directory lists but whose links cannot be read (even by root: ptrace
    rules, another user namespace) is a clear error, not "holds no sockets"."""
    from sockscope import who
    from sockscope.errors import AccessDenied

    def denied(path: str, **kw: object) -> str:
        raise PermissionError(13, "Permission denied", path)

    pair = socket.socketpair()
    try:
        held = who.pid_sockets(os.getpid())  # this process: its socket pair is there, by fd
        assert {(s.fileno(), os.fstat(s.fileno()).st_ino) for s in pair} <= set(held)
        assert held == sorted(held)
        monkeypatch.setattr(os, "readlink", denied)
        with pytest.raises(who.CannotInspect, match=rf"pid {os.getpid()}: permission denied \(") as err:
            who.pid_sockets(os.getpid())
        assert isinstance(err.value, AccessDenied) and isinstance(err.value, PermissionError)  # (psutil's, too)
    finally:
        for sock in pair:
            sock.close()


def test_fds_unreadable_for_another_reason_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error reading the fd directory other than "gone" or "denied" is said as it is: neither
    "no such process" nor "holds no sockets"."""
    from sockscope import who

    real = os.listdir

    def broken(path: object = ".") -> list[str]:
        if isinstance(path, int):  # the fd directory, opened by the owner walk
            raise OSError(5, "Input/output error")
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "listdir", broken)
    with pytest.raises(who.CannotInspect, match=rf"cannot read /proc/{os.getpid()}/fd: Input/output error"):
        who.pid_sockets(os.getpid())
    with pytest.raises(who.NoSuchProcess):
        who.pid_sockets(2**22 + 1)  # above pid_max: no such process


# --------------------------------------------------------------------------
# ss's address text, scoped and v4-mapped targets, process names, namespaces

ENDPOINTS = r"""
import json, sockscope
from sockscope.render.endpoint import endpoint
out = [[s.netid, endpoint(s, "local"), endpoint(s, "peer")]
       for kind in ("tcp", "udp", "unix") for s in sockscope.sockets(kind)]
print(json.dumps(out))
"""


def _ss_ends(scene: Scene, opts: str, unix: bool) -> set[tuple[str, str, str]]:
    """(netid, local, peer) of each row of ``ss -H opts``: ``addr:port`` (UNIX: ``name inode``)."""
    r = scene.netns.run(["ss", "-H", opts])
    assert r.returncode == 0, r.stderr
    out = set()
    for line in r.stdout.splitlines():
        f = line.split()
        if unix:  # Netid State Recv-Q Send-Q name inode peer peer-inode
            if len(f) == 8:  # (not the two halves of a row a newline in a name cut)
                out.add((f[0], f"{f[4]} {f[5]}", f"{f[6]} {f[7]}"))
        else:
            out.add((f[0], f[4], f[5]))
    return out


def test_endpoint_text_is_ss_text(scene: Scene) -> None:
    """The one endpoint text of who and top is ss's, in every shape the scene has:
    ``*``, ``[::]``, ``[::ffff:127.0.0.1]``, ``%lo``, ``[fe80::1]%v0``, UNIX name + inode."""
    r = scene.netns.run([sys.executable, "-c", ENDPOINTS], env={"PYTHONIOENCODING": "utf-8"})
    assert r.returncode == 0, r.stderr
    ours = {tuple(row) for row in json.loads(r.stdout)}
    inet = {row for row in ours if row[0] in ("tcp", "udp")}
    assert inet == _ss_ends(scene, "-tuan", False)
    for text in ("127.0.0.1%lo:9999", "[fe80::1]%v0:9000", "*:9003", "[::ffff:127.0.0.1]:9003", "[::]:*",
                 "0.0.0.0:*"):
        assert any(text in row for row in inet), text
    # UNIX: ss writes names raw (a newline cuts its row): compare the printable ones
    printable = {row for row in ours if row[0].startswith("u_") and "odd" not in row[1] and "raw-" not in row[1]}
    ss_unix = {row for row in _ss_ends(scene, "-xa", True) if "odd" not in row[1] and "raw-" not in row[1]}
    assert printable == ss_unix
    assert any(row[1].startswith(os.path.join(scene.tmp, "café.sock") + " ") for row in printable)


def test_scoped_and_mapped_targets(scene: Scene) -> None:
    edge = scene.info["edge"]
    # the listing's text for the link-local listener, and the RFC 4007 spelling: the same socket
    for target in ("[fe80::1]%v0:9000", "[fe80::1%v0]:9000", "[fe80::1]:9000"):
        (m,) = scene.who_json(target)["matches"]
        assert m["socket"]["inode"] == edge["ll"], target
    r = scene.who("[fe80::1%v0]:9000")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("tcp LISTEN  [fe80::1]%v0:9000 ↔ [::]:*  (inode"), r.stdout  # the scope is kept
    assert scene.who("[fe80::1%v1]:9000").returncode == 1  # bound to v0: not the socket answering on v1
    # a v4-mapped address as the listing prints it: the accepted socket, its client, the listener
    m = _by_inode(scene.who_json("[::ffff:127.0.0.1]:9003"))
    assert set(m) == {edge["dual"], edge["mapped"], edge["mapped_client"]}
    assert [p["socket"]["inode"] for p in m[edge["mapped"]]["peer"]["sockets"]] == [edge["mapped_client"]]
    text = scene.who(f"[::ffff:127.0.0.1]:{edge['mapped_port']}").stdout
    assert f"tcp ESTAB  [::ffff:127.0.0.1]:9003 ↔ [::ffff:127.0.0.1]:{edge['mapped_port']}  " in text
    # a device-bound IPv4 listener: %lo as ss prints it
    for target in ("127.0.0.1%lo:9999", "127.0.0.1:9999"):
        (m1,) = scene.who_json(target)["matches"]
        assert m1["socket"]["inode"] == edge["lo"]
    assert scene.who("127.0.0.1%v0:9999").returncode == 1
    assert "tcp LISTEN  127.0.0.1%lo:9999 ↔ 0.0.0.0:*" in scene.who(":9999").stdout
    for bad in ("[fe80::1%]:9000", "[fe80::1]%:9000", "[fe80::1%v0]%v0:9000", "[::1]x:1"):
        r = scene.who(bad)
        assert r.returncode == 255 and r.stderr.count("\n") == 1, (bad, r.stderr)


def test_process_name(scene: Scene) -> None:
    edge, pair = scene.info["edge"], scene.info["pair"]
    # two processes named who-edge: every socket of both, by pid then fd
    rep = scene.who_json("who-edge")
    assert rep["kind"] == "process"
    holders = {m["socket"]["inode"]: {p["pid"] for p in m["processes"]} for m in rep["matches"]}
    assert holders[edge["twin"]] == {edge["child"]}
    assert holders[edge["ll"]] == {edge["pid"]}
    assert {edge["ll"], edge["dual"], edge["mapped"], edge["lo"], edge["newline"]} <= set(holders)
    pids = [m["processes"][0]["pid"] for m in rep["matches"]]
    assert pids == sorted(pids)
    # exact names: who-pair is not who-pair-child
    (m,) = scene.who_json("who-pair")["matches"]
    assert m["socket"]["inode"] == pair["mine"]
    r = scene.who("no-such-process")
    assert r.returncode == 1
    assert r.stderr == "sockscope: no process named 'no-such-process' (a host needs a port: HOST:PORT)\n"


def test_bounded_numbers_are_usage_errors(scene: Scene) -> None:
    huge = "9" * 5000  # past Python's 4,300-digit int-string limit
    for target in (f":{huge}", f"127.0.0.1:{huge}", f"inode:{huge}", huge, "4294967296", ":0", "inode:0",
                   f"[::1]:{huge}"):
        r = scene.who(target)
        assert r.returncode == 255, (target[:20], r.stderr[:200])
        assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1 and len(r.stderr) < 300, r.stderr[:300]
    # digits that are not ASCII are no PID (int() would refuse some): a process name, found or not
    r = scene.who("²")
    assert r.returncode == 1 and r.stderr == "sockscope: no process named '²' (a host needs a port: HOST:PORT)\n"


def test_control_characters_and_undecodable_names(scene: Scene) -> None:
    edge = scene.info["edge"]
    path = os.path.join(scene.tmp, "odd\nname.sock")
    r = scene.who(path)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first == f"u_str LISTEN  {scene.tmp}/odd\\x0aname.sock {edge['newline']} ↔ * 0  (inode {edge['newline']})"
    # a name that is not UTF-8, with an ASCII-only output: escaped, never a UnicodeEncodeError
    raw = os.fsdecode(os.fsencode(scene.tmp) + b"/raw-\xff.sock")
    for argv in ((raw,), ("who-edge",), (str(edge["pid"]),), ("--json", raw)):
        r = scene.who(*argv, encoding="ascii")
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr and r.stdout.isascii()
        if argv[0] != "--json":
            assert f"{scene.tmp}/raw-\\xff.sock {edge['raw']}" in r.stdout
            assert "<->" in r.stdout
    assert f"{scene.tmp}/caf\\xe9.sock" in scene.who("who-edge", encoding="ascii").stdout
    # an echoed target with a control character stays on one line
    r = scene.who("@no\nsuch")
    assert r.returncode == 1 and r.stderr.startswith("sockscope: no socket matches @no\\x0asuch in ")
    assert r.stderr.count("\n") == 1


def test_netns_options(scene: Scene) -> None:
    """-N and --all-netns, run from outside the scene's namespace."""
    edge = scene.info["edge"]
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    r = subprocess.run([*SOCKSCOPE, "who", "-N", scene.netns.name, "--json", "[fe80::1%v0]:9000"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [m["socket"]["inode"] for m in json.loads(r.stdout)["matches"]] == [edge["ll"]]
    r = subprocess.run([*SOCKSCOPE, "who", "--all-netns", "[fe80::1]%v0:9000"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (f"tcp LISTEN  [fe80::1]%v0:9000 ↔ [::]:*  (inode {edge['ll']}, netns {scene.netns.name})"
            in r.stdout.splitlines())
    # a PID's sockets across namespaces: found, not "in none of the tables"
    r = subprocess.run([*SOCKSCOPE, "who", "--all-netns", "--json", str(edge["pid"])],
                       capture_output=True, text=True, env=env, timeout=60)
    rep = json.loads(r.stdout)
    assert rep["unresolved"] == [] and edge["ll"] in _by_inode(rep)
    assert {m["socket"]["netns"] for m in rep["matches"] if m["socket"]["family"] != "unix"} == {scene.netns.name}
    r = subprocess.run([*SOCKSCOPE, "who", "-N", "sockscope-no-such-netns", ":1"], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no-such-netns" in r.stderr


def test_usage_errors_exit_255(scene: Scene) -> None:
    for argv in (("--bogus", ":1"), ("-N", "x", "--all-netns", ":1"), ()):
        r = scene.who(*argv)
        assert r.returncode == 255 and r.stderr.count("\n") == 1, (argv, r.stderr)


_PAIR = r"""
import ctypes, socket, sys
port, hold = int(sys.argv[1]), sys.argv[2] == "hold"
if len(sys.argv) > 3:  # the process's name (comm), for ``who NAME``
    ctypes.CDLL(None).prctl(15, sys.argv[3].encode(), 0, 0, 0)  # PR_SET_NAME
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen()
cli = socket.create_connection(("127.0.0.1", port))
conn, _ = srv.accept()
if hold:  # the listener and both ends, until stdin closes
    print("READY", flush=True)
    sys.stdin.read()
else:  # the server's end closes first: it is the one left in TIME-WAIT
    conn.close()
    cli.recv(1)
    cli.close()
    srv.close()
"""


@contextmanager
def _holding(*runs: tuple[Any, list[str]]) -> Iterator[list[str]]:
    """Each ``(netns, argv)`` started in turn inside its namespace, each awaited until it prints
    READY; yields their pids (``ip netns exec`` execs: each pid is the program's own).  On the way
    out their stdin is closed and each is ended by pid."""
    from nsutil import proc_identity, read_line, stop_pids

    procs: list[subprocess.Popen[bytes]] = []
    started: dict[int, str | None] = {}
    try:
        for ns, argv in runs:
            p = ns.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/")
            procs.append(p)
            started[p.pid] = proc_identity(p.pid)
            assert read_line(p, 30).strip() == "READY"
        yield [str(p.pid) for p in procs]
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
        stop_pids(started)
        for p in procs:
            p.wait(timeout=10)


def test_a_loopback_peer_that_is_gone_is_said_closed() -> None:
    """A TIME-WAIT socket whose peer has closed: its peer is "closed", not "in another network
    namespace" (a loopback peer lives in the same one); both text and JSON say so."""
    from nsutil import Netns

    ns = Netns("sockscope-who-tw-")
    try:
        made = ns.run([sys.executable, "-c", _PAIR, "7300", "time-wait"], timeout=30)
        assert made.returncode == 0, made.stderr
        r = ns.run([*SOCKSCOPE, "who", ":7300"])
        assert r.returncode == 0, r.stderr
        assert "TIME-WAIT" in r.stdout
        assert "peer     on this machine, but closed: no socket of this network namespace has that address now" \
            in r.stdout
        assert "another namespace" not in r.stdout
        rep = json.loads(ns.run([*SOCKSCOPE, "who", "--json", ":7300"]).stdout)
        assert [m["peer"] for m in rep["matches"]] == [{"where": "missing", "sockets": []}]
    finally:
        ns.delete()
    assert not ns.exists()


_UNACCEPTED = r"""
import json, os, socket, sys
out = {"pid": os.getpid()}
keep = []
# a deferred-accept listener per family (and IPv4 clients of a dual-stack one: mapped) holds its
# connections' ends as SYN-RECV request sockets; a plain listener that never accepts holds its
# connections in the accept queue: no process holds any of those ends (no inode)
for name, fam, addr, port, client, defer in (("v4", socket.AF_INET, "127.0.0.1", 7301, "127.0.0.1", 1),
                                             ("v6", socket.AF_INET6, "::1", 7301, "::1", 1),
                                             ("mapped", socket.AF_INET6, "::", 7302, "127.0.0.1", 1),
                                             ("queue", socket.AF_INET, "0.0.0.0", 7303, "127.0.0.1", 0)):
    lst = socket.socket(fam)
    if defer:
        lst.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 3600)
    if addr == "::":
        lst.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    lst.bind((addr, port))
    lst.listen()
    c = socket.create_connection((client, port))
    keep += [lst, c]
    out[name] = {"listener": os.fstat(lst.fileno()).st_ino, "fd": lst.fileno(), "client_port": c.getsockname()[1]}
# a connection its server accepted and closed (the client reads nothing and keeps its end): the
# server's end is an orphan in FIN-WAIT-2 on the listener's port, no inode, and no listener holds it
lst = socket.socket()
lst.bind(("127.0.0.1", 7304))
lst.listen()
c = socket.create_connection(("127.0.0.1", 7304))
lst.accept()[0].close()
keep += [lst, c]
out["orphan"] = {"listener": os.fstat(lst.fileno()).st_ino, "client_port": c.getsockname()[1]}
print(json.dumps(out), flush=True)
sys.stdin.read()
"""


def test_a_connection_no_process_holds_yet_names_its_listener() -> None:
    """The server's end of a connection no process has accepted (a SYN-RECV request socket of a
    deferred-accept listener, IPv4, IPv6 and ``::ffff:`` mapped; or one in the accept queue of a
    listener bound to 0.0.0.0) has no process: ``who`` says why, and names the listener that holds
    it with that listener's process, in text and in JSON."""
    from nsutil import Netns, stop_pids

    ns = Netns("sockscope-who-syn-")
    proc = None
    try:
        proc = ns.popen([sys.executable, "-c", _UNACCEPTED], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        made = json.loads(read_line(proc, 30))
        pid = made["pid"]
        for name, port, state in (("v4", 7301, "SYN-RECV"), ("v6", 7301, "SYN-RECV"), ("mapped", 7302, "SYN-RECV"),
                                  ("queue", 7303, "ESTAB")):
            got = made[name]
            for _ in range(50):  # the client's bare ACK is in at once on loopback
                rep = json.loads(ns.run([*SOCKSCOPE, "who", "--json", f":{got['client_port']}"]).stdout)
                unheld = [m for m in rep["matches"] if not m["socket"]["inode"]]
                if unheld:
                    break
            assert len(unheld) == 1, (name, rep)
            m = unheld[0]
            assert m["socket"]["state"] == state and m["socket"]["local_port"] == port, (name, m)
            assert m["processes"] == [] and m["no_process"].startswith("no process yet: "), (name, m)
            assert [lst["socket"]["inode"] for lst in m["listeners"]] == [got["listener"]], (name, m)
            assert [(h["pid"], h["fd"]) for h in m["listeners"][0]["processes"]] == [(pid, got["fd"])], (name, m)
            text = ns.run([*SOCKSCOPE, "who", f":{got['client_port']}"]).stdout
            block = next(b for b in text.split("\n\n")
                         if b.startswith(f"tcp {state} ") and b.splitlines()[0].endswith("(inode 0)"))
            lines = block.splitlines()
            assert lines[1].startswith("  process  no process yet: "), block
            assert lines[2].startswith("  listener tcp LISTEN ") and f"(inode {got['listener']})" in lines[2], block
            assert lines[3].startswith(f"  process  pid {pid} python") and lines[3].endswith(f"fd {got['fd']}"), block
            # the client's end (held) names its peer, the request socket, and through it the listener
            client = next(c for c in rep["matches"] if c["socket"]["inode"])
            assert client["peer"]["sockets"][0]["listeners"][0]["socket"]["inode"] == got["listener"]
        # the orphan on port 7304 is no connection waiting: no listener named, and said so
        got = made["orphan"]
        for _ in range(50):  # the server's FIN and the client's ACK are in at once on loopback
            rep = json.loads(ns.run([*SOCKSCOPE, "who", "--json", f":{got['client_port']}"]).stdout)
            unheld = [m for m in rep["matches"] if not m["socket"]["inode"]]
            if unheld and unheld[0]["socket"]["state"] == "FIN-WAIT-2":
                break
        assert len(unheld) == 1 and unheld[0]["socket"]["state"] == "FIN-WAIT-2", rep
        assert unheld[0]["listeners"] == [] and "orphan" in unheld[0]["no_process"], unheld
        text = ns.run([*SOCKSCOPE, "who", f":{got['client_port']}"]).stdout
        assert "  listener " not in text and "(an orphan)" in text, text
    finally:
        if proc is not None:
            stop_pids({proc.pid: None})
        ns.delete()
    assert not ns.exists()


_UNIX_DGRAM = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
(s.bind if sys.argv[2] == "server" else s.connect)(sys.argv[1])
print("READY", flush=True)
sys.stdin.read()
"""


def test_a_unix_peer_in_another_namespace_is_said_so(tmp_path: Path) -> None:
    """A UNIX socket's peer in another network namespace (a datagram client there connected to
    a path bound here): "in none of this network namespace's tables (closed, or in another
    namespace)", not "closed" alone.  (A stream connection across is no case: the accepted
    socket is made in the client's namespace.)"""
    from nsutil import Netns

    here, there = Netns("sockscope-who-ua-"), Netns("sockscope-who-ub-")
    path = str(tmp_path / "srv.sock")
    try:
        with _holding((here, [sys.executable, "-c", _UNIX_DGRAM, path, "server"]),
                      (there, [sys.executable, "-c", _UNIX_DGRAM, path, "client"])) as (_server, client):
            r = there.run([*SOCKSCOPE, "who", client])
            assert r.returncode == 0, r.stderr
            assert "peer     in none of this network namespace's tables (closed, or in another namespace)" \
                in r.stdout
            rep = json.loads(there.run([*SOCKSCOPE, "who", "--json", client]).stdout)
            assert [m["peer"] for m in rep["matches"]] == [{"where": "missing", "sockets": []}]
    finally:
        here.delete()
        there.delete()
    assert not here.exists() and not there.exists()


def test_a_pid_in_another_namespace_is_looked_up_in_its_own() -> None:
    """``who PID`` from another network namespace than the process's: its sockets are looked up
    in the process's own namespace, and a note on stderr names it; -N says where to look instead."""
    from nsutil import Netns

    ns = Netns("sockscope-who-pn-")
    try:
        with _holding((ns, [sys.executable, "-c", _PAIR, "7400", "hold"])) as (pid,):
            here = subprocess.run([*SOCKSCOPE, "who", "--json", pid], capture_output=True, text=True, timeout=60)
            assert here.returncode == 0, here.stderr
            assert f"sockscope: pid {pid} is in network namespace {ns.name}: its sockets were looked up there" \
                in here.stderr.splitlines()
            rep = json.loads(here.stdout)
            got = sorted((m["socket"]["state"], m["socket"]["local_port"], m["peer"]["where"])
                         for m in rep["matches"])
            # the listener, the accepted socket and the client's, each end's peer found
            assert len(got) == 3 and got[0] == ("ESTAB", 7400, "local") and got[2] == ("LISTEN", 7400, "none"), got
            assert got[1][0] == "ESTAB" and got[1][2] == "local", got
            assert rep["unresolved"] == []
            # told where to look: no note, and the same sockets
            named = subprocess.run([*SOCKSCOPE, "who", "--json", "-N", ns.name, pid], capture_output=True,
                                   text=True, timeout=60)
            assert named.returncode == 0 and "looked up there" not in named.stderr, named.stderr
            assert sorted(m["socket"]["inode"] for m in json.loads(named.stdout)["matches"]) == \
                sorted(m["socket"]["inode"] for m in rep["matches"])
    finally:
        ns.delete()
    assert not ns.exists()


def test_processes_of_a_name_in_other_namespaces() -> None:
    """``who NAME`` from another namespace: processes of that name all in one other namespace
    are looked up there (a note names it); in several, a note says --all-netns looks in every
    one, and their sockets are listed as not in these tables."""
    from nsutil import Netns

    one, two = Netns("sockscope-who-n1-"), Netns("sockscope-who-n2-")
    try:
        with _holding((one, [sys.executable, "-c", _PAIR, "7400", "hold", "who-ns-one"]),
                      (one, [sys.executable, "-c", _PAIR, "7401", "hold", "who-ns-two"]),
                      (two, [sys.executable, "-c", _PAIR, "7400", "hold", "who-ns-two"])):
            r = subprocess.run([*SOCKSCOPE, "who", "--json", "who-ns-one"], capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0, r.stderr
            assert f"sockscope: the processes named 'who-ns-one' are in network namespace {one.name}: their " \
                "sockets were looked up there" in r.stderr.splitlines()
            rep = json.loads(r.stdout)
            assert len(rep["matches"]) == 3 and rep["unresolved"] == []
            assert {m["socket"]["local_port"] for m in rep["matches"]} >= {7400}
            r = subprocess.run([*SOCKSCOPE, "who", "who-ns-two"], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert "sockscope: the processes named 'who-ns-two' live in 2 network namespaces: their sockets " \
                "outside this one are not in these tables (--all-netns looks in every one)" in r.stderr.splitlines()
            assert r.stdout.count("is in none of the socket tables") == 6
            # --all-netns finds all six, each in its namespace
            r = subprocess.run([*SOCKSCOPE, "who", "--json", "--all-netns", "who-ns-two"], capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 0 and "network namespace" not in r.stderr, r.stderr
            rep = json.loads(r.stdout)
            assert sorted(m["socket"]["netns"] for m in rep["matches"]) == [one.name] * 3 + [two.name] * 3
    finally:
        one.delete()
        two.delete()
    assert not one.exists() and not two.exists()


def test_a_namespace_it_may_not_enter_is_said_so(nobody: AsUser) -> None:
    """Without root, ``who PID`` of one's own process in another network namespace cannot enter
    it: a note says so and why, the process's sockets are listed as not in these tables, exit 0."""
    from nsutil import Netns

    ns = Netns("sockscope-who-pu-")
    as_nobody = ["setpriv", f"--reuid={nobody.user}", f"--regid={nobody.user}", "--clear-groups", nobody.python]
    try:
        with _holding((ns, [*as_nobody, "-c", _PAIR, "7400", "hold"])) as (pid,):
            r = subprocess.run(nobody.argv("who", pid), capture_output=True, text=True, timeout=60,
                               env={**os.environ, **nobody.env}, cwd=nobody.tmp)
            assert r.returncode == 0, r.stderr
            note = [line for line in r.stderr.splitlines() if "could not be entered" in line]
            assert len(note) == 1
            assert note[0].startswith(f"sockscope: pid {pid} is in network namespace {ns.name}, ")
            assert "permission denied" in note[0] and note[0].endswith("its sockets there are not in these tables")
            assert r.stdout.count("is in none of the socket tables") == 3  # the listener and both ends
    finally:
        ns.delete()
    assert not ns.exists()
