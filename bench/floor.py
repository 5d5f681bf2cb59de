"""The Python floor of a listing: the least any Python program printing it does.

``python floor.py REQUEST_HEX …`` starts the interpreter (with ``site``, as the ``sockscope``
console script does), opens a NETLINK_SOCK_DIAG socket, sends each request (the listing's own,
captured by ``measure.listing_requests``) and receives every datagram of its dump into one
buffer until the dump ends, then exits (``os._exit``, as the listing does); a request marked ``+``
(the listing's helper sends it at once, ``transport.Behind``) is received by a thread of its own.  Nothing is decoded,
framed, formatted or written.  ``run.py`` times it against ss in the rows named ``*_floor``: the
gap between this and 1.5× ss is all the time a Python listing has for decoding and writing its
rows (bench/README.md, "The Python floor").

It imports only C modules built into the interpreter or loaded by every listing (``_socket``):
not sockscope, whose own import is part of what the listing does above the floor.
"""

import _socket
import _thread
import os
import sys

# <linux/netlink.h>, <linux/sock_diag.h>: the same facts kernel/transport.py reads (this script
# may not import it: its import would be measured)
_NETLINK_SOCK_DIAG = 4
_SO_SNDBUF, _SO_RCVBUF = 7, 8
_DONE_TAIL = (20).to_bytes(4, sys.byteorder) + (3).to_bytes(2, sys.byteorder)  # NLMSG_DONE, 20 bytes
_ERROR = (2).to_bytes(2, sys.byteorder)  # NLMSG_ERROR
_MAX_DATAGRAMS = 1 << 16  # a bound: a dump of 2M sockets at ~32 KiB a datagram


def receive(text: str) -> bool:
    """Send one request and receive its dump to the end; False if it never ends."""
    buf = bytearray(1 << 17)
    view = memoryview(buf)
    s = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG)
    s.setsockopt(_socket.SOL_SOCKET, _SO_SNDBUF, 32768)
    s.setsockopt(_socket.SOL_SOCKET, _SO_RCVBUF, 1 << 20)
    s.sendto(bytes.fromhex(text), (0, 0))
    for _ in range(_MAX_DATAGRAMS):
        n = s.recv_into(buf)
        if view[n - 20 : n - 14] == _DONE_TAIL or view[4:6] == _ERROR:
            s.close()
            return True
    return False


def _helper(text: str, done: "_thread.LockType", got: list[bool]) -> None:
    try:
        got.append(receive(text))
    finally:
        done.release()


def main(requests: list[str]) -> int:
    """Each request in turn; one marked ``+`` (the listing's helper sends it at once, its walk beside
    the next dump's) by a thread started here, which is waited for at the end."""
    helpers = []
    for text in requests:
        if text.startswith("+"):
            done = _thread.allocate_lock()
            done.acquire()
            got: list[bool] = []
            _thread.start_new_thread(_helper, (text[1:], done, got))
            helpers.append((done, got))
        elif not receive(text):
            break
    else:
        if all(done.acquire() and got == [True] for done, got in helpers):
            return 0
    print(f"floor.py: no end of a dump after {_MAX_DATAGRAMS} datagrams", file=sys.stderr)
    return 1


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(status)
