"""Which processes hold which sockets: the owner service.

* :mod:`.model` — :class:`OwnerMap`, the data: socket inode -> (pid, fd) holders;
* :mod:`.service` — the one front: :func:`scan` (kernel iterator or /proc walk),
  :class:`Pending` (the one way of running it in the background),
  :class:`OwnerTracker` (a map kept up to date between ticks, for ``top``);
* :mod:`.walk` — the /proc walks: full, per thread (ss -T), incremental.

ss's ``users:(…)`` text is made from the map in :mod:`sockscope.render.users`.
To add an owner source: a function returning (inodes, pids, fds) columns like
:func:`.service.kernel_records`, tried in :func:`.service.scan`.
"""

from sockscope.owners.model import OwnerMap, comm, unreadable_hint

__all__ = ["OwnerMap", "comm", "unreadable_hint"]
