"""``sockscope connect``: the tutorial client, grown up; and a tcping.

Contract:

* :func:`exchange` connects (TCP, UNIX stream) to the first address of the
  target that accepts, sends the payload if there is one while printing what
  the server sends, half-closes once the payload is sent, and returns 0 when
  the server closes.  Received bytes go to ``out`` unchanged; unless ``raw``,
  a final newline is added when the data does not end with one, so the output
  is the tutorial client's (``print(s.recv(1024).decode())``).  Over UDP it
  sends one datagram (the payload, or an empty one) and prints the one reply.
* :func:`tcping` resolves once, then connects ``count`` times (forever when
  None, until SIGINT), ``interval`` seconds apart, printing one line per
  attempt and a ping-style summary.  Over UDP an attempt is a datagram round
  trip.  It returns 0 when every attempt succeeded, else the exit status of the
  last failure.
* ``timeout`` bounds name resolution, each connect, and each wait for data or
  for a reply.  Failures raise :mod:`sockscope.services.errors` classes:
  refused -> :class:`ConnectRefused` (1), timeout -> :class:`ConnectTimeout`
  (3), name resolution -> :class:`ResolveError` (4), anything else ->
  :class:`ConnectFailed` (5), unreadable payload -> :class:`PayloadError` (2).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, TextIO

from sockscope.hostport import not_a_host_name
from sockscope.services._bind import format_hostport
from sockscope.services.errors import (
    EXIT_OK,
    ConnectTimeout,
    PayloadError,
    ResolveError,
    ServiceError,
    connect_error,
    describe_errno,
)
from sockscope.services.stats import format_ms, summarize
from sockscope.services import DEFAULT_INTERVAL, DEFAULT_PORT, DEFAULT_TIMEOUT, MAX_DATAGRAM

Proto = Literal["tcp", "udp", "unix"]
_CHUNK = 65536
_PING_NAMES = {"tcp": "tcping", "udp": "udping", "unix": "unixping"}


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: ``host``/``port`` for TCP and UDP, ``path`` for UNIX (``@name``: abstract)."""

    proto: Proto = "tcp"
    host: str = ""
    port: int = DEFAULT_PORT
    path: str = ""

    def label(self) -> str:
        """``host:port`` or the UNIX path, as the user gave it."""
        return self.path if self.proto == "unix" else format_hostport(self.host, self.port)


@dataclass(frozen=True, slots=True)
class Payload:
    """Data to send: literal bytes, or a file path (``-``: standard input)."""

    data: bytes | None = None
    file: str | None = None

    def open(self) -> BinaryIO | None:
        """Open the file source now, so that an unreadable file fails before connecting."""
        if self.file is None:
            return None
        if self.file == "-":
            if sys.stdin is None:  # started with fd 0 closed
                raise PayloadError("cannot read the data to send: standard input is closed")
            return sys.stdin.buffer
        try:
            return open(self.file, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise PayloadError(f"cannot read {self.file}: {describe_errno(exc)}") from exc


@dataclass(frozen=True, slots=True)
class Resolved:
    """One concrete address: family, sockaddr for connect(), and its text."""

    family: int
    sockaddr: str | tuple[Any, ...]
    text: str


async def resolve(target: Target, timeout: float) -> list[Resolved]:
    """Every address of ``target``, in getaddrinfo order; ResolveError if none."""
    if target.proto == "unix":
        path = target.path
        unix_addr = "\0" + path[1:] if path.startswith("@") else path
        return [Resolved(socket.AF_UNIX, unix_addr, path)]
    socktype = socket.SOCK_STREAM if target.proto == "tcp" else socket.SOCK_DGRAM
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(target.host, target.port, type=socktype), timeout)
    except socket.gaierror as exc:
        raise ResolveError(f"cannot resolve host {target.host!r}: {exc.strerror}") from exc
    except (UnicodeError, ValueError) as exc:  # (a label over 63 characters, or empty; a NUL)
        raise ResolveError(f"cannot resolve host {target.host!r}: {not_a_host_name(target.host, exc)}") from None
    except TimeoutError as exc:
        raise ResolveError(f"cannot resolve host {target.host!r}: timed out after {timeout:g}s") from exc
    out = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            out.append(Resolved(family, sockaddr, format_hostport(str(sockaddr[0]), int(sockaddr[1]))))
    if not out:
        raise ResolveError(f"cannot resolve host {target.host!r}: no IPv4 or IPv6 address")
    return out


def _where(target: Target, addr: Resolved) -> str:
    label = target.label()
    return label if label == addr.text or target.proto == "unix" else f"{label} ({addr.text})"


async def _connect(target: Target, addr: Resolved, timeout: float) -> tuple[socket.socket, float]:
    """A connected non-blocking socket and the connect latency in seconds; ServiceError if not."""
    socktype = socket.SOCK_DGRAM if target.proto == "udp" else socket.SOCK_STREAM
    sock = socket.socket(addr.family, socktype)
    try:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        await asyncio.wait_for(loop.sock_connect(sock, addr.sockaddr), timeout)
        return sock, time.perf_counter() - started
    except TimeoutError as exc:
        sock.close()
        raise ConnectTimeout(f"cannot connect to {_where(target, addr)}: timed out after {timeout:g}s") from exc
    except OSError as exc:
        sock.close()
        raise connect_error(exc, f"cannot connect to {_where(target, addr)}") from exc
    except BaseException:
        sock.close()
        raise


async def _chunks(source: BinaryIO) -> AsyncIterator[bytes]:
    """Chunks of a blocking file, read by a daemon thread so a stalled stdin never blocks exit.
    The thread hands them over with plain callbacks (no coroutine of its own, which a loop that
    ends first, the reading stopped early, would leave never awaited) and reads at most 8 ahead."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | OSError] = asyncio.Queue()
    room = threading.Semaphore(8)
    done = threading.Event()

    def put(item: bytes | OSError) -> bool:
        while not room.acquire(timeout=0.1):
            if done.is_set():
                return False
        if done.is_set():
            return False
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: stop reading
            return False
        return True

    def reader() -> None:
        fd = source.fileno()
        while True:
            try:
                chunk = os.read(fd, _CHUNK)
            except OSError as exc:
                put(exc)
                return
            if not put(chunk) or not chunk:
                return

    threading.Thread(target=reader, name="sockscope-send", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            room.release()
            if isinstance(item, OSError):
                raise PayloadError(f"cannot read the data to send: {describe_errno(item)}")
            if not item:
                return
            yield item
    finally:
        done.set()


async def _read_all(payload: Payload | None, source: BinaryIO | None) -> bytes:
    """The one datagram's data; PayloadError as soon as it is known not to fit (an endless
    ``--send-file /dev/zero`` is not read into memory first)."""
    if payload is None:
        return b""
    if payload.data is not None:
        data = payload.data
    else:
        assert source is not None
        parts, size = [], 0
        async for chunk in _chunks(source):
            parts.append(chunk)
            size += len(chunk)
            if size > MAX_DATAGRAM:
                raise PayloadError(f"the data to send does not fit in one UDP datagram (max {MAX_DATAGRAM} bytes)")
        data = b"".join(parts)
    if len(data) > MAX_DATAGRAM:
        raise PayloadError(f"{len(data)} bytes do not fit in one UDP datagram (max {MAX_DATAGRAM})")
    return data


async def _send(writer: asyncio.StreamWriter, payload: Payload, source: BinaryIO | None) -> None:
    if payload.data is not None:
        writer.write(payload.data)
    else:
        assert source is not None
        async for chunk in _chunks(source):
            writer.write(chunk)
            await writer.drain()
    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


class _Output:
    """Writes received bytes through; remembers whether a final newline is owed."""

    def __init__(self, out: BinaryIO, raw: bool) -> None:
        self.out, self.raw, self.last = out, raw, b""

    def write(self, data: bytes) -> None:
        if data:
            self.out.write(data)
            self.out.flush()
            self.last = data[-1:]

    def finish(self) -> None:
        if not self.raw and self.last not in (b"", b"\n"):
            self.out.write(b"\n")
        self.out.flush()


async def exchange(
    target: Target, payload: Payload | None, timeout: float, out: BinaryIO, raw: bool = False
) -> int:
    """Connect, send the payload, print what comes back until the server closes; return 0."""
    source = payload.open() if payload is not None else None
    try:
        addrs = await resolve(target, timeout)
        output = _Output(out, raw)
        try:
            if target.proto == "udp":
                await _exchange_udp(target, addrs[0], await _read_all(payload, source), timeout, output)
            else:
                await _exchange_stream(target, addrs, payload, source, timeout, output)
        finally:
            output.finish()
    finally:
        if source is not None and payload is not None and payload.file != "-":
            source.close()
    return EXIT_OK


async def _exchange_stream(
    target: Target,
    addrs: list[Resolved],
    payload: Payload | None,
    source: BinaryIO | None,
    timeout: float,
    output: _Output,
) -> None:
    sock: socket.socket | None = None
    failure: ServiceError | None = None
    addr = addrs[0]
    for addr in addrs:
        try:
            sock, _latency = await _connect(target, addr, timeout)
            break
        except ServiceError as exc:
            failure = exc
    if sock is None:
        assert failure is not None
        raise failure
    where = _where(target, addr)
    reader, writer = await asyncio.open_connection(sock=sock, limit=_CHUNK)
    sender = asyncio.ensure_future(_send(writer, payload, source)) if payload is not None else None
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(_CHUNK), timeout)
            except TimeoutError as exc:
                raise ConnectTimeout(f"{where}: no data for {timeout:g}s") from exc
            except OSError as exc:
                raise connect_error(exc, where) from exc
            if not chunk:
                break
            output.write(chunk)
        if sender is not None and sender.done() and not sender.cancelled():
            error = sender.exception()
            if isinstance(error, PayloadError):
                raise error
    finally:
        if sender is not None and not sender.done():
            sender.cancel()
        if sender is not None:
            await asyncio.gather(sender, return_exceptions=True)
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def _exchange_udp(target: Target, addr: Resolved, data: bytes, timeout: float, output: _Output) -> None:
    reply, _rtt = await _udp_round_trip(target, addr, data, timeout)
    output.write(reply)


async def _udp_round_trip(target: Target, addr: Resolved, data: bytes, timeout: float) -> tuple[bytes, float]:
    """Send one datagram, wait for one reply: (reply, round-trip seconds)."""
    loop = asyncio.get_running_loop()
    where = _where(target, addr)
    sock, _ = await _connect(target, addr, timeout)
    try:
        started = time.perf_counter()
        try:
            await loop.sock_sendall(sock, data)
            reply = await asyncio.wait_for(loop.sock_recv(sock, MAX_DATAGRAM + 1), timeout)
        except TimeoutError as exc:
            raise ConnectTimeout(f"{where}: no reply within {timeout:g}s") from exc
        except OSError as exc:
            raise connect_error(exc, where) from exc
        return reply, time.perf_counter() - started
    finally:
        sock.close()


@dataclass(slots=True)
class _Tally:
    """The probes so far: their round-trip times, how many failed, the exit status they make."""

    times: list[float]
    failed: int = 0
    status: int = EXIT_OK


async def tcping(
    target: Target,
    count: int | None,
    interval: float,
    timeout: float,
    out: TextIO,
    payload: Payload | None = None,
) -> int:
    """Connect ``count`` times (None: until SIGINT); print per-attempt lines and a summary."""
    source = payload.open() if payload is not None else None
    try:
        data = await _read_all(payload, source)
    finally:
        if source is not None and payload is not None and payload.file != "-":
            source.close()
    addr = (await resolve(target, timeout))[0]
    name = _PING_NAMES[target.proto]
    ok_word = "replied" if target.proto == "udp" else "connected"
    _say(out, f"{name.upper()} {_where(target, addr)}")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    tally = _Tally(times=[])
    seq = 0
    try:
        while count is None or seq < count:
            seq += 1
            attempt = asyncio.ensure_future(_attempt(target, addr, data, timeout))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait([attempt, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not attempt.done():
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)
                seq -= 1
                break
            _report(out, tally, seq, addr, attempt, ok_word)
            if stop.is_set() or (count is not None and seq >= count):
                break
            try:
                await asyncio.wait_for(stop.wait(), interval)
                break
            except TimeoutError:
                pass
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    _say(out, "")
    _say(out, f"--- {target.label()} {name} statistics ---")
    _say(out, f"{seq} attempts, {len(tally.times)} {ok_word}, {tally.failed} failed")
    summary = summarize(tally.times)
    if summary is not None:
        _say(out, summary.line())
    return tally.status


async def _attempt(target: Target, addr: Resolved, data: bytes, timeout: float) -> float:
    if target.proto == "udp":
        _reply, rtt = await _udp_round_trip(target, addr, data, timeout)
        return rtt
    sock, latency = await _connect(target, addr, timeout)
    sock.close()
    return latency


def _report(out: TextIO, tally: _Tally, seq: int, addr: Resolved, attempt: asyncio.Future[float], ok: str) -> None:
    exc = attempt.exception()
    if exc is None:
        latency = attempt.result()
        tally.times.append(latency)
        verb = "reply from" if ok == "replied" else "connected to"
        _say(out, f"{verb} {addr.text}: seq={seq} time={format_ms(latency)} ms")
        return
    if not isinstance(exc, ServiceError):
        raise exc
    tally.failed += 1
    tally.status = exc.exit_status
    reason = str(exc).rsplit(": ", 1)[-1]
    _say(out, f"{addr.text}: seq={seq} {reason}")


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


def run_exchange(target: Target, payload: Payload | None, timeout: float, raw: bool) -> int:
    """Synchronous wrapper of :func:`exchange` writing to stdout."""
    return asyncio.run(exchange(target, payload, timeout, sys.stdout.buffer, raw))


def run_tcping(
    target: Target, count: int | None, interval: float, timeout: float, payload: Payload | None = None
) -> int:
    """Synchronous wrapper of :func:`tcping` writing to stdout."""
    return asyncio.run(tcping(target, count, interval, timeout, sys.stdout, payload))


__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_INTERVAL",
    "MAX_DATAGRAM",
    "Target",
    "Payload",
    "Resolved",
    "resolve",
    "exchange",
    "tcping",
    "run_exchange",
    "run_tcping",
]
