"""The owner service: one front for every way of finding which processes hold which sockets.

Sources, tried in this order by :func:`scan` and :class:`OwnerTracker`:

* ``bpf`` — the kernel's task_file iterator (:mod:`sockscope.kernel.bpf`):
  every socket fd of every process in one ``read``; used when the procfs is
  the default ``/proc`` (its pids are this pid namespace's), the whole machine
  is asked for, and it is usable (root with CAP_BPF and CAP_PERFMON, kernel
  BTF, this pid namespace; ``SOCKSCOPE_OWNERS=proc`` turns it off).  Its
  results are checked against /proc before they are believed (see ``bpf``);
* ``proc`` — the full walk of ``PROC/*/fd`` (:func:`sockscope.owners.walk.walk`);
* the incremental walk (:class:`sockscope.owners.walk.IncrementalWalk`) for a
  map kept up to date between ticks (``top``).

Running in the background is done one way, :class:`Pending`: the work runs
in a thread (system calls, the GIL released) while the caller dumps sockets,
and :meth:`Pending.result` returns only once that thread has ended (nothing
is left running after a call returns).
"""

from __future__ import annotations

import os

from sockscope.errors import SockscopeError
from sockscope.owners.model import OwnerMap, comm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import AbstractSet, Any, Callable, Collection, Generic, Iterable, TypeVar

    T = TypeVar("T")
else:
    class Generic:  # typing is not imported at run time (start-up): Pending[T] only for type checkers
        def __class_getitem__(cls, item: object) -> type:
            return cls

    T = None


class ProcfsError(SockscopeError, FileNotFoundError):
    """The procfs path given is not a procfs (nothing of /proc's is there)."""


def check_procfs(proc: str) -> None:
    """Raise :class:`ProcfsError` unless ``proc`` looks like a procfs (it has ``self/fd``)."""
    if not os.path.isdir(f"{proc}/self/fd"):
        import errno

        raise ProcfsError(errno.ENOENT, f"{proc} is not a procfs: it has no self/fd")


def iterator_possible(proc: str = "/proc") -> bool:
    """Whether :func:`scan` of every process will try the kernel's iterator: the default procfs, and
    the iterator neither turned off nor without the privileges it needs (``kernel.bpf_caps.refused``,
    the loader's own check, read without importing the loader, ~2 ms).  False: the /proc walk, for
    sure; True: the iterator, unless it fails on the way (no BTF, the kernel refuses it, implausible
    records)."""
    from sockscope.kernel.bpf_caps import refused

    return proc == "/proc" and refused() is None


def kernel_records() -> tuple[list[int], list[int], list[int]] | None:
    """(inodes, pids, fds) of every socket fd from the kernel's iterator, or None where it cannot be used
    (where it may not be tried at all, ``kernel.bpf_caps.refused``, the loader is not imported: ~1.7 ms)."""
    from sockscope.kernel.bpf_caps import refused

    if refused() is not None:
        return None
    from sockscope.kernel import bpf
    from sockscope.owners.walk import any_socket_fd

    try:
        return bpf.task_socket_fds(any_socket_fd)
    except bpf.Unavailable:
        return None


def scan(proc: str = "/proc", pids: Iterable[int] | None = None, exclude: int = 0,
         threads: bool = False) -> OwnerMap:
    """Every process's socket fds (or only those of ``pids``), leaving out pid
    ``exclude``; with ``threads`` (ss -T) every thread's fd table too."""
    from sockscope.owners import walk

    m = OwnerMap(proc)
    found = kernel_records() if pids is None and proc == "/proc" else None
    if found is not None:
        m.add_records(*found, exclude=exclude)
    else:
        walk.walk(m, pids, exclude)
    if threads:
        walk.walk_threads(m)
    return m


def socket_fds(proc: str = "/proc") -> tuple[list[int], list[int], list[int]]:
    """(inodes, pids, fds) of every socket fd of every process, in pid then fd order: what
    :func:`scan` finds (the kernel's iterator, else the /proc walk), as columns, no map made
    (:func:`sockscope.owners.model.psutil_pick` picks from them)."""
    found = kernel_records() if proc == "/proc" else None
    if found is not None:
        return found
    from sockscope.owners import walk

    inodes, pids, fds, _complete = walk.records(proc)
    return inodes, pids, fds


class Pending(Generic[T]):
    """``work()`` running in a thread of its own; :meth:`result` waits for it.

    The thread's end is waited for too (its state released, then its task gone
    from ``/proc/self/task``): no thread of ours outlives :meth:`result`.
    """

    __slots__ = ("_done", "_box", "_thread")

    def __init__(self, work: Callable[[], T]) -> None:
        import _thread

        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._box: list[T | BaseException] = []
        self._thread: tuple[Any, int] = (None, 0)  # (the thread's, once it runs: transport.own_thread)
        _thread.start_new_thread(self._run, (work,))

    def _run(self, work: Callable[[], T]) -> None:
        from sockscope.kernel.transport import own_thread

        self._thread = own_thread()
        try:
            self._box.append(work())
        except BaseException as e:  # raised in the caller's thread
            self._box.append(e)
        finally:
            self._done.release()

    def ready(self) -> bool:
        return bool(self._box)

    def result(self) -> T:
        """The work's result (its exception raised here), once its thread has ended."""
        if self._done is not None:
            from sockscope.kernel.transport import wait_gone

            self._done.acquire()
            self._done = None  # type: ignore[assignment]
            wait_gone(self._thread)
        got = self._box[0]
        if isinstance(got, BaseException):
            raise got
        return got


def later(proc: str = "/proc", exclude: int = 0) -> Pending[OwnerMap]:
    """:func:`scan` of every process, in the background."""
    return Pending(lambda: scan(proc, exclude=exclude))


class OwnerTracker:
    """inode -> [(pid, fd)] kept up to date between calls of :meth:`refresh`
    (``top``): from the kernel's iterator on every refresh where it can be
    used (exact whatever the churn, ~5 ms at 10k sockets), else by the
    incremental /proc walk."""

    def __init__(self, proc: str = "/proc", *, full_every: float = 60.0, sweep_every: float = 5.0,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        from sockscope.owners.walk import IncrementalWalk

        self.proc = proc
        self.clock = clock or time.monotonic
        self._walk = IncrementalWalk(proc, full_every, sweep_every)
        self._kernel = proc == "/proc"  # the task_file iterator, until it fails once
        self.via = "bpf" if self._kernel else "proc"

    # -- queries -------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return self._walk.complete

    @property
    def why(self) -> str:
        return self._walk.why

    @property
    def stats(self) -> dict[str, int]:
        return self._walk.stats

    def holders(self, inode: int) -> list[tuple[int, int]]:
        """(pid, fd) holding ``inode``, in pid then fd order."""
        return self._walk.index.get(inode, [])

    @property
    def index(self) -> dict[int, list[tuple[int, int]]]:
        """The inode -> holders dict itself, for hot loops.  Read-only: a
        holders list is never changed in place (a change replaces it), so a
        caller may keep the lists it got."""
        return self._walk.index

    def __contains__(self, inode: object) -> bool:
        return inode in self._walk.index

    def name(self, pid: int) -> str:
        """comm of ``pid`` (cut at the first ')'), read once per scan of the pid."""
        names = self._walk.names
        n = names.get(pid)
        if n is None:
            n = names[pid] = comm(pid, self.proc) or ""
        return n

    def pids(self) -> list[int]:
        return self._walk.pids()

    # -- refresh -------------------------------------------------------------

    def refresh(self, live: AbstractSet[int], hints: Callable[[set[int]], Iterable[int]] | None = None) -> None:
        """Bring the map up to date for the live socket inodes ``live``."""
        now = self.clock()
        if self._kernel:
            if self._refresh_from_kernel(now):
                return
            self._kernel = False  # not here: the /proc walk from now on
            self.via = "proc"
        self._walk.refresh(now, live, hints)

    def full_scan(self, live: Collection[int] = ()) -> None:
        """Readlink every fd of every process."""
        self._walk.full_scan(self.clock(), live)

    def _refresh_from_kernel(self, now: float) -> bool:
        found = kernel_records()
        if found is None:
            return False
        w = self._walk
        fresh = OwnerMap(self.proc)
        fresh.add_records(*found)  # holders in pid, then fd order
        w.index.clear()  # the dict stays the same object; its lists are new ones (see index)
        w.index.update(fresh.holder_map())
        if now - w.last_full >= w.full_every:  # names re-read now and then (pids are reused)
            w.last_full = now
            w.names.clear()
        else:
            present = set(found[1])
            for pid in [p for p in w.names if p not in present]:
                del w.names[pid]
        w.complete, w.why = True, ""
        w.stats["kernel"] += 1
        return True


__all__ = ["iterator_possible", "scan", "socket_fds", "later", "Pending", "OwnerTracker", "kernel_records",
           "check_procfs", "ProcfsError"]
