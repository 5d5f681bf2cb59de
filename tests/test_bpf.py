"""The BPF task_file iterator (kernel/bpf.py) and the BTF reader (kernel/btf.py).

The codec parts (BTF walk, program assembly, output decoding) are checked on
the running kernel's own BTF and on made-up bytes; the iterator itself is
checked against the /proc walk it replaces, on sockets made here (a UNIX
socket pair, a dup, a forked copy holding them too), and in the places where
it must step aside: another pid namespace, no privileges, SOCKSCOPE_OWNERS=proc.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys

import pytest
from conftest import SOCKSCOPE
from nsutil import forked_copy
from hypothesis import given, settings
from hypothesis import strategies as st

from sockscope.errors import DecodeError
from sockscope.kernel import bpf, btf
from sockscope.kernel.bpf_check import plausible
from sockscope.owners.service import scan
from sockscope.owners.walk import any_socket_fd
from sockscope.processes import BackgroundOwners, OwnerMap
from sockscope.render.users import UsersText

VMLINUX = "/sys/kernel/btf/vmlinux"


@pytest.fixture(scope="module")
def kernel_btf() -> btf.BTF:
    with open(VMLINUX, "rb") as f:  # every kernel this project supports has BTF: no skip
        return btf.BTF(f.read())


# -- BTF -----------------------------------------------------------------------------------------------------------

def test_btf_finds_uapi_struct_offsets(kernel_btf: btf.BTF) -> None:
    """Offsets fixed by the kernel's ABI (include/uapi), so known without the kernel's help."""
    assert kernel_btf.member_offset("sockaddr_in", "sin_family") == 0
    assert kernel_btf.member_offset("sockaddr_in", "sin_port") == 2
    assert kernel_btf.member_offset("sockaddr_in", "sin_addr") == 4
    assert kernel_btf.member_offset("inet_diag_msg", "id") == 4
    assert kernel_btf.member_offset("inet_diag_msg", "idiag_inode") == 68
    assert kernel_btf.member_offset("tcp_info", "tcpi_rtt") == 68
    assert kernel_btf.member_offset("nlmsghdr", "nlmsg_seq") == 8


def test_btf_looks_into_anonymous_members(kernel_btf: btf.BTF) -> None:
    # struct bpf_iter_meta's seq sits in an anonymous union (__bpf_md_ptr)
    assert kernel_btf.member_offset("bpf_iter_meta", "seq") == 0
    assert kernel_btf.member_offset("bpf_iter_meta", "session_id") == 8
    with pytest.raises(DecodeError, match="no member nosuch"):
        kernel_btf.member_offset("sockaddr_in", "nosuch")
    with pytest.raises(DecodeError, match="no struct nosuch_struct_x"):
        kernel_btf.member_offset("nosuch_struct_x", "a")


def test_btf_function_parameters_and_enums(kernel_btf: btf.BTF) -> None:
    func = kernel_btf.find("bpf_iter_task_file", btf.FUNC)
    assert kernel_btf.params(func) == ["meta", "task", "fd", "file"]
    assert kernel_btf.enum_value("bpf_cmd", "BPF_PROG_LOAD") == 5
    assert kernel_btf.enum_value("bpf_cmd", "BPF_ITER_CREATE") == 33
    with pytest.raises(DecodeError, match="not a function"):
        kernel_btf.params(kernel_btf.find("sockaddr_in", btf.STRUCT))


def _mini_btf(types: bytes, strings: bytes) -> bytes:
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings


def test_btf_made_up_blob() -> None:
    strings = b"\0int\0pt\0x\0y\0"
    t_int = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", 32)
    t_struct = struct.pack("<III", 5, (4 << 24) | 2, 8) + struct.pack("<III", 8, 1, 0) + struct.pack("<III", 10, 1, 32)
    b = btf.BTF(_mini_btf(t_int + t_struct, strings))
    assert len(b) == 2
    assert b.member_offset("pt", "x") == 0 and b.member_offset("pt", "y") == 4


@pytest.mark.parametrize("blob, message", [
    (b"", "shorter than its header"),
    (b"\0" * 24, "bad magic"),
    (struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 100, 0, 0), "beyond the data"),
    (_mini_btf(struct.pack("<III", 0, 4 << 24 | 3, 0), b"\0"), "past"),
])
def test_btf_refuses_bad_blobs(blob: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        btf.BTF(blob)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 60), st.integers(0, 60))
def test_btf_fuzz_only_decode_errors(tail: bytes, type_len: int, str_len: int) -> None:
    blob = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, type_len, type_len, str_len) + tail
    try:
        b = btf.BTF(blob)
        b.member_offset("x", "y")
    except DecodeError:
        pass


# -- the program and its output --------------------------------------------------------------------------------------

def test_program_is_well_formed(kernel_btf: btf.BTF) -> None:
    with open(VMLINUX, "rb") as f:
        lay = bpf.layout(f.read())
    assert set(lay) == set(bpf.FIELDS)
    code = bpf.program(lay)
    assert len(code) % 8 == 0
    insns = [struct.unpack_from("<BBhi", code, i) for i in range(0, len(code), 8)]
    assert insns[-1][0] == 0x95  # exit
    for i, (op, _regs, off, _imm) in enumerate(insns):
        if op & 0x07 == 0x05 and op not in (0x85, 0x95):  # a jump: lands inside the program, forward
            assert 0 <= off and i + 1 + off < len(insns)
    assert sum(1 for op, *_ in insns if op == 0x85) == 3  # seq_write twice, pid_tgid once


def test_programs_are_assembled_once_per_layout(kernel_btf: btf.BTF, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that scans again (the exporter, top, repeated net_connections) loads the programs it
    assembled the first time for that layout, byte for byte; another layout gets its own."""
    from sockscope.kernel import bpf_prog

    with open(VMLINUX, "rb") as f:
        lay = bpf.layout(f.read())
    monkeypatch.setattr(bpf, "_ASSEMBLED", {})
    real, calls = bpf.program, []
    monkeypatch.setattr(bpf, "program", lambda la: calls.append(1) or real(la))
    first = bpf._assembled(lay, False)
    assert first == (real(lay), b"", b"") and len(calls) == 1
    assert bpf._assembled(dict(lay), False) is first and len(calls) == 1
    code, blob, info = bpf._assembled(lay, True)
    starts = bpf_prog.walk_program(lay)[1]
    assert code == bpf_prog.walk_program(lay)[0] and blob == bpf_prog.walk_btf()[0]
    assert len(info) == 8 * len(starts)  # (instruction, type) per function
    other = dict(lay, task_tgid=lay["task_tgid"] + 8)
    assert bpf._assembled(other, False)[0] != first[0] and len(calls) == 2


def _out(records: list[tuple[int, int, int]], reader: int | None) -> bytes:
    body = b"".join(bpf.RECORD.pack(*r) for r in records)
    return body + (bpf.RECORD.pack(0, reader, bpf.TRAILER_FD) if reader is not None else b"")


def test_decode_output() -> None:
    records = [(11, 5, 3), (12, 5, 4), (11, 9, 0), (2**40, 2**31, 7)]
    assert bpf.decode(_out(records, 77), 77) == ([11, 12, 11, 2**40], [5, 5, 9, 2**31], [3, 4, 0, 7])
    assert bpf.decode(_out([], 77), 77) == ([], [], [])


@pytest.mark.parametrize("blob, message", [
    (b"", "cut short"),
    (_out([(1, 2, 3)], 77)[:-3], "cut short"),
    (_out([(1, 2, 3)], None), "no trailer"),
    (_out([(1, 2, 3)], 78), "another pid namespace"),
])
def test_decode_refuses(blob: bytes, message: str) -> None:
    with pytest.raises(bpf.Unavailable, match=message):
        bpf.decode(blob, 77)


# -- the iterator on this kernel -------------------------------------------------------------------------------------


def _my_sockets(holders: dict[int, list[tuple[int, int]]], pids: set[int]) -> dict[int, list[tuple[int, int]]]:
    return {ino: h for ino, h in holders.items() if any(p in pids for p, _ in h)}


def test_iterator_equals_proc_walk() -> None:
    a, b = socket.socketpair()
    dup = os.dup(a.fileno())
    try:
        with forked_copy() as child:
            mine = {os.getpid(), child}
            via_bpf = scan()
            assert via_bpf.via == "bpf"  # as root on this kernel the iterator must work
            via_proc = scan(pids=sorted(mine))
            assert via_proc.via == "proc"
            got = _my_sockets(via_bpf._holders, mine)
            assert got == via_proc._holders
            ino = os.fstat(a.fileno()).st_ino
            first, second = sorted(mine)
            assert got[ino] == [(first, a.fileno()), (first, dup), (second, a.fileno()), (second, dup)]
            assert UsersText(via_bpf).text(ino) == UsersText(via_proc).text(ino)
            excluded = scan(exclude=child)
            assert all(p != child for p, _ in excluded.holders(ino)) and excluded.holders(ino)
    finally:
        os.close(dup)
        a.close()
        b.close()


def test_background_owners_use_the_iterator() -> None:
    a, b = socket.socketpair()
    try:
        bg = BackgroundOwners()
        texts = bg.texts()
        assert bg.via == "bpf"
        for s in (a, b):
            ino = os.fstat(s.fileno()).st_ino
            assert texts[ino] == UsersText(scan(pids=[os.getpid()])).text(ino) != ""
    finally:
        a.close()
        b.close()


def test_owners_env_forces_the_proc_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKSCOPE_OWNERS", "proc")
    assert scan().via == "proc"
    bg = BackgroundOwners()
    bg.texts()
    assert bg.via == "proc"


_PROBE = ("import os, socket, sys; from sockscope.owners.service import scan; a, b = socket.socketpair(); "
          "m = scan(); ino = os.fstat(a.fileno()).st_ino; "
          "print(m.via, m.holders(ino) == [(os.getpid(), a.fileno())])")


def test_another_pid_namespace_walks_proc() -> None:
    """In a pid namespace of its own the kernel's pids are not the process's: the iterator steps aside."""
    out = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", _PROBE],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["proc", "True"]


def test_without_capabilities_walks_proc() -> None:
    """Root without capabilities (setpriv drops them all) cannot load the program: the /proc walk it is."""
    nocaps = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-c"]
    out = subprocess.run([*nocaps, _PROBE + "; print(m.complete)"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # its own fds it reads; other root processes' fds it may list but not read: said so
    assert out.stdout.split() == ["proc", "True", "False"]
    why = subprocess.run([*nocaps, "from sockscope.kernel import bpf\ntry: bpf.open_iterator()\n"
                          "except bpf.Unavailable as e: print(e)"], capture_output=True, text=True, timeout=60)
    assert why.stdout.strip() == "loading a BPF program needs CAP_BPF and CAP_PERFMON (root)", why.stderr


def test_layout_cache(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = os.path.join(str(tmp_path), "sockscope", "task_file.layout")
    learned = bpf.cached_layout()
    with open(VMLINUX, "rb") as f:
        assert learned == bpf.layout(f.read())
    with open(path) as f:
        key, values = f.read().splitlines()
    assert key == bpf._kernel_key() and [int(v) for v in values.split()] == [learned[k] for k in bpf.FIELDS]
    # read back, not learned again (a made-up value shows which)
    with open(path, "w") as f:
        f.write(key + "\n" + " ".join(str(learned[k] + (k == "ctx_fd")) for k in bpf.FIELDS) + "\n")
    assert bpf.cached_layout()["ctx_fd"] == learned["ctx_fd"] + 1
    # another kernel's, or a damaged one: learned again and rewritten
    for bad in ("0 other kernel\n1 2 3\n", key + "\n1 2 x\n", ""):
        with open(path, "w") as f:
            f.write(bad)
        assert bpf.cached_layout() == learned
        with open(path) as f:
            assert f.read().splitlines()[0] == key
    # a cache file others may write, or with other UAPI numbers: not believed, learned again
    tampered = key + "\n" + " ".join(str(learned[k] + (k == "ctx_fd")) for k in bpf.FIELDS) + "\n"
    for mode, uapi_ok in ((0o666, True), (0o620, True), (0o600, False)):
        with open(path, "w") as f:
            f.write(tampered if uapi_ok else tampered.replace(" 127 14 ", " 126 14 "))
        os.chmod(path, mode)
        assert bpf.cached_layout() == learned
        os.chmod(path, 0o600)
    # a symbolic link in its place is not followed
    os.remove(path)
    other = os.path.join(str(tmp_path), "elsewhere")
    with open(other, "w") as f:
        f.write(tampered)
    os.symlink(other, path)
    assert bpf.cached_layout() == learned
    # a link planted where the new cache file is written first: not followed, the target left alone
    os.remove(path)
    with open(other, "w") as f:
        f.write("untouched")
    os.symlink(other, f"{path}.{os.getpid()}")
    assert bpf.cached_layout() == learned
    with open(other) as f:
        assert f.read() == "untouched"
    os.remove(f"{path}.{os.getpid()}")
    # an unwritable cache directory: still works
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/sockscope-no-such-dir")
    assert bpf.cached_layout() == learned


# -- the cache: verified before it is trusted, and kept where only this user can change it ------------------------

def _my_holders(m: OwnerMap, socks: list[socket.socket]) -> dict[int, list[tuple[int, int]]]:
    return {os.fstat(s.fileno()).st_ino: m.holders(os.fstat(s.fileno()).st_ino) for s in socks}


@pytest.mark.parametrize("field", ["task_tgid", "inode_mode", "inode_ino", "ctx_fd"])
def test_tampered_cache_is_discarded_and_relearned(field: str, tmp_path: pytest.TempPathFactory,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A root-owned 0644 cache with the right kernel line but one offset off by 4: the owners
    are still right (as the /proc walk finds them), one line says so, the cache is repaired."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    learned = bpf.cached_layout()
    path = os.path.join(str(tmp_path), "sockscope", "task_file.layout")
    with open(path, "w") as f:
        f.write(bpf._kernel_key() + "\n" + " ".join(str(learned[k] + 4 * (k == field)) for k in bpf.FIELDS) + "\n")
    os.chmod(path, 0o644)
    assert bpf.cached_layout()[field] == learned[field] + 4  # believed at first: owner and mode are right
    a, b = socket.socketpair()
    try:
        capsys.readouterr()
        got = scan()
        assert got.via == "bpf"
        want = scan(pids=[os.getpid()])
        assert _my_holders(got, [a, b]) == _my_holders(want, [a, b]) != {}
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "discarded, learned again" in err[0], err
        assert bpf.cached_layout() == learned  # repaired: the next run is quiet
        scan()
        assert capsys.readouterr().err == ""
    finally:
        a.close()
        b.close()


def _closed_socket() -> tuple[int, int]:
    """(inode, fd) of a socket of this process's that is closed again (its fd free)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    got = (os.fstat(s.fileno()).st_ino, s.fileno())
    s.close()
    return got


def _own_sockets() -> set[tuple[int, int]]:
    """(inode, fd) of each socket this process holds."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add((int(target[8:-1]), int(name)))
    return out


class _Held:
    """A stand-in for /proc's look (walk.any_socket_fd): what it says, and what it was asked."""

    def __init__(self, others: bool, mine: bool) -> None:
        self.others, self.mine, self.asked = others, mine, []

    def __call__(self, exclude: int = 0, only: int = 0) -> bool:
        self.asked.append((exclude, only))
        return self.mine if only else self.others


def test_plausible_cannot_tell_by_this_process_s_closed_sockets() -> None:
    """The false alarm seen about one call in 16 on a quiet host (no other process holds a socket):
    the walk found only this process's own dump sockets, closed before the check.  Before, that
    discarded the cached layout, said so on stderr and learned it again; now it cannot tell (None:
    a walk with a socket held open decides), and /proc is asked of other processes only."""
    me = os.getpid()
    ino, fd = _closed_socket()
    held = _Held(others=False, mine=False)
    assert plausible([ino], [me], [fd], held, me) is None
    assert held.asked == [(me, 0)]
    # other processes hold sockets the walk did not find: not believed (it may have come after the walk)
    assert plausible([ino], [me], [fd], _Held(others=True, mine=False), me) is False
    # nothing found, nothing held by another process: believed where this one holds none either
    assert plausible([], [], [], _Held(others=False, mine=False), me) is True
    assert plausible([], [], [], _Held(others=False, mine=True), me) is None
    assert plausible([], [], [], _Held(others=True, mine=False), me) is False


def test_plausible_samples_other_processes_first() -> None:
    """Another process's records that resolve are believed whatever this process's closed ones say;
    another's that do not resolve (a wrong inode offset) are not, though /proc shows nothing else;
    one of this process's sockets still open is evidence too."""
    me = os.getpid()
    closed = [_closed_socket() for _ in range(3)]
    a, b = socket.socketpair()
    try:
        ino = os.fstat(a.fileno()).st_ino
        with forked_copy() as child:

            def table(theirs: tuple[int, int], mine: list[tuple[int, int]]) -> list[list[int]]:
                rows = sorted([(child, theirs[1], theirs[0])] + [(me, f, i) for i, f in mine])
                return [[i for _, _, i in rows], [p for p, _, _ in rows], [f for _, f, _ in rows]]

            quiet = _Held(others=False, mine=False)
            assert plausible(*table((ino, a.fileno()), closed), quiet, me) is True
            assert plausible(*table((ino + 1, a.fileno()), closed), quiet, me) is False
            mine_open = [*closed, (ino, a.fileno())]
            assert plausible(*table((ino + 1, a.fileno()), mine_open), quiet, me) is True
            assert quiet.asked == []  # (with others' records to judge by, /proc is not asked)
    finally:
        a.close()
        b.close()


def test_a_walk_with_a_socket_held_open_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where plausible cannot tell, a walk made while this process holds a socket of its own (a
    netlink one) decides: found at its fd with its inode, the records are believed (that socket's
    left out); a layout that reads another inode is not.  And the whole call, given records of this
    process's closed sockets alone on a quiet host, keeps the cache and says nothing."""
    lay = bpf.cached_layout()
    me = os.getpid()
    a, b = socket.socketpair()
    try:
        held_before = _own_sockets()
        got = bpf._controlled(lay, True, me)
        assert got is not None
        ino = os.fstat(a.fileno()).st_ino
        assert (ino, me, a.fileno()) in set(zip(*got))
        assert {(i, f) for i, p, f in zip(*got) if p == me} <= held_before  # (the socket held open: left out)
        assert bpf._controlled(dict(lay, inode_mode=lay["inode_mode"] + 4), True, me) is None  # (no socket found)
        for field in ("task_tgid", "inode_ino", "ctx_fd"):  # (other wrong layouts: not believed, or refused
            # by the walk's own checks or the kernel's verifier)
            try:
                assert bpf._controlled(dict(lay, **{field: lay[field] + 4}), True, me) is None, field
            except bpf.Unavailable:
                pass
        # no socket to be had for it (the fd limit): Unavailable, as the iterator's own fds (the caller walks /proc)
        import _socket

        def no_fd(*args: object) -> object:
            raise OSError(24, "Too many open files")

        with monkeypatch.context() as m:
            m.setattr(_socket, "socket", no_fd)
            with pytest.raises(bpf.Unavailable, match="Too many open files") as e:
                bpf._controlled(lay, True, me)
            assert bpf._keeps_cache(e.value)
        # the whole call: its first walk finds only a closed socket of this process's
        ino0, fd0 = _closed_socket()
        real = bpf._records
        walks = []

        def records(lay: dict[str, int], cached: bool) -> bytes:
            walks.append(cached)
            return _out([(ino0, me, fd0)], me) if len(walks) == 1 else real(lay, cached)

        monkeypatch.setattr(bpf, "_records", records)
        monkeypatch.setattr(bpf, "_discard", lambda why: pytest.fail(f"the cache was discarded: {why}"))
        found = bpf.task_socket_fds(_Held(others=False, mine=False))
        assert (ino, me, a.fileno()) in set(zip(*found)) and len(walks) == 2
    finally:
        a.close()
        b.close()


def test_tampered_cache_owners_in_the_cli(tmp_path: pytest.TempPathFactory) -> None:
    """What the issue saw: -p, --json and net_connections lose every owner; compared with SOCKSCOPE_OWNERS=proc."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    code = ("import json, os, socket, sys; import sockscope; from sockscope.owners.service import scan\n"
            "a, b = socket.socketpair(); ino = os.fstat(a.fileno()).st_ino\n"
            "m = scan(); rows = [c for c in sockscope.net_connections('unix') if c.pid == os.getpid()]\n"
            "mine = [[p == os.getpid(), fd] for p, fd in m.holders(ino)]\n"
            "print(json.dumps([m.via, mine, sorted(c.fd for c in rows)]))")
    assert subprocess.run([sys.executable, "-c", "from sockscope.kernel import bpf; bpf.cached_layout()"],
                          env=env, timeout=60).returncode == 0
    path = os.path.join(str(tmp_path), "sockscope", "task_file.layout")
    with open(path) as f:
        key, values = f.read().splitlines()
    learned = dict(zip(bpf.FIELDS, map(int, values.split())))
    with open(path, "w") as f:
        f.write(key + "\n" + " ".join(str(learned[k] + 4 * (k == "task_tgid")) for k in bpf.FIELDS) + "\n")
    os.chmod(path, 0o644)
    tampered = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    proc = subprocess.run([sys.executable, "-c", code], env=dict(env, SOCKSCOPE_OWNERS="proc"),
                          capture_output=True, text=True, timeout=60)
    via, holders, fds = __import__("json").loads(tampered.stdout)
    assert via == "bpf" and holders and fds
    assert __import__("json").loads(proc.stdout)[1:] == [holders, fds]
    assert tampered.stderr.count("\n") == 1 and "implausible owners" in tampered.stderr


def test_no_fd_to_be_had_keeps_the_cache(tmp_path: pytest.TempPathFactory) -> None:
    """At the process's fd limit the iterator cannot be made (EMFILE): that says nothing of the cached
    layout, which stays as it was, without a word of it on stderr; the owners come from /proc's walk
    as far as the limit lets it (before: "the cached BPF layout … is refused by the kernel (bpf: Too
    many open files): discarded", and every later call learned it again)."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    assert subprocess.run([sys.executable, "-c", "from sockscope.kernel import bpf; bpf.cached_layout()"],
                          env=env, timeout=60).returncode == 0
    path = os.path.join(str(tmp_path), "sockscope", "task_file.layout")
    with open(path) as f:
        before = f.read()
    for limit in (5, 6, 7, 8):  # (where the limit falls among the iterator's fds: each one in turn)
        r = subprocess.run(["unshare", "-n", "prlimit", f"--nofile={limit}", *SOCKSCOPE, "-xp"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert "cached BPF layout" not in r.stderr and "Traceback" not in r.stderr, (limit, r.stderr)
        with open(path) as f:
            assert f.read() == before, limit


def _chown_tree(path: str, uid: int) -> None:
    os.chown(path, uid, uid, follow_symlinks=False)


def test_cache_not_written_through_links_or_others_directories(tmp_path: pytest.TempPathFactory,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """XDG_CACHE_HOME owned by another user, its ``sockscope`` a link to a root-only
    directory: nothing is written there (nor through a link higher up the path)."""
    base = str(tmp_path)
    rootonly = os.path.join(base, "rootonly")
    os.mkdir(rootonly, 0o700)
    other = os.path.join(base, "other")
    os.mkdir(other, 0o755)
    os.symlink(rootonly, os.path.join(other, "sockscope"))
    _chown_tree(other, 65534)
    _chown_tree(os.path.join(other, "sockscope"), 65534)
    with open(VMLINUX, "rb") as f:
        learned = bpf.layout(f.read())
    monkeypatch.setenv("XDG_CACHE_HOME", other)
    assert bpf.cached_layout() == learned
    assert os.listdir(rootonly) == []
    # the same link in a directory of root's own: still not followed
    mine = os.path.join(base, "mine")
    os.mkdir(mine, 0o755)
    os.symlink(rootonly, os.path.join(mine, "sockscope"))
    monkeypatch.setenv("XDG_CACHE_HOME", mine)
    assert bpf.cached_layout() == learned
    assert os.listdir(rootonly) == []
    # a link higher up: XDG_CACHE_HOME=<link>/cache, the link pointing into the root-only directory
    os.symlink(rootonly, os.path.join(base, "up"))
    monkeypatch.setenv("XDG_CACHE_HOME", os.path.join(base, "up", "cache"))
    assert bpf.cached_layout() == learned
    assert os.listdir(rootonly) == []
    # a directory of another user's on the way (not sticky): not used either
    theirs = os.path.join(base, "theirs")
    os.mkdir(theirs, 0o755)
    _chown_tree(theirs, 65534)
    monkeypatch.setenv("XDG_CACHE_HOME", os.path.join(theirs, "cache"))
    assert bpf.cached_layout() == learned
    assert os.listdir(theirs) == []
    # and the plain case still caches, in a directory of mode 0700
    monkeypatch.setenv("XDG_CACHE_HOME", os.path.join(base, "ok"))
    assert bpf.cached_layout() == learned
    assert os.stat(os.path.join(base, "ok", "sockscope")).st_mode & 0o777 == 0o700
    assert os.path.isfile(os.path.join(base, "ok", "sockscope", "task_file.layout"))


_AUDIT = ("import os, sys\nopened = []\nfrom sockscope.kernel import bpf\n"
          "sys.addaudithook(lambda ev, args: opened.append(str(args[0])) if ev == 'open' else None)\n"
          "try:\n    bpf.open_iterator()\nexcept bpf.Unavailable as e:\n    print(e)\n"
          "print([p for p in opened if 'btf' in p or p.startswith(os.environ['XDG_CACHE_HOME'])])\n")


def test_without_capabilities_no_btf_and_no_cache(tmp_path: pytest.TempPathFactory) -> None:
    """No CAP_BPF/CAP_PERFMON (root with none, as setpriv leaves it): the BTF is not read
    (~45 ms saved) and no cache is written."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    env.pop("SOCKSCOPE_OWNERS", None)
    out = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-c", _AUDIT],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["loading a BPF program needs CAP_BPF and CAP_PERFMON (root)", "[]"]
    assert os.listdir(str(tmp_path)) == []


def test_no_ctypes_types_made_per_call() -> None:
    """Loading the program makes no new ctypes types (psutil's leak test: uncollectable garbage)."""
    import gc

    bpf.task_socket_fds(any_socket_fd)  # the first call may import and set up what it needs
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            bpf.task_socket_fds(any_socket_fd)
        assert gc.collect() == 0
    finally:
        gc.enable()
