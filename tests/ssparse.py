"""Parse ss-style table output into rows of fields (for ss and sockscope alike).

Column widths are ignored; values are not.  The header tells which columns are
present (``Netid`` and ``State`` come and go; ``Process`` is always printed by
ss 6.1).  Rows are whitespace-split, which is exact as long as no field holds
a blank (the test population uses no blanks in paths or process names):

* inet ``addr:port`` is split on the LAST colon (``[::1]:80``,
  ``127.0.0.1%lo:9999``, ``*:*``);
* UNIX rows print ``path inode`` and ``* peer-inode``: two words per column;
* netlink peers print a bare ``*`` (port "");
* the process cell is the rest of the line, kept as one string.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: ss's column names in order; a header is some of these, in this order.
COLUMNS = ("Netid", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process")
_HEADER_TOKEN = re.compile(
    r"\s*(Netid|State|Recv-Q|Send-Q|Local\s+Address:\s*Port|Peer\s+Address:\s*Port|Process)"
)
UNIX_NETIDS = frozenset({"u_str", "u_dgr", "u_seq"})


class ParseError(ValueError):
    pass


class Row(NamedTuple):
    """One socket row; a column absent from the table is None."""

    netid: str | None
    state: str | None
    recv_q: str
    send_q: str
    local_addr: str
    local_port: str
    peer_addr: str
    peer_port: str
    process: str


class Table(NamedTuple):
    columns: tuple[str, ...]
    rows: list[Row]
    has_header: bool


def parse_header(line: str) -> tuple[str, ...]:
    """The column names of a header line, normalised (``Local Address:Port``)."""
    cols: list[str] = []
    pos = 0
    line = line.rstrip()
    while pos < len(line):
        m = _HEADER_TOKEN.match(line, pos)
        if not m:
            raise ParseError(f"not an ss header at {line[pos:]!r}: {line!r}")
        cols.append(re.sub(r"\s+", " ", m.group(1)).replace(": ", ":"))
        pos = m.end()
    order = [COLUMNS.index(c) for c in cols]
    if order != sorted(order) or len(set(order)) != len(order):
        raise ParseError(f"header columns out of order: {cols}")
    for needed in ("Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port"):
        if needed not in cols:
            raise ParseError(f"header lacks {needed!r}: {line!r}")
    return tuple(cols)


def looks_like_header(line: str) -> bool:
    try:
        parse_header(line)
    except ParseError:
        return False
    return True


def _split_addr(word: str) -> tuple[str, str]:
    if ":" not in word:
        return word, ""
    addr, port = word.rsplit(":", 1)
    return addr, port


def parse_row(line: str, columns: tuple[str, ...]) -> Row:
    words = line.split()
    i = 0
    netid = state = None
    try:
        if "Netid" in columns:
            netid = words[i]
            i += 1
        if "State" in columns:
            state = words[i]
            i += 1
        recv_q, send_q = words[i], words[i + 1]
        i += 2
        unix = netid in UNIX_NETIDS or (
            netid is None
            and len(words) >= i + 4
            and words[i + 1].isdigit()
            and words[i + 2] == "*"
            and words[i + 3].isdigit()
        )
        if unix:
            if len(words) < i + 4:
                raise IndexError
            local_addr, local_port, peer_addr, peer_port = words[i:i + 4]
            i += 4
        else:
            local_addr, local_port = _split_addr(words[i])
            peer_addr, peer_port = _split_addr(words[i + 1])
            i += 2
    except IndexError:
        raise ParseError(f"short row for columns {columns}: {line!r}") from None
    if not (recv_q.lstrip("-").isdigit() and send_q.lstrip("-").isdigit()):
        raise ParseError(f"queues are not numbers in {line!r}")
    process = " ".join(words[i:])
    if process and "Process" not in columns:
        raise ParseError(f"extra words but no Process column: {line!r}")
    return Row(netid, state, recv_q, send_q, local_addr, local_port, peer_addr, peer_port, process)


def parse(text: str, *, columns: tuple[str, ...] | None = None) -> Table:
    """Parse a whole output.  Without ``columns`` the first line must be the header;
    with ``columns`` (for ``-H`` output) no line may look like a header."""
    lines = [line for line in text.splitlines() if line.strip()]
    has_header = columns is None
    if columns is None:
        if not lines:
            raise ParseError("empty output: no header")
        columns = parse_header(lines[0])
        lines = lines[1:]
    rows = []
    for line in lines:
        if looks_like_header(line):
            raise ParseError(f"unexpected header line among rows: {line!r}")
        rows.append(parse_row(line, columns))
    return Table(columns, rows, has_header)


def format_row(row: Row) -> str:
    """A row as one readable line for diffs (| between fields)."""
    return " | ".join("-" if f is None else f for f in row)


#: ss prints a process's name as it is (a quote in it too): the name ends at the first '",pid=N,fd=N)'
USERS_RE = re.compile(r'\("(.*?)",pid=(\d+),fd=(\d+)\)')


def parse_users(process: str) -> list[tuple[str, int, int]]:
    """``users:(("a",pid=1,fd=3),…)`` -> [("a", 1, 3), …] in printed order."""
    if not process.startswith("users:(("):
        return []
    return [(m.group(1), int(m.group(2)), int(m.group(3))) for m in USERS_RE.finditer(process)]
