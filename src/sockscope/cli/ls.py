"""``sockscope [options] [state …] [filter]``: list sockets, like ss.

Options follow ss(8) (GNU getopt: bundled short flags, options anywhere).
This module turns them into a :class:`~sockscope.query.Query` plus table
options, exactly as ss's ``main`` does (tables, families, the state set and
its defaults), then streams the rows.
"""

from __future__ import annotations

import sys

from sockscope._addr import AF_TIPC, AF_VSOCK, AF_XDP
from sockscope.cli.options import (AF_DEFAULTS, DB_FAMILIES, DB_NAMES, DB_STATES, FAMILY_NAMES, LISTENING, SHORT_AF,
                                   SHORT_DB)
from sockscope.errors import UsageError
from sockscope.filter.states import SS_ALL, SS_CONN

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import IO, Any, Callable, Iterable, Iterator

    from sockscope.processes import BackgroundOwners, OwnerMap
    from sockscope.query import Query
    from sockscope.records import Socket
    from sockscope.render.table import CellMaker, Columns, TableOptions
    from sockscope.render.users import UsersText

# the options themselves (names, arguments, what they switch on, help) are one table, and the tables and
# families they select are beside it: cli/options.py

#: the tables whose listing with -r (and not -n) asks rpcbind for its port names first, as ss's does
_RPC_TABLES = frozenset(("tcp", "mptcp", "udp", "dccp", "sctp", "u_str", "u_dgr", "u_seq"))


class _Selection:
    """ss's ``struct filter`` while options are read."""

    def __init__(self) -> None:
        self.dbs: set[str] = set()
        self.families: set[int] = set()
        self.states = 0
        self.preferred = 0
        self.do_default = True
        self.explicit: set[str] = set()

    def db_set(self, db: str, enable: bool = True) -> None:
        if enable:
            self.states |= DB_STATES[db]
            self.dbs.add(db)
        else:
            self.dbs.discard(db)
        self.do_default = False

    def af_set(self, af: int) -> None:
        self.states |= AF_DEFAULTS[af][1]
        self.families.add(af)
        self.do_default = False
        self.preferred = af

    def db_parse(self, name: str) -> None:
        enable = not name.startswith("!")
        key = name[1:] if not enable else name
        dbs = DB_NAMES.get(key)
        if dbs is None:
            raise UsageError(f'"{name}" is illegal socket table id')
        for db in dbs:
            self.db_set(db, enable)

    def merge_defaults(self) -> None:
        for db in list(self.dbs):
            if not (DB_FAMILIES[db] & self.families):
                self.families |= DB_FAMILIES[db]
        for af, (dbs, _st) in AF_DEFAULTS.items():
            if af in self.families and not (set(dbs) & self.dbs):
                self.dbs |= set(dbs)


def usage() -> str:
    """The ``--help`` text, made from the option table and the subcommand registry."""
    from sockscope.cli.manpage import help_text

    return help_text()


def main(argv: list[str], stdout: IO[str] | None = None) -> int:
    out = stdout if stdout is not None else sys.stdout
    from sockscope.cli.options import parse

    try:
        opts, args = parse(argv)
    except UsageError as exc:
        raise UsageError(f"{exc} (see sockscope --help)") from None

    sel = _Selection()
    state_filter = 0
    saw_query = False
    on: set[str] = set()  # the switches given, by their words in the option table
    fmt = "table"
    diag_file: str | None = None
    filter_file: str | None = None
    for row, val in opts:
        name = row[0] or row[1][0]  # the option's key: its letter, else its long name
        if name == "h":
            out.write(usage())
            return 0
        if name == "man":
            from sockscope.cli.manpage import man_page

            out.write(man_page())
            return 0
        if name in ("V", "v"):
            from sockscope import __version__

            out.write(f"sockscope {__version__} (ss-compatible)\n")
            return 0
        if row[3] is not None:
            on.update(row[3])
        elif name == "a":
            state_filter = SS_ALL
        elif name == "l":
            state_filter = LISTENING
        elif name in SHORT_DB:
            sel.db_set(SHORT_DB[name])
            sel.explicit.add(SHORT_DB[name])
        elif name in SHORT_AF:
            sel.af_set(SHORT_AF[name])
            if name in ("vsock", "tipc", "xdp"):
                sel.explicit.update(AF_DEFAULTS[SHORT_AF[name]][0])
        elif name == "f":
            if val == "help":
                out.write(usage())
                return 0
            af = FAMILY_NAMES.get(val)
            if af is None:
                raise UsageError(f'"{val}" is invalid family')
            sel.af_set(af)
            if af in (AF_VSOCK, AF_TIPC, AF_XDP):  # as --vsock, --tipc, --xdp; "-f inet" is -4, quiet as it is
                sel.explicit.update(AF_DEFAULTS[af][0])
        elif name == "A":
            if not saw_query:
                sel.dbs = set()
                state_filter = state_filter or SS_CONN
                saw_query = True
                sel.do_default = False
            for part in val.split(","):
                sel.db_parse(part)
                if part.lstrip("!") not in ("all", "inet"):  # groups stay quiet about absent members, like ss
                    sel.explicit.update(DB_NAMES.get(part.lstrip("!"), ()))
        elif name in ("json", "csv"):
            fmt = name
        elif name == "N":
            from sockscope import netns

            netns.enter(val)
        elif name == "D":
            diag_file = val
        elif name in ("Z", "z"):
            import os as _os

            if not _os.path.exists("/sys/fs/selinux/enforce"):
                print("sockscope: SELinux is not enabled.", file=sys.stderr)
                return 1
            raise UsageError("-Z/-z (SELinux contexts) are not implemented in this version")
        elif name == "F":
            if filter_file is not None:
                raise UsageError("more than one filter file")
            filter_file = val

    numeric, resolve, processes, header = "numeric" in on, "resolve" in on, "processes" in on, "noheader" not in on
    timers, extended, memory, info = "timers" in on, "extended" in on, "memory" in on, "info" in on
    oneline, summary, all_netns, kill = "oneline" in on, "summary" in on, "all-netns" in on, "kill" in on
    dry_run, follow, cgroup, threads = "dry-run" in on, "events" in on, "cgroup" in on, "threads" in on
    tos, sockopt, bpf = "tos" in on, "inet-sockopt" in on, "bpf" in on
    if all_netns and (follow or diag_file is not None):  # (each reads one namespace: never all, silently)
        raise UsageError(f"--all-netns does not go with {'-E' if follow else '-D'}: choose one namespace with -N")

    from sockscope.filter.states import parse_state_words

    if summary:  # (the counters as a dict, laid out by render.summary: not the records' modules, ~8 ms)
        from sockscope.kernel.sockstat import summary_counts
        from sockscope.render import summary as _summary

        alone = sel.do_default and not args  # -s and no table or filter: the summary is all ss prints
        if fmt != "table" and not alone:
            # one document per output: the counters, or the sockets, never both
            raise UsageError(f"-s --{fmt} prints the summary alone: list the sockets in another call")
        counts: list[tuple[str | None, dict[str, int]]]
        if all_netns:
            from sockscope import netns

            counts = list(netns.visit(netns.namespaces(), lambda label: iter(((label, summary_counts()),))))
        else:
            counts = [(None, summary_counts())]
        if fmt != "table":
            _summary.write(counts, fmt, out)
            return 0
        for label, count in counts:
            out.write(("" if label is None else f"Netns: {label}\n") + _summary.text(count))
        if alone:
            return 0
    state_filter, rest = parse_state_words(args, state_filter)
    chose_states = len(rest) < len(args)  # at least one `state`/`exclude` word was given
    if kill and chose_states and not state_filter:
        # "exclude all", "state X exclude X": no state is left, and ss then lists its default states
        # (every connected socket) as if no word had been given: for -K that closes what was excluded
        raise UsageError("-K: the state words leave no state to close: name the states to close")
    if dry_run and not kill:
        raise UsageError("--dry-run goes with -K")
    if sel.do_default:
        state_filter = state_filter or SS_CONN
        sel.db_parse("all")
    if state_filter:
        sel.states = state_filter
    sel.merge_defaults()
    if not sel.dbs:
        print("sockscope: no socket tables to show with such filter.", file=sys.stderr)
        return 0
    if not sel.families:
        print("sockscope: no families to show with such filter.", file=sys.stderr)
        return 0
    if not sel.states:
        print("sockscope: no socket states to show with such filter.", file=sys.stderr)
        return 0

    registrations = None
    own_rpc: frozenset[int] = frozenset()
    if resolve and not numeric and not _RPC_TABLES.isdisjoint(sel.dbs):
        # ss asks rpcbind here, before the filter (its names may be ports there) and the dump (whose
        # UNIX sockets then hold the lister's own socket to it, as ss's do): render/rpcbind.py
        from sockscope.render import names as _names
        from sockscope.render import rpcbind

        registrations = rpcbind.ask()
        _names.use_rpc(registrations.names)
        own_rpc = rpcbind.own_inodes()

    from sockscope.query import EXT_INFO, EXT_MEM, EXT_TOS, Query, run

    q = Query(
        tables=frozenset(sel.dbs),
        families=frozenset(sel.families),
        states=sel.states,
        preferred_family=sel.preferred,
        details=extended or cgroup or tos or sockopt or fmt != "table",
        ext=(EXT_INFO if info or fmt != "table" else 0) | (EXT_MEM if memory or fmt != "table" else 0)
        | (EXT_TOS if tos or fmt != "table" else 0),
        explicit=frozenset(sel.explicit),
    )
    if diag_file is not None:  # ss writes this dump before it reads the expression: none applies
        if filter_file is not None and not filter_file.startswith("-"):
            from sockscope.filter.parser import read_file

            read_file(filter_file)  # (but a -F file that cannot be opened is an error, as in ss)
        return _diag_dump(q, diag_file, out)
    if rest or filter_file is not None:
        from sockscope.query import with_filter

        resolver = None
        if registrations is not None:
            from sockscope.filter.values import Resolver

            resolver = Resolver(registrations)
        q = with_filter(q, rest, family=sel.preferred, path=filter_file, resolver=resolver)
    if kill and not chose_states and q.predicate is None:
        # an empty or blank argument, or a filter file of comments only, selects nothing: refuse, as plain -K
        raise UsageError("-K closes every socket it lists: give a state or filter expression to choose them")
    dopts = None
    if timers or extended or memory or info or cgroup or tos or sockopt or bpf:
        from sockscope.render.details import DetailOptions

        dopts = DetailOptions(timers=timers, extended=extended, memory=memory, info=info, oneline=oneline,
                              numeric=numeric, cgroup=cgroup, tos=tos, sockopt=sockopt, bpf=bpf)
    owners: OwnerMap | BackgroundOwners | None = None
    if processes and not follow:  # (a destroyed socket has no owner: -E reads no process)
        from sockscope import processes as _processes

        if fmt == "table" and not (threads or kill):
            # the fd walk runs in the background while this thread dumps: -p costs about the longer of the two
            # (across namespaces too: only this thread enters them)
            owners = _processes.BackgroundOwners(hidden=own_rpc)
        else:
            from sockscope.owners.service import scan

            owners = scan(threads=threads)
            _warn_incomplete(owners)
    if out is sys.stdout and fmt == "table" and sys.modules["sockscope.cli"].OWN_PROCESS:
        _restore_sigpipe()

    from sockscope.render.table import TableOptions

    topts = TableOptions(numeric=numeric, resolve=resolve, processes=processes, details=dopts,
                         tables=frozenset(sel.dbs), any_protocol=follow)
    if follow:
        import gc

        gc.enable()  # long-running: collect as usual (entry() turns the collector off for one-shot listings)
        return _follow(q, out, topts, header, len(sel.dbs) > 1, bin(sel.states).count("1") > 1, fmt)
    targets = None
    if all_netns:
        from sockscope import netns

        targets = netns.namespaces()
        netns.check_enterable(targets)  # before the first row: no table or JSON cut off by the error
    if fmt == "table" and not kill:  # (across namespaces too: each one's batches in turn)
        return _table(q, out, sel, owners, header, topts, targets=targets)
    if targets is not None:
        socks = netns.visit(targets, lambda label: netns.labelled(run(q), label))
    else:
        socks = run(q)
    if owners is not None:
        from sockscope.records import evolve

        assert isinstance(owners, _processes.OwnerMap)  # the background walk serves tables only
        owner_map = owners
        socks = (evolve(s, owners=owner_map.owners(s.inode)) if s.inode in owner_map else s for s in socks)
    if kill:
        import os

        from sockscope.actions import kill as _kill

        # a TCP table replayed from TCPDIAG_FILE holds the capture's sockets, not this kernel's: listed, never
        # closed (ss's -K closes what its live dumps list, and prints a replayed capture as it is)
        replayed = ("tcp",) if "TCPDIAG_FILE" in os.environ else ()  # (set, even empty)
        socks = _kill((s for s in socks if s.netid in ("tcp", "udp", "raw")), dry_run=dry_run, replayed=replayed)
    if fmt == "json":
        from sockscope.render.machine import write_json

        write_json(socks, out)
        return 0
    if fmt == "csv":
        from sockscope.render.machine import write_csv

        write_csv(socks, out)
        return 0
    return _table(q, out, sel, owners, header, topts, socks, all_netns)


def _warn_incomplete(owners: OwnerMap | BackgroundOwners) -> None:
    if not owners.complete:
        from sockscope.processes import unreadable_hint

        print(f"sockscope: not all processes could be read ({unreadable_hint(owners.why)}): owners may be missing",
              file=sys.stderr)


def _diag_dump(q: Query, path: str, out: IO[str]) -> int:
    """``-D FILE``: write the raw TCP sock_diag replies (what ``TCPDIAG_FILE``
    replays) to FILE, or to stdout for ``-``."""
    from sockscope.kernel import inet, transport

    if "tcp" not in q.tables:
        print("sockscope: tcpdiag dump requested and no tcp in filter.", file=sys.stderr)
        return 0
    fams = [f for f in (2, 10) if f in q.families and q.preferred_family != (10 if f == 2 else 2)]
    if path == "-":
        out.flush()
        sink = getattr(out, "buffer", None)
        if sink is None:  # started with standard output closed (or given a stream of text alone)
            import errno

            raise OSError(errno.EBADF, "standard output is closed")
    else:
        try:
            sink = open(path, "wb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        for fam in fams:
            for data in transport.stream(inet.encode_request(fam, 6, q.states, q.ext, q.bytecode), "tcp diag"):
                sink.write(data)
                if inet.decode(data, "tcp diag")[1]:
                    break
        sink.flush()
    finally:
        if path != "-":
            sink.close()
    return 0


def _from_kernel(b: Any) -> bool:
    """Whether an inet batch came from sock_diag (a row read from /proc has no cookie)."""
    return None not in b.cookie


def _cells_of(maker: CellMaker, details: bool) -> Callable[[str, Any], list[list[str]] | Columns]:
    """How :func:`_table` makes one batch's cells (or records' from /proc): with detail texts (other than
    -i's), an inet or UNIX batch the kernel sent by its columns, any other batch through its records; else
    each kind of batch by its cell maker (-i's texts: ``info_cells``)."""
    make = maker.cells
    info = maker.opts.details is not None and maker.opts.details.info

    def cells(table: str, batch: Any) -> list[list[str]] | Columns:
        if isinstance(batch, list):  # records (from /proc)
            return [make(s) for s in batch]
        if table == "unix":
            return maker.unix_detail_cells(batch) if details else maker.unix_cells(batch)
        if table == "nl" or table == "packet":
            if details:
                from sockscope.query import records

                return [make(s) for s in records(table, batch, True)]
            return maker.other_cells(batch)
        # (an inet batch: kernel.inet is not imported here, a UNIX listing does without it)
        if not details:
            return maker.info_cells(table, batch) if info else maker.column_cells(table, batch)
        if _from_kernel(batch):
            return maker.detail_cells(table, batch)
        from sockscope.query import records

        return [make(s) for s in records(table, batch, True)]

    return cells


def _table(q: Query, out: IO[str], sel: _Selection, owners: OwnerMap | BackgroundOwners | None, header: bool,
           topts: TableOptions, socks: Iterable[Socket] | None = None, netns: bool = False,
           targets: list[tuple[str, str]] | None = None) -> int:
    """Lay the rows out like ss.  Without ``socks`` the rows stream from
    :func:`sockscope.query.batches`, each batch's cells made by :func:`_cells_of` (column
    batches: no records are built, but for netlink and packet sockets with detail texts); with
    ``socks`` (after -K), from those (``netns``: with the Netns column).  ``targets``
    (``--all-netns``: :func:`sockscope.netns.namespaces`' list): the batches of each namespace
    in turn, each block with its namespace's label."""
    from sockscope.render.table import CellMaker
    from sockscope.render.writer import TableWriter

    visible = [len(sel.dbs) > 1, bin(sel.states).count("1") > 1] + [True] * 8
    # with owners still being walked in the background, hold the rows (up to 256k, ~250 MiB)
    # until the end: the dump goes on meanwhile instead of waiting for the walk at the first
    # layout (where ss lays out is found once the owners' texts are there: TableWriter's hold)
    background = None
    texts: UsersText | BackgroundOwners | None = None  # the users cells: as they are asked for
    if owners is not None:
        from sockscope.processes import BackgroundOwners

        if isinstance(owners, BackgroundOwners):
            texts = background = owners
        else:
            from sockscope.render.users import UsersText

            texts = UsersText(owners)
    writer = TableWriter(out, visible, header=header, netns=netns or targets is not None,
                         hold=background is not None)
    maker = CellMaker(topts, texts)
    if socks is None:
        from sockscope.query import batches

        d = topts.details
        source: Iterable[tuple[str, Any]]
        if background is not None:  # owners by the /proc walk: it runs alone first (see wait_if_walking)
            background.wait_if_walking()
        if targets is None:
            source = batches(q, info=d is not None and d.info)  # (-i's columns as -i alone reads them)
        else:
            from sockscope import netns as _netns

            def inside(label: str) -> Iterator[tuple[str, Any]]:
                maker.netns = label  # (the cells are made here, inside: its interfaces are named by it)
                return batches(q, info=d is not None and d.info)

            source = _netns.visit(targets, inside)
        cells = _cells_of(maker, d is not None and d.any_but_info)
        for table, batch in source:
            if not batch if isinstance(batch, list) else not batch.n:
                continue  # (a dump's end alone: with details, no records module to load for it, ~8 ms of start-up)
            if isinstance(batch, list) and targets is not None:
                batch = _netns.labelled(batch, maker.netns or "")
            rows = cells(table, batch)
            if targets is not None:  # the Netns column: one text for every row of the block
                label = maker.netns or ""
                if isinstance(rows, list):
                    for row in rows:
                        row.append(label)
                else:
                    rows.cols.append((label, None))
            writer.add_many(rows)
    else:
        add, make = writer.add, maker.cells
        for s in socks:
            add(make(s) + [s.netns or ""] if netns else make(s))
    writer.flush()
    if background is not None:
        background.texts()  # reaps the child, even when no row asked for an owner
        _warn_incomplete(background)
    return 0


def _follow(q: Query, out: IO[str], topts: TableOptions, header: bool, show_netid: bool, show_state: bool,
            fmt: str = "table") -> int:
    """``-E``: print each destroyed socket as it goes, until Ctrl-C (exit 0):
    as table rows, or with ``--json`` one JSON object per line (NDJSON), or
    CSV rows after a header, each flushed at once."""
    from sockscope import actions

    groups = actions.event_groups(q.tables, q.families)
    import os
    import signal

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, _stop)  # (put back at the end: main may run in a caller's process)
    # Ctrl-C or SIGTERM just before the wait starts must still end it: the wait also watches this pipe
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    # ss checks each destroyed socket with its userspace filter alone (no dump, no bytecode), and
    # the family; not the states (they choose columns only)
    keep, fams = getattr(q.predicate, "user", q.predicate), q.families

    def listed(s: Socket) -> bool:
        return s.family in fams and (keep is None or keep(s))

    try:
        events = actions.events(groups, wake_r)  # (no TCP or UDP table: a UsageError, exit 255 as ss)
        if fmt == "json":
            from sockscope.render.machine import write_ndjson

            write_ndjson(filter(listed, events), out)
        elif fmt == "csv":
            from sockscope.render.machine import write_csv

            write_csv(filter(listed, events), out, flush=True)
        else:
            from sockscope.render.table import CellMaker
            from sockscope.render.writer import TableWriter

            # ss renders at each event what it holds, as a table's end: the header with the first
            # event's row (or alone, when that socket is not listed), every row with the widest
            # cells so far, the last row's Process cell unmeasured
            writer = TableWriter(out, [show_netid, show_state] + [True] * 8, header=header, batch=0)
            make = CellMaker(topts).cells
            for s in events:
                if listed(s):
                    writer.add(make(s))
                    writer.flush()
                else:  # the header alone, if still held: its "Process" counts (ss's last token there
                    writer.flush(final=False)  # is the unnamed column's empty header after it)
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, old_term)
        os.close(wake_r)
        os.close(wake_w)
    return 0


def _restore_sigpipe() -> None:
    """Die quietly on a closed pipe (``sockscope -tan | head -1``), like ss."""
    import _signal  # type: ignore[import-not-found]  # the C module: ``signal`` builds enums at import, which costs start-up time

    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)


__all__ = ["main", "usage"]
