"""Sweep of ``sockscope who``, the psutil drop-ins and the owner map as a new user meets them.

Each test runs real processes in a private network namespace of its own
(:class:`nsutil.ScriptScene`: every process ended by pid, the namespace and the
scene's files removed, also on failure) and checks sockscope against the truth
the processes report (their pids, fds and socket inodes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nsutil import ScriptScene  # noqa: E402

SOCKSCOPE = [sys.executable, "-m", "sockscope"]

SCENE = r'''
import os, socket, sys

role, tmp = sys.argv[1], sys.argv[2]
U = socket.AF_UNIX
if role == "relative":  # binds "r.sock" by a relative name, from the directory rel/
    os.chdir(tmp + "/rel")
    s = socket.socket(U, socket.SOCK_STREAM)
    s.bind("r.sock")
    s.listen(1)
    say("READY", pid=os.getpid(), inode=ino(s), fd=s.fileno())
    hold()
elif role == "absolute":  # another socket file of the same base name, bound by its full path
    s = socket.socket(U, socket.SOCK_STREAM)
    s.bind(tmp + "/abs/r.sock")
    s.listen(1)
    say("READY", pid=os.getpid(), inode=ino(s), fd=s.fileno())
    hold()
elif role == "bound":  # a TCP socket bound to a port, neither listening nor connected; one unbound
    b = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    b.bind(("127.0.0.1", 9400))
    u = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    say("READY", pid=os.getpid(), inode=ino(b), fd=b.fileno(), unbound=ino(u), unbound_fd=u.fileno())
    hold()
elif role == "nlpacket":  # a netlink socket (bound: a port id) and a packet socket of every ethertype
    n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    n.bind((0, 0))
    p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    say("READY", pid=os.getpid(), netlink=ino(n), packet=ino(p))
    hold()
elif role == "orphaned":  # the leader exits (pthread_exit); a thread goes on holding a listener
    import ctypes, threading
    comm("sweep-orphan")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 9650))
    s.listen(1)
    ready = threading.Event()

    def keep():
        ready.set()
        hold()
        os._exit(0)

    t = threading.Thread(target=keep)
    t.start()
    ready.wait(10)
    say("READY", pid=os.getpid(), tid=t.native_id, inode=ino(s), fd=s.fileno())
    ctypes.CDLL(None).pthread_exit(None)  # (the GIL let go for the call: the thread runs on)
elif role == "thread":  # a listener only a thread of its own fd table holds (unshare(CLONE_FILES))
    import ctypes, threading
    libc = ctypes.CDLL(None, use_errno=True)
    got, done = {}, threading.Event()

    def own_table():
        assert libc.unshare(0x400) == 0, ctypes.get_errno()  # CLONE_FILES
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 9700))
        s.listen(1)
        got.update(tid=threading.get_native_id(), inode=ino(s), fd=s.fileno())
        done.set()
        hold()  # (this thread ends the script: stdin's EOF)
        os._exit(0)

    threading.Thread(target=own_table, daemon=True).start()
    done.wait(10)
    say("READY", pid=os.getpid(), **got)
    threading.Event().wait()
elif role == "threads":  # a listener, 3 connections and 4 idle threads sharing the fd table; one thread
    import ctypes, threading  # with a table of its own (the leader's fds copied, then a listener of its own)
    comm("sweep-threads")
    libc = ctypes.CDLL(None, use_errno=True)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 9720))
    ls.listen(8)
    keep = []
    for _ in range(3):
        keep.append(socket.create_connection(("127.0.0.1", 9720)))
        keep.append(ls.accept()[0])
    stop, got, done = threading.Event(), {}, threading.Event()
    idle = [threading.Thread(target=stop.wait, daemon=True) for _ in range(4)]
    for t in idle:
        t.start()

    def own_table():
        assert libc.unshare(0x400) == 0, ctypes.get_errno()  # CLONE_FILES
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 9721))
        s.listen(1)
        got.update(own=threading.get_native_id(), own_inode=ino(s))
        done.set()
        stop.wait()

    threading.Thread(target=own_table, daemon=True).start()
    done.wait(10)
    say("READY", pid=os.getpid(), idle=[t.native_id for t in idle], **got)
    hold()
elif role == "udp":  # many UDP server sockets and many connected ones: who's chains of them, timed
    import resource, time
    from sockscope import who
    from sockscope.filter.states import EVERY_STATE
    from sockscope.owners.service import scan
    from sockscope.query import Query, run

    n = int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (2 * n + 200, hard))
    A4 = socket.AF_INET
    servers = []
    for i in range(n):
        s = socket.socket(A4, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 20000 + i))
        servers.append(s)
    far = []  # connected to peers no socket here has
    for i in range(n):
        c = socket.socket(A4, socket.SOCK_DGRAM)
        c.connect(("127.0.0.2", 20000 + i))
        far.append(c)
    near = []  # clients of the first three servers: the chains must name them
    for i in range(3):
        c = socket.socket(A4, socket.SOCK_DGRAM)
        c.connect(("127.0.0.1", 20000 + i))
        near.append(c)
    every = list(run(Query(frozenset({"udp"}), frozenset({A4}), EVERY_STATE)))
    target = who.parse_target(str(os.getpid()))
    mine = frozenset(ino(x) for x in servers + far + near)
    matched = who.matches(target, every, mine)
    owners = scan()
    t = time.monotonic()
    report = who.build_report(target, matched, every, owners, lambda pid, name: who.Process(pid, name))
    took = time.monotonic() - t
    clients = {c.end.socket.inode: sorted(p.socket.inode for p in c.peers) for c in report.chains
               if c.end.socket.peer.port == 0}
    say("READY", pid=os.getpid(), took=took, matched=len(matched), n_clients=len(clients),
        served={str(ino(servers[i])): clients[ino(servers[i])] for i in range(4)},
        near=[ino(c) for c in near])
    hold()
'''


@pytest.fixture
def scene() -> Iterator[ScriptScene]:
    with ScriptScene.running(SCENE, "sockscope-sweep-") as sc:
        yield sc


def _who(sc: ScriptScene, *argv: str, cwd: str) -> subprocess.CompletedProcess[str]:
    return sc.netns.run([*SOCKSCOPE, "who", "--json", *argv], timeout=60, cwd=cwd)


def _inodes(r: subprocess.CompletedProcess[str]) -> list[int]:
    assert r.returncode == 0, r.stderr
    return [m["socket"]["inode"] for m in json.loads(r.stdout)["matches"]]


def test_who_path_is_the_socket_file_not_a_name_relative_to_another_directory(scene: ScriptScene) -> None:
    """A socket bound by a relative name ("r.sock", from rel/) is the file rel/r.sock: ``who`` finds
    it by that file's path from anywhere, and a socket file of the same base name elsewhere
    (abs/r.sock) is not it, whatever the directory ``who`` runs in (lsof names the file, not a
    text relative to a directory it does not know)."""
    for d in ("rel", "abs"):
        os.mkdir(os.path.join(scene.tmp, d))
    rel = scene.start("relative", scene.tmp)
    absolute = scene.start("absolute", scene.tmp)
    rel_path, abs_path = os.path.join(scene.tmp, "rel", "r.sock"), os.path.join(scene.tmp, "abs", "r.sock")
    # the relative socket, by its full path, from a directory that is not its binder's
    assert _inodes(_who(scene, rel_path, cwd="/")) == [rel["inode"]]
    # ... and by its name, from the directory it was bound in
    assert _inodes(_who(scene, "r.sock", cwd=os.path.dirname(rel_path))) == [rel["inode"]]
    assert _inodes(_who(scene, "./r.sock", cwd=os.path.dirname(rel_path))) == [rel["inode"]]
    # the other file of that name: only its own socket, by either form
    assert _inodes(_who(scene, abs_path, cwd=os.path.dirname(abs_path))) == [absolute["inode"]]
    assert _inodes(_who(scene, "r.sock", cwd=os.path.dirname(abs_path))) == [absolute["inode"]]
    # the holders are the processes themselves
    r = _who(scene, rel_path, cwd="/")
    (m,) = json.loads(r.stdout)["matches"]
    assert [(p["pid"], p["fd"]) for p in m["processes"]] == [(rel["pid"], rel["fd"])]


def test_who_scope_naming_no_device_is_refused(scene: ScriptScene) -> None:
    """``HOST%DEV:PORT`` with a device the namespace does not have is refused (255, one line), as ss
    refuses ``src 127.0.0.1%nodev``: before, it left out nothing and answered for every device."""
    for target in ("127.0.0.1%nodev0:22", "[::1%nodev0]:22", "[fe80::1]%nodev0:22", "127.0.0.1%4242:22"):
        r = scene.netns.run([*SOCKSCOPE, "who", target], timeout=30)
        assert r.returncode == 255, (target, r)
        assert r.stdout == ""
        assert r.stderr.startswith("sockscope: no device ") and r.stderr.count("\n") == 1, r.stderr
        assert "Traceback" not in r.stderr
    # the namespace's own device, by name or index, is a scope: nothing listens there, exit 1
    for target in ("127.0.0.1%lo:22", "127.0.0.1%1:22", "[::1%lo]:22"):
        r = scene.netns.run([*SOCKSCOPE, "who", target], timeout=30)
        assert r.returncode == 1 and r.stderr.startswith("sockscope: no socket matches "), (target, r)
    # in another namespace (-N): its devices, not ours
    r = subprocess.run([*SOCKSCOPE, "who", "-N", scene.netns.name, "127.0.0.1%lo:22"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.startswith("sockscope: no socket matches "), r


def test_who_udp_servers_and_their_clients_in_linear_time(scene: ScriptScene) -> None:
    """``who`` finds an unconnected UDP socket's clients (the connected sockets whose peer it is) by one
    look-up: with 7,000 servers and 7,000 connected sockets the chains took seconds (every server
    passed over every peer), now a fraction of one; and the clients found are the right ones."""
    info = scene.start("udp", scene.tmp, "7000")
    assert info["matched"] == 14003
    near = info["near"]
    served = list(info["served"].values())
    assert served == [[near[0]], [near[1]], [near[2]], []]
    assert info["took"] < 1.5, info["took"]


def _users(text: str) -> set[tuple[str, int, int, int]]:
    """(name, pid, tid, fd) of every holder in ss's users:(…) cells of ``text`` (-pT)."""
    import re

    return {(m[0], int(m[1]), int(m[2]), int(m[3]))
            for m in re.findall(r'\("([^"]*)",pid=(\d+),tid=(\d+),fd=(\d+)\)', text)}


def test_threads_json_and_csv_name_a_socket_only_a_thread_holds(scene: ScriptScene) -> None:
    """``-pT`` with ``--json``/``--csv``: a socket held only by a thread with an fd table of its own
    (``unshare(CLONE_FILES)``; so also the threads of an exited leader) has that thread as its owner,
    as the table and ``ss -pT`` say; before, JSON and CSV gave it no owner at all."""
    info = scene.start("thread", scene.tmp)
    pid, tid, fd = info["pid"], info["tid"], info["fd"]
    assert tid != pid
    flt = ["sport", "=", ":9700"]
    ss = scene.netns.run(["ss", "-tlnpTH", *flt], timeout=30)
    assert ss.returncode == 0, ss.stderr
    want = _users(ss.stdout)
    assert {(p, t, f) for _n, p, t, f in want} == {(pid, tid, fd)}, ss.stdout
    table = scene.netns.run([*SOCKSCOPE, "-tlnpTH", *flt], timeout=30)
    assert _users(table.stdout) == want, table.stdout
    r = scene.netns.run([*SOCKSCOPE, "-tlnpT", "--json", *flt], timeout=30)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert row["inode"] == info["inode"]
    assert {(o["name"], o["pid"], o["tid"], o["fd"]) for o in row["owners"]} == want
    r = scene.netns.run([*SOCKSCOPE, "-tlnpT", "--csv", *flt], timeout=30)
    assert r.returncode == 0, r.stderr
    import csv
    import io

    (crow,) = list(csv.DictReader(io.StringIO(r.stdout)))
    assert crow["owners"] == ";".join(f"{p}/{f}/{n}" for n, p, _t, f in want)


def test_who_finds_a_tcp_port_bound_but_not_listening(scene: ScriptScene) -> None:
    """A TCP socket bound to a port but neither listening nor connected holds that port (another
    bind() gets EADDRINUSE): ``who :PORT`` names it and its process (the kernel dumps such sockets
    when asked, since 6.8), and ``who PID`` shows its chain instead of calling it "unbound"; only
    the really unbound socket is in none of the tables."""
    info = scene.start("bound", scene.tmp)
    r = _who(scene, ":9400", cwd="/")
    assert r.returncode == 0, r.stderr
    (m,) = json.loads(r.stdout)["matches"]
    assert (m["socket"]["inode"], m["socket"]["local_address"], m["socket"]["local_port"]) == \
        (info["inode"], "127.0.0.1", 9400)
    assert [(p["pid"], p["fd"]) for p in m["processes"]] == [(info["pid"], info["fd"])]
    assert m["peer"] == {"where": "none", "sockets": []}
    r = _who(scene, str(info["pid"]), cwd="/")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [x["socket"]["inode"] for x in data["matches"]] == [info["inode"]]
    assert data["unresolved"] == [{"pid": info["pid"], "fd": info["unbound_fd"], "inode": info["unbound"]}]
    # the port is the socket's: what bind() says of it
    probe = scene.netns.run([sys.executable, "-c", "import socket; socket.socket().bind(('127.0.0.1', 9400))"],
                            timeout=30)
    assert "Address already in use" in probe.stderr


def test_who_names_the_threads_of_an_exited_leader(scene: ScriptScene) -> None:
    """A process whose leader has exited (a zombie leader, its threads running) holds its sockets in
    its threads' fd table: /proc/PID/fd is empty (ss -p and psutil name no process; ss -pT names the
    threads).  ``who :PORT``, ``who PID`` and ``who NAME`` name the process and the thread, with its
    command line; before, the socket had "no process of this pid namespace", and the PID none."""
    import time

    info = scene.start("orphaned", scene.tmp)
    pid, tid, fd = info["pid"], info["tid"], info["fd"]
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the leader did not exit"
        time.sleep(0.02)
    assert os.listdir(f"/proc/{pid}/fd") == []
    ss = scene.netns.run(["ss", "-tlnpTH", "sport", "=", ":9650"], timeout=30)
    assert _users(ss.stdout) == {("sweep-orphan", pid, tid, fd)}, ss.stdout
    for target in (":9650", str(pid), "sweep-orphan"):
        r = _who(scene, target, cwd="/")
        assert r.returncode == 0, (target, r.stderr)
        (m,) = json.loads(r.stdout)["matches"]
        assert m["socket"]["inode"] == info["inode"]
        (p,) = m["processes"]
        assert (p["pid"], p["fd"], p["tid"], p["name"]) == (pid, fd, tid, "sweep-orphan"), target
        assert p["cmdline"][-3:] == [scene.script, "orphaned", scene.tmp]
    text = scene.netns.run([*SOCKSCOPE, "who", ":9650"], timeout=30)
    assert f"pid {pid} sweep-orphan  user root  fd {fd} (thread {tid})" in text.stdout, text.stdout


def test_who_names_a_thread_with_an_fd_table_of_its_own(scene: ScriptScene) -> None:
    """A listener only a thread holds, in the fd table it unshared (``unshare(CLONE_FILES)``) while its
    leader lives: /proc/PID/fd does not list it (ss -p and psutil name no process; ss -pT names the
    thread).  ``who :PORT``, ``who PID`` and ``who NAME`` name the process and the thread; before, the
    socket had "no process of this pid namespace", and ``who PID`` left it out."""
    info = scene.start("thread", scene.tmp)
    pid, tid, fd = info["pid"], info["tid"], info["fd"]
    assert tid != pid and info["inode"] not in _leader_inodes(pid)
    ss = scene.netns.run(["ss", "-tlnpTH", "sport", "=", ":9700"], timeout=30)
    assert {(p, t, f) for _n, p, t, f in _users(ss.stdout)} == {(pid, tid, fd)}, ss.stdout
    assert "users:" not in scene.netns.run(["ss", "-tlnpH", "sport", "=", ":9700"], timeout=30).stdout
    name = Path(f"/proc/{pid}/comm").read_text().strip()
    for target in (":9700", str(pid), name):
        r = _who(scene, target, cwd="/")
        assert r.returncode == 0, (target, r.stderr)
        ms = [m for m in json.loads(r.stdout)["matches"] if m["socket"]["inode"] == info["inode"]]
        assert len(ms) == 1, (target, r.stdout[:2000])
        (p,) = ms[0]["processes"]
        assert (p["pid"], p["fd"], p["tid"]) == (pid, fd, tid), target
    text = scene.netns.run([*SOCKSCOPE, "who", ":9700"], timeout=30)
    assert f"fd {fd} (thread {tid})" in text.stdout, text.stdout


def test_threads_listing_reads_a_shared_fd_table_once(scene: ScriptScene) -> None:
    """``-tanpT`` (ss -T: every thread holding each socket) reads a process's fd table once for all the
    threads that share it, where kcmp(2) says they do, and reads each table of its own: a thread that
    unshared its table (a copy of the leader's fds, then a listener of its own), and the threads of
    an exited leader.  The rows are ss -tanpT's, byte for byte.  Before, every thread's table was
    read: 64 threads holding 2,000 sockets took 1.0 s (ss 1.5 s), now 0.15 s."""
    info = scene.start("threads", scene.tmp)
    orphan = scene.start("orphaned", scene.tmp)
    pid, own = info["pid"], info["own"]
    probe = r"""
import json, sys
from sockscope.owners import walk
from sockscope.owners.model import OwnerMap
pid, idle, own = json.loads(sys.argv[1])
same = walk.files_shared()
shared = [same(pid, t) for t in idle] + [same(pid, own), walk.files_shared("/nonexistent")(pid, idle[0])]
read = []
process = walk._process
walk._process = lambda task, tid: (read.append(tid) if task.endswith(f"/{pid}/task") else None, process(task, tid))[1]
m = OwnerMap("/proc")
walk.walk_threads(m)
print(json.dumps({"shared": shared, "read": read}))
"""
    r = scene.netns.run([sys.executable, "-c", probe, json.dumps([pid, info["idle"], own])], timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    if got["shared"][0] is not None:
        assert got["shared"] == [True] * 4 + [False, None]
        assert got["read"] == [pid, own]  # (the idle threads' table is the leader's: not read again)
    else:  # kcmp refused here (a seccomp filter, say): every table read, as ss reads them
        assert got["shared"] == [None] * 6
        assert got["read"] == [pid, *sorted([*info["idle"], own])]
    want = scene.netns.run(["ss", "-tanpT"], timeout=60)  # (nothing in this namespace moves meanwhile)
    out = scene.netns.run([*SOCKSCOPE, "-tanpT"], timeout=60)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout == want.stdout
    users = _users(out.stdout)
    assert {t for _n, p, t, _f in users if p == pid} == {pid, own, *info["idle"]}
    assert {t for _n, p, t, _f in users if p == orphan["pid"]} == {orphan["tid"]}
    (row,) = [line for line in out.stdout.splitlines() if "127.0.0.1:9721 " in line]
    assert {(p, t) for _n, p, t, _f in _users(row)} == {(pid, own)}  # (its own listener: that thread alone)


def _leader_inodes(pid: int) -> set[int]:
    """The socket inodes /proc/PID/fd (the leader's table) lists."""
    out = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{name}")
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def test_who_prints_netlink_and_packet_ends_as_ss(scene: ScriptScene) -> None:
    """``who PID`` of a process holding a netlink and a packet socket: each end as ``ss -n`` prints
    it (``0:PORTID``, ``[0]:*``, the peer ``*``); they were ``0`` and ``*``."""
    info = scene.start("nlpacket", scene.tmp)
    r = scene.netns.run([*SOCKSCOPE, "who", str(info["pid"])], timeout=60)
    assert r.returncode == 0, r.stderr
    ss = scene.netns.run(["ss", "-Hanp", "-A", "netlink,packet"], timeout=60)
    assert ss.returncode == 0, ss.stderr
    want = {}
    for line in ss.stdout.splitlines():  # (a netlink row names no users: its port id is the pid here)
        cells = line.split()
        if f"pid={info['pid']}," in line or cells[4] == f"0:{info['pid']}":
            want[cells[0]] = f"{cells[4]} \u2194 {cells[5]}"
    assert set(want) == {"nl", "p_raw"}, ss.stdout
    heads = [line for line in r.stdout.splitlines() if line.startswith(("nl ", "p_raw "))]
    assert len(heads) == 2, r.stdout
    for head in heads:
        netid = head.split()[0]
        assert want[netid] in head, (want[netid], head)
