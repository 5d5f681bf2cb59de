"""The text ss appends to the Process cell: ``-o`` timers, ``-e`` details,
``-m`` socket memory, ``-i`` tcp_info — same order, same words as ss 6.1."""

from __future__ import annotations

from dataclasses import dataclass

from sockscope._addr import AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX
from sockscope.records import Socket
from sockscope.render import names

_TIMERS = ("off", "on", "keepalive", "timewait", "persist", "unknown")


@dataclass(frozen=True, slots=True)
class DetailOptions:
    """Which detail texts to append (ss's -o -e -m -i -O -n --cgroup)."""

    timers: bool = False  # -o (also implied by -e)
    extended: bool = False  # -e
    memory: bool = False  # -m
    info: bool = False  # -i
    oneline: bool = False  # -O
    numeric: bool = False  # -n: exact rates
    cgroup: bool = False  # --cgroup
    tos: bool = False  # --tos
    sockopt: bool = False  # --inet-sockopt
    bpf: bool = False  # -b

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


def _bw(bps: float, numeric: bool) -> str:
    """ss's rate text (``sprint_bw``), cached: a table repeats few rates."""
    key = (bps, numeric)
    text = _BW.get(key)
    if text is None:
        if len(_BW) > 65536:
            _BW.clear()
        text = _BW[key] = _bw_text(bps, numeric)
    return text


def _bw_text(bps: float, numeric: bool) -> str:
    if numeric:
        return f"{bps:.0f}"
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if bps >= limit:
            return f"{bps / limit:.3g}{suffix}"
    return f"{bps:g}"


_BW: dict[tuple[float, bool], str] = {}
_MS: dict[int, str] = {}


def _ms(usecs: int) -> str:
    """``usecs / 1000`` as C's ``%g`` (ss's milliseconds), cached."""
    text = _MS.get(usecs)
    if text is None:
        if len(_MS) > 65536:
            _MS.clear()
        text = _MS[usecs] = f"{usecs / 1000:g}"
    return text


def _skmem(s: Socket) -> str:
    m = s.skmem
    if m is None:
        return ""
    text = (f" skmem:(r{m.rmem_alloc},rb{m.rcvbuf},t{m.wmem_alloc},tb{m.sndbuf},"
            f"f{m.fwd_alloc},w{m.wmem_queued},o{m.optmem}")
    if m.backlog is not None:
        text += f",bl{m.backlog}"
    if m.drops is not None:
        text += f",d{m.drops}"
    return text + ")"


def _shutdown(mask: int) -> str:
    return f" {'-' if mask & 1 else '<'}-{'-' if mask & 2 else '>'}"


def tcp_info_text(s: Socket, opts: DetailOptions) -> str:
    """ss's ``tcp_stats_print`` for one socket's tcp_info (empty when absent)."""
    t = s.tcp_info
    if t is None:
        return ""
    # every field a local at once: ~60 attribute look-ups on the named tuple cost more than the formatting
    (_, _, _, _, backoff, options, snd_wscale, rcv_wscale, delivery_rate_app_limited, _, rto, ato, snd_mss,
     rcv_mss, unacked, sacked, lost, retrans, fackets, last_data_sent, _, last_data_recv, last_ack_recv, pmtu,
     rcv_ssthresh, rtt, rttvar, snd_ssthresh, snd_cwnd, advmss, reordering, rcv_rtt, rcv_space, total_retrans,
     pacing_rate, max_pacing_rate, bytes_acked, bytes_received, segs_out, segs_in, notsent_bytes, min_rtt,
     data_segs_in, data_segs_out, delivery_rate, busy_time, rwnd_limited, sndbuf_limited, delivered,
     delivered_ce, bytes_sent, bytes_retrans, dsack_dups, reord_seen, rcv_ooopack, snd_wnd, _, _, _, _, _, _,
     _) = t
    p: list[str] = []
    if opts.timers or opts.extended:  # 6.1 shows the option flags only with -o/-e
        opt = options
        if opt & 1:
            p.append(" ts")
        if opt & 2:
            p.append(" sack")
        if opt & 8:
            p.append(" ecn")
        if opt & 16:
            p.append(" ecnseen")
        if opt & 32:
            p.append(" fastopen")
    if s.cong:
        p.append(f" {s.cong}")
    if options & 4:
        p.append(f" wscale:{snd_wscale},{rcv_wscale}")
    if rto and rto != 3000000:
        p.append(" rto:" + _ms(rto))
    if backoff:
        p.append(f" backoff:{backoff}")
    if rtt:
        p.append(" rtt:" + _ms(rtt) + "/" + _ms(rttvar))
    if ato:
        p.append(" ato:" + _ms(ato))
    if snd_mss:
        p.append(f" mss:{snd_mss}")
    if pmtu:
        p.append(f" pmtu:{pmtu}")
    if rcv_mss:
        p.append(f" rcvmss:{rcv_mss}")
    if advmss:
        p.append(f" advmss:{advmss}")
    if snd_cwnd:
        p.append(f" cwnd:{snd_cwnd}")
    if snd_ssthresh < 0xFFFF and snd_ssthresh:
        p.append(f" ssthresh:{snd_ssthresh}")
    if bytes_sent:
        p.append(f" bytes_sent:{bytes_sent}")
    if bytes_retrans:
        p.append(f" bytes_retrans:{bytes_retrans}")
    if bytes_acked:
        p.append(f" bytes_acked:{bytes_acked}")
    if bytes_received:
        p.append(f" bytes_received:{bytes_received}")
    if segs_out:
        p.append(f" segs_out:{segs_out}")
    if segs_in:
        p.append(f" segs_in:{segs_in}")
    if data_segs_out:
        p.append(f" data_segs_out:{data_segs_out}")
    if data_segs_in:
        p.append(f" data_segs_in:{data_segs_in}")
    if s.dctcp_info is not None:
        en, ce, alpha, ab_ecn, ab_tot = s.dctcp_info
        if en:
            p.append(f" dctcp:(ce_state:{ce},alpha:{alpha},ab_ecn:{ab_ecn},ab_tot:{ab_tot})")
        else:
            p.append(" dctcp:fallback_mode")
    if s.bbr_info is not None:
        bw, mrtt, pg, cg = s.bbr_info
        p.append(f" bbr:(bw:{_bw(bw * 8.0, opts.numeric)}bps,mrtt:{mrtt / 1000.0:g}")
        if pg:
            p.append(f",pacing_gain:{pg / 256.0:g}")
        if cg:
            p.append(f",cwnd_gain:{cg / 256.0:g}")
        p.append(")")
    if rtt > 0 and snd_mss and snd_cwnd:
        p.append(f" send {_bw(snd_cwnd * snd_mss * 8000000.0 / rtt, opts.numeric)}bps")
    if last_data_sent:
        p.append(f" lastsnd:{last_data_sent}")
    if last_data_recv:
        p.append(f" lastrcv:{last_data_recv}")
    if last_ack_recv:
        p.append(f" lastack:{last_ack_recv}")
    if pacing_rate and pacing_rate != 0xFFFFFFFFFFFFFFFF:
        p.append(f" pacing_rate {_bw(pacing_rate * 8.0, opts.numeric)}bps")
        if max_pacing_rate and max_pacing_rate != 0xFFFFFFFFFFFFFFFF:
            p.append(f"/{_bw(max_pacing_rate * 8.0, opts.numeric)}bps")
    if delivery_rate:
        p.append(f" delivery_rate {_bw(delivery_rate * 8.0, opts.numeric)}bps")
    if delivered:
        p.append(f" delivered:{delivered}")
    if delivered_ce:
        p.append(f" delivered_ce:{delivered_ce}")
    if delivery_rate_app_limited:
        p.append(" app_limited")
    if busy_time:
        p.append(f" busy:{busy_time // 1000}ms")
        if rwnd_limited:
            p.append(f" rwnd_limited:{rwnd_limited // 1000}ms({100.0 * rwnd_limited / busy_time:.1f}%)")
        if sndbuf_limited:
            p.append(f" sndbuf_limited:{sndbuf_limited // 1000}ms({100.0 * sndbuf_limited / busy_time:.1f}%)")
    if unacked:
        p.append(f" unacked:{unacked}")
    if retrans or total_retrans:
        p.append(f" retrans:{retrans}/{total_retrans}")
    if lost:
        p.append(f" lost:{lost}")
    if sacked and int(s.state) != 10:
        p.append(f" sacked:{sacked}")
    if dsack_dups:
        p.append(f" dsack_dups:{dsack_dups}")
    if fackets:
        p.append(f" fackets:{fackets}")
    if reordering != 3:
        p.append(f" reordering:{reordering}")
    if reord_seen:
        p.append(f" reord_seen:{reord_seen}")
    if rcv_rtt:
        p.append(" rcv_rtt:" + _ms(rcv_rtt))
    if rcv_space:
        p.append(f" rcv_space:{rcv_space}")
    if rcv_ssthresh:
        p.append(f" rcv_ssthresh:{rcv_ssthresh}")
    if notsent_bytes:
        p.append(f" notsent:{notsent_bytes}")
    if min_rtt and min_rtt != 0xFFFFFFFF:
        p.append(" minrtt:" + _ms(min_rtt))
    if rcv_ooopack:
        p.append(f" rcv_ooopack:{rcv_ooopack}")
    if snd_wnd:
        p.append(f" snd_wnd:{snd_wnd}")
    return "".join(p)


def detail_text(s: Socket, opts: DetailOptions) -> str:
    """Everything ss prints after ``users:(…)`` in the Process cell."""
    fam = s.family
    out: list[str] = []
    if fam in (AF_INET, AF_INET6):
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
                out.append(f" cgroup:{names.cgroup_path(s.cgroup_id)}")
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
            out.append(f" cgroup:{names.cgroup_path(s.cgroup_id)}")
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
                ino, dev = s.unix_vfs
                major = (dev >> 8) & 0xFFF
                minor = (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
                out.append(f" ino:{ino} dev:{major}/{minor}")
            if s.unix_pending is not None:
                out.append(" peers:" + "".join(f" {i}" for i in s.unix_pending))
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
