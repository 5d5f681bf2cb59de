"""Shared fixtures for the differential tests (real kernel, private namespaces).

``population`` (session scope) makes a private netns ``sockscope-t-<hex>``,
starts ``tests/population.py`` inside it, waits for READY, and yields a
:class:`Harness`: ``run(argv)`` runs a command inside the netns, ``ss(argv)``
and ``sockscope(argv)`` run the two tools there, ``pids`` are the processes it
started.  Teardown (always, also on failure): the population's processes are
ended by pid, the netns and its /etc/netns dir are deleted, the temp dir is
removed, and a final check asserts ``ip netns list`` no longer shows it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any, Iterator, Sequence

import pytest

from nsutil import AsUser, Netns, Population

SOCKSCOPE = [sys.executable, "-m", "sockscope"]

# Tests end what they start with Ctrl-C's signal (SIGINT) as a terminal would send it.  A runner that
# starts pytest with SIGINT ignored (a background job of a shell) would hand that on to every
# program started here, which would then not stop: Python's own handler makes them start with the
# default disposition again.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


class Harness:
    """What the ``population`` fixture yields."""

    def __init__(self, netns: Netns, population: Population) -> None:
        self.netns = netns
        self.population = population
        self.name = netns.name
        self.pids = list(population.pids)
        self.info: dict[str, Any] = population.info

    def run(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace (text output, not checked)."""
        return self.netns.run(argv, env=env, timeout=timeout)

    def ss(self, argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(["ss", *argv], env=env)

    def sockscope(self, argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.run([*SOCKSCOPE, *argv], env=env)

    def python(self, code: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-c", code, *args], env=env, timeout=timeout)

    def ensure_timewait(self) -> None:
        """Make sure a TIME-WAIT pair at most ~30 s old exists (they last 60 s)."""
        self.population.ensure_timewait()


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the differential tests need root (ip netns add, ip netns exec)", pytrace=False)


@pytest.fixture(scope="session")
def population() -> Iterator[Harness]:
    _require_root()
    netns = Netns()
    pop: Population | None = None
    try:
        pop = Population(netns)
        yield Harness(netns, pop)
    finally:
        try:
            if pop is not None:
                pop.stop()
        finally:
            netns.delete()
    assert not netns.exists(), f"netns {netns.name} still listed by `ip netns list`"
    assert not netns.etc_dir.exists(), f"{netns.etc_dir} left behind"
    assert pop is not None and not pop.alive_pids(), f"population processes still alive: {pop.alive_pids()}"
    assert not os.path.exists(pop.tmpdir), f"{pop.tmpdir} left behind"


@pytest.fixture
def fresh_population(population: Harness) -> Harness:
    """The session population, with a TIME-WAIT pair young enough to outlive the test."""
    population.ensure_timewait()
    return population


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """sockscope caches what it learns of the kernel (the BPF iterator's layout)
    under $XDG_CACHE_HOME: the tests (and the commands they start) use a
    directory of their own, removed at the end, not the user's."""
    import shutil

    path = tmp_path_factory.mktemp("xdg-cache")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old
        shutil.rmtree(path, ignore_errors=True)


_GUARDED_SIGNALS = (signal.SIGPIPE, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@pytest.fixture(autouse=True)
def _signal_dispositions_kept() -> Iterator[None]:
    """No test leaves pytest's process with another signal disposition than it found.  Python
    ignores SIGPIPE (a write to a closed socket raises EPIPE); code run in-process that restored the
    default made a later test's write kill the whole run with status 141, far from its cause; a
    handler left on SIGTERM or SIGINT would change how a later test, or the run, ends.  A test that
    changes one fails here, by name, and the disposition is put back."""
    before = [signal.getsignal(s) for s in _GUARDED_SIGNALS]
    yield
    changed = []
    for sig, was in zip(_GUARDED_SIGNALS, before):
        now = signal.getsignal(sig)
        if now != was:
            signal.signal(sig, was)
            changed.append(f"{sig.name} from {was!r} to {now!r}")
    if changed:
        pytest.fail(f"the test changed signal dispositions: {'; '.join(changed)}", pytrace=False)


@pytest.fixture(scope="module")
def nobody() -> Iterator[AsUser]:
    """``sockscope`` runnable as uid 65534 wherever this checkout is (e.g. under /root)."""
    user = AsUser("65534")
    try:
        if user.reason:
            pytest.skip(user.reason)
        yield user
    finally:
        user.close()
    assert not os.path.exists(user.tmp)
