"""Which connections ``sockscope exporter`` serves, and which wait for a slot (its server is
:mod:`sockscope.exporter_web`).

At most ``size`` connections (``--web.max-connections``) are served at once.  What happens at that cap
decides whether idle clients, drippers, clients that do not read, wrong passwords and one host's flood of
connections can lock the scrapers out.

Peers.  A connection's *peer* is its client's address as ``sockscope serve`` counts it
(:func:`sockscope.services.admission.peer_key`: an IPv4 address, an IPv6 /64, an IPv4-mapped IPv6 address
as that IPv4 address); one whose address cannot be read (its client gone already) is of the peer ``""``.
A peer *holds* its connections served and queued.  What the newcomer's peer holds is counted without the
newcomer (for a queued connection about to be seated, which stands for the newcomer below: without it).
The *heavy* peers are those holding the most connections, if that is at least two more than the
newcomer's peer holds (none otherwise): the fair share of :mod:`sockscope.services.admission`, after
which the heavy peer still holds at least as many as the newcomer's.  The connection closed to make room
for a newcomer is, of those the rule at hand allows, in the order it gives (waiting longest first):

* the first of a heavy peer's, if there is one;
* else the first, as if there were no peers, except that a connection waiting for its first request
  head (within its grace or past it) is never closed for a newcomer whose peer holds more connections
  than its own: a flood cannot close a scraper it let in before the server has read its head, however
  long a server busy with the flood takes to read it.

From one address there is no heavy peer and nothing is spared: every rule below is by age alone, as it
was before peers were counted.

* A new connection takes the slot of a connection *evictable* (in the order: longest first): one waiting
  for a request head (an idle keep-alive, a dripper) or for its client to take a response (stuck
  :data:`WRITE_STALL_GRACE` or more: a client that does not read), which is closed.  A connection just
  given its slot is not evictable for :data:`ADMIT_GRACE` while it waits for its first head: it has had
  no chance to send it yet.
* With none to take (every connection busy: its exposition rendered, its password checked, its response
  written; or just admitted; or spared), the newcomer waits in a queue of at most ``max_queued``
  connections.  Nothing of a queued connection is read (its transport is paused: no request parsed, no
  TLS handshake); its head's deadline counts from its arrival, so the wait gives a dripper no more time.
  A slot goes to the queued connection whose peer has the fewest connections served, the first come
  among those (from one address: first come first served), so that one host's connections queued early
  do not go before another's scraper: a slot that frees (a connection closing), or one taken from a
  connection becoming evictable (its grace or a stalled write running out: a timer, not a poll; a
  keep-alive going idle after a response: at once) for the queued connection chosen first.
* With the queue full, if the peer with the most connections queued has at least two more queued than
  the newcomer's peer, the newcomer takes the place of that peer's connection queued last (of those
  peers, the one queued last), which is closed: one host cannot hold the queue against another's
  scraper.  Else the newcomer takes the slot of a connection waiting for a request head even within its
  grace (in the order: waiting longest first); the slot goes to a queued connection as above, the
  newcomer among them, chosen while the one closed still counts as served (from one address: the first
  queued one, and the newcomer queues).  Else idle clients connecting faster than graces run out would
  hold the slots and the queue in turn, and a scraper, arriving at a full queue, would be closed every
  time (measured: with 32 slots and a few thousand idle connections a second, 0 of 50 scrapes were
  answered without this, 45 to 49 with it, as many as before the queue).  Only when no connection may
  give way and the queue is full is a newcomer closed at once.

Measured with the flood from another address than the scrapes' (connecting as fast as the listen backlog
lets it, some 2,000 connections a second, against 32 slots): 51 to 74 of 100 scrapes answered by age
alone, 100 of 100 with the rules by peer (three runs each).

Why accepted and queued rather than left in the listen backlog: a connection not accepted has no
arrival time to count its deadline from, and newcomers that could take an idle connection's slot would
not be seen.  A queued connection whose client went away is not watched (that takes a duplicate of its
socket: the loop allows no second reader on a transport's own descriptor); at its turn its read fails at
once and it is closed, its slot going to the next, or its deadline closes it while queued.

Costs, with ``n`` connections served and ``q`` peers with something queued (the queue is one first-come
queue per peer; the peers are kept by how many connections they hold, so the heavy ones are found in
O(1)): a connection closing hands its slot on in O(q); an arrival at the cap, and a timer's turn, look at
every served connection, as the eviction always has (O(n log n): those that may be taken, sorted), and at
every peer with something queued, and each connection they seat costs O(n + q) more (the choice of the
connection it takes the slot of, and the queue's order).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from sockscope.exporter_defaults import ADMIT_GRACE
from sockscope.services.admission import peer_key

#: a response unsent this long (its client not reading) makes the connection evictable at the cap, as
#: one waiting for a request head is: a client that pipelines requests and never reads would otherwise
#: hold its connection busy for write_timeout, and max_connections of them lock the scrapers out.  Not
#: at once: a scraper taking a big exposition (or over a slow link) holds a write up for moments
WRITE_STALL_GRACE = 1.0


def peer_of(writer: asyncio.StreamWriter) -> str:
    """The peer of a connection (:func:`sockscope.services.admission.peer_key` of its source address);
    ``""`` when its address cannot be read."""
    peername = writer.get_extra_info("peername")
    if isinstance(peername, tuple) and peername and isinstance(peername[0], str):
        return peer_key(peername[0])
    return ""


class Conn:
    """One client connection: its writer and its peer; since when it waits for a request head (None:
    not), and whether that is its first head since it got its slot (``fresh``); since when it waits for
    its client to take a response (None: not); the wait of :func:`sockscope.exporter_web._looks_like_http`
    (None: not looking); its place in the order of arrivals in the queue (``arrival``)."""

    __slots__ = ("writer", "peer", "waiting_since", "fresh", "writing_since", "looking", "arrival")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.peer = peer_of(writer)
        self.waiting_since: float | None = None
        self.fresh = True
        self.writing_since: float | None = None
        self.looking: asyncio.Future[None] | None = None
        self.arrival = 0

    def evict(self) -> None:
        """Close the connection to make room, its socket at once: a look at its first bytes holds a
        duplicate of the socket, so it is ended too (else the socket stayed open until the deadline)."""
        self.writer.transport.abort()
        if self.looking is not None and not self.looking.done():
            self.looking.set_exception(ConnectionAbortedError("evicted"))

    def idle_since(self) -> float | None:
        """Since when the connection waits for its client, for a request head or to take a response
        (the order of eviction: longest first); None while it is served (its exposition being rendered,
        its password checked, its head being parsed)."""
        return self.waiting_since if self.waiting_since is not None else self.writing_since

    def evictable_from(self, grace: float) -> float | None:
        """From when it may be closed to make room: ``grace`` (:data:`ADMIT_GRACE`) into the wait for
        its first head, at once into the wait for a later one (a keep-alive), :data:`WRITE_STALL_GRACE`
        into a write; None while it is served."""
        if self.waiting_since is not None:
            return self.waiting_since + grace if self.fresh else self.waiting_since
        if self.writing_since is not None:
            return self.writing_since + WRITE_STALL_GRACE
        return None


class Slots:
    """The connections served (at most ``size``) and those queued for a slot (at most ``max_queued``),
    under the rules of the module docstring, a connection just admitted having ``grace`` seconds
    (:data:`ADMIT_GRACE`) for its first head.  The server tells it when a connection starts to wait for a
    keep-alive head (:meth:`waiting`), starts a write (:meth:`writing`) and ends (:meth:`leave`).

    ``held`` counts each peer's connections, served and queued, and ``served`` its served ones: exact
    whichever way a connection comes and goes (seated, evicted, displaced from the queue, closed, its wait
    cancelled, :meth:`close_all`); a peer holding none is not listed."""

    def __init__(self, size: int, max_queued: int, grace: float = ADMIT_GRACE) -> None:
        self.size = size
        self.max_queued = max_queued
        self.grace = grace
        self.conns: dict[Conn, None] = {}
        self.queue: dict[Conn, asyncio.Future[None]] = {}  # every queued connection, in order of arrival
        self.queues: dict[str, dict[Conn, None]] = {}  # each peer's queued connections, first come first
        self.held: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self._holding: dict[int, set[str]] = {}  # the peers by how many connections they hold
        self._most = 0  # how many the peers holding the most hold
        self._arrivals = 0
        self._timer: asyncio.TimerHandle | None = None

    async def enter(self, conn: Conn) -> bool:
        """Give ``conn`` a slot, at once or once its turn in the queue comes (the caller bounds that
        wait by the head's deadline: cancelled, it leaves the queue); False when it is to be closed at
        once (the queue full and no connection may give way), was displaced from the queue by another
        peer's newcomer, or was evicted before it could run (a look at its first bytes would hold a
        duplicate of its closed socket)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._pump(now)  # (a timer may be late: those queued go first)
        if not self.queue and self._make_room(now, conn.peer):
            self._seat(conn, now)
            return True
        fut: asyncio.Future[None] = loop.create_future()
        if len(self.queue) >= self.max_queued:
            crowding = self._crowding(conn.peer)
            if crowding is not None:
                self._drop(crowding)  # its place in the queue goes to the newcomer
            else:
                victim = self._waiting_longest(conn.peer)
                if victim is None:
                    return False
                self._enqueue(conn, fut)
                chosen = self._next_queued()  # (chosen while the victim still counts as served)
                self._evict(victim)
                if chosen is not None:  # (always: the newcomer at least)
                    self._seat_queued(chosen, now)
        if conn not in self.queue and not fut.done():
            self._enqueue(conn, fut)
        self._pump(now)  # (a slot just freed goes to a queued one)
        if fut.done():
            return conn in self.conns
        transport = conn.writer.transport
        if isinstance(transport, asyncio.ReadTransport):
            transport.pause_reading()  # unread until its turn (a TLS handshake wants its first bytes, too)
        try:
            await fut
        except BaseException:
            if not self._unqueue(conn):  # given its slot as the wait ended: it goes on
                self.leave(conn)
            raise
        if conn not in self.conns:
            return False  # displaced, or evicted after its turn came before it could run: closed already
        if isinstance(transport, asyncio.ReadTransport):
            transport.resume_reading()
        return True

    def waiting(self, conn: Conn, now: float) -> None:
        """``conn`` (answered, kept alive) waits for its next request head: evictable at once, so its
        slot goes to a queued connection if there is one."""
        conn.waiting_since = now
        conn.fresh = False
        if self.queue:
            self._pump(now)

    def writing(self, conn: Conn, now: float) -> None:
        """``conn`` starts writing a response: evictable if still writing :data:`WRITE_STALL_GRACE`
        from now, when queued connections wait."""
        conn.writing_since = now
        if self.queue:
            self._arm(now + WRITE_STALL_GRACE)

    def leave(self, conn: Conn) -> None:
        """``conn`` is closed (or its task ends): its slot goes to the next queued (idempotent)."""
        if self._unqueue(conn) or conn not in self.conns:
            return
        self._unseat(conn)
        if self.queue:
            now = asyncio.get_running_loop().time()
            chosen = self._next_queued()
            if chosen is not None:
                self._seat_queued(chosen, now)
                if self.queue:
                    self._arm(now + self.grace)  # (when the one just seated may give way, if still waiting)

    def close_all(self) -> None:
        """Close every connection, served and queued (the server stops); the queued ones' waits end
        (:meth:`enter` returns False), and nothing is held any more."""
        for conn in [*self.conns, *self.queue]:
            conn.writer.transport.abort()
        for fut in self.queue.values():
            if not fut.done():
                fut.set_result(None)
        for d in (self.conns, self.queue, self.queues, self.held, self.served, self._holding):
            d.clear()
        self._most = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- inside: the counts

    def _count(self, peer: str, delta: int) -> None:
        """``peer`` holds ``delta`` (1 or -1) connections more: ``held``, ``_holding`` and ``_most`` follow."""
        was = self.held[peer]
        now = was + delta
        if was:
            peers = self._holding[was]
            peers.discard(peer)
            if not peers:
                del self._holding[was]
        if now:
            self.held[peer] = now
            self._holding.setdefault(now, set()).add(peer)
        else:
            del self.held[peer]
        if now > self._most:
            self._most = now
        elif was == self._most and was not in self._holding:
            self._most = now  # (it held the most, alone: now one less, still the most)

    def _heavy(self, own: int) -> set[str]:
        """The heavy peers for a newcomer whose peer holds ``own`` connections (see the module
        docstring): those holding the most, if that is at least two more; else none."""
        return self._holding[self._most] if self._most >= own + 2 else set()

    def _seat(self, conn: Conn, now: float) -> None:
        self.conns[conn] = None
        self._count(conn.peer, 1)
        self.served[conn.peer] += 1
        conn.waiting_since = now  # its first head: its grace from now
        conn.fresh = True

    def _unseat(self, conn: Conn) -> None:
        del self.conns[conn]
        self._count(conn.peer, -1)
        self.served[conn.peer] -= 1
        if not self.served[conn.peer]:
            del self.served[conn.peer]

    def _enqueue(self, conn: Conn, fut: asyncio.Future[None]) -> None:
        self._arrivals += 1
        conn.arrival = self._arrivals
        self.queue[conn] = fut
        self.queues.setdefault(conn.peer, {})[conn] = None
        self._count(conn.peer, 1)

    def _unqueue(self, conn: Conn) -> bool:
        """Take ``conn`` out of the queue; False when it was not in it."""
        if self.queue.pop(conn, None) is None:
            return False
        mine = self.queues[conn.peer]
        del mine[conn]
        if not mine:
            del self.queues[conn.peer]
        self._count(conn.peer, -1)
        return True

    # -- inside: the rules

    def _next_queued(self) -> Conn | None:
        """The queued connection the next slot goes to (its peer with the fewest served, then first
        come), those whose wait was cancelled dropped on the way (their tasks remove nothing more);
        None when none waits.  O(peers with something queued)."""
        best: tuple[int, int, Conn] | None = None
        for peer in list(self.queues):
            mine = self.queues[peer]
            while mine:
                first = next(iter(mine))
                if not self.queue[first].done():
                    break
                self._unqueue(first)
            if peer in self.queues:
                key = (self.served[peer], first.arrival, first)
                if best is None or key[:2] < best[:2]:
                    best = key
        return best[2] if best is not None else None

    def _seat_queued(self, conn: Conn, now: float) -> None:
        fut = self.queue[conn]
        self._unqueue(conn)
        self._seat(conn, now)
        fut.set_result(None)

    def _drop(self, conn: Conn) -> None:
        """Close a queued connection for another peer's newcomer (its wait ends: :meth:`enter` returns
        False)."""
        fut = self.queue[conn]
        self._unqueue(conn)
        if not fut.done():
            fut.set_result(None)
        conn.evict()

    def _evict(self, conn: Conn) -> None:
        if conn in self.conns:
            self._unseat(conn)
        conn.evict()

    def _evictable(self, now: float) -> list[Conn]:
        """The connections that may be closed to make room, waiting longest first."""
        ranked = sorted((s, i, c) for i, c in enumerate(self.conns)
                        if (t := c.evictable_from(self.grace)) is not None and t <= now
                        and (s := c.idle_since()) is not None)
        return [c for _, _, c in ranked]

    def _make_room(self, now: float, peer: str) -> bool:
        """Whether a slot is free or was made free for a newcomer of ``peer`` (closing the connection
        evictable longest, under the rules by peer)."""
        if len(self.conns) < self.size:
            return True
        victim = self._victim(self._evictable(now), self.held[peer])
        if victim is not None:
            self._evict(victim)
        return victim is not None

    def _victim(self, ranked: list[Conn], own: int) -> Conn | None:
        """Of ``ranked`` (longest first), the one to close for a newcomer whose peer holds ``own``
        connections (itself not counted): the first of the heavy peers', if one is; else the first that
        is not a connection waiting for its first head whose peer holds fewer than ``own``."""
        heavy = self._heavy(own)
        first: Conn | None = None
        for c in ranked:
            if c.peer in heavy:
                return c
            if first is None and (not c.fresh or self.held[c.peer] >= own):
                first = c
                if not heavy:
                    break
        return first

    def _crowding(self, peer: str) -> Conn | None:
        """With the queue full, the queued connection a newcomer of ``peer`` takes the place of: the one
        queued last of the peer with the most queued, if that is at least two more than ``peer`` has."""
        most = max(map(len, self.queues.values()), default=0)
        if most < len(self.queues.get(peer, ())) + 2:
            return None
        return max((next(reversed(mine)) for mine in self.queues.values() if len(mine) == most),
                   key=lambda c: c.arrival)

    def _waiting_longest(self, peer: str) -> Conn | None:
        """For a newcomer of ``peer`` at a full queue: the connection waiting longest for a request head,
        grace or not, under the rules by peer."""
        waiting = sorted((c.waiting_since, i, c) for i, c in enumerate(self.conns) if c.waiting_since is not None)
        return self._victim([c for _, _, c in waiting], self.held[peer])

    def _pump(self, now: float) -> None:
        """Seat queued connections, in the queue's order, while slots are free or can be made free (for
        each, the connection closed for it chosen by its peer); then, if some still wait, set the timer
        for the next connection to become evictable."""
        ranked: list[Conn] | None = None
        while self.queue:
            chosen = self._next_queued()
            if chosen is None:
                break
            if len(self.conns) >= self.size:
                if ranked is None:
                    ranked = self._evictable(now)
                victim = self._victim(ranked, self.held[chosen.peer] - 1)  # (itself not counted)
                if victim is None:
                    break
                ranked.remove(victim)
                self._evict(victim)
            self._seat_queued(chosen, now)
        if self.queue:
            self._arm(min((t for c in self.conns if (t := c.evictable_from(self.grace)) is not None and t > now),
                          default=None))

    def _arm(self, when: float | None) -> None:
        """Have :meth:`_pump` run at ``when``, unless it runs before anyway."""
        if when is None or (self._timer is not None and self._timer.when() <= when):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._pump(asyncio.get_running_loop().time())


__all__ = ["ADMIT_GRACE", "WRITE_STALL_GRACE", "Conn", "Slots", "peer_of"]
