"""The kernel's socket counts of a network namespace (``sockstat``, ``sockstat6``): which dumps
would find nothing, and whether one TCP walk per family costs less than one walk of both.

Each is read for the calling thread's namespace (``/proc/thread-self``: ``setns`` moves only the
calling thread).  A file that cannot be read gives no counts, and each answer is then the one
that is right without them.
"""

from __future__ import annotations

from sockscope._addr import AF_INET, AF_INET6

#: one TCP dump per family when both families hold at least this share of the sockets (1/N) …
PER_FAMILY_SHARE = 256
#: … and there are at least this many: below it, the second walk of the kernel's table (its every
#: bucket) costs more than splitting the datagrams of one walk by family
PER_FAMILY_MIN = 4096


def parse(text: bytes) -> dict[tuple[bytes, bytes], int]:
    """``sockstat``'s or ``sockstat6``'s lines (``TCP: inuse 3 orphan 0 tw 0 …``) as
    ``{(b"TCP", b"inuse"): 3, …}``; a word not followed by a number is left out."""
    out: dict[tuple[bytes, bytes], int] = {}
    for line in text.splitlines():
        proto, _, rest = line.partition(b":")
        words = rest.split()
        for key, value in zip(words[::2], words[1::2]):
            try:
                out[proto, key] = int(value)
            except ValueError:
                pass
    return out


def counts(family: int) -> dict[tuple[bytes, bytes], int]:
    """:func:`parse` of this thread's namespace's ``sockstat`` (IPv4: ``TCP``, ``UDP``, ``sockets``
    …) or ``sockstat6`` (IPv6: ``TCP6``, ``UDP6`` …); {} where the file cannot be read."""
    six = family == AF_INET6
    try:
        with open(f"/proc/thread-self/net/sockstat{'6' if six else ''}", "rb") as f:
            return parse(f.read(4096))
    except OSError:
        return {}


def no_udp(family: int) -> bool:
    """Whether a UDP dump of ``family`` would find nothing: the kernel's count (``UDP: inuse``,
    ``UDP6: inuse``) is of the hashed sockets, bound or connected, which are what the dump walks
    the whole table for (1.3–1.5 ms here when it finds nothing).  False where it cannot be read."""
    return counts(family).get((b"UDP6" if family == AF_INET6 else b"UDP", b"inuse")) == 0


def tcp_per_family() -> bool:
    """Whether a listing of both families' TCP sockets in ss's order (IPv4, then IPv6) is quicker
    as one dump per family, both walks at once (the second sent by a helper), than as the legacy
    walk of both families: that one walk's datagrams hold both families wherever they mix, and each
    such datagram is split by family (~0.4 µs a row here), while a second walk costs a pass over
    every bucket of the kernel's table (~1–2 ms of the listing's time here, beside it on another
    core).  So: when each family (``TCP: inuse``, ``TCP6: inuse``: hashed sockets, listeners among
    them, not TIME-WAIT) holds at least 1/:data:`PER_FAMILY_SHARE` of at least
    :data:`PER_FAMILY_MIN` sockets; else (also where the counts cannot be read) the one walk.  (A
    listing with a filter expression takes the one walk whatever this says: the kernel's bytecode
    leaves few rows to split, as a filter mostly does.)"""
    v4, v6 = counts(AF_INET).get((b"TCP", b"inuse"), 0), counts(AF_INET6).get((b"TCP6", b"inuse"), 0)
    return v4 + v6 >= PER_FAMILY_MIN and min(v4, v6) * PER_FAMILY_SHARE >= v4 + v6
