"""The UDP side of ``sockscope serve``: batched reads and a per-peer reply budget.

Contract:

* Each UDP socket is read straight from the event loop's selector
  (``add_reader``), up to :data:`BATCH` datagrams per wake-up, into one
  reused buffer: under a flood the kernel queue is emptied many datagrams per
  loop turn instead of one (asyncio's datagram transport reads one per turn).
* *greet* answers every datagram with the message, *echo* with the datagram.
  A reply that does not fit the socket's send buffer right now is dropped
  (``end=error``): UDP, and the server never waits for a client.
* **Per-peer budget.**  A source address gets at most ``peer_rate`` replies
  per second (a token bucket holding one second's worth); datagrams past it
  get no reply (``end=budget``), so one flooding peer costs only the read.
  ``peer_rate=0`` answers everything.  The table of peers is bounded
  (:data:`MAX_PEERS`; cleared when full, which only refills budgets).
* **A queue of its own for a flooding peer.**  A peer past its budget gets,
  for :data:`QUARANTINE_SECONDS`, a UDP socket *connected* to it on the
  server's address (the kernel delivers a datagram to the most specific
  socket): its flood then fills that socket's receive queue, which is read
  only up to the budget every :data:`QUARANTINE_POLL` seconds, and no longer
  the shared queue, where it made the kernel drop other peers' datagrams.
  At most :data:`MAX_QUARANTINED` at once.  ``SO_REUSEADDR``, which the
  second bind needs, is set on the server's socket only for that bind, so
  no other program can bind the port meanwhile.
* Every datagram is logged through :meth:`ServeLog.event` (kinds ``udp
  reply``, ``udp budget``, ``udp error``), so the log is rate-limited under a
  flood like every per-connection line.
"""

from __future__ import annotations

import asyncio
import socket
import time

from sockscope.services._bind import format_hostport
from sockscope.services import DEFAULT_PEER_RATE
from sockscope.services.servelog import ServeLog

#: Datagrams read per wake-up of the event loop, at most.
BATCH = 256
#: Peers whose budget is tracked at once, at most.
MAX_PEERS = 65536
_MAX_DATAGRAM = 65536
QUARANTINE_SECONDS = 5.0
QUARANTINE_POLL = 0.1
MAX_QUARANTINED = 64


class DatagramServer:
    """One bound UDP socket, served from the loop's selector."""

    def __init__(self, sock: socket.socket, mode: str, message: bytes, peer_rate: int, log: ServeLog | None) -> None:
        self.sock = sock
        self.echo = mode == "echo"
        self.message = message
        self.peer_rate = float(peer_rate)
        self.log = log
        self._buf = bytearray(_MAX_DATAGRAM)
        self._view = memoryview(self._buf)
        self._budget: dict[str, list[float]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._muted: dict[str, tuple[socket.socket, float]] = {}
        self._poll: asyncio.TimerHandle | None = None
        self.received = self.replied = self.over_budget = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self._loop is not None and self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        for muted, _until in self._muted.values():
            muted.close()
        self._muted.clear()
        self._loop = None
        self.sock.close()

    def _allowed(self, host: str, now: float) -> bool:
        bucket = self._budget.get(host)
        if bucket is None:
            if len(self._budget) >= MAX_PEERS:
                self._budget.clear()
            self._budget[host] = [self.peer_rate - 1, now]
            return True
        tokens = min(self.peer_rate, bucket[0] + (now - bucket[1]) * self.peer_rate)
        bucket[1] = now
        if tokens < 1:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1
        return True

    def _readable(self) -> None:
        self._serve(self.sock, BATCH)

    def _serve(self, sock: socket.socket, limit: int) -> None:
        view = self._view
        now = time.monotonic()
        for _ in range(limit):
            try:
                size, addr = sock.recvfrom_into(self._buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error for an earlier reply: nothing to clean up
            self.received += 1
            host = str(addr[0])
            if self.peer_rate and not self._allowed(host, now):
                self.over_budget += 1
                self._note(addr, size, 0, "budget")
                if host not in self._muted:
                    self._quarantine(host, addr, now)
                continue
            reply = bytes(view[:size]) if self.echo else self.message
            end = "reply"
            try:
                sock.sendto(reply, addr)
                self.replied += 1
            except OSError:
                end = "error"
            self._note(addr, size, len(reply) if end == "reply" else 0, end)

    def _quarantine(self, host: str, addr: tuple[str, int], now: float) -> None:
        if len(self._muted) >= MAX_QUARANTINED or self._loop is None:
            return
        own = socket.socket(self.sock.family, socket.SOCK_DGRAM)
        try:
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.sock.family == socket.AF_INET6:
                own.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                own.bind(self.sock.getsockname())
            finally:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
            own.connect(addr)
            own.setblocking(False)
        except OSError:
            own.close()
            return
        self._muted[host] = (own, now + QUARANTINE_SECONDS)
        if self._poll is None:
            self._poll = self._loop.call_later(QUARANTINE_POLL, self._poll_muted)

    def _poll_muted(self) -> None:
        """Serve each quarantined peer up to its budget; end the quarantines that are over."""
        self._poll = None
        now = time.monotonic()
        share = max(1, int(self.peer_rate * QUARANTINE_POLL))
        for host, (own, until) in list(self._muted.items()):
            self._serve(own, share)
            if now >= until:
                own.close()
                del self._muted[host]
        if self._muted and self._loop is not None:
            self._poll = self._loop.call_later(QUARANTINE_POLL, self._poll_muted)

    def _note(self, addr: tuple[str, int], size: int, out: int, end: str) -> None:
        if self.log is None:
            return
        self.log.event(
            f"udp {end}",
            lambda: f"udp {format_hostport(str(addr[0]), int(addr[1]))} in={size} out={out} duration=0.000s end={end}",
        )


__all__ = ["BATCH", "MAX_PEERS", "DEFAULT_PEER_RATE", "QUARANTINE_SECONDS", "MAX_QUARANTINED", "DatagramServer"]
