"""ss's Process column: ``users:(("name",pid=P,fd=F),…)``, made from the owner data.

From :class:`sockscope.records.Owner` records (:func:`from_records`), or
straight from an :class:`~sockscope.owners.model.OwnerMap` without building
records (:class:`UsersText`; the ``-tanp`` fast path): holders are listed
last discovered first, as ss lists them; with ss -T's task holders each
carries its ``tid``.  Each cell has its leading space; a socket without
holders gets "".
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockscope.owners.model import OwnerMap
    from sockscope.records import Owner


def from_records(owners: tuple[Owner, ...]) -> str:
    """The cell of a record's owners (already in ss's order)."""
    if not owners:
        return ""
    return " users:(" + ",".join(
        f'("{o.name}",pid={o.pid},fd={o.fd})' if o.tid is None else f'("{o.name}",pid={o.pid},tid={o.tid},fd={o.fd})'
        for o in owners
    ) + ")"


class UsersText:
    """The cells of one owner map; each process's ``("name",pid=P,fd=`` made once (with ss -T's
    holders, each thread's ``("name",pid=P,tid=T,fd=``)."""

    __slots__ = ("_map", "_prefixes", "_threads")

    def __init__(self, owner_map: OwnerMap) -> None:
        self._map = owner_map
        self._prefixes: dict[int, str] = {}
        self._threads: dict[int, str] = {}  # tid -> its prefix

    def _prefix(self, pid: int) -> str:
        p = self._prefixes.get(pid)
        if p is None:
            p = self._prefixes[pid] = f'("{self._map.name(pid)}",pid={pid},fd='
        return p

    def text(self, inode: int) -> str:
        """The cell of ``inode``."""
        m = self._map
        tasks = m.tasks
        if tasks is not None:
            t = tasks.get(inode) if inode else None
            if not t:
                return ""
            threads = self._threads
            try:
                held = [f"{threads[tid]}{fd})" for _pid, tid, fd in reversed(t)]
            except KeyError:  # (a thread met the first time)
                for pid, tid, _fd in t:
                    if tid not in threads:
                        threads[tid] = f'("{m.name(tid)}",pid={pid},tid={tid},fd='
                held = [f"{threads[tid]}{fd})" for _pid, tid, fd in reversed(t)]
            return " users:(" + ",".join(held) + ")"
        h = m.holder_map().get(inode) if inode else None
        if not h:
            return ""
        prefix = self._prefix
        return " users:(" + ",".join(f"{prefix(pid)}{fd})" for pid, fd in reversed(h)) + ")"

    def all(self) -> tuple[list[int], list[str]]:
        """(every inode with holders, its cell), in one pass (the usual single
        holder without a method call per inode)."""
        holders = self._map.holder_map()
        if self._map.tasks is not None:
            inodes = list(holders)
            return inodes, list(map(self.text, inodes))
        prefixes = self._prefixes
        for pid in {h[0][0] for h in holders.values()}:
            self._prefix(pid)
        text = self.text
        return list(holders), [f" users:({prefixes[h[0][0]]}{h[0][1]}))" if len(h) == 1 else text(ino)
                               for ino, h in holders.items()]

    def mapping(self) -> dict[int, str]:
        """inode -> cell, for every inode with holders."""
        return dict(zip(*self.all()))


def cells(owner_map: OwnerMap) -> dict[int, str]:
    """inode -> cell of every socket of ``owner_map`` with holders."""
    return UsersText(owner_map).mapping()


__all__ = ["from_records", "UsersText", "cells"]
