"""The listing's ``--help`` text and ``sockscope --man``, the manual page in
roff (``sockscope --man | man -l -``).

Both are made from the same sources as the parsers: the listing's option
table (:mod:`sockscope.cli.options`), the subcommand registry and each
subcommand's argparse parser (through
:func:`sockscope.cli.completion.command_options`).
"""

from __future__ import annotations

from sockscope.cli import COMMANDS
from sockscope.cli.completion import Option, command_options, command_parser, flags
from sockscope.cli.options import GROUPS


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


def help_text() -> str:
    """The listing's ``--help`` text."""
    lines = [
        "Usage: sockscope [ OPTIONS ]",
        "       sockscope [ OPTIONS ] [ FILTER ]",
        "       sockscope COMMAND [ARGS]   (see sockscope COMMAND --help)",
        "",
        "Commands:",
    ]
    lines += [f"   {name:<19} {summary}" for name, (_mod, summary) in COMMANDS.items() if name != "ls"]
    for title, rows in GROUPS:
        lines.append("")
        lines.append(f"{title}:")
        for row in rows:
            letter, names, metavar, _sw, _c, text = row
            arg = f"={metavar}" if metavar else ""
            longs = ", ".join(f"--{n}{arg}" for n in names)
            left = (f"-{letter}, {longs}" if names else f"-{letter}") if letter else f"    {longs}"
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


def roff(text: str) -> str:
    """Text made safe for roff: backslashes and hyphens escaped, no line
    taken for a request (a leading ``.`` or ``'``)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line for line in text.split("\n"))


def _tag(spellings: list[str], metavar: str) -> str:
    """``.TP``'s tag line: each spelling bold, the argument italic."""
    parts = []
    for f in spellings:
        arg = f"\\fI{roff(metavar)}\\fR" if metavar else ""
        if arg:
            arg = ("=" if f.startswith("--") else " ") + arg
        parts.append(f"\\fB{roff(f)}\\fR{arg}")
    return ", ".join(parts)


def _paragraphs(text: str) -> list[str]:
    """Help text's paragraphs (blank-line separated): filled, or line by line
    when some line is indented (commands, a list of exit statuses)."""
    out = []
    for para in text.strip("\n").split("\n\n"):
        if any(line.startswith(" ") for line in para.splitlines()):
            out += [".PP", ".nf", roff(para), ".fi"]
        elif para.strip():
            out += [".PP", roff(" ".join(para.split()))]
    return out


def _options(opts: list[Option]) -> list[str]:
    out = []
    for o in opts:
        out += [".TP", _tag(o.flags, o.metavar), roff(o.help)]
        if isinstance(o.values, list):
            out.append(".br")
            out.append(roff(f"{o.metavar}: {', '.join(o.values)}"))
    return out


#: the OUTPUT FORMATS section: (tag, text)
_OUTPUT = (
    ("--json", "one JSON array, one record per line, with the fields of the Python API's records: netid, family, "
               "state, recv_q, send_q, local_address, local_port, peer_address, peer_port, inode, uid, cookie, "
               "ifindex, peer_inode, v6only, shutdown, owners ([{pid, fd, name, tid}]; tid with -T, else null), "
               "netns, protocol, timer, expires, retrans, mark, cgroup_id, cong, and the nested tcp_info, skmem, "
               "bbr_info and dctcp_info."),
    ("--csv", "the flat fields, after a header row; owners as pid/fd/name;...; booleans as in JSON (true, false); "
              "absent values as empty cells."),
    ("-s --json, -s --csv", "the summary counters alone: one JSON object, or a header row and one row; "
                                  "with --all-netns, one per namespace with its netns."),
    ("-E --json, -E --csv", "one JSON object per line (NDJSON), or a header row and then one row per socket, each "
                            "written as the socket is destroyed."),
)
_OUTPUT_NOTE = ("Machine-readable output never mixes in human text: warnings go to stderr. The bytes of a UNIX "
                "path that is not UTF-8 are written as they are (as ss does) to a UTF-8 stream, and as \\xNN to "
                "a stream that cannot carry them (PYTHONIOENCODING=ascii); JSON carries them as \\udcNN, "
                "Python's surrogateescape code points.")


def man_page() -> str:
    from sockscope import __version__

    lines = [
        f'.TH SOCKSCOPE 8 "" "sockscope {roff(__version__)}" "System Administration"',
        ".SH NAME",
        "sockscope \\- see and use Linux sockets: an ss drop\\-in over netlink sock_diag",
        ".SH SYNOPSIS",
        ".B sockscope",
        "[\\fIOPTIONS\\fR] [\\fIFILTER\\fR]",
        ".br",
        ".B sockscope",
        "\\fICOMMAND\\fR [\\fIARGS\\fR]",
        ".SH DESCRIPTION",
        roff("sockscope lists sockets like ss(8), with its options, filters and rows, read over netlink "
             "sock_diag (or /proc/net where sock_diag is missing); beyond ss, --json, --csv and --all-netns. "
             "A first argument naming a command runs that command instead (see COMMANDS)."),
        ".SH OPTIONS",
    ]
    listing = {o.flags[0]: o for o in command_options("ls")}
    for title, rows in GROUPS:
        lines.append(f'.SS "{roff(title)}"')
        lines += _options([listing[flags(row)[0]] for row in rows])
    lines += [".SH FILTER", ".nf", roff(FILTER_HELP), ".fi", ".SH OUTPUT FORMATS"]
    for tag, text in _OUTPUT:
        lines += [".TP", ", ".join(f"\\fB{roff(t)}\\fR" for t in tag.split(", ")), roff(text)]
    lines += [".PP", roff(_OUTPUT_NOTE), ".SH COMMANDS"]
    for name, (_module, summary) in COMMANDS.items():
        if name == "ls":
            continue
        lines += [f'.SS "sockscope {name}"', roff(summary[:1].upper() + summary[1:] + ".")]
        parser = command_parser(name)
        if parser is not None:
            usage = " ".join(parser.format_usage().split())
            lines += [".PP", roff(usage.removeprefix("usage: "))]
            lines += _paragraphs(parser.description or "") + _paragraphs(parser.epilog or "")
        lines += _options(command_options(name))
    lines += [".SH ENVIRONMENT"]
    for var, text in ENVIRONMENT:
        lines += [".TP", f"\\fB{roff(var)}\\fR", roff(text)]
    lines += [
        ".SH EXIT STATUS",
        roff("0: success. 255: a usage error (bad option, state name or filter), in every command, as ss's. "
             "1: any other error (one line on stderr, never a traceback). 130: interrupted. "
             "serve and connect add their own: 3 timeout, 4 name does not resolve, 5 other network error."),
        ".SH SEE ALSO",
        ".BR ss (8),",
        ".BR ip\\-netns (8),",
        ".BR lsof (8)",
        "",
    ]
    return "\n".join(lines)


__all__ = ["help_text", "man_page", "roff", "FILTER_HELP", "ENVIRONMENT"]
