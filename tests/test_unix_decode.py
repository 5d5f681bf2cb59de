"""The UNIX decoder's two strategies agree: the tail strategy (kernel/unix._by_tail: the
datagram split at the dump's constant header, heads and tails read column at once, every layout
assumption checked in lanes) and the general one (the walk over the lengths, then messages
grouped by length).  Real captures, synthetic datagrams of every layout the kernel writes, and
datagrams made to mislead the tail strategy (separators and attribute headers inside names,
lengths that lie, flagged or duplicated attributes …): each decodes the same by both, column by
column, or raises the same error; the tail strategy must also be the one that reads the kernel's
own datagrams (else it would be dead code)."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import textwrap
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockscope.errors import DecodeError, NetlinkError
from sockscope.kernel import netlink, unix, unix_tail

COLUMNS = ("type", "state", "inode", "cookie", "name", "peer", "rqueue", "wqueue", "uid")
SEQ, PID = netlink.DUMP_SEQ, 4242  # (the sequence number of every request sockscope sends)

# Sockets of every kind in a private network namespace (UNIX sockets are per namespace): names
# of every length (paths, abstract names with NULs inside), pairs (peers), listeners with
# accepted and pending connections, unread data (queues), then the raw unix_diag dump (hex).
_CAPTURE = textwrap.dedent(
    r"""
    import json, os, socket, sys
    from sockscope.kernel import netlink, transport, unix
    keep = []
    d = sys.argv[1]  # the fixture's directory (it removes it, also on failure)
    for i in range(60):  # pairs of each type
        for t in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
            a, b = socket.socketpair(socket.AF_UNIX, t)
            if i % 7 == 0:
                a.send(b"x" * (i + 1))
            keep += (a, b)
    for n in range(1, 80):  # paths of many lengths (the kernel counts a trailing NUL)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(os.path.join(d, "p" * n)[:107])
        keep.append(s)
    for n in range(1, 40):  # abstract names, some with NULs inside
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(b"\0" + (b"a\0b" * n)[:n])
        keep.append(s)
    for i in range(8):  # listeners: accepted connections carry the name, pending ones wait
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(os.path.join(d, f"listen-{i}" + "-" * i)); ls.listen(16)
        for _ in range(3):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.connect(ls.getsockname())
            keep.append(c)
        a, _ = ls.accept(); a.send(b"y" * 10)
        keep += (ls, a)
    dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); dg.bind(os.path.join(d, "dgram-server"))
    for i in range(5):  # connected datagram clients, unbound and bound
        c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if i % 2:
            c.bind(os.path.join(d, f"client-{i}"))
        c.connect(dg.getsockname()); c.send(b"z" * 3)
        keep.append(c)
    keep.append(dg)
    out = {}
    shows = (("default", unix.DEFAULT_SHOW), ("uid", unix.DEFAULT_SHOW | unix.UDIAG_SHOW_UID),
             ("exporter", unix.UDIAG_SHOW_NAME | unix.UDIAG_SHOW_RQLEN), ("names", unix.UDIAG_SHOW_NAME),
             ("mem", unix.DEFAULT_SHOW | unix.UDIAG_SHOW_MEMINFO),
             ("nopeer", unix.DEFAULT_SHOW & ~unix.UDIAG_SHOW_PEER),
             ("details", unix.DEFAULT_SHOW | unix.UDIAG_SHOW_VFS | unix.UDIAG_SHOW_ICONS))
    for name, show in shows:
        grams = out[name] = []
        def take(b, grams=grams):
            grams.append(b.hex())
            return any(t == netlink.NLMSG_DONE for t, _f, _p in netlink.iter_messages(b))
        transport.dump(unix.encode_request(0xfff, show), take, "x")
    json.dump(out, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def capture() -> dict[str, list[bytes]]:
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="ss-unix-")
    try:
        proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _CAPTURE, d], capture_output=True, text=True,
                              timeout=120)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    return {k: [bytes.fromhex(h) for h in v] for k, v in json.loads(proc.stdout).items()}


def _general(data: bytes) -> Any:
    """:func:`_outcome` of the general strategy alone."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(unix, "_by_tail", lambda raw: None)
        return _outcome(lambda: unix.decode(data))


def _outcome(fn: Callable[[], Any]) -> Any:
    """What decoding gives: the columns, the messages' bytes and the end flag; or the error."""
    try:
        b, done = fn()
    except (DecodeError, NetlinkError) as exc:
        return type(exc), str(exc)
    return ({c: getattr(b, c) for c in COLUMNS}, [bytes(b.attrs(i)) for i in range(b.n)], b.n, done)


def _agree(data: bytes) -> Any:
    got = _outcome(lambda: unix.decode(data))
    want = _general(data)
    if isinstance(want[0], dict):
        for c in COLUMNS:
            assert got[0][c] == want[0][c], c
    assert got == want
    return got


def _fast(data: bytes) -> bool:
    return unix._by_tail(data) is not None


# --- synthetic datagrams, as the kernel writes them ---------------------------------------------

def _attr(atype: int, payload: bytes) -> bytes:
    return netlink.encode_attr(atype, payload)


def _msg(stype: int, state: int, ino: int, cookie: int, attrs: bytes, seq: int = SEQ, flags: int = 2,
         mtype: int = netlink.SOCK_DIAG_BY_FAMILY) -> bytes:
    return netlink.encode_message(mtype, flags, seq, struct.pack("=BBBxIQ", 1, stype, state, ino, cookie) + attrs,
                                  pid=PID)


def _sock(ino: int, name: bytes | None = None, peer: int | None = None, rq: tuple[int, int] = (0, 0),
          uid: int | None = 0, stype: int = 1, state: int = 1, cookie: int | None = None, show: str = "default",
          vfs: bool = False, icons: tuple[int, ...] | None = None) -> bytes:
    """One message as the kernel's sk_diag_fill writes it for ``show`` (``vfs``, ``icons``: a path's
    VFS attribute, a listener's ICONS with those connections waiting)."""
    attrs = b""
    if name is not None:
        attrs += _attr(unix.UNIX_DIAG_NAME, name)
    if vfs:
        attrs += _attr(unix.UNIX_DIAG_VFS, struct.pack("=II", ino, 64769))
    if peer is not None and show not in ("exporter", "names"):
        attrs += _attr(unix.UNIX_DIAG_PEER, struct.pack("=I", peer))
    if icons is not None:
        attrs += _attr(unix.UNIX_DIAG_ICONS, struct.pack(f"={len(icons)}I", *icons))
    if show != "names":
        attrs += _attr(unix.UNIX_DIAG_RQLEN, struct.pack("=II", *rq))
    if show == "mem":
        attrs += _attr(unix.UNIX_DIAG_MEMINFO, struct.pack("=9I", *range(9)))
    attrs += _attr(unix.UNIX_DIAG_SHUTDOWN, bytes([ino % 4]))
    if uid is not None and show in ("uid", "mem"):
        attrs += _attr(unix.UNIX_DIAG_UID, struct.pack("=I", uid))
    return _msg(stype, state, ino, ino * 3 + 1 if cookie is None else cookie, attrs)


def _population(rng: random.Random, n: int, show: str = "default") -> bytes:
    out = []
    for _ in range(n):
        ino = rng.randrange(1, 1 << 32)
        kind = rng.randrange(6)
        name = None
        if kind in (1, 2):
            name = b"/run/" + bytes(rng.choice(b"abcxyz/._-") for _ in range(rng.randrange(0, 100))) + b"\0"
        elif kind == 3:
            name = b"\0" + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 107)))
        elif kind == 4:
            name = b""  # an empty name attribute
        peer = rng.randrange(1 << 32) if rng.random() < 0.6 else None
        # -e's: a VFS where the name is a path, an empty ICONS where the socket listens (no peer then)
        vfs = show == "details" and kind in (1, 2)
        icons = () if show == "details" and kind in (1, 2, 3) and rng.random() < 0.3 else None
        out.append(_sock(ino, name, None if icons is not None else peer,
                         (rng.randrange(3) * rng.randrange(1 << 31), rng.randrange(200)),
                         rng.choice((0, 1000, 65534, (1 << 32) - 1)), rng.choice((1, 2, 5)), rng.randrange(1, 12),
                         rng.choice((ino, 0, 1 << 32, (1 << 64) - 1, rng.randrange(1 << 64))), show, vfs, icons))
    return b"".join(out)


def test_the_kernels_datagrams_take_the_tail_strategy_and_agree(capture: dict[str, list[bytes]]) -> None:
    for show in ("default", "uid", "exporter", "names", "mem", "nopeer", "details"):
        grams = capture[show]
        assert len(grams) >= 2
        names = set()
        for data in grams:
            got = _agree(data)
            if isinstance(got[0], dict):
                names.update(got[0]["name"])
        data = [g for g in grams if len(g) > 20]  # all but the dump's end
        fast = sum(map(_fast, data))
        if show != "details":  # (VFS and ICONS are sent by some sockets only: the general strategy reads them)
            assert fast == len(data), show
        assert any(n.startswith(b"\0") and b"\0" in n[1:] for n in names) and any(n.endswith(b"\0") for n in names)
    b = _dumped(capture["default"])
    assert any(b["rqueue"]) and any(b["peer"]) and set(b["type"]) == {1, 2, 5} and set(b["uid"]) == {None}
    with_uid = _dumped(capture["uid"])
    assert with_uid["inode"] == b["inode"] and set(with_uid["uid"]) == {0}
    names = _dumped(capture["names"])  # (psutil's dump: names, no queues)
    assert names["name"] == b["name"] and not any(names["rqueue"]) and not any(names["peer"])


def _dumped(grams: list[bytes]) -> dict[str, list[object]]:
    """The columns of a dump's datagrams, each datagram's batch read in turn (as query.batches gives them)."""
    parts = [unix.decode(g)[0] for g in grams]
    return {name: [v for p in parts for v in getattr(p, name)] for name in unix._COLUMNS}


@pytest.mark.parametrize("show", ["default", "uid", "exporter", "names", "mem", "old", "details"])
def test_synthetic_datagrams_of_every_layout(show: str) -> None:
    rng = random.Random(show)
    for n in (1, 2, 3, 50, 400):
        data = _population(rng, n, show)
        assert _fast(data), (show, n)
        _agree(data)
    # names of every length (every alignment), with and without a peer
    data = b"".join(_sock(i + 1, b"\0" + b"n" * i, i if i % 2 else None) for i in range(110))
    assert _fast(data)
    _agree(data)
    # few of the sockets named (the usual: the names are then put in place at their rows), or half of them,
    # empty names among them
    for every in (2, 3, 7):
        data = b"".join(_sock(i + 1, None if i % every else (b"/run/s" + b"x" * (i % 9) if i % 5 else b""),
                              i + 9 if i % 2 else None, show=show) for i in range(120))
        assert _fast(data), (show, every)
        _agree(data)


def test_tails_by_format_and_by_slices_agree(capture: dict[str, list[bytes]]) -> None:
    """by_tail reads the messages' tails from one ``%`` format of them all (each right-aligned in a
    field as wide as the widest), or, past netlink.FORMAT_MAX bytes, from their slices joined:
    the two give the same columns and details, on the kernel's datagrams and on made ones (names of
    every length, so the fields' widths vary)."""
    rng = random.Random(7)
    grams = [g for show in ("default", "mem", "details", "names") for g in capture[show] if len(g) > 20]
    grams += [_population(rng, n, show) for n in (1, 3, 120) for show in ("default", "mem", "details")]
    grams.append(b"".join(_sock(i + 1, b"\0" + b"n" * (i % 109), i if i % 2 else None, show="mem")
                          for i in range(300)))

    def read(data: bytes) -> Any:
        got = unix_tail.by_tail(data)
        if got is None:
            return None
        cols, _mv, _starts, lens, more = got
        out = [cols, lens]
        for name in ("cookie", "peer", "wqueue", "uid", "shutdown", "skmem", "unix_vfs", "unix_pending"):
            try:
                out.append(more(name))
            except AttributeError:  # (a tail of other kinds: unix_details reads the bytes)
                out.append(AttributeError)
        return out

    taken = 0
    for data in grams:
        by_format = read(data)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(netlink, "FORMAT_MAX", 0)
            by_slices = read(data)
        assert by_format == by_slices
        taken += by_format is not None
    assert taken > len(grams) // 2


def test_values_that_look_like_headers() -> None:
    """Inodes, cookies, queues and uids whose bytes are attribute headers, the port id or the
    sequence number the datagram is split at.  The latter (a socket's value equal to it, one in 2**32)
    splits a message in two: the checks refuse the split and the general strategy reads it."""
    words = [struct.unpack("=I", netlink.NLATTR.pack(alen, t))[0] for alen, t in
             ((8, unix.UNIX_DIAG_PEER), (12, unix.UNIX_DIAG_RQLEN), (5, unix.UNIX_DIAG_SHUTDOWN),
              (8, unix.UNIX_DIAG_UID), (20, 2))] + [PID, PID << 16 & 0xFFFFFFFF]

    def msgs(w: int) -> list[bytes]:
        return [_sock(w, None, w, (w, w), w, cookie=w | w << 32), _sock(w, b"\0x", None, cookie=w),
                _sock(w, None, None, (w, 0), cookie=w << 32)]

    data = b"".join(m for w in words for m in msgs(w))
    assert _fast(data)
    _agree(data)
    for seq_like in (msgs(SEQ), msgs(SEQ)[1:2], [_sock(1, None, None, (2, 0), cookie=SEQ << 32)]):
        data = b"".join(msgs(words[0]) + seq_like + msgs(words[1]))
        assert not _fast(data)
        _agree(data)


def _sep() -> bytes:
    return struct.pack("=HHII", netlink.SOCK_DIAG_BY_FAMILY, 2, SEQ, PID)


def _misleading() -> list[bytes]:
    """Datagrams that a careless tail strategy would misread."""
    sep = _sep()
    peer_hdr = netlink.NLATTR.pack(8, unix.UNIX_DIAG_PEER)
    rq = _attr(unix.UNIX_DIAG_RQLEN, bytes(8))
    ok = _sock(10, b"/ok\0", 11)
    cases = [
        # the separator inside a name (one message more for the split)
        ok + _sock(12, b"/a" + sep + b"\0", 13) + ok,
        ok + _sock(12, b"\0" + sep, None) + ok,
        # a name that ends like a peer attribute: no peer, yet "(8, PEER) + inode" where a peer would be
        ok + _sock(14, b"/xxxxxxx" + peer_hdr + struct.pack("=I", 99), None) + ok,
        ok + _sock(14, b"/" + peer_hdr + struct.pack("=I", 99) + b"\0\0\0", None) + ok,
        # a cookie that reads as a peer header in a message without name and peer
        ok + _sock(15, None, None, cookie=struct.unpack("=I", peer_hdr)[0]) + ok,
        ok + _sock(15, None, None, cookie=struct.unpack("=Q", peer_hdr + b"\x07\0\0\0")[0]) + ok,
        # a name that ends like the fixed tail
        ok + _sock(16, b"/" + rq + b"\0\0\0", None) + ok,
        # middles of 4, 12, 16 and 20 bytes that are not (VFS and) an empty ICONS or a peer: connections
        # waiting (an ICONS of 8 and 12 bytes), a name ending like a VFS, unknown attributes
        ok + _sock(23, b"/l\0", None, icons=(5,)) + _sock(24, b"/m\0", None, vfs=True, icons=()) + ok,
        ok + _sock(23, b"/l\0", None, icons=(5, 6)) + _sock(24, b"/m\0", None, vfs=True) + ok,
        ok + _sock(23, b"/l\0", None, vfs=True, icons=(5,)) + _sock(24, None, 7, icons=()) + ok,
        ok + _sock(25, b"/v" + netlink.NLATTR.pack(12, unix.UNIX_DIAG_VFS) + bytes(8), None) + ok,
        ok + _msg(1, 1, 26, 0, _attr(0, b"/n\0") + _attr(9, b"") + rq + _attr(6, b"\0")) + ok,
        ok + _msg(1, 1, 26, 0, _attr(0, b"/n\0") + _attr(9, bytes(8)) + _attr(3, b"") + rq + _attr(6, b"\0")) + ok,
        ok + _msg(1, 1, 26, 0, _attr(0, b"/n\0") + _attr(1, bytes(8)) + _attr(9, bytes(4)) + rq + _attr(6, b"\0")) + ok,
        # the dump's end, an error, a NOOP, another type among them
        ok + ok + netlink.encode_message(netlink.NLMSG_DONE, 2, SEQ, bytes(4), pid=PID),
        ok + netlink.encode_message(netlink.NLMSG_NOOP, 2, SEQ, bytes(4), pid=PID) + ok,
        ok + netlink.encode_message(netlink.NLMSG_ERROR, 0, SEQ, struct.pack("=i", -13) + bytes(16), pid=PID),
        ok + _msg(1, 1, 17, 0, _attr(unix.UNIX_DIAG_RQLEN, bytes(8)), mtype=19) + ok,
        # another sequence number or flags (NLM_F_DUMP_INTR) in the middle
        ok + _msg(1, 1, 18, 0, _attr(unix.UNIX_DIAG_RQLEN, bytes(8)) + _attr(6, b"\0") + _attr(7, bytes(4)),
                  seq=SEQ + 1) + ok,
        ok + _msg(1, 1, 18, 0, _attr(unix.UNIX_DIAG_RQLEN, bytes(8)) + _attr(6, b"\0") + _attr(7, bytes(4)),
                  flags=0x12) + ok,
        # attributes in another order, twice, flagged, missing, too short, unknown
        ok + _msg(1, 1, 19, 0, _attr(6, b"\0") + _attr(4, bytes(8)) + _attr(7, bytes(4))) + ok,
        ok + _msg(1, 1, 19, 0, _attr(4, bytes(8)) + _attr(4, b"\1" * 8) + _attr(6, b"\0") + _attr(7, bytes(4))) + ok,
        ok + _msg(1, 1, 19, 0, _attr(0x8004, b"\5" * 8) + _attr(6, b"\0") + _attr(7, bytes(4))) + ok,
        _msg(1, 1, 19, 0, _attr(0x8004, b"\5" * 8) + _attr(6, b"\0") + _attr(7, bytes(4))) * 3,
        _msg(1, 1, 19, 0, _attr(4, b"\5" * 8) + _attr(6, b"\0") + _attr(0x4007, b"\6" * 4)) * 3,
        _msg(1, 1, 19, 0, _attr(0x4000, b"/f\0") + _attr(4, bytes(8)) + _attr(6, b"\0") + _attr(7, bytes(4))) + ok,
        ok + _msg(1, 1, 19, 0, _attr(4, bytes(8)) + _attr(6, b"\0")) + ok,
        ok + _msg(1, 1, 19, 0, _attr(4, bytes(4)) + _attr(6, b"\0") + _attr(7, bytes(4))) + ok,
        _msg(1, 1, 19, 0, _attr(4, bytes(4)) + _attr(6, b"\0") + _attr(7, bytes(4))) * 2,
        _msg(1, 1, 19, 0, _attr(4, bytes(8)) + _attr(6, b"\0") + _attr(7, bytes(2))) * 2,
        _msg(1, 1, 19, 0, _attr(2, bytes(8)) + _attr(2, bytes(8)) + _attr(4, bytes(8)) + _attr(7, bytes(4))) * 2,
        ok + _msg(1, 1, 19, 0, _attr(0, b"/n\0") + _attr(0, b"/m\0") + _attr(4, bytes(8)) + _attr(6, b"\0")
                  + _attr(7, bytes(4))) + ok,
        ok + _msg(1, 1, 19, 0, _attr(9, bytes(12)) + _attr(4, bytes(8)) + _attr(6, b"\0") + _attr(7, bytes(4))) + ok,
        ok + _msg(1, 1, 19, 0, _attr(0, b"/n\0") + _attr(1, bytes(8)) + _attr(4, bytes(8)) + _attr(6, b"\0")
                  + _attr(7, bytes(4))) + ok,
        # a name attribute shorter than its header, or no attributes at all
        ok + _msg(1, 1, 20, 0, netlink.NLATTR.pack(2, 0) + rq + _attr(6, b"\0") + _attr(7, bytes(4))) + ok,
        ok + _msg(1, 1, 20, 0, netlink.NLATTR.pack(0, 0) + rq + _attr(6, b"\0") + _attr(7, bytes(4))) + ok,
        ok + _msg(1, 1, 20, 0, netlink.NLATTR.pack(3, 0) + peer_hdr + bytes(4) + rq + _attr(6, b"\0")
                  + _attr(7, bytes(4))) + ok,
        _msg(1, 1, 21, 0, b"") * 3,
        ok + _msg(1, 1, 21, 0, b"") + ok,
        # trailing bytes, a cut message
        ok + ok + b"\0\0\0\0",
        ok + ok + b"\0\0",
        (ok + ok)[:-4],
        (ok + ok)[:-1],
        ok[:40],
    ]
    # a message whose length lies (the walk frames the datagram otherwise than the split)
    bad = bytearray(ok + ok + ok)
    struct.pack_into("=I", bad, len(ok), len(ok) + 8)
    cases.append(bytes(bad))
    struct.pack_into("=I", bad, len(ok), len(ok) - 8)
    cases.append(bytes(bad))
    odd = bytearray(_sock(22, b"/abc", None) + ok)  # a length not a multiple of 4
    struct.pack_into("=I", odd, 0, struct.unpack_from("=I", odd)[0] - 1)
    cases.append(bytes(odd))
    return cases


def test_misleading_datagrams_decode_as_the_general_strategy_says() -> None:
    for data in _misleading():
        _agree(data)
    # what the misleading names and cookies hide is read as what it is
    sep = _sep()
    for data, name, peer in zip(_misleading()[:2], (b"/a" + sep + b"\0", b"\0" + sep), (13, 0)):
        b, _ = unix.decode(data)
        assert b.n == 3 and b.name[1] == name and b.peer[1] == peer
    for data in _misleading()[2:7]:
        b, _ = unix.decode(data)
        assert b.n == 3 and b.peer == [11, 0, 11] and b.rqueue[1] == 0, data
    assert _fast(_sock(10, b"/ok\0", 11) * 3)
    # -e's middles read by the tail strategy: a VFS, an empty ICONS, both, a VFS and a peer, among plain ones
    mixed = (_sock(30, b"/ok\0", 31, vfs=True) + _sock(32, b"\0abstract", None, icons=())
             + _sock(33, b"/path\0", None, vfs=True, icons=()) + _sock(34, None, 35)
             + _sock(36, b"/x\0", None, vfs=True))
    assert _fast(mixed) and _fast(mixed * 5)
    _agree(mixed * 5)


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 1 << 32), n=st.integers(1, 30),
       show=st.sampled_from(["default", "uid", "exporter", "names", "mem", "old", "details"]),
       edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=4),
       words=st.lists(st.tuples(st.integers(0, 1 << 16), st.sampled_from([0, 4, 5, 8, 12, 0x20004, 0x40000c, 0x80007,
                                                                          0x5, 0xFFFFFFFF, 1 << 16])), max_size=3),
       cut=st.integers(0, 64))
def test_fuzzed_datagrams_agree(seed: int, n: int, show: str, edits: list[tuple[int, int]],
                                words: list[tuple[int, int]], cut: int) -> None:
    """Real-looking datagrams with bytes and aligned words changed, and cut short: both strategies
    give the same columns, or the same error."""
    data = bytearray(_population(random.Random(seed), n, show))
    for pos, value in edits:
        data[pos % len(data)] = value
    for pos, value in words:
        at = (pos % len(data)) & ~3
        if at + 4 <= len(data):
            struct.pack_into("=I", data, at, value)
    if cut % 3 == 0:
        data = data[: max(0, len(data) - cut)]
    _agree(bytes(data))


def test_select_of_tail_batches(capture: dict[str, list[bytes]]) -> None:
    """Batches of the tail strategy selected: the rows and each row's attributes as the datagrams hold
    them, and their records."""
    grams = capture["default"]
    parts = [unix.decode(g)[0] for g in grams]
    assert sum(p.n for p in parts) > 100
    for p in parts:
        keep = [i % 3 != 1 for i in range(p.n)]
        picked = p.select(keep)
        kept = [i for i, k in zip(range(p.n), keep) if k]
        assert picked.n == len(kept)
        for j, i in enumerate(kept):
            assert bytes(picked.attrs(j)) == bytes(p.attrs(i))
            assert picked.inode[j] == p.inode[i] and picked.name[j] == p.name[i]
        recs = unix.records(p, details=True)
        assert [r.inode for r in recs] == p.inode and all(r.shutdown is not None for r in recs)


def test_columns_made_when_asked_for(capture: dict[str, list[bytes]]) -> None:
    """The columns the tail strategy leaves for later (cookie, peer, wqueue, uid) are made when
    first read: of one datagram's batch, and of a selection (before and after the batch's own are
    read); each as the general strategy reads it."""
    grams = [g for g in capture["uid"] if _fast(g)]
    assert len(grams) >= 2
    later = sorted(unix._LATER)
    for g in grams:
        general = _general(g)[0]
        b = unix.decode(g)[0]
        keep = [i % 2 == 0 for i in range(b.n)]
        picked = b.select(keep)  # none of the batch's later columns read yet
        for name in later:
            assert getattr(picked, name) == [v for v, k in zip(general[name], keep) if k]
            assert getattr(b, name) == general[name]
        again = unix.decode(g)[0]
        for name in later:  # the batch's own read first, then the selection's
            assert getattr(again, name) == general[name]
            assert getattr(again.select(keep), name) == [v for v, k in zip(general[name], keep) if k]


def test_unix_names_are_unix_name() -> None:
    raws = [b"", b"\0", b"\0\0", b"\0abc", b"\0a\0b\0", b"/run/x\0", b"/run/x", b"/a\0b\0", b"/\xff\xfe\0", b"\0\xff",
            bytes(range(1, 256)), b"\0" + bytes(range(256)), "/tmp/é".encode() + b"\0"]
    assert unix.unix_names(raws) == [unix.unix_name(r) for r in raws]


_TRICKY = [0, 0x40, 0x61, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x80, 0xFF, 0x0A]  # NUL, '@', UTF-8's pieces
_NAME_BYTES = st.binary(max_size=12) | st.lists(st.sampled_from(_TRICKY), max_size=12).map(bytes)


@settings(max_examples=300, deadline=None)
@given(st.lists(_NAME_BYTES, max_size=8))
def test_unix_names_are_unix_name_on_any_bytes(raws: list[bytes]) -> None:
    """The names decoded joined (one decoding) are those decoded one by one, also where a name's
    bytes are no UTF-8: a NUL ends every broken sequence as the end of a name does."""
    assert unix.unix_names(raws) == [unix.unix_name(r) for r in raws]
