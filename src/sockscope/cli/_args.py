"""argparse for the subcommands, with sockscope's error contract: a usage
error is one line on stderr (``sockscope: CMD: problem (see sockscope CMD
--help)``) and a non-zero exit, raised as :class:`~sockscope.errors.UsageError`
so that the registry prints it like every other error."""

from __future__ import annotations

import argparse

from sockscope.errors import UsageError


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line; ``usage_status`` is the exit status."""

    def __init__(self, *args: object, usage_status: int = 255, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.usage_status = usage_status

    def error(self, message: str) -> None:  # type: ignore[override]
        cmd = self.prog.removeprefix("sockscope ")
        exc = UsageError(f"{cmd}: {message} (see {self.prog} --help)")
        exc.exit_status = self.usage_status
        raise exc
