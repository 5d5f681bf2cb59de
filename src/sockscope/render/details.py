"""The text ss appends to the Process cell: ``-o`` timers, ``-e`` details,
``-m`` socket memory, ``-i`` tcp_info — same order, same words as ss 6.1."""

from __future__ import annotations

from _operator import add

from sockscope._addr import AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX, Texts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sockscope.records import Socket

_TIMERS = ("off", "on", "keepalive", "timewait", "persist", "unknown")


class DetailOptions:
    """Which detail texts to append (ss's -o -e -m -i -O -n --cgroup): a plain slotted class,
    read-only once made (``-i``'s listing does not import ``dataclasses`` nor the records)."""

    __slots__ = ("timers", "extended", "memory", "info", "oneline", "numeric", "cgroup", "tos", "sockopt", "bpf")

    timers: bool  # -o (also implied by -e)
    extended: bool  # -e
    memory: bool  # -m
    info: bool  # -i
    oneline: bool  # -O
    numeric: bool  # -n: exact rates
    cgroup: bool  # --cgroup
    tos: bool  # --tos
    sockopt: bool  # --inet-sockopt
    bpf: bool  # -b

    def __init__(self, timers: bool = False, extended: bool = False, memory: bool = False, info: bool = False,
                 oneline: bool = False, numeric: bool = False, cgroup: bool = False, tos: bool = False,
                 sockopt: bool = False, bpf: bool = False) -> None:
        for name, value in zip(self.__slots__, (timers, extended, memory, info, oneline, numeric, cgroup, tos,
                                                sockopt, bpf)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"DetailOptions is read-only: cannot set {name}")

    def _values(self) -> tuple[bool, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is DetailOptions and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return "DetailOptions(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    @property
    def any_but_info(self) -> bool:
        """Any detail text besides ``-i``'s (which the listing can make without records)."""
        return self.timers or self.extended or self.memory or self.cgroup or self.tos or self.sockopt or self.bpf


#: inet_diag_sockopt's bits, in ss's order and words
_SOCKOPTS = ("recverr", "is_icsk", "freebind", "hdrincl", "mc_loop", "transparent", "mc_all", "nodefrag",
             "bind_addr_no_port", "recverr_rfc4884", "defer_connect")


def _hex(v: int) -> str:
    """C's ``%#x``: "0" for zero, else 0x…"""
    return "%#x" % v if v else "0"


def ms_timer(timeout: int) -> str:
    """ss's ``print_ms_timer`` (including 6.1's "1.756ms" for 1.756 s)."""
    secs, msecs = divmod(timeout, 1000)
    minutes, secs = divmod(secs, 60)
    out = ""
    if minutes:
        msecs = 0
        out = f"{minutes}min"
        if minutes > 9:
            secs = 0
    if secs:
        if secs > 9:
            msecs = 0
        out += f"{secs}{'.' if msecs else 'sec'}"
    if msecs:
        out += f"{msecs:03d}ms"
    return out


def _skmem(s: Socket) -> str:
    return skmem_text(s.skmem)


def skmem_text(m: Any) -> str:
    """ss's ``skmem:(…)`` of an :class:`~sockscope.records.SkMem`, or of the plain 9-tuple of its
    values the detail columns give the texts ("" for None)."""
    if m is None:
        return ""
    rmem, rcvbuf, wmem, sndbuf, fwd, queued, optmem, backlog, drops = m
    text = f" skmem:(r{rmem},rb{rcvbuf},t{wmem},tb{sndbuf},f{fwd},w{queued},o{optmem}"
    if backlog is not None:
        text += f",bl{backlog}"
    if drops is not None:
        text += f",d{drops}"
    return text + ")"


_FANOUT_TYPES = ("hash", "lb", "cpu", "roll", "random", "qm")


def _rings(rings: tuple[Any, Any, int | None], lead: str) -> str:
    """A packet socket's rings and fanout group, as ss -e prints them."""
    rx, tx, fanout = rings
    out = []
    for name, ring in (("ring_rx", rx), ("ring_tx", tx)):
        if ring is not None:
            size, nr, fsize, fnr, tmo, _priv, features = ring
            out.append(f"{lead}{name}(blk_size:{size},blk_nr:{nr},frm_size:{fsize},frm_nr:{fnr},tmo:{tmo},"
                       f"features:0x{features:x})")
    if fanout is not None:
        kind = fanout >> 16
        out.append(f"{lead}fanout(id:{fanout & 0xFFFF},type:"
                   f"{_FANOUT_TYPES[kind] if kind < len(_FANOUT_TYPES) else f'0x{kind:x}'})")
    return "".join(out)


def _shutdown(mask: int) -> str:
    return f" {'-' if mask & 1 else '<'}-{'-' if mask & 2 else '>'}"


def tcp_info_text(s: Socket, opts: DetailOptions) -> str:
    """ss's ``tcp_stats_print`` for one socket's tcp_info (empty when absent): the
    columnar :func:`sockscope.render.tcp_info.texts` with one row, then the MD5 keys and the
    upper layer protocol; an MPTCP socket's ``mptcp_info`` instead of it all."""
    from sockscope.render.tcp_info import extras_text, mptcp_text, texts

    if s.netid == "mptcp":
        return mptcp_text(s.mptcp_info)
    text = texts([s.tcp_info], [s.cong], [s.bbr_info], [s.dctcp_info], [int(s.state)],
                 opts.timers or opts.extended, opts.numeric)[0]
    return text + extras_text((s.md5keys, s.ulp)) if s.md5keys is not None or s.ulp is not None else text


def detail_text(s: Socket, opts: DetailOptions) -> str:
    """Everything ss prints after ``users:(…)`` in the Process cell."""
    fam = s.family
    out: list[str] = []
    if fam in (AF_INET, AF_INET6):
        if s.cookie is None and (s.netid == "udp" or s.netid == "raw"):
            return ""  # read from /proc (no cookie there): ss's reader of those files prints no detail
        if (opts.timers or opts.extended) and s.timer:
            name = _TIMERS[min(s.timer, 5)]
            out.append(f" timer:({name},{ms_timer(s.expires)},{s.retrans})")
        if opts.extended:
            if s.uid:
                out.append(f" uid:{s.uid}")
            out.append(f" ino:{s.inode} sk:{(s.cookie or 0):x}")
            if s.mark:
                out.append(f" fwmark:0x{s.mark:x}")
            if s.cgroup_id:
                out.append(_CGROUP[s.cgroup_id])
            if fam == AF_INET6 and s.v6only is not None:
                out.append(f" v6only:{int(s.v6only)}")
            if s.shutdown is not None:
                out.append(_shutdown(s.shutdown))
        if opts.tos:
            if s.tos is not None:
                out.append(f" tos:{_hex(s.tos)}")
            if s.tclass is not None:
                out.append(f" tclass:{_hex(s.tclass)}")
            if s.class_id is not None:
                out.append(f" class_id:{_hex(s.class_id)}")
        if opts.cgroup and s.cgroup_id:
            out.append(_CGROUP[s.cgroup_id])
        if opts.sockopt and s.sockopt is not None:
            out.append(" inet-sockopt: (" if opts.oneline else "\n\tinet-sockopt: (")
            out.append("".join(" " + name for bit, name in enumerate(_SOCKOPTS) if s.sockopt & (1 << bit)))
            out.append(")")
        if opts.memory or (opts.info and s.netid != "udp"):
            if not opts.oneline:
                out.append("\n\t")
            out.append(_skmem(s))
            out.append(tcp_info_text(s, opts))
    elif fam == AF_UNIX:
        if opts.memory:
            out.append(_skmem(s))
        if opts.extended:
            if s.shutdown is not None:
                out.append(_shutdown(s.shutdown))
            if s.unix_vfs is not None:
                out.append(_vfs_text(s.unix_vfs))
            if s.unix_pending is not None:
                out.append(_PENDING_TEXT[s.unix_pending])
    elif fam == AF_PACKET:
        if opts.extended:
            if s.uid:
                out.append(f" uid:{s.uid}")
            out.append(f" ino:{s.inode} sk:{(s.cookie or 0):x}")
            if s.packet_info is not None:
                version, thresh, flags = s.packet_info
                out.append(f"{' ' if opts.oneline else chr(10) + chr(9)}ver:{version} cpy_thresh:{thresh} flags( ")
                words = [w for bit, w in ((1, "running"), (2, " auxdata"), (4, " origdev"), (8, " vnethdr"),
                                          (16, " loss")) if flags & bit]
                out.append("".join(words) if flags else "0")
                out.append(" )")
            if s.packet_rings is not None:
                out.append(_rings(s.packet_rings, " " if opts.oneline else "\n\t"))
        if opts.bpf and s.bpf is not None:
            out.append(f"{' ' if opts.oneline else chr(10) + chr(9)}bpf filter ({len(s.bpf)}): ")
            out.append("".join(f" 0x{code:02x} {jt} {jf} {k}," for code, jt, jf, k in s.bpf))
        if opts.memory:
            out.append(_skmem(s))
    elif fam == AF_NETLINK:
        if opts.extended:
            out.append(f" sk=0 cb=0 groups=0x{(s.groups or 0):08x}")
        if opts.memory:
            out.append("\t" + _skmem(s))
    return "".join(out)


# --- an inet batch's texts, column by column ------------------------------------------------------------


_UID = Texts(lambda uid: f" uid:{uid}" if uid else "")
_TIMER = Texts(lambda k: f" timer:({_TIMERS[min(k[0], 5)]},{ms_timer(k[1])},{k[2]})", bound=1 << 12)
_MARK = Texts(lambda mark: f" fwmark:0x{mark:x}" if mark else "")
def _cgroup_text(cid: int) -> str:
    from sockscope.render.names import cgroup_path  # (loaded for a cgroup alone: start-up time)

    return f" cgroup:{cgroup_path(cid)}" if cid else ""


_CGROUP = Texts(_cgroup_text)
_SHUTDOWN = Texts(lambda mask: "" if mask is None else _shutdown(mask))
_V6ONLY = {(AF_INET, None): "", (AF_INET, False): "", (AF_INET, True): "", (AF_INET6, None): "",
           (AF_INET6, False): " v6only:0", (AF_INET6, True): " v6only:1"}


def _tos_text(word: str) -> Any:
    return lambda v: "" if v is None else f" {word}:{_hex(v)}"


_TOS = {word: Texts(_tos_text(word), bound=1 << 12) for word in ("tos", "tclass", "class_id")}
_SKMEM_ALL = " skmem:(r%d,rb%d,t%d,tb%d,f%d,w%d,o%d,bl%d,d%d)"


def skmem_texts(skmems: list[Any], lead: str = "") -> list[str]:
    """``lead`` and :func:`skmem_text` of each of ``skmems`` (9-tuples, or None: a socket without
    skmem, a TIME-WAIT one say).  One value in every row: its text once.  Where values recur (idle
    sockets share theirs), each distinct one's text is made once; else one ``%`` format each where
    every one has all nine values (checked by C-level scans), else :func:`skmem_text` each."""
    from _operator import itemgetter

    n = len(skmems)
    if n and skmems[-1] == skmems[0] and skmems.count(skmems[0]) == n:  # one value (the decoders give every
        return [lead + skmem_text(skmems[0])] * n  # row one tuple there: counted by identity, no hashing)
    texts: dict[Any, str] = dict.fromkeys(skmems, "")  # (hashing every tuple: a tenth of formatting it)
    if 2 * len(texts) <= len(skmems):
        for m in texts:
            texts[m] = lead + skmem_text(m)
        return list(map(texts.__getitem__, skmems))
    if None in texts or None in map(itemgetter(7), texts) or None in map(itemgetter(8), texts):
        return [lead + skmem_text(m) for m in skmems]
    return list(map((lead + _SKMEM_ALL).__mod__, skmems))


def inet_texts(b: Any, netid: str, opts: DetailOptions, cols: dict[str, Any]) -> list[str]:
    """:func:`detail_text` of each row of an inet batch the kernel sent (its head columns, and its
    details' columns ``cols``: :func:`sockscope.kernel.inet_details.detail_columns`), column by
    column: a part's text once per distinct value where few values recur (uids, marks, cgroups,
    shutdown masks), one ``%`` format a row where each row has its own (ino and sk, skmem), the
    tcp_info texts of :func:`sockscope.render.tcp_info.texts` for the whole batch.  (A row read
    from /proc has no cookie, and no detail text: such batches are the records' to write.)"""
    from itertools import repeat

    n = b.n

    def col(name: str) -> Any:
        got = cols[name]
        return [None] * n if got is None else got

    parts: list[Any] = []
    if (opts.timers or opts.extended) and any(b.timer):
        texts = _TIMER  # (ms_timer drops the milliseconds from 10 s on: the key drops them too)
        parts.append([texts[t, e if e < 10000 else e - e % 1000, r] if t else ""
                      for t, e, r in zip(b.timer, b.expires, b.retrans)])
    if opts.extended:
        parts.append(list(map(_UID.__getitem__, b.uid)))
        parts.append(list(map(" ino:%d sk:%x".__mod__, zip(b.inode, b.cookie))))
        for name, texts in (("mark", _MARK), ("cgroup_id", _CGROUP)):
            if cols[name] is not None:
                parts.append(list(map(texts.__getitem__, cols[name])))
        if cols["v6only"] is not None:
            parts.append(list(map(_V6ONLY.__getitem__, zip(b.family, cols["v6only"]))))
        if cols["shutdown"] is not None:
            parts.append(list(map(_SHUTDOWN.__getitem__, cols["shutdown"])))
    if opts.tos:
        parts += [list(map(texts.__getitem__, cols[name])) for name, texts in _TOS.items() if cols[name] is not None]
    if opts.cgroup and cols["cgroup_id"] is not None:
        parts.append(list(map(_CGROUP.__getitem__, cols["cgroup_id"])))
    if opts.sockopt and cols["sockopt"] is not None:
        lead = " inet-sockopt: (" if opts.oneline else "\n\tinet-sockopt: ("
        parts.append(["" if v is None else lead + "".join(" " + name for bit, name in enumerate(_SOCKOPTS)
                                                           if v & (1 << bit)) + ")" for v in cols["sockopt"]])
    if opts.memory or (opts.info and netid != "udp"):
        lead = "" if opts.oneline else "\n\t"  # (in the skmem texts' format, where there are)
        if cols["skmem"] is not None:
            parts.append(skmem_texts(cols["skmem"], lead))
        elif lead:
            parts.append(repeat(lead, n))
        info = _info_texts(b, netid, opts, col)
        if info.count("") != n:
            parts.append(info)
    if not parts:
        return [""] * n
    if len(parts) == 1:
        return parts[0] if type(parts[0]) is list else list(parts[0])
    return list(map("".join, zip(*parts)))


def info_texts(b: Any, netid: str, opts: DetailOptions, lead: str = "") -> list[str]:
    """:func:`tcp_info_text` of each row of a batch decoded with its ``-i`` columns
    (``query.batches(info=True)``: ``b.info``), each after ``lead``: ``-i``'s texts alone
    (:meth:`~sockscope.render.table.CellMaker.info_cells`) and with other details (:func:`inet_texts`).
    An MPTCP batch's INFO is a struct mptcp_info: read row by row (few sockets)."""
    from sockscope.render.tcp_info import extras_text, mptcp_text, texts

    if netid == "mptcp":
        from sockscope.kernel.inet_attrs import mptcp_infos

        return [lead + t for t in map(mptcp_text, mptcp_infos(b))]
    infos, congs, bbrs, dctcps, tails = b.info
    out = texts(infos, congs, bbrs, dctcps, b.state, opts.timers or opts.extended, opts.numeric, lead)
    return out if tails is None else [t + extras_text(x) for t, x in zip(out, tails)]  # (MD5 keys, ULP: after)


def _info_texts(b: Any, netid: str, opts: DetailOptions, col: Any) -> list[str]:
    """:func:`tcp_info_text` of each row (MPTCP: its mptcp_info's), for the whole batch."""
    if b.info is not None:  # decoded with its -i columns
        return info_texts(b, netid, opts)
    if netid == "mptcp":
        from sockscope.render.tcp_info import mptcp_text

        return list(map(mptcp_text, col("mptcp_info")))
    infos = col("tcp_info")
    if infos.count(None) == b.n and col("md5keys").count(None) == b.n and col("ulp").count(None) == b.n:
        return [""] * b.n  # (-m without -i: no tcp_info; its texts' module is not loaded for nothing)
    from sockscope.render.tcp_info import extras_text, texts

    out = [""] * b.n if infos.count(None) == b.n else texts(
        infos, col("cong"), col("bbr_info"), col("dctcp_info"), b.state, opts.timers or opts.extended, opts.numeric)
    md5s, ulps = col("md5keys"), col("ulp")
    if md5s.count(None) == b.n and ulps.count(None) == b.n:
        return out
    return [t if m is None and u is None else t + extras_text((m, u)) for t, m, u in zip(out, md5s, ulps)]


class _NoColumns(dict):  # type: ignore[type-arg]  # (typing is not imported at run time)
    """The details' columns where none is read (``-o`` alone: the head's timers): every field None."""

    __slots__ = ()

    def __missing__(self, key: str) -> None:
        return None


NO_COLUMNS = _NoColumns()


def detail_fields(opts: DetailOptions, netid: str, info: bool = False) -> frozenset[str]:
    """The details' columns :func:`inet_texts` reads for ``opts`` (of
    :data:`sockscope.kernel.inet_details.FIELDS`); ``info``: the batch has its -i columns already."""
    need: set[str] = set()
    if opts.extended:
        need |= {"mark", "cgroup_id", "v6only", "shutdown"}
    if opts.tos:
        need |= {"tos", "tclass", "class_id"}
    if opts.cgroup:
        need.add("cgroup_id")
    if opts.sockopt:
        need.add("sockopt")
    if opts.memory or (opts.info and netid != "udp"):
        need |= {"skmem"} if info else {
            "skmem", "tcp_info", "cong", "bbr_info", "dctcp_info", "md5keys", "ulp", "mptcp_info"}
    return frozenset(need)


_PENDING_TEXT = Texts(lambda pending: " peers:" + "".join([f" {i}" for i in pending]))


#: a device number as ss prints it: major/minor (the kernel's new_encode_dev); few devices hold paths
_DEV_TEXT = Texts(lambda dev: f"{(dev >> 8) & 0xFFF}/{(dev & 0xFF) | ((dev >> 12) & 0xFFF00)}")


def _vfs_text(vfs: tuple[int, int]) -> str:
    """A path's inode and device (a UNIX socket's VFS) as ss prints them."""
    return f" ino:{vfs[0]} dev:{_DEV_TEXT[vfs[1]]}"


def unix_fields(opts: DetailOptions) -> frozenset[str]:
    """The details' columns :func:`unix_texts` reads for ``opts`` (of
    :data:`sockscope.kernel.unix_details.FIELDS`)."""
    need: set[str] = set()
    if opts.memory:
        need.add("skmem")
    if opts.extended:
        need |= {"shutdown", "unix_vfs", "unix_pending"}
    return frozenset(need)


def unix_texts(n: int, opts: DetailOptions, cols: dict[str, Any]) -> list[str]:
    """:func:`detail_text` of each row of a UNIX batch, column by column, from its details' columns
    (:func:`sockscope.kernel.unix_details.detail_columns` of :func:`unix_fields`): the texts of the
    columns every row has (skmem, shutdown) each value's once, added side by side; those of the few
    rows with a path (its inode and device) or a listener's pending connections added at their rows
    alone (an empty one costs nothing)."""
    from itertools import compress, repeat
    from _operator import is_not

    parts: list[Any] = []
    if opts.memory and cols["skmem"] is not None:
        parts.append(skmem_texts(cols["skmem"]))
    if opts.extended and cols["shutdown"] is not None:
        parts.append(map(_SHUTDOWN.__getitem__, cols["shutdown"]))
    joined: Any = parts[0] if parts else [""] * n
    for part in parts[1:]:
        joined = map(add, joined, part)
    row: list[str] = joined if type(joined) is list else list(joined)
    if opts.extended:
        for col, text in ((cols["unix_vfs"], _vfs_text), (cols["unix_pending"], _PENDING_TEXT.__getitem__)):
            if col is not None:
                for i in compress(range(n), map(is_not, col, repeat(None))):
                    row[i] += text(col[i])
    return row
