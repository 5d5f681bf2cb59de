"""``-r``'s names for the ports of RPC services, asked of rpcbind (render/rpcbind.py), against the real
ss: each scene runs in a private network namespace and a mount namespace of its own whose /run is a
fresh tmpfs, where tests/fixtures/rpcbind_scene.py serves a fake rpcbind at /run/rpcbind.sock (the
machine's /run, and any rpcbind it runs, are not touched).  Then the client's bounds, against
servers that lie, flood or say nothing (a UNIX socket in the test's own directory)."""

from __future__ import annotations

import json
import shlex
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import SOCKSCOPE
from nsutil import Netns

from sockscope.render import rpcbind

from fixtures import rpcbind_scene as scene  # (the reply's builders: the scene's rpcbind's own)

SCENE = Path(__file__).resolve().parent / "fixtures" / "rpcbind_scene.py"

#: (option set, what both must do): "same" rows, or "refused" (both exit non-zero)
SERVED = [
    ("-tulr", "same"), ("-tlr", "same"), ("-ulr", "same"), ("-tulrH", "same"), ("-tlrO", "same"),
    ("-tlr sport = :rpc.mountd", "same"), ("-tulr sport = :rpc.mountd", "same"),
    ("-tlr sport = :rpc.status", "same"), ("-tlr sport = :rpc.rquotad", "same"),
    ("-ulr sport = :rpc.rquotad", "same"), ("-tlr sport = :rpc.nfs_acl or sport = :rpc.portmapper", "same"),
    ("-tulr sport = :sunrpc", "same"), ("-4tlr", "same"), ("-6tlr", "same"), ("-Mtlr", "same"),
    ("-tul", "same"), ("-tulnr", "same"), ("-xlr", "same"), ("-xar", "same"), ("-lr", "same"),
    ("-xarp", "same"), ("-tlrp", "same"),
    ("-tulr sport = :rpc.rquotad", "refused"),  # TCP 875, UDP 876: ambiguous, as in ss
    ("-tlr sport = :rpc.nosuch", "refused"), ("-tlnr sport = :rpc.mountd", "refused"),  # (-n: rpcbind not asked)
    ("-tl sport = :rpc.mountd", "refused"),
]
ABSENT = [("-tulr", "same"), ("-xar", "same"), ("-xlr", "same"), ("-xarp", "same"),
          ("-tlr sport = :rpc.mountd", "refused")]


def _scene(mode: str, commands: list[list[list[str]]], *extra: str) -> list[list[list[Any]]]:
    """Run the scene in a namespace of its own; for each (ss argv, sockscope argv) the three runs
    (ss, sockscope, ss) as [status, stdout, stderr, seconds]."""
    netns = Netns()
    try:
        argv = netns.argv(["unshare", "-m", "--propagation", "private", "--", "sh", "-c",
                           'mount -t tmpfs tmpfs /run && exec "$0" "$@"',
                           sys.executable, str(SCENE), mode, json.dumps(commands), *extra])
        p = subprocess.run(argv, capture_output=True, text=True, errors="surrogateescape", timeout=600)
        assert p.returncode == 0, p.stderr
        return list(json.loads(p.stdout))
    finally:
        netns.delete()


def _pairs(sets: list[tuple[str, str]]) -> list[list[list[str]]]:
    return [[["ss", *shlex.split(s)], [*SOCKSCOPE, *shlex.split(s)]] for s, _ in sets]


def _rows(text: str) -> tuple[list[str], list[str]]:
    """The table's rows, whitespace collapsed, but netlink's and the lister's own socket to rpcbind
    (its inodes masked: a listing's own) and rpcbind's ends of these (left out)."""
    rows = [" ".join(line.split()) for line in text.splitlines() if line.strip()
            and not line.startswith("nl ")]  # (netlink's: the listers' own diag sockets, in flight)
    words = [r.split(" ") for r in rows]
    served = {w[5] for w in words if len(w) >= 8 and w[0] == "u_str" and w[1] == "ESTAB"
              and w[4] == "/run/rpcbind.sock"}
    kept, own = [], []
    for r, w in zip(rows, words):
        if len(w) >= 8 and w[0] == "u_str" and w[4] == "*" and (
                (w[1] == "ESTAB" and w[7] in served) or (w[1] == "UNCONN" and w[7] == "0")):
            own.append(" ".join(w[:5] + ["#", "*", "#" if w[7] != "0" else "0"] + w[8:]))
        elif not (len(w) >= 6 and w[0] == "u_str" and w[5] in served):
            kept.append(r)
    return kept, own


@pytest.fixture(scope="module")
def served() -> dict[str, list[list[Any]]]:
    return dict(zip((s for s, _ in SERVED), _scene("serve", _pairs(SERVED))))


def _same_as_ss(runs: list[list[Any]], options: str, expect: str) -> list[str]:
    """The runs (ss, sockscope, ss) agree as ``expect`` says; sockscope's own rows (see :func:`_rows`)."""
    ss1, ours, ss2 = runs
    assert "Traceback" not in ours[2], ours[2]
    if expect == "refused":
        assert ss1[0] != 0 and ss2[0] != 0, ss1
        assert ours[0] != 0 and ours[1] == "" and ours[2].startswith("sockscope: "), ours
        return []
    assert ss1[0] == ss2[0] == ours[0] == 0, (ss1[2], ours[2])
    want, got = _rows(ss1[1]), _rows(ours[1])
    assert want == _rows(ss2[1]), "the scene moved between the two runs of ss"
    assert got == want, f"{options}: ss (-) vs sockscope (+):\n" + "\n".join(
        [f"- {r}" for r in want[0] if r not in got[0]] + [f"+ {r}" for r in got[0] if r not in want[0]]
        + [f"own sockets: ss {want[1]}, sockscope {got[1]}"])
    return got[1]


@pytest.mark.parametrize("options,expect", SERVED, ids=[s for s, _ in SERVED])
def test_rpc_names_as_ss(served: dict[str, list[list[Any]]], options: str, expect: str) -> None:
    _same_as_ss(served[options], options, expect)


def test_the_scene_shows_what_it_is_for(served: dict[str, list[list[Any]]]) -> None:
    """The rows above hold what the comparison is about: rpcbind's names (the ephemeral range's too,
    the last of a port's registrations, an IPv6 registration's), /etc/services' where rpcbind names
    none, numbers where neither does; the lister's own connection to rpcbind among -x's rows."""
    text = served["-tulr"][1][1]
    for cell in ("*:rpc.portmapper", "0.0.0.0:rpc.mountd", "0.0.0.0:rpc.status", "0.0.0.0:rpc.nfs_acl",
                 "0.0.0.0:rpc.rquotad", "0.0.0.0:rpc.nlockmgr", "0.0.0.0:ssh", "0.0.0.0:5000", "0.0.0.0:mysql"):
        assert cell in text, cell
    assert "0.0.0.0:nfs " not in text
    plain = served["-tul"][1][1]
    assert "rpc." not in plain and "*:sunrpc" in plain and "0.0.0.0:nfs " in plain
    assert "rpc." not in served["-tulnr"][1][1]
    assert len(_rows(served["-xar"][1][1])[1]) == 1 and len(_rows(served["-xar"][0][1])[1]) == 1


@pytest.fixture(scope="module")
def absent() -> dict[str, list[list[Any]]]:
    return dict(zip((s for s, _ in ABSENT), _scene("absent", _pairs(ABSENT))))


@pytest.mark.parametrize("options,expect", ABSENT, ids=[s for s, _ in ABSENT])
def test_without_rpcbind_as_ss(absent: dict[str, list[list[Any]]], options: str, expect: str) -> None:
    """No rpcbind: no names of its, and ss's socket to it (unconnected) has its match in ours."""
    own = _same_as_ss(absent[options], options, expect)
    if options.startswith("-x"):
        assert len(own) == 1, own


def test_a_program_etc_rpc_does_not_name_leaves_its_port_numeric() -> None:
    """ss's name for it is memory it never set (here: empty, so the number); sockscope says the number,
    and does not fall back to /etc/services for that port (3306 is mysql's there)."""
    (runs,) = _scene("serve", [[["true"], [*SOCKSCOPE, "-tlr"]]], "--unknown")
    text = runs[1][1]
    assert runs[1][0] == 0 and "0.0.0.0:3306 " in text and "mysql" not in text, text
    assert "0.0.0.0:rpc.mountd" in text


def test_a_silent_rpcbind_costs_at_most_the_timeout() -> None:
    """rpcbind accepts and never answers: the listing waits TIMEOUT (ss: as long), then names the ports
    as without rpcbind."""
    (runs,) = _scene("silent", [[["true"], [*SOCKSCOPE, "-tlr"]]])
    status, out, err, seconds = runs[1]
    assert status == 0 and err == "", err
    assert rpcbind.TIMEOUT - 0.5 <= seconds <= rpcbind.TIMEOUT + 5, seconds
    assert "rpc." not in out and "0.0.0.0:mysql" in out and "*:sunrpc" in out


# ---------------------------------------------------------------------------------------------------
# The client alone, against servers of this test (a UNIX socket in its own directory)


_record, _entries = scene.record, scene.entries


def _accepted(xid: bytes = b"sscp") -> bytes:  # (the client's xid)
    return scene.accepted(xid)


GOOD = [(100005, 3, "tcp", "0.0.0.0.78.80", "superuser"), (100024, 1, "udp6", "::.156.64", "29")]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """``serve(handler)``: a UNIX listener in tmp_path whose one connection ``handler`` gets once
    the call has been read; its path."""
    threads: list[threading.Thread] = []
    listeners: list[socket.socket] = []
    kept = len(rpcbind._kept)

    def serve(handler: Callable[[socket.socket], None]) -> str:
        path = str(tmp_path / f"rpcbind-{len(listeners)}.sock")
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(path)
        lst.listen(1)
        listeners.append(lst)

        def run() -> None:
            conn, _ = lst.accept()
            with conn:
                call = conn.recv(44)
                assert struct.unpack(">11I", call)[4:7] == (100000, 4, 4)  # PMAPPROG, version 4, DUMP
                try:
                    handler(conn)
                except OSError:
                    pass

        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
        return path

    yield serve
    for s in rpcbind._kept[kept:]:  # (the client keeps its socket, as ss does: a server blocked on it goes)
        s.close()
    del rpcbind._kept[kept:]
    for lst in listeners:
        lst.close()
    for t in threads:
        t.join(timeout=10)


def test_a_reply_is_read_whole_and_named(server: Any) -> None:
    path = server(lambda c: c.sendall(_record(_accepted() + _entries(GOOD))))
    reg = rpcbind.ask(path, timeout=5)
    assert reg.names == {"tcp": {20048: "rpc.mountd"}, "udp": {40000: "rpc.status"}}
    assert reg.ports("rpc.mountd", "tcp") == [20048] and reg.ports("rpc.mountd", "udp") == []


def test_a_reply_in_fragments_is_joined(server: Any) -> None:
    body = _accepted() + _entries(GOOD)
    path = server(lambda c: [c.sendall(_record(body[:7], last=False)), time.sleep(0.05),
                             c.sendall(_record(body[7:30], last=False)), c.sendall(_record(body[30:]))])
    assert rpcbind.ask(path, timeout=5).names["tcp"] == {20048: "rpc.mountd"}


@pytest.mark.parametrize("reply", [
    _record(b"nope" + _accepted()[4:] + _entries(GOOD)),            # another call's xid
    _record(_accepted()[:8] + struct.pack(">I", 1) + bytes(12)),      # MSG_DENIED
    _record(_accepted()[:-4] + struct.pack(">I", 1)),                 # PROG_UNAVAIL
    _record(_accepted() + _entries(GOOD)[:-9]),                       # cut inside an entry
    _record(_accepted() + struct.pack(">IIII", 1, 100005, 3, 0xFFFFFFF0)),  # a string longer than the reply
    _record(_accepted() + _entries(GOOD), last=False),                # the record never ends
    struct.pack(">I", 0xFFFFFFFF),                                     # a 2 GiB fragment announced
    b"".join(_record(bytes(60000), last=False) for _ in range(20)),   # fragments past MAX_REPLY
    b"",                                                               # closed at once
], ids=["xid", "denied", "prog-unavail", "cut", "long-string", "no-end", "huge-fragment", "flood", "closed"])
def test_a_reply_not_whole_and_ours_names_nothing(server: Any, reply: bytes) -> None:
    path = server(lambda c: c.sendall(reply))
    started = time.monotonic()
    reg = rpcbind.ask(path, timeout=2)
    assert not reg and reg.names == {}
    assert time.monotonic() - started < 2.5


def test_too_many_registrations_name_nothing(server: Any) -> None:
    many = [(100005, 3, "tcp", "0.0.0.0.78.80", "")] * (rpcbind.MAX_ENTRIES + 1)
    path = server(lambda c: c.sendall(_record(_accepted() + _entries(many))))
    assert not rpcbind.ask(path, timeout=5)


def test_a_slow_drip_is_cut_at_the_timeout(server: Any) -> None:
    body = _record(_accepted() + _entries(GOOD))

    def drip(c: socket.socket) -> None:
        for i in range(len(body)):
            c.sendall(body[i:i + 1])
            time.sleep(0.1)

    path = server(drip)
    started = time.monotonic()
    assert not rpcbind.ask(path, timeout=1)
    assert time.monotonic() - started < 1.5


def test_no_rpcbind_keeps_an_unconnected_socket(tmp_path: Path) -> None:
    before = len(rpcbind._kept)
    assert not rpcbind.ask(str(tmp_path / "none.sock"))
    assert len(rpcbind._kept) == before + 1 and rpcbind._kept[-1].fileno() >= 0  # (as ss's: listed as its own)
    rpcbind._kept.pop().close()


@pytest.mark.parametrize("addr,port", [
    ("::.0.111", 111), ("0.0.0.0.78.80", 20048), ("0.0.0.0.1.300", 300), ("::.255.255", 65535),
    ("0.0.0.0. 8.1", 2049), ("::.0.111 tail", 111),
    ("127.0.0.1.0.111", None), ("::1.0.111", None), ("0.0.0.0.3", None), ("0.0.0.0.0.0", None),
    ("0.0.0.0.-1.5", None), ("::.256.0", None), ("0.0.0.0.1234567890.0", None), ("/run/rpcbind.sock", None),
    ("", None), ("::.+1.-0", 256), ("::.\t0.\n22", 22), ("::.0x1.0", None), ("::.0.", None), ("::.0", None),
    ("0.0.0.0.000000001.000000002", 258), ("::.0.1234567890", None), ("::.٣.1", None),
])
def test_wildcard_port_as_ss_reads_it(addr: str, port: int | None) -> None:
    assert rpcbind.wildcard_port(addr) == port


def test_etc_rpc_first_line_of_a_number_wins(tmp_path: Path) -> None:
    f = tmp_path / "rpc"
    f.write_text("# comment\nportmapper 100000 portmap sunrpc\nother 100000\n"
                 "mountd\t100005\tmount # trailing\nbad x100\nshort\n\nhuge 99999999999\n")
    assert rpcbind.load_rpc_names(str(f)) == {100000: "portmapper", 100005: "mountd"}
    assert rpcbind.load_rpc_names(str(tmp_path / "missing")) == {}


def test_registrations_as_ss_keeps_them() -> None:
    reg = rpcbind.Registrations(
        [(100003, "tcp", "0.0.0.0.8.1"), (100227, "tcp", "0.0.0.0.8.1"), (1, "tcp", "0.0.0.0.0.22"),
         (100005, "local", "/run/x"), (100005, "sctp", "0.0.0.0.0.9"), (100005, "udp", "127.0.0.1.0.7")],
        {100003: "nfs", 100227: "nfs_acl", 100005: "mountd", 7: "x" * 300})
    assert reg.names == {"tcp": {2049: "rpc.nfs_acl", 22: None}, "sctp": {9: "rpc.mountd"}}
    assert reg.ports("rpc.nfs", "tcp") == [2049] and reg.ports("rpc.nfs_acl", "tcp") == [2049]
    long = rpcbind.Registrations([(7, "tcp", "0.0.0.0.0.5")], {7: "x" * 300})
    assert long.names["tcp"][5] == "rpc." + "x" * 123
