"""Fuzzing the command line and the filter API with hypothesis: hostile input never crashes.

Every call runs inside a private network namespace made here (tests/nsutil.py,
with a hermetic resolv.conf: no name query leaves loopback) and a private pid
namespace (so ``-p``/``-T`` see only the test's processes), in one worker
process that calls the CLI's ``main(argv)`` in-process with stdout, stderr and
stdin replaced (cheap: most examples), plus a few real ``python -m sockscope``
subprocesses.  Destructive options are forced to ``--dry-run`` (``--dry-run``
is put first whenever a ``K`` option may be in the argv), ``-E`` (follows
forever), ``-N`` and ``--all-netns`` (other namespaces) are left out, and the
worker's working directory is a temporary one (``-D FILE`` writes there).

For every call: no exception escapes and no "Traceback" is printed; the exit
status is one of 0, 1 (a runtime error, or a filter value ss cannot parse
either) and 255 (usage); every stderr line is printable; a failure says so in
ONE ``sockscope:`` line (a filter error adds the echoed expression and a caret
line); and each call ends within a bound (seconds, not minutes: the point is
the 30 s quadratic tokenizer, not speed).  The API calls
(``sockscope.filter.parse``, ``sockscope.sockets(filter=…)``) raise only
:class:`~sockscope.errors.SockscopeError` with a printable one-line message;
whatever parses also compiles, runs, prints and reads back equal.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SOCKSCOPE
from nsutil import Netns
from sockscope.cli import options as _options

# big examples (a 4,301-digit port) make hypothesis warn about the size of their repr: expected here
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

#: The bound on one call (it is ~10 ms; the glued-parentheses case took 30 s).
CALL_LIMIT = 10.0
STATUSES = {0, 1, 255}

WORKER = r'''
import io, json, os, sys, time, traceback

proto_in = os.fdopen(os.dup(0), "r")
proto_out = os.fdopen(os.dup(1), "w")
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 0)
os.dup2(null, 1)  # anything written to fd 1 directly cannot garble the protocol

import sockscope
from sockscope import filter as flt
from sockscope.cli import main
from sockscope.errors import SockscopeError

# a few sockets of our own in the namespace, so that listings and predicates meet real records
import socket
listener = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(listener.getsockname())
peer, _ = listener.accept()
udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
udp.bind(("::1", 0))
pair = socket.socketpair()
SOCKS = list(sockscope.sockets("all"))
assert len(SOCKS) >= 6, SOCKS


def cli(req):
    raw = io.BytesIO()
    out, err = io.TextIOWrapper(raw, "utf-8", "surrogateescape", write_through=True), io.StringIO()
    saved = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr = out, err
    sys.stdin = io.TextIOWrapper(io.BytesIO(req["stdin"].encode("utf-8", "surrogateescape")))
    try:
        status = main(req["argv"])
        crash = None
    except BaseException:
        status, crash = None, traceback.format_exc()
    finally:
        sys.stdout, sys.stderr, sys.stdin = saved
    return {"status": status, "crash": crash, "stdout": len(raw.getvalue()), "stderr": err.getvalue()[:65536]}


def api(req):
    try:
        if req["op"] == "parse":
            tree = flt.parse(req["words"], family=req["family"])
            if tree is not None:
                flt.compile_bytecode(tree)
                pred = flt.compile_predicate(tree)
                for s in SOCKS:
                    pred(s)
                again = flt.parse([str(tree)])
                if again != tree:
                    return {"crash": f"{str(tree)!r} reads back as {again!r}, not {tree!r}"}
        else:
            list(sockscope.sockets(req["kind"], filter=req["filter"], states=req.get("states")))
        return {"crash": None, "error": None}
    except SockscopeError as exc:
        return {"crash": None, "error": str(exc), "status": exc.exit_status}
    except BaseException:
        return {"crash": traceback.format_exc()}


for line in proto_in:
    req = json.loads(line)
    t = time.monotonic()
    res = cli(req) if "argv" in req else api(req)
    res["seconds"] = time.monotonic() - t
    proto_out.write(json.dumps(res) + "\n")
    proto_out.flush()
'''


#: A private pid namespace with its own /proc; its processes die with unshare.
PRIVATE_PIDS = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]


class Worker:
    """The in-process caller, inside the namespace; one JSON line per request and answer."""

    def __init__(self, netns: Netns, cwd: str) -> None:
        self.netns, self.cwd = netns, cwd
        self.calls = 0
        self.start()

    def start(self) -> None:
        self.proc = self.netns.popen([*PRIVATE_PIDS, sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, cwd=self.cwd)
        self.buf = b""

    def fail(self, why: str) -> None:
        """A stalled or dead worker is replaced (the next example gets a fresh one), then the test fails."""
        self.proc.kill()  # our own child, by its Popen
        self.proc.wait()
        self.start()
        pytest.fail(why)

    def call(self, req: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(req).encode() + b"\n")
        self.proc.stdin.flush()
        self.calls += 1
        deadline = time.monotonic() + CALL_LIMIT
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            ready = select.select([self.proc.stdout], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                self.fail(f"no answer within {CALL_LIMIT} s to {req!r:.300}")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self.fail(f"the worker died (status {self.proc.poll()}) on {req!r:.300}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def netns() -> Iterator[Netns]:
    ns = Netns("sockscope-fz-")
    try:
        yield ns
    finally:
        ns.delete()


@pytest.fixture(scope="module")
def workdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="sockscope-fuzz-")
    try:
        with open(os.path.join(path, "parens"), "w") as f:
            f.write("(" * 60000 + "x" + ")" * 60000 + "\n")
        with open(os.path.join(path, "ports"), "w") as f:
            f.write("# generated\n" + " or ".join(f"sport = :{p}" for p in range(1, 3000)) + "\n")
        with open(os.path.join(path, "big"), "wb") as f:
            f.write(b"#" * (1 << 20) + b"\n")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def worker(netns: Netns, workdir: str) -> Iterator[Worker]:
    w = Worker(netns, workdir)
    try:
        yield w
    finally:
        w.close()


# --------------------------------------------------------------------------------------------
# What the fuzzer draws from: the listing's own option table, ss's state words, filter pieces


# (row: letter, long names, argument name, ...: cli/options.py)
_SHORT_FLAGS = [c for c, row in _options.SHORTS.items() if c != "E" and not row[2]]
_SHORT_VALUED = [c for c, row in _options.SHORTS.items() if row[2]]
_LONG_FLAGS = [n for n, row in _options.LONGS.items() if not row[2]]
_LONG_VALUED = [n for n, row in _options.LONGS.items() if row[2]]
#: Left out of every command line: -E follows forever, -N and --all-netns reach other namespaces.
_OUT = {"E", "N", "events", "net", "all-netns"}

BIG = "9" * 4301
CONTROL = "\n\r\t\x00\x1b\x7f\x85\u2028\udcff"
JUNK = st.text(alphabet="()[]:*/.\\!=<>&|#- abcxyz0123456789" + CONTROL, max_size=12)
NUMBERS = st.sampled_from(["0", "-1", "-2", "65535", "65536", "99999", "2147483648", "0x10000", "010", BIG,
                           "0x" + "f" * 5000])
STATE_NAMES = st.sampled_from(["established", "listening", "all", "connected", "bucket", "big", "time-wait",
                               "syn-recv", "closed", "listen", "ESTABLISHED", ""])
VALUES = {
    "f": st.sampled_from(["inet", "inet6", "link", "unix", "netlink", "vsock", "tipc", "xdp", "help", "bogus", ""]),
    "A": st.sampled_from(["all", "inet", "tcp", "udp", "unix", "packet", "netlink", "vsock", "tipc", "xdp",
                          "!tcp", "tcp,udp", "bogus", ""]),
    "D": st.just("diag.out"),
    "F": st.sampled_from(["-", "/dev/null", "/dev/zero", "parens", "ports", "big", "missing", "", "."]),
}
FILTER_WORDS = st.sampled_from([
    "(", ")", "!", "not", "and", "&&", "or", "||", "src", "dst", "sport", "dport", "dev", "fwmark", "cgroup",
    "autobound", "=", "==", "!=", ">", "<", ">=", "<=", "eq", "ge", ":22", ":ssh", ":nope", "*", "*:22", "127.0.0.1",
    "[::1]", "[::1]:22", "::", "[::]/0", "10.0.0.0/8", "127/8", "localhost", "bogus.invalid", "unix:/tmp/*",
    "unix:@*", "link:ip", "link:ip:lo", "netlink:rtnl", "netlink:*:kernel", "vsock:1:2", "vsock:*", "tipc:1.2.3.4",
    "xdp:*:5", "inet:", "inet6:*", "lo", "0x10/0xff", "/", "(sport", ":22)", "state", "exclude", "", " ", "\\",
])
FILTER_PIECES = st.one_of(FILTER_WORDS, NUMBERS.map(lambda n: ":" + n), NUMBERS, JUNK)
HOST_PREFIXES = st.sampled_from(["", "", ":", "*:", "inet:", "inet6:", "unix:", "link:", "netlink:", "vsock:",
                                 "tipc:", "xdp:", "127.0.0.1:", "[::1]:", "127.0.0.1/", "link:ip:", "netlink:1:"])
#: ``KEY [OP] VALUE``: conditions that reach the value parsers (a word soup rarely does)
CONDITIONS = st.tuples(
    st.sampled_from(["src", "dst", "sport", "dport", "dev", "fwmark", "cgroup"]),
    st.sampled_from(["", "", "=", "!=", ">=", "<", "eq", "gt"]),
    st.tuples(HOST_PREFIXES, st.one_of(NUMBERS, FILTER_WORDS, JUNK)).map("".join),
).map(lambda c: [w for w in c if w])
FILTERS = st.lists(st.one_of(CONDITIONS, FILTER_PIECES.map(lambda w: [w])), max_size=6).map(
    lambda parts: [w for p in parts for w in p])


@st.composite
def options(draw: st.DrawFn) -> list[str]:
    kind = draw(st.sampled_from(["short", "bundle", "long", "valued"]))
    if kind == "short":
        return ["-" + draw(st.sampled_from(_SHORT_FLAGS))]
    if kind == "bundle":
        return ["-" + "".join(draw(st.lists(st.sampled_from(_SHORT_FLAGS), min_size=2, max_size=5)))]
    if kind == "long":
        name = draw(st.sampled_from(_LONG_FLAGS))
        return ["--" + name[:draw(st.integers(2, len(name)))]]  # getopt_long takes unique prefixes
    letter = draw(st.sampled_from(_SHORT_VALUED))
    value = draw(VALUES.get(letter, st.just("x")))
    if letter == "N":
        return []
    long = {"f": "family", "A": "query", "D": "diag", "F": "filter"}[letter]
    return draw(st.sampled_from([["-" + letter, value], ["-" + letter + value], [f"--{long}={value}"]]))


def _states() -> st.SearchStrategy[list[str]]:
    return st.tuples(st.sampled_from(["state", "exclude", "excl"]), STATE_NAMES).map(list)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    parts = draw(st.lists(st.one_of(options(), _states(), FILTER_PIECES.map(lambda w: [w]), FILTERS), max_size=8))
    return [w for p in parts for w in p]


def _tame(args: list[str]) -> list[str]:
    """The argv to run: what could follow forever or leave the namespace dropped, and
    ``--dry-run`` first whenever a ``K`` option may be in it (conservatively)."""
    out: list[str] = []
    kill = False
    for i, a in enumerate(args):
        if a == "--":  # operands from here on: never options
            out += args[i:]
            break
        if a.startswith("--"):
            name = a[2:].partition("=")[0]
            if len(name) >= 2 and any(o.startswith(name) for o in _OUT if len(o) > 1):
                continue
            kill = kill or (len(name) >= 1 and "kill".startswith(name))
        elif a.startswith("-") and len(a) > 1:
            if set(a) & {"E", "N"}:
                continue
            kill = kill or "K" in a
        out.append(a)
    return ["--dry-run", *out] if kill else out


def _check_cli(argv: list[str], res: dict) -> None:
    label = f"sockscope {argv!r:.400}"
    assert res["crash"] is None, f"{label}: raised\n{res['crash']}"
    assert res["status"] in STATUSES, f"{label}: exit {res['status']}"
    err = res["stderr"]
    assert "Traceback" not in err, f"{label}:\n{err}"
    lines = err.splitlines()
    assert all(line.isprintable() and len(line) < 1100 for line in lines), f"{label}: stderr {lines!r:.600}"
    assert res["seconds"] < CALL_LIMIT, f"{label}: {res['seconds']:.1f} s"
    said = [line for line in lines if line.startswith("sockscope: ")]
    if res["status"]:
        assert said, f"{label}: exit {res['status']} without a message: {lines!r:.600}"
        last = said[-1]
        tail = lines[lines.index(last) + 1:]
        if last.startswith("sockscope: bad filter"):  # the expression echoed, a caret under the bad token
            assert len(tail) == 2 and tail[1].strip() == "^", f"{label}: {lines!r:.600}"
        else:
            assert tail == [], f"{label}: more than one line for one error: {lines!r:.600}"
    # every line is a message of its own, or a filter error's echo and caret
    assert len(said) + 2 * sum(1 for s in said if s.startswith("sockscope: bad filter")) == len(lines), \
        f"{label}: {lines!r:.600}"


def _check_api(what: str, res: dict) -> None:
    assert res["crash"] is None, f"{what}: raised\n{res['crash']}"
    assert res["seconds"] < CALL_LIMIT, f"{what}: {res['seconds']:.1f} s"
    if res.get("error") is not None:
        assert res["error"].isprintable() and res["status"] in STATUSES, f"{what}: {res!r:.600}"


# --------------------------------------------------------------------------------------------


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(args=command_lines(), stdin=st.one_of(st.just(""), FILTERS.map(" ".join)))
def test_command_lines_in_process(worker: Worker, args: list[str], stdin: str) -> None:
    argv = ["ls", *_tame(args)]
    _check_cli(argv, worker.call({"argv": argv, "stdin": stdin}))


FAMILIES = [0, 1, 2, 10, 16, 17, 30, 40, 44]


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(words=FILTERS, family=st.sampled_from(FAMILIES))
def test_filter_parse_api(worker: Worker, words: list[str], family: int) -> None:
    _check_api(f"parse({words!r:.300}, family={family})",
               worker.call({"op": "parse", "words": words, "family": family}))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(kind=st.sampled_from(["inet", "tcp", "udp6", "unix", "all"]),
       text=st.one_of(st.lists(st.one_of(_states(), FILTERS), max_size=3)
                      .map(lambda parts: " ".join(w for p in parts for w in p)), JUNK))
def test_sockets_filter_api(worker: Worker, kind: str, text: str) -> None:
    _check_api(f"sockets({kind!r}, filter={text!r:.300})",
               worker.call({"op": "sockets", "kind": kind, "filter": text}))


#: ``sockets(states=…)``: one state or a list, as names, ss's words, numbers (in range or not), junk
STATE_VALUES = st.one_of(st.none(), STATE_NAMES, JUNK, st.integers(-(2 ** 70), 2 ** 70),
                         st.lists(st.one_of(STATE_NAMES, JUNK, st.integers(-50, 50)), max_size=4))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(kind=st.sampled_from(["inet", "tcp", "udp6", "unix", "all"]), states=STATE_VALUES,
       text=st.one_of(st.just(""), FILTERS.map(" ".join)))
def test_sockets_states_api(worker: Worker, kind: str, states: object, text: str) -> None:
    _check_api(f"sockets({kind!r}, states={states!r:.200}, filter={text!r:.300})",
               worker.call({"op": "sockets", "kind": kind, "filter": text, "states": states}))


#: Found by hand or by this fuzzer (each raised, stalled or broke a line before).
KNOWN = [
    ["--vsock", "dport", "=", ":22"], ["--tipc", "src", "1.2.3.4"], ["-f", "xdp", "sport >= :5"],
    ["-tan", "dport", "=", ":" + BIG], ["-tan", "src", "1.2.3.4/" + BIG], ["-tan", "fwmark", BIG],
    ["-f", "netlink", "src", "netlink:" + BIG], ["-tan", "-F", "/dev/zero"], ["-tan", "-F", "parens"],
    ["-tan", "-F", "big"], ["-tan", "dport", "=", ":2\n2"], ["-tan", "state", "x\ny"],
    ["-tan", "dport = :nope"], ["-tan", "src", "::"], ["-K"], ["-K", ""], ["-K", "-F", "/dev/null"],
]


@pytest.mark.parametrize("args", KNOWN, ids=[repr(a)[:50] for a in KNOWN])
def test_known_cases_in_process(worker: Worker, args: list[str]) -> None:
    argv = ["ls", *_tame(args)]
    _check_cli(argv, worker.call({"argv": argv, "stdin": ""}))


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(args=command_lines())
def test_command_lines_as_processes(netns: Netns, workdir: str, args: list[str]) -> None:
    """A few real processes: the console path (``python -m sockscope``) adds its own exit handling."""
    argv = [a.replace("\0", "") for a in _tame(args)]  # an argv of a process cannot hold NUL
    t = time.monotonic()
    proc = subprocess.run(netns.argv([*PRIVATE_PIDS, *SOCKSCOPE, *argv]), capture_output=True, timeout=60, cwd=workdir,
                          stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - t
    err = proc.stderr.decode("utf-8", "surrogateescape")
    _check_cli(argv, {"crash": None, "status": proc.returncode, "stderr": err, "seconds": seconds})
