"""Acting on sockets: close them (``ss -K``, SOCK_DESTROY) and follow their
destruction (``ss -E``, the sock_diag destroy multicast groups)."""

from __future__ import annotations

import errno
import os
import socket

from sockscope.errors import PermissionDenied, UsageError, netlink_error
from sockscope.kernel import inet, transport
from sockscope.records import Socket, State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Container, Iterable, Iterator

#: the tables whose sockets the kernel can close (their sock_diag handlers implement destroy)
_DESTROYABLE = ("tcp", "udp", "raw")
# include/uapi/linux/sock_diag.h
SKNLGRP_INET_TCP_DESTROY = 1
SKNLGRP_INET_UDP_DESTROY = 2
SKNLGRP_INET6_TCP_DESTROY = 3
SKNLGRP_INET6_UDP_DESTROY = 4


def sockid(s: Socket) -> bytes:
    """The kernel's ``inet_diag_sockid`` of a record (what SOCK_DESTROY looks up)."""
    fam = s.family
    return inet.encode_sockid(
        s.local.port, s.peer.port,
        socket.inet_pton(fam, s.local.address), socket.inet_pton(fam, s.peer.address),
        s.ifindex, s.cookie or 0,
    )


def kill(socks: Iterable[Socket], dry_run: bool = False, replayed: Container[str] = ()) -> Iterator[Socket]:
    """Close each inet socket with SOCK_DESTROY; yield those closed (or, with
    ``dry_run``, those that would be).  Sockets the kernel cannot close
    (EOPNOTSUPP) or that are already gone (ENOENT) are skipped, as ss does.
    The records of the tables in ``replayed`` (read from a capture, ``TCPDIAG_FILE``)
    describe no socket of this kernel: yielded as they are, never closed, as ss lists them.
    Without CAP_NET_ADMIN: :class:`PermissionDenied` saying so.

    The kernel finds the socket to close by its addresses, then checks its cookie.  Of a
    ``SO_REUSEPORT`` group of TCP listeners (one address) that finds the member the group's hash
    picks: asked for another, it answers ENOENT (ss leaves that one open).  Those are asked again
    once the pass is over, until a pass closes none of them: with the picked member closed, the
    lookup finds the next.  (A UDP group's picked member stays bound once closed, so the kernel
    keeps finding it: of a UDP group only that one closes, with ss as here.)"""
    shared: list[Socket] = []  # listeners answered ENOENT, maybe for a sibling of their group
    seq = 0
    for s in socks:
        seq += 1
        if s.netid not in _DESTROYABLE:
            continue
        if dry_run or s.netid in replayed:
            yield s
            continue
        code = _destroy(s, seq)
        if code == 0:
            yield s
        elif code == errno.ENOENT and s.state == State.LISTEN:
            shared.append(s)
    while shared:
        left = []
        for s in shared:
            seq += 1
            if _destroy(s, seq) == 0:
                yield s
            else:
                left.append(s)
        if len(left) == len(shared):
            return
        shared = left


def _destroy(s: Socket, seq: int) -> int:
    """SOCK_DESTROY for one socket: 0, or the kernel's errno where it could not (EOPNOTSUPP: the kernel
    cannot close that kind; ENOENT: not found); other errors raised."""
    proto = inet.PROTOCOLS[s.netid]
    raw = (s.protocol or 0) if proto == inet.IPPROTO_RAW else 0  # struct inet_diag_req_raw: ss's kill_inet_sock
    code = transport.request_ack(inet.encode_destroy(s.family, proto, sockid(s), seq, raw), "SOCK_DESTROY")
    if code in (errno.EPERM, errno.EACCES):
        raise PermissionDenied("SOCK_DESTROY needs CAP_NET_ADMIN (run as root)", code)
    if code not in (0, errno.EOPNOTSUPP, errno.ENOENT):
        raise netlink_error("SOCK_DESTROY", code)
    return code


def event_groups(tables: Iterable[str], families: Iterable[int]) -> int:
    """The multicast group bitmask for destroy events of these tables/families (0: none)."""
    t, f = set(tables), set(families)
    groups = 0
    for table, fam, grp in (
        ("tcp", 2, SKNLGRP_INET_TCP_DESTROY), ("udp", 2, SKNLGRP_INET_UDP_DESTROY),
        ("tcp", 10, SKNLGRP_INET6_TCP_DESTROY), ("udp", 10, SKNLGRP_INET6_UDP_DESTROY),
    ):
        if table in t and fam in f:
            groups |= 1 << (grp - 1)
    return groups


def events(groups: int, wakeup: int | None = None) -> Iterator[Socket]:
    """Yield a record for every socket the kernel destroys, until interrupted.

    ``wakeup``: the read end of the pipe given to :func:`signal.set_wakeup_fd`.
    Without it a signal that lands after the interpreter last looked for one but
    before the wait starts (the receive buffer being allocated, say) leaves the
    wait blocked until the next event, which may never come; with it the wait is
    on both, so the signal's handler (raising, for Ctrl-C) runs at once.  No TCP or UDP group
    is a :class:`UsageError`, raised here (before the first event is asked for)."""
    if not groups:
        raise UsageError("-E follows only TCP and UDP sockets: select -t and/or -u")
    return _events(groups, wakeup)


def _events(groups: int, wakeup: int | None) -> Iterator[Socket]:
    s = transport.subscribe(groups)
    try:
        poll = None
        if wakeup is not None:
            import select

            s.setblocking(False)
            poll = select.poll()
            poll.register(s, select.POLLIN)
            poll.register(wakeup, select.POLLIN)
        while True:
            if poll is not None:
                ready = [fd for fd, _ in poll.poll()]  # a signal's handler runs as this returns
                if wakeup in ready:
                    try:
                        os.read(wakeup, 512)  # a signal whose handler did not raise: wait again
                    except BlockingIOError:
                        pass
                if s.fileno() not in ready:
                    continue
            try:
                data = s.recv(1 << 17)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    continue  # the kernel dropped events: go on
                raise netlink_error("sock_diag events", exc.errno or errno.EIO) from exc
            yield from _destroyed(data)
    finally:
        s.close()


def _destroyed(data: bytes) -> list[Socket]:
    """A datagram of destroy notifications (sock_diag multicast) as records, each with all its
    attributes; the netid comes from ``INET_DIAG_PROTOCOL``."""
    from sockscope.records import evolve

    b, _done = inet.decode(data, "sock_diag events", info=True)
    # (read as TCP: a UDP message has no tcp_info to misread; queues as ss's ints: a UDP socket's
    # last Send-Q is -1)
    return [evolve(s, netid=inet.NETIDS.get(s.protocol or 0, "???"), recv_q=s.recv_q - (s.recv_q >> 31 << 32),
                   send_q=s.send_q - (s.send_q >> 31 << 32)) for s in inet.records(b, "tcp", details=True)]


__all__ = ["kill", "events", "event_groups", "sockid"]
