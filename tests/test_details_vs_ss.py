"""Details (-e -o -m -i), -s, JSON/CSV, -N/--all-netns, -K and -E, against the
real ss and the real kernel, in private namespaces."""

from __future__ import annotations

import difflib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SOCKSCOPE, Harness
from nsutil import Netns, end_holders, stop_pids

# Values that move between two runs: timer expiries and tcp_info clocks/counters.
_MOVING = re.compile(
    r"(timer:\([a-z]+,)[^,]*(,)|((?:lastsnd|lastrcv|lastack|rto|rtt|ato|minrtt|rcv_rtt|busy|"
    r"pacing_rate|delivery_rate|send|rwnd_limited|sndbuf_limited|segs_out|segs_in|data_segs_out|delivered|bytes_sent|bytes_acked|"
    r"rcv_space|rcv_ssthresh|app_limited)[: ])[^ ]*"
)


def _lines(text: str, mask: bool = False) -> list[str]:
    out = []
    for line in text.splitlines():
        if "tcpdiag:" in line:  # the lister's own diag socket (and its sndbuf)
            continue
        line = " ".join(line.split())
        if mask:
            line = _MOVING.sub(lambda m: (m.group(1) or m.group(3) or "") + "#" + (m.group(2) or ""), line)
        out.append(line)
    return out


def _same(pop: Harness, argv: list[str], mask: bool = False, tries: int = 4) -> None:
    for _ in range(tries):
        a = pop.ss(argv)
        b = pop.sockscope(argv)
        c = pop.ss(argv)
        assert b.returncode == 0 and "Traceback" not in b.stderr, b.stderr
        if _lines(a.stdout, mask) == _lines(c.stdout, mask):
            break
    want, got = _lines(a.stdout, mask), _lines(b.stdout, mask)
    assert got == want, f"ss {argv} (-) vs sockscope (+):\n" + "\n".join(
        difflib.unified_diff(want, got, lineterm="", n=0))


@pytest.mark.parametrize("argv", ["-tane", "-uane", "-xae", "-tlne", "-6tane", "-xame", "-aemO", "-tanmO", "-uanm",
                                  "-tan --tos", "-uan --tos", "-tan --inet-sockopt", "-tanO --inet-sockopt",
                                  "-tanp -T", "-xap -T", "-0ab", "-0abe", "-tan --cgroup"])
def test_details_same_as_ss(fresh_population: Harness, argv: str) -> None:
    _same(fresh_population, argv.split(), mask=True)


@pytest.mark.parametrize("argv", ["-tano", "-tanoe", "-tlio", "-taniO", "-taniemO"])
def test_timers_and_tcp_info_same_as_ss(fresh_population: Harness, argv: str) -> None:
    _same(fresh_population, argv.split(), mask=True)


def test_tcp_info_fields_are_decoded(fresh_population: Harness) -> None:
    r = fresh_population.sockscope(["-tniO", "state", "established"])
    rows = [line for line in r.stdout.splitlines()[1:] if line.strip()]
    assert rows
    for line in rows:
        assert re.search(r" \w+ wscale:\d+,\d+ rto:\d", line), line
        assert " mss:" in line and " cwnd:" in line and " rcv_space:" in line


def test_summary_same_as_ss(fresh_population: Harness) -> None:
    for _ in range(8):  # the TCP totals count machine-wide: retry while other processes move them
        a = fresh_population.ss(["-s"]).stdout.splitlines()
        b = fresh_population.sockscope(["-s"]).stdout.splitlines()
        if b[1:] == a[1:]:
            break
    # "Total" counts sockets machine-wide, including each lister's own: compare the rest.
    assert b[0].startswith("Total: ")
    assert b[1:] == a[1:]


def _ss_summary_numbers(text: str) -> dict[str, int]:
    """ss -s's numbers by the names of ``-s --json``'s fields (all but the machine-wide Total)."""
    tcp = re.search(r"TCP:\s+(\d+) \(estab (\d+), closed (\d+), orphaned (\d+), timewait (\d+)\)", text)
    assert tcp, text
    out = dict(zip(("tcp_total", "tcp_estab", "tcp_closed", "tcp_orphan", "tcp_timewait"), map(int, tcp.groups())))
    for name, field in (("RAW", "raw"), ("UDP", "udp"), ("TCP", "tcp_inuse"), ("FRAG", "frag")):
        row = re.search(rf"^{name}\s+\d+\s+(\d+)\s+(\d+)", text, re.M)
        assert row, text
        out[field + "4"], out[field + "6"] = map(int, row.groups())
    return out


@pytest.mark.parametrize("fmt", ["--json", "--csv"])
def test_summary_as_json_and_csv_same_as_ss(fresh_population: Harness, fmt: str) -> None:
    """-s --json / -s --csv: ss -s's counters, as one object / one row, and nothing else."""
    a = fresh_population.ss(["-s"]).stdout
    b = fresh_population.sockscope(["-s", fmt])
    assert b.returncode == 0 and b.stderr == "", b.stderr
    if fmt == "--json":
        got = json.loads(b.stdout)
    else:
        header, row = b.stdout.splitlines()
        got = dict(zip(header.split(","), map(int, row.split(","))))
    want = _ss_summary_numbers(a)
    # what the kernel counts machine-wide moves with every other test's sockets (the text test above
    # compares those with ss): here the namespace's own counters, and the machine-wide ones' arithmetic
    want = {k: v for k, v in want.items() if k not in ("tcp_total", "tcp_closed", "tcp_orphan")}
    assert {k: got[k] for k in want} == want, b.stdout
    assert want["tcp_inuse4"] > 0 and got["tcp_total"] == got["tcp_alloc"] + got["tcp_timewait"]
    assert got["tcp_closed"] == got["tcp_alloc"] - (got["tcp_inuse4"] + got["tcp_inuse6"] - got["tcp_timewait"])


def test_json_and_csv_carry_the_table(fresh_population: Harness) -> None:
    table = fresh_population.sockscope(["-tanH"]).stdout.splitlines()
    js = json.loads(fresh_population.sockscope(["-tan", "--json"]).stdout)
    assert len(js) == len(table) > 0
    assert {d["state"] for d in js} <= {"LISTEN", "ESTAB", "TIME-WAIT", "CLOSE-WAIT", "FIN-WAIT-2", "SYN-RECV"}
    listen = [d for d in js if d["state"] == "LISTEN"]
    assert all(d["netid"] == "tcp" and isinstance(d["inode"], int) and d["inode"] > 0 for d in listen)
    csv_lines = fresh_population.sockscope(["-tan", "--csv"]).stdout.splitlines()
    assert csv_lines[0].startswith("netid,family,state,recv_q,send_q,local_address,local_port")
    assert len(csv_lines) == len(js) + 1
    js_p = json.loads(fresh_population.sockscope(["-tlnp", "--json"]).stdout)
    assert any(len(d["owners"]) == 2 for d in js_p), "the shared listener has two owners"


def test_netns_by_name_and_all_netns(fresh_population: Harness) -> None:
    name = fresh_population.name
    ours = subprocess.run([*SOCKSCOPE, "-N", name, "-tanH"], capture_output=True, text=True, check=True).stdout
    theirs = subprocess.run(["ss", "-N", name, "-tanH"], capture_output=True, text=True, check=True).stdout
    assert _lines(ours) == _lines(theirs)
    every = subprocess.run([*SOCKSCOPE, "--all-netns", "-tln"], capture_output=True, text=True, check=True).stdout
    head, *rows = every.splitlines()
    assert head.split()[0] == "Netns"
    mine = [r for r in rows if r.split()[0] == name]
    assert len(mine) == len(_lines(fresh_population.ss(["-tlnH"]).stdout))
    bad = subprocess.run([*SOCKSCOPE, "-N", "no-such-ns-xyz", "-t"], capture_output=True, text=True)
    assert bad.returncode != 0 and len(bad.stderr.splitlines()) == 1 and "Traceback" not in bad.stderr


@pytest.mark.parametrize("argv", ["-tlnH --cgroup", "-tanHe", "-uanHe", "-tlnH cgroup /"])
def test_netns_by_name_mounts_as_ss(fresh_population: Harness, argv: str) -> None:
    """-N NAME from the host's namespaces makes ss's mounts: the namespace's /sys over the host's, so
    the cgroup2 mount under it is gone and every cgroup is ``unreachable:ID`` (a filter's
    ``cgroup /`` matches nothing), as in ss -N; the host's own mounts are not touched."""
    name = fresh_population.name
    before = Path("/proc/self/mountinfo").read_text()
    for _ in range(4):  # (a TIME-WAIT may end between the runs)
        theirs = subprocess.run(["ss", "-N", name, *argv.split()], capture_output=True, text=True)
        ours = subprocess.run([*SOCKSCOPE, "-N", name, *argv.split()], capture_output=True, text=True)
        again = subprocess.run(["ss", "-N", name, *argv.split()], capture_output=True, text=True)
        if _lines(theirs.stdout, True) == _lines(again.stdout, True):
            break
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert _lines(ours.stdout, True) == _lines(theirs.stdout, True)
    if "cgroup /" not in argv:
        assert "cgroup:unreachable:" in ours.stdout
    assert Path("/proc/self/mountinfo").read_text() == before


_BOUND = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, sys.argv[1].encode())
s.bind(("0.0.0.0", 5353))
print("READY", flush=True)
sys.stdin.read()
"""


def test_all_netns_names_interfaces_in_their_own_namespace() -> None:
    """An interface index means something only in its namespace: two namespaces whose
    interface 3 has different names each show their own name (as ss run inside each does)."""
    from nsutil import read_line

    spaces = [Netns(), Netns()]
    devs = [f"sc{i}-{ns.name[-4:]}" for i, ns in enumerate(spaces)]
    holders: list[subprocess.Popen[bytes]] = []
    try:
        for ns, dev in zip(spaces, devs):
            # a veth pair: indexes 2 (the peer) and 3 (dev) in a fresh namespace
            subprocess.run(["ip", "-n", ns.name, "link", "add", dev, "type", "veth", "peer", "name", f"p{dev}"],
                           check=True, capture_output=True)
            subprocess.run(["ip", "-n", ns.name, "link", "set", dev, "up"], check=True, capture_output=True)
            h = ns.popen([sys.executable, "-c", _BOUND, dev], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            holders.append(h)
            assert read_line(h, 30).strip() == "READY"
        every = subprocess.run([*SOCKSCOPE, "--all-netns", "-uan"], capture_output=True, text=True, check=True)
        for ns in spaces:
            theirs = _lines(ns.run(["ss", "-uanH"]).stdout)
            assert len(theirs) == 1 and "%sc" in theirs[0], theirs
            mine = [" ".join(r.split()[1:]) for r in every.stdout.splitlines()[1:] if r.split()[0] == ns.name]
            assert _lines("\n".join(mine)) == theirs
        idx = [ns.run(["cat", f"/sys/class/net/{dev}/ifindex"]).stdout.strip() for ns, dev in zip(spaces, devs)]
        assert idx[0] == idx[1], idx  # the same index, two names: the case this test is about
    finally:
        end_holders(holders, spaces)


_ULP = r"""
import socket, struct, sys
keep = []
bgp = socket.socket(); bgp.bind(("127.0.0.1", 179))  # a TCP-MD5 key, as a BGP daemon sets one for its peer
key = struct.pack("=HH4s120x", socket.AF_INET, 0, socket.inet_aton("127.0.0.2"))
bgp.setsockopt(socket.IPPROTO_TCP, 14, key + struct.pack("=BBHI", 0, 0, 6, 0) + b"secret".ljust(80, b"\0"))
bgp.listen(); keep.append(bgp)
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262); l.bind(("127.0.0.1", 5555)); l.listen()  # MPTCP
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262); c.connect(("127.0.0.1", 5555))
a, _ = l.accept(); keep += [l, c, a]
c.sendall(b"x" * 1000); a.recv(100)  # (900 bytes left queued: a subflow's mapping still open)
print("READY", flush=True)
sys.stdin.read()
"""


def _holding(script: str):  # type: ignore[no-untyped-def]
    """A fresh namespace in which ``script`` holds its sockets (until its stdin closes): yields the namespace."""
    from nsutil import read_line

    ns = Netns()
    h = ns.popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert read_line(h, 30).strip() == "READY"
        yield ns
    finally:
        end_holders([h], [ns])


@pytest.fixture(scope="module")
def ulp_sockets():  # type: ignore[no-untyped-def]
    """A namespace holding _ULP's sockets (an MD5-keyed listener, an MPTCP connection)."""
    yield from _holding(_ULP)


@pytest.mark.parametrize("argv", ["-tai", "-tain", "-taie", "-Mai", "-Maie", "-Mi", "-Maim", "-aMie"])
def test_mptcp_md5_and_upper_layer_protocol_same_as_ss(ulp_sockets: Netns, argv: str) -> None:
    """-i of MPTCP sockets is their struct mptcp_info (it was read as a tcp_info: nonsense mss and
    counters); a TCP subflow's text ends with tcp-ulp-mptcp and its flags, tokens and sequence
    numbers, a listener's with tcp-ulp-mptcp, an MD5-keyed one's with md5keys:ADDR/LEN=KEY.  ss 6.1
    writes the key's bytes ahead of its table (straight to stdout, not to its buffer): compared
    with the key taken out of both, and ours is in its cell."""
    ns = ulp_sockets
    for _ in range(4):
        a, b, c = (ns.run(["ss", *argv.split()]), ns.run([*SOCKSCOPE, *argv.split()]), ns.run(["ss", *argv.split()]))
        assert b.returncode == 0 and b.stderr == "", b.stderr
        if _lines(a.stdout, True) == _lines(c.stdout, True):
            break
    want = _lines(a.stdout.removeprefix("secret") if "md5keys" in a.stdout else a.stdout, True)
    got = _lines(b.stdout.replace("/32=secret", "/32="), True)
    assert got == want, f"ss {argv} (-) vs sockscope (+):\n" + "\n".join(
        difflib.unified_diff(want, got, lineterm="", n=0))
    text = b.stdout
    if argv.startswith("-t"):
        assert "md5keys:127.0.0.2/32=secret" in text and text.count("tcp-ulp-mptcp") == 3, text
        assert "tcp-ulp-mptcp flags:Mmec token:0000(id:0)/" in text, text
    else:
        assert "subflows_max:" in text and "write_seq:" in text and "mss:" not in text, text


def test_mptcp_info_md5_and_ulp_in_json(ulp_sockets: Netns) -> None:
    """--json carries an MPTCP socket's mptcp_info, a subflow's ulp and the MD5 keys (no tcp_info for MPTCP)."""
    rows = json.loads(ulp_sockets.run([*SOCKSCOPE, "-taM", "--json"]).stdout)
    mptcp = [r for r in rows if r["netid"] == "mptcp" and r["state"] == "ESTAB"]
    assert len(mptcp) == 2 and all(r["tcp_info"] is None and r["mptcp_info"]["subflows_max"] >= 1 for r in mptcp)
    subflows = [r for r in rows if r["netid"] == "tcp" and r["ulp"] is not None]
    assert len(subflows) == 3 and {r["ulp"]["name"] for r in subflows} == {"mptcp"}
    joined = [r for r in subflows if r["ulp"]["mptcp"] is not None]  # (the listener's has no subflow yet)
    assert len(joined) == 2 and {r["ulp"]["mptcp"]["token_loc"] for r in joined} == {
        r["mptcp_info"]["token"] for r in mptcp}
    keyed = [r for r in rows if r["md5keys"]]
    assert [r["local_port"] for r in keyed] == [179]
    assert keyed[0]["md5keys"] == [{"address": "127.0.0.2", "prefixlen": 32, "key": "secret"}]


_RINGS = r"""
import socket, struct, sys
SOL_PACKET, PACKET_RX_RING, PACKET_TX_RING, PACKET_VERSION, PACKET_FANOUT = 263, 5, 13, 10, 18
keep = []
a = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))  # TPACKET_V2, an rx ring, fanout hash
a.setsockopt(SOL_PACKET, PACKET_VERSION, 1)
a.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack("4I", 4096, 4, 2048, 8))
a.bind(("lo", 0x88B5))
a.setsockopt(SOL_PACKET, PACKET_FANOUT, 7)
b = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x88B6))  # TPACKET_V3, both rings
b.setsockopt(SOL_PACKET, PACKET_VERSION, 2)
b.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack("7I", 8192, 2, 2048, 8, 60, 0, 0))
b.setsockopt(SOL_PACKET, PACKET_TX_RING, struct.pack("7I", 4096, 2, 2048, 4, 0, 0, 0))
b.bind(("lo", 0x88B6))
b.setsockopt(SOL_PACKET, PACKET_FANOUT, 9 | (6 << 16))  # PACKET_FANOUT_CBPF: no name in ss
n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
n.bind((0, 1 | 4))  # a netlink socket of this process (ss gives it no users:(…), also with -p)
keep += [a, b, n]
print("READY", flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def ring_sockets():  # type: ignore[no-untyped-def]
    """A namespace holding _RINGS's sockets (packet sockets with rings and fanout, a netlink socket)."""
    yield from _holding(_RINGS)


@pytest.mark.parametrize("argv", ["-0ae", "-0aeO", "-0aem", "-A packet -ae", "-0ap", "-f netlink -ap", "-ap",
                                  "-f netlink -ape"])
def test_packet_rings_fanout_and_netlink_owners_same_as_ss(ring_sockets: Netns, argv: str) -> None:
    """ss -e shows a packet socket's rings and fanout group (ring_rx(…), ring_tx(…), fanout(id:…,type:…)),
    which were not asked of the kernel; ss -p shows no users:(…) for a netlink socket (its owner is
    in its address, comm/pid), where ours were."""
    ns = ring_sockets
    for _ in range(4):
        a, b, c = (ns.run(["ss", *argv.split()]), ns.run([*SOCKSCOPE, *argv.split()]), ns.run(["ss", *argv.split()]))
        assert b.returncode == 0 and b.stderr == "", b.stderr
        if _lines(a.stdout) == _lines(c.stdout):
            break
    own = re.compile(r"^(nl\s+)?UNCONN.*tcpdiag:")  # the lister's own diag socket: its name differs
    want = [ln for ln in _lines(a.stdout) if not own.match(ln)]
    got = [ln for ln in _lines(b.stdout) if not own.match(ln)]
    assert got == want, f"ss {argv} (-) vs sockscope (+):\n" + "\n".join(difflib.unified_diff(want, got, lineterm="",
                                                                                               n=0))
    if "e" in argv.split()[-1] and not argv.startswith("-f"):
        assert "ring_rx(blk_size:4096,blk_nr:4,frm_size:2048,frm_nr:8" in b.stdout and "fanout(id:7,type:hash)" in \
            b.stdout and "fanout(id:9,type:0x6)" in b.stdout and "ring_tx(" in b.stdout, b.stdout


_PAIRS = r"""
import socket, sys, time
l = socket.socket(); l.bind(("127.0.0.1", 7777)); l.listen()
c = [socket.create_connection(("127.0.0.1", 7777)) for _ in range(3)]
s = [l.accept()[0] for _ in range(3)]
print("READY", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def pairs():  # type: ignore[no-untyped-def]
    ns = Netns()
    proc = None
    try:
        proc = ns.popen([sys.executable, "-c", _PAIRS], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"READY"
        ns.holder = proc  # type: ignore[attr-defined]
        yield ns
    finally:
        if proc is not None:
            stop_pids({proc.pid: None})
        ns.delete()


def test_kill_closes_only_what_the_filter_selects(pairs: Netns) -> None:
    refuse = pairs.run([*SOCKSCOPE, "-t", "-K"])
    assert refuse.returncode == 255 and "give a state or filter" in refuse.stderr
    dry = pairs.run([*SOCKSCOPE, "-tnH", "-K", "--dry-run", "state", "established"])
    assert dry.returncode == 0 and len(dry.stdout.splitlines()) == 6
    assert len(pairs.run(["ss", "-tnH", "state", "established"]).stdout.splitlines()) == 6
    killed = pairs.run([*SOCKSCOPE, "-tnH", "-K", "state", "established"])
    assert killed.returncode == 0, killed.stderr
    assert 3 <= len(killed.stdout.splitlines()) <= 6  # closing one end may take its peer with it
    assert pairs.run(["ss", "-tnH", "state", "established"]).stdout.strip() == ""
    assert len(pairs.run(["ss", "-tlnH"]).stdout.splitlines()) == 1  # the listener is untouched


def test_kill_refuses_selections_that_select_nothing(pairs: Netns, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An empty or blank argument, or a filter file with no expression, is no selection: -K refuses
    (it used to close every established connection)."""
    comments = tmp_path / "comments.txt"
    comments.write_text("# nothing but a comment\n\n   \n")
    for extra in ([""], [" "], ["\t"], ["-F", "/dev/null"], ["-F", str(comments)], ["-F", str(comments), ""]):
        r = pairs.run([*SOCKSCOPE, "-tn", "-K", *extra])
        assert r.returncode == 255 and "give a state or filter" in r.stderr, (extra, r.stdout, r.stderr)
        assert r.stdout == "", extra
    assert len(pairs.run(["ss", "-tnH", "state", "established"]).stdout.splitlines()) == 6
    # a real expression still selects: the dry run shows only the connections it names
    dry = pairs.run([*SOCKSCOPE, "-tnH", "-K", "--dry-run", "dport = :7777"])
    assert dry.returncode == 0 and 1 <= len(dry.stdout.splitlines()) <= 3, dry.stdout


_DEFERRED = r"""
import socket, sys
keep = []
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    d = socket.socket(fam)
    d.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 3600)  # accepted only once data comes
    d.bind((addr, 7778)); d.listen()
    keep += [d] + [socket.create_connection((addr, 7778)) for _ in range(3)]  # nothing is ever sent
l = socket.socket(); l.bind(("127.0.0.1", 7777)); l.listen()
keep += [socket.create_connection(("127.0.0.1", 7777)) for _ in range(2)] + [l.accept()[0] for _ in range(2)]
print("READY", flush=True)
sys.stdin.read()
"""


def test_kill_closes_syn_recv_request_sockets() -> None:
    """-K on SYN-RECV: the request sockets a deferred-accept listener holds (mini-sockets, no inode)
    are closed by their cookie, as ss closes them, and nothing else is: not their clients' ESTAB ends,
    not the full connections beside them, not the listeners."""
    ns = Netns()
    proc = None
    try:
        proc = ns.popen([sys.executable, "-c", _DEFERRED], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"READY"
        for _ in range(50):  # the clients' bare ACKs are in at once on loopback; wait for all six
            before = ns.run(["ss", "-tnH", "state", "syn-recv"]).stdout.splitlines()
            if len(before) == 6:
                break
            time.sleep(0.05)
        assert len(before) == 6 and sum("[::1]:7778" in line for line in before) == 3, before
        estab = ns.run(["ss", "-tnH", "state", "established"]).stdout.splitlines()
        dry = ns.run([*SOCKSCOPE, "-tnH", "-K", "--dry-run", "state", "syn-recv"])
        assert dry.returncode == 0 and sorted(_lines(dry.stdout)) == sorted(_lines("\n".join(before)))
        killed = ns.run([*SOCKSCOPE, "-tnH", "-K", "state", "syn-recv"])
        assert killed.returncode == 0 and killed.stderr == "", killed.stderr
        assert sorted(_lines(killed.stdout)) == sorted(_lines("\n".join(before)))
        assert ns.run(["ss", "-tnH", "state", "syn-recv"]).stdout.strip() == ""
        assert ns.run(["ss", "-tnH", "state", "established"]).stdout.splitlines() == estab  # 6 clients, 2 pairs
        assert len(estab) == 10 and len(ns.run(["ss", "-tlnH"]).stdout.splitlines()) == 3
    finally:
        if proc is not None:
            stop_pids({proc.pid: None})
        ns.delete()


_REUSEPORT = r"""
import socket, sys
keep = []
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    for _ in range(4):  # one group of four listeners a family: the kernel's lookup picks one by hash
        s = socket.socket(fam)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((addr, 7779)); s.listen(); keep.append(s)
l = socket.socket(); l.bind(("127.0.0.1", 7777)); l.listen()
keep += [socket.create_connection(("127.0.0.1", 7777)), l.accept()[0]]
print("READY", flush=True)
sys.stdin.read()
"""


def test_kill_closes_every_listener_of_a_reuseport_group() -> None:
    """SOCK_DESTROY finds a listener by its address, and of a SO_REUSEPORT group the kernel's lookup
    finds the member its hash picks: asked for another, it answers ENOENT, and ss leaves that one
    open.  -K asks again once the picked one is closed: all eight listeners close, and they are
    what it prints; the connection beside them stays."""
    ns = Netns()
    proc = None
    try:
        proc = ns.popen([sys.executable, "-c", _REUSEPORT], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"READY"
        before = ns.run(["ss", "-tnH", "state", "listening", "sport", "=", ":7779"]).stdout.splitlines()
        assert len(before) == 8, before
        killed = ns.run([*SOCKSCOPE, "-tnH", "-K", "state", "listening", "sport", "=", ":7779"])
        assert killed.returncode == 0 and killed.stderr == "", killed.stderr
        assert sorted(_lines(killed.stdout)) == sorted(_lines("\n".join(before)))
        assert ns.run(["ss", "-tlnH", "sport", "=", ":7779"]).stdout.strip() == ""
        assert len(ns.run(["ss", "-tnH", "state", "established"]).stdout.splitlines()) == 2
        assert len(ns.run(["ss", "-tlnH"]).stdout.splitlines()) == 1
    finally:
        if proc is not None:
            stop_pids({proc.pid: None})
        ns.delete()


def test_events_show_destroyed_sockets(pairs: Netns) -> None:
    ev = pairs.popen([*SOCKSCOPE, "-E", "-tn"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)
        pairs.run([*SOCKSCOPE, "-tn", "-K", "state", "established"])
        # the kernel announces a socket's destruction when it is freed: let the holder exit
        holder = pairs.holder  # type: ignore[attr-defined]
        holder.stdin.close()
        holder.wait(timeout=10)
        time.sleep(1.0)
    finally:
        ev.send_signal(signal.SIGINT)
        out, err = ev.communicate(timeout=10)
    assert ev.returncode == 0, err
    lines = out.decode().splitlines()
    assert lines[0].split()[:2] == ["State", "Recv-Q"]
    assert sum(":7777" in line for line in lines[1:]) >= 3


_EVENTS_SIDE_BY_SIDE = """
import json, os, signal, socket, struct, subprocess, sys, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
sockscope, argv = json.loads(sys.argv[1]), json.loads(sys.argv[2])
# ss's stdout is a pipe: line-buffered (stdbuf) so that SIGTERM loses none of it
procs = [subprocess.Popen(cmd + ["-E", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
         for cmd in (["stdbuf", "-oL", "ss"], sockscope)]
deadline = time.monotonic() + 20
def waiting(pid):  # blocked in recv (ss) or poll (sockscope: the socket and the signal pipe)
    where = open(f"/proc/{pid}/wchan").read()
    return "skb_wait" in where or "poll" in where
while time.monotonic() < deadline and not all(waiting(p.pid) for p in procs):
    time.sleep(0.02)
for fam, host, port in ((socket.AF_INET, "127.0.0.1", 8080), (socket.AF_INET, "127.0.0.1", 22),
                        (socket.AF_INET6, "::1", 443), (socket.AF_INET6, "::1", 12345)):
    l = socket.create_server((host, port), family=fam)
    c = socket.create_connection((host, port))
    a, _ = l.accept()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # freed at once
    for s in (c, a, l):
        s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 5353))
u.close()
time.sleep(0.5)
out = []
for p in procs:
    p.send_signal(signal.SIGTERM)
    o, e = p.communicate(timeout=10)
    out.append([o.decode(), e.decode()])
print(json.dumps(out))
"""


@pytest.mark.parametrize("argv", ["-tn", "-tun", "-t", "-tn sport = :22", "-tn not src 0.0.0.0/8", "-tnH dport = :1",
                                  "-tne", "-tnmi", "-tuni -O", "-6tn", "-tn state established", "-tunp"])
def test_events_same_as_ss_events(argv: str) -> None:
    """``-E`` side by side with ``ss -E`` in a private namespace, byte for byte: rows of TCP and
    UDP sockets freed at once, their details (``-e -m -i``: the event carries every attribute), ss's
    userspace filter (no dump, no bytecode: only the expression and the family select; state words
    choose columns), the header laid out with the first event, a UDP socket's last Send-Q as -1."""
    r = subprocess.run(["unshare", "-n", sys.executable, "-c", _EVENTS_SIDE_BY_SIDE, json.dumps(SOCKSCOPE),
                        json.dumps(argv.split())], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (ss_out, ss_err), (ours, err) = json.loads(r.stdout)
    assert err == "", err
    assert ours == ss_out, f"sockscope -E {argv}:\n{ours}\nss:\n{ss_out}"


def test_events_of_other_tables_exit_as_ss() -> None:
    """``-E`` follows TCP and UDP alone: for any other table ss exits 255 (silently); so does
    sockscope, with one line saying why."""
    for argv in (["-E", "-x"], ["-E", "-w"], ["-E", "-A", "packet"]):
        ss = subprocess.run(["ss", *argv], capture_output=True, text=True, timeout=30)
        ours = subprocess.run([*SOCKSCOPE, *argv], capture_output=True, text=True, timeout=30)
        assert ours.returncode == ss.returncode == 255, (argv, ss.returncode, ours.returncode, ours.stderr)
        assert ours.stdout == "" and len(ours.stderr.splitlines()) == 1, ours.stderr


def test_diag_dump_replays_like_ss(fresh_population: Harness, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """-D FILE writes the raw TCP replies; TCPDIAG_FILE replays a capture (ss's or ours) the same way."""
    ours, theirs = tmp_path / "ours.bin", tmp_path / "ss.bin"
    assert fresh_population.sockscope(["-ta", "-D", str(ours)]).returncode == 0
    assert fresh_population.ss(["-ta", "-D", str(theirs)]).returncode == 0
    assert ours.stat().st_size > 1000
    for capture in (ours, theirs):
        env = {"TCPDIAG_FILE": str(capture)}
        a = fresh_population.ss(["-tan"], env=env)
        b = fresh_population.sockscope(["-tan"], env=env)
        assert b.returncode == 0 and _lines(b.stdout) == _lines(a.stdout) and len(_lines(a.stdout)) > 5


def test_diag_dump_takes_no_expression_as_ss(fresh_population: Harness, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """ss writes the -D dump before it reads the filter expression: the dump is every socket of
    the states asked for, whatever expression follows (one that does not parse too, exit 0)."""
    def replay(capture: str) -> list[str]:  # (TIME-WAIT sockets may go between two captures)
        out = fresh_population.ss(["-tan"], env={"TCPDIAG_FILE": capture}).stdout
        return [line for line in _lines(out) if not line.startswith("TIME-WAIT")]

    assert fresh_population.ss(["-ta", "-D", str(tmp_path / "all.bin")]).returncode == 0
    everything = replay(str(tmp_path / "all.bin"))
    assert len(everything) > 5
    for i, expr in enumerate((["sport", "=", ":22"], ["garbage", "("])):
        for tool in (fresh_population.ss, fresh_population.sockscope):
            capture = tmp_path / f"{i}-{tool.__name__}.bin"
            r = tool(["-ta", "-D", str(capture), *expr])
            assert r.returncode == 0 and r.stderr == "", (tool.__name__, expr, r.stderr)
            assert replay(str(capture)) == everything, (tool.__name__, expr)


def test_replay_is_ss_replay(fresh_population: Harness, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """TCPDIAG_FILE as ss replays it: only the filter expression selects (not -l, state words,
    -4/-6 or -f); a truncated capture keeps its whole messages and says so, exit 0; a missing
    file is reported, exit 0 — stdout, stderr and status the same as ss's."""
    capture = tmp_path / "all.bin"
    assert fresh_population.ss(["-ta", "-D", str(capture)]).returncode == 0
    blob = capture.read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(blob[: len(blob) // 2 + 7])  # ends inside a message
    cases = [
        (capture, ["-tan"]), (capture, ["-tln"]), (capture, ["-tan", "-4"]), (capture, ["-tan", "-6"]),
        (capture, ["-tn", "state", "listening"]), (capture, ["-tan", "dport", "=", ":22"]),
        (capture, ["-tan", "sport", ">", ":1024"]), (capture, ["-tn", "-f", "inet6", "state", "established"]),
        (cut, ["-tan"]), (cut, ["-tln"]), (tmp_path / "missing.bin", ["-tan"]),
    ]
    differ = []
    for path, argv in cases:
        env = {"TCPDIAG_FILE": str(path)}
        a, b = fresh_population.ss(argv, env=env), fresh_population.sockscope(argv, env=env)
        if (b.returncode, _lines(b.stdout), b.stderr) != (a.returncode, _lines(a.stdout), a.stderr):
            differ.append(f"{path.name} {argv}: ss {a.returncode} {a.stderr!r} vs {b.returncode} {b.stderr!r}\n"
                          f"{a.stdout}\n---\n{b.stdout}")
    assert not differ, "\n".join(differ)
    # the truncated capture still lists the whole messages before the cut
    assert len(_lines(fresh_population.sockscope(["-tan"], env={"TCPDIAG_FILE": str(cut)}).stdout)) > 3
