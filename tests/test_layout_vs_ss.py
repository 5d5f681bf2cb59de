"""Where ss lays its table out, sockscope does too (render/ssbuffer.py): ss holds its rows in
a buffer of 1 MiB chunks and writes what it holds, with the widths of those rows, once it holds
five at the end of a row; a table of up to ~50,000 rows is one layout.

* 9,003 TCP rows whose widest address comes last (an IPv6 listener after the IPv4 rows): one
  layout, the first rows as wide as the last (sockscope once wrote every 8,192 rows); also with
  ``-e`` (rows of cells made from records, added one at a time).
* 70,001 UDP sockets, the one IPv6 address (the widest) last: ss writes in two layouts, the
  first narrower; sockscope's rows come a datagram at a time, so where ss writes falls inside
  one of many blocks.
* 72,000 UNIX sockets in four processes, three with long abstract names: ss writes in two
  layouts (the test checks that it does), the second wider; sockscope the same, also with
  ``-p`` (owners' texts make the rows longer: another row ends the first layout).

Each case runs in a private network namespace (``unshare -n``); the processes holding the
sockets are the script's own children, ended by pid.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_COMPARE = textwrap.dedent(
    r"""
    import json, os, subprocess, sys
    SOCKSCOPE = [sys.executable, "-m", "sockscope"]

    def held(make, processes=4):  # one pass of the loop while children hold what make(p) returns
        import resource, signal, time
        r, w = os.pipe()
        pids = []
        try:
            for p in range(processes):
                pid = os.fork()
                if pid == 0:
                    try:
                        resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
                        keep = make(p)
                        os.write(w, b".")
                        time.sleep(600)
                    finally:
                        os._exit(0)
                pids.append(pid)
            for _ in pids:
                assert os.read(r, 1) == b"."
            yield
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)

    def compare(argvs):
        out = {}
        for argv in argvs:
            ss = subprocess.run(["ss", *argv], capture_output=True, text=True, check=True).stdout
            ours = subprocess.run([*SOCKSCOPE, *argv], capture_output=True, text=True, check=True).stdout
            widths = []  # ss's line width at each change: one entry a layout
            for line in ss.splitlines():
                if not widths or widths[-1] != len(line):
                    widths.append(len(line))
            first = next((i for i, (a, b) in enumerate(zip(ss.splitlines(), ours.splitlines())) if a != b), None)
            out[" ".join(argv)] = {"same": ss == ours, "rows": ss.count("\n"), "widths": widths,
                                   "first_diff": first}
        return out
    """
)

_TCP = _COMPARE + textwrap.dedent(
    r"""
    import resource, socket
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resource.setrlimit(resource.RLIMIT_NOFILE, (12000, 12000))
    keep = []
    srv = socket.socket(); srv.bind(("127.0.0.1", 5000)); srv.listen(4096); keep.append(srv)
    for _ in range(4500):
        c = socket.create_connection(("127.0.0.1", 5000)); a, _ = srv.accept(); keep += [c, a]
    six = socket.socket(socket.AF_INET6); six.bind(("::ffff:127.0.0.1", 6000)); six.listen(); keep.append(six)
    json.dump(compare([["-tan"], ["-ta"], ["-tane"]]), sys.stdout)
    """
)

_UNIX = _COMPARE + textwrap.dedent(
    r"""
    import socket
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    def make(p):
        keep = [socket.socketpair() for _ in range(9000)]
        if p == 0:
            for k in range(3):
                s = socket.socket(socket.AF_UNIX)
                s.bind(b"\0sockscope-layout-" + b"x" * (40 + 20 * k))
                keep.append(s)
        return keep

    for _ in held(make):
        json.dump(compare([["-xa"], ["-x"], ["-xap"]]), sys.stdout)
    """
)

_UDP = _COMPARE + textwrap.dedent(
    r"""
    import socket
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    def make(p):
        keep = []
        for port in range(2000, 19500):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.%d.1" % (p + 1), port))
            keep.append(s)
        if p == 0:  # IPv6 rows come after the IPv4 ones: the widest address last
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.bind(("::ffff:127.0.1.1", 40000))
            keep.append(s)
        return keep

    for _ in held(make):
        json.dump(compare([["-uan"], ["-ua"]]), sys.stdout)
    """
)


def _run(script: str) -> dict[str, dict[str, object]]:
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    got: dict[str, dict[str, object]] = json.loads(proc.stdout)
    return got


def test_a_table_of_more_than_8192_rows_is_one_layout_as_in_ss() -> None:
    got = _run(_TCP)
    for argv, res in got.items():  # (-e: rows of cells from records, each row laid out as ss does)
        assert res["rows"] == 9003, argv
        assert res["same"], f"ss {argv}: first difference at line {res['first_diff']}"
    for argv in ("-tan", "-ta"):  # one layout: every line as wide
        assert len(got[argv]["widths"]) == 1, argv


def test_a_table_past_ss_buffer_is_laid_out_where_ss_writes() -> None:
    got = _run(_UNIX)
    for argv, res in got.items():
        assert res["same"], f"ss {argv}: first difference at line {res['first_diff']}"
    # the case holds what it is about: ss wrote -xa in two layouts, the second wider
    widths = got["-xa"]["widths"]
    assert isinstance(widths, list) and len(widths) == 2 and widths[0] < widths[1], widths
    assert got["-xa"]["rows"] == 72004


def test_a_long_table_of_many_datagrams_is_laid_out_where_ss_writes() -> None:
    """70,001 UDP rows, one block a datagram: ss writes the first ~65,000 in one layout and the
    rest, with the one wide IPv6 address, in a second; sockscope the same."""
    got = _run(_UDP)
    for argv, res in got.items():
        assert res["same"], f"ss {argv}: first difference at line {res['first_diff']}"
        assert res["rows"] == 70002, argv
    widths = got["-uan"]["widths"]
    assert isinstance(widths, list) and len(widths) == 2 and widths[0] < widths[1], widths
