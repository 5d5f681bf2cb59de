"""The inner side of bench/run.py: timing two sides of one row, inside the namespace.

Contract
--------
:func:`measure_cli` times ``sockscope <row.ours>`` (or, for a ``floor`` row, ``floor.py``
with the requests that listing sends: :func:`listing_requests`) against the peer argv and
:func:`measure_inproc` two in-process callables (``row.kind`` is the
``net_connections``/``sockets`` kind), each side after one untimed warm-up,
the sides alternating ABBA, and returns a :class:`Side` per side: status,
samples, peak RSS (CLI, with GNU time) and ``lines`` (CLI: output lines; in
process: results).  :func:`same` says whether both sides returned the same
thing (line counts for rows that print the same rows; psutil's connections
as a multiset), so that a fast wrong answer cannot meet a target.
Standard library only, apart from the peers the loaders import.
"""

from __future__ import annotations

import collections
import gc
import sys
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

T = TypeVar("T")
GNU_TIME = "/usr/bin/time"  # for peak RSS (package "time"); without it RSS cells stay empty
PYTHON = "{python}"  # placeholder in a peer argv: the sockscope venv's python
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
    kind: str = "tcp"  # in-process rows: the API's kind
    goal: str = ""  # on the populations: "listing", "owners" (-p) or "api" (see run.population_target)
    targets: Mapping[int, Target] = field(default_factory=dict)  # by population size
    rss_targets: Mapping[int, Target] = field(default_factory=dict)  # sockscope's own peak RSS
    same_output: bool = False  # the peer prints the same rows: compare line counts
    netns_rows: bool = False  # ours is --all-netns, the peer ``ip -all netns exec ss``: compare each one's rows
    time_wait: bool = False  # measured with TIME-WAIT sockets added
    min_size: int = 0  # below this, only with --only
    shaped_only: bool = False  # only on the shaped populations, never on the sizes
    floor: bool = False  # ours is the Python floor of ``sockscope <ours>`` (floor.py), not the listing
    env: Mapping[str, str] = field(default_factory=dict)  # set for ours alone (``tanp_walk``: the /proc walk)

    def target(self, size: int | None) -> Target | None:
        return self.targets.get(size) if size is not None else None

    def env_words(self) -> str:
        """``env`` as a shell writes it before a command (``K=V `` each), for a side's label."""
        return "".join(f"{k}={v} " for k, v in self.env.items())

    def runs_at(self, size: int | None, only: bool) -> bool:
        return not self.shaped_only and (only or (size or 0) >= self.min_size)




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


def _launch(argv: Sequence[str], stdout: str, stderr: str, env: Mapping[str, str] | None = None) -> int:
    """Start ``argv`` (posix_spawn: no shell, no pipes) with stdout/stderr on files, ``env`` added to
    this process's environment; its pid."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 1, stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        (os.POSIX_SPAWN_OPEN, 2, stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    return os.posix_spawn(argv[0], list(argv), {**os.environ, **env} if env else os.environ, file_actions=actions)


def _spawn(argv: Sequence[str], stdout: str, stderr: str, env: Mapping[str, str] | None = None) -> tuple[float, int]:
    """Run ``argv`` with stdout/stderr on files (``env``: see :func:`_launch`); (wall seconds, exit status)."""
    start = time.perf_counter()
    pid = _launch(argv, stdout, stderr, env)
    _, wait_status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    return elapsed, os.waitstatus_to_exitcode(wait_status)


def _warm_up_cli(side: Side, argv: Sequence[str], tmp: str, keep: bool = False,
                 env: Mapping[str, str] | None = None) -> bytes | None:
    """One untimed run: checks that the command works, counts its output lines, takes its peak RSS
    (``keep``: returns the output).

    The RSS comes from GNU time (its ``wait4`` of a child it forked itself):
    ``ru_maxrss`` of a child spawned straight from this process would include
    this process's own RSS, which the child's address space starts from.
    """
    out, err, rss = (os.path.join(tmp, name) for name in ("out", "err", "rss"))
    wrapped = [GNU_TIME, "-f", "%M", "-o", rss, *argv] if os.path.exists(GNU_TIME) else list(argv)
    try:
        _, status = _spawn(wrapped, out, err, env)
    except OSError as exc:
        side.fail("unavailable", f"{argv[0]}: {exc.strerror}")
        return None
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
    return Path(out).read_bytes() if keep else None


def netns_rows(ours: str, peer: str) -> tuple[bool, str]:
    """Whether ``sockscope --all-netns …`` (``ours``) lists in every namespace ``ip -all netns exec ss …``
    (``peer``: a "netns: NAME" line, then ss's table) names the rows ss lists there (each row's cells,
    the Netns column aside; ss's own and sockscope's diag sockets left out, and the two rtnetlink
    sockets of ``ip`` itself, which ss lists in the namespace ``ip`` runs in: ``rtnl:ip/PID`` and one
    whose port id the kernel chose, ``rtnl:-N``; and TIME-WAIT rows, which end on the kernel's clock,
    between the two listings, in namespaces the run does not own: a test's, say); a note saying so."""
    def cells(line: str) -> str:
        return " ".join(line.split())

    def timed_out(line: str) -> bool:
        return "TIME-WAIT" in line.split()[:2]  # (the State column: first, or after Netid)

    theirs: dict[str, list[str]] = {}
    rows: list[str] | None = None
    for line in peer.splitlines():
        if line.startswith("netns: "):
            rows = theirs.setdefault(line[7:].strip(), [])
        elif rows is not None and line.strip() and not line.startswith(("State ", "Netid ")) \
                and "tcpdiag:" not in line and "rtnl:ip/" not in line and "rtnl:-" not in line \
                and not timed_out(line):
            rows.append(cells(line))
    mine: dict[str, list[str]] = {}
    for line in ours.splitlines()[1:]:
        label, _, rest = line.partition(" ")
        if "tcpdiag:" not in rest and not timed_out(rest):
            mine.setdefault(label, []).append(cells(rest))
    differ = sorted(name for name in theirs if sorted(theirs[name]) != sorted(mine.get(name, [])))
    n = sum(map(len, theirs.values()))
    if not theirs or differ:
        return False, f"rows DIFFER from ss in {len(differ)} of {len(theirs)} namespaces (e.g. {differ[:1]})"
    return True, f"rows identical to ss in each of {len(theirs)} named namespaces ({n} rows)"


def _abba(runs: int, pairs: Sequence[tuple[Side, T]]) -> Iterator[tuple[int, Side, T]]:
    """``(run, side, item)`` for every timed run, the two sides in ABBA order; failed sides skipped."""
    for run in range(runs):
        for side, item in pairs if run % 2 == 0 else pairs[::-1]:
            if side.ok:
                yield run, side, item


def _resolve(argv: Sequence[str], spec: Mapping[str, Any]) -> list[str] | None:
    first = spec["python"] if argv[0] == PYTHON else shutil.which(argv[0])
    return [first, *argv[1:]] if first else None


class SentBehind(bytes):
    """A request the listing's helper sends at once (``transport.Behind``), its walk beside the next."""


def floor_argv(requests: Sequence[bytes]) -> list[str]:
    """floor.py's arguments: each request in hex, ``+`` before one a helper sends (see floor.py)."""
    return [("+" if isinstance(r, SentBehind) else "") + r.hex() for r in requests]


def listing_requests(options: Sequence[str]) -> list[bytes]:
    """The dump requests ``sockscope OPTIONS`` sends, in order: the listing run once in this process,
    its transport answering every request with an empty dump (the kernel is not asked).  None where
    the namespace has nothing for them to find (a UDP walk of a family without UDP sockets).  One a
    helper sends (its walk beside the next dump's) is a :class:`SentBehind`."""
    import contextlib
    import io

    from sockscope import cli
    from sockscope.kernel import netlink, transport

    sent: list[bytes] = []
    done = netlink.DONE_HEAD + bytes(14)  # an NLMSG_DONE message (length, type; flags, seq, pid, errno 0)

    def stream(request: bytes, *_: Any, **__: Any) -> Iterator[bytes]:
        sent.append(bytes(request))
        yield done

    def dump(request: bytes, decode: Callable[[bytes], bool], *_: Any, **__: Any) -> None:
        sent.append(bytes(request))
        decode(done)

    class Behind:  # (a dump after the first, which the listing's helper sends at once)
        def __init__(self, request: bytes, *_: Any) -> None:
            sent.append(SentBehind(request))

        def __iter__(self) -> Iterator[bytes]:
            return iter((done,))

        def close(self) -> None:
            pass

    saved = transport.stream, transport.stream_ahead, transport.dump, transport.Behind
    transport.stream = transport.stream_ahead = stream
    transport.dump = dump
    transport.Behind = Behind
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            status = cli.main(list(options))
    finally:
        transport.stream, transport.stream_ahead, transport.dump, transport.Behind = saved
    if status != 0:
        raise RuntimeError(f"sockscope {' '.join(options)}: exit {status}, {len(sent)} requests")
    return sent


def measure_cli(row: Row, spec: Mapping[str, Any]) -> tuple[list[Side], tuple[bool, str] | None]:
    """Time ``sockscope <row.ours>`` (a floor row: floor.py with its requests) against the peer argv,
    interleaved; the sides, and (a ``netns_rows`` row) whether they listed the same rows, and a note."""
    if row.floor:
        ours = Side("python floor.py (the requests of sockscope " + " ".join(row.ours) + ")")
        floor = [spec["python"], str(Path(__file__).resolve().parent / "floor.py")]
        ours_argv = [*floor, *floor_argv(listing_requests(row.ours))]
    else:
        ours = Side(row.env_words() + "sockscope " + " ".join(row.ours))
        ours_argv = [*spec["sockscope"], *row.ours]
    peer = Side(" ".join(row.peer).replace(PYTHON, "python"))
    pairs = [(ours, ours_argv), (peer, _resolve(row.peer, spec) or [row.peer[0]])]
    outputs: list[bytes | None] = []
    with tempfile.TemporaryDirectory(prefix="sockscope-bench-") as tmp:
        for side, argv in pairs:
            if os.path.exists(argv[0]):
                env = row.env if side is ours else None
                outputs.append(_warm_up_cli(side, argv, tmp, keep=row.netns_rows, env=env))
            else:
                side.fail("unavailable", f"{argv[0]} not found")
        check = None
        if row.netns_rows and ours.ok and peer.ok:
            check = netns_rows(*(o.decode(errors="replace") if o else "" for o in outputs))
        err = os.path.join(tmp, "err")
        for run, side, argv in _abba(spec["runs"], pairs):
            seconds, status = _spawn(argv, os.devnull, err, row.env if side is ours else None)
            if status:
                side.fail("error", f"exit {status} on run {run + 1}")
            side.seconds.append(seconds)
    return [ours, peer], check


# --------------------------------------------------------------------------- inner: in-process timings


def _load_sockscope_net_connections(kind: str) -> Callable[[], Any]:
    import sockscope

    fn = cast(Callable[[str], Any], sockscope.net_connections)  # via the module's __getattr__
    return lambda: fn(kind)


def _load_psutil_net_connections(kind: str) -> Callable[[], Any]:
    import psutil  # type: ignore[import-untyped, unused-ignore]

    return lambda: psutil.net_connections(kind)


def _load_sockscope_sockets(kind: str) -> Callable[[], Any]:
    import sockscope

    fn = cast(Callable[[str], Any], sockscope.sockets)
    return lambda: list(fn(kind))


def _load_pyroute2(kind: str) -> Callable[[], Any]:
    from socket import AF_INET, AF_INET6, IPPROTO_TCP

    from pyroute2 import DiagSocket  # type: ignore[import-untyped, unused-ignore]
    from pyroute2.netlink.diag import SS_ALL  # type: ignore[import-untyped, unused-ignore]

    if kind != "tcp":
        raise NotImplementedError(f"pyroute2 row for kind {kind!r}")

    def dump() -> list[Any]:
        with DiagSocket() as diag:
            diag.bind()
            return [
                *diag.get_sock_stats(family=AF_INET, protocol=IPPROTO_TCP, states=SS_ALL),
                *diag.get_sock_stats(family=AF_INET6, protocol=IPPROTO_TCP, states=SS_ALL),
            ]

    return dump


LOADERS: dict[str, Callable[[str], Callable[[], Any]]] = {
    "sockscope.net_connections": _load_sockscope_net_connections,
    "psutil.net_connections": _load_psutil_net_connections,
    "sockscope.sockets": _load_sockscope_sockets,
    "pyroute2.get_sock_stats": _load_pyroute2,
}


def _psutil_key(conn: Any) -> tuple[Any, ...]:
    """A psutil-style connection as plain values (enums to ints, StrEnum to str; UNIX paths as they are)."""
    status = getattr(conn.status, "value", conn.status)
    laddr, raddr = (a if isinstance(a, str) else tuple(a) for a in (conn.laddr, conn.raddr))
    return (conn.fd, int(conn.family), int(conn.type), laddr, raddr, status, conn.pid)


def _same_connections(ours: Any, peer: Any) -> tuple[bool, str]:
    """Whether ``net_connections`` returned exactly psutil's connections (as a multiset)."""
    a = collections.Counter(map(_psutil_key, ours))
    b = collections.Counter(map(_psutil_key, peer))
    if a == b:
        return True, f"results identical to psutil ({len(ours)} connections)"
    only_a, only_b = a - b, b - a
    sample = next(iter(only_a or only_b))
    return False, (
        f"results DIFFER from psutil: {sum(only_a.values())} only in sockscope, "
        f"{sum(only_b.values())} only in psutil (of {len(ours)}/{len(peer)}); e.g. {sample!r}"
    )


def _same_count(ours: Any, peer: Any) -> tuple[bool, str]:
    return len(ours) == len(peer), f"{len(ours)} sockscope records, {len(peer)} pyroute2 messages"


#: sockscope's loader -> how the first (untimed) results of both sides are compared
CHECKS: dict[str, Callable[[Any, Any], tuple[bool, str]]] = {
    "sockscope.net_connections": _same_connections, "sockscope.sockets": _same_count,
}


def _load(side: Side, name: str, kind: str, env: Mapping[str, str] | None = None
          ) -> tuple[Callable[[], Any] | None, Any]:
    """Import a loader and call it once (untimed); (callable, first result) or (None, None).  With
    ``env``, every call of it (the first too) has ``env`` set (:func:`_with_env`)."""
    try:
        fn = LOADERS[name](kind)
        if env:
            fn = _with_env(fn, env)
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


def _with_env(fn: Callable[[], Any], env: Mapping[str, str]) -> Callable[[], Any]:
    """``fn`` called with ``env`` set in this process's environment (and put back after): an
    in-process row's ``env`` reaches only our side's calls (sockscope reads it at each call)."""
    def call() -> Any:
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            return fn()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return call


def measure_inproc(row: Row, spec: Mapping[str, Any]) -> tuple[list[Side], bool | None, list[str]]:
    """Time two in-process callables, interleaved, each after one untimed call whose results are compared
    (``row.env`` set around our side's calls alone)."""
    ours, peer = Side(row.env_words() + row.ours[0]), Side(row.peer[0])
    our_fn, our_result = _load(ours, row.ours[0], row.kind, row.env)
    peer_fn, peer_result = _load(peer, row.peer[0], row.kind)
    same, notes = None, []
    if ours.ok and peer.ok:
        ours.lines, peer.lines = len(our_result), len(peer_result)
        if row.ours[0] in CHECKS:
            same, note = CHECKS[row.ours[0]](our_result, peer_result)
            notes.append(note)
    del our_result, peer_result
    for _, side, fn in _abba(spec["runs"], [(ours, our_fn), (peer, peer_fn)]):
        if fn is not None:
            gc.collect()
            start = time.perf_counter()
            result = fn()
            side.seconds.append(time.perf_counter() - start)
            del result
    return [ours, peer], same, notes


def measure(row: Row, spec: Mapping[str, Any]) -> dict[str, Any]:
    """One row, in this process's namespace: ``{row, ours, peer, same, notes}`` (JSON-able)."""
    notes: list[str] = []
    same: bool | None = None
    if row.inproc:
        (ours, peer), same, notes = measure_inproc(row, spec)
    else:
        (ours, peer), check = measure_cli(row, spec)
        if check is not None:
            same, note = check
            notes.append(note)
        elif row.same_output and ours.ok and peer.ok:
            same = ours.lines == peer.lines
            if not same:
                notes.append(f"output lines differ: sockscope {ours.lines}, {peer.label} {peer.lines}")
    return {"row": row.name, "ours": asdict(ours), "peer": asdict(peer), "same": same, "notes": notes}


def versions() -> dict[str, str]:
    """The interpreter and the peers' versions, as the inner process sees them."""
    from importlib import metadata

    out = {"inner python": sys.version.split()[0]}
    for dist in ("psutil", "pyroute2"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def cell(side: Side) -> str:
    """A side's median as a table cell, or why there is none."""
    ms = side.median_ms()
    if ms is None:
        return side.status if side.status != "error" else f"error: {side.message}"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def spread(side: Side) -> str:
    """min–max of a side's samples."""
    if not side.ok or not side.seconds:
        return ""
    lo, hi = min(side.seconds) * 1e3, max(side.seconds) * 1e3
    return f"{lo:.0f}–{hi:.0f}" if lo >= 100 else f"{lo:.1f}–{hi:.1f}"


def floor_table(results: Sequence[Any], max_ratio: float = 1.5) -> list[str]:
    """Each listing measured beside its Python floor (a ``NAME`` row and a ``NAME_floor`` row of one
    population: ``results`` have ``row.name``, ``population``, ``ours`` and ``peer``): the floor as a
    share of ss's time, what ``max_ratio`` × ss leaves above the floor, and what the listing used
    above it.  "left" uses the floor row's ss (measured beside the floor), "used" the listing's own
    median.  A listing whose floor is at or above ss's time cannot hold the ratio in Python."""
    by = {(r.population, r.row.name): r for r in results}
    lines = ["| population | listing | ss | floor | floor / ss | left above the floor | used above it |",
             "|---|---|---|---|---|---|---|"]
    for (population, name), floor in by.items():
        listing = by.get((population, name.removesuffix("_floor")))
        if not name.endswith("_floor") or listing is None:
            continue
        ss, low, ours = floor.peer.median_ms(), floor.ours.median_ms(), listing.ours.median_ms()
        if ss is None or low is None or ours is None:
            continue
        mark = "**" if low >= ss else ""
        lines.append(f"| {population} | {listing.row.what} | {ss:.1f} ms | {low:.1f} ms | {mark}{low / ss:.2f}×{mark} "
                     f"| {max_ratio * ss - low:.1f} ms | {ours - low:.1f} ms |")
    return lines if len(lines) > 2 else []


def machine_phase(baselines: Sequence[tuple[float, float]]) -> str:
    """Whether the machine kept one speed through the run: UNSTEADY where some ``python -c pass``
    median is over 1.5× the quickest start seen.  Rows measured in a slow phase pay a slower
    start-up (ss much less so), so their ratios compare only with rows of the same phase."""
    if not baselines:
        return ""
    quickest = min(low for _median, low in baselines)
    medians = [median for median, _low in baselines]
    seen = f"python -c pass medians {min(medians):.1f}–{max(medians):.1f} ms over {len(medians)} checks"
    if max(medians) <= 1.5 * quickest:
        return f"steady: {seen}"
    return (f"UNSTEADY: {seen}, the quickest start {quickest:.1f} ms: compare ratios only between rows "
            "measured in one phase (each population's note says its python -c pass)")


#: every ``python -c pass`` taken in this run, (median, min) in ms (see :func:`machine_phase`)
BASELINES: list[tuple[float, float]] = []


def _start(python: str, runs: int = 7) -> tuple[float, float]:
    """``python -c pass`` ``runs`` times (timed as the rows time their commands: posix_spawn, no
    shell, no pipes): (median, min) in ms, recorded in :data:`BASELINES`."""
    times = sorted(_spawn([python, "-c", "pass"], os.devnull, os.devnull)[0] for _ in range(runs))
    BASELINES.append((times[len(times) // 2] * 1000, times[0] * 1000))
    return BASELINES[-1]


def first_line(argv: Sequence[str]) -> str:
    """The first non-empty line a command prints (either stream), or "not available"."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    return next((ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()), "?")


def proc_field(path: str, key: str, default: str) -> str:
    """The value of the first ``key: value`` line of a /proc file."""
    for line in Path(path).read_text().splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return default


def tcp_alloc() -> str:
    """TCP sockets allocated machine-wide (all namespaces share one hash table, so they slow every dump)."""
    fields = proc_field("/proc/net/sockstat", "TCP", "").split()
    return dict(zip(fields[::2], fields[1::2], strict=True)).get("alloc", "?")


def interpreter_start(python: str, runs: int = 7) -> str:
    """``python -c pass`` (the start-up every CLI row pays before sockscope's own work), the median
    of ``runs``: how fast the machine is right now.  On the 2-vCPU VM of bench/README.md it moved
    from 13 to 56 ms within one hour, without any steal time showing; a table's ratios are read
    with it.  Then two started at once (:func:`two_at_once`): whether a second core is there."""
    median, low = _start(python, runs)
    pair = two_at_once(python, runs)
    return (f"{median:.1f} ms (median of {runs}; min {low:.1f} ms); two at once {pair:.1f} ms "
            f"({pair / median:.2f}× one: {'a second core free' if pair < 1.4 * median else 'ONE CORE, in effect'})")


def two_at_once(python: str, runs: int = 5) -> float:
    """The median wall time (ms) of two ``python -c pass`` started together, until both end: about
    one's time where two cores are free, twice that where the machine gives this VM one core's worth.
    sockscope's ``-p`` listings and ``net_connections`` run their owner walk beside the dump, so
    their ratios lose that overlap in the second case (bench/README.md, session 31)."""
    times = []
    argv = [python, "-c", "pass"]
    for _ in range(runs):
        start = time.perf_counter()
        pids = [_launch(argv, os.devnull, os.devnull) for _ in range(2)]
        for pid in pids:
            os.waitpid(pid, 0)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def wait_for_quiet(python: str, below_ms: float, limit_s: float, pause_s: float = 20.0,
                   start_ms: Callable[[], float] | None = None, sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic) -> str:
    """Wait until ``python -c pass`` takes at most ``below_ms`` (the median of 7, checked every
    ``pause_s``), at most ``limit_s`` seconds: a note of the wait ("" where none was needed), or of
    the machine staying slow.  A start-up-bound row is decided by a quiet machine (bench/README.md)."""
    measure_ms = start_ms or (lambda: _start(python)[0])
    began, paused = clock(), False
    while True:
        ms = measure_ms()
        waited = clock() - began
        if ms <= below_ms:
            return f"waited {waited:.0f} s for python -c pass ≤ {below_ms:g} ms (then {ms:.1f} ms)" if paused else ""
        if waited + pause_s > limit_s:
            return f"NOT QUIET: python -c pass {ms:.1f} ms (> {below_ms:g} ms) after {waited:.0f} s of waiting"
        sleep(pause_s)
        paused = True
