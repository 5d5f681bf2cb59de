"""Who gets a connection slot of ``sockscope serve`` when slots are scarce.

Contract (stream connections only; UDP has :mod:`sockscope.services.serve_udp`):

* **Peers.**  A connection's *peer* is its source address: the IPv4
  address, the /64 prefix of an IPv6 address (one host usually owns a whole
  /64), or the uid of a UNIX peer.
* **Per-peer cap.**  With ``max_per_peer`` set, a peer already holding that
  many connections has a new one closed at once (``end=peer-limit``).
* **Progress.**  Each connection counts the bytes that show it is alive
  (echo: bytes received; greet: greeting bytes flushed) in windows of
  ``window`` seconds.  It is *slow* once it is at least one window old and
  its last complete window moved fewer than ``min_rate * window`` bytes, or,
  younger, once it is a quarter of a window old and has moved fewer than
  ``min_rate`` bytes per second of its age (so that fresh connections that
  send nothing cannot hold the slots by reconnecting faster than a window).
  A connection that got its slot while all were taken is *on probation*:
  for it that quarter window is :data:`PROBATION` seconds, so clients that
  reconnect as fast as they are evicted churn among themselves while a
  client that sends its request at once keeps its slot long enough to be
  served (on one address, nothing else tells them apart).
  A greeted connection whose greeting is flushed is *done*: it only waits
  for the client's FIN.  None of this closes anything while slots are free.
* **Eviction at the limit.**  A connection arriving when all ``max_conns``
  slots are taken gets a slot if one of the :data:`SCAN` least recently
  active connections can give it up: the least recently active that is
  *done* or *slow*; else one of the peer holding the most connections, if
  that is at least two more than the newcomer's peer holds (a fair share: a
  single peer cannot keep others out by numbers, even with fresh
  connections).  The victim is closed (``end=evicted``);
  otherwise the newcomer is (``end=limit``).
* **Cost.**  Admission, progress and release are O(1); an eviction looks at
  no more than :data:`SCAN` connections.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict
from itertools import islice
from typing import Protocol

from sockscope.services import DEFAULT_MIN_RATE, DEFAULT_WINDOW

#: Connections looked at (least recently active first) to find one to evict.
SCAN = 64
#: Seconds a connection admitted at the limit has to show progress.
PROBATION = 0.05


def peer_key(host: str) -> str:
    """The peer a connection from ``host`` counts against: an IPv4 address or an IPv6 /64."""
    if ":" not in host:
        return host  # IPv4, as the kernel formats it: already canonical
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(addr) >> 64 << 64, 64)))
    return str(addr)


class Slot(Protocol):
    """What admission needs of a connection."""

    peer_key: str
    started: float
    progress: Progress

    def done(self) -> bool: ...

    def abort(self, reason: str) -> None: ...


class Progress:
    """Bytes moved per window of ``window`` seconds, rolled lazily (no timers)."""

    __slots__ = ("moved", "_mark_t", "_mark_moved", "last_window")

    def __init__(self, now: float) -> None:
        self.moved = 0
        self._mark_t = now
        self._mark_moved = 0
        self.last_window = -1  #: bytes in the last complete window (-1: none yet)

    def add(self, n: int, now: float, window: float) -> None:
        self.roll(now, window)
        self.moved += n

    def roll(self, now: float, window: float) -> None:
        """Close the windows that ended before ``now``."""
        passed = int((now - self._mark_t) // window)
        if passed < 1:
            return
        # every add() rolls first, so the bytes since the mark all fell in its first window
        self.last_window = self.moved - self._mark_moved if passed == 1 else 0
        self._mark_t += passed * window
        self._mark_moved = self.moved


class Admission:
    """The live stream connections, least recently active first, and their peers."""

    def __init__(self, max_conns: int, max_per_peer: int | None, min_rate: float, window: float) -> None:
        self.max_conns = max_conns
        self.max_per_peer = max_per_peer
        self.min_bytes = min_rate * window
        self.window = window
        self.conns: OrderedDict[Slot, None] = OrderedDict()
        self.per_peer: Counter[str] = Counter()
        self.probation: set[Slot] = set()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.conns)

    def admit(self, conn: Slot, now: float) -> str | None:
        """Take a slot for ``conn`` (evicting one if need be); or the reason it is refused."""
        held = self.per_peer[conn.peer_key]
        if self.max_per_peer is not None and held >= self.max_per_peer:
            return "peer-limit"
        if len(self.conns) >= self.max_conns:
            victim = self._victim(held, now)
            if victim is None:
                return "limit"
            self.release(victim)
            self.evicted += 1
            victim.abort("evicted")
            self.probation.add(conn)
        self.conns[conn] = None
        self.per_peer[conn.peer_key] += 1  # not held + 1: the victim may have been of this peer
        return None

    def touch(self, conn: Slot, n: int, now: float) -> None:
        """``conn`` moved ``n`` bytes: it goes to the back of the eviction order."""
        conn.progress.add(n, now, self.window)
        if conn in self.conns:
            self.conns.move_to_end(conn)

    def release(self, conn: Slot) -> None:
        """``conn`` is gone (idempotent)."""
        if self.conns.pop(conn, False) is None:
            self.probation.discard(conn)
            left = self.per_peer[conn.peer_key] - 1
            if left > 0:
                self.per_peer[conn.peer_key] = left
            else:
                del self.per_peer[conn.peer_key]

    def _victim(self, newcomer_held: int, now: float) -> Slot | None:
        fallback: Slot | None = None
        most = newcomer_held + 1
        for conn in islice(self.conns, SCAN):
            if conn.done() or self._slow(conn, now):
                return conn
            held = self.per_peer[conn.peer_key]
            if held > most:
                fallback, most = conn, held
        return fallback

    def _slow(self, conn: Slot, now: float) -> bool:
        age = now - conn.started
        if not self.min_bytes or age < (PROBATION if conn in self.probation else self.window / 4):
            return False
        conn.progress.roll(now, self.window)
        if conn.progress.last_window < 0:  # younger than a window
            return conn.progress.moved < self.min_bytes * age / self.window
        return conn.progress.last_window < self.min_bytes


__all__ = ["SCAN", "PROBATION", "DEFAULT_MIN_RATE", "DEFAULT_WINDOW", "peer_key", "Progress", "Admission"]
