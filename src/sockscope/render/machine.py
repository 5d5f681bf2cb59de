"""Machine-readable output: ``--json`` (one JSON array, or one object per line
as sockets come: NDJSON) and ``--csv``; and the ``-s`` summary in both.

The fields are those of :meth:`sockscope.records.Socket.to_dict`; ``owners``
is a list of {pid, fd, name, tid} in JSON and ``pid/fd/name;…`` text in CSV (a name's "%", "/"
and ";" percent-encoded).
CSV keeps the flat fields only (the nested ``tcp_info``, ``skmem``,
``bbr_info`` and ``dctcp_info`` are in the JSON) and writes booleans as JSON
does (``true``/``false``), absent values as empty cells.
"""

from __future__ import annotations

import csv
import json

from sockscope.records import Socket

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import IO, Any, Iterable

    from sockscope.summary import Summary

FIELDS = (
    "netid", "family", "state", "recv_q", "send_q", "local_address", "local_port",
    "peer_address", "peer_port", "inode", "uid", "cookie", "ifindex", "peer_inode",
    "v6only", "shutdown", "owners", "netns", "protocol", "timer", "expires", "retrans", "mark",
    "cgroup_id", "cong",
)


def _line(s: Socket) -> str:
    return json.dumps(s.to_dict(), separators=(",", ":"))


def write_json(socks: Iterable[Socket], out: IO[str]) -> None:
    """A JSON array, one record per line, streamed."""
    out.write("[")
    first = True
    for s in socks:
        out.write("\n" if first else ",\n")
        out.write(_line(s))
        first = False
    out.write("\n]\n" if not first else "]\n")


def write_ndjson(socks: Iterable[Socket], out: IO[str]) -> None:
    """One JSON object per line, each flushed as it comes (``-E --json``)."""
    for s in socks:
        out.write(_line(s) + "\n")
        out.flush()


def _cell(value: Any) -> Any:
    """A CSV cell as JSON spells it: ``true``/``false``, and nothing for null."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return value


def write_csv(socks: Iterable[Socket], out: IO[str], flush: bool = False) -> None:
    """CSV with a header row; with ``flush``, each row is flushed as it comes (``-E --csv``)."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(FIELDS)
    if flush:
        out.flush()
    for s in socks:
        d = s.to_dict()
        d["owners"] = ";".join(f"{o['pid']}/{o['fd']}/{_owner_name(o['name'])}" for o in d["owners"])
        w.writerow([_cell(d[k]) for k in FIELDS])
        if flush:
            out.flush()


def _owner_name(name: str) -> str:
    """A process name in CSV's ``pid/fd/name;…`` with its "%", "/" and ";" as ``%25``, ``%2F``,
    ``%3B``: any process may name itself ``x;1/3/sshd``, which would read as a second owner."""
    if "%" in name or "/" in name or ";" in name:
        return name.replace("%", "%25").replace("/", "%2F").replace(";", "%3B")
    return name


def write_summary(counts: list[tuple[str | None, Summary]], fmt: str, out: IO[str]) -> None:
    """``-s --json``: one JSON object, or with ``--all-netns`` (labels given) an
    array of them, each with its ``netns`` first; ``-s --csv``: a header row and
    a row per namespace (``netns`` the first column with ``--all-netns``)."""
    rows = [({"netns": label} if label is not None else {}) | count.to_dict() for label, count in counts]
    if fmt == "json":
        text = [json.dumps(d, separators=(",", ":")) for d in rows]
        out.write(text[0] + "\n" if counts[0][0] is None else "[\n" + ",\n".join(text) + "\n]\n")
    else:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(rows[0])
        w.writerows([_cell(v) for v in d.values()] for d in rows)
