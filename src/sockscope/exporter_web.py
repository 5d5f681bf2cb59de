"""The HTTP(S) server of ``sockscope exporter``: one asyncio event loop, bounded everywhere.

Why this design: the exporter must survive a fleet of scrapers and hostile
clients (idle sockets, slowloris drippers, floods), serve TLS with client
certificates and basic auth (the exporter-toolkit web config), and stay
cheap.  The well-kept Python servers each miss one of these: wsgiref and
prometheus_client's own server start a thread per connection with no
timeouts; waitress has no TLS; cheroot and gunicorn's sync workers give each
connection a thread while its request head arrives, so a few drippers sending
a byte a second hold every worker; uvicorn has no deadline for a request's
head either and builds its own TLS context from file names.  Python's
``asyncio`` (the standard library's event loop) holds thousands of sockets
in one thread, ``ssl`` does the TLS, and what is left to write here is small:
reading one GET request head under a deadline.

* Listening sockets are bound by :func:`bind` before serving starts (any
  address that cannot be bound is a one-line error) with a real backlog.
* Connections served at once are capped (``max_connections``), by the
  rules of :mod:`sockscope.exporter_conn`.  At the cap, a new connection
  evicts the one that has waited longest for a request head (an idle
  keep-alive or a dripper) or for its client to take a response (one
  stuck :data:`~sockscope.exporter_conn.WRITE_STALL_GRACE` or more: a
  client that does not read), but not one given its slot less than
  ``admit_grace`` (:data:`~sockscope.exporter_defaults.ADMIT_GRACE`) ago that
  has not sent its head yet.  When every connection is busy, it waits,
  unread, in a queue of at most ``max_queued`` (as many as
  ``max_connections`` unless set) for a slot, within its head's deadline.
  With the queue full it takes the place of the connection queued last of
  an address with at least two more queued than its own (closed), else the
  slot of the connection waiting longest for its first head, grace or not;
  only when no connection may give way is it closed at once.  Connections
  are counted by client address (as ``sockscope serve`` counts them: an
  IPv4 address, an IPv6 /64), so that one address cannot crowd out
  another's scraper: an address holding at least two more connections than
  the newcomer's gives way first; a connection waiting for its first head
  is never closed for a newcomer from an address holding more; a slot goes
  to the queued connection whose address has the fewest served (first come
  first served among those).  From one address every rule is by age.  So
  idle and unread clients can never lock scrapers out, and wrong passwords
  (which keep connections busy) only delay them, as under node_exporter
  (which has no cap); the server holds at most
  ``max_connections + max_queued`` connections.
* Deadlines: a new connection has ``header_timeout`` for its TLS handshake
  and whole request head, from its arrival (a byte at a time does not
  extend it, nor does a wait in the queue); between
  requests a keep-alive connection may idle ``idle_timeout`` (0: for ever), then has
  ``header_timeout`` for the head; a response must be taken within
  ``write_timeout``.  Heads are at most ``max_head`` bytes.  Requests with
  a body are refused.
* Plain HTTP sent to a TLS port gets the answer Go's net/http (node_exporter's
  server) gives, ``400 Client sent an HTTP request to an HTTPS server``,
  rather than a silently closed connection (see :func:`_looks_like_http`).
* The collection runs in a small thread pool; scrapes that arrive while one
  is being rendered share it (one render per content type and encoding).
  bcrypt checks run in their own one-thread pool; a successful check is
  cached (as exporter-toolkit does), so a scrape costs no bcrypt.  At most
  :data:`MAX_AUTH_PENDING` checks wait; credentials not cached that come past
  that get 401 at once (wrong passwords cannot keep every connection busy).
* At most ``max_requests`` scrapes are served at once, each from its arrival
  until its response is sent (promhttp's MaxRequestsInFlight, which
  node_exporter's ``--web.max-requests`` sets); one more gets promhttp's 503 at
  once, so scrapes piling up behind a slow collection or slow clients are
  refused, not queued.  The link page, 404s and refused passwords do not count.
* The web config (TLS, auth, headers) is taken per connection, and loaded
  again when a file it came from changes (see :func:`sockscope.webconfig.changed`).
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from sockscope.errors import SockscopeError
from sockscope.exporter_conn import Conn, Slots
from sockscope.exporter_defaults import (ADMIT_GRACE, BACKLOG, HEADER_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_HEAD,
                                         MAX_REQUESTS, WORKERS, WRITE_TIMEOUT)
from sockscope.hostport import not_a_host_name

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from sockscope.webconfig import WebConfig


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's bounds (see the module docstring)."""

    max_connections: int = MAX_CONNECTIONS
    header_timeout: float = HEADER_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    write_timeout: float = WRITE_TIMEOUT
    backlog: int = BACKLOG
    max_head: int = MAX_HEAD
    workers: int = WORKERS
    max_requests: int = MAX_REQUESTS  # scrapes served at once (0: no limit), node_exporter's default
    max_queued: int | None = None  # connections waiting unread for a slot at the cap (None: max_connections)
    admit_grace: float = ADMIT_GRACE  # a connection just admitted is not evicted this long while it sends its head

    @property
    def queue_size(self) -> int:
        """How many connections may wait for a slot (``max_queued``, by default ``max_connections``)."""
        return self.max_connections if self.max_queued is None else self.max_queued


@dataclass(frozen=True, slots=True)
class Address:
    """A listen address as given: ``host`` ``""`` is every address of the host (``:PORT``)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def bind(addr: Address, backlog: int) -> socket.socket:
    """A listening, non-blocking socket for ``addr``; ``host ""`` is IPv6 ``::`` accepting IPv4
    too (0.0.0.0 when the host has no IPv6), as Go servers such as node_exporter bind ``:PORT``."""
    if addr.host == "":
        try:
            return _bind_one(socket.AF_INET6, ("::", addr.port), backlog, dual=True)
        except OSError:
            return _bind_any(addr, [(socket.AF_INET, ("0.0.0.0", addr.port))], backlog)
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SockscopeError(f"cannot listen on {addr}: {exc.strerror}") from exc
    except (UnicodeError, ValueError) as exc:  # (a label over 63 characters, or empty; a NUL)
        raise SockscopeError(f"cannot listen on {addr}: {not_a_host_name(addr.host, exc)}") from None
    return _bind_any(addr, [(info[0], info[4]) for info in infos[:1]], backlog)


def _bind_any(addr: Address, targets: list[tuple[int, Any]], backlog: int) -> socket.socket:
    try:
        family, sockaddr = targets[0]
        return _bind_one(family, sockaddr, backlog)
    except OSError as exc:
        raise SockscopeError(f"cannot listen on {addr}: {exc.strerror}") from exc


def _bind_one(family: int, sockaddr: Any, backlog: int, dual: bool = False) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if dual:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket, addr: Address, tls: bool, path: str) -> str:
    """What the banner prints for one listening socket."""
    where = Address(addr.host or ("::" if sock.family == socket.AF_INET6 else "0.0.0.0"), sock.getsockname()[1])
    return f"{'https' if tls else 'http'}://{where}{path}"


#: password checks (bcrypt, ~0.1 s each, one at a time) waiting at most; past it a request is refused
#: at once, so that wrong passwords cannot hold every connection busy and lock the scrapers out
MAX_AUTH_PENDING = 16

#: what Go's net/http answers (then closes) when the first bytes on a TLS port are one of
#: :data:`_HTTP_STARTS` (crypto/tls's tlsRecordHeaderLooksLikeHTTP): node_exporter's answer too
_HTTP_TO_HTTPS = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")

_INDEX = (b"<html><head><title>sockscope exporter</title></head><body><h1>sockscope exporter</h1>"
          b"<p><a href=\"%s\">metrics</a></p></body></html>\n")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable",
            505: "HTTP Version Not Supported"}
#: promhttp's answer past MaxRequestsInFlight, through Go's http.Error (which adds the newline and headers)
_LIMIT_TEXT = "Limit of concurrent requests reached (%d), try again later.\n"
_ERROR_HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]


class _Request:
    __slots__ = ("method", "path", "headers", "keep_alive")

    def __init__(self, method: str, path: str, headers: dict[str, str], keep_alive: bool) -> None:
        self.method, self.path, self.headers, self.keep_alive = method, path, headers, keep_alive


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class Server:
    """Serves ``registry`` on the given listening sockets until :meth:`stop`."""

    def __init__(self, socks: list[socket.socket], registry: CollectorRegistry, *, limits: Limits = Limits(),
                 config: WebConfig | None = None, config_path: str | None = None, path: str = "/metrics",
                 log: Callable[[str], None] | None = None) -> None:
        self.socks = socks
        self.registry = registry
        self.limits = limits
        self.config = config
        self.config_path = config_path  # where ``config`` came from: reloaded when its files change
        self._checked = 0.0
        self._reload_error = ""
        self.path = path
        self.log = log
        self.slots = Slots(limits.max_connections, limits.queue_size, limits.admit_grace)
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="sockscope-render")
        self._auth_pool = ThreadPoolExecutor(1, thread_name_prefix="sockscope-auth")
        self._renders: dict[tuple[str, bool], asyncio.Future[bytes]] = {}
        self._auth_pending = 0
        self._in_flight = 0  # scrapes of the metrics path being served (see _scrape)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # -- running

    def run(self, signals: tuple[int, ...] = ()) -> None:
        """Serve until :meth:`stop` is called (from a signal handler or another thread), or
        one of ``signals`` comes.  The loop handles those itself (its wake-up pipe): a
        ``signal.signal`` handler would run only when the loop's wait returns, and one that
        lands just before the wait starts leaves the wait until the next client."""
        asyncio.run(self._main(signals))

    def stop(self) -> None:
        """Stop serving (safe from a signal handler or another thread, also before :meth:`run`)."""
        self._stopping = True
        if self._stop is not None and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop has ended (closed): there is nothing left to stop
                pass

    async def _main(self, signals: tuple[int, ...] = ()) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(self._loop_error)
        self._stop = asyncio.Event()
        for sig in signals:
            self._loop.add_signal_handler(sig, self.stop)
        if self._stopping:
            self._stop.set()
        servers = [await asyncio.start_server(self._client, sock=s, limit=self.limits.max_head,
                                              backlog=self.limits.backlog) for s in self.socks]
        try:
            await self._stop.wait()
        finally:
            for srv in servers:
                srv.close()
            self.slots.close_all()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._auth_pool.shutdown(wait=False, cancel_futures=True)
            for sig in signals:
                self._loop.remove_signal_handler(sig)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, (OSError, asyncio.CancelledError, EOFError)):
            return  # a client went away or misbehaved at the TLS layer: not worth a line
        if self.log is not None:
            self.log(f"http: {context.get('message', 'error')}: {exc!r}"[:300])

    # -- connections

    def _current_config(self) -> WebConfig | None:
        """The web config for a new connection: loaded again (at most once a second) when a file
        it was read from has changed; a bad new one keeps the old, with one line on stderr."""
        if self.config_path is None or self.config is None:
            return self.config
        now = time.monotonic()
        if now - self._checked < 1.0:
            return self.config
        self._checked = now
        from sockscope import webconfig

        if webconfig.changed(self.config):
            try:
                self.config = webconfig.load(self.config_path)
                self._reload_error = ""
            except SockscopeError as exc:
                if str(exc) != self._reload_error and self.log is not None:
                    self.log(f"{exc}; still serving with the previous web config")
                self._reload_error = str(exc)
        return self.config

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        lim = self.limits
        conn = Conn(writer)
        deadline = loop.time() + lim.header_timeout  # (from its arrival: the queue gives a dripper no more)
        try:
            async with asyncio.timeout_at(deadline):
                admitted = await self.slots.enter(conn)
        except TimeoutError:
            admitted = False  # its deadline passed in the queue
        if not admitted:
            writer.transport.abort()
            return
        cfg = self._current_config()
        try:
            async with asyncio.timeout_at(deadline):
                if cfg is not None and cfg.tls is not None:
                    if await _looks_like_http(conn):
                        writer.write(_HTTP_TO_HTTPS)
                        return
                    await writer.start_tls(cfg.tls)
                    if not cfg.peer_allowed(writer.get_extra_info("peercert")):
                        return
                head = await reader.readuntil(b"\r\n\r\n")
            conn.fresh = False
            while True:
                conn.waiting_since = None
                try:
                    req = _parse(head)
                except _BadRequest as bad:
                    await self._send(conn, cfg, bad.status, [], b"", False)
                    return
                if not await self._respond(req, conn, cfg):
                    return
                self.slots.waiting(conn, loop.time())  # (evictable at once: its slot may go to a queued one)
                async with asyncio.timeout(lim.idle_timeout or None):  # (0: never, as serve's)
                    byte = await reader.readexactly(1)
                async with asyncio.timeout(lim.header_timeout):
                    head = byte + await reader.readuntil(b"\r\n\r\n")
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return  # gone, too slow, or a head over max_head (ValueError): just close
        finally:
            self.slots.leave(conn)
            writer.close()  # flushes what is buffered; a peer that does not read is cut off below
            loop.call_later(lim.write_timeout, writer.transport.abort)

    async def _respond(self, req: _Request, conn: Conn, cfg: WebConfig | None) -> bool:
        """Answer one request; True to keep the connection for another."""
        extra: list[tuple[str, str]] = []
        head_only = req.method == "HEAD"
        if req.method not in ("GET", "HEAD"):
            await self._send(conn, cfg, 405, [("Allow", "GET, HEAD")], b"", False)
            return False
        if cfg is not None and cfg.auth is not None:
            header = req.headers.get("authorization")
            ok = cfg.auth.quick(header)
            if ok is None and self._auth_pending < MAX_AUTH_PENDING:
                self._auth_pending += 1
                try:
                    ok = await asyncio.get_running_loop().run_in_executor(self._auth_pool, cfg.auth.verify, header)
                finally:
                    self._auth_pending -= 1
            if not ok:
                await self._send(conn, cfg, 401, [("WWW-Authenticate", 'Basic realm="sockscope"')],
                                 b"Unauthorized\n", req.keep_alive, head_only)
                return req.keep_alive
        if req.path == self.path:
            return await self._scrape(req, conn, cfg, head_only)
        if req.path == "/":
            status, body = 200, _INDEX % self.path.encode()
            extra.append(("Content-Type", "text/html; charset=utf-8"))
        else:
            status, body = 404, f"not found: the metrics are on {self.path}\n".encode()
            extra.append(("Content-Type", "text/plain; charset=utf-8"))
        await self._send(conn, cfg, status, extra, body, req.keep_alive, head_only)
        return req.keep_alive

    async def _scrape(self, req: _Request, conn: Conn, cfg: WebConfig | None, head_only: bool) -> bool:
        """Answer a request of the metrics path, if fewer than ``max_requests`` are being served: it
        counts from here until its response is sent, or its connection fails or times out (a render
        that raises, a client gone or not reading: the ``finally`` gives its place back).  One past the
        limit gets promhttp's 503 at once, and keeps its connection as any error answer does."""
        limit = self.limits.max_requests
        if limit and self._in_flight >= limit:
            await self._send(conn, cfg, 503, _ERROR_HEADERS, (_LIMIT_TEXT % limit).encode(), req.keep_alive,
                             head_only)
            return req.keep_alive
        self._in_flight += 1
        try:
            from prometheus_client.exposition import choose_encoder

            _, ctype = choose_encoder(req.headers.get("accept", ""))
            gz = _accepts_gzip(req.headers.get("accept-encoding", ""))
            try:
                body = await self._render(req.headers.get("accept", ""), gz, ctype)
            except Exception as exc:  # noqa: BLE001 - the collector never raises; be sure a scrape gets an answer
                if self.log is not None:
                    self.log(f"http: rendering the metrics failed: {type(exc).__name__}: {exc}"[:300])
                await self._send(conn, cfg, 500, [("Content-Type", "text/plain; charset=utf-8")],
                                 b"rendering the metrics failed; see the exporter's stderr\n", False, head_only)
                return False
            extra = [("Content-Type", ctype)] + ([("Content-Encoding", "gzip")] if gz else [])
            await self._send(conn, cfg, 200, extra, body, req.keep_alive, head_only)
            return req.keep_alive
        finally:
            self._in_flight -= 1

    async def _render(self, accept: str, gz: bool, ctype: str) -> bytes:
        """The exposition, shared by the scrapes that ask while it is being made."""
        key = (ctype, gz)
        fut = self._renders.get(key)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(self._pool, self._render_now, accept, gz)
            self._renders[key] = fut
            fut.add_done_callback(lambda _f: self._renders.pop(key, None))
        return await asyncio.shield(fut)

    def _render_now(self, accept: str, gz: bool) -> bytes:
        from prometheus_client.exposition import choose_encoder

        encoder, _ = choose_encoder(accept)
        data: bytes = encoder(self.registry)
        return gzip.compress(data, compresslevel=6) if gz else data

    async def _send(self, conn: Conn, cfg: WebConfig | None, status: int,
                    headers: list[tuple[str, str]], body: bytes, keep_alive: bool, head_only: bool = False) -> None:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
                 f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}",
                 f"Content-Length: {len(body)}", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
        if cfg is not None:
            headers = headers + list(cfg.headers)
        lines += [f"{k}: {v}" for k, v in headers]
        writer = conn.writer
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body))
        self.slots.writing(conn, asyncio.get_running_loop().time())
        try:
            async with asyncio.timeout(self.limits.write_timeout):
                await writer.drain()
        finally:
            conn.writing_since = None


async def _looks_like_http(conn: Conn) -> bool:
    """Whether a new connection's first five bytes are one of :data:`_HTTP_STARTS` (plain HTTP on the
    TLS port), looked at without taking them: the TLS handshake reads them next.

    The transport stops reading meanwhile.  A duplicate of its socket waits for them (the loop allows
    no second reader on a transport's own descriptor, and asyncio's socket wrapper no ``MSG_PEEK``),
    with ``SO_RCVLOWAT`` 5 so that the wait ends at the fifth byte or at EOF, however they trickle in:
    a client sending one byte and stalling waits out the caller's header deadline, as before.  Fewer
    than five before EOF is not HTTP; the handshake then fails as it always did.  (An eviction ends
    the wait: :meth:`sockscope.exporter_conn.Conn.evict`.)"""
    loop = asyncio.get_running_loop()
    transport, tsock = conn.writer.transport, conn.writer.get_extra_info("socket")
    if not isinstance(transport, asyncio.ReadTransport) or tsock is None:
        return False  # (not a socket transport: nothing to look at)
    transport.pause_reading()
    sock = socket.fromfd(tsock.fileno(), tsock.family, tsock.type)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, len(_HTTP_STARTS[0]))
        while True:
            conn.looking = loop.create_future()
            loop.add_reader(sock.fileno(), _wake, conn.looking)
            try:
                await conn.looking
            finally:
                conn.looking = None
                loop.remove_reader(sock.fileno())
            try:
                first = sock.recv(len(_HTTP_STARTS[0]), socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue  # (a wake-up with nothing to read)
            return first in _HTTP_STARTS
    finally:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)  # (the default) for the TLS layer
        except OSError:
            pass
        sock.close()
        transport.resume_reading()


def _wake(fut: asyncio.Future[None]) -> None:
    """(The descriptor can be ready again before the waiting task has run and stopped watching it.)"""
    if not fut.done():
        fut.set_result(None)


def _accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding value admits gzip (RFC 9110): ``gzip`` or ``x-gzip``, any case,
    or else ``*``, with a q-value above 0 (``gzip;q=0`` refuses it)."""
    star = False
    for item in header.split(","):
        coding, *params = item.split(";")
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            star = q > 0
    return star


def _origin_form(target: str) -> str:
    """The path of a request target; an absolute-form one (``http://host/metrics``, which servers
    must accept, RFC 9112 3.2.2) is reduced to its path."""
    scheme, sep, rest = target.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        return "/" + rest.partition("/")[2]
    return target


def _parse(head: bytes) -> _Request:
    """One HTTP/1.x request head (ending in CRLF CRLF)."""
    try:
        text = head.decode("latin-1")
        first, *rest = text[:-4].split("\r\n")
        method, target, version = first.split(" ")
    except ValueError:
        raise _BadRequest(400) from None
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _BadRequest(505 if version.startswith("HTTP/") else 400)
    headers: dict[str, str] = {}
    for line in rest:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise _BadRequest(400)
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    if "transfer-encoding" in headers or headers.get("content-length", "0").strip() not in ("0", ""):
        raise _BadRequest(400)  # no request here has a body
    conn = headers.get("connection", "").lower()
    keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
    return _Request(method, _origin_form(target).partition("?")[0], headers, keep)


__all__ = ["Address", "Limits", "Server", "bind", "url_of"]
