"""Rows whose last cell is padded wide, written straight to the output's file.

ss pads the Process column of every row to its widest cell, so a listener held by
hundreds of processes (a prefork server) makes every row of the table kilobytes of
spaces: 4,000 rows of such a table are 26 MB.  Built as text, each row's padding is
made, joined and encoded before it is written: three copies of every byte.  Here each
row is two pieces given to ``os.writev``: its text, encoded, and a slice of one shared
run of spaces ending in the newline; no byte of padding is copied in this process (the
kernel copies what a pipe or file takes; ``/dev/null`` takes none).

The output is the same bytes as ``head + cell.ljust(pad) + "\\n"`` for each row, encoded
with the stream's encoding and error handler.
"""

from __future__ import annotations

import os
from itertools import chain, repeat

from sockscope.render.width import widths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

_IOV_MAX = 1024  # pieces per system call (Linux's UIO_MAXIOV)


def file_for(out: Any) -> int | None:
    """The file descriptor under ``out`` where rows may be written to it directly (a text
    stream over a file, stdout, in an encoding where a space and a newline are a byte each:
    UTF-8, Latin-1, ASCII), else None (a StringIO, a wrapper without a file, UTF-16)."""
    if not hasattr(out, "buffer"):
        return None
    try:
        fd = out.fileno()
        same = (" \n").encode(out.encoding) == b" \n"
    except (OSError, ValueError, AttributeError, LookupError, TypeError):  # (io.UnsupportedOperation: both)
        return None
    return fd if same else None


def write_rows(out: Any, fd: int, heads: list[str], cells: Iterable[str], pad: int) -> None:
    """Write ``head + cell`` padded with spaces to ``pad`` characters of cell, then a newline,
    for each row, to ``fd`` (the file under ``out``, flushed first so that the order holds)."""
    out.flush()
    enc, errors = out.encoding, getattr(out, "errors", None) or "strict"
    cells = list(cells)
    texts = list(map(str.encode, map(str.__add__, heads, cells), repeat(enc), repeat(errors)))
    spaces = memoryview((" " * pad + "\n").encode(enc))  # (a byte each: see file_for)
    # each row's piece of ``spaces``: from pad - (what its cell lacks of pad), none where it is wider
    starts = map(min, widths(cells), repeat(pad))  # (a cell's bytes: ss's width)
    tails = map(spaces.__getitem__, map(slice, starts, repeat(None)))
    _writev_all(fd, list(chain.from_iterable(zip(texts, tails))))


def mostly_padding(blocks: list[Any], i: int, pad: int) -> bool:
    """Whether the rows of ``blocks`` with column ``i`` padded to ``pad`` are mostly spaces there (its
    cells fill less than a quarter of it: a prefork listener's users, not ``-i``'s texts, whose
    padding is short and for which the text path is quicker)."""
    n = filled = 0
    for block in blocks:
        cells = cells_of(block, i)
        n += len(cells)
        filled += sum(map(len, cells))
    return pad * n > 4 * filled


def cells_of(part: Any, i: int) -> list[str]:
    """The cells of column ``i`` of a part of the table's blocks (a
    :class:`~sockscope.render.table.Columns` block, or rows turned column-wise), unpadded."""
    from sockscope.render.table import CELLS, Columns, Numbers

    if type(part) is not Columns:
        return list(part[i])
    values, cache = part.cols[i]
    if cache is CELLS:
        cells: list[str] = values
        return cells
    if isinstance(cache, Numbers):
        return cache.texts(values)
    return [values] * part.n if cache is None else list(map(cache.texts.__getitem__, values))


def _writev_all(fd: int, pieces: list[bytes | memoryview]) -> None:
    """``os.writev`` until every piece is written: a short write (a signal, a full pipe of a
    non-blocking file) goes on from where it stopped."""
    i, n = 0, len(pieces)
    while i < n:
        chunk = pieces[i : i + _IOV_MAX]
        try:
            done = os.writev(fd, chunk)
        except BlockingIOError:  # a non-blocking file that is full: wait until it takes more
            import select

            waiter = select.poll()  # (not select(): a descriptor may be above FD_SETSIZE)
            waiter.register(fd, select.POLLOUT)
            waiter.poll()
            continue
        if done == sum(map(len, chunk)):
            i += len(chunk)
            continue
        for piece in chunk:  # a short write: skip what went, keep the rest of a piece half written
            size = len(piece)
            if done < size:
                pieces[i] = memoryview(piece)[done:]
                break
            done -= size
            i += 1


__all__ = ["file_for", "write_rows", "cells_of", "mostly_padding"]
