"""``sockscope who [--json] TARGET``: who uses this port, socket file or process's sockets.

Dumps the socket tables the target needs (TCP and UDP for ports; also UNIX,
netlink and packet for a PID or an inode; UNIX for a path), scans the owner
map once, and prints one chain per matching socket (see :mod:`sockscope.who`).
Exits 1 with a message on stderr when nothing matches, like ``lsof``.
Without root, processes whose fds cannot be read are missing from the
chains, and a note on stderr says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO

from sockscope.cli._args import OneLineParser

DESCRIPTION = """\
Explain who uses a port, a socket file, or a process's sockets, and who is on
the other end.

TARGET is one of:
  :PORT            sockets with this local or peer port (TCP and UDP)
  HOST:PORT        ... at this address ([v6]:PORT for IPv6; *:PORT = :PORT);
                   a listener on the wildcard address and PORT matches too
  PID              every socket the process holds
  /PATH            a UNIX socket bound to this path (anything with a '/')
  @NAME            a UNIX socket with this abstract name
  inode:N          the socket with this inode

For each match: the processes holding it (pid, name, user, fd, command line),
the socket (kind, state, inode, local <-> peer), and the other end when it is
on this machine (loopback TCP/UDP, or a UNIX peer), with its processes too.
Exit status: 0 when something matched, 1 when nothing did (or the PID does
not exist), 255 for a bad target.
"""


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="sockscope who", description=DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="TARGET", help="what to explain (see above)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str], stdout: IO[str] | None = None, proc: str = "/proc") -> int:
    out = stdout if stdout is not None else sys.stdout
    args = _parser().parse_args(argv)

    from sockscope import who
    from sockscope.processes import OwnerMap, unreadable_hint
    from sockscope.query import SS_ALL, Query, run

    target = who.parse_target(args.target)
    warnings: list[str] = []

    pid_fds: list[tuple[int, int]] = []
    if target.kind == "pid":
        pid_fds = who.pid_sockets(int(target.value), proc)
        if not pid_fds:
            raise who.NoMatch(f"pid {target.value} holds no sockets")

    tables: set[str] = set()
    families: set[int] = set()
    if target.needs_inet:
        tables |= {"tcp", "udp"}
        families |= {2, 10}
    if target.needs_unix:
        tables |= {"u_str", "u_dgr", "u_seq"}
        families.add(1)
    if target.kind in ("pid", "inode"):
        tables |= {"nl", "p_raw", "p_dgr", "raw"}
        families |= {16, 17}
    q = Query(frozenset(tables), frozenset(families), SS_ALL | (1 << 12))
    every = list(run(q, warn=warnings.append))

    pid_inodes = frozenset(ino for _fd, ino in pid_fds)
    matched = who.matches(target, every, pid_inodes)
    unresolved: list[who.Unresolved] = []
    if target.kind == "pid":
        fd_of = {ino: fd for fd, ino in reversed(pid_fds)}
        matched.sort(key=lambda s: fd_of.get(s.inode, 1 << 31))
        seen = {s.inode for s in matched}
        unresolved = [who.Unresolved(int(target.value), fd, ino) for fd, ino in pid_fds if ino not in seen]

    if not matched and not unresolved:
        if args.json:
            empty = who.Report(target, [], [], warnings)
            out.write(json.dumps(who.render_json(empty), indent=1) + "\n")
        for w in warnings:
            print(f"sockscope: {w}", file=sys.stderr)
        raise who.NoMatch(f"no socket matches {target.text}")

    owners = OwnerMap.scan(proc)
    if not owners.complete:
        warnings.append(f"some processes' file descriptors could not be read ({unreadable_hint()}): "
                        "their sockets show no process")
    report = who.build_report(target, matched, every, owners,
                              lambda pid, name: who.read_process(pid, name, proc),
                              unresolved, warnings)
    if args.json:
        out.write(json.dumps(who.render_json(report), indent=1) + "\n")
    else:
        enc = (getattr(out, "encoding", None) or "").lower().replace("-", "")
        out.write(who.render_text(report, unicode=enc in ("utf8", "utf16", "utf32")))
    for w in warnings:
        print(f"sockscope: {w}", file=sys.stderr)
    return 0


__all__ = ["main"]
