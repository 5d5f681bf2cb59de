"""The details of a UNIX batch, column by column (:mod:`sockscope.kernel.unix_details`), are what
``unix_details.details_of`` gives message by message: on made bytes (hypothesis: names of any length,
VFS, PEER, ICONS, the fixed tail of RQLEN, MEMINFO, SHUTDOWN and UID, in the kernel's order or not,
repeated, short, flagged) and on the kernel's own datagrams (listeners with pending connections among
them), none of whose messages is then read message by message."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockscope.errors import DecodeError
from sockscope.kernel import netlink, unix
from sockscope.kernel.unix_details import _walked, detail_columns


def columns_or_error(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except DecodeError:
        return DecodeError


def message(ino: int, attrs: list[tuple[int, bytes]]) -> bytes:
    body = struct.pack("=BBBxIQ", 1, 1, 1, ino, ino * 7)
    body += b"".join(netlink.encode_attr(t, p) for t, p in attrs)
    return netlink.encode_message(netlink.SOCK_DIAG_BY_FAMILY, 2, netlink.DUMP_SEQ, body)


def tail(mem: int, uid: bool, rq: bool, shutdown: bytes) -> list[tuple[int, bytes]]:
    out = [(unix.UNIX_DIAG_RQLEN, struct.pack("=II", 1, 2))] if rq else []
    out.append((unix.UNIX_DIAG_MEMINFO, struct.pack(f"={mem}I", *range(3, 3 + mem))))
    out.append((unix.UNIX_DIAG_SHUTDOWN, shutdown))
    if uid:
        out.append((unix.UNIX_DIAG_UID, struct.pack("=I", 1000)))
    return out


@st.composite
def messages(draw: Any, fixed: list[tuple[int, bytes]], ino: int) -> bytes:
    attrs: list[tuple[int, bytes]] = []
    if draw(st.booleans()):
        attrs.append((draw(st.sampled_from([unix.UNIX_DIAG_NAME, unix.UNIX_DIAG_NAME, 0x8000])),
                      draw(st.binary(max_size=20))))
    if draw(st.booleans()):
        attrs.append((unix.UNIX_DIAG_VFS, draw(st.sampled_from([struct.pack("=II", 5, 0x801), b"\1\2\3", bytes(12)]))))
    if draw(st.booleans()):
        attrs.append((unix.UNIX_DIAG_PEER, struct.pack("=I", draw(st.integers(0, 2**32 - 1)))))
    if draw(st.integers(0, 3)) == 0:
        attrs.append((unix.UNIX_DIAG_ICONS, struct.pack("=3I", 7, 8, 9)[: 4 * draw(st.integers(0, 3))]))
    odd = draw(st.integers(0, 5))
    if odd == 0:  # another order, or a repeated attribute
        attrs = draw(st.permutations(attrs + fixed))
    elif odd == 1:
        attrs += fixed + [draw(st.sampled_from(fixed + [(unix.UNIX_DIAG_VFS, bytes(8))]))]
    else:
        attrs += fixed
    return message(ino, attrs)


@st.composite
def batches(draw: Any) -> bytes:
    fixed = tail(draw(st.sampled_from([9, 9, 8, 7, 6])), draw(st.booleans()), draw(st.booleans()),
                 draw(st.sampled_from([b"\x02", b"\x01", b""])))
    n = draw(st.integers(1, 10))
    return b"".join(draw(messages(fixed, i + 1)) for i in range(n))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_made_batches_read_by_columns_as_message_by_message(data: bytes) -> None:
    b, _done = unix.decode(data)
    want = columns_or_error(_walked, b, range(b.n))
    assert columns_or_error(detail_columns, b) == want
    if want is not DecodeError and b.n > 1:  # a selection of the rows
        part = b.select([i % 2 == 0 for i in range(b.n)])
        assert detail_columns(part) == _walked(part, range(part.n))


KERNEL = textwrap.dedent(
    r"""
    import json, os, socket, subprocess, sys
    from sockscope.kernel import transport, unix
    from sockscope.kernel import unix_details as D

    where = sys.argv[1]  # (the test's own directory: removed by pytest)
    keep = []
    listeners = 0
    for k in range(30):
        name = os.path.join(where, f"s{k}") if k % 2 else f"\0sockscope-test-{k}-" + "x" * k
        lst = socket.socket(socket.AF_UNIX); lst.bind(name); lst.listen(16); keep.append(lst); listeners += 1
        for j in range(k % 7):
            c = socket.socket(socket.AF_UNIX); c.connect(name); keep.append(c)
            if j % 2:
                keep.append(lst.accept()[0])
                if j == 3:
                    c.shutdown(socket.SHUT_WR)
        d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d.bind(os.path.join(where, f"d{k}")); keep.append(d)
        keep += socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM if k % 3 else socket.SOCK_STREAM)
    walked = []
    real = D._walked
    D._walked = lambda b, rows: (walked.extend(list(rows)), real(b, rows))[1]
    show = (unix.DEFAULT_SHOW | unix.UDIAG_SHOW_VFS | unix.UDIAG_SHOW_ICONS | unix.UDIAG_SHOW_UID
            | unix.UDIAG_SHOW_MEMINFO)
    def batch(show):
        parts = []
        def take(data):
            b, done = unix.decode(data, "unix diag"); parts.append(b); return done
        transport.dump(unix.encode_request(0xFFFFFFFF, show), take, "unix diag")
        return [p for p in parts if p.n]  # (a batch a datagram, as query.batches gives them)
    def count(cols, name, test):
        return sum(test(v) for c in cols for v in c[name] or [])
    b = batch(show)
    got = [D.detail_columns(p) for p in b]
    odd = len(walked)
    same = all(g == real(p, range(p.n)) for g, p in zip(got, b))
    m = batch(unix.DEFAULT_SHOW | unix.UDIAG_SHOW_MEMINFO)  # (-m: the names' decoder's tails)
    del walked[:]
    tails = [D.detail_columns(p) for p in m]
    print(json.dumps({"n": sum(p.n for p in b), "same": same, "odd": odd, "listeners": listeners,
                      "vfs": count(got, "unix_vfs", lambda v: v is not None),
                      "pending": count(got, "unix_pending", bool),
                      "m_same": all(t == real(p, range(p.n)) for t, p in zip(tails, m)), "m_walked": len(walked),
                      "m_n": sum(p.n for p in m), "m_skmem": count(tails, "skmem", lambda v: v is not None),
                      "m_from_tails": all(isinstance(object.__getattribute__(p, "skmem"), list) for p in m)}))
    """
)


def test_the_kernels_batches_read_by_columns(tmp_path: Path) -> None:
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", KERNEL, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["same"], res
    assert res["n"] > 150 and res["vfs"] > 30 and res["pending"] > 10, res
    assert res["odd"] == 0, res  # (listeners too: their ICONS are read by the columns' checks)
    assert res["m_same"] and res["m_walked"] == 0 and res["m_from_tails"], res
    assert res["m_skmem"] == res["n"] == res["m_n"], res


def test_the_tail_strategy_gives_the_details_of_the_usual_datagrams() -> None:
    """A datagram of -e's usual layouts (paths with their VFS, listeners with an empty ICONS, peers,
    among plain sockets) is read by the names' decoder's tail strategy, which gives every detail
    column itself: the same as message by message, with no message read so."""
    from sockscope.kernel import unix_details as D

    fixed = tail(9, True, True, b"\x01")
    layouts = [
        [(unix.UNIX_DIAG_NAME, b"/run/a.sock\0"), (unix.UNIX_DIAG_VFS, struct.pack("=II", 11, 0x801)),
         (unix.UNIX_DIAG_ICONS, b"")],
        [(unix.UNIX_DIAG_NAME, b"/run/b\0"), (unix.UNIX_DIAG_VFS, struct.pack("=II", 12, 0x802)),
         (unix.UNIX_DIAG_PEER, struct.pack("=I", 99))],
        [(unix.UNIX_DIAG_NAME, b"\0abstract"), (unix.UNIX_DIAG_ICONS, b"")],
        [(unix.UNIX_DIAG_PEER, struct.pack("=I", 98))],
        [],
        [(unix.UNIX_DIAG_NAME, b"/run/c\0"), (unix.UNIX_DIAG_VFS, struct.pack("=II", 13, 0x803))],
    ]
    data = b"".join(message(i + 1, layouts[i % len(layouts)] + fixed) for i in range(60))
    b, _done = unix.decode(data)
    assert isinstance(object.__getattribute__(b, "_more"), type(lambda: 0))  # (the tail strategy's maker)
    real, seen = D._walked, []
    try:
        D._walked = lambda batch, rows: (seen.extend(rows), real(batch, rows))[1]  # type: ignore[assignment]
        got = detail_columns(b)
    finally:
        D._walked = real
    assert not seen and got == real(b, range(b.n))
    assert got["unix_vfs"] is not None and got["unix_vfs"][:2] == [(11, 0x801), (12, 0x802)]
    assert got["unix_pending"] is not None and got["unix_pending"][:3] == [(), None, ()]


def test_a_datagram_the_general_strategy_read_is_read_alone() -> None:
    """A listener with connections waiting sends its datagram to the general strategy: that datagram's
    details are read from its bytes (unix_details.read), the others' still come from the tail strategy."""
    from sockscope.kernel import unix_details as D

    fixed = tail(9, True, True, b"\x00")
    usual = b"".join(message(i + 1, [(unix.UNIX_DIAG_NAME, b"/run/u%d\0" % i),
                                     (unix.UNIX_DIAG_VFS, struct.pack("=II", i, 0x801))] + fixed) for i in range(40))
    waiting = b"".join(message(100 + i, ([(unix.UNIX_DIAG_NAME, b"/run/l\0"), (unix.UNIX_DIAG_ICONS,
                                                                              struct.pack("=2I", 7, 8))]
                                         if i == 3 else [(unix.UNIX_DIAG_PEER, struct.pack("=I", 5))]) + fixed)
                       for i in range(30))
    parts = [unix.decode(usual)[0], unix.decode(waiting)[0], unix.decode(usual)[0]]
    assert [object.__getattribute__(p, "_more") is None for p in parts] == [False, True, False]
    real, sizes = D.read, []
    try:
        D.read = lambda b: (sizes.append(b.n), real(b))[1]  # type: ignore[assignment]
        got = [detail_columns(p) for p in parts]
    finally:
        D.read = real
    assert sizes == [30] and got == [D._walked(p, range(p.n)) for p in parts]
    assert got[1]["unix_pending"] is not None and got[1]["unix_pending"][3] == (7, 8)


def test_a_kind_twice_in_the_tail_is_read_as_the_last() -> None:
    """A fixed attribute written twice (the kernel never does; a reader of attributes takes the last):
    a SHUTDOWN of one byte, then an empty one, reads as no shutdown, as message by message."""
    fixed = [(unix.UNIX_DIAG_RQLEN, struct.pack("=II", 1, 2)), (unix.UNIX_DIAG_SHUTDOWN, b"\x03"),
             (unix.UNIX_DIAG_SHUTDOWN, b"")]
    data = b"".join(message(i + 1, [(unix.UNIX_DIAG_NAME, b"/run/t%d\0" % i)] + fixed) for i in range(20))
    b, _done = unix.decode(data)
    got = detail_columns(b)
    assert got == _walked(b, range(b.n)) and got["shutdown"] is None


_ASKED = textwrap.dedent(
    r"""
    import io, json, socket
    from sockscope.cli.ls import main
    from sockscope.kernel import unix
    from sockscope.sockets_api import sockets
    a, b = socket.socketpair()
    asked, encode = [], unix.encode_request
    unix.encode_request = lambda states, show: asked.append(show) or encode(states, show)
    out = {}
    for argv in (["-xa"], ["-xae"], ["-xaem"], ["-xa", "--json"]):
        asked.clear()
        main(argv, stdout=io.StringIO())
        out[" ".join(argv)] = list(asked)
    asked.clear()
    out["sockets"] = [list(sockets("unix")) and asked[0]]
    print(json.dumps(out))
    """
)


def test_the_table_asks_the_kernel_what_ss_asks() -> None:
    """A UNIX table asks for the attributes ss asks for (NAME, PEER, RQLEN; with -e VFS and ICONS, with
    -m MEMINFO: ss's requests), not the owner's uid, which no table shows (ss's -e shows none for a
    UNIX socket); records (JSON, sockets()) carry it, so they ask for it."""
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _ASKED], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    plain = unix.UDIAG_SHOW_NAME | unix.UDIAG_SHOW_PEER | unix.UDIAG_SHOW_RQLEN
    details = plain | unix.UDIAG_SHOW_VFS | unix.UDIAG_SHOW_ICONS
    assert got == {"-xa": [plain], "-xae": [details], "-xaem": [details | unix.UDIAG_SHOW_MEMINFO],
                   "-xa --json": [details | unix.UDIAG_SHOW_MEMINFO | unix.UDIAG_SHOW_UID],
                   "sockets": [plain | unix.UDIAG_SHOW_UID]}
