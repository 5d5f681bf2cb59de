"""Message layouts: each kernel struct sockscope reads, described once.

A :class:`Layout` is a C struct as a list of ``(name, code)`` fields (``struct``
codes, native sizes, no padding: the kernel's structs are packed by their own
alignment and every field here sits where the list puts it).  From it come the
``struct.Struct`` that unpacks one message and the offsets by name; and
:meth:`Layout.columns` reads named fields of many messages of one length at
once, one C loop per field (a strided ``memoryview`` where the field is an
aligned integer, one ``iter_unpack`` for the others).  Every decoder takes its
offsets from here: no module restates a layout.

A field whose name starts with ``_`` is padding or unused.  Codes ending in
``!`` are in network byte order (they are read natively and swapped).
"""

from __future__ import annotations

import _struct  # struct.py only re-exports this C module: one module fewer to import
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Sequence

_SWAP = sys.byteorder == "little"
#: netlink message header length: every diag message's payload starts here
NLMSG_HDRLEN = 16


class Layout:
    """One struct: its fields' offsets and codes, and the struct of one message.  The offsets and
    the struct are made when first asked for: a listing reads few of the layouts below (``-tan``
    and ``-xa`` one each), and making them all cost every start ~0.4 ms."""

    __slots__ = ("name", "fields", "offsets", "size", "struct", "names", "_by_length", "_plans", "_cuts")

    def __init__(self, name: str, fields: Sequence[tuple[str, str]]) -> None:
        self.name = name
        self.fields = tuple(fields)

    def __getattr__(self, attr: str) -> Any:  # (a slot not set yet: the layout not made yet)
        if attr not in _MADE:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")
        self._make()
        return object.__getattribute__(self, attr)

    def _make(self) -> None:
        """Every slot but the name and the fields, each set once whole (a thread that reads one
        already set while another thread makes the rest sees it complete)."""
        offsets: dict[str, tuple[int, str, bool]] = {}  # name -> (offset, code, network order)
        off = 0
        codes = []
        for fname, code in self.fields:
            net = code.endswith("!")
            code = code.rstrip("!")
            if not fname.startswith("_"):
                offsets[fname] = (off, code, net)
            codes.append(code)
            off += _struct.calcsize("=" + code)
        self.offsets = offsets
        self.size = off
        self.struct = _struct.Struct("=" + "".join(codes))
        self.names = tuple(f for f, _ in self.fields)
        self._by_length: dict[tuple[int, tuple[str, ...]], _struct.Struct] = {}
        self._plans: dict[tuple[int, int, tuple[str, ...]], list[tuple[int, int, int, str]]] = {}
        self._cuts: dict[tuple[Any, int], list[tuple[int, slice, slice, slice, int]]] = {}

    def offset(self, name: str) -> int:
        return self.offsets[name][0]

    def struct_size(self, name: str) -> int:
        """The size in bytes of field ``name``."""
        return _struct.calcsize("=" + self.offsets[name][1])

    def columns(self, body: memoryview, length: int, names: Sequence[str], base: int = NLMSG_HDRLEN
                ) -> list[list[Any]]:
        """The fields ``names`` of the ``len(body) // length`` messages of ``body``,
        each ``length`` bytes long (a multiple of 4) with this struct at ``base``:
        one list per name.  Integers in network order come out in host order;
        a ``Q`` the kernel placed at an offset not a multiple of 8 is read as two
        words."""
        out: list[list[Any]] = []
        strings: list[int] = []
        for i, name in enumerate(names):
            off, code, net = self.offsets[name]
            pos = base + off
            out.append([])
            if code == "B":
                out[i] = body[pos::length].tolist()
            elif code in ("H", "I") and length % 4 == 0:
                size = 2 if code == "H" else 4
                view = body.cast(code)[pos // size :: length // size]  # type: ignore[call-overload]
                out[i] = from_network(view.tobytes(), code) if net else view.tolist()
            elif code == "Q" and length % 4 == 0:
                w = body.cast("I")
                # the low word first on a little-endian machine
                lo, hi = (pos // 4, pos // 4 + 1) if _SWAP else (pos // 4 + 1, pos // 4)
                low, high = w[lo :: length // 4].tolist(), w[hi :: length // 4].tolist()
                out[i] = low if not any(high) else [a | (b << 32) for a, b in zip(low, high)]
            else:
                strings.append(i)
        if strings:
            key = (length, tuple(names[i] for i in strings))
            st = self._by_length.get(key)
            if st is None:
                parts, pos = [], 0
                for i in sorted(strings, key=lambda j: self.offsets[names[j]][0]):
                    off, code, _net = self.offsets[names[i]]
                    parts.append(f"{base + off - pos}x{code}")
                    pos = base + off + _struct.calcsize("=" + code)
                parts.append(f"{length - pos}x")
                st = self._by_length[key] = _struct.Struct("=" + "".join(parts))
            order = sorted(strings, key=lambda j: self.offsets[names[j]][0])
            cols = list(zip(*st.iter_unpack(body))) if len(body) >= length else [() for _ in order]
            for i, col in zip(order, cols):
                out[i] = list(col)
        return out

    def column(self, body: memoryview, length: int, name: str, base: int = NLMSG_HDRLEN) -> list[int]:
        """Integer field ``name`` of the ``len(body) // length`` messages of ``body`` (each ``length``
        bytes, a multiple of 4; this struct at ``base``, a multiple of 4): one strided read.  A ``Q`` at
        an offset not a multiple of 8 in messages whose length is is read from a view that starts 4
        bytes in (one read, not two words); in messages whose length is not, as two words."""
        off, code, net = self.offsets[name]
        pos = base + off
        v, start, step, _name = self._where(length, pos, name)
        if v >= 0:
            return _view(body, v)[start::step].tolist()
        if code == "H" or code == "I":  # network order
            size = 2 if code == "H" else 4
            return from_network(body.cast(code)[pos // size :: length // size].tobytes(), code)  # type: ignore[call-overload]
        if code != "Q":
            raise ValueError(f"{self.name}.{name} is not an integer")
        w = body.cast("I")
        lo, hi = (pos // 4, pos // 4 + 1) if _SWAP else (pos // 4 + 1, pos // 4)
        low, high = w[lo :: length // 4].tolist(), w[hi :: length // 4].tolist()
        return low if not any(high) else [a | (b << 32) for a, b in zip(low, high)]

    def strided(self, body: memoryview, length: int, names: tuple[str, ...], base: int = NLMSG_HDRLEN,
                alike: bool = False) -> list[Any]:
        """:meth:`column` of each of ``names``, with the reads planned once per (length, base, names)
        and each view made once: one slice and ``tolist`` per field (many fields of few messages).
        With ``alike`` (and at least one message), a field whose value is the same in every message
        is that value, not a list."""
        key = (length, base, names)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = [self._where(length, base + self.offsets[name][0], name) for name in names]
        views = [body, body.cast("H"), body.cast("I")]
        if not length & 7:
            views += [_view(body, 3), _view(body, 4)]
        if not alike:
            return [views[v][start::step].tolist() if v >= 0 else self.column(body, length, name, base)
                    for v, start, step, name in plan]
        n = len(body) // length
        cuts = self._cuts.get((key, n))
        if cuts is None:
            if len(self._cuts) > 1024:
                self._cuts.clear()
            # each message's value, and the next one's: (view, first n - 1, last n - 1, all n, first)
            cuts = self._cuts[(key, n)] = [
                (v, slice(start, start + (n - 1) * step, step), slice(start + step, start + n * step, step),
                 slice(start, None, step), start) for v, start, step, _name in plan]
        if any(v < 0 for v, _a, _b, _all, _first in cuts):
            return [c[0] if c.count(c[0]) == n else c for c in self.strided(body, length, names, base)]
        # a field whose every message's value equals the next one's (compared in C, no int made) is
        # read once
        return [views[v][first] if views[v][a] == views[v][b] else views[v][every].tolist()
                for v, a, b, every, first in cuts]

    def _where(self, length: int, pos: int, name: str) -> tuple[int, int, int, str]:
        """Where :meth:`strided` reads field ``name`` at ``pos`` in messages of ``length`` bytes:
        (view: bytes, u16, u32, u64, u64 4 bytes in; -1 for :meth:`column`), first index, step."""
        code, net = self.offsets[name][1:]
        if code == "B":
            return 0, pos, length, name
        if (code == "H" or code == "I") and not net:
            size = 2 if code == "H" else 4
            return (1 if size == 2 else 2), pos // size, length // size, name
        if code == "Q" and not length & 7 and (not pos & 7 or pos + 12 <= length):
            return (3 if not pos & 7 else 4), pos // 8, length // 8, name
        return -1, 0, 0, name

    def as_ints(self, body: memoryview, length: int, name: str, base: int = NLMSG_HDRLEN) -> list[int]:
        """The first four bytes of field ``name`` of every message as a native u32 (an IPv4 address)."""
        pos = base + self.offsets[name][0]
        return body.cast("I")[pos // 4 :: length // 4].tolist()


_MADE = frozenset(Layout.__slots__) - {"name", "fields"}  # the slots a layout's _make sets


def _view(body: memoryview, v: int) -> memoryview:
    """``body`` seen as :meth:`Layout._where`'s view ``v``: bytes, u16, u32, u64, u64 from byte 4 on."""
    if v == 0:
        return body
    if v < 3:
        return body.cast("H" if v == 1 else "I")
    return body.cast("Q") if v == 3 else body[4 : len(body) - 4].cast("Q")


def gather(raw: bytes, starts: list[int], size: int) -> memoryview:
    """The ``size`` bytes at each of ``starts`` in ``raw``, side by side (messages of one kind
    picked out of a datagram, to be read column at once): every slice and the copy in C (slices
    of bytes join faster than slices of a memoryview)."""
    return memoryview(b"".join(map(raw.__getitem__, map(slice, starts, map(size.__add__, starts)))))


_ROWS: dict[int, list[slice]] = {}  # a row size -> the slices of consecutive rows of that size


def gather_rows(raw: bytes, size: int, keep: Iterable[Any]) -> memoryview:
    """The rows of ``raw`` (``size`` bytes each, from its start) whose ``keep`` is true, side by
    side: :func:`gather` for rows at a stride, whose slices are made once for each size (a
    datagram of both families cut in two makes no object per row but the rows' bytes)."""
    from itertools import compress

    n = len(raw) // size
    cuts = _ROWS.get(size)
    if cuts is None or len(cuts) < n:
        if len(_ROWS) >= 64:  # (sizes are the few lengths messages have)
            _ROWS.clear()
        cuts = _ROWS[size] = [slice(k, k + size) for k in range(0, max(n, 256) * size, size)]
    return memoryview(b"".join(map(raw.__getitem__, compress(cuts, keep))))


def from_network(raw: bytes, code: str) -> list[int]:
    """The network-order integers (``code``: ``H`` or ``I``) side by side in ``raw``, in host order:
    one big-endian unpack in C (no int made twice, as reading them natively and swapping would)."""
    return list(_struct.unpack(f">{len(raw) // _struct.calcsize(code)}{code}", raw))


# include/uapi/linux/inet_diag.h: struct inet_diag_msg (its inet_diag_sockid inlined)
INET_DIAG_MSG = Layout("inet_diag_msg", (
    ("family", "B"), ("state", "B"), ("timer", "B"), ("retrans", "B"),
    ("sport", "H!"), ("dport", "H!"), ("src", "16s"), ("dst", "16s"), ("ifindex", "I"), ("cookie", "Q"),
    ("expires", "I"), ("rqueue", "I"), ("wqueue", "I"), ("uid", "I"), ("inode", "I"),
))

# the attributes that follow it (include/uapi/linux/inet_diag.h)
INET_DIAG_MEMINFO = 1
INET_DIAG_INFO = 2
INET_DIAG_VEGASINFO = 3
INET_DIAG_CONG = 4
INET_DIAG_TOS = 5
INET_DIAG_TCLASS = 6
INET_DIAG_SKMEMINFO = 7
INET_DIAG_SHUTDOWN = 8
INET_DIAG_DCTCPINFO = 9
INET_DIAG_PROTOCOL = 10
INET_DIAG_SKV6ONLY = 11
INET_DIAG_MARK = 15
INET_DIAG_BBRINFO = 16
INET_DIAG_CLASS_ID = 17
INET_DIAG_MD5SIG = 18
INET_DIAG_ULP_INFO = 19
INET_DIAG_CGROUP_ID = 21
INET_DIAG_SOCKOPT = 22

# include/uapi/linux/unix_diag.h: struct unix_diag_msg
UNIX_DIAG_MSG = Layout("unix_diag_msg", (
    ("family", "B"), ("type", "B"), ("state", "B"), ("_pad", "x"), ("inode", "I"), ("cookie", "Q"),
))
# ... and the attributes of a reply (kernel/unix.py asks for them, kernel/unix_details.py reads them)
UNIX_DIAG_NAME, UNIX_DIAG_VFS, UNIX_DIAG_PEER, UNIX_DIAG_ICONS = 0, 1, 2, 3
UNIX_DIAG_RQLEN, UNIX_DIAG_MEMINFO, UNIX_DIAG_SHUTDOWN, UNIX_DIAG_UID = 4, 5, 6, 7

# include/uapi/linux/netlink_diag.h: struct netlink_diag_msg (ndiag_cookie is two u32s: read as one u64)
NETLINK_DIAG_MSG = Layout("netlink_diag_msg", (
    ("family", "B"), ("type", "B"), ("protocol", "B"), ("state", "B"), ("portid", "I"), ("dst_portid", "I"),
    ("dst_group", "I"), ("inode", "I"), ("cookie", "Q"),
))

# include/uapi/linux/packet_diag.h: struct packet_diag_msg (pdiag_num: the bound protocol, host order)
PACKET_DIAG_MSG = Layout("packet_diag_msg", (
    ("family", "B"), ("type", "B"), ("num", "H"), ("inode", "I"), ("cookie", "Q"),
))

# include/uapi/linux/tcp.h: struct tcp_info (INET_DIAG_INFO of TCP sockets).  ``wscale`` holds the send
# scale in its low nibble and the receive scale in its high one; ``flags`` is delivery_rate_app_limited
# (bit 0) and fastopen_client_fail (bits 1-2).  A kernel may send fewer bytes (older) or more (newer).
TCP_INFO = Layout("tcp_info", (
    *((name, "B") for name in ("state", "ca_state", "retransmits", "probes", "backoff", "options", "wscale",
                               "flags")),
    *((name, "I") for name in ("rto", "ato", "snd_mss", "rcv_mss", "unacked", "sacked", "lost", "retrans",
                               "fackets", "last_data_sent", "last_ack_sent", "last_data_recv", "last_ack_recv",
                               "pmtu", "rcv_ssthresh", "rtt", "rttvar", "snd_ssthresh", "snd_cwnd", "advmss",
                               "reordering", "rcv_rtt", "rcv_space", "total_retrans")),
    *((name, "Q") for name in ("pacing_rate", "max_pacing_rate", "bytes_acked", "bytes_received")),
    *((name, "I") for name in ("segs_out", "segs_in", "notsent_bytes", "min_rtt", "data_segs_in",
                               "data_segs_out")),
    *((name, "Q") for name in ("delivery_rate", "busy_time", "rwnd_limited", "sndbuf_limited")),
    ("delivered", "I"), ("delivered_ce", "I"), ("bytes_sent", "Q"), ("bytes_retrans", "Q"),
    *((name, "I") for name in ("dsack_dups", "reord_seen", "rcv_ooopack", "snd_wnd", "rcv_wnd", "rehash")),
    ("total_rto", "H"), ("total_rto_recoveries", "H"), ("total_rto_time", "I"), ("received_ce", "I"),
))

# include/uapi/linux/inet_diag.h: struct tcp_bbr_info (INET_DIAG_BBRINFO; the bandwidth in bytes/s as two u32)
TCP_BBR_INFO = Layout("tcp_bbr_info", (
    ("bw_lo", "I"), ("bw_hi", "I"), ("min_rtt", "I"), ("pacing_gain", "I"), ("cwnd_gain", "I"),
))

# include/uapi/linux/inet_diag.h: struct tcp_dctcp_info (INET_DIAG_DCTCPINFO)
TCP_DCTCP_INFO = Layout("tcp_dctcp_info", (
    ("enabled", "H"), ("ce_state", "H"), ("alpha", "I"), ("ab_ecn", "I"), ("ab_tot", "I"),
))

# include/uapi/linux/mptcp.h: struct mptcp_info (INET_DIAG_INFO of MPTCP sockets, not a tcp_info)
MPTCP_INFO = Layout("mptcp_info", (
    *((name, "B") for name in ("subflows", "add_addr_signal", "add_addr_accepted", "subflows_max",
                               "add_addr_signal_max", "add_addr_accepted_max")),
    ("_pad", "2x"), ("flags", "I"), ("token", "I"), ("write_seq", "Q"), ("snd_una", "Q"), ("rcv_nxt", "Q"),
    ("local_addr_used", "B"), ("local_addr_max", "B"), ("csum_enabled", "B"),
))

# include/uapi/linux/inet_diag.h: struct tcp_diag_md5sig (each of INET_DIAG_MD5SIG's keys)
TCP_DIAG_MD5SIG = Layout("tcp_diag_md5sig", (
    ("family", "B"), ("prefixlen", "B"), ("keylen", "H"), ("addr", "16s"), ("key", "80s"),
))

# include/uapi/linux/packet_diag.h: struct packet_diag_ring (PACKET_DIAG_RX_RING, PACKET_DIAG_TX_RING)
PACKET_DIAG_RING = Layout("packet_diag_ring", tuple((name, "I") for name in (
    "block_size", "block_nr", "frame_size", "frame_nr", "retire_tmo", "sizeof_priv", "features")))

# include/uapi/linux/mptcp.h: MPTCP_SUBFLOW_ATTR_* (INET_ULP_INFO_MPTCP's nested attributes), by number:
# (name, payload size)
MPTCP_SUBFLOW_ATTRS = {1: ("token_rem", 4), 2: ("token_loc", 4), 3: ("relwrite_seq", 4), 4: ("map_seq", 8),
                       5: ("map_sfseq", 4), 6: ("ssn_offset", 4), 7: ("map_datalen", 2), 8: ("flags", 4),
                       9: ("id_rem", 1), 10: ("id_loc", 1)}

# include/uapi/linux/tls.h: TLS_INFO_* (INET_ULP_INFO_TLS's nested attributes), numbered from 1: VERSION,
# CIPHER, TXCONF, RXCONF (u16 each), then ZC_RO_TX and RX_NO_PAD (flags: present or not)
TLS_INFO_FIELDS = ("version", "cipher", "txconf", "rxconf", "zc_ro_tx", "rx_no_pad")

#: netlink attribute header (struct nlattr)
NLATTR = _struct.Struct("=HH")
