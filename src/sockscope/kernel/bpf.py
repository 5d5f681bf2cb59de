"""Every socket fd of every process, in one read: BPF iterators.

The /proc walk that maps socket inodes to their processes costs two system
calls per fd (``readlink`` of each ``/proc/PID/fd/N``) plus one directory
listing per process: at 100k sockets it is the slowest part of ``ss -p``.
The kernel can do that walk itself: a BPF iterator program over
``task_file`` (the one bpftool uses to show which processes hold BPF
objects) is called once per open file of every process; ours writes
``(inode, pid, fd)`` for the sockets and nothing for other files, and the
whole table arrives through ``read`` of one fd.  Where the kernel has what
it takes (6.2: ``bpf_loop``, ``bpf_rdonly_cast``), a program over the
``task`` iterator walks each process's fd table by its bitmap of open fds
instead, and leaves the processes with thousands of fds to a ``task_file``
iterator of their own (:mod:`sockscope.kernel.bpf_prog` says why and how).

The programs are a few dozen instructions assembled in
:mod:`sockscope.kernel.bpf_prog` (no compiler, no libbpf); the struct
offsets they need (``task_struct.tgid``, ``file.f_inode``, ``inode.i_ino``,
…) and the iterators' attach ids come from the running kernel's BTF
(:mod:`sockscope.kernel.btf`), learned once and cached per kernel build
under ``$XDG_CACHE_HOME/sockscope`` (:mod:`sockscope.kernel.bpf_cache`).
Loading them needs CAP_BPF and CAP_PERFMON (root); any failure — an older
kernel, no BTF, a container without the capabilities, a pid namespace other
than the kernel's — makes :func:`task_socket_fds` raise :class:`Unavailable`,
and the caller walks /proc as before.  ``SOCKSCOPE_OWNERS=proc`` skips this
altogether.

They list the fd table of each thread-group leader only — what
``/proc/PID/fd`` shows — and end with a trailer carrying the reader's pid
as the kernel sees it: no trailer (a cut-short read) or another pid (the
kernel's pids are not ours) and the result is refused.  What they find is
checked (:func:`sockscope.kernel.bpf_check.plausible`, or where the records
cannot tell, a walk made holding a socket of its own, :func:`_controlled`; the
walk must also find the file it is read from, at its fd): a cached layout that
gives wrong owners is discarded.
"""

from __future__ import annotations

import errno
import os
import struct

from sockscope.errors import SockscopeError
from sockscope.kernel import bpf_cache as _cache
from sockscope.kernel.bpf_caps import NEEDS_CAPS as _NEEDS_CAPS, refused
from sockscope.kernel.bpf_prog import (  # noqa: F401 - FIELDS, RECORD, TRAILER_FD: this module's names too
    BAD_FD, BIG_FD, CAP, FIELDS, MAX_WORDS, RECORD, SELF_FD, TRAILER_FD, UAPI, WALK_FIELDS, WALK_UAPI, program,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable


class Unavailable(SockscopeError):
    """The BPF iterator cannot be used here (the reason is the message; ``errno``: the system
    call's, where one failed)."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


class _Implausible(Unavailable):
    """The programs ran, but what they found cannot be right (a wrong layout)."""


# -- the layout ----------------------------------------------------------------------------------------------------

def layout(btf_data: bytes) -> dict[str, int]:
    """The offsets and ids :func:`program` needs, read from the kernel's BTF."""
    from sockscope.kernel import btf as _btf

    b = _btf.BTF(btf_data)
    func = b.find("bpf_iter_task_file", _btf.FUNC)
    params = b.params(func)
    try:
        ctx = {name: 8 * params.index(name) for name in ("meta", "task", "fd", "file")}
    except ValueError:
        raise Unavailable(f"bpf_iter_task_file has unexpected parameters {params}") from None
    found = {
        "attach_btf_id": func,
        "ctx_meta": ctx["meta"], "ctx_task": ctx["task"], "ctx_fd": ctx["fd"], "ctx_file": ctx["file"],
        "meta_seq": b.member_offset("bpf_iter_meta", "seq"),
        "task_pid": b.member_offset("task_struct", "pid"),
        "task_tgid": b.member_offset("task_struct", "tgid"),
        "file_inode": b.member_offset("file", "f_inode"),
        "inode_mode": b.member_offset("inode", "i_mode"),
        "inode_ino": b.member_offset("inode", "i_ino"),
        "func_seq_write": b.enum_value("bpf_func_id", "BPF_FUNC_seq_write"),
        "func_pid_tgid": b.enum_value("bpf_func_id", "BPF_FUNC_get_current_pid_tgid"),
        "prog_type": b.enum_value("bpf_prog_type", "BPF_PROG_TYPE_TRACING"),
        "attach_type": b.enum_value("bpf_attach_type", "BPF_TRACE_ITER"),
    }
    wrong = {k: found[k] for k, v in UAPI.items() if found[k] != v}
    if wrong:
        raise Unavailable(f"this kernel's BPF numbers differ from its UAPI's: {wrong}")
    found.update(_walk_layout(b))
    return found


def _walk_layout(b: object) -> dict[str, int]:
    """The facts of :data:`WALK_FIELDS` (all 0 where this kernel lacks one of them: bpf_loop is 5.17,
    bpf_rdonly_cast 6.2)."""
    from sockscope.errors import DecodeError
    from sockscope.kernel import btf as _btf

    assert isinstance(b, _btf.BTF)
    try:
        func = b.find("bpf_iter_task", _btf.FUNC)
        params = b.params(func)
        found = {
            "walk_btf_id": func, "walk_ctx_meta": 8 * params.index("meta"), "walk_ctx_task": 8 * params.index("task"),
            "task_files": b.member_offset("task_struct", "files"),
            "files_fdt": b.member_offset("files_struct", "fdt"),
            "files_next_fd": b.member_offset("files_struct", "next_fd"),
            "fdt_max_fds": b.member_offset("fdtable", "max_fds"),
            "fdt_fd": b.member_offset("fdtable", "fd"),
            "fdt_open_fds": b.member_offset("fdtable", "open_fds"),
            "cast_btf_id": b.find("bpf_rdonly_cast", _btf.FUNC),
            "word_btf_id": b.find("timespec64", _btf.STRUCT),
            "func_loop": b.enum_value("bpf_func_id", "BPF_FUNC_loop"),
            "func_probe_read": b.enum_value("bpf_func_id", "BPF_FUNC_probe_read_kernel"),
            "seq_file": b.member_offset("seq_file", "file"),
            "task_flags": b.member_offset("task_struct", "flags"),
        }
        if b.member_offset("timespec64", "tv_sec") != 0:  # the walk reads a u64 as timespec64's first member
            raise DecodeError("timespec64 does not start with tv_sec")
    except (DecodeError, ValueError):
        return dict.fromkeys(WALK_FIELDS, 0)
    if any(found[k] != v for k, v in WALK_UAPI.items()):
        return dict.fromkeys(WALK_FIELDS, 0)
    return found


def decode(blob: bytes, reader_pid: int) -> tuple[list[int], list[int], list[int]]:
    """The iterator's output -> (inodes, pids, fds), in the kernel's order
    (ascending pid, then fd).  Refuses output without the trailer, or whose
    trailer names another reader than ``reader_pid`` (see the module doc)."""
    end = len(blob) - RECORD.size
    if end < 0 or len(blob) % RECORD.size:
        raise Unavailable("the iterator's output was cut short")
    ino, pid, fd = RECORD.unpack_from(blob, end)
    if ino or fd != TRAILER_FD:
        raise Unavailable("the iterator's output has no trailer")
    if pid != reader_pid:
        raise Unavailable(f"the kernel sees this process as pid {pid}, not {reader_pid} (another pid namespace)")
    # strided views of the records' fields: the copies are made in C
    view = memoryview(blob)[:end]
    words = view.cast("I")
    return view.cast("Q")[::2].tolist(), words[2::4].tolist(), words[3::4].tolist()


# -- the cache of layouts -----------------------------------------------------------------------------------------

_BTF_PATH = "/sys/kernel/btf/vmlinux"


def _kernel_key() -> str:
    try:
        return _cache.kernel_key(_BTF_PATH)
    except OSError as e:
        raise Unavailable(f"no kernel BTF ({_BTF_PATH}: {e.strerror})") from None


def learned_layout() -> dict[str, int]:
    """:func:`layout` of the running kernel, from its BTF."""
    try:
        with open(_BTF_PATH, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Unavailable(f"no kernel BTF ({_BTF_PATH}: {e.strerror})") from None
    from sockscope.errors import DecodeError

    try:
        return layout(data)
    except DecodeError as e:
        raise Unavailable(str(e)) from None


def cached_layout(fresh: bool = False) -> dict[str, int]:
    """:func:`layout` of the running kernel, from the cache when it was learned before
    (unless ``fresh``: learned again, and the cache rewritten)."""
    return _layout(fresh)[0]


def _layout(fresh: bool) -> tuple[dict[str, int], bool]:
    """(the layout, whether it came from the cache)."""
    key = _kernel_key()
    found = None if fresh else _cache.read_cache(key)
    if found is not None:
        return found, True
    found = learned_layout()
    _cache.write_cache(key, found)
    return found, False


def _controlled(lay: dict[str, int], cached: bool, me: int) -> tuple[list[int], list[int], list[int]] | None:
    """The records of a walk made while this process holds a socket of its own (a netlink one: no
    listing of UNIX or inet sockets meets it), or None where the walk does not find that socket at
    its fd: what :func:`~sockscope.kernel.bpf_check.plausible` could not tell, told.  The socket's
    record is left out."""
    import _socket

    from sockscope.kernel.bpf_check import own_run

    try:
        ctl = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC, 4)  # (NETLINK_SOCK_DIAG)
    except OSError as e:  # (at the fd limit, say: the caller walks /proc, the cache kept)
        raise Unavailable(f"a socket to check the walk by: {e.strerror}", e.errno or 0) from None
    try:
        fd, ino = ctl.fileno(), os.fstat(ctl.fileno()).st_ino
        inodes, pids, fds = decode(_records(lay, cached), me)
    finally:
        ctl.close()
    mine = [i for i in range(*own_run(pids, me)) if fds[i] == fd]
    if [inodes[i] for i in mine] != [ino]:
        return None
    del inodes[mine[0]], pids[mine[0]], fds[mine[0]]
    return inodes, pids, fds


# -- the system calls ---------------------------------------------------------------------------------------------

# 64-bit little-endian machines: the attributes, instructions and records are packed little-endian
_NR_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "riscv64": 280}
_PROG_LOAD, _BTF_LOAD, _LINK_CREATE, _ITER_CREATE = 5, 18, 28, 33
_LICENSE = b"Dual MIT/GPL\0"  # bpf_seq_write is for GPL-compatible programs


_syscall: list[Callable[..., int]] = []  # libc's syscall(), once loaded


def _bpf(cmd: int, attr: bytes) -> int:
    import ctypes

    if not _syscall:
        if _NR_BPF.get(os.uname().machine) is None:
            raise Unavailable(f"no bpf system call number known for {os.uname().machine}")
        fn = ctypes.CDLL(None, use_errno=True).syscall
        fn.restype = ctypes.c_long
        fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        _syscall.append(fn)
    fd = _syscall[0](_NR_BPF[os.uname().machine], cmd, attr, len(attr))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(fd)


def _address(buf: bytearray) -> int:
    """The address of ``buf``'s bytes (a view of one c_char: no ctypes type is made per call,
    unlike ``create_string_buffer``, whose array types the collector has to clear)."""
    import ctypes

    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


#: (walk, the layout's items) -> the program's instructions, its BTF blob and func_info: made once per
#: layout in a process (pure functions of it; ~0.4 ms of Python each), loaded into the kernel each time
_ASSEMBLED: dict[tuple[bool, tuple[tuple[str, int], ...]], tuple[bytes, bytes, bytes]] = {}


def _assembled(lay: dict[str, int], walk: bool) -> tuple[bytes, bytes, bytes]:
    """(instructions, BTF blob or b"", func_info or b"") of :func:`program` or, with ``walk``,
    :func:`sockscope.kernel.bpf_prog.walk_program` for ``lay``."""
    key = (walk, tuple(sorted(lay.items())))
    got = _ASSEMBLED.get(key)
    if got is None:
        if walk:
            from sockscope.kernel.bpf_prog import walk_btf, walk_program

            code, starts = walk_program(lay)
            blob, types = walk_btf()
            info = struct.pack(f"<{2 * len(starts)}I", *(v for pair in zip(starts, types) for v in pair))
            got = (code, blob, info)
        else:
            got = (program(lay), b"", b"")
        if len(_ASSEMBLED) >= 8:  # (a layout learned anew: the old ones are of no more use)
            _ASSEMBLED.clear()
        _ASSEMBLED[key] = got
    return got


def _load(lay: dict[str, int], walk: bool = False) -> int:
    """Load :func:`program` (or with ``walk`` :func:`sockscope.kernel.bpf_prog.walk_program`, with the
    BTF of its functions): the program's fd."""
    btf_fd = -1
    code, blob, func_info = _assembled(lay, walk)
    info = bytearray(func_info)
    if walk:
        btf_fd = _load_btf(bytearray(blob))
    insns, lic, name = bytearray(code), bytearray(_LICENSE), b"sockscope_fds".ljust(16, b"\0")
    log = bytearray(1)
    try:
        for level in (0, 1):  # without a log first (cheaper); with one to explain a refusal
            if level:
                log = bytearray(1 << 16)
            attr = struct.pack(
                "<IIQQIIQII16sIIIIQIIQII",
                lay["prog_type"], len(insns) // 8, _address(insns), _address(lic),
                level, len(log) if level else 0, _address(log) if level else 0,
                0, 0, name, 0, lay["attach_type"], max(btf_fd, 0), 8 if walk else 0,
                _address(info) if walk else 0, len(info) // 8, 0, 0, 0,
                lay["walk_btf_id"] if walk else lay["attach_btf_id"],
            ).ljust(144, b"\0")
            try:
                return _bpf(_PROG_LOAD, attr)
            except OSError as e:
                if e.errno == errno.EPERM:
                    raise Unavailable(_NEEDS_CAPS) from None
                if e.errno in _NO_FDS:  # this process's limit, not the program: nothing to explain
                    raise Unavailable(f"bpf: {e.strerror}", e.errno) from None
                if level:
                    text = bytes(log).split(b"\0", 1)[0].decode("ascii", "replace").strip().splitlines()
                    raise Unavailable(f"the kernel refused the program: {e.strerror}"
                                      + (f" ({text[-1]})" if text else "")) from None
    finally:
        if btf_fd >= 0:
            os.close(btf_fd)
    raise AssertionError("unreachable")


def _load_btf(blob: bytearray) -> int:
    try:
        return _bpf(_BTF_LOAD, struct.pack("<QQIII", _address(blob), 0, len(blob), 0, 0).ljust(32, b"\0"))
    except OSError as e:
        raise Unavailable(f"bpf: {e.strerror}", e.errno or 0) from None


#: no fd to be had (the process's limit, the system's): says nothing of a cached layout
_NO_FDS = (errno.EMFILE, errno.ENFILE)


def _keeps_cache(e: Unavailable) -> bool:
    """Whether a failure from the cached layout leaves the cache believed: the capability missing,
    or no fd to be had."""
    return str(e) == _NEEDS_CAPS or e.errno in _NO_FDS


def open_iterator(fresh: bool = False) -> int:
    """Load the program and open its iterator: an fd to :func:`read_iterator`
    (the kernel walks the processes as it is read).  ``fresh``: with the
    layout learned again from BTF, not the cached one."""
    return _open_iterator(fresh)[0]


def _open_iterator(fresh: bool) -> tuple[int, bool]:
    """(the iterator's fd, whether the layout came from the cache).  A cached layout the
    kernel refuses is discarded and learned again."""
    why = refused()
    if why is not None:
        raise Unavailable(why)
    lay, cached = _layout(fresh)
    try:
        return _attach(lay), cached
    except Unavailable as e:
        if not cached or _keeps_cache(e):
            raise
        _discard(f"is refused by the kernel ({e})")
        return _attach(_layout(True)[0]), False


def _attach(lay: dict[str, int]) -> int:
    prog = _load(lay)
    try:
        return _iter(prog, lay)
    finally:
        os.close(prog)


def _iter(prog: int, lay: dict[str, int], pid: int = 0) -> int:
    """An iterator of the loaded program ``prog`` (of the process ``pid`` alone, where not 0): its fd
    (which holds the program)."""
    link = -1
    try:
        info = bytearray(struct.pack("<III", 0, pid, 0))  # bpf_iter_link_info.task: tid, pid, pid_fd
        link = _bpf(_LINK_CREATE, struct.pack("<IIIIQI", prog, 0, lay["attach_type"], 0, _address(info) if pid else 0,
                                              len(info) if pid else 0).ljust(64, b"\0"))
        return _bpf(_ITER_CREATE, struct.pack("<II", link, 0).ljust(16, b"\0"))
    except OSError as e:
        raise Unavailable(f"bpf: {e.strerror}", e.errno or 0) from None
    finally:
        if link >= 0:
            os.close(link)


def _records(lay: dict[str, int], cached: bool) -> bytes:
    """The records of every socket fd and the trailer: the fd table walk where this kernel runs it,
    else the task_file iterator.  A walk that fails raises where the layout is ``cached`` (it may
    be wrong); where the layout was just learned the cache keeps it without the walk."""
    prog = _load(lay)  # (loaded even where the walk does all: it checks the layout's task_file facts)
    try:
        if lay["walk_btf_id"]:
            try:
                return _walked(lay, prog)
            except Unavailable as e:
                if cached or str(e) == _NEEDS_CAPS:
                    raise
                _cache.write_cache(_kernel_key(), dict(lay, **dict.fromkeys(WALK_FIELDS, 0)))
        return read_iterator(_iter(prog, lay))
    finally:
        os.close(prog)


def _walked(lay: dict[str, int], prog: int) -> bytes:
    """The walk's records, each process it left out (its marker, after what it wrote of it) read by
    the task_file iterator ``prog`` of that process alone, checked: the walk found the file it was
    read from at its fd in this process (its record of that taken out)."""
    walk = _load(lay, walk=True)
    try:
        size_before = _fd_table_size()
        it = _iter(walk, lay)
        blob = read_iterator(it)
        if not _trailed(blob):  # (seen where processes exit as the iterator passes them): once more
            it = _iter(walk, lay)
            blob = read_iterator(it)
    finally:
        os.close(walk)
    words = memoryview(blob).cast("I")
    fds, pids = words[3::4].tobytes(), words[2::4]
    if not _trailed(blob):
        raise Unavailable("the iterator's output has no trailer")
    me = pids[-1]  # the trailer's: this process as the kernel sees it (decode checks it)
    big, bad = _where(fds, BIG_FD), _where(fds, BAD_FD)
    # the file being read, found at its fd here (a stale pointer in an exiting process's table may
    # equal it too: the file's memory used again)
    selves = _where(fds, SELF_FD)
    own = [m for m in selves if pids[m] == me]
    if any(pids[m] == me for m in bad):  # (this process is not exiting: its table is read wrong)
        raise _Implausible("the fd table walk reads something else than fd tables")
    drops = []  # (first record, after the last, the process whose records go there instead)
    for m in sorted(big + bad):
        start = m
        while start > 0 and pids[start - 1] == pids[m]:  # what the walk wrote of it: at most bpf_prog.CAP + 63
            start -= 1
        drops.append((start, m + 1, pids[m]))
    if any(pids[m] == me for m in big):  # (left to task_file: believable only where this table is large)
        if len(os.listdir("/proc/self/fd")) < CAP and _fd_table_size() <= MAX_WORDS * 64:
            raise _Implausible("the fd table walk leaves this process's small fd table out")
    else:  # its fd found, and the table's size as /proc shows it (before or after: other threads may open fds)
        sizes = (size_before, _fd_table_size())
        if [(pids[m], words[4 * m]) for m in own] != [(me, it)] or words[4 * own[0] + 1] not in sizes:
            raise _Implausible("the fd table walk does not find the file it is read from")
    drops += [(m, m + 1, 0) for m in selves if not any(a <= m < b for a, b, _ in drops)]
    size, out, prev = RECORD.size, [], 0
    for a, b, pid in sorted(drops):
        out.append(blob[prev * size : a * size])
        if pid:
            try:
                out.append(read_iterator(_iter(prog, lay, pid))[:-size])  # (its trailer: decode checks the last)
            except Unavailable as e:
                if e.errno not in (errno.ENOENT, errno.ESRCH):  # (not: the process has ended meanwhile)
                    raise
        prev = b
    out.append(blob[prev * size :])
    return b"".join(out)


def _trailed(blob: bytes) -> bool:
    """Whether the iterator's output ends with its trailer (a record of fd ``TRAILER_FD``)."""
    return len(blob) >= RECORD.size and not len(blob) % RECORD.size and blob[-4:] == b"\xff\xff\xff\xff"


def _fd_table_size() -> int:
    """This process's fd table size (``FDSize`` of ``/proc/self/status``: the table's ``max_fds``)."""
    with open("/proc/self/status", "rb") as f:
        text = f.read()
    at = text.find(b"\nFDSize:")
    return int(text[at + 8 : text.index(b"\n", at + 8)]) if at >= 0 else -1


def _where(fds: bytes, fd: int) -> list[int]:
    """The indexes of the records whose fd is ``fd`` (``fds``: the records' fds, 4 bytes each)."""
    found, needle = [], fd.to_bytes(4, "little")
    at = fds.find(needle)
    while at >= 0:
        if at % 4 == 0:
            found.append(at // 4)
        at = fds.find(needle, at + 1)
    return found


def _discard(why: str) -> None:
    """Say (one line on stderr) that the cached layout is not believed, and remove it."""
    import sys

    print(f"sockscope: the cached BPF layout ({_cache.cache_path()}) {why}: discarded, learned again from the "
          "kernel's BTF", file=sys.stderr)
    _cache.forget_cache()


def read_iterator(fd: int) -> bytes:
    """Everything the iterator ``fd`` writes, then closes it."""
    chunks = []
    read = os.read
    try:
        while True:
            chunk = read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as e:
        raise Unavailable(f"reading the iterator: {e.strerror}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def task_socket_fds(held: Callable[..., bool]) -> tuple[list[int], list[int], list[int]]:
    """(inodes, pids, fds) of every socket fd of every process (see :func:`decode`), checked with
    :func:`~sockscope.kernel.bpf_check.plausible` (``held``: whether /proc shows a socket fd,
    asked only where the iterator finds none of another process's:
    :func:`sockscope.owners.walk.any_socket_fd`) or, where that cannot tell, by :func:`_controlled`.
    Implausible records from the cached layout discard the cache (one line on stderr says so) and
    the layout is learned again; implausible records from a freshly learned layout raise
    :class:`Unavailable` (the caller walks /proc)."""
    why = refused()
    if why is not None:
        raise Unavailable(why)
    from sockscope.kernel.bpf_check import own_run, plausible

    me = os.getpid()
    lay, cached = _layout(False)
    try:
        blob = _records(lay, cached)
    except Unavailable as e:
        if not cached or _keeps_cache(e):
            raise
        _discard("gives implausible owners" if isinstance(e, _Implausible) else f"is refused by the kernel ({e})")
        lay, cached = _layout(True)[0], False
        blob = _records(lay, False)
    def checked(found: tuple[list[int], list[int], list[int]], lay: dict[str, int], cached: bool
                ) -> tuple[bool | None, tuple[list[int], list[int], list[int]] | None]:
        """(what plausible said, the records believed: these, or a controlled walk's where it could not tell)."""
        told = plausible(*found, held, me)
        return told, found if told else _controlled(lay, cached, me) if told is None else None

    found = decode(blob, me)  # (another pid namespace's reader: refused here, the cache kept)
    told, got = checked(found, lay, cached)
    if told is False and own_run(found[1], me) == (0, len(found[1])):
        # no other process's records, where /proc shows some: they may have come after the walk; once more
        told, got = checked(decode(_records(lay, cached), me), lay, cached)
    if got is None and cached:
        _discard("gives implausible owners")
        lay = _layout(True)[0]
        got = checked(decode(_records(lay, False), me), lay, False)[1]
    if got is None:
        raise Unavailable("the iterator's records do not match /proc")
    return got


__all__ = ["Unavailable", "task_socket_fds", "program", "layout", "decode", "cached_layout"]
