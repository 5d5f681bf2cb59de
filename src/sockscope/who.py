"""``sockscope who TARGET``: who uses a port, a socket file, a process's sockets.

Contract
--------
* :func:`~sockscope.who_target.parse_target` (in :mod:`sockscope.who_target`)
  turns the command-line word into a :class:`Target`: ``:PORT``,
  ``HOST:PORT`` (``[v6]:PORT``, ``*:PORT``, scoped ``[fe80::1]%v0:PORT``;
  ports may be service names), ``PID``, a process name, a UNIX socket path,
  ``@abstract``, or ``inode:N``.  Bad input raises
  :class:`~sockscope.errors.UsageError`.
* :func:`matches` picks the sockets a target names (pure: records in, records
  out).  A port matches either end, like ``lsof -i :PORT``; ``HOST:PORT``
  also matches a listener bound to the wildcard address on that port (it is
  the socket that answers ``HOST:PORT``); with a scope, a socket bound to
  another device does not match; a path matches the listener and the
  connections accepted from it (they carry its name); a PID or a process name
  matches the sockets whose inodes the processes hold.
* :func:`build_report` turns the matches into :class:`Chain` records: the
  socket, every process holding it (pid, name, user, fd, command line), and
  the other end when it lives on this machine: the TCP/UDP socket with the
  reversed address pair, the UNIX socket found by peer inode (or, for an
  unconnected datagram socket, the sockets connected to it), with its holders
  too.  It reads nothing itself: the owner map and a process-info function
  are passed in.
* :func:`render_text` / :func:`render_json` are pure renderers.

Reading ``/proc`` (command lines, users, a PID's fds) is done by the small
functions at the end (:func:`read_process`; :func:`pid_sockets`, through the
owner walk's reader of one process), which say in words when a process vanished
or cannot be read: never a traceback, never an empty answer in its place.
"""

from __future__ import annotations

import os

from sockscope import _lazy_inspect  # noqa: F401  (before dataclasses: see that module)

from dataclasses import dataclass, field  # noqa: E402

from sockscope._addr import AF_INET, AF_INET6, AF_UNIX
from sockscope.errors import CannotInspect, NoSuchProcess, SockscopeError
from sockscope.processes import unreadable_hint
from sockscope.records import Socket, State
from sockscope.render.endpoint import endpoint, escape
from sockscope.who_target import Target, norm as _norm, parse_target

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Protocol, Sequence
else:
    Protocol = object  # (OwnerLookup is a protocol for type checkers, a plain class at run time)


class NoMatch(SockscopeError):
    """Nothing matches the target (exit status 1, like lsof)."""


# --------------------------------------------------------------------------
# Matching (pure)


_WILDCARDS = frozenset({"0.0.0.0", "::"})


def _host_matches(s: Socket, address: str, hosts: frozenset[str]) -> bool:
    if _norm(address) in hosts:
        return True
    if address == "0.0.0.0":
        return any("." in h for h in hosts)
    if address == "::":
        return any(":" in h for h in hosts) or (s.v6only is not True and any("." in h for h in hosts))
    return False


def _scope_ok(s: Socket, scope: str) -> bool:
    """``s`` answers on device ``scope`` (a name or an index): bound to it, or to no device."""
    if not scope or not s.ifindex:
        return True
    from sockscope.render import names

    return scope in (str(s.ifindex), names.ifname(s.ifindex, s.netns))


def is_inet(s: Socket) -> bool:
    return s.family in (AF_INET, AF_INET6)


def _same_path(s: Socket, target: Target) -> bool:
    """``s`` is bound to the socket file ``target`` names: the same file (its inode and device,
    where both are known), else the same name.  A relative name is relative to the directory its
    binder was in, not ours: it is no path here (the file tells, or the exact text)."""
    name, text = s.local.address, str(target.value)
    if not name or name.startswith("@"):
        return False
    if target.file is not None and s.unix_vfs is not None and tuple(s.unix_vfs) == target.file:
        return True
    if not name.startswith("/"):  # the same text, where neither file is known
        return name == text and (target.file is None or s.unix_vfs is None)
    if name == text:
        return True
    try:
        return os.path.realpath(name) == os.path.realpath(text)
    except (OSError, ValueError):
        return False


def matches(target: Target, socks: Iterable[Socket], pid_inodes: frozenset[int] = frozenset()) -> list[Socket]:
    """The sockets ``target`` names, in the order given."""
    out: list[Socket] = []
    kind, value = target.kind, target.value
    for s in socks:
        if kind == "port":
            ok = is_inet(s) and s.netid != "raw" and (s.local.port == value or s.peer.port == value)
        elif kind == "hostport":
            ok = is_inet(s) and s.netid != "raw" and (
                (s.local.port == value and _host_matches(s, s.local.address, target.hosts))
                or (s.peer.port == value and _norm(s.peer.address) in target.hosts)
            ) and _scope_ok(s, target.scope)
        elif kind == "pid" or kind == "process":
            ok = s.inode != 0 and s.inode in pid_inodes
        elif kind == "inode":
            ok = s.inode == value
        elif kind == "abstract":
            ok = s.family == AF_UNIX and s.local.address == value
        else:  # path
            ok = s.family == AF_UNIX and _same_path(s, target)
        if ok:
            out.append(s)
    return out


# --------------------------------------------------------------------------
# Chains


@dataclass(frozen=True, slots=True)
class Process:
    """What ``who`` shows of a process.  ``cmdline`` is None when unreadable or gone."""

    pid: int
    name: str
    uid: int | None = None
    user: str | None = None
    cmdline: tuple[str, ...] | None = None
    alive: bool = True


@dataclass(frozen=True, slots=True)
class Holder:
    """A process holding a socket at ``fd``; ``tid``: the thread whose fd table holds it, where the
    process's own table (its leader's, /proc/PID/fd) does not (the leader has exited)."""

    process: Process
    fd: int
    tid: int | None = None


@dataclass(frozen=True, slots=True)
class End:
    """One socket and every process holding it; for a connection no process holds yet (SYN-RECV, the
    accept queue), the listener that holds it, with that listener's holders."""

    socket: Socket
    holders: tuple[Holder, ...]
    #: why ``holders`` is empty ("" when it is not)
    no_holder: str = ""
    #: the listening socket(s) holding this connection for a process to accept (several where they
    #: share the address with SO_REUSEPORT: the kernel does not say which one)
    listeners: tuple[End, ...] = ()


@dataclass(frozen=True, slots=True)
class Chain:
    """One matched socket, its holders, and the other end.

    ``where``: ``local`` (the peer sockets are in ``peers``), ``remote`` (not
    on this machine), ``missing`` (a loopback or UNIX peer that is not in this
    namespace's tables: closed; a UNIX one may be in another namespace), ``none``
    (listening or not connected).
    """

    end: End
    where: str
    peers: tuple[End, ...] = ()


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A socket fd of the target process whose inode is in none of the tables dumped."""

    pid: int
    fd: int
    inode: int


@dataclass
class Report:
    """What ``who`` found for a target: a chain per matching socket, what could not be followed, and
    warnings (a docstring of its own: without one, ``dataclasses`` imports ``inspect`` to make one)."""

    target: Target
    chains: list[Chain]
    unresolved: list[Unresolved] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    complete: bool = True


class OwnerLookup(Protocol):
    """What ``who`` uses of :class:`sockscope.processes.OwnerMap`."""

    complete: bool
    why: str  # when not complete: why, where known (OwnerMap.why)

    def holders(self, inode: int) -> list[tuple[int, int]]: ...

    def name(self, pid: int) -> str: ...


def _is_loopback(addr: str) -> bool:
    a = _norm(addr)
    return a.startswith("127.") or a == "::1"


class _Index:
    """Look-ups over every socket dumped: by inode, by address pair, by UNIX peer."""

    def __init__(self, socks: Sequence[Socket]) -> None:
        self.by_inode: dict[int, Socket] = {}
        # inet keys carry the namespace: the same address pair can exist in two of them
        self.by_pair: dict[tuple[str | None, str, str, int, str, int], list[Socket]] = {}
        self.by_unix_peer: dict[int, list[Socket]] = {}
        # connected UDP sockets by their peer's (namespace, port), then address: a server socket's
        # clients are one look-up, not a pass over every peer (4,000 of each took seconds)
        self.udp_by_peer: dict[tuple[str | None, int], dict[str, list[Socket]]] = {}
        # TCP listeners by (namespace, family, port): who holds a connection no process has accepted
        self.listening: dict[tuple[str | None, int, int], list[Socket]] = {}
        for s in socks:
            if s.inode:
                self.by_inode.setdefault(s.inode, s)
            if is_inet(s):
                key = (s.netns, s.netid, _norm(s.local.address), s.local.port, _norm(s.peer.address), s.peer.port)
                self.by_pair.setdefault(key, []).append(s)
                if s.state == State.LISTEN and s.netid == "tcp":
                    self.listening.setdefault((s.netns, s.family, s.local.port), []).append(s)
                if s.netid == "udp" and s.peer.port:
                    by_addr = self.udp_by_peer.setdefault((s.netns, s.peer.port), {})
                    by_addr.setdefault(_norm(s.peer.address), []).append(s)
            elif s.family == AF_UNIX and s.peer_inode:
                self.by_unix_peer.setdefault(s.peer_inode, []).append(s)

    def peers(self, s: Socket) -> tuple[str, list[Socket]]:
        if s.family == AF_UNIX:
            if s.peer_inode:
                p = self.by_inode.get(s.peer_inode)
                return ("local", [p]) if p is not None else ("missing", [])
            if s.state == State.LISTEN:
                return "none", []
            # an unconnected datagram socket: the sockets connected to it
            back = [p for p in self.by_unix_peer.get(s.inode, []) if p is not s] if s.inode else []
            return ("local", back) if back else ("none", [])
        if not is_inet(s):
            return "none", []
        if s.state == State.LISTEN or not s.peer.port:
            if s.netid == "udp" and s.local.port:
                back = self._udp_clients(s)
                if back:
                    return "local", back
            return "none", []
        ns = s.netns
        key = (ns, s.netid, _norm(s.peer.address), s.peer.port, _norm(s.local.address), s.local.port)
        found = [p for p in self.by_pair.get(key, []) if p is not s]
        if found:
            return "local", found
        if s.netid == "udp":
            # a connected UDP socket talking to an unconnected server socket
            for addr in (_norm(s.peer.address), "0.0.0.0", "::"):
                for p in self.by_pair.get((ns, "udp", addr, s.peer.port, "0.0.0.0", 0), []) + \
                        self.by_pair.get((ns, "udp", addr, s.peer.port, "::", 0), []):
                    if p is not s:
                        found.append(p)
            if found:
                return "local", found
        return ("missing" if _is_loopback(s.peer.address) else "remote"), []

    def listeners_of(self, s: Socket) -> list[Socket]:
        """The listener(s) holding ``s``, a TCP connection no process holds yet (no inode: a SYN-RECV
        request socket, or one waiting in the accept queue): those of its family bound to its local
        address and port, else to its family's wildcard address on that port.  [] for anything else."""
        if s.inode or s.netid != "tcp" or not is_inet(s) or s.state not in _ACCEPTED_LATER:
            return []
        bound = self.listening.get((s.netns, s.family, s.local.port), [])
        exact = [lst for lst in bound if lst.local.address == s.local.address]
        return exact or [lst for lst in bound if lst.local.address in _WILDCARDS]

    def _udp_clients(self, s: Socket) -> list[Socket]:
        local = _norm(s.local.address)
        out: list[Socket] = []
        for addr, socks in self.udp_by_peer.get((s.netns, s.local.port), {}).items():
            if addr == local or local in _WILDCARDS:
                out.extend(p for p in socks if p is not s)
        return out


#: a TCP connection's states while its listener holds it for a process to accept (no inode yet): a request
#: socket (SYN-RECV), or a socket in the accept queue (its client may have closed already: CLOSE-WAIT)
_ACCEPTED_LATER = (State.SYN_RECV, State.NEW_SYN_RECV, State.ESTABLISHED, State.CLOSE_WAIT)


def _no_holder_reason(s: Socket, complete: bool, why: str = "") -> str:
    if s.state == State.TIME_WAIT:
        return "no process: TIME-WAIT sockets belong to the kernel"
    if s.inode == 0:
        if s.state in (State.SYN_RECV, State.NEW_SYN_RECV):
            return "no process yet: its listener holds it until the handshake ends (TCP_DEFER_ACCEPT: until data comes)"
        if s.state in _ACCEPTED_LATER:
            return "no process yet: waiting in the listener's accept queue"
        return "no process: its process closed it, and the kernel ends the connection (an orphan)"
    if not complete:
        return f"no visible process (some processes could not be read: {unreadable_hint(why)})"
    return "no process of this pid namespace holds it"


def build_report(
    target: Target,
    matched: Sequence[Socket],
    every: Sequence[Socket],
    owners: OwnerLookup,
    process_info: Callable[[int, str], Process],
    unresolved: Sequence[Unresolved] = (),
    warnings: Sequence[str] = (),
    threads: Callable[[int], list[tuple[int, int, int]]] | None = None,
) -> Report:
    """Chains for ``matched``; ``every`` is all sockets dumped (to find peers); ``threads``: the
    (pid, tid, fd) holding an inode no process's table holds (:func:`sockscope.owners.walk.thread_holders`)."""
    index = _Index(every)
    procs: dict[int, Process] = {}

    def proc(pid: int) -> Process:
        p = procs.get(pid)
        if p is None:
            p = procs[pid] = process_info(pid, owners.name(pid))
        return p

    def end(s: Socket) -> End:
        hs = tuple(Holder(proc(pid), fd) for pid, fd in owners.holders(s.inode)) if s.inode else ()
        if not hs and s.inode and threads is not None:
            hs = tuple(Holder(proc(pid), fd, tid) for pid, tid, fd in threads(s.inode))
        if hs:
            return End(s, hs)
        return End(s, hs, _no_holder_reason(s, owners.complete, owners.why),
                   tuple(end(lst) for lst in index.listeners_of(s)))

    chains = []
    for s in matched:
        where, peers = index.peers(s)
        chains.append(Chain(end(s), where, tuple(end(p) for p in peers)))
    return Report(target, chains, list(unresolved), list(warnings), owners.complete)


# --------------------------------------------------------------------------
# Rendering (pure)


def _socket_line(s: Socket, arrow: str) -> str:
    where = f", netns {escape(s.netns)}" if s.netns else ""
    ends = f"{endpoint(s, 'local')} {arrow} {endpoint(s, 'peer')}"
    return f"{s.netid} {s.state.ss_name}  {ends}  (inode {s.inode}{where})"


def command_text(p: Process) -> str:
    if p.cmdline is None:
        return "(process has exited)" if not p.alive else "(command line not readable)"
    if not p.cmdline:
        return f"[{p.name}]"
    import shlex

    return escape(shlex.join(p.cmdline))


def _holder_lines(e: End, label: str, arrow: str) -> list[str]:
    """``e``'s holders (pid, name, user, fd, command line), or why it has none and the listener
    that holds it, with that listener's holders."""
    pad = " " * len(label)
    if not e.holders:
        lines = [f"{label}{e.no_holder}"]
        for lst in e.listeners:
            lines.append(f"  listener {_socket_line(lst.socket, arrow)}")
            lines += _holder_lines(lst, label, arrow)
        return lines
    lines = []
    for i, h in enumerate(e.holders):
        p = h.process
        user = p.user if p.user is not None else (str(p.uid) if p.uid is not None else "?")
        thread = f" (thread {h.tid})" if h.tid is not None else ""
        lines.append(f"{label if i == 0 else pad}pid {p.pid} {escape(p.name)}  user {user}  fd {h.fd}{thread}")
        lines.append(f"{pad}  {command_text(p)}")
    return lines


_WHERE_TEXT = {
    "none": "none",
    "remote": "on another machine",
    # (a loopback peer lives in this namespace: missing from its tables, it is closed)
    "missing": "on this machine, but closed: no socket of this network namespace has that address now",
}
#: a UNIX peer's socket may have gone to another namespace (an fd passed), or be closed
_UNIX_MISSING = "in none of this network namespace's tables (closed, or in another namespace)"


def render_text(report: Report, unicode: bool = True) -> str:
    """The human-readable report, one block per chain."""
    arrow = "↔" if unicode else "<->"
    blocks: list[str] = []
    for c in report.chains:
        s = c.end.socket
        lines = [_socket_line(s, arrow)]
        lines += _holder_lines(c.end, "  process  ", arrow)
        if c.where == "local":
            for p in c.peers:
                lines.append(f"  peer     {_socket_line(p.socket, arrow)}")
                lines += _holder_lines(p, "  process  ", arrow)
        else:
            text = _UNIX_MISSING if c.where == "missing" and s.family == AF_UNIX else _WHERE_TEXT[c.where]
            if c.where == "none":
                text = "none (listening)" if s.state == State.LISTEN else "none (not connected)"
            lines.append(f"  peer     {text}")
        blocks.append("\n".join(lines))
    for u in report.unresolved:
        blocks.append(f"pid {u.pid} fd {u.fd}: socket inode {u.inode} is in none of the socket tables "
                      "(an unbound TCP socket, one in another network namespace, or a family "
                      "sockscope does not list)")
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def _process_dict(h: Holder) -> dict[str, Any]:
    p = h.process
    return {"pid": p.pid, "name": p.name, "uid": p.uid, "user": p.user, "fd": h.fd, "tid": h.tid,
            "cmdline": list(p.cmdline) if p.cmdline is not None else None, "alive": p.alive}


def _end_dict(e: End) -> dict[str, Any]:
    d = e.socket.to_dict()
    d.pop("owners", None)
    # listeners: where no process holds a connection yet, the listening socket(s) holding it ([] else)
    return {"socket": d, "processes": [_process_dict(h) for h in e.holders], "no_process": e.no_holder or None,
            "listeners": [_end_dict(lst) for lst in e.listeners]}


def render_json(report: Report) -> dict[str, Any]:
    """A JSON-ready dict of the report."""
    return {
        "target": report.target.text,
        "kind": report.target.kind,
        "matches": [
            {**_end_dict(c.end), "peer": {"where": c.where, "sockets": [_end_dict(p) for p in c.peers]}}
            for c in report.chains
        ],
        "unresolved": [{"pid": u.pid, "fd": u.fd, "inode": u.inode} for u in report.unresolved],
        "complete": report.complete,
        "warnings": list(report.warnings),
    }


# --------------------------------------------------------------------------
# /proc readers


_users: dict[int, str | None] = {}


def user_name(uid: int) -> str | None:
    if uid not in _users:
        try:
            import pwd

            _users[uid] = pwd.getpwuid(uid).pw_name
        except (KeyError, ImportError):
            _users[uid] = None
    return _users[uid]


def read_process(pid: int, name: str = "", proc: str = "/proc") -> Process:
    """pid, name, effective user and command line; ``alive=False`` if it is gone."""
    uid: int | None = None
    try:
        with open(f"{proc}/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    uid = int(line.split()[2])
                elif line.startswith(b"Name:") and not name:
                    name = os.fsdecode(line[5:].strip())
                    if uid is not None:
                        break
    except FileNotFoundError:
        return Process(pid, name, None, None, None, alive=False)
    except (OSError, ValueError, IndexError):
        pass
    cmdline: tuple[str, ...] | None
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            raw = f.read()
        if not raw:  # a kernel thread, or a leader that has exited: its threads' memory has the line
            raw = _thread_cmdline(pid, proc)
        cmdline = tuple(os.fsdecode(a) for a in raw.split(b"\0")[: -1 if raw.endswith(b"\0") else None]) \
            if raw else ()
    except FileNotFoundError:
        return Process(pid, name, uid, user_name(uid) if uid is not None else None, None, alive=False)
    except OSError:
        cmdline = None
    return Process(pid, name, uid, user_name(uid) if uid is not None else None, cmdline)


def _thread_cmdline(pid: int, proc: str) -> bytes:
    """The command line as another thread of ``pid`` reads it (b"" where it has none)."""
    try:
        tids = os.listdir(f"{proc}/{pid}/task")
        tid = next((t for t in tids if t != str(pid)), None)
        if tid is None:
            return b""
        with open(f"{proc}/{pid}/task/{tid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def pid_sockets(pid: int, proc: str = "/proc") -> list[tuple[int, int]]:
    """(fd, inode) of every socket ``pid`` holds, by fd (read as the owner walk reads each process).

    Raises :class:`~sockscope.errors.NoSuchProcess`, or :class:`~sockscope.errors.CannotInspect`
    (:class:`~sockscope.errors.AccessDenied` where permission is denied; another error reading its
    fds said as it is: never taken for "no sockets").
    """
    from sockscope.owners import model, walk

    try:
        inodes, fds = walk.process_sockets(proc, pid)
    except (FileNotFoundError, ProcessLookupError):
        raise NoSuchProcess(f"no such process: {pid}") from None
    except OSError as exc:  # (AccessDenied where permission is denied, else CannotInspect: said as it is)
        raise model.fds_error(proc, pid, exc) from None
    if not os.path.exists(f"{proc}/{pid}/stat"):
        raise NoSuchProcess(f"no such process: {pid} (it exited)")
    # its threads' own tables too: its leader may have exited (then they hold every socket), or a
    # thread have unshared its table (CLONE_FILES)
    threads = walk.thread_sockets(pid, proc, inodes)
    return sorted({*zip(fds, inodes), *((fd, ino) for _tid, fd, ino in threads)})


def pids_sockets(pids: Iterable[int], proc: str = "/proc") -> tuple[list[tuple[int, int, int]], list[str]]:
    """(pid, fd, inode) of every socket the ``pids`` hold, by pid then fd, and
    a note for each pid whose fds could not be read (those that exited are
    skipped).  Raises :class:`CannotInspect` when none of them could be read."""
    out: list[tuple[int, int, int]] = []
    notes: list[str] = []
    seen = 0
    for pid in pids:
        try:
            fds = pid_sockets(pid, proc)
        except NoSuchProcess:
            continue
        except CannotInspect as exc:
            notes.append(str(exc))
            continue
        seen += 1
        out.extend((pid, fd, ino) for fd, ino in fds)
    if notes and not seen:
        raise CannotInspect(notes[0] if len(notes) == 1 else f"{notes[0]} (and {len(notes) - 1} more)")
    return out, notes


__all__ = [
    "Target", "parse_target", "matches", "pids_sockets", "build_report", "render_text", "render_json",
    "Process", "Holder", "End", "Chain", "Report", "Unresolved",
    "NoMatch", "NoSuchProcess", "CannotInspect", "read_process", "pid_sockets",
]
