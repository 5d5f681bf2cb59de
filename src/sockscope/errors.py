"""The one exception hierarchy of sockscope.

Every error the library raises on purpose derives from :class:`SockscopeError`.
``OSError`` is translated once, where the socket or file is touched, with
``raise ... from``.  The CLI maps these to one line on stderr and an exit status.
"""

from __future__ import annotations

import errno as _errno


class SockscopeError(Exception):
    """Base class of every sockscope error."""

    exit_status: int = 1


class UsageError(SockscopeError):
    """Bad command-line input (unknown option, bad state name, bad filter)."""

    exit_status = 255  # like ss's usage errors


class DecodeError(SockscopeError):
    """Bytes from the kernel (or a capture) that do not parse."""


class NetlinkError(SockscopeError):
    """The kernel answered a netlink request with an error."""

    def __init__(self, op: str, errno: int, message: str | None = None) -> None:
        self.op = op
        self.errno = errno
        super().__init__(message or f"{op}: {_errno_text(errno)}")


class NotSupported(NetlinkError):
    """The kernel has no diag module for this family or protocol."""

    def __init__(self, op: str, errno: int = _errno.ENOENT) -> None:
        super().__init__(op, errno, f"{op}: not supported by this kernel")


class PermissionDenied(NetlinkError):
    """The kernel refused the request (EPERM/EACCES)."""

    def __init__(self, op: str, errno: int = _errno.EPERM) -> None:
        super().__init__(op, errno, f"{op}: permission denied")


def _errno_text(code: int) -> str:
    import os

    return f"{os.strerror(code)} (errno {code})"


def netlink_error(op: str, code: int) -> NetlinkError:
    """The right :class:`NetlinkError` subclass for a kernel errno."""
    if code in (_errno.ENOENT, _errno.EOPNOTSUPP, _errno.EPROTONOSUPPORT, _errno.EAFNOSUPPORT):
        return NotSupported(op, code)
    if code in (_errno.EPERM, _errno.EACCES):
        return PermissionDenied(op, code)
    return NetlinkError(op, code)


__all__ = [
    "SockscopeError",
    "UsageError",
    "DecodeError",
    "NetlinkError",
    "NotSupported",
    "PermissionDenied",
    "netlink_error",
]
