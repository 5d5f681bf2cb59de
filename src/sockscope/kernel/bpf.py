"""Every socket fd of every process, in one read: a BPF task_file iterator.

The /proc walk that maps socket inodes to their processes costs two system
calls per fd (``readlink`` of each ``/proc/PID/fd/N``) plus one directory
listing per process: at 100k sockets it is the slowest part of ``ss -p``.
The kernel can do that walk itself: a BPF iterator program over
``task_file`` (the one bpftool uses to show which processes hold BPF
objects) is called once per open file of every process; ours writes
``(inode, pid, fd)`` for the sockets and nothing for other files, and the
whole table arrives through ``read`` of one fd.

The program is a few dozen instructions assembled here (:func:`program`, no
compiler, no libbpf); the struct offsets it needs (``task_struct.tgid``,
``file.f_inode``, ``inode.i_ino``, …) and the iterator's attach id come from
the running kernel's BTF (:mod:`sockscope.kernel.btf`), learned once and
cached per kernel build under ``$XDG_CACHE_HOME/sockscope``.  Loading it needs
CAP_BPF and CAP_PERFMON (root); any failure — an older kernel, no BTF, a
container without the capabilities, a pid namespace other than the
kernel's — makes :func:`task_socket_fds` raise :class:`Unavailable`, and
the caller walks /proc as before.  ``SOCKSCOPE_OWNERS=proc`` skips this
altogether.

It lists the fd table of each thread-group leader only — what
``/proc/PID/fd`` shows — and ends with a trailer carrying the reader's pid
as the kernel sees it: no trailer (a cut-short read) or another pid (the
kernel's pids are not ours) and the result is refused.
"""

from __future__ import annotations

import errno
import os
import struct

from sockscope.errors import SockscopeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

RECORD = struct.Struct("<QII")  # inode, pid, fd (little-endian machines only: see _NR_BPF)
TRAILER_FD = 0xFFFFFFFF
_CACHE_VERSION = "1"

# the facts learned from BTF, in this order (see layout())
FIELDS = (
    "attach_btf_id", "ctx_meta", "ctx_task", "ctx_fd", "ctx_file", "meta_seq",
    "task_pid", "task_tgid", "file_inode", "inode_mode", "inode_ino",
    "func_seq_write", "func_pid_tgid", "prog_type", "attach_type",
)


#: numbers fixed by the kernel's ABI (include/uapi/linux/bpf.h); BTF is asked anyway and must agree
UAPI = {"func_seq_write": 127, "func_pid_tgid": 14, "prog_type": 26, "attach_type": 28}


class Unavailable(SockscopeError):
    """The BPF iterator cannot be used here (the reason is the message)."""


# -- the program ---------------------------------------------------------------------------------------------------

def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


# opcodes (include/uapi/linux/bpf.h, bpf_common.h)
_LDX_DW, _LDX_W, _LDX_H = 0x79, 0x61, 0x69
_STX_DW, _STX_W, _ST_DW, _ST_W = 0x7B, 0x63, 0x7A, 0x62
_MOV_X, _MOV_K, _ADD_K, _AND_K, _RSH_K = 0xBF, 0xB7, 0x07, 0x57, 0x77
_JEQ_K, _JNE_K, _JNE_X, _JA = 0x15, 0x55, 0x5D, 0x05
_CALL, _EXIT = 0x85, 0x95
_S_IFMT, _S_IFSOCK = 0o170000, 0o140000


def program(layout: dict[str, int]) -> bytes:
    """The iterator program's instructions for a kernel with ``layout`` (see :func:`layout`).

    ``r6`` ctx, ``r7`` the seq_file; the record is built at ``r10-16``.
    """
    L = layout
    out = "OUT"
    trailer = "TRAILER"
    code: list[tuple[int, int, int, int | str, int] | str] = [
        (_MOV_X, 6, 1, 0, 0),
        (_LDX_DW, 7, 6, L["ctx_meta"], 0),
        (_LDX_DW, 7, 7, L["meta_seq"], 0),
        (_LDX_DW, 2, 6, L["ctx_task"], 0),
        (_JEQ_K, 2, 0, trailer, 0),  # the last call, after the last file
        (_LDX_DW, 3, 6, L["ctx_file"], 0),
        (_JEQ_K, 3, 0, out, 0),
        (_LDX_W, 4, 2, L["task_pid"], 0),
        (_LDX_W, 5, 2, L["task_tgid"], 0),
        (_JNE_X, 4, 5, out, 0),  # threads with their own fd table: /proc/PID/fd does not show them
        (_STX_W, 10, 5, -8, 0),
        (_LDX_DW, 4, 3, L["file_inode"], 0),
        (_LDX_H, 5, 4, L["inode_mode"], 0),
        (_AND_K, 5, 0, 0, _S_IFMT),
        (_JNE_K, 5, 0, out, _S_IFSOCK),
        (_LDX_DW, 5, 4, L["inode_ino"], 0),
        (_STX_DW, 10, 5, -16, 0),
        (_LDX_W, 5, 6, L["ctx_fd"], 0),
        (_STX_W, 10, 5, -4, 0),
        (_MOV_X, 1, 7, 0, 0),
        (_MOV_X, 2, 10, 0, 0),
        (_ADD_K, 2, 0, 0, -16),
        (_MOV_K, 3, 0, 0, RECORD.size),
        (_CALL, 0, 0, 0, L["func_seq_write"]),
        (_JA, 0, 0, out, 0),
        trailer,  # (0, the reader's tgid, 0xffffffff)
        (_CALL, 0, 0, 0, L["func_pid_tgid"]),
        (_RSH_K, 0, 0, 0, 32),
        (_STX_W, 10, 0, -8, 0),
        (_ST_DW, 10, 0, -16, 0),
        (_ST_W, 10, 0, -4, -1),
        (_MOV_X, 1, 7, 0, 0),
        (_MOV_X, 2, 10, 0, 0),
        (_ADD_K, 2, 0, 0, -16),
        (_MOV_K, 3, 0, 0, RECORD.size),
        (_CALL, 0, 0, 0, L["func_seq_write"]),
        out,
        (_MOV_K, 0, 0, 0, 0),
        (_EXIT, 0, 0, 0, 0),
    ]
    labels: dict[str, int] = {}
    insns: list[tuple[int, int, int, int | str, int]] = []
    for item in code:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out_bytes = []
    for i, (op, dst, src, off, imm) in enumerate(insns):
        if isinstance(off, str):  # a jump to a label: relative to the next instruction
            off = labels[off] - i - 1
        out_bytes.append(_insn(op, dst, src, off, imm))
    return b"".join(out_bytes)


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


_NEEDS_CAPS = "loading a BPF program needs CAP_BPF and CAP_PERFMON (root)"
_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


def _may_load() -> bool:
    """Whether this process has what loading the program takes (CAP_BPF and CAP_PERFMON, or
    CAP_SYS_ADMIN): without, neither the BTF nor the cache is read (nor the cache written)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    caps = int(line.split()[1], 16)
                    break
            else:
                return False
    except (OSError, ValueError, IndexError):
        return False
    bpf_perfmon = (1 << _CAP_BPF) | (1 << _CAP_PERFMON)
    return caps & bpf_perfmon == bpf_perfmon or bool(caps & (1 << _CAP_SYS_ADMIN))


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sockscope")


_CACHE_NAME = "task_file.layout"


def _cache_path() -> str:
    return os.path.join(_cache_dir(), _CACHE_NAME)


def _open_cache_dir(create: bool) -> int:
    """An fd of the cache directory, opened from ``/`` one component at a time, each with
    O_NOFOLLOW (no symbolic link is followed) and checked: owned by root or this user, and
    writable by no one else unless sticky (``/tmp``).  Missing components are made (mode
    0700) when ``create``.  OSError when some component fails the checks."""
    import stat

    me = os.geteuid()
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", flags)
    try:
        for name in _cache_dir().split("/"):
            st = os.fstat(fd)
            if st.st_uid not in (0, me) or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
                raise PermissionError(errno.EACCES, "a directory others may change on the cache's path")
            if name in ("", "."):
                continue
            if name == "..":
                raise PermissionError(errno.EACCES, "'..' in the cache's path")
            try:
                nfd = os.open(name, flags, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(name, 0o700, dir_fd=fd)
                nfd = os.open(name, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
        st = os.fstat(fd)
        if st.st_uid != me or st.st_mode & 0o022:
            raise PermissionError(errno.EACCES, "the cache directory is not this user's alone")
        return fd
    except BaseException:
        os.close(fd)
        raise


def _kernel_key() -> str:
    u = os.uname()
    try:
        size = os.stat(_BTF_PATH).st_size
    except OSError as e:
        raise Unavailable(f"no kernel BTF ({_BTF_PATH}: {e.strerror})") from None
    return f"{_CACHE_VERSION} {u.machine} {u.release} {u.version} {size}"


def _read_cache(key: str) -> dict[str, int] | None:
    """The cached layout of the kernel ``key``, if a cache file of this user's (writable by no
    one else, in a safe directory) has one."""
    try:
        dfd = _open_cache_dir(create=False)
        try:
            fd = os.open(_CACHE_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        finally:
            os.close(dfd)
        with open(fd) as f:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None
            lines = f.read(4096).split("\n")
        if lines[0] != key:
            return None
        found = dict(zip(FIELDS, (int(v) for v in lines[1].split())))
    except (OSError, ValueError, IndexError):
        return None
    if len(found) == len(FIELDS) and all(found[k] == v for k, v in UAPI.items()):
        return found
    return None


def _write_cache(key: str, found: dict[str, int]) -> None:
    """Write the cache file (a new file, renamed into place): a failure only costs the next
    run the BTF walk again."""
    try:
        dfd = _open_cache_dir(create=True)
    except OSError:
        return
    tmp = f"{_CACHE_NAME}.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd)
        with open(fd, "w") as f:
            f.write(key + "\n" + " ".join(str(found[k]) for k in FIELDS) + "\n")
        os.replace(tmp, _CACHE_NAME, src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _forget_cache() -> None:
    try:
        dfd = _open_cache_dir(create=False)
    except OSError:
        return
    try:
        os.unlink(_CACHE_NAME, dir_fd=dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


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
    found = None if fresh else _read_cache(key)
    if found is not None:
        return found, True
    found = learned_layout()
    _write_cache(key, found)
    return found, False


def plausible(inodes: list[int], pids: list[int], fds: list[int], proc: str = "/proc", sample: int = 8) -> bool:
    """Whether the iterator's records can be believed: some of a sample of them (spread
    over the table) is a live process's fd that is that socket; no records at all only
    when /proc shows no socket fd either.  A layout with a wrong offset (``task_tgid``,
    ``i_mode``, ``i_ino``, the fd's slot) gives records none of which resolves."""
    n = len(inodes)
    if not n:
        from sockscope.owners.walk import any_socket_fd

        return not any_socket_fd(proc)
    step = max(1, n // sample)
    for i in range(0, n, step):
        try:
            if os.readlink(f"{proc}/{pids[i]}/fd/{fds[i]}") == f"socket:[{inodes[i]}]":
                return True
        except OSError:
            continue  # gone meanwhile, or never there
    return False


# -- the system calls ---------------------------------------------------------------------------------------------

# 64-bit little-endian machines: the attributes, instructions and records are packed little-endian
_NR_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "riscv64": 280}
_PROG_LOAD, _LINK_CREATE, _ITER_CREATE = 5, 28, 33
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


def _load(lay: dict[str, int]) -> int:
    insns = bytearray(program(lay))
    lic = bytearray(_LICENSE)
    name = b"sockscope_fds".ljust(16, b"\0")
    log = bytearray(1)
    for level in (0, 1):  # without a log first (cheaper); with one to explain a refusal
        if level:
            log = bytearray(1 << 16)
        attr = struct.pack(
            "<IIQQIIQII16sIIIIQIIQII",
            lay["prog_type"], len(insns) // 8, _address(insns), _address(lic),
            level, len(log) if level else 0, _address(log) if level else 0,
            0, 0, name, 0, lay["attach_type"], 0, 0, 0, 0, 0, 0, 0, lay["attach_btf_id"],
        ).ljust(144, b"\0")
        try:
            return _bpf(_PROG_LOAD, attr)
        except OSError as e:
            if e.errno == errno.EPERM:
                raise Unavailable(_NEEDS_CAPS) from None
            if level:
                text = bytes(log).split(b"\0", 1)[0].decode("ascii", "replace").strip().splitlines()
                raise Unavailable(f"the kernel refused the program: {e.strerror}"
                                  + (f" ({text[-1]})" if text else "")) from None
    raise AssertionError("unreachable")


def open_iterator(fresh: bool = False) -> int:
    """Load the program and open its iterator: an fd to :func:`read_iterator`
    (the kernel walks the processes as it is read).  ``fresh``: with the
    layout learned again from BTF, not the cached one."""
    return _open_iterator(fresh)[0]


def _open_iterator(fresh: bool) -> tuple[int, bool]:
    """(the iterator's fd, whether the layout came from the cache).  A cached layout the
    kernel refuses is discarded and learned again."""
    if os.environ.get("SOCKSCOPE_OWNERS") == "proc":
        raise Unavailable("SOCKSCOPE_OWNERS=proc")
    if not _may_load():
        raise Unavailable(_NEEDS_CAPS)
    lay, cached = _layout(fresh)
    try:
        return _attach(lay), cached
    except Unavailable as e:
        if not cached or str(e) == _NEEDS_CAPS:
            raise
        _discard(f"is refused by the kernel ({e})")
        return _attach(_layout(True)[0]), False


def _attach(lay: dict[str, int]) -> int:
    prog = link = -1
    try:
        prog = _load(lay)
        link = _bpf(_LINK_CREATE, struct.pack("<IIII", prog, 0, lay["attach_type"], 0).ljust(64, b"\0"))
        return _bpf(_ITER_CREATE, struct.pack("<II", link, 0).ljust(16, b"\0"))  # holds the link and program
    except OSError as e:
        raise Unavailable(f"bpf: {e.strerror}") from None
    finally:
        for fd in (link, prog):
            if fd >= 0:
                os.close(fd)


def _discard(why: str) -> None:
    """Say (one line on stderr) that the cached layout is not believed, and remove it."""
    import sys

    print(f"sockscope: the cached BPF layout ({_cache_path()}) {why}: discarded, learned again from the "
          "kernel's BTF", file=sys.stderr)
    _forget_cache()


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


def task_socket_fds() -> tuple[list[int], list[int], list[int]]:
    """(inodes, pids, fds) of every socket fd of every process (see :func:`decode`), checked
    with :func:`plausible`: implausible records from the cached layout discard the cache (one
    line on stderr says so) and the layout is learned again; implausible records from a
    freshly learned layout raise :class:`Unavailable` (the caller walks /proc)."""
    me = os.getpid()
    fd, cached = _open_iterator(False)
    found = decode(read_iterator(fd), me)
    if plausible(*found):
        return found
    if not cached:
        raise Unavailable("the iterator's records do not match /proc")
    _discard("gives implausible owners")
    found = decode(read_iterator(open_iterator(fresh=True)), me)
    if plausible(*found):
        return found
    raise Unavailable("the iterator's records do not match /proc")


__all__ = ["Unavailable", "task_socket_fds", "program", "layout", "decode", "cached_layout", "plausible"]
