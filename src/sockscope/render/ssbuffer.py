"""Where ss lays out its table: the rows of one layout (the widths of their columns) are those
ss holds in its output buffer when it writes them.

ss (misc/ss.c, iproute2 6.1) writes each shown field of a row into its buffer as a token: a
16-bit length, then the text, the next token starting at an even offset.  The buffer is a chain
of 1 MiB chunks (less the chunk's two pointers); a token that does not fit what is left of a
chunk goes whole into a new one, and so does the next token when not even its length fits.  At
the end of a row (before the row's last field, the unnamed one, is flushed) ss looks at how many
chunks it holds: from 5 on, it lays out and writes everything it holds, frees the buffer and
starts again with the next row.  At the end of the listing it writes what is left.  So a table
of up to some 50,000 rows is laid out at once, with the widths of all its rows, and a longer
one in parts of about 4 MiB of tokens.

:func:`account` follows that buffer over rows given column by column and says at which row ss
writes; :class:`~sockscope.render.writer.TableWriter` calls it only once the rows it holds could
fill 4 chunks (its bound: every row as wide as its widest cells), so smaller tables never pay
for it.  Loaded only then.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate, repeat
from _operator import add

from sockscope.render.table import CELLS, SS_CHUNKS as CHUNKS, SS_ROOM as ROOM, Columns, Numbers
from sockscope.render.width import width, widths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

# ROOM, CHUNKS: a chunk's data, and the chunks held from which ss writes at a row's end (render.table)


class _SizeOfLength(dict[int, int]):
    """A text's length -> its token's bytes: 2 of length, the text, 1 of padding if it is odd."""

    def __missing__(self, length: int) -> int:
        size = self[length] = 2 + ((length + 1) & ~1)
        return size


SIZE = _SizeOfLength()
#: a port's (or any number below 65,536) token bytes, by the number: 1–2 digits (and ``*``) 4,
#: 3–4 digits 6, 5 digits 8
_SMALL_NUMBER_SIZE = bytes([4]) * 100 + bytes([6]) * 9_900 + bytes([8]) * (65_536 - 10_000)


class Sizes:
    """The token bytes of a column cache's texts, by value (made as the cache grows), and the
    least and the most of them."""

    __slots__ = ("by_value", "upto", "low", "high")

    def __init__(self) -> None:
        self.by_value: dict[Any, int] = {}
        self.upto = 0
        self.low, self.high = 1 << 20, 0

    def of(self, texts: dict[Any, str]) -> dict[Any, int]:
        if self.upto < len(texts):
            new = list(texts.items())[self.upto :]
            sizes = list(map(SIZE.__getitem__, widths([t for _, t in new])))
            self.by_value.update(zip([k for k, _ in new], sizes))
            self.low, self.high = min(self.low, min(sizes)), max(self.high, max(sizes))
            self.upto = len(texts)
        return self.by_value


def _sizes_of(cache: Any, memo: dict[int, Sizes]) -> Sizes:
    sizes = memo.get(id(cache.texts))  # (a cache's dict only grows, or is another)
    if sizes is None:
        sizes = memo[id(cache.texts)] = Sizes()
    sizes.of(cache.texts)
    return sizes


def _column_sizes(block: Any, f: int, memo: dict[int, Sizes]) -> int | list[int]:
    """The token bytes of field ``f`` of each row of ``block`` (a
    :class:`~sockscope.render.table.Columns` block with nothing pending, or rows of cells): one
    int where every row's is the same, else a list."""
    if type(block) is not Columns:
        return list(map(SIZE.__getitem__, widths([row[f] for row in block])))
    values, cache = block.cols[f]
    if cache is None:
        return SIZE[width(values)]
    if cache is CELLS:
        return list(map(SIZE.__getitem__, widths(values)))
    if isinstance(cache, Numbers):
        return _number_sizes(values, cache)
    sizes = _sizes_of(cache, memo)
    if sizes.low == sizes.high:  # (every text of the column as long: the queues, often more)
        return sizes.low
    return list(map(sizes.by_value.__getitem__, values))


def _number_sizes(values: list[int], kind: Numbers) -> int | list[int]:
    """:func:`_column_sizes` of a column of numbers (0 written as ``kind.zero``)."""
    zero = kind.zero
    if kind.named(values):  # (a port's service name)
        return list(map(SIZE.__getitem__, map(len, kind.texts(values))))
    top = max(values, default=0)
    low = min(filter(None, values), default=top)
    size = SIZE[len(str(top))]
    if SIZE[len(str(low))] == size:  # (inodes: their digits alike) one size, and 0's
        zeros = SIZE[len(zero)]
        if zeros == size or 0 not in values:
            return size
        return list(map({0: zeros}.get, values, repeat(size)))
    if top < len(_SMALL_NUMBER_SIZE) and len(zero) == 1:  # (ports)
        return list(map(_SMALL_NUMBER_SIZE.__getitem__, values))
    return list(map(SIZE.__getitem__, map(len, map(str, values))))  # (0's text is "0" or as long)


#: rows followed at a time: a part's bytes are summed, and only a part in which ss starts a
#: chunk (or writes) is followed row by row
PART = 2048


def follow(block: Any, start: int, n: int, fields: list[int], memo: dict[int, Sizes], state: list[int]
           ) -> int | None:
    """Follow ss's buffer (``state``, as :func:`account`) over rows ``start`` to ``n`` of
    ``block``: the row (of the block) at whose end ss writes what it holds, or None.  ``memo``:
    the column caches' :class:`Sizes`, by ``id`` of their texts."""
    for lo in range(start, n, PART):
        hi = min(lo + PART, n)
        part = rows_of(block, lo, hi)
        if not state[0]:
            state[0], state[1] = 1, 0
        # each field's token bytes (one int where every row's are alike), then the empty token of
        # ss's last field: summed, and only where ss starts a chunk among them, row by row
        fixed, more = 2, []
        for f in fields:
            col = _column_sizes(part, f, memo)
            if isinstance(col, int):
                fixed += col
            else:
                more.append(col)
        if state[0] < CHUNKS:
            total = fixed * (hi - lo) + sum(map(sum, more))
            if state[1] + total <= ROOM - 2:  # (every token of theirs ends before the chunk's end)
                state[1] += total
                continue
        sizes = [fixed] * (hi - lo)
        for c in more:
            sizes = list(map(add, sizes, c))

        def tokens(i: int, part: Any = part) -> list[int]:
            return token_lengths(part, fields, i)

        at = account(sizes, tokens, state)
        if at is not None:
            return lo + at
    return None


def rows_of(block: Any, lo: int, hi: int) -> Any:
    """Rows ``lo`` to ``hi`` of a :class:`~sockscope.render.table.Columns` block or of rows of cells."""
    return block.rows(lo, hi) if type(block) is Columns else block[lo:hi]


def token_lengths(block: Any, fields: list[int], i: int) -> list[int]:
    """The text lengths of row ``i``'s fields, in order, and 0 for ss's last field."""
    if type(block) is not Columns:
        return [width(block[i][f]) for f in fields] + [0]
    out = []
    for f in fields:
        values, cache = block.cols[f]
        if cache is None:
            out.append(width(values))
        elif cache is CELLS:
            out.append(width(values[i]))
        elif isinstance(cache, Numbers):
            out.append(cache.length(values[i]))
        else:
            out.append(width(cache.texts[values[i]]))
    return out + [0]


def account(sizes: list[int], tokens: Callable[[int], list[int]], state: list[int]) -> int | None:
    """Follow ss's buffer over rows (``sizes``: each row's bytes, as :func:`follow` sums them; ``tokens``:
    row i's text lengths, :func:`token_lengths`) from ``state`` ([chunks held, offset of the next
    token in the last one]), which it updates.  The row at whose end ss writes what it holds
    (the state is then that of the rows after it: nothing held), or None when it holds them all."""
    m = len(sizes)
    ends = list(accumulate(sizes))
    i, base = 0, 0  # the next row, and the bytes of the rows before it
    while i < m:
        if not state[0]:  # the row's first token takes a new buffer's first chunk
            state[0], state[1] = 1, 0
        if state[0] >= CHUNKS:  # (held since the last row's end: ss writes at this row's end)
            state[0], state[1] = 0, 0
            return i
        # the rows whose every token ends at least a length's room before the chunk's end go
        # in as they are (no token of theirs starts a new chunk)
        j = bisect_right(ends, base + ROOM - 2 - state[1], i)
        if j > i:
            state[1] += ends[j - 1] - base
            base = ends[j - 1]
            i = j
            continue
        # row i crosses into another chunk: its tokens one by one
        lengths = tokens(i)
        for k, L in enumerate(lengths):
            if k == len(lengths) - 1 and state[0] >= CHUNKS:  # at the row's end, before its last field
                state[0], state[1] = 0, 0
                return i
            off = state[1]
            if L and not off + 2 + L < ROOM and off:  # (vout: the token goes whole to a new chunk)
                state[0] += 1
                off = 0
            pad = L & 1
            if ROOM - (off + 2 + L) - pad < 2:  # (field_flush: not even the next length fits)
                state[0] += 1
                state[1] = 0
            else:
                state[1] = off + 2 + L + pad
        base = ends[i]
        i += 1
    return None
