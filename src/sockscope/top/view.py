"""The curses screen of ``sockscope top``.

:func:`run` takes over the terminal with :func:`curses.wrapper` (which
restores it on any exit, exception included; SIGTERM and SIGHUP are turned
into ``SystemExit`` so that this also holds when the process is asked to
end).  The loop waits for a key with a timeout that ends at the next tick,
so keys are answered at once and ticks stay on time.  Every draw reads the
current terminal size, so a resize only needs a redraw; nothing is written
to the bottom-right cell.
"""

from __future__ import annotations

import curses
import signal
import time
from typing import Any

from sockscope.errors import SockscopeError
from sockscope.top.model import Model, Sample, View, compile_filter
from sockscope.top.text import HELP, header_lines, ordered, table

INTERVALS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
HEADER_LINES = 3


class App:
    """The interactive loop: state between keys and ticks."""

    def __init__(self, model: Model, view: View, interval: float) -> None:
        self.model = model
        self.view = view
        self.interval = interval
        self.paused = False
        self.help = False
        self.prompt: str | None = None  # the filter being typed
        self.message = ""
        self.offset = 0
        self.sample: Sample | None = None
        self.next_tick = 0.0
        self.running = True
        self._cache: tuple[Any, ...] | None = None

    # -- loop ----------------------------------------------------------------

    def run(self, scr: Any) -> None:
        try:
            curses.curs_set(0)
        except curses.error:
            pass
        try:
            curses.set_escdelay(25)
        except (AttributeError, curses.error):
            pass
        scr.keypad(True)
        self.tick()
        while self.running:
            self.draw(scr)
            if self.paused:
                scr.timeout(1000)
            else:
                scr.timeout(max(0, int((self.next_tick - time.monotonic()) * 1000)))
            try:
                key = scr.get_wch()
            except curses.error:
                key = None
            if key is not None:
                self.on_key(key, scr)
            if not self.paused and time.monotonic() >= self.next_tick:
                self.tick()

    def tick(self) -> None:
        self.sample = self.model.sample()
        now = time.monotonic()
        nt = self.next_tick + self.interval if self.next_tick else now + self.interval
        self.next_tick = nt if nt > now else now + self.interval

    # -- keys ----------------------------------------------------------------

    def on_key(self, key: str | int, scr: Any) -> None:
        if key == curses.KEY_RESIZE:
            try:
                curses.update_lines_cols()
            except AttributeError:
                pass
            return
        if self.prompt is not None:
            self._prompt_key(key)
            return
        if self.help:
            self.help = False
            return
        page = max(1, self._page_rows(scr))
        k = key if isinstance(key, int) else (ord(key) if len(key) == 1 else -1)
        ch = key if isinstance(key, str) else ""
        if ch in ("q", "Q"):
            self.running = False
        elif ch in ("p", "P", " "):
            self.paused = not self.paused
            if not self.paused:
                self.next_tick = time.monotonic()
        elif ch in ("?", "h", "H") or k == curses.KEY_F1:
            self.help = True
        elif ch == "/":
            self.prompt = self.view.filter_text
        elif ch == "\x1b":
            self._set_filter("")
        elif ch == "<":
            self.view.set_sort_index(self.view.sort_index() - 1)
        elif ch == ">":
            self.view.set_sort_index(self.view.sort_index() + 1)
        elif ch.isascii() and ch.isdigit():  # (not "²": int() refuses it)
            n = int(ch) or 10
            if n <= len(self.view.columns):
                self.view.set_sort_index(n - 1)
        elif ch in ("r", "R"):
            self.view.reverse = not self.view.reverse
        elif ch in ("\t", "v", "V"):
            self.view.toggle_processes()
            self.offset = 0
        elif ch == "+":
            self._step_interval(1)
        elif ch == "-":
            self._step_interval(-1)
        elif k in (curses.KEY_DOWN,) or ch == "j":
            self.offset += 1
        elif k in (curses.KEY_UP,) or ch == "k":
            self.offset -= 1
        elif k == curses.KEY_NPAGE:
            self.offset += page
        elif k == curses.KEY_PPAGE:
            self.offset -= page
        elif k == curses.KEY_HOME or ch == "g":
            self.offset = 0
        elif k == curses.KEY_END or ch == "G":
            self.offset = 1 << 30
        self.offset = max(0, self.offset)

    def _step_interval(self, d: int) -> None:
        i = min(range(len(INTERVALS)), key=lambda j: abs(INTERVALS[j] - self.interval))
        self.interval = INTERVALS[max(0, min(len(INTERVALS) - 1, i + d))]
        self.next_tick = min(self.next_tick, time.monotonic() + self.interval)
        self.message = f"refresh every {self.interval:g}s"

    def _prompt_key(self, key: str | int) -> None:
        assert self.prompt is not None
        if key in ("\n", "\r", curses.KEY_ENTER):
            text, self.prompt = self.prompt, None
            self._set_filter(text)
        elif key == "\x1b":
            self.prompt = None
        elif key in (curses.KEY_BACKSPACE, "\x7f", "\b"):
            self.prompt = self.prompt[:-1]
        elif key == "\x15":  # Ctrl-U
            self.prompt = ""
        elif isinstance(key, str) and key.isprintable():
            self.prompt += key

    def _set_filter(self, text: str) -> None:
        try:
            pred, substring, note = compile_filter(text, tuple(sorted(self.model.query.tables)))
        except SockscopeError as exc:
            self.message = f"bad filter: {exc}"
            return
        self.view.filter_text = text.strip()
        self.view.predicate = pred
        self.view.substring = substring
        self.message = note
        self.offset = 0

    # -- drawing -------------------------------------------------------------

    @staticmethod
    def _page_rows(scr: Any) -> int:
        h, _w = scr.getmaxyx()
        return int(h) - HEADER_LINES - 2

    def _put(self, scr: Any, y: int, text: str, attr: int = 0) -> None:
        h, w = scr.getmaxyx()
        if y >= h or w <= 1:
            return
        try:
            scr.addnstr(y, 0, text, w - 1, attr)
        except curses.error:
            pass
        except UnicodeEncodeError:  # a character the terminal's encoding lacks: escaped
            self._put(scr, y, text.encode("ascii", "backslashreplace").decode("ascii"), attr)

    def draw(self, scr: Any) -> None:
        h, w = scr.getmaxyx()
        scr.erase()
        width = w - 1
        if h < HEADER_LINES + 3 or width < 30:
            self._put(scr, 0, "terminal too small")
            self._put(scr, 1, "(q quits)")
            scr.refresh()
            return
        if self.help:
            for y, text in enumerate(HELP.splitlines()[: h - 1]):
                self._put(scr, y, text)
            scr.refresh()
            return
        sample = self.sample
        assert sample is not None
        for y, text in enumerate(header_lines(sample, self.view, interval=self.interval, paused=self.paused,
                                              width=width)):
            self._put(scr, y, text)
        page = self._page_rows(scr)
        head, rows, total = self._table(sample, width, page)
        self._put(scr, HEADER_LINES, head.ljust(width), curses.A_REVERSE)
        for i, text in enumerate(rows):
            self._put(scr, HEADER_LINES + 1 + i, text, curses.A_BOLD if text.startswith("+") else 0)
        if self.prompt is not None:
            status = "filter: " + self.prompt
            self._put(scr, h - 1, status)
            try:
                curses.curs_set(1)
                scr.move(h - 1, min(len(status), width))
            except curses.error:
                pass
        else:
            try:
                curses.curs_set(0)
            except curses.error:
                pass
            shown = f"rows {self.offset + 1 if total else 0}-{min(total, self.offset + page)} of {total}"
            note = self.message or (sample.warnings[-1] if sample.warnings else "")
            self._put(scr, h - 1, (note + "  " if note else "") + shown)
        scr.refresh()

    def _table(self, sample: Sample, width: int, page: int) -> tuple[str, list[str], int]:
        v = self.view
        key = (id(sample), v.processes, v.sort, v.reverse, v.filter_text, v.substring)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, ordered(sample, v))
        items = self._cache[1]
        self.offset = max(0, min(self.offset, len(items) - page))
        return table(sample, v, width, self.offset, page, items)


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def run(model: Model, view: View, interval: float) -> int:
    """Run the full-screen view until ``q``; the terminal is restored in every case.
    A terminal curses has no description of (TERM unset or unknown) is a one-line error."""
    import os
    import sys

    term = os.environ.get("TERM") or "unknown"  # what curses.initscr asks for
    try:
        curses.setupterm(term, sys.stdout.fileno())
    except curses.error as exc:
        what = f"TERM={term!r}" if os.environ.get("TERM") else "TERM is not set"
        raise SockscopeError(f"top: cannot drive this terminal ({what}: {exc}): set TERM to the terminal's "
                             "type, or use --once for a plain-text snapshot") from None
    app = App(model, view, interval)
    old = {sig: signal.signal(sig, _raise_exit) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        curses.wrapper(app.run)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return 0


__all__ = ["App", "run"]
