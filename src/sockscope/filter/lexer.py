"""Filter words -> tokens, in time linear in the input.

Each word is re-split on blanks (space, tab); a backslash makes the next
character literal (ss's ``get_token_from_line``).  Unlike ss, ``(`` glued to
the front of a chunk and surplus ``)`` glued to its end are split off, so
``(dport = :22)`` works too.  Keywords are ss's, case-sensitive.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

KINDS = {word: kind for kind, words in (
    ("not", "! not"), ("and", "& && and"), ("or", "| || or"), ("(", "("), (")", ")"),
    ("dst", "dst"), ("src", "src"), ("dport", "dport"), ("sport", "sport"), ("dev", "dev"),
    ("fwmark", "fwmark"), ("cgroup", "cgroup"), ("autobound", "autobound"),
    ("ge", ">= ge geq"), ("le", "<= le leq"), ("ne", "!= ne neq"), ("eq", "= == eq"),
    ("gt", "> gt"), ("lt", "< lt"),
) for word in words.split()}


class Token:
    """One token: its text after unescaping, its column in the expression, its kind."""

    __slots__ = ("text", "start", "kind")

    def __init__(self, text: str, start: int, kind: str) -> None:
        self.text, self.start, self.kind = text, start, kind

    def __repr__(self) -> str:
        return f"Token(text={self.text!r}, start={self.start!r}, kind={self.kind!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Token):
            return NotImplemented
        return (self.text, self.start, self.kind) == (other.text, other.start, other.kind)

    def __hash__(self) -> int:
        return hash((self.text, self.start, self.kind))


def tokenize(words: Sequence[str]) -> tuple[str, list[Token]]:
    """(the expression as one line, its tokens).

    The line is the words joined by spaces, tabs shown as spaces (they
    separate tokens); other control characters are kept, and escaped where
    the line is shown (:class:`~sockscope.filter.expr.FilterSyntaxError`).
    """
    tokens: list[Token] = []
    offset = 0
    for word in words:
        _split_word(word, offset, tokens)
        offset += len(word) + 1
    return " ".join(words).replace("\t", " "), tokens


def _split_word(word: str, base: int, out: list[Token]) -> None:
    i, n = 0, len(word)
    while i < n:
        while i < n and word[i] in " \t":
            i += 1
        chars: list[tuple[str, bool, int]] = []  # (char, escaped, column)
        while i < n and word[i] not in " \t":
            if word[i] == "\\":
                if i + 1 < n:
                    chars.append((word[i + 1], True, base + i))
                i += 2
            else:
                chars.append((word[i], False, base + i))
                i += 1
        if chars:
            _emit(chars, out)


def _emit(chars: list[tuple[str, bool, int]], out: list[Token]) -> None:
    """Append the token(s) of one blank-separated chunk, splitting glued parentheses.

    Works on indices into ``chars`` (never slicing it in a loop): a chunk of
    60,000 glued parentheses takes linear time."""
    lo, hi = 0, len(chars)  # the chunk's middle is chars[lo:hi]
    while hi - lo > 1 and chars[lo][0] == "(" and not chars[lo][1]:
        out.append(Token("(", chars[lo][2], "("))
        lo += 1
    opens = sum(1 for c in chars[lo:hi] if c[0] == "(" and not c[1])
    closes = sum(1 for c in chars[lo:hi] if c[0] == ")" and not c[1])
    while hi - lo > 1 and chars[hi - 1][0] == ")" and not chars[hi - 1][1] and closes > opens:
        hi -= 1
        closes -= 1
    text = "".join(c[0] for c in chars[lo:hi])
    out.append(Token(text, chars[lo][2], KINDS.get(text, "word")))
    out.extend(Token(")", c[2], ")") for c in chars[hi:])


__all__ = ["KINDS", "Token", "tokenize"]
