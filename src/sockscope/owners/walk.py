"""The /proc sources of owners: the full walk, ss -T's thread walk, the threads' own fd tables (for
``who``: :func:`thread_sockets`), and top's incremental walk.

Full walk (:func:`walk`): one pass over ``PROC/[0-9]*/fd`` with
``os.listdir`` and ``os.readlink`` relative to the open fd directory (no path
walk per fd), linear in the number of fds (ss's 256-bucket hash goes
quadratic at 100k sockets).  Processes that vanish mid-walk are skipped;
processes whose fds cannot be read make the map incomplete (and say why
where that is known: no file descriptor was left, :data:`NO_FDS`).

Incremental walk (:class:`IncrementalWalk`, for ``sockscope top``): must not
readlink every fd of every process on every tick (~65 ms at 10k sockets).
What procfs offers (kernel 6.18): ``/proc/PID/fd``'s ``st_size`` is its
number of open fds (kernels >= 6.2) for ~1.5 µs a ``stat``; socket inodes are
never reused.  So each :meth:`IncrementalWalk.refresh`: (1) lists the
processes: new pids are scanned, vanished ones dropped; (2) ``stat``s each
known pid's fd directory: a changed count (or directory inode: a reused pid)
rescans that pid, reading only fd numbers that are new or did not point to a
live socket; (3) live inodes still without a holder: a rescan of the hint
pids, then at most every ``sweep_every`` seconds of every pid (inodes still
unowned are given up until the next full scan); (4) every ``full_every``
seconds a full scan, the safety net for what (1)-(3) cannot see.  A refresh is
partial only for what it could not read itself or what stays unreadable: a
process whose fds could not be read (no fd left) keeps what was known of it and
is read again at the next refresh.
"""

from __future__ import annotations

import errno
import os
from itertools import compress, repeat
from _operator import itemgetter

from sockscope.owners.model import OwnerMap, short_of_fds

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import AbstractSet, Callable, Collection, Iterable, Iterator

PREFIX = "socket:["
_INODE = itemgetter(slice(len(PREFIX), -1))  # "socket:[123]" -> "123"
_O_DIR = os.O_RDONLY | os.O_DIRECTORY
#: errors that say this process (EMFILE) or the system (ENFILE) has no file descriptor left: the
#: process read is not gone, it could not be read (a walk meeting them is incomplete, and says so)
NO_FDS = (errno.EMFILE, errno.ENFILE)


def _readlink_in(dfd: int, name: str, _readlink: Callable[..., str] = os.readlink) -> str:
    return _readlink(name, dir_fd=dfd)


def _readlink_or_empty(name: str, dfd: int) -> str:
    try:
        return os.readlink(name, dir_fd=dfd)
    except PermissionError:
        raise  # the links are not readable: not an fd closed meanwhile
    except OSError:
        return ""


def pids_of(proc: str) -> list[int]:
    """Every pid of the procfs at ``proc``, ascending (OSError when it cannot be listed): its
    entries of ASCII digits (``int`` refuses other digits, "²")."""
    return sorted(int(n) for n in os.listdir(proc) if n.isascii() and n.isdigit())


def walk(m: OwnerMap, pids: Iterable[int] | None = None, exclude: int = 0) -> None:
    """Readlink every fd of ``pids`` (default: every process but ``exclude``) into ``m``."""
    pid_list = _pid_list(m.proc, pids, exclude, m)
    if pid_list is None:
        return
    for pid, inodes, fds in _sockets(m.proc, pid_list, m):
        if inodes is None:
            m.complete = False
        elif inodes:
            m.add_process(pid, inodes, fds)


def _unread(m: OwnerMap | IncrementalWalk, exc: OSError) -> None:
    """Something could not be read (the pids, a process's fds): ``m`` is not complete, and says why
    where it is no file descriptor left (:data:`NO_FDS`)."""
    m.complete = False
    if exc.errno in NO_FDS:
        m.why = short_of_fds(exc.errno)


def records(proc: str, pids: Iterable[int] | None = None) -> tuple[list[int], list[int], list[int], bool]:
    """(inodes, pids, fds) of every socket fd of ``pids`` (default: every process), in pid
    then fd order (what the kernel's iterator gives), and whether every process could be read."""
    pid_list = _pid_list(proc, pids, 0)
    if pid_list is None:
        return [], [], [], False
    all_inodes: list[int] = []
    all_pids: list[int] = []
    all_fds: list[int] = []
    complete = True
    for pid, inodes, fds in _sockets(proc, pid_list):
        if inodes is None:
            complete = False
        elif inodes:
            all_inodes += inodes
            all_pids += repeat(pid, len(inodes))
            all_fds += fds
    return all_inodes, all_pids, all_fds, complete


def _pid_list(proc: str, pids: Iterable[int] | None, exclude: int,
              m: OwnerMap | None = None) -> list[int] | None:
    """The pids to walk; None where procfs cannot be listed (``m``, if given, then says so)."""
    if pids is not None:
        return list(pids)
    try:
        return [p for p in pids_of(proc) if p != exclude]
    except OSError as exc:
        if m is not None:
            _unread(m, exc)
        return None


def _sockets(proc: str, pid_list: list[int], m: OwnerMap | None = None
             ) -> Iterator[tuple[int, list[int] | None, list[int]]]:
    """(pid, socket inodes, their fds) of each process, fds ascending; inodes None where the
    process's fds cannot be read (no permission, or no file descriptor left: ``m``, if given, then
    says why); processes gone meanwhile are left out."""
    for pid in pid_list:
        try:
            inodes, fds = _process(proc, pid)
        except PermissionError:
            yield pid, None, []
        except OSError as exc:
            if exc.errno in NO_FDS:  # not gone: unread (the next may find one free again)
                if m is not None:
                    _unread(m, exc)
                yield pid, None, []
            continue  # the process is gone
        else:
            yield pid, inodes, fds


def process_sockets(proc: str, pid: int) -> tuple[list[int], list[int]]:
    """(socket inodes, their fds) of process ``pid``, fds ascending: what the walk reads of each
    process.  Raises :class:`PermissionError` where its fds cannot be read (the directory, or the
    links it lists: ptrace rules, another user namespace), :class:`FileNotFoundError` (or
    :class:`ProcessLookupError`) where the process is gone, and any other :class:`OSError` as
    it comes (the walk takes those for "gone"; one process's reader says what it was)."""
    return _process(proc, pid)


def _process(proc: str, pid: int) -> tuple[list[int], list[int]]:
    dfd = os.open(f"{proc}/{pid}/fd", _O_DIR)
    try:
        fds = os.listdir(dfd)  # procfs lists fds in ascending order already
        try:
            # (map's loop in C, each link by its name in the fd directory's fd.  Not through
            # functools.partial: functools and what it imports, collections among them, cost 2-4 ms
            # of a -p listing's start; a Python frame a link costs ~0.1 us, 0.5 ms for 5,000 fds)
            targets = list(map(_readlink_in, repeat(dfd), fds))
        except PermissionError:
            raise  # listed but not readable (root without CAP_SYS_PTRACE, say)
        except OSError:  # an fd closed meanwhile: one by one
            targets = [_readlink_or_empty(name, dfd) for name in fds]
    finally:
        os.close(dfd)
    # the sockets among the fds, and their inodes, with C-level loops
    mask = list(map(str.startswith, targets, repeat(PREFIX)))
    if any(mask):
        return list(map(int, map(_INODE, compress(targets, mask)))), list(map(int, compress(fds, mask)))
    return [], []


def walk_threads(m: OwnerMap) -> None:
    """ss -T: every thread's fd table into ``m``'s tasks, each holder with its tid
    (the thread group leader first, then its other threads, as ss walks them).  A thread that shares
    its leader's table (as threads do, unless one called ``unshare(CLONE_FILES)``), where kcmp(2)
    says so (:func:`files_shared`), holds what the leader's reading found: its table is not read
    again (a process of 64 threads and 2,000 sockets: 2,000 links read, not 128,000); every other
    thread's table is read."""
    tasks: dict[int, list[tuple[int, int, int]]] = {}
    proc = m.proc
    try:
        pids = pids_of(proc)
    except OSError as exc:
        _unread(m, exc)
        pids = []
    same: Callable[[int, int], bool | None] | None = None
    for pid in pids:
        task = f"{proc}/{pid}/task"
        try:
            tids = pids_of(task)
        except OSError as exc:
            if exc.errno in NO_FDS:  # (else: gone)
                _unread(m, exc)
            continue
        leader: tuple[list[int], list[int]] | None = None  # its sockets' inodes and fds, once read
        sharing: list[int] = []  # the threads since the last table read that share the leader's
        for tid in [pid] + [t for t in tids if t != pid]:
            if leader is not None:
                if same is None:
                    same = files_shared(proc)
                if same(pid, tid):
                    sharing.append(tid)
                    continue
                _shared(tasks, pid, sharing, *leader)
            try:
                inodes, fds = _process(task, tid)
            except PermissionError:  # listed but not readable: owners may be missing
                m.complete = False
                continue
            except OSError as exc:
                if exc.errno in NO_FDS:  # (else: gone)
                    _unread(m, exc)
                continue
            if tid == pid:
                leader = inodes, fds
            _shared(tasks, pid, [tid], inodes, fds)
        if leader is not None:
            _shared(tasks, pid, sharing, *leader)
    m.set_tasks(tasks)


def _shared(tasks: dict[int, list[tuple[int, int, int]]], pid: int, tids: list[int], inodes: list[int],
            fds: list[int]) -> None:
    """Each thread of ``tids`` holds the sockets ``inodes`` (their ``fds``): into ``tasks``, thread by
    thread in ``tids``' order and each thread's fds in the table's, as ss reads them (a socket at two
    fds: the first thread's two, then the next's); the tuples made in C, one extend a socket;
    ``tids`` is emptied."""
    if not tids:
        return
    if len(set(inodes)) < len(inodes):  # a socket at several fds: ss's order itself, thread by thread
        for tid in tids:
            for ino, fd in zip(inodes, fds):
                tasks.setdefault(ino, []).append((pid, tid, fd))
    else:  # (each socket at one fd: the same order, a socket's threads at once)
        for ino, fd in zip(inodes, fds):
            got = tasks.get(ino)
            if got is None:
                got = tasks[ino] = []
            got.extend(zip(repeat(pid), tids, repeat(fd)))
    tids.clear()


#: kcmp(2)'s system call number by machine (``os.uname().machine``); on another, every table is read
_KCMP_CALL = {"x86_64": 312, "aarch64": 272, "riscv64": 272, "loongarch64": 272, "i386": 349, "i686": 349,
              "armv7l": 378, "armv8l": 378, "ppc64le": 354, "ppc64": 354, "s390x": 343}
_KCMP_FILES = 2  # <linux/kcmp.h>: compare the two tasks' fd tables


def _never(pid: int, tid: int) -> bool | None:
    return None


def files_shared(proc: str = "/proc") -> Callable[[int, int], bool | None]:
    """``same(pid, tid)``: whether the two tasks hold one fd table (kcmp(2), ``KCMP_FILES``), or
    None where kcmp cannot tell (a task gone, not allowed, a kernel without kcmp: from then on
    every call says None).  Always None where kcmp cannot be used at all: ``proc`` is not this
    process's own procfs (kcmp takes the pids of the caller's pid namespace), an unknown machine,
    no ``ctypes``.  Made once for each ``proc``."""
    made = _SHARED.get(proc)
    if made is None:
        made = _SHARED[proc] = _files_shared(proc)
    return made


_SHARED: dict[str, Callable[[int, int], bool | None]] = {}


def _files_shared(proc: str) -> Callable[[int, int], bool | None]:
    number = _KCMP_CALL.get(os.uname().machine)
    try:
        if number is None or os.readlink(f"{proc}/self") != str(os.getpid()):
            return _never
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, ImportError, AttributeError):  # (no procfs there; no ctypes, no libc's syscall())
        return _never
    call.restype = ctypes.c_long
    word = ctypes.c_long
    args = (word(number), word(_KCMP_FILES), word(0), word(0))
    usable = [True]

    def same(pid: int, tid: int) -> bool | None:
        if not usable[0]:
            return None
        r: int = call(args[0], word(pid), word(tid), *args[1:])
        if r >= 0:
            return r == 0  # (0: one table; 1, 2: two, ordered; 3: two)
        if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL):
            usable[0] = False  # (a kernel without kcmp, or without its KCMP_FILES; EPERM: this task only)
        return None

    return same


def thread_sockets(pid: int, proc: str = "/proc", leader: Collection[int] | None = None) -> list[tuple[int, int, int]]:
    """(tid, fd, inode) of the sockets the threads of ``pid`` hold in fd tables of their own, which
    /proc/PID/fd (what ss -p, psutil and the walk read) does not show: where the leader has exited (a
    zombie leader with live threads: every thread's sockets), or where a thread has a table of its
    own (``unshare(CLONE_FILES)``: its sockets the leader's table does not hold).  A thread's table is
    taken for the leader's where kcmp(2) says it is (:func:`files_shared`); where kcmp cannot tell,
    where it lists the same fd numbers (then a table of its own holding just the leader's numbers
    is not read: reading every thread's every link would cost a process of hundreds of threads as
    many walks).  The first thread of each (fd, inode); [] for a process of one thread, or one that
    cannot be read.  ``leader``: the leader's socket inodes, where the caller
    has read them already."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
        rest = data[data.rfind(b")") + 2 :].split()
        if int(rest[17]) < 2:  # (field 20: num_threads)
            return []
        tids = pids_of(f"{proc}/{pid}/task")
        zombie = rest[:1] == [b"Z"]
        own: set[int] = set()  # the leader's sockets
        numbers: set[str] = set()  # its fd numbers
        if not zombie:
            own = set(process_sockets(proc, pid)[0] if leader is None else leader)
            numbers = set(os.listdir(f"{proc}/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        return []
    out: list[tuple[int, int, int]] = []
    seen: set[tuple[int, int]] = set()
    task = f"{proc}/{pid}/task"
    same = files_shared(proc)
    for tid in tids:
        if tid == pid:
            continue
        try:
            shared = None if zombie else same(pid, tid)
            if shared or (shared is None and not zombie and set(os.listdir(f"{task}/{tid}/fd")) == numbers):
                continue  # (the leader's table, shared as threads share it)
            inodes, fds = process_sockets(task, tid)
        except OSError:
            continue
        for ino, fd in zip(inodes, fds):
            if ino not in own and (fd, ino) not in seen:
                seen.add((fd, ino))
                out.append((tid, fd, ino))
    return out


def thread_holders(proc: str = "/proc") -> Callable[[int], list[tuple[int, int, int]]]:
    """inode -> (pid, tid, fd) of the threads holding it in fd tables of their own
    (:func:`thread_sockets`, every process's), read once, at the first look-up: for the sockets no
    process's table holds (``who``; ss -pT's view of them, without reading every thread's table
    for every socket)."""
    found: dict[int, list[tuple[int, int, int]]] | None = None

    def lookup(inode: int) -> list[tuple[int, int, int]]:
        nonlocal found
        if found is None:
            found = {}
            try:
                pids = pids_of(proc)
            except OSError:
                pids = []
            for pid in pids:
                for tid, fd, ino in thread_sockets(pid, proc):
                    found.setdefault(ino, []).append((pid, tid, fd))
        return found.get(inode, [])

    return lookup


def any_socket_fd(proc: str = "/proc", limit: int = 4096, exclude: int = 0, only: int = 0) -> bool:
    """Whether some process (of the first ``limit`` readable; pid ``only`` alone where given) holds
    a socket fd, leaving out pid ``exclude``."""
    try:
        pids = [only] if only else pids_of(proc)
    except OSError:
        return False
    for pid in pids[:limit]:
        if pid == exclude:
            continue
        fddir = f"{proc}/{pid}/fd/"
        try:
            names = os.listdir(fddir)
        except OSError:
            continue
        for name in names:
            try:
                if os.readlink(fddir + name).startswith(PREFIX):
                    return True
            except OSError:
                continue
    return False


class IncrementalWalk:
    """inode -> [(pid, fd)] kept up to date between calls (see the module doc)."""

    def __init__(self, proc: str, full_every: float, sweep_every: float) -> None:
        self.proc = proc
        self.full_every = full_every
        self.sweep_every = sweep_every
        self.index: dict[int, list[tuple[int, int]]] = {}  # holders lists are replaced, never changed in place
        self.names: dict[int, str] = {}
        self.complete = True
        self.why = ""  # when not complete: why, where known (as OwnerMap.why)
        self.stats = {"full": 0, "sweeps": 0, "pid_scans": 0, "readlinks": 0, "kernel": 0}
        self._fds: dict[int, dict[int, int]] = {}  # pid -> {fd: inode, 0 = not a socket}
        self._sig: dict[int, tuple[int, int]] = {}  # pid -> (fd dir inode, fd count)
        self._given_up: set[int] = set()
        self._denied: set[int] = set()
        self._partial: set[int] = set()  # pids whose fds were not all read the last time (kept as they were)
        self.last_full = -1e18
        self._last_sweep = -1e18

    def pids(self) -> list[int]:
        return sorted(self._fds)

    def refresh(self, now: float, live: AbstractSet[int], hints: Callable[[set[int]], Iterable[int]] | None) -> None:
        if now - self.last_full >= self.full_every:
            self.full_scan(now, live)
            return
        # complete again once what could not be read has been (not only at the next full scan)
        self.complete, self.why = True, ""
        try:
            pids = set(pids_of(self.proc))
        except OSError as exc:
            _unread(self, exc)
            return
        for pid in [p for p in self._fds if p not in pids]:
            self._drop(pid)
        self._denied &= pids
        self._partial &= pids
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
        index = self.index
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
        self._settle()

    def full_scan(self, now: float, live: Collection[int] = ()) -> None:
        """Readlink every fd of every process (also the first refresh)."""
        self.last_full = self._last_sweep = now
        self.stats["full"] += 1
        for d in (self._fds, self._sig, self.index, self.names):
            d.clear()
        self._given_up.clear()
        self._denied.clear()
        self._partial.clear()
        self.complete, self.why = True, ""
        try:
            pids = pids_of(self.proc)
        except OSError as exc:
            _unread(self, exc)
            return
        for pid in pids:
            self._scan(pid, None)
        self._given_up = {i for i in live if i and i not in self.index}
        self._settle()

    def _settle(self) -> None:
        """The end of a refresh or full scan: partial while some process is unread (denied, or its
        links, or its fd directory for want of an fd: kept as it was, read again next time)."""
        if self._denied or self._partial:
            self.complete = False

    def _drop(self, pid: int) -> None:
        fds = self._fds.pop(pid, None)
        self._sig.pop(pid, None)
        self._partial.discard(pid)
        self.names.pop(pid, None)
        if fds:
            index = self.index
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
            self._denied.add(pid)
            self._drop(pid)
            return
        except OSError as exc:
            if exc.errno in NO_FDS:  # unread, not gone: what was known of it stays (its signature too,
                _unread(self, exc)  # so the next refresh reads it again)
                self._partial.add(pid)
                return
            self._drop(pid)
            return
        self.stats["pid_scans"] += 1
        old = self._fds.get(pid) if live is not None else None
        # A process holding none of the live sockets (e.g. in another network
        # namespace): only its new fd numbers are read, not the reused ones.
        relevant = old is not None and live is not None and not live.isdisjoint(old.values())
        new: dict[int, int] = {}
        readlink = os.readlink
        plen = len(PREFIX)
        n_read = 0
        denied = False
        for name in names:
            fd = int(name)
            if old is not None:
                ino = old.get(fd)
                if ino is not None and (not relevant or (ino and live is not None and ino in live)):
                    new[fd] = ino
                    continue
            try:
                target = readlink(f"{fddir}/{name}")
            except PermissionError:  # listed but not readable: owners may be missing
                denied = True
                continue
            except OSError:
                continue
            n_read += 1
            new[fd] = int(target[plen:-1]) if target.startswith(PREFIX) else 0
        self.stats["readlinks"] += n_read
        self._drop(pid)
        self._fds[pid] = new
        self._sig[pid] = (st.st_ino, st.st_size)
        if denied:
            self._partial.add(pid)
        index = self.index
        for fd in sorted(new):
            ino = new[fd]
            if ino:
                h = index.get(ino)
                index[ino] = [(pid, fd)] if h is None else sorted(h + [(pid, fd)])


__all__ = ["walk", "records", "process_sockets", "walk_threads", "files_shared", "thread_sockets", "thread_holders",
           "any_socket_fd", "IncrementalWalk", "pids_of",
           "PREFIX"]
