"""Side-by-side benchmark of sockscope against ss, netstat, psutil and pyroute2.

Contract
--------
``python bench/run.py --setup`` creates ``bench/.venv`` with the peer tools of
``bench/requirements.txt`` and the project installed editable.

``python bench/run.py [--sizes 100,10000] [--runs 7] [--only tan,tanp]
[--json FILE] [--netns NAME] [--sockscope CMD]`` builds, for each size, a
population (:mod:`population`: ``size`` ESTABLISHED sockets plus 170 listeners
and 60 UDP sockets, so that ``-tuln`` lists ~200) in a private namespace, runs
every row there, deletes it, and prints a markdown table (what, population,
sockscope median, peer median, ratio, target, met?, peak RSS) followed by
notes and the versions.  ``--netns NAME`` measures an existing namespace
instead (its sockets as they are; it is never deleted).  Rows whose target
names a size only run at that size by default (``tan_tw`` at >= 100k);
``--only`` runs the named rows at every size.

``--populations dual10k,mixed10k,...`` (or ``all``) also measures the
populations shaped like real hosts' (:mod:`shapes`), each built in its own
namespace and deleted after its rows; ``--scale`` shrinks them (the smoke
test).  With ``--populations`` and no ``--sizes``, only they run.  Their
rows are side by side with ss (same options) or psutil (the same kind), with
the issue's targets judged on ss's own time (``population_target``); every
row also checks that both sides returned the same (line counts; psutil's
connections as a multiset) and is not met when they differ.

Every measurement runs *inside* the namespace, in one process started with
``ip netns exec NAME <python> bench/run.py --inner SPEC`` (bench venv python
when it exists): CLI commands are spawned directly with stdout on /dev/null
and reaped with ``os.wait4`` for their peak RSS; the sides of a row alternate
(ABBA), after one untimed warm-up each whose output is kept to count lines.
A sockscope command that fails is reported ("unsupported" for usage errors,
else "error: ...") and never stops the run; a missing peer is "unavailable".
The TIME-WAIT row is measured right after adding ``--time-wait`` sockets,
because the kernel expires them after 60 s; their count before and after is
noted.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import importlib.util
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"


def _load_sibling(name: str) -> ModuleType:
    """Import ``bench/<name>.py`` by path (``tests/`` has a module of the same name)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


population = _load_sibling("population")
shapes = _load_sibling("shapes")
measure = _load_sibling("measure")
if TYPE_CHECKING:
    from measure import GNU_TIME, PYTHON, Row, Side, Target, cell, spread
    from population import Population
else:
    GNU_TIME, PYTHON, Row, Side, Target = measure.GNU_TIME, measure.PYTHON, measure.Row, measure.Side, measure.Target
    cell, spread = measure.cell, measure.spread

FILTER = ("dport", "=", f":{population.FILTER_PORT}")
#: extra sockets in every population built here: ``-tuln`` then lists ~200
LISTENERS, UDP_SOCKETS = 170, 60


LE_1 = Target("≤ 1.0×", max_ratio=1.0)
ROWS: tuple[Row, ...] = (
    Row("tan", "`sockscope -tan` vs `ss -tan`", ("-tan",), ("ss", "-tan"), targets={10_000: LE_1, 100_000: LE_1},
        rss_targets={100_000: Target("≤ 64 MiB", max_rss_mib=64)}, same_output=True, goal="listing"),
    Row("tanp", "`sockscope -tanp` vs `ss -tanp`", ("-tanp",), ("ss", "-tanp"), same_output=True, goal="owners",
        targets={10_000: Target("≤ 0.5×", max_ratio=0.5), 100_000: Target("≤ 0.2×", max_ratio=0.2)}),
    # -p where the kernel's BPF iterator is not there to use (a container without CAP_BPF, an older kernel):
    # the owners from the /proc walk, as ss finds them
    Row("tanp_walk", "`SOCKSCOPE_OWNERS=proc sockscope -tanp` vs `ss -tanp`", ("-tanp",), ("ss", "-tanp"),
        same_output=True, goal="owners", shaped_only=True, env={"SOCKSCOPE_OWNERS": "proc"}),
    Row("tani", "`sockscope -tani` vs `ss -tani`", ("-tani",), ("ss", "-tani"), same_output=True,
        targets={10_000: Target("≤ 1.2×", max_ratio=1.2)}, goal="listing"),  # (on a population: the listings')
    Row("tan_tw", "`sockscope -tan` vs `ss -tan`, TIME-WAIT added", ("-tan",), ("ss", "-tan"), same_output=True,
        time_wait=True, min_size=100_000, targets={100_000: LE_1}),
    Row("tuln", "`sockscope -tuln` vs `python -c pass`", ("-tuln",), (PYTHON, "-c", "pass"),
        targets={100: Target("≤ 30 ms and ≤ 2.5×", max_ratio=2.5, max_ms=30)}),  # the small population
    Row("tuln_ss", "`sockscope -tuln` vs `ss -tuln`", ("-tuln",), ("ss", "-tuln"), same_output=True),
    # the commonest -p listing, on the small population (ss's walk of /proc is quick there: the target is 30 ms),
    # with the owners from the kernel's iterator and from the /proc walk
    Row("tulpn", "`sockscope -tulpn` vs `ss -tulpn`", ("-tulpn",), ("ss", "-tulpn"), same_output=True, goal="owners",
        targets={100: Target("≤ 30 ms (ss < 10 ms)", max_ms=30)}),
    Row("tulpn_walk", "`SOCKSCOPE_OWNERS=proc sockscope -tulpn` vs `ss -tulpn`", ("-tulpn",), ("ss", "-tulpn"),
        same_output=True, goal="owners", env={"SOCKSCOPE_OWNERS": "proc"},
        targets={100: Target("≤ 30 ms (ss < 10 ms)", max_ms=30)}),
    Row("filter", "1% filter `-tan dport = :20000` vs ss", ("-tan", *FILTER), ("ss", "-tan", *FILTER),
        same_output=True, targets={100_000: Target("≤ 1.5×", max_ratio=1.5)}),
    Row("netstat", "`sockscope -tan` vs `netstat -tan`", ("-tan",), ("netstat", "-tan")),
    Row("net_connections", '`net_connections("tcp")` vs psutil', ("sockscope.net_connections",),
        ("psutil.net_connections",), inproc=True, goal="api",
        targets={n: Target("≥ 10× faster", max_ratio=0.1) for n in (10_000, 100_000)}),
    Row("sockets", '`list(sockets("tcp"))` vs pyroute2 DiagSocket', ("sockscope.sockets",),
        ("pyroute2.get_sock_stats",), inproc=True, targets={10_000: Target("≥ 20× faster", max_ratio=0.05)}),
    # the populations' rows (shapes.SHAPES says which run where); net_connections above is the tcp one
    *(Row(name, f"`sockscope {opts}` vs `ss {opts}`", (opts,), ("ss", opts), same_output=True, goal="listing",
          shaped_only=True) for name, opts in (("a", "-a"), ("l", "-l"), ("t", "-t"), ("xa", "-xa"), ("uan", "-uan"),
                                               ("s", "-s"), ("tln", "-tln"))),
    # filters ss applies in userspace: a UNIX glob (ss's fnmatch of each name), and a port filter over
    # every family (the kernel's bytecode for inet sockets; UNIX, netlink, packet ones in userspace)
    Row("xsrc", "`sockscope -xa src '*/l0-*'` vs ss", ("-xa", "src", "*/l0-*"), ("ss", "-xa", "src", "*/l0-*"),
        same_output=True, goal="listing", shaped_only=True),
    Row("asport", "`sockscope -a sport = :31001` vs ss", ("-a", "sport", "=", ":31001"),
        ("ss", "-a", "sport", "=", ":31001"), same_output=True, goal="listing", shaped_only=True),
    # (their Python floors: the same dumps, the TCP one with the filter's bytecode)
    Row("xsrc_floor", "Python floor of `-xa src '*/l0-*'` vs ss", ("-xa", "src", "*/l0-*"),
        ("ss", "-xa", "src", "*/l0-*"), floor=True, shaped_only=True),
    Row("asport_floor", "Python floor of `-a sport = :31001` vs ss", ("-a", "sport", "=", ":31001"),
        ("ss", "-a", "sport", "=", ":31001"), floor=True, shaped_only=True),
    Row("tlnp", "`sockscope -tlnp` vs `ss -tlnp`", ("-tlnp",), ("ss", "-tlnp"), same_output=True, goal="owners",
        shaped_only=True),
    # ss -T: every thread holding each socket (the /proc walk of every thread's fd table)
    Row("tanT", "`sockscope -tanT` vs `ss -tanT`", ("-tanT",), ("ss", "-tanT"), same_output=True, goal="owners",
        shaped_only=True),
    # the detail options (-o -e -m --tos, with -i): texts made from the batches' columns since session 32
    *(Row(name, f"`sockscope {opts}` vs `ss {opts}`", (opts,), ("ss", opts), same_output=True, goal="listing",
          shaped_only=True) for name, opts in (("tano", "-tano"), ("tane", "-tane"), ("tanm", "-tanm"),
                                               ("tanmi", "-tanmi"), ("uanm", "-uanm"), ("xam", "-xam"),
                                               ("xae", "-xae"))),
    # JSON (every field of every socket, tcp_info and skmem among them): against ss's nearest text, -tanmie
    Row("json", "`sockscope -tan --json` vs `ss -tanmie`", ("-tan", "--json"), ("ss", "-tanmie"), shaped_only=True),
    # every namespace at once (netns40): ss lists one namespace a run, so the peer is ss run in each named one
    *(Row(f"allnetns_{name}", f"`sockscope --all-netns {opts}` vs `ip -all netns exec ss {opts}`",
          ("--all-netns", opts), ("ip", "-all", "netns", "exec", "ss", opts), goal=goal, shaped_only=True,
          netns_rows=True)
      for name, opts, goal in (("tan", "-tan", "listing"), ("tanp", "-tanp", "owners"), ("a", "-a", "listing"))),
    *(Row(f"nc_{kind}", f'`net_connections("{kind}")` vs psutil', ("sockscope.net_connections",),
          ("psutil.net_connections",), inproc=True, kind=kind, goal="api", shaped_only=True)
      for kind in ("udp", "unix", "all")),
    # net_connections where the kernel's BPF iterator cannot be used: the owners by the /proc walk, the
    # system calls psutil makes
    *(Row(f"nc_{kind}_walk", f'`SOCKSCOPE_OWNERS=proc net_connections("{kind}")` vs psutil',
          ("sockscope.net_connections",), ("psutil.net_connections",), inproc=True, kind=kind, goal="api",
          shaped_only=True, env={"SOCKSCOPE_OWNERS": "proc"})
      for kind in ("tcp", "all")),
    # the Python floor of a listing (floor.py: the interpreter and the listing's dump, nothing decoded):
    # what is left of 1.5× ss above it is all a Python listing has for its own work
    *(Row(f"{name}_floor", f"Python floor of `{opts}` vs `ss {opts}`", (opts,), ("ss", opts), floor=True,
          shaped_only=True) for name, opts in (("tan", "-tan"), ("xa", "-xa"), ("uan", "-uan"), ("t", "-t"),
                                               ("a", "-a"), ("tln", "-tln"))),
)
ROW_BY_NAME = {row.name: row for row in ROWS}


def population_target(row: Row, peer_ms: float | None) -> Target | None:
    """The issue's target for a row on the shaped populations (a listing's depends on ss's own time)."""
    if row.goal == "owners":
        return Target("≤ 1.0× ss", max_ratio=1.0)
    if row.goal == "api":
        return Target("≥ 5× faster", max_ratio=0.2)
    if row.goal != "listing" or peer_ms is None:
        return None
    if peer_ms >= 10:
        return Target("≤ 1.5× (ss ≥ 10 ms)", max_ratio=1.5)
    return Target("≤ 30 ms (ss < 10 ms)", max_ms=30)


def _size_label(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


@dataclass
class Result:
    row: Row
    population: str
    size: int | None
    ours: Side
    peer: Side
    notes: list[str]
    same: bool | None = None  # both sides returned the same (None: not compared)
    shape: str | None = None  # a population of shapes.SHAPES
    spoiled: str | None = None  # the population changed during the row: why


@dataclass(frozen=True)
class Venv:
    """What one interpreter's rows run: the sockscope command, the python beside it (``python -c pass``,
    the floor rows, psutil's command rows) and the one that runs the inner side (the in-process rows);
    ``tag`` ends its rows' population label where a run measures two (``--also-venv``), else ""."""

    sockscope: list[str]
    python: str
    inner: str
    tag: str = ""


def venvs(args: argparse.Namespace) -> list[Venv]:
    """The interpreters a run measures: the bench venv's, then ``--also-venv``'s (each row under both)."""
    main = Venv(args.sockscope, args.python, args.inner_python)
    if args.also_venv is None:
        return [main]
    other = args.also_venv
    names = (args.venv.name, other.name) if args.venv.name != other.name else (str(args.venv), str(other))
    return [Venv(main.sockscope, main.python, main.inner, f" [{names[0]}]"),
            Venv([str(other / "bin" / "sockscope")], str(other / "bin" / "python"), str(other / "bin" / "python"),
                 f" [{names[1]}]")]


def _turn(each: list[Venv], k: int) -> list[Venv]:
    """The order in which row ``k`` is measured under the interpreters ``each``: one first, then the other."""
    return each if k % 2 == 0 else each[::-1]


def run_inner(netns: str, rows: Sequence[Row], args: argparse.Namespace, venv: Venv
              ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Measure ``rows`` inside ``netns`` with a ``--inner`` process of ``venv`` (see :func:`venvs`);
    its decoded JSON."""
    spec = {"rows": [r.name for r in rows], "runs": args.runs, "sockscope": venv.sockscope, "python": venv.python}
    argv = ["ip", "netns", "exec", netns, venv.inner, str(Path(__file__).resolve()), "--inner", json.dumps(spec)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode:
        raise RuntimeError(f"inner benchmark failed (exit {proc.returncode})")
    data = json.loads(out)
    return data["results"], data["versions"]


def _results(raw: list[dict[str, Any]], label: str, size: int | None, extra: list[str],
             shape: str | None = None) -> list[Result]:
    """Results from the inner JSON; ``extra`` notes go on the first row."""
    out = []
    for i, r in enumerate(raw):
        notes = r["notes"] + (extra if i == 0 else [])
        out.append(Result(ROW_BY_NAME[r["row"]], label, size, Side(**r["ours"]), Side(**r["peer"]), notes,
                          r["same"], shape))
    return out


def _check_population(pop: Population) -> list[str]:
    states = pop.tcp_states()
    seen, expected = sum(states.values()), pop.expected_tcp()
    if seen != expected:
        return [f"population check: ss -tanH shows {seen} sockets, builder made {expected}"]
    return []


def bench_size(size: int | None, rows: Sequence[Row], args: argparse.Namespace) -> tuple[list[Result], dict[str, str]]:
    """Build (or attach to) a population, measure the rows, clean up."""
    netns = args.netns or f"sockscope-bench-{os.getpid()}"
    plain = [r for r in rows if not r.time_wait]
    with_tw = [r for r in rows if r.time_wait]
    n = size or 0
    print(f"population {netns}: {n} ESTABLISHED", file=sys.stderr, flush=True)
    with population.build(netns, n, listeners=LISTENERS if size else 0, udp=UDP_SOCKETS if size else 0) as pop:
        label = _size_label(n) if size else f"{netns} ({sum(pop.tcp_states().values())} tcp)"
        notes = (_check_population(pop) if size else []) + (_quiet(args) if args.quiet_below else [])
        results: list[Result] = []
        versions: dict[str, str] = {}
        if plain:  # (two interpreters: row by row, one first, then the other first)
            each = venvs(args)
            for k, group in enumerate([plain] if len(each) == 1 else [[row] for row in plain]):
                got = {venv.tag: run_inner(netns, group, args, venv) for venv in _turn(each, k)}
                for i, venv in enumerate(each):
                    raw, versions = got[venv.tag]
                    results += _results(raw, label + venv.tag, size, [] if i else notes)
                notes = []
        if with_tw:
            pop.add_time_wait(args.time_wait)
            before = pop.tcp_states()["TIME-WAIT"]
            got = [(venv, run_inner(netns, with_tw, args, venv)) for venv in venvs(args)]
            after = pop.tcp_states()["TIME-WAIT"]
            tw_note = f"TIME-WAIT sockets: {before} before the row, {after} after"
            tw_label = f"{label} + {_size_label(args.time_wait)} TIME-WAIT"
            for venv, (raw, _) in got:
                results += _results(raw, tw_label + venv.tag, size, [tw_note])
            versions = got[-1][1][1]
    return results, versions


def _ss_lines(netns: str, option: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", netns, "ss", option + "H"], capture_output=True, text=True,
                         check=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def _check_shape(pop: Population) -> list[str]:
    """The builder's counts against ss's, per protocol (in each namespace of a population of several)."""
    expected: collections.Counter[str] = collections.Counter()
    seen: collections.Counter[str] = collections.Counter()
    processes = 0
    for one in (pop, *pop.companions):
        c = one.counts
        expected.update({"-tan": one.expected_tcp(), "-uan": c["udp"], "-xan": c["unix"]})
        seen.update({option: _ss_lines(one.netns, option) for option in ("-tan", "-uan", "-xan")})
        processes += c.get("processes", 0)
    text = ", ".join(f"ss {o}: {seen[o]}" for o in ("-tan", "-uan", "-xan"))
    where = f" over {1 + len(pop.companions)} namespaces" if pop.companions else ""
    if seen != expected:
        return [f"population check FAILED: {text}{where}; builder made {dict(expected)}"]
    return [f"population: {text}{where} (as built), {processes} processes"]


def _fresh_time_wait(pop: Population, budget: float) -> str | None:
    """Before a row: if the TIME-WAIT sockets may expire within ``budget`` seconds, wait until they
    have, then make them again (the kernel keeps them 60 s).  A note when it did."""
    if not pop.time_wait_specs or pop.time_wait_deadline is None:
        return None
    left = pop.time_wait_deadline - time.monotonic()
    if left > budget:
        return None
    time.sleep(max(left, 0) + 1)
    for _ in range(100):  # they go within a timer tick or so of the deadline
        if not pop.tcp_states()["TIME-WAIT"]:
            break
        time.sleep(0.1)
    pop.renew_time_wait()
    return f"TIME-WAIT made again before this row ({left:.0f} s were left, the row may take {budget:.0f} s)"


def bench_shape(shape: Any, rows: Sequence[Row], args: argparse.Namespace) -> tuple[list[Result], dict[str, str]]:
    """Build one shaped population, check it against ss, measure its rows one by one, delete it.

    With TIME-WAIT sockets every row must run within their 60 s: rows start only with enough time left
    (1.5× the longest row so far, + 5 s), else the sockets are made again, and a row during which their
    count changed says so (its results are not comparable)."""
    netns = f"sockscope-bench-{os.getpid()}"
    print(f"population {shape.name} (scale {args.scale}) in {netns}", file=sys.stderr, flush=True)
    label = shape.label if args.scale == 1 else f"{shape.label} (×{args.scale})"
    results: list[Result] = []
    versions: dict[str, str] = {}
    longest = 20.0
    with shapes.build(shape.name, netns, scale=args.scale, python=args.inner_python) as pop:
        notes = _check_shape(pop) + _quiet(args)
        each = venvs(args)
        for k, row in enumerate(rows):
            renewed = _fresh_time_wait(pop, 1.5 * longest + 5)
            tw = pop.counts["time_wait"]
            before = pop.tcp_states()["TIME-WAIT"] if tw else 0
            started = time.monotonic()
            # (two interpreters: one first, then the other first, row by row)
            got = {venv.tag: run_inner(netns, [row], args, venv) for venv in _turn(each, k)}
            longest = max(longest, time.monotonic() - started)
            after = pop.tcp_states()["TIME-WAIT"] if tw else 0
            tw_notes = []
            if before != tw or after != tw:
                tw_notes.append(f"TIME-WAIT sockets CHANGED during the row: {before} before, {after} after (of {tw})")
            elif tw:
                tw_notes.append(f"TIME-WAIT sockets: all {tw} there before and after the row")
            extra = notes + ([renewed] if renewed else []) + tw_notes
            notes = []
            for i, venv in enumerate(each):  # (the population's notes on the first interpreter's row only)
                raw, versions = got[venv.tag]
                results += _results(raw, label + venv.tag, None, tw_notes if i else extra, shape.name)
                if before != tw or after != tw:
                    results[-1].spoiled = "TIME-WAIT expired"
    return results, versions


# --------------------------------------------------------------------------- report


def _target(r: Result) -> Target | None:
    return population_target(r.row, r.peer.median_ms()) if r.shape else r.row.target(r.size)


def _verdict(r: Result) -> tuple[str, str, str]:
    """(ratio, target, met?) cells; a row whose sides returned different results is not met."""
    a, b = r.ours.median_ms(), r.peer.median_ms()
    target = _target(r)
    if r.spoiled:
        return "—", target.text if target else "", f"n/a ({r.spoiled})"
    if a is None or not b:
        return "—", target.text if target else "", "n/a" if target else ""
    ratio = a / b
    if target is None:
        return f"{ratio:.2f}×", "", "**NO** (results differ)" if r.same is False else ""
    met = (target.max_ratio is None or ratio <= target.max_ratio) and (target.max_ms is None or a <= target.max_ms)
    if r.same is False:
        return f"{ratio:.2f}×", target.text, "**NO** (results differ)"
    return f"{ratio:.2f}×", target.text, "yes" if met else "**NO**"


def _rss(side: Side) -> str:
    mib = side.peak_rss_mib()
    return f"{mib:.1f} MiB" if mib is not None else ""


def _shape_table(results: Sequence[Result]) -> list[str]:
    """The populations' table: medians with their min–max, ratio, target, met?, what each side returned."""
    lines = [
        "| population | what | sockscope (min–max ms) | peer (min–max ms) | ratio | target | met? | rows: ours/peer "
        "| peak RSS: ours/peer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio, target, met = _verdict(r)
        counts = f"{r.ours.lines} / {r.peer.lines}" if r.ours.lines is not None else ""
        lines.append(
            f"| {r.population} | {r.row.what} | {cell(r.ours)} ({spread(r.ours)}) | {cell(r.peer)} ({spread(r.peer)}) "
            f"| {ratio} | {target} | {met} | {counts} | {_rss(r.ours) or '—'} / {_rss(r.peer) or '—'} |"
        )
    return lines


def table(results: Sequence[Result]) -> str:
    """The markdown table of all results (the populations' in a second table), the RSS target lines, the notes."""
    lines = [
        "| what | population | sockscope | peer | ratio | target | met? | sockscope peak RSS | peer peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    shaped = [r for r in results if r.shape]
    if len(shaped) == len(results):
        lines = []
    for r in results:
        if r.shape:
            continue
        ratio, target, met = _verdict(r)
        lines.append(
            f"| {r.row.what} | {r.population} | {cell(r.ours)} | {cell(r.peer)} | {ratio} | {target} | {met} "
            f"| {_rss(r.ours)} | {_rss(r.peer)} |"
        )
        rss_target = r.row.rss_targets.get(r.size) if r.size is not None else None
        if rss_target and rss_target.max_rss_mib is not None:
            mine, theirs = r.ours.peak_rss_mib(), r.peer.peak_rss_mib()
            met = "n/a" if mine is None else ("yes" if mine <= rss_target.max_rss_mib else "**NO**")
            ratio = f"{mine / theirs:.2f}×" if mine is not None and theirs else "—"
            lines.append(
                f"| peak RSS of `sockscope {' '.join(r.row.ours)}` | {r.population} | {_rss(r.ours) or cell(r.ours)} "
                f"| {_rss(r.peer)} | {ratio} | {rss_target.text} | {met} | | |"
            )
    if shaped:
        floors = measure.floor_table(shaped)
        lines += ([""] if lines else []) + _shape_table(shaped) + ["", *floors] * bool(floors)
    notes = [
        f"- {r.row.name} @ {r.population}: {note}"
        for r in results
        for note in r.notes + [f"{s.label}: {s.status}: {s.message}" for s in (r.ours, r.peer) if s.message]
    ]
    return "\n".join(lines + (["", "Notes:", *notes] if notes else []))


def _quiet(args: argparse.Namespace) -> list[str]:
    """The notes of a population's start: how long ``--quiet-below`` waited (if asked), then its
    ``python -c pass``."""
    waited = measure.wait_for_quiet(args.python, args.quiet_below, args.quiet_wait) if args.quiet_below else ""
    starts = [f"python -c pass{v.tag} before the rows: {measure.interpreter_start(v.python)}" for v in venvs(args)]
    return [waited] * bool(waited) + starts


def machine_info(args: argparse.Namespace) -> dict[str, str]:
    """Date, machine and versions of everything measured."""
    cpu = measure.proc_field("/proc/cpuinfo", "model name", platform.machine())
    mem_kib = measure.proc_field("/proc/meminfo", "MemTotal", "0 kB").split()[0]
    commit = measure.first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs ({cpu}), {int(mem_kib) // 1024} MiB RAM",
        "load average at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "python -c pass at start": measure.interpreter_start(args.python),
        "TCP sockets machine-wide at start": measure.tcp_alloc(),
        "kernel": platform.release(),
        "sockscope": f"{' '.join(args.sockscope)} (commit {commit}, work tree as is)",
        "python (sockscope venv)": measure.first_line([args.python, "-c", _INTERPRETER]),
        "python (--also-venv)": measure.first_line([str(args.also_venv / "bin" / "python"), "-c", _INTERPRETER])
        if args.also_venv else "",
        "ss": measure.first_line(["ss", "-V"]),
        "netstat": measure.first_line(["netstat", "--version"]) if shutil.which("netstat") else "not installed",
        "runs per side": f"{args.runs} (median; sides interleaved ABBA after one warm-up each)",
        "population": (
            f"existing netns {args.netns}" if args.netns else
            f"N = N ESTABLISHED TCP sockets (both ends of N/2 loopback connections) + {LISTENERS} LISTEN "
            f"+ {UDP_SOCKETS} UDP, in a private netns; TIME-WAIT rows add {args.time_wait} TIME-WAIT sockets"
        ) if args.sizes or args.netns else "",
        "populations": ", ".join(s.name for s in args.shapes) + f" (bench/shapes.py, scale {args.scale}), "
        "each in a private netns built before its rows and deleted after them" if args.shapes else "",
        "peak RSS": "GNU time %M of the warm-up run" if os.path.exists(GNU_TIME) else "not measured (no /usr/bin/time)",
    }


#: what the machine info says of the measured interpreter: its version, the build the venv was made from and
#: whether that loads libpython as a shared library (relocated by the dynamic linker at every start; here such
#: a build's `python -c pass` took 16 ms against 13 for Debian's: bench/README.md, session 40) or has it
#: linked in, as Debian's python3 does
_INTERPRETER = ("import sys; print(sys.version.split()[0], 'from', sys._base_executable, '(libpython shared)' "
                "if 'libpython' in open('/proc/self/maps').read() else '(libpython linked in)')")


def report(info: Mapping[str, str], results: Sequence[Result]) -> str:
    head = [f"- {key}: {value}" for key, value in info.items() if value]
    return "\n".join([table(results), "", *head])


# --------------------------------------------------------------------------- setup and CLI


def setup(venv: Path = VENV) -> int:
    """Create the bench venv ``venv`` (by the interpreter that runs this: the Python measured): peers from
    requirements.txt plus the project, editable."""
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    # a current pip first: the console-script launcher of pip < 25.2 imports `re` (+6 ms a run)
    subprocess.run([*pip, "-U", "pip"], check=True)
    subprocess.run([*pip, "-r", str(BENCH / "requirements.txt"), "-e", str(ROOT)], check=True)
    print(f"bench venv ready: {venv}")
    return 0


def _default_sockscope(venv: Path = VENV) -> str:
    for candidate in (venv / "bin" / "sockscope", ROOT / ".venv" / "bin" / "sockscope"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("sockscope") or "sockscope"


def _sizes(text: str) -> list[int]:
    return [int(s[:-1]) * 1000 if s.lower().endswith("k") else int(s) for s in text.split(",") if s]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Time sockscope against ss, netstat, psutil and pyroute2 on loopback socket populations.",
        epilog="rows: " + ", ".join(f"{r.name} ({r.what})" for r in ROWS),
    )
    p.add_argument("--setup", action="store_true", help="create the bench venv (--venv): peers, sockscope -e")
    p.add_argument("--sizes", type=_sizes, help="ESTABLISHED sockets per population "
                   "(default 100,10000 unless --populations; 10k/100k work too)")
    p.add_argument("--populations", metavar="LIST", help="populations shaped like real hosts' (comma-separated, "
                   f"or all): {', '.join(shapes.SHAPES)}")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the populations' counts (default 1)")
    p.add_argument("--runs", type=int, default=7, help="timed runs per side; the median is reported (default 7)")
    p.add_argument("--only", help="comma-separated row names (runs them at every size)")
    p.add_argument("--json", metavar="FILE", help="also write all samples and metadata as JSON")
    p.add_argument("--netns", help="measure this existing namespace instead of building populations")
    p.add_argument("--time-wait", type=int, default=50_000, metavar="N", help="TIME-WAIT sockets for tan_tw")
    p.add_argument("--venv", type=Path, default=VENV, metavar="DIR", help="the bench venv: made by --setup with the "
                   "interpreter that runs run.py, its sockscope and peers measured (default bench/.venv)")
    p.add_argument("--sockscope", metavar="CMD", help="sockscope command to time (default: the venv's)")
    p.add_argument("--also-venv", type=Path, metavar="DIR", help="also measure every row under this venv's "
                   "interpreter (made by --setup --venv DIR), right after or before the bench venv's: the rows "
                   "of each are tagged with their venv's name")
    p.add_argument("--python", help="python for `python -c pass` (default: next to the sockscope command)")
    p.add_argument("--quiet-below", type=float, metavar="MS", help="before each population's rows, wait until "
                   "`python -c pass` takes at most MS ms (median of 7; checked every 20 s)")
    p.add_argument("--quiet-wait", type=float, default=1800, metavar="S", help="wait at most S s (default 1800)")
    p.add_argument("--inner", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.venv = args.venv.absolute()
    args.sockscope = shlex.split(args.sockscope or _default_sockscope(args.venv))
    exe = shutil.which(args.sockscope[0])
    if exe:
        args.sockscope[0] = exe
    if args.python is None:
        beside = Path(args.sockscope[0]).parent / "python"
        args.python = str(beside) if beside.exists() else sys.executable
    inner = args.venv / "bin" / "python"
    args.inner_python = str(inner) if inner.exists() else sys.executable
    if args.also_venv is not None:
        args.also_venv = args.also_venv.absolute()
        if not all((args.also_venv / "bin" / name).exists() for name in ("sockscope", "python")):
            p.error(f"--also-venv {args.also_venv}: no bin/sockscope and bin/python (make it by --setup --venv)")
    names = args.only.split(",") if args.only else []
    unknown = [n for n in names if n not in ROW_BY_NAME]
    if unknown:
        p.error(f"unknown row(s) {', '.join(unknown)}; rows: {', '.join(ROW_BY_NAME)}")
    args.rows = [ROW_BY_NAME[n] for n in names] if names else list(ROWS)
    if args.runs < 1:
        p.error("--runs must be >= 1")
    chosen = (args.populations or "").split(",") if args.populations != "all" else list(shapes.SHAPES)
    args.shapes = [shapes.SHAPES[n] for n in chosen if n in shapes.SHAPES]
    unknown = [n for n in chosen if n and n not in shapes.SHAPES]
    if unknown:
        p.error(f"unknown population(s) {', '.join(unknown)}; populations: {', '.join(shapes.SHAPES)}")
    if args.populations and args.netns:
        p.error("--populations builds its own namespaces: not with --netns")
    if not 0 < args.scale <= 1:
        p.error("--scale must be in (0, 1]")
    if args.sizes is None:
        args.sizes = [] if args.shapes else [100, 10_000]
    return args


def _shape_rows(shape: Any, args: argparse.Namespace) -> list[Row]:
    """The rows measured on a population: its own, less those ``--only`` leaves out."""
    return [ROW_BY_NAME[n] for n in shape.rows if not args.only or ROW_BY_NAME[n] in args.rows]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that every `with population.build(...)` cleans up


def _compile_bytecode() -> None:
    """Time sockscope as an installed package runs: with its .pyc files.

    pip compiles them at install time, but this tree is installed editable and
    some environments set PYTHONDONTWRITEBYTECODE (this machine does), which
    would make every timed run recompile every module (~20 ms).  Forced: a .pyc written from a
    source edited again within the same second keeps that second in its header, and is not
    believed by the interpreter (the size differs) but was by compileall, so the module was
    compiled anew by every timed run."""
    import compileall

    src = Path(__file__).resolve().parent.parent / "src"
    compileall.compile_dir(str(src), quiet=1, force=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.inner is not None:
        return inner_main(json.loads(args.inner))
    if args.setup:
        return setup(args.venv)
    if args.netns and not population.netns_exists(args.netns):
        print(f"bench/run.py: no network namespace {args.netns!r}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    _compile_bytecode()
    info = machine_info(args)
    results: list[Result] = []
    try:
        for size in [None] if args.netns else args.sizes:
            rows = [r for r in args.rows if r.runs_at(size, bool(args.only))]
            if rows:
                got, versions = bench_size(size, rows, args)
                results += got
                info.update(versions)
        for shape in args.shapes:
            rows = _shape_rows(shape, args)
            if rows:
                got, versions = bench_shape(shape, rows, args)
                results += got
                info.update(versions)
    except KeyboardInterrupt:
        print("bench/run.py: interrupted (populations cleaned up)", file=sys.stderr)
        return 130
    info["load average at end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    info["python -c pass at end"] = measure.interpreter_start(args.python)
    info["machine phase"] = measure.machine_phase(measure.BASELINES)
    info["TCP sockets machine-wide at end"] = measure.tcp_alloc()
    text = report(info, results)
    print(text)
    if args.json:
        data = {"meta": info, "results": [_result_json(r) for r in results], "markdown": text}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 0


def inner_main(spec: Mapping[str, Any]) -> int:
    """``--inner``: measure the rows of ``spec`` in this process's namespace; print them as JSON."""
    measured = []
    for name in spec["rows"]:
        measured.append(measure.measure(ROW_BY_NAME[name], spec))
        ours, peer = (Side(**measured[-1][key]) for key in ("ours", "peer"))
        print(f"  {name}: {cell(ours)} vs {cell(peer)}", file=sys.stderr, flush=True)
    json.dump({"results": measured, "versions": measure.versions()}, sys.stdout)
    return 0


def _result_json(r: Result) -> dict[str, Any]:
    ratio, target, met = _verdict(r)
    return {
        "row": r.row.name, "what": r.row.what, "population": r.population, "size": r.size, "shape": r.shape,
        "same": r.same,
        "ours": asdict(r.ours), "peer": asdict(r.peer), "ours_median_ms": r.ours.median_ms(),
        "peer_median_ms": r.peer.median_ms(), "ratio": ratio, "target": target, "met": met, "notes": r.notes,
    }


if __name__ == "__main__":
    sys.exit(main())
