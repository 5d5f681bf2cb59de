"""The kernel's socket states: their numbers (defined here once), the names ss prints, and ss's
state keywords -> state bitmasks (``scan_state`` in ss.c)."""

from __future__ import annotations

from sockscope.errors import UsageError

#: the kernel's socket state numbers (``include/net/tcp_states.h``; UNIX and netlink sockets use
#: them too): :class:`sockscope.records.State` names them for the API
UNKNOWN = 0
ESTABLISHED = 1
SYN_SENT = 2
SYN_RECV = 3
FIN_WAIT1 = 4
FIN_WAIT2 = 5
TIME_WAIT = 6
CLOSE = 7
CLOSE_WAIT = 8
LAST_ACK = 9
LISTEN = 10
CLOSING = 11
NEW_SYN_RECV = 12  # a request mini-socket (ss shows it as SYN-RECV)
BOUND_INACTIVE = 13

#: every state ss knows (its "all"; the kernel adds NEW_SYN_RECV to SYN_RECV itself)
SS_ALL = (1 << NEW_SYN_RECV) - 1
#: every state a dump can return: ss's "all" and the request mini-sockets, asked for by name
#: (the records, psutil's tuples, who, top)
EVERY_STATE = SS_ALL | (1 << NEW_SYN_RECV)
#: ss's "connected": all but LISTEN, CLOSE, TIME-WAIT and SYN-RECV
SS_CONN = SS_ALL & ~((1 << LISTEN) | (1 << CLOSE) | (1 << TIME_WAIT) | (1 << SYN_RECV))

#: the name ss prints in its State column, by kernel state number
SS_STATE_NAMES: dict[int, str] = {
    UNKNOWN: "UNKNOWN",
    ESTABLISHED: "ESTAB",
    SYN_SENT: "SYN-SENT",
    SYN_RECV: "SYN-RECV",
    FIN_WAIT1: "FIN-WAIT-1",
    FIN_WAIT2: "FIN-WAIT-2",
    TIME_WAIT: "TIME-WAIT",
    CLOSE: "UNCONN",
    CLOSE_WAIT: "CLOSE-WAIT",
    LAST_ACK: "LAST-ACK",
    LISTEN: "LISTEN",
    CLOSING: "CLOSING",
    NEW_SYN_RECV: "SYN-RECV",
    BOUND_INACTIVE: "BOUND-INACTIVE",
}

#: the state words of a listing's operands (ss's ``state``/``exclude`` names and groups) -> their state masks
STATE_WORDS = {
    "unknown": 1 << UNKNOWN,
    "established": 1 << ESTABLISHED,
    "syn-sent": 1 << SYN_SENT,
    "syn-recv": 1 << SYN_RECV,
    "syn-rcv": 1 << SYN_RECV,
    "fin-wait-1": 1 << FIN_WAIT1,
    "fin-wait-2": 1 << FIN_WAIT2,
    "time-wait": 1 << TIME_WAIT,
    "unconnected": 1 << CLOSE,
    "close": 1 << CLOSE,
    "closed": 1 << CLOSE,
    "close-wait": 1 << CLOSE_WAIT,
    "last-ack": 1 << LAST_ACK,
    "listening": 1 << LISTEN,
    "closing": 1 << CLOSING,
    "all": SS_ALL,
    "connected": SS_ALL & ~((1 << CLOSE) | (1 << LISTEN)),
    "synchronized": SS_ALL & ~((1 << CLOSE) | (1 << LISTEN) | (1 << SYN_SENT)),
    "bucket": (1 << SYN_RECV) | (1 << TIME_WAIT),
    "big": SS_ALL & ~((1 << SYN_RECV) | (1 << TIME_WAIT)),
}


def scan_state(word: str) -> int:
    """The bitmask of one state keyword (case-insensitive), like ss."""
    mask = STATE_WORDS.get(word.lower())
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
