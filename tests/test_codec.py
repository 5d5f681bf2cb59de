"""The sans-IO codec: real kernel bytes decoded, encoders checked byte by byte,
and hypothesis feeding random and truncated bytes."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import textwrap
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockscope.errors import DecodeError, NetlinkError
from sockscope.kernel import inet, inet_attrs, layout, netlink, others, unix
from sockscope.records import State

# A script run in a private network namespace: it builds a few sockets, dumps
# tcp/udp/unix over sock_diag and writes the raw datagrams (hex) plus what
# Python's own socket API says about the sockets.
_CAPTURE = textwrap.dedent(
    r"""
    import json, os, socket, subprocess, sys
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    from sockscope.kernel import inet, unix, transport
    ls = socket.socket(); ls.bind(("127.0.0.1", 4242)); ls.listen(7)
    c = socket.create_connection(("127.0.0.1", 4242)); a, _ = ls.accept()
    c.sendall(b"x" * 100)
    l6 = socket.socket(socket.AF_INET6); l6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    l6.bind(("::", 4243)); l6.listen(3)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 5353))
    x = socket.socket(socket.AF_UNIX); x.bind("\0sockscope-test"); x.listen(2)
    pair = socket.socketpair()
    out = {"inet": [], "inet6": [], "udp": [], "unix": []}
    def _done(b):
        from sockscope.kernel import netlink
        for t, _f, _p in netlink.iter_messages(b):
            if t == netlink.NLMSG_DONE:
                return True
        return False
    transport.dump(inet.encode_request(2, 6, 0xfff), lambda b: (out["inet"].append(b.hex()), _done(b))[1], "t")
    transport.dump(inet.encode_request(10, 6, 0xfff), lambda b: (out["inet6"].append(b.hex()), _done(b))[1], "t")
    transport.dump(inet.encode_request(2, 17, 0xfff), lambda b: (out["udp"].append(b.hex()), _done(b))[1], "u")
    transport.dump(unix.encode_request(0xfff), lambda b: (out["unix"].append(b.hex()), _done(b))[1], "x")
    out["inodes"] = {
        "listen": os.fstat(ls.fileno()).st_ino, "client": os.fstat(c.fileno()).st_ino,
        "server": os.fstat(a.fileno()).st_ino, "l6": os.fstat(l6.fileno()).st_ino,
        "udp": os.fstat(u.fileno()).st_ino, "unix": os.fstat(x.fileno()).st_ino,
        "pair0": os.fstat(pair[0].fileno()).st_ino, "pair1": os.fstat(pair[1].fileno()).st_ino,
        "client_port": c.getsockname()[1],
    }
    json.dump(out, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def capture() -> dict:
    """Raw sock_diag replies captured from the real kernel in a private namespace."""
    proc = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", _CAPTURE],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _decode(datagrams: list[str], netid: str, details: bool = False) -> list:
    out: list = []
    done = False
    for h in datagrams:
        done = inet.decode_dump(bytes.fromhex(h), netid, out, details)
    assert done
    return out


def test_inet_dump_decodes_to_the_sockets_that_exist(capture: dict) -> None:
    ino = capture["inodes"]
    socks = {s.inode: s for s in _decode(capture["inet"], "tcp")}
    lst = socks[ino["listen"]]
    assert (lst.state, lst.local, lst.recv_q, lst.send_q) == (State.LISTEN, ("127.0.0.1", 4242), 0, 7)
    assert tuple(lst.peer) == ("0.0.0.0", 0)
    cli = socks[ino["client"]]
    assert cli.state == State.ESTABLISHED
    assert tuple(cli.local) == ("127.0.0.1", ino["client_port"])
    assert tuple(cli.peer) == ("127.0.0.1", 4242)
    srv = socks[ino["server"]]
    assert srv.recv_q == 100  # unread bytes
    assert all(s.uid == 0 and s.netid == "tcp" and s.family == 2 for s in socks.values())


def test_inet6_v6only_listener(capture: dict) -> None:
    socks = {s.inode: s for s in _decode(capture["inet6"], "tcp")}
    l6 = socks[capture["inodes"]["l6"]]
    assert (l6.local.address, l6.local.port, l6.v6only, l6.send_q) == ("::", 4243, True, 3)


def test_udp_dump(capture: dict) -> None:
    socks = {s.inode: s for s in _decode(capture["udp"], "udp")}
    u = socks[capture["inodes"]["udp"]]
    assert (u.state, tuple(u.local), tuple(u.peer)) == (State.CLOSE, ("127.0.0.1", 5353), ("0.0.0.0", 0))


def test_unix_dump(capture: dict) -> None:
    out: list = []
    for h in capture["unix"]:
        unix.decode_dump(bytes.fromhex(h), out)
    socks = {s.inode: s for s in out}
    ino = capture["inodes"]
    x = socks[ino["unix"]]
    assert (x.netid, x.state, x.local.address, x.send_q) == ("u_str", State.LISTEN, "@sockscope-test", 2)
    p0, p1 = socks[ino["pair0"]], socks[ino["pair1"]]
    assert p0.peer_inode == p1.inode and p1.peer_inode == p0.inode
    assert p0.state == State.ESTABLISHED and p0.local.address == ""


def _unix_msg(stype: int, st_: int, ino: int, name: bytes | None = None, peer: int | None = None,
              rq: tuple[int, int] | None = (0, 0), uid: int | None = 0, extra: bytes = b"") -> bytes:
    body = struct.pack("=BBBxIQ", 1, stype, st_, ino, ino * 7)
    if name is not None:
        body += netlink.encode_attr(unix.UNIX_DIAG_NAME, name)
    if peer is not None:
        body += netlink.encode_attr(unix.UNIX_DIAG_PEER, struct.pack("=I", peer))
    body += extra
    if rq is not None:
        body += netlink.encode_attr(unix.UNIX_DIAG_RQLEN, struct.pack("=II", *rq))
    if uid is not None:
        body += netlink.encode_attr(unix.UNIX_DIAG_UID, struct.pack("=I", uid))
    return _msg(netlink.SOCK_DIAG_BY_FAMILY, body)


def _unix_reference(data: bytes) -> list[tuple]:
    """Each UNIX message read the plainest way: its fixed part, then every attribute by parse_attrs."""
    rows = []
    for mtype, _flags, payload in netlink.iter_messages(data):
        if mtype in (netlink.NLMSG_DONE, netlink.NLMSG_ERROR):
            break
        if mtype != netlink.SOCK_DIAG_BY_FAMILY:
            continue
        _fam, stype, st_, ino, cookie = struct.unpack_from("=BBBxIQ", payload)
        a = netlink.parse_attrs(payload, 16)
        rq = struct.unpack("=II", a[unix.UNIX_DIAG_RQLEN][:8]) if unix.UNIX_DIAG_RQLEN in a else (0, 0)
        rows.append((stype, st_, ino, cookie, bytes(a.get(unix.UNIX_DIAG_NAME, b"")),
                     struct.unpack("=I", a[unix.UNIX_DIAG_PEER][:4])[0] if unix.UNIX_DIAG_PEER in a else 0, *rq,
                     struct.unpack("=I", a[unix.UNIX_DIAG_UID][:4])[0] if unix.UNIX_DIAG_UID in a else None))
    return rows


def test_unix_batches_agree_with_the_reference(capture: dict) -> None:
    """The UNIX decoder (messages grouped by length, one struct per attribute layout) gives what each
    message says: real captures, and datagrams mixing lengths, names of every length (paths,
    abstract), messages of one length but different layouts (read one by one), absent attributes."""
    vfs = netlink.encode_attr(unix.UNIX_DIAG_VFS, struct.pack("=II", 5, 6))
    synthetic = [
        _unix_msg(1, 1, 10, peer=11) + _unix_msg(1, 1, 11, peer=10) + _unix_msg(2, 7, 12, b"/run/x") + _DONE,
        b"".join(_unix_msg(1, 10, 20 + i, b"\0" + b"n" * i, rq=(i, 128)) for i in range(9)),
        # one length, two layouts: a 12-byte name and no peer vs a 4-byte name and a peer
        _unix_msg(1, 1, 30, b"/abcdefghijk", uid=5) + _unix_msg(1, 1, 31, b"/abc", peer=30, uid=6),
        _unix_msg(5, 10, 40, None, None, None, None) + _unix_msg(5, 1, 41, b"@x", 42, (1, 2), 1000, vfs),
        _DONE,
        # a message of another type among them is passed over
        _unix_msg(1, 1, 50, peer=51) + _msg(netlink.NLMSG_NOOP, bytes(4)) + _unix_msg(1, 1, 51, peer=50) + _DONE,
    ]
    assert len(_unix_msg(1, 1, 30, b"/abcdefghijk", uid=5)) == len(_unix_msg(1, 1, 31, b"/abc", peer=30, uid=6))
    for data in [bytes.fromhex(h) for h in capture["unix"]] + synthetic:
        b, done = unix.decode(data)
        got = list(zip(b.type, b.state, b.inode, b.cookie, b.name, b.peer, b.rqueue, b.wqueue, b.uid))
        assert got == _unix_reference(data)
        assert done == (netlink.NLMSG_DONE in [t for t, _f, _p in netlink.iter_messages(data)])
        assert len(unix.records(b, details=True)) == b.n
    b, _ = unix.decode(synthetic[3])
    assert unix.records(b, details=True)[1].unix_vfs == (5, 6)
    parts = [unix.decode(d)[0] for d in synthetic[:2]]
    assert [i for p in parts for i in p.inode] == [10, 11, 12] + list(range(20, 29))
    assert bytes(parts[0].attrs(2)).startswith(bytes(netlink.encode_attr(unix.UNIX_DIAG_NAME, b"/run/x")))
    for bad in (_unix_msg(1, 1, 1, peer=None, extra=netlink.encode_attr(unix.UNIX_DIAG_PEER, b"ab")),
                _unix_msg(1, 1, 1)[:-3]):
        with pytest.raises(DecodeError):
            unix.decode(bad)


def test_details_fill_shutdown(capture: dict) -> None:
    socks = _decode(capture["inet"], "tcp", details=True)
    assert all(s.shutdown is not None for s in socks)
    assert all(s.shutdown is None for s in _decode(capture["inet"], "tcp"))


def test_request_encoding_is_byte_exact() -> None:
    req = inet.encode_request(2, 6, 0x0FFF, seq=7)
    assert len(req) == 16 + 56
    length, mtype, flags, seq, pid = netlink.NLMSGHDR.unpack_from(req, 0)
    assert (length, mtype, flags, seq, pid) == (72, 20, 0x301, 7, 0)
    assert req[16:24] == bytes([2, 6, 0, 0]) + (0x0FFF).to_bytes(4, "little")
    assert req[24:] == bytes(48)
    mp = inet.encode_request(10, 262, 1)
    assert mp[17] == 6  # protocol > 255 goes in INET_DIAG_REQ_PROTOCOL
    assert netlink.parse_attrs(mp, 72)[3].tobytes() == (262).to_bytes(4, "little")
    ureq = unix.encode_request(0x80, unix.DEFAULT_SHOW)
    assert len(ureq) == 16 + 24 and ureq[16] == 1
    assert others.encode_netlink_request()[16:18] == bytes([16, 255])


def test_destroy_request_encoding_is_byte_exact() -> None:
    """SOCK_DESTROY, acknowledged: inet_diag_req_v2 then the socket's id.  A raw socket's asks raw_diag
    (IPPROTO_RAW) and names its own protocol in the pad byte (struct inet_diag_req_raw, as ss's
    kill_inet_sock does): asked of protocol 1 itself, no handler would answer and -K closed none."""
    sockid = inet.encode_sockid(22, 0, bytes([127, 0, 0, 1]), bytes(4), 0, 0x1122334455667788)
    req = inet.encode_destroy(2, 6, sockid, seq=9)
    assert netlink.NLMSGHDR.unpack_from(req, 0) == (16 + 56, 21, 0x5, 9, 0)
    assert req[16:24] == bytes([2, 6, 0, 0, 0, 0, 0, 0]) and req[24:] == sockid
    assert sockid[:4] == bytes([0, 22, 0, 0]) and sockid[40:] == (0x1122334455667788).to_bytes(8, "little")
    raw = inet.encode_destroy(10, 255, sockid, seq=9, raw_protocol=58)
    assert raw[16:20] == bytes([10, 255, 0, 58])


def test_done_carrying_an_error_is_surfaced() -> None:
    done = netlink.encode_message(netlink.NLMSG_DONE, 2, 1, (-2).to_bytes(4, "little", signed=True))
    with pytest.raises(NetlinkError) as e:
        inet.decode_dump(done, "sctp", [], op="sctp diag")
    assert "not supported by this kernel" in str(e.value)
    err = netlink.encode_message(netlink.NLMSG_ERROR, 0, 1, (-1).to_bytes(4, "little", signed=True) + bytes(16))
    with pytest.raises(NetlinkError) as e:
        unix.decode_dump(err, [])
    assert "permission denied" in str(e.value)
    ok = netlink.encode_message(netlink.NLMSG_DONE, 2, 1, bytes(4))
    assert inet.decode_dump(ok, "tcp", []) is True


def test_codec_never_imports_socket() -> None:
    code = (
        "import sys; import sockscope.kernel.inet, sockscope.kernel.unix, sockscope.kernel.others, "
        "sockscope.kernel.netlink; print('socket' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


_DECODERS = [
    lambda b: inet.decode(b),
    lambda b: inet.decode(b, info=True),
    lambda b: inet.decode_dump(b, "tcp", [], details=True),
    lambda b: inet.decode_dump(b, "tcp", []),
    lambda b: unix.decode_dump(b, [], details=True),
    lambda b: unix.decode(b),
    lambda b: others.decode_netlink_dump(b, []),
    lambda b: others.decode_packet_dump(b, []),
    lambda b: list(netlink.iter_messages(b)),
    lambda b: netlink.parse_attrs(b),
]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), which=st.integers(0, len(_DECODERS) - 1))
def test_fuzz_random_bytes_raise_only_codec_errors(data: bytes, which: int) -> None:
    try:
        _DECODERS[which](data)
    except (DecodeError, NetlinkError):
        pass  # DecodeError: malformed; NetlinkError: a well-formed kernel error message


def _msg(mtype: int, payload: bytes) -> bytes:
    return netlink.encode_message(mtype, 2, 1, payload)


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(min_size=0, max_size=200),
    mtype=st.sampled_from([20, 2, 3, 1, 99]),
    cut=st.integers(0, 300),
    which=st.integers(0, len(_DECODERS) - 1),
)
def test_fuzz_framed_and_truncated_messages(payload: bytes, mtype: int, cut: int, which: int) -> None:
    data = _msg(mtype, payload)
    data = data[: max(0, len(data) - cut % (len(data) + 1))]
    try:
        _DECODERS[which](data)
    except (DecodeError, NetlinkError):
        pass


def test_fuzz_truncations_of_real_capture(capture: dict) -> None:
    blob = bytes.fromhex(capture["inet"][0])
    for n in range(0, len(blob), 7):
        try:
            inet.decode_dump(blob[:n], "tcp", [], details=True)
        except DecodeError:
            pass
    blob = bytes.fromhex(capture["unix"][0])
    for n in range(0, len(blob), 5):
        try:
            unix.decode_dump(blob[:n], [])
        except DecodeError:
            pass


# --- the inet decoder: its strategies agree with each other and with a plain reference ------------

def _inet_msg(fam: int, st_: int, sport: int, dport: int, src: bytes, dst: bytes, ino: int,
              attrs: bytes = b"", rq: int = 0, ifindex: int = 0) -> bytes:
    body = inet._MSG.pack(fam, st_, 0, 0, int.from_bytes(sport.to_bytes(2, "big"), sys.byteorder),
                          int.from_bytes(dport.to_bytes(2, "big"), sys.byteorder), src.ljust(16, b"\0"),
                          dst.ljust(16, b"\0"), ifindex, 0, 0, rq, 0, 0, ino)
    return _msg(netlink.SOCK_DIAG_BY_FAMILY, body + attrs)


_SHUTDOWN = netlink.encode_attr(layout.INET_DIAG_SHUTDOWN, b"\0")
_DONE = _msg(netlink.NLMSG_DONE, bytes(4))
_LO4, _LO6 = bytes([127, 0, 0, 1]), bytes(15) + b"\1"
_COLUMNS = ("family", "state", "timer", "retrans", "sport", "dport", "src", "dst", "ifindex", "cookie", "expires",
            "rqueue", "wqueue", "uid", "inode", "v6only", "info")


def _reference(data: bytes) -> tuple[list[tuple], bool]:
    """What each message says, field by field, read the plainest way (iter_messages, one unpack each)."""
    import socket

    rows, done = [], False
    for mtype, _flags, payload in netlink.iter_messages(data):
        if mtype in (netlink.NLMSG_DONE, netlink.NLMSG_ERROR):
            done = True
            break
        (fam, st_, timer, retrans, sport, dport, src, dst, ifx, cookie, expires, rq, wq, uid,
         ino) = inet._MSG.unpack_from(payload)
        v6only = None
        if fam == 10 and (src == bytes(16) or dst == bytes(16)):
            a = netlink.parse_attrs(payload, inet.MSG_LEN).get(layout.INET_DIAG_SKV6ONLY)
            v6only = bool(a[0]) if a is not None and len(a) else None
        size = 4 if fam == 2 else 16
        rows.append((fam, st_, timer, retrans, socket.ntohs(sport), socket.ntohs(dport),
                     socket.inet_ntop(fam, src[:size]), socket.inet_ntop(fam, dst[:size]), ifx, cookie, expires,
                     rq, wq, uid, ino, v6only))
    return rows, done


def _plain(b: inet.Batch) -> list[tuple]:
    """A batch's rows with addresses as text (its keys named by the decoder's one cache)."""
    v6 = b.v6only or [None] * b.n
    return [(f, st_, t, r, sp, dp, inet.ADDR_TEXT[s_], inet.ADDR_TEXT[d], i, c, e, rq, wq, u, ino, v)
            for f, st_, t, r, sp, dp, s_, d, i, c, e, rq, wq, u, ino, v in zip(
                b.family, b.state, b.timer, b.retrans, b.sport, b.dport, b.src, b.dst, b.ifindex, b.cookie,
                b.expires, b.rqueue, b.wqueue, b.uid, b.inode, v6)]


def _both_ways(data: bytes, monkeypatch: pytest.MonkeyPatch, info: bool = False) -> tuple[inet.Batch, inet.Batch]:
    """The batch of ``data`` as decoded, and with the column-at-once strategy turned off (framed)."""
    fast, fast_done = inet.decode(data, info=info)
    with monkeypatch.context() as m:
        m.setattr(inet, "_uniform", lambda *a: None)
        m.setattr(inet_attrs, "_uniform_info", lambda *a: None)
        framed, framed_done = inet.decode(data, info=info)
    assert fast_done == framed_done
    for name in _COLUMNS:
        got, want = _rows_of_info(getattr(fast, name)), _rows_of_info(getattr(framed, name))
        assert got == want, name
        if isinstance(got, list):
            assert [type(x) for x in got] == [type(x) for x in want], name
    return fast, framed


def _rows_of_info(col: object) -> object:
    """A batch's ``info`` with its tcp_info as one TcpInfo per row (the column-at-once strategy holds
    them column by column: tcpinfo.InfoColumns)."""
    from sockscope.kernel import tcpinfo

    if isinstance(col, tuple) and col and isinstance(col[0], tcpinfo.InfoColumns):
        return (col[0].rows(), *col[1:])
    return col


def _synthetic() -> list[bytes]:
    a = _inet_msg(2, 1, 4242, 33000, _LO4, _LO4, 11, _SHUTDOWN, rq=300)
    high = bytearray(_inet_msg(2, 1, 4243, 33000, _LO4, _LO4, 12, _SHUTDOWN))
    high[16 + 44:16 + 52] = (0x1234_5678_9ABC_DEF0).to_bytes(8, sys.byteorder)  # idiag_cookie
    high[16 + 2:16 + 4] = bytes([1, 2])  # idiag_timer, idiag_retrans
    high[16 + 52:16 + 56] = (1234).to_bytes(4, sys.byteorder)  # idiag_expires
    high[16 + 64:16 + 68] = (1000).to_bytes(4, sys.byteorder)  # idiag_uid
    six = _inet_msg(10, 1, 80, 40000, _LO6, _LO6, 5, _SHUTDOWN)
    mapped = _inet_msg(10, 1, 80, 40000, bytes(10) + b"\xff\xff" + _LO4, bytes(10) + b"\xff\xff" + _LO4, 7, _SHUTDOWN)
    wild = _inet_msg(10, 10, 80, 0, bytes(16), bytes(16), 6, _SHUTDOWN)
    v6only = netlink.encode_attr(layout.INET_DIAG_SKV6ONLY, b"\1")
    wild_v6 = _inet_msg(10, 10, 81, 0, bytes(16), bytes(16), 8, v6only)
    wild_v6 += bytes(0)
    tw = _inet_msg(2, 6, 4242, 33001, _LO4, _LO4, 0)
    scoped = _inet_msg(2, 1, 1, 2, _LO4, _LO4, 9, _SHUTDOWN, ifindex=3)
    return [a + bytes(high) + _DONE, six + six, six + wild, a + six, a + tw + a, bytes(high), six + mapped + six,
            a + six + a + six + _DONE, wild + wild, tw + _DONE, a + a + tw + _DONE, tw + a, scoped + a, a,
            _inet_msg(10, 10, 81, 0, bytes(16), bytes(16), 8, _SHUTDOWN + netlink.encode_attr(
                layout.INET_DIAG_SKV6ONLY, b"\1")) + wild, _DONE,
            # framed (three lengths) and both families: a split must still find the wildcard's v6only
            a + tw + wild_v6 + six + tw + wild + mapped + _DONE]


def test_strategies_agree_with_the_reference(capture: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Column at once or framed message by message, every column is what a plain reading of each
    message says: real captures of both families and UDP, and synthetic datagrams with a cookie's
    high word set, IPv4 and IPv6 (and ::ffff: mapped) mixed in one datagram, wildcards with and
    without v6only, TIME-WAIT mini-sockets between full ones, a scoped address."""
    uniform = 0
    datagrams = [bytes.fromhex(h) for key in ("inet", "inet6", "udp") for h in capture[key]] + _synthetic()
    for data in datagrams:
        fast, _framed = _both_ways(data, monkeypatch)
        rows, done = _reference(data)
        assert _plain(fast) == rows and inet.decode(data)[1] == done
        length = inet._uniform_length(data)
        empty = inet.Batch.__new__(inet.Batch)
        uniform += bool(length) and inet._uniform(memoryview(data), length, "x", empty) is not None
    assert uniform > 6  # the common case (one length per datagram) really takes the column path
    fast, _ = inet.decode(_synthetic()[0])
    assert list(zip(fast.cookie, fast.timer, fast.retrans, fast.expires, fast.uid)) == [
        (0, 0, 0, 0, 0), (0x1234_5678_9ABC_DEF0, 1, 2, 1234, 1000)]
    mixed, _ = inet.decode(_synthetic()[3])
    assert mixed.fam == 0 and mixed.family == [2, 10] and type(mixed.src[0]) is int and mixed.src[1] == _LO6


def test_split_by_family_keeps_each_familys_rows_in_order(capture: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch.split (the legacy dump's datagrams mix the families; ss lists IPv4 first): the IPv4
    rows and the IPv6 rows, each in the datagram's order, every column as the plain reading says,
    whether the batch was read column at once (regrouped by family) or framed (selected)."""
    regrouped = 0
    for data in [bytes.fromhex(h) for key in ("inet", "inet6", "udp") for h in capture[key]] + _synthetic():
        rows, _done = _reference(data)
        for b in _both_ways(data, monkeypatch):
            v4, v6 = b.split()
            assert (v4.fam in (0, 2), v6.fam in (0, 10)) == (True, True)
            assert _plain(v4) == [r for r in rows if r[0] == 2]
            assert _plain(v6) == [r for r in rows if r[0] == 10]
            assert inet.records(v4, "tcp") + inet.records(v6, "tcp") == sorted(
                inet.records(b, "tcp"), key=lambda s: s.family)  # a stable sort: the order within a family kept
        # a view into a longer buffer (a replayed capture, say): the rows are the view's, not the buffer's
        v4, v6 = inet.decode(memoryview(bytes(124) + data)[124:])[0].split()
        assert _plain(v4) + _plain(v6) == [r for r in rows if r[0] == 2] + [r for r in rows if r[0] == 10]
        regrouped += inet.decode(data)[0].fam == 0 and bool(inet._uniform_length(data))
    assert regrouped >= 2  # mixed datagrams of one message length really take the regrouping path


def _reseq(data: bytes, seq: int = netlink.DUMP_SEQ) -> bytes:
    """``data`` with every message's sequence number ``seq``, as the kernel repeats a request's."""
    out = bytearray(data)
    off = 0
    while off + 16 <= len(out):
        out[off + 8 : off + 12] = seq.to_bytes(4, sys.byteorder)
        length = int.from_bytes(out[off : off + 4], sys.byteorder)
        if length < 16:
            break
        off += (length + 3) & ~3
    return bytes(out)


def _counting_split(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record whether each call of ``netlink.cut_dump`` (the inet decoder's) cut its datagram (True)
    or left it to the walk (False)."""
    calls: list[bool] = []
    real = netlink.cut_dump

    def split(*args: object) -> object:
        got = real(*args)  # type: ignore[arg-type]
        calls.append(got is not None)
        return got

    monkeypatch.setattr(netlink, "cut_dump", split)
    return calls


_SEQ = netlink.DUMP_SEQ.to_bytes(4, sys.byteorder)


def test_datagrams_cut_at_their_sequence_number_read_as_the_plain_walk(capture: dict,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A framed datagram whose messages carry sockscope's sequence number is cut at it (one split in
    C, netlink.cut_dump): every column, the dump's end, the split by family and each row's
    attributes are what the plain reading of each message says, and what the walk over the lengths
    gives (the same datagram with sequence number 1, which has a 0 byte: never cut)."""
    calls = _counting_split(monkeypatch)
    datagrams = [bytes.fromhex(h) for key in ("inet", "inet6", "udp") for h in capture[key]] + _synthetic()
    for data in datagrams:
        mine = _reseq(data)
        rows, done = _reference(mine)
        fast, framed = _both_ways(mine, monkeypatch)
        assert _plain(fast) == _plain(framed) == rows and inet.decode(mine)[1] == done
        walked, _ = _both_ways(_reseq(data, 1), monkeypatch)
        assert _plain(walked) == rows
        for b in (framed, walked):  # each row's attributes, and the rows split by family
            assert [bytes(b.attrs(i)) for i in range(b.n)] == [bytes(framed.attrs(i)) for i in range(framed.n)]
            v4, v6 = b.split()
            assert _plain(v4) + _plain(v6) == [r for r in rows if r[0] == 2] + [r for r in rows if r[0] == 10]
            assert [bytes(v4.attrs(i)) for i in range(v4.n)] + [bytes(v6.attrs(i)) for i in range(v6.n)] == [
                bytes(b.attrs(i)) for f in (2, 10) for i in range(b.n) if b.family[i] == f]
    assert calls.count(True) >= 8 and False in calls  # framed datagrams really cut; seq 1 never


def test_cut_by_format_and_by_slices_agree(capture: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """cut_dump reads each piece's end (the next message's length and type) from one ``%`` format of
    the pieces right-aligned in fields as wide as the widest, or, past netlink.FORMAT_MAX bytes, from
    their slices joined: the same cut both ways, on the kernel's datagrams and on made ones (the sequence
    number among a socket's bytes too), and the fixed parts hold each message's bytes from byte 16."""
    datagrams = [_reseq(bytes.fromhex(h)) for key in ("inet", "inet6", "udp") for h in capture[key]]
    datagrams += [_reseq(d) for d in _synthetic()]
    salted = _inet_msg(2, 1, 1000, 80, _LO4, _LO4, 7, _SHUTDOWN + _SEQ)
    datagrams.append(_reseq(b"".join([_inet_msg(2, 1, 1000 + i, 80, _LO4, _LO4, i + 1, _SHUTDOWN * (i % 3))
                                      for i in range(40)] + [salted])))
    cut = 0
    for data in datagrams:
        by_format = netlink.cut_dump(data, "x", inet._HEAD, inet._SPLIT_MAX)
        monkeypatch.setattr(netlink, "FORMAT_MAX", 0)
        by_slices = netlink.cut_dump(data, "x", inet._HEAD, inet._SPLIT_MAX)
        monkeypatch.undo()
        if by_format is None:
            assert by_slices is None
            continue
        cut += 1
        assert by_slices is not None
        heads, lens, done, _pieces = by_format
        assert (heads.tobytes(), lens, done) == (by_slices[0].tobytes(), by_slices[1], by_slices[2])
        starts = [sum(lens[:i]) for i in range(len(lens))]
        assert [heads[i * inet._HEAD + 16 : (i + 1) * inet._HEAD].tobytes() for i in range(len(lens))] == [
            data[at + 16 : at + inet._HEAD] for at in starts]
    assert cut >= 8


def test_a_false_match_of_the_sequence_number_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Socket bytes that hold the sequence number (ports, an address, a cookie, an attribute, the
    very end of a message) cut a message in two: the check of the pieces against the lengths
    refuses the cut, and the walk reads the datagram, as the plain reading does."""
    calls = _counting_split(monkeypatch)
    a = _inet_msg(2, 1, 4242, 33000, _LO4, _LO4, 11, _SHUTDOWN, rq=300)
    tw = _inet_msg(2, 6, 4242, 33001, _LO4, _LO4, 0)
    ports = _inet_msg(2, 1, int.from_bytes(_SEQ[:2], "big"), int.from_bytes(_SEQ[2:], "big"), _LO4, _LO4, 3,
                      _SHUTDOWN)
    address = _inet_msg(10, 1, 80, 40000, bytes(4) + _SEQ * 3, _LO6, 5, _SHUTDOWN)
    cookie = bytearray(_inet_msg(2, 1, 1, 2, _LO4, _LO4, 9, _SHUTDOWN))
    cookie[16 + 44 : 16 + 48] = _SEQ
    attr = _inet_msg(2, 1, 5, 6, _LO4, _LO4, 10, netlink.encode_attr(99, _SEQ + bytes(4) + _SEQ))
    tail = _inet_msg(2, 1, 7, 8, _LO4, _LO4, 12, netlink.encode_attr(99, bytes(4) + _SEQ))
    done_like = _inet_msg(2, 1, 7, 9, _LO4, _LO4, 13, netlink.encode_attr(99, netlink.DONE_HEAD + bytes(14)))
    for odd in (ports, address, bytes(cookie), attr, tail, done_like):
        for data in (a + odd + tw, odd + tw + _DONE, tw + a + odd, tw + odd + _DONE):
            calls.clear()
            mine = _reseq(data)
            rows, done = _reference(mine)
            fast, _ = _both_ways(mine, monkeypatch)
            assert _plain(fast) == rows and inet.decode(mine)[1] == done
            assert [bytes(fast.attrs(i)) for i in range(fast.n)] == [
                bytes(p[inet.MSG_LEN :]) for t, _f, p in netlink.iter_messages(mine)
                if t == netlink.SOCK_DIAG_BY_FAMILY]
            if odd is not done_like:  # (that one holds no sequence number: refused only where it ends
                assert calls and not any(calls), odd  # the datagram, its bytes taken for NLMSG_DONE's)


def _decoded_or_error(data: bytes) -> object:
    try:
        b, done = inet.decode(data)
    except (DecodeError, NetlinkError) as exc:
        return type(exc), str(exc)
    return _plain(b), done, [bytes(b.attrs(i)) for i in range(b.n)]


def test_every_check_of_the_cut_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Datagrams made so that one check alone refuses the cut: a look-alike message inside a long
    attribute (both pieces long enough, a sock_diag type: only the lengths tell), a message of
    another type (NLMSG_NOOP: the walk skips it), one shorter than a fixed part, one whose length is
    not 4-aligned with the next right after it.  Each decodes (or fails) exactly as by the walk."""
    a = _inet_msg(2, 1, 4242, 33000, _LO4, _LO4, 11, _SHUTDOWN)
    tw = _inet_msg(2, 6, 4242, 33001, _LO4, _LO4, 0)
    fake = bytes(80) + struct.pack("=IHH", len(a), netlink.SOCK_DIAG_BY_FAMILY, 2) + _SEQ + bytes(80)
    inside = _inet_msg(2, 1, 5, 6, _LO4, _LO4, 10, netlink.encode_attr(99, fake))
    noop = _msg(netlink.NLMSG_NOOP, bytes(inet.MSG_LEN + 8))
    short = _msg(netlink.SOCK_DIAG_BY_FAMILY, bytes(inet.MSG_LEN - 4))
    odd = bytearray(_inet_msg(2, 1, 7, 8, _LO4, _LO4, 12, netlink.encode_attr(99, bytes(8))))
    odd[0:4] = (len(odd) - 2).to_bytes(4, sys.byteorder)  # 2 bytes short of its true end: unaligned
    cases = [[a, inside, tw, _DONE], [tw, noop, a, _DONE], [a, short, tw], [tw, _reseq(bytes(odd))[:-2], a, tw]]
    for data in (b"".join(map(_reseq, parts)) for parts in cases):
        calls = _counting_split(monkeypatch)
        got = _decoded_or_error(data)
        assert calls == [False], calls
        monkeypatch.setattr(netlink, "cut_dump", lambda *args: None)
        assert got == _decoded_or_error(data)
        monkeypatch.undo()
    # the dump's end carrying the kernel's error, after messages that are cut: raised as the walk does
    failed = _reseq(a + tw + netlink.encode_message(netlink.NLMSG_DONE, 2, 1, (-13).to_bytes(4, "little", signed=True)))
    with pytest.raises(NetlinkError, match="permission denied"):
        inet.decode(failed)
    alone = failed[:-20]  # (the messages alone: cut)
    assert netlink.cut_dump(alone, "x", inet._HEAD, inet._SPLIT_MAX) is not None


@settings(max_examples=200, deadline=None)
@given(kinds=st.lists(st.tuples(st.sampled_from(["full", "tw", "six", "attr"]), st.binary(max_size=24),
                                st.booleans()), min_size=1, max_size=12),
       done=st.booleans())
def test_any_datagram_cut_or_walked_reads_as_the_plain_walk(kinds: list[tuple[str, bytes, bool]], done: bool) -> None:
    """Messages of several lengths in any order, their bytes salted with the sequence number here and
    there: the decoder reads what the plain reading says, cut or walked."""
    parts = []
    for i, (kind, salt, seq_inside) in enumerate(kinds):
        extra = salt + (_SEQ if seq_inside else b"")
        if kind == "full":
            parts.append(_inet_msg(2, 1, 1000 + i, 80, _LO4, _LO4, i + 1, _SHUTDOWN))
        elif kind == "tw":
            parts.append(_inet_msg(2, 6, 1000 + i, 80, _LO4, _LO4, 0))
        elif kind == "six":
            parts.append(_inet_msg(10, 1, 1000 + i, 80, _LO6, (extra + bytes(16))[:16], i + 1, _SHUTDOWN))
        else:
            parts.append(_inet_msg(2, 1, 1000 + i, 80, _LO4, _LO4, i + 1, netlink.encode_attr(99, extra)))
    mine = _reseq(b"".join(parts) + (_DONE if done else b""))
    rows, got_done = _reference(mine)
    b, decoded_done = inet.decode(mine)
    assert _plain(b) == rows and decoded_done == got_done
    v4, v6 = b.split()
    assert _plain(v4) + _plain(v6) == [r for r in rows if r[0] == 2] + [r for r in rows if r[0] == 10]


_V6ONLY = {flag: netlink.encode_attr(layout.INET_DIAG_SKV6ONLY, bytes([flag])) for flag in (0, 1)}
_OTHER8 = netlink.encode_attr(99, bytes(4))  # as long as a flag's attribute, padded: 8 bytes


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["flag", "other", "swapped", "longer", "full"]),
                               st.sampled_from([0, 1]), st.booleans()), min_size=1, max_size=24),
       first=st.sampled_from(["flag", "other", "swapped", "longer", "full"]), done=st.booleans())
def test_v6only_read_column_at_once_is_what_each_row_says(rows: list[tuple[str, int, bool]], first: str,
                                                            done: bool) -> None:
    """IPv6 rows with ``::`` on one side, in messages of one length (netlink.u8_column: the flag read
    column at once where the attributes before it stand alike in every such row) or not: each row's
    v6only is what its own attributes say, the plain reading's, also where some rows' stand otherwise
    (another attribute in the flag's place, the two swapped, a longer one before it).  In a dump whose
    sockets inet6_bind binds ("tcp diag"), a row bound to an address (``::1``, its peer ``::``) is
    v6only by its address, whatever its attributes say; a wildcard's flag is read as before."""
    msgs = []
    for i, (kind, flag, wildcard) in enumerate([(first, 1, True), *rows]):
        attrs = {"flag": _SHUTDOWN + _V6ONLY[flag], "other": _SHUTDOWN + _OTHER8, "full": _SHUTDOWN + _V6ONLY[flag],
                 "swapped": _V6ONLY[flag] + _SHUTDOWN,
                 "longer": netlink.encode_attr(layout.INET_DIAG_SHUTDOWN, bytes(8)) + _V6ONLY[flag]}[kind]
        src = bytes(16) if wildcard else _LO6  # a wildcard listener, or one bound to ::1 (its peer ::)
        dst = _LO6 if kind == "full" else bytes(16)
        msgs.append(_inet_msg(10, 10, 1000 + i, 0, _LO6 if kind == "full" else src, dst, i + 1, attrs))
    data = _reseq(b"".join(msgs) + (_DONE if done else b""))
    want, got_done = _reference(data)
    b, decoded_done = inet.decode(data)
    assert _plain(b) == want and decoded_done == got_done
    assert bool(b._length) == (len({len(m) for m in msgs}) == 1)  # (one length: read column at once)
    bound = inet.decode(data, "tcp diag")[0]
    assert (bound.v6only or [None] * bound.n) == [
        r[-1] if r[6] == "::" else True if r[7] == "::" else None for r in want]


def test_a_flag_whose_byte_is_past_its_message_is_a_decode_error() -> None:
    """Messages of one length ending in a v6only header that claims a byte past the message: the
    column reader leaves them to parse_attrs, which says what is wrong (no IndexError, no misread of
    the next message's first byte)."""
    msg = _inet_msg(10, 10, 1, 0, bytes(16), bytes(16), 1, _SHUTDOWN + layout.NLATTR.pack(5, layout.INET_DIAG_SKV6ONLY))
    for data in (_reseq(msg * 2), _reseq(msg * 3 + _DONE)):
        with pytest.raises(DecodeError, match="bad attribute length 5"):
            inet.decode(data)


def test_head_columns_read_in_one_pass_are_the_columns_read_one_by_one(capture: dict) -> None:
    """Batch.read (the table, records and psutil's columns read several head columns at once): the
    same columns as reading each one when first asked for, on datagrams read column at once, framed,
    of both families and their halves split, a cookie's high word set; a batch of records or a
    selection (its columns set) is left as it is."""
    names = inet._HEAD_COLS
    strided = 0
    for data in [bytes.fromhex(h) for key in ("inet", "inet6", "udp") for h in capture[key]] + _synthetic():
        pairs = [(inet.decode(data)[0], inet.decode(data)[0])]
        if pairs[0][0].fam == 0 and pairs[0][0].n:
            pairs += list(zip(pairs[0][0].split(), inet.decode(data)[0].split()))
        for one_pass, one_by_one in pairs:
            strided += bool(one_pass._stride)
            one_pass.read(names)
            assert [getattr(one_pass, n) for n in names] == [getattr(one_by_one, n) for n in names]
    assert strided >= 20
    fast, _ = inet.decode(_synthetic()[0])
    fast.read(("cookie",))
    assert fast.cookie == [0, 0x1234_5678_9ABC_DEF0]
    picked = fast.select([False, True])
    picked.read(names)
    assert picked.cookie == [0x1234_5678_9ABC_DEF0] and picked.n == 1


def test_rows_gathered_by_a_mask_are_the_rows_kept() -> None:
    """layout.gather_rows (Batch.split of messages of one length): the rows a mask keeps, in order,
    for datagrams shorter and longer than the slices made so far (which grow), of two row sizes,
    with bytes after the last whole row; the same as gather at the kept rows' offsets."""
    from sockscope.kernel import layout

    rng = random.Random(7)
    for size, n in ((124, 3), (124, 700), (88, 1), (124, 256), (124, 1500), (88, 0), (88, 900), (124, 40)):
        raw = rng.randbytes(n * size + rng.randrange(size))
        keep = [rng.random() < 0.5 for _ in range(n)]
        at = [k * size for k in range(n) if keep[k]]
        assert layout.gather_rows(raw, size, keep).tobytes() == layout.gather(raw, at, size).tobytes()
        assert layout.gather_rows(raw, size, [True] * n).tobytes() == raw[: n * size]


def test_records_of_batches(capture: dict) -> None:
    """records(): the same Socket whether made column by column or with every attribute decoded,
    for the fields both fill; selecting rows keeps them in order."""
    for data in [bytes.fromhex(h) for key in ("inet", "inet6", "udp") for h in capture[key]] + _synthetic():
        b, _ = inet.decode(data)
        plain, full = inet.records(b, "tcp"), inet.records(b, "tcp", details=True)
        assert len(plain) == len(full) == b.n
        for p, f in zip(plain, full):
            assert (p.family, p.state, p.local, p.peer, p.inode, p.cookie, p.recv_q, p.ifindex, p.timer) == (
                f.family, f.state, f.local, f.peer, f.inode, f.cookie, f.recv_q, f.ifindex, f.timer)
            if p.v6only is not None:
                assert p.v6only == f.v6only
        keep = [i % 2 == 0 for i in range(b.n)]
        assert inet.records(b.select(keep), "tcp") == [s for s, k in zip(plain, keep) if k]


def test_errors_and_garbage() -> None:
    a = _inet_msg(2, 1, 4242, 33000, _LO4, _LO4, 11, _SHUTDOWN, rq=300)
    # the dump's end carrying the kernel's error is raised, whichever strategy reads the datagram
    err = _msg(netlink.NLMSG_DONE, (-2).to_bytes(4, sys.byteorder, signed=True))
    for data in (a + err, err, a + _inet_msg(2, 6, 1, 2, _LO4, _LO4, 0) + err):
        with pytest.raises(NetlinkError):
            inet.decode(data)
    with pytest.raises(DecodeError):
        inet.decode(a + a[:40])
    b, done = inet.decode(_DONE)
    assert done and b.n == 0


def test_public_api_matches_all() -> None:
    import sockscope

    for name in sockscope.__all__:
        assert getattr(sockscope, name) is not None
    public = {
        n for n in dir(sockscope)
        if not n.startswith("_") and not isinstance(getattr(sockscope, n), types.ModuleType)
    }
    assert public == set(sockscope.__all__) - {"__version__"}


def test_fast_constructor_makes_true_frozen_records() -> None:
    """records.make_socket (the decoders' constructor) gives exactly what the dataclass's own would."""
    import dataclasses
    import pickle

    from sockscope.records import STATES, Endpoint, Socket, make_socket

    a, b = Endpoint("127.0.0.1", 22), Endpoint("127.0.0.2", 40000)
    fields = [f.name for f in dataclasses.fields(Socket)]
    values = ["tcp", 2, STATES[1], 1, 2, a, b, 77] + list(range(100, 100 + len(fields) - 8))
    for args, kwargs in ((values, {}), (values[:8], {}), (values[:8], {"timer": 2, "cong": "cubic"})):
        fast = make_socket(*args, **kwargs)
        slow = Socket(*args, **kwargs)
        assert type(fast) is Socket and fast == slow and hash(fast) == hash(slow)
        assert [getattr(fast, n) for n in fields] == [getattr(slow, n) for n in fields]
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.inode = 1  # type: ignore[misc]
        assert pickle.loads(pickle.dumps(fast)) == fast
        assert dataclasses.replace(fast, inode=5).inode == 5
    with pytest.raises(TypeError):
        make_socket("tcp")


def test_evolve_is_dataclasses_replace() -> None:
    """records.evolve (relabelling records by the thousand) gives what dataclasses.replace gives, for
    any field and several at once; an unknown field is a TypeError, as there."""
    import dataclasses

    from sockscope.records import STATES, Endpoint, Owner, Socket, evolve, make_socket

    fields = [f.name for f in dataclasses.fields(Socket)]
    s = make_socket("tcp", 2, STATES[1], 1, 2, Endpoint("127.0.0.1", 22), Endpoint("127.0.0.2", 40000), 77,
                    cookie=9, cong="cubic")
    changes = [{"netns": "blue"}, {"owners": (Owner(10, 3, "nginx"),)}, {"inode": 5, "netns": "x", "retrans": 2},
               *({name: f"v-{name}"} for name in fields)]
    for change in changes:
        got, want = evolve(s, **change), dataclasses.replace(s, **change)
        assert type(got) is Socket and got == want
        assert [getattr(got, n) for n in fields] == [getattr(want, n) for n in fields]
    assert s.netns is None and s.inode == 77  # the record evolved from is untouched
    with pytest.raises(TypeError, match="no field 'nope'"):
        evolve(s, nope=1)
    with pytest.raises(TypeError):
        dataclasses.replace(s, nope=1)


def _info_attrs(rng: random.Random, info_len: int, cong: bytes | None, bbr: int, dctcp: int, v6only: bool) -> bytes:
    a = netlink.encode_attr(layout.INET_DIAG_SHUTDOWN, b"\0")
    if info_len:
        a += netlink.encode_attr(layout.INET_DIAG_INFO, bytes(rng.randrange(256) for _ in range(info_len)))
    if cong is not None:
        a += netlink.encode_attr(layout.INET_DIAG_CONG, cong)
    if bbr:
        a += netlink.encode_attr(layout.INET_DIAG_BBRINFO, bytes(rng.randrange(256) for _ in range(bbr)))
    if dctcp:
        a += netlink.encode_attr(layout.INET_DIAG_DCTCPINFO, bytes(rng.randrange(256) for _ in range(dctcp)))
    if v6only:
        a += netlink.encode_attr(layout.INET_DIAG_SKV6ONLY, b"\1")
    return a


def test_info_of_one_layout_datagrams_agree_with_the_framed_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """-i's columns by one iter_unpack per datagram give what the message-by-message walk gives, for
    tcp_info of every length (short, this kernel's, longer), cong, bbr, dctcp, IPv6 wildcards;
    datagrams whose messages differ in layout are walked."""
    from sockscope.kernel import tcpinfo

    rng = random.Random(7)
    taken = 0
    layouts = [(tcpinfo.SIZE, b"cubic\0", 0, 0), (tcpinfo.SIZE + 8, b"bbr\0", 20, 0), (104, b"dctcp\0", 0, 16),
               (tcpinfo.SIZE, None, 0, 0), (0, b"reno\0", 0, 0), (tcpinfo.SIZE, b"bbr\0", 16, 0)]
    for info_len, cong, bbr, dctcp in layouts:
        for fam, addr in ((2, _LO4), (10, _LO6), (10, bytes(16))):
            msgs = b"".join(
                _inet_msg(fam, rng.choice([1, 10]), rng.randrange(1, 65536), rng.randrange(65536), addr, addr,
                          rng.randrange(1, 1 << 30), _info_attrs(rng, info_len, cong, bbr, dctcp, fam == 10))
                for _ in range(5))
            for data in (msgs, msgs + _DONE):
                fast, _framed = _both_ways(data, monkeypatch, info=True)
                assert fast.n == 5 and fast.info is not None
                infos = _rows_of_info(fast.info)[0]  # type: ignore[index]
                assert all(t is None or isinstance(t, tcpinfo.TcpInfo) for t in infos)
                uniform = inet_attrs._uniform_info(memoryview(data), len(msgs) // 5, 5) is not None
                if uniform and info_len >= tcpinfo.SIZE:
                    assert isinstance(fast.info[0], tcpinfo.InfoColumns)  # read column by column
                    sub = fast.select([True, False, True, False, True])
                    assert sub.info is not None and sub.info[0].rows() == infos[::2]  # type: ignore[union-attr]
                taken += inet_attrs._uniform_info(memoryview(data), len(msgs) // 5, 5) is not None
    assert taken >= 30  # all but the short-bbr layout took the one-unpack path
    # two layouts in one datagram (one socket without cong): the walk, same answer
    a = _inet_msg(2, 1, 1, 2, _LO4, _LO4, 5, _info_attrs(rng, tcpinfo.SIZE, b"cubic\0", 0, 0, False))
    b = _inet_msg(2, 1, 1, 2, _LO4, _LO4, 6, _info_attrs(rng, tcpinfo.SIZE, None, 0, 0, False)
                 + netlink.encode_attr(99, bytes(8)))
    assert len(a) == len(b) and inet_attrs._uniform_info(memoryview(a + b), len(a), 2) is None
    got, _ = _both_ways(a + b + _DONE, monkeypatch, info=True)
    assert got.inode == [5, 6] and got.info is not None and got.info[1] == ["cubic", None]


def test_info_of_framed_datagrams_read_length_by_length_agree_with_the_walk() -> None:
    """TIME-WAIT mini-sockets (no attributes) among full sockets of one or two attribute layouts,
    both families: -i's columns read length by length (each length's messages side by side, read
    like a uniform datagram) are what the message-by-message walk gives, row for row."""
    from sockscope.kernel import tcpinfo

    from sockscope.render import tcp_info as tcp_info_text

    rng = random.Random(11)
    layouts = [(tcpinfo.SIZE, b"cubic\0", 0, 0), (tcpinfo.SIZE + 8, b"bbr\0", 20, 0), (104, b"dctcp\0", 0, 16),
               (tcpinfo.SIZE, None, 0, 0), (tcpinfo.SIZE, b"bbr\0", 16, 0)]
    minis = [_inet_msg(2, 6, 4242, 33001, _LO4, _LO4, 0), _inet_msg(10, 6, 80, 33001, _LO6, _LO6, 0),
             _inet_msg(2, 3, 80, 33002, _LO4, _LO4, 0)]
    grouped = sparsed = with_others = 0
    for _trial in range(60):
        shapes = rng.sample(layouts, rng.choice([1, 2]))
        msgs = []
        for _ in range(rng.randrange(2, 40)):
            if rng.random() < 0.4:
                msgs.append(rng.choice(minis))
                continue
            info_len, cong, bbr, dctcp = rng.choice(shapes)
            fam, addr = rng.choice([(2, _LO4), (10, _LO6), (10, bytes(16))])
            msgs.append(_inet_msg(fam, 1, rng.randrange(1, 65536), rng.randrange(65536), addr, addr,
                                  rng.randrange(1, 1 << 30), _info_attrs(rng, info_len, cong, bbr, dctcp, fam == 10)))
        data = b"".join(msgs) + rng.choice([b"", _DONE])
        b, _done = inet.decode(data, info=True)
        assert b.info is not None and b.n == len(msgs)
        walked: tuple[list, ...] = ([None] * b.n, [None] * b.n, [None] * b.n, [None] * b.n, [None] * b.n)
        inet_attrs._walk_info(b, range(b.n), walked)
        infos, congs, bbrs, dctcps, tails = b.info
        assert tails is None and walked[4] == [None] * b.n  # (no MD5 keys, no upper layer protocol here)
        assert (list(infos), congs, [None if x is None else tuple(x) for x in bbrs], dctcps) == (
            walked[0], walked[1], [None if x is None else tuple(x) for x in walked[2]], walked[3])
        if not b._length:
            again: tuple[list, ...] = ([None] * b.n, [None] * b.n, [None] * b.n, [None] * b.n, [None] * b.n)
            rest, _parts = inet_attrs._grouped_info(b, again)
            grouped += len(rest) < b.n
            if any(t is not None for t in walked[0]):  # the rows with tcp_info kept column by column
                sparsed += 1
                assert isinstance(infos, tcpinfo.SparseInfo) and infos.rows() == walked[0]
                if infos.others is not None:  # (the other columns of the rows with tcp_info, in their order)
                    with_others += 1
                    o_congs, o_bbrs, o_dctcps = infos.others
                    assert (list(o_congs), [None if x is None else tuple(x) for x in o_bbrs], list(o_dctcps)) == (
                        [walked[1][i] for i in infos.at], [None if walked[2][i] is None else tuple(walked[2][i])
                                                           for i in infos.at], [walked[3][i] for i in infos.at])
                for flags in (False, True):  # the same -i text, each row's in its place
                    assert tcp_info_text.texts(*b.info[:4], b.state, flags, True) == tcp_info_text.texts(
                        *walked[:4], b.state, flags, True)
                keep = [rng.random() < 0.5 for _ in range(b.n)]
                assert infos.select(keep).rows() == [t for t, k in zip(walked[0], keep) if k]
    assert grouped >= 30 and sparsed >= 30  # the framed datagrams really were read length by length
    assert with_others == sparsed  # (and -i's text read their other columns as the decoder gave them)
    # every socket has tcp_info, in two lengths interleaved (IPv4 and IPv6 ones): the texts in place
    four = _inet_msg(2, 1, 1, 2, _LO4, _LO4, 5, _info_attrs(rng, tcpinfo.SIZE, b"cubic\0", 0, 0, False))
    six = _inet_msg(10, 1, 3, 4, _LO6, _LO6, 6, _info_attrs(rng, tcpinfo.SIZE, b"reno\0", 0, 0, True))
    b, _done = inet.decode(six + four + six + four + four, info=True)
    walked = ([None] * 5, [None] * 5, [None] * 5, [None] * 5, [None] * 5)
    inet_attrs._walk_info(b, range(5), walked)
    assert isinstance(b.info[0], tcpinfo.SparseInfo) and sorted(b.info[0].at) != b.info[0].at
    assert tcp_info_text.texts(*b.info[:4], b.state, False, True) == tcp_info_text.texts(*walked[:4], b.state, False,
                                                                                          True)


def test_address_text_cache_stays_bounded() -> None:
    """Long-running callers (top, the exporter) meet ever new peers: the cache starts over, answers stay right."""
    import struct as _struct

    from sockscope import _addr

    for i in range(70_000):
        raw = (0x0A000000 + i).to_bytes(4, "big")
        assert _addr.ntop4(raw) == f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        assert inet.ADDR_TEXT[_struct.unpack("=I", raw)[0]] == _addr.ntop4(raw)
    assert len(_addr._cache4) <= 1 << 16 and len(inet.ADDR_TEXT) <= 1 << 16


def test_request_ports_in_network_order() -> None:
    """The ports the TCP dump skips other sockets by sit in the request's socket id, big-endian
    (the kernel compares them with the socket's network-order ports)."""
    for req, at in ((inet.encode_request(2, 6, 0xfff, ports=(80, 20000)), 16 + 8),
                    (inet.encode_request_compat(0xfff, ports=(80, 20000)), 16 + 4)):
        assert req[at:at + 4] == bytes([0, 80, 0x4E, 0x20])
        assert req[at + 4:at + 48] == bytes(44)
    assert inet.encode_request(2, 6, 0xfff) == inet.encode_request(2, 6, 0xfff, ports=(0, 0))


def test_netlink_and_packet_batches() -> None:
    """netlink_diag and packet_diag decode to column batches (their layouts from kernel.layout):
    signed portids, a connected socket's peer, the memory, groups, interface, uid, packet info and
    filter attributes; records made of a batch carry the same; truncated messages raise DecodeError."""
    mem = netlink.encode_attr(others.NETLINK_DIAG_MEMINFO, struct.pack("=9I", 5, 200, 7, 300, 0, 0, 0, 0, 0))
    groups = netlink.encode_attr(others.NETLINK_DIAG_GROUPS, struct.pack("=I", 0x11))
    nl_kernel = others._NMSG.pack(16, 3, 0, 7, 0, 0, 0, 1234, 99) + mem
    nl_user = others._NMSG.pack(16, 3, 4, 1, 0xFFFFFFFF, 42, 5, 1235, 100) + groups
    data = _msg(netlink.SOCK_DIAG_BY_FAMILY, nl_kernel) + _msg(netlink.SOCK_DIAG_BY_FAMILY, nl_user) + _DONE
    b, done = others.decode(data, "nl")
    assert done and b.n == 2 and b.table == "nl"
    assert (b.protocol, b.state, b.portid, b.dst_portid, b.dst_group, b.inode, b.cookie) == (
        [0, 4], [7, 1], [0, -1], [0, 42], [0, 5], [1234, 1235], [99, 100])
    assert (b.rqueue, b.wqueue, b.groups) == ([5, 0], [7, 0], [None, 0x11])
    assert b.skmem[0] == (5, 200, 7, 300, 0, 0, 0, 0, 0) and b.skmem[1] is None
    r = others.records(b)
    assert [(s.netid, s.local, s.peer, s.inode, s.protocol, s.recv_q, s.groups) for s in r] == [
        ("nl", ("0", 0), ("", 0), 1234, 0, 5, None), ("nl", ("4", -1), ("5", 42), 1235, 4, 0, 0x11)]
    assert r[0].skmem is not None and r[0].skmem.rcvbuf == 200
    assert others.records(b.select([False, True])) == r[1:]

    info = netlink.encode_attr(others.PACKET_DIAG_INFO, struct.pack("=6I", 3, 2, 0, 9, 0, 1))
    uid = netlink.encode_attr(others.PACKET_DIAG_UID, struct.pack("=I", 1000))
    filt = netlink.encode_attr(others.PACKET_DIAG_FILTER, struct.pack("=HBBI", 6, 0, 0, 0xFFFF))
    pkt = others._PMSG.pack(17, 3, 0x0003, 777, 5) + info + uid + filt
    dgr = others._PMSG.pack(17, 2, 0x0800, 778, 6)
    b, done = others.decode(_msg(netlink.SOCK_DIAG_BY_FAMILY, pkt) + _msg(netlink.SOCK_DIAG_BY_FAMILY, dgr), "packet")
    assert not done and b.n == 2
    assert (b.type, b.protocol, b.inode, b.ifindex, b.uid, b.packet_info, b.bpf) == (
        [3, 2], [3, 0x0800], [777, 778], [3, 0], [1000, None], [(2, 9, 1), None], [((6, 0, 0, 0xFFFF),), None])
    assert [(s.netid, s.local.port, s.ifindex, s.uid, s.protocol) for s in others.records(b)] == [
        ("p_raw", 3, 3, 1000, 3), ("p_dgr", 0, 0, None, 0x0800)]
    for table, raw in (("nl", nl_user), ("packet", pkt)):
        with pytest.raises(DecodeError):
            others.decode(_msg(netlink.SOCK_DIAG_BY_FAMILY, raw[:10]), table)


def test_netlink_and_packet_cells_from_batches_match_the_records_cells() -> None:
    """The table's rows of a netlink or packet batch are the cells of its records (one code path
    for the texts: kernel, unbound, connected peers, ethertypes, interfaces), numeric or not."""
    from sockscope.render.table import CellMaker, TableOptions

    nl_rows = [others._NMSG.pack(16, 3, p, st, pid, dst, grp, 1000 + i, i)
               for i, (p, st, pid, dst, grp) in enumerate([(0, 7, 0, 0, 0), (4, 1, 0xFFFFFFFF, 42, 5),
                                                          (9, 7, 1, 0, 0), (200, 7, 77, 0, 0)])]
    pkt_rows = [others._PMSG.pack(17, t, num, 2000 + i, i) for i, (t, num) in enumerate([(3, 3), (2, 0x0800),
                                                                                        (3, 0x88CC), (2, 4242)])]
    for table, rows in (("nl", nl_rows), ("packet", pkt_rows)):
        b, _ = others.decode(b"".join(_msg(netlink.SOCK_DIAG_BY_FAMILY, r) for r in rows), table)
        for numeric in (False, True):
            maker = CellMaker(TableOptions(numeric=numeric))
            assert maker.other_cells(b) == [maker.cells(s) for s in others.records(b)]


def _ulp_attr(name: bytes, tls: dict[int, bytes] | None = None, sub: dict[int, bytes] | None = None) -> bytes:
    nested = netlink.encode_attr(1, name + b"\0")
    if tls is not None:
        nested += netlink.encode_attr(2, b"".join(netlink.encode_attr(t, v) for t, v in tls.items()))
    if sub is not None:
        nested += netlink.encode_attr(3, b"".join(netlink.encode_attr(t, v) for t, v in sub.items()))
    return netlink.encode_attr(layout.INET_DIAG_ULP_INFO, nested)


def _md5_attr(*keys: tuple[int, int, bytes, bytes]) -> bytes:
    return netlink.encode_attr(layout.INET_DIAG_MD5SIG, b"".join(
        struct.pack("=BBH16s80s", fam, plen, len(key), addr.ljust(16, b"\0"), key) for fam, plen, addr, key in keys))


def test_md5_keys_and_upper_layer_protocol_read_on_every_path_and_written_as_ss_61() -> None:
    """ss -i ends a TCP socket's text with its MD5 keys and its upper layer protocol (kTLS, an MPTCP
    subflow): the columnar -i path reads them where a datagram's layout has them (every message
    alike, a framed datagram length by length, the walk), each row as the record path reads it,
    and writes them as ss 6.1's tcp_show_info does."""
    from sockscope.render import tcp_info as tcp_info_text

    def u16(v: int) -> bytes:
        return v.to_bytes(2, sys.byteorder)

    def u32(v: int) -> bytes:
        return v.to_bytes(4, sys.byteorder)

    tls = _ulp_attr(b"tls", {1: u16(0x0304), 2: u16(52), 3: u16(2), 4: u16(3), 5: b""})
    tls12 = _ulp_attr(b"tls", {1: u16(0x0303), 2: u16(53), 3: u16(9), 4: u16(1)})
    sub = _ulp_attr(b"mptcp", sub={8: u32(0b11000011), 1: u32(0), 2: u32(0x107CFC3A), 9: b"\0", 10: b"\0",
                                   4: (0x53A11C9F71AADA23).to_bytes(8, sys.byteorder), 5: u32(1), 6: u32(0x277B480),
                                   7: u16(1000)})
    md5 = _md5_attr((2, 32, bytes([127, 0, 0, 2]), b"secret"), (10, 64, _LO6, b"a b,c\\\x01"))
    want = {
        tls: " tcp-ulp-tls version: 1.3 cipher: aes-gcm-256 rxconf: hw txconf: sw zc_ro_tx",
        tls12: " tcp-ulp-tls version: 1.2 rxconf: none txconf: unknown(9)",
        sub: " tcp-ulp-mptcp flags:Mmec token:0000(id:0)/107cfc3a(id:0) seq:53a11c9f71aada23 sfseq:1 ssnoff:277b480"
             " maplen:3e8",
        md5: " md5keys:127.0.0.2/32=secret,::1/64=a\\040b\\054c\\134\\001",
        md5 + sub: " md5keys:127.0.0.2/32=secret,::1/64=a\\040b\\054c\\134\\001 tcp-ulp-mptcp flags:Mmec"
                   " token:0000(id:0)/107cfc3a(id:0) seq:53a11c9f71aada23 sfseq:1 ssnoff:277b480 maplen:3e8",
    }
    info = netlink.encode_attr(layout.INET_DIAG_INFO, bytes(range(104)))

    def full(extra: bytes, port: int) -> bytes:
        return _inet_msg(2, 1, port, 443, _LO4, _LO4, port, _SHUTDOWN + info + extra)

    mini = _inet_msg(2, 6, 1, 2, _LO4, _LO4, 0)
    for extra, text in want.items():
        for msgs in ([full(extra, p) for p in range(1, 6)],  # alike: read column by column
                     [full(extra, 1), mini, full(extra, 2), full(b"", 3), mini, full(extra, 4)]):  # framed
            b, _done = inet.decode(b"".join(msgs) + _DONE, info=True)
            assert b.info is not None
            tails = b.info[4]
            walked: tuple[list, ...] = tuple([None] * b.n for _ in range(5))
            inet_attrs._walk_info(b, range(b.n), walked)
            assert tails == walked[4]
            records = inet.records(b, "tcp", details=True)
            assert [None if r.md5keys is None and r.ulp is None else (r.md5keys, r.ulp) for r in records] == tails
            texts = [tcp_info_text.extras_text(x) for x in tails]
            assert texts == [text if m is not mini and extra in m else "" for m in msgs]
    # an MPTCP socket's INFO is a struct mptcp_info (here a short one, an older kernel's: zero-padded)
    mi = struct.pack("=6B2xIIQQQ", 1, 0, 0, 2, 0, 0, 2, 0x424B1C7F, 0x53A11C9F71AADA23, 0x53A11C9F71AADA23, 0)
    got = inet_attrs.mptcp_info(memoryview(mi))
    assert tcp_info_text.mptcp_text(got) == (" subflows:1 subflows_max:2 remote_key token:424b1c7f"
                                              " write_seq:53a11c9f71aada23 snd_una:53a11c9f71aada23")
