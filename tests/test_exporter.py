"""``sockscope exporter`` against the real kernel, in private network namespaces.

* The exposition parses with prometheus_client's own parser, every family has
  HELP text, names follow the conventions, and no series is repeated.
* On the static population of the ``population`` fixture (tests/population.py)
  ``sockscope_sockets`` equals the per-(family, netid, state) counts of ``ss``,
  the listener gauges equal ``ss -l``'s Recv-Q/Send-Q per address, and the
  ``sockscope_sockstat_*`` gauges equal ``ss -s`` and ``sockscope -s``.
* On populations built here (a holder process started in a fresh netns): the
  TCP byte sums equal the bytes really moved (and the core's tcp_info decoder),
  1,000 listeners stay within ``--max-listeners`` + "other" with exact sums,
  concurrent HTTP scrapes agree, a failing part of a scrape is an error metric
  (the server keeps serving), and ``--all-netns`` labels every namespace of a
  sandbox (private mount + pid + net namespaces, so only ours are seen).

Every process is ended by pid and every namespace deleted in ``finally``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

import sockscope
from conftest import Harness
from nsutil import Netns, read_line, stop_pids
from ssparse import parse

prometheus_client = pytest.importorskip("prometheus_client", reason="pip install -e '.[dev]' installs it")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

SOCKSCOPE = [sys.executable, "-m", "sockscope"]
EXPORTER = [*SOCKSCOPE, "exporter"]
SRC = str(Path(__file__).resolve().parent.parent / "src")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --------------------------------------------------------------------------------------------
# Parsing helpers


def parse_exposition(text: str) -> tuple[list[Any], Samples]:
    """Families and samples, parsed by prometheus_client; a repeated series fails."""
    fams = list(text_string_to_metric_families(text))
    samples: Samples = {}
    for fam in fams:
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"series repeated: {s.name}{s.labels}"
            samples[key] = s.value
    return fams, samples


def series(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return {lab: v for (n, lab), v in samples.items() if n == name and want <= set(lab)}


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels}"
    return samples[key]


def socket_counts(samples: Samples) -> dict[tuple[str, str, str], int]:
    """sockscope_sockets as {(family, protocol, state): n}, zero series left out."""
    out = {}
    for lab, v in series(samples, "sockscope_sockets").items():
        d = dict(lab)
        if v:
            out[(d["family"], d["protocol"], d["state"])] = int(v)
    return out


_NETID_FAMILY = {"u_str": "unix", "u_dgr": "unix", "u_seq": "unix", "nl": "netlink",
                 "p_raw": "packet", "p_dgr": "packet"}


def ss_counts(run: Any) -> dict[tuple[str, str, str], int]:
    """ss's rows counted by (family, netid, state), from four multi-table listings."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for argv, family in ((["-4", "-t", "-u", "-w"], "inet"), (["-6", "-t", "-u", "-w"], "inet6"),
                         (["-x"], None), (["-A", "netlink,packet"], None)):
        r = run(["ss", "-an", *argv])
        assert r.returncode == 0, r.stderr
        for row in parse(r.stdout).rows:
            assert row.netid is not None and row.state is not None
            counts[(family or _NETID_FAMILY[row.netid], row.netid, row.state)] += 1
    return dict(counts)


def parse_ss_s(text: str) -> dict[str, int]:
    """``ss -s`` as the exporter's summary metric names (``name`` or ``name/family``)."""
    m = re.search(r"Total: (\d+)\nTCP:\s+(\d+) \(estab (\d+), closed (\d+), orphaned (\d+), timewait (\d+)\)",
                  text)
    assert m, text
    out = dict(zip(("sockets_used", "tcp_sockets", "tcp_established", "tcp_closed", "tcp_orphaned",
                    "tcp_timewait"), map(int, m.groups())))
    for row, name in (("RAW", "raw_inuse"), ("UDP", "udp_inuse"), ("TCP", "tcp_inuse"), ("FRAG", "frag_inuse")):
        r = re.search(rf"^{row}\s+(\d+)\s+(\d+)\s+(\d+)", text, re.M)
        assert r, text
        out[f"{name}/inet"], out[f"{name}/inet6"] = int(r.group(2)), int(r.group(3))
    return out


def summary_of(samples: Samples, netns: str | None = None) -> dict[str, int]:
    """The exporter's summary gauges, named as :func:`parse_ss_s` names them."""
    out = {}
    extra = {"netns": netns} if netns is not None else {}
    for name in ("sockets_used", "tcp_sockets", "tcp_established", "tcp_closed", "tcp_orphaned", "tcp_timewait"):
        out[name] = int(value(samples, f"sockscope_sockstat_{name}", **extra))
    for name in ("raw_inuse", "udp_inuse", "tcp_inuse", "frag_inuse"):
        for fam in ("inet", "inet6"):
            out[f"{name}/{fam}"] = int(value(samples, f"sockscope_sockstat_{name}", family=fam, **extra))
    return out


def listeners_of(samples: Samples, protocol: str, netns: str | None = None) -> dict[str, tuple[int, int]]:
    """{label: (accept_queue, backlog)} of one protocol."""
    extra = {"netns": netns} if netns is not None else {}
    out = {}
    for lab, v in series(samples, "sockscope_listener_accept_queue", protocol=protocol, **extra).items():
        d = dict(lab)
        bl = value(samples, "sockscope_listener_backlog", **d)
        out[d["listener"]] = (int(v), int(bl))
    return out


# --------------------------------------------------------------------------------------------
# A holder: a known set of sockets in a fresh netns

HOLDER = r'''
import json, os, resource, socket, sys
spec = json.loads(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
keep = []
info = {"pid": os.getpid(), "listeners": {}}
def listener(addr, port, backlog):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(backlog); keep.append(s)
    return s
for addr, port, backlog, pending in spec.get("listeners", []):
    listener(addr, port, backlog)
    for _ in range(pending):  # completed handshakes nobody accepts: the accept queue
        keep.append(socket.create_connection((addr, port)))
first, count, backlog = spec.get("bulk", [0, 0, 0])
for port in range(first, first + count):
    listener("127.0.0.1", port, backlog)
if spec.get("transfer"):
    n, up, down = spec["transfer"]
    lst = listener("127.0.0.1", 39000, 64)
    total = 0
    for i in range(n):
        c = socket.create_connection(("127.0.0.1", 39000)); s, _ = lst.accept()
        c.sendall(b"u" * up); s.sendall(b"d" * down)
        for sock, want in ((s, up), (c, down)):
            got = 0
            while got < want:
                got += len(sock.recv(65536))
        keep += [c, s]
    lst.close(); keep.remove(lst)
print("READY " + json.dumps(info), flush=True)
sys.stdin.read()  # hold until the test closes our stdin
'''


class Holder:
    """``HOLDER`` running in a fresh netns; close() ends it by pid and deletes the netns."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.netns = Netns(prefix="sockscope-exp-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: dict[int, str | None] = {}
        try:
            self.proc = self.netns.popen([sys.executable, "-c", HOLDER, json.dumps(spec)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self.pids[self.proc.pid] = None
            line = read_line(self.proc, 60)
            assert line.startswith("READY "), line
            self.info = json.loads(line[6:])
        except BaseException:
            self.close()
            raise

    def run(self, argv: list[str], timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.netns.run(argv, timeout=timeout, **kw)

    def exporter_once(self, *args: str) -> tuple[subprocess.CompletedProcess[str], Samples]:
        r = self.run([*EXPORTER, "--once", *args])
        _, samples = parse_exposition(r.stdout)
        return r, samples

    def close(self) -> None:
        try:
            if self.proc is not None:
                if self.proc.stdin is not None:
                    try:
                        self.proc.stdin.close()
                    except OSError:
                        pass
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    stop_pids(self.pids)
                    self.proc.wait(timeout=5)
                if self.proc.stdout is not None:
                    self.proc.stdout.close()
        finally:
            self.netns.delete()
        assert not self.netns.exists()


class Served:
    """``sockscope exporter`` serving inside ``netns``; stop() sends SIGTERM by pid and returns the status."""

    def __init__(self, netns: Netns, *args: str) -> None:
        self.proc = netns.popen([*EXPORTER, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.stderr = ""
        try:
            self.banner = self.read_err(30)
            m = re.search(r"serving (https?://\S+)", self.banner)
            assert m, self.banner
            self.url = m.group(1)
        except BaseException:
            self.stop()
            raise

    def read_err(self, timeout: float) -> str:
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        os.set_blocking(fd, True)
        # nsutil.read_line reads stdout; read stderr the same way
        buf = b""
        deadline = time.monotonic() + timeout
        import select

        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line on stderr within {timeout} s: {buf!r}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1)
                if not chunk:
                    raise EOFError(f"exporter exited ({self.proc.poll()}): {buf!r}")
                buf += chunk
        return buf.decode()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        assert self.proc.stderr is not None
        self.stderr += self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        return self.proc.returncode


#: Run inside the netns: N concurrent GETs of one URL; prints [[status, content-type, body], ...].
FETCH = r'''
import json, sys, threading, urllib.request, urllib.error
url, n = sys.argv[1], int(sys.argv[2])
out = [None] * n
start = threading.Barrier(n)
def get(i):
    start.wait()
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            out[i] = [r.status, r.headers.get("Content-Type"), r.read().decode()]
    except urllib.error.HTTPError as e:
        out[i] = [e.code, e.headers.get("Content-Type"), e.read().decode()]
ts = [threading.Thread(target=get, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(out))
'''


def fetch(netns: Netns, url: str, n: int = 1) -> list[list[Any]]:
    r = netns.run([sys.executable, "-c", FETCH, url, str(n)], timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def holder_factory() -> Iterator[Any]:
    made: list[Holder] = []

    def make(spec: dict[str, Any]) -> Holder:
        h = Holder(spec)
        made.append(h)
        return h

    try:
        yield make
    finally:
        for h in made:
            h.close()


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the exporter tests need root (ip netns add, setns)", pytrace=False)


# --------------------------------------------------------------------------------------------
# The exposition itself


def test_exposition_parses_with_help_and_conventions(fresh_population: Harness) -> None:
    r = fresh_population.run([*EXPORTER, "--once"])
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    fams, samples = parse_exposition(r.stdout)
    ours = [f for f in fams if f.name.startswith("sockscope_")]
    assert len(ours) >= 20
    for fam in ours:
        assert fam.documentation.strip(), f"{fam.name} has no HELP"
        assert fam.type in ("gauge", "counter"), fam.name
        if fam.type == "counter":
            assert all(s.name.endswith("_total") for s in fam.samples), fam.name
        else:
            assert not fam.name.endswith("_total"), fam.name
        for s in fam.samples:
            assert "inode" not in s.labels and "peer" not in s.labels
    # every line of ours is a HELP, a TYPE or a sample that parsed
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("sockscope_")]
    assert len(lines) == sum(1 for (n, _) in samples if n.startswith("sockscope_"))
    assert value(samples, "sockscope_scrape_success") == 1
    assert 0 < value(samples, "sockscope_scrape_duration_seconds") < 5
    # every source has its error counter from the first scrape, at 0
    errors = {dict(lab)["source"]: v for lab, v in series(samples, "sockscope_scrape_errors_total").items()}
    assert errors == dict.fromkeys(("tcp", "udp", "raw", "unix", "netlink", "packet", "summary", "netns",
                                    "collector"), 0)
    (build,) = series(samples, "sockscope_build_info").items()
    assert build[1] == 1 and dict(build[0])["version"] == sockscope.__version__
    # process_* from prometheus_client ride along
    assert any(n == "process_cpu_seconds_total" for (n, _) in samples)


def test_importing_does_not_import_prometheus_client() -> None:
    code = ("import sys, sockscope, sockscope.cli, sockscope.exporter, sockscope.cli.exporter;"
            "print('prometheus_client' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_without_the_extra_it_says_how_to_install() -> None:
    # -S: no site-packages (where the venv keeps prometheus_client); sockscope from src/
    env = {**os.environ, "PYTHONPATH": SRC}
    r = subprocess.run([sys.executable, "-S", "-m", "sockscope", "exporter", "--once"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == ("sockscope: the exporter needs prometheus_client: pip install '.[exporter]' "
                        "in the sockscope checkout\n")


# --------------------------------------------------------------------------------------------
# Values against ss on the shared population


def test_socket_counts_equal_ss(fresh_population: Harness) -> None:
    h = fresh_population
    for _attempt in range(5):
        before = ss_counts(h.run)
        r = h.run([*EXPORTER, "--once"])
        after = ss_counts(h.run)
        if before == after:  # nothing moved (a TIME-WAIT socket may expire)
            break
    else:
        pytest.fail("the population kept changing under ss")
    assert r.returncode == 0, r.stderr
    _, samples = parse_exposition(r.stdout)
    got = socket_counts(samples)
    assert got == before
    # sanity: the population really has several states and tables
    assert {k[1] for k in got} >= {"tcp", "udp", "u_str", "u_dgr", "u_seq", "nl"}
    assert {k[2] for k in got if k[1] == "tcp"} >= {"ESTAB", "LISTEN", "TIME-WAIT", "CLOSE-WAIT", "FIN-WAIT-2"}
    # zero series for every state a table can hold: a bounded, stable set
    assert value(samples, "sockscope_sockets", family="inet6", protocol="tcp", state="CLOSING") == 0


def test_listeners_equal_ss(fresh_population: Harness) -> None:
    h = fresh_population
    r = h.run([*EXPORTER, "--once", "--max-listeners", "1000"])
    assert r.returncode == 0, r.stderr
    _, samples = parse_exposition(r.stdout)
    for proto, ss_args in (("tcp", ["-ltn"]), ("u_str", ["-ln", "-A", "unix_stream"]),
                           ("u_seq", ["-ln", "-A", "unix_seqpacket"])):
        # ss -l also lists UNCONN sockets: keep the LISTEN rows
        rows = [row for row in parse(h.ss(ss_args).stdout).rows if row.state == "LISTEN"]
        want: dict[str, tuple[int, int]] = {}
        for row in rows:
            label = row.local_addr if proto != "tcp" else f"{row.local_addr}:{row.local_port}"
            q = want.get(label, (0, 0))
            want[label] = (q[0] + int(row.recv_q), q[1] + int(row.send_q))
        assert listeners_of(samples, proto) == want, proto
        assert rows, f"the population has {proto} listeners"
    tcp = listeners_of(samples, "tcp")
    # the labels are ss's: dual-stack, v6only, device-bound; the accept queue of 5001 holds 2 of 7
    assert {"*:8443", "[::]:9001", "127.0.0.1%lo:9999", "[::1]%lo:4443"} <= set(tcp)
    assert tcp["127.0.0.1:5001"] == (2, 7)


def test_summary_equals_ss_s_and_sockscope_s(fresh_population: Harness) -> None:
    h = fresh_population
    # tcp alloc (hence total and closed) is machine-wide: other tests move it; retry until still
    for _attempt in range(10):
        ss1 = h.ss(["-s"]).stdout
        ours = h.sockscope(["-s"]).stdout
        r = h.run([*EXPORTER, "--once"])
        ss2 = h.ss(["-s"]).stdout
        _, samples = parse_exposition(r.stdout)
        got = summary_of(samples)
        if ss1 == ss2 and parse_ss_s(ss1) == got:
            break
    assert r.returncode == 0, r.stderr
    # "sockets: used" counts every socket of the machine, the reading tool's own
    # and those whose release is still in flight after a process exits: two
    # tools reading one after the other can differ by one or two there.  Every
    # other counter must be equal.
    want, mine = parse_ss_s(ss1), parse_ss_s(ours)
    for d in (got, want, mine):
        assert d["sockets_used"] > 0
    assert abs(got.pop("sockets_used") - want["sockets_used"]) <= 2
    assert abs(mine.pop("sockets_used") - want.pop("sockets_used")) <= 2
    assert got == want
    assert mine == want
    assert got["tcp_inuse/inet"] > 0 and got["tcp_timewait"] > 0
    assert value(samples, "sockscope_sockstat_tcp_allocated") == got["tcp_sockets"] - got["tcp_timewait"]


# --------------------------------------------------------------------------------------------
# Populations built here


def test_tcp_byte_sums_equal_the_bytes_moved(holder_factory: Any) -> None:
    _require_root()
    n, up, down = 20, 70_000, 5_000
    h = holder_factory({"transfer": [n, up, down]})
    r, samples = h.exporter_once()
    assert r.returncode == 0, r.stderr
    moved = n * (up + down)
    assert value(samples, "sockscope_tcp_received_bytes") == moved
    retrans = value(samples, "sockscope_tcp_retransmitted_bytes")
    assert value(samples, "sockscope_tcp_sent_bytes") - retrans == moved
    assert value(samples, "sockscope_sockets", family="inet", protocol="tcp", state="ESTAB") == 2 * n
    # the exporter's own offsets into tcp_info agree with the core decoder's
    code = ("import json, sockscope; t=[s.tcp_info for s in sockscope.sockets('tcp', details={'info'}) "
            "if s.tcp_info]; print(json.dumps([sum(i.bytes_received for i in t), sum(i.bytes_sent for i in t), "
            "sum(i.bytes_retrans for i in t), sum(i.total_retrans for i in t)]))")
    core = json.loads(h.run([sys.executable, "-c", code]).stdout)
    assert core[0] == moved
    assert core == [value(samples, "sockscope_tcp_received_bytes"), value(samples, "sockscope_tcp_sent_bytes"),
                    retrans, value(samples, "sockscope_tcp_retransmitted_segments")]


def test_cardinality_bound_with_1000_listeners(holder_factory: Any) -> None:
    _require_root()
    # 1,000 idle listeners (backlog 5) and two with connections waiting to be accepted
    h = holder_factory({"bulk": [30000, 1000, 5],
                        "listeners": [["127.0.0.1", 31000, 4, 3], ["127.0.0.1", 31001, 8, 1]]})
    r, samples = h.exporter_once("--max-listeners", "10")
    assert r.returncode == 0, r.stderr
    tcp = listeners_of(samples, "tcp")
    assert len(tcp) == 11 and "other" in tcp
    # the queued listeners are kept (fullest first), then the lowest ports
    assert tcp["127.0.0.1:31000"] == (3, 4)
    assert tcp["127.0.0.1:31001"] == (1, 8)
    assert {f"127.0.0.1:{p}" for p in range(30000, 30008)} <= set(tcp)
    # "other" sums exactly the 992 listeners folded into it
    assert tcp["other"] == (0, 992 * 5)
    assert value(samples, "sockscope_sockets", family="inet", protocol="tcp", state="LISTEN") == 1002
    ours = [k for k in samples if k[0].startswith("sockscope_")]
    assert len(ours) < 100, len(ours)
    # the default keeps 100 and folds the rest
    r, samples = h.exporter_once()
    tcp = listeners_of(samples, "tcp")
    assert len(tcp) == 101
    assert sum(q for q, _ in tcp.values()) == 4
    assert sum(b for _, b in tcp.values()) == 1000 * 5 + 4 + 8
    # 0 keeps none: one "other" with everything
    r, samples = h.exporter_once("--max-listeners", "0")
    assert listeners_of(samples, "tcp") == {"other": (4, 1000 * 5 + 4 + 8)}


def test_concurrent_http_scrapes_agree(holder_factory: Any) -> None:
    _require_root()
    h = holder_factory({"listeners": [["127.0.0.1", 31000, 4, 2]], "bulk": [30000, 50, 3]})
    srv = Served(h.netns, "--listen", "127.0.0.1:9466")
    try:
        assert srv.url == "http://127.0.0.1:9466/metrics"
        results = fetch(h.netns, srv.url, 16)
        assert len(results) == 16
        values = set()
        for status, ctype, body in results:
            assert status == 200
            assert ctype.startswith("text/plain; version=0.0.4")
            _, samples = parse_exposition(body)
            assert value(samples, "sockscope_scrape_success") == 1
            values.add((value(samples, "sockscope_sockets", family="inet", protocol="tcp", state="LISTEN"),
                        listeners_of(samples, "tcp")["127.0.0.1:31000"]))
        assert values == {(52.0, (2, 4))}  # 51 of ours + the exporter's own listener
        (status, _, body), = fetch(h.netns, "http://127.0.0.1:9466/")
        assert status == 200 and "/metrics" in body
        (status, _, _), = fetch(h.netns, "http://127.0.0.1:9466/nope")
        assert status == 404
    finally:
        rc = srv.stop()
    assert rc == 0, srv.stderr
    assert "Traceback" not in srv.stderr


def test_a_failing_collection_is_an_error_metric(holder_factory: Any, tmp_path: Path) -> None:
    _require_root()
    h = holder_factory({"bulk": [30000, 3, 5]})
    missing = str(tmp_path / "no-proc-here")
    srv = Served(h.netns, "--listen", "[::1]:9466", "--proc", missing)
    try:
        assert srv.url == "http://[::1]:9466/metrics"
        for n in (1, 2):
            (status, _, body), = fetch(h.netns, srv.url)
            assert status == 200
            _, samples = parse_exposition(body)
            assert value(samples, "sockscope_scrape_success") == 0
            assert value(samples, "sockscope_scrape_errors_total", source="summary") == n
            assert not series(samples, "sockscope_sockstat_tcp_timewait")
            # the rest of the scrape is still there and right
            assert value(samples, "sockscope_sockets", family="inet", protocol="tcp", state="LISTEN") == 3
            assert value(samples, "sockscope_sockets", family="inet6", protocol="tcp", state="LISTEN") == 1
    finally:
        rc = srv.stop()
    assert rc == 0
    assert f"scrape error: summary: cannot read {missing}/thread-self/net/sockstat" in srv.stderr
    assert "Traceback" not in srv.stderr
    # --once reports the failure in its exit status, and still prints the metrics
    r, samples = h.exporter_once("--proc", missing)
    assert r.returncode == 1
    assert value(samples, "sockscope_scrape_errors_total", source="summary") == 1
    assert value(samples, "sockscope_sockets", family="inet", protocol="tcp", state="LISTEN") == 3


def test_disable_exporter_metrics_leaves_out_the_process_metrics(holder_factory: Any) -> None:
    """--web.disable-exporter-metrics (node_exporter's flag, which leaves out its own process_*, go_*
    and promhttp_*) leaves out prometheus_client's process_* families, in --once and when served;
    the sockscope_* families are the same with it as without."""
    _require_root()
    h = holder_factory({"listeners": [["127.0.0.1", 31000, 4, 2]], "bulk": [30000, 5, 3]})

    def scrape(*args: str) -> tuple[dict[str, tuple[str, str]], Samples]:
        r = h.run([*EXPORTER, "--once", *args])
        assert (r.returncode, r.stderr) == (0, ""), r.stderr
        fams, samples = parse_exposition(r.stdout)
        return {f.name: (f.type, f.documentation) for f in fams}, samples

    fams, samples = scrape()
    off_fams, off_samples = scrape("--web.disable-exporter-metrics")
    theirs = {n for n in fams if not n.startswith("sockscope_")}
    assert theirs and all(n.startswith("process_") for n in theirs), theirs
    assert "process_cpu_seconds" in theirs and "process_open_fds" in theirs
    assert [n for n in off_fams if not n.startswith("sockscope_")] == []
    assert off_fams == {n: v for n, v in fams.items() if n.startswith("sockscope_")}
    ours = {k for k in samples if k[0].startswith("sockscope_")}
    assert set(off_samples) == ours  # the same series
    assert socket_counts(off_samples) == socket_counts(samples)
    assert listeners_of(off_samples, "tcp") == listeners_of(samples, "tcp")
    srv = Served(h.netns, "--web.disable-exporter-metrics")
    try:
        (status, _, body), = fetch(h.netns, srv.url)
        assert status == 200
        _, served = parse_exposition(body)
        assert {k[0] for k in served if not k[0].startswith("sockscope_")} == set()
        assert value(served, "sockscope_sockets", family="inet", protocol="tcp", state="LISTEN") == 7  # + its own
    finally:
        assert srv.stop() == 0, srv.stderr


def test_path_procfs_is_the_node_exporter_spelling_of_proc(holder_factory: Any, tmp_path: Path) -> None:
    """--path.procfs DIR is --proc DIR: a directory that is not a procfs fails the same way (one line,
    status 1, the metrics still printed), and /proc works; --help shows both spellings on one line."""
    _require_root()
    h = holder_factory({"bulk": [30000, 3, 5]})
    notproc = tmp_path / "not-procfs"
    notproc.mkdir()
    by_proc = h.run([*EXPORTER, "--once", "--proc", str(notproc)])
    by_path = h.run([*EXPORTER, "--once", "--path.procfs", str(notproc)])
    assert (by_path.returncode, by_path.stderr) == (by_proc.returncode, by_proc.stderr)
    assert by_path.returncode == 1
    assert by_path.stderr == f"sockscope: scrape error: summary: cannot read {notproc}/thread-self/net/sockstat\n"
    _, samples = parse_exposition(by_path.stdout)
    assert value(samples, "sockscope_scrape_errors_total", source="summary") == 1
    assert value(samples, "sockscope_sockets", family="inet", protocol="tcp", state="LISTEN") == 3
    r, samples = h.exporter_once("--path.procfs", "/proc")
    assert (r.returncode, r.stderr) == (0, "")
    assert value(samples, "sockscope_scrape_success") == 1
    assert summary_of(samples)["tcp_inuse/inet"] == 3
    r = h.run([*EXPORTER, "--help"])
    # (one line; Python 3.13's argparse names the argument once, after the last spelling)
    assert re.search(r"\n  --path\.procfs( DIR)?, --proc DIR\n", r.stdout), r.stdout
    # an empty path is a usage error (it read /), said in one line, with either spelling
    for flag in ("--path.procfs", "--proc", "--path.procfs="):
        argv = [*EXPORTER, "--once", flag] if flag.endswith("=") else [*EXPORTER, "--once", flag, ""]
        r = h.run(argv)
        assert (r.returncode, r.stdout) == (255, ""), r
        assert r.stderr.count("\n") == 1 and "empty path" in r.stderr, r.stderr

def test_listen_address_must_be_explicit_and_bindable(holder_factory: Any) -> None:
    _require_root()
    h = holder_factory({})
    # a bare port names no address: refused (node_exporter's :PORT is every address; see test_exporter_web)
    for flag in ("--listen", "--web.listen-address"):
        r = h.run([*EXPORTER, flag, "9466"])
        assert r.returncode == 255
        assert r.stderr == ("sockscope: exporter: argument --web.listen-address/--listen: '9466' has no address: "
                            "write :9466 for every address of the host or 127.0.0.1:9466 for this host only "
                            "(see sockscope exporter --help)\n")
    r = h.run([*EXPORTER, "--listen", "::1:9466"])
    assert r.returncode == 255 and "[::1]:9466" in r.stderr
    # brackets that do not close, or no port after them: said as such (node_exporter, Go's SplitHostPort:
    # "missing ']' in address", "missing port in address"), never a made-up address to retype
    for given, said in (("[::1", "missing ']' in '[::1'"), ("[::1]", "missing port in '[::1]'"),
                        ("[::1]9466", "missing port in '[::1]9466'"), ("a]:9466", "misplaced bracket in 'a]:9466'"),
                        ("[[::1]]:9466", "misplaced bracket in '[[::1]]:9466'"), ("[]", "empty brackets in '[]'")):
        r = h.run([*EXPORTER, "--listen", given])
        assert r.returncode == 255, given
        assert r.stderr.startswith(f"sockscope: exporter: argument --web.listen-address/--listen: {said}"), r.stderr
        assert "[[" not in r.stderr.split(":", 3)[3].replace(given, ""), r.stderr  # no suggestion built from bad text
    r = h.run([*EXPORTER, "--listen", "192.0.2.1:9466"])  # not an address of this netns: bind fails
    assert r.returncode == 1
    assert r.stderr == "sockscope: cannot listen on 192.0.2.1:9466: Cannot assign requested address\n"


# --------------------------------------------------------------------------------------------
# --all-netns, in a sandbox that sees only its own namespaces and processes

SANDBOX = r'''
set -eu
ip link set lo up
mount -t tmpfs tmpfs /run            # private to this mount namespace: `ip netns add` stays here
ip netns add exp-a
ip -n exp-a link set lo up
hold() { "$PY" -c "$HOLD" "$@"; }
ip netns exec exp-a "$PY" -c "$HOLD" 3 a > /run/a.ready &
unshare -n "$PY" -c "$HOLD" 2 b > /run/b.ready &
for i in $(seq 100); do
    [ -s /run/a.ready ] && [ -s /run/b.ready ] && break
    sleep 0.1
done
echo "SELF $(stat -L -c %i /proc/self/ns/net)"
echo "A $(stat -L -c %i /run/netns/exp-a)"
echo "B $(cat /run/b.ready)"
echo "METRICS"
"$PY" -m sockscope exporter --once --all-netns
'''

HOLD = r'''
import os, socket, sys, time
n = int(sys.argv[1])
keep = []
for i in range(n):
    s = socket.socket(); s.bind(("127.0.0.1", 40000 + i)); s.listen(3); keep.append(s)
print(os.stat("/proc/self/ns/net").st_ino, flush=True)
time.sleep(120)
'''


_STOP_WAKE = """
import json, os, signal, threading, time
from sockscope.cli import exporter
main_tid = threading.get_native_id()
def deliver():  # once the loop waits, SIGTERM comes on this thread: the wait's system call is not interrupted
    deadline = time.monotonic() + 20
    while "epoll" not in open(f"/proc/self/task/{main_tid}/wchan").read() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGTERM)
def late(signum, frame):
    raise TimeoutError("still serving 5 s after SIGTERM")
threading.Thread(target=deliver, daemon=True).start()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
signal.signal(signal.SIGALRM, late)  # SIGALRM goes to this thread: it does interrupt the wait
signal.alarm(5)
try:
    print(json.dumps(exporter.main(["--listen", "127.0.0.1:0"])))
except TimeoutError as exc:
    print(json.dumps(str(exc)))
"""


def test_a_stop_signal_the_wait_did_not_see_still_stops_it() -> None:
    """SIGTERM whose handler ran while the loop's wait was not interrupted by it (it landed
    just before the wait began, or on another thread) still stops the exporter, at once: the
    loop takes its stop signals through its wake-up pipe.  With a ``signal.signal`` handler
    it served on until the next client came (none comes here)."""
    _require_root()
    r = subprocess.run(["unshare", "-n", sys.executable, "-c", _STOP_WAKE], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout) == 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr


def test_all_netns_labels_every_namespace() -> None:
    _require_root()
    env = {**os.environ, "PY": sys.executable, "HOLD": HOLD}
    # net + mount + pid namespaces with a fresh /proc: the exporter sees exactly the
    # sandbox's processes and the sandbox's /run/netns; --kill-child ends it all
    # (the pid namespace dies with its init) however this test ends.
    r = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child",
                        "bash", "-c", SANDBOX], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    head, _, text = r.stdout.partition("METRICS\n")
    ids = dict(line.split(" ", 1) for line in head.splitlines())
    _, samples = parse_exposition(text)
    netns = {dict(lab)["netns"] for lab in series(samples, "sockscope_sockets")}
    assert netns == {"exp-a", f"ino:{ids['SELF']}", f"ino:{ids['B']}"}
    assert ids["A"] != ids["SELF"] != ids["B"]
    listen = {ns: value(samples, "sockscope_sockets", netns=ns, family="inet", protocol="tcp", state="LISTEN")
              for ns in netns}
    assert listen == {"exp-a": 3, f"ino:{ids['B']}": 2, f"ino:{ids['SELF']}": 0}
    assert set(listeners_of(samples, "tcp", "exp-a")) == {"127.0.0.1:40000", "127.0.0.1:40001", "127.0.0.1:40002"}
    assert listeners_of(samples, "tcp", f"ino:{ids['B']}") == {"127.0.0.1:40000": (0, 3), "127.0.0.1:40001": (0, 3)}
    # the summary is read per namespace too (/proc/thread-self/net in the worker thread)
    assert summary_of(samples, "exp-a")["tcp_inuse/inet"] == 3
    assert summary_of(samples, f"ino:{ids['B']}")["tcp_inuse/inet"] == 2
    for ns in netns:
        assert value(samples, "sockscope_scrape_success", netns=ns) == 1
