"""``sockscope top``: live view of sockets (curses), or one plain-text snapshot.

Interactive when stdout is a terminal; with ``--once`` or when stdout is not
a terminal it takes two samples ``-d`` seconds apart (one with ``-d 0``),
prints one snapshot with the rates and opened/closed counts between them,
and exits.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import IO, TYPE_CHECKING

from sockscope.cli._args import OneLineParser
from sockscope.errors import UsageError

if TYPE_CHECKING:
    from sockscope.query import Query
    from sockscope.top.model import View

DESCRIPTION = """\
A live view of sockets: state, queues, receive/send rates (from tcp_info byte
counters between ticks), sockets opened and closed since the last tick, and
per-state totals.  Keys: q quit, p pause, ? help, / filter, < > 1-9 sort,
r reverse, Tab sockets/processes.

FILTER (optional) starts with this filter, as typed after '/': the ss filter
language (state NAME..., exclude NAME..., dport = :22 ...), or plain text.

When stdout is not a terminal, or with --once, prints one snapshot: two
samples -d seconds apart (one sample with -d 0), then exits.

-N NAME shows the sockets of that network namespace (like ss -N);
--all-netns those of every namespace, with a Netns column.  Control
characters in names are escaped (\\x0a).  Usage errors exit 255.
"""

_TABLES = {"t": ("tcp",), "u": ("udp",), "x": ("u_str", "u_dgr", "u_seq")}


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="sockscope top", description=DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--delay", type=float, default=1.0, metavar="SECONDS",
                   help="refresh interval (default 1)")
    p.add_argument("--once", action="store_true", help="print one plain-text snapshot and exit")
    p.add_argument("-t", "--tcp", action="store_true", help="TCP sockets")
    p.add_argument("-u", "--udp", action="store_true", help="UDP sockets")
    p.add_argument("-x", "--unix", action="store_true", help="UNIX sockets")
    p.add_argument("-4", "--ipv4", action="store_true", help="only IPv4 (with -t/-u)")
    p.add_argument("-6", "--ipv6", action="store_true", help="only IPv6 (with -t/-u)")
    p.add_argument("-P", "--processes", action="store_true", help="start in the processes view")
    p.add_argument("-s", "--sort", metavar="COLUMN", help="sort column (header name, e.g. Recv-Q, Local)")
    p.add_argument("-r", "--reverse", action="store_true", help="reverse the sort order")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-N", "--net", metavar="NAME",
                       help="show this network namespace (an ip netns name or a path), like ss -N")
    where.add_argument("--all-netns", action="store_true",
                       help="show every network namespace, with a Netns column")
    p.add_argument("filter", nargs="*", metavar="FILTER", help="initial filter")
    return p


def _query(args: argparse.Namespace) -> "Query":
    """-t/-u/-x pick tables (default TCP and UDP); -4/-6 narrow the IP families."""
    from sockscope.filter.states import EVERY_STATE
    from sockscope.query import Query

    tables: set[str] = set()
    if args.tcp:
        tables.add("tcp")
    if args.udp:
        tables.add("udp")
    if args.unix:
        tables.update(("u_str", "u_dgr", "u_seq"))
    if not tables:
        tables = {"tcp", "udp"}
    families: set[int] = set()
    if tables & {"tcp", "udp"}:
        if args.ipv4 or not args.ipv6:
            families.add(2)
        if args.ipv6 or not args.ipv4:
            families.add(10)
    if "u_str" in tables:
        families.add(1)
    return Query(frozenset(tables), frozenset(families), EVERY_STATE)


#: what -s accepts besides the header names
_SORT_ALIASES = {"rx": ("rx",), "tx": ("tx",), "recvq": ("recv_q",), "sendq": ("send_q",),
                 "proc": ("process", "name"),  # the Process column of the sockets view, of the processes view
                 "new": ("opened",), "gone": ("closed",)}


def _set_sort(view: "View", name: str) -> None:
    want = name.lower()
    for c in view.columns:
        if want in (c.name.lower(), c.key) or c.key in _SORT_ALIASES.get(want.replace("-", ""), ()):
            view.sort = c.key
            return
    names = ", ".join(c.name for c in view.columns)
    raise UsageError(f"top: unknown sort column {name!r} (one of: {names})")


def _negative_delay(argv: list[str]) -> list[str]:
    """``-d -1`` as ``--delay=-1``: argparse takes ``-1`` for an option (this parser has ``-4`` and
    ``-6``) and would say only that -d expects an argument; joined, the value meets the range check
    and its error.  (Not after ``--``: filter words from there on.)"""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return out + argv[i:]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if a in ("-d", "--delay") and nxt[:1] == "-" and nxt[1:2] in tuple("0123456789."):
            out.append("--delay=" + nxt)
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def main(argv: list[str], stdout: IO[str] | None = None) -> int:
    out = stdout if stdout is not None else sys.stdout
    args = _parser().parse_intermixed_args(_negative_delay(argv))
    if not (args.delay >= 0) or args.delay > 3600:
        raise UsageError("top: -d must be between 0 and 3600 seconds")

    from sockscope.top.model import Model, View, compile_filter, every_netns

    query = _query(args)
    view = View(processes=args.processes, show_netid=len(query.tables) > 1, netns=args.all_netns)
    if args.sort:
        _set_sort(view, args.sort)
    view.reverse = args.reverse
    note = ""
    if args.filter:
        text = " ".join(args.filter)
        pred, substring, note = compile_filter(text, tuple(sorted(query.tables)))
        view.filter_text, view.predicate, view.substring = text, pred, substring
    if args.net is not None:
        from sockscope import netns

        netns.enter(args.net)
    dump = None
    if args.all_netns:
        from sockscope.top.dump import dump as one_netns

        dump = every_netns(one_netns)
    model = Model(query, dump=dump)

    interactive = not args.once and out is sys.stdout and out.isatty()
    if not interactive:
        from sockscope.render.endpoint import tolerant
        from sockscope.top.text import snapshot

        if out is sys.stdout:
            tolerant(out)
        sample = model.sample()
        if args.delay > 0:
            time.sleep(args.delay)
            sample = model.sample()
        out.write(snapshot(sample, view, interval=args.delay))
        for w in [*sample.warnings, *([note] if note else [])]:
            print(f"sockscope: {w}", file=sys.stderr)
        if not sample.owners_complete:
            from sockscope.processes import unreadable_hint

            hint = unreadable_hint(sample.owners_why)
            print(f"sockscope: some processes' file descriptors could not be read ({hint}): "
                  "their sockets show no process", file=sys.stderr)
        return 0

    if args.delay < 0.1:
        raise UsageError("top: the interactive view needs -d of at least 0.1 seconds")
    from sockscope.top import view as screen

    return screen.run(model, view, args.delay)


__all__ = ["main"]
