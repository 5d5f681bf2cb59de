"""The owner map: socket inode -> every (pid, fd) holding it, in one pass.

One walk of ``/proc/[0-9]*/fd`` with ``os.listdir`` and ``os.readlink``
(relative to the open fd directory: no path walk per fd) builds a dict
(linear in the number of fds; ss's 256-bucket hash goes quadratic at 100k
sockets, psutil keeps only the first holder).  Processes that vanish
mid-walk, or whose fds cannot be read, are skipped.  Process names (``comm``,
as ss prints them: cut at the first ``)``) are read lazily, once per pid, only
for processes that hold a socket being shown.

:class:`BackgroundOwners` runs the same walk in a forked child while the
listing dumps sockets (the CLI's ``-p``: the walk is as long as the dump, and
there are two cores); it hands back ss's users text of every socket inode.
"""

from __future__ import annotations

import os
from itertools import compress, repeat
from operator import itemgetter

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Callable, Iterable

    from sockscope.records import Owner

_PREFIX = "socket:["
_INODE = itemgetter(slice(len(_PREFIX), -1))  # "socket:[123]" -> "123"


def _readlink_or_empty(name: str, dfd: int) -> str:
    try:
        return os.readlink(name, dir_fd=dfd)
    except OSError:
        return ""


def unreadable_hint() -> str:
    """Why some processes' fds could not be read, for the warning that says so."""
    if os.geteuid() != 0:
        return "run as root"
    return "denied even to root here: another user namespace or a security module"


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

    __slots__ = ("_holders", "_names", "_tasks", "complete", "proc", "_prefixes", "via")

    def __init__(self, proc: str = "/proc") -> None:
        self._holders: dict[int, list[tuple[int, int]]] = {}
        self._names: dict[int, str] = {}
        self._prefixes: dict[int, str] = {}
        self._tasks: dict[int, list[tuple[int, int, int]]] | None = None  # -T: inode -> (pid, tid, fd)
        self.complete = True
        self.proc = proc
        self.via = "proc"  # or "bpf": how the map was made

    @classmethod
    def scan(cls, proc: str = "/proc", pids: Iterable[int] | None = None, exclude: int = 0) -> "OwnerMap":
        """Every process's socket fds (or only those of ``pids``), skipping pid
        ``exclude``: from the kernel's task_file iterator when it can be used
        (:mod:`sockscope.kernel.bpf`: the whole machine, of this pid namespace
        only), else by walking ``/proc/*/fd``."""
        m = cls(proc)
        if pids is None and proc == "/proc":
            from sockscope.kernel import bpf

            try:
                found = bpf.task_socket_fds()
            except bpf.Unavailable:
                pass
            else:
                m.add_records(*found, exclude=exclude)
                return m
        m.add_pids(pids, exclude)
        return m

    def add_records(self, inodes: list[int], pids: list[int], fds: list[int], exclude: int = 0) -> None:
        """Add (inode, pid, fd) triples, in discovery order (as
        :func:`sockscope.kernel.bpf.task_socket_fds` returns them)."""
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
                    except PermissionError:  # listed but not readable: owners may be missing
                        m.complete = False
                        continue
                    except OSError:
                        continue
                    if target[:plen] == prefix:
                        tasks.setdefault(int(target[plen:-1]), []).append((pid, tid, int(name)))
        m._tasks = tasks
        return m

    def add_pids(self, pids: Iterable[int] | None = None, exclude: int = 0) -> None:
        """Scan the fds of ``pids`` (default: every process but ``exclude``) into the map."""
        from functools import partial  # here: functools (and collections) cost ~1.5 ms of -p's start-up

        holders = self._holders
        readlink = os.readlink
        prefix = _PREFIX
        if pids is None:
            try:
                names = os.listdir(self.proc)
            except OSError:
                self.complete = False
                return
            pid_list = sorted(int(n) for n in names if n.isdigit() and int(n) != exclude)
        else:
            pid_list = list(pids)
        o_dir = os.O_RDONLY | os.O_DIRECTORY
        for pid in pid_list:
            try:
                dfd = os.open(f"{self.proc}/{pid}/fd", o_dir)
            except PermissionError:
                self.complete = False
                continue
            except OSError:
                continue  # the process is gone
            try:
                fds = os.listdir(dfd)  # procfs lists fds in ascending order already
                try:
                    targets = list(map(partial(readlink, dir_fd=dfd), fds))  # the loop in C
                except PermissionError:
                    raise  # listed but not readable (root without CAP_SYS_PTRACE, say): below
                except OSError:  # an fd closed meanwhile: one by one
                    targets = [_readlink_or_empty(name, dfd) for name in fds]
            except PermissionError:
                self.complete = False
                continue
            except OSError:
                continue  # the process is gone
            finally:
                os.close(dfd)
            # the sockets among the fds, and their inodes, with C-level loops
            mask = list(map(str.startswith, targets, repeat(prefix)))
            if not any(mask):
                continue
            inodes = list(map(int, map(_INODE, compress(targets, mask))))
            fd_nums = list(map(int, compress(fds, mask)))
            new = dict(zip(inodes, map(list, zip(zip(repeat(pid), fd_nums)))))
            if len(new) == len(inodes) and holders.keys().isdisjoint(new):
                holders.update(new)  # the usual case: sockets seen once
                continue
            for ino, fd in zip(inodes, fd_nums):  # shared sockets: in discovery order
                h = holders.get(ino)
                if h is None:
                    holders[ino] = [(pid, fd)]
                else:
                    h.append((pid, fd))

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

    def text(self, inode: int) -> str:
        """ss's ``users:(("name",pid=P,fd=F),…)`` cell of ``inode`` (with its
        leading space), or "": what the table prints for :meth:`owners`,
        made without building them."""
        if self._tasks is not None:
            t = self._tasks.get(inode) if inode else None
            if not t:
                return ""
            name = self.name
            return " users:(" + ",".join(
                f'("{name(tid)}",pid={pid},tid={tid},fd={fd})' for pid, tid, fd in reversed(t)) + ")"
        h = self._holders.get(inode) if inode else None
        if not h:
            return ""
        prefix = self._prefix
        return " users:(" + ",".join(f"{prefix(pid)}{fd})" for pid, fd in reversed(h)) + ")"

    def _prefix(self, pid: int) -> str:
        """``("name",pid=P,fd=`` of ``pid``: the start of each holder in :meth:`text`, made once."""
        p = self._prefixes.get(pid)
        if p is None:
            p = self._prefixes[pid] = f'("{self.name(pid)}",pid={pid},fd='
        return p

    def all_texts(self) -> tuple[list[int], list[str]]:
        """(every inode with holders, its :meth:`text`), in one pass (the usual
        single holder without a method call per inode)."""
        inodes = list(self._holders)
        prefixes = self._prefixes
        for pid in {h[0][0] for h in self._holders.values()}:
            self._prefix(pid)
        text = self.text
        texts = [f" users:({prefixes[h[0][0]]}{h[0][1]}))" if len(h) == 1 and self._tasks is None else text(ino)
                 for ino, h in self._holders.items()]
        return inodes, texts

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
        return inode in self._holders

    def __len__(self) -> int:
        return len(self._holders)

    def name(self, pid: int) -> str:
        """The process name as ss prints it (see :func:`comm`), read once per pid."""
        n = self._names.get(pid)
        if n is None:
            n = self._names[pid] = comm(pid, self.proc) or ""
        return n


def psutil_owners_later() -> Callable[[], dict[int, tuple[int, int]]]:
    """Start finding, for every socket inode, the owner psutil reports (see
    :meth:`OwnerMap.psutil_owners`); the function returned waits for the map.
    The work runs in a thread while the caller dumps: the kernel's task_file
    iterator (one ``read``, the GIL released) when it can be used, else the
    ``/proc/*/fd`` walk.  The map is made straight from the iterator's columns,
    without the per-inode holder lists of an :class:`OwnerMap`."""
    import _thread

    from sockscope.kernel import bpf

    try:
        fd = bpf.open_iterator()
    except bpf.Unavailable:
        fd = -1
    lock = _thread.allocate_lock()
    lock.acquire()
    box: list[tuple[list[int], list[int], list[int]] | OwnerMap | BaseException] = []

    def work() -> None:
        try:
            if fd >= 0:
                try:
                    box.append(bpf.decode(bpf.read_iterator(fd), os.getpid()))
                    return
                except bpf.Unavailable:
                    pass
            m = OwnerMap()
            m.add_pids()
            box.append(m)
        except BaseException as e:  # raised in the caller's thread
            box.append(e)
        finally:
            lock.release()

    _thread.start_new_thread(work, ())

    def wait() -> dict[int, tuple[int, int]]:
        lock.acquire()
        got = box[0]
        if isinstance(got, BaseException):
            raise got
        if isinstance(got, OwnerMap):
            return got.psutil_owners()
        inodes, pids, fds = got
        out = dict(zip(inodes, zip(pids, fds)))
        if len(out) < len(inodes):  # some socket has several holders: the general way
            m = OwnerMap()
            m.add_records(inodes, pids, fds)
            return m.psutil_owners()
        return out

    return wait


class BackgroundOwners:
    """:meth:`OwnerMap.scan` and :meth:`OwnerMap.text` of every socket inode,
    computed by forked children while this process goes on (the listing dumps
    sockets meanwhile).  The processes are split in ``workers`` runs of
    consecutive pids with about as many fds each (``/proc/PID/fd``'s size is
    its number of fds on Linux ≥ 6.2; else one share per process), one child
    per run; a socket held in two runs gets both runs' holders, the later
    run's first (ss's order).  For single-threaded callers (the CLI): a
    library must not fork.  Falls back to scanning in-process if a child fails.

    When the kernel's task_file iterator can be used (see :meth:`OwnerMap.scan`),
    no child is forked: a thread reads the iterator instead."""

    __slots__ = ("_children", "_failed", "_texts", "complete", "proc", "_reader", "via")

    def __init__(self, proc: str = "/proc", workers: int = 2) -> None:
        self.proc = proc
        self.complete = True
        self.via = "proc"
        self._texts: dict[int, str] | None = None
        self._children: list[tuple[int, int]] = []  # (child pid, read end of its pipe), in pid order
        self._failed = False
        self._reader: tuple[object, list[bytes | Exception]] | None = None  # (lock held until read, result)
        if proc == "/proc" and self._start_iterator():
            return
        try:
            pids = sorted(int(n) for n in os.listdir(proc) if n.isdigit())
        except OSError:
            self._failed = True
            return
        for group in _split(pids, workers, proc):
            child = _walk_in_child(proc, group)
            if child is None:
                self._failed = True
                break
            self._children.append(child)

    def _start_iterator(self) -> bool:
        """Open the task_file iterator and read it in a thread; False if it cannot be used."""
        import _thread

        from sockscope.kernel import bpf

        try:
            fd = bpf.open_iterator()
        except bpf.Unavailable:
            return False
        lock = _thread.allocate_lock()
        lock.acquire()
        box: list[bytes | Exception] = []

        def read() -> None:
            try:
                box.append(bpf.read_iterator(fd))
            except Exception as e:  # handed to _load, which falls back to /proc
                box.append(e)
            finally:
                lock.release()

        _thread.start_new_thread(read, ())
        self._reader = (lock, box)
        self.via = "bpf"
        return True

    def _load_iterator(self) -> dict[int, str]:
        from sockscope.kernel import bpf

        assert self._reader is not None
        lock, box = self._reader
        lock.acquire()  # type: ignore[attr-defined]
        self._reader = None
        m = OwnerMap(self.proc)
        try:
            if isinstance(box[0], Exception):
                raise box[0]
            inodes, pids, fds = bpf.decode(box[0], os.getpid())
        except bpf.Unavailable:
            m.add_pids()
            self.via = "proc"
            self.complete = m.complete
            self._texts = dict(zip(*m.all_texts()))
            return self._texts
        starts = {pid: " users:(" + m._prefix(pid) for pid in set(pids)}
        texts = dict(zip(inodes, [f"{starts[pid]}{fd}))" for pid, fd in zip(pids, fds)]))
        if len(texts) < len(inodes):  # some socket has several holders: the general way
            m.add_records(inodes, pids, fds)
            texts = dict(zip(*m.all_texts()))
        self._texts = texts
        return texts

    def _load(self) -> dict[int, str]:
        import marshal

        if self._reader is not None:
            return self._load_iterator()
        results = []
        for pid, fd in self._children:
            chunks = []
            try:
                while True:
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
            finally:
                os.close(fd)
                _, status = os.waitpid(pid, 0)
            if status == 0:
                results.append(marshal.loads(b"".join(chunks)))
            else:
                self._failed = True
        self._children = []
        texts: dict[int, str] = {}
        if self._failed:  # no child, or one failed: walk here
            m = OwnerMap.scan(self.proc)
            self.complete = m.complete
            texts = dict(zip(*m.all_texts()))
        else:
            for complete, inodes, blob in results:
                self.complete = self.complete and complete
                part = dict(zip(inodes, blob.split("\0"))) if inodes else {}
                if not texts:
                    texts = part
                    continue
                if not texts.keys().isdisjoint(part):
                    for ino in texts.keys() & part.keys():  # held in two runs: this (later) run's holders first
                        part[ino] = " users:(" + part[ino][8:-1] + "," + texts[ino][8:-1] + ")"
                texts.update(part)
        self._texts = texts
        return texts

    def text(self, inode: int) -> str:
        """As :meth:`OwnerMap.text` (waits for the children the first time)."""
        texts = self._texts if self._texts is not None else self._load()
        return texts.get(inode, "")

    def texts(self) -> dict[int, str]:
        """inode -> :meth:`text`, for every socket inode that has holders."""
        return self._texts if self._texts is not None else self._load()


def _split(pids: list[int], n: int, proc: str) -> list[list[int]]:
    """``pids`` in at most ``n`` runs of consecutive pids with about as many fds each."""
    weights = []
    for pid in pids:
        try:
            weights.append(os.stat(f"{proc}/{pid}/fd").st_size or 1)
        except OSError:
            weights.append(1)
    total = sum(weights)
    groups: list[list[int]] = [[]]
    done = 0
    for pid, w in zip(pids, weights):
        if done >= total * len(groups) / n and len(groups) < n and groups[-1]:
            groups.append([])
        groups[-1].append(pid)
        done += w
    return [g for g in groups if g]


def _walk_in_child(proc: str, pids: list[int]) -> tuple[int, int] | None:
    """Fork a child that walks ``pids`` and writes ``(complete, inodes, texts)``
    (marshalled) to a pipe: (its pid, the pipe's read end), None if it cannot fork."""
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # the child: walk, write the answer, and leave without running any clean-up
        status = 1
        try:
            os.close(r)
            import marshal

            m = OwnerMap.scan(proc, pids)
            inodes, texts = m.all_texts()
            data = memoryview(marshal.dumps((m.complete, inodes, "\0".join(texts))))
            while data:
                data = data[os.write(w, data):]
            status = 0
        finally:
            os._exit(status)
    os.close(w)
    return pid, r


__all__ = ["OwnerMap", "BackgroundOwners", "psutil_owners_later", "unreadable_hint", "comm"]
