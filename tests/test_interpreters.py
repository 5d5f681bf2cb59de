"""sockscope under every other Python of this machine (``tests/interpreters.py``: Ubuntu's 3.12,
Debian 13's and Fedora's 3.13 where pyenv or PATH has them), from the source tree: the same rows
as ss for every option set of ``test_cli_vs_ss``, the same answers as under the suite's own
interpreter (machine formats, ``who``, the Python API, one-line errors).  The start-up checks
(``test_startup``) and the preload's (``test_preload``) run under each interpreter in their own
modules."""

from __future__ import annotations

import shlex
import subprocess
import sys
from typing import Sequence

import pytest

import interpreters
from conftest import Harness
from test_cli_vs_ss import OPTION_SETS, _ids, compare

PYTHONS = list(interpreters.OTHERS.items())
IDS = [version for version, _ in PYTHONS]


def test_the_interpreters_asked_for_are_here() -> None:
    """``.ci/run`` names the versions CI must run sockscope under; each is found (or is the suite's)."""
    missing = [v for v in interpreters.REQUIRED if v not in interpreters.OTHERS and v != interpreters.RUNNING]
    assert not missing, (f"no Python {', '.join(missing)} found (looked on PATH and in ~/.pyenv/versions; "
                         "$SOCKSCOPE_TEST_PYTHONS names them)")
    if not PYTHONS:
        pytest.skip(f"no CPython 3.11+ other than {interpreters.RUNNING} on this machine")


class _Under:
    """The session population, with ``sockscope`` run by another interpreter (``compare``'s ``pop``)."""

    def __init__(self, pop: Harness, python: str) -> None:
        self.pop, self.python = pop, python

    def ensure_timewait(self) -> None:
        self.pop.ensure_timewait()

    def ss(self, argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.pop.ss(argv, env=env)

    def sockscope(self, argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.pop.run([self.python, "-m", "sockscope", *argv], env=interpreters.env(env))

    def run(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.pop.run(argv, env=env, timeout=timeout)


@pytest.mark.parametrize("options", OPTION_SETS, ids=_ids(OPTION_SETS))
@pytest.mark.parametrize("python", [p for _, p in PYTHONS], ids=IDS)
def test_same_rows_as_ss(fresh_population: Harness, python: str, options: str) -> None:
    compare(_Under(fresh_population, python), shlex.split(options))  # type: ignore[arg-type]


#: commands whose whole answer (status, stdout, stderr) must not depend on the interpreter: on the
#: session population, idle, nothing in them that moves between two runs (no timers, no rtt)
SAME_ANSWERS: list[list[str]] = [
    ["-xa", "--json"], ["-xap", "--csv"], ["-uanm"], ["-tln", "-e"],
    ["-tnep", "state", "established", "(", "sport", "=", ":22", "or", "dport", "=", ":8443", ")"],  # (no timer)
    ["-tan", "-K", "--dry-run", "sport", "=", ":22"],
    ["who", ":22"], ["who", ":22", "--json"], ["who", "no-such-word"],
    ["-tan", "sport", "=", ":99999"], ["-tan", "(", "sport", "=", ":22"], ["--no-such-option"], ["-K", ""],
    ["serve", "--host", "a..b"], ["serve", "--host", "x" * 64], ["connect", "a..b", "80"],
    ["completion", "bash"],  # (not the exporter: prometheus_client, an extra, is not there)
]

_API = (
    "import json, sockscope\n"
    # (not TIME-WAIT: the session population's older pairs end when they will, between the two runs)
    "conns = {k: sorted(repr(c) for c in sockscope.net_connections(k) if c.status != 'TIME_WAIT')\n"
    "         for k in ('all', 'tcp', 'udp6', 'unix')}\n"
    "socks = [repr(s) for s in sockscope.sockets('inet', states=('established', 'listen'), processes=True,\n"
    "                                             filter='sport = :22 or dport = :22 or sport = :8443')]\n"
    "socks += [repr(s) for s in sockscope.sockets('unix', processes=True, details=True)]\n"
    "print(json.dumps({'net_connections': conns, 'sockets': socks}))\n"
)


def _answer(pop: Harness, argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = pop.run(argv, env=env)
    return r.returncode, r.stdout, r.stderr


@pytest.mark.parametrize("python", [p for _, p in PYTHONS], ids=IDS)
def test_same_answers_as_the_suites_interpreter(fresh_population: Harness, python: str) -> None:
    pop = fresh_population
    for argv in SAME_ANSWERS:
        ours = _answer(pop, [sys.executable, "-m", "sockscope", *argv])
        theirs = _answer(pop, [python, "-m", "sockscope", *argv], interpreters.env())
        assert theirs == ours, f"sockscope {shlex.join(argv)} under {python}"
        assert "Traceback" not in ours[2], ours[2]
    ours = _answer(pop, [sys.executable, "-c", _API])
    theirs = _answer(pop, [python, "-c", _API], interpreters.env())
    assert ours[0] == 0 and ours[1].count('"') > 100, ours
    assert theirs == ours, f"the Python API under {python}"
