"""The psutil drop-ins, read from sock_diag: :func:`net_connections` (same
tuples as ``psutil.net_connections(kind)``) and :func:`process_connections`
(same tuples as ``psutil.Process(pid).net_connections(kind)``).

Everything they read from /proc (the owners' ``PID/fd`` links, ``net/unix``)
is read from ``procfs`` when given (``/host/proc`` in a container watching
the host), else from psutil's ``PROCFS_PATH`` where this function has been put
in place of psutil's own, else from ``/proc``.
"""

from __future__ import annotations

import os
import sys

from sockscope._addr import AF_INET, AF_INET6, AF_UNIX
from sockscope.errors import AccessDenied, NoSuchProcess
from sockscope.filter import states as _k
from sockscope.query import SS_ALL, Query, batches, kind_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

    from sockscope.kernel.inet import Batch

    #: one inet batch's columns of psutil's rows but the owners: (inodes, families, type, laddr, raddr, status)
    _Part = tuple[list[int], Iterable[Any], Any, list[Any], list[Any], Iterable[str]]

if TYPE_CHECKING:
    from sockscope._psutil_types import addr, pconn, sconn

else:

    def __getattr__(name: str) -> object:
        # addr and sconn live in sockscope._psutil_types (collections is not
        # imported on the listing's path); query.addr/query.sconn still work.
        if name in ("addr", "sconn", "pconn"):
            from sockscope import _psutil_types

            return getattr(_psutil_types, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: psutil's status text by kernel state number (a TCP socket's; UDP and UNIX ones are "NONE")
_PSUTIL_STATUS = {
    _k.ESTABLISHED: "ESTABLISHED", _k.SYN_SENT: "SYN_SENT", _k.SYN_RECV: "SYN_RECV", _k.FIN_WAIT1: "FIN_WAIT1",
    _k.FIN_WAIT2: "FIN_WAIT2", _k.TIME_WAIT: "TIME_WAIT", _k.CLOSE: "CLOSE", _k.CLOSE_WAIT: "CLOSE_WAIT",
    _k.LAST_ACK: "LAST_ACK", _k.LISTEN: "LISTEN", _k.CLOSING: "CLOSING", _k.NEW_SYN_RECV: "SYN_RECV",
}


def _procfs(procfs: str | None) -> str:
    """The procfs to read: ``procfs``, else psutil's ``PROCFS_PATH`` where psutil's
    net_connections is this one (the drop-in put in its place), else /proc."""
    if procfs is not None:
        return procfs
    ps = sys.modules.get("psutil")
    if ps is not None and net_connections in (getattr(ps, "net_connections", None),
                                              getattr(getattr(ps, "_psplatform", None), "net_connections", None)):
        return str(getattr(ps, "PROCFS_PATH", "/proc"))
    return "/proc"


def net_connections(kind: str = "inet", *, procfs: str | None = None) -> list[sconn]:
    """A drop-in for ``psutil.net_connections(kind)`` on Linux.

    Same kinds, same named-tuple fields and values (family and type are
    ``socket`` enums; ``status`` is psutil's status string, "NONE" for UDP
    and UNIX; ``pid`` None and ``fd`` -1 when the owner is not visible), and
    the same choice of owner: for an inet socket the first fd of the last
    process (in pid order) holding it; for a UNIX socket one row per fd of
    that process.  Read from sock_diag, so many times faster.  ``procfs``:
    see the module doc (a directory that is no procfs raises
    :class:`~sockscope.owners.service.ProcfsError`, an ``OSError``).
    """
    return _collect(kind, _procfs(procfs), None)  # type: ignore[return-value]


def process_connections(pid: int, kind: str = "inet", *, procfs: str | None = None) -> list[pconn]:
    """A drop-in for ``psutil.Process(pid).net_connections(kind)`` on Linux.

    The sockets the process ``pid`` holds, as ``pconn`` tuples (psutil's
    ``sconn`` without ``pid``): an inet socket once, at its first fd; a UNIX
    socket once per fd.  :class:`NoSuchProcess` when there is no such process,
    :class:`AccessDenied` when its fds cannot be read (not root, say).
    """
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise TypeError(f"pid must be an integer (got {pid!r})")
    if pid < 0:
        raise ValueError(f"pid must be a positive integer (got {pid})")
    kind_of(kind)  # a bad kind is refused before the process is looked at, as psutil does
    return _collect(kind, _procfs(procfs), pid)  # type: ignore[return-value]


def _process_fds(pid: int, proc: str) -> tuple[list[int], list[int], list[int]]:
    """The socket fds of ``pid`` alone, as records (errors as psutil's Process raises them; one
    that is neither "gone" nor "denied" as :class:`~sockscope.errors.CannotInspect`, saying what it was)."""
    from sockscope.owners import model, walk

    try:
        os.stat(f"{proc}/{pid}/stat")
    except FileNotFoundError:
        if proc != "/proc":
            from sockscope.owners.service import check_procfs

            check_procfs(proc)
        raise NoSuchProcess(f"no process with pid {pid}") from None
    try:
        inodes, fds = walk.process_sockets(proc, pid)
    except (FileNotFoundError, ProcessLookupError):
        inodes, fds = [], []  # gone meanwhile: said below
    except OSError as exc:  # (AccessDenied where permission is denied, else CannotInspect)
        raise model.fds_error(proc, pid, exc) from None
    if not os.path.exists(f"{proc}/{pid}/stat"):
        raise NoSuchProcess(f"no process with pid {pid} (it ended)")
    return inodes, [pid] * len(inodes), fds


def _collect(kind: str, proc: str, pid: int | None) -> list[sconn] | list[pconn]:
    import gc

    collecting = gc.isenabled()
    gc.disable()  # ~10^5 tuples made and none of them in a cycle: the collector's passes would cost a quarter
    try:
        return _net_connections(kind, proc, pid)
    finally:
        if collecting:
            gc.enable()


def _net_connections(kind: str, proc: str, only: int | None) -> list[sconn] | list[pconn]:
    import socket as _s
    from itertools import compress, repeat
    from _operator import is_, is_not, itemgetter

    from sockscope._psutil_types import pconn, sconn
    from sockscope.owners.model import psutil_held, psutil_pick
    from sockscope.owners.service import Pending, check_procfs, iterator_possible, socket_fds

    tables, fams = kind_of(kind)
    if proc != "/proc":
        check_procfs(proc)
    # Every socket fd of every process (the kernel's task_file iterator, or the
    # /proc/*/fd walk: system calls, the GIL released) is read in the background
    # while this thread dumps the sockets and makes every column of the rows
    # but their owners: on two cores the two overlap.  Only the records of the
    # sockets dumped are then looked at (psutil_pick for inet sockets, psutil_held
    # for UNIX ones).  One process's fds (``only``) are read here, first; so is the
    # /proc walk where the iterator cannot be used: beside the dumps and the decoding it
    # waits for the GIL after each of its system calls (see BackgroundOwners.wait_if_walking).
    pending: Pending[tuple[list[int], list[int], list[int]]] | None = None
    if only is not None:
        found = _process_fds(only, proc)
        if not found[0]:
            return []
    elif not iterator_possible(proc):
        found = socket_fds(proc)
    else:
        pending = Pending(lambda: socket_fds(proc))
    try:
        inet_parts, unix = _dump(tables, fams, proc)
    finally:  # the background work is waited for even when the dump fails: no thread outlives the call
        if pending is not None:
            found = pending.result()
    types, inodes, paths = unix
    ret: list[sconn] = []
    unowned: list[sconn] = []  # psutil returns a set: equal rows collapse into one (only ownerless rows can)
    new = tuple.__new__  # psutil's named tuple without its Python-level __new__
    if inet_parts:
        held = sum(len(part[0]) for part in inet_parts)
        wanted: set[int] | None = None
        if 2 * len(found[0]) > 3 * held:
            # many more sockets held than dumped (other namespaces, other kinds): the records of the
            # others are dropped first (dropping costs more than it saves unless they are many)
            wanted = set()
            for part in inet_parts:
                wanted.update(part[0])
        fd_of, pid_of = psutil_pick(*found, wanted)
        fd_get, pid_get = fd_of.get, pid_of.get
        for inos, fam, kind_, la, ra, status in inet_parts:
            owners = list(map(pid_get, inos))
            fds_ = map(fd_get, inos, repeat(-1))
            made = map(new, repeat(sconn), zip(fds_, fam, repeat(kind_), la, ra, status, owners))
            if None in owners and (type(status) is not list or "LISTEN" in status or "CLOSE" in status):
                # (a TCP socket neither listening nor closed is in the kernel's table of connections,
                # one a pair of ends and family: no other row can equal it, TIME-WAIT's among them)
                rows = list(made)
                ret.extend(compress(rows, map(is_not, owners, repeat(None))))
                unowned.extend(compress(rows, map(is_, owners, repeat(None))))
            else:
                ret.extend(made)
    if inodes:
        # UNIX sockets: a row per fd of the process psutil names, made in the records' order
        # (psutil_held): their fds and pids are read in the order they were made
        unix_types = _UnixTypes()
        fam_u = _s.AddressFamily.AF_UNIX
        rows_of = dict(zip(inodes, range(len(inodes))))
        at, fds, pids, owned_n = psutil_held(*found, rows_of)
        if len(at) > 1:  # the rows' types and paths picked by one C call each (itemgetter: a tuple)
            pick = itemgetter(*at)
            ret += map(new, repeat(sconn), zip(fds, repeat(fam_u), map(unix_types.__getitem__, pick(types)),
                                               pick(paths), repeat(""), repeat("NONE"), pids))
        elif at:
            ret.append(new(sconn, (fds[0], fam_u, unix_types[types[at[0]]], paths[at[0]], "", "NONE", pids[0])))
        if owned_n < len(rows_of) and only is None:  # ownerless sockets (connections not yet accepted
            # among them; one process's rows are only its own)
            hit = set(at)
            owned = set(map(inodes.__getitem__, hit))  # (a socket the dump met twice: owned by its other row)
            unowned += [new(sconn, (-1, fam_u, unix_types[types[i]], paths[i], "", "NONE", None))
                        for i in range(len(inodes)) if i not in hit and inodes[i] not in owned]
    if unowned:  # (the enum members hash as their int, in C)
        ret += dict.fromkeys(unowned)
    if only is None:
        return ret
    return [new(pconn, r[:6]) for r in ret if r[6] == only]


class _UnixTypes(dict[int, object]):
    """SOCK_* number -> psutil's socket type (SOCK_DGRAM for a number it has no name for)."""

    def __init__(self) -> None:
        from socket import SocketKind

        super().__init__({1: SocketKind.SOCK_STREAM, 2: SocketKind.SOCK_DGRAM, 5: SocketKind.SOCK_SEQPACKET})

    def __missing__(self, n: int) -> Any:
        return self[2]


def _dump(tables: tuple[str, ...], fams: tuple[int, ...], proc: str
          ) -> tuple[list[_Part], tuple[list[int], list[int], list[str]]]:
    """The sockets of ``tables`` and ``fams``: (each inet batch of the one source as :func:`_part`, the
    UNIX columns (types, inodes, paths as psutil reads them))."""
    import socket as _s

    unix: list[tuple[list[int], list[int], list[str]]] = [([], [], [])]

    def unix_part() -> None:  # (while the kernel walks the inet tables: see below)
        got = _unix_dump() if proc == "/proc" else None
        if got is None:  # psutil's own source: the file's text, read as psutil reads it
            from sockscope import procnet

            got = procnet.unix_columns(proc)
        unix[0] = got

    parts: list[_Part] = []
    q = Query(frozenset(t for t in tables if t in ("tcp", "udp")), frozenset(f for f in fams if f != AF_UNIX),
              _k.EVERY_STATE)
    if q.tables and q.families:
        fam_enum = {AF_INET: _s.AddressFamily.AF_INET, AF_INET6: _s.AddressFamily.AF_INET6}
        kinds = {"tcp": _s.SocketKind.SOCK_STREAM, "udp": _s.SocketKind.SOCK_DGRAM}
        from sockscope.kernel.inet import Batch as InetBatch

        # received by helper threads beside the owners' walk (the kernel's work most of its time) where
        # that walk is short, the host's tasks few: 10k dual-stack "tcp" 14.4 -> 13.1 ms; with the UNIX
        # part to read, or both tables (a UDP walk finds little but takes its time), every dump sent at
        # once and the UNIX part read meanwhile: the host mix's "all" 22.2 -> 20.8 ms, "inet" 16.2 ->
        # 15.5 (a lone TCP dump does not gain).  Beside a long walk (1,128 tasks: 13 ms, the whole call's
        # time) a helper takes its core, one call in five 4-5 ms slower: there the calling thread receives
        ahead = _tasks(proc) <= _HELPED_TASKS
        meanwhile = unix_part if AF_UNIX in fams else (lambda: None) if len(q.tables) > 1 else None
        for table, batch in batches(q, lambda m: None, ordered=False, meanwhile=meanwhile,  # (psutil's: a set)
                                    ahead=ahead):
            assert isinstance(batch, InetBatch)  # (every inet table comes as a batch, also from /proc)
            parts.append(_part(batch, fam_enum, kinds[table], _PSUTIL_STATUS if table == "tcp" else None))
    elif AF_UNIX in fams:
        unix_part()
    return parts, unix[0]


#: the most tasks on the host (threads, every process's) for which the dumps are received by helper threads
#: beside the owners' walk (its length grows with them: 4 ms at 125 tasks, 13 ms at 1,128)
_HELPED_TASKS = 500


def _tasks(proc: str) -> int:
    """How many tasks the host runs (``loadavg``'s count of them; unreadable: many)."""
    try:
        with open(f"{proc}/loadavg", "rb") as f:
            return int(f.read().split()[3].partition(b"/")[2])
    except (OSError, ValueError, IndexError):
        return 1 << 30


def _unix_dump() -> tuple[list[int], list[int], list[str]] | None:
    """What psutil reads of ``/proc/net/unix`` (the columns of :func:`sockscope.procnet.unix_columns`),
    from a UNIX dump: less work than the file's text.  The file also lists each connection not yet
    accepted (inode 0, the listener's type and name), which sock_diag leaves out: a listener's ICONS
    attribute lists them, and one row of them is enough (they have no owner, and psutil's set
    collapses equal rows).  None where the file's text must be read: sock_diag does not answer (or
    SOCKSCOPE_FORCE_PROC), or some name has whitespace in it (psutil splits the file's lines at
    whitespace: such a name is no path there, and a line break cuts the line).

    One dump of every socket's name and a listener's ICONS alone.  Not the peers and owners' uids the
    listing shows (the kernel looks each peer up: a cache miss a socket, ~1/3 of its time for
    connected sockets), nor the queues (the kernel counts the bytes queued on each socket it is asked
    of; a listener's ICONS says the same of its connections waiting: an empty one, none).  The
    messages still end alike (every one with UNIX_DIAG_SHUTDOWN), so the decoder's tail strategy reads
    them (a datagram with a listener whose connections wait: the general one).  A name's text is
    made once (most sockets have none)."""
    from itertools import chain, compress
    from _operator import itemgetter

    from sockscope.errors import NotSupported, PermissionDenied
    from sockscope.kernel import transport, unix

    if os.environ.get("SOCKSCOPE_FORCE_PROC"):
        return None

    def dump(states: int, show: int) -> list[unix.Batch]:
        parts: list[unix.Batch] = []

        def take(data: bytes) -> bool:
            b, done = unix.decode(data, "unix diag")
            parts.append(b)
            return done

        transport.dump(unix.encode_request(states, show), take, "unix diag")
        return parts

    try:
        parts = dump(SS_ALL, unix.UDIAG_SHOW_NAME | unix.UDIAG_SHOW_ICONS)
    except (NotSupported, PermissionDenied):
        return None
    types, inodes, names = ([*chain.from_iterable([getattr(p, c) for p in parts])] for c in ("type", "inode", "name"))
    text: dict[bytes, Any] = dict.fromkeys(filter(None, names))  # each distinct name once, then its text
    texts = unix.unix_names(list(text))
    joined = "".join(texts)
    if joined and joined.split(None, 1) != [joined]:  # whitespace in some name
        return None
    text.update(zip(text, texts))  # (values only: the keys stay as they are)
    text[b""] = ""
    paths = [*itemgetter(*names)(text)] if len(names) > 1 else list(map(text.__getitem__, names))
    # listeners with connections not yet accepted: their ICONS lists those (none: empty; not a listener: None)
    waiting = list(compress(range(len(inodes)), chain.from_iterable([p.unix_pending for p in parts])))
    if waiting:
        types = types + [types[i] for i in waiting]
        inodes = inodes + [0] * len(waiting)
        paths += [paths[i] for i in waiting]
    return types, inodes, paths


_PART_COLS = ("sport", "dport", "inode")  # the head columns _part reads (one pass: Batch.read)
_PART_COLS_TCP = (*_PART_COLS, "state")


def _part(b: Batch, fam_enum: dict[int, Any], kind: Any, status_of: dict[int, str] | None) -> _Part:
    """One batch of the inet decoder as psutil's columns but the owners (see :data:`_Part`), made by
    C-level maps: each distinct address gets its text once (the decoder's cache), tuples are made by
    ``tuple.__new__``."""
    from itertools import repeat

    from sockscope._psutil_types import addr

    b.read(_PART_COLS if status_of is None else _PART_COLS_TCP)
    sports, dports = b.sport, b.dport
    new = tuple.__new__
    la: list[addr | tuple[()]] = list(map(new, repeat(addr), zip(b.texts("src"), sports)))
    ra: list[addr | tuple[()]] = list(map(new, repeat(addr), zip(b.texts("dst"), dports)))
    if 0 in sports:  # psutil: no address at all where the port is 0
        la = [a if p else () for a, p in zip(la, sports)]
    if 0 in dports:
        ra = [a if p else () for a, p in zip(ra, dports)]
    fams = repeat(fam_enum[b.fam]) if b.fam else list(map(fam_enum.__getitem__, b.family))
    status = repeat("NONE") if status_of is None else list(map(status_of.get, b.state, repeat("NONE")))
    return b.inode, fams, kind, la, ra, status


__all__ = ["net_connections", "process_connections", "NoSuchProcess", "AccessDenied", "sconn", "pconn", "addr"]
