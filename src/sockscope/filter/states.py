"""ss's state keywords -> state bitmasks (``scan_state`` in ss.c)."""

from __future__ import annotations

from sockscope.errors import UsageError

#: every state ss knows (its "all"; the kernel adds NEW_SYN_RECV to SYN_RECV itself)
SS_ALL = (1 << 12) - 1
#: ss's "connected": all but LISTEN, CLOSE, TIME-WAIT and SYN-RECV
SS_CONN = SS_ALL & ~((1 << 10) | (1 << 7) | (1 << 6) | (1 << 3))

#: the name ss prints in its State column, by kernel state number
SS_STATE_NAMES: dict[int, str] = {
    0: "UNKNOWN",
    1: "ESTAB",
    2: "SYN-SENT",
    3: "SYN-RECV",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "UNCONN",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "SYN-RECV",
    13: "BOUND-INACTIVE",
}

_CLOSE, _LISTEN, _SYN_SENT, _SYN_RECV, _TIME_WAIT = 7, 10, 2, 3, 6

_NAMES = {
    "unknown": 1 << 0,
    "established": 1 << 1,
    "syn-sent": 1 << 2,
    "syn-recv": 1 << 3,
    "syn-rcv": 1 << 3,
    "fin-wait-1": 1 << 4,
    "fin-wait-2": 1 << 5,
    "time-wait": 1 << 6,
    "unconnected": 1 << 7,
    "close": 1 << 7,
    "closed": 1 << 7,
    "close-wait": 1 << 8,
    "last-ack": 1 << 9,
    "listening": 1 << 10,
    "closing": 1 << 11,
    "all": SS_ALL,
    "connected": SS_ALL & ~((1 << _CLOSE) | (1 << _LISTEN)),
    "synchronized": SS_ALL & ~((1 << _CLOSE) | (1 << _LISTEN) | (1 << _SYN_SENT)),
    "bucket": (1 << _SYN_RECV) | (1 << _TIME_WAIT),
    "big": SS_ALL & ~((1 << _SYN_RECV) | (1 << _TIME_WAIT)),
}


def scan_state(word: str) -> int:
    """The bitmask of one state keyword (case-insensitive), like ss."""
    mask = _NAMES.get(word.lower())
    if mask is None:
        raise UsageError(f"wrong state name: {word}")
    return mask


def parse_state_words(args: list[str], initial: int) -> tuple[int, list[str]]:
    """Consume leading ``state X`` / ``exclude X`` pairs.

    Returns the resulting mask (``initial`` when there were none) and the
    remaining arguments (the filter expression).
    """
    mask = initial
    saw = False
    i = 0
    while i < len(args) and args[i] in ("state", "exclude", "excl"):
        if i + 1 >= len(args):
            raise UsageError(f"'{args[i]}' needs a state name")
        bits = scan_state(args[i + 1])
        if args[i] == "state":
            mask = (0 if not saw else mask) | bits
        else:
            mask = (SS_ALL if not saw else mask) & ~bits
        saw = True
        i += 2
    return mask, args[i:]
