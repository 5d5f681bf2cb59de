"""ss's table: the column registry and the cells.

:data:`COLUMNS` is the table's columns in row order (name, header, delimiter,
alignment).  :class:`TableOptions` carries what changes the cells (``-n``, ``-r``,
``-p``, ``-O``).  :class:`CellMaker` makes the cells: :meth:`CellMaker.cells` ss's
ten cells of one :class:`~sockscope.records.Socket`; the listing's fast paths hand
over :class:`Columns` blocks made from the decoders' batches
(:meth:`CellMaker.column_cells`, :meth:`CellMaker.info_cells`,
:meth:`CellMaker.unix_cells`, :meth:`CellMaker.other_cells`).  They are laid out
and written by :class:`sockscope.render.writer.TableWriter`.
"""

from __future__ import annotations

import _struct  # struct.py only re-exports this C module: one module fewer to import
from itertools import islice
from _operator import itemgetter

from sockscope._addr import AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX, ZERO16
from sockscope._addr import ntop
from sockscope.filter.states import SS_STATE_NAMES
from sockscope.render.width import padded, widest

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

    from sockscope.kernel.inet import Batch
    from sockscope.kernel.others import Batch as OtherBatch
    from sockscope.kernel.unix import Batch as UnixBatch
    from sockscope.processes import BackgroundOwners
    from sockscope.render.users import UsersText
    from sockscope.records import Socket
    from sockscope.render.details import DetailOptions



class Column:
    """One column of ss's table: its name, header, the delimiter ss puts before it (when it is not
    the first column shown) and whether its cells are right-aligned."""

    __slots__ = ("name", "header", "delim", "right")

    def __init__(self, name: str, header: str, delim: str = " ", right: bool = False) -> None:
        self.name, self.header, self.delim, self.right = name, header, delim, right


#: The table's columns, in the order of every row's cells (the cell makers fill them in this
#: order).  ``tail`` is ss's unnamed last column (always empty, never shown); ``netns`` is
#: ``--all-netns``'s label, shown first.  A new column goes here, then into each cell maker.
COLUMNS = (
    Column("netid", "Netid", ""), Column("state", "State"), Column("recv_q", "Recv-Q"), Column("send_q", "Send-Q"),
    Column("local", "Local Address:", right=True), Column("local_port", "Port", ""),
    Column("peer", "Peer Address:", right=True), Column("peer_port", "Port", ""), Column("process", "Process", ""),
    Column("tail", "", ""), Column("netns", "Netns"),
)
COL = {c.name: i for i, c in enumerate(COLUMNS)}
PROCESS, NETNS, TAIL = COL["process"], COL["netns"], COL["tail"]
HEADERS = tuple(c.header for c in COLUMNS[:NETNS])
#: ss's output buffer (misc/ss.c), where the table's rows wait to be laid out (the writer's bound,
#: :mod:`sockscope.render.ssbuffer`): a chunk's data (BUF_CHUNK less its two pointers), and how many
#: chunks it holds when it writes at a row's end (BUF_CHUNKS_MAX)
SS_ROOM, SS_CHUNKS = (1 << 20) - 16, 5
_STATE_TEXT = [SS_STATE_NAMES.get(i, "UNKNOWN") for i in range(256)]
_U32 = _struct.Struct("=I")

#: the address key of a v6only wildcard (ss's [::]; a dual-stack :: is *)
_V6ONLY: Any = "[::]"


#: the tables whose ports are named (a raw socket's "port" is its protocol, named from /etc/protocols)
_NAMED = frozenset(("tcp", "udp", "raw", "dccp", "sctp", "mptcp"))


#: the head columns of an inet batch that :meth:`CellMaker.column_cells` reads (read in one pass)
_TABLE_COLS = ("state", "rqueue", "wqueue", "sport", "dport", "ifindex")
_TABLE_COLS_OWNED = (*_TABLE_COLS, "inode")


class TableOptions:
    """What changes the cells: -n, -r, -p and the detail texts (a plain
    slotted class: the listing's start-up does not import ``dataclasses``)."""

    __slots__ = ("numeric", "resolve", "processes", "details", "tables", "any_protocol")

    def __init__(self, numeric: bool = False, resolve: bool = False, processes: bool = False,
                 details: DetailOptions | None = None, tables: frozenset[str] = frozenset(),
                 any_protocol: bool = False) -> None:
        self.numeric = numeric
        self.resolve = resolve
        self.processes = processes
        self.details = details
        self.tables = tables  # the tables listed: which protocol's service names dccp, sctp and mptcp take
        # every port named by the file's first line for it, of any protocol: ss -E's names (ss sets the
        # protocol of its look-ups as it dumps a table; following events, it dumps none)
        self.any_protocol = any_protocol

    def __repr__(self) -> str:
        return "TableOptions(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in TableOptions.__slots__) + ")"


#: the address texts a cell maker keeps at most (then it starts over)
_CACHED = 1 << 16


class CellMaker:
    """Builds the ten cells of each row (the tenth, ss's unnamed column, stays empty), with caches."""

    __slots__ = ("opts", "_ports", "_addrs", "owners", "_col", "netns")

    def __init__(self, opts: TableOptions, owners: UsersText | BackgroundOwners | None = None) -> None:
        self.opts = opts
        self.owners = owners  # for the fast path's users cell (records carry their own)
        #: ``--all-netns``: the label of the namespace whose batches are made into cells now (from inside
        #: it): the interfaces their rows name are its own (see :func:`sockscope.render.names.ifname`)
        self.netns: str | None = None
        self._ports: dict[tuple[str, int], str] = {}
        self._addrs: dict[tuple[str, bool], str] = {}
        # column_cells' caches: by column, and the port columns' kinds by protocol ("ports tcp")
        self._col: dict[str, Any] = {k: _TextCache() for k in ("state", "rq", "wq", "la", "ra", "users")}

    def port(self, netid: str, port: int) -> str:
        key = (netid, port)
        s = self._ports.get(key)
        if s is None:
            if port == 0:
                s = "*"
            elif self.opts.numeric or netid not in _NAMED:
                s = str(port)
            else:
                proto = self._services_of(netid)
                s = _names().protocol(port) if proto == "raw" else _names().service(port, proto) or str(port)
            self._ports[key] = s
        return s

    def address(self, family: int, text: str, v6only: bool | None) -> str:
        key = (text, bool(v6only))
        s = self._addrs.get(key)
        if s is None:
            if family == AF_INET:
                s = _names().host(text) if self.opts.resolve else text
            elif text == "::" and not v6only:
                s = "*"
            else:
                s = _names().host(text) if self.opts.resolve else text
                if ":" in s:
                    s = f"[{s}]"
            if len(self._addrs) >= _CACHED:  # bounded: -E follows ever new peers for days
                self._addrs.clear()
            self._addrs[key] = s
        return s

    def _port_kind(self, netid: str, ports: list[int], side: str) -> Any:
        """The kind of a column of ``netid``'s port numbers (no text is made for a port shown as
        its digits: clients' ports are mostly distinct): :data:`PORTS` (0 as ``*``), with the
        service names of the table's protocol where some port is outside the kernel's ephemeral
        range or rpcbind names some (as :meth:`port`); a raw socket's ports are protocols, their names a cache's, one
        for each ``side`` (a cache's width is of every text it holds: the local side's
        ``ipv6-icmp`` does not widen the peer column's ``*``)."""
        if self.opts.numeric or not ports or netid not in _NAMED:
            return PORTS
        proto = self._services_of(netid)
        if proto == "raw":
            cache = self._col.get("ports raw " + side)
            if cache is None:
                cache = self._col["ports raw " + side] = _TextCache()
            fill(ports, cache, lambda keys: [self.port(netid, p) for p in keys])
            return cache
        lo, hi = _names().ephemeral_range()
        if min(filter(None, ports), default=lo) >= lo and max(ports) <= hi and not _names().rpc_named(proto):
            return PORTS
        kind = self._col.get(f"ports {proto}")
        if kind is None:
            kind = self._col[f"ports {proto}"] = Numbers("*", _names().named_ports(proto))
        return kind

    def _services_of(self, netid: str) -> str | None:
        """The protocol whose /etc/services names ``netid``'s ports take, as ss's: TCP's, UDP's
        their own; DCCP, SCTP and MPTCP (whose tables ss shows after raw, UDP and TCP, setting
        no protocol of their own) those of the last of these listed with them, or of any protocol
        (the file's first line for the port) where none is.  "raw": named as raw sockets' ports
        are, as protocols (/etc/protocols), also an MPTCP port where raw was the last listed.
        Following events (``any_protocol``): TCP's and UDP's too of any protocol, as ss -E's."""
        if netid == "raw":
            return netid
        if self.opts.any_protocol:
            return None
        if netid == "tcp" or netid == "udp":
            return netid
        tables = self.opts.tables
        return next((t for t in ("tcp", "udp", "raw") if t in tables), None)

    def column_cells(self, netid: str, b: Batch) -> Columns:
        """A block of rows from a batch of the inet decoder
        (:class:`~sockscope.kernel.inet.Batch`).  The block keeps the batch's
        columns; each distinct value gets its text once per table, in a cache of
        its column (which also knows the column's widest text; numeric ports are
        the numbers themselves (:data:`PORTS`): most are distinct, and the writer's format makes
        their digits), and :meth:`sockscope.render.writer.TableWriter.flush` maps the columns through
        padded copies of those caches in C: no per-row Python code runs at all."""
        b.read(_TABLE_COLS if self.owners is None else _TABLE_COLS_OWNED)
        srcs, dsts = b.src, b.dst
        if b.v6only is not None:  # a v6only "::" is ss's [::], a dual-stack one * (the address key says which)
            srcs = [_V6ONLY if v and s == ZERO16 else s for s, v in zip(srcs, b.v6only)]
            dsts = [_V6ONLY if v and d == ZERO16 else d for d, v in zip(dsts, b.v6only)]
        if any(b.ifindex):  # bound to a device: the local address names it (%lo), in its own namespace
            ns = self.netns
            srcs = ([(s, i) if i else s for s, i in zip(srcs, b.ifindex)] if ns is None else
                    [(s, i, ns) if i else s for s, i in zip(srcs, b.ifindex)])
        # one cache per column (a column's width is its own texts')
        c = self._col
        states, rqs, wqs = b.state, b.rqueue, b.wqueue
        fill(states, c["state"], _state_texts)
        fill(rqs, c["rq"], _queue_texts)
        fill(wqs, c["wq"], _queue_texts)
        fill(srcs, c["la"], self._address_texts)
        fill(dsts, c["ra"], self._address_texts)
        lcol = (b.sport, self._port_kind(netid, b.sport, "local"))
        rcol = (b.dport, self._port_kind(netid, b.dport, "peer"))
        owners = self.owners
        inos = b.inode if owners is not None else None
        block = Columns(b.n, [
            (netid, None), (states, c["state"]), (rqs, c["rq"]), (wqs, c["wq"]),
            (srcs, c["la"]), lcol, (dsts, c["ra"]), rcol,
            (inos, c["users"]) if owners is not None else ("", None), ("", None),
        ])
        if owners is not None:
            # filled when the block is written: the owners may still be coming (BackgroundOwners)
            texts = getattr(owners, "texts", None)  # BackgroundOwners: its inode -> text dict, when it comes
            if texts is not None:
                block.pending = (inos, c["users"], texts, True)
            else:
                block.pending = (inos, c["users"], lambda keys: list(map(owners.text, keys)), False)
        return block

    def unix_cells(self, b: UnixBatch) -> Columns:
        """A block of rows from a UNIX batch (:class:`~sockscope.kernel.unix.Batch`), as
        :meth:`column_cells`: the name, netid, state and queue texts once per distinct value."""
        from sockscope.kernel.unix import NETIDS, unix_names

        c = self._col
        for key in ("netid", "name", "inode", "peer"):
            if key not in c:
                c[key] = _TextCache()
        fill(b.type, c["netid"], lambda keys: [NETIDS.get(t, "u_dgr") for t in keys])
        fill(b.state, c["state"], _state_texts)
        fill(b.rqueue, c["rq"], _queue_texts)
        fill(b.wqueue, c["wq"], _queue_texts)
        fill(b.name, c["name"], lambda keys: [(t if k else "*") + " " for k, t in zip(keys, unix_names(keys))])
        owners = self.owners
        block = Columns(b.n, [
            (b.type, c["netid"]), (b.state, c["state"]), (b.rqueue, c["rq"]), (b.wqueue, c["wq"]),
            (b.name, c["name"]), (b.inode, NUMBERS), ("* ", None), (b.peer, NUMBERS),
            (b.inode, c["users"]) if owners is not None else ("", None), ("", None),
        ])
        if owners is not None:
            texts = getattr(owners, "texts", None)
            if texts is not None:
                block.pending = (b.inode, c["users"], texts, True)
            else:
                block.pending = (b.inode, c["users"], lambda keys: list(map(owners.text, keys)), False)
        return block

    def _address_texts(self, keys: list[Any]) -> list[str]:
        """The cells (text and ``:``) of address keys: an IPv4 address as a native u32, an
        IPv6 one as 16 bytes, ``(key, ifindex)`` for a bound device (``(key, ifindex, label)`` in the
        namespace ``label`` of ``--all-netns``, which the caller is in now), :data:`_V6ONLY`."""
        out = []
        for k in keys:
            if type(k) is tuple:
                k, ifindex, *ns = k
                names = _names()
                if ns:
                    names.learn_ifname(ns[0], ifindex)
                out.append(self._address_texts([k])[0][:-1] + f"%{names.ifname(ifindex, *ns)}:")
            elif type(k) is int:
                out.append(self.address(AF_INET, ntop(AF_INET, _U32.pack(k)), None) + ":")
            elif k is _V6ONLY:
                out.append(self.address(AF_INET6, "::", True) + ":")
            else:
                out.append(self.address(AF_INET6, ntop(AF_INET6, k), None) + ":")
        return out

    def info_cells(self, netid: str, b: Batch) -> Columns:
        """``-i``'s rows from a batch decoded with its tcp_info columns: :meth:`column_cells`,
        then the Process cell :meth:`cells` makes for a record (``detail_text`` with only
        ``info``), without building records."""
        from sockscope.render.details import info_texts

        block = self.column_cells(netid, b)
        opts = self.opts.details
        if netid == "udp" or opts is None or b.info is None:  # ss shows no tcp_info for UDP
            return block
        return self._processes(block, b, info_texts(b, netid, opts, "" if opts.oneline else "\n\t"))

    def detail_cells(self, netid: str, b: Batch) -> Columns:
        """The rows of the detail options but ``-i`` alone (``-e``, ``-o``, ``-m``, ``--tos``, …) from an
        inet batch the kernel sent: :meth:`column_cells`, then the Process cell :meth:`cells` makes
        for a record (its owners, then ``detail_text``), from the batch's columns and its details'
        (:func:`sockscope.kernel.inet_details.detail_columns`), without building records."""
        from sockscope.render.details import NO_COLUMNS, detail_fields, inet_texts

        opts = self.opts.details
        assert opts is not None
        block = self.column_cells(netid, b)
        fields = detail_fields(opts, netid, b.info is not None)
        if fields:
            from sockscope.kernel.inet_details import detail_columns

            cols = detail_columns(b, netid, fields)
        else:  # (-o: the head's timers alone; kernel.inet_details is not loaded)
            cols = NO_COLUMNS
        return self._processes(block, b, inet_texts(b, netid, opts, cols))

    def unix_detail_cells(self, b: UnixBatch) -> Columns:
        """:meth:`detail_cells` of a UNIX batch: :meth:`unix_cells`, then its Process cells (owners,
        ``-m``'s and ``-e``'s texts) from its details' columns."""
        from sockscope.kernel.unix_details import detail_columns
        from sockscope.render.details import unix_fields, unix_texts

        opts = self.opts.details
        assert opts is not None
        block = self.unix_cells(b)
        return self._processes(block, b, unix_texts(b.n, opts, detail_columns(b, unix_fields(opts))))

    def _processes(self, block: Columns, b: Batch | UnixBatch, texts: list[str]) -> Columns:
        """``block`` with its Process cells: each row's owners (``users:(…)``), then its ``texts`` (the
        batch ``b``'s inodes read for the owners alone: an inet batch makes that column when asked)."""
        owners = self.owners
        if owners is not None:
            texts = [(owners.text(i) if i else "") + t for i, t in zip(b.inode, texts)]
        block.cols[PROCESS] = (texts, CELLS)
        block.pending = None
        return block

    def cells(self, s: Socket) -> list[str]:
        fam = s.family
        if not self.opts.processes or fam == AF_NETLINK:  # (ss names a netlink socket's owner in its address)
            proc = ""
        elif s.owners or self.owners is None:
            from sockscope.render.users import from_records

            proc = from_records(s.owners)
        else:
            proc = self.owners.text(s.inode)
        if self.opts.details is not None:
            from sockscope.render.details import detail_text

            proc += detail_text(s, self.opts.details)
        head = [s.netid, SS_STATE_NAMES.get(int(s.state), "UNKNOWN"), f"{s.recv_q:<6}", f"{s.send_q:<6}"]
        if fam == AF_INET or fam == AF_INET6:
            local = self.address(fam, s.local.address, s.v6only)
            if s.ifindex:
                local = f"{local}%{_names().ifname(s.ifindex, s.netns)}"
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
        if fam == AF_NETLINK or fam == AF_PACKET:
            from sockscope.render.ends import netlink_ends, packet_ends

            numeric = self.opts.numeric
            if fam == AF_NETLINK:
                return head + netlink_ends(numeric, s.protocol or 0, s.local.port, s.peer.address, s.peer.port) + [
                    proc, ""]
            return head + packet_ends(numeric, s.protocol or 0, s.local.port, s.netns) + [proc, ""]
        return head + ["*", "", "*", "", proc, ""]

    def other_cells(self, b: OtherBatch) -> list[list[str]]:
        """The rows of a netlink or packet batch (see :func:`sockscope.render.ends.rows`)."""
        from sockscope.render.ends import rows

        return rows(self, b)


def _names() -> Any:
    """:mod:`sockscope.render.names` (services, hosts, interfaces), imported where a name is
    wanted: a numeric listing never needs it."""
    from sockscope.render import names

    return names


def _numbers(values: list[int]) -> list[str]:
    """Numbers' digits, in one C loop (``map(str, …)`` calls str per row)."""
    return ("%d " * len(values) % tuple(values)).split()


def _queue_texts(keys: list[int]) -> list[str]:
    return ["%-6d" % v for v in keys]


def _state_texts(keys: list[int]) -> list[str]:
    return [_STATE_TEXT[k] for k in keys]


class _TextCache:
    """A column's value -> text (``texts``, an exact dict: set operations on it
    stay in C), the widest text in it, and the padded copy :class:`~sockscope.render.writer.TableWriter`
    last made of it (for ``spec``; of the first ``upto`` entries)."""

    __slots__ = ("texts", "width", "padded", "spec", "upto", "joined")

    def __init__(self) -> None:
        self.texts: dict[Any, str] = {}
        self.width = 0
        self.padded: dict[Any, str] = {}
        self.spec: tuple[str, int, bool] | None = None
        self.upto = 0
        #: this column's cells joined with the next ones' (see render.writer._cells), by those
        #: columns' caches and specs
        self.joined: dict[tuple[Any, ...], Any] = {}

    def padded_for(self, delim: str, pad: int, right: bool) -> dict[Any, str]:
        """value -> ``delim`` + text padded to ``pad``, right- or left-aligned."""
        spec = (delim, pad, right)
        if spec != self.spec:
            self.spec, self.padded, self.upto = spec, {}, 0
        texts = self.texts
        if self.upto < len(texts):
            new = list(islice(texts.items(), self.upto, None))
            cells = padded(list(map(_second, new)), pad, right)
            self.padded.update(zip(map(_first, new), map(delim.__add__, cells) if delim else cells))
            self.upto = len(texts)
        return self.padded


_first, _second = itemgetter(0), itemgetter(1)


def fill(col: Sequence[Any], cache: _TextCache, make: Callable[[list[Any]], list[str]]) -> None:
    """Give ``cache`` the texts (by ``make``, in one call) of the values of ``col`` it lacks."""
    missing = list(set(col).difference(cache.texts))
    if missing:
        texts = make(missing)
        cache.texts.update(zip(missing, texts))
        w = widest(texts)
        if w > cache.width:
            cache.width = w


#: a :class:`Columns` column's "cache" when its values are the cells' texts themselves
CELLS: Any = object()


class Numbers:
    """A :class:`Columns` column's kind when its values are non-negative integers shown as their
    digits, but for those with a text of their own (``own``): 0 as ``zero``, and ``names`` (a
    port's service name).  No text is made for them before the rows are written:
    :class:`~sockscope.render.writer.TableWriter` measures them and its row format makes the digits
    (``%d``) while it lays the row out.  Every consumer of a column asks its kind (the writer,
    :mod:`~sockscope.render.ssbuffer`, :mod:`~sockscope.render.padded`): the methods below."""

    __slots__ = ("zero", "names", "own")

    def __init__(self, zero: str, names: dict[int, str] | None = None) -> None:
        self.zero = zero
        self.names: dict[int, str] = names or {}  # (never 0)
        self.own: dict[int, str] = {**self.names, 0: zero} if zero != "0" else self.names

    def named(self, values: list[int]) -> bool:
        """Whether some value of ``values`` has a name (a C loop)."""
        return bool(self.names) and not self.names.keys().isdisjoint(values)

    def _own_texts(self, values: list[int]) -> bool:
        """Whether some value of ``values`` has a text of its own, a name or ``zero`` (C loops)."""
        return self.named(values) or (self.zero != "0" and 0 in values)

    def width(self, values: list[int]) -> int:
        """The widest cell of ``values``."""
        if not self.named(values):  # digits, and 0's text
            m = max(values, default=0)
            w = len(str(m)) if m else 0
            return len(self.zero) if len(self.zero) > w and 0 in values else w
        rest = set(values)
        hit = rest.intersection(self.own)
        rest -= hit
        w = max(map(len, map(self.own.__getitem__, hit)))
        return max(w, len(str(max(rest)))) if rest else w

    def texts(self, values: list[int]) -> list[str]:
        """The cells of ``values``."""
        texts = _numbers(values)
        return list(map(self.own.get, values, texts)) if self._own_texts(values) else texts

    def length(self, value: int) -> int:
        """The length of ``value``'s cell."""
        text = self.own.get(value)
        return len(str(value)) if text is None else len(text)

    def format(self, values: list[int]) -> tuple[str, list[Any]]:
        """What a row's ``%`` format takes for ``values``: ``("d", values)`` where each is shown as
        its digits, else ``("s", …)`` with each value's own text in its place."""
        if not self._own_texts(values):
            return "d", values
        return "s", list(map(self.own.get, values, values))


#: inodes (a UNIX socket's and its peer's: 0 where it has none) and numeric ports (0 is ``*``)
NUMBERS, PORTS = Numbers("0"), Numbers("*")


class Columns:
    """A block of ``n`` rows held column by column: for each of the ten
    columns, ``(values, cache)`` (the cells are the cache's texts of the
    values), ``(numbers, NUMBERS or PORTS)`` (see :class:`Numbers`), ``(texts, CELLS)``
    (the cells themselves) or ``(text, None)``, one text for every row."""

    __slots__ = ("n", "cols", "pending", "widths")

    def __init__(self, n: int, cols: list[tuple[Any, _TextCache | Numbers | None]]) -> None:
        self.n = n
        self.cols = cols
        #: a column of numbers' widest cell, by column, once measured (the writer measures a block twice:
        #: for ss's buffer as it comes, and to lay it out)
        self.widths: dict[int, int] = {}
        #: a cache to fill before the block is written: (values, cache, make, False) for
        #: :func:`fill`, or (values, cache, texts, True) where ``texts()`` gives the whole
        #: value -> text dict, which becomes the cache's own (no copy)
        self.pending: tuple[Any, _TextCache, Callable[..., Any], bool] | None = None

    def rows(self, lo: int, hi: int) -> Columns:
        """Rows ``lo`` to ``hi`` as a block of their own (nothing pending: its columns are sliced)."""
        if lo == 0 and hi == self.n:
            return self
        return Columns(hi - lo, [(v if c is None else v[lo:hi], c) for v, c in self.cols])
