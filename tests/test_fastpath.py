"""The listing's fast paths give what the record path gives, in ss's order.

* One legacy ``TCPDIAG_GETSOCK`` dump serves ``-t`` for IPv4 and IPv6 at once;
  when the kernel refuses it, one dump per family (what ss does) gives the
  same table.
* Batches render like records; a table of datagrams read column at once and
  framed (IPv6 wildcards, TIME-WAIT sockets with no attributes) lays out like ss
  (the differential tests in test_cli_vs_ss.py compare with ss itself).

Everything runs in a private network namespace (``unshare -n``) on loopback.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# The sockets both namespace scripts list: IPv4 and IPv6 connections (some data
# sent, so tcp_info has counters), an IPv6 wildcard listener, a TIME-WAIT socket
# and a UDP socket; and ``table(argv)``, the listing as text.
_SOCKETS = textwrap.dedent(
    r"""
    import io, json, re, socket, subprocess, sys
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    from sockscope.cli import ls
    keep = []
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        srv = socket.socket(fam); srv.bind((host, 0)); srv.listen(64); keep.append(srv)
        for i in range(40):
            c = socket.create_connection(srv.getsockname()[:2]); a = srv.accept()[0]; keep += [c, a]
            c.sendall(b"x" * (i * 100 + 1)); a.recv(65536)
    any6 = socket.socket(socket.AF_INET6); any6.bind(("::", 0)); any6.listen(1); keep.append(any6)
    tw = socket.create_connection(keep[0].getsockname()); a = keep[0].accept()[0]; tw.close(); a.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); keep.append(u)
    import time
    time.sleep(0.3)  # (the delayed ACKs of the data sent come in first: tcp_info's counters then stay still)

    def table(argv):
        out = io.StringIO()
        assert ls.main(argv, out) == 0
        return out.getvalue()
    """
)

_SCRIPT = _SOCKETS + textwrap.dedent(
    r"""
    from sockscope.kernel import inet

    res = {}
    for argv in (["-tan"], ["-ta"], ["-tn", "dport", "gt", ":1024"], ["-tan", "-4"], ["-tan", "-6"]):
        fast = table(argv)
        inet.encode_request_compat = lambda *a, **k: inet.encode_request(99, 6, 0)  # refused by the kernel
        fallback = table(argv)
        del inet.encode_request_compat
        import importlib; importlib.reload(inet)
        slow = table(argv + ["-e"])  # the record path (details); -e's text is not compared
        res[" ".join(argv)] = (fast, fallback, slow)
    json.dump(res, sys.stdout)
    """
)


def test_legacy_dump_fallback_and_record_path_agree() -> None:
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for argv, (fast, fallback, slow) in json.loads(proc.stdout).items():
        assert fast.count("\n") > 2, argv
        assert fast == fallback, f"{argv}: legacy dump vs one dump per family"
        # State, Recv-Q, Send-Q, Local, Peer (what -e appends comes after)
        fast_rows = [line.split()[:5] for line in fast.splitlines()[1:]]
        slow_rows = [line.split()[:5] for line in slow.splitlines()[1:]]
        assert fast_rows == slow_rows, f"{argv}: fast path vs record path"


_PER_FAMILY = _SOCKETS + textwrap.dedent(
    r"""
    import os, threading
    from sockscope.errors import NetlinkError
    from sockscope.kernel import inet, sockstat, transport

    behind = []  # the requests helpers sent
    real_behind = transport.Behind
    def spy(request, op):
        behind.append(request[16])
        return real_behind(request, op)
    transport.Behind = spy

    def ss(argv):
        return subprocess.run(["ss", *argv], capture_output=True, text=True, check=True).stdout

    res = {"counts": [sockstat.counts(f).get((p, b"inuse")) for f, p in ((socket.AF_INET, b"TCP"),
                                                                           (socket.AF_INET6, b"TCP6"))]}
    argvs = (["-tan"], ["-ta"], ["-t"], ["-tn", "dport", "gt", ":1024"], ["-tan", "state", "established"],
             ["-tani"], ["-tane"], ["-uan"], ["-tuan"])
    for least in (sockstat.PER_FAMILY_MIN, 0):
        sockstat.PER_FAMILY_MIN = least
        for argv in argvs:
            behind.clear()
            ours, theirs = table(argv), ss(argv)
            if argv[0] in ("-tani", "-tane"):  # timers and counters move: the rows' first five fields
                ours, theirs = ([line.split()[:5] for line in text.splitlines()] for text in (ours, theirs))
            lines = len(ours) if isinstance(ours, list) else ours.count("\n")
            res[f"{least} {' '.join(argv)}"] = (ours == theirs, sorted(behind), lines)
    # a dump read through a helper that holds at most one datagram ahead: the same as read directly
    req = inet.encode_request(socket.AF_INET6, 6, 0xfff)
    def inodes(datagrams):
        got = []
        for data in datagrams:
            batch, done = inet.decode(data)
            got += batch.inode
            if done:
                return got
    transport.BEHIND_BYTES = 1
    res["bounded"] = inodes(real_behind(req, "t")) == inodes(transport.stream(req, "t"))
    # one never read, or read in part, then closed: its helper ends, its socket is closed, threads
    # switch as often as before
    fds, threads, interval = len(os.listdir("/proc/self/fd")), threading.active_count(), sys.getswitchinterval()
    unread = real_behind(req, "t")
    res["switching while it runs"] = sys.getswitchinterval()
    unread.close()
    part = real_behind(req, "t")
    next(iter(part))
    part.close()
    res["after close"] = (len(os.listdir("/proc/self/fd")) - fds, sys.getswitchinterval() == interval)
    try:
        inodes(real_behind(inet.encode_request(99, 6, 0xfff), "t"))
        res["error"] = None
    except NetlinkError as exc:
        res["error"] = str(exc)
    json.dump(res, sys.stdout)
    """
)


def test_one_dump_per_family_at_once_lists_what_ss_lists() -> None:
    """Where the namespace's counts say both families are many (``sockstat.tcp_per_family``), the
    TCP listing makes one dump per family as ss does, the IPv6 one sent by a helper at once
    (``transport.Behind``), instead of the legacy walk of both split by family (not with a filter
    expression: the one walk): the same rows as ss either way (IPv4 first; TIME-WAIT, a dual-stack
    wildcard, filters, states, -i, -e).  Other
    dumps of several families (-i, -e, UDP) always run the later ones beside the first.  A helper
    bounded to one datagram ahead gives the same dump; one closed unread (or half read) ends, its
    socket closed; the kernel's error is raised where its dump is read."""
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _PER_FAMILY], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["counts"] == [81, 82]  # (a listener and 40 connections' two ends a family, the wildcard)
    for key, (same, helped, lines) in ((k, v) for k, v in res.items() if k[0].isdigit()):
        least, argv = key.split(" ", 1)
        assert same, f"{argv}: not ss's listing"
        assert lines > 80 or argv.startswith("-uan"), key
        # (-i and -e always dump per family; a filter expression takes the one walk; the UDP table has
        # no IPv6 socket: no walk of it)
        per_family = (least == "0" and "dport" not in argv) or argv.startswith(("-tani", "-tane"))
        want = [10] if per_family and not argv.startswith("-uan") else []
        assert helped == want, f"{key}: helpers sent {helped}"
    assert res["bounded"] is True
    assert res["switching while it runs"] == pytest.approx(1e-4)
    assert res["after close"] == [0, True]
    assert res["error"] is not None and ("Invalid argument" in res["error"] or "not supported" in res["error"])


_AHEAD = textwrap.dedent(
    r"""
    import json, socket, subprocess, sys, threading, time
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    from sockscope.errors import NetlinkError
    from sockscope.kernel import inet, transport
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(512)
    keep = []
    for _ in range(600):  # several datagrams' worth
        keep += [socket.create_connection(srv.getsockname()), srv.accept()[0]]

    sys.setswitchinterval(0.003)
    intervals = []

    def inodes(stream):
        got = []
        for data in stream:
            intervals.append(sys.getswitchinterval())
            batch, done = inet.decode(data)
            got += batch.inode
            if done:
                return got
        raise AssertionError("no NLMSG_DONE")

    req = inet.encode_request(2, 6, 0xfff)
    res = {"plain": inodes(transport.stream(req, "t"))}
    res["plain_intervals"], intervals[:] = sorted(set(intervals)), []
    res["ahead"] = inodes(transport.stream_ahead(req, "t"))
    res["ahead_intervals"], intervals[:] = sorted(set(intervals)), []
    # two dumps at once (one inside the other): the interval is put back when the last ends
    outer = transport.stream_ahead(req, "t")
    next(outer)
    inner = inodes(transport.stream_ahead(req, "t"))
    res["nested"] = [inner == res["plain"], sys.getswitchinterval()]
    outer.close()  # (its helper may go on until its recv returns: the guesses below are stateless)
    res["after"], intervals[:] = sys.getswitchinterval(), []
    # a decoder slower than the kernel: what the helper has queued is handed over as one (up to
    # JOIN_BYTES), unless join is 0; never the datagram that ends the dump
    sizes, ends = [], []

    def slow(stream):
        for data in stream:
            sizes.append(len(data))
            ends.append(transport._ends_dump(data))
            time.sleep(0.05)
            yield data
    res["joined"] = inodes(slow(transport.stream_ahead(req, "t")))
    res["joined_sizes"], res["joined_ends"], sizes[:], ends[:] = sizes[:], ends[:], [], []
    res["unjoined"] = inodes(slow(transport.stream_ahead(req, "t", 0)))
    res["unjoined_sizes"], sizes[:], intervals[:] = sizes[:], [], []
    # the helper stops after its first datagram (the second of the dump): the rest is read directly
    transport._ends_dump = lambda data: threading.current_thread() is not threading.main_thread()
    res["early_stop"] = inodes(transport.stream_ahead(req, "t"))
    res["early_stop_intervals"], intervals[:] = sorted(set(intervals)), []
    # the first datagram taken for the dump's last: no helper, the rest read directly
    transport._ends_dump = lambda data: True
    res["no_helper"] = inodes(transport.stream_ahead(req, "t"))
    res["no_helper_intervals"], intervals[:] = sorted(set(intervals)), []
    abandoned = transport.stream_ahead(req, "t")
    next(abandoned)
    del abandoned  # a consumer that stops early: closing the generator puts the interval back
    try:
        inodes(transport.stream_ahead(inet.encode_request(99, 6, 0xfff), "t"))
        res["error"] = None
    except NetlinkError as exc:
        res["error"] = str(exc)
    res["end"] = sys.getswitchinterval()
    json.dump(res, sys.stdout)
    """
)


def test_stream_ahead_gives_the_same_datagrams_and_errors() -> None:
    """The receive-ahead helper thread: same sockets as the plain stream, also
    when it stops early, and the kernel's error raised in the caller."""
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _AHEAD], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert len(res["plain"]) >= 1201
    assert res["ahead"] == res["plain"]
    assert res["early_stop"] == res["no_helper"] == res["plain"]
    assert res["joined"] == res["unjoined"] == res["plain"]
    joined, unjoined = res["joined_sizes"], res["unjoined_sizes"]
    from sockscope.kernel import transport

    assert max(unjoined) <= 32768 < max(joined) <= transport.JOIN_BYTES + 32768, (joined, unjoined)
    assert len(joined) < len(unjoined) and sum(joined) == sum(unjoined)
    assert res["joined_ends"][-1] and not any(res["joined_ends"][:-1])  # (the end is its own datagram)
    assert res["error"] is not None and ("Invalid argument" in res["error"] or "not supported" in res["error"])
    # while a helper receives, threads switch every SWITCH_INTERVAL; then the caller's interval is back
    assert res["plain_intervals"] == [0.003]
    assert res["ahead_intervals"] == [pytest.approx(1e-4)]
    assert res["nested"] == [True, pytest.approx(1e-4)]
    assert res["early_stop_intervals"] == [pytest.approx(1e-4)]
    assert res["no_helper_intervals"] == [0.003]  # no helper: nothing to switch to
    assert res["after"] == res["end"] == pytest.approx(0.003)


def test_owners_arriving_late_with_batched_flushes() -> None:
    """Column blocks whose owners come later (BackgroundOwners) are written right,
    also when the table is flushed in several batches, each waiting for them."""
    import io
    import struct

    from sockscope.kernel import inet, netlink
    from sockscope.render.table import CellMaker, TableOptions
    from sockscope.render.writer import TableWriter

    def msg(sport: int, ino: int) -> bytes:
        body = inet._MSG.pack(2, 1, 0, 0, int.from_bytes(sport.to_bytes(2, "big"), sys.byteorder),
                              int.from_bytes((80).to_bytes(2, "big"), sys.byteorder), bytes([127, 0, 0, 1]) + bytes(12),
                              bytes([127, 0, 0, 2]) + bytes(12), 0, 0, 0, 0, 0, 0, ino)
        return netlink.encode_message(netlink.SOCK_DIAG_BY_FAMILY, 2, 1, body + struct.pack("=HHB3x", 5, 8, 0))

    class LateOwners:
        complete = True

        def __init__(self) -> None:
            self.loaded = 0

        def texts(self) -> dict[int, str]:
            self.loaded += 1
            return {ino: f' users:(("p{ino}",pid={ino},fd=3))' for ino in range(100, 110) if ino != 104}

        def text(self, ino: int) -> str:
            return self.texts().get(ino, "")

    owners = LateOwners()
    maker = CellMaker(TableOptions(numeric=True, processes=True), owners)  # type: ignore[arg-type]
    out = io.StringIO()
    writer = TableWriter(out, [False, True] + [True] * 8, batch=3)
    for first in range(100, 110, 2):
        batch, _done = inet.decode(msg(40000 + first, first) + msg(40001 + first, first + 1))
        writer.add_many(maker.column_cells("tcp", batch))
    writer.flush()
    rows = [line.split() for line in out.getvalue().splitlines()]
    assert rows[0][:2] == ["State", "Recv-Q"] and len(rows) == 11
    for row, ino in zip(rows[1:], range(100, 110)):
        assert row[:5] == ["ESTAB", "0", "0", f"127.0.0.1:{40000 + ino}", "127.0.0.2:80"]
        assert row[5:] == ([] if ino == 104 else [f'users:(("p{ino}",pid={ino},fd=3))'])
    assert owners.loaded >= 2  # several flushes, each resolving its blocks


_INFO = _SOCKETS + textwrap.dedent(
    r"""
    from sockscope.render.details import DetailOptions

    # what moves between two dumps a few ms apart: times since the last packet and rates
    moving = re.compile(r"\b(lastsnd|lastrcv|lastack|busy|rto|rtt|ato|minrtt|rcv_rtt)[:][^ ]*"
                        r"|\b(send|pacing_rate|delivery_rate) [^ ]*|bw:[^,]*")

    def norm(text):
        return [moving.sub(r"\1\2", line).split() for line in text.splitlines()]

    from sockscope.kernel import inet
    from sockscope.render.table import CellMaker

    def by_records(self, netid, b):  # a record of each row, its cells as a record's
        return [self.cells(s) for s in inet.records(b, netid, True)]

    real, columns = DetailOptions.any_but_info, CellMaker.detail_cells
    res = {}
    for argv in (["-tani"], ["-tanio"], ["-ani"], ["-tni", "dport", "gt", ":1024"], ["-tanpi"]):
        for _ in range(3):  # (a counter that moved between the two listings: again)
            fast = table(argv)
            DetailOptions.any_but_info = property(lambda self: True)  # the record path
            CellMaker.detail_cells = by_records
            slow = table(argv)
            DetailOptions.any_but_info, CellMaker.detail_cells = real, columns
            if norm(fast) == norm(slow):
                break
        res[" ".join(argv)] = (norm(fast), norm(slow), fast.count("cwnd:"))
    json.dump(res, sys.stdout)
    """
)


def test_info_rows_without_records_match_the_record_path() -> None:
    """`-i` takes the batch path (tcp_info columns + info_cells): the same table as
    the records and detail_text give, but for the counters that move meanwhile."""
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _INFO], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for argv, (fast, slow, infos) in json.loads(proc.stdout).items():
        assert infos >= 60 or "dport" in argv, argv  # tcp_info really printed
        assert fast == slow, f"{argv}: info rows differ from the record path"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_joined_columns_write_what_separate_ones_do(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adjacent columns of few values are looked up as one (render.writer._Joined): the table is
    the same as with every column looked up alone, also where the queues' values are many (no
    joining), where they widen their columns between batched flushes, and for both families."""
    import io
    import random
    import struct

    from sockscope.kernel import inet, netlink
    from sockscope.render import writer as w
    from sockscope.render.table import CellMaker, TableOptions

    rnd = random.Random(seed)

    def msg(i: int, many: bool) -> bytes:
        fam = rnd.choice([2, 10])
        addr = (bytes([127, 0, 0, 1 + i % 3]) + bytes(12)) if fam == 2 else bytes(15) + bytes([1 + i % 2])
        rq = rnd.randrange(10 ** rnd.randrange(1, 7)) if many else rnd.choice([0, 0, 5])
        body = inet._MSG.pack(fam, rnd.choice([1, 1, 2, 8]), 0, 0, 1000 + i, 80, addr, addr, 0, 0, 0, rq,
                              rnd.choice([0, 1, 99999]), 0, 100 + i)
        return netlink.encode_message(netlink.SOCK_DIAG_BY_FAMILY, 2, 1, body + struct.pack("=HHB3x", 5, 8, 0))

    def table() -> str:
        rnd.seed(seed)
        maker = CellMaker(TableOptions(numeric=True))
        out = io.StringIO()
        tw = w.TableWriter(out, [True] * 10, batch=7)
        for k in range(12):
            batch, _done = inet.decode(b"".join(msg(10 * k + j, k > 6) for j in range(5)))
            tw.add_many(maker.column_cells("tcp", batch))
        tw.flush()
        return out.getvalue()

    joined = table()
    monkeypatch.setattr(w, "_JOIN_MAX", 0)
    alone = table()
    assert joined == alone and len(joined.splitlines()) == 61


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_numbers_and_cells_formatted_as_rows_of_cells_are(seed: int) -> None:
    """A block's rows are written by one ``%`` format (render.writer._cells with ``fmt``): columns
    of numbers (``render.table.Numbers``: their digits made by the format, 0 as its own text, one
    wider than the digits too, right-aligned too; ports with service names, a name wider or
    narrower than the other ports' digits, the largest port named or not), cells padded by it,
    texts with ``%`` in them and one text for every row give the table that the same cells given
    as rows of text give, across batched flushes that widen the columns."""
    import io
    import random

    from sockscope.render import table as t
    from sockscope.render.writer import TableWriter

    rnd = random.Random(seed)
    wide_zero = t.Numbers("none%")
    named = t.Numbers("*", {7: "echo", 80: "http%", 9999: "a-long-service-name", 65000: "hi"})
    blocks = []
    for k in range(9):
        n = rnd.randrange(1, 40) if k else 1

        def nums(k: int = k, n: int = n) -> list[int]:
            top = 10 ** rnd.randrange(k + 1)  # the first blocks' numbers narrower than "none%"
            return [rnd.choice([0, rnd.randrange(top)]) if rnd.random() < 0.5 else rnd.randrange(top)
                    for _ in range(n)]

        state = t._TextCache()
        states = [rnd.choice([1, 7, 10]) for _ in range(n)]
        t.fill(states, state, t._state_texts)
        cells = [rnd.choice(["", "a%s", "%d%%", "x" * rnd.randrange(30)]) for _ in range(n)]
        ports = [rnd.choice([0, 7, 80, 9999, 65000, 123, 65001]) if rnd.random() < 0.3
                 else rnd.randrange(1, 10 ** k + 2) for _ in range(n)]
        cols = [("u%str", None), (states, state), (nums(), t.NUMBERS), (nums(), wide_zero),
                (rnd.choice(["10%", "*"]), None), (ports, named), (nums(), t.NUMBERS),
                (nums(), rnd.choice([t.PORTS, named])), (cells, t.CELLS), ("", None)]
        blocks.append(t.Columns(n, cols))
        for values, kind in cols:  # a kind's measures are its cells'
            if isinstance(kind, t.Numbers):
                assert isinstance(values, list)
                cells_ = kind.texts(values)
                assert kind.width(values) == max(map(len, cells_))
                assert [kind.length(v) for v in values] == list(map(len, cells_))
                conv, args = kind.format(values)
                assert ("%" + conv) * n % tuple(args) == "".join(cells_)

    def texts(values: object, cache: object, n: int) -> list[str]:
        if cache is None:
            return [values] * n  # type: ignore[list-item]
        if cache is t.CELLS:
            return list(values)  # type: ignore[call-overload]
        if isinstance(cache, t.Numbers):
            return cache.texts(values)  # type: ignore[arg-type]
        return [cache.texts[v] for v in values]  # type: ignore[attr-defined, union-attr]

    def write(as_rows: bool) -> str:
        out = io.StringIO()
        tw = TableWriter(out, [True] * 10, batch=50)
        for b in blocks:
            if as_rows:
                cols = [texts(v, c, b.n) for v, c in b.cols]
                tw.add_many([list(r) for r in zip(*cols)])
            else:
                tw.add_many(t.Columns(b.n, list(b.cols)))
        tw.flush()
        return out.getvalue()

    formatted, rows = write(False), write(True)
    assert formatted == rows
    assert "none%" in formatted and "u%str" in formatted and "%d%%" in formatted and "http%" in formatted
    assert len(formatted.splitlines()) == 1 + sum(b.n for b in blocks)


_UDP_WALKS = textwrap.dedent(
    r"""
    import io, json, socket, subprocess, sys
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    import psutil
    import sockscope
    from sockscope import exporter
    from sockscope.cli import ls
    from sockscope.kernel import transport

    asked = []  # the family of each UDP dump requested (sdiag_family: the byte after the netlink header)
    for name in ("stream", "stream_ahead", "Behind"):  # (Behind: a dump after the first, sent by a helper)
        def spy(request, op, *a, _real=getattr(transport, name), **k):
            if op == "udp diag":
                asked.append(request[16])
            return _real(request, op, *a, **k)
        setattr(transport, name, spy)
    scraped = []  # the same, of the exporter's dumps
    def dump_spy(request, decode, op, *a, _real=transport.dump, **k):
        if op == "udp diag":
            scraped.append(request[16])
        return _real(request, decode, op, *a, **k)
    transport.dump = dump_spy

    def case(argv=("-uan",)):
        asked.clear()
        scraped.clear()
        out = io.StringIO()
        assert ls.main(list(argv), out) == 0
        walks = sorted(set(asked))
        ss = subprocess.run(["ss", *argv], capture_output=True, text=True, check=True).stdout
        same_nc = set(sockscope.net_connections("udp")) == set(psutil.net_connections("udp"))
        snap = exporter.collect(tables=("udp",))
        counts = {k: n for k, n in snap.sockets.items() if n}
        want = {}
        for fam in ("inet", "inet6"):
            for line in subprocess.run(["ss", "-Huan", "-f", fam], capture_output=True, text=True,
                                       check=True).stdout.splitlines():
                key = (fam, "udp", line.split()[0])
                want[key] = want.get(key, 0) + 1
        scrape = counts == want and not snap.errors, sorted(set(scraped))
        return out.getvalue() == ss, same_nc, walks, out.getvalue().count("\n") - 1, *scrape

    keep, res = [], {}
    res["none"] = case()
    for port in (7000, 7001):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", port)); keep.append(s)
    res["IPv4 only"] = case()
    res["IPv4 only, -u -a"] = case(("-u", "-a", "-n"))
    unbound = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); keep.append(unbound)
    res["and an unbound IPv6 one"] = case()
    unbound.connect(("::1", 9))  # bound by connect: hashed, dumped
    res["and an IPv6 one bound by connect"] = case()
    for s in keep[:2]:
        s.close()
    wild = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); wild.bind(("::", 7002)); keep.append(wild)
    res["IPv6 only (a dual-stack wildcard)"] = case()
    json.dump(res, sys.stdout)
    """
)


def test_udp_walks_that_would_find_nothing_are_skipped() -> None:
    """A UDP dump walks the kernel's whole UDP table, even for a family with no socket (1.3–1.5 ms
    on this VM); the namespace's own count of hashed UDP sockets (sockstat's ``UDP: inuse``,
    sockstat6's ``UDP6: inuse``: bound or connected ones, exactly what the dump finds) says when
    there is nothing to find.  The listing is ss's and ``net_connections("udp")`` psutil's in every
    case, and the exporter's counts ss's; a family's walk is skipped only while it has no such
    socket (an unbound one is not), by the listing and the exporter alike."""
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _UDP_WALKS], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = {k: tuple(v) for k, v in json.loads(proc.stdout).items()}
    assert got == {
        "none": (True, True, [], 0, True, []),
        "IPv4 only": (True, True, [2], 2, True, [2]),
        "IPv4 only, -u -a": (True, True, [2], 2, True, [2]),
        "and an unbound IPv6 one": (True, True, [2], 2, True, [2]),
        "and an IPv6 one bound by connect": (True, True, [2, 10], 3, True, [2, 10]),
        "IPv6 only (a dual-stack wildcard)": (True, True, [10], 2, True, [10]),
    }, got


_TEXTS = _SOCKETS + textwrap.dedent(
    r"""
    from sockscope.kernel import inet
    from sockscope.query import Query, batches
    from sockscope.filter.states import EVERY_STATE

    q = Query(frozenset(("tcp",)), frozenset((socket.AF_INET, socket.AF_INET6)), EVERY_STATE)
    mixed = rows = 0
    for _table, b in batches(q, lambda m: None, ordered=False):
        mixed += not b.fam
        rows += b.n
        got = (b.texts("src"), b.texts("dst"))  # (of a batch of both families: before its keys are read)
        want = ([inet.ADDR_TEXT[k] for k in b.src], [inet.ADDR_TEXT[k] for k in b.dst])
        assert got == want, (got, want)
        assert (b.texts("src"), b.texts("dst")) == want  # (and after)
    print(mixed, rows)
    """
)


def test_address_texts_of_a_batch_of_both_families() -> None:
    """``Batch.texts`` (psutil's addresses, the records'): where the families mix in one datagram (the
    legacy dump of both) it reads each row's family and raw address; the texts are the address keys'."""
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _TEXTS], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    mixed, rows = map(int, proc.stdout.split())
    assert mixed >= 1 and rows > 160, proc.stdout


_SENT_AHEAD = _SOCKETS + textwrap.dedent(
    r"""
    import os
    from sockscope.kernel import transport
    from sockscope.query import Query, batches
    from sockscope.filter.states import EVERY_STATE

    u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(("::1", 0)); keep.append(u6)
    q = Query(frozenset(("tcp", "udp")), frozenset((socket.AF_INET, socket.AF_INET6)), EVERY_STATE)
    tasks = lambda: len(os.listdir("/proc/self/task"))
    alone = tasks()
    sent, behind = [], transport.Behind.__init__

    def counted(self, request, op, *more):  # (each dump's helper, as it starts)
        sent.append(op)
        behind(self, request, op, *more)

    transport.Behind.__init__ = counted
    from sockscope.kernel import sockstat
    reads, count = [], sockstat.counts

    def counting(family):  # (the kernel's socket counts the requests follow: read once a dump)
        reads.append(family)
        return count(family)

    sockstat.counts = counting

    def rows(**kw):
        return sorted((t, s, d) for t, b in batches(q, lambda m: None, ordered=False, **kw)
                      for s, d in zip(b.texts("src"), b.texts("dst")))

    seen = []
    res = {"plain": rows(), "reads_plain": len(reads)}
    sent.clear()
    reads.clear()
    res["ahead"] = rows(meanwhile=lambda: seen.append(sorted(sent)))
    res["sent_before"], res["sent"], res["left"] = seen[0], sorted(sent), tasks() - alone
    res["reads_ahead"] = len(reads)
    sent.clear()
    res["not_ahead"] = rows(meanwhile=lambda: seen.append(tasks() - alone), ahead=False)
    res["helpers_not_ahead"], res["threads_meanwhile_not_ahead"] = len(sent), seen[1]

    class Boom(Exception):
        pass

    def boom():
        raise Boom()

    try:
        rows(meanwhile=boom)
    except Boom:
        res["raised"] = True
    res["left_after_raise"] = tasks() - alone
    it = batches(q, lambda m: None, meanwhile=lambda: None)
    next(it)
    it.close()  # (a caller that stops at the first batch)
    res["left_after_stop"] = tasks() - alone
    print(json.dumps(res))
    """
)


def test_dumps_sent_ahead_give_the_same_batches_and_leave_no_thread() -> None:
    """``batches(meanwhile=…)`` (net_connections reads its UNIX part there): every TCP and UDP dump is
    sent before the caller's other work, each received by a helper thread (three here: TCP's walk of
    both families, UDP's of each), and the batches are then the same as without; where that work
    raises, or the caller stops early, every helper is ended.  With ``ahead=False`` no helper at all,
    the same batches.  The requests sent ahead are made once: the kernel's counts they follow
    (sockstat) read as often as without sending ahead."""
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _SENT_AHEAD], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["plain"] == res["ahead"] and len(res["plain"]) > 160
    assert res["sent_before"] == res["sent"] == ["tcp diag", "udp diag", "udp diag"]
    assert res["reads_ahead"] == res["reads_plain"] > 0  # (the requests made once: the counts read once)
    # not ahead (net_connections beside a long owners' walk): every dump read by the calling thread
    assert res["not_ahead"] == res["plain"] and res["helpers_not_ahead"] == res["threads_meanwhile_not_ahead"] == 0
    assert res["left"] == res["left_after_raise"] == res["left_after_stop"] == 0 and res["raised"]


_DETAILS = _SOCKETS + textwrap.dedent(
    r"""
    congs = open("/proc/sys/net/ipv4/tcp_available_congestion_control").read().split()
    for i, s in enumerate(keep):  # marks, TOS and traffic classes, congestion controls, shutdowns, keepalives
        if s.type != socket.SOCK_STREAM or i % 2:
            continue
        try:
            s.getpeername()
        except OSError:
            continue
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, i)
        if s.family == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x10)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x28)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, congs[i % len(congs)].encode())
        if i % 6 == 0:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if i % 10 == 0:
            s.shutdown(socket.SHUT_WR)
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")) * 10:
        u = socket.socket(fam, socket.SOCK_DGRAM); u.bind((host, 0)); keep.append(u)
        u.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, len(keep))
        if len(keep) % 3:
            u.connect((host, 9))
    import os
    where = sys.argv[1]  # (the test's own directory: removed by pytest)
    for k in range(3):  # UNIX: path-bound and abstract listeners (pending connections: ICONS), pairs, datagrams
        path = os.path.join(where, f"s{k}")
        lst = socket.socket(socket.AF_UNIX); lst.bind(path if k != 1 else f"\0abstract{k}"); lst.listen(8)
        keep.append(lst)
        for j in range(4 + k):
            c = socket.socket(socket.AF_UNIX); c.connect(path if k != 1 else f"\0abstract{k}"); keep.append(c)
            if j % 2:
                keep.append(lst.accept()[0])
                if j == 3:
                    c.shutdown(socket.SHUT_WR)
        d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d.bind(os.path.join(where, f"d{k}")); keep.append(d)
        keep += socket.socketpair()
    import time
    time.sleep(1)  # (the half-closed ones settle in FIN-WAIT-2)
    from sockscope.render.table import CellMaker
    from sockscope.kernel import inet

    from sockscope.kernel import unix

    def by_records(self, netid, b):  # the record path: a record of each row, its cells as a record's
        return [self.cells(s) for s in inet.records(b, netid, True)]

    def unix_by_records(self, b):
        return [self.cells(s) for s in unix.records(b, True)]

    columns, unix_columns = CellMaker.detail_cells, CellMaker.unix_detail_cells
    res = {}
    for argv in (["-tano"], ["-tane"], ["-tanm"], ["-tanmi"], ["-tanemio"], ["-tanmiO"], ["-tan", "--tos"],
                 ["-tan", "--cgroup"], ["-tane", "--inet-sockopt"], ["-tanOe", "--inet-sockopt"], ["-uanm"],
                 ["-uane"], ["-uanmi"], ["-tanpm"], ["-aem"], ["-tnme", "dport", "gt", ":1024"], ["-xam"], ["-xae"],
                 ["-xame"], ["-xamO"], ["-xlpe"], ["-x", "-e", "src", "*/s2"]):
        for _ in range(3):  # (a socket that moves between the two listings, a timer's retransmission: again)
            CellMaker.detail_cells, CellMaker.unix_detail_cells = columns, unix_columns
            fast = table(argv)
            CellMaker.detail_cells, CellMaker.unix_detail_cells = by_records, unix_by_records
            slow = table(argv)
            got = [re.sub(r"timer:\(([a-z]+),[^,]*,", r"timer:(\1,#,", t) for t in (fast, slow)]
            if got[0] == got[1]:
                break
        res[" ".join(argv)] = got
    json.dump(res, sys.stdout)
    """
)


def test_detail_texts_of_batches_match_the_record_path(tmp_path: Path) -> None:
    """``-e``, ``-o``, ``-m``, ``--tos``, ``--cgroup``, ``--inet-sockopt`` (and with ``-i``, ``-O``, ``-p``, a filter)
    take the batch path for inet tables (:meth:`CellMaker.detail_cells`: the details read column by column, their
    texts made per column): the same table as a record of each row and its detail_text give."""
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _DETAILS, str(tmp_path)], capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    for argv, (fast, slow) in json.loads(proc.stdout).items():
        if "i" in argv.split()[0]:  # (tcp_info's clocks move between the two listings)
            # (and so the widths of the texts: each line's words are compared)
            fast, slow = ("\n".join(" ".join(line.split()) for line in re.sub(
                r"(lastsnd|lastrcv|lastack|busy|rcv_rtt|app_limited|rtt|ato|rto|minrtt|pacing_rate|delivery_rate|send|"
                r"rcv_space|rcv_ssthresh)[: ][^ ]*", r"\1#", t).splitlines()) + "\n" for t in (fast, slow))
        least = 3 if argv.startswith(("-xl", "-x -e")) else 20 if argv.startswith(("-u", "-x")) else 80
        assert fast.count("\n") > least, argv
        if argv in ("-xae", "-xame"):
            assert fast.count(" peers:") >= 3 and fast.count(" dev:") >= 3 and (" <--" in fast or " -->" in fast), fast
        assert fast == slow, f"{argv}: detail texts of batches differ from the record path"


_UNIX_PARTS = textwrap.dedent(
    r"""
    import io, json, os, socket, subprocess, sys
    from sockscope.cli import ls
    from sockscope.filter.states import EVERY_STATE
    from sockscope.query import Query, batches

    where = sys.argv[1]  # (the test's own directory: removed by pytest)
    keep = []
    for k in range(1200):  # several datagrams' worth: socketpairs, named and abstract listeners, datagrams
        keep += socket.socketpair(socket.AF_UNIX, (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET)[k % 3])
        if k % 40 == 0:
            name = os.path.join(where, f"l{k}") if k % 80 else f"\0sockscope-parts-{k}" + "y" * (k % 50)
            lst = socket.socket(socket.AF_UNIX); lst.bind(name); lst.listen(8); keep.append(lst)
            keep += [socket.socket(socket.AF_UNIX) for _ in range(k % 3 + 1)]
            for c in keep[-(k % 3 + 1):]:
                c.connect(name)
            keep.append(lst.accept()[0])
        if k % 25 == 0:
            d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d.bind(os.path.join(where, f"d{k}")); keep.append(d)
    q = Query(frozenset(("u_str", "u_dgr", "u_seq")), frozenset((socket.AF_UNIX,)), EVERY_STATE)
    sizes = [b.n for table, b in batches(q, lambda m: None) if table == "unix"]
    res = {"sizes": sizes}
    for argv in (["-xa"], ["-xan"], ["-a", "-A", "unix_dgram,unix_seqpacket"], ["-xl"], ["-xa", "-e"], ["-xam"],
                 ["-xa", "src", where + "/*"]):
        out = io.StringIO()
        assert ls.main(argv, out) == 0
        ss = subprocess.run(["ss", *argv], capture_output=True, text=True, check=True).stdout
        res[" ".join(argv)] = [out.getvalue() == ss, out.getvalue().count("\n") - 1]
    print(json.dumps(res))
    """
)


def test_unix_sockets_come_a_datagram_at_a_time_and_list_as_ss_lists_them(tmp_path: Path) -> None:
    """The UNIX dump is given a batch a datagram, as the inet dumps are (each datagram's bytes freed once
    its rows are made, instead of every datagram kept until the whole dump is joined): ss's listing
    across the datagrams' blocks, with types picked out (``-A``), details (``-e``, ``-m``) and a filter."""
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _UNIX_PARTS, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    sizes = res.pop("sizes")
    assert len(sizes) > 3 and sum(sizes) > 2400 and all(sizes), sizes
    for argv, (same, lines) in res.items():
        assert same, f"{argv}: not ss's listing"
        assert lines > (10 if argv in ("-xl", "-xa src " + str(tmp_path) + "/*") else 800), (argv, lines)
