"""The one module that opens a netlink socket.

:func:`dump` sends a request and yields each received datagram until the
decoder says the dump is done.  ``OSError`` is translated here, once.
"""

from __future__ import annotations

import _socket  # the C module: ``socket``'s enum set-up costs start-up time
import _thread  # (loaded by the interpreter's start-up already)
import errno
import sys

from sockscope.errors import NetlinkError, netlink_error
from sockscope.kernel.netlink import DONE_HEAD, NETLINK_SOCK_DIAG

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Any, Callable, Generator, Iterator

RCVBUF = 1 << 20  # 1 MiB: fewer syscalls for large dumps
_RECV_SIZE = 1 << 17  # the kernel fills up to ~32 KiB per datagram; leave room
#: ``join`` for the inet listings: the datagrams a helper has queued are handed over as one, up to
#: about this many bytes (eight of the kernel's ~32 KiB): the host mix's -tanmi 69 -> 53 ms, -tanm
#: 30 -> 21, -tan 15 -> 14 (warm, in process).  Not for UNIX dumps: no gain measured (-xa,
#: -xam), the general strategy reads a joined one more slowly, and each datagram's batch is let go once read
JOIN_BYTES = 256 << 10


def own_thread() -> tuple[Any, int]:
    """Called first in a thread of ours: what :func:`wait_gone` waits on (the thread state's sentinel
    lock, released when that state is gone: CPython < 3.13; else None), and its native id."""
    sentinel = getattr(_thread, "_set_sentinel", None)
    return (sentinel() if sentinel is not None else None), _thread.get_native_id()


def wait_gone(thread: tuple[Any, int]) -> None:
    """Wait until a thread of ours that has done its work is gone (``thread``: its :func:`own_thread`):
    its state released, then its task gone from ``/proc/self/task`` (bounded: under a procfs of
    another pid namespace the native id may name nothing, or another task).  No thread of ours
    outlives a library call that started it."""
    import os
    import time

    gone, tid = thread
    if gone is not None:
        gone.acquire()
    path = f"/proc/self/task/{tid}"
    deadline = time.monotonic() + 1.0
    while os.path.exists(path) and time.monotonic() < deadline:
        os.sched_yield()


def _failed(op: str, exc: OSError) -> NetlinkError:
    """A system call's error during ``op`` as the matching :class:`NetlinkError`."""
    return netlink_error(op, exc.errno or errno.EIO)


def _closed(op: str) -> NetlinkError:
    """The socket gave an empty read before the dump ended."""
    return NetlinkError(op, errno.EPIPE, f"{op}: netlink socket closed mid-dump")


def open_diag() -> _socket.socket:
    """A NETLINK_SOCK_DIAG socket, or :class:`NetlinkError` saying why not."""
    try:
        s = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    except OSError as exc:
        raise netlink_error("open NETLINK_SOCK_DIAG", exc.errno or errno.EPROTONOSUPPORT) from exc
    try:
        s.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, 32768)  # as ss does
        s.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, RCVBUF)
    except OSError:
        pass
    return s


def request_ack(request: bytes, op: str) -> int:
    """Send one request with NLM_F_ACK; return the kernel's errno (0: done)."""
    from sockscope.kernel import netlink as nl

    s = open_diag()
    try:
        try:
            s.sendto(request, (0, 0))
            data = s.recv(_RECV_SIZE)
        except OSError as exc:
            raise _failed(op, exc) from exc
        try:
            for _msg in nl.iter_messages(data, op):
                pass
        except NetlinkError as exc:
            return exc.errno
        return 0
    finally:
        s.close()


def subscribe(groups: int, op: str = "sock_diag events") -> _socket.socket:
    """A sock_diag socket joined to the multicast ``groups`` (bitmask)."""
    s = open_diag()
    try:
        s.bind((0, groups))
    except OSError as exc:
        s.close()
        raise _failed(op, exc) from exc
    return s


def stream(request: bytes, op: str, sock: _socket.socket | None = None, send: bool = True) -> Iterator[bytes]:
    """Send ``request`` and yield every reply datagram; the caller stops when its
    decoder sees the end of the dump.  A socket of our own is closed then; a
    ``sock`` passed in (reused across dumps) is left open."""
    s = open_diag() if sock is None else sock
    try:
        try:
            if send:
                s.sendto(request, (0, 0))
        except OSError as exc:
            raise _failed(op, exc) from exc
        recv = _receiver(s)
        while True:
            try:
                data = recv()
            except OSError as exc:
                raise _failed(op, exc) from exc
            if not data:
                raise _closed(op)
            yield data
    finally:
        if sock is None:
            s.close()


def _receiver(s: _socket.socket) -> Callable[[], bytes]:
    """``s.recv(_RECV_SIZE)``, through one reused buffer: ``recv`` of 128 KiB
    allocates (and, above glibc's mmap threshold, maps and unmaps) that much
    for every datagram of ~32 KiB; a copy of what came costs less (a cold
    10k-socket dump: 7.9 -> 6.8 ms)."""
    buf = bytearray(_RECV_SIZE)
    view = memoryview(buf)
    recv_into = s.recv_into

    def recv() -> bytes:
        return view[: recv_into(buf)].tobytes()

    return recv


#: the interpreter's switch interval while a helper receives (seconds; the default is 5 ms)
SWITCH_INTERVAL = 1e-4
_switching = [0, 0.0]  # helpers receiving now, and the interval to restore when none is
_switching_lock = _thread.allocate_lock()


def _switch_often(on: bool) -> None:
    """While a helper of :func:`stream_ahead` runs, the interpreter switches threads every
    :data:`SWITCH_INTERVAL`: the helper, back from ``recv`` with a datagram, then waits that
    long for the GIL to queue it and ask the kernel for the next one (at the default 5 ms the
    caller, decoding, keeps the GIL until it has nothing left and must sleep until the helper
    runs: a hand-off per datagram).  The first helper to start sets it, the last to stop puts
    back what was there."""
    with _switching_lock:
        if on:
            if not _switching[0]:
                _switching[1] = sys.getswitchinterval()
                sys.setswitchinterval(SWITCH_INTERVAL)
            _switching[0] += 1
        else:
            _switching[0] -= 1
            if not _switching[0]:
                sys.setswitchinterval(_switching[1])


def stream_ahead(request: bytes, op: str, join: int = JOIN_BYTES) -> Iterator[bytes]:
    """:func:`stream`, with a thread that keeps receiving while the caller
    decodes: the kernel fills the next datagrams (``recv`` releases the GIL)
    while this thread works on the last one.  The helper stops at what ends a
    dump (a datagram ending with ``NLMSG_DONE``, or an error); should the
    caller's decoder want more after that, it is read here directly.  Meanwhile
    threads switch often (:func:`_switch_often`).  The first datagram (made by
    the kernel as the request is sent) is received here; a dump that ends in
    it starts no helper.  ``join``: see :class:`_Handoff` (:data:`JOIN_BYTES`)."""
    s = open_diag()
    recv = _receiver(s)
    try:
        s.sendto(request, (0, 0))
        first = recv()  # (the kernel made it in sendto: here at once, no thread to wait for)
    except OSError as exc:
        s.close()
        raise _failed(op, exc) from exc
    if not first:
        s.close()
        raise _closed(op)
    if _ends_dump(first):  # the whole dump (or the kernel's error) in one datagram: no helper
        try:
            yield first
            yield from stream(b"", op, s, send=False)  # only if the decoder wants more
        finally:
            s.close()
        return
    hand = _Handoff(s, recv, op, 0, join)
    hand.start(b"")
    try:
        yield first  # decoded while the helper starts and asks for the next
        yield from hand.items()
    finally:  # (also where the caller stops at the first: the helper is ended, the socket closed)
        hand.end()


class Behind:
    """A dump that a helper thread starts at once (it sends the request and receives the
    replies) while the caller reads something else: the kernel's walk runs beside the
    caller's work, none of it on the caller's thread.  Iterate it once (the datagrams, as
    :func:`stream` yields them); the helper holds at most :data:`BEHIND_BYTES` of them not
    yet taken, and then waits.  :meth:`close` ends it wherever it is (also never read)."""

    __slots__ = ("_hand", "_items")

    def __init__(self, request: bytes, op: str, join: int = JOIN_BYTES) -> None:
        s = open_diag()
        self._hand = _Handoff(s, _receiver(s), op, BEHIND_BYTES, join)
        self._hand.start(request)
        self._items = self._hand.items()

    def __iter__(self) -> Iterator[bytes]:
        return self._items

    def close(self) -> None:
        self._items.close()  # (a generator never started runs no finally: the hand-off ends below)
        self._hand.end()


#: what a :class:`Behind` helper receives before its caller reads it, at most (then it waits)
BEHIND_BYTES = 8 << 20


class _Handoff:
    """Datagrams a helper thread receives from ``sock``, handed to the thread that decodes them.

    Two locks, each released by one thread only and acquired by the other (no wake-up is lost;
    one that finds its item already taken makes the loop wait again): ``wake`` when ``got`` was
    empty, ``room`` when a helper bounded by ``cap`` bytes may go on.  The socket is closed
    once the helper has stopped (``done``): never under a ``recv`` of its.  With ``join``, the
    datagrams queued when the caller takes one are handed over as one (:meth:`_joined`)."""

    __slots__ = ("sock", "recv", "op", "cap", "join", "got", "wake", "room", "done", "put_bytes", "taken_bytes", "stop",
                 "closed", "thread")
    END = object()

    def __init__(self, sock: _socket.socket, recv: Callable[[], bytes], op: str, cap: int = 0, join: int = 0) -> None:
        if TYPE_CHECKING:
            from collections import deque
        else:  # the C type, built into the interpreter (``queue``'s C module is one more shared library to load)
            from _collections import deque
        self.sock, self.recv, self.op, self.cap, self.join = sock, recv, op, cap, join
        self.got: deque[bytes | OSError | object] = deque()
        self.wake, self.room, self.done = _thread.allocate_lock(), _thread.allocate_lock(), _thread.allocate_lock()
        self.wake.acquire()
        self.room.acquire()
        self.put_bytes = self.taken_bytes = 0  # (each written by one thread only)
        self.stop = self.closed = False
        self.thread: tuple[Any, int] = (None, 0)  # (the helper's, once it runs: see own_thread)

    def start(self, request: bytes) -> None:
        """Start the helper (it sends ``request`` first, unless empty)."""
        _switch_often(True)
        self.done.acquire()
        try:
            _thread.start_new_thread(self._receive, (request,))
        except BaseException:
            self.done.release()
            self.end()
            raise

    def _put(self, item: bytes | OSError | object) -> None:
        self.got.append(item)
        if self.wake.locked():
            self.wake.release()

    def _receive(self, request: bytes) -> None:  # the helper
        self.thread = own_thread()
        try:
            if request:
                self.sock.sendto(request, (0, 0))
            while not self.stop:
                data = self.recv()
                self._put(data)
                if not data or _ends_dump(data):
                    break
                self.put_bytes += len(data)
                while self.cap and self.put_bytes - self.taken_bytes > self.cap and not self.stop:
                    self.room.acquire()
        except OSError as exc:
            self._put(exc)
        finally:
            self._put(self.END)
            self.done.release()

    def items(self) -> Generator[bytes, None, None]:
        """The datagrams, as the helper hands them over; then what the decoder still wants, read here."""
        op = self.op
        try:
            while True:
                while not self.got:
                    self.wake.acquire()
                item = self.got.popleft()
                if item is self.END:
                    break
                if isinstance(item, OSError):
                    raise _failed(op, item) from item
                if not isinstance(item, bytes) or not item:
                    raise _closed(op)
                if self.join and self.got and not _ends_dump(item):
                    item = self._joined(item)
                if self.cap:
                    self.taken_bytes += len(item)
                    if self.room.locked():
                        self.room.release()
                yield item
            yield from stream(b"", op, self.sock, send=False)  # only if the decoder wants more
        finally:
            self.end()

    def _joined(self, item: bytes) -> bytes:
        """``item`` and the datagrams queued behind it, as one (up to ``join`` bytes and one datagram
        more; never one that ends the dump, nor anything but data): where the decoder is slower than
        the kernel, it takes several datagrams in one call, and its costs per call (and its consumers',
        per batch) are paid once for them.  A dump's messages are one sequence whatever the datagrams
        they came in."""
        got, join = self.got, self.join
        parts = [item]
        size = len(item)
        while got and size < join:
            nxt = got[0]  # (only this thread takes items)
            if type(nxt) is not bytes or not nxt or _ends_dump(nxt):
                break
            parts.append(nxt)
            got.popleft()
            size += len(nxt)
        return b"".join(parts) if len(parts) > 1 else item

    def end(self) -> None:
        """Stop the helper, wait for it, close the socket (once)."""
        if self.closed:
            return
        self.closed = True
        self.stop = True
        if self.room.locked():
            self.room.release()
        # the helper's recv returns (a dump's datagrams come as they are asked for); one that waits
        # for a datagram that never comes is left to its wait, on a socket closed here
        if self.done.acquire(timeout=1.0):
            self.done.release()
            wait_gone(self.thread)  # (its last steps after releasing done: no thread outlives the dump)
        _switch_often(False)
        self.sock.close()


_ERROR_TYPE = (2).to_bytes(2, sys.byteorder)


def _ends_dump(data: bytes) -> bool:
    """Whether a datagram looks like the last of a dump: it ends with
    ``NLMSG_DONE`` or starts with ``NLMSG_ERROR``.  A guess for the helper
    thread only (the caller's decoder decides)."""
    return data[-20:-14] == DONE_HEAD or data[4:6] == _ERROR_TYPE


def dump(request: bytes, decode: Callable[[bytes], bool], op: str, sock: _socket.socket | None = None) -> None:
    """Send ``request`` and feed every reply datagram to ``decode`` until it returns True."""
    for data in stream(request, op, sock):
        if decode(data):
            return
