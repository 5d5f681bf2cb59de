"""Populations nobody wrote by hand: sockets drawn at random from a seed (the same every run:
tests/fixtures/drawn_population.py says what it draws), held by a drawn set of processes, each
population in a private network namespace of its own.  Over each, ``net_connections`` must give
psutil's rows for every kind, with the owners from the kernel's iterator and from the /proc walk,
``process_connections(pid, kind)`` psutil's ``Process(pid).net_connections(kind)`` for each holder,
``sockets()`` ss's rows (the inet cases: ss's text of a UNIX name with whitespace in it cannot be
read back), the exporter's counts and TCP listeners ss's, and the listing ss's rows for a spread of
option sets (the hand-written populations of
test_api_vs_psutil.py and test_cli_combos_vs_ss.py hold one socket of each shape; these mix them:
reuseport groups beside mapped listeners, queues of connections never accepted, TIME-WAIT and
orphans among full sockets, UNIX names with whitespace and bytes that are not UTF-8).

What may differ, and is masked, is what test_cli_combos_vs_ss.py masks: each lister's own sockets
and the values that move between two runs.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import random
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from nsutil import Netns, holding
from test_api_vs_psutil import KINDS, SOCKETS_CASES, _alike_in, sockets_match_ss
from test_cli_combos_vs_ss import _OWN, _rows

DRAW = Path(__file__).resolve().parent / "fixtures" / "drawn_population.py"
SEEDS = list(range(1, 13))
#: the listing's option sets over each population: every table, the detail options, owners
OPTION_SETS = ["-a", "-an", "-anp", "-tanoe", "-uanp", "-xa", "-xanp", "-xae", "-wan", "-0anp", "-tlnp",
               "-anm", "-tani", "-an state connected", "-an exclude listening", "-6an", "-4anp",
               "-an sport \\> :20500", "-xa src *x*", "-tan dst 127.0.0.1", "-tanT", "-xanT"]


@contextlib.contextmanager
def _drawn(seed: int) -> Iterator[tuple[Netns, dict[str, Any]]]:
    """Population ``seed`` held in a namespace of its own; its holders ended by pid, the namespace
    and the socket files' folder removed on the way out (also on failure)."""
    folder = tempfile.mkdtemp(prefix="sockscope-drawn-")
    try:
        with holding([sys.executable, str(DRAW), str(seed), folder], 60) as (ns, _holder, line):
            assert line.startswith("READY "), line
            yield ns, json.loads(line[6:])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_draws_cover_what_they_are_for() -> None:
    """Across the seeds, every shape the script draws is drawn (one run builds them all)."""
    with _drawn(0) as (_ns, info):
        assert info["pids"]
    shapes: set[str] = set()
    for seed in SEEDS:
        with _drawn(seed) as (_ns, info):
            shapes |= set(info["counts"])
    for shape in ("tcp listener reuse", "tcp listener mapped", "tcp listener any", "tcp waiting", "tcp time-wait",
                  "tcp orphan", "tcp client closed", "udp auto6", "raw", "packet", "unix stream server",
                  "unix dgram server", "unix seqpacket pair", "unix dgram lone"):
        assert any(s.startswith(shape) for s in shapes), (shape, sorted(shapes))


@pytest.mark.parametrize("seed", SEEDS)
def test_drawn_population_net_connections_as_psutil(seed: int) -> None:
    with _drawn(seed) as (ns, _info):
        for via in ("bpf", "proc"):
            _alike_in(ns, KINDS, env={"SOCKSCOPE_OWNERS": via})


class _Inside:
    """What sockets_match_ss runs its ss and scripts through: the namespace's."""

    def __init__(self, ns: Netns) -> None:
        self.ns = ns

    def ss(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.ns.run(["ss", *argv], env=env)

    def python(self, code: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.ns.run([sys.executable, "-c", code, *args], env=env, timeout=timeout)


@pytest.mark.parametrize("seed", SEEDS)
def test_drawn_population_records_as_ss(seed: int) -> None:
    inet = [case for case in SOCKETS_CASES if "x" not in case[2]]
    assert len(inet) == len(SOCKETS_CASES) - 2
    with _drawn(seed) as (ns, _info):
        sockets_match_ss(_Inside(ns), inet, empty_ok=True)


@pytest.mark.parametrize("seed", SEEDS)
def test_drawn_population_listed_as_ss(seed: int) -> None:
    problems = []
    with _drawn(seed) as (ns, _info):
        for options in OPTION_SETS:
            argv = options.replace("\\>", ">").split()
            for _ in range(4):  # (a TIME-WAIT may end between two runs of ss)
                a = ns.run(["ss", *argv])
                ours = ns.run([sys.executable, "-m", "sockscope", *argv])
                c = ns.run(["ss", *argv])
                if _rows(a.stdout) == _rows(c.stdout) and a.returncode == c.returncode:
                    break
            assert "Traceback" not in ours.stderr, ours.stderr
            assert (ours.returncode == 0) == (a.returncode == 0), (options, a.stderr, ours.stderr)
            want, got = _rows(a.stdout), _rows(ours.stdout)
            if got != want:
                problems.append(f"ss {options} (-) vs sockscope (+):\n" + "\n".join(
                    difflib.unified_diff(want, got, lineterm="", n=0)))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("seed", SEEDS)
def test_drawn_population_exported_as_ss(seed: int) -> None:
    """``exporter --once``: sockets by family, protocol and state as ss counts its rows; each TCP
    listener's accept queue and backlog as ss's (a SO_REUSEPORT group's summed under its address)."""
    from test_exporter import EXPORTER, listeners_of, parse_exposition, socket_counts, ss_counts

    with _drawn(seed) as (ns, _info):
        for _attempt in range(4):
            before = ss_counts(ns.run)
            r = ns.run([*EXPORTER, "--once", "--max-listeners", "1000"])
            listening = ns.run(["ss", "-ltn"])
            if ss_counts(ns.run) == before:  # nothing moved (a TIME-WAIT may end)
                break
        assert r.returncode == 0, r.stderr
        _, samples = parse_exposition(r.stdout)
        assert socket_counts(samples) == before
        want: dict[str, tuple[int, int]] = {}
        for line in listening.stdout.splitlines()[1:]:
            _state, recv_q, send_q, local, _peer = line.split()
            q = want.get(local, (0, 0))
            want[local] = (q[0] + int(recv_q), q[1] + int(send_q))
        assert listeners_of(samples, "tcp") == want


@pytest.mark.parametrize("seed", SEEDS)
def test_drawn_population_process_connections_as_psutil(seed: int) -> None:
    """Each holder's sockets, kind by kind: the same pconn tuples as psutil.Process(pid)'s."""
    from test_process_connections import COMPARE

    seen = 0
    with _drawn(seed) as (ns, info):
        for pid in info["pids"]:
            r = ns.run([sys.executable, "-c", COMPARE, str(pid)], timeout=120)
            assert r.returncode == 0, r.stderr
            for kind, (ours, theirs, _type) in json.loads(r.stdout).items():
                assert ours == theirs, (pid, kind)
                seen += len(ours) if kind == "all" else 0
    assert seen, "the holders hold no socket psutil sees"


def _socket_fds(pids: list[int]) -> dict[int, set[tuple[int, int]]]:
    """Every socket inode the pids hold: {inode: {(pid, fd), …}}, read from /proc."""
    held: dict[int, set[tuple[int, int]]] = {}
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except FileNotFoundError:
                continue
            if link.startswith("socket:["):
                held.setdefault(int(link[8:-1]), set()).add((pid, int(fd)))
    return held


_INO = re.compile(r"\bino:(\d+)")


def _bare(address: str) -> str:
    address = address.strip("[]").split("%")[0]
    return address.removeprefix("::ffff:") if "." in address else address


def _expected_peers(ns: Netns) -> dict[int, list[int]]:
    """{inode: the inodes of its other end}, from ss's rows: a TCP connection's is the row with the
    two endpoints swapped (0: a TIME-WAIT or a connection waiting in a queue); a connected UNIX
    socket's is its peer, a datagram server's the sockets connected to it, a listener has none."""
    peers: dict[int, list[int]] = {}
    tcp = []
    for line in ns.run(["ss", "-tanHe"]).stdout.splitlines():
        words = line.split()
        local, peer = words[3].rpartition(":"), words[4].rpartition(":")
        m = _INO.search(line)
        inode = int(m.group(1)) if m else 0
        tcp.append((words[0], (_bare(local[0]), local[2]), (_bare(peer[0]), peer[2]), inode))
    for state, local, peer, inode in tcp:
        if inode and state != "LISTEN":
            peers[inode] = sorted(i for _s, l2, p2, i in tcp if l2 == peer and p2 == local)
    unix = []
    for line in ns.run(["ss", "-xaH"]).stdout.splitlines():
        words = line.split()  # a name's whitespace is in the middle: the inodes are the row's end
        unix.append((words[1], int(words[-3]), int(words[-1])))
    known = {inode for _s, inode, _p in unix}
    for state, inode, peer_inode in unix:
        if peer_inode:
            peers[inode] = [peer_inode] if peer_inode in known else []
        elif state != "LISTEN":
            peers[inode] = sorted(i for _s, i, p in unix if p == inode and i != inode)
    return peers


@pytest.mark.parametrize("seed", SEEDS)
def test_drawn_population_who_as_proc_and_ss(seed: int) -> None:
    """``who PID --json`` for each holder: every socket the process holds (its inodes, as /proc
    lists its fds), each with every process holding it (pid and fd), and the TCP and UNIX
    sockets' other ends as ss's rows pair them."""
    with _drawn(seed) as (ns, info):
        for _attempt in range(4):
            before = _expected_peers(ns)
            held = _socket_fds(info["pids"])
            outs = [ns.run([sys.executable, "-m", "sockscope", "who", "--json", str(pid)]) for pid in info["pids"]]
            if _expected_peers(ns) == before:  # nothing moved (a TIME-WAIT may end)
                break
        paired = 0
        for pid, out in zip(info["pids"], outs):
            assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
            matches = json.loads(out.stdout)["matches"]
            mine = {inode for inode, fds in held.items() if any(p == pid for p, _fd in fds)}
            assert {m["socket"]["inode"] for m in matches} == mine, pid
            for m in matches:
                inode = m["socket"]["inode"]
                assert {(p["pid"], p["fd"]) for p in m["processes"]} == held[inode], (pid, inode)
                if inode in before:
                    got = sorted(p["socket"]["inode"] or 0 for p in m["peer"]["sockets"])
                    assert got == before[inode], (pid, m["socket"], m["peer"])
                    paired += bool(got)
        assert paired, "no socket with another end was compared"


def _kill_filter(seed: int, ports: list[int]) -> tuple[list[str], list[str]]:
    """-K's tables and selection, drawn from the seed: states, addresses, the population's ports."""
    rng = random.Random(seed)
    port = rng.choice(ports) if ports else 20000
    tables = rng.choice([["-t"], ["-t"], ["-u"], ["-tu"], ["-4t"], ["-6t"], ["-w"], ["-tuw"], ["-t", "-a"]])
    selection = rng.choice([
        "state established", "state syn-sent", "state close-wait", "state fin-wait-2", "state time-wait",
        "state syn-recv", "state connected", "state listening", "src 127.0.0.2", "dst [::1]",
        f"sport = :{port}", f"dport = :{port}", f"( sport = :{port} or dport = :{port} )",
        f"state established not dport = :{port}", "state connected src 127.0.0.0/8",
        "dst [::ffff:127.0.0.1]", "sport < :30000", "state all", f"state listening sport = :{port}"])
    return [*tables, "-n"], selection.split()


def _port(endpoint: str) -> str:
    return endpoint.rpartition(":")[2]


@pytest.mark.parametrize("seed", SEEDS)
def test_drawn_population_killed_as_selected(seed: int) -> None:
    """-K with a drawn selection: every row it prints is a row the same listing (without -K) showed,
    no TCP socket of the selection is left (a SO_REUSEPORT group's every listener too: ss leaves
    those the kernel's lookup does not pick), and every socket whose ports no selected socket has
    (neither end) is left as it was.  UDP and raw sockets may stay: the kernel only disconnects
    them (raw: this kernel has no raw_diag, and ss prints the rows of /proc it cannot close)."""
    with _drawn(seed) as (ns, info):
        options, selection = _kill_filter(seed, info["ports"])
        everything = _words(ns.run(["ss", "-tuwanH"]).stdout)
        listed = ns.run(["ss", *options, *selection])
        killed = ns.run([sys.executable, "-m", "sockscope", *options, "-K", *selection])
        time.sleep(0.2)  # the peers' resets land
        left = ns.run(["ss", *options, *selection])
        after = _words(ns.run(["ss", "-tuwanH"]).stdout)
    assert "Traceback" not in killed.stderr, killed.stderr
    assert killed.returncode == listed.returncode, (options, selection, listed.stderr, killed.stderr)
    if listed.returncode:  # a selection ss refuses (an IPv6 host after -4): refused as well, nothing closed
        assert killed.stdout == "" and after == everything
        return
    assert killed.stderr == "", killed.stderr
    shown, closed = _words(listed.stdout), _words(killed.stdout)
    assert closed[:1] == shown[:1], (closed[:1], shown[:1])  # the same columns
    assert set(closed[1:]) <= set(shown[1:]), (options, selection, sorted(set(closed[1:]) - set(shown[1:])))
    several = any(table in "".join(options) for table in "uw")  # a Netid column, not only TCP
    tcp_left = [row for row in _words(left.stdout)[1:] if not several or row.split()[0] == "tcp"]
    assert not tcp_left, (options, selection, tcp_left)
    touched = {_port(e) for row in shown[1:] for e in row.split()[-2:]} - {"*", "0"}
    untouched = [row for row in everything if not touched & {_port(e) for e in row.split()[-2:]}]
    assert set(untouched) <= set(after), (options, selection, sorted(set(untouched) - set(after)))


def _words(text: str) -> list[str]:
    """The rows, each as its words joined by one space (ss sizes its columns to what it lists)."""
    return [" ".join(line.split()) for line in text.splitlines()]


@pytest.mark.parametrize("seeds", [(1, 2, 3), (4, 5, 6)])
def test_drawn_populations_listed_at_once_as_ss_in_each(seeds: tuple[int, int, int]) -> None:
    """``--all-netns`` over three drawn populations at once: each namespace's rows (the Netns column
    aside) are the rows ss lists inside it (each lister's own diag socket aside)."""
    from test_all_netns_vs_ss import _rows as rows_of
    from test_all_netns_vs_ss import _theirs

    with contextlib.ExitStack() as stack:
        spaces = [stack.enter_context(_drawn(seed))[0] for seed in seeds]
        for options in ("-tan", "-xa", "-anp", "-tanT", "-uanm", "-0ap", "-xae"):
            args = options.split()
            for _ in range(4):  # (a TIME-WAIT may end between the runs)
                want = {ns.name: [r for r in _theirs(ns, args, True) if not _OWN.match(r)] for ns in spaces}
                run = subprocess.run([sys.executable, "-m", "sockscope", "--all-netns", *args], capture_output=True,
                                     text=True, errors="surrogateescape")
                # (stderr: at most the warning that some process of the machine could not be read)
                assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
                head, *rows = rows_of(run.stdout, True)
                got = {ns.name: [r.split(" ", 1)[1] for r in rows if r.split(" ", 1)[0] == ns.name
                                 and not _OWN.match(r.split(" ", 1)[1])] for ns in spaces}
                if got == want:
                    break
            assert head.split()[0] == "Netns"
            assert any(want.values()), f"nothing listed by {options}: the case tests nothing"
            for ns in spaces:
                assert got[ns.name] == want[ns.name], f"ss {options} in {ns.name} (-) vs --all-netns (+):\n" + \
                    "\n".join(difflib.unified_diff(want[ns.name], got[ns.name], lineterm="", n=0))
