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
import datetime
import gc
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, cast

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
if TYPE_CHECKING:
    from population import Population

T = TypeVar("T")
GNU_TIME = "/usr/bin/time"  # for peak RSS (package "time"); without it RSS cells stay empty
PYTHON = "{python}"  # placeholder in a peer argv: the sockscope venv's python
FILTER = ("dport", "=", f":{population.FILTER_PORT}")
#: extra sockets in every population built here: ``-tuln`` then lists ~200
LISTENERS, UDP_SOCKETS = 170, 60
_UNSUPPORTED = re.compile(
    r"unsupported|not supported|not implemented|unrecognized|unknown option|invalid option|no such option",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Target:
    """A goal from the Performance issue; ratio = sockscope median / peer median."""

    text: str
    max_ratio: float | None = None
    max_ms: float | None = None
    max_rss_mib: float | None = None


@dataclass(frozen=True)
class Row:
    """One comparison.  CLI rows: sockscope args vs a peer argv; in-process rows: loader names."""

    name: str
    what: str
    ours: tuple[str, ...]
    peer: tuple[str, ...]
    inproc: bool = False
    targets: Mapping[int, Target] = field(default_factory=dict)  # by population size
    rss_targets: Mapping[int, Target] = field(default_factory=dict)  # sockscope's own peak RSS
    same_output: bool = False  # the peer prints the same rows: compare line counts
    time_wait: bool = False  # measured with TIME-WAIT sockets added
    min_size: int = 0  # below this, only with --only

    def target(self, size: int | None) -> Target | None:
        return self.targets.get(size) if size is not None else None

    def runs_at(self, size: int | None, only: bool) -> bool:
        return only or (size or 0) >= self.min_size


LE_1 = Target("≤ 1.0×", max_ratio=1.0)
ROWS: tuple[Row, ...] = (
    Row("tan", "`sockscope -tan` vs `ss -tan`", ("-tan",), ("ss", "-tan"), targets={10_000: LE_1, 100_000: LE_1},
        rss_targets={100_000: Target("≤ 64 MiB", max_rss_mib=64)}, same_output=True),
    Row("tanp", "`sockscope -tanp` vs `ss -tanp`", ("-tanp",), ("ss", "-tanp"), same_output=True,
        targets={10_000: Target("≤ 0.5×", max_ratio=0.5), 100_000: Target("≤ 0.2×", max_ratio=0.2)}),
    Row("tani", "`sockscope -tani` vs `ss -tani`", ("-tani",), ("ss", "-tani"), same_output=True,
        targets={10_000: Target("≤ 1.2×", max_ratio=1.2)}),
    Row("tan_tw", "`sockscope -tan` vs `ss -tan`, TIME-WAIT added", ("-tan",), ("ss", "-tan"), same_output=True,
        time_wait=True, min_size=100_000, targets={100_000: LE_1}),
    Row("tuln", "`sockscope -tuln` vs `python -c pass`", ("-tuln",), (PYTHON, "-c", "pass"),
        targets={100: Target("≤ 30 ms and ≤ 2.5×", max_ratio=2.5, max_ms=30)}),  # the small population
    Row("tuln_ss", "`sockscope -tuln` vs `ss -tuln`", ("-tuln",), ("ss", "-tuln"), same_output=True),
    Row("filter", "1% filter `-tan dport = :20000` vs ss", ("-tan", *FILTER), ("ss", "-tan", *FILTER),
        same_output=True, targets={100_000: Target("≤ 1.5×", max_ratio=1.5)}),
    Row("netstat", "`sockscope -tan` vs `netstat -tan`", ("-tan",), ("netstat", "-tan")),
    Row("net_connections", '`net_connections("tcp")` vs psutil', ("sockscope.net_connections",),
        ("psutil.net_connections",), inproc=True,
        targets={n: Target("≥ 10× faster", max_ratio=0.1) for n in (10_000, 100_000)}),
    Row("sockets", '`list(sockets("tcp"))` vs pyroute2 DiagSocket', ("sockscope.sockets",),
        ("pyroute2.get_sock_stats",), inproc=True, targets={10_000: Target("≥ 20× faster", max_ratio=0.05)}),
)
ROW_BY_NAME = {row.name: row for row in ROWS}


@dataclass
class Side:
    """One side of a row: what ran, how it went, the samples."""

    label: str
    status: str = "ok"  # ok | unsupported | error | unavailable
    message: str = ""
    seconds: list[float] = field(default_factory=list)
    rss_kib: int | None = None  # peak RSS of the warm-up run (CLI rows, with GNU time)
    lines: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def median_ms(self) -> float | None:
        return statistics.median(self.seconds) * 1e3 if self.ok and self.seconds else None

    def peak_rss_mib(self) -> float | None:
        return self.rss_kib / 1024 if self.ok and self.rss_kib is not None else None

    def fail(self, status: str, message: str) -> None:
        self.status, self.message = status, message[:160]


# --------------------------------------------------------------------------- inner: CLI timings


def _spawn(argv: Sequence[str], stdout: str, stderr: str) -> tuple[float, int]:
    """Run ``argv`` with stdout/stderr on files; (wall seconds, exit status)."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 1, stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        (os.POSIX_SPAWN_OPEN, 2, stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], list(argv), os.environ, file_actions=actions)
    _, wait_status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    return elapsed, os.waitstatus_to_exitcode(wait_status)


def _warm_up_cli(side: Side, argv: Sequence[str], tmp: str) -> None:
    """One untimed run: checks that the command works, counts its output lines, takes its peak RSS.

    The RSS comes from GNU time (its ``wait4`` of a child it forked itself):
    ``ru_maxrss`` of a child spawned straight from this process would include
    this process's own RSS, which the child's address space starts from.
    """
    out, err, rss = (os.path.join(tmp, name) for name in ("out", "err", "rss"))
    wrapped = [GNU_TIME, "-f", "%M", "-o", rss, *argv] if os.path.exists(GNU_TIME) else list(argv)
    try:
        _, status = _spawn(wrapped, out, err)
    except OSError as exc:
        side.fail("unavailable", f"{argv[0]}: {exc.strerror}")
        return
    with open(out, "rb") as f:
        side.lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    if wrapped[0] == GNU_TIME and os.path.exists(rss):
        last = Path(rss).read_text().split()[-1:]
        side.rss_kib = int(last[0]) if last and last[0].isdigit() else None
    if status:
        text = Path(err).read_text(errors="replace")
        message = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
        kind = "unsupported" if status == 255 or _UNSUPPORTED.search(text) else "error"
        side.fail(kind, f"exit {status}: {message}")


def _abba(runs: int, pairs: Sequence[tuple[Side, T]]) -> Iterator[tuple[int, Side, T]]:
    """``(run, side, item)`` for every timed run, the two sides in ABBA order; failed sides skipped."""
    for run in range(runs):
        for side, item in pairs if run % 2 == 0 else pairs[::-1]:
            if side.ok:
                yield run, side, item


def _resolve(argv: Sequence[str], spec: Mapping[str, Any]) -> list[str] | None:
    first = spec["python"] if argv[0] == PYTHON else shutil.which(argv[0])
    return [first, *argv[1:]] if first else None


def measure_cli(row: Row, spec: Mapping[str, Any]) -> list[Side]:
    """Time ``sockscope <row.ours>`` against the peer argv, interleaved."""
    ours = Side("sockscope " + " ".join(row.ours))
    peer = Side(" ".join(row.peer).replace(PYTHON, "python"))
    pairs = [(ours, [*spec["sockscope"], *row.ours]), (peer, _resolve(row.peer, spec) or [row.peer[0]])]
    with tempfile.TemporaryDirectory(prefix="sockscope-bench-") as tmp:
        for side, argv in pairs:
            if os.path.exists(argv[0]):
                _warm_up_cli(side, argv, tmp)
            else:
                side.fail("unavailable", f"{argv[0]} not found")
        err = os.path.join(tmp, "err")
        for run, side, argv in _abba(spec["runs"], pairs):
            seconds, status = _spawn(argv, os.devnull, err)
            if status:
                side.fail("error", f"exit {status} on run {run + 1}")
            side.seconds.append(seconds)
    return [ours, peer]


# --------------------------------------------------------------------------- inner: in-process timings


def _load_sockscope_net_connections() -> Callable[[], Any]:
    import sockscope

    fn = cast(Callable[[str], Any], sockscope.net_connections)  # via the module's __getattr__
    return lambda: fn("tcp")


def _load_psutil_net_connections() -> Callable[[], Any]:
    import psutil  # type: ignore[import-untyped, unused-ignore]

    return lambda: psutil.net_connections("tcp")


def _load_sockscope_sockets() -> Callable[[], Any]:
    import sockscope

    fn = cast(Callable[[str], Any], sockscope.sockets)
    return lambda: list(fn("tcp"))


def _load_pyroute2() -> Callable[[], Any]:
    from socket import AF_INET, AF_INET6, IPPROTO_TCP

    from pyroute2 import DiagSocket  # type: ignore[import-untyped, unused-ignore]
    from pyroute2.netlink.diag import SS_ALL  # type: ignore[import-untyped, unused-ignore]

    def dump() -> list[Any]:
        with DiagSocket() as diag:
            diag.bind()
            return [
                *diag.get_sock_stats(family=AF_INET, protocol=IPPROTO_TCP, states=SS_ALL),
                *diag.get_sock_stats(family=AF_INET6, protocol=IPPROTO_TCP, states=SS_ALL),
            ]

    return dump


LOADERS: dict[str, Callable[[], Callable[[], Any]]] = {
    "sockscope.net_connections": _load_sockscope_net_connections,
    "psutil.net_connections": _load_psutil_net_connections,
    "sockscope.sockets": _load_sockscope_sockets,
    "pyroute2.get_sock_stats": _load_pyroute2,
}


def _psutil_key(conn: Any) -> tuple[Any, ...]:
    """A psutil-style connection as plain values (enums to ints, StrEnum to str)."""
    status = getattr(conn.status, "value", conn.status)
    return (conn.fd, int(conn.family), int(conn.type), tuple(conn.laddr), tuple(conn.raddr), status, conn.pid)


def _same_connections(ours: Any, peer: Any) -> str:
    """Whether ``net_connections`` returned exactly psutil's connections (as a multiset)."""
    import collections

    a = collections.Counter(map(_psutil_key, ours))
    b = collections.Counter(map(_psutil_key, peer))
    if a == b:
        return f"results identical to psutil ({len(ours)} connections)"
    only_a, only_b = a - b, b - a
    sample = next(iter(only_a or only_b))
    return (
        f"results DIFFER from psutil: {sum(only_a.values())} only in sockscope, "
        f"{sum(only_b.values())} only in psutil (of {len(ours)}/{len(peer)}); e.g. {sample!r}"
    )


def _same_count(ours: Any, peer: Any) -> str:
    return f"{len(ours)} sockscope records, {len(peer)} pyroute2 messages"


#: row name -> how the first (untimed) results of both sides are compared
CHECKS: dict[str, Callable[[Any, Any], str]] = {"net_connections": _same_connections, "sockets": _same_count}


def _load(side: Side, name: str) -> tuple[Callable[[], Any] | None, Any]:
    """Import a loader and call it once (untimed); (callable, first result) or (None, None)."""
    try:
        fn = LOADERS[name]()
    except ImportError as exc:
        side.fail("unavailable", f"{exc} (run bench/run.py --setup)")
        return None, None
    except (AttributeError, NotImplementedError) as exc:
        side.fail("unsupported", f"{type(exc).__name__}: {exc}")
        return None, None
    try:
        return fn, fn()
    except Exception as exc:  # noqa: BLE001 - any failure becomes a table cell
        kind = "unsupported" if isinstance(exc, NotImplementedError) else "error"
        side.fail(kind, f"{type(exc).__name__}: {exc}")
        return None, None


def measure_inproc(row: Row, spec: Mapping[str, Any]) -> tuple[list[Side], list[str]]:
    """Time two in-process callables, interleaved, each after one untimed call."""
    ours, peer = Side(row.ours[0]), Side(row.peer[0])
    (our_fn, our_result), (peer_fn, peer_result) = _load(ours, row.ours[0]), _load(peer, row.peer[0])
    notes = []
    if ours.ok and peer.ok and row.name in CHECKS:
        notes.append(CHECKS[row.name](our_result, peer_result))
    del our_result, peer_result
    for _, side, fn in _abba(spec["runs"], [(ours, our_fn), (peer, peer_fn)]):
        if fn is not None:
            gc.collect()
            start = time.perf_counter()
            result = fn()
            side.seconds.append(time.perf_counter() - start)
            del result
    return [ours, peer], notes


def inner_main(spec: Mapping[str, Any]) -> int:
    """Run the rows of ``spec`` in this process's namespace; print a JSON list of results."""
    results = []
    for name in spec["rows"]:
        row = ROW_BY_NAME[name]
        notes: list[str] = []
        if row.inproc:
            sides, notes = measure_inproc(row, spec)
        else:
            sides = measure_cli(row, spec)
        ours, peer = sides
        if row.same_output and ours.ok and peer.ok and ours.lines != peer.lines:
            notes.append(f"output lines differ: sockscope {ours.lines}, {peer.label} {peer.lines}")
        results.append({"row": name, "ours": asdict(ours), "peer": asdict(peer), "notes": notes})
        print(f"  {name}: {_cell(ours)} vs {_cell(peer)}", file=sys.stderr, flush=True)
    json.dump({"results": results, "versions": _inner_versions()}, sys.stdout)
    return 0


def _inner_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"inner python": sys.version.split()[0]}
    for dist in ("psutil", "pyroute2"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


# --------------------------------------------------------------------------- outer: orchestration


def _cell(side: Side) -> str:
    ms = side.median_ms()
    if ms is None:
        return side.status if side.status != "error" else f"error: {side.message}"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


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


def run_inner(netns: str, rows: Sequence[Row], args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Measure ``rows`` inside ``netns`` with a ``--inner`` process; its decoded JSON."""
    spec = {"rows": [r.name for r in rows], "runs": args.runs, "sockscope": args.sockscope, "python": args.python}
    argv = ["ip", "netns", "exec", netns, args.inner_python, str(Path(__file__).resolve()), "--inner", json.dumps(spec)]
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


def _results(raw: list[dict[str, Any]], label: str, size: int | None, extra: list[str]) -> list[Result]:
    """Results from the inner JSON; ``extra`` notes go on the first row."""
    out = []
    for i, r in enumerate(raw):
        notes = r["notes"] + (extra if i == 0 else [])
        out.append(Result(ROW_BY_NAME[r["row"]], label, size, Side(**r["ours"]), Side(**r["peer"]), notes))
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
        notes = _check_population(pop) if size else []
        results: list[Result] = []
        versions: dict[str, str] = {}
        if plain:
            raw, versions = run_inner(netns, plain, args)
            results += _results(raw, label, size, notes)
        if with_tw:
            pop.add_time_wait(args.time_wait)
            before = pop.tcp_states()["TIME-WAIT"]
            raw, versions = run_inner(netns, with_tw, args)
            after = pop.tcp_states()["TIME-WAIT"]
            tw_note = f"TIME-WAIT sockets: {before} before the row, {after} after"
            tw_label = f"{label} + {_size_label(args.time_wait)} TIME-WAIT"
            results += _results(raw, tw_label, size, [tw_note])
    return results, versions


# --------------------------------------------------------------------------- report


def _verdict(row: Row, size: int | None, ours: Side, peer: Side) -> tuple[str, str, str]:
    """(ratio, target, met?) cells."""
    a, b = ours.median_ms(), peer.median_ms()
    target = row.target(size)
    if a is None or not b:
        return "—", target.text if target else "", "n/a" if target else ""
    ratio = a / b
    if target is None:
        return f"{ratio:.2f}×", "", ""
    met = (target.max_ratio is None or ratio <= target.max_ratio) and (target.max_ms is None or a <= target.max_ms)
    return f"{ratio:.2f}×", target.text, "yes" if met else "**NO**"


def _rss(side: Side) -> str:
    mib = side.peak_rss_mib()
    return f"{mib:.1f} MiB" if mib is not None else ""


def table(results: Sequence[Result]) -> str:
    """The markdown table of all results, then the RSS target lines and the notes."""
    lines = [
        "| what | population | sockscope | peer | ratio | target | met? | sockscope peak RSS | peer peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio, target, met = _verdict(r.row, r.size, r.ours, r.peer)
        lines.append(
            f"| {r.row.what} | {r.population} | {_cell(r.ours)} | {_cell(r.peer)} | {ratio} | {target} | {met} "
            f"| {_rss(r.ours)} | {_rss(r.peer)} |"
        )
        rss_target = r.row.rss_targets.get(r.size) if r.size is not None else None
        if rss_target and rss_target.max_rss_mib is not None:
            mine, theirs = r.ours.peak_rss_mib(), r.peer.peak_rss_mib()
            met = "n/a" if mine is None else ("yes" if mine <= rss_target.max_rss_mib else "**NO**")
            ratio = f"{mine / theirs:.2f}×" if mine is not None and theirs else "—"
            lines.append(
                f"| peak RSS of `sockscope {' '.join(r.row.ours)}` | {r.population} | {_rss(r.ours) or _cell(r.ours)} "
                f"| {_rss(r.peer)} | {ratio} | {rss_target.text} | {met} | | |"
            )
    notes = [
        f"- {r.row.name} @ {r.population}: {note}"
        for r in results
        for note in r.notes + [f"{s.label}: {s.status}: {s.message}" for s in (r.ours, r.peer) if s.message]
    ]
    return "\n".join(lines + (["", "Notes:", *notes] if notes else []))


def _first_line(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    return next((ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()), "?")


def _proc_field(path: str, key: str, default: str) -> str:
    """The value of the first ``key: value`` line of a /proc file."""
    for line in Path(path).read_text().splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return default


def tcp_alloc() -> str:
    """TCP sockets allocated machine-wide (all namespaces share one hash table, so they slow every dump)."""
    fields = _proc_field("/proc/net/sockstat", "TCP", "").split()
    return dict(zip(fields[::2], fields[1::2], strict=True)).get("alloc", "?")


def machine_info(args: argparse.Namespace) -> dict[str, str]:
    """Date, machine and versions of everything measured."""
    cpu = _proc_field("/proc/cpuinfo", "model name", platform.machine())
    mem_kib = _proc_field("/proc/meminfo", "MemTotal", "0 kB").split()[0]
    commit = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs ({cpu}), {int(mem_kib) // 1024} MiB RAM",
        "load average at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "TCP sockets machine-wide at start": tcp_alloc(),
        "kernel": platform.release(),
        "sockscope": f"{' '.join(args.sockscope)} (commit {commit}, work tree as is)",
        "python (sockscope venv)": _first_line([args.python, "-c", "import sys; print(sys.version.split()[0])"]),
        "ss": _first_line(["ss", "-V"]),
        "netstat": _first_line(["netstat", "--version"]) if shutil.which("netstat") else "not installed",
        "runs per side": f"{args.runs} (median; sides interleaved ABBA after one warm-up each)",
        "population": (
            f"existing netns {args.netns}" if args.netns else
            f"N = N ESTABLISHED TCP sockets (both ends of N/2 loopback connections) + {LISTENERS} LISTEN "
            f"+ {UDP_SOCKETS} UDP, in a private netns; TIME-WAIT rows add {args.time_wait} TIME-WAIT sockets"
        ),
        "peak RSS": "GNU time %M of the warm-up run" if os.path.exists(GNU_TIME) else "not measured (no /usr/bin/time)",
    }


def report(info: Mapping[str, str], results: Sequence[Result]) -> str:
    head = [f"- {key}: {value}" for key, value in info.items()]
    return "\n".join([table(results), "", *head])


# --------------------------------------------------------------------------- setup and CLI


def setup() -> int:
    """Create bench/.venv: peers from requirements.txt plus the project, editable."""
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    # a current pip first: the console-script launcher of pip < 25.2 imports `re` (+6 ms a run)
    subprocess.run([*pip, "-U", "pip"], check=True)
    subprocess.run([*pip, "-r", str(BENCH / "requirements.txt"), "-e", str(ROOT)], check=True)
    print(f"bench venv ready: {VENV}")
    return 0


def _default_sockscope() -> str:
    for candidate in (VENV / "bin" / "sockscope", ROOT / ".venv" / "bin" / "sockscope"):
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
    p.add_argument("--setup", action="store_true", help="create bench/.venv (psutil, pyroute2, sockscope -e)")
    p.add_argument("--sizes", type=_sizes, default=[100, 10_000], help="ESTABLISHED sockets per population "
                   "(default 100,10000; 10k/100k work too)")
    p.add_argument("--runs", type=int, default=7, help="timed runs per side; the median is reported (default 7)")
    p.add_argument("--only", help="comma-separated row names (runs them at every size)")
    p.add_argument("--json", metavar="FILE", help="also write all samples and metadata as JSON")
    p.add_argument("--netns", help="measure this existing namespace instead of building populations")
    p.add_argument("--time-wait", type=int, default=50_000, metavar="N", help="TIME-WAIT sockets for tan_tw")
    p.add_argument("--sockscope", default=_default_sockscope(), metavar="CMD", help="sockscope command to time")
    p.add_argument("--python", help="python for `python -c pass` (default: next to the sockscope command)")
    p.add_argument("--inner", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.sockscope = shlex.split(args.sockscope)
    exe = shutil.which(args.sockscope[0])
    if exe:
        args.sockscope[0] = exe
    if args.python is None:
        beside = Path(args.sockscope[0]).parent / "python"
        args.python = str(beside) if beside.exists() else sys.executable
    args.inner_python = str(VENV / "bin" / "python") if (VENV / "bin" / "python").exists() else sys.executable
    names = args.only.split(",") if args.only else []
    unknown = [n for n in names if n not in ROW_BY_NAME]
    if unknown:
        p.error(f"unknown row(s) {', '.join(unknown)}; rows: {', '.join(ROW_BY_NAME)}")
    args.rows = [ROW_BY_NAME[n] for n in names] if names else list(ROWS)
    if args.runs < 1:
        p.error("--runs must be >= 1")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that every `with population.build(...)` cleans up


def _compile_bytecode() -> None:
    """Time sockscope as an installed package runs: with its .pyc files.

    pip compiles them at install time, but this tree is installed editable and
    some environments set PYTHONDONTWRITEBYTECODE (this machine does), which
    would make every timed run recompile every module (~20 ms)."""
    import compileall

    src = Path(__file__).resolve().parent.parent / "src"
    compileall.compile_dir(str(src), quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.inner is not None:
        return inner_main(json.loads(args.inner))
    if args.setup:
        return setup()
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
    except KeyboardInterrupt:
        print("bench/run.py: interrupted (populations cleaned up)", file=sys.stderr)
        return 130
    info["load average at end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    info["TCP sockets machine-wide at end"] = tcp_alloc()
    text = report(info, results)
    print(text)
    if args.json:
        data = {"meta": info, "results": [_result_json(r) for r in results], "markdown": text}
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 0


def _result_json(r: Result) -> dict[str, Any]:
    ratio, target, met = _verdict(r.row, r.size, r.ours, r.peer)
    return {
        "row": r.row.name, "what": r.row.what, "population": r.population, "size": r.size,
        "ours": asdict(r.ours), "peer": asdict(r.peer), "ours_median_ms": r.ours.median_ms(),
        "peer_median_ms": r.peer.median_ms(), "ratio": ratio, "target": target, "met": met, "notes": r.notes,
    }


if __name__ == "__main__":
    sys.exit(main())
