"""Machine-readable output: ``--json`` (one JSON array) and ``--csv``.

The fields are those of :meth:`sockscope.records.Socket.to_dict`; ``owners``
is a list of {pid, fd, name} in JSON and ``pid/fd/name;…`` text in CSV.  CSV
keeps the flat fields only (the nested ``tcp_info``, ``skmem``, ``bbr_info``
and ``dctcp_info`` are in the JSON).
"""

from __future__ import annotations

import csv
import json

from sockscope.records import Socket

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import IO, Iterable

FIELDS = (
    "netid", "family", "state", "recv_q", "send_q", "local_address", "local_port",
    "peer_address", "peer_port", "inode", "uid", "cookie", "ifindex", "peer_inode",
    "v6only", "shutdown", "owners", "netns", "protocol", "timer", "expires", "retrans", "mark",
    "cgroup_id", "cong",
)


def write_json(socks: Iterable[Socket], out: IO[str]) -> None:
    """A JSON array, one record per line, streamed."""
    out.write("[")
    first = True
    for s in socks:
        out.write("\n" if first else ",\n")
        out.write(json.dumps(s.to_dict(), separators=(",", ":")))
        first = False
    out.write("\n]\n" if not first else "]\n")


def write_csv(socks: Iterable[Socket], out: IO[str]) -> None:
    """CSV with a header row."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(FIELDS)
    for s in socks:
        d = s.to_dict()
        d["owners"] = ";".join(f"{o['pid']}/{o['fd']}/{o['name']}" for o in d["owners"])
        w.writerow(["" if d[k] is None else d[k] for k in FIELDS])
