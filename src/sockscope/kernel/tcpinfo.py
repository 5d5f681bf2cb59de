"""``struct tcp_info`` (INET_DIAG_INFO for TCP), sans IO, tolerant of version skew.

A shorter struct from an older kernel is zero-padded (as ss does); a longer one
from a newer kernel has its unknown tail ignored.  The window scales are the
two nibbles of byte 6: send scale low, receive scale high (pyroute2 swaps
them; ss gets it right).
"""

from __future__ import annotations

from _operator import itemgetter

from sockscope.kernel.layout import TCP_INFO

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, Sequence

_FMT = TCP_INFO.struct
SIZE = _FMT.size  # 252

TCPI_OPT_TIMESTAMPS = 1
TCPI_OPT_SACK = 2
TCPI_OPT_WSCALE = 4
TCPI_OPT_ECN = 8
TCPI_OPT_ECN_SEEN = 16
TCPI_OPT_SYN_DATA = 32


class TcpInfo(tuple):  # type: ignore[type-arg]
    """The kernel's ``tcp_info`` (times in µs as the kernel gives them).

    A named tuple, like :class:`~sockscope.records.SkMem`: a value nested in a
    :class:`~sockscope.records.Socket` record, built once per socket (a tuple
    builds ten times faster than a 63-field frozen dataclass).  Written out (the
    fields are the annotations below, in order) rather than made by
    ``typing.NamedTuple``: importing ``typing`` (and ``re``, ``collections``) would
    cost ``-i``'s listing ~7 ms of start-up."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()  # the fields' names (the annotations but this one), set below

    state: int
    ca_state: int
    retransmits: int
    probes: int
    backoff: int
    options: int
    snd_wscale: int
    rcv_wscale: int
    delivery_rate_app_limited: bool
    fastopen_client_fail: int
    rto: int
    ato: int
    snd_mss: int
    rcv_mss: int
    unacked: int
    sacked: int
    lost: int
    retrans: int
    fackets: int
    last_data_sent: int
    last_ack_sent: int
    last_data_recv: int
    last_ack_recv: int
    pmtu: int
    rcv_ssthresh: int
    rtt: int
    rttvar: int
    snd_ssthresh: int
    snd_cwnd: int
    advmss: int
    reordering: int
    rcv_rtt: int
    rcv_space: int
    total_retrans: int
    pacing_rate: int
    max_pacing_rate: int
    bytes_acked: int
    bytes_received: int
    segs_out: int
    segs_in: int
    notsent_bytes: int
    min_rtt: int
    data_segs_in: int
    data_segs_out: int
    delivery_rate: int
    busy_time: int
    rwnd_limited: int
    sndbuf_limited: int
    delivered: int
    delivered_ce: int
    bytes_sent: int
    bytes_retrans: int
    dsack_dups: int
    reord_seen: int
    rcv_ooopack: int
    snd_wnd: int
    rcv_wnd: int
    rehash: int
    total_rto: int
    total_rto_recoveries: int
    total_rto_time: int
    received_ce: int
    length: int  # bytes the kernel actually sent

    def __new__(cls, *args: Any, **kwargs: Any) -> TcpInfo:
        if kwargs:
            try:
                args = (*args, *(kwargs.pop(name) for name in cls._fields[len(args) :]))
            except KeyError as exc:
                raise TypeError(f"TcpInfo() missing argument {exc}") from None
            if kwargs:
                raise TypeError(f"TcpInfo() got unexpected arguments {sorted(kwargs)}")
        return cls._make(args)

    @classmethod
    def _make(cls, values: Any) -> TcpInfo:
        t = _new(cls, values)
        if len(t) != len(cls._fields):
            raise TypeError(f"TcpInfo takes {len(cls._fields)} values, not {len(t)}")
        return t

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self))

    def _replace(self, **kwargs: Any) -> TcpInfo:
        t = self._make(list(map(kwargs.pop, self._fields, self)))
        if kwargs:
            raise ValueError(f"got unexpected field names: {sorted(kwargs)}")
        return t

    def __repr__(self) -> str:
        return "TcpInfo(" + ", ".join(f"{name}={v!r}" for name, v in zip(self._fields, self)) + ")"

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


TcpInfo._fields = tuple(name for name in TcpInfo.__annotations__ if not name.startswith("_"))
for _i, _name in enumerate(TcpInfo._fields):
    setattr(TcpInfo, _name, property(itemgetter(_i), doc=f"tcpi_{_name}"))


def decode(raw: bytes | memoryview) -> TcpInfo:
    """Decode a ``tcp_info`` of any length (short: zero-padded; long: tail ignored)."""
    b = bytes(raw[:SIZE])
    n = len(raw)
    if len(b) < SIZE:
        b = b + bytes(SIZE - len(b))
    return from_fields(_FMT.unpack(b), n)


def from_fields(v: tuple[int, ...], length: int) -> TcpInfo:
    """A :class:`TcpInfo` from the values ``layout.TCP_INFO.struct`` unpacks of a tcp_info the
    kernel sent ``length`` bytes of."""
    wscale = v[6]
    flags = v[7]
    return _new(TcpInfo, (
        v[0], v[1], v[2], v[3], v[4], v[5], wscale & 0x0F, wscale >> 4, bool(flags & 1), (flags >> 1) & 3,
        *v[8:], length,
    ))


_new = tuple.__new__


__all__ = ["TcpInfo", "InfoColumns", "SparseInfo", "FieldRows", "decode", "from_fields", "read", "SIZE"]


class InfoColumns:
    """The tcp_info of ``n`` sockets column by column: ``cols[name]`` is one list per
    :class:`TcpInfo` field, ``cols.fields(names)`` several, read when first asked for (``-i``'s
    text reads the fields it prints at once, with no tuple per socket); iterating gives a
    :class:`TcpInfo` per socket."""

    __slots__ = ("n", "_read", "_alike", "_cols")

    def __init__(self, n: int, read: Callable[[tuple[str, ...]], list[list[Any]]],
                 alike: Callable[[tuple[str, ...]], list[Any]] | None = None) -> None:
        self.n = n
        self._read = read  # names -> their columns
        self._alike = alike  # names -> :meth:`shape`
        self._cols: dict[str, list[Any]] = {}

    def fields(self, names: tuple[str, ...]) -> list[list[Any]]:
        """The columns of fields ``names``."""
        cols = self._cols
        if not cols:  # the usual case: everything at once, once
            got = self._read(names)
            cols.update(zip(names, got))
            return got
        missing = tuple(name for name in names if name not in cols)
        if missing:
            cols.update(zip(missing, self._read(missing)))
        return list(map(cols.__getitem__, names))

    def shape(self, names: tuple[str, ...]) -> list[Any]:
        """Per field of ``names``: its value where every socket has the same one, else its column
        (a list).  For at least one socket."""
        if self._alike is not None:
            return self._alike(names)
        return [c[0] if c.count(c[0]) == len(c) else c for c in self.fields(names)]

    def __getitem__(self, name: str) -> list[Any]:
        col = self._cols.get(name)
        return col if col is not None else self.fields((name,))[0]

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[TcpInfo]:
        return (_new(TcpInfo, v) for v in zip(*self.fields(TcpInfo._fields)))

    def rows(self) -> list[TcpInfo]:
        """The :class:`TcpInfo` of each socket."""
        return list(self)

    def select(self, keep: Any) -> InfoColumns:
        """The sockets whose ``keep`` is true."""
        from itertools import compress

        keep = list(keep)
        return InfoColumns(len(list(compress(keep, keep))),
                           lambda names: [list(compress(col, keep)) for col in self.fields(names)])

    @staticmethod
    def joined(parts: Sequence[InfoColumns]) -> InfoColumns:
        """The sockets of ``parts``, one after the other."""
        if len(parts) == 1:
            return parts[0]
        from itertools import chain

        return InfoColumns(sum(p.n for p in parts), lambda names: [
            list(chain.from_iterable(cols)) for cols in zip(*(p.fields(names) for p in parts))])

    @staticmethod
    def of(rows: Sequence[TcpInfo]) -> InfoColumns:
        """The columns of :class:`TcpInfo` rows."""
        cols = dict(zip(TcpInfo._fields, map(list, zip(*rows))))
        return InfoColumns(len(rows), lambda names: list(map(cols.__getitem__, names)))


class SparseInfo:
    """The tcp_info column of ``n`` sockets of which only those at ``at`` (in any order) have one,
    those held column by column (``cols``, an :class:`InfoColumns`): a datagram of TIME-WAIT or
    SYN-RECV mini-sockets among full ones.  Iterating gives a :class:`TcpInfo` or None per socket;
    it equals the list of them (what a walk message by message gives).  ``others``, where the
    decoder has them at hand: the same rows' congestion control names, bbr_info and dctcp_info
    columns, in ``at``'s order (``-i``'s text reads them so, without picking them from the
    batch's rows)."""

    __slots__ = ("n", "at", "cols", "others")

    def __init__(self, n: int, at: list[int], cols: InfoColumns, others: tuple[Any, Any, Any] | None = None) -> None:
        self.n = n
        self.at = at
        self.cols = cols
        self.others = others

    def __iter__(self) -> Iterator[TcpInfo | None]:
        return iter(self.rows())

    def rows(self) -> list[TcpInfo | None]:
        out: list[TcpInfo | None] = [None] * self.n
        for i, t in zip(self.at, self.cols):
            out[i] = t
        return out

    def select(self, keep: Any) -> SparseInfo:
        """The sockets whose ``keep`` is true."""
        from itertools import compress

        keep = list(keep)
        mine = [keep[i] for i in self.at]
        kept = list(compress(range(len(keep)), keep))
        where = {i: k for k, i in enumerate(kept)}
        return SparseInfo(len(kept), [where[i] for i in compress(self.at, mine)], self.cols.select(mine))

    def __len__(self) -> int:
        return self.n

    def __eq__(self, other: object) -> bool:
        return self.rows() == (list(other) if isinstance(other, (list, tuple, SparseInfo)) else other)

    __hash__ = None  # type: ignore[assignment]


class FieldRows:
    """``n`` rows of a few fields held column by column, each column the one value every row has or
    a list: the rows (tuples) when iterated, equal to the list of them (what a walk message by
    message gives); :meth:`shape` gives the columns as held (bbr_info for ``-i``'s text)."""

    __slots__ = ("n", "_cols")

    def __init__(self, n: int, cols: list[Any]) -> None:
        self.n = n
        self._cols = cols

    def shape(self) -> list[Any]:
        return self._cols

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        n = self.n
        return zip(*(c if type(c) is list else [c] * n for c in self._cols))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        return tuple(c[i] if type(c) is list else c for c in self._cols)

    def __eq__(self, other: object) -> bool:
        return list(self) == (list(other) if isinstance(other, (list, tuple, FieldRows)) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FieldRows({list(self)!r})"


# the fields split out of two bytes: (the byte's field, each value of it -> the field's)
_SPLIT: dict[str, tuple[str, tuple[Any, ...]]] = {
    "snd_wscale": ("wscale", tuple(b & 0x0F for b in range(256))),
    "rcv_wscale": ("wscale", tuple(b >> 4 for b in range(256))),
    "delivery_rate_app_limited": ("flags", tuple(bool(b & 1) for b in range(256))),
    "fastopen_client_fail": ("flags", tuple((b >> 1) & 3 for b in range(256))),
}
# where a tcp_info may end: a payload ending inside a field is decoded socket by socket (zero-padded)
_ENDS = frozenset(off + TCP_INFO.struct_size(name) for name, (off, _c, _n) in TCP_INFO.offsets.items()) | {0}
#: (payload size, names) -> (the struct's fields to read, then per name: (index in them, or -1 for a
#: value every row has, or -2 - index for a byte to split), its table or value)
_PLANS: dict[tuple[int, tuple[str, ...]], tuple[tuple[str, ...], list[tuple[int, Any]], bool]] = {}


def _plan(size: int, names: tuple[str, ...]) -> tuple[tuple[str, ...], list[tuple[int, Any]], bool]:
    raw: list[str] = []
    fill: list[tuple[int, Any]] = []
    for name in names:
        got = TCP_INFO.offsets.get(name)
        if got is not None and got[0] + TCP_INFO.struct_size(name) > size:
            fill.append((-1, 0))  # past a shorter payload: zero, as decode pads it
        elif got is not None:
            fill.append((len(raw), None))
            raw.append(name)
        elif name == "length":
            fill.append((-1, size))
        else:
            byte, table = _SPLIT[name]
            if TCP_INFO.offset(byte) >= size:
                fill.append((-1, table[0]))
            else:
                if byte not in raw:
                    raw.append(byte)
                fill.append((-2 - raw.index(byte), table))
    direct = all(i == k for k, (i, _t) in enumerate(fill))
    plan = _PLANS[(size, names)] = (tuple(raw), fill, direct)
    return plan


def read(body: memoryview, length: int, base: int, size: int, n: int) -> InfoColumns | None:
    """The tcp_info of the ``n`` messages of ``body`` (each ``length`` bytes, a multiple of 4), whose
    ``size``-byte payload starts ``base`` bytes into each message, as :class:`InfoColumns`: each field
    one strided read when first asked for (:meth:`Layout.strided
    <sockscope.kernel.layout.Layout.strided>`); fields past a shorter payload are 0, as
    :func:`decode` pads them.  None where the payload ends inside a field."""
    if size < SIZE and size not in _ENDS:
        return None

    def fields(names: tuple[str, ...]) -> list[list[Any]]:
        raw, fill, direct = _PLANS.get((size, names)) or _plan(size, names)
        cols = TCP_INFO.strided(body, length, raw, base)
        if direct:
            return cols
        return [cols[i] if i >= 0 else [v] * n if i == -1 else list(map(v.__getitem__, cols[-2 - i]))
                for i, v in fill]

    def alike(names: tuple[str, ...]) -> list[Any]:
        raw, fill, direct = _PLANS.get((size, names)) or _plan(size, names)
        got = TCP_INFO.strided(body, length, raw, base, alike=True)
        if direct:
            return got
        out = []
        for i, v in fill:
            if i >= 0:
                out.append(got[i])
            elif i == -1:
                out.append(v)
            else:
                x = got[-2 - i]
                if type(x) is list:  # its byte varies; this part of it may not
                    x = list(map(v.__getitem__, x))
                    out.append(x[0] if x.count(x[0]) == n else x)
                else:
                    out.append(v[x])
        return out

    return InfoColumns(n, fields, alike)
