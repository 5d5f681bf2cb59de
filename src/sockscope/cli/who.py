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
import sys

from sockscope.cli._args import OneLineParser
from sockscope.errors import SockscopeError

TYPE_CHECKING = False  # typing is imported only by type checkers (json only for --json): start-up time
if TYPE_CHECKING:
    from typing import IO, Callable

    from sockscope.query import Query
    from sockscope.records import Socket

DESCRIPTION = """\
Explain who uses a port, a socket file, or a process's sockets, and who is on
the other end.

TARGET is one of (the first form that fits wins, in this order):
  inode:N          the socket with this inode
  @NAME            a UNIX socket with this abstract name
  PID              every socket the process holds (digits only)
  /PATH            a UNIX socket bound to this path (anything with a '/')
  :PORT            sockets with this local or peer port (TCP and UDP)
  HOST:PORT        ... at this address ([v6]:PORT for IPv6; *:PORT = :PORT);
                   a listener on the wildcard address and PORT matches too;
                   a scope as the listing prints it narrows to a device:
                   [fe80::1]%v0:PORT, [fe80::1%v0]:PORT, 127.0.0.1%lo:PORT
  NAME             a UNIX socket file NAME in the current directory, else
                   every socket of the processes named NAME (their comm,
                   exact, like lsof -c); a host always needs :PORT

A PID (or the processes of a NAME) in another network namespace than
sockscope's is looked up in its own (a note on stderr names it), unless -N or
--all-netns says where to look.

For each match: the processes holding it (pid, name, user, fd, command line),
the socket (kind, state, local <-> peer as ss prints them, inode), and the
other end when it is on this machine (loopback TCP/UDP, or a UNIX peer), with
its processes too.  Control characters in names are escaped (\\x0a).
Exit status: 0 when something matched, 1 when nothing did (or the PID does
not exist), 255 for a bad target or option.
"""


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="sockscope who", description=DESCRIPTION,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="TARGET", help="what to explain (see above)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-N", "--net", metavar="NAME",
                       help="look in this network namespace (an ip netns name or a path), like ss -N")
    where.add_argument("--all-netns", action="store_true",
                       help="look in every network namespace; each socket says which")
    return p


def _dump(q: Query, all_netns: bool, warn: Callable[[str], None]) -> list[Socket]:
    """Every socket of ``q``: here, or in every namespace (labelled, their devices named while inside)."""
    from sockscope.query import run

    if not all_netns:
        return list(run(q, warn=warn))
    from sockscope import netns

    return list(netns.visit(netns.namespaces(), lambda label: netns.labelled(run(q, warn=warn), label)))


def _own_netns(pids: list[int], who_: str, plural: bool = False) -> str | None:
    """Where the processes ``pids`` (``who_`` names them in a note: "pid 7", "the processes
    named 'x'") all live in one network namespace that is not this process's: enter it, and
    return the note that says so (naming it: its ``ip netns`` name, else ``ino:N``), or that it
    could not be entered.  Where they live in several: the note that says --all-netns looks in
    every one (nothing entered).  None where they live in this one, or it cannot be told (then
    this one's tables are read, as before)."""
    import os

    from sockscope import netns
    from sockscope.render.endpoint import escape

    inodes: dict[int, str] = {}  # namespace inode -> a path that opens it
    for pid in pids:
        path = f"/proc/{pid}/ns/net"
        try:
            inodes.setdefault(os.stat(path).st_ino, path)
        except OSError:
            continue  # gone, or not ours to see
    try:
        own = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None
    if not inodes or set(inodes) == {own}:
        return None
    if len(inodes) > 1:
        return f"{who_} live in {len(inodes)} network namespaces: their sockets outside this one are not in " \
               "these tables (--all-netns looks in every one)"
    ((theirs, path),) = inodes.items()
    try:
        label = escape(next((name for name, ino, _ in netns.found() if ino == theirs), f"ino:{theirs}"))
    except SockscopeError:
        label = f"ino:{theirs}"
    verb, its = ("are", "their") if plural else ("is", "its")
    try:
        netns.enter(path)
    except netns.NetnsError as exc:
        return f"{who_} {verb} in network namespace {label}, which could not be entered ({exc}): " \
               f"{its} sockets there are not in these tables"
    return f"{who_} {verb} in network namespace {label}: {its} sockets were looked up there"


def _elsewhere_hint(args: argparse.Namespace) -> str:
    """Where nothing matched in one namespace while others exist: how to look in them too."""
    if args.all_netns:
        return ""
    from sockscope import netns

    try:
        others = len(netns.found()) - 1
    except SockscopeError:
        return ""
    if others < 1:
        return ""
    where = "this network namespace" if args.net is None else "network namespace " + repr(args.net)
    return f" in {where} ({others} other{'s' if others > 1 else ''}: --all-netns looks in every one)"


def main(argv: list[str], stdout: IO[str] | None = None, proc: str = "/proc") -> int:
    out = stdout if stdout is not None else sys.stdout
    args = _parser().parse_args(argv)

    from sockscope import who
    from sockscope.owners.model import unreadable_hint
    from sockscope.owners.service import scan
    from sockscope.owners.walk import thread_holders
    from sockscope.filter.states import BOUND_INACTIVE, EVERY_STATE
    from sockscope.query import Query
    from sockscope.render.endpoint import escape, tolerant

    if out is sys.stdout:
        tolerant(out)
    target = who.parse_target(args.target)
    if args.net is not None:
        from sockscope import netns

        netns.enter(args.net)
    if not args.all_netns:  # (every namespace: a device of any of them)
        from sockscope.who_target import check_scope

        check_scope(target)
    warnings: list[str] = []

    held: list[tuple[int, int, int]] = []  # (pid, fd, inode) of a PID's or a process name's sockets
    if target.kind == "pid":
        pid = int(target.value)
        port = f" (a port is written :{pid})" if pid <= 65535 else ""  # (`who 8080`: lsof's and ss's users say :8080)
        try:
            held = [(pid, fd, ino) for fd, ino in who.pid_sockets(pid, proc)]
        except who.NoSuchProcess as exc:
            raise who.NoSuchProcess(f"{exc}{port}") from None
        if not held:
            raise who.NoMatch(f"pid {pid} holds no sockets{port}")
    elif target.kind == "process":
        from sockscope.who_target import pids_named

        pids = pids_named(str(target.value), proc)
        if not pids:
            raise who.NoMatch(f"no process named '{escape(target.text)}' (a host needs a port: HOST:PORT)")
        held, notes = who.pids_sockets(pids, proc)
        warnings += notes
        if not held:
            raise who.NoMatch(f"no process named '{escape(target.text)}' holds a socket")
    if held and args.net is None and not args.all_netns and proc == "/proc":  # a PID's or a NAME's sockets
        by_pid = target.kind == "pid"
        note = _own_netns(sorted({pid for pid, _fd, _ino in held}),
                          f"pid {target.value}" if by_pid else f"the processes named '{escape(target.text)}'",
                          plural=not by_pid)
        if note is not None:
            warnings.append(note)

    tables: set[str] = set()
    families: set[int] = set()
    if target.needs_inet:
        tables |= {"tcp", "udp"}
        families |= {2, 10}
    if target.needs_unix:
        tables |= {"u_str", "u_dgr", "u_seq"}
        families.add(1)
    if target.by_process or target.kind == "inode":
        tables |= {"nl", "p_raw", "p_dgr", "raw"}
        families |= {16, 17}
    # Every state, and TCP sockets bound but neither listening nor connected (kernels >= 6.8 dump
    # them when asked; older ones never match the bit): they hold their port, bind() says EADDRINUSE.
    # A path target: each UNIX socket's file too (UNIX_DIAG_VFS, among the details), which tells
    # the socket bound to that file by another name (a relative one) from one of the same name.
    states = EVERY_STATE | 1 << BOUND_INACTIVE
    q = Query(frozenset(tables), frozenset(families), states, details=target.kind == "path")
    every = _dump(q, args.all_netns, warnings.append)

    matched = who.matches(target, every, frozenset(ino for _pid, _fd, ino in held))
    unresolved: list[who.Unresolved] = []
    if held:
        order = {ino: (pid, fd) for pid, fd, ino in reversed(held)}
        matched.sort(key=lambda s: order.get(s.inode, (1 << 31, 0)))
        seen = {s.inode for s in matched}
        unresolved = [who.Unresolved(pid, fd, ino) for pid, fd, ino in held if ino not in seen]

    if not matched and not unresolved:
        if args.json:
            empty = who.Report(target, [], [], warnings)
            import json

            out.write(json.dumps(who.render_json(empty), indent=1) + "\n")
        for w in warnings:
            print(f"sockscope: {w}", file=sys.stderr)
        raise who.NoMatch(f"no socket matches {escape(target.text)}{_elsewhere_hint(args)}")

    owners = scan(proc)
    if not owners.complete:
        warnings.append(f"some processes' file descriptors could not be read ({unreadable_hint(owners.why)}): "
                        "their sockets show no process")
    report = who.build_report(target, matched, every, owners,
                              lambda pid, name: who.read_process(pid, name, proc),
                              unresolved, warnings, thread_holders(proc))
    if args.json:
        import json

        out.write(json.dumps(who.render_json(report), indent=1) + "\n")
    else:
        enc = (getattr(out, "encoding", None) or "").lower().replace("-", "")
        out.write(who.render_text(report, unicode=enc in ("utf8", "utf16", "utf32")))
    for w in warnings:
        print(f"sockscope: {w}", file=sys.stderr)
    return 0


__all__ = ["main"]
