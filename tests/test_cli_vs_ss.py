"""``python -m sockscope [ss options]`` prints the same rows as ``ss`` (iproute2 6.1.0).

Both tools run inside the private namespace of the ``population`` fixture,
side by side on the same static socket population (see tests/population.py),
and their outputs are parsed (tests/ssparse.py) and compared row for row, in
order: header column names, Netid/State presence, state names, queues,
addresses and ports (service and host names), UNIX paths and inodes, and the
process cell.  Column widths are not compared.

Each comparison runs ss, then sockscope, then ss again; if the two ss runs
differ (a TIME-WAIT socket expired in between), the triple is retried, so a
mismatch is never blamed on the population moving.

Normalisations (the only ones):
* the diag socket of the tool that is listing (``tcpdiag:ss/PID``, with -n
  ``4:PID``) is taken out of the ordered comparison, because its position in
  the netlink table depends on the lister's pid, and its queues and owner on
  the lister; each side must show exactly one such row (compared with
  owner/queues masked);
* the kernel's own ``tcpdiag:kernel`` row (``4:0``) has its queues masked: its
  Recv-Q is the size of the dump request in flight, which belongs to whoever
  is asking, not to the population.

stderr: where ss prints nothing on stderr, sockscope must print nothing;
where ss prints its 6.1 noise (``RTNETLINK answers: Invalid argument`` for
the absent dccp/sctp diag modules) sockscope may print its own notes, but
never a traceback.  The exit status must be 0 like ss's.

``SOCKSCOPE_FORCE_PROC=1`` runs the same option sets with the fields that
/proc cannot know masked on both sides (see :func:`relax_for_proc`) and
exactly one warning line on stderr; everything else stays strict, row order
included (``/proc/net/unix`` lists sockets in the same hash-bucket order as
unix_diag, and ``/proc/net/tcp`` in the same order as inet_diag).
"""

from __future__ import annotations

import difflib
import os
import shlex
import subprocess
from pathlib import Path
from typing import Iterable

import pytest

from conftest import Harness
from nsutil import Netns, Population, netns_list
from ssparse import Row, Table, format_row, parse, parse_users

# --------------------------------------------------------------------------------------------
# The option sets compared.  The brief's list first, then a few more for the state keywords,
# -4/-6 and -l/-a precedence, -A lists and -p.
OPTION_SETS: list[str] = [
    "-tan", "-tln", "-tuln", "-uan", "-xa", "-xl", "-a", "-an", "-l", "-tanp", "-xap", "-tap",
    "-ta", "-tl", "-4tan", "-6tan", "-t4", "-t6", "-tanH", "-tanO", "-A tcp,udp -an",
    "-A unix_stream -a", "-f inet -an", "-f inet6 -ln", "-tr", "-tanr",
    "state established", "-t state listening", "-t exclude listening", "-ta state connected",
    "-ta state synchronized", "-ta state bucket", "-ta state big", "-tn state time-wait",
    "-tn state close-wait state fin-wait-2", "-x state all", "-tnl -p", "-n -t -u -x -a",
    # more
    "", "-n", "-t", "-u", "-x", "-4", "-6", "-ua", "-uar", "-xan", "-xlp", "-tulnp", "-uap",
    "-4 -6 -tan", "-6 -4 -tan", "-tl -a", "-ta -l", "-A inet -n", "-A unix_dgram,unix_seqpacket -a",
    "-A all -an", "-f unix -a", "-f netlink", "-t state LISTENING", "-u state closed",
    "-u state unconnected", "-x state listening", "-ta exclude bucket", "-ta state syn-recv",
    "-tan state fin-wait-1", "-tan exclude established exclude time-wait", "-an state connected",
    "-ua state established", "-6 -a state listening", "-tanpH",
    # packet sockets (the population has three that never receive anything)
    "-A packet -a", "-A packet_raw -a", "-f link -an", "-ap",
]


def _ids(sets: Iterable[str]) -> list[str]:
    return [s if s else "(none)" for s in sets]


# --------------------------------------------------------------------------------------------
# Normalisation and comparison


def _is_netlink_row(row: Row) -> bool:
    # Netlink peers are a bare "*"; inet peers always have a ":port", UNIX peers an inode.
    return row.netid in ("nl", None) and row.peer_addr == "*" and row.peer_port == ""


def _is_self_diag_row(row: Row) -> bool:
    """The lister's own NETLINK_SOCK_DIAG socket: tcpdiag:<comm>/<pid> or 4:<pid>."""
    return _is_netlink_row(row) and row.local_addr in ("tcpdiag", "4") and row.local_port not in ("kernel", "0")


def normalise(table: Table) -> tuple[tuple[str, ...], list[Row], list[Row]]:
    """(columns, rows in order, the lister's own diag rows masked)."""
    rows: list[Row] = []
    own: list[Row] = []
    for row in table.rows:
        if _is_self_diag_row(row):
            own.append(row._replace(recv_q="Q", send_q="Q", local_port="<self>", process="<self>"))
            continue
        if _is_netlink_row(row) and row.local_addr in ("tcpdiag", "4"):
            row = row._replace(recv_q="Q", send_q="Q")  # the kernel end: holds the request in flight
        rows.append(row)
    return table.columns, rows, own


def relax_for_proc(row: Row) -> Row:
    """Mask what /proc/net/{tcp,tcp6,udp,udp6,unix} cannot express (SOCKSCOPE_FORCE_PROC=1).

    * UNIX Recv-Q/Send-Q: /proc/net/unix has no queue columns.
    * UNIX peer inode (the peer's "port"): /proc/net/unix does not name the peer.
    * ``%iface`` on a local address: /proc/net/tcp|udp have no bound-device column.
    * ``[::]`` vs ``*``: the v6only flag is not in /proc/net/tcp6|udp6, so a
      wildcard v6 address (local or peer) cannot be told dual-stack from
      v6only; both spellings are mapped to ``*``.
    * LISTEN Send-Q: for a listener ss shows the backlog (sk_max_ack_backlog);
      /proc/net/tcp's tx_queue column is 0 there.  (LISTEN Recv-Q, the accept
      queue, *is* in /proc and stays compared.)  When the State column is
      hidden, every TCP row with peer port ``*`` counts as a listener (with
      -u and Netid hidden too, that masks UDP Send-Q as well).
    Everything else (netid, state, other queues, addresses, ports, names,
    inodes, the process cell, the order) stays strict.
    """
    if row.netid in ("u_str", "u_dgr", "u_seq") or (row.netid is None and row.peer_addr == "*"
                                                     and row.peer_port.isdigit()):
        return row._replace(recv_q="?", send_q="?", peer_port="?")
    local = row.local_addr.split("%", 1)[0]
    local = "*" if local == "[::]" else local
    peer = "*" if row.peer_addr == "[::]" else row.peer_addr
    # With the State column hidden (one state shown), a TCP row whose peer port is "*" is a
    # listener (or CLOSE, whose Send-Q is 0 either way).
    listener = row.state == "LISTEN" or (row.state is None and row.netid != "udp" and row.peer_port == "*")
    send_q = "?" if listener else row.send_q
    return row._replace(local_addr=local, peer_addr=peer, send_q=send_q)


def _diff(a: list[Row], b: list[Row]) -> str:
    return "\n".join(difflib.unified_diff([format_row(r) for r in a], [format_row(r) for r in b],
                                          "ss", "sockscope", lineterm="", n=2))


def _short_cluster_has(arg: str, letter: str) -> bool:
    return arg.startswith("-") and not arg.startswith("--") and letter in arg[1:]


def _no_header(argv: list[str]) -> bool:
    return any(_short_cluster_has(a, "H") for a in argv)


def _columns_without_header(pop: Harness, argv: list[str]) -> tuple[str, ...]:
    """For -H runs: the columns ss prints for the same options without -H."""
    plain = [a.replace("H", "") if _short_cluster_has(a, "H") else a for a in argv]
    plain = [a for a in plain if a != "-"]
    res = pop.ss(plain)
    assert res.returncode == 0, res.stderr
    return parse(res.stdout).columns


def compare(pop: Harness, argv: list[str], *, env: dict[str, str] | None = None,
            proc_mode: bool = False, attempts: int = 4, ss_varies: int = 0) -> None:
    """Run ss / sockscope / ss with ``argv`` and fail with a precise report on any difference.

    ``ss_varies``: for an option set whose rows in ss depend on where ASLR puts ss's stack (a
    host prefix compared with the pointer ss keeps for a UNIX socket's name), how many times
    the whole comparison is run again when the rows differ.  sockscope gives the answer ss
    gives in most of its runs, so it must equal ss in one of them; an answer ss gives rarely
    (a /8 of zeros: one run of ss in 16, twice in a row needed) fails as before."""
    pop.ensure_timewait()
    no_header = _no_header(argv)
    columns = _columns_without_header(pop, argv) if no_header else None
    label = f"option set {shlex.join(argv) or '(none)'}" + (" with SOCKSCOPE_FORCE_PROC=1" if proc_mode else "")
    for _ in range(attempts):
        ss1 = pop.ss(argv)
        sc = pop.sockscope(argv, env)
        ss2 = pop.ss(argv)
        assert ss1.returncode == 0 and ss2.returncode == 0, f"ss failed: {ss1.stderr}{ss2.stderr}"
        n1, n2 = normalise(parse(ss1.stdout, columns=columns)), normalise(parse(ss2.stdout, columns=columns))
        if n1 == n2:
            break
    else:
        pytest.fail(f"{label}: the population moved between two ss runs {attempts} times in a row:\n"
                    + _diff(n1[1], n2[1]), pytrace=False)

    # --- status and stderr -----------------------------------------------------------------
    assert "Traceback" not in sc.stderr, f"{label}: sockscope crashed:\n{sc.stderr}"
    assert sc.returncode == 0, f"{label}: sockscope exited {sc.returncode}, ss 0; stderr:\n{sc.stderr}"
    err_lines = sc.stderr.splitlines()
    if proc_mode:
        # One warning line when something is read from /proc/net/{tcp,tcp6,udp,udp6,unix}; a
        # listing of netlink sockets only (-f netlink) reads none of those, so it may warn or not.
        reads_proc = any(not _is_netlink_row(r) and not (r.netid or "").startswith("p_") for r in n1[1])
        allowed = (1,) if reads_proc else (0, 1)
        assert len(err_lines) in allowed, f"{label}: expected {allowed} warning line(s) on stderr, got {err_lines!r}"
    elif not ss1.stderr.strip():
        # ss said nothing on stderr: neither may sockscope.  (Where ss 6.1 prints its
        # "RTNETLINK answers: Invalid argument" noise for absent dccp/sctp diag modules,
        # sockscope may say what it likes there, but no traceback.)
        assert err_lines == [], f"{label}: sockscope wrote to stderr, ss did not: {err_lines!r}"

    # --- table ------------------------------------------------------------------------------
    try:
        sc_table = parse(sc.stdout, columns=columns)
    except ValueError as exc:
        pytest.fail(f"{label}: sockscope output does not parse as an ss table: {exc}\n{sc.stdout}", pytrace=False)
    ss_cols, ss_rows, ss_own = n1
    sc_cols, sc_rows, sc_own = normalise(sc_table)
    assert sc_cols == ss_cols, f"{label}: columns differ: ss {ss_cols} sockscope {sc_cols}"
    if proc_mode:
        # Netlink (and packet) rows stay compared: /proc/net/netlink can express them, and ss
        # itself lists them from there when forced to /proc.  Only the lister's own diag row may
        # be missing: a lister reading /proc needs no sock_diag socket at all.
        ss_rows = [relax_for_proc(r) for r in ss_rows]
        sc_rows = [relax_for_proc(r) for r in sc_rows]
        if not sc_own:
            ss_own = []
    assert len(sc_own) == len(ss_own), (
        f"{label}: ss shows {len(ss_own)} row(s) for its own diag socket, sockscope {len(sc_own)}:\n"
        f"ss: {[format_row(r) for r in ss_own]}\nsockscope: {[format_row(r) for r in sc_own]}")
    if sc_own != ss_own:
        pytest.fail(f"{label}: the lister's own diag row differs:\n{_diff(ss_own, sc_own)}", pytrace=False)
    if sc_rows != ss_rows and ss_varies > 0:
        compare(pop, argv, env=env, proc_mode=proc_mode, attempts=attempts, ss_varies=ss_varies - 1)
        return
    if sc_rows != ss_rows:
        pytest.fail(f"{label}: {len(ss_rows)} ss rows vs {len(sc_rows)} sockscope rows differ "
                    f"(- ss, + sockscope):\n{_diff(ss_rows, sc_rows)}", pytrace=False)


# --------------------------------------------------------------------------------------------
# The harness itself, against ss only (these must pass whatever state sockscope is in)


_USUAL = """Netid State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process
u_str LISTEN 0      4096   @probe-a 1001            * 0
tcp   LISTEN 0      128    127.0.0.1:22      0.0.0.0:*
"""
_RARE = "".join(line + "\n" for line in _USUAL.splitlines() if not line.startswith("u_"))  # the UNIX row left out


class _Canned:
    """A population whose ss prints the given tables in turn and sockscope always ``ours``."""

    def __init__(self, ss_tables: list[str], ours: str) -> None:
        self._ss, self._ours = iter(ss_tables), ours

    def ensure_timewait(self) -> None:
        pass

    def ss(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(["ss", *argv], 0, next(self._ss), "")

    def sockscope(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(["sockscope", *argv], 0, self._ours, "")


def test_compare_runs_again_only_where_ss_varies() -> None:
    """``ss_varies``: where both ss runs gave ss's rare answer (a prefix that matched the stack
    pointer ss keeps for a UNIX name), the comparison is run again and passes on ss's usual
    answer; without it, or where sockscope gives the rare answer, it fails."""
    argv = ["-a", "not", "src", "0.0.0.0/8"]
    rare_first = [_RARE, _RARE, _USUAL, _USUAL]
    compare(_Canned(rare_first, _USUAL), argv, ss_varies=3)  # type: ignore[arg-type]
    with pytest.raises(pytest.fail.Exception, match="rows differ"):
        compare(_Canned(rare_first, _USUAL), argv)  # type: ignore[arg-type]
    with pytest.raises(pytest.fail.Exception, match="rows differ"):  # sockscope's answer must be ss's usual one
        compare(_Canned([_USUAL] * 8, _RARE), argv, ss_varies=3)  # type: ignore[arg-type]


def test_ss_output_parses_identically_twice(fresh_population: Harness) -> None:
    for argv in (["-an"], ["-tanp"], ["-xap"], ["-tuar"]):
        a, b = fresh_population.ss(argv), fresh_population.ss(argv)
        assert a.returncode == 0 and b.returncode == 0
        ta, tb = normalise(parse(a.stdout)), normalise(parse(b.stdout))
        assert ta == tb, _diff(ta[1], tb[1])
        assert len(ta[1]) > 10


def test_population_as_intended(fresh_population: Harness) -> None:
    pop = fresh_population
    info = pop.info
    main, child = info["main_pid"], info["child_pid"]

    def rows(argv: str) -> list[Row]:
        res = pop.ss(shlex.split(argv))
        assert res.returncode == 0, res.stderr
        return parse(res.stdout).rows

    tcp = rows("-tanp")
    by_state: dict[str, list[Row]] = {}
    for r in tcp:
        by_state.setdefault(r.state or "", []).append(r)
    listen = {(r.local_addr, r.local_port): r for r in by_state["LISTEN"]}
    for key in [("127.0.0.1", "22"), ("[::1]", "80"), ("0.0.0.0", "7001"), ("*", "8443"), ("[::]", "9001"),
                ("127.0.0.1", "5001"), ("127.0.0.1%lo", "9999"), ("[::1]%lo", "4443"), ("0.0.0.0", "21")]:
        assert key in listen, f"no LISTEN {key} in {sorted(listen)}"
    assert listen[("*", "8443")].peer_addr == "*" and listen[("[::]", "9001")].peer_addr == "[::]"
    acc = listen[("127.0.0.1", "5001")]
    assert (acc.recv_q, acc.send_q) == ("2", "7"), "accept queue listener"
    shared = parse_users(listen[("0.0.0.0", "21")].process)
    assert len(shared) == 2 and {p for _, p, _ in shared} == {main, child}, shared
    assert [n for n, _, _ in shared] == ["sspop-child", "sspop-main"], "reverse discovery order"

    estab = by_state["ESTAB"]
    assert any(r.local_addr == r.peer_addr == "[::ffff:127.0.0.1]" for r in estab), "v4-mapped pair"
    assert any(r.local_addr == "[::1]" and r.peer_port == "80" for r in estab), "v6 pair"
    assert any(r.recv_q == "1234" for r in estab), "Recv-Q 1234"
    assert any(r.recv_q == "77" for r in estab), "Recv-Q 77"
    assert any(int(r.send_q) > 0 for r in estab), "a non-zero Send-Q"
    assert sum(1 for r in estab if r.peer_port == "5001" or r.local_port == "5001") == 4
    assert sum(1 for r in estab if r.local_port == "5001" and r.process == "") == 2, "unaccepted: no owner"
    for state in ("FIN-WAIT-2", "CLOSE-WAIT", "TIME-WAIT"):
        fams = {r.local_addr for r in by_state.get(state, [])}
        assert {"127.0.0.1", "[::1]"} <= fams, f"{state} in both families: {fams}"
    assert all(r.process == "" for r in by_state["TIME-WAIT"])

    named = {(r.local_addr, r.local_port) for r in rows("-ta")}
    assert {("127.0.0.1", "ssh"), ("[::1]", "http"), ("0.0.0.0", "ftp"), ("0.0.0.0", "7001")} <= named
    udp_named = {(r.local_addr, r.local_port) for r in rows("-ua")}
    assert {("127.0.0.1", "domain"), ("127.0.0.1", "22"), ("0.0.0.0", "afs3-callback"), ("*", "9002"),
            ("[::]", "9003"), ("127.0.0.1%lo", "9876"), ("[::1]", "5678")} <= udp_named
    assert {("localhost", "ssh"), ("ip6-localhost", "http")} <= {(r.local_addr, r.local_port) for r in rows("-tar")}
    udp = rows("-uan")
    assert any(r.state == "ESTAB" and r.peer_port == "53" for r in udp)
    assert any(r.local_port == "53" and int(r.recv_q) > 0 for r in udp)

    unix = rows("-xanp")
    local = {r.local_addr for r in unix}
    assert set(info["unix_paths"]) <= local
    assert {info["abstract"], "@ss@nul", info["autobind"], "*"} <= local
    kinds = {(r.netid, r.state) for r in unix}
    assert {("u_str", "LISTEN"), ("u_seq", "LISTEN"), ("u_dgr", "UNCONN"), ("u_str", "UNCONN"),
            ("u_str", "ESTAB"), ("u_seq", "ESTAB"), ("u_dgr", "ESTAB")} <= kinds
    inode_to_row = {r.local_port: r for r in unix}
    pairs = [r for r in unix if r.local_addr == "*" and r.peer_port != "0"
             and inode_to_row.get(r.peer_port) and inode_to_row[r.peer_port].local_addr == "*"]
    assert pairs, "a socketpair (both ends unnamed, peers of each other)"
    assert any(r.netid == "u_str" and r.local_addr == "*" and r.peer_port == "0" and r.state == "UNCONN"
               for r in unix), "an unnamed, unconnected socket"
    assert any(r.recv_q == "321" for r in unix)
    holders = {p for r in unix for _, p, _ in parse_users(r.process)}
    assert holders == {main, child}

    packet = {(r.netid, r.local_addr, r.local_port) for r in rows("-a") if (r.netid or "").startswith("p_")}
    assert packet == {("p_dgr", "[34997]", "lo"), ("p_raw", "[0]", "*"), ("p_raw", "arp", "lo")}, packet


def test_timewait_refresh_adds_fresh_pair(population: Harness) -> None:
    """ensure_timewait() really makes a new TIME-WAIT pair (v4 and v6) when the last is old."""
    pop = population.population
    before = pop.tw_time
    pop.ensure_timewait(min_left=60.0)  # "60 s left" is never true: forces a new pair
    assert pop.tw_time > before
    res = population.ss(["-tn", "state", "time-wait"])
    rows = parse(res.stdout).rows
    assert {"127.0.0.1", "[::1]"} <= {r.local_addr for r in rows}
    assert all(r.peer_port == "3456" for r in rows), rows
    # and an orphaned FIN-WAIT-2 per family: a mini-socket (ss -o: the timewait timer), beside the
    # shut-down FIN-WAIT-2 that is a full socket (no timer: its owner still holds it)
    fw2 = [line for line in population.ss(["-tnoH", "state", "fin-wait-2"]).stdout.splitlines() if line.strip()]
    orphans = [line for line in fw2 if "timer:(timewait," in line and line.split()[3].endswith(":3456")]
    assert {line.split()[2].rpartition(":")[0] for line in orphans} == {"127.0.0.1", "[::1]"}, fw2
    assert any(":2345" in line and "timer:" not in line for line in fw2), fw2


def test_population_start_failure_cleans_up() -> None:
    """A population that dies before READY: the error surfaces, nothing is left behind."""
    netns = Netns()
    try:
        with pytest.raises((EOFError, RuntimeError)):
            Population(netns, python="/bin/false", ready_timeout=10)
    finally:
        netns.delete()
    assert netns.name not in netns_list()
    assert not netns.etc_dir.exists()


def test_population_stop_ends_everything() -> None:
    """A second, private population: stop() ends both processes by pid and removes its files."""
    netns = Netns()
    pop = None
    try:
        pop = Population(netns)
        assert len(pop.pids) == 2 and len(pop.alive_pids()) == 2
        assert all(os.path.exists(p) for p in pop.info["unix_paths"])
    finally:
        if pop is not None:
            pop.stop()
        netns.delete()
    assert pop is not None and pop.alive_pids() == []
    assert not os.path.exists(pop.tmpdir)
    assert netns.name not in netns_list()


# --------------------------------------------------------------------------------------------
# sockscope vs ss


@pytest.mark.parametrize("options", OPTION_SETS, ids=_ids(OPTION_SETS))
def test_same_rows_as_ss(fresh_population: Harness, options: str) -> None:
    compare(fresh_population, shlex.split(options))


@pytest.mark.parametrize("options", OPTION_SETS, ids=_ids(OPTION_SETS))
def test_same_rows_as_ss_from_proc(fresh_population: Harness, options: str) -> None:
    compare(fresh_population, shlex.split(options), env={"SOCKSCOPE_FORCE_PROC": "1"}, proc_mode=True)


# --------------------------------------------------------------------------------------------
# /etc/services as ss reads it, odd and hostile lines included

_SERVICES = (
    "# a comment naming 25/tcp names nothing\n"
    "   spaced-name \t7/tcp   alias-one alias-two   # after the entry\n"
    "first-wins      9/tcp\n"
    "second-loses    9/tcp\n"
    "crlf-line\t13/tcp\r\n"
    "udp-only        17/udp\n"
    "unicode-digit   \u00b2/tcp\n"
    "huge-port       " + "9" * 5000 + "/tcp\n"
    "six-digits      100019/tcp\n"
    "with#hash       19/tcp\n"
    "pct%name        21/tcp\n"
    "not-a-port      abc/tcp\n"
    "other-proto     23/tcpx\n"
    "no-newline-at-end 24/tcp"
)

_NAMED = r"""
import json, socket, subprocess, sys
subprocess.run(["mount", "--bind", sys.argv[1], "/etc/services"], check=True)
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
keep = []
for port in (7, 9, 13, 17, 19, 21, 23, 24, 25):
    s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen(); keep.append(s)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 17)); keep.append(u)
out = {}
for argv in (["-tl"], ["-ul"], ["-tul"], ["-tle"], ["-a"]):
    ss = subprocess.run(["ss", *argv], capture_output=True, text=True, check=True).stdout
    ours = subprocess.run([sys.executable, "-m", "sockscope", *argv], capture_output=True, text=True)
    keepers = lambda text: [ln for ln in text.splitlines() if not ln.startswith(("nl ", "u_", "p_"))]
    out[" ".join(argv)] = {"same": keepers(ss) == keepers(ours.stdout) if argv != ["-a"] else
                           [ln.split() for ln in keepers(ss)] == [ln.split() for ln in keepers(ours.stdout)],
                           "rc": ours.returncode, "stderr": ours.stderr, "ours": ours.stdout}
json.dump(out, sys.stdout)
"""


def test_service_names_of_an_odd_services_file_are_ss_s(tmp_path: Path) -> None:
    """Port names come from /etc/services as ss (getservbyport) reads it: the first line of a port
    wins, comments, tabs, CRLF, aliases and a last line without a newline; a port of Unicode
    digits, of 5,000 digits or of six digits, a name with ``#`` or ``%``, another protocol's entry:
    no traceback, and the same tables as ss's (a private mount and network namespace, the file
    bound over /etc/services there)."""
    import json
    import subprocess
    import sys

    services = tmp_path / "services"
    services.write_bytes(_SERVICES.encode("utf-8"))
    proc = subprocess.run(["unshare", "-m", "-n", sys.executable, "-c", _NAMED, str(services)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for argv, res in got.items():
        assert res["rc"] == 0 and res["stderr"] == "", (argv, res["stderr"])
        assert res["same"], (argv, res["ours"])
    tl = got["-tl"]["ours"]
    assert all(name in tl for name in ("spaced-name", "first-wins", "crlf-line", "pct%name"))
    assert "second-loses" not in tl and "udp-only" not in tl and "udp-only" in got["-ul"]["ours"]


_TABLE_ORDER = r"""
import json, socket, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
keep = []
for port in (5555, 22, 7, 9, 53, 3306):  # named for TCP, for UDP only (5555), as protocols (7, 9, 22) or not at all
    m = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)  # IPPROTO_MPTCP
    m.bind(("127.0.0.1", port)); m.listen(); keep.append(m)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 5555)); keep.append(u)
keep.append(socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))       # 0.0.0.0:icmp
keep.append(socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6))    # *:ipv6-icmp
keep.append(socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP))        # 0.0.0.0:udp
out = {}
for argv in (["-aM"], ["-atM"], ["-auM"], ["-awM"], ["-A", "mptcp,raw", "-a"], ["-tulwM"], ["-wa"], ["-w"],
             ["-wan"], ["-6wa"], ["-wae"], ["-wao"], ["-wam"], ["-wai"], ["-waeimo"]):
    ss = subprocess.run(["ss", *argv], capture_output=True, text=True, check=True).stdout
    ours = subprocess.run([sys.executable, "-m", "sockscope", *argv], capture_output=True, text=True)
    out[" ".join(argv)] = {"ss": ss, "ours": ours.stdout, "rc": ours.returncode, "stderr": ours.stderr}
json.dump(out, sys.stdout)
"""


def test_port_names_follow_ss_table_order_and_raw_columns_are_ss_s() -> None:
    """ss names the ports of the tables it shows after raw, UDP and TCP (MPTCP, SCTP, DCCP) by the
    protocol of the last of those listed with them: TCP's services, UDP's, raw's protocol names
    (``ipproto-5555``), any protocol's where none is (5555 is named for UDP only).  A raw socket's
    protocol name widens its own column only (``*:ipv6-icmp`` left the peer column five wider),
    and a raw socket read from /proc has no ``-e``, ``-o``, ``-m`` or ``-i`` text (ss's /proc reader
    prints none; this kernel has no raw_diag).  Whole tables, compared as ss prints them."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _TABLE_ORDER], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for argv, res in got.items():
        assert res["rc"] == 0 and res["stderr"] == "", (argv, res["stderr"])
        assert res["ours"] == res["ss"], f"{argv}:\nss:\n{res['ss']}\nours:\n{res['ours']}"
    assert "ipproto-5555" in got["-awM"]["ours"] and ":rplay" in got["-aM"]["ours"]
    assert ":ssh" in got["-atM"]["ours"] and "ipv6-icmp" in got["-wa"]["ours"]


def test_protocol_names_of_an_odd_protocols_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A raw socket's port is its protocol, named from /etc/protocols: the first line of a number
    wins; a number of Unicode or too many digits, or inside a comment, names nothing (no traceback)."""
    from sockscope.render import names

    path = tmp_path / "protocols"
    path.write_bytes(("# 1 comment-only\nicmp-first 1 ICMP\nicmp-second 1\nsup \u00b2\nhuge " + "9" * 5000
                      + "\nfour-digits 1234\nudp\t17\tUDP # user datagram\r\n").encode("utf-8"))
    monkeypatch.setattr(names, "PROTOCOLS", str(path))
    monkeypatch.setattr(names, "_protocols", None)
    assert [names.protocol(n) for n in (1, 17, 2, 234)] == ["icmp-first", "udp", "ipproto-2", "ipproto-234"]
