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
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nsutil import ScriptScene, read_line  # noqa: E402

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

    def who(self, *argv: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [*SOCKSCOPE, "who", *argv]
        if user is not None:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
        return self.netns.run(cmd, timeout=60, env={"PYTHONIOENCODING": "utf-8"})

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
    assert r.stderr == f"sockscope: no socket matches :{FREE_PORT}\n"
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
    assert r.stderr == f"sockscope: no such process: {info['pid']}\n"


def test_bad_target_is_a_usage_error(scene: Scene) -> None:
    r = scene.who("what?")
    assert r.returncode == 255
    assert r.stderr.startswith("sockscope: cannot understand target 'what?'")
    assert scene.who(":99999").returncode == 255


def test_without_root_shows_what_it_can(scene: Scene) -> None:
    srv = scene.info["server"]
    r = scene.who("--json", f":{TCP_PORT}", user="65534")
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
    r = scene.who(str(srv["pid"]), user="65534")
    assert r.returncode == 1
    assert "permission denied" in r.stderr and "run as root" in r.stderr
