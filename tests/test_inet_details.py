"""The records' details of an inet batch, column by column (:mod:`sockscope.kernel.inet_details`),
are what ``details_of`` gives message by message: on the kernel's own datagrams (sockets with
every detail the tests can set: marks, TOS, traffic classes, congestion controls, MD5 keys, TIME-WAIT
mini-sockets between full sockets) and on made datagrams (hypothesis: attributes of every kind the
columns read, of every length, short ones and repeated ones, in layouts shared or not)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockscope.errors import DecodeError
from sockscope.kernel import inet, layout, netlink
from sockscope.kernel.inet_attrs import details_of
from sockscope.kernel.inet_details import FIELDS, _walked, detail_columns


def columns_or_error(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except DecodeError:
        return DecodeError


def by_message(b: inet.Batch, netid: str) -> Any:
    return columns_or_error(_walked, b, range(b.n), netid)


# --- made datagrams ----------------------------------------------------------------------------------

ATTRS = [layout.INET_DIAG_SKV6ONLY, layout.INET_DIAG_SHUTDOWN, layout.INET_DIAG_TOS, layout.INET_DIAG_TCLASS,
         layout.INET_DIAG_PROTOCOL, layout.INET_DIAG_MARK, layout.INET_DIAG_CLASS_ID, layout.INET_DIAG_CGROUP_ID,
         layout.INET_DIAG_SOCKOPT, layout.INET_DIAG_CONG, layout.INET_DIAG_SKMEMINFO, layout.INET_DIAG_INFO,
         layout.INET_DIAG_BBRINFO, layout.INET_DIAG_DCTCPINFO, layout.INET_DIAG_MD5SIG, layout.INET_DIAG_ULP_INFO,
         layout.INET_DIAG_MEMINFO]
#: payload sizes around each reader's thresholds (and the kernel's own sizes)
SIZES = [0, 1, 2, 3, 4, 7, 8, 12, 16, 19, 20, 28, 32, 36, 40, 104, 232, 240, 248]


def message(fam: int, ino: int, attrs: list[tuple[int, bytes]]) -> bytes:
    body = inet._MSG.pack(fam, 1, 0, 0, 1, 2, bytes(16), bytes(16), 0, 0, 0, 0, 0, 0, ino)
    body += b"".join(netlink.encode_attr(t, p) for t, p in attrs)
    return netlink.encode_message(netlink.SOCK_DIAG_BY_FAMILY, 2, netlink.DUMP_SEQ, body)


@st.composite
def layouts(draw: Any) -> list[tuple[int, int]]:
    """An attribute layout: (type, payload size) each, types may repeat."""
    return draw(st.lists(st.tuples(st.sampled_from(ATTRS), st.sampled_from(SIZES)), max_size=8))


@st.composite
def datagrams(draw: Any) -> tuple[bytes, str]:
    shapes = draw(st.lists(layouts(), min_size=1, max_size=3))  # a few layouts: groups of messages share one
    n = draw(st.integers(min_value=1, max_value=14))
    out = b""
    for i in range(n):
        shape = draw(st.sampled_from(shapes))
        attrs = [(t, draw(st.binary(min_size=size, max_size=size))) for t, size in shape]
        out += message(draw(st.sampled_from([2, 10])), i + 1, attrs)
    return out, draw(st.sampled_from(["tcp", "udp", "mptcp", "raw"]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datagrams())
def test_made_datagrams_read_by_columns_as_message_by_message(case: tuple[bytes, str]) -> None:
    data, netid = case
    b, _done = inet.decode(data)
    want = by_message(b, netid)
    assert columns_or_error(detail_columns, b, netid) == want
    if want is not DecodeError and b.n > 1:  # a selection of the rows (the batch a filter leaves)
        keep = [i % 2 == 0 for i in range(b.n)]
        part = b.select(keep)
        assert detail_columns(part, netid) == by_message(part, netid)


@pytest.mark.parametrize("done", [False, True])
def test_the_messages_of_a_length_joined_from_a_cut_datagrams_pieces(done: bool) -> None:
    """A framed datagram cut at its sequence number keeps its pieces (netlink.cut_dump), and the
    messages of one length are joined from them (netlink.gather_pieces): each is its message from
    byte 8 on, at a stride of its length (the datagram's last one too, before NLMSG_DONE or not),
    and the details read from them are the walk's."""
    msgs = [message(2 + 8 * (i % 2), i + 1, [] if i % 3 == 0 else [
        (layout.INET_DIAG_SHUTDOWN, bytes([i % 4])), (layout.INET_DIAG_SKMEMINFO, struct.pack("=9I", *range(i, i + 9)))]
        + [(layout.INET_DIAG_MARK, struct.pack("=I", i))] * (i % 4 == 1)) for i in range(13)]
    end = netlink.encode_message(netlink.NLMSG_DONE, 2, netlink.DUMP_SEQ, bytes(4)) if done else b""
    b, ended = inet.decode(b"".join(msgs) + end)
    assert ended == done and b._pieces is not None and not b._length and len(b.lengths()) == 3
    for length, rows in b.lengths().items():
        joined = bytes(b.gathered(length))
        assert len(joined) >= len(rows) * length
        assert [joined[j * length + 8 : (j + 1) * length] for j in range(len(rows))] == [msgs[i][8:] for i in rows]
    assert detail_columns(b, "tcp") == by_message(b, "tcp")
    assert detail_columns(b, "tcp")["skmem"] == [None if i % 3 == 0 else tuple(range(i, i + 9)) for i in range(13)]


def test_the_columns_cover_every_field_the_walk_gives() -> None:
    """Each field details_of can give is a column here (a field the columns left out would be None)."""
    attrs = [(layout.INET_DIAG_SKV6ONLY, b"\1"), (layout.INET_DIAG_SHUTDOWN, b"\3"), (layout.INET_DIAG_TOS, b"\4"),
             (layout.INET_DIAG_TCLASS, b"\5"), (layout.INET_DIAG_PROTOCOL, b"\6"),
             (layout.INET_DIAG_MARK, struct.pack("=I", 7)), (layout.INET_DIAG_CLASS_ID, struct.pack("=I", 8)),
             (layout.INET_DIAG_CGROUP_ID, struct.pack("=Q", 9 << 33)), (layout.INET_DIAG_SOCKOPT, b"\1\2"),
             (layout.INET_DIAG_CONG, b"cubic\0"), (layout.INET_DIAG_SKMEMINFO, struct.pack("=9I", *range(9))),
             (layout.INET_DIAG_INFO, bytes(range(200))), (layout.INET_DIAG_BBRINFO, struct.pack("=5I", 1, 2, 3, 4, 5)),
             (layout.INET_DIAG_DCTCPINFO, struct.pack("=HHIII", 1, 2, 3, 4, 5)),
             (layout.INET_DIAG_MD5SIG, bytes(4 + 4 + 128 + 80))]
    data = message(10, 1, attrs) + message(10, 2, attrs)
    b, _done = inet.decode(data)
    got = detail_columns(b, "tcp")
    assert got == by_message(b, "tcp")
    walked = details_of(b.attrs(0), 10, "tcp")
    assert set(FIELDS) - set(walked) == {"mptcp_info"}  # (a TCP row has none)
    assert all(got[name] is not None for name, v in walked.items() if v is not None)
    assert got["cgroup_id"] == [9 << 33] * 2 and got["sockopt"] == [0x201] * 2 and got["bbr_info"][0][0] == 1 | 2 << 32


# --- the kernel's datagrams --------------------------------------------------------------------------

KERNEL = textwrap.dedent(
    r"""
    import json, socket, subprocess, sys
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    from sockscope.query import Query, batches, EXT_INFO, EXT_MEM, EXT_TOS
    from sockscope.filter.states import EVERY_STATE
    from sockscope.kernel import inet
    from sockscope.kernel.inet_attrs import details_of
    from sockscope.kernel.inet_details import detail_columns, _walked
    from sockscope.records import make_socket

    keep, seen = [], set()
    congs = open("/proc/sys/net/ipv4/tcp_available_congestion_control").read().split()
    for k, (fam, host) in enumerate([(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"), (socket.AF_INET6, "::")]):
        srv = socket.socket(fam); srv.bind((host, 0)); srv.listen(64); keep.append(srv)
        for i in range(60):
            c = socket.create_connection(("127.0.0.1" if host == "::" else host, srv.getsockname()[1]))
            a = srv.accept()[0]; keep += [c, a]
            if i % 3 == 0:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, i + 1)
            if i % 4 == 0:
                c.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x10) if c.family == socket.AF_INET else \
                    c.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x20)
            cong = congs[i % len(congs)]
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cong.encode())
            seen.add(cong)
            c.sendall(b"x" * (i * 50 + 1)); a.recv(65536)
            if i % 5 == 0:
                c.shutdown(socket.SHUT_WR)
        if k == 0:  # TIME-WAIT between full sockets
            for i in range(20):
                t = socket.create_connection(srv.getsockname()); b_ = srv.accept()[0]; t.close(); b_.close()
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        for i in range(20):
            u = socket.socket(fam, socket.SOCK_DGRAM); u.bind((host, 0)); keep.append(u)
            if i % 2:
                u.connect((host, 9))
    try:  # an MD5 key on a listener (where the kernel has TCP-MD5)
        md5 = socket.socket(); md5.bind(("127.0.0.1", 0))
        addr = (socket.AF_INET).to_bytes(2, sys.byteorder) + bytes(2) + socket.inet_aton("127.0.0.1")
        key = addr.ljust(128, b"\0") + bytes(2) + (6).to_bytes(2, sys.byteorder) + bytes(4) + b"secret".ljust(80, b"\0")
        md5.setsockopt(socket.IPPROTO_TCP, 14, key); md5.listen(1); keep.append(md5)
    except OSError:
        pass

    res = {"batches": 0, "rows": 0, "framed": 0, "same": True, "records": True, "congs": sorted(seen), "md5": 0}
    for tables, ext in ((("tcp",), EXT_INFO | EXT_MEM | EXT_TOS), (("tcp",), EXT_MEM), (("udp",), EXT_MEM | EXT_TOS),
                        (("tcp", "udp"), 0)):
        q = Query(tables=frozenset(tables), families=frozenset((socket.AF_INET, socket.AF_INET6)),
                  states=EVERY_STATE, details=True, ext=ext)
        for netid, b in batches(q, lambda m: None):
            res["batches"] += 1; res["rows"] += b.n; res["framed"] += not b._length
            res["md5"] += sum(1 for r in inet.records(b, netid, details=True) if r.md5keys)
            if detail_columns(b, netid) != _walked(b, range(b.n), netid):
                res["same"] = False
            b.read(inet._HEAD_COLS)
            want = [make_socket(netid, fam, inet.STATES_OF(st), rq, wq, lo, pe, ino, uid, cookie, ifx, None,
                                timer=timer, expires=expires, retrans=retrans, **details_of(b.attrs(i), fam, netid))
                    for i, (fam, st, rq, wq, lo, pe, ino, uid, cookie, ifx, timer, expires, retrans) in enumerate(zip(
                        b.family, b.state, b.rqueue, b.wqueue, inet.ENDS(b, "src", "sport"),
                        inet.ENDS(b, "dst", "dport"), b.inode, b.uid, b.cookie, b.ifindex, b.timer, b.expires,
                        b.retrans))]
            if inet.records(b, netid, details=True) != want:
                res["records"] = False
    print(json.dumps(res))
    """
)

PRELUDE = textwrap.dedent(
    r"""
    from sockscope.kernel import inet as _inet
    from sockscope.records import Endpoint, state_of
    _inet.STATES_OF = state_of
    _inet.ENDS = lambda b, addr, port: [Endpoint(a, p) for a, p in zip(b.texts(addr), getattr(b, port))]
    """
)


def test_the_kernels_datagrams_read_by_columns_as_message_by_message() -> None:
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", PRELUDE + KERNEL], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["same"] and res["records"], res
    assert res["rows"] > 600 and res["framed"] >= 1 and res["batches"] > res["framed"], res


# --- the skmem texts --------------------------------------------------------------------------------------------

_SKMEM_VALUE = st.integers(0, 1 << 32)
_SKMEM = st.one_of(st.none(), st.tuples(*[_SKMEM_VALUE] * 7, st.none() | _SKMEM_VALUE, st.none() | _SKMEM_VALUE))


@settings(max_examples=300, deadline=None)
@given(st.lists(_SKMEM, max_size=40), st.integers(1, 6), st.sampled_from(["", "\n\t"]))
def test_skmem_texts_are_each_ones_text(values: list[Any], repeat: int, lead: str) -> None:
    """details.skmem_texts (the listing's ``-m`` texts of a batch: one text per distinct value where they
    recur, one format each where not) is ``lead`` and skmem_text of each: with sockets without skmem
    (TIME-WAIT ones, None) and without backlog or drops among them, values recurring or not."""
    from sockscope.render.details import skmem_text, skmem_texts

    skmems = values * repeat
    assert skmem_texts(skmems, lead) == [lead + skmem_text(m) for m in skmems]
    assert skmem_texts(values, lead) == [lead + skmem_text(m) for m in values]
    if values:  # one value in every row, as equal tuples (not one object), and one object
        equal = [None if values[0] is None else tuple(list(values[0])) for _ in range(repeat)]
        assert skmem_texts(equal, lead) == [lead + skmem_text(values[0])] * repeat
        assert skmem_texts(values[:1] * repeat + values[1:], lead) == [lead + skmem_text(m) for m in
                                                                       values[:1] * repeat + values[1:]]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 40), st.integers(0, 12), st.integers(0, 3), st.integers(1, 3),
       st.lists(st.one_of(st.none(), _SKMEM_VALUE.filter(lambda v: v < 1 << 32)), min_size=12, max_size=12),
       st.randoms(use_true_random=False))
def test_skmem_column_is_each_rows_values(n: int, k: int, at: int, pad: int, same: list[Any], rnd: Any) -> None:
    """netlink.skmem_column (``-m``'s column of a batch's rows side by side, inet and UNIX alike) is each
    row's values as a 9-tuple, None for fewer than 7: with values the same in every row (given in
    ``same``; all of them: one tuple for every row) or not, and rows of more words than the skmem."""
    step = at + k + pad
    def word(j: int) -> int:  # (word j of a row: the skmem's value j - at where the same in every row)
        value = same[j - at] if at <= j < at + k else None
        return rnd.randrange(1 << 32) if value is None else value

    rows = [[word(j) for j in range(step)] for _ in range(n)]
    words = memoryview(struct.pack(f"={n * step}I", *[w for row in rows for w in row])).cast("I")
    got = netlink.skmem_column(words, at, step, k)
    if k < 7:
        assert got is None
        return
    want = [(*row[at : at + min(k, 9)], *(None,) * (9 - min(k, 9))) for row in rows]
    assert got == want
    if n and all(same[j] is not None for j in range(min(k, 9))):
        assert all(m is got[0] for m in got)  # (one object: skmem_texts counts it by identity)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, (1 << 32) - 1))
def test_the_timer_texts_key_drops_only_what_ms_timer_drops(expires: int) -> None:
    """The listing's timer texts are made once per (timer, expires, retransmits), with expires' milliseconds
    dropped from 10 s on (details._TIMER): ss's print_ms_timer drops them there too."""
    from sockscope.render.details import ms_timer

    key = expires if expires < 10000 else expires - expires % 1000
    assert ms_timer(key) == ms_timer(expires)
