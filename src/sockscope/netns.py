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
    from typing import Callable, Iterator, TypeVar

    T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/var/run/netns"


class NetnsError(SockscopeError):
    """A network namespace that cannot be found or entered."""


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)
    if setns is not None:  # Python >= 3.12
        setns(fd, CLONE_NEWNET)
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
    """Move this process into the named namespace (``ip netns`` name or a path), like ss -N."""
    path = name if "/" in name else os.path.join(NETNS_RUN_DIR, name)
    fd = _open(path)
    try:
        _setns(fd)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise NetnsError(f"cannot enter network namespace {name!r}: permission denied (needs root)") from exc
        raise NetnsError(f"cannot enter network namespace {name!r}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def namespaces(proc: str = "/proc") -> list[tuple[str, str]]:
    """Every network namespace visible: ``[(label, path)]``, the current one first.

    The label is the ``ip netns`` name when there is one, else ``ino:N``.
    """
    seen: dict[int, tuple[str, str]] = {}
    own = os.stat(f"{proc}/self/ns/net").st_ino
    seen[own] = (f"ino:{own}", f"{proc}/self/ns/net")
    try:
        names = sorted(os.listdir(NETNS_RUN_DIR))
    except OSError:
        names = []
    for n in names:
        p = os.path.join(NETNS_RUN_DIR, n)
        try:
            ino = os.stat(p).st_ino
        except OSError:
            continue
        if ino not in seen or seen[ino][0].startswith("ino:"):
            seen[ino] = (n, p)
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        p = f"{proc}/{entry}/ns/net"
        try:
            ino = os.stat(p).st_ino
        except OSError:
            continue
        if ino not in seen:
            seen[ino] = (f"ino:{ino}", p)
    first = seen.pop(own)
    return [first] + sorted(seen.values())


def visit(targets: list[tuple[str, str]], fn: Callable[[str], Iterator[T]]) -> Iterator[T]:
    """Run ``fn(label)`` inside each namespace in turn, yielding what it yields,
    and return to the original namespace after each one (also on error)."""
    home = _open("/proc/self/ns/net")
    try:
        for label, path in targets:
            try:
                fd = _open(path)
            except NetnsError:
                continue  # the process owning it went away
            try:
                try:
                    _setns(fd)
                except OSError as exc:
                    raise NetnsError(f"cannot enter network namespace {label}: {exc.strerror}") from exc
            finally:
                os.close(fd)
            try:
                yield from fn(label)
            finally:
                _setns(home)
    finally:
        os.close(home)


__all__ = ["enter", "namespaces", "visit", "NetnsError"]
