"""The records API: :func:`sockets` streams :class:`~sockscope.records.Socket` records of a kind
(psutil's kind names), with the states, details, filter expression, namespace and owners asked
for, from the one source (:func:`sockscope.query.run`)."""

from __future__ import annotations

from sockscope.errors import UsageError
from sockscope.query import EXT_INFO, EXT_MEM, Query, kind_of, run, with_filter

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Iterable, Iterator

    from sockscope.records import Socket, State


def sockets(
    kind: str = "inet",
    *,
    states: Iterable[State | str | int] | None = None,
    processes: bool = False,
    details: bool | Iterable[str] = False,
    filter: str | None = None,
    netns: str | None = None,
) -> Iterator[Socket]:
    """Stream the sockets of ``kind`` (psutil's kind names) as :class:`Socket` records.

    ``states`` limits the states: one or several, each a ``State`` member (or its
    number), its name, ss's column name ("ESTAB") or ss's state word ("listening",
    "connected", "bucket"…); the kernel filters them.  ``processes=True``
    fills ``owners`` with every (pid, fd, name) holding each socket.
    ``details`` asks for more per socket: True for everything, or a set of
    "info" (``tcp_info``, ``cong``), "mem" (``skmem``) and "extended"
    (``v6only``, ``shutdown``, ``mark``, ``cgroup_id``, UNIX vfs and pending
    peers).  Timers (``timer``, ``expires``, ``retrans``) are always filled.
    ``filter`` is an ss filter expression (``"dport = :443 or sport = :443"``),
    compiled to kernel bytecode where the kernel can evaluate it; it may start
    with ss's state words (``"state established dport = :443"``,
    ``"exclude time-wait"``), which narrow ``states``.  ``netns``
    names a network namespace (``ip netns`` name or a path) to list instead of
    the caller's; records then carry it in ``netns``.
    """
    for name, given in (("filter", filter), ("netns", netns)):
        if given is not None and not isinstance(given, str):
            raise TypeError(f"{name} is text (str), not {type(given).__name__}")
    tables, fams = kind_of(kind)
    want_all, ext = _details(details)
    from sockscope.records import state_mask

    q = Query(frozenset(tables), frozenset(fams), state_mask(states), details=want_all, ext=ext)
    if filter:
        from sockscope.filter.states import parse_state_words

        # leading "state X" / "exclude X" words, as on the command line; they narrow ``states``
        mask, words = parse_state_words(filter.split(), -1)
        q = with_filter(q.replace(states=q.states & mask), words)
    if netns is not None:
        from sockscope import netns as _netns

        path = netns if "/" in netns else f"{_netns.NETNS_RUN_DIR}/{netns}"
        label = netns
        # collect inside the namespace, hand the records out from home
        inside = list(_netns.visit([(label, path)], lambda lb: _netns.labelled(run(q), lb), gone_ok=False))
        yield from _with_owners(iter(inside), processes)
        return
    yield from _with_owners(run(q), processes)


def _with_owners(it: Iterator[Socket], processes: bool) -> Iterator[Socket]:
    if not processes:
        yield from it
        return
    from sockscope.owners.service import scan
    from sockscope.records import evolve

    owners = scan()
    for s in it:
        o = owners.owners(s.inode)
        yield evolve(s, owners=o) if o else s


_DETAIL_WORDS = {"info": EXT_INFO, "mem": EXT_MEM, "extended": 0, "timers": 0}


def _details(details: bool | Iterable[str]) -> tuple[bool, int]:
    """(decode every attribute, inet_diag extensions) for ``sockets(details=…)``."""
    if details is True:
        return True, EXT_INFO | EXT_MEM
    if not details:
        return False, 0
    if isinstance(details, (bytes, bytearray)) or not isinstance(details, str) and not hasattr(details, "__iter__"):
        raise TypeError(f"details is True or words (str), not {type(details).__name__}")
    words = {details} if isinstance(details, str) else set(details)
    bad = words - set(_DETAIL_WORDS)
    if bad:  # (a UsageError: one bounded, printable line)
        raise UsageError(f"unknown details {sorted(map(str, bad))}; valid: {sorted(_DETAIL_WORDS)}")
    ext = 0
    for w in words:
        ext |= _DETAIL_WORDS[w]
    return "extended" in words, ext


__all__ = ["sockets"]
