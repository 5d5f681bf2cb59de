"""``HOST:PORT`` words, split once for every command that takes them (``connect``, ``who``, the
exporter's ``--web.listen-address``), so that a bracket out of place is the same one-line error
in each.  What a host or a port may then be is each command's own rule (``connect`` reads a bare
IPv6 address as a host, ``who`` takes service names and scopes, the exporter wants brackets
around IPv6 and a port always).

:func:`split` knows these forms:

* ``[ADDRESS]:PORT`` and ``[ADDRESS]`` (no port): the brackets' inside is the host, whatever it
  holds; with ``scope=True`` also ``[ADDRESS]%DEVICE:PORT`` (as ss prints a scoped address);
* ``HOST:PORT``: one colon;
* anything else (no colon, or two and more: a bare IPv6 address) is the host alone, the port
  None.

A bracket in a host outside brackets, a missing ``]``, empty brackets or text after ``]`` that is no
``:PORT`` raise :class:`BadHostPort` (a ``ValueError``) whose text says what to write; the
callers turn it into their usage error.
"""

from __future__ import annotations

#: how a bracketed address is written, for the messages
BRACKETED = "[ADDRESS]:PORT"


def shown(text: str) -> str:
    """``text`` for an error message: quoted, control characters escaped, cut when long (a word of
    128 KiB makes a line of some 80 characters, not one of 128 KiB)."""
    return repr(text[:60] + "..." if len(text) > 80 else text)  # (repr escapes what is not printable)


def retyped(host: str, bracketed: bool = True, port: str = "PORT") -> str:
    """What to write instead, for a message: ``[HOST]:PORT`` (``HOST:PORT``), or the form alone
    where ``host`` is long or not printable (no suggestion built from text that is not an address)."""
    if len(host) > 60 or not host.isprintable():
        host = "ADDRESS" if bracketed else "HOST"
    return f"[{host}]:{port}" if bracketed else f"{host}:{port}"


def not_a_host_name(name: str, exc: Exception) -> str:
    """``not a host name (WHY)``, for the message of a resolver that refused ``name`` before asking (its
    IDNA encoding raised ``exc``: ``UnicodeError`` or ``ValueError``), in the same words under every
    Python (the codec's change between versions): WHY is an empty label, or a label over 63 characters;
    else the exception's own text."""
    return f"not a host name ({_fault(name, exc)})"


def _fault(name: str, exc: Exception) -> str:
    labels = name.split(".")
    if len(labels) > 1 and not labels[-1]:  # one final dot: a fully qualified name
        labels.pop()
    for label in labels:
        if not label:
            return "an empty label"
        if label.isascii() and len(label) > 63:
            return f"a label of {len(label)} characters, over 63"
    return str(exc)


class BadHostPort(ValueError):
    """A word that is no ``HOST:PORT`` for bracket reasons; its text is the one-line message."""


def split(text: str, scope: bool = False) -> tuple[str, str | None, str]:
    """``(host, port text or None, scope after the bracket or "")`` of ``text`` (see the module's
    docstring); ``scope``: ``[ADDRESS]%DEVICE:PORT`` is allowed."""
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close:
            raise BadHostPort(f"missing ']' in {shown(text)}: write {BRACKETED}")
        if "[" in host or "]" in rest:
            raise BadHostPort(f"misplaced bracket in {shown(text)}: write {BRACKETED}")
        if not host:
            raise BadHostPort(f"empty brackets in {shown(text)}: write an address inside them, as [::1]")
        after = ""
        if scope and rest.startswith("%"):
            after, colon, port = rest[1:].partition(":")
            rest = colon + port
        if not rest:
            return host, None, after
        if not rest.startswith(":"):
            raise BadHostPort(f"missing port in {shown(text)}: write {retyped(host)}")
        return host, rest[1:], after
    one = text.count(":") == 1
    host, _, port = text.partition(":") if one else (text, "", "")
    if "[" in host or "]" in host:  # (the port's own text is the caller's to judge)
        raise BadHostPort(f"misplaced bracket in {shown(text)}: write {BRACKETED}")
    return host, port if one else None, ""


def is_ipv6(text: str) -> bool:
    """Whether ``text`` is a literal IPv6 address (a ``%DEVICE`` scope after it allowed)."""
    import _socket

    try:
        _socket.inet_pton(_socket.AF_INET6, text.split("%", 1)[0])
    except (OSError, ValueError):
        return False
    return True


def trailing_port(text: str) -> tuple[str, str] | None:
    """``(address, port)`` where ``text`` is an IPv6 address written without brackets whose last group
    could be a port (at most 5 decimal digits, the rest an IPv6 address: ``::1:9100``); else None.
    What the exporter refuses, and what ``connect`` hints at when such an address fails."""
    if text.startswith("[") or text.count(":") < 2:
        return None
    address, _, last = text.rpartition(":")
    if not (last.isascii() and last.isdigit() and len(last) <= 5) or not is_ipv6(address):
        return None
    return address, last


__all__ = ["BRACKETED", "BadHostPort", "is_ipv6", "retyped", "shown", "split", "trailing_port"]
