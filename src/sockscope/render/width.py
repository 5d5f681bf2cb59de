"""A cell's width as ss counts it: its bytes.

ss lays out its table in the C locale (it sets none), where a text is as wide as its bytes:
``@ü`` (UTF-8: 3 bytes) is padded as 3 columns, not 2.  Tables of ASCII, nearly all, are
measured by ``len`` (C speed: one ``isascii`` of a column's texts joined tells); a text that is not
ASCII by its bytes as written (``os.fsencode``: UTF-8, and a byte that is not UTF-8 kept as the
surrogate ``os.fsdecode`` made of it, one byte again).
"""

from __future__ import annotations

import os
from itertools import repeat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Sequence


def all_ascii(texts: Sequence[str]) -> bool:
    """Whether every one of ``texts`` is ASCII (then each is as wide as its ``len``): one C call."""
    return "".join(texts).isascii()


def width(text: str) -> int:
    """``text``'s bytes as written."""
    return len(text) if text.isascii() else len(os.fsencode(text))


def widths(texts: Sequence[str]) -> list[int]:
    """:func:`width` of each of ``texts``."""
    return list(map(len if all_ascii(texts) else width, texts))


def widest(texts: Sequence[str]) -> int:
    """The greatest :func:`width` of ``texts`` (0 for none)."""
    w = max(map(len, texts), default=0)
    return w if not w or all_ascii(texts) else max(map(width, texts))


def padded(texts: Sequence[str], pad: int, right: bool) -> Iterable[str]:
    """Each of ``texts`` padded with spaces to ``pad`` bytes (right-aligned: spaces first)."""
    just = str.rjust if right else str.ljust
    if all_ascii(texts):
        return map(just, texts, repeat(pad))
    return [just(t, pad - width(t) + len(t)) for t in texts]


def pad(text: str, pad: int, right: bool) -> str:
    """``text`` padded with spaces to ``pad`` bytes."""
    n = pad - width(text) + len(text)
    return text.rjust(n) if right else text.ljust(n)


__all__ = ["all_ascii", "width", "widths", "widest", "padded", "pad"]
