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
from sockscope.errors import SockscopeError
from sockscope.query import SS_ALL, Query, _kind, batches

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator

    from sockscope.kernel.inet import Batch
    from sockscope.owners.model import OwnerMap

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


_PSUTIL_STATUS = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
    11: "CLOSING", 12: "SYN_RECV",
}


class NoSuchProcess(SockscopeError, ProcessLookupError):
    """:func:`process_connections`: no process with that pid (psutil's ``NoSuchProcess``)."""


class AccessDenied(SockscopeError, PermissionError):
    """:func:`process_connections`: the process's fds cannot be read (psutil's ``AccessDenied``)."""


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
    _kind(kind)  # a bad kind is refused before the process is looked at, as psutil does
    return _collect(kind, _procfs(procfs), pid)  # type: ignore[return-value]


def _process_owners(pid: int, proc: str) -> OwnerMap:
    """The socket fds of ``pid`` alone (errors as psutil's Process raises them)."""
    from sockscope.owners import walk
    from sockscope.owners.model import OwnerMap

    try:
        os.stat(f"{proc}/{pid}/stat")
    except FileNotFoundError:
        if proc != "/proc":
            from sockscope.owners.service import check_procfs

            check_procfs(proc)
        raise NoSuchProcess(f"no process with pid {pid}") from None
    m = OwnerMap(proc)
    walk.walk(m, [pid])
    if not m.complete:
        raise AccessDenied(f"the fds of process {pid} cannot be read (run as root)")
    if not os.path.exists(f"{proc}/{pid}/stat"):
        raise NoSuchProcess(f"no process with pid {pid} (it ended)")
    return m


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

    from sockscope._psutil_types import pconn, sconn
    from sockscope.owners.service import Pending, check_procfs, scan

    tables, fams = _kind(kind)
    if proc != "/proc":
        check_procfs(proc)
    # The owners (the kernel's task_file iterator, or the /proc/*/fd walk:
    # system calls, GIL released) are found in the background while this
    # thread dumps and decodes: on two cores the two overlap.  UNIX rows need
    # every fd of a holder (an OwnerMap); inet rows only psutil's one owner per
    # inode.  One process's fds (``only``) are read here, first.
    pending_map: Pending[OwnerMap] | None = None
    pending_owners: Pending[dict[int, tuple[int, int]]] | None = None
    owners: OwnerMap | None = None
    if only is not None:
        owners = _process_owners(only, proc)
        if not len(owners):
            return []
    elif AF_UNIX in fams:
        pending_map = Pending(lambda: scan(proc))
    else:
        pending_owners = Pending(lambda: scan(proc).psutil_owners())
    stream = _s.SocketKind.SOCK_STREAM
    dgram = _s.SocketKind.SOCK_DGRAM
    fam_enum = {
        AF_INET: _s.AddressFamily.AF_INET, AF_INET6: _s.AddressFamily.AF_INET6, AF_UNIX: _s.AddressFamily.AF_UNIX,
    }
    unix_types = {1: stream, 2: dgram, 5: _s.SocketKind.SOCK_SEQPACKET}  # SOCK_* numbers
    try:
        inet_batches, unix = _dump(tables, fams, proc)
    finally:  # the background work is waited for even when the dump fails: no thread outlives the call
        if pending_map is not None:
            owners = pending_map.result()
        owner_of = pending_owners.result() if pending_owners is not None else None
    if owner_of is None:
        assert owners is not None
        owner_of = owners.psutil_owners()
    ret: list[sconn] = []
    seen: set[tuple[Any, ...]] = set()

    def add(row: sconn) -> None:
        # psutil returns a set: equal rows collapse into one.  Rows with an owner
        # differ at least in (pid, fd); only rows without one (pid None) can be
        # equal.  The key leaves out the enum members (their hash is Python code).
        if row[6] is None:
            key = (int(row[1]), int(row[2]), row[3], row[4], row[5])
            if key in seen:
                return
            seen.add(key)
        ret.append(row)

    for table, batch in inet_batches:
        rows, all_owned = _psutil_columns(batch, fam_enum, stream if table == "tcp" else dgram,
                                          _PSUTIL_STATUS if table == "tcp" else {}, owner_of)
        if all_owned:
            ret += rows
        else:
            for row in rows:
                add(row)
    fam_u = fam_enum[AF_UNIX]
    new = tuple.__new__  # psutil's named tuple without its Python-level __new__
    if unix:
        assert owners is not None  # UNIX rows: every fd of a holder
        held = owners.holder_map()
        append = ret.append
        for stype, inode, name in unix:
            # psutil keeps a UNIX socket's name when it is one word (it splits the whole line)
            path = name if name and len(name.split()) == 1 else ""
            kind_ = unix_types.get(stype, dgram)
            h = held.get(inode) if inode else None
            if not h:
                add(new(sconn, (-1, fam_u, kind_, path, "", "NONE", None)))
            elif len(h) == 1:  # an owned row: never equal to another (its pid, fd differ)
                append(new(sconn, (h[0][1], fam_u, kind_, path, "", "NONE", h[0][0])))
            else:  # psutil keeps the fds of the last pid (in pid order) holding it
                last = h[-1][0]
                ret += [new(sconn, (fd, fam_u, kind_, path, "", "NONE", pid)) for pid, fd in h if pid == last]
    if only is None:
        return ret
    return [new(pconn, r[:6]) for r in ret if r[6] == only]


def _dump(tables: tuple[str, ...], fams: tuple[int, ...], proc: str
          ) -> tuple[list[tuple[str, Batch]], list[tuple[int, int, str]]]:
    """The sockets of ``tables`` and ``fams``: (inet batches of the one source, UNIX (type, inode, name))."""
    inet_batches: list[tuple[str, Batch]] = []
    q = Query(frozenset(t for t in tables if t in ("tcp", "udp")), frozenset(f for f in fams if f != AF_UNIX),
              SS_ALL | (1 << 12))
    if q.tables and q.families:
        for table, batch in batches(q, lambda m: None, ahead=False, ordered=False):  # psutil's is a set
            inet_batches.append((table, batch))  # type: ignore[arg-type]  # inet tables: always batches
    unix: list[tuple[int, int, str]] = []
    if AF_UNIX in fams:
        # psutil reads /proc/net/unix, which also lists connections not yet
        # accepted (inode 0) that sock_diag omits: read the same file.
        from sockscope import procnet

        unix = procnet.unix_entries(proc)
    return inet_batches, unix


_NO_OWNER = (None, -1)


def _psutil_columns(b: Batch, fam_enum: dict[int, Any], kind: Any, status_of: dict[int, str],
                    owner_of: dict[int, tuple[int, int]]) -> tuple[Iterator[sconn], bool]:
    """:func:`net_connections`' tuples of one batch of the inet decoder, made by
    C-level maps: each distinct address gets its text once (the decoder's
    cache), tuples are made by ``tuple.__new__``; and whether every one of them
    has an owner."""
    from itertools import repeat
    from operator import itemgetter

    from sockscope._psutil_types import addr, sconn
    from sockscope.kernel.inet import ADDR_TEXT

    sports, dports, inos = b.sport, b.dport, b.inode
    text = ADDR_TEXT.__getitem__
    new = tuple.__new__
    # lazy: consumed once, by the zip below (no list per column)
    la: Iterable[addr | tuple[()]] = map(new, repeat(addr), zip(map(text, b.src), sports))
    ra: Iterable[addr | tuple[()]] = map(new, repeat(addr), zip(map(text, b.dst), dports))
    if 0 in sports:  # psutil: no address at all where the port is 0
        la = [a if p else () for a, p in zip(la, sports)]
    if 0 in dports:
        ra = [a if p else () for a, p in zip(ra, dports)]
    fams = repeat(fam_enum[b.fam]) if b.fam else map(fam_enum.__getitem__, b.family)
    owner = list(map(owner_of.get, inos, repeat(_NO_OWNER)))
    status = map(status_of.get, b.state, repeat("NONE"))
    rows = map(new, repeat(sconn), zip(map(itemgetter(1), owner), fams, repeat(kind), la, ra, status,
                                       map(itemgetter(0), owner)))
    return rows, _NO_OWNER not in owner


__all__ = ["net_connections", "process_connections", "NoSuchProcess", "AccessDenied", "sconn", "pconn", "addr"]
