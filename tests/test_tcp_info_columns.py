"""-i's column reads and texts against plain references: every strided read of layout.Layout (each
alignment of a u64, messages of both lengths mod 8) against struct's unpack of each message; the text
of a batch (render.tcp_info.texts: shapes compiled to plans, per-row caches) against the text of each
row alone (every piece made from its values, no plan shared between rows)."""

from __future__ import annotations

import random
import struct

import pytest

from sockscope.kernel import tcpinfo
from sockscope.kernel.layout import TCP_BBR_INFO, TCP_INFO
from sockscope.kernel.tcpinfo import InfoColumns, TcpInfo
from sockscope.render.tcp_info import texts


def _messages(rng: random.Random, n: int, length: int, base: int, size: int, pool: list[int]) -> bytes:
    """``n`` messages of ``length`` bytes with a ``size``-byte tcp_info at ``base``: bytes from ``pool``
    (few values: fields alike in some messages, not in others)."""
    out = bytearray()
    for _ in range(n):
        m = bytearray(rng.randrange(256) for _ in range(length))
        m[base : base + size] = bytes(rng.choice(pool) for _ in range(size))
        out += m
    return bytes(out)


@pytest.mark.parametrize("base", [16, 20, 24, 28])
@pytest.mark.parametrize("extra", [0, 4, 8, 12])
def test_strided_reads_equal_struct_unpack(base: int, extra: int) -> None:
    rng = random.Random(base * 100 + extra)
    length = base + TCP_INFO.size + extra
    length += -length % 4
    for n in (1, 2, 7):
        for pool in ([0, 1], [0, 0, 0, 7], list(range(256))):
            body = memoryview(_messages(rng, n, length, base, TCP_INFO.size, pool))
            want = [TCP_INFO.struct.unpack_from(body, i * length + base) for i in range(n)]
            names = tuple(TCP_INFO.offsets)
            index = {name: k for k, name in enumerate(TCP_INFO.names)}
            cols = {name: [w[index[name]] for w in want] for name in names}
            for name in names:
                assert TCP_INFO.column(body, length, name, base) == cols[name], (name, length, n)
            assert TCP_INFO.strided(body, length, names, base) == [cols[name] for name in names]
            alike = TCP_INFO.strided(body, length, names, base, alike=True)
            for name, got in zip(names, alike):
                col = cols[name]
                assert got == (col[0] if col.count(col[0]) == n else col), name


def test_info_columns_equal_decode_of_each_message() -> None:
    """tcpinfo.read (fields by strided reads, split bytes, zero past a short payload) gives what
    tcpinfo.decode gives message by message, for payloads shorter and longer than this struct."""
    rng = random.Random(5)
    ends = sorted({TCP_INFO.offset(f) + TCP_INFO.struct_size(f) for f in TCP_INFO.offsets})
    for size in (*ends[::7], tcpinfo.SIZE, tcpinfo.SIZE + 8, tcpinfo.SIZE + 28):
        length = 20 + size + (-size % 4)
        for n in (1, 3, 8):
            body = memoryview(_messages(rng, n, length, 20, size, [0, 3, 255]))
            info = tcpinfo.read(body, length, 20, size, n)
            assert info is not None
            want = [tcpinfo.decode(body[i * length + 20 : i * length + 20 + size]) for i in range(n)]
            assert info.rows() == want
            shape = info.shape(TcpInfo._fields)
            again = tcpinfo.read(body, length, 20, size, n)
            assert again is not None and again.shape(TcpInfo._fields) == shape
            for name, got in zip(TcpInfo._fields, shape):
                col = [getattr(t, name) for t in want]
                assert got == (col[0] if col.count(col[0]) == n else col), name
            sub = info.select([i % 2 == 0 for i in range(n)])
            assert sub.rows() == want[::2] and sub.n == len(want[::2])
    assert tcpinfo.read(memoryview(bytes(64)), 64, 0, 10, 1) is None  # ends inside a field: decoded one by one


_VALUES = {
    "options": [0, 4, 7, 2 | 8 | 32, 63], "snd_wscale": [0, 7, 10], "rcv_wscale": [0, 9], "rto": [0, 204000, 3000000],
    "rtt": [0, 50, 1234, 2000], "rttvar": [0, 25, 617], "min_rtt": [0, 50, 0xFFFFFFFF], "reordering": [3, 5, 0],
    "snd_ssthresh": [0, 7, 0x7FFFFFFF], "pacing_rate": [0, 1234, 530000000, (1 << 64) - 1],
    "max_pacing_rate": [0, 5678, (1 << 64) - 1], "busy_time": [0, 5000], "rwnd_limited": [0, 1000],
    "sndbuf_limited": [0, 2000], "delivery_rate_app_limited": [False, True],
}


def _row(rng: random.Random, fixed: dict[str, int]) -> TcpInfo:
    v = {}
    for name in TcpInfo._fields:
        if name in fixed:
            v[name] = fixed[name]
        else:
            v[name] = rng.choice(_VALUES.get(name, [0, 0, 1, 2, 65483, 123456789]))
    return TcpInfo(**v)  # type: ignore[arg-type]


@pytest.mark.parametrize("flags,numeric", [(False, False), (False, True), (True, False), (True, True)])
def test_texts_of_a_batch_are_each_rows_text(flags: bool, numeric: bool) -> None:
    """Batches whose fields are alike in every row or not (with zeros among them or not), with bbr_info
    in every row, in some, in none: each row's text is the one it has alone; twice (a plan reused)."""
    rng = random.Random(int(flags) * 2 + int(numeric))
    for trial in range(60):
        n = rng.choice([2, 5, 40])
        # some fields alike in the whole batch, as in real dumps
        fixed = {name: _row(rng, {})._asdict()[name] for name in rng.sample(TcpInfo._fields, rng.randrange(63))}
        rows = [_row(rng, fixed) for _ in range(n)]
        cong = rng.choice([["bbr"] * n, [rng.choice(["cubic", "bbr", None]) for _ in range(n)]])
        bbr_mode = trial % 3
        bbrs = [(rng.choice([0, 1000, (1 << 40) + 5]), rng.choice([0, 2000]), rng.choice([0, 256, 739]),
                 rng.choice([0, 512])) if bbr_mode == 0 or (bbr_mode == 1 and rng.random() < 0.5) else None
                for _ in range(n)]
        dctcps = [rng.choice([None, (1, 2, 3, 4, 5), (0, 0, 0, 0, 0)]) if trial % 4 == 0 else None for _ in range(n)]
        states = [rng.choice([1, 1, 10, 6]) for _ in range(n)]
        alone = [texts([r], [c], [b], [d], [s], flags, numeric)[0]
                 for r, c, b, d, s in zip(rows, cong, bbrs, dctcps, states)]
        for _ in range(2):
            assert texts(rows, cong, bbrs, dctcps, states, flags, numeric) == alone
            assert texts(InfoColumns.of(rows), cong, bbrs, dctcps, states, flags, numeric) == alone
        assert texts(InfoColumns.of(rows), cong, bbrs, dctcps, states, flags, numeric, lead="\t") == [
            "\t" + a for a in alone]
        gap = [None if i % 3 == 1 else r for i, r in enumerate(rows)]  # rows without tcp_info: the lead alone
        assert texts(gap, cong, bbrs, dctcps, states, flags, numeric, lead="\n\t") == [
            "\n\t" + ("" if t is None else a) for t, a in zip(gap, alone)]


def test_bbr_layout_is_the_kernels() -> None:
    assert TCP_BBR_INFO.size == 20 and TCP_BBR_INFO.struct.format == "=IIIII"
    assert struct.calcsize(TCP_INFO.struct.format) == tcpinfo.SIZE


_LIGHT_PROBE = r"""
import _socket, io, os, sys
os.system("ip link set lo up")
keep = []
srv = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM); srv.bind(("127.0.0.1", 0)); srv.listen(64); keep.append(srv)
for i in range(30):
    c = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM); c.connect(srv.getsockname())
    a = _socket.socket(fileno=srv._accept()[0]); c.send(b"x" * (i + 1)); a.recv(100); keep += [c, a]
tw = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM); tw.connect(srv.getsockname())
_socket.socket(fileno=srv._accept()[0]).close(); tw.close()  # a TIME-WAIT socket: a datagram framed
from sockscope.cli import main
sys.stdout = io.StringIO()
status = main(["-tani"])
out = sys.stdout.getvalue(); sys.stdout = sys.__stdout__
heavy = ("dataclasses", "sockscope.records", "typing", "inspect", "collections", "re", "socket", "enum")
print(status, sorted(m for m in heavy if m in sys.modules), out.count(" rto:"))
"""


def test_info_listing_imports_stay_light() -> None:
    """``-tani`` (tcp_info columns, texts, a framed datagram's TcpInfo) imports neither the records
    nor typing, collections or re: their start-up is ~15 ms of a 10k-socket listing's ~100."""
    import subprocess
    import sys

    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _LIGHT_PROBE], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    status, rest = proc.stdout.strip().split(" ", 1)
    heavy, rtos = rest.rsplit(" ", 1)
    assert status == "0" and heavy == "[]", proc.stdout
    assert int(rtos) >= 60  # tcp_info really printed, for the connections' both ends


def test_counters_of_mostly_new_numbers() -> None:
    """A counter whose numbers are mostly new is made by str() once its cache has missed for more
    than half of 4096 numbers: the same texts either way, and with zeros among the numbers."""
    from sockscope.render import tcp_info

    rng = random.Random(11)
    for zeros in (False, True, False):
        n = 1500
        fixed = {name: _row(rng, {})._asdict()[name] for name in TcpInfo._fields
                 if name not in ("bytes_acked", "segs_out", "last_data_sent")}
        args = (["cubic"] * n, [None] * n, [None] * n, [1] * n, False, False)
        for _ in range(6):  # made from the cache, then by str()
            rows = [_row(rng, fixed)._replace(bytes_acked=rng.randrange(0 if zeros else 1, 1 << 40),
                                              segs_out=rng.randrange(1, 1 << 20),
                                              last_data_sent=rng.choice([0, 5]) if zeros else rng.randrange(1, 9))
                    for _ in range(n)]
            alone = [texts([r], *([a[0]] for a in args[:4]), *args[4:])[0] for r in rows]
            assert texts(InfoColumns.of(rows), *args) == alone
    assert any(c.many for c in tcp_info._CACHES.values())


def test_texts_with_caches_cleared_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cache is cleared when their texts together pass a budget (here 50), also while a
    batch's pieces are being looked up: the same texts."""
    from sockscope.render import tcp_info

    monkeypatch.setattr(tcp_info, "_BUDGET", 50)
    rng = random.Random(3)
    n = 200
    fixed = {name: _row(rng, {})._asdict()[name] for name in TcpInfo._fields if name not in ("rtt", "bytes_acked")}
    for _ in range(3):
        rows = [_row(rng, fixed)._replace(rtt=rng.randrange(1, 5000), bytes_acked=rng.randrange(0, 99))
                for _ in range(n)]
        args = (["bbr"] * n, [(rng.randrange(1 << 30), 100, 256, 512) for _ in range(n)], [None] * n, [1] * n)
        alone = [texts([r], *([a[i]] for a in args), False, False)[0] for i, r in enumerate(rows)]
        assert texts(InfoColumns.of(rows), *args, False, False) == alone
