"""The entry points the listing and ``who`` use for owners: thin fronts over
:mod:`sockscope.owners` (the service) and :mod:`sockscope.render.users` (ss's
``users:(…)`` text).

:class:`BackgroundOwners` runs the owner scan, and the making of every
socket's users text, in the background (:class:`sockscope.owners.service.Pending`)
while the listing dumps sockets (the CLI's ``-p``).
"""

from __future__ import annotations

from sockscope.owners.model import OwnerMap, comm, unreadable_hint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from sockscope.owners.service import Pending


def psutil_owners_later(proc: str = "/proc") -> Callable[[], dict[int, tuple[int, int]]]:
    """Start finding, for every socket inode, the owner psutil reports (see
    :meth:`OwnerMap.psutil_owners`); the function returned waits for the map."""
    from sockscope.owners.service import Pending, scan

    return Pending(lambda: scan(proc).psutil_owners()).result


class BackgroundOwners:
    """:func:`sockscope.owners.service.scan` and the users text of every socket
    inode, made in the background while this process goes on."""

    __slots__ = ("_pending", "_texts", "_decided", "_walking", "complete", "why", "proc", "via", "hidden")

    def __init__(self, proc: str = "/proc", hidden: frozenset[int] = frozenset()) -> None:
        """``hidden``: socket inodes left without users text (the lister's own socket to rpcbind,
        which ss opens after it reads owners: render/rpcbind.py)."""
        import _thread

        from sockscope.owners.service import Pending

        self.proc = proc
        self.hidden = hidden
        self.complete = True
        self.why = ""  # as OwnerMap.why
        self.via = "proc"
        self._texts: dict[int, str] | None = None
        self._walking = False  # (set by the background thread: the owners come from the /proc walk)
        self._decided = _thread.allocate_lock()  # (released by the background thread once it knows)
        self._decided.acquire()
        self._pending: Pending[tuple[OwnerMap, dict[int, str]]] | None = Pending(self._work)

    def _work(self) -> tuple[OwnerMap, dict[int, str]]:
        from sockscope.owners.service import iterator_possible, scan
        from sockscope.render.users import cells

        try:
            self._walking = not iterator_possible(self.proc)
        finally:
            self._decided.release()  # (also where that raised: nobody waits for ever)
        m = scan(self.proc)
        texts = cells(m)
        for inode in self.hidden:
            texts.pop(inode, None)
        return m, texts

    def wait_if_walking(self) -> None:
        """Where the owners come from the /proc walk for sure (the kernel's iterator cannot be
        used: ``owners.service.iterator_possible``, known within a millisecond of the start), wait
        for them; else return at once.  The walk makes a system call a process and one a file
        descriptor, each of which gives the GIL up and must take it back: beside the listing's
        decoding it waits for the GIL after every call, and beside the dumps' helpers it shares the
        two cores with the kernel's walks (the host mix's walk: 80 ms alone, 103-135 ms beside the
        listing).  A listing calls this before it sends its dumps; after it, they run beside its
        decoding as usual.  The iterator is one ``read``: the listing runs beside it."""
        self._decided.acquire()
        self._decided.release()
        if self._walking:
            self.texts()

    def texts(self) -> dict[int, str]:
        """inode -> users text, for every socket inode that has holders (waits the first time)."""
        if self._texts is None:
            assert self._pending is not None
            m, self._texts = self._pending.result()
            self._pending = None
            self.complete, self.why = m.complete, m.why
            self.via = m.via
        return self._texts

    def text(self, inode: int) -> str:
        """As :meth:`sockscope.render.users.UsersText.text` (waits for the scan the first time)."""
        return self.texts().get(inode, "")


__all__ = ["OwnerMap", "BackgroundOwners", "psutil_owners_later", "unreadable_hint", "comm"]
