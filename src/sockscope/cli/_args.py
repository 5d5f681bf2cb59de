"""argparse for the subcommands, with sockscope's error contract: a usage
error is one line on stderr (``sockscope: CMD: problem (see sockscope CMD
--help)``) and a non-zero exit, raised as :class:`~sockscope.errors.UsageError`
so that the registry prints it like every other error."""

from __future__ import annotations

import argparse

from sockscope.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from _typeshed import SupportsWrite


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit as every usage
    error of sockscope does, the listing's, ``who``'s, every subcommand's:
    a :class:`UsageError`, exit status 255 (ss's)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        cmd = self.prog.removeprefix("sockscope ")
        raise UsageError(f"{cmd}: {message} (see {self.prog} --help)")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        """As argparse's, without its ``except OSError: pass``: the help on a full disk is the CLI's
        one line and exit 1, not a silent 0."""
        import sys

        if message:
            (file or sys.stderr).write(message)

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        """argparse's exit (after ``--help``, ``--version``), once what it printed is flushed (a write
        error said by the CLI, as above, not lost in the interpreter's own exit)."""
        import sys

        if message:
            sys.stderr.write(message)
        sys.stdout.flush()
        raise SystemExit(status)


def port_type(low: int) -> Callable[[str], int]:
    """An argparse type: a port number from ``low`` to 65535."""

    def port(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
        if not low <= value <= 65535:
            raise argparse.ArgumentTypeError(f"port out of range {low}-65535: {text!r}")
        return value

    return port


#: the largest count any option takes (a C long's, as ping's -c): bounds the digits too
INT_MAX = (1 << 63) - 1


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low`` (and at most :data:`INT_MAX`)."""

    def integer(text: str) -> int:
        if len(text) > 24:  # (int() of a long text costs; no count needs more digits)
            raise argparse.ArgumentTypeError(f"too large: {text[:24]!r}...")
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {text!r}")
        if value > INT_MAX:
            raise argparse.ArgumentTypeError(f"too large (at most {INT_MAX}): {text!r}")
        return value

    return integer


positive_int = int_at_least(1)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """:func:`seconds`, more than 0: for a window, timeout or deadline that 0 would make fail at once."""
    value = seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value
