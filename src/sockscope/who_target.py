"""What ``sockscope who TARGET`` was asked about: the command-line word parsed.

:func:`parse_target` turns the word into a :class:`Target`; bad input raises
:class:`~sockscope.errors.UsageError` (one line, exit 255).  The forms, tried
in this order (the first that fits wins):

1. ``inode:N``                  the socket with this inode
2. ``@NAME``                    a UNIX socket with this abstract name
3. ``N`` (ASCII digits only)    a PID
4. anything with a ``/``        a UNIX socket path (the socket bound to that file, by whatever
                                name; or, where there is no such file, bound by that name)
5. ``:PORT``, ``*:PORT``, ``HOST:PORT``, ``[V6]:PORT``: an address.  HOST may
   carry a scope (a device), written either way ss and RFC 4007 do:
   ``[fe80::1]%v0:9000`` (what ss and the listing print),
   ``[fe80::1%v0]:9000``, ``127.0.0.1%lo:9999``.  v4-mapped addresses
   (``[::ffff:127.0.0.1]:9003``) match the same connections as their IPv4.
6. a bare word that names a UNIX socket file in the current directory: that path
7. any other bare word of letters, digits and ``._+-``: a process name, like
   ``lsof -c`` (the kernel's ``comm``, exact; a longer name also matches its
   first 15 bytes, all the kernel keeps).  A bare host name is never a
   target: a host needs a port (``localhost:22``).  Other words are usage
   errors (a process with such a name is found by its PID).

Numbers are bounded before they are converted: a PID has at most 10 digits,
a port 5, an inode 20 (a 4,301-digit number is a usage error, not Python's
int-string limit escaping).
"""

from __future__ import annotations

import _socket  # (the C module: ``socket``'s enums cost ~6 ms of a start)
import os

from sockscope import _lazy_inspect  # noqa: F401  (before dataclasses: see that module)

from dataclasses import dataclass  # noqa: E402

from sockscope import hostport
from sockscope._addr import AF_INET, AF_INET6
from sockscope.errors import UsageError
from sockscope.hostport import shown as _shown


FORMS = ":PORT, HOST:PORT, PID, a process name, a UNIX socket path, @abstract or inode:N"


@dataclass(frozen=True, slots=True)
class Target:
    """What ``who`` was asked about.

    ``kind`` is one of ``port``, ``hostport``, ``pid``, ``process``, ``path``,
    ``abstract``, ``inode``; ``hosts`` are textual IP addresses (``hostport``,
    as :func:`norm` gives them), ``scope`` the device of a scoped address
    (``v0`` of ``[fe80::1%v0]:9000``; "" for none), ``value`` the port, pid,
    process name, inode or socket name; ``file`` the (inode, device) of a ``path`` target's
    socket file where it exists, the device as the kernel's ``UNIX_DIAG_VFS`` gives it (its
    own ``dev_t``: major << 20 | minor), so that a socket bound to it is found whatever name
    it was bound by (a relative one, another link).
    """

    text: str
    kind: str
    value: int | str
    hosts: frozenset[str] = frozenset()
    scope: str = ""
    file: tuple[int, int] | None = None

    @property
    def needs_unix(self) -> bool:
        return self.kind in ("pid", "process", "path", "abstract", "inode")

    @property
    def needs_inet(self) -> bool:
        return self.kind in ("port", "hostport", "pid", "process", "inode")

    @property
    def by_process(self) -> bool:
        """The target names processes (their sockets are found by their fds)."""
        return self.kind in ("pid", "process")


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _port(text: str, whole: str) -> int:
    if _digits(text):
        if len(text) <= 5 and 0 < int(text) < 65536:
            return int(text)
        raise UsageError(f"port out of range in {_shown(whole)}")
    if not text:
        raise UsageError(f"missing port in {_shown(whole)} (expected {FORMS})")
    for proto in ("tcp", "udp"):
        try:
            return _socket.getservbyname(text, proto)
        except (OSError, UnicodeError, ValueError):
            continue
    raise UsageError(f"unknown port or service name {_shown(text)}")


def norm(addr: str) -> str:
    """An address as compared: v4-mapped IPv6 addresses as plain IPv4."""
    if addr.startswith("::ffff:") and "." in addr:
        return addr[7:]
    return addr


def canonical(host: str) -> str | None:
    """The text the kernel's records use for a literal address (glibc's
    ``inet_ntop``: ``::ffff:127.0.0.1``, not ``::ffff:7f00:1``), or None."""
    from sockscope._addr import ntop

    for family, af in ((AF_INET, _socket.AF_INET), (AF_INET6, _socket.AF_INET6)):
        try:
            return ntop(family, _socket.inet_pton(af, host))
        except (OSError, ValueError, UnicodeError):
            continue
    return None


def _resolve(host: str, whole: str) -> frozenset[str]:
    literal = canonical(host)
    if literal is not None:
        return frozenset({norm(literal)})
    try:
        infos = _socket.getaddrinfo(host, None, 0, _socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise UsageError(f"cannot resolve host {_shown(host)} in {_shown(whole)}: {exc}") from None
    out = set()
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        out.add(norm(canonical(text) or text))
    return frozenset(out)


def _scoped(host: str, scope: str, whole: str) -> tuple[str, str]:
    """(address, device) of ``host`` with an optional ``%scope`` inside it, plus one given after it."""
    if "%" in host:
        if scope:
            raise UsageError(f"two scopes in {_shown(whole)}")
        host, scope = host.split("%", 1)
    if "%" in scope or (scope == "" and whole.count("%")):
        raise UsageError(f"bad scope in {_shown(whole)} (expected ADDRESS%DEVICE)")
    return host, scope


def _address(text: str) -> Target:
    """``:PORT``, ``*:PORT``, ``HOST[%IF]:PORT``, ``[V6[%IF]][%IF]:PORT`` (split by
    :func:`sockscope.hostport.split`, as every command's ``HOST:PORT``)."""
    if text.startswith(":"):
        return Target(text, "port", _port(text[1:], text))
    try:
        host, port, after = hostport.split(text, scope=True)
    except hostport.BadHostPort as exc:
        raise UsageError(str(exc)) from None
    if port is None:
        raise UsageError(f"missing port in {_shown(text)} (expected {FORMS})")
    if text.startswith("["):
        host, scope = _scoped(host, after, text)
        if canonical(host) is None or ":" not in host:
            raise UsageError(f"bad IPv6 address in {_shown(text)}")
        return Target(text, "hostport", _port(port, text), _resolve(host, text), scope)
    if host == "*":
        return Target(text, "port", _port(port, text))
    host, scope = _scoped(host, "", text)
    if not host:
        raise UsageError(f"missing host in {_shown(text)} (expected {FORMS})")
    return Target(text, "hostport", _port(port, text), _resolve(host, text), scope)


def _socket_file(path: str) -> tuple[int, int] | None:
    """(inode, kernel dev_t) of the socket file at ``path``, or None (no such file, not a socket)."""
    import stat

    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISSOCK(st.st_mode):
        return None
    return st.st_ino, os.major(st.st_dev) << 20 | os.minor(st.st_dev)


def _path(text: str) -> Target:
    return Target(text, "path", text, file=_socket_file(text))


def parse_target(text: str) -> Target:
    """The :class:`Target` a command-line word names (see the module docstring for the order)."""
    if not text:
        raise UsageError(f"empty target (expected {FORMS})")
    if text[:6].lower() == "inode:":
        n = text[6:]
        if not _digits(n) or len(n) > 20 or int(n) == 0 or int(n) >= 1 << 64:
            raise UsageError(f"bad inode in {_shown(text)}")
        return Target(text, "inode", int(n))
    if text.startswith("@"):
        return Target(text, "abstract", text)
    if _digits(text):
        if len(text) > 10 or not 0 < int(text) < 1 << 31:
            raise UsageError(f"bad PID {_shown(text)}")
        return Target(text, "pid", int(text))
    if "/" in text:
        return _path(text)
    if text.startswith((":", "[")) or text.count(":") == 1:
        return _address(text)
    if ":" in text:
        raise UsageError(f"cannot understand target {_shown(text)} (expected {FORMS}; IPv6 goes in brackets)")
    if _socket_file(text) is not None:
        return _path(text)
    if not all(c.isalnum() or c in "._+-" for c in text):
        raise UsageError(f"cannot understand target {_shown(text)} (expected {FORMS})")
    return Target(text, "process", text)


def check_scope(target: Target) -> None:
    """A scoped target's device must exist in the network namespace looked in (as ss's ``%DEV``
    and ``dev`` refuse a name that is no device): a misspelt one would leave out nothing."""
    scope = target.scope
    if not scope:
        return
    try:
        if _digits(scope):
            _socket.if_indextoname(int(scope))
        else:
            _socket.if_nametoindex(scope)
    except (OSError, ValueError, OverflowError, UnicodeError):
        raise UsageError(f"no device {_shown(scope)} in this network namespace, in {_shown(target.text)}") from None


def pids_named(name: str, proc: str = "/proc") -> list[int]:
    """The pids whose ``comm`` is ``name`` (or its first 15 characters, as the kernel keeps them)."""
    want = os.fsencode(name)
    short = want[:15] if len(want) > 15 else want
    from sockscope.owners.walk import pids_of

    try:
        pids = pids_of(proc)
    except OSError:
        return []
    out = []
    for pid in pids:
        try:
            with open(f"{proc}/{pid}/comm", "rb") as f:
                have = f.read(64).removesuffix(b"\n")
        except OSError:
            continue  # gone
        if have == want or have == short:
            out.append(pid)
    return out


__all__ = ["Target", "parse_target", "norm", "canonical", "pids_named", "check_scope", "FORMS"]
