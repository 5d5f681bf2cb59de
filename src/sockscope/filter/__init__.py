"""The ss filter language.

:mod:`.states` — the state part (``state NAME…``, ``exclude NAME…``).
:mod:`.parser` — the expression part: argv words (or ``-F FILE``) -> :mod:`.expr` tree
(:mod:`.lexer` makes the tokens, :mod:`.values` reads the values in them).
One tree, two back ends: :mod:`.bytecode` (``INET_DIAG_REQ_BYTECODE`` for inet
dumps, or None) and :mod:`.predicate` (``Callable[[Socket], bool]``, every family; UNIX
name globs by :mod:`.glob`), compiled on its first call by :class:`LazyPredicate` (a listing the
kernel filters alone never calls it), which a UNIX batch's columns ask row by row without records
(:meth:`LazyPredicate.unix_mask`).

The names below are imported on first use, so that ``sockscope.filter.states``
(used by every listing) does not pay for the expression machinery.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable

    from sockscope.records import Socket
    from sockscope.filter.bytecode import compile_bytecode, required_ports
    from sockscope.filter.expr import Expr, FilterSyntaxError, FilterValueError
    from sockscope.filter.parser import Resolver, parse, parse_file
    from sockscope.filter.predicate import compile_predicate, ephemeral_port_range

_WHERE = {
    "Expr": "expr", "FilterSyntaxError": "expr", "FilterValueError": "expr", "required_ports": "bytecode",
    "Resolver": "parser", "parse": "parser", "parse_file": "parser", "compile_bytecode": "bytecode",
    "compile_predicate": "predicate",
    "ephemeral_port_range": "predicate",
}

__all__ = [
    "Expr",
    "FilterSyntaxError",
    "FilterValueError",
    "required_ports",
    "Resolver",
    "parse",
    "parse_file",
    "compile_bytecode",
    "compile_predicate",
    "ephemeral_port_range",
    "LazyPredicate",
]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)  # not importlib: start-up time
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


class LazyPredicate:
    """The filter's userspace predicate, compiled on its first call: a listing
    the kernel filters alone (bytecode, inet tables) never calls it.  ``user``:
    the same without the bytecode's part (``compile_predicate(kernel=False)``)."""

    __slots__ = ("expr", "fn", "kernel", "user")

    def __init__(self, expr: Expr, kernel: bool = True) -> None:
        self.expr, self.kernel = expr, kernel
        self.fn: Callable[[Socket], bool] | None = None
        self.user = LazyPredicate(expr, False) if kernel else self

    def __call__(self, s: Socket) -> bool:
        return (self.fn or self._compiled())(s)

    def unix_mask(self, names: list[bytes], inodes: list[int], peers: list[int],
                  cut: Callable[[list[bytes]], list[bytes]], texts: Callable[[list[bytes]], list[str]]) -> list[bool]:
        """The predicate of each UNIX socket of a batch's columns, no record made
        (:func:`~sockscope.filter.predicate.unix_mask`)."""
        from sockscope.filter.predicate import unix_mask

        return unix_mask(self.expr, self.fn or self._compiled(), names, inodes, peers, cut, texts)

    def rows_mask(self, family: int, rows: Iterable[tuple[str, int, str, int, int | None, int]]) -> list[bool]:
        """The predicate of each row's fields, sockets of ``family`` (netlink, packet), no record
        made (:func:`~sockscope.filter.predicate.rows_mask`)."""
        from sockscope.filter.predicate import rows_mask

        return rows_mask(self.fn or self._compiled(), family, rows)

    def _compiled(self) -> Callable[[Socket], bool]:
        from sockscope.filter.predicate import compile_predicate

        fn = self.fn = compile_predicate(self.expr, kernel=self.kernel)
        return fn
