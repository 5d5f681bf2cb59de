"""ss's table: records -> cells -> aligned text.

:class:`TableOptions` carries what changes the cells (``-n``, ``-r``, ``-p``,
``-O``).  :func:`cells` turns one :class:`~sockscope.records.Socket` into ss's
ten cells; :class:`TableWriter` lays them out like ss does when not writing to
a terminal: each column as wide as its widest cell plus a left delimiter,
address columns right-aligned.  Rows are written in batches so that a large
table streams; a column never narrows between batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter

from sockscope._addr import ntop
from sockscope.records import SS_STATE_NAMES, Owner, Socket
from sockscope.render import names
from sockscope.render.details import DetailOptions, detail_text

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import IO, Iterable

    from sockscope.processes import OwnerMap

HEADERS = ("Netid", "State", "Recv-Q", "Send-Q", "Local Address:", "Port", "Peer Address:", "Port", "Process", "")
_LDELIM = ("", " ", " ", " ", " ", "", " ", "", "", "", " ")
_RIGHT = (False, False, False, False, True, False, True, False, False, False, False)
_QUEUE = ["%-6d" % i for i in range(256)]  # ss's "%-6d" queue cells, precomputed for small values

AF_INET, AF_INET6, AF_UNIX, AF_NETLINK, AF_PACKET = 2, 10, 1, 16, 17


@dataclass(frozen=True, slots=True)
class TableOptions:
    """What changes the cells: -n, -r, -p and the detail texts."""

    numeric: bool = False
    resolve: bool = False
    processes: bool = False
    details: DetailOptions | None = None


class CellMaker:
    """Builds the ten cells of each row (the tenth, ss's unnamed column, stays empty), with caches."""

    __slots__ = ("opts", "_ports", "_addrs", "_raw_addrs", "_by_netid", "owners")

    def __init__(self, opts: TableOptions, owners: OwnerMap | None = None) -> None:
        self.opts = opts
        self.owners = owners  # for the fast path's users cell (records carry their own)
        self._ports: dict[tuple[str, int], str] = {}
        self._addrs: dict[tuple[str, bool], str] = {}
        self._raw_addrs: dict[tuple[bytes, int, bool | None, int], str] = {}
        self._by_netid: dict[str, dict[int, str]] = {}

    def port(self, netid: str, port: int) -> str:
        key = (netid, port)
        s = self._ports.get(key)
        if s is None:
            if port == 0:
                s = "*"
            elif self.opts.numeric or netid not in ("tcp", "udp", "raw", "dccp", "sctp", "mptcp"):
                s = str(port)
            elif netid == "raw":
                s = names.protocol(port)
            else:
                proto = "udp" if netid == "udp" else "tcp" if netid in ("tcp", "mptcp") else netid
                s = names.service(port, proto) or str(port)
            self._ports[key] = s
        return s

    def address(self, family: int, text: str, v6only: bool | None) -> str:
        key = (text, bool(v6only))
        s = self._addrs.get(key)
        if s is None:
            if family == AF_INET:
                s = names.host(text) if self.opts.resolve else text
            elif text == "::" and not v6only:
                s = "*"
            else:
                s = names.host(text) if self.opts.resolve else text
                if ":" in s:
                    s = f"[{s}]"
            self._addrs[key] = s
        return s

    def raw_cells(self, netid: str, batch: list[tuple]) -> list[list[str]]:  # type: ignore[type-arg]
        """Cells of the codec's plain inet tuples (:func:`~sockscope.kernel.inet.decode_raw`):
        the same text as :meth:`cells` gives for the records, without building them."""
        addr_cache = self._raw_addrs
        ports = self._port_texts(netid)
        names_of = SS_STATE_NAMES
        owners = self.owners
        queue = _QUEUE
        # ports in the ephemeral range are never named (ss's rule): skip the look-up
        lo, hi = (1, 65535) if self.opts.numeric else names.ephemeral_range()
        out: list[list[str]] = []
        append = out.append
        for fam, st, sport, dport, src, dst, ifindex, rq, wq, ino, v6only in batch:
            key = (src, fam, v6only, ifindex)
            la = addr_cache.get(key)
            if la is None:
                la = self.address(fam, ntop(fam, src), v6only)
                if ifindex:
                    la = f"{la}%{names.ifname(ifindex)}"
                la = addr_cache[key] = la + ":"
            key = (dst, fam, v6only, 0)
            ra = addr_cache.get(key)
            if ra is None:
                ra = addr_cache[key] = self.address(fam, ntop(fam, dst), v6only) + ":"
            lp = ports.get(sport)
            if lp is None:
                lp = ports[sport] = str(sport) if lo <= sport <= hi else self.port(netid, sport)
            rp = ports.get(dport)
            if rp is None:
                rp = ports[dport] = str(dport) if lo <= dport <= hi else self.port(netid, dport)
            proc = ""
            if owners is not None and ino:
                proc = _users(owners.owners(ino))
            append([netid, names_of.get(st, "UNKNOWN"), queue[rq] if rq < 256 else "%-6d" % rq,
                    queue[wq] if wq < 256 else "%-6d" % wq, la, lp, ra, rp, proc, ""])
        return out

    def _port_texts(self, netid: str) -> dict[int, str]:
        d = self._by_netid.get(netid)
        if d is None:
            d = self._by_netid[netid] = {}
        return d

    def cells(self, s: Socket) -> list[str]:
        fam = s.family
        if not self.opts.processes:
            proc = ""
        elif s.owners or self.owners is None:
            proc = users(s)
        else:
            proc = _users(self.owners.owners(s.inode))
        if self.opts.details is not None:
            proc += detail_text(s, self.opts.details)
        head = [s.netid, SS_STATE_NAMES.get(int(s.state), "UNKNOWN"), f"{s.recv_q:<6}", f"{s.send_q:<6}"]
        if fam == AF_INET or fam == AF_INET6:
            local = self.address(fam, s.local.address, s.v6only)
            if s.ifindex:
                local = f"{local}%{names.ifname(s.ifindex)}"
            return head + [
                local + ":", self.port(s.netid, s.local.port),
                self.address(fam, s.peer.address, s.v6only) + ":", self.port(s.netid, s.peer.port),
                proc, "",
            ]
        if fam == AF_UNIX:
            return head + [
                (s.local.address or "*") + " ", str(s.inode),
                "* ", str(s.peer_inode or 0), proc, "",
            ]
        if fam == AF_NETLINK:
            proto = s.protocol or 0
            pname = str(proto) if self.opts.numeric else names.NL_PROTOCOLS.get(proto, str(proto))
            pid = s.local.port
            if pid == -1:
                owner = "*"
            elif self.opts.numeric:
                owner = str(pid)
            elif pid == 0:
                owner = "kernel"
            else:
                comm = names.process_name(pid) if pid > 0 else None
                owner = f"{comm}/{pid}" if comm is not None else str(pid)
            peer = [s.peer.address + ":", str(s.peer.port)] if s.peer.address else ["*", ""]
            return head + [pname + ":", owner] + peer + [proc, ""]
        if fam == AF_PACKET:
            proto = s.protocol or 0
            if proto == 3:
                addr = "*"
            else:
                addr = f"[{proto}]" if self.opts.numeric else names.ETHERTYPES.get(proto, f"[{proto}]")
            port = "*" if not s.local.port else names.ifname(s.local.port)
            return head + [addr + ":", port, "*", "", proc, ""]
        return head + ["*", "", "*", "", proc, ""]


def users(s: Socket) -> str:
    """ss's ``users:(("name",pid=P,fd=F),…)`` cell (with its leading space), or ""."""
    return _users(s.owners)


def _users(owners: tuple[Owner, ...]) -> str:
    if not owners:
        return ""
    return " users:(" + ",".join(
        f'("{o.name}",pid={o.pid},fd={o.fd})' if o.tid is None else f'("{o.name}",pid={o.pid},tid={o.tid},fd={o.fd})'
        for o in owners
    ) + ")"


class TableWriter:
    """Lays out rows of cells like ss (non-terminal layout), in batches.

    Like ss, the Process cell of the last row of a table is not measured
    (ss never flushes that field before laying out), so it does not widen the
    column; it is padded only up to the column's width.
    """

    def __init__(
        self, out: IO[str], visible: Iterable[bool], header: bool = True, batch: int = 8192, netns: bool = False
    ) -> None:
        """``visible``: one flag per column of :data:`HEADERS`.  ``netns``: rows
        carry an eleventh cell, the namespace label, shown as a first column."""
        self.out = out
        self.visible = [i for i, v in enumerate(visible) if v and i < 9]
        if netns:
            self.visible.insert(0, 10)
        self.widths = [0] * (len(HEADERS) + 1)
        self.rows: list[list[str]] = []
        self.batch = batch
        if header:
            self.rows.append(list(HEADERS) + ["Netns"])

    def add_many(self, rows: list[list[str]]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= self.batch:
            self.flush(final=False)

    def add(self, cells: list[str]) -> None:
        self.rows.append(cells)
        if len(self.rows) >= self.batch:
            self.flush(final=False)

    def flush(self, final: bool = True) -> None:
        """Write the buffered rows; ``final`` marks the end of the table."""
        rows = self.rows
        if not rows:
            return
        vis = self.visible
        widths = self.widths
        cols = list(zip(*rows))  # column-wise, for C-speed width scans
        for i in vis:
            col = cols[i][:-1] if (i == 8 and final) else cols[i]
            m = max(map(len, col), default=0)
            if m > widths[i]:
                widths[i] = m
        # one %-format for the whole batch: the first visible column gets no
        # delimiter; a non-first column's width includes its delimiter (ss's rule)
        pieces: list[str] = []
        first = True
        for i in vis:
            w = widths[i]
            delim = _LDELIM[i] if not first else ""
            ew = w + len(_LDELIM[i]) if (not first and w) else w
            pad = max(ew - len(delim), 0)
            pieces.append(delim + ("%" if _RIGHT[i] else "%-") + (str(pad) if pad else "") + "s")
            if ew:
                first = False
        fmt = "".join(pieces)
        pick = itemgetter(*vis)
        if len(vis) == 1:
            lines = [fmt % (pick(r),) for r in rows]
        else:
            lines = [fmt % pick(r) for r in rows]
        self.out.write("\n".join(lines) + "\n")
        self.rows = []
