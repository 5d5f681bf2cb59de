"""``sockscope serve``: an asyncio greeting/echo server over TCP, UDP or a UNIX socket.

Contract:

* **Modes.**  *greet* sends the message to each new stream connection, then
  half-closes (FIN) and waits up to :data:`GREET_LINGER` seconds for the client
  to close before closing too, so a client that also sent data never gets an
  RST instead of the greeting.  Over UDP, greet answers every datagram with the
  message.  *echo* sends back every byte (every datagram) received, with
  backpressure: reading pauses while the write buffer is full.
* **Binding.**  Without ``--host`` only loopback addresses are bound (see
  :func:`sockscope.services._bind.default_addresses`); a port in use, an
  address that is not local, or a UNIX path held by a live server raise
  :class:`~sockscope.services.errors.BindError` (exit status 1), a host that
  does not resolve :class:`~sockscope.services.errors.ResolveError` (4).
* **Limits.**  At most ``max_conns`` concurrent stream connections, and
  ``max_per_peer`` per peer address; who gets a slot when they are all taken
  (a connection that is done, too slow, or of a peer holding more than the
  newcomer's is evicted, ``end=evicted``; else the newcomer is closed,
  ``end=limit``) is :mod:`sockscope.services.admission`'s job.  The default
  limit is the fd limit (raised from soft to hard at start) minus
  :data:`FD_RESERVE`, so accept() never meets EMFILE.  A connection that
  moves no byte for ``idle_timeout`` seconds (echo: none received, none
  flushed; greet: none flushed) is aborted (``end=idle``).
* **UNIX path lock.**  The parent directory's lock is waited for at most
  ``lock_timeout`` seconds (then :class:`BindError`), and SIGINT/SIGTERM end
  the wait at once (:class:`Interrupted`, exit status 130).
* **Stopping.**  On SIGINT/SIGTERM (and SIGHUP, unless it is ignored) the listeners close at once, in-flight
  connections get ``grace`` seconds to finish, the rest are aborted
  (``end=shutdown``), a UNIX path is removed, and :func:`run` returns 0.  A
  second signal skips what is left of the grace period.
* **Logging.**  One line per connection (per datagram for UDP) on ``log``:
  ``<time> <proto> <peer> in=<bytes> out=<bytes> duration=<s>s end=<why>``,
  where *why* is ``eof`` (client closed), ``reset``, ``idle``, ``linger``,
  ``limit``, ``peer-limit``, ``evicted``, ``shutdown`` or ``error`` (UDP:
  ``reply``, ``budget`` or ``error``).  The log never blocks serving and is
  rate-limited (:mod:`sockscope.services.servelog`).
  Start-up and shutdown lines start with ``sockscope serve:``; the start-up
  line contains ``listening on``.
* **No fd leaks.**  Every accepted transport is tracked until
  ``connection_lost``; every exit path closes the listeners.
"""

from __future__ import annotations

import asyncio
import errno
import resource
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Literal, TextIO, cast

from sockscope.services._bind import (
    BindAddress,
    DirLock,
    UnixListener,
    bound_port,
    default_addresses,
    format_hostport,
    open_inet,
    resolve_hosts,
)
from sockscope.services.admission import Admission, Progress, peer_key
from sockscope.services.errors import BindError, Interrupted
from sockscope.services.serve_udp import DatagramServer
from sockscope.services.servelog import ServeLog
from sockscope.services import (DEFAULT_BACKLOG, DEFAULT_GRACE, DEFAULT_IDLE_TIMEOUT, DEFAULT_LOCK_TIMEOUT,
                                DEFAULT_LOG_RATE, DEFAULT_MESSAGE, DEFAULT_MIN_RATE, DEFAULT_PEER_RATE, DEFAULT_PORT,
                                DEFAULT_WINDOW, FD_RESERVE, GREET_LINGER)

#: Poll period of the UNIX path's directory lock.
_LOCK_POLL = 0.05
#: Poll period while a greeting is still being flushed to a slow reader.
_FLUSH_POLL = 0.25

Proto = Literal["tcp", "udp", "unix"]
Mode = Literal["greet", "echo"]


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything ``sockscope serve`` needs; the CLI builds one from argv."""

    proto: Proto = "tcp"
    hosts: tuple[str, ...] = ()
    port: int = DEFAULT_PORT
    unix_path: str | None = None
    mode: Mode = "greet"
    message: bytes = DEFAULT_MESSAGE.encode()
    max_conns: int | None = None
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    backlog: int = DEFAULT_BACKLOG
    grace: float = DEFAULT_GRACE
    quiet: bool = False
    max_per_peer: int | None = None
    min_rate: float = DEFAULT_MIN_RATE
    rate_window: float = DEFAULT_WINDOW
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    log_rate: int = DEFAULT_LOG_RATE
    udp_peer_rate: int = DEFAULT_PEER_RATE


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (capped at 2**20); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    target = min(target, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def run(config: ServeConfig, log: TextIO | None = None) -> int:
    """Serve until SIGINT/SIGTERM; return the exit status (0).  Raises ServiceError subclasses."""
    return asyncio.run(Server(config, log if log is not None else sys.stderr).serve())


@dataclass(slots=True)
class _Listeners:
    """Sockets bound but not yet handed to asyncio, and what asyncio made of them."""

    inet: list[tuple[BindAddress, socket.socket]] = field(default_factory=list)
    unix: UnixListener | None = None
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    datagrams: list[DatagramServer] = field(default_factory=list)


class Server:
    """One run of the server: listeners, live connections, and the stop sequence."""

    def __init__(self, config: ServeConfig, log: TextIO) -> None:
        self.config = config
        self._log_stream = log
        self.log: ServeLog | None = None
        self.slots = Admission(1, config.max_per_peer, config.min_rate, config.rate_window)
        self.stopping = False
        self.max_conns = 1
        self._listeners = _Listeners()
        self._bound: list[BindAddress] = []
        self._stop: asyncio.Event | None = None
        self._force: asyncio.Event | None = None
        self._drained: asyncio.Event | None = None
        self._signame = ""

    # -- lifecycle -------------------------------------------------------
    async def serve(self) -> int:
        """Bind, serve until a signal arrives, stop gracefully; return 0."""
        loop = asyncio.get_running_loop()
        self._stop, self._force, self._drained = asyncio.Event(), asyncio.Event(), asyncio.Event()
        signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(signal.SIGHUP) == signal.SIG_DFL:  # (ignored under nohup: left so)
            signals += (signal.SIGHUP,)  # a closed terminal stops it as SIGTERM does, the UNIX path removed
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.log = ServeLog(self._log_stream, self.config.log_rate)
        try:
            fd_limit = raise_fd_limit()
            self.max_conns = self.config.max_conns or max(1, fd_limit - FD_RESERVE)
            self.slots.max_conns = self.max_conns
            notes = await self._bind()
            await self._start(loop)
            for note in notes:
                self.say(note)
            self.say(self._banner())
            await self._stop.wait()
            await self._shutdown()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            self._close_listeners()
            self.log.close()
        return 0

    @property
    def active(self) -> list[StreamConnection]:
        """The live stream connections."""
        return cast(list[StreamConnection], list(self.slots.conns))

    def _on_signal(self, sig: int) -> None:
        assert self._stop is not None and self._force is not None
        if self._stop.is_set():
            self._force.set()
            return
        self._signame = signal.Signals(sig).name
        self._stop.set()

    async def _bind(self) -> list[str]:
        cfg = self.config
        if cfg.proto == "unix":
            assert cfg.unix_path is not None
            if cfg.unix_path.startswith("@"):
                self._listeners.unix = UnixListener(cfg.unix_path, cfg.backlog)
            else:
                lock = DirLock(cfg.unix_path)
                try:
                    await self._wait_lock(lock)
                    self._listeners.unix = UnixListener(cfg.unix_path, cfg.backlog)
                finally:
                    lock.close()
            return list(self._listeners.unix.notes)
        socktype = socket.SOCK_STREAM if cfg.proto == "tcp" else socket.SOCK_DGRAM
        notes: list[str] = []
        if cfg.hosts:
            addrs = resolve_hosts(cfg.hosts, cfg.port, socktype)
        else:
            addrs, notes = default_addresses(cfg.port, socktype)
        port = cfg.port
        skipped: BindError | None = None
        for addr in addrs:
            # With --port 0 every address shares the port the kernel gave the first.
            addr = BindAddress(addr.family, addr.host, port)
            try:
                sock = open_inet(addr, cfg.proto, cfg.backlog)
            except BindError as exc:
                # A default address this host cannot have (::1 with IPv6 disabled) is skipped;
                # anything else, and any explicit --host, is an error.
                cause = exc.__cause__
                unusable = isinstance(cause, OSError) and cause.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
                if cfg.hosts or not unusable:
                    raise
                notes.append(f"skipped: {exc}")
                skipped = exc
                continue
            if port == 0:
                port = bound_port(sock)
                addr = BindAddress(addr.family, addr.host, port)
            self._listeners.inet.append((addr, sock))
        if not self._listeners.inet and skipped is not None:
            raise skipped
        return notes

    async def _wait_lock(self, lock: DirLock) -> None:
        """Poll the directory lock; bounded by ``lock_timeout``, ended by SIGINT/SIGTERM."""
        assert self._stop is not None
        timeout = self.config.lock_timeout
        deadline = time.monotonic() + timeout
        while not lock.try_lock():
            if self._stop.is_set():
                raise Interrupted(f"{self._signame} while waiting for the lock on {lock.directory}")
            if time.monotonic() >= deadline:
                holder = lock.holder()
                by = f" by pid {holder}" if holder is not None else ""
                raise BindError(
                    f"cannot bind UNIX socket {self.config.unix_path}: {lock.directory} is locked{by} "
                    f"(gave up after {timeout:g}s; see --lock-timeout)"
                )
            try:
                await asyncio.wait_for(self._stop.wait(), _LOCK_POLL)
            except TimeoutError:
                pass

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        cfg, ls = self.config, self._listeners
        if ls.unix is not None:
            ls.servers.append(
                await loop.create_unix_server(lambda: StreamConnection(self), sock=ls.unix.sock, backlog=cfg.backlog)
            )
            return
        while ls.inet:
            addr, sock = ls.inet[0]
            if cfg.proto == "tcp":
                ls.servers.append(
                    await loop.create_server(lambda: StreamConnection(self), sock=sock, backlog=cfg.backlog)
                )
            else:
                udp = DatagramServer(sock, cfg.mode, cfg.message, cfg.udp_peer_rate, None if cfg.quiet else self.log)
                udp.start(loop)
                ls.datagrams.append(udp)
            ls.inet.pop(0)
            self._bound.append(addr)

    def _banner(self) -> str:
        cfg = self.config
        if cfg.proto == "unix":
            where = f"unix {cfg.unix_path}"
        else:
            where = f"{cfg.proto} " + ", ".join(str(a) for a in self._bound)
        parts = [f"{cfg.mode} mode"]
        if cfg.proto != "udp":
            parts.append(f"max {self.max_conns} connections")
            if cfg.max_per_peer:
                parts.append(f"{cfg.max_per_peer} per peer")
            idle = f"{cfg.idle_timeout:g}s" if cfg.idle_timeout else "none"
            parts.append(f"idle timeout {idle}")
        if cfg.proto != "unix" and not cfg.hosts:
            parts.append("loopback only: use --host ADDR for other interfaces")
        return f"listening on {where} ({'; '.join(parts)})"

    async def _shutdown(self) -> None:
        assert self._force is not None and self._drained is not None
        self.stopping = True
        for srv in self._listeners.servers:
            srv.close()
        for udp in self._listeners.datagrams:
            udp.close()
        grace = self.config.grace
        self.say(
            f"stopping on {self._signame}: no longer accepting; "
            f"{len(self.active)} connection(s) in flight, grace {grace:g}s"
        )
        aborted = 0
        if self.active:
            waiters = [asyncio.ensure_future(self._drained.wait()), asyncio.ensure_future(self._force.wait())]
            await asyncio.wait(waiters, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            for conn in list(self.active):
                conn.abort("shutdown")
                aborted += 1
            if self.active:
                try:
                    await asyncio.wait_for(self._drained.wait(), timeout=1.0)
                except TimeoutError:
                    pass
        for srv in self._listeners.servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), timeout=1.0)
            except TimeoutError:
                pass
        self.say(f"stopped ({aborted} connection(s) closed after the grace period)")

    def _close_listeners(self) -> None:
        ls = self._listeners
        for srv in ls.servers:
            srv.close()
        for udp in ls.datagrams:
            udp.close()
        ls.datagrams.clear()
        for _addr, sock in ls.inet:
            sock.close()
        ls.inet.clear()
        if ls.unix is not None:
            ls.unix.sock.close()
            ls.unix.remove()

    # -- bookkeeping used by the protocols -------------------------------
    def finished(self, conn: StreamConnection, end: str) -> None:
        """Called once per connection, from ``connection_lost``."""
        self.slots.release(conn)
        if self.stopping and not self.slots.conns and self._drained is not None:
            self._drained.set()
        if not self.config.quiet and self.log is not None:
            proto = self.config.proto
            duration = time.monotonic() - conn.started
            self.log.event(
                f"{proto} {end}",
                lambda: f"{proto} {conn.peer} in={conn.bytes_in} out={conn.bytes_out} "
                f"duration={duration:.3f}s end={end}",
            )

    def say(self, line: str) -> None:
        """One start-up/shutdown line on the log; never blocks, never raises."""
        if self.log is not None:
            self.log.say(line)

    def peer_label(self, transport: asyncio.BaseTransport) -> tuple[str, str]:
        """(label, peer key): ``127.0.0.1:5555``, ``[::1]:5555``, or ``pid=P,uid=U`` for a UNIX peer."""
        if self.config.proto == "unix":
            sock = transport.get_extra_info("socket")
            try:
                pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            except (OSError, AttributeError):
                return "unix", "unix"
            return f"pid={pid},uid={uid}", f"uid={uid}"
        peer = transport.get_extra_info("peername")
        if not peer:
            return "?", "?"
        return format_hostport(str(peer[0]), int(peer[1])), peer_key(str(peer[0]))


class StreamConnection(asyncio.Protocol):
    """One accepted TCP or UNIX stream connection."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.peer_key = "?"
        self.started = asyncio.get_running_loop().time()
        self.progress = Progress(self.started)
        self.bytes_in = 0
        self.bytes_out = 0
        self.end: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._wsize = 0
        self._flushed_at: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server, cfg = self.server, self.server.config
        self.transport = stream = cast(asyncio.Transport, transport)
        self.peer, self.peer_key = server.peer_label(stream)
        if server.stopping:
            self.abort("shutdown")
            return
        refused = server.slots.admit(self, self.started)
        if refused is not None:
            self.abort(refused)
            return
        self._last = self.started
        if cfg.mode == "greet":
            stream.write(cfg.message)
            self.bytes_out += len(cfg.message)
            if stream.can_write_eof() and not stream.is_closing():
                try:
                    stream.write_eof()
                except OSError:  # the client is already gone (reset)
                    self.abort("reset")
                    return
        self._tick()

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        assert self.transport is not None
        if self.server.config.mode == "echo":
            self._last = now = asyncio.get_running_loop().time()
            self.server.slots.touch(self, len(data), now)
            self.transport.write(data)
            self.bytes_out += len(data)

    def done(self) -> bool:
        """Greet mode, greeting flushed: only the client's FIN is awaited."""
        return self._flushed_at is not None

    def eof_received(self) -> bool:
        if self.end is None:
            self.end = "eof"
        return False  # asyncio closes the transport once the write buffer is flushed

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        end = self.end
        if end is None or (exc is not None and end == "eof"):
            end = "reset" if isinstance(exc, ConnectionError) else ("error" if exc else "eof")
        self.transport = None
        self.server.finished(self, end)

    def abort(self, reason: str) -> None:
        """Close now, discarding anything unsent; logged with ``end=reason``."""
        self.end = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.abort()

    def _tick(self) -> None:
        """Enforce the idle timeout and the greeting linger; re-arm for the next deadline."""
        self._timer = None
        transport = self.transport
        if transport is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        cfg = self.server.config
        wsize = transport.get_write_buffer_size()
        if wsize != self._wsize:  # bytes moved out since the last look
            if wsize < self._wsize:
                self.server.slots.touch(self, self._wsize - wsize, now)
            self._wsize, self._last = wsize, now
        deadlines: list[tuple[float, str]] = []
        if cfg.idle_timeout:
            deadlines.append((self._last + cfg.idle_timeout, "idle"))
        if cfg.mode == "greet":
            if wsize == 0:
                if self._flushed_at is None:
                    self._flushed_at = now
                deadlines.append((self._flushed_at + GREET_LINGER, "linger"))
            else:
                deadlines.append((now + _FLUSH_POLL, ""))
        if not deadlines:
            return
        due, reason = min(deadlines)
        if due <= now and reason:
            self.abort(reason)
            return
        self._timer = loop.call_at(max(due, now), self._tick)


__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_MESSAGE",
    "DEFAULT_BACKLOG",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_GRACE",
    "GREET_LINGER",
    "FD_RESERVE",
    "ServeConfig",
    "Server",
    "StreamConnection",
    "DEFAULT_LOCK_TIMEOUT",
    "raise_fd_limit",
    "run",
]
