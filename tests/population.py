"""The socket population builder: a script run INSIDE a private network namespace.

    ip netns exec NAME python tests/population.py TMPDIR

It opens a fixed, known set of sockets on loopback (TCP in every state that can
be held still, SYN-RECV mini-sockets among them, UDP, UNIX of every type and naming), prints one line
``READY <json>`` describing what it built (pids, ports, paths), and then holds
everything still until stdin reaches EOF or it reads ``quit``.  The line ``tw``
on stdin makes one more pair of TIME-WAIT sockets (v4 and v6; TIME-WAIT lasts
60 s, so the harness asks for a fresh one when the last one gets old), and an
orphaned FIN-WAIT-2 per family beside them, and is answered with ``OK <json>``.

Packet sockets (AF_PACKET) that can receive nothing complete the tables
shown by ``ss -a``.

Nothing here changes by itself after READY: no socket appears or disappears,
no queue moves (the full-window sender is topped up until the kernel refuses
more), so ss and sockscope can be compared row for row.  The only exceptions are
TIME-WAIT and the orphaned FIN-WAIT-2 made with it, which the kernel ends after 60 s
(the harness deals with that), and the SYN-RECV request sockets' timers (their
deferred accept lasts an hour).

Processes: the main process ("sspop-main") and one child ("sspop-child"),
forked right after the shared listener and a socketpair are made, so that the
child holds exactly: the shared TCP listener (two holders: ``-p`` lists both)
and one end of a UNIX socketpair.  The child exits when the main process dies
(a pipe reaches EOF), and the harness also kills both by pid.

Service names (checked against /etc/services of the test machine): tcp 22 ssh,
tcp 21 ftp, tcp 80 http, udp/tcp 53 domain, udp 7001 afs3-callback while tcp
7001 has no name, udp 22 has no name while tcp 22 is ssh.  Other ports used
(2345, 3456, 4443, 5001..5003, 5678, 6789, 6791, 6792, 8443, 9001..9003, 9876, 9999) have
none.
Ephemeral client ports fall in ip_local_port_range, where ss never names ports.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time

AF4, AF6, AFU = socket.AF_INET, socket.AF_INET6, socket.AF_UNIX
STREAM, DGRAM, SEQ = socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET

#: Every socket object is kept here: a socket that is garbage-collected closes.
KEEP: list[socket.socket] = []


def keep(*socks: socket.socket) -> None:
    KEEP.extend(socks)


def set_comm(name: str) -> None:
    """Set this process's comm (what ss -p prints), max 15 bytes."""
    with open("/proc/self/comm", "w") as f:
        f.write(name)


def listener(family: int, addr: str, port: int, *, backlog: int = 16, v6only: bool | None = None,
             device: bytes | None = None, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket(family, STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    if device is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device)
    if rcvbuf is not None:
        # Set on the listener so that accepted sockets inherit it, and so the
        # window scale negotiated in the SYN matches the small buffer.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((addr, port))
    s.listen(backlog)
    keep(s)
    return s


def connect(family: int, addr: str, port: int, *, rcvbuf: int | None = None) -> socket.socket:
    c = socket.socket(family, STREAM)
    if rcvbuf is not None:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    c.connect((addr, port))
    keep(c)
    return c


def pair(lst: socket.socket, family: int, addr: str, port: int) -> tuple[socket.socket, socket.socket]:
    """Connect to ``lst`` and accept: (client, server side), both ESTAB."""
    c = connect(family, addr, port)
    s, _ = lst.accept()
    keep(s)
    return c, s


def udp(family: int, addr: str, port: int, *, v6only: bool | None = None,
        device: bytes | None = None) -> socket.socket:
    s = socket.socket(family, DGRAM)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    if device is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device)
    s.bind((addr, port))
    keep(s)
    return s


def fill(sender: socket.socket) -> int:
    """Send into a peer that does not read until the kernel takes no more.

    Repeats until two rounds in a row, 0.2 s apart, add nothing: then the
    receiver's window is shut, the sender's buffer full, and both queues still.
    """
    sender.setblocking(False)
    total, idle_rounds = 0, 0
    chunk = b"q" * 4096
    while idle_rounds < 2:
        sent_now = 0
        while True:
            try:
                n = sender.send(chunk)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break
                raise
            sent_now += n
        total += sent_now
        idle_rounds = idle_rounds + 1 if sent_now == 0 else 0
        time.sleep(0.2)
    return total


def wait_tcp_state(port: int, want_state: str, family: str = "tcp", timeout: float = 5.0) -> None:
    """Wait until /proc/net/tcp{,6} shows a socket with local/remote ``port`` in ``want_state``."""
    hexstate = {"TIME_WAIT": "06", "FIN_WAIT2": "05", "CLOSE_WAIT": "08", "SYN_RECV": "03"}[want_state]
    hexport = f"{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(name) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    ends = (":" + hexport,)
                    if fields[3] == hexstate and (fields[1].endswith(ends) or fields[2].endswith(ends)):
                        return
        time.sleep(0.01)
    raise RuntimeError(f"no socket on port {port} reached {want_state}")


# ---------------------------------------------------------------------------------------------


def build(tmpdir: str) -> dict[str, object]:
    info: dict[str, object] = {"tmpdir": tmpdir}
    main_pid = os.getpid()
    set_comm("sspop-main")

    # --- shared between two processes: made first, then fork -------------------------------
    shared = listener(AF4, "0.0.0.0", 21)  # ftp
    sp_a, sp_b = socket.socketpair(AFU, STREAM)
    keep(sp_a, sp_b)
    death_r, death_w = os.pipe()
    child = os.fork()
    if child == 0:  # the child: hold the shared listener and sp_b, nothing else
        os.close(death_w)
        set_comm("sspop-child")
        sp_a.close()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        try:
            os.read(death_r, 1)  # EOF when the main process is gone
        finally:
            os._exit(0)
    os.close(death_r)
    sp_b.close()
    KEEP.remove(sp_b)
    info["pids"] = [main_pid, child]
    info["main_pid"], info["child_pid"] = main_pid, child

    # --- TCP listeners -----------------------------------------------------------------------
    l_ssh = listener(AF4, "127.0.0.1", 22)                 # 127.0.0.1:ssh
    l_http6 = listener(AF6, "::1", 80)                     # [::1]:http (v6only implied)
    l_any4 = listener(AF4, "0.0.0.0", 7001)                # 0.0.0.0:7001 (udp 7001 has a name)
    l_dual = listener(AF6, "::", 8443, v6only=False)       # *:8443
    listener(AF6, "::", 9001, v6only=True)                 # [::]:9001
    l_acc = listener(AF4, "127.0.0.1", 5001, backlog=7)    # accept queue 2/7
    listener(AF4, "127.0.0.1", 9999, device=b"lo")         # 127.0.0.1%lo:9999
    listener(AF6, "::1", 4443, device=b"lo")               # [::1]%lo:4443
    listener(AF6, "::ffff:127.0.0.1", 6791)               # [::ffff:127.0.0.1]:6791, peer *:* (never v6only)
    l_q = listener(AF4, "127.0.0.1", 6789, rcvbuf=4096)    # queues
    l_half4 = listener(AF4, "127.0.0.1", 2345)             # CLOSE-WAIT / FIN-WAIT-2
    l_half6 = listener(AF6, "::1", 2345)
    l_tw4 = listener(AF4, "127.0.0.1", 3456)               # TIME-WAIT source
    l_tw6 = listener(AF6, "::1", 3456)
    global TW_LISTENERS
    TW_LISTENERS = (l_tw4, l_tw6)

    # --- ESTAB pairs -------------------------------------------------------------------------
    pair(l_ssh, AF4, "127.0.0.1", 22)
    pair(l_http6, AF6, "::1", 80)
    pair(l_any4, AF4, "127.0.0.1", 7001)
    pair(l_dual, AF6, "::ffff:127.0.0.1", 8443)   # v4-mapped on both ends
    pair(l_dual, AF4, "127.0.0.1", 8443)          # v4 client, v4-mapped server side
    pair(l_dual, AF6, "::1", 8443)                # plain v6 on the dual-stack listener
    pair(shared, AF4, "127.0.0.1", 21)            # accepted by the main process only

    # --- accept queue: two connections never accepted ----------------------------------------
    connect(AF4, "127.0.0.1", 5001)
    connect(AF4, "127.0.0.1", 5001)
    _ = l_acc

    # --- SYN-RECV: server ends a TCP_DEFER_ACCEPT listener holds back ----------------------------
    # The client's bare ACK completes the handshake on its side (ESTAB), but the listener keeps its
    # end a request socket (SYN-RECV: a mini-socket, no inode, its timer on) until data arrives, and
    # none is ever sent; the defer (an hour) outlasts any test session.  IPv4, IPv6, and IPv4
    # clients of a dual-stack listener (``::ffff:`` mapped): mini-sockets among full ones.
    for fam, addr, port, v6only, client in ((AF4, "127.0.0.1", 5002, None, (AF4, "127.0.0.1")),
                                             (AF6, "::1", 5002, None, (AF6, "::1")),
                                             (AF6, "::", 5003, False, (AF4, "127.0.0.1"))):
        deferring = listener(fam, addr, port, v6only=v6only)
        deferring.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 3600)
        for _ in range(2):
            connect(*client, port)
    wait_tcp_state(5002, "SYN_RECV")
    wait_tcp_state(5003, "SYN_RECV")

    # --- queues: unread bytes (Recv-Q) and a full window (Send-Q) ----------------------------
    c_rq, s_rq = pair(l_q, AF4, "127.0.0.1", 6789)
    c_rq.sendall(b"r" * 1234)                      # server side Recv-Q 1234
    c_sq, s_sq = pair(l_q, AF4, "127.0.0.1", 6789)
    info["filled"] = fill(c_sq)                    # client Send-Q > 0, server Recv-Q > 0
    s_rq.sendall(b"s" * 77)                        # and 77 unread the other way

    # --- half-closed: FIN-WAIT-2 (shutdown, still owned: no timeout) and CLOSE-WAIT ----------
    for lst, fam, addr in ((l_half4, AF4, "127.0.0.1"), (l_half6, AF6, "::1")):
        c, _s = pair(lst, fam, addr, 2345)
        c.shutdown(socket.SHUT_WR)
    wait_tcp_state(2345, "FIN_WAIT2")
    wait_tcp_state(2345, "CLOSE_WAIT")

    # --- UDP -----------------------------------------------------------------------------------
    u_dom = udp(AF4, "127.0.0.1", 53)                # 127.0.0.1:domain
    udp(AF4, "127.0.0.1", 22)                        # udp 22: no service name
    udp(AF4, "0.0.0.0", 7001)                        # 0.0.0.0:afs3-callback
    u6 = udp(AF6, "::1", 5678)
    udp(AF6, "::", 9002, v6only=False)               # *:9002
    udp(AF6, "::", 9003, v6only=True)                # [::]:9003
    udp(AF4, "127.0.0.1", 9876, device=b"lo")        # 127.0.0.1%lo:9876
    udp(AF6, "::ffff:127.0.0.1", 6792)               # [::ffff:127.0.0.1]:6792, peer *:*
    uc4 = socket.socket(AF4, DGRAM)
    uc4.connect(("127.0.0.1", 53))                   # ESTAB udp
    uc4.send(b"x" * 100)                             # unread: Recv-Q on 127.0.0.1:53
    uc6 = socket.socket(AF6, DGRAM)
    uc6.connect(("::1", 5678))
    keep(uc4, uc6)
    _ = (u_dom, u6)

    # --- UNIX ----------------------------------------------------------------------------------
    p_stream = os.path.join(tmpdir, "stream.sock")
    p_backlog = os.path.join(tmpdir, "backlog.sock")
    p_dgram = os.path.join(tmpdir, "dgram.sock")
    p_seq = os.path.join(tmpdir, "seq.sock")
    p_client = os.path.join(tmpdir, "client.sock")
    abs_name = f"sockscope-abs-{os.getpid()}"
    info["unix_paths"] = [p_stream, p_backlog, p_dgram, p_seq, p_client]
    info["abstract"] = "@" + abs_name

    us = socket.socket(AFU, STREAM)
    us.bind(p_stream)
    us.listen(8)
    uc = socket.socket(AFU, STREAM)
    uc.connect(p_stream)
    ua, _ = us.accept()
    uc.sendall(b"u" * 321)                           # Recv-Q 321 on the accepted end
    keep(us, uc, ua)

    ub = socket.socket(AFU, STREAM)                  # one connection never accepted
    ub.bind(p_backlog)
    ub.listen(4)
    ubc = socket.socket(AFU, STREAM)
    ubc.connect(p_backlog)
    keep(ub, ubc)

    ud = socket.socket(AFU, DGRAM)                   # bound dgram, one unread datagram
    ud.bind(p_dgram)
    udc = socket.socket(AFU, DGRAM)
    udc.bind(p_client)                               # a named, connected dgram client
    udc.connect(p_dgram)
    udc.send(b"d" * 50)
    keep(ud, udc)

    uq = socket.socket(AFU, SEQ)
    uq.bind(p_seq)
    uq.listen(2)
    uqc = socket.socket(AFU, SEQ)
    uqc.connect(p_seq)
    uqa, _ = uq.accept()
    keep(uq, uqc, uqa)

    ua_l = socket.socket(AFU, STREAM)                # abstract stream listener + connection
    ua_l.bind("\0" + abs_name)
    ua_l.listen(3)
    ua_c = socket.socket(AFU, STREAM)
    ua_c.connect("\0" + abs_name)
    ua_a, _ = ua_l.accept()
    keep(ua_l, ua_c, ua_a)

    u_nul = socket.socket(AFU, DGRAM)                # abstract name with an inner NUL: @ss@nul
    u_nul.bind(b"\0ss\0nul")
    u_auto = socket.socket(AFU, DGRAM)               # autobind: @ + 5 hex digits
    u_auto.bind(b"")
    info["autobind"] = "@" + u_auto.getsockname()[1:].decode()
    dp_a, dp_b = socket.socketpair(AFU, DGRAM)       # dgram socketpair
    u_unnamed = socket.socket(AFU, STREAM)           # never bound, never connected
    u_seq_unnamed = socket.socket(AFU, SEQ)
    keep(u_nul, u_auto, dp_a, dp_b, u_unnamed, u_seq_unnamed)

    # --- packet sockets: none of them can receive anything, so their queues stay 0 -------------
    # (lo is NOARP, 0x88b5 is the IEEE "local experimental" ethertype, protocol 0 receives
    # nothing until bound to a protocol; ETH_P_ALL is avoided: it would count loopback traffic.)
    pk_dgr = socket.socket(socket.AF_PACKET, DGRAM, socket.htons(0x88B5))
    pk_dgr.bind(("lo", 0x88B5))                      # p_dgr [34997]:lo
    pk_raw0 = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # p_raw [0]:*
    pk_arp = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    pk_arp.bind(("lo", 0x0806))                      # p_raw arp:lo (-n: [2054]:lo)
    keep(pk_dgr, pk_raw0, pk_arp)

    info["death_pipe"] = death_w
    return info


TW_LISTENERS: tuple[socket.socket, socket.socket] | None = None
#: the server ends of the orphaned FIN-WAIT-2 connections :func:`make_timewait` made last (CLOSE-WAIT)
FW2_SERVER_ENDS: list[socket.socket] = []


def make_timewait() -> dict[str, object]:
    """One TIME-WAIT per family: the client closes first (client side enters TIME-WAIT).  And one
    orphaned FIN-WAIT-2 per family: a client that closed its socket outright, whose server has not
    closed (CLOSE-WAIT); the kernel keeps the client's end as a mini-socket (a timewait socket in
    state FIN-WAIT-2, ``tcp_fin_timeout``: 60 s, as long as TIME-WAIT's).  The last call's server
    ends are closed first (a FIN-WAIT-2 end still there then goes to TIME-WAIT: a peer of 3456 too)."""
    assert TW_LISTENERS is not None
    while FW2_SERVER_ENDS:
        FW2_SERVER_ENDS.pop().close()
    ports = []
    for lst, fam, addr in ((TW_LISTENERS[0], AF4, "127.0.0.1"), (TW_LISTENERS[1], AF6, "::1")):
        c = socket.socket(fam, STREAM)
        c.connect((addr, 3456))
        s, _ = lst.accept()
        port = c.getsockname()[1]
        c.close()                  # FIN from the client: client FIN-WAIT-2, server CLOSE-WAIT
        s.settimeout(5)
        assert s.recv(1) == b""    # the server sees EOF ...
        s.close()                  # ... and closes: client TIME-WAIT, server LAST-ACK -> gone
        ports.append(port)
        orphan = socket.socket(fam, STREAM)
        orphan.connect((addr, 3456))
        s, _ = lst.accept()
        fw2_port = orphan.getsockname()[1]
        orphan.close()             # FIN, ACKed: the client's end orphaned in FIN-WAIT-2 (a mini-socket)
        FW2_SERVER_ENDS.append(s)  # the server reads nothing and keeps its end: CLOSE-WAIT
        wait_tcp_state(fw2_port, "FIN_WAIT2")
    # The server's last ACK arrives at once on loopback; wait until no LAST-ACK remains.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        states = []
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(name) as f:
                states += [line.split()[3] for line in f.readlines()[1:]]
        if "09" not in states:
            break
        time.sleep(0.01)
    for port in ports:
        wait_tcp_state(port, "TIME_WAIT")
    return {"tw_ports": ports, "tw_time": time.time()}


def main() -> int:
    tmpdir = sys.argv[1]
    info = build(tmpdir)
    info.update(make_timewait())
    print("READY " + json.dumps(info), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "tw":
            print("OK " + json.dumps(make_timewait()), flush=True)
        elif cmd == "quit":
            break
        else:
            print(f"ERR unknown command {cmd!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
