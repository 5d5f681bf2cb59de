"""The kernel's socket counts of a network namespace (``sockstat``, ``sockstat6``): which dumps
would find nothing, whether one TCP walk per family costs less than one walk of both, and ``ss
-s``'s counters (:func:`summary_counts`: the CLI's ``-s`` prints them without the records' modules).

Each is read for the calling thread's namespace (``/proc/thread-self``: ``setns`` moves only the
calling thread).  A file that cannot be read gives no counts, and each answer is then the one
that is right without them.
"""

from __future__ import annotations

from sockscope._addr import AF_INET, AF_INET6
from sockscope.errors import SockscopeError

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Mapping

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


#: ``ss -s``'s counters, in the order :class:`sockscope.summary.Summary` has them
SUMMARY_FIELDS = ("sockets_used", "tcp_inuse4", "tcp_inuse6", "tcp_orphan", "tcp_timewait", "tcp_alloc", "tcp_mem",
                  "tcp_estab", "udp4", "udp6", "raw4", "raw6", "frag4", "frag6")
#: where ``sockstat``/``sockstat6`` have them: counter -> (line, word); ``tcp_estab`` is ``snmp``'s
_SUMMARY_WORDS = {
    "sockets_used": (b"sockets", b"used"), "tcp_inuse4": (b"TCP", b"inuse"), "tcp_inuse6": (b"TCP6", b"inuse"),
    "tcp_orphan": (b"TCP", b"orphan"), "tcp_timewait": (b"TCP", b"tw"), "tcp_alloc": (b"TCP", b"alloc"),
    "tcp_mem": (b"TCP", b"mem"), "udp4": (b"UDP", b"inuse"), "udp6": (b"UDP6", b"inuse"), "raw4": (b"RAW", b"inuse"),
    "raw6": (b"RAW6", b"inuse"), "frag4": (b"FRAG", b"inuse"), "frag6": (b"FRAG6", b"inuse"),
}


def summary_counts(proc: str = "/proc") -> dict[str, int]:
    """``ss -s``'s counters by name (:data:`SUMMARY_FIELDS`, in that order) from ``proc``'s
    ``net/sockstat``, ``net/sockstat6`` and ``net/snmp`` (``CurrEstab``): 0 for what they lack.
    :class:`~sockscope.errors.SockscopeError` where neither sockstat file can be read."""
    got: dict[tuple[bytes, bytes], int] = {}
    found = False
    for name in ("sockstat", "sockstat6"):
        try:
            with open(f"{proc}/net/{name}", "rb") as f:
                got.update(parse(f.read(1 << 16)))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise SockscopeError(f"cannot read {proc}/net/{name}: {exc.strerror}") from exc
        found = True
    if not found:
        raise SockscopeError(f"cannot read {proc}/net/sockstat")
    out = {field: got.get(_SUMMARY_WORDS[field], 0) if field != "tcp_estab" else 0 for field in SUMMARY_FIELDS}
    try:
        with open(f"{proc}/net/snmp", "rb") as f:
            snmp = [line.split() for line in f.read(1 << 20).splitlines() if line.startswith(b"Tcp:")]
        if len(snmp) >= 2 and b"CurrEstab" in snmp[0]:
            out["tcp_estab"] = int(snmp[1][snmp[0].index(b"CurrEstab")])
    except (OSError, ValueError, IndexError):
        pass
    return out


def summary_totals(counts: Mapping[str, int]) -> dict[str, int]:
    """The two counters ss adds up from :func:`summary_counts`' (``tcp_total``: every TCP socket, those
    in TIME-WAIT included; ``tcp_closed``: allocated but not hashed)."""
    return {"tcp_total": counts["tcp_alloc"] + counts["tcp_timewait"],
            "tcp_closed": counts["tcp_alloc"] - (counts["tcp_inuse4"] + counts["tcp_inuse6"] - counts["tcp_timewait"])}
