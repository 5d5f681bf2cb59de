"""The cache of BPF layouts (:func:`sockscope.kernel.bpf.layout`): one file per user,
``$XDG_CACHE_HOME/sockscope/task_file.layout``, the kernel's name on its first line and the
facts of :data:`~sockscope.kernel.bpf_prog.FIELDS` on the second.  Read only from a file of this
user's, writable by no one else, in directories others cannot change, reached without following
a symbolic link; written to a new file renamed into place."""

from __future__ import annotations

import errno
import os

from sockscope.kernel.bpf_prog import FIELDS, UAPI, WALK_UAPI

CACHE_VERSION = "2"
_CACHE_NAME = "task_file.layout"


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sockscope")


def cache_path() -> str:
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


def kernel_key(btf_path: str) -> str:
    """The running kernel's name in the cache: its build and the size of its BTF (OSError
    without a BTF)."""
    u = os.uname()
    size = os.stat(btf_path).st_size
    return f"{CACHE_VERSION} {u.machine} {u.release} {u.version} {size}"


def read_cache(key: str) -> dict[str, int] | None:
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
    if len(found) == len(FIELDS) and all(found[k] == v for k, v in UAPI.items()) and (
            not found["walk_btf_id"] or all(found[k] == v for k, v in WALK_UAPI.items())):
        return found
    return None


def write_cache(key: str, found: dict[str, int]) -> None:
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


def forget_cache() -> None:
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


__all__ = ["kernel_key", "read_cache", "write_cache", "forget_cache", "cache_path", "CACHE_VERSION"]
