"""Which addresses ``sockscope serve`` binds, and the listening sockets themselves.

Contract:

* :func:`default_addresses` resolves ``localhost`` (every address, v4 and v6)
  and the host name, and keeps the loopback ones.  A host-name address that
  is not loopback is *not* bound: it comes back as a note for stderr.
* :func:`resolve_hosts` resolves explicit ``--host`` values; every address
  they resolve to is bound.  A name that does not resolve raises
  :class:`~sockscope.services.errors.ResolveError`.
* :func:`open_inet` returns a bound socket (listening, for TCP) or raises
  :class:`~sockscope.services.errors.BindError` with a one-line message.
  TCP sets ``SO_REUSEADDR`` (which on Linux never lets two listeners share a
  port); UDP does not, since there it *would* let two servers share a port.
* :class:`UnixListener` binds a UNIX stream socket at a path.  The caller
  holds an exclusive ``flock`` of the parent directory (:class:`DirLock`, so
  concurrent sockscope servers serialise; taken without blocking, so that the
  wait can be bounded and interrupted).  An existing path is probed: a live
  listener is refused, a stale socket from a crashed run is replaced if this
  user owns it (never one of another user, not even as root), anything that
  is not a socket is left alone and refused.  :meth:`UnixListener.remove` unlinks the path on exit only
  if it is still the socket this process bound.  ``@name`` binds the abstract
  namespace (no file).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from sockscope.hostport import not_a_host_name
from sockscope.services.errors import (
    AddressInUse,
    BindError,
    ResolveError,
    bind_error,
    describe_errno,
)


@dataclass(frozen=True, slots=True)
class BindAddress:
    """One numeric address to bind."""

    family: int
    host: str
    port: int

    def __str__(self) -> str:
        return format_hostport(self.host, self.port)


def format_hostport(host: str, port: int) -> str:
    """``127.0.0.1:80``, ``[::1]:80``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _resolve(name: str, port: int, socktype: int) -> list[BindAddress]:
    try:
        infos = socket.getaddrinfo(name, port, socket.AF_UNSPEC, socktype, 0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ResolveError(f"cannot resolve host {name!r}: {exc.strerror}") from exc
    except (UnicodeError, ValueError) as exc:  # (a label over 63 characters, or empty; a NUL)
        raise ResolveError(f"cannot resolve host {name!r}: {not_a_host_name(name, exc)}") from None
    out: list[BindAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        addr = BindAddress(family, str(sockaddr[0]), port)
        if addr not in out:
            out.append(addr)
    return out


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _ordered(addrs: list[BindAddress]) -> list[BindAddress]:
    return sorted(addrs, key=lambda a: (a.family != socket.AF_INET, a.host))


def default_addresses(port: int, socktype: int) -> tuple[list[BindAddress], list[str]]:
    """Loopback addresses of ``localhost`` and of the host name; plus notes for stderr."""
    notes: list[str] = []
    chosen: list[BindAddress] = []
    try:
        chosen = [a for a in _resolve("localhost", port, socktype) if _is_loopback(a.host)]
    except ResolveError:
        notes.append("'localhost' does not resolve; binding 127.0.0.1")
    if not chosen:
        chosen = [BindAddress(socket.AF_INET, "127.0.0.1", port)]
    hostname = socket.gethostname()
    try:
        named = _resolve(hostname, port, socktype)
    except ResolveError:
        named = []
        notes.append(f"host name {hostname!r} does not resolve; serving loopback only")
    skipped = []
    for addr in named:
        if _is_loopback(addr.host):
            if addr not in chosen:
                chosen.append(addr)
        else:
            skipped.append(addr.host)
    if skipped:
        listed = ", ".join(skipped)
        notes.append(
            f"host name {hostname!r} resolves to {listed}, which is not loopback: not bound "
            f"(use --host {skipped[0]}, or --host 0.0.0.0, to serve other interfaces)"
        )
    return _ordered(chosen), notes


def resolve_hosts(hosts: Sequence[str], port: int, socktype: int) -> list[BindAddress]:
    """Every address the ``--host`` values resolve to, without duplicates."""
    out: list[BindAddress] = []
    for name in hosts:
        for addr in _resolve(name, port, socktype):
            if addr not in out:
                out.append(addr)
    return _ordered(out)


def open_inet(addr: BindAddress, proto: str, backlog: int) -> socket.socket:
    """A socket bound to ``addr`` (listening with ``backlog`` for TCP); BindError if not."""
    socktype = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(addr.family, socktype)
    try:
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if addr.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((addr.host, addr.port))
        if proto == "tcp":
            sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise bind_error(exc, proto, addr.host, addr.port) from exc
    return sock


def bound_port(sock: socket.socket) -> int:
    """The port a bound inet socket got (useful with ``--port 0``)."""
    return int(sock.getsockname()[1])


class UnixListener:
    """A listening UNIX stream socket at ``path`` (``@name``: abstract namespace)."""

    def __init__(self, path: str, backlog: int) -> None:
        self.path = path
        self.notes: list[str] = []
        self._identity: tuple[int, int] | None = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if path.startswith("@"):
                self._bind_abstract(backlog)
            else:
                self._bind_path(backlog)
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    def _bind_abstract(self, backlog: int) -> None:
        try:
            self.sock.bind("\0" + self.path[1:])
            self.sock.listen(backlog)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(f"UNIX socket {self.path} is in use by a live server") from exc
            raise BindError(f"cannot bind UNIX socket {self.path}: {describe_errno(exc)}") from exc

    def _bind_path(self, backlog: int) -> None:
        self._replace_stale()
        try:
            self.sock.bind(self.path)
            self.sock.listen(backlog)
            st = os.stat(self.path)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(f"UNIX socket {self.path} is in use") from exc
            raise BindError(f"cannot bind UNIX socket {self.path}: {describe_errno(exc)}") from exc
        self._identity = (st.st_dev, st.st_ino)

    def _replace_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BindError(f"cannot bind UNIX socket {self.path}: {describe_errno(exc)}") from exc
        if not stat.S_ISSOCK(st.st_mode):
            raise BindError(f"{self.path} exists and is not a socket; refusing to replace it")
        if _unix_is_live(self.path):
            raise AddressInUse(f"UNIX socket {self.path} is in use by a live server")
        if st.st_uid != os.geteuid():
            raise BindError(
                f"stale UNIX socket {self.path} belongs to uid {st.st_uid}; refusing to remove another user's file"
            )
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BindError(f"cannot remove stale socket {self.path}: {describe_errno(exc)}") from exc
        self.notes.append(f"replaced stale UNIX socket {self.path} (no server was listening)")

    def remove(self) -> None:
        """Unlink the path if it is still the socket this listener bound."""
        if self._identity is None:
            return
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass
        self._identity = None


class DirLock:
    """An exclusive ``flock`` of the directory that holds a UNIX socket path."""

    def __init__(self, path: str) -> None:
        self.directory = os.path.dirname(os.path.abspath(path))
        try:
            self.fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise BindError(f"cannot bind UNIX socket {path}: {self.directory}: {describe_errno(exc)}") from exc

    def try_lock(self) -> bool:
        """Take the lock if it is free; never waits."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise BindError(f"cannot lock {self.directory}: {describe_errno(exc)}") from exc
        return True

    def holder(self) -> int | None:
        """The pid holding a FLOCK on the directory, from /proc/locks (None if unknown)."""
        try:
            st = os.fstat(self.fd)
            with open("/proc/locks", encoding="ascii", errors="replace") as locks:
                rows = locks.read().splitlines()
        except OSError:
            return None
        inode = f":{st.st_ino}"
        for row in rows:
            fields = row.split()
            if "FLOCK" in fields and len(fields) >= 6 and fields[5].endswith(inode):
                try:
                    return int(fields[4])
                except ValueError:
                    continue
        return None

    def close(self) -> None:
        """Close the directory (which releases the lock)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _unix_is_live(path: str) -> bool:
    """True when something accepts (or queues) connections at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except (BlockingIOError, TimeoutError):
        return True  # backlog full: very much alive
    except OSError as exc:
        raise BindError(f"cannot probe UNIX socket {path}: {describe_errno(exc)}") from exc
    finally:
        probe.close()
    return True


__all__ = [
    "BindAddress",
    "format_hostport",
    "default_addresses",
    "resolve_hosts",
    "open_inet",
    "bound_port",
    "UnixListener",
    "DirLock",
]
