"""The owner map: ss's users text, and the background walk (-p) giving what the in-process one gives.

Sockets are made here (a UNIX socket pair: no network at all), so their holders
are known: this process, at known fds.  A forked copy of this process holds
them too, to have sockets with two holders (ss lists the last found first).
"""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest
from nsutil import forked_copy

from sockscope import processes
from sockscope.processes import BackgroundOwners, OwnerMap


@pytest.fixture()
def pair():
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _comm() -> str:
    return processes.comm(os.getpid()) or ""


def test_text_is_ss_users_cell(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = pair
    ino = os.fstat(a.fileno()).st_ino
    m = OwnerMap.scan(pids=[os.getpid()])
    assert m.text(ino) == f' users:(("{_comm()}",pid={os.getpid()},fd={a.fileno()}))'
    assert m.text(0) == "" and m.text(1) == ""
    # the same text the renderer makes from the Owner records
    from sockscope.render.table import _users

    assert m.text(ino) == _users(m.owners(ino))


def test_two_holders_last_found_first(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = pair
    ino = os.fstat(a.fileno()).st_ino
    with forked_copy() as child:
        m = OwnerMap.scan(pids=sorted([os.getpid(), child]))
        text = m.text(ino)
        first, second = sorted([os.getpid(), child])
        assert text.startswith(' users:(("') and text.index(f"pid={second},") < text.index(f"pid={first},")
        assert text == __import__("sockscope.render.table", fromlist=["_users"])._users(m.owners(ino))


@pytest.mark.parametrize("via", ["bpf", "proc"])
def test_background_walk_matches_the_in_process_one(monkeypatch: pytest.MonkeyPatch, via: str,
                                                    pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    monkeypatch.setenv("SOCKSCOPE_OWNERS", via)
    bg = BackgroundOwners()
    assert bg.via == via
    texts = bg.texts()  # the child (a copy of this process: it holds these sockets too) leaves itself out
    m = OwnerMap.scan()  # now that the child is gone
    for s in (a, b):
        ino = os.fstat(s.fileno()).st_ino
        assert bg.text(ino) == m.text(ino) != ""
    # every inode of this process agrees (other processes may come and go meanwhile)
    mine = [os.fstat(int(fd)).st_ino for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}") and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")]
    for ino in mine:
        assert texts.get(ino, "") == m.text(ino)
    assert bg.complete is m.complete
    assert bg._children == []  # every child reaped


def test_background_walk_in_many_runs_merges_holders(monkeypatch: pytest.MonkeyPatch,
                                                     pair: tuple[socket.socket, socket.socket]) -> None:
    """One child per process (runs of one pid): a socket held by this process and a
    forked copy is found by two children, and its text lists both, the later pid first."""
    a, _b = pair
    ino = os.fstat(a.fileno()).st_ino
    monkeypatch.setenv("SOCKSCOPE_OWNERS", "proc")  # the forked walkers, not the kernel's iterator
    with forked_copy() as child:
        mine = sorted([os.getpid(), child])
        bg = BackgroundOwners(workers=10_000)
        assert bg.via == "proc" and len(bg._children) > 2
        text = bg.text(ino)
        assert text == OwnerMap.scan(pids=mine).text(ino)
        assert text.index(f"pid={mine[1]},") < text.index(f"pid={mine[0]},")


def test_split_into_runs_of_about_equal_fds(tmp_path: pytest.TempPathFactory) -> None:
    from sockscope.processes import _split

    pids = sorted(int(n) for n in os.listdir("/proc") if n.isdigit())
    groups = _split(pids, 2, "/proc")
    assert [p for g in groups for p in g] == pids and 1 <= len(groups) <= 2
    assert _split([1, 2, 3], 5, "/nonexistent") == [[1], [2], [3]]
    assert _split([], 2, "/proc") == []


def test_background_walk_without_fork(monkeypatch: pytest.MonkeyPatch, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = pair

    def no_fork() -> int:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setenv("SOCKSCOPE_OWNERS", "proc")
    monkeypatch.setattr(os, "fork", no_fork)
    bg = BackgroundOwners()
    ino = os.fstat(a.fileno()).st_ino
    assert bg.text(ino) == OwnerMap.scan(pids=[os.getpid()]).text(ino)


def test_background_walk_when_the_child_fails(monkeypatch: pytest.MonkeyPatch,
                                              pair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = pair
    parent = os.getpid()
    real = OwnerMap.scan.__func__  # type: ignore[attr-defined]

    def scan(cls: type[OwnerMap], proc: str = "/proc", pids: object = None) -> OwnerMap:
        if os.getpid() != parent:
            raise RuntimeError("the child fails")
        return real(cls, proc, pids)  # type: ignore[no-any-return]

    monkeypatch.setattr(OwnerMap, "scan", classmethod(scan))
    monkeypatch.setenv("SOCKSCOPE_OWNERS", "proc")
    start = time.monotonic()
    bg = BackgroundOwners()
    ino = os.fstat(a.fileno()).st_ino
    assert bg.text(ino) == OwnerMap.scan(pids=[os.getpid()]).text(ino) != ""
    assert time.monotonic() - start < 30
    assert sys.modules["sockscope.processes"] is processes


def test_all_texts_is_text_of_each(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    dup = os.dup(a.fileno())  # a second holder in the same process
    try:
        m = OwnerMap.scan(pids=[os.getpid()])
        inodes, texts = m.all_texts()
        assert len(inodes) == len(texts) == len(m)
        assert texts == [m.text(ino) for ino in inodes]
        ino = os.fstat(a.fileno()).st_ino
        assert texts[inodes.index(ino)].count("pid=") == 2
    finally:
        os.close(dup)
