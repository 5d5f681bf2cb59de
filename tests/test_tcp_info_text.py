"""-i's text (ss's tcp_stats_print) from tcp_info columns: every field's words and order, made for many
rows at once (render.tcp_info.texts) and for one record (render.details.tcp_info_text), against texts the
earlier per-socket implementation made (which tests/test_details_vs_ss.py checks against ss itself)."""

from __future__ import annotations

import pytest

from sockscope.kernel.tcpinfo import TcpInfo
from sockscope.records import Endpoint, State, make_socket
from sockscope.render.details import DetailOptions, tcp_info_text
from sockscope.render.tcp_info import texts


def mk(**kw: object) -> TcpInfo:
    v = dict.fromkeys(TcpInfo._fields, 0)
    v.update(kw)
    return TcpInfo(**v)  # type: ignore[arg-type]


ROWS: list[tuple] = [
    (dict(options=7, snd_wscale=7, rcv_wscale=9, rto=204000, rtt=1234, rttvar=617, ato=40000, snd_mss=32768, pmtu=65535,
          rcv_mss=536, advmss=65483, snd_cwnd=10, snd_ssthresh=0x7FFFFFFF, bytes_sent=120, bytes_acked=121,
          bytes_received=100, segs_out=4, segs_in=3, data_segs_out=1, data_segs_in=1, last_data_sent=10,
          last_data_recv=20, last_ack_recv=20, pacing_rate=530000000, max_pacing_rate=0xFFFFFFFFFFFFFFFF,
          delivery_rate=10000000, delivered=2, delivery_rate_app_limited=True, reordering=3, rcv_space=65483,
          rcv_ssthresh=65483, min_rtt=50, snd_wnd=65536), "cubic", None, None, 1),
    (dict(options=2 | 8 | 32, rto=3000000, backoff=2, snd_ssthresh=7, busy_time=5000, rwnd_limited=1000,
          sndbuf_limited=2000, unacked=3, retrans=0, total_retrans=4, lost=1, sacked=2, dsack_dups=1, fackets=1,
          reordering=5, reord_seen=2, rcv_rtt=1500, notsent_bytes=9, min_rtt=0xFFFFFFFF, rcv_ooopack=3,
          pacing_rate=1234, max_pacing_rate=5678, bytes_retrans=7, delivered_ce=1), "bbr", (1, 2, 3, 4, 5),
     (1000, 2000, 256, 512), 10),
    (dict(), None, (0, 0, 0, 0, 0), (5, 0, 0, 0), 6),
]

#: (show the option words, numeric) -> each row's text
EXPECTED = {
    (False, False): [' cubic wscale:7,9 rto:204 rtt:1.234/0.617 ato:40 mss:32768 pmtu:65535 rcvmss:536 advmss:65483 cwnd:10 bytes_sent:120 bytes_acked:121 bytes_received:100 segs_out:4 segs_in:3 data_segs_out:1 data_segs_in:1 send 2.12Gbps lastsnd:10 lastrcv:20 lastack:20 pacing_rate 4.24Gbps delivery_rate 80Mbps delivered:2 app_limited rcv_space:65483 rcv_ssthresh:65483 minrtt:0.05 snd_wnd:65536', ' bbr backoff:2 ssthresh:7 bytes_retrans:7 dctcp:(ce_state:2,alpha:3,ab_ecn:4,ab_tot:5) bbr:(bw:8kbps,mrtt:2,pacing_gain:1,cwnd_gain:2) pacing_rate 9.87kbps/45.4kbps delivered_ce:1 busy:5ms rwnd_limited:1ms(20.0%) sndbuf_limited:2ms(40.0%) unacked:3 retrans:0/4 lost:1 dsack_dups:1 fackets:1 reordering:5 reord_seen:2 rcv_rtt:1.5 notsent:9 rcv_ooopack:3', ' dctcp:fallback_mode bbr:(bw:40bps,mrtt:0) reordering:0'], (False, True): [' cubic wscale:7,9 rto:204 rtt:1.234/0.617 ato:40 mss:32768 pmtu:65535 rcvmss:536 advmss:65483 cwnd:10 bytes_sent:120 bytes_acked:121 bytes_received:100 segs_out:4 segs_in:3 data_segs_out:1 data_segs_in:1 send 2124343598bps lastsnd:10 lastrcv:20 lastack:20 pacing_rate 4240000000bps delivery_rate 80000000bps delivered:2 app_limited rcv_space:65483 rcv_ssthresh:65483 minrtt:0.05 snd_wnd:65536', ' bbr backoff:2 ssthresh:7 bytes_retrans:7 dctcp:(ce_state:2,alpha:3,ab_ecn:4,ab_tot:5) bbr:(bw:8000bps,mrtt:2,pacing_gain:1,cwnd_gain:2) pacing_rate 9872bps/45424bps delivered_ce:1 busy:5ms rwnd_limited:1ms(20.0%) sndbuf_limited:2ms(40.0%) unacked:3 retrans:0/4 lost:1 dsack_dups:1 fackets:1 reordering:5 reord_seen:2 rcv_rtt:1.5 notsent:9 rcv_ooopack:3', ' dctcp:fallback_mode bbr:(bw:40bps,mrtt:0) reordering:0'], (True, False): [' ts sack cubic wscale:7,9 rto:204 rtt:1.234/0.617 ato:40 mss:32768 pmtu:65535 rcvmss:536 advmss:65483 cwnd:10 bytes_sent:120 bytes_acked:121 bytes_received:100 segs_out:4 segs_in:3 data_segs_out:1 data_segs_in:1 send 2.12Gbps lastsnd:10 lastrcv:20 lastack:20 pacing_rate 4.24Gbps delivery_rate 80Mbps delivered:2 app_limited rcv_space:65483 rcv_ssthresh:65483 minrtt:0.05 snd_wnd:65536', ' sack ecn fastopen bbr backoff:2 ssthresh:7 bytes_retrans:7 dctcp:(ce_state:2,alpha:3,ab_ecn:4,ab_tot:5) bbr:(bw:8kbps,mrtt:2,pacing_gain:1,cwnd_gain:2) pacing_rate 9.87kbps/45.4kbps delivered_ce:1 busy:5ms rwnd_limited:1ms(20.0%) sndbuf_limited:2ms(40.0%) unacked:3 retrans:0/4 lost:1 dsack_dups:1 fackets:1 reordering:5 reord_seen:2 rcv_rtt:1.5 notsent:9 rcv_ooopack:3', ' dctcp:fallback_mode bbr:(bw:40bps,mrtt:0) reordering:0'], (True, True): [' ts sack cubic wscale:7,9 rto:204 rtt:1.234/0.617 ato:40 mss:32768 pmtu:65535 rcvmss:536 advmss:65483 cwnd:10 bytes_sent:120 bytes_acked:121 bytes_received:100 segs_out:4 segs_in:3 data_segs_out:1 data_segs_in:1 send 2124343598bps lastsnd:10 lastrcv:20 lastack:20 pacing_rate 4240000000bps delivery_rate 80000000bps delivered:2 app_limited rcv_space:65483 rcv_ssthresh:65483 minrtt:0.05 snd_wnd:65536', ' sack ecn fastopen bbr backoff:2 ssthresh:7 bytes_retrans:7 dctcp:(ce_state:2,alpha:3,ab_ecn:4,ab_tot:5) bbr:(bw:8000bps,mrtt:2,pacing_gain:1,cwnd_gain:2) pacing_rate 9872bps/45424bps delivered_ce:1 busy:5ms rwnd_limited:1ms(20.0%) sndbuf_limited:2ms(40.0%) unacked:3 retrans:0/4 lost:1 dsack_dups:1 fackets:1 reordering:5 reord_seen:2 rcv_rtt:1.5 notsent:9 rcv_ooopack:3', ' dctcp:fallback_mode bbr:(bw:40bps,mrtt:0) reordering:0'],  # noqa: E501
}


@pytest.mark.parametrize("flags,numeric", sorted(EXPECTED))
def test_texts_of_many_rows(flags: bool, numeric: bool) -> None:
    """Rows with tcp_info between rows without (which get "") keep their places."""
    infos = [mk(**r[0]) for r in ROWS]
    congs, dctcps, bbrs, states = ([r[i] for r in ROWS] for i in (1, 2, 3, 4))
    want = EXPECTED[(flags, numeric)]
    assert texts(infos, congs, bbrs, dctcps, states, flags, numeric) == want
    gap = [None, infos[0], None, infos[1], infos[2], None]
    got = texts(gap, [None, *congs[:1], None, *congs[1:], None], [None, *bbrs[:1], None, *bbrs[1:], None],
                [None, *dctcps[:1], None, *dctcps[1:], None], [1, *states[:1], 1, *states[1:], 1], flags, numeric)
    assert got == ["", want[0], "", want[1], want[2], ""]


@pytest.mark.parametrize("flags,numeric", sorted(EXPECTED))
def test_text_of_one_record(flags: bool, numeric: bool) -> None:
    opts = DetailOptions(timers=flags, numeric=numeric, info=True)
    for r, want in zip(ROWS, EXPECTED[(flags, numeric)]):
        s = make_socket("tcp", 2, State(r[4]), 0, 0, Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2), 7, 0, 1, 0,
                        None, None, None, (), None, None, tcp_info=mk(**r[0]), cong=r[1], dctcp_info=r[2],
                        bbr_info=r[3])
        assert tcp_info_text(s, opts) == want
    none = make_socket("tcp", 2, State(1), 0, 0, Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2), 7, 0, 1, 0,
                       None, None, None, (), None, None)
    assert tcp_info_text(none, opts) == ""


@pytest.mark.parametrize("flags,numeric", sorted(EXPECTED))
def test_many_rows_of_few_values(flags: bool, numeric: bool) -> None:
    """A column of few distinct values takes its texts from a cache (and an all-zero one adds
    nothing): the same texts, row for row."""
    rows = ROWS * 30
    got = texts([mk(**r[0]) for r in rows], [r[1] for r in rows], [r[3] for r in rows], [r[2] for r in rows],
                [r[4] for r in rows], flags, numeric)
    assert got == EXPECTED[(flags, numeric)] * 30
