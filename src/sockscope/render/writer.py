"""ss's table laid out: :class:`TableWriter` writes rows of cells (lists, or the cell makers'
:class:`~sockscope.render.table.Columns` blocks) like ss does when not writing to a terminal:
each column as wide as its widest cell plus a left delimiter, address columns right-aligned.
The rows ss lays out together are laid out together (:mod:`sockscope.render.ssbuffer`: a
table of up to ~50,000 rows at once, a longer one where ss's output buffer is full); a column
never narrows from one layout to the next; a wide Process column is handed to
:mod:`sockscope.render.padded`.

The columns themselves (their order, headers, delimiters, alignment) are the registry
:data:`sockscope.render.table.COLUMNS`; the cells are made by
:class:`sockscope.render.table.CellMaker`.
"""

from __future__ import annotations

from itertools import chain, repeat
from _operator import getitem as _getitem, is_not, itemgetter

from sockscope.render.table import (CELLS, COLUMNS, HEADERS, NETNS, PROCESS, SS_CHUNKS, SS_ROOM, TAIL, Columns, Numbers,
                                    fill)
from sockscope.render.width import all_ascii, pad as pad_text, padded, widest, width, widths

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import IO, Any, Iterable, Iterator

_LDELIM = tuple(c.delim for c in COLUMNS)  # the registry's delimiters and alignment, by column
_RIGHT = tuple(c.right for c in COLUMNS)


class TableWriter:
    """Lays out rows of cells like ss (non-terminal layout), the rows ss lays out together
    together (:mod:`sockscope.render.ssbuffer`).

    Like ss, the Process cell of the last row of a layout is not measured
    (ss never flushes that field before laying out), so it does not widen the
    column; it is padded only up to the column's width.
    """

    def __init__(
        self, out: IO[str], visible: Iterable[bool], header: bool = True, batch: int | None = None,
        netns: bool = False, hold: bool = False,
    ) -> None:
        """``visible``: one flag per column of :data:`HEADERS` (``tail`` is never shown).
        ``netns``: rows carry one more cell, the namespace label, shown as the first column.
        ``batch``: write every that many rows, 0 only at :meth:`flush` (ss's ``-E``: each event, as
        the caller says); None: where ss writes
        (see :mod:`sockscope.render.ssbuffer`: a table of up to ~50,000 rows at once).  ``hold``:
        owners' texts are still coming (:class:`~sockscope.processes.BackgroundOwners`): hold the
        rows (up to :data:`HOLD_ROWS`) and find where ss writes once they are there."""
        self.out = out
        self.visible = [i for i, v in enumerate(visible) if v and i < TAIL]
        self._delims = _LDELIM
        if netns:
            self.visible.insert(0, NETNS)
            # Netid has no delimiter as ss's first column; after the Netns column, a space as any other
            self._delims = tuple(" " if c.name == "netid" else c.delim for c in COLUMNS)
        self.widths = [0] * len(COLUMNS)
        self.batch = batch
        self.hold = hold
        self._chunks: list[list[list[str]] | Columns] = []  # rows (lists of cells) or Columns, in order
        self._tail: list[list[str]] | None = None  # the open chunk of rows
        self._n = 0
        # where ss writes (batch None): the fields ss has tokens for, a bound of the bytes of the rows
        # held (each as wide as its widest cells), then ss's buffer followed exactly: [chunks, offset]
        # after the rows up to (block, row) ``_seen``
        self._fields = [i for i in self.visible if i != NETNS]
        self._bound = 0
        self._ss: list[int] | None = None
        self._seen = (0, 0)
        self._unbounded: list[list[str]] = []  # rows of cells not yet in the bound
        self._sizes: dict[int, Any] = {}  # (ss's buffer followed) the caches' token sizes by value
        if header:
            self.add(list(HEADERS) + ["Netns"])

    def add_many(self, rows: list[list[str]] | Columns) -> None:
        """Add a batch: rows of cells, or a :class:`Columns` block."""
        if not (rows.n if type(rows) is Columns else rows):
            return
        if isinstance(rows, Columns):
            self._chunks.append(rows)
            self._tail = None
            self._n += rows.n
        else:
            tail = self._tail
            if tail is None:
                tail = self._tail = []
                self._chunks.append(tail)
            tail.extend(rows)
            self._n += len(rows)
        self._added(rows)

    def add(self, cells: list[str]) -> None:
        tail = self._tail
        if tail is None:
            tail = self._tail = []
            self._chunks.append(tail)
        tail.append(cells)
        self._n += 1
        self._added([cells])

    def _added(self, rows: list[list[str]] | Columns) -> None:
        """Write what ss would have written by now."""
        if self.batch is not None:
            if self.batch and self._n >= self.batch:
                self.flush(final=False)
            return
        if self.hold:
            if self._n >= HOLD_ROWS:  # too many to hold: where ss writes among them, now
                if self._ss is None:
                    self._start()
                if self._ss is not None:
                    self._follow()
                if self._n >= HOLD_ROWS:  # (ss wrote nowhere among them)
                    self.flush(final=False)
            return
        if self._ss is None:
            if isinstance(rows, Columns):
                if rows.pending is not None and not rows.pending[3]:
                    _resolve([rows])  # (owners' texts from a map at hand: their lengths count)
                self._bound += _bound(rows, self._fields)
            else:  # rows of cells (records, often one at a time): bounded 1,024 at a time, and at the end
                self._unbounded += rows
                if len(self._unbounded) < 1024:
                    return
                self._bound += _bound(self._unbounded, self._fields)
                self._unbounded = []
            if self._bound < _SS_MAYBE:
                return
            self._ss, self._seen = [0, 0], (0, 0)
        elif type(rows) is not Columns and self._tail is not None and self._seen[0] == len(self._chunks) - 1 \
                and len(self._tail) - self._seen[1] < 1024:
            return  # (rows of cells one at a time: followed 1,024 at a time, and at the end)
        self._follow()

    def _start(self) -> None:
        """Follow ss's buffer from the first row held, if the rows held could fill it (their
        owners' texts waited for: their lengths count)."""
        _resolve([c for c in self._chunks if type(c) is Columns and c.pending is not None])
        if sum(_bound(c, self._fields) for c in self._chunks) >= _SS_MAYBE:
            self._ss, self._seen = [0, 0], (0, 0)

    def _follow(self) -> None:
        """Follow ss's buffer over the rows not yet followed; where ss writes (at the end of a
        row), write the rows up to it, as a table's end (its last row's Process cell unmeasured)."""
        from sockscope.render import ssbuffer

        assert self._ss is not None
        while True:
            k, r = self._seen
            chunks = self._chunks
            if k >= len(chunks):
                return
            block: Any = chunks[k]
            if type(block) is Columns:
                if block.pending is not None:
                    _resolve([block])
                n = block.n
            else:
                n = len(block)
            at = ssbuffer.follow(block, r, n, self._fields, self._sizes, self._ss)
            if at is None:
                self._seen = (k, n) if block is self._tail else (k + 1, 0)  # (the open rows may grow)
                if block is self._tail:
                    return
                continue
            head = ssbuffer.rows_of(block, 0, at + 1)
            rest = ssbuffer.rows_of(block, at + 1, n) if at + 1 < n else None
            was_tail = block is self._tail
            self._chunks = ([rest] if rest is not None else []) + chunks[k + 1 :]
            self._tail = rest if was_tail and type(rest) is list else None
            self._n = sum(c.n if isinstance(c, Columns) else len(c) for c in self._chunks)
            self._seen = (0, 0)
            self._write(chunks[:k] + [head], True, exact=True)

    def flush(self, final: bool = True) -> None:
        """Write the buffered rows; ``final`` marks the end of the table.

        Owners still to come (a :class:`Columns` block's ``pending``) are
        waited for as late as possible: every other column is laid out first."""
        if final and self._ss is None:
            if self.hold:
                self._start()
            elif self._unbounded:
                self._bound += _bound(self._unbounded, self._fields)
                if self._bound >= _SS_MAYBE:
                    self._ss, self._seen = [0, 0], (0, 0)
        if final and self._ss is not None:
            self._follow()  # (where ss writes among the rows not followed yet)
        if not self._n:
            return
        chunks = self._chunks
        self._chunks, self._tail, self._n = [], None, 0
        self._bound, self._ss, self._seen, self._unbounded = 0, None, (0, 0), []
        self._write(chunks, final)

    def _write(self, chunks: list[Any], final: bool, exact: bool = False) -> None:
        """Lay out and write ``chunks``; ``final``: their last row ends a layout (ss's); ``exact``:
        measure the columns of caches by the rows' own values (see :meth:`_measure`)."""
        vis = self.visible
        # rows are turned column-wise, for C-speed width scans
        blocks: list[Any] = [c if type(c) is Columns else list(zip(*c)) for c in chunks]
        pending = [b for b in blocks if type(b) is Columns and b.pending is not None]
        later = [PROCESS] if pending and PROCESS in vis else []
        if not later:
            _resolve(pending)
        for i in vis:
            if i not in later:
                self._measure(blocks, i, final, exact)
        # written a slice of rows at a time: a wide Process column (a listener held by hundreds of
        # processes widens every row) is never built into one text for the whole table
        write, pos = self.out.write, 0
        if not later:
            specs = self._specs()
            fd = _wide_file(self.out, specs[-1], blocks) if specs else None
            if fd is None:
                for part in _slices(blocks):
                    write(self._text(part, specs))
                return
            lines, spec = self._render(blocks, specs[:-1]), specs[-1:]
        else:
            lines = self._render(blocks, [s for s in self._specs() if s[0] not in later])
            _resolve(pending)
            self._measure(blocks, PROCESS, final, exact)
            spec = [s for s in self._specs() if s[0] == PROCESS]
            fd = _wide_file(self.out, spec[0], blocks)
        for part in _slices(blocks):
            if fd is not None:  # each row's padding a slice of one run of spaces: see render.padded
                from sockscope.render.padded import cells_of, write_rows

                cells = cells_of(part, PROCESS)
                write_rows(self.out, fd, lines[pos : pos + len(cells)], cells, spec[0][2])
                pos += len(cells)
                continue
            tails = self._render([part], spec)
            # one join over (head, tail, newline) pieces: no string per row in between
            write("".join(chain.from_iterable(zip(lines[pos : pos + len(tails)], tails, repeat("\n")))))
            pos += len(tails)

    def _measure(self, blocks: list[Any], i: int, final: bool, exact: bool = False) -> None:
        """Widen column ``i`` to its widest cell in ``blocks`` (the Process cell of
        the table's last row does not count: see the class).  A column's cache knows the widest
        text of every value it has met; ``exact``: of the blocks' own values only (the rows
        before where ss writes, when a block's later rows have already met the cache)."""
        m = self.widths[i]
        last = len(blocks) - 1
        for b, block in enumerate(blocks):
            cut = i == PROCESS and final and b == last
            if type(block) is Columns:
                values, cache = block.cols[i]
                w = _width(values[:-1] if cut and cache is CELLS else values, cache, exact, block, i)
            else:
                col = block[i][:-1] if cut else block[i]
                w = widest(col)
            if w > m:
                m = w
        self.widths[i] = m

    def _specs(self) -> list[tuple[int, str, int, bool]]:
        """(column, delimiter, padded width, right-aligned) of each visible column: the first
        visible column gets no delimiter; a non-first column's width includes its delimiter (ss's rule)."""
        specs: list[tuple[int, str, int, bool]] = []
        first = True
        for i in self.visible:
            w = self.widths[i]
            delim = self._delims[i] if not first else ""
            ew = w + len(delim) if (not first and w) else w
            specs.append((i, delim, max(ew - len(delim), 0), _RIGHT[i]))
            if ew:
                first = False
        return specs

    @staticmethod
    def _render(blocks: list[Any], specs: list[tuple[int, str, int, bool]]) -> list[str]:
        """The text of ``specs``' columns of every row: each cell padded in C, one join per row."""
        lines: list[str] = []
        for block in blocks:
            seqs = _cells(block, specs)
            lines.extend(seqs[0] if len(seqs) == 1 else map("".join, zip(*seqs)))
        return lines

    @staticmethod
    def _text(part: Any, specs: list[tuple[int, str, int, bool]]) -> str:
        """The rows of ``part`` as text, each ending in a newline.  A :class:`Columns` block: one
        ``%`` format of the row's format repeated for every row, over its cells side by side (the
        format pads them and makes the numbers' digits: no string per row or per number in
        between), set side by side into one list by slice assignments (C loops).  Rows of cells:
        their padded cells set side by side the same way, then one join."""
        if type(part) is Columns:
            fmt: list[str] = []
            seqs = _cells(part, specs, fmt)
            fmt.append("\n")
            rows = "".join(fmt) * part.n
            if not seqs:
                return rows
            k = len(seqs)  # the format's values, row by row: each column's at its stride of one list
            values: list[Any] = [None] * (k * part.n)
            for i, seq in enumerate(seqs):
                values[i::k] = seq if type(seq) is list else list(seq)
            return rows % tuple(values)
        seqs = _cells(part, specs)
        n, k = len(part[0]), len(seqs) + 1
        flat = [""] * (n * k)
        for i, seq in enumerate(seqs):
            flat[i::k] = seq
        flat[k - 1 :: k] = repeat("\n", n)
        return "".join(flat)


def _cells(block: Any, specs: list[tuple[int, str, int, bool]], fmt: list[str] | None = None) -> list[Any]:
    """Per column of ``specs``, the padded cells of the rows of ``block`` (an iterable each);
    adjacent columns of few distinct values as one (see :class:`_Joined`).

    With ``fmt`` (a :class:`Columns` block only), the pieces of a ``%`` format of one row are
    appended to it, and what the format can do is left to it: one text for every row is written
    into it, a column of numbers (:class:`~sockscope.render.table.Numbers`) is given as its
    numbers (``%d``), cells still to pad unpadded (``%-Ns``); each iterable returned is one
    ``%s`` of it, or the column's own ``%d`` or ``%-Ns``."""
    seqs: list[Any] = []
    if type(block) is Columns:
        n = block.n
        run: list[tuple[Any, Any, tuple[int, str, int, bool]]] = []  # (values, cache, spec): to join
        for spec in specs:
            i, delim, pad, right = spec
            values, cache = block.cols[i]
            if cache is not None and cache is not CELLS and not isinstance(cache, Numbers) \
                    and len(cache.texts) <= _JOIN_MAX:
                run.append((values, cache, spec))
                continue
            if run:
                _join(seqs, run, fmt)
                run = []
            if cache is None:
                text = delim + pad_text(values, pad, right)
                if fmt is None:
                    seqs.append(repeat(text, n))
                else:
                    fmt.append(text.replace("%", "%%"))
            elif cache is CELLS or isinstance(cache, Numbers):  # (owners: mostly one text per row)
                if fmt is not None:
                    conv = "s"
                    if cache is not CELLS:  # the digits by the format, a value's own text where it has one
                        conv, values = cache.format(values)
                    elif pad and not all_ascii(values):  # (padded to bytes, not by the format)
                        values, pad = list(padded(values, pad, right)), 0
                    size = ("" if right else "-") + str(pad) if pad else ""
                    fmt.append(delim.replace("%", "%%") + "%" + size + conv)
                    seqs.append(values)
                    continue
                cells = padded(values if cache is CELLS else cache.texts(values), pad, right)
                seqs.append(map(delim.__add__, cells) if delim else cells)
            else:
                seqs.append(map(cache.padded_for(delim, pad, right).__getitem__, values))
                if fmt is not None:
                    fmt.append("%s")
        if run:
            _join(seqs, run, fmt)
    else:
        for i, delim, pad, right in specs:
            cells = padded(block[i], pad, right)
            seqs.append(map(delim.__add__, cells) if delim else cells)
    return seqs


_JOIN_MAX = 32  # a column of at most this many distinct values is joined with its neighbours of few


class _Joined(dict[tuple[object, ...], str]):
    """The cells of adjacent columns side by side, by the tuple of their values.

    Columns of few distinct values (netid, state, the queues) make few distinct combinations:
    one look-up a row then gives what one look-up per column gave, and the row's text has one
    piece instead of several to join.  A combination is made when first met."""

    __slots__ = ("parts",)
    parts: list[dict[Any, str]]  # each column's padded cells, by value

    def __missing__(self, key: tuple[object, ...]) -> str:
        text = self[key] = "".join(map(_getitem, self.parts, key))
        return text


def _join(seqs: list[Any], run: list[tuple[Any, Any, tuple[int, str, int, bool]]], fmt: list[str] | None) -> None:
    """Append to ``seqs`` the cells of ``run``'s columns, joined where they are several and their
    combinations few (at most :data:`_JOIN_MAX` ** 2); to ``fmt`` (if given) a ``%s`` for each."""
    if fmt is not None:
        before = len(seqs)
        _join(seqs, run, None)
        fmt.append("%s" * (len(seqs) - before))
        return
    combos = 1
    for _, cache, _ in run:
        combos *= len(cache.texts)
    if len(run) == 1 or combos > _JOIN_MAX * _JOIN_MAX:
        for values, cache, (_, delim, pad, right) in run:
            seqs.append(map(cache.padded_for(delim, pad, right).__getitem__, values))
        return
    parts = [cache.padded_for(delim, pad, right) for _, cache, (_, delim, pad, right) in run]
    key = (*(cache for _, cache, _ in run[1:]), *(spec for _, _, spec in run))
    memo = run[0][1].joined
    joined = memo.get(key)
    if joined is None or any(map(is_not, joined.parts, parts)):  # (a padded cache made anew)
        if len(memo) > 16:
            memo.clear()
        joined = memo[key] = _Joined()
        joined.parts = parts
    seqs.append(map(joined.__getitem__, zip(*(values for values, _, _ in run))))


_SLICE = 1024  # rows written at a time


def _slices(blocks: list[Any]) -> Iterator[Any]:
    """The blocks (:class:`Columns`, or rows turned column-wise) cut into parts of at most
    :data:`_SLICE` rows, in order."""
    for block in blocks:
        if type(block) is Columns:
            n = block.n
            if n <= _SLICE:
                yield block
                continue
            for lo in range(0, n, _SLICE):
                yield block.rows(lo, min(lo + _SLICE, n))
        else:
            n = len(block[0]) if block else 0
            for lo in range(0, n, _SLICE):
                yield [col[lo : lo + _SLICE] for col in block]


_WIDE = 256  # a Process column this wide or wider (always the last of a row): rows written by render.padded


def _wide_file(out: IO[str], spec: tuple[int, str, int, bool], blocks: list[Any]) -> int | None:
    """The file under ``out`` to write the rows of ``blocks`` to with :mod:`~sockscope.render.padded`
    (their Process column wide and mostly padding), else None."""
    if spec[0] != PROCESS or spec[2] < _WIDE or spec[1]:
        return None
    from sockscope.render.padded import file_for, mostly_padding  # (only then: not at start-up)
    return file_for(out) if mostly_padding(blocks, PROCESS, spec[2]) else None


def _resolve(blocks: list[Columns]) -> None:
    """Fill the caches the blocks' ``pending`` names (owners: waits for them)."""
    for block in blocks:
        if block.pending is not None:
            values, texts_of, make, whole = block.pending
            if whole:  # adopt the owners' dict, no copy; inodes it lacks have no owner
                texts_of.texts = d = make()
            else:
                fill(values, texts_of, make)
                d = texts_of.texts
            block.pending = None
            # the cells themselves from now on: one look-up per row, then measured and padded
            block.cols[PROCESS] = (list(map(d.get, values, repeat(""))), CELLS)


#: rows held at most while owners' texts are coming (``hold``; ~250 MiB)
HOLD_ROWS = 1 << 18

#: (ss's policy) a bound of the bytes held from which ss may hold 5 chunks: 4 chunks' data less
#: what their ends can leave unused (a token that does not fit goes whole to the next chunk)
_SS_MAYBE = (SS_CHUNKS - 1) * (SS_ROOM - (1 << 16))


def _width(values: Any, cache: Any, exact: bool, block: Columns, i: int) -> int:
    """The widest cell of column ``i`` of the :class:`Columns` block ``block`` (``values``, its
    ``cache``): a column cache knows the widest text of every value it has met; ``exact``: of
    ``values`` only.  A column of numbers is measured once (kept in the block's ``widths``)."""
    if cache is None:
        return width(values)
    if cache is CELLS:
        return widest(values)
    if isinstance(cache, Numbers):
        w = block.widths.get(i)
        if w is None:
            w = block.widths[i] = int(cache.width(values))
        return w
    if exact:
        return widest(list(map(cache.texts.__getitem__, set(values))))
    return int(cache.width)


def _bound(rows: Any, fields: list[int]) -> int:
    """At least the bytes of ``rows`` (a :class:`Columns` block or rows of cells) in ss's
    buffer: every field's token as long as the widest of its column (2 bytes of length, the
    text, 1 of padding), and the empty token of ss's last field."""
    if type(rows) is Columns:
        per = 2
        for f in fields:
            values, cache = rows.cols[f]
            # (owners still to come, the Process column's cache not filled yet: a field's most)
            per += (1 << 16 if f == PROCESS and rows.pending is not None else _width(values, cache, False, rows, f)) + 3
        return int(rows.n * per)
    cells = chain.from_iterable(map(itemgetter(*fields), rows)) if len(fields) > 1 else map(itemgetter(*fields), rows)
    return sum(widths(list(cells))) + len(rows) * (3 * len(fields) + 2)

