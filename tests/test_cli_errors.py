"""Bad input, -V, -h and broken pipes: sockscope against ss's exit statuses.

ss 6.1 answers a usage error with a message plus its whole usage text on
stderr and exit 255; sockscope must exit with the same status ss does (run
side by side here, not hard-coded), but say it in ONE stderr line, with no
traceback and nothing on stdout.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import sockscope
from conftest import SOCKSCOPE, Harness

BAD_INPUT = [
    ["--bogus"],
    ["-Y"],
    ["state", "bogus"],
    ["state", "listen"],               # ss's trap: only "listening" is a state name
    ["-t", "state", "LISTEN"],         # case-insensitive, still not a state name
    ["exclude", "bogus"],
    ["-tan", "state", "established", "state", "bogus"],
    ["-t", "state"],                   # a state keyword with no name
    ["-A", "bogus"],
    ["-A", "tcp,bogus"],
    ["-f", "bogus"],
    ["-A"],                            # missing option argument
    ["-f"],
]


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload]


@pytest.mark.parametrize("argv", BAD_INPUT, ids=[" ".join(a) for a in BAD_INPUT])
def test_bad_input_one_line_same_status_as_ss(argv: list[str]) -> None:
    ref = _run(["ss", *argv])
    assert ref.returncode != 0, f"ss accepted {argv}: the case is wrong"
    res = _run([*SOCKSCOPE, *argv])
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"{argv}: want one stderr line, got {lines!r}"
    assert res.returncode == ref.returncode, (
        f"{argv}: sockscope exited {res.returncode}, ss {ref.returncode}; sockscope said {lines!r}")
    assert res.stdout == "", f"{argv}: sockscope printed on stdout: {res.stdout!r}"


def test_version() -> None:
    ref = _run(["ss", "-V"])
    res = _run([*SOCKSCOPE, "-V"])
    assert res.returncode == ref.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 1, lines
    assert sockscope.__version__ in lines[0], lines
    assert res.stderr == ""


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(flag: str) -> None:
    ref = _run(["ss", flag])
    res = _run([*SOCKSCOPE, flag])
    assert res.returncode == ref.returncode == 0, res.stderr
    assert res.stdout.startswith("Usage:"), res.stdout[:200]
    assert res.stderr == ""
    # the options the listing promises are documented
    for opt in ("-n", "-r", "-a", "-l", "-t", "-u", "-x", "-4", "-6", "-A", "-f", "-H", "-O", "-p"):
        assert f"{opt}," in res.stdout or f"{opt} " in res.stdout, f"{opt} missing from --help"


@pytest.mark.parametrize("options", ["-tan", "-a", "-anp"])
def test_head_one_is_quiet(population: Harness, options: str) -> None:
    """`python -m sockscope OPTIONS | head -1`: the header line, nothing on stderr."""
    cmd = f"{' '.join(SOCKSCOPE)} {options} | head -1"
    res = population.run(["sh", "-c", cmd])
    assert res.returncode == 0
    assert res.stderr == "", f"{cmd}: stderr {res.stderr!r}"
    assert res.stdout.splitlines()[0].split()[:2] in (["Netid", "State"], ["State", "Recv-Q"]), res.stdout


@pytest.mark.parametrize("options", ["-tan", "-a"])
def test_closed_pipe_is_quiet(population: Harness, options: str) -> None:
    """A reader that is already gone (the deterministic form of `| head -1`): EPIPE on the
    first write must end sockscope quietly: no traceback, no message."""
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run(population.netns.argv([*SOCKSCOPE, options]), stdout=w,
                              stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(w)
    err = proc.stderr.decode(errors="replace")
    assert err == "", f"stderr after EPIPE: {err!r}"
    assert proc.returncode in (0, 141, -13), proc.returncode  # quiet success, or death by SIGPIPE like ss


_SIGPIPE_AFTER_MAIN = r"""
import contextlib, io, signal, sys
from sockscope import cli
before = signal.getsignal(signal.SIGPIPE)
with contextlib.redirect_stdout(io.StringIO()) as out:
    status = cli.main(sys.argv[1:])
print(status, before == signal.SIG_IGN, signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN, bool(out.getvalue()))
"""


@pytest.mark.parametrize("options", ["-tan", "-xa"])
def test_main_called_in_process_keeps_the_callers_sigpipe(population: Harness, options: str) -> None:
    """``sockscope.cli.main(argv)`` called by another program (a test, a tool; bench's request
    capture does) leaves that process's SIGPIPE disposition alone: Python ignores SIGPIPE, and a
    listing that restored the default there made the caller's next write to a closed socket kill it
    (the CI run that died with status 141).  Only the console script's own process dies quietly on a
    closed pipe (test_head_one_is_quiet, test_closed_pipe_is_quiet)."""
    res = population.run([sys.executable, "-c", _SIGPIPE_AFTER_MAIN, options])
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "True", "True", "True"], res.stdout


_SIGTERM_AFTER_FOLLOW = r"""
import contextlib, io, os, signal, threading
from sockscope import cli
before = signal.getsignal(signal.SIGTERM)
threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()  # Ctrl-C, as a user ends -E
with contextlib.redirect_stdout(io.StringIO()):
    status = cli.main(["-E"])
print(status, signal.getsignal(signal.SIGTERM) == before)
"""


def test_follow_called_in_process_puts_sigterm_back(population: Harness) -> None:
    """``-E`` ends on SIGTERM as on Ctrl-C by a handler of its own; run by a caller's
    ``sockscope.cli.main``, it gives SIGTERM back as it found it."""
    res = population.run([sys.executable, "-c", _SIGTERM_AFTER_FOLLOW], timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "True"], res.stdout


def test_sockscope_console_script_matches_module() -> None:
    """`sockscope` (console script) and `python -m sockscope` are the same program."""
    script = os.path.join(os.path.dirname(sys.executable), "sockscope")
    if not os.path.exists(script):
        pytest.fail(f"console script {script} not installed (pip install -e .)")
    a = _run([script, "-V"])
    b = _run([*SOCKSCOPE, "-V"])
    assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)


@pytest.mark.parametrize("options", ["-tuln", "-xa", "-s", "--json"])
def test_write_error_is_one_line(options: str) -> None:
    """Output to a full disk (/dev/full): one line on stderr and exit 1, never a
    traceback and never a silent success."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run(["unshare", "-n", *SOCKSCOPE, options], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == "sockscope: No space left on device\n"


@pytest.mark.parametrize("argv", [["serve", "--help"], ["connect", "-h"], ["who", "--help"], ["top", "--help"],
                                  ["exporter", "--help"], ["completion", "--help"]], ids=" ".join)
def test_subcommand_help_write_error_is_one_line(argv: list[str]) -> None:
    """A subcommand's help to a full disk: one line and exit 1, as the listing's; it was a silent 0."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run([*SOCKSCOPE, *argv], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (1, "sockscope: No space left on device\n")
    ok = _run([*SOCKSCOPE, *argv])
    assert ok.returncode == 0 and ok.stdout.startswith("usage: sockscope ") and not ok.stderr, ok


# --------------------------------------------------------------------------------------------
# Hostile filters on the command line: ss's exit status, no traceback, printable one-line
# messages (a filter error adds the echoed expression and a caret line), bounded input.

BIG = "9" * 4301  # one digit past Python's int-string conversion limit

FILTER_INPUT = [
    # preferred families sockscope does not list: ss filters them (exit 0); this was a traceback
    ["--vsock", "dport", "=", ":22"],
    ["--tipc", "dport", "=", ":22"],
    ["--xdp", "src", "1.2.3.4"],
    ["-f", "vsock", "sport = :1"],
    ["-f", "tipc", "src 10.1:80"],
    ["-f", "xdp", "dport >= :5"],
    ["-a", "--vsock", "src", "vsock:3:22"],
    ["--vsock", "src", "1.2.3.4"],             # not a CID: exit 1 like ss
    ["--tipc", "src", "[::1]"],
    # numbers past the int-string conversion limit: exit 1 like ss (ValueError before)
    ["-tan", "dport", "=", ":" + BIG],
    ["-tan", "src", "127.0.0.1/" + BIG],
    ["-tan", "src", "127.0.0.1:" + BIG],
    ["-f", "netlink", "src", "netlink:" + BIG],
    ["-f", "netlink", "src", "netlink:1:" + BIG],
    ["-0", "src", "link:" + BIG],
    # ss's exit statuses for bad addresses (1; sockscope exited 255) and a port beyond 16 bits (0)
    ["-tan", "dport = :nope"],
    ["-tan", "src", "bogus.invalid"],
    ["-tan", "src", "::"],
    ["-tan", "src", "[::]/0"],
    ["-tan", "dport", "=", "99999"],
    ["-tan", "dport = :-1"],
    # control characters inside a token: still one message line
    ["-tan", "dport", "=", ":2\n2"],
    ["-tan", "src", "\x1b[2J\x1b[31mx"],
    ["-tan", "sport = :1", "foo\rbar"],
]


@pytest.mark.parametrize("argv", FILTER_INPUT, ids=[repr(" ".join(a))[:60] for a in FILTER_INPUT])
def test_hostile_filter_same_status_as_ss(argv: list[str]) -> None:
    ref = _run(["unshare", "-n", "ss", "-H", *argv])
    res = _run(["unshare", "-n", *SOCKSCOPE, "-H", *argv])
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == ref.returncode, (
        f"{argv}: sockscope exited {res.returncode}, ss {ref.returncode}; sockscope said {res.stderr[:300]!r}")
    lines = res.stderr.splitlines()
    assert all(line.isprintable() for line in lines), lines
    if res.returncode:
        assert res.stdout == ""
        assert len(lines) == 3 and lines[0].startswith('sockscope: bad filter "'), lines
        assert lines[2].strip() == "^" and len(lines[0]) < 600, lines
    else:
        assert res.stdout == ref.stdout == "", res.stdout  # -H, a private namespace: no rows
        assert len(lines) <= 1 and all("not supported" in line for line in lines), lines


@pytest.mark.parametrize("content", [None, "big", "parens"])
def test_filter_file_bounded(tmp_path, content: str | None) -> None:
    """-F FILE: /dev/zero (MemoryError before), a file past the 1 MiB limit, and 120,001 glued
    parentheses (quadratic tokenizing: ~30 s) each give one clear line, not a crash or a stall."""
    MAX_FILE = 1 << 20  # the documented limit (sockscope.filter.parser.MAX_FILE)
    if content is None:
        path = "/dev/zero"
    else:
        f = tmp_path / "filter"
        f.write_text("#" * MAX_FILE + "\n" if content == "big" else "(" * 60000 + "x" + ")" * 60000 + "\n")
        path = str(f)
    res = subprocess.run(["unshare", "-n", *SOCKSCOPE, "-tan", "-F", path], capture_output=True, text=True,
                         timeout=20)
    assert "Traceback" not in res.stderr and res.stdout == "", res.stderr[:500]
    assert res.returncode == 255, res.stderr[:500]
    lines = res.stderr.splitlines()
    if content == "parens":
        assert len(lines) == 3 and "more than 100 nested parentheses" in lines[0] and len(lines[0]) < 400, lines
    else:
        assert lines == [f"sockscope: filter file {path} is larger than 1 MiB"]


def test_filter_from_closed_stdin() -> None:
    """``-F -`` with standard input closed reads an empty filter, as ss does (a traceback before)."""
    cmd = "exec {} -H -tan -F - <&-"
    ref = _run(["unshare", "-n", "sh", "-c", cmd.format("ss")])
    res = _run(["unshare", "-n", "sh", "-c", cmd.format(" ".join(SOCKSCOPE))])
    assert "Traceback" not in res.stderr, res.stderr
    assert (res.returncode, res.stdout, res.stderr) == (ref.returncode, ref.stdout, "") == (0, "", "")


@pytest.mark.parametrize("argv, status", [
    (["-H", "-tan"], 0),
    (["state", "bogus"], 255),
    (["-tan", "--json"], 0),
], ids=["listing", "usage-error", "json"])
def test_closed_stderr(argv: list[str], status: int) -> None:
    """Started with standard error closed: the exit status is the listing's own, and nothing meant for
    stderr (here /proc's fallback warning) lands in stdout, where it would break ``--json`` (print()
    writes to stdout when sys.stderr is None; the exit's flush of it failed with status 1)."""
    cmd = 'exec "$@" 2>&-'
    env = {**os.environ, "SOCKSCOPE_FORCE_PROC": "1"}
    res = _run(["unshare", "-n", "sh", "-c", cmd, "sh", *SOCKSCOPE, *argv], env=env)
    assert res.returncode == status, res
    assert "sockscope" not in res.stdout and "/proc" not in res.stdout, res.stdout
    if "--json" in argv:
        assert res.stdout.strip() == "[]", res.stdout
