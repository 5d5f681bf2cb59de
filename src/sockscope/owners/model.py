"""The owner map: socket inode -> every (pid, fd) holding it, whichever source found them.

An :class:`OwnerMap` is plain data: the holders of each socket inode in
discovery order (ascending pid, then fd), process names read lazily once per
pid, whether every process could be read (``complete``), and which source
made it (``via``: ``"bpf"`` or ``"proc"``).  The sources that fill it are in
:mod:`sockscope.owners.service`; ss's ``users:(…)`` text is made from it in
:mod:`sockscope.render.users`.
"""

from __future__ import annotations

import os
from itertools import compress, repeat
from _operator import eq, is_not, itemgetter

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Any, Collection

    from sockscope.errors import CannotInspect
    from sockscope.records import Owner


def unreadable_hint(why: str = "") -> str:
    """Why some processes' fds could not be read, for the warning that says so: ``why`` where the
    walk knew it (:func:`short_of_fds`), else what denies them."""
    if why:
        return why
    if os.geteuid() != 0:
        return "run as root"
    return "denied even to root here: another user namespace or a security module"


def short_of_fds(err: int) -> str:
    """The hint for a walk that ran out of file descriptors (each process's fd directory takes one
    while it is read): this process's limit (EMFILE) or the system's (ENFILE)."""
    import errno

    if err == errno.ENFILE:
        return "the system's file table is full (ENFILE: fs.file-max)"
    import resource

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return f"sockscope ran out of file descriptors (EMFILE: ulimit -n is {limit})"


def fds_error(proc: str, pid: int, exc: OSError) -> CannotInspect:
    """The error for a process whose fds could not be read (``who``, ``process_connections``), in
    one line: :class:`~sockscope.errors.AccessDenied` where permission is denied, and why; else
    :class:`~sockscope.errors.CannotInspect` with the error as it came."""
    from sockscope.errors import AccessDenied, CannotInspect

    if isinstance(exc, PermissionError):
        return AccessDenied(f"cannot read the file descriptors of pid {pid}: permission denied ({unreadable_hint()})")
    return CannotInspect(f"cannot read {proc}/{pid}/fd: {exc.strerror or exc}")


def comm(pid: int, proc: str = "/proc") -> str | None:
    """A process's name as ss prints it: its comm cut at the first ')' (ss reads /proc/PID/stat's
    ``(comm)`` up to there); None when the process is gone or unreadable.

    Read from /proc/PID/comm, which holds the same bytes (the kernel writes both with
    ``proc_task_name``, unescaped) and a newline: the kernel makes stat's ~50 other fields (memory,
    times, signals) for nothing, ~13 µs a process here, and a listing with owners reads one a
    process holding sockets.  Plain ``os`` calls: no file object a process."""
    try:
        fd = os.open(f"{proc}/{pid}/comm", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 256)
    except OSError:
        return None
    finally:
        os.close(fd)
    if data[-1:] == b"\n":
        data = data[:-1]
    stop = data.find(b")")
    return os.fsdecode(data[:stop] if stop >= 0 else data)


def psutil_pick(inodes: list[int], pids: list[int], fds: list[int], wanted: Collection[int] | None = None
                ) -> tuple[dict[int, int], dict[int, int]]:
    """psutil's owner of each socket inode among the records ``inodes``, ``pids``, ``fds``
    (in pid, then fd order, as :func:`sockscope.owners.service.socket_fds` gives them): the
    first fd of the last process (in pid order) holding it (inode -> fd, inode -> pid): the
    owner psutil gives an inet socket.  Only inodes in ``wanted`` when given: the records of
    sockets nobody asked about are dropped first, by C-level loops (a host may hold many more
    sockets than one network namespace, or one kind, has).  No Python code runs per record."""
    if wanted is not None:
        at = list(compress(range(len(inodes)), map(wanted.__contains__, inodes)))
        if len(at) < len(inodes):
            inodes, pids, fds = (list(map(col.__getitem__, at)) for col in (inodes, pids, fds))
    pid_of = dict(zip(inodes, pids))  # the last record of an inode: the last process holding it
    if len(pid_of) == len(inodes):  # the usual case: every socket held once
        return dict(zip(inodes, fds)), pid_of
    # some socket held more than once (forked servers, dup'ed fds): the records of each
    # socket's last process, then the first of them (read backwards, the first one wins)
    inodes, fds = _of_last_process(pid_of, inodes, pids, inodes, fds)
    return dict(zip(reversed(inodes), reversed(fds))), pid_of


def _of_last_process(last: dict[int, int], inodes: list[int], pids: list[int], *cols: list[Any]) -> list[list[Any]]:
    """``cols`` (columns of the records ``inodes``, ``pids``) at the records of each inode's last
    process (``last``: inode -> that pid), by C-level loops."""
    keep = list(map(eq, pids, map(last.__getitem__, inodes)))
    return [list(compress(col, keep)) for col in cols]


def psutil_held(inodes: list[int], pids: list[int], fds: list[int], rows: dict[int, int]
                ) -> tuple[list[int], list[int], list[int], int]:
    """psutil's owners of UNIX sockets: every fd of the last process (in pid order) holding
    one.  For the records ``inodes``, ``pids``, ``fds`` (in pid, then fd order) of the sockets
    in ``rows`` (inode -> its row in a dump) held so, in record order: each one's row, fd and
    pid; and how many sockets of ``rows`` they hold.  The records are read in their order, a
    socket's row looked up for each: their fds and pids are then read in the order they were
    made (a dump's order is another)."""
    at: list[Any] = list(map(rows.get, inodes))
    keep = None
    if None in at:  # (sockets of other kinds, other namespaces)
        keep = list(map(is_not, at, repeat(None)))
        at, pids, fds = (list(compress(col, keep)) for col in (at, pids, fds))
    if len(set(at)) == len(at):  # the usual case: every socket held once (a row is an inode's)
        return at, fds, pids, len(at)
    if keep is not None:
        inodes = list(compress(inodes, keep))
    last = dict(zip(inodes, pids))  # the last record of an inode: the last process holding it
    at, pids, fds = _of_last_process(last, inodes, pids, at, pids, fds)  # (its last process's records)
    return at, fds, pids, len(last)


class OwnerMap:
    """inode -> holders; made by :func:`sockscope.owners.service.scan`; ss's ``users:(…)`` text of it is
    :class:`sockscope.render.users.UsersText`'s.

    ``complete`` is False when some process's fds could not be read
    (typically: not root), so owners may be missing.
    """

    __slots__ = ("_holders", "_names", "_tasks", "complete", "why", "proc", "via")

    def __init__(self, proc: str = "/proc") -> None:
        self._holders: dict[int, list[tuple[int, int]]] = {}
        self._names: dict[int, str] = {}
        self._tasks: dict[int, list[tuple[int, int, int]]] | None = None  # -T: inode -> (pid, tid, fd)
        self.complete = True
        self.why = ""  # when not complete: why, where the walk knew (see unreadable_hint)
        self.proc = proc
        self.via = "proc"  # or "bpf": how the map was made

    # -- made by the sources ------------------------------------------------------------------------------------

    def add_records(self, inodes: list[int], pids: list[int], fds: list[int], exclude: int = 0) -> None:
        """Add (inode, pid, fd) triples in discovery order (pid, then fd), leaving out pid ``exclude``."""
        self.via = "bpf"
        if exclude and exclude in pids:
            keep = [p != exclude for p in pids]
            inodes, pids, fds = (list(compress(col, keep)) for col in (inodes, pids, fds))
        holders = self._holders
        new = dict(zip(inodes, map(list, zip(zip(pids, fds)))))
        if not holders and len(new) == len(inodes):
            self._holders = new  # the usual case: every socket held once
            return
        for ino, pid, fd in zip(inodes, pids, fds):
            h = holders.get(ino)
            if h is None:
                holders[ino] = [(pid, fd)]
            else:
                h.append((pid, fd))

    def add_process(self, pid: int, inodes: list[int], fds: list[int]) -> None:
        """Add one process's socket fds (ascending fd order)."""
        holders = self._holders
        new = dict(zip(inodes, map(list, zip(zip([pid] * len(fds), fds)))))
        if len(new) == len(inodes) and holders.keys().isdisjoint(new):
            holders.update(new)  # the usual case: sockets seen once
            return
        for ino, fd in zip(inodes, fds):  # shared sockets: in discovery order
            h = holders.get(ino)
            if h is None:
                holders[ino] = [(pid, fd)]
            else:
                h.append((pid, fd))

    def set_tasks(self, tasks: dict[int, list[tuple[int, int, int]]]) -> None:
        """-T: inode -> every (pid, tid, fd) holding it (leader first, then its threads)."""
        self._tasks = tasks

    # -- queries ------------------------------------------------------------------------------------------------

    @property
    def tasks(self) -> dict[int, list[tuple[int, int, int]]] | None:
        """inode -> (pid, tid, fd) holders when made with threads (ss -T), else None."""
        return self._tasks

    def owners(self, inode: int) -> tuple[Owner, ...]:
        """Every holder of ``inode``, in ss's order (last discovered first)."""
        from sockscope.records import Owner

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

    def psutil_owners(self) -> dict[int, tuple[int, int]]:
        """inode -> (pid, fd) as psutil picks them: the first fd of the last
        process (in pid order) holding it."""
        holders = self._holders
        out = dict(zip(holders, map(itemgetter(0), holders.values())))
        if len(out) < sum(map(len, holders.values())):  # some socket has several holders
            for ino, h in holders.items():
                if len(h) > 1:
                    last = h[-1][0]
                    out[ino] = next(x for x in h if x[0] == last)
        return out

    def holder_map(self) -> dict[int, list[tuple[int, int]]]:
        """inode -> every (pid, fd) holding it, in discovery order (the map itself: read only)."""
        return self._holders

    def holders(self, inode: int) -> list[tuple[int, int]]:
        """All (pid, fd) for ``inode`` in discovery order."""
        return self._holders.get(inode, [])

    def __contains__(self, inode: object) -> bool:
        """``inode`` has holders: :meth:`owners` has some to give (with threads, ss -T: those of
        every thread's fd table, also a socket only a thread of its own table, or the threads of
        an exited leader, hold)."""
        if self._tasks is not None:
            return inode in self._tasks
        return inode in self._holders

    def __len__(self) -> int:
        return len(self._holders)

    def name(self, pid: int) -> str:
        """The process name as ss prints it (see :func:`comm`), read once per pid."""
        n = self._names.get(pid)
        if n is None:
            n = self._names[pid] = comm(pid, self.proc) or ""
        return n


__all__ = ["OwnerMap", "psutil_pick", "psutil_held", "comm", "unreadable_hint"]
