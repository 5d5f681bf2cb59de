"""Acting on sockets: close them (``ss -K``, SOCK_DESTROY) and follow their
destruction (``ss -E``, the sock_diag destroy multicast groups)."""

from __future__ import annotations

import errno
import os
import socket

from sockscope.errors import PermissionDenied, UsageError, netlink_error
from sockscope.kernel import inet, transport
from sockscope.records import Socket

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
    Without CAP_NET_ADMIN: :class:`PermissionDenied` saying so."""
    for seq, s in enumerate(socks, 1):
        if s.netid not in _DESTROYABLE:
            continue
        proto = inet.PROTOCOLS[s.netid]
        if dry_run or s.netid in replayed:
            yield s
            continue
        if proto == inet.IPPROTO_RAW and s.protocol is not None:
            proto = s.protocol
        code = transport.request_ack(inet.encode_destroy(s.family, proto, sockid(s), seq), "SOCK_DESTROY")
        if code == 0:
            yield s
        elif code in (errno.EOPNOTSUPP, errno.ENOENT):
            continue
        elif code in (errno.EPERM, errno.EACCES):
            raise PermissionDenied("SOCK_DESTROY needs CAP_NET_ADMIN (run as root)", code)
        else:
            raise netlink_error("SOCK_DESTROY", code)


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
