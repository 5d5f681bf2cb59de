"""The names ``ss -r`` gives the ports of RPC services: ``rpc.`` and the program's name.

With ``-r`` and without ``-n``, where TCP, UDP, DCCP, SCTP, MPTCP or UNIX sockets are listed,
ss asks the host's rpcbind for its table before it reads the filter and lists (``RPCBPROC_DUMP``,
version 4, an ONC RPC call over the UNIX socket ``/var/run/rpcbind.sock``).  A port some program
is registered on, at a wildcard address (``0.0.0.0.H.L``, ``::.H.L``) for ``tcp``/``tcp6``,
``udp``/``udp6`` or ``sctp``, is then shown as ``rpc.NAME`` (the program's name in /etc/rpc),
in the kernel's ephemeral range too, before /etc/services is asked; where several registrations
have a port, the last one rpcbind lists names it.  A filter's port may be such a name
(``sport = :rpc.mountd``) where /etc/services has none.

Like ss, the listing keeps its socket to rpcbind open until it ends (ss never closes it): both
list that socket among their own UNIX sockets (unconnected where no rpcbind runs).

Bounded as ss is not: the whole exchange takes at most :data:`TIMEOUT` (ss waits 5 s for the
reply, and for ``connect`` as long as rpcbind's backlog is full), the reply at most
:data:`MAX_REPLY` bytes and :data:`MAX_ENTRIES` registrations; any fault (no rpcbind, a refusal,
a reply cut short or malformed) leaves every port named as without rpcbind.  A program /etc/rpc
does not name leaves its ports numeric (ss's name for them is memory it never set).
"""

from __future__ import annotations

import _socket  # the C module: socket.py's enum set-up costs start-up time
import struct
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

PATH = "/var/run/rpcbind.sock"  # libtirpc's _PATH_RPCBINDSOCK
RPC_NAMES = "/etc/rpc"
TIMEOUT = 5.0  # seconds for the whole exchange
MAX_REPLY = 1 << 20  # bytes of the reply read at most (a registration is ~60 bytes)
MAX_ENTRIES = 1 << 14
_MAX_TABLE = 1 << 20  # bytes of /etc/rpc read at most (glibc's: ~1 KiB)
_PMAPPROG, _RPCBVERS4, _RPCBPROC_DUMP = 100000, 4, 4
_LAST_FRAGMENT = 0x80000000
_XID = 0x73736370  # one call per connection: any value; the reply's must be the same
#: rpcbind's netids whose ports ss names, and the protocol of the rows they name
_NETIDS = {"tcp": "tcp", "tcp6": "tcp", "udp": "udp", "udp6": "udp", "sctp": "sctp"}
#: the wildcard addresses ss reads a port from (``sscanf(addr, "::.%d.%d")``, then ``"0.0.0.0.%d.%d"``)
_WILDCARDS = ("::.", "0.0.0.0.")
_SPACE = " \t\n\v\f\r"  # (what %d skips first)

_kept: list[_socket.socket] = []  # the sockets to rpcbind, open until the process ends (see above)


class Registrations:
    """rpcbind's table as ss reads it: :attr:`names` (protocol -> port -> ``rpc.NAME``, or None where
    the program has no name) for the table, :meth:`ports` for a filter."""

    __slots__ = ("names", "_by_name")

    def __init__(self, entries: Iterable[tuple[int, str, str]] = (), rpc_names: dict[int, str] | None = None) -> None:
        """``entries``: (program, netid, universal address) in rpcbind's order."""
        known = rpc_names if rpc_names is not None else {}
        self.names: dict[str, dict[int, str | None]] = {}
        self._by_name: dict[tuple[str, str], list[int]] = {}
        for prog, netid, addr in entries:
            proto, port = _NETIDS.get(netid), wildcard_port(addr)
            if proto is None or port is None:
                continue
            name = known.get(prog)
            text = None if name is None else ("rpc." + name)[:127]  # (ss's buffer: 128 bytes)
            self.names.setdefault(proto, {})[port] = text  # (the last registration of a port names it)
            if text is not None:
                self._by_name.setdefault((text, proto), []).append(port)

    def ports(self, name: str, proto: str) -> list[int]:
        """The ports ``name`` (``rpc.PROGRAM``) is registered on for ``proto`` ("tcp"/"udp")."""
        return self._by_name.get((name, proto), [])

    def __bool__(self) -> bool:
        return bool(self.names)


def own_inodes() -> frozenset[int]:
    """The inodes of this process's sockets to rpcbind: ss reads its processes' sockets before it
    opens its own, so its ``-p`` names no owner of that one; the table's owners leave ours out too."""
    import os

    return frozenset(os.fstat(s.fileno()).st_ino for s in _kept if s.fileno() >= 0)


def wildcard_port(addr: str) -> int | None:
    """The port of a universal address ss reads (a wildcard's, ``::.H.L`` or ``0.0.0.0.H.L``: H<<8|L,
    bitwise as ss makes it), None for any other address, a number of over 9 digits, or a port no
    socket has.  (Read by hand: ``re`` would cost a listing with -r ~3 ms of imports.)"""
    for head in _WILDCARDS:
        if addr.startswith(head):
            high, end = _c_int(addr, len(head))
            if high is None or addr[end:end + 1] != ".":
                return None
            low, _ = _c_int(addr, end + 1)
            if low is None:
                return None
            port = (high << 8) | low
            return port if 0 < port <= 0xFFFF else None
    return None


def _c_int(text: str, pos: int) -> tuple[int | None, int]:
    """%d at ``pos``: spaces, a sign, 1 to 9 ASCII digits; (the number or None, where it ends)."""
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    start = pos
    if pos < len(text) and text[pos] in "+-":
        pos += 1
    digits = pos
    while pos < len(text) and "0" <= text[pos] <= "9":
        pos += 1
    if not 1 <= pos - digits <= 9:
        return None, pos
    return int(text[start:pos]), pos


def load_rpc_names(path: str = RPC_NAMES) -> dict[int, str]:
    """program number -> name, the first line of each number in /etc/rpc (``NAME NUMBER [ALIAS …]``,
    ``#`` comments), as glibc's getrpcbynumber reads it (render/names.py reads /etc/protocols so)."""
    from sockscope.render.names import numbered

    return numbered(path, 10, _MAX_TABLE)


def ask(path: str = PATH, timeout: float = TIMEOUT) -> Registrations:
    """rpcbind's registrations (empty if it cannot be asked); its socket stays open (see above)."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    _kept.append(s)
    deadline = time.monotonic() + timeout
    try:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(struct.pack(">11I", _LAST_FRAGMENT | 40, _XID, 0, 2, _PMAPPROG, _RPCBVERS4, _RPCBPROC_DUMP,
                              0, 0, 0, 0))  # a call (AUTH_NONE credentials and verifier), no arguments
        reply = _record(s, deadline)
        entries = decode_dump(reply) if reply is not None else None
    except (OSError, ValueError):
        entries = None
    if not entries:
        return Registrations()
    return Registrations(entries, load_rpc_names())


def _record(s: _socket.socket, deadline: float) -> bytes | None:
    """One record-marked reply (its fragments joined), None when it is cut short, too big or late."""
    out = bytearray()
    while True:
        head = _exactly(s, 4, deadline)
        if head is None:
            return None
        (mark,) = struct.unpack(">I", head)
        size = mark & ~_LAST_FRAGMENT
        if len(out) + size > MAX_REPLY:
            return None
        body = _exactly(s, size, deadline)
        if body is None:
            return None
        out += body
        if mark & _LAST_FRAGMENT:
            return bytes(out)


def _exactly(s: _socket.socket, n: int, deadline: float) -> bytes | None:
    parts: list[bytes] = []
    while n > 0:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        chunk = s.recv(min(n, 1 << 16))
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def decode_dump(reply: bytes) -> list[tuple[int, str, str]] | None:
    """The (program, netid, address) of each registration in an ``RPCBPROC_DUMP`` reply, in its order;
    None unless it is an accepted, successful reply to our call, whole."""
    r = _Reader(reply)
    if r.u32() != _XID or r.u32() != 1 or r.u32() != 0:  # our xid, a REPLY, MSG_ACCEPTED
        return None
    r.u32()  # the verifier's flavour
    r.opaque()
    if r.u32() != 0:  # SUCCESS
        return None
    entries: list[tuple[int, str, str]] = []
    while r.u32():  # (an XDR list: "one more follows")
        if len(entries) >= MAX_ENTRIES:
            return None
        prog, _vers = r.u32(), r.u32()
        netid, addr, _owner = r.string(), r.string(), r.string()
        entries.append((prog, netid, addr))
    return entries


class _Reader:
    """XDR's big-endian words and padded strings; ValueError past the end."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u32(self) -> int:
        end = self.pos + 4
        if end > len(self.data):
            raise ValueError("rpcbind's reply ends early")
        (v,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos = end
        return int(v)

    def opaque(self) -> bytes:
        n = self.u32()
        end = self.pos + n
        if end > len(self.data):
            raise ValueError("rpcbind's reply ends early")
        v = self.data[self.pos:end]
        self.pos = end + (-n % 4)
        return v

    def string(self) -> str:
        return self.opaque().decode("ascii", "replace")


__all__ = ["PATH", "RPC_NAMES", "TIMEOUT", "MAX_REPLY", "MAX_ENTRIES", "Registrations", "ask", "decode_dump",
           "load_rpc_names", "own_inodes", "wildcard_port"]
