"""Machine-readable output: ``--json`` (one JSON array, or one object per line
as sockets come: NDJSON) and ``--csv`` (``-s``'s counters: :mod:`sockscope.render.summary`).

The fields are those of :meth:`sockscope.records.Socket.to_dict`; ``owners``
is a list of {pid, fd, name, tid} in JSON and ``pid/fd/name;…`` text in CSV (a name's "%", "/"
and ";" percent-encoded).
CSV keeps the flat fields only (the nested ``tcp_info``, ``skmem``,
``bbr_info`` and ``dctcp_info`` are in the JSON) and writes booleans as JSON
does (``true``/``false``), absent values as empty cells.

A listing's records are written a block at a time, column by column (:func:`_json_block`,
:func:`_csv_block`): each field's column is looked at once, by its values' types, and turned
into cells by C-level maps; one ``%`` format of the block's rows then writes the JSON
(``json.dumps`` of each record's ``to_dict`` took ~15 µs a TCP socket with tcp_info, ten
times the table's whole row).  The text is exactly ``json.dumps(s.to_dict())``'s
(tests/test_machine_columns.py holds them to that); ``-E``'s rows, one at a time, are
written by :func:`_line` and :func:`_csv_row`, which say what the fields are.
"""

from __future__ import annotations

import csv
import json
from itertools import chain, islice, repeat
from _operator import add, attrgetter, getitem, itemgetter

from sockscope._addr import Texts
from sockscope.records import FAMILY_NAMES, NESTED_JSON, SkMem, Socket

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import IO, Any, Callable, Iterable, Iterator

FIELDS = (
    "netid", "family", "state", "recv_q", "send_q", "local_address", "local_port",
    "peer_address", "peer_port", "inode", "uid", "cookie", "ifindex", "peer_inode",
    "v6only", "shutdown", "owners", "netns", "protocol", "timer", "expires", "retrans", "mark",
    "cgroup_id", "cong",
)


_dumps = json.JSONEncoder(separators=(",", ":")).encode  # (json.dumps' defaults, these separators)
BLOCK = 1024  # records written at a time: the output streams, a block's columns and text stay small


def _line(s: Socket) -> str:
    return _dumps(s.to_dict())


def write_json(socks: Iterable[Socket], out: IO[str]) -> None:
    """A JSON array, one record per line, streamed a block of records at a time."""
    lead = "[\n"
    for block in _blocks(socks):
        out.write(lead + _json_block(block))
        lead = ",\n"
    out.write("\n]\n" if lead != "[\n" else "[]\n")


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


def _csv_row(s: Socket) -> list[Any]:
    d = s.to_dict()
    d["owners"] = _owners_text(s.owners)
    return [_cell(d[k]) for k in FIELDS]


def _owners_text(owners: Any) -> str:
    return ";".join(f"{o.pid}/{o.fd}/{_owner_name(o.name)}" for o in owners)


def write_csv(socks: Iterable[Socket], out: IO[str], flush: bool = False) -> None:
    """CSV with a header row; with ``flush``, each row is flushed as it comes (``-E --csv``), else
    written a block of records at a time."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(FIELDS)
    if flush:
        out.flush()
        for s in socks:
            w.writerow(_csv_row(s))
            out.flush()
        return
    for block in _blocks(socks):
        w.writerows(_csv_block(block))


def _blocks(socks: Iterable[Socket]) -> Iterator[list[Socket]]:
    it = iter(socks)
    while block := list(islice(it, BLOCK)):
        yield block


# --- column by column -----------------------------------------------------------------------------

#: the record's fields to_dict reads, in its order (``local`` and ``peer`` are two keys each)
_READ = ("netid", "family", "state", "recv_q", "send_q", "local", "peer", "inode", "uid", "cookie", "ifindex",
         "peer_inode", "v6only", "shutdown", "owners", "netns", "protocol", "timer", "expires", "retrans", "mark",
         "cgroup_id", "cong", "tcp_info", "skmem", "bbr_info", "dctcp_info", "mptcp_info", "md5keys", "ulp",
         "packet_rings")
_ROW = attrgetter(*_READ)
_NONE = type(None)


_STR = Texts(json.encoder.encode_basestring_ascii, {None: "null"})  # (what json.dumps writes of a str)
_FAMILY = Texts(lambda f: FAMILY_NAMES.get(f, str(f)))
_STATE = Texts(attrgetter("ss_name"))
_BOOL = {None: "null", True: "true", False: "false"}


def _column(col: list[Any]) -> tuple[str, list[Any] | None]:
    """A field's JSON cells: (the ``%`` format of one, the values it takes; None: the format is the
    text of every row's value).  By the types of the column's values, looked at once: ints as
    themselves (``%d`` writes what json.dumps does), strings and bools by a table of their texts,
    anything else by ``json.dumps`` each."""
    kinds = set(map(type, col))
    if kinds == {int}:
        return "%d", col
    if kinds == {_NONE}:
        return "null", None
    if kinds <= {str, _NONE}:
        return "%s", list(map(_STR.__getitem__, col))
    if kinds <= {bool, _NONE}:
        return "%s", list(map(_BOOL.__getitem__, col))
    if kinds <= {int, _NONE}:
        return "%s", ["null" if v is None else "%d" % v for v in col]
    return "%s", list(map(_dumps, col))


def _nested(col: list[Any], text: Callable[[list[Any]], list[str]]) -> list[str]:
    """The JSON text of each value of a nested field's column: ``text(values)`` of the rows that
    have one (a list of texts), "null" for the others."""
    have = [i for i, v in enumerate(col) if v is not None]
    if len(have) == len(col):
        return text(col)
    out = ["null"] * len(col)
    for i, t in zip(have, text([col[i] for i in have])):
        out[i] = t
    return out


def _tuples(names: tuple[str, ...]) -> Any:
    """The texts of named tuples of ``names`` (JSON objects: ``as_list`` lists) whose values are
    all ints (as the decoders make them), one ``%`` format each; any other by json.dumps."""
    obj = "{" + ",".join(f'"{name}":%d' for name in names) + "}"

    def text(rows: list[Any]) -> list[str]:
        if set(map(type, chain.from_iterable(rows))) == {int}:
            return list(map(obj.__mod__, rows))
        return [_dumps(dict(zip(names, r))) for r in rows]  # (json.dumps' str)

    return text


def _lists(rows: list[Any]) -> list[str]:
    """Tuples of ints as JSON lists (to_dict's ``list(…)``), one ``%`` format each where they are
    all of one length; any other by json.dumps."""
    if set(map(type, rows)) == {tuple} and set(map(type, chain.from_iterable(rows))) == {int}:
        sizes = set(map(len, rows))
        if len(sizes) == 1:
            return list(map(("[" + ",".join(["%d"] * sizes.pop()) + "]").__mod__, rows))
    return [_dumps(list(r)) for r in rows]


def _tcp_info(rows: list[Any]) -> list[str]:
    """TcpInfo texts (its to_dict): one ``%`` format a row, its ints by ``%d``, its one bool (as
    ``tcpinfo.from_fields`` makes it) by its true/false spliced in by C-level maps; rows of any
    other values by json.dumps."""
    from sockscope.kernel.tcpinfo import TcpInfo

    names = TcpInfo._fields
    at = names.index("delivery_rate_app_limited")
    flags = list(map(itemgetter(at), rows))
    kinds = list(map(type, chain.from_iterable(rows)))
    if set(map(type, flags)) != {bool} or kinds.count(int) + len(rows) != len(kinds):  # (a bool at `at`, ints
        return [_dumps(r.to_dict()) for r in rows]  # everywhere else)
    fmt = "{" + ",".join(f'"{name}":' + ("%s" if i == at else "%d") for i, name in enumerate(names)) + "}"
    heads = map(getitem, rows, repeat(slice(0, at)))
    tails = map(getitem, rows, repeat(slice(at + 1, None)))
    return list(map(fmt.__mod__, map(add, map(add, heads, zip(map(_BOOL.__getitem__, flags))), tails)))


def _owners(col: list[Any]) -> list[str]:
    """Each row's owners as to_dict's list of dicts: "[]" for none (the usual case without -p)."""
    return [_dumps([o._asdict() for o in owners]) if owners else "[]" for owners in col]


def _json_fields(block: list[Socket]) -> list[tuple[str, tuple[str, list[Any] | None]]]:
    """Each JSON key of the block's records, in to_dict's order, with its cells (see :func:`_column`)."""
    (netid, family, state, rq, sq, local, peer, inode, uid, cookie, ifindex, peer_inode, v6only, shutdown,
     owners, netns, protocol, timer, expires, retrans, mark, cgroup_id, cong, tcp_info, skmem, bbr, dctcp,
     *rare) = map(list, zip(*map(_ROW, block)))
    la, lp = map(list, zip(*local))
    pa, pp = map(list, zip(*peer))
    fields: list[tuple[str, tuple[str, list[Any] | None]]] = [
        ("netid", _column(netid)),
        ("family", ("%s", list(map(_STR.__getitem__, map(_FAMILY.__getitem__, family))))),
        ("state", ("%s", list(map(_STR.__getitem__, map(_STATE.__getitem__, state))))),
    ]
    flat: tuple[tuple[str, list[Any]], ...] = (
        ("recv_q", rq), ("send_q", sq), ("local_address", la), ("local_port", lp), ("peer_address", pa),
        ("peer_port", pp), ("inode", inode), ("uid", uid), ("cookie", cookie), ("ifindex", ifindex),
        ("peer_inode", peer_inode), ("v6only", v6only), ("shutdown", shutdown))
    fields += [(key, _column(col)) for key, col in flat]
    fields.append(("owners", ("%s", _owners(owners))))
    flat = (("netns", netns), ("protocol", protocol), ("timer", timer), ("expires", expires),
            ("retrans", retrans), ("mark", mark), ("cgroup_id", cgroup_id), ("cong", cong))
    fields += [(key, _column(col)) for key, col in flat]
    nested: tuple[tuple[str, list[Any], Any], ...] = (
        ("tcp_info", tcp_info, _tcp_info), ("skmem", skmem, _tuples(SkMem._fields)), ("bbr_info", bbr, _lists),
        ("dctcp_info", dctcp, _lists))
    nested += tuple((key, col, _dumped(NESTED_JSON[key])) for key, col in zip(_READ[-4:], rare))
    for key, col, text in nested:
        fields.append((key, ("null", None) if col.count(None) == len(col) else ("%s", _nested(col, text))))
    return fields


def _dumped(make: Any) -> Any:
    return lambda rows: [_dumps(make(v)) for v in rows]


def _json_block(block: list[Socket]) -> str:
    """The block's records as JSON objects, one a line (joined by ",\n"): each row one ``%`` format (the
    keys written into it once), of its cells (a tuple of them: ``zip``'s)."""
    fmt: list[str] = []
    cells: list[list[Any]] = []
    for key, (spec, col) in _json_fields(block):
        fmt.append(f'"{key}":' + (spec if col is not None else spec.replace("%", "%%")))
        if col is not None:
            cells.append(col)
    row = "{" + ",".join(fmt) + "},\n"
    return "".join(map(row.__mod__, zip(*cells)))[:-2]


def _csv_block(block: list[Socket]) -> Iterator[tuple[Any, ...]]:
    """The block's CSV rows (:data:`FIELDS`), made column by column: flat fields as to_dict has them,
    booleans and None as :func:`_cell` writes them, owners as their text."""
    (netid, family, state, rq, sq, local, peer, inode, uid, cookie, ifindex, peer_inode, v6only, shutdown,
     owners, netns, protocol, timer, expires, retrans, mark, cgroup_id, cong, *_nested_cols) = zip(*map(_ROW, block))
    la, lp = zip(*local)
    pa, pp = zip(*peer)
    cols = [netid, list(map(_FAMILY.__getitem__, family)), list(map(_STATE.__getitem__, state)), rq, sq, la, lp,
            pa, pp, inode, uid, cookie, ifindex, peer_inode, v6only, shutdown,
            [_owners_text(o) if o else "" for o in owners], netns, protocol, timer, expires, retrans, mark,
            cgroup_id, cong]
    cells = [col if set(map(type, col)) <= {int, str} else list(map(_cell, col)) for col in cols]
    return zip(*cells)


def _owner_name(name: str) -> str:
    """A process name in CSV's ``pid/fd/name;…`` with its "%", "/" and ";" as ``%25``, ``%2F``,
    ``%3B``: any process may name itself ``x;1/3/sshd``, which would read as a second owner."""
    if "%" in name or "/" in name or ";" in name:
        return name.replace("%", "%25").replace("/", "%2F").replace(";", "%3B")
    return name
