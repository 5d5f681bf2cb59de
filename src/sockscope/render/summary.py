"""``ss -s``'s output from its counters by name (:func:`sockscope.kernel.sockstat.summary_counts`,
or :meth:`sockscope.summary.Summary.counts`): ss's text, ``--json`` and ``--csv``.  Nothing here
needs the records' modules: ``sockscope -s`` loads neither ``dataclasses`` nor ``json`` for its text."""

from __future__ import annotations

from sockscope.kernel.sockstat import summary_totals

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import IO, Mapping, Sequence


def as_dict(counts: Mapping[str, int]) -> dict[str, int]:
    """The counters, then ss's derived ``tcp_total`` and ``tcp_closed``."""
    return {**counts, **summary_totals(counts)}


def text(counts: Mapping[str, int]) -> str:
    """Exactly ss's layout (a blank line after it)."""
    c, totals = counts, summary_totals(counts)
    rows = [
        ("RAW", c["raw4"], c["raw6"]),
        ("UDP", c["udp4"], c["udp6"]),
        ("TCP", c["tcp_inuse4"], c["tcp_inuse6"]),
        ("INET", c["raw4"] + c["udp4"] + c["tcp_inuse4"], c["raw6"] + c["udp6"] + c["tcp_inuse6"]),
        ("FRAG", c["frag4"], c["frag6"]),
    ]
    lines = [
        f"Total: {c['sockets_used']}",
        f"TCP:   {totals['tcp_total']} (estab {c['tcp_estab']}, closed {totals['tcp_closed']}, "
        f"orphaned {c['tcp_orphan']}, timewait {c['tcp_timewait']})",
        "",
        "Transport Total     IP        IPv6",
    ]
    lines += [f"{n}\t  {a + b:<9d} {a:<9d} {b:<9d}" for n, a, b in rows]
    return "\n".join(lines) + "\n\n"


def write(counts: Sequence[tuple[str | None, Mapping[str, int]]], fmt: str, out: IO[str]) -> None:
    """``-s --json``: one JSON object, or with ``--all-netns`` (labels given) an array of them, each
    with its ``netns`` first; ``-s --csv``: a header row and a row per namespace (``netns`` the
    first column with ``--all-netns``).  Every value is a number (or the label)."""
    rows = [({"netns": label} if label is not None else {}) | as_dict(count) for label, count in counts]
    if fmt == "json":
        import json

        docs = [json.dumps(d, separators=(",", ":")) for d in rows]
        out.write(docs[0] + "\n" if counts[0][0] is None else "[\n" + ",\n".join(docs) + "\n]\n")
    else:
        import csv

        w = csv.writer(out, lineterminator="\n")
        w.writerow(rows[0])
        w.writerows(d.values() for d in rows)
