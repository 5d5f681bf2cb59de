"""Which connections ``sockscope exporter`` serves, and which wait for a slot (its server is
:mod:`sockscope.exporter_web`).

At most ``size`` connections (``--web.max-connections``) are served at once.  What happens at that cap
decides whether idle clients, drippers, clients that do not read and wrong passwords can lock the
scrapers out:

* A new connection takes the slot of the connection *evictable* longest: one waiting for a request
  head (an idle keep-alive, a dripper) or for its client to take a response (stuck
  :data:`WRITE_STALL_GRACE` or more: a client that does not read), which is closed.  A connection
  just given its slot is not evictable for :data:`ADMIT_GRACE` while it waits for its first head: it
  has had no chance to send it yet.
* With none evictable (every connection busy: its exposition rendered, its password checked, its
  response written; or just admitted), the newcomer waits in a queue, first come first served, of at
  most ``max_queued`` connections.  Nothing of a queued connection is read (its transport is paused:
  no request parsed, no TLS handshake); its head's deadline counts from its arrival, so the wait gives
  a dripper no more time.  The first queued one gets the next slot that frees: a connection closing,
  or becoming evictable (its grace or a stalled write running out: a timer, not a poll; a keep-alive
  going idle after a response: at once, then it is closed for it).
* With the queue full, the newcomer takes the slot of the connection waiting longest for its first
  head even within its grace (the first queued one gets it; the newcomer queues): else idle clients
  connecting faster than graces run out would hold the slots and the queue in turn, and a scraper,
  arriving at a full queue, would be closed every time (measured: with 32 slots and a few thousand
  idle connections a second, 0 of 50 scrapes were answered without this, 45 to 49 with it, as many as
  before the queue).  Only when no connection waits for a head at all and the queue is full is a
  newcomer closed at once.

Why accepted and queued rather than left in the listen backlog: a connection not accepted has no
arrival time to count its deadline from, and newcomers that could take an idle connection's slot would
not be seen.  A queued connection whose client went away is not watched (that takes a duplicate of its
socket: the loop allows no second reader on a transport's own descriptor); at its turn its read fails at
once and it is closed, its slot going to the next, or its deadline closes it while queued.  Costs: a
connection closing hands its slot on in O(1); an arrival at the cap and a timer's turn look at every
served connection, as the eviction always has.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

#: a response unsent this long (its client not reading) makes the connection evictable at the cap, as
#: one waiting for a request head is: a client that pipelines requests and never reads would otherwise
#: hold its connection busy for write_timeout, and max_connections of them lock the scrapers out.  Not
#: at once: a scraper taking a big exposition (or over a slow link) holds a write up for moments
WRITE_STALL_GRACE = 1.0

#: a connection just given its slot cannot be evicted this long while it waits for its first request
#: head: the time a client needs to send one once connected (some round trips: a TLS handshake, then the
#: request).  Without it, a scraper admitted while every other connection was busy (wrong passwords
#: waiting for their bcrypt check) was itself the connection waiting longest for a head, and the next
#: newcomer closed it before its head was read.  Short, as it holds newcomers in the queue: an idle
#: client keeps its slot at least this long, unless the queue is full
ADMIT_GRACE = 0.5


class Conn:
    """One client connection: its writer; since when it waits for a request head (None: not), and
    whether that is its first head since it got its slot (``fresh``); since when it waits for its
    client to take a response (None: not); the wait of :func:`sockscope.exporter_web._looks_like_http`
    (None: not looking)."""

    __slots__ = ("writer", "waiting_since", "fresh", "writing_since", "looking")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.waiting_since: float | None = None
        self.fresh = True
        self.writing_since: float | None = None
        self.looking: asyncio.Future[None] | None = None

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
    keep-alive head (:meth:`waiting`), starts a write (:meth:`writing`) and ends (:meth:`leave`)."""

    def __init__(self, size: int, max_queued: int, grace: float = ADMIT_GRACE) -> None:
        self.size = size
        self.max_queued = max_queued
        self.grace = grace
        self.conns: dict[Conn, None] = {}
        self.queue: OrderedDict[Conn, asyncio.Future[None]] = OrderedDict()
        self._timer: asyncio.TimerHandle | None = None

    async def enter(self, conn: Conn) -> bool:
        """Give ``conn`` a slot, at once or once its turn in the queue comes (the caller bounds that
        wait by the head's deadline: cancelled, it leaves the queue); False when it is to be closed at
        once (the queue full and no connection waiting for a head), or was evicted before it could run
        (a look at its first bytes would hold a duplicate of its closed socket)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._pump(now)  # (a timer may be late: those queued go first)
        if not self.queue and self._make_room(now):
            self._seat(conn, now)
            return True
        if len(self.queue) >= self.max_queued:
            victim = self._waiting_longest()
            if victim is None:
                return False
            self._evict(victim)
            if not self.queue:  # (max_queued 0: no queue, the newcomer takes the slot)
                self._seat(conn, now)
                return True
        fut: asyncio.Future[None] = loop.create_future()
        self.queue[conn] = fut
        self._pump(now)  # (the slot just freed goes to the first queued)
        if fut.done():
            return True
        transport = conn.writer.transport
        if isinstance(transport, asyncio.ReadTransport):
            transport.pause_reading()  # unread until its turn (a TLS handshake wants its first bytes, too)
        try:
            await fut
        except BaseException:
            if self.queue.pop(conn, None) is None:  # given its slot as the wait ended: it goes on
                self.leave(conn)
            raise
        if conn not in self.conns:
            return False  # evicted after its turn came, before it could run: closed already
        if isinstance(transport, asyncio.ReadTransport):
            transport.resume_reading()
        return True

    def waiting(self, conn: Conn, now: float) -> None:
        """``conn`` (answered, kept alive) waits for its next request head: evictable at once, so its
        slot goes to the first queued connection if there is one."""
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
        """``conn`` is closed (or its task ends): its slot goes to the first queued (idempotent)."""
        if self.queue.pop(conn, None) is not None:
            return
        if self.conns.pop(conn, False) is None and self.queue:
            now = asyncio.get_running_loop().time()
            if self._seat_first(now) and self.queue:
                self._arm(now + self.grace)  # (when the one just seated may give way, if still waiting)

    def close_all(self) -> None:
        """Close every connection, served and queued (the server stops)."""
        for conn in [*self.conns, *self.queue]:
            conn.writer.transport.abort()
        if self._timer is not None:
            self._timer.cancel()

    # -- inside

    def _seat(self, conn: Conn, now: float) -> None:
        self.conns[conn] = None
        conn.waiting_since = now  # its first head: its grace from now
        conn.fresh = True

    def _seat_first(self, now: float) -> bool:
        """Give the free slot to the first queued connection still waiting (a cancelled one is dropped:
        its task removes nothing more); False when none waits."""
        while self.queue:
            conn, fut = self.queue.popitem(last=False)
            if not fut.done():
                self._seat(conn, now)
                fut.set_result(None)
                return True
        return False

    def _evict(self, conn: Conn) -> None:
        self.conns.pop(conn, None)
        conn.evict()

    def _evictable(self, now: float) -> list[tuple[float, int, Conn]]:
        """The connections that may be closed to make room, waiting longest first."""
        return sorted((s, i, c) for i, c in enumerate(self.conns)
                      if (t := c.evictable_from(self.grace)) is not None and t <= now
                      and (s := c.idle_since()) is not None)

    def _make_room(self, now: float) -> bool:
        """Whether a slot is free or was made free (closing the connection evictable longest)."""
        if len(self.conns) < self.size:
            return True
        evictable = self._evictable(now)
        if evictable:
            self._evict(evictable[0][2])
        return bool(evictable)

    def _waiting_longest(self) -> Conn | None:
        """The connection waiting longest for a request head, grace or not (a full queue)."""
        waiting = [(c.waiting_since, i, c) for i, c in enumerate(self.conns) if c.waiting_since is not None]
        return min(waiting)[2] if waiting else None

    def _pump(self, now: float) -> None:
        """Seat queued connections, first come first served, while slots are free or can be made free;
        then, if some still wait, set the timer for the next connection to become evictable."""
        if self.queue and len(self.conns) >= self.size:
            for _, _, conn in self._evictable(now)[:len(self.queue)]:
                self._evict(conn)
        while len(self.conns) < self.size and self._seat_first(now):
            pass
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


__all__ = ["ADMIT_GRACE", "WRITE_STALL_GRACE", "Conn", "Slots"]
