"""The listing's options, in one table: the parser (:mod:`sockscope.cli.ls`),
``--help``, the shell completion scripts and the man page are all made from it
(:mod:`sockscope.cli.completion`, :mod:`sockscope.cli.manpage`), so they cannot
drift apart.

Each row is ``(key, short, longs, metavar, switches, complete, help)``:

- ``key``: what the parser dispatches on (the short letter, else the first long name);
- ``short``: the letter of ``-x``, or ``""``; ``longs``: the long names (the first
  is the one shown; the others are aliases);
- ``metavar``: the argument's name, ``""`` for a flag;
- ``switches``: the words an option only switches on (``-e`` turns on ``-o``'s
  timers too); ``None`` for options the parser handles itself;
- ``complete``: what completes the argument (``family``, ``query``, ``netns``,
  ``file``), or ``""``;
- ``help``: one line (a second, indented line after ``\\n``).

Rows are plain tuples, read once at import: the plain listing's start-up cost
is a loop over ~55 rows.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    Row = tuple[str, str, tuple[str, ...], str, tuple[str, ...] | None, str, str]

#: the groups of rows, as --help and the man page show them: (title, rows)
GROUPS: tuple[tuple[str, tuple[Row, ...]], ...] = (
    ("General", (
        ("h", "h", ("help",), "", None, "", "this message"),
        ("V", "V", ("version",), "", None, "", "output version information"),
        ("v", "v", (), "", None, "", "the same as -V"),
        ("man", "", ("man",), "", None, "", "print the manual page (roff: sockscope --man | man -l -)"),
        ("n", "n", ("numeric",), "", ("numeric",), "", "don't resolve service names"),
        ("r", "r", ("resolve",), "", ("resolve",), "", "resolve host names"),
        ("a", "a", ("all",), "", None, "", "display all sockets"),
        ("l", "l", ("listening",), "", None, "", "display listening sockets"),
        ("o", "o", ("options",), "", ("timers",), "", "show timer information"),
        ("e", "e", ("extended",), "", ("timers", "extended"), "", "show detailed socket information"),
        ("m", "m", ("memory",), "", ("memory",), "", "show socket memory usage"),
        ("p", "p", ("processes",), "", ("processes",), "", "show process using socket"),
        ("i", "i", ("info",), "", ("info",), "", "show internal TCP information"),
        ("s", "s", ("summary",), "", ("summary",), "", "show socket usage summary"),
        ("E", "E", ("events",), "", ("events",), "", "continually display sockets as they are destroyed"),
        ("K", "K", ("kill",), "", ("kill",), "",
         "forcibly close sockets, display what was closed\n"
         "(needs a state or filter; --dry-run shows what would close)"),
        ("dry-run", "", ("dry-run",), "", ("dry-run",), "", "with -K: show what would be closed, close nothing"),
        ("T", "T", ("threads",), "", ("threads", "processes"), "", "show thread using socket"),
        ("b", "b", ("bpf",), "", ("bpf", "timers"), "", "show bpf filter socket information"),
        ("tos", "", ("tos",), "", ("tos",), "", "show tos and priority information"),
        ("cgroup", "", ("cgroup",), "", ("cgroup",), "", "show cgroup information"),
        ("inet-sockopt", "", ("inet-sockopt",), "", ("inet-sockopt",), "", "show various inet socket options"),
        ("tipcinfo", "", ("tipcinfo",), "", (), "", "show TIPC socket details (no TIPC on this kernel: no effect)"),
        ("D", "D", ("diag",), "FILE", None, "file", "Dump raw information about TCP sockets to FILE"),
        ("Z", "Z", ("context",), "", None, "", "display task SELinux security contexts (needs SELinux)"),
        ("z", "z", ("contexts",), "", None, "", "display task SELinux security and socket contexts"),
        ("H", "H", ("no-header",), "", ("noheader",), "", "Suppress header line"),
        ("O", "O", ("oneline",), "", ("oneline",), "", "socket's data printed on a single line"),
        ("N", "N", ("net",), "NAME", None, "netns", "switch to the specified network namespace name"),
        ("all-netns", "", ("all-netns",), "", ("all-netns",), "",
         "list the sockets of every network namespace, with a Netns column"),
        ("json", "", ("json",), "", None, "", "print JSON: an array of records (-s: one object; -E: one per line)"),
        ("csv", "", ("csv",), "", None, "", "print CSV with a header row"),
    )),
    ("Families and tables", (
        ("4", "4", ("ipv4",), "", None, "", "display only IP version 4 sockets"),
        ("6", "6", ("ipv6",), "", None, "", "display only IP version 6 sockets"),
        ("0", "0", ("packet",), "", None, "", "display PACKET sockets"),
        ("t", "t", ("tcp",), "", None, "", "display only TCP sockets"),
        ("M", "M", ("mptcp",), "", None, "", "display only MPTCP sockets"),
        ("S", "S", ("sctp",), "", None, "", "display only SCTP sockets"),
        ("u", "u", ("udp",), "", None, "", "display only UDP sockets"),
        ("d", "d", ("dccp",), "", None, "", "display only DCCP sockets"),
        ("w", "w", ("raw",), "", None, "", "display only RAW sockets"),
        ("x", "x", ("unix",), "", None, "", "display only Unix domain sockets"),
        ("tipc", "", ("tipc",), "", None, "", "display only TIPC sockets"),
        ("vsock", "", ("vsock",), "", None, "", "display only vsock sockets"),
        ("xdp", "", ("xdp",), "", None, "", "display only XDP sockets"),
        ("f", "f", ("family",), "FAMILY", None, "family",
         "display sockets of type FAMILY\nFAMILY := {inet|inet6|link|unix|netlink|vsock|tipc|xdp|help}"),
        ("A", "A", ("query", "socket"), "QUERY", None, "query",
         "display only these socket tables (a leading ! removes one)\n"
         "QUERY := {all|inet|tcp|mptcp|udp|raw|unix|unix_dgram|unix_stream|unix_seqpacket|packet|packet_raw"
         "|packet_dgram|netlink|dccp|sctp}[,QUERY]"),
    )),
    ("Filter", (
        ("F", "F", ("filter",), "FILE", None, "file", "read filter information from FILE (- = stdin)"),
    )),
)

#: every row, in table order
OPTIONS: tuple[Row, ...] = tuple(row for _title, rows in GROUPS for row in rows)

#: what follows the options in --help and the man page's FILTER section
FILTER_HELP = """\
FILTER := [ state STATE-FILTER ] [ EXPRESSION ]
EXPRESSION := ss(8)'s: src|dst [=] HOST, sport|dport OP [HOST]:PORT, dev, fwmark,
              cgroup, autobound, joined by and/or/not and ( ); OP := = != < > <= >=
STATE-FILTER := {all|connected|synchronized|bucket|big|TCP-STATES}
  TCP-STATES := {established|syn-sent|syn-recv|fin-wait-{1,2}|time-wait|closed|close-wait|last-ack|listening|closing}
   connected := {established|syn-sent|syn-recv|fin-wait-{1,2}|time-wait|close-wait|last-ack|closing}
synchronized := {established|syn-recv|fin-wait-{1,2}|time-wait|close-wait|last-ack|closing}
      bucket := {syn-recv|time-wait}
         big := {established|syn-sent|fin-wait-{1,2}|closed|close-wait|last-ack|listening|closing}"""

#: the environment variables the listing reads: (name, meaning)
ENVIRONMENT = (
    ("SOCKSCOPE_FORCE_PROC=1", "read /proc/net instead of sock_diag"),
    ("SOCKSCOPE_OWNERS=proc", "find owners (-p) by walking /proc/*/fd, never with the BPF iterator"),
    ("TCPDIAG_FILE=FILE", "replay the raw TCP replies that -D wrote, as ss does"),
)


def _getopt_spec() -> tuple[str, list[str], dict[str, str]]:
    short = ""
    longs: list[str] = []
    key_of: dict[str, str] = {}
    for key, letter, names, metavar, _sw, _c, _h in OPTIONS:
        if letter:
            short += letter + (":" if metavar else "")
        for name in names:
            longs.append(name + "=" if metavar else name)
            key_of[name] = key
    return short, longs, key_of


#: what :func:`sockscope.cli._getopt.parse` takes, and long name -> key
SHORT, LONG, KEY_OF = _getopt_spec()
#: key -> the words an option switches on
SWITCHES = {row[0]: row[4] for row in OPTIONS if row[4] is not None}


def flags(row: Row) -> list[str]:
    """Every spelling of an option: ``-x`` then ``--long`` names."""
    return ([f"-{row[1]}"] if row[1] else []) + [f"--{name}" for name in row[2]]


def usage(commands: dict[str, tuple[str, str]]) -> str:
    """The listing's ``--help`` text; ``commands`` is the subcommand registry."""
    lines = [
        "Usage: sockscope [ OPTIONS ]",
        "       sockscope [ OPTIONS ] [ FILTER ]",
        "       sockscope COMMAND [ARGS]   (see sockscope COMMAND --help)",
        "",
        "Commands:",
    ]
    lines += [f"   {name:<19} {summary}" for name, (_mod, summary) in commands.items() if name != "ls"]
    for title, rows in GROUPS:
        lines.append("")
        lines.append(f"{title}:")
        for row in rows:
            key, letter, names, metavar, _sw, _c, text = row
            arg = f"={metavar}" if metavar else ""
            left = (f"-{letter}, " if letter else "    ") + ", ".join(f"--{n}{arg}" for n in names)
            first, _, more = text.partition("\n")
            if len(left) > 19:
                lines.append(f"   {left}")
                lines.append(f"       {first}")
            else:
                lines.append(f"   {left:<19} {first}")
            if more:
                lines.append(f"   {'':<19} {more}" if len(left) <= 19 else f"       {more}")
    lines.append("")
    lines += ["   " + line for line in FILTER_HELP.splitlines()]
    lines.append("")
    lines.append("Environment:")
    lines += [f"   {name:<23} {text}" for name, text in ENVIRONMENT]
    lines.append("Usage errors exit 255; other errors exit 1, with one line on stderr.")
    return "\n".join(lines) + "\n"


__all__ = ["GROUPS", "OPTIONS", "SHORT", "LONG", "KEY_OF", "SWITCHES", "FILTER_HELP", "ENVIRONMENT", "flags", "usage"]
