"""Queries: which tables, families and states to dump, and the dump itself.

:func:`run` streams :class:`~sockscope.records.Socket` records in ss's
order (tables nl, packet, unix, raw, udp, tcp, …; IPv4 before IPv6) from
sock_diag, falling back to /proc where sock_diag is unavailable or denied.
The public APIs on top: :func:`sockscope.sockets_api.sockets` (records) and :mod:`sockscope.psutil_api`
(the psutil drop-in); psutil's kind names are here (:data:`KINDS`), for both.
"""

from __future__ import annotations

import os
import sys
from sockscope._addr import AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX
from sockscope.errors import NetlinkError, NotSupported, PermissionDenied
from sockscope.filter.states import CLOSE, SS_ALL, SS_CONN

TYPE_CHECKING = False  # typing is imported only by type checkers: start-up time matters
if TYPE_CHECKING:
    from typing import Any, Callable, Generator, Iterator

    from sockscope.filter.values import Resolver
    from sockscope.kernel.inet import Batch
    from sockscope.kernel.others import Batch as OtherBatch
    from sockscope.kernel.transport import Behind
    from sockscope.kernel.unix import Batch as UnixBatch
    from sockscope.records import Socket

    Warn = Callable[[str], None]


#: inet_diag extensions: tcp_info + vegas + congestion control (ss -i)
EXT_INFO = (1 << 1) | (1 << 2) | (1 << 3)
#: meminfo + skmeminfo (ss -m)
EXT_MEM = (1 << 0) | (1 << 6)
#: tos + tclass (ss --tos; the kernel adds class_id)
EXT_TOS = (1 << 4) | (1 << 5)

INET_TABLES = ("raw", "udp", "tcp", "dccp", "sctp", "mptcp")
UNIX_TABLES = ("u_str", "u_dgr", "u_seq")
PACKET_TABLES = ("p_raw", "p_dgr")


def _stderr_warn(msg: str) -> None:
    print(f"sockscope: {msg}", file=sys.stderr)


class Query:
    """What to dump.

    ``tables`` are ss netids (tcp, udp, raw, u_str, u_dgr, u_seq, nl, p_raw, p_dgr, dccp, sctp,
    mptcp); ``families`` the address families to show; ``states`` a bitmask of kernel states;
    ``preferred_family`` is ss's "last of -4/-6/-f wins" for inet dumps (0: none).  ``explicit``
    names tables the user asked for by name: for those, "not supported by this kernel" is reported
    instead of skipped silently.  ``details`` decodes every attribute (shutdown, v6only, mark,
    cgroup, UNIX vfs/pending); ``ext`` is the inet_diag extension bitmask to request
    (:data:`EXT_INFO`, :data:`EXT_MEM`).  ``bytecode`` (a compiled filter) goes to the kernel with
    every inet dump; ``predicate`` is applied to every record, except inet records the kernel already
    filtered when ``kernel_exact`` says the bytecode is the whole answer.  ``ports`` (sport, dport; 0
    for any) are the ones every match must have: they narrow the TCP dump itself (see
    ``kernel.inet.encode_request``).

    Immutable; :meth:`replace` gives a changed copy.  (A plain slotted class, not a dataclass: the
    listing's start-up does not import ``dataclasses``.)
    """

    __slots__ = ("tables", "families", "states", "preferred_family", "details", "ext", "explicit", "force_proc",
                 "bytecode", "predicate", "kernel_exact", "ports")

    tables: frozenset[str]
    families: frozenset[int]
    states: int
    preferred_family: int
    details: bool
    ext: int
    explicit: frozenset[str]
    force_proc: bool
    bytecode: bytes | None
    predicate: Callable[[Socket], bool] | None
    kernel_exact: bool
    ports: tuple[int, int]

    def __init__(self, tables: frozenset[str], families: frozenset[int], states: int = SS_ALL,
                 preferred_family: int = 0, details: bool = False, ext: int = 0,
                 explicit: frozenset[str] = frozenset(), force_proc: bool = False, bytecode: bytes | None = None,
                 predicate: Callable[[Socket], bool] | None = None, kernel_exact: bool = False,
                 ports: tuple[int, int] = (0, 0)) -> None:
        setattr_ = object.__setattr__
        for name, value in (("tables", tables), ("families", families), ("states", states),
                            ("preferred_family", preferred_family), ("details", details), ("ext", ext),
                            ("explicit", explicit), ("force_proc", force_proc), ("bytecode", bytecode),
                            ("predicate", predicate), ("kernel_exact", kernel_exact), ("ports", ports)):
            setattr_(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Query is immutable: use replace({name}=...)")

    def replace(self, **changes: Any) -> Query:
        """A copy with ``changes`` applied."""
        fields = {name: getattr(self, name) for name in Query.__slots__}
        unknown = set(changes) - fields.keys()
        if unknown:
            raise TypeError(f"Query has no field {', '.join(sorted(unknown))}")
        fields.update(changes)
        return Query(**fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Query:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in Query.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in Query.__slots__))

    def __repr__(self) -> str:
        return "Query(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in Query.__slots__) + ")"


def run(q: Query, warn: Warn = _stderr_warn) -> Iterator[Socket]:
    """Stream the sockets of ``q`` in ss's order (filtered by its filter, if any), as records."""
    decode_all = q.details or bool(q.ext)
    for table, item, keep in _source(q, warn, uids=True):
        if keep is not None and table in _KEPT_BY_COLUMNS and not isinstance(item, list):
            item, keep = _kept(table, item, keep, decode_all), None
        socks = item if isinstance(item, list) else records(table, item, decode_all)
        yield from socks if keep is None else filter(keep, socks)


def batches(q: Query, warn: Warn = _stderr_warn, info: bool = False, ordered: bool = True,
            meanwhile: Callable[[], None] | None = None, ahead: bool = True
            ) -> Iterator[tuple[str, Batch | UnixBatch | OtherBatch | list[Socket]]]:
    """The one source: ``(table, batch)`` in ss's order, filtered by ``q``'s filter.

    Every inet table comes as :class:`~sockscope.kernel.inet.Batch` columns, whether sock_diag or the
    /proc fallback answered, UNIX sockets (table "unix") as :class:`~sockscope.kernel.unix.Batch` columns
    (or records, from /proc), each a datagram's; netlink and packet sockets (tables "nl", "packet") as
    one :class:`~sockscope.kernel.others.Batch` each.  ``info`` adds the tcp_info columns (``ss -i``);
    ``ahead``: a helper thread receives while the caller decodes (not where the caller has a long
    walk of its own on the other core: the helper would take that core); ``ordered=False`` leaves a
    batch of both families whole (ss lists IPv4 before IPv6; a caller to whom order does not matter
    skips the split).  ``meanwhile``: the caller's other work, called first, once the TCP and UDP
    dumps are all sent, each received by a helper thread (:func:`_prefetch`; ``ahead`` only): the
    kernel's walks run beside it."""
    decode_all = q.details or bool(q.ext)
    for table, item, keep in _source(q, warn, info, ordered, meanwhile=meanwhile, ahead=ahead):
        if keep is not None:
            if isinstance(item, list):
                item = [s for s in item if keep(s)]
            elif item.n:  # (none: nothing to ask, a raw table without sockets, a dump's last datagram)
                item = _kept(table, item, keep, decode_all)
        yield table, item


#: the tables whose batches a filter expression's predicate asks by their columns (:func:`_kept`)
_KEPT_BY_COLUMNS = frozenset(("unix", "nl", "packet"))


def _kept(table: str, b: Batch | UnixBatch | OtherBatch, keep: Callable[[Socket], bool], details: bool
          ) -> Batch | UnixBatch | OtherBatch:
    """The rows of batch ``b`` that pass ``keep``.  Of a UNIX, netlink or packet batch a filter
    expression's predicate asks the columns, no record made (``LazyPredicate.unix_mask``,
    ``rows_mask``); an inet batch (raw sockets, or /proc's: the kernel's bytecode filtered the
    rest), or another callable, is asked the records."""
    from sockscope.filter import LazyPredicate

    if table not in _KEPT_BY_COLUMNS or not isinstance(keep, LazyPredicate):
        return b.select(list(map(keep, records(table, b, details))))
    if table == "unix":
        from sockscope.kernel import unix

        assert isinstance(b, unix.Batch)
        return b.select(keep.unix_mask(b.name, b.inode, b.peer, unix.name_bytes, unix.unix_names))
    from sockscope.kernel import others

    assert isinstance(b, others.Batch)
    return b.select(keep.rows_mask(AF_NETLINK if table == "nl" else AF_PACKET, others.filter_rows(b)))


def records(table: str, batch: Batch | UnixBatch | OtherBatch, details: bool = False) -> list[Socket]:
    """A batch of :func:`batches` as :class:`~sockscope.records.Socket` records."""
    if table == "unix":
        from sockscope.kernel import unix

        assert isinstance(batch, unix.Batch)  # (the table says which; the check tells the type checker)
        return unix.records(batch, details)
    if table == "nl" or table == "packet":
        from sockscope.kernel import others

        assert isinstance(batch, others.Batch)
        return others.records(batch)
    from sockscope.kernel import inet

    assert isinstance(batch, inet.Batch)
    return inet.records(batch, table, details)


def _source(q: Query, warn: Warn, info: bool = False, ordered: bool = True, uids: bool = False,
            meanwhile: Callable[[], None] | None = None, ahead: bool = True
            ) -> Iterator[tuple[str, Batch | UnixBatch | OtherBatch | list[Socket], Callable[[Socket], bool] | None]]:
    """``(table, batch, keep)`` in ss's order (tables nl, packet, unix, raw, udp, tcp, dccp,
    sctp, mptcp; IPv4 before IPv6).  ``keep``, what of the filter is left: None nothing (no
    filter, or the kernel's bytecode gave ss's answer), ``predicate`` ss's userspace check and
    the bytecode's, ``predicate.user`` the userspace one alone (a table read from /proc because
    the kernel lacks its sock_diag, as ss reads it)."""
    state = _FallbackState(q.force_proc or bool(os.environ.get("SOCKSCOPE_FORCE_PROC")), warn)
    pred = q.predicate  # (the kernel's part is for inet sockets)
    user = getattr(pred, "user", pred)
    started = _SentAhead()  # (meanwhile: filled by _prefetch)
    try:
        if meanwhile is not None:
            if ahead:
                _prefetch(q, state, ordered, started)
            meanwhile()
        if "nl" in q.tables and AF_NETLINK in q.families and q.states & (1 << CLOSE):
            yield "nl", _optional(q, "nl", lambda: _netlink(q)), pred
        if any(t in q.tables for t in PACKET_TABLES) and AF_PACKET in q.families and q.states & (1 << CLOSE):
            yield "packet", _optional(q, "packet", lambda: _packet(q)), pred
        if any(t in q.tables for t in UNIX_TABLES) and AF_UNIX in q.families:
            yield from (("unix", part, pred) for part in _unix(q, state, uids))
        exact = q.kernel_exact and q.bytecode is not None
        for table in INET_TABLES:
            if table == "mptcp":  # ss's order: … sctp, vsock, tipc, xdp, mptcp
                _probe_others(q)
            if _asked(q, table):
                for batch, from_kernel in _inet(q, table, state, info, ordered, started, ahead):
                    if from_kernel:
                        yield table, batch, None if exact and table != "raw" else pred
                    else:  # /proc: forced (SOCKSCOPE_FORCE_PROC), ss would have read tcp and udp by sock_diag
                        yield table, batch, pred if state.force and table != "raw" else user
    finally:
        started.close()


class _SentAhead:
    """The dumps :func:`_prefetch` sent before :func:`_inet` reads them: each table's plan
    (:func:`_requests`) by the table's name, each request's dump (a ``transport.Behind``, its helper
    receiving) by the request.  :func:`_inet` takes what it finds here; :meth:`close` ends the
    helpers of the dumps nobody took (the caller stopped early, or a table fell back to /proc)."""

    __slots__ = ("plans", "dumps")

    def __init__(self) -> None:
        self.plans: dict[str, tuple[bool, list[bytes]]] = {}
        self.dumps: dict[bytes, Behind] = {}

    def close(self) -> None:
        for dump in self.dumps.values():
            dump.close()
        self.dumps.clear()


def _prefetch(q: Query, state: _FallbackState, ordered: bool, started: _SentAhead) -> None:
    """Every dump :func:`_inet` will read of ``q``'s TCP and UDP tables sent now, each received by a
    helper thread (``transport.Behind``), into ``started``."""
    from sockscope.kernel import transport

    if state.force:
        return
    for table in ("udp", "tcp"):
        if _asked(q, table) and not (table == "tcp" and os.environ.get("TCPDIAG_FILE") is not None):
            plan = started.plans[table] = _requests(q, table, ordered)
            for req in plan[1]:
                started.dumps[req] = transport.Behind(req, f"{table} diag")


def _asked(q: Query, table: str) -> bool:
    """Whether ``q`` lists the inet table ``table``."""
    return table in q.tables and (AF_INET in q.families or AF_INET6 in q.families)


#: families ss knows that sockscope can only probe: (tables, family, sock_diag family or None)
_PROBED = (
    (("v_str", "v_dgr"), 40, "vsock", 40),
    (("tipc",), 30, "tipc", None),
    (("xdp",), 44, "xdp", 44),
)


def _probe_others(q: Query) -> None:
    """vsock, TIPC and XDP sockets: say once on stderr that this kernel lacks
    them (what it does here), or that sockscope cannot list them yet."""
    for tables, family, name, diag_family in _PROBED:
        if not (set(tables) & q.tables) or family not in q.families or not (set(tables) & q.explicit):
            continue
        if diag_family is not None:
            from sockscope.kernel import netlink as nl
            from sockscope.kernel import transport

            payload = bytes([diag_family, 0, 0, 0]) + q.states.to_bytes(4, "little") + bytes(12)
            req = nl.encode_message(nl.SOCK_DIAG_BY_FAMILY, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, nl.DUMP_SEQ, payload)
            def done(b: bytes, name: str = name) -> bool:
                return nl.diag_messages(b, name)[1]

            try:
                transport.dump(req, done, name)
                supported = True
            except NotSupported:
                supported = False
        else:
            supported = os.path.isdir(f"/sys/module/{name}")
        if supported:
            _stderr_warn(f"{name}: listing these sockets is not implemented in this version")
        else:
            _stderr_warn(f"{name}: not supported by this kernel")


class _FallbackState:
    __slots__ = ("force", "warn", "warned")

    def __init__(self, force: bool, warn: Warn) -> None:
        self.force = force
        self.warn = warn
        self.warned = False

    def fall_back(self, why: str) -> None:
        if not self.warned:
            self.warned = True
            self.warn(f"{why}; reading /proc/net instead (some fields are missing)")


def _families(q: Query) -> list[int]:
    fams = []
    if AF_INET in q.families and q.preferred_family != AF_INET6:
        fams.append(AF_INET)
    if AF_INET6 in q.families and q.preferred_family != AF_INET:
        fams.append(AF_INET6)
    return fams


def _requests(q: Query, table: str, ordered: bool, both: bool = True) -> tuple[bool, list[bytes]]:
    """The sock_diag dumps :func:`_inet` asks for of ``table``: (whether it is TCP's one walk of both
    families, the requests); ``both=False``: one a family (the kernel refused that walk)."""
    from sockscope.kernel import inet, sockstat

    fams = _families(q)
    if (both and table == "tcp" and fams == [AF_INET, AF_INET6] and not q.details and not q.ext
            and not (ordered and not q.bytecode and sockstat.tcp_per_family())):
        return True, [inet.encode_request_compat(q.states, q.ext, q.bytecode, ports=q.ports)]
    return False, [inet.encode_request(fam, inet.PROTOCOLS[table], q.states, q.ext, q.bytecode,
                                       ports=q.ports if table == "tcp" else (0, 0))
                   for fam in fams if not (table == "udp" and sockstat.no_udp(fam))]  # (walks finding nothing)


def _inet(q: Query, table: str, state: _FallbackState, info: bool, ordered: bool, started: _SentAhead,
          ahead: bool) -> Iterator[tuple[Batch, bool]]:
    """One inet table's batches, and whether each came from sock_diag (else from /proc: sock_diag
    unavailable or denied, or the raw table), datagram by datagram: TCP's of both families from one
    walk (:func:`_tcp_both`) unless one per family pays (``sockstat.tcp_per_family``); of several
    dumps, those after the first are sent at once and run beside it (``transport.Behind``); requests and
    dumps in ``started`` (sent ahead: :func:`_prefetch`) taken from there; not ``ahead``: each in turn."""
    from sockscope.kernel import inet, transport

    replay = os.environ.get("TCPDIAG_FILE") if table == "tcp" else None
    if replay is not None:  # a capture (set, even empty, as ss reads it): unfiltered by a kernel, so filtered here
        from sockscope.replay import replay as _replay

        for batch in _replay(replay):
            yield batch, False
        return
    fams = _families(q)
    use_proc = state.force or table == "raw"
    if not use_proc:
        op = f"{table} diag"
        try:
            plan = started.plans.pop(table, None)
            both, reqs = plan if plan is not None else _requests(q, table, ordered)
            if both:
                done = yield from _tcp_both(q, op, info, ordered, started.dumps.pop(reqs[0], None) or reqs[0], ahead)
                if done:
                    return
                reqs = _requests(q, table, ordered, both=False)[1]
            dumps: list[Any] = []
            try:
                later = transport.Behind if ahead else transport.stream  # (stream: sends its request when first read)
                for req in reqs[1:]:
                    dumps.append(started.dumps.pop(req, None) or later(req, op))
                if reqs:
                    first = transport.stream_ahead if ahead else transport.stream
                    dumps.insert(0, started.dumps.pop(reqs[0], None) or first(reqs[0], op))
                for dump in dumps:
                    for data in dump:
                        batch, end = inet.decode(data, op, info)
                        yield batch, True
                        if end:
                            break
            finally:
                for dump in dumps:
                    dump.close()
            return
        except (NotSupported, PermissionDenied) as exc:
            if table not in ("tcp", "udp"):
                if isinstance(exc, NotSupported) and table in q.explicit:
                    state.warn(f"{table}: not supported by this kernel")
                    return
                if isinstance(exc, NotSupported):
                    return
                raise
            state.fall_back(f"sock_diag: {exc}")
    elif state.force and table != "raw":
        state.fall_back("SOCKSCOPE_FORCE_PROC is set")
    if table not in ("tcp", "udp", "raw"):
        return
    from sockscope import procnet

    for fam in fams:
        yield inet.Batch.of(list(procnet.read_inet(table, fam, q.states))), False


def _tcp_both(q: Query, op: str, info: bool, ordered: bool, dump: Any, ahead: bool
              ) -> Generator[tuple[Batch, bool], None, bool]:
    """``_inet``'s TCP batches for both families from one legacy dump (one walk of the kernel's tables
    instead of one per family: ``dump``, its request or the dump sent ahead); returns False, having
    yielded nothing, when the kernel refuses it.  ss lists IPv4 then IPv6, each in the kernel's order:
    IPv6 rows are held back until the end (unless not ``ordered``)."""
    from sockscope.kernel import inet, transport

    held: list[Batch] = []
    first = True
    if type(dump) is bytes:
        dump = (transport.stream_ahead if ahead else transport.stream)(dump, op)
    try:
        for data in dump:
            batch, done = inet.decode(data, op, info)
            first = False
            if batch.fam == AF_INET or not ordered:
                yield batch, True
            elif batch.fam == AF_INET6:
                held.append(batch)
            elif batch.n:  # both families in one datagram
                v4, v6 = batch.split()
                yield v4, True
                held.append(v6)
            if done:
                break
    except NetlinkError:
        if first:
            return False  # not this kernel: one dump per family, as ss does
        raise
    finally:
        dump.close()
    for batch in held:
        yield batch, True
    return True


def _unix(q: Query, state: _FallbackState, uids: bool = False) -> Iterator[UnixBatch | list[Socket]]:
    """The UNIX sockets of ``q``: a batch a datagram (sock_diag), or records (/proc); uids where ``uids`` asks."""
    from sockscope.kernel import transport, unix

    types = {t for t in UNIX_TABLES if t in q.tables}
    if not state.force:
        show = unix.DEFAULT_SHOW | (unix.UDIAG_SHOW_VFS | unix.UDIAG_SHOW_ICONS if q.details else 0)
        if uids:  # (records: ss's -e shows no UNIX socket's uid, and asks for none)
            show |= unix.UDIAG_SHOW_UID
        if q.ext & EXT_MEM:
            show |= unix.UDIAG_SHOW_MEMINFO
        some, given = len(types) < len(UNIX_TABLES), False
        try:  # received by a helper thread: the kernel fills the next datagram while this one is decoded
            req = unix.encode_request(q.states, show)  # (its datagrams not joined: see transport.JOIN_BYTES)
            for data in transport.stream_ahead(req, "unix diag", 0):
                b, done = unix.decode(data, "unix diag")
                b = b.select([t in types for t in unix.netids(b)]) if some else b
                if b.n:  # (a batch a datagram: its bytes freed once the consumer has made its rows)
                    given = True
                    yield b
                if done:
                    break
        except (NotSupported, PermissionDenied) as exc:
            if given:  # (rows given already: none from /proc after them)
                raise
            state.fall_back(f"sock_diag: {exc}")
        else:
            return
    else:
        state.fall_back("SOCKSCOPE_FORCE_PROC is set")
    from sockscope import procnet

    yield procnet.read_unix(q.states, types)


def _optional(q: Query, what: str, fn: Callable[[], OtherBatch]) -> OtherBatch | list[Socket]:
    try:
        return fn()
    except NotSupported:
        if what in q.explicit:
            _stderr_warn(f"{what}: not supported by this kernel")
        return []


def _netlink(q: Query) -> OtherBatch:
    from sockscope.kernel import others

    return others.dump("nl")


def _packet(q: Query) -> OtherBatch:
    from sockscope.kernel import others

    # like ss, the netlink path shows every packet socket once any packet table is asked for
    return others.dump("packet")


# --------------------------------------------------------------------------
# psutil's kinds (sockets_api.sockets, psutil_api), an ss filter expression on a query


_KINDS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "inet": (("tcp", "udp"), (AF_INET, AF_INET6)),
    "inet4": (("tcp", "udp"), (AF_INET,)),
    "inet6": (("tcp", "udp"), (AF_INET6,)),
    "tcp": (("tcp",), (AF_INET, AF_INET6)),
    "tcp4": (("tcp",), (AF_INET,)),
    "tcp6": (("tcp",), (AF_INET6,)),
    "udp": (("udp",), (AF_INET, AF_INET6)),
    "udp4": (("udp",), (AF_INET,)),
    "udp6": (("udp",), (AF_INET6,)),
    "unix": (UNIX_TABLES, (AF_UNIX,)),
    "all": (("tcp", "udp") + UNIX_TABLES, (AF_INET, AF_INET6, AF_UNIX)),
}
KINDS = tuple(_KINDS)


def kind_of(kind: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """psutil's ``kind`` (``"inet"``, ``"tcp4"``, ``"unix"``, ``"all"`` …) as (tables, families);
    ValueError naming the valid kinds for any other (psutil's message)."""
    try:
        return _KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"invalid kind argument {kind!r}; valid ones are: {', '.join(KINDS)}") from None


def with_filter(q: Query, words: list[str], family: int = 0, path: str | None = None,
                resolver: Resolver | None = None) -> Query:
    """``q`` restricted by an ss filter expression (argv words, or ``-F path``).

    The expression compiles to bytecode for the kernel where it can, and to a
    predicate for the rest; a host prefix (``unix:``, ``inet6:``…) replaces the
    families, as in ss.  Syntax errors raise
    :class:`~sockscope.filter.FilterSyntaxError` (a :class:`UsageError`).  ``resolver``: the
    filter's name look-ups (:class:`~sockscope.filter.values.Resolver`, the default's if None).
    """
    from sockscope import filter as flt

    protocols = tuple(t for t in ("tcp", "udp") if t in q.tables)  # ss: names of the listed ones only
    if path is not None:
        expr = flt.parse_file(path, words, family=family, protocols=protocols, resolver=resolver)
    else:
        expr = flt.parse(words, family=family, protocols=protocols, resolver=resolver)
    if expr is None:
        return q
    fams = expr.families()
    bc = flt.compile_bytecode(expr)
    needs_marks = any(type(leaf).__name__ in ("MarkCond", "CgroupCond") for leaf in expr.leaves())
    return q.replace(
        families=frozenset(fams) if fams is not None else q.families,
        # (ss: the host's family is also the preferred one now, which picks the inet walks: -6 src inet:X
        # walks IPv4's)
        preferred_family=next(iter(fams)) if fams is not None else q.preferred_family,
        bytecode=bc,
        # (where no bytecode reaches the kernel, its userspace check alone decides, and an inet host is not
        # also matched the kernel's way: ss makes none for ``dev`` anywhere in the expression, and the one
        # it makes for a UNIX, link or netlink host the kernel refuses, and ss reads /proc)
        predicate=flt.LazyPredicate(expr, kernel=bc is not None),
        kernel_exact=bc is not None and not expr.needs_userspace(),
        details=q.details or needs_marks,
        ports=flt.required_ports(expr) if bc is not None else (0, 0),
    )


__all__ = [
    "Query", "run", "batches", "records", "with_filter", "kind_of", "EXT_INFO", "EXT_MEM", "EXT_TOS", "KINDS",
    "SS_ALL", "SS_CONN",
]
