"""The listing as a hostile user drives it: ``-K`` given states that cancel out, ``-K`` over a
replayed capture.

Each test runs in a private network namespace of its own (``sockscope-t-<hex>``, or ``unshare -n``)
holding a TCP listener and one established connection over loopback (a scene: ended by pid, the
namespace deleted, also on failure); ss runs beside sockscope where it has an answer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nsutil import ScriptScene  # noqa: E402

SOCKSCOPE = [sys.executable, "-m", "sockscope"]
PORT = 7300

SCENE = r'''
import socket
if sys.argv[1] == "spoof":  # a process naming itself like a list of owners, holding a listener
    comm(sys.argv[2])
    lst = socket.create_server(("127.0.0.1", 7302))
    say("READY", pid=os.getpid())
    hold()
lst = socket.socket()
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", 7300))
lst.listen(8)
cli = socket.create_connection(("127.0.0.1", 7300))
srv, _ = lst.accept()
say("READY", pid=os.getpid(), client_port=cli.getsockname()[1])
hold()
'''


@pytest.fixture
def scene() -> Iterator[ScriptScene]:
    """A fresh namespace per test: a -K that goes wrong closes only that test's sockets."""
    if os.geteuid() != 0:
        pytest.fail("these tests need root (ip netns add)", pytrace=False)
    sc = ScriptScene(SCENE, "sockscope-sweep-")
    try:
        sc.start("pair")
        yield sc
    finally:
        sc.close()
    assert not sc.netns.exists()
    assert not os.path.exists(sc.tmp)


def _established(sc: ScriptScene) -> list[str]:
    """The established TCP sockets of the scene, as ss sees them (``local peer``)."""
    r = sc.netns.run(["ss", "-Htn", "state", "established"])
    assert r.returncode == 0, r.stderr
    return sorted(" ".join(line.split()[2:4]) for line in r.stdout.splitlines())


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


@pytest.mark.parametrize("words", [
    ["exclude", "all"],
    ["state", "established", "exclude", "established"],
    ["-a", "state", "all", "exclude", "all"],
    ["-t", "exclude", "all", "dport", "=", ":7300"],
], ids=" ".join)
def test_kill_refuses_states_that_cancel_out(scene: ScriptScene, words: list[str]) -> None:
    """State words that leave no state make ss list its default states (every connected socket),
    as if none had been given: the listing says so, but ``-K`` would close exactly what was
    excluded.  sockscope refuses, in one line, exit 255, and closes nothing."""
    before = _established(scene)
    assert len(before) == 2, before
    listing = [w for w in words if w != "-a"]
    ours = scene.netns.run([*SOCKSCOPE, "-tn", *listing])  # the listing itself stays ss's
    theirs = scene.netns.run(["ss", "-tn", *listing])
    assert (ours.returncode, _rows(ours.stdout)) == (theirs.returncode, _rows(theirs.stdout)), (ours, theirs)
    r = scene.netns.run([*SOCKSCOPE, "-K", *words])
    assert r.returncode == 255, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert _established(scene) == before, "-K closed sockets its state words had excluded"


def test_kill_with_a_replayed_capture_closes_nothing_as_ss(scene: ScriptScene, tmp_path: Path) -> None:
    """With ``TCPDIAG_FILE`` the TCP table is the capture's: ss's ``-K`` closes only what its live
    dumps list, so it prints the replayed sockets and closes none.  sockscope did send
    SOCK_DESTROY for each replayed record, closing the live sockets they named."""
    capture = tmp_path / "est.bin"
    r = scene.netns.run([*SOCKSCOPE, "-t", "-D", str(capture), "state", "established"])
    assert r.returncode == 0 and capture.stat().st_size > 100, r.stderr
    before = _established(scene)
    assert len(before) == 2, before
    env = {"TCPDIAG_FILE": str(capture)}
    ours = scene.netns.run([*SOCKSCOPE, "-tnK", "state", "established"], env=env)
    assert ours.returncode == 0, ours.stderr
    assert _established(scene) == before, "-K closed live sockets named by a replayed capture"
    theirs = scene.netns.run(["ss", "-tnK", "state", "established"], env=env)  # (closes nothing: replayed)
    assert _established(scene) == before, "ss closed them: the case is wrong"
    assert _rows(ours.stdout) == _rows(theirs.stdout) and len(_rows(ours.stdout)) == 3, (ours.stdout, theirs.stdout)
    dry = scene.netns.run([*SOCKSCOPE, "-tnK", "--dry-run", "state", "established"], env=env)
    assert _rows(dry.stdout) == _rows(ours.stdout), dry.stdout  # (what would close: the same rows)
