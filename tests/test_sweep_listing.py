"""The listing as a hostile user drives it: ``-K`` given states that cancel out, ``-K`` over a
replayed capture, ``-D -`` with standard output closed, a capture whose lengths lie, ``-E``'s port
names, ``-f inet`` against ``-4``, ``--all-netns`` with ``-E``/``-D`` and its label column, the
memory ``-E`` keeps for ever new peers, a replayed directory, owners forged by a process name in CSV.

Each test runs in a private network namespace of its own (``sockscope-t-<hex>``, or ``unshare -n``)
holding a TCP listener and one established connection over loopback (a scene: ended by pid, the
namespace deleted, also on failure); ss runs beside sockscope where it has an answer.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
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
    with ScriptScene.running(SCENE, "sockscope-sweep-", "pair") as sc:
        yield sc


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


def test_diag_dump_to_closed_stdout_is_one_line(scene: ScriptScene) -> None:
    """``sockscope -D - >&-``: the raw dump has nowhere to go; one line and exit 1 as for the
    listing to a closed stdout, not a traceback (stdout was a stand-in without ``buffer``)."""
    listing = scene.netns.run(["sh", "-c", 'exec "$@" >&-', "sh", *SOCKSCOPE, "-tn"])
    r = scene.netns.run(["sh", "-c", 'exec "$@" >&-', "sh", *SOCKSCOPE, "-t", "-D", "-"])
    assert "Traceback" not in r.stderr, r.stderr
    assert listing.returncode == 1 and len(listing.stderr.splitlines()) == 1, listing
    assert (r.returncode, r.stderr) == (listing.returncode, listing.stderr), (r, listing)


def _limit_address_space() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("length", [0xFFFFFFF0, 0x40000000, 1 << 17])
def test_replay_reads_no_lying_length(scene: ScriptScene, tmp_path: Path, length: int) -> None:
    """A capture whose first message says it is longer than any dump's (up to 4 GiB: a damaged file,
    /dev/urandom): refused from its header, one line, exit 255, within a 1 GiB address space.  Its
    body was read (allocated) first, then refused: a MemoryError traceback (or, for a length the file
    does not hold, "Unexpected EOF" and exit 0, the length never looked at)."""
    capture = tmp_path / "lies.bin"
    capture.write_bytes(struct.pack("=IHHII", length, 20, 2, 0, 0) + bytes(200))
    argv = scene.netns.argv([*SOCKSCOPE, "-tn"])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, preexec_fn=_limit_address_space,
                       env={**os.environ, "TCPDIAG_FILE": str(capture)})
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr, r.stderr[-2000:]
    assert r.returncode == 255 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert len(r.stderr.splitlines()) == 1 and f"a message of {length} bytes" in r.stderr, r.stderr


def _one_protocol_ports() -> tuple[int, int]:
    """A port /etc/services names for UDP alone and one it names for TCP alone (below the
    ephemeral range): a TCP socket on the first, a UDP socket on the second."""
    names: dict[int, set[str]] = {}
    with open("/etc/services", "rb") as f:
        for line in f:
            words = line.split(b"#", 1)[0].split()
            if len(words) >= 2 and b"/" in words[1]:
                port, _, proto = words[1].partition(b"/")
                if port.isdigit() and 0 < int(port) < 32768:
                    names.setdefault(int(port), set()).add(proto.decode())
    udp_only = sorted(p for p, protos in names.items() if protos == {"udp"})
    tcp_only = sorted(p for p, protos in names.items() if protos == {"tcp"})
    assert udp_only and tcp_only, "/etc/services names no port for one protocol alone"
    return udp_only[0], tcp_only[0]


_EVENTS_NAMED = """
import json, socket, struct, subprocess, sys, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
sockscope, tcp_port, udp_port = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
procs = [subprocess.Popen(cmd + ["-E", "-tu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
         for cmd in (["stdbuf", "-oL", "ss"], sockscope)]
deadline = time.monotonic() + 20
def waiting(pid):  # blocked in recv (ss) or poll (sockscope)
    where = open(f"/proc/{pid}/wchan").read()
    return "skb_wait" in where or "poll" in where
while time.monotonic() < deadline and not all(waiting(p.pid) for p in procs):
    time.sleep(0.02)
l = socket.create_server(("127.0.0.1", tcp_port))
c = socket.create_connection(("127.0.0.1", tcp_port))
a, _ = l.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
for s in (c, a, l):
    s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", udp_port))
u.close()
time.sleep(0.5)
out = []
for p in procs:
    p.terminate()
    o, e = p.communicate(timeout=10)
    out.append([o.decode(), e.decode()])
print(json.dumps(out))
"""


def test_events_name_ports_of_any_protocol_as_ss() -> None:
    """``ss -E`` names a port by /etc/services' first line for it, of any protocol (its look-ups
    take the protocol of the table being dumped, and -E dumps none): a TCP socket on a port named
    for UDP alone shows the name, and so does a UDP socket on a port named for TCP alone.
    sockscope named them by the socket's own protocol, so printed digits where ss prints names."""
    tcp_port, udp_port = _one_protocol_ports()
    r = subprocess.run(["unshare", "-n", sys.executable, "-c", _EVENTS_NAMED, json.dumps(SOCKSCOPE),
                        str(tcp_port), str(udp_port)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (ss_out, _), (ours, err) = json.loads(r.stdout)
    assert err == "", err
    assert len(ss_out.splitlines()) == 5, ss_out  # the header, three TCP sockets, the UDP one
    assert ours == ss_out, f"sockscope -E -tu:\n{ours}\nss:\n{ss_out}"


@pytest.mark.parametrize("family, short", [("inet", "-4"), ("inet6", "-6")])
def test_family_option_says_what_its_short_option_says(scene: ScriptScene, family: str, short: str) -> None:
    """``-f inet`` is ss's ``-4`` (both set the family alone): the same rows and the same stderr from
    ss, so from sockscope too.  ``-f inet`` named DCCP, SCTP and the other inet tables as if asked for
    one by one, and said "dccp: not supported by this kernel" (and sctp's) on every kernel
    without them, where ``-4`` stays quiet."""
    runs = {}
    for tool in (["ss"], SOCKSCOPE):
        for argv in (["-an", "-f", family], ["-an", short]):
            r = scene.netns.run([*tool, *argv])
            assert r.returncode == 0, (tool, argv, r.stderr)
            runs[tool[0], argv[1]] = (_rows(r.stdout), r.stderr)
    assert runs["ss", "-f"] == runs["ss", short], "ss: the case is wrong"
    ours_f, ours_short = runs[SOCKSCOPE[0], "-f"], runs[SOCKSCOPE[0], short]
    assert ours_f == ours_short, f"-f {family}: {ours_f[1]!r}; {short}: {ours_short[1]!r}"


@pytest.mark.parametrize("argv", [["--all-netns", "-E", "-t"], ["--all-netns", "-tn", "-D", "{dump}"]],
                         ids=["events", "diag"])
def test_all_netns_is_refused_where_one_namespace_is_read(scene: ScriptScene, tmp_path: Path,
                                                          argv: list[str]) -> None:
    """``-E`` follows and ``-D`` dumps the namespace sockscope runs in, alone: with ``--all-netns``
    they went on silently with that one (no Netns column, no other namespace's events or sockets:
    a follower waiting forever for events that cannot come).  Refused, one line, exit 255, no file."""
    dump = tmp_path / "dump.bin"
    argv = [str(dump) if a == "{dump}" else a for a in argv]
    try:
        r = scene.netns.run([*SOCKSCOPE, *argv], timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{argv}: still following after 20 s")
    assert (r.returncode, r.stdout) == (255, ""), (r.returncode, r.stdout, r.stderr)
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert not dump.exists()


_PEERS = """
import dataclasses, json, sys
import sockscope
from sockscope.records import Endpoint
from sockscope.render.table import CellMaker, TableOptions
s = next(iter(sockscope.sockets("tcp", states=["listening"])))  # a real record, from the kernel
n, grown = int(sys.argv[1]), []
for resolve in (False, True):  # (-r: the namespace's resolver is 127.0.0.53, where nothing listens)
    maker = CellMaker(TableOptions(numeric=True, resolve=resolve))
    marks = []
    for i in range(2 * n):
        if i % n == 0:
            marks.append(sys.getallocatedblocks())
        a = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        maker.cells(dataclasses.replace(s, local=Endpoint(a, 1), peer=Endpoint(a, 2)))
    marks.append(sys.getallocatedblocks())
    grown.append([b - a for a, b in zip(marks, marks[1:])])
print(json.dumps(grown))
"""


def test_event_rows_keep_bounded_address_texts(scene: ScriptScene) -> None:
    """``-E`` runs for days and its rows name ever new peers: the address texts its cell maker
    keeps (and, with ``-r``, the names looked up) are bounded, as the decoder's are, instead of
    one more kept for every peer ever seen.  Here 68,000 peers (the bound, 65,536, and more) go
    through the cells ``-E`` makes, from a listener's real record: the second 34,000 must not
    cost what the first did."""
    r = scene.netns.run([sys.executable, "-c", _PEERS, "34000"], timeout=120)
    assert r.returncode == 0, r.stderr
    for (first, second), what in zip(json.loads(r.stdout), ("addresses", "-r names")):
        assert first > 30000, (what, first, second)  # (the texts are kept: what is measured is there)
        assert second < first / 2, f"{what}: {first} blocks for the first 34,000 peers, {second} for the next"


def test_all_netns_label_is_its_own_column(scene: ScriptScene) -> None:
    """``--all-netns`` puts the namespace's label before ss's columns.  Where Netid is shown (more
    than one table), Netid, ss's first column, has no delimiter before it: the widest label ran into
    it (``sockscope-t-1a2b3c4dtcp``).  The rows are the label, then ss's own row in that namespace."""
    argv = ["-tuan", "sport", "=", f":{PORT}", "or", "dport", "=", f":{PORT}"]
    ours = scene.netns.run([*SOCKSCOPE, "--all-netns", *argv])
    theirs = scene.netns.run(["ss", *argv])
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    rows = [row for row in _rows(ours.stdout)[1:] if row[0] == scene.netns.name]
    assert _rows(ours.stdout)[0][:2] == ["Netns", "Netid"], ours.stdout
    assert sorted(row[1:] for row in rows) == sorted(_rows(theirs.stdout)[1:]), (ours.stdout, theirs.stdout)
    assert len(rows) == 3, ours.stdout


def test_replay_of_a_directory_says_what_ss_says(scene: ScriptScene, tmp_path: Path) -> None:
    """``TCPDIAG_FILE=DIR``: ss's fopen opens a directory, its first read fails ("Reading header
    from $TCPDIAG_FILE: Is a directory"), no TCP row, exit 0.  sockscope said ss's words for a file
    that cannot be opened ("fopen($TCPDIAG_FILE): …"); stdout, stderr and status are now ss's."""
    env = {"TCPDIAG_FILE": str(tmp_path)}
    for argv in (["-tan"], ["-tln", "sport", "=", f":{PORT}"]):
        theirs = scene.netns.run(["ss", *argv], env=env)
        ours = scene.netns.run([*SOCKSCOPE, *argv], env=env)
        assert "Is a directory" in theirs.stderr, theirs.stderr
        assert (ours.returncode, _rows(ours.stdout), ours.stderr) == (
            theirs.returncode, _rows(theirs.stdout), theirs.stderr), (ours, theirs)


def test_replay_of_an_empty_name_is_set_as_ss_reads_it(scene: ScriptScene) -> None:
    """``TCPDIAG_FILE=`` (set, empty): ss reads it as set (its fopen fails: no TCP row, one line on
    stderr, exit 0); sockscope listed the live table.  ``-K`` there lists nothing and closes nothing."""
    env = {"TCPDIAG_FILE": ""}
    before = _established(scene)
    for argv in (["-tan"], ["-tnK", "state", "established"]):
        theirs = scene.netns.run(["ss", *argv], env=env) if "-tnK" not in argv else None
        ours = scene.netns.run([*SOCKSCOPE, *argv], env=env)
        assert "fopen($TCPDIAG_FILE)" in ours.stderr and len(_rows(ours.stdout)) == 1, ours
        if theirs is not None:
            assert (ours.returncode, _rows(ours.stdout), ours.stderr) == (
                theirs.returncode, _rows(theirs.stdout), theirs.stderr), (ours, theirs)
    assert _established(scene) == before


def test_named_namespace_resolves_with_its_own_etc_files(scene: ScriptScene) -> None:
    """``-N NAME -r``: ss (as ``ip netns exec``) sees /etc/netns/NAME's files over /etc's, so the
    namespace's hosts names its addresses; sockscope resolved with the host's /etc/hosts.  Run from
    the test's own namespace, both enter the scene's by name; the host's mounts are left as they were."""
    (scene.netns.etc_dir / "hosts").write_text("127.0.0.1\tsweep-one-host\n::1\tip6-localhost\n")
    mounts = Path("/proc/self/mountinfo").read_text()
    for argv in (["-N", scene.netns.name, "-tr"], ["-N", scene.netns.name, "-tar", "sport", "=", f":{PORT}"]):
        ours = subprocess.run([*SOCKSCOPE, *argv], capture_output=True, text=True, timeout=60)
        theirs = subprocess.run(["ss", *argv], capture_output=True, text=True, timeout=60)
        assert "sweep-one-host" in theirs.stdout, theirs.stdout
        assert (ours.returncode, _rows(ours.stdout), ours.stderr) == (
            theirs.returncode, _rows(theirs.stdout), theirs.stderr), (ours, theirs)
    assert Path("/proc/self/mountinfo").read_text() == mounts


def test_csv_owners_cannot_be_forged_by_a_process_name(scene: ScriptScene) -> None:
    """CSV writes a socket's owners as ``pid/fd/name;…``, and any process may name itself (prctl,
    15 bytes): ``x;1/3/sshd`` read as two owners, the second pid 1's "sshd".  A name's "%", "/" and
    ";" are percent-encoded: one owner, the real pid, the name intact once decoded."""
    import csv
    from urllib.parse import unquote

    name = "x;1/3/sshd%"
    pid = scene.start("spoof", name)["pid"]
    r = scene.netns.run([*SOCKSCOPE, "-tlnp", "--csv", "sport", "=", ":7302"])
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(r.stdout.splitlines()))
    assert len(rows) == 1, r.stdout
    owners = [o.split("/") for o in rows[0]["owners"].split(";")]
    assert owners == [[str(pid), owners[0][1], owners[0][2]]], rows[0]["owners"]
    assert unquote(owners[0][2]) == name, owners
    as_json = scene.netns.run([*SOCKSCOPE, "-tlnp", "--json", "sport", "=", ":7302"])
    assert [o["name"] for o in json.loads(as_json.stdout)[0]["owners"]] == [name], as_json.stdout


@pytest.mark.parametrize("name", ["a)b (c) d", "(x)y", "sp ace\nnl", "\u00e9t\u00e9 (\u00e0)"])
def test_a_process_name_as_ss_cuts_it(scene: ScriptScene, name: str) -> None:
    """ss takes a process's name from /proc/PID/stat's ``(comm)``, up to the first ')'; any process
    may name itself (prctl, 15 bytes) with parentheses, spaces, a newline or letters beyond ASCII.
    sockscope reads /proc/PID/comm (the same bytes, quicker for the kernel to make) and cuts
    it there too: the same Process cell as ss's, the owners found by the kernel's iterator or by the
    /proc walk."""
    scene.start("spoof", name)
    argv = ["-tlnp", "sport", "=", ":7302"]
    theirs = scene.netns.run(["ss", *argv])
    assert theirs.returncode == 0 and "users:((" in theirs.stdout, theirs
    for env in ({}, {"SOCKSCOPE_OWNERS": "proc"}):
        ours = scene.netns.run([*SOCKSCOPE, *argv], env=env)
        assert (ours.returncode, ours.stdout) == (0, theirs.stdout), (env, ours, theirs)
