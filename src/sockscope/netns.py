"""Network namespaces: enter one by name (ss -N) or visit every one (--all-netns).

A namespace is entered with ``setns(2)`` on the calling thread (Python 3.11 has
no ``os.setns``, so ctypes calls libc).  sockscope lists sockets from its
single main thread, so entering a namespace there moves sock_diag and
``/proc/self/net`` with it; :func:`visit` returns to the original namespace
afterwards.  Namespaces are found by name in ``/var/run/netns`` and through
``/proc/*/ns/net`` of running processes, deduplicated by namespace inode.
"""

from __future__ import annotations

import errno
import os

from sockscope.errors import SockscopeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable, Iterator, TypeVar

    from sockscope.records import Socket

    T = TypeVar("T")

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
NETNS_RUN_DIR = "/var/run/netns"
NETNS_ETC_DIR = "/etc/netns"  # a named namespace's own /etc files (hosts, resolv.conf, …)
_MS_RDONLY, _MS_BIND, _MS_REC, _MS_SLAVE = 0x1, 0x1000, 0x4000, 0x80000
_MNT_DETACH = 2


class NetnsError(SockscopeError):
    """A network namespace that cannot be found or entered."""


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at ``fd``."""
    os_setns = getattr(os, "setns", None)
    if os_setns is not None:  # Python >= 3.12
        os_setns(fd, CLONE_NEWNET)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetnsError(f"cannot open network namespace {path}: {exc.strerror}") from exc


def enter(name: str) -> None:
    """Move this process into the named namespace (``ip netns`` name or a path), like ss -N; for a
    name, the mounts ss and ``ip netns exec`` make are made too (:func:`_mounts`): its own /etc
    files seen over /etc's (``-r`` resolves with its hosts and resolv.conf), and its /sys over the
    host's (whose cgroup2 mount goes with it: cgroups are then ``unreachable:ID``, as in ss)."""
    path = name if "/" in name else os.path.join(NETNS_RUN_DIR, name)
    fd = _open(path)
    try:
        setns(fd)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise NetnsError(f"cannot enter network namespace {name!r}: permission denied (needs root)") from exc
        raise NetnsError(f"cannot enter network namespace {name!r}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if "/" not in name:
        _mounts(name)


def _mounts(name: str) -> None:
    """iproute2's ``netns_switch`` after ``setns``, in a mount namespace of this process's own whose
    mounts reach no other: /sys unmounted and a sysfs of the namespace mounted there (read-only where
    the old one could not be unmounted and is), then each file of /etc/netns/NAME bound over /etc's
    of its name.  A step that fails is one line on stderr, and the listing goes on with the mounts as
    they are (ss exits where the sysfs cannot be mounted)."""
    import ctypes
    import sys

    etc = os.path.join(NETNS_ETC_DIR, name)
    try:
        entries = sorted(os.listdir(etc))
    except OSError:
        entries = []
    libc = ctypes.CDLL(None, use_errno=True)

    def failed(what: str) -> None:
        from sockscope.errors import printable

        print(f"sockscope: {printable(what)}: {os.strerror(ctypes.get_errno())}", file=sys.stderr)

    if libc.unshare(CLONE_NEWNS) != 0:
        return failed(f"cannot enter {name!r}'s mounts (a mount namespace of its own)")
    if libc.mount(b"", b"/", b"none", _MS_SLAVE | _MS_REC, None) != 0:
        return failed(f"cannot enter {name!r}'s mounts (mounts kept from the others)")
    flags = 0
    if libc.umount2(b"/sys", _MNT_DETACH) != 0:  # (none there, or busy: then overlaid, read-only if it is)
        try:
            flags = _MS_RDONLY if os.statvfs("/sys").f_flag & os.ST_RDONLY else 0
        except OSError:
            pass
    if libc.mount(os.fsencode(name), b"/sys", b"sysfs", flags, None) != 0:
        failed(f"cannot mount {name!r}'s /sys")
    for entry in entries:
        source, target = f"{etc}/{entry}", f"/etc/{entry}"
        if libc.mount(os.fsencode(source), os.fsencode(target), b"none", _MS_BIND, None) != 0:
            failed(f"cannot bind {source} over {target}")


def found(proc: str = "/proc", run_dir: str = NETNS_RUN_DIR) -> list[tuple[str, int, tuple[str, ...]]]:
    """Every network namespace: ``(label, inode, paths that open it, tried in order)``, named ones
    (label = name) and those of processes (``ino:<inode>``).  Plain tuples: ``-N`` and
    ``--all-netns`` import no ``dataclasses`` (~14 ms of start here); the exporter's
    :class:`~sockscope.exporter.NetnsRef` records are made of these."""
    try:
        nsfs_dev = os.stat(f"{proc}/thread-self/ns/net").st_dev
    except OSError as exc:
        raise SockscopeError(f"cannot read {proc}/thread-self/ns/net: {exc.strerror}") from exc
    seen: dict[int, tuple[str, list[str]]] = {}
    try:
        names = sorted(os.listdir(run_dir))
    except FileNotFoundError:
        names = []
    except OSError as exc:
        raise SockscopeError(f"cannot list {run_dir}: {exc.strerror}") from exc
    for name in names:
        path = os.path.join(run_dir, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if st.st_dev != nsfs_dev:
            continue  # a leftover file, not a mounted namespace
        if st.st_ino not in seen:
            seen[st.st_ino] = (name, [path])
    from sockscope.owners.walk import pids_of

    try:
        pids = pids_of(proc)
    except OSError as exc:
        raise SockscopeError(f"cannot list {proc}: {exc.strerror}") from exc
    for pid in pids:
        path = f"{proc}/{pid}/ns/net"
        try:
            ino = os.stat(path).st_ino
        except OSError:
            continue  # gone, or not ours to see
        entry = seen.get(ino)
        if entry is None:
            seen[ino] = (f"ino:{ino}", [path])
        elif len(entry[1]) < 4:
            entry[1].append(path)  # spares, in case the first process exits before we open it
    return [(label, ino, tuple(paths)) for ino, (label, paths) in seen.items()]


def namespaces(proc: str = "/proc") -> list[tuple[str, str]]:
    """Every network namespace visible: ``[(label, path)]``, the current one first,
    the others by label (``ip netns`` name where there is one, else ``ino:N``)."""
    own = os.stat(f"{proc}/thread-self/ns/net").st_ino  # (the calling thread's: a thread may have its own)
    refs = found(proc)
    first = [(label, paths[0]) for label, ino, paths in refs if ino == own] or [
        (f"ino:{own}", f"{proc}/thread-self/ns/net")]
    return first + sorted((label, paths[0]) for label, ino, paths in refs if ino != own)


def visit(targets: list[tuple[str, str]], fn: Callable[[str], Iterator[T]], gone_ok: bool = True) -> Iterator[T]:
    """Run ``fn(label)`` inside each namespace in turn, yielding what it yields,
    and return to the original namespace after each one (also on error).

    A namespace that cannot be opened is an error (:class:`NetnsError`),
    except one that no longer exists when ``gone_ok`` (what :func:`namespaces`
    found may go away before it is visited: a process that held one exits, a
    named one is deleted): that one is skipped.  The calling thread's own namespace (where a thread
    that entered one of its own returns: not the process's) is not entered again, which needs no
    privilege."""
    home = _open("/proc/thread-self/ns/net")
    try:
        here = os.fstat(home)
        for label, path in targets:
            try:
                fd = _open(path)
            except NetnsError as exc:
                if gone_ok and isinstance(exc.__cause__, FileNotFoundError):
                    continue
                if label.startswith("ino:"):
                    continue  # the process holding it went away
                raise
            try:
                there = os.fstat(fd)
                away = (there.st_dev, there.st_ino) != (here.st_dev, here.st_ino)
                try:
                    if away:
                        setns(fd)
                except OSError as exc:
                    raise NetnsError(f"cannot enter network namespace {label}: {exc.strerror}") from exc
            finally:
                os.close(fd)
            try:
                yield from fn(label)
            finally:
                if away:
                    setns(home)
    finally:
        os.close(home)


def check_enterable(targets: list[tuple[str, str]]) -> None:
    """Enter each of ``targets`` and come back, as :func:`visit` will (the same skips), reading
    nothing: a namespace that cannot be entered (without privilege, setns needs CAP_SYS_ADMIN) is
    a :class:`NetnsError` before a caller has printed anything, not after the first namespace's
    rows (a table cut short, a JSON document left open)."""
    for _ in visit(targets, _nothing):
        pass


def _nothing(label: str) -> Iterator[None]:
    return iter(())


def labelled(socks: Iterable[Socket], label: str) -> Iterator[Socket]:
    """The records ``socks``, read inside the namespace ``label`` (the calling thread is in it
    now), as records carrying that label; the interfaces they name (a device a socket is bound to,
    a packet socket's interface) are looked up now, while in it (an interface index means
    something only in its own namespace: :func:`sockscope.render.names.ifname` then answers with
    this namespace's name from anywhere)."""
    from sockscope._addr import AF_PACKET
    from sockscope.records import evolve
    from sockscope.render import names

    for s in socks:
        if s.ifindex:
            names.learn_ifname(label, s.ifindex)
        if s.family == AF_PACKET and s.local.port:  # a packet socket's "port" is its interface
            names.learn_ifname(label, s.local.port)
        yield evolve(s, netns=label)


__all__ = ["enter", "namespaces", "found", "visit", "check_enterable", "labelled", "setns", "NetnsError"]
