"""Smoke tests of the benchmark tooling in bench/ (correctness only, no timing assertions).

* ``bench/population.py`` as a library: a 100-socket population (plus a few
  listeners, TIME-WAIT, UDP and UNIX sockets) in a private netns; the builder's
  counts must match ``ss -tanH | wc -l`` and ss's per-state counts, and after
  ``close()`` the holders and the namespace must be gone.
* ``bench/population.py`` as a CLI: READY, ss agrees, SIGTERM cleans up.
* the holder planner: 100k sockets fit in holders under the fd limit without
  two holders sharing a listener address.
* ``bench/run.py --help``, and one tiny end-to-end run (100 sockets, 1 run, two
  rows) that must produce a table, a JSON file, and leave no namespace behind.
* ``bench/shapes.py``: each population shaped like real hosts' built at 1%, in the
  shape its name says, ss agreeing with its counts, everything gone after close;
  at full size, every holder within the fd limit and the issue's sizes.
* ``bench/run.py --populations all --scale 0.01``: every row compared with its
  peer and the same results; a row whose sides differ is never met.

Every namespace is named ``ssbench-<pid>-<hex>`` and removed in ``finally``,
as are the processes the test started (by pid).
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import re
import secrets
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str) -> ModuleType:
    # By path: tests/ has a population.py of its own.
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


population = _load("population")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def _netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _in_netns(netns: str, cmd: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", netns, "sh", "-c", cmd], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture
def netns_name() -> Iterator[str]:
    name = f"ssbench-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        yield name
    finally:
        if name in _netns_list():
            subprocess.run(["ip", "netns", "delete", name], check=False)


def test_library_counts_match_ss(netns_name: str) -> None:
    pop = population.build(netns_name, 100, time_wait=10, listeners=3, udp=4, unix=5)
    try:
        assert netns_name in _netns_list()
        assert pop.counts == {"established": 100, "listen": 3, "udp": 4, "unix": 5, "time_wait": 10}
        assert pop.expected_tcp() == 113
        assert int(_in_netns(netns_name, "ss -tanH | wc -l")) == pop.expected_tcp()
        assert pop.tcp_states() == {"ESTAB": 100, "LISTEN": 3, "TIME-WAIT": 10}
        assert int(_in_netns(netns_name, "ss -uanH | wc -l")) == 4
        # Our own UNIX sockets only: those held by the population's holders.
        pids = pop.pids
        assert pids and all(_alive(pid) for pid in pids)
        unix = _in_netns(netns_name, "ss -xanpH")
        assert sum(f"pid={pid}," in line for line in unix.splitlines() for pid in pids) == 5
        # The 1% filter port: the client ends of 1 in 50 connections.
        assert int(_in_netns(netns_name, f"ss -tanH 'dport = :{population.FILTER_PORT}' | wc -l")) == 1
    finally:
        pop.close()
    assert netns_name not in _netns_list()
    assert not any(_alive(pid) for pid in pids)


def test_existing_netns_is_kept(netns_name: str) -> None:
    subprocess.run(["ip", "netns", "add", netns_name], check=True)
    subprocess.run(["ip", "-n", netns_name, "link", "set", "lo", "up"], check=True)
    with population.build(netns_name, 20) as pop:
        assert not pop.created_netns
        assert int(_in_netns(netns_name, "ss -tanH | wc -l")) == 20
    assert netns_name in _netns_list()  # not ours to delete; the fixture does it


def test_cli_ready_then_sigterm_cleans_up(netns_name: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "population.py"), "--netns", netns_name, "--sockets", "100", "--listeners", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    holders: list[int] = []
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(60), "no READY line within 60 s"
        line = proc.stdout.readline()
        assert line.startswith("READY "), line
        fields = dict(item.split("=", 1) for item in line.split()[1:])
        assert fields["netns"] == netns_name and fields["established"] == "100" and fields["listen"] == "2"
        holders = [int(pid) for pid in fields["holders"].split(",")]
        assert all(_alive(pid) for pid in holders)
        assert int(_in_netns(netns_name, "ss -tanH | wc -l")) == 102
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert netns_name not in _netns_list()
        assert not any(_alive(pid) for pid in holders)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in holders:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_plan_for_100k_fits_the_fd_limit() -> None:
    capacity = 20_000 - population.FD_RESERVE
    specs = population.plan(100_000, listeners=170, udp=60, unix=10, capacity=capacity)
    assert len(specs) == 6
    assert all(spec.peak_fds() <= capacity for spec in specs)
    assert sum(2 * s.established[1] for s in specs) == 100_000
    assert sum(s.listen[1] for s in specs) == 170 and sum(s.udp[1] for s in specs) == 60
    # No two holders bind a temporary listener on the same address.
    addresses = [
        {population.ESTABLISHED.endpoint(i)[0] for i in range(s.established[0], sum(s.established))} for s in specs
    ]
    assert all(not (a & b) for i, a in enumerate(addresses) for b in addresses[i + 1 :])
    with pytest.raises(ValueError):
        population.plan(101, capacity=capacity)


def test_run_help() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for word in ("--sizes", "--runs", "--only", "--json", "--setup", "--sockscope", "tanp", "net_connections"):
        assert word in done.stdout


def test_run_venv_names_what_is_measured(tmp_path: Path) -> None:
    """``--venv DIR``: that venv's sockscope script and python are what the rows time (and what runs the
    inner side), and the machine info names the interpreter's build."""
    run = _load("run")
    venv = tmp_path / "other-venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("sockscope", "python"):
        (venv / "bin" / name).write_text("#!/bin/sh\n")
        (venv / "bin" / name).chmod(0o755)
    args = run.parse_args(["--venv", str(venv)])
    assert args.sockscope == [str(venv / "bin" / "sockscope")]
    assert args.python == args.inner_python == str(venv / "bin" / "python")
    assert run.parse_args(["--venv", str(venv), "--sockscope", "/bin/true -x"]).sockscope == ["/bin/true", "-x"]
    said = subprocess.run([sys.executable, "-c", run._INTERPRETER], capture_output=True, text=True, check=True).stdout
    assert re.fullmatch(r"3\.\d+\.\d+\S* from /\S+ \(libpython (shared|linked in)\)\n", said), said


def test_run_also_venv_measures_each_row_under_both(tmp_path: Path) -> None:
    """``--also-venv DIR``: every row measured under the bench venv's interpreter and under DIR's (here a
    venv made of links to this one, under another name), each result tagged with its venv."""
    here = Path(sys.prefix)
    other = tmp_path / "other"
    (other / "bin").mkdir(parents=True)
    (other / "pyvenv.cfg").write_text((here / "pyvenv.cfg").read_text())
    (other / "lib").symlink_to(here / "lib")
    (other / "bin" / "python").symlink_to(sys.executable)
    (other / "bin" / "sockscope").symlink_to(here / "bin" / "sockscope")
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--sizes", "100", "--runs", "1", "--only", "tan,net_connections",
         "--also-venv", str(other), "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    got = collections.Counter((r["row"], r["population"].rpartition(" [")[2]) for r in data["results"])
    assert got == {("tan", ".venv]"): 1, ("tan", "other]"): 1, ("net_connections", ".venv]"): 1,
                   ("net_connections", "other]"): 1}, got
    assert all(r["same"] is not False and r["ours"]["status"] == "ok" for r in data["results"]), data["results"]
    assert "libpython" in data["meta"]["python (--also-venv)"]
    bad = subprocess.run([sys.executable, str(BENCH / "run.py"), "--also-venv", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "no bin/sockscope" in bad.stderr


def test_run_end_to_end_tiny(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    before = set(_netns_list())
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--sizes", "100", "--runs", "1", "--only", "tan,net_connections",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| `sockscope -tan` vs `ss -tan` | 100 |" in done.stdout
    data = json.loads(out.read_text())
    rows = {r["row"]: r for r in data["results"]}
    assert set(rows) == {"tan", "net_connections"}
    ss = rows["tan"]["peer"]
    assert ss["status"] == "ok" and len(ss["seconds"]) == 1 and ss["lines"] == 1 + 100 + 170
    assert rows["net_connections"]["ours"]["status"] in ("ok", "unsupported", "error", "unavailable")
    assert data["meta"]["kernel"] == os.uname().release
    time.sleep(0.1)
    assert not [n for n in set(_netns_list()) - before if n.startswith("sockscope-bench-")]


def test_breakdown_prints_the_timeline_and_profiles() -> None:
    """bench/breakdown.py (the profiles behind bench/README.md) runs: the cold marks in
    order, a warm median and a cProfile table, for a CLI command and for the API."""
    cli = subprocess.run(["unshare", "-n", sys.executable, str(BENCH / "breakdown.py"), "--runs", "3", "--", "-tan"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    marks = re.findall(r"(cli imported|request sent|first datagram|main returned) ([\d.]+)", cli.stdout)
    assert [m[0] for m in marks] == ["cli imported", "request sent", "first datagram", "main returned"], cli.stdout
    assert [float(m[1]) for m in marks] == sorted(float(m[1]) for m in marks)
    assert "warm: median" in cli.stdout and "tottime" in cli.stdout
    api = subprocess.run(["unshare", "-n", sys.executable, str(BENCH / "breakdown.py"), "--api", "net_connections",
                          "--runs", "3"], capture_output=True, text=True, timeout=120)
    assert api.returncode == 0, api.stderr
    # (a table of sockscope's own functions: which of them ranks among the top few by own time in an
    # empty namespace, where each takes microseconds, changes between interpreters)
    assert "warm: median" in api.stdout and "tottime" in api.stdout
    assert re.search(r"/sockscope/(psutil_api|kernel/\w+)\.py:\d+\(", api.stdout), api.stdout


def test_instructions_counts_a_warm_call() -> None:
    """bench/instructions.py (callgrind's count of one warm call) runs, for a CLI command and for
    the API: a process of 5 calls executes more than one of 2, and a warm call is real work.  In
    namespaces of its own, network and pids (with their /proc): the owners' scan of
    ``net_connections`` reads every process it can see, so the machine's other processes, coming
    and going between the two counts, would move them.  The two run side by side (half the wait on
    two cores): their counts move a little with it, far less than the margins asserted here."""
    # (--kill-child: unshare's end ends its namespace's first process, so every process in it)
    runs = [subprocess.Popen(["unshare", "-n", "-p", "-f", "--kill-child", "--mount-proc", sys.executable,
                              str(BENCH / "instructions.py"), *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for args in (["--", "-tan"], ["--api", "net_connections", "--kind", "unix"])]
    try:
        outs = [run.communicate(timeout=300) for run in runs]
    finally:
        for run in runs:  # (a timeout: end the ones still running, ours by pid)
            if run.poll() is None:
                run.kill()
                run.wait()
    for run, (stdout, stderr) in zip(runs, outs):
        assert run.returncode == 0, stderr
        found = re.search(r"([\d.]+) M instructions a warm call "
                          r"\(processes of 2 and 5 calls: ([\d.]+) and ([\d.]+) M\)", stdout)
        assert found, stdout
        warm, few, many = map(float, found.groups())
        assert few < many and 0.05 < warm < few, stdout


def test_native_profile_shares_out_a_runs_cpu() -> None:
    """bench/native.py (perf's samples of cold runs, by category) runs for sockscope and for ss, in a
    namespace of its own with a listener and a connection: its categories share out 100 % of the
    samples and the runs' CPU time, and a listing's samples are found where it spends them (sockscope:
    in the interpreter, and in the kernel making its dump; ss: no interpreter at all).  The
    categories of one sample's call chain are checked on made-up chains too."""
    native = _load("native")
    assert native.category([("asm_exc_page_fault", "[kernel.kallsyms]")], "") == "kernel: page faults"
    chain = [("tcp_diag_dump", "[kernel.kallsyms]"), ("netlink_recvmsg", "[kernel.kallsyms]"),
             ("__x64_sys_recvfrom", "[kernel.kallsyms]")]
    dump = "kernel: the dump (the walk of its tables, the datagrams made and copied out)"
    assert native.category(chain, "") == dump
    sent = [("tcp_diag_dump", "[kernel.kallsyms]"), ("netlink_sendmsg", "[kernel.kallsyms]"),
            ("__sys_sendmsg", "[kernel.kallsyms]")]  # (an empty table's whole walk: in the request's send)
    assert native.category(sent, "") == dump
    assert native.category([("clear_page_erms", "[kernel.kallsyms]"), ("exc_page_fault", "[kernel.kallsyms]"),
                            ("__x64_sys_recvfrom", "[kernel.kallsyms]")], "") == "kernel: page faults"
    assert native.category([("_PyEval_EvalFrameDefault", "/x/libpython3.11.so.1.0")], "") == "user: the interpreter"
    assert native.category([("f", "/usr/bin/python3.11")], "python3.11") == "user: the interpreter"
    assert native.category([("memcpy", "/lib/x86_64-linux-gnu/libc.so.6")], "") == "user: libc"
    # perf script's sample heads right-align the pid (a short one starts with spaces), frames start with a tab
    lines = ["  812 \n", "\tffffffff81 exc_page_fault ([kernel.kallsyms])\n", "\n", "12345 \n",
              "\t  10ac10 __libc_sendmsg (/usr/lib/x86_64-linux-gnu/libc.so.6)\n", "\n", "   99 \n",
              "\tffffffff82 schedule ([kernel.kallsyms])\n", "\n"]
    assert list(native.samples(lines, {812, 12345})) == [
        [("exc_page_fault", "[kernel.kallsyms]")], [("__libc_sendmsg", "/usr/lib/x86_64-linux-gnu/libc.so.6")]]
    script = ("import os, socket, subprocess, sys\n"
              "assert os.system('ip link set lo up') == 0\n"
              "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
              "c = socket.create_connection(s.getsockname()); a, _ = s.accept()\n"
              "for extra in ([], ['--command', 'ss']):\n"
              "    out = subprocess.run([sys.executable, sys.argv[1], '--runs', '3', *extra, '--', '-tan'],\n"
              "                         capture_output=True, text=True, timeout=120)\n"
              "    sys.stdout.write(out.stdout + out.stderr + f'exit {out.returncode}\\n')\n")
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", script, str(BENCH / "native.py")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reports = proc.stdout.split("exit ")
    assert [r.split("\n", 1)[0] for r in reports[1:]] == ["0", "0"], proc.stdout
    for report, command in zip(reports, ("sockscope", "ss")):
        head = re.search(rf"^{command} -tan: 3 runs, ([\d.]+) ms of CPU a run \(([\d.]+) ms under perf\), "
                         r"(\d+) samples$", report, re.M)
        assert head, report
        cpu = float(head[1])
        rows = re.findall(r"^ +([\d.]+) % +([\d.]+) ms  (.+)$", report, re.M)
        shares = {label: (float(share), float(ms)) for share, ms, label in rows}
        assert abs(sum(share for share, _ in shares.values()) - 100) < 0.5, report
        assert abs(sum(ms for _, ms in shares.values()) - cpu) < 0.05 * cpu + 0.5, report
        assert dump in shares, report
        assert ("user: the interpreter" in shares) == (command == "sockscope"), report


# --------------------------------------------------------------------------- the populations shaped like real hosts'

shapes = _load("shapes")


def test_shape_plans_at_full_size_fit_the_fd_limit() -> None:
    """At scale 1 every population has the issue's size, and no holder needs more fds than it may have."""
    capacity = 20_000 - population.FD_RESERVE
    totals = {}
    for name, shape in shapes.SHAPES.items():
        specs, late = shape.plan(1.0, capacity)
        assert all(spec.fds() <= capacity for spec in specs), name
        jobs = [job for spec in specs for job in spec.jobs]
        kept = sum(job["count"] * (2 if job["kind"] == "tcp" else 1) for job in jobs)
        tw = sum(job["count"] for spec in late for job in spec.jobs)
        totals[name] = (kept, tw, len(specs), sum(spec.workers for spec in specs))
    assert totals["dual10k"][:3] == (10_000, 0, 1)
    assert totals["mixed10k"][:3] == (10_000, 0, 1)
    assert totals["mixed100k"][:3] == (100_000, 0, 6)
    assert totals["procs1000"] == (8000, 2000, 1, 999)  # the holder itself is the 1,000th process
    assert totals["prefork256"] == (2 * 8 * 256, 0, 1, 256)
    assert totals["unix20k"][:3] == (20_000, 0, 2)
    assert totals["udp10k"][:3] == (10_000, 0, 1)
    assert 15_000 <= sum(totals["hostmix15k"][:2]) <= 16_000 and totals["hostmix15k"][3] == 39
    assert totals["netns40"] == (352, 0, 1, 0) and shapes.SHAPES["netns40"].namespaces == 40
    assert totals["listen10k"] == (12_000, 0, 1, 39)  # 10k listeners and 1k connections' 2k ends
    assert totals["synrecv10k"] == (10_000, 1000, 1, 0)  # 2k of the 10k: SYN-RECV ends, one socket each side


def _ss(netns: str, option: str) -> list[str]:
    return [line for line in _in_netns(netns, f"ss {option}H").splitlines() if line.strip()]


@pytest.mark.parametrize("name", list(shapes.SHAPES))
def test_shape_tiny_is_what_it_says_and_cleans_up(netns_name: str, name: str) -> None:
    """Each population at 1%: ss sees exactly what the builder counted, in the shape its name says;
    closing ends every process (forked workers too), removes the socket files and the namespace."""
    pop = shapes.build(name, netns_name, scale=0.01)
    companions: list[str] = []
    try:
        c = pop.counts
        tcp, udp, unix = _ss(netns_name, "-tan"), _ss(netns_name, "-uan"), _ss(netns_name, "-xa")
        assert (len(tcp), len(udp), len(unix)) == (pop.expected_tcp(), c["udp"], c["unix"])
        pids = {int(p) for p in re.findall(r"pid=(\d+)", _in_netns(netns_name, "ss -tuxapH"))}
        assert len(pids) == c["processes"] and all(_alive(p) for p in pids)
        states = collections.Counter(line.split()[0] for line in tcp)
        if name == "dual10k":
            assert sum("[::ffff:127.12." in line for line in tcp) == c["established"] // 2
            assert c["listen"] == 10 and states == {"ESTAB": 100, "LISTEN": 10}
        elif name.startswith("mixed"):
            v6 = sum("[::1]:" in line for line in tcp)
            assert abs(2 * v6 - len(tcp)) <= 2 and states == {"ESTAB": len(tcp)}
        elif name == "procs1000":
            assert c["processes"] == 10 and states == {"ESTAB": 80, "TIME-WAIT": 20}
        elif name == "prefork256":
            listener = _ss(netns_name, "-tlnp")
            assert len(listener) == 1 and len(re.findall(r"pid=", listener[0])) == 3
            assert c["processes"] == 4 and states == {"ESTAB": 48, "LISTEN": 1}
        elif name == "unix20k":
            kinds = collections.Counter((line.split()[0], line.split()[1]) for line in unix)
            assert kinds[("u_str", "LISTEN")] == 2 and kinds[("u_dgr", "ESTAB")] and kinds[("u_str", "ESTAB")]
            assert any(str(pop.scratch) in line for line in unix) and any(" @sockscope-bench" in line for line in unix)
        elif name == "udp10k":
            assert collections.Counter(line.split()[0] for line in udp) == {"UNCONN": 50, "ESTAB": 50}
        elif name == "netns40":  # the same sockets in 39 more namespaces, each a population of its own
            assert len(pop.companions) == 39 and states == {"ESTAB": 4, "LISTEN": 2}
            for other in pop.companions:
                assert other.netns.startswith(netns_name + "-") and other.counts == c
                assert len(_ss(other.netns, "-tan")) == 6 and len(_ss(other.netns, "-xa")) == c["unix"]
            companions = [other.netns for other in pop.companions]
        elif name == "listen10k":  # SO_REUSEPORT groups: 25 sockets on one [::] (dual-stack: *) and one 0.0.0.0 port
            assert states == {"LISTEN": 100, "ESTAB": 20} and c["listen"] == 100
            ports = collections.Counter(line.split()[3] for line in tcp if line.startswith("LISTEN"))
            assert ports["*:45000"] == 25 and ports["0.0.0.0:46000"] == 25 and ports["[::1]:42019"] == 1
            assert sum(p.startswith("127.20.0.") for p in ports) == 30
        elif name == "synrecv10k":  # each deferred connection: the client's ESTAB, the listener's SYN-RECV
            assert states == {"ESTAB": 80, "SYN-RECV": 20, "LISTEN": 7, "TIME-WAIT": 10} and c["processes"] == 1
            syn_recv = [line for line in tcp if line.startswith("SYN-RECV")]
            assert sum("[::ffff:127.17." in line for line in syn_recv) == 3
            assert sum("[::1]:" in line for line in syn_recv) == 5
        elif name == "threads4x32":  # each process a pool of threads, sharing its fd table (at 1%: 2 each)
            assert c["processes"] == 4 and states == {"ESTAB": 40}
            threads = {p: int(re.findall(r"Threads:\s+(\d+)", Path(f"/proc/{p}/status").read_text())[0]) for p in pids}
            assert set(threads.values()) == {2}, threads
            held = re.findall(r"pid=(\d+),tid=(\d+),", _in_netns(netns_name, "ss -tanpTH"))
            tasks = {(p, int(t)) for p in pids for t in os.listdir(f"/proc/{p}/task")}
            assert {(int(p), int(t)) for p, t in held} == tasks
        else:
            assert states["TIME-WAIT"] == 20 and any("[::1]:" in line for line in tcp if "TIME-WAIT" in line)
            assert any("[::1]:" in line for line in udp) and c["unix"] == 60
        scratch = pop.scratch
    finally:
        pop.close()
    assert netns_name not in _netns_list() and not set(companions) & set(_netns_list())
    assert not any(_alive(p) for p in pids)
    assert scratch is None or not os.path.exists(scratch)


def test_run_populations_tiny(tmp_path: Path) -> None:
    """bench/run.py --populations: every population at 1%, one run of a few rows (and the uniform
    population as a reference); each row compared side by side and found to return what the peer
    returns; no namespace left behind."""
    out = tmp_path / "pop.json"
    before = set(_netns_list())
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--populations", "all", "--scale", "0.01", "--runs", "1",
         "--only", "tan,xa,nc_udp,nc_all,xa_floor,allnetns_tan,tln,xsrc,asport", "--sizes", "100", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| population | what | sockscope (min–max ms) |" in done.stdout and "| peak RSS: ours/peer |" in done.stdout
    data = json.loads(out.read_text())
    # the uniform population of the same size run as a reference: rows made for the shaped ones are not run on it
    assert [(r["size"], r["row"]) for r in data["results"] if not r["shape"]] == [(100, "tan")]
    assert "| `sockscope -tan` vs `ss -tan` | 100 |" in done.stdout
    got = {(r["shape"], r["row"]) for r in data["results"] if r["shape"]}
    assert {s for s, _ in got} == set(shapes.SHAPES)
    assert ("hostmix15k", "nc_all") in got and ("udp10k", "nc_udp") in got and ("unix20k", "xa") in got
    assert ("mixed100k", "tan") in got and ("udp10k", "tan") not in got
    assert {s for s, row in got if row == "tln"} == {"listen10k"}
    assert {s for s, row in got if row == "allnetns_tan"} == {"netns40"} and ("netns40", "tan") not in got
    assert {s for s, row in got if row == "xa_floor"} == {"unix20k", "hostmix15k"}
    assert {s for s, row in got if row == "xsrc"} == {"unix20k", "hostmix15k"}
    assert {s for s, row in got if row == "asport"} == {"hostmix15k"}
    # (the filters select some rows, not none)
    assert all(r["peer"]["lines"] > 1 for r in data["results"] if r["row"] in ("xsrc", "asport")), data["results"]
    # each listing beside its floor: one line a population that ran both rows
    assert "| population | listing | ss | floor | floor / ss | left above the floor | used above it |" in done.stdout
    floors = [ln for ln in done.stdout.splitlines()
              if "| `sockscope -xa` vs `ss -xa` |" in ln and ln.count("ms |") == 4]
    assert len(floors) == 2, done.stdout
    for r in data["results"]:
        assert r["ours"]["status"] == "ok" and r["peer"]["status"] == "ok", r
        if r["row"].endswith("_floor"):  # (floor.py prints nothing: no target, nothing to compare)
            assert r["same"] is None and r["ours"]["lines"] == 0 and not r["target"], r
            continue
        if r["row"].startswith("allnetns_"):  # (each namespace's rows compared, not the line counts)
            assert r["same"] is True and "rows identical to ss in each of " in " ".join(r["notes"]), r
            assert r["target"] and r["met"] in ("yes", "**NO**"), r
            continue
        assert r["same"] is True and r["ours"]["lines"] == r["peer"]["lines"], r
        assert not r["shape"] or (r["target"] and r["met"] in ("yes", "**NO**")), r
    notes = "\n".join(n for r in data["results"] for n in r["notes"])
    assert notes.count("(as built)") == len(shapes.SHAPES) and "FAILED" not in notes
    # how fast the machine was: at the start, before each population's rows, at the end
    assert notes.count("python -c pass before the rows: ") == len(shapes.SHAPES)
    assert all(" ms (median of 7; min " in data["meta"][f"python -c pass at {when}"] for when in ("start", "end"))
    assert all("; two at once " in data["meta"][f"python -c pass at {when}"] for when in ("start", "end"))
    time.sleep(0.1)
    assert not [n for n in set(_netns_list()) - before if n.startswith("sockscope-bench-")]


measure = _load("measure")


_UDP_REQUESTS = r"""
import json, socket, sys
sys.path.insert(0, sys.argv[1])
import measure
def heads():
    return [[int.from_bytes(r[4:6], sys.byteorder), r[16], r[17]]
            + ([True] if isinstance(r, measure.SentBehind) else []) for r in measure.listing_requests(["-uan"])]
got = [heads()]
four = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); four.bind(("0.0.0.0", 0)); got.append(heads())
six = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); six.bind(("::", 0)); got.append(heads())
print(json.dumps(got))
"""


def test_floor_sends_the_listings_own_requests_and_receives_their_dumps(netns_name: str) -> None:
    """The floor rows' requests are the listing's own (captured from ``sockscope OPTIONS`` run with a
    transport that answers each one with an empty dump), and floor.py receives each dump to its end:
    on a namespace with sockets in it, and on a request the kernel refuses (an error ends it too)."""
    from sockscope.kernel import unix

    def head(request: bytes) -> tuple[int, int, int]:  # (netlink type, family, protocol) of a request
        return int.from_bytes(request[4:6], sys.byteorder), request[16], request[17]

    assert [head(r) for r in measure.listing_requests(["-tan"])] == [(18, 2, 0)]  # one legacy dump, both families
    # a UDP dump per family, but where the namespace has no UDP socket of that family (the listing
    # skips a walk that would find nothing): in a namespace of this test's own
    done = subprocess.run(["unshare", "-n", sys.executable, "-c", _UDP_REQUESTS, str(BENCH)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # (with both: the IPv6 dump sent first, by the helper that runs its walk beside the IPv4 one's)
    assert json.loads(done.stdout) == [[], [[20, 2, 17]], [[20, 10, 17, True], [20, 2, 17]]]
    (xa,) = measure.listing_requests(["-xa"])
    assert head(xa) == (20, 1, 0) and int.from_bytes(xa[28:32], sys.byteorder) == unix.DEFAULT_SHOW
    with pytest.raises(RuntimeError, match="exit 255, 0 requests"):  # (as ss: 255)
        measure.listing_requests(["--no-such-option"])

    pop = population.build(netns_name, 200, listeners=4, udp=20, unix=50)
    try:
        refused = bytearray(xa)
        refused[16] = 99  # no such family: the kernel answers with an error
        requests = [*measure.listing_requests(["-tan"]), *measure.listing_requests(["-uan"]), xa, bytes(refused),
                    measure.SentBehind(xa), measure.SentBehind(refused)]  # (these two received by threads)
        done = subprocess.run(["ip", "netns", "exec", netns_name, sys.executable, str(BENCH / "floor.py"),
                               *measure.floor_argv(requests)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done
    finally:
        pop.close()


def test_verdict_needs_the_same_results() -> None:
    """A row is not met when the sides returned different results, however fast; a listing's target
    depends on ss's own time (≤ 1.5× from 10 ms, else ≤ 30 ms)."""
    run = _load("run")
    row = run.ROW_BY_NAME["tan"]
    fast, slow = run.Side("ours", seconds=[0.005]), run.Side("ss", seconds=[0.050])
    assert run._verdict(run.Result(row, "p", None, fast, slow, [], True, "dual10k"))[2] == "yes"
    assert run._verdict(run.Result(row, "p", None, fast, slow, [], False, "dual10k"))[2] == "**NO** (results differ)"
    assert run.population_target(row, 12.0).max_ratio == 1.5
    assert run.population_target(row, 9.0).max_ms == 30
    assert run.population_target(run.ROW_BY_NAME["tanp"], 1.0).max_ratio == 1.0
    assert run.population_target(run.ROW_BY_NAME["nc_unix"], 1.0).max_ratio == 0.2
    # every listing, -i's too (its uniform sizes keep their own ≤ 1.2× at 10k)
    assert all(run.population_target(run.ROW_BY_NAME[name], 12.0).max_ratio == 1.5
               for name in ("a", "l", "t", "xa", "uan", "tani"))
    assert run._target(run.Result(run.ROW_BY_NAME["tani"], "p", 10_000, fast, slow, [])).max_ratio == 1.2


def test_machine_phase_flags_a_run_whose_start_up_wandered() -> None:
    """A run whose ``python -c pass`` moved by more than half again over its quickest start says so
    (session 16's first run: 56 ms at its start, 25 ms at its end); a steady one says that."""
    measure = _load("measure")
    assert measure.machine_phase([(12.8, 12.6), (12.1, 11.8), (14.1, 11.7)]).startswith("steady: ")
    wandered = measure.machine_phase([(56.4, 47.1), (25.2, 19.8), (30.0, 20.5)])
    assert wandered.startswith("UNSTEADY: python -c pass medians 25.2–56.4 ms over 3 checks"), wandered
    assert "19.8 ms" in wandered
    assert measure.machine_phase([]) == ""


def test_wait_for_quiet_waits_for_a_quiet_start_and_gives_up_at_its_limit() -> None:
    """``--quiet-below``: the start-up is measured again after each pause until it is quick enough
    (the note says how long that took), and the wait ends at its limit with a note that says so."""
    measure = _load("measure")
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    starts = iter([31.0, 24.0, 13.5, 40.0])
    note = measure.wait_for_quiet("python", 14, 600, 20, lambda: next(starts), sleep, lambda: now[0])
    assert note == "waited 40 s for python -c pass ≤ 14 ms (then 13.5 ms)", note
    assert next(starts) == 40.0  # (no measurement after the quiet one)
    ticks = iter([5.0, 5.4])  # quiet at once: no note, though measuring took time
    assert measure.wait_for_quiet("python", 14, 600, 20, lambda: 12.0, sleep, lambda: next(ticks)) == ""
    now[0] = 0.0
    slow = measure.wait_for_quiet("python", 14, 100, 20, lambda: 22.0, sleep, lambda: now[0])
    assert slow == "NOT QUIET: python -c pass 22.0 ms (> 14 ms) after 100 s of waiting", slow
    assert now[0] == 100.0  # (no pause past the limit)


def test_netns_rows_compares_each_named_namespace() -> None:
    """measure.netns_rows: sockscope --all-netns against ip -all netns exec ss, namespace by namespace
    (layouts and the unnamed namespaces aside); one row missing or moved to another namespace differs."""
    peer = ("\nnetns: a\nNetid State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
            "nl UNCONN 0 0 rtnl:ip/7 *\nnl UNCONN 0 0 rtnl:-4242 *\nnl UNCONN 0 0 tcpdiag:ss/8 *\n"
            "tcp LISTEN 0 128 127.0.0.1:80 0.0.0.0:*\n\nnetns: b\n"
            "State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process\n"
            "ESTAB  0      0          127.0.0.1:80       127.0.0.1:5000\n")
    ours = ("Netns Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
            "ino:1 tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n"
            "a     nl  UNCONN 0 0 tcpdiag:sockscope/9 *\n"
            "a     tcp LISTEN 0      128    127.0.0.1:80 0.0.0.0:*\n"
            "b     ESTAB 0 0 127.0.0.1:80 127.0.0.1:5000\n")
    assert measure.netns_rows(ours, peer) == (True, "rows identical to ss in each of 2 named namespaces (2 rows)")
    moved = ours.replace("b     ESTAB", "a     ESTAB")
    assert measure.netns_rows(moved, peer)[0] is False
    missing = ours.replace("a     tcp LISTEN 0      128    127.0.0.1:80 0.0.0.0:*\n", "")
    assert measure.netns_rows(missing, peer)[0] is False
    assert measure.netns_rows(ours, "")[0] is False  # nothing to compare with: not "the same"
    # a TIME-WAIT row one listing saw and the other did not (it ended between them): no difference
    ended = ours + ("b     TIME-WAIT 0 0 127.0.0.1:5001 127.0.0.1:80\n"
                    "a     tcp TIME-WAIT 0 0 127.0.0.1:5002 127.0.0.1:80\n")
    assert measure.netns_rows(ended, peer) == (True, "rows identical to ss in each of 2 named namespaces (2 rows)")
