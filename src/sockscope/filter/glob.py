"""UNIX name globs as ss matches them: glibc ``fnmatch(pattern, name, FNM_CASEFOLD)`` in the C
locale (ss sets no locale), on the name's bytes: ``?`` is one byte, only ASCII letters fold.

:func:`glob_matcher` is what :mod:`.predicate` asks (no backtracking: the pieces between the
stars, or the pattern's tokens walked once; ``re`` for a bracket expression's bytes alone),
:func:`glob_mask` the same for a list of names (the filter of a UNIX batch's distinct names);
:func:`fnmatch_regex` is the whole syntax as a regex, the reference the tests hold them to.
"""

from __future__ import annotations

import os
from itertools import repeat

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from typing import Callable


_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "\\x21-\\x7e", "lower": "a-z", "print": "\\x20-\\x7e",
    "punct": '!"\\#\\$%\\&\'\\(\\)\\*\\+,\\-\\./:;<=>\\?@\\[\\\\\\]\\^_`\\{\\|\\}\\~',  # (re.escape's)
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z", "xdigit": "0-9A-Fa-f",
}


class _NoMatch(Exception):
    """glibc gives up on the whole pattern (unknown [:class:])."""


def glob_matcher(pattern: str | bytes) -> Callable[[bytes], bool]:
    """A test of a name's bytes against glob ``pattern``: :func:`fnmatch_regex`'s answer, in time
    bounded by the name's length times the pattern's, as glibc's (a regex of many stars backtracks
    for ever on a long name: ``*a*a*…*?b``).  A pattern of literal bytes and ``*`` alone (the usual
    ``/run/*``, ``*docker*``) is matched by its pieces between the stars: the first starts the
    name, the last ends it, each other is found after the one before (the leftmost find leaves the
    most room to the rest), all ASCII-folded.  Any other by its tokens (:func:`_tokens`: a star, or
    the set of bytes one position takes), the name walked once with one star to go back to (the
    last met: a later star can take whatever an earlier one would have).  ``re`` (~4 ms of imports a
    listing) is imported for a bracket expression alone."""
    raw = pattern if isinstance(pattern, bytes) else os.fsencode(pattern)
    if not _stars_only(raw):
        tokens = _tokens(raw)
        if tokens is None:
            return _never
        least = sum(t is not None for t in tokens)
        return lambda name: len(name) >= least and _walk(tokens, name)
    folded = raw.lower()  # (bytes.lower folds ASCII letters alone, as the C locale does)
    if b"*" not in folded:
        return lambda name: name.lower() == folded
    head, *middle, tail = folded.split(b"*")
    least = len(head) + len(tail)

    def match(name: bytes) -> bool:
        name = name.lower()
        if len(name) < least or not name.startswith(head) or not name.endswith(tail):
            return False
        at, end = len(head), len(name) - len(tail)
        for piece in middle:
            found = name.find(piece, at, end)
            if found < 0:
                return False
            at = found + len(piece)
        return True

    return match


def _stars_only(raw: bytes) -> bool:
    """Whether a pattern is literal bytes and stars alone (no ``?``, bracket or escape)."""
    return b"?" not in raw and b"[" not in raw and b"\\" not in raw


def _never(name: bytes) -> bool:
    return False


def _walk(tokens: list[bytes | None], name: bytes) -> bool:
    """Whether ``name`` matches ``tokens`` (None a star; else a byte's table: 1 where it takes it)."""
    i = j = 0
    star, mark = -1, 0
    n, m = len(name), len(tokens)
    while i < n:
        if j < m:
            t = tokens[j]
            if t is None:
                star, mark = j, i
                j += 1
                continue
            if t[name[i]]:
                i += 1
                j += 1
                continue
        if star < 0:
            return False
        mark += 1  # the last star takes one byte more
        i, j = mark, star + 1
    while j < m and tokens[j] is None:
        j += 1
    return j == m


_ANY = b"\1" * 256


def _tokens(raw: bytes) -> list[bytes | None] | None:
    """``raw``'s tokens: None for a run of stars, else the 256-byte table of the bytes one position
    takes (a literal with its ASCII case, ``?`` every byte, a bracket expression the bytes its
    :func:`fnmatch_regex` piece takes); None where glibc matches nothing (a trailing ``\\``, an
    unknown class)."""
    pattern = raw.decode("latin-1")
    out: list[bytes | None] = []
    made: dict[str, bytes] = {}  # each table once (a pattern of a million literals: a table each else)
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not out or out[-1] is not None:
                out.append(None)
            continue
        if c == "?":
            out.append(_ANY)
            continue
        if c == "\\":
            if i == n:
                return None
            c = pattern[i]
            i += 1
        elif c == "[":
            try:
                r = _bracket(pattern, i)
            except _NoMatch:
                return None
            if r is not None:
                if r[0] not in made:
                    import re

                    one = re.compile(r[0].encode("latin-1"), re.IGNORECASE | re.DOTALL).fullmatch
                    made[r[0]] = bytes(one(bytes((b,))) is not None for b in range(256))
                out.append(made[r[0]])
                i = r[1]
                continue
        if c not in made:
            table = bytearray(256)  # (a literal: itself, and an ASCII letter its other case)
            for x in (c.lower(), c.upper()) if c.isascii() else (c,):
                table[ord(x)] = 1
            made[c] = bytes(table)
        out.append(made[c])
    return out


def glob_mask(pattern: str | bytes, names: list[bytes]) -> list[bool]:
    """:func:`glob_matcher`'s answer for each of ``names`` (bytes), as bools, with no Python code a
    name where the pattern's shape allows (C-level maps of ``bytes`` methods): a literal, ``A*``,
    ``*A``, ``A*B``, ``*A*``; any other pattern by its matcher."""
    from operator import and_, contains, ge

    raw = pattern if isinstance(pattern, bytes) else os.fsencode(pattern)
    if not _stars_only(raw):
        return list(map(glob_matcher(raw), names))
    pieces = raw.lower().split(b"*")
    folded = list(map(bytes.lower, names))
    if len(pieces) == 1:
        return list(map(pieces[0].__eq__, folded))
    head, tail = pieces[0], pieces[-1]
    if len(pieces) == 3 and not head and not tail:
        return list(map(contains, folded, repeat(pieces[1])))
    if len(pieces) == 2:
        starts = map(bytes.startswith, folded, repeat(head))
        ends = map(bytes.endswith, folded, repeat(tail))
        long = map(ge, map(len, folded), repeat(len(head) + len(tail)))  # (the two may not overlap)
        return list(map(and_, map(and_, starts, ends), long))
    return list(map(bool, map(glob_matcher(raw), names)))


def fnmatch_regex(pattern: str | bytes) -> re.Pattern[bytes]:
    """A regex for glibc ``fnmatch(pattern, name, FNM_CASEFOLD)`` (no PATHNAME/PERIOD) in the C
    locale, as ss runs it (ss sets no locale): on bytes, the name's and the pattern's
    (``os.fsencode`` of a text), only ASCII letters case-folded.

    ``*`` and ``?`` match any byte including ``/``; ``\\x`` is a literal
    x (a trailing ``\\`` matches nothing); ``[...]`` takes ``!``/``^``
    negation, ranges (the name's character folded, then compared with the
    folded ends: ``[?-^]`` takes no letter), ``[:class:]`` and one-character
    ``[.c.]`` (neither is case-folded; an unknown class or symbol, or an
    unterminated ``[.``, matches nothing); an unterminated ``[`` is literal.
    Malformed brackets (unknown class, a range ending in ``[``) may differ
    from glibc, whose answer then depends on the order it tries items in.
    """
    import re

    never = re.compile(b"(?!)")
    # the pattern's bytes as the characters U+0000..U+00FF: the regex is built as text, then
    # encoded back byte for byte
    pattern = (pattern if isinstance(pattern, bytes) else os.fsencode(pattern)).decode("latin-1")
    out: list[str] = []
    i, n = 0, len(pattern)
    try:
        while i < n:
            c = pattern[i]
            i += 1
            if c == "*":
                out.append(".*")
            elif c == "?":
                out.append(".")
            elif c == "\\":
                if i == n:
                    return never  # glibc: a trailing backslash matches nothing
                out.append(re.escape(pattern[i]))
                i += 1
            elif c == "[" and (r := _bracket(pattern, i)) is not None:
                out.append(r[0])
                i = r[1]
            else:
                out.append(re.escape(c))
    except _NoMatch:
        return never
    return re.compile("".join(out).encode("latin-1"), re.IGNORECASE | re.DOTALL)


def _bracket(p: str, i: int) -> tuple[str, int] | None:
    """(regex, index after "]") for a bracket expression opening before ``i``; None: literal "["."""
    n = len(p)
    negate = i < n and p[i] in "!^"
    if negate:
        i += 1
    items: list[str] = []  # case-folded like the name
    classes: list[str] = []  # tested on the name as is
    ranges: list[str] = []  # a range: the name's character folded, then compared with the folded ends
    first = True
    while i < n:
        c = p[i]
        if c == "]" and not first:
            alts = [f"[{''.join(items)}]"] if items else []
            if classes:
                alts.append(f"(?-i:[{''.join(classes)}])")
            alts += ranges
            one = "(?:" + "|".join(alts) + ")" if alts else "(?!)"
            return (f"(?!{one})." if negate else one), i + 1
        first = False
        if c == "[" and p.startswith("[:", i) and (end := p.find(":]", i + 2)) >= 0:
            name = p[i + 2:end]
            if name not in _CLASSES:
                raise _NoMatch
            classes.append(_CLASSES[name])
            i = end + 2
            continue
        if c == "[" and p.startswith("[.", i):  # a collating symbol: glibc knows single characters
            end = p.find(".]", i + 2)
            if end != i + 3:  # unterminated, or several characters: the whole pattern matches nothing
                raise _NoMatch
            classes.append(_cls(p[i + 2]))  # compared as is, not case-folded (as glibc does)
            i = end + 2
            continue
        if c == "\\" and i + 1 < n:
            i += 1
            c = p[i]
        lo = c
        i += 1
        if i + 1 < n and p[i] == "-" and p[i + 1] != "]":
            hi = p[i + 1]
            i += 2
            if hi == "\\" and i < n:
                hi = p[i]
                i += 1
            lo, hi = _fold(lo), _fold(hi)  # (glibc folds a range's ends and the name's character)
            if ord(hi) >= ord(lo):
                ups = "".join(u for u in _UPPER if lo <= _fold(u) <= hi)  # (capitals folded into it)
                ranges.append(f"(?-i:(?![A-Z])[{_cls(lo)}-{_cls(hi)}]" + (f"|[{ups}])" if ups else ")"))
            continue
        items.append(_cls(lo))
    return None


def _cls(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _fold(c: str) -> str:
    """glibc's FNM_CASEFOLD fold of one character (tolower in the C locale: ASCII capitals alone)."""
    return chr(ord(c) + 32) if "A" <= c <= "Z" else c


__all__ = ["glob_matcher", "glob_mask", "fnmatch_regex"]
