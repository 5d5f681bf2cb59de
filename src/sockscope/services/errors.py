"""Errors of ``sockscope serve`` and ``sockscope connect``, with their exit statuses.

Every class derives from :class:`sockscope.errors.SockscopeError`; the CLI
registry prints ``sockscope: <message>`` and exits with ``exit_status``.
``OSError`` is translated here, once, by :func:`connect_error` and
:func:`bind_error`, and callers raise the result ``from`` the original.

Exit statuses (shared by both subcommands, documented in their ``--help``):

====  ===========================================================
0     success
1     connection refused; address/port in use; cannot bind
2     a payload that cannot be sent as asked
255   usage (argparse, raised by the CLI parser)
3     timed out (connect, or waiting for data / a reply)
4     host name does not resolve
5     other network error (unreachable, reset, permission…)
130   interrupted (serve: a signal while waiting for a UNIX path's lock)
====  ===========================================================
"""

from __future__ import annotations

import errno
import os

from sockscope.errors import SockscopeError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_RESOLVE = 4
EXIT_NETWORK = 5
EXIT_INTERRUPTED = 130


class ServiceError(SockscopeError):
    """Base of the serve/connect errors."""

    exit_status = EXIT_NETWORK


class BindError(ServiceError):
    """The server cannot bind or listen on an address."""

    exit_status = EXIT_REFUSED


class AddressInUse(BindError):
    """The port (or UNIX path) is already taken by a live socket."""


class ResolveError(ServiceError):
    """A host name does not resolve."""

    exit_status = EXIT_RESOLVE


class ConnectRefused(ServiceError):
    """Nobody listens there (ECONNREFUSED, or a UNIX path that does not exist)."""

    exit_status = EXIT_REFUSED


class ConnectTimeout(ServiceError):
    """The connect, or the wait for data, took longer than ``--timeout``."""

    exit_status = EXIT_TIMEOUT


class ConnectFailed(ServiceError):
    """Any other network error (unreachable, reset by peer, permission…)."""

    exit_status = EXIT_NETWORK


class PayloadError(ServiceError):
    """The data to send cannot be sent as asked (unreadable file, datagram too large)."""

    exit_status = EXIT_USAGE


class Interrupted(ServiceError):
    """A signal ended a wait that comes before serving (the UNIX path's directory lock)."""

    exit_status = EXIT_INTERRUPTED


def describe_errno(exc: OSError) -> str:
    """Short lower-case text for an OSError: ``connection refused``."""
    if exc.errno is None:
        return str(exc) or type(exc).__name__
    return os.strerror(exc.errno).lower()


def connect_error(exc: OSError, where: str) -> ServiceError:
    """The :class:`ServiceError` for an OSError raised while talking to ``where``."""
    if isinstance(exc, TimeoutError):
        return ConnectTimeout(f"{where}: timed out")
    if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
        return ConnectRefused(f"{where}: {describe_errno(exc)}")
    return ConnectFailed(f"{where}: {describe_errno(exc)}")


def bind_error(exc: OSError, proto: str, host: str, port: int) -> BindError:
    """The :class:`BindError` for an OSError raised by bind() or listen() on host:port."""
    label = "port" if proto == "tcp" else f"{proto} port"
    if exc.errno == errno.EADDRINUSE:
        return AddressInUse(f"{label} {port} already in use on {host}")
    if exc.errno == errno.EADDRNOTAVAIL:
        return BindError(f"cannot bind {host} {label} {port}: address not available on this host")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return BindError(f"cannot bind {host} {label} {port}: permission denied")
    return BindError(f"cannot bind {host} {label} {port}: {describe_errno(exc)}")


__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "EXIT_TIMEOUT",
    "EXIT_RESOLVE",
    "EXIT_NETWORK",
    "EXIT_INTERRUPTED",
    "ServiceError",
    "BindError",
    "AddressInUse",
    "ResolveError",
    "ConnectRefused",
    "ConnectTimeout",
    "ConnectFailed",
    "PayloadError",
    "Interrupted",
    "describe_errno",
    "connect_error",
    "bind_error",
]
