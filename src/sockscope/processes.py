"""The owner map: socket inode -> every (pid, fd) holding it, in one pass.

One walk of ``/proc/[0-9]*/fd`` with ``os.scandir`` and ``os.readlink``
builds a dict (linear in the number of fds; ss's 256-bucket hash goes
quadratic at 100k sockets, psutil keeps only the first holder).  Processes
that vanish mid-walk, or whose fds cannot be read, are skipped.  Process
names (``comm``, as ss prints them: cut at the first ``)``) are read lazily,
once per pid, only for processes that hold a socket being shown.
"""

from __future__ import annotations

import os

from sockscope.records import Owner

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Iterable

_PREFIX = "socket:["


def comm(pid: int, proc: str = "/proc") -> str | None:
    """A process's name as ss prints it: /proc/PID/stat's comm, cut at the
    first ')'; None when the process is gone or unreadable."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read(512)
    except OSError:
        return None
    start = data.find(b"(")
    if start < 0:
        return None
    stop = data.find(b")", start + 1)
    return os.fsdecode(data[start + 1 : stop if stop >= 0 else None])


class OwnerMap:
    """inode -> holders, built by :meth:`scan`.

    ``complete`` is False when some process's fds could not be read
    (typically: not root), so owners may be missing.
    """

    __slots__ = ("_holders", "_names", "_tasks", "complete", "proc")

    def __init__(self, proc: str = "/proc") -> None:
        self._holders: dict[int, list[tuple[int, int]]] = {}
        self._names: dict[int, str] = {}
        self._tasks: dict[int, list[tuple[int, int, int]]] | None = None  # -T: inode -> (pid, tid, fd)
        self.complete = True
        self.proc = proc

    @classmethod
    def scan(cls, proc: str = "/proc", pids: Iterable[int] | None = None) -> "OwnerMap":
        """Walk ``/proc/*/fd`` (or only ``pids``) once."""
        m = cls(proc)
        m.add_pids(pids)
        return m

    @classmethod
    def scan_threads(cls, proc: str = "/proc") -> OwnerMap:
        """ss -T: every thread's fd table, each holder listed with its tid
        (the thread group leader first, then its other threads, as ss walks them)."""
        m = cls.scan(proc)
        tasks: dict[int, list[tuple[int, int, int]]] = {}
        prefix = _PREFIX
        plen = len(prefix)
        for pid in sorted(int(n) for n in os.listdir(proc) if n.isdigit()):
            try:
                tids = sorted(int(t) for t in os.listdir(f"{proc}/{pid}/task") if t.isdigit())
            except OSError:
                continue
            for tid in [pid] + [t for t in tids if t != pid]:
                fddir = f"{proc}/{tid}/fd/"
                try:
                    fds = os.listdir(fddir)
                except OSError:
                    continue
                for name in fds:
                    try:
                        target = os.readlink(fddir + name)
                    except OSError:
                        continue
                    if target[:plen] == prefix:
                        tasks.setdefault(int(target[plen:-1]), []).append((pid, tid, int(name)))
        m._tasks = tasks
        return m

    def add_pids(self, pids: Iterable[int] | None = None) -> None:
        """Scan the fds of ``pids`` (default: every process) into the map."""
        holders = self._holders
        readlink = os.readlink
        prefix = _PREFIX
        plen = len(prefix)
        if pids is None:
            try:
                names = os.listdir(self.proc)
            except OSError:
                self.complete = False
                return
            pid_list = sorted(int(n) for n in names if n.isdigit())
        else:
            pid_list = list(pids)
        for pid in pid_list:
            fddir = f"{self.proc}/{pid}/fd/"
            try:
                fds = os.listdir(fddir)
            except PermissionError:
                self.complete = False
                continue
            except OSError:
                continue  # the process is gone
            # procfs lists fds in ascending order already
            for name in fds:
                try:
                    target = readlink(fddir + name)
                except OSError:
                    continue
                if target[:plen] == prefix:
                    ino = int(target[plen:-1])
                    h = holders.get(ino)
                    if h is None:
                        holders[ino] = [(pid, int(name))]
                    else:
                        h.append((pid, int(name)))

    def owners(self, inode: int) -> tuple[Owner, ...]:
        """Every holder of ``inode``, in ss's order (last discovered first)."""
        if not inode:
            return ()
        if self._tasks is not None:
            t = self._tasks.get(inode)
            if not t:
                return ()
            return tuple(Owner(pid, fd, self.name(tid), tid) for pid, tid, fd in reversed(t))
        h = self._holders.get(inode)
        if not h:
            return ()
        name = self.name
        return tuple(Owner(pid, fd, name(pid)) for pid, fd in reversed(h))

    def holders(self, inode: int) -> list[tuple[int, int]]:
        """All (pid, fd) for ``inode`` in discovery order."""
        return self._holders.get(inode, [])

    def __contains__(self, inode: object) -> bool:
        return inode in self._holders

    def __len__(self) -> int:
        return len(self._holders)

    def name(self, pid: int) -> str:
        """The process name as ss prints it (see :func:`comm`), read once per pid."""
        n = self._names.get(pid)
        if n is None:
            n = self._names[pid] = comm(pid, self.proc) or ""
        return n


__all__ = ["OwnerMap"]
