"""Text of ``sockscope top``: header lines and table rows for a given width.

Pure functions shared by the curses view and the plain-text snapshot.
Columns marked elastic share the width left over by the others; a cell too
long for its column is cut with ``~`` (addresses keep their right end, the
port; other cells their left end).  ``width=None`` means no limit (snapshot).
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

from sockscope.top.model import STATE_ORDER, Column, Sample, View, process_cells, socket_cells

HELP = """\
sockscope top: keys

  q            quit                      p, space   pause / resume
  ?, h         this help                 /          filter (ss filter language;
  < >          sort by previous/next                 empty: no filter)
               column                    Esc        clear the filter
  1..9, 0      sort by column 1..9, 10   r          reverse the sort order
  Tab, v       sockets / processes view  + -        refresh slower / faster
  Up Down PgUp PgDn Home End: scroll

Rates (Rx/s, Tx/s) come from tcp_info byte counters between two ticks
("-" when there are none: UDP, UNIX). A "+" before Net marks a socket
opened since the previous tick; New/Gone count them per process.

Press any key to go back.
"""


def _partial(why: str) -> str:
    """Why owners are partial, in a few words for the header (the full line goes to stderr)."""
    if why:
        return "out of file descriptors"
    return "run as root" if os.geteuid() != 0 else "some processes unreadable"


def fit(cell: str, width: int, right: bool = False, keep_end: bool = False, sep: str = "") -> str:
    """``cell`` padded or cut to exactly ``width`` characters.

    A cut keeps the start (or the end with ``keep_end``) and marks the cut
    with ``~``; with ``sep``, what follows the last ``sep`` is kept whole when
    it fits (``name/pid`` loses letters of the name, not of the pid).
    """
    if len(cell) > width:
        if width <= 0:
            return ""
        if sep and sep in cell:
            head, tail = cell.rsplit(sep, 1)
            tail = sep + tail
            if len(tail) + 2 <= width:
                return head[: width - len(tail) - 1] + "~" + tail
        return ("~" + cell[len(cell) - width + 1 :]) if keep_end else (cell[: width - 1] + "~")
    return cell.rjust(width) if right else cell.ljust(width)


def widths(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None) -> list[int]:
    """Column widths: content-sized, then elastic columns share what is left of ``width``."""
    natural = [len(c.name) for c in columns]
    for r in rows:
        for i, cell in enumerate(r):
            if len(cell) > natural[i]:
                natural[i] = len(cell)
    if width is None:
        return natural
    out = list(natural)
    gaps = len(columns) - 1
    fixed = sum(natural[i] for i, c in enumerate(columns) if not c.elastic)
    elastic = [i for i, c in enumerate(columns) if c.elastic]
    spare = width - gaps - fixed
    if elastic:
        # give each elastic column at least its minimum, then share by weight up to its need
        for i in elastic:
            out[i] = min(natural[i], columns[i].minimum)
        left = spare - sum(out[i] for i in elastic)
        while left > 0:
            want = [i for i in elastic if out[i] < natural[i]]
            if not want:
                break
            total = sum(columns[i].elastic for i in want)
            step_given = 0
            for i in want:
                give = max(1, int(left * columns[i].elastic / total))
                give = min(give, natural[i] - out[i], left - step_given)
                if give <= 0:
                    continue
                out[i] += give
                step_given += give
            if not step_given:
                break
            left -= step_given
    while sum(out) + gaps > width:
        # still too wide (a very narrow terminal): shrink the widest column
        j = max(range(len(out)), key=lambda k: out[k])
        if out[j] <= 1:
            break
        out[j] -= 1
    return out


def line(columns: Sequence[Column], cells: Sequence[str], ws: Sequence[int]) -> str:
    parts = []
    for c, cell, w in zip(columns, cells, ws):
        parts.append(fit(cell, w, c.right, keep_end=c.key in ("local", "peer"),
                         sep="/" if c.key == "process" else ""))
    return " ".join(parts)


def header_lines(sample: Sample, view: View, *, interval: float, paused: bool = False,
                 width: int | None = None, note: str = "") -> list[str]:
    """The three lines above the table: totals, per-state counts, view/sort/filter."""
    clock = time.strftime("%H:%M:%S", time.localtime(sample.wall))
    n = len(sample.rows)
    first = (f"sockscope top  {clock}  every {interval:g}s{'  [PAUSED]' if paused else ''}  sockets {n}  "
             f"opened {sample.opened}  closed {sample.closed}")
    states = "  ".join(f"{st} {sample.totals[st]}" for st in STATE_ORDER if sample.totals.get(st))
    col = view.columns[view.sort_index()]
    order = "desc" if view._descending() else "asc"
    third = f"view {'processes' if view.processes else 'sockets'}  sort {col.name} {order}"
    if view.filter_text:
        third += f"  filter {view.filter_text!r}" + (" (text)" if view.substring else "")
    if not sample.owners_complete:
        third += f"  owners partial: {_partial(sample.owners_why)}"
    if note:
        third += f"  {note}"
    third += "  ? help"
    lines = [first, states or "no sockets", third]
    if width is not None:
        lines = [fit(x, width).rstrip() for x in lines]
    return lines


def ordered(sample: Sample, view: View) -> list[Any]:
    """The rows ``view`` shows of ``sample``, filtered and sorted (Row or ProcRow)."""
    if view.processes:
        return list(view.process_rows(sample))
    return list(view.socket_rows(sample))


def table(sample: Sample, view: View, width: int | None, start: int = 0,
          count: int | None = None, items: list[Any] | None = None) -> tuple[str, list[str], int]:
    """(column header line, row lines from ``start`` (at most ``count``), total rows).

    ``items`` is :func:`ordered`'s result when the caller keeps it between draws.
    """
    columns = view.columns
    if items is None:
        items = ordered(sample, view)
    total = len(items)
    page = items[start : None if count is None else start + count]
    if view.processes:
        cells = [process_cells(p) for p in page]
    else:
        names = sample.names
        skip = 0 if view.show_netid else 1
        cells = []
        for r in page:
            c = socket_cells(r, names, view.netns)[skip:]
            if r.new:
                c[0] = "+" + c[0]
            cells.append(c)
    ws = widths(columns, cells, width)
    head = line(columns, [c.name for c in columns], ws)
    return head, [line(columns, c, ws) for c in cells], total


def snapshot(sample: Sample, view: View, *, interval: float) -> str:
    """The plain-text snapshot: header lines, a blank line, the whole table."""
    out = header_lines(sample, view, interval=interval)
    head, rows, _total = table(sample, view, None)
    out.append("")
    out.append(head.rstrip())
    out.extend(r.rstrip() for r in rows)
    return "\n".join(out) + "\n"


__all__ = ["HELP", "fit", "widths", "line", "header_lines", "ordered", "table", "snapshot"]
