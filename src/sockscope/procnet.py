"""The /proc fallback: ``/proc/net/{tcp,tcp6,udp,udp6,raw,raw6,unix}`` -> records.

Used where sock_diag is unavailable or denied.  It fills the same
:class:`~sockscope.records.Socket` fields as netlink where /proc knows them;
what /proc cannot tell is left as ss's /proc fallback shows it: listeners'
Send-Q (backlog) is 0, ``v6only`` is unknown (None), UNIX queues and peers
are 0.
"""

from __future__ import annotations

import sys

from sockscope._addr import AF_INET, AF_INET6, AF_UNIX, ntop4, ntop6
from sockscope.errors import DecodeError, SockscopeError

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Iterator

    from sockscope.records import Socket

_UNIX_NETIDS = {1: "u_str", 2: "u_dgr", 5: "u_seq"}
# /proc/net/unix "St" (socket_state) -> TCP-style state, as ss maps it
_UNIX_STATES = {1: 7, 2: 2, 3: 1, 4: 11}
_SO_ACCEPTCON = 1 << 16


def _addr4(h: str) -> str:
    return ntop4(bytes.fromhex(h)[::-1])


def _addr6(h: str) -> str:
    b = bytes.fromhex(h)
    return ntop6(b[3::-1] + b[7:3:-1] + b[11:7:-1] + b[15:11:-1])


def read_inet(netid: str, family: int, states: int, proc: str = "/proc") -> Iterator[Socket]:
    """Sockets of ``/proc/net/{tcp,udp,raw}{,6}`` whose state bit is in ``states``."""
    name = {"tcp": "tcp", "udp": "udp", "raw": "raw"}[netid] + ("6" if family == AF_INET6 else "")
    path = f"{proc}/net/{name}"
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("ascii", "replace").splitlines()[1:]
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SockscopeError(f"cannot read {path}: {exc.strerror}") from exc
    if not lines:
        return
    from sockscope.records import Endpoint, make_socket, state_of  # here: a listing with no raw sockets
    # (the usual case) never imports the records, whose dataclasses cost start-up time

    conv = _addr4 if family == AF_INET else _addr6
    for line in lines:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            st = int(fields[3], 16)
            if not states & (1 << st):
                continue
            lh, lp = fields[1].split(":")
            rh, rp = fields[2].split(":")
            txq, rxq = fields[4].split(":")
            send_q = int(txq, 16)
            recv_q = int(rxq, 16)
            uid = int(fields[7])
            ino = int(fields[9])
        except ValueError as exc:
            raise DecodeError(f"{path}: unparsable line {line!r}") from exc
        yield make_socket(
            netid, family, state_of(st), recv_q, send_q,
            Endpoint(conv(lh), int(lp, 16)), Endpoint(conv(rh), int(rp, 16)),
            ino, uid, None, 0, None, None, None, (), None, None,
        )


def read_unix(
    states: int, types: set[str] | None = None, proc: str = "/proc", unaccepted: bool = False
) -> list[Socket]:
    """Sockets of ``/proc/net/unix`` in ``states`` (and netids ``types``), in the
    kernel's order.  Unaccepted connections (inode 0) are left out, as sock_diag
    leaves them out, unless ``unaccepted`` (psutil lists them)."""
    from sockscope.records import Endpoint, make_socket, state_of  # on first use (start-up time)

    path = f"{proc}/net/unix"
    lines = _unix_lines(path)
    rows: list[Socket] = []
    for raw in lines:
        cols = raw.split(None, 7)
        if len(cols) < 7:
            continue
        try:
            flags = int(cols[3], 16)
            stype = int(cols[4], 16)
            st = int(cols[5], 16)
            ino = int(cols[6])
        except ValueError as exc:
            raise DecodeError(f"{path}: unparsable line {raw!r}") from exc
        if not ino and not unaccepted:
            continue
        state = 10 if flags & _SO_ACCEPTCON else _UNIX_STATES.get(st, st)
        netid = _UNIX_NETIDS.get(stype, "u_dgr")
        if types is not None and netid not in types:
            continue
        if not states & (1 << state):
            continue
        name = cols[7] if len(cols) == 8 else ""
        sock = make_socket(
            netid, AF_UNIX, state_of(state), 0, 0, Endpoint(name, 0), Endpoint("", 0),
            ino, None, None, 0, 0, None, None, (), None, None,
        )
        rows.append(sock)
    return rows


def _unix_lines(path: str) -> list[str]:
    """The lines of ``/proc/net/unix`` after its header ([] when there is no such file)."""
    try:
        # text, decoded as Python decodes file names (os.fsdecode: UTF-8, undecodable bytes kept as
        # surrogates), in one pass in C; lines end at "\n" only (never at "\r" or other line breaks
        # str.splitlines() knows: a path may hold them)
        with open(path, encoding=sys.getfilesystemencoding(), errors=sys.getfilesystemencodeerrors(),
                  newline="\n") as f:
            return f.read().split("\n")[1:]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SockscopeError(f"cannot read {path}: {exc.strerror}") from exc


def unix_columns(proc: str = "/proc") -> tuple[list[int], list[int], list[str]]:
    """Every line of ``/proc/net/unix`` (unaccepted connections, inode 0, too), in the kernel's
    order, as psutil reads it: (socket types, inodes, paths), the path being the line's eighth
    whitespace-separated word when the line has exactly eight, else "".  Made by C-level maps
    (one ``str.split`` per line); no record made."""
    from _operator import itemgetter

    path = f"{proc}/net/unix"
    lines = _unix_lines(path)
    toks = [t for t in map(str.split, lines) if len(t) >= 7] if lines else []
    try:
        types = list(map(_UnixType().__getitem__, map(itemgetter(4), toks)))
        inodes = list(map(int, map(itemgetter(6), toks)))
    except ValueError:
        bad = next(raw for raw in lines if _unparsable(raw))
        raise DecodeError(f"{path}: unparsable line {bad!r}") from None
    n = len(toks)
    eight = list(map(len, toks)).count(8)
    if not eight:
        return types, inodes, [""] * n
    paths = list(map(itemgetter(-1), toks))  # the inode where there is no path: put right below
    if eight < n:
        paths = [p if k == 8 else "" for p, k in zip(paths, map(len, toks))]
    return types, inodes, paths


class _UnixType(dict[str, int]):
    """/proc/net/unix's Type column (hex) -> the number, memoized (a table has two or three)."""

    def __missing__(self, text: str) -> int:
        n = self[text] = int(text, 16)
        return n


def _unparsable(raw: str) -> bool:
    cols = raw.split()
    if len(cols) < 7:
        return False
    try:
        int(cols[4], 16)
        int(cols[6])
    except ValueError:
        return True
    return False


__all__ = ["read_inet", "read_unix", "unix_columns"]
