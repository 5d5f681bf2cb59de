"""The owner map: ss's users text, and the background walk (-p) giving what the in-process one gives.

Sockets are made here (a UNIX socket pair: no network at all), so their holders
are known: this process, at known fds.  A forked copy of this process holds
them too, to have sockets with two holders (ss lists the last found first).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from nsutil import forked_copy

from sockscope import processes
from sockscope.owners.service import scan
from sockscope.processes import BackgroundOwners, OwnerMap
from sockscope.render.users import UsersText


@pytest.fixture()
def pair():
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _text(m: OwnerMap, inode: int) -> str:
    """ss's users text of ``inode`` in the map (render/users.py makes it)."""
    return UsersText(m).text(inode)


def _comm() -> str:
    return processes.comm(os.getpid()) or ""


def test_text_is_ss_users_cell(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = pair
    ino = os.fstat(a.fileno()).st_ino
    m = scan(pids=[os.getpid()])
    assert _text(m, ino) == f' users:(("{_comm()}",pid={os.getpid()},fd={a.fileno()}))'
    assert _text(m, 0) == "" and _text(m, 1) == ""
    # the same text the renderer makes from the Owner records
    from sockscope.render.users import from_records as _users

    assert _text(m, ino) == _users(m.owners(ino))


def test_two_holders_last_found_first(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = pair
    ino = os.fstat(a.fileno()).st_ino
    with forked_copy() as child:
        m = scan(pids=sorted([os.getpid(), child]))
        text = _text(m, ino)
        first, second = sorted([os.getpid(), child])
        assert text.startswith(' users:(("') and text.index(f"pid={second},") < text.index(f"pid={first},")
        assert text == __import__("sockscope.render.users", fromlist=["from_records"]).from_records(m.owners(ino))


@pytest.mark.parametrize("via", ["bpf", "proc"])
def test_background_walk_matches_the_in_process_one(monkeypatch: pytest.MonkeyPatch, via: str,
                                                    pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    monkeypatch.setenv("SOCKSCOPE_OWNERS", via)
    bg = BackgroundOwners()
    texts = bg.texts()
    assert bg.via == via
    m = scan()
    for s in (a, b):
        ino = os.fstat(s.fileno()).st_ino
        assert bg.text(ino) == _text(m, ino) != ""
    # every inode of this process agrees (other processes may come and go meanwhile)
    mine = [os.fstat(int(fd)).st_ino for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}") and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")]
    for ino in mine:
        assert texts.get(ino, "") == _text(m, ino)
    assert bg.complete is m.complete


@pytest.mark.parametrize("via", ["bpf", "proc"])
def test_a_listing_waits_for_the_proc_walk_alone(monkeypatch: pytest.MonkeyPatch, via: str,
                                                  pair: tuple[socket.socket, socket.socket]) -> None:
    """By the /proc walk (the kernel's iterator not usable), the owners are waited for before the
    listing sends its dumps: beside the decoding and the dumps' helpers the walk waits for the GIL
    after each of its system calls (bench/README.md, session 44).  By the iterator, nothing is
    waited for: the listing runs beside its one read."""
    from sockscope.owners.service import iterator_possible

    monkeypatch.setenv("SOCKSCOPE_OWNERS", via)
    assert iterator_possible() is (via == "bpf")  # (root here: the privileges are there)
    assert iterator_possible("/somewhere/else") is False  # another procfs: its pids are not the kernel's
    bg = BackgroundOwners()
    bg.wait_if_walking()
    assert (bg._pending is None) is (via == "proc")  # the map handed over already, its thread ended
    ino = os.fstat(pair[0].fileno()).st_ino
    assert bg.text(ino).startswith(' users:(("') and bg.via == via


def _threads() -> set[str]:
    return set(os.listdir("/proc/self/task"))


@pytest.mark.parametrize("via", ["bpf", "proc"])
def test_no_thread_outlives_the_result(monkeypatch: pytest.MonkeyPatch, via: str) -> None:
    """The one background mechanism: once the result is handed over, its thread is gone
    (psutil's leak test counts the process's threads right after the call)."""
    monkeypatch.setenv("SOCKSCOPE_OWNERS", via)
    before = _threads()
    for _ in range(5):
        assert isinstance(processes.psutil_owners_later()(), dict)
        assert _threads() == before
        BackgroundOwners().texts()
        assert _threads() == before


def test_background_errors_reach_the_caller() -> None:
    from sockscope.owners.service import Pending

    def fail() -> None:
        raise RuntimeError("in the thread")

    before = _threads()
    p = Pending(fail)
    with pytest.raises(RuntimeError, match="in the thread"):
        p.result()
    assert _threads() == before
    assert Pending(lambda: 42).result() == 42


def test_users_text_is_made_in_render(pair: tuple[socket.socket, socket.socket]) -> None:
    """The data layer holds no ss text: the owner map's cells come from render.users."""
    from sockscope.render import users

    a, _b = pair
    ino = os.fstat(a.fileno()).st_ino
    m = scan(pids=[os.getpid()])
    assert users.cells(m)[ino] == _text(m, ino) == users.from_records(m.owners(ino))
    assert not hasattr(processes, "_split") and not hasattr(processes, "_walk_in_child")


def test_threads_listing_names_each_tid(pair: tuple[socket.socket, socket.socket]) -> None:
    import threading

    a, _b = pair
    ino = os.fstat(a.fileno()).st_ino
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        m = scan(threads=True)
        text = _text(m, ino)
        tids = {int(x) for x in os.listdir("/proc/self/task")}
        assert text.count(f"pid={os.getpid()},") == len(tids) >= 2
        assert all(f"tid={tid}," in text for tid in tids)
        assert text == __import__("sockscope.render.users", fromlist=["x"]).from_records(m.owners(ino))
    finally:
        stop.set()
        t.join()


def test_threads_listing_orders_a_socket_at_two_fds_as_ss(pair: tuple[socket.socket, socket.socket]) -> None:
    """ss -T reads each thread's fd table in turn: a socket at two fds is listed thread by thread,
    each thread's two fds together (it listed each fd across the threads, then the next fd)."""
    import subprocess
    import threading

    a, _b = pair
    ino = os.fstat(a.fileno()).st_ino
    dup = os.dup2(a.fileno(), 900)
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        text = _text(scan(threads=True), ino).strip()
        rows = subprocess.run(["ss", "-xapT"], capture_output=True, text=True, check=True).stdout.splitlines()
        row = [line for line in rows if line.split()[5:6] == [str(ino)]]
        assert len(row) == 1, row
        assert row[0].rstrip().endswith(text), (row[0], text)
        assert text.count(f"pid={os.getpid()},") == 2 * len(os.listdir("/proc/self/task")) >= 6
    finally:
        stop.set()
        for t in threads:
            t.join()
        os.close(dup)


def test_all_texts_is_text_of_each(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    dup = os.dup(a.fileno())  # a second holder in the same process
    try:
        m = scan(pids=[os.getpid()])
        inodes, texts = UsersText(m).all()
        assert len(inodes) == len(texts) == len(m)
        assert texts == [_text(m, ino) for ino in inodes]
        ino = os.fstat(a.fileno()).st_ino
        assert texts[inodes.index(ino)].count("pid=") == 2
    finally:
        os.close(dup)


def test_psutil_pick_is_psutils_choice() -> None:
    """psutil's owner of an inet socket: the first fd of the last process (in pid order) holding
    it.  Records come in pid, then fd order."""
    from sockscope.owners.model import psutil_pick

    # (inode, pid, fd): 7 held once; 8 by two pids, the last at fds 9 and 4 (listed 4, 9);
    # 9 twice in one pid; 10 by three pids, the middle one with the lowest fd
    recs = [(8, 100, 3), (10, 100, 5), (7, 100, 6), (10, 150, 1), (9, 150, 2), (9, 150, 7),
            (8, 200, 4), (10, 200, 8), (8, 200, 9), (11, 200, 10)]
    inodes, pids, fds = (list(col) for col in zip(*recs))
    fd_of, pid_of = psutil_pick(inodes, pids, fds)
    assert pid_of == {8: 200, 10: 200, 7: 100, 9: 150, 11: 200}
    assert fd_of == {8: 4, 10: 8, 7: 6, 9: 2, 11: 10}
    # only the inodes asked for; the others' records are not looked at
    assert psutil_pick(inodes, pids, fds, {8, 7, 12}) == ({8: 4, 7: 6}, {8: 200, 7: 100})
    assert psutil_pick([], [], [], {1}) == ({}, {})


def test_psutil_held_is_psutils_choice_for_unix_sockets() -> None:
    """psutil's rows of a UNIX socket: one per fd of the last process (in pid order) holding it,
    here in the records' order, each with the socket's row in the dump; sockets not in the dump
    left out; and how many of the dump's sockets are held."""
    from sockscope.owners.model import psutil_held

    recs = [(8, 100, 3), (10, 100, 5), (7, 100, 6), (10, 150, 1), (9, 150, 2), (9, 150, 7),
            (8, 200, 4), (10, 200, 8), (8, 200, 9), (11, 200, 10)]
    inodes, pids, fds = (list(col) for col in zip(*recs))
    rows = {7: 0, 8: 1, 9: 2, 10: 3, 12: 4}  # 11 is not in the dump, 12 held by nobody
    at, got_fds, got_pids, held = psutil_held(inodes, pids, fds, rows)
    assert list(zip(at, got_fds, got_pids)) == [
        (0, 6, 100), (2, 2, 150), (2, 7, 150), (1, 4, 200), (3, 8, 200), (1, 9, 200)]
    assert held == 4
    # every socket held once: every record of the dump's sockets, as they come
    at, got_fds, got_pids, held = psutil_held([5, 6, 4], [1, 1, 2], [3, 4, 3], {4: 0, 6: 1, 5: 2})
    assert (at, got_fds, got_pids, held) == ([2, 1, 0], [3, 4, 3], [1, 1, 2], 3)
    assert psutil_held([], [], [], {1: 0}) == ([], [], [], 0)


def test_psutil_pick_forked_sockets() -> None:
    """Sockets a fork left at the same fd in every process (a prefork server's listener), one of
    them also dup'ed in the last process: the last process's first fd (psutil_pick), or all its
    fds (psutil_held), whether or not the records are narrowed to ``wanted`` first."""
    from sockscope.owners.model import psutil_held, psutil_pick

    recs = [(p, 3, 50) for p in range(100, 110)] + [(p, 4, 51) for p in range(100, 110)]
    recs += [(109, 9, 50), (109, 10, 52), (105, 6, 53), (105, 7, 53)]
    recs.sort()
    inodes, pids, fds = ([r[i] for r in recs] for i in (2, 0, 1))
    for wanted in (None, {50, 51, 52, 53}, {50, 53, 99}):
        fd_of, pid_of = psutil_pick(inodes, pids, fds, wanted)
        expect = {50: (3, 109), 51: (4, 109), 52: (10, 109), 53: (6, 105)}
        expect = {k: v for k, v in expect.items() if wanted is None or k in wanted}
        assert fd_of == {k: v[0] for k, v in expect.items()}, wanted
        assert pid_of == {k: v[1] for k, v in expect.items()}, wanted
        rows = {ino: ino - 50 for ino in (wanted or (50, 51, 52, 53))}
        at, got_fds, got_pids, held = psutil_held(inodes, pids, fds, rows)
        every = {50: [(109, 3), (109, 9)], 51: [(109, 4)], 52: [(109, 10)], 53: [(105, 6), (105, 7)]}
        assert sorted(zip(at, got_pids, got_fds)) == sorted(
            (ino - 50, pid, fd) for ino in rows if ino in every for pid, fd in every[ino]), wanted
        assert held == len(expect), wanted


def test_socket_fds_are_the_scan_as_records(pair: tuple[socket.socket, socket.socket]) -> None:
    """owners.service.socket_fds (what net_connections reads) and walk.records hold what scan finds."""
    from sockscope.owners import walk
    from sockscope.owners.service import socket_fds

    a, b = pair
    dup = os.dup(a.fileno())
    try:
        me = os.getpid()
        for inodes, pids, fds in (socket_fds(), walk.records("/proc", [me])[:3]):
            mine = sorted((i, f) for i, p, f in zip(inodes, pids, fds) if p == me)
            m = scan(pids=[me])
            assert mine == sorted((i, f) for i in m.holder_map() for p, f in m.holders(i))
            ino = os.fstat(a.fileno()).st_ino
            assert (ino, a.fileno()) in mine and (ino, dup) in mine
        assert walk.records("/proc", [me])[3] is True
        assert walk.records("/proc", [2 ** 22 + 1]) == ([], [], [], True)  # no such process: nothing
    finally:
        os.close(dup)


def test_pids_of_a_procfs_are_its_ascii_digit_entries(tmp_path: Path) -> None:
    """The pids of a procfs (the owner walk, ``--all-netns``, ``who NAME``, each thread's tids): its
    entries of ASCII digits, ascending; "²" is a digit that ``int`` refuses (no traceback), "٣" too."""
    from sockscope.owners.walk import pids_of

    for name in ("12", "3", "\u00b2", "\u0663", "self", "0x10", "1e3"):
        (tmp_path / name).mkdir()
    assert pids_of(str(tmp_path)) == [3, 12]


#: Run in a child (its fds are used up): a socket pair held by this process, the soft fd limit
#: lowered and every fd under it taken, then the walk of this process's fds and the listing's warning.
SHORT_OF_FDS = r'''
import contextlib, io, json, os, resource, socket, sys
from sockscope.cli import ls
from sockscope.owners.service import scan
import functools, sockscope.owners.walk, sockscope.processes  # (loaded now: no fd is left for a file later)
a, b = socket.socketpair()
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
taken = []
try:
    while True:
        taken.append(os.open(os.devnull, os.O_RDONLY))
except OSError as exc:
    assert exc.errno == 24, exc
m = scan("/proc", pids=[os.getpid()])
threads = sockscope.owners.walk.OwnerMap("/proc")
sockscope.owners.walk.walk_threads(threads)  # (-T's walk of every thread's fd table)
err = io.StringIO()
with contextlib.redirect_stderr(err):
    ls._warn_incomplete(m)
for fd in taken:
    os.close(fd)
held = a.fileno() in [fd for _p, fd in m.holders(os.fstat(a.fileno()).st_ino)]
print(json.dumps({"complete": m.complete, "why": m.why, "held": held, "warning": err.getvalue(),
                  "threads": [threads.complete, threads.why]}))
'''


def test_a_walk_out_of_file_descriptors_says_so() -> None:
    """At the fd limit the walk cannot open a process's fd directory.  That process was taken for
    gone: its sockets lost their owners without a word.  Now the map is incomplete and says why, and
    the listing's warning names the fd limit, not "denied even to root ... a security module"."""
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", SHORT_OF_FDS], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["complete"] is False and got["held"] is False
    assert got["why"] == "sockscope ran out of file descriptors (EMFILE: ulimit -n is 64)"
    assert got["warning"] == ("sockscope: not all processes could be read (sockscope ran out of file descriptors "
                              "(EMFILE: ulimit -n is 64)): owners may be missing\n")
    assert got["threads"] == [False, got["why"]]  # -T's thread walk says the same


#: Run in a child: top's tracker (the /proc walk) knows this process's socket pair, then every fd
#: under a lowered limit is taken and the tracker refreshed, then the header and the stderr line.
TRACKER_SHORT_OF_FDS = r'''
import json, os, resource, socket
import sockscope.owners.walk, sockscope.top.text
from sockscope.owners.service import OwnerTracker
from sockscope.top.text import _partial
a, b = socket.socketpair()
ino = os.fstat(a.fileno()).st_ino
t = OwnerTracker("/proc", full_every=1e9, sweep_every=1e9)
t.refresh({ino})
before = t.holders(ino)
baseline = [t.complete, t.why]  # (a process whose fds even root may not read makes it partial: pid 1 in some VMs)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
taken = []
try:
    while True:
        taken.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
t.refresh({ino})
for fd in taken:
    os.close(fd)
got = {"before": before, "after": t.holders(ino), "complete": t.complete, "why": t.why, "header": _partial(t.why)}
t.refresh({ino})  # the fds back: what was not read is read again at once, not at the next full scan
got["again"] = [t.holders(ino), t.complete, t.why, t.stats["full"]]
got["baseline"] = baseline
print(json.dumps(got))
'''


def test_tops_tracker_out_of_file_descriptors_keeps_its_owners_and_says_why() -> None:
    """top's incremental walk at the fd limit: the owners it knew stay, the map is partial, and the
    reason is the fd limit (top's header said "run as root", also to root); with fds to spare again,
    the next refresh reads what it could not and the map is complete."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "SOCKSCOPE_OWNERS": "proc"}  # the /proc walk, not the kernel's iterator
    r = subprocess.run([sys.executable, "-c", TRACKER_SHORT_OF_FDS], capture_output=True, text=True, timeout=60,
                       env=env)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["before"] and got["after"] == got["before"]
    assert got["complete"] is False
    assert got["why"] == "sockscope ran out of file descriptors (EMFILE: ulimit -n is 64)"
    assert got["header"] == "out of file descriptors"
    # the next refresh with fds to spare: as complete as before, the fd limit no longer its reason (it
    # stayed partial for that reason until the next full scan, 60 s later)
    assert got["baseline"][1] == ""
    assert got["again"] == [got["before"], got["baseline"][0], "", 1]


def test_tops_walk_reads_again_a_process_it_could_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process whose fd directory could not be opened (no fd left: EMFILE) keeps what was known of
    it and is read again at the next refresh; once it is, the map is complete again (it stayed
    partial until the next full scan, every 60 s).  A procfs-shaped tree: the fd limit itself is
    what the test above reaches for real; here it strikes one process's directory only."""
    import errno

    from sockscope.owners.walk import IncrementalWalk

    fds = tmp_path / "4242" / "fd"
    fds.mkdir(parents=True)
    os.symlink("socket:[777]", fds / "3")
    w = IncrementalWalk(str(tmp_path), full_every=1e9, sweep_every=1e9)
    w.refresh(0.0, {777}, None)  # (the first refresh is a full scan)
    assert w.index == {777: [(4242, 3)]} and w.complete

    new = tmp_path / "4243" / "fd"  # a process that starts, and whose fds cannot be read at first
    new.mkdir(parents=True)
    os.symlink("socket:[778]", new / "5")
    listdir = os.listdir

    def short_of_fds(path: str) -> list[str]:
        if str(path).endswith("/4243/fd"):
            raise OSError(errno.EMFILE, "Too many open files")
        return listdir(path)

    monkeypatch.setattr(os, "listdir", short_of_fds)
    w.refresh(1.0, {777, 778}, None)
    assert not w.complete and w.why.startswith("sockscope ran out of file descriptors (EMFILE")
    assert w.index == {777: [(4242, 3)]}  # what was known stays
    w.refresh(2.0, {777, 778}, None)  # still short: still partial, and why
    assert not w.complete and w.why.startswith("sockscope ran out of file descriptors")

    monkeypatch.setattr(os, "listdir", listdir)
    w.refresh(3.0, {777, 778}, None)
    assert w.complete and w.why == ""
    assert w.index == {777: [(4242, 3)], 778: [(4243, 5)]}
    assert w.stats["full"] == 1  # (no full scan did it)
