"""An owner map (socket inode -> (pid, fd) holders) kept up to date between ticks.

``sockscope top`` must not readlink every fd of every process on every tick
(at 10k sockets that is ~65 ms: ~7 ms to list a 5k-fd directory, ~5 µs per
readlink).  What procfs offers, measured on kernel 6.18:

* ``/proc/PID/fd``'s mtime never changes; its ``st_size`` is the number of
  open fds (kernels >= 6.2), and a ``stat`` costs ~1.5 µs.  A changed count
  means the process opened or closed something; an unchanged count can hide a
  close followed by an open (fd numbers are reused at once).
* Socket inodes come from a counter and are not reused, so an inode seen once
  keeps its meaning; only its set of holders can change (fork, fd passing,
  close in one of the holders).

So each :meth:`OwnerCache.refresh` does, in order:

1. list ``/proc``: new pids are scanned, vanished pids dropped;
2. ``stat`` every known pid's fd directory: a changed fd count (or a changed
   directory inode: a reused pid) triggers a *delta rescan* of that pid:
   list its fds and readlink only those whose number is new, or that pointed
   to something other than a live socket of the dump (an fd number may have
   been closed and reused).  A process that holds none of the live sockets
   (one in another network namespace, say) gets only its new fd numbers read;
3. if some live inodes still have no holder: a delta rescan of the *hint*
   pids (the caller's guess: e.g. the owners of the listener on the same
   port), then, at most every ``sweep_every`` seconds, a delta rescan of every
   pid.  Inodes still unowned after a sweep (not yet accepted, or held by a
   process we may not read) are not looked for again until the next full scan;
4. every ``full_every`` seconds, a full scan (every fd readlinked): the
   safety net for holder changes the steps above cannot see.

With no socket churn, a tick costs one ``listdir`` of ``/proc`` and one
``stat`` per process.  :attr:`stats` counts the work done, for measurement.

All of the above is the fallback.  Where the kernel's task_file iterator can
be used (root, BTF, this pid namespace: see :mod:`sockscope.kernel.bpf`),
every refresh simply asks the kernel for every socket fd of every process:
exact on every tick (fd passing and closes in one of several holders
included), ~5 ms at 10k sockets and ~50 ms at 100k, whatever the churn.
"""

from __future__ import annotations

import os
import time
from typing import AbstractSet, Callable, Collection, Iterable

from sockscope.processes import OwnerMap, comm

_PREFIX = "socket:["


class OwnerCache:
    """inode -> [(pid, fd)], refreshed incrementally; see the module docstring."""

    def __init__(self, proc: str = "/proc", *, full_every: float = 60.0, sweep_every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.proc = proc
        self.full_every = full_every
        self.sweep_every = sweep_every
        self.clock = clock
        self._fds: dict[int, dict[int, int]] = {}  # pid -> {fd: inode, 0 = not a socket}
        self._sig: dict[int, tuple[int, int]] = {}  # pid -> (fd dir inode, fd count)
        self._index: dict[int, list[tuple[int, int]]] = {}
        self._names: dict[int, str] = {}
        self._given_up: set[int] = set()
        self._denied: set[int] = set()
        self._last_full = -1e18
        self._last_sweep = -1e18
        self.complete = True
        self.stats = {"full": 0, "sweeps": 0, "pid_scans": 0, "readlinks": 0, "kernel": 0}
        self._kernel = proc == "/proc"  # the task_file iterator, until it fails once
        self.via = "bpf" if self._kernel else "proc"

    # -- queries -------------------------------------------------------------

    def holders(self, inode: int) -> list[tuple[int, int]]:
        """(pid, fd) holding ``inode``, in pid then fd order."""
        return self._index.get(inode, [])

    @property
    def index(self) -> dict[int, list[tuple[int, int]]]:
        """The inode -> holders dict itself, for hot loops.  Read-only: a
        holders list is never changed in place (a change replaces it), so a
        caller may keep the lists it got."""
        return self._index

    def __contains__(self, inode: object) -> bool:
        return inode in self._index

    def name(self, pid: int) -> str:
        """comm of ``pid`` (cut at the first ')'), read once per scan of the pid."""
        n = self._names.get(pid)
        if n is None:
            n = self._names[pid] = comm(pid, self.proc) or ""
        return n

    def pids(self) -> list[int]:
        return sorted(self._fds)

    # -- refresh -------------------------------------------------------------

    def refresh(self, live: AbstractSet[int], hints: Callable[[set[int]], Iterable[int]] | None = None) -> None:
        """Bring the map up to date for the live socket inodes ``live`` (see module doc)."""
        now = self.clock()
        if self._kernel:
            if self._refresh_from_kernel(now):
                return
            self._kernel = False  # not here: the /proc walk from now on
            self.via = "proc"
        if now - self._last_full >= self.full_every:
            self.full_scan(live)
            return
        try:
            pids = {int(n) for n in os.listdir(self.proc) if n.isdigit()}
        except OSError:
            self.complete = False
            return
        for pid in [p for p in self._fds if p not in pids]:
            self._drop(pid)
        for pid in list(self._denied):
            if pid not in pids:
                self._denied.discard(pid)
        stat = os.stat
        proc = self.proc
        for pid in pids:
            if pid in self._denied:
                continue
            old = self._sig.get(pid)
            try:
                st = stat(f"{proc}/{pid}/fd")
            except OSError:
                if old is not None:
                    self._drop(pid)
                continue
            sig = (st.st_ino, st.st_size)
            if old is None:
                self._scan(pid, None)
            elif sig != old:
                self._scan(pid, live if sig[0] == old[0] else None)
        index = self._index
        missing = {i for i in live if i and i not in index and i not in self._given_up}
        if missing and hints is not None:
            for pid in set(hints(missing)):
                if pid in self._fds:
                    self._scan(pid, live)
            missing = {i for i in missing if i not in index}
        if missing and now - self._last_sweep >= self.sweep_every:
            self._last_sweep = now
            self.stats["sweeps"] += 1
            for pid in list(self._fds):
                self._scan(pid, live)
            missing = {i for i in missing if i not in index}
            self._given_up |= missing
        if len(self._given_up) > 2 * len(live) + 1024:
            self._given_up &= set(live)

    def _refresh_from_kernel(self, now: float) -> bool:
        """The whole map from the task_file iterator; False if it cannot be used."""
        from sockscope.kernel import bpf

        try:
            inodes, pids, fds = bpf.task_socket_fds()
        except bpf.Unavailable:
            return False
        fresh = OwnerMap(self.proc)
        fresh.add_records(inodes, pids, fds)  # holders in pid, then fd order
        index = self._index
        index.clear()  # the dict stays the same object; its lists are new ones (see index)
        index.update(fresh.holder_map())
        if now - self._last_full >= self.full_every:  # names re-read now and then (pids are reused)
            self._last_full = now
            self._names.clear()
        else:
            present = set(pids)
            for pid in [p for p in self._names if p not in present]:
                del self._names[pid]
        self.complete = True
        self.stats["kernel"] += 1
        return True

    def full_scan(self, live: Collection[int] = ()) -> None:
        """Readlink every fd of every process (also the first refresh)."""
        self._last_full = self._last_sweep = self.clock()
        self.stats["full"] += 1
        self._fds.clear()
        self._sig.clear()
        self._index.clear()
        self._names.clear()
        self._given_up.clear()
        self._denied.clear()
        self.complete = True
        try:
            pids = sorted(int(n) for n in os.listdir(self.proc) if n.isdigit())
        except OSError:
            self.complete = False
            return
        for pid in pids:
            self._scan(pid, None)
        index = self._index
        self._given_up = {i for i in live if i and i not in index}

    def _drop(self, pid: int) -> None:
        fds = self._fds.pop(pid, None)
        self._sig.pop(pid, None)
        self._names.pop(pid, None)
        if fds:
            index = self._index
            for fd, ino in fds.items():
                if ino:
                    h = index.get(ino)
                    if h is not None:
                        rest = [x for x in h if x != (pid, fd)]
                        if rest:
                            index[ino] = rest
                        else:
                            del index[ino]

    def _scan(self, pid: int, live: AbstractSet[int] | None) -> None:
        """(Re)read ``pid``'s fds; with ``live``, skip fds known to hold a live socket."""
        fddir = f"{self.proc}/{pid}/fd"
        try:
            st = os.stat(fddir)
            names = os.listdir(fddir)
        except PermissionError:
            self.complete = False
            self._denied.add(pid)
            self._drop(pid)
            return
        except OSError:
            self._drop(pid)
            return
        self.stats["pid_scans"] += 1
        old = self._fds.get(pid) if live is not None else None
        # A process holding none of the live sockets (e.g. in another network
        # namespace): only its new fd numbers are read, not the reused ones.
        relevant = old is not None and not live.isdisjoint(old.values())  # type: ignore[union-attr]
        new: dict[int, int] = {}
        readlink = os.readlink
        prefix = _PREFIX
        plen = len(prefix)
        n_read = 0
        for name in names:
            fd = int(name)
            if old is not None:
                ino = old.get(fd)
                if ino is not None and (not relevant or (ino and ino in live)):  # type: ignore[operator]
                    new[fd] = ino
                    continue
            try:
                target = readlink(f"{fddir}/{name}")
            except PermissionError:  # listed but not readable: owners may be missing
                self.complete = False
                continue
            except OSError:
                continue
            n_read += 1
            new[fd] = int(target[plen:-1]) if target.startswith(prefix) else 0
        self.stats["readlinks"] += n_read
        self._drop(pid)
        self._fds[pid] = new
        self._sig[pid] = (st.st_ino, st.st_size)
        index = self._index
        for fd in sorted(new):
            ino = new[fd]
            if ino:
                h = index.get(ino)
                if h is None:
                    index[ino] = [(pid, fd)]
                else:
                    index[ino] = sorted(h + [(pid, fd)])


__all__ = ["OwnerCache"]
