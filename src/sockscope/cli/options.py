"""The listing's options, in one table: the parser (:func:`parse`, for
:mod:`sockscope.cli.ls`), ``--help`` and the man page
(:mod:`sockscope.cli.manpage`) and the shell completion scripts
(:mod:`sockscope.cli.completion`) are all made from it, so they cannot drift
apart.

Each row is ``(short, longs, metavar, switches, complete, help)``:

- ``short``: the letter of ``-x``, or ``""``; ``longs``: the long names (the first
  is the one shown; the others are aliases).  The listing names an option by
  its key: the letter, else the first long name;
- ``metavar``: the argument's name, ``""`` for a flag;
- ``switches``: the words an option only switches on (``-e`` turns on ``-o``'s
  timers too); ``None`` for options the listing handles itself;
- ``complete``: what completes the argument (``family``, ``query``, ``netns``,
  ``file``), or ``""``;
- ``help``: one line (a second, indented line after ``\\n``).

The table and the getopt that reads it share a module, and its two look-up
maps are made at import by comprehensions: start-up time is a feature.  So do
the words of ``-A QUERY`` and ``-f FAMILY`` and the tables and families they
select (:data:`DB_NAMES`, :data:`FAMILY_NAMES`, …): the listing reads them,
the completion scripts offer them.
"""

from __future__ import annotations

from sockscope._addr import AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_TIPC, AF_UNIX, AF_VSOCK, AF_XDP
from sockscope.errors import UsageError
from sockscope.filter.states import CLOSE, ESTABLISHED, LISTEN, SS_CONN

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    Row = tuple[str, tuple[str, ...], str, tuple[str, ...] | None, str, str]

#: the groups of rows, as --help and the man page show them: (title, rows)
GROUPS: tuple[tuple[str, tuple[Row, ...]], ...] = (
    ("General", (
        ("h", ("help",), "", None, "", "this message"),
        ("V", ("version",), "", None, "", "output version information"),
        ("v", (), "", None, "", "the same as -V"),
        ("", ("man",), "", None, "", "print the manual page (roff: sockscope --man | man -l -)"),
        ("n", ("numeric",), "", ("numeric",), "", "don't resolve service names"),
        ("r", ("resolve",), "", ("resolve",), "", "resolve host names (and RPC services' ports, from rpcbind)"),
        ("a", ("all",), "", None, "", "display all sockets"),
        ("l", ("listening",), "", None, "", "display listening sockets"),
        ("o", ("options",), "", ("timers",), "", "show timer information"),
        ("e", ("extended",), "", ("timers", "extended"), "", "show detailed socket information"),
        ("m", ("memory",), "", ("memory",), "", "show socket memory usage"),
        ("p", ("processes",), "", ("processes",), "", "show process using socket"),
        ("i", ("info",), "", ("info",), "", "show internal TCP information"),
        ("s", ("summary",), "", ("summary",), "", "show socket usage summary"),
        ("E", ("events",), "", ("events",), "", "continually display sockets as they are destroyed"),
        ("K", ("kill",), "", ("kill",), "",
         "forcibly close sockets, display what was closed\n"
         "(needs a state or filter; --dry-run shows what would close)"),
        ("", ("dry-run",), "", ("dry-run",), "", "with -K: show what would be closed, close nothing"),
        ("T", ("threads",), "", ("threads", "processes"), "", "show thread using socket"),
        ("b", ("bpf",), "", ("bpf", "timers"), "", "show bpf filter socket information"),
        ("", ("tos",), "", ("tos",), "", "show tos and priority information"),
        ("", ("cgroup",), "", ("cgroup",), "", "show cgroup information"),
        ("", ("inet-sockopt",), "", ("inet-sockopt",), "", "show various inet socket options"),
        ("", ("tipcinfo",), "", (), "", "show TIPC socket details (no TIPC on this kernel: no effect)"),
        ("D", ("diag",), "FILE", None, "file", "Dump raw information about TCP sockets to FILE"),
        ("Z", ("context",), "", None, "", "display task SELinux security contexts (needs SELinux)"),
        ("z", ("contexts",), "", None, "", "display task SELinux security and socket contexts"),
        ("H", ("no-header",), "", ("noheader",), "", "Suppress header line"),
        ("O", ("oneline",), "", ("oneline",), "", "socket's data printed on a single line"),
        ("N", ("net",), "NAME", None, "netns", "switch to the specified network namespace name"),
        ("", ("all-netns",), "", ("all-netns",), "",
         "list the sockets of every network namespace, with a Netns column"),
        ("", ("json",), "", None, "", "print JSON: an array of records (-s: one object; -E: one per line)"),
        ("", ("csv",), "", None, "", "print CSV with a header row"),
    )),
    ("Families and tables", (
        ("4", ("ipv4",), "", None, "", "display only IP version 4 sockets"),
        ("6", ("ipv6",), "", None, "", "display only IP version 6 sockets"),
        ("0", ("packet",), "", None, "", "display PACKET sockets"),
        ("t", ("tcp",), "", None, "", "display only TCP sockets"),
        ("M", ("mptcp",), "", None, "", "display only MPTCP sockets"),
        ("S", ("sctp",), "", None, "", "display only SCTP sockets"),
        ("u", ("udp",), "", None, "", "display only UDP sockets"),
        ("d", ("dccp",), "", None, "", "display only DCCP sockets"),
        ("w", ("raw",), "", None, "", "display only RAW sockets"),
        ("x", ("unix",), "", None, "", "display only Unix domain sockets"),
        ("", ("tipc",), "", None, "", "display only TIPC sockets"),
        ("", ("vsock",), "", None, "", "display only vsock sockets"),
        ("", ("xdp",), "", None, "", "display only XDP sockets"),
        ("f", ("family",), "FAMILY", None, "family",
         "display sockets of type FAMILY\nFAMILY := {inet|inet6|link|unix|netlink|vsock|tipc|xdp|help}"),
        ("A", ("query", "socket"), "QUERY", None, "query",
         "display only these socket tables (a leading ! removes one)\n"
         "QUERY := {all|inet|tcp|mptcp|udp|raw|unix|unix_dgram|unix_stream|unix_seqpacket|packet|packet_raw"
         "|packet_dgram|netlink|dccp|sctp}[,QUERY]"),
    )),
    ("Filter", (
        ("F", ("filter",), "FILE", None, "file", "read filter information from FILE (- = stdin)"),
    )),
)


#: the rows by letter and by long name (dict comprehensions: the cheapest way to make them at start-up)
SHORTS: dict[str, Row] = {row[0]: row for _title, rows in GROUPS for row in rows if row[0]}
LONGS: dict[str, Row] = {name: row for _title, rows in GROUPS for row in rows for name in row[1]}


# --- what -A QUERY, -f FAMILY and the short table/family options select ---------------------------
# ss's tables ("dbs"): each one's default states and families; each family's tables and default
# states; the words of -f and -A.  The listing (cli/ls.py) reads them; the completion scripts
# offer the words (cli/completion.py).

_EST, _CLOSE = 1 << ESTABLISHED, 1 << CLOSE
LISTENING = (1 << LISTEN) | _CLOSE  # -l: LISTEN, and CLOSE (UNCONN: datagram sockets bound, not connected)
DB_STATES: dict[str, int] = {
    "tcp": SS_CONN, "mptcp": SS_CONN, "dccp": SS_CONN, "udp": _EST, "raw": _EST,
    "u_dgr": _CLOSE, "u_str": SS_CONN, "u_seq": SS_CONN, "p_dgr": _CLOSE, "p_raw": _CLOSE,
    "nl": _CLOSE, "sctp": SS_CONN, "v_str": SS_CONN, "v_dgr": SS_CONN, "xdp": _CLOSE, "tipc": SS_CONN,
}
_INET = frozenset({AF_INET, AF_INET6})
DB_FAMILIES: dict[str, frozenset[int]] = {
    "tcp": _INET, "mptcp": _INET, "dccp": _INET, "udp": _INET, "raw": _INET, "sctp": _INET,
    "u_dgr": frozenset({AF_UNIX}), "u_str": frozenset({AF_UNIX}), "u_seq": frozenset({AF_UNIX}),
    "p_dgr": frozenset({AF_PACKET}), "p_raw": frozenset({AF_PACKET}), "nl": frozenset({AF_NETLINK}),
    "v_str": frozenset({AF_VSOCK}), "v_dgr": frozenset({AF_VSOCK}), "xdp": frozenset({AF_XDP}),
    "tipc": frozenset({AF_TIPC}),
}
_INET_DBS = ("tcp", "udp", "dccp", "sctp", "raw", "mptcp")
AF_DEFAULTS: dict[int, tuple[tuple[str, ...], int]] = {
    AF_INET: (_INET_DBS, SS_CONN), AF_INET6: (_INET_DBS, SS_CONN),
    AF_UNIX: (("u_str", "u_dgr", "u_seq"), SS_CONN), AF_PACKET: (("p_raw", "p_dgr"), _CLOSE),
    AF_NETLINK: (("nl",), _CLOSE), AF_VSOCK: (("v_str", "v_dgr"), SS_CONN), AF_TIPC: (("tipc",), SS_CONN),
    AF_XDP: (("xdp",), _CLOSE),
}
FAMILY_NAMES: dict[str, int] = {"inet": AF_INET, "inet6": AF_INET6, "link": AF_PACKET, "unix": AF_UNIX,
                                "netlink": AF_NETLINK, "vsock": AF_VSOCK, "tipc": AF_TIPC, "xdp": AF_XDP}
DB_NAMES: dict[str, tuple[str, ...]] = {
    "all": ("udp", "dccp", "tcp", "mptcp", "raw", "u_str", "u_dgr", "u_seq", "p_raw", "p_dgr",
            "nl", "sctp", "v_str", "v_dgr", "xdp"),
    "inet": ("udp", "dccp", "tcp", "mptcp", "sctp", "raw"),
    "udp": ("udp",), "dccp": ("dccp",), "tcp": ("tcp",), "mptcp": ("mptcp",), "sctp": ("sctp",),
    "raw": ("raw",), "unix": ("u_str", "u_dgr", "u_seq"), "unix_stream": ("u_str",),
    "u_str": ("u_str",), "unix_dgram": ("u_dgr",), "u_dgr": ("u_dgr",),
    "unix_seqpacket": ("u_seq",), "u_seq": ("u_seq",), "packet": ("p_raw", "p_dgr"),
    "packet_raw": ("p_raw",), "p_raw": ("p_raw",), "packet_dgram": ("p_dgr",), "p_dgr": ("p_dgr",),
    "netlink": ("nl",), "vsock": ("v_str", "v_dgr"), "vsock_stream": ("v_str",), "v_str": ("v_str",),
    "vsock_dgram": ("v_dgr",), "v_dgr": ("v_dgr",), "xdp": ("xdp",), "tipc": ("tipc",),
}
SHORT_DB: dict[str, str] = {"t": "tcp", "u": "udp", "w": "raw", "d": "dccp", "S": "sctp", "M": "mptcp"}
SHORT_AF: dict[str, int] = {"x": AF_UNIX, "4": AF_INET, "6": AF_INET6, "0": AF_PACKET, "vsock": AF_VSOCK,
                            "tipc": AF_TIPC, "xdp": AF_XDP}


def parse(argv: list[str]) -> tuple[list[tuple[Row, str]], list[str]]:
    """GNU ``getopt_long`` as ss uses it, without the stdlib ``getopt`` (whose
    gettext/re imports cost more start-up time than the whole listing).

    Options and operands may be mixed; ``--`` ends the options; short options
    bundle (``-tulpn``) and take their argument attached or as the next word
    (``-Atcp``, ``-A tcp``); long options take ``=value`` or the next word and
    may be abbreviated to a unique prefix.  Return ``([(row, value)],
    operands)``: each option as its row of the table."""
    opts: list[tuple[Row, str]] = []
    operands: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            operands.extend(argv[i:])
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if name in LONGS:
                full = name
            else:
                matches = [n for n in LONGS if n.startswith(name)]
                if not matches:
                    raise UsageError(f"unrecognized option '--{name}'")
                if len(matches) > 1:
                    raise UsageError(f"option '--{name}' is ambiguous; possibilities: "
                                     + " ".join("'--" + m + "'" for m in sorted(matches)))
                full = matches[0]
            row = LONGS[full]
            if row[2]:
                if not eq:
                    if i >= len(argv):
                        raise UsageError(f"option '--{full}' requires an argument")
                    value = argv[i]
                    i += 1
            elif eq:
                raise UsageError(f"option '--{full}' doesn't allow an argument")
            opts.append((row, value))
        elif a.startswith("-") and a != "-":
            j = 1
            while j < len(a):
                c = a[j]
                j += 1
                if c not in SHORTS:
                    raise UsageError(f"invalid option -- '{c}'")
                row = SHORTS[c]
                if row[2]:
                    if j < len(a):
                        value = a[j:]
                    elif i < len(argv):
                        value = argv[i]
                        i += 1
                    else:
                        raise UsageError(f"option requires an argument -- '{c}'")
                    opts.append((row, value))
                    break
                opts.append((row, ""))
        else:
            operands.append(a)
    return opts, operands


__all__ = ["GROUPS", "SHORTS", "LONGS", "parse", "LISTENING", "DB_STATES", "DB_FAMILIES", "AF_DEFAULTS",
           "FAMILY_NAMES", "DB_NAMES", "SHORT_DB", "SHORT_AF"]
