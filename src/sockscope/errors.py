"""The one exception hierarchy of sockscope.

Every error the library raises on purpose derives from :class:`SockscopeError`.
``OSError`` is translated once, where the socket or file is touched, with
``raise ... from``.  The CLI maps these to one line on stderr and an exit status.
"""

from __future__ import annotations

import errno as _errno


class SockscopeError(Exception):
    """Base class of every sockscope error.

    ``str(exc)`` is always one printable line of at most about
    :data:`MAX_MESSAGE` characters: control characters in the message (often
    echoed input) are escaped by :func:`printable`.
    """

    exit_status: int = 1

    def __str__(self) -> str:
        text = printable(super().__str__())
        if len(text) > MAX_MESSAGE:  # a huge word echoed: keep both ends
            text = text[:MAX_MESSAGE // 2] + "..." + text[-(MAX_MESSAGE // 2):]
        return text


#: The longest error message, in characters (longer ones lose their middle).
MAX_MESSAGE = 1000


def printable(text: str) -> str:
    """``text`` with every non-printable character (newline, escape, NUL, a
    lone surrogate from undecodable bytes, U+2028 …) written as ``\\xNN``,
    ``\\uNNNN`` or ``\\UNNNNNNNN`` (a byte that was not UTF-8, kept by
    ``os.fsdecode`` as a surrogate, as ``\\xNN`` of that byte): echoed input
    stays on one line and cannot drive the terminal.  The one escape of the
    project: errors, logs, names in ``who`` and ``top``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # surrogateescape: the byte that was not UTF-8
        n -= 0xDC00
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


class UsageError(SockscopeError):
    """Bad command-line input (unknown option, bad state name, bad filter)."""

    exit_status = 255  # like ss's usage errors


class FilterSyntaxError(UsageError):
    """A filter expression that does not parse (exit status 255, like ss's grammar errors).

    Raised by :mod:`sockscope.filter` (importable from there too).

    ``expression`` is the whole expression as one printable line (control
    characters escaped by :func:`printable`), ``position``
    the column of the offending token in it (``len(expression)`` for "ended
    too early"), ``reason`` the message without the quoted expression.  The
    message and :attr:`caret` show at most :data:`SHOWN` characters of a long
    expression, around the offending token, and of a long reason, its ends.
    """

    def __init__(self, expression: str, reason: str, position: int) -> None:
        position = max(0, min(position, len(expression)))
        self.expression = printable(expression)
        self.position = len(printable(expression[:position]))
        reason = printable(reason)
        if len(reason) > SHOWN:  # a huge token quoted in it: keep both ends
            reason = reason[:SHOWN // 2] + "..." + reason[-(SHOWN // 2):]
        self.reason = reason
        shown, _ = self._shown()
        super().__init__(f'bad filter "{shown}": {self.reason}')

    def _shown(self) -> tuple[str, int]:
        """(the part of the expression shown, the caret's column in it)."""
        text, pos = self.expression, self.position
        if len(text) <= SHOWN:
            return text, pos
        start = max(0, min(pos - SHOWN // 2, len(text) - SHOWN))
        head, tail = ("..." if start else ""), ("..." if start + SHOWN < len(text) else "")
        return head + text[start:start + SHOWN] + tail, pos - start + len(head)

    @property
    def caret(self) -> str:
        """Two lines: the expression (as in the message), then a ``^`` under the bad token."""
        shown, col = self._shown()
        return f"{shown}\n{' ' * col}^"


class FilterValueError(FilterSyntaxError):
    """A well-formed expression with a value that does not parse or name anything:
    an address, port, device, mark or cgroup.  ss says "Cannot parse …" and
    exits 1 for these, and so does sockscope."""

    exit_status = 1


#: The most characters of a filter expression an error message quotes.
SHOWN = 200


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


class NoSuchProcess(SockscopeError, ProcessLookupError):
    """No process has the pid given, or it ended while its fds were read (psutil's
    ``NoSuchProcess``: :func:`~sockscope.psutil_api.process_connections`; ``who PID``)."""


class CannotInspect(SockscopeError):
    """A process's fds could not be read: the reason as it is (permission, or an I/O error of
    /proc), never taken for "no sockets"."""


class AccessDenied(CannotInspect, PermissionError):
    """Reading a process's fds was refused: not root, another user namespace, a security module
    (psutil's ``AccessDenied``)."""


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
    "FilterSyntaxError",
    "FilterValueError",
    "DecodeError",
    "NetlinkError",
    "NotSupported",
    "PermissionDenied",
    "NoSuchProcess",
    "CannotInspect",
    "AccessDenied",
    "netlink_error",
    "printable",
]
