"""The fd table walk (kernel/bpf_prog.walk_program): what it finds is what the kernel's task_file
iterator and the /proc walk find, on processes made to reach each of its paths: a fd table grown
large and left nearly empty (the walk's reason to be), a process with more fds than one task's
records may take (left to a task_file iterator of its own, found by its lowest free fd, or by its
count where holes below keep that fd low), and a kernel or layout without the walk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Iterator

import pytest
from nsutil import read_line, stop_pids

from sockscope.kernel import bpf, bpf_prog
from sockscope.owners import walk
from sockscope.owners.service import scan

#: Three children of a holder, each with its own fd table: "sparse" (a socket pair at low fds, one
#: socket at fd 6000, the table grown to 16384 slots), "dense" (CAP + 300 sockets from fd 3 up) and
#: "holes" (as many, those below fd 10 closed: its lowest free fd is 3).
_HOLDER = r"""
import json, os, socket, sys
import resource
resource.setrlimit(resource.RLIMIT_NOFILE, (10000, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
cap = int(sys.argv[1])
pids = {}
for role in ("sparse", "dense", "holes"):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 9000)  # (out of the way: the sockets take every fd from 3 up)
        os.closerange(3, 9000)
        w = 9000
        keep = []
        if role == "sparse":
            keep += socket.socketpair()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            os.dup2(s.fileno(), 6000)
            s.close()
        else:
            for _ in range(cap + 300):
                keep.append(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
            if role == "holes":
                for s in [s for s in keep if s.fileno() < 10]:
                    s.close()
        os.write(w, b"1")
        os.close(w)
        sys.stdin.read()
        os._exit(0)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    pids[role] = pid
print(json.dumps(pids), flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def holders() -> Iterator[dict[str, int]]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(bpf_prog.CAP)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        pids = json.loads(read_line(proc, 60))
        yield pids
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        stop_pids({proc.pid: None})
        proc.wait(timeout=30)


def _of(found: tuple[list[int], list[int], list[int]], pids: set[int]) -> list[tuple[int, int, int]]:
    return [(ino, pid, fd) for ino, pid, fd in zip(*found) if pid in pids]


def _task_file(lay: dict[str, int]) -> tuple[list[int], list[int], list[int]]:
    """The kernel's own task_file iterator over every process (the walk's reference)."""
    prog = bpf._load(lay)
    try:
        return bpf.decode(bpf.read_iterator(bpf._iter(prog, lay)), os.getpid())
    finally:
        os.close(prog)


def _walk_only(lay: dict[str, int]) -> bytes:
    prog = bpf._load(lay, walk=True)
    try:
        return bpf.read_iterator(bpf._iter(prog, lay))
    finally:
        os.close(prog)


def test_walk_finds_what_task_file_and_proc_find(holders: dict[str, int]) -> None:
    lay = bpf.cached_layout()
    assert lay["walk_btf_id"], "this kernel (6.2 or later, BTF) runs the walk"
    mine = set(holders.values())
    got = _of(bpf.task_socket_fds(walk.any_socket_fd), mine)
    assert got == _of(_task_file(lay), mine)
    assert got == _of(walk.records("/proc", sorted(mine))[:3], mine)
    by_pid = {p: [fd for _i, q, fd in got if q == p] for p in mine}
    assert by_pid[holders["sparse"]][-1] == 6000 and len(by_pid[holders["sparse"]]) == 3
    assert len(by_pid[holders["dense"]]) == bpf_prog.CAP + 300 and by_pid[holders["dense"]][0] == 3
    assert len(by_pid[holders["holes"]]) == bpf_prog.CAP + 300 - 7 and by_pid[holders["holes"]][0] == 10
    # the walk itself: the sparse table whole, the two large ones left out with a marker each (the
    # dense one by its lowest free fd, before any record; the other after CAP records or more)
    raw = bpf.decode(_walk_only(lay), os.getpid())
    walked = [(p, fd) for _i, p, fd in zip(*raw) if p in mine]
    assert [fd for p, fd in walked if p == holders["sparse"]] == by_pid[holders["sparse"]]
    assert [fd for p, fd in walked if p == holders["dense"]] == [bpf_prog.BIG_FD]
    holes = [fd for p, fd in walked if p == holders["holes"]]
    assert holes[-1] == bpf_prog.BIG_FD and bpf_prog.CAP <= len(holes) - 1 < bpf_prog.CAP + 64


def test_owner_map_from_the_walk(holders: dict[str, int]) -> None:
    m = scan()
    assert m.via == "bpf"
    for pid in holders.values():
        want = scan(pids=[pid])
        assert {ino: m.holders(ino) for ino in want._holders} == want._holders


def test_without_the_walk_task_file_reads_all(holders: dict[str, int], tmp_path: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel without the walk's facts (older than 6.2): the layout says so, task_file reads all."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lay = dict(bpf.cached_layout(), **dict.fromkeys(bpf.WALK_FIELDS, 0))
    monkeypatch.setattr(bpf, "learned_layout", lambda: dict(lay))
    mine = set(holders.values())
    assert _of(bpf.task_socket_fds(walk.any_socket_fd), mine) == _of(walk.records("/proc", sorted(mine))[:3], mine)


def test_a_refused_walk_is_left_out_of_the_cache(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A walk the kernel refuses with a freshly learned layout: task_file reads all, quietly, and the
    cache keeps the layout without the walk (the next run does not try it again)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    real = bpf.learned_layout()
    monkeypatch.setattr(bpf, "learned_layout", lambda: dict(real, func_loop=real["func_probe_read"]))
    a = bpf.task_socket_fds(walk.any_socket_fd)
    assert bpf.cached_layout()["walk_btf_id"] == 0
    assert a[0] and capsys.readouterr().err == ""


# (files_next_fd and task_flags are left out: read wrong they only send processes to the task_file
# iterator, whose records are exact, or change nothing; no check can tell them)
@pytest.mark.parametrize("field", ["task_files", "files_fdt", "fdt_open_fds", "fdt_fd", "file_inode", "inode_ino",
                                   "fdt_max_fds", "cast_btf_id"])
def test_tampered_walk_facts_are_discarded_and_relearned(field: str, holders: dict[str, int], tmp_path: Any,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A cached layout with one of the walk's facts off: the owners are still right, one line says so,
    the cache is repaired."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    learned = bpf.cached_layout()
    path = os.path.join(str(tmp_path), "sockscope", "task_file.layout")
    bad = 1 if field == "cast_btf_id" else 8 if field != "fdt_max_fds" else 4
    with open(path, "w") as f:
        f.write(bpf._kernel_key() + "\n" + " ".join(str(learned[k] + bad * (k == field)) for k in bpf.FIELDS) + "\n")
    mine = set(holders.values())
    capsys.readouterr()
    got = bpf.task_socket_fds(walk.any_socket_fd)
    assert _of(got, mine) == _of(walk.records("/proc", sorted(mine))[:3], mine)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "discarded, learned again" in err[0], (field, err)
    assert bpf.cached_layout() == learned


_CHURN = r"""
import os, socket, sys, time
end = time.monotonic() + float(sys.argv[1])
keep = [socket.socketpair() for _ in range(20)]
while time.monotonic() < end:  # processes holding sockets come and go, exiting mid-scan
    pid = os.fork()
    if pid == 0:
        extra = [socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(30)]
        os._exit(0)
    os.waitpid(pid, 0)
"""


def test_processes_exiting_meanwhile(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Processes that exit while the walk reads them (their fd tables go away): never a layout
    discarded, never an error, and the sockets of processes that stay are all found."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    bpf.cached_layout()
    churn = subprocess.Popen([sys.executable, "-c", _CHURN, "6"])
    try:
        capsys.readouterr()
        me = os.getpid()
        mine = sorted(walk.records("/proc", [me])[0])
        for _ in range(60):
            inodes, pids, _fds = bpf.task_socket_fds(walk.any_socket_fd)
            assert sorted(i for i, p in zip(inodes, pids) if p == me) == mine
        assert capsys.readouterr().err == ""
    finally:
        churn.wait(timeout=30)
