"""Whether the BPF iterator's records can be believed (:func:`plausible`): the check
:func:`sockscope.kernel.bpf.task_socket_fds` makes of what a cached layout gives, against /proc."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable


def plausible(inodes: list[int], pids: list[int], fds: list[int], held: Callable[..., bool],
              me: int, proc: str = "/proc", sample: int = 8) -> bool | None:
    """Whether the iterator's records can be believed: some of a sample of them (spread over the
    table) is a live process's fd that is that socket.  A layout with a wrong offset
    (``task_tgid``, ``i_mode``, ``i_ino``, the fd's slot) gives records none of which resolves.

    Other processes' records are sampled first, then this process's (``me``).  Its own sockets
    are mostly its dumps' netlink sockets, closed by now: where there are no others' records and
    ``held(exclude=me)`` (a look at /proc: :func:`sockscope.owners.walk.any_socket_fd`) says no
    other process holds a socket, records of its own none of which resolves cannot tell, nor can
    no record at all where it holds a socket now (``held(only=me)``): None says so
    (``bpf._controlled`` decides).  False where others' records do not resolve or /proc shows
    others' sockets the walk missed; True where there is no socket to find."""
    n = len(inodes)
    a, end = own_run(pids, me)
    k = end - a
    rest = n - k
    at = [j if j < a else j + k for j in range(0, rest, max(1, rest // sample))]  # (others': the table but the run)
    at += range(a, a + k, max(1, k // sample))
    for i in at:
        try:
            if os.readlink(f"{proc}/{pids[i]}/fd/{fds[i]}") == f"socket:[{inodes[i]}]":
                return True
        except OSError:
            continue  # gone meanwhile, or never there
    if rest or held(exclude=me):
        return False
    return None if k or held(only=me) else True


def own_run(pids: list[int], me: int) -> tuple[int, int]:
    """Where the records of process ``me`` are among the iterator's (in pid order: one run, found in
    log n steps): its first index and the one after its last."""
    from _bisect import bisect_left, bisect_right

    a = bisect_left(pids, me)
    return a, bisect_right(pids, me, a)


__all__ = ["plausible", "own_run"]
