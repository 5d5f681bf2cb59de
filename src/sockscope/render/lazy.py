"""A bounded table of texts made on first use: the detail texts' and JSON's per-value caches."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


class Texts(dict):  # type: ignore[type-arg]  # (dict[Any, str]: typing is not imported at run time)
    """A value -> its text, made on first use by ``make``; ``known`` texts to begin with.  Cleared
    when it holds ``bound`` texts: the values may be ever new (a long listing's inodes, a path each)."""

    __slots__ = ("make", "known", "bound")

    def __init__(self, make: Callable[[Any], str], known: dict[Any, str] | None = None, bound: int = 1 << 16) -> None:
        self.known = known or {}
        super().__init__(self.known)
        self.make = make
        self.bound = bound

    def __missing__(self, key: Any) -> str:
        if len(self) >= self.bound:
            self.clear()
            self.update(self.known)
        text: str = self.make(key)
        self[key] = text
        return text
