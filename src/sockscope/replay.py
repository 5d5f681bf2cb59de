"""``TCPDIAG_FILE``: replaying a capture of TCP sock_diag replies (``-D FILE`` writes one), as ss does."""

from __future__ import annotations

import os
import sys

from sockscope.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

    from sockscope.kernel.inet import Batch


def replay(path: str) -> Iterator[Batch]:
    """TCP sockets from a capture written by ``-D FILE`` (ss's ``TCPDIAG_FILE``),
    as ss replays them: every message up to ``NLMSG_DONE``, whatever its state
    or family (only the filter expression applies); a file that ends early
    keeps the messages read whole and says ``Unexpected EOF reading
    $TCPDIAG_FILE``; one that cannot be opened says why; both, like ss, are not
    errors.  Read message by message: memory stays bounded whatever the file."""
    from sockscope.errors import NetlinkError
    from sockscope.kernel import inet
    from sockscope.kernel import netlink as nl

    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except IsADirectoryError as exc:  # (ss's fopen opens a directory: its first read says so)
        print(f"Reading header from $TCPDIAG_FILE: {exc.strerror}", file=sys.stderr)
        return
    except OSError as exc:
        print(f"fopen($TCPDIAG_FILE): {exc.strerror}", file=sys.stderr)
        return
    chunk = bytearray()
    try:
        while True:
            head = f.read(16)
            length = nl.NLMSGHDR.unpack_from(head)[0] if len(head) == 16 else 0
            if length > _REPLAY_MESSAGE_MAX:  # before its body is read: the length is the file's word
                raise UsageError(f"TCPDIAG_FILE {path}: a message of {length} bytes (more than a dump's)")
            body = f.read(nl.align4(length) - 16) if length >= 16 else b""
            if len(head) < 16 or length < 16 or len(body) < nl.align4(length) - 16:
                sys.stderr.write("Unexpected EOF reading $TCPDIAG_FILE")
                sys.stderr.flush()
                break
            chunk += head + body
            mtype = nl.NLMSGHDR.unpack_from(head)[1]
            if mtype == nl.NLMSG_DONE or mtype == nl.NLMSG_ERROR or len(chunk) >= 1 << 17:
                try:
                    batch, done = inet.decode(bytes(chunk), "TCPDIAG_FILE")
                except NetlinkError as exc:  # the capture holds the kernel's error: ss says so and stops
                    print(f"TCPDIAG answered: {os.strerror(exc.errno)}", file=sys.stderr)
                    break
                chunk.clear()
                yield batch
                if done:
                    break
        if chunk:
            yield inet.decode(bytes(chunk), "TCPDIAG_FILE")[0]
    finally:
        f.close()


#: the largest message a replayed capture may hold (a dump's are a few hundred bytes)
_REPLAY_MESSAGE_MAX = 1 << 16


__all__ = ["replay"]
