"""The log of ``sockscope serve``: bounded, non-blocking, rate-limited.

Contract:

* **Never blocks serving.**  :meth:`ServeLog.say` and :meth:`ServeLog.event`
  only append to an in-memory queue of at most ``max_queued`` lines; one
  writer thread drains it to the stream.  When the reader of the stream is
  slow (a full pipe: ``serve 2>&1 | sleep 600``) only that thread waits;
  lines that find the queue full are dropped and counted, and
  ``<n> log line(s) dropped: the log was not read fast enough`` is written
  as soon as the writer can write again.
* **Bounded under flood.**  Per-connection (per-datagram) lines go through
  :meth:`ServeLog.event`, which admits ``rate`` lines per second (a token
  bucket holding :data:`BURST_SECONDS` seconds' worth, so a short burst is
  logged in full).  Lines over the budget are not even formatted: they are
  counted per kind (``udp reply``, ``tcp limit``, ...) and summarised at
  most once a second: ``suppressed <n> per-connection log line(s) in the
  last <s>s (over <rate>/s): <kind>=<n>, ...``.  ``rate=0`` logs every line.
* **Writes to a file descriptor of its own.**  For a stream with a
  ``fileno()`` (stderr) the thread writes with :func:`os.write` to a
  duplicate of the descriptor, so a writer stuck on a full pipe holds no
  lock of ``sys.stderr`` (which would otherwise abort the interpreter at
  exit); other streams (a ``StringIO``) get ``write`` + ``flush``.
* :meth:`ServeLog.close` flushes for at most ``timeout`` seconds, then gives
  up: exiting never waits for a reader that does not read.
* The exporter's log is the same machinery with its own ``banner``
  (``sockscope: ``) and no time stamps (``stamps=False``).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TextIO

from sockscope.errors import printable
from sockscope.services import DEFAULT_LOG_RATE

#: The token bucket holds this many seconds of ``rate``.
BURST_SECONDS = 25
#: Lines waiting for the writer, at most.
MAX_QUEUED = 10_000
#: Minimum seconds between two "suppressed" summaries.
SUMMARY_PERIOD = 1.0
#: The writer pauses this long after each write, so that lines are written in batches.
BATCH_PAUSE = 0.02
BANNER = "sockscope serve: "


def _stamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


class ServeLog:
    """A bounded queue of log lines drained by one writer thread."""

    def __init__(self, stream: TextIO, rate: float = DEFAULT_LOG_RATE, max_queued: int = MAX_QUEUED, *,
                 banner: str = BANNER, stamps: bool = True) -> None:
        self._stream = stream
        self._banner = banner
        self._stamps = stamps
        self._fd = -1
        try:
            self._fd = os.dup(stream.fileno())
        except (AttributeError, OSError, ValueError):
            self._fd = -1
        self._cond = threading.Condition()
        self._queue: deque[tuple[float, str]] = deque()
        self._max = max_queued
        self._dropped = 0
        self._suppressed: Counter[str] = Counter()
        self._rate = float(rate)
        self._burst = self._rate * BURST_SECONDS
        self._tokens = self._burst
        self._refilled = time.monotonic()
        self._closing = False
        self._thread = threading.Thread(target=self._drain, name="sockscope-serve-log", daemon=True)
        self._thread.start()

    # -- producers (the event loop) ----------------------------------------
    def say(self, text: str, banner: str | None = None) -> None:
        """A start-up/shutdown line, prefixed with the banner (``sockscope serve:``, or ``banner``);
        never rate-limited."""
        self._put((self._banner if banner is None else banner) + printable(text))

    def event(self, kind: str, build: Callable[[], str]) -> None:
        """A per-connection line, built only if the rate limit admits it; else counted under ``kind``."""
        if self._rate:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens < 1:
                with self._cond:
                    self._suppressed[kind] += 1
                return
            self._tokens -= 1
        self._put(build())

    def _put(self, line: str) -> None:
        now = time.time()
        with self._cond:
            if len(self._queue) >= self._max:
                self._dropped += 1
                return
            self._queue.append((now, line))
            if len(self._queue) == 1:  # the writer waits only on an empty queue
                self._cond.notify()

    @property
    def dropped(self) -> int:
        """Lines dropped so far and not yet reported."""
        return self._dropped

    # -- the writer thread ---------------------------------------------------
    def _drain(self) -> None:
        last_summary = time.monotonic()
        while True:
            with self._cond:
                while not self._queue and not self._closing and not self._dropped:
                    if self._suppressed and time.monotonic() - last_summary >= SUMMARY_PERIOD:
                        break
                    self._cond.wait(SUMMARY_PERIOD)
                batch = list(self._queue)
                self._queue.clear()
                dropped, self._dropped = self._dropped, 0
                suppressed: Counter[str] = Counter()
                now = time.monotonic()
                if self._suppressed and (self._closing or now - last_summary >= SUMMARY_PERIOD):
                    suppressed, self._suppressed = self._suppressed, Counter()
                closing = self._closing
            lines = [f"{self._prefix(at)}{line}\n" for at, line in batch]
            wall = time.time()
            if dropped:
                note = f"{dropped} log line(s) dropped: the log was not read fast enough"
                lines.append(f"{self._prefix(wall)}{self._banner}{note}\n")
            if suppressed:
                total = sum(suppressed.values())
                kinds = ", ".join(f"{kind}={n}" for kind, n in sorted(suppressed.items()))
                lines.append(
                    f"{self._prefix(wall)}{self._banner}suppressed {total} per-connection log line(s) in the last "
                    f"{now - last_summary:.1f}s (over {self._rate:g}/s): {kinds}\n"
                )
                last_summary = now
            if lines:
                self._write("".join(lines))
                if not closing:
                    time.sleep(BATCH_PAUSE)  # fewer wake-ups (and GIL hand-offs) under a flood of lines
            if closing:
                with self._cond:
                    if not self._queue and not self._dropped and not self._suppressed:
                        return

    def _prefix(self, at: float) -> str:
        return f"{_stamp(at)} " if self._stamps else ""

    def _write(self, text: str) -> None:
        try:
            if self._fd < 0:
                self._stream.write(text)
                self._stream.flush()
                return
            data = text.encode("utf-8", "backslashreplace")
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        except (OSError, ValueError):
            pass  # a closed or broken log: serving goes on

    def close(self, timeout: float = 1.0) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then stop the writer."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        if not self._thread.is_alive() and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


__all__ = ["DEFAULT_LOG_RATE", "MAX_QUEUED", "ServeLog"]
