"""Where a sockscope command spends its time: the profiles behind bench/README.md.

Run it inside the namespace to look at, with the python of the venv to measure::

    ip netns exec NAME bench/.venv/bin/python bench/breakdown.py -- -tan
    ip netns exec NAME bench/.venv/bin/python bench/breakdown.py --api net_connections
    ip netns exec NAME bench/.venv/bin/python bench/breakdown.py --api sockets

For a CLI command it prints

* the cold timeline of one call in this fresh process: milliseconds since
  sockscope's import began (the interpreter's own start-up, ~10 ms, comes
  before that and is not included) at which its CLI was imported, the first
  dump request went out, the first datagram came back and ``main`` returned;
* the median of repeated warm calls in the same process;
* a cProfile of one warm call, the top functions by their own time.

For ``--api`` it prints the warm median and a cProfile of ten calls.  Output
goes to /dev/null; nothing here is timed by the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

T0 = time.perf_counter()


def _ms() -> float:
    return (time.perf_counter() - T0) * 1000


def _cli(argv: list[str], runs: int, top: int) -> None:
    global T0
    T0 = time.perf_counter()  # the marks count from here: sockscope not imported yet
    import sockscope.cli

    marks = [("cli imported", _ms())]
    from sockscope.kernel import transport

    originals = {name: getattr(transport, name) for name in ("stream", "stream_ahead")}

    def watched(fn: Callable[..., Iterator[bytes]]) -> Callable[..., Iterator[bytes]]:
        def wrapper(request: bytes, op: str, *rest: Any, **kw: Any) -> Iterator[bytes]:
            if len(marks) == 1:
                marks.append(("request sent", _ms()))
            for i, data in enumerate(fn(request, op, *rest, **kw)):
                if i == 0 and len(marks) == 2:
                    marks.append(("first datagram", _ms()))
                yield data
        return wrapper

    devnull = open(os.devnull, "w")  # noqa: SIM115 - kept for the whole run

    def call() -> None:
        real, sys.stdout = sys.stdout, devnull
        try:
            sockscope.cli.main(list(argv))
            devnull.flush()
        finally:
            sys.stdout = real

    for name, fn in originals.items():
        setattr(transport, name, watched(fn))
    call()
    marks.append(("main returned", _ms()))
    for name, fn in originals.items():
        setattr(transport, name, fn)
    print("cold call, ms since sockscope's import began: " + " | ".join(f"{n} {t:.1f}" for n, t in marks))
    _warm(call, runs, top)


def _warm(call: Callable[[], object], runs: int, top: int, profiled: int = 1) -> None:
    """The median of ``runs`` warm calls (with their mean, 99th percentile, maximum and how many lines
    they wrote on stderr: a call that does more now and then, as the owners' check relearning a cached
    layout did, shows there), then a cProfile of ``profiled`` more."""
    times = []
    real, sys.stderr = sys.stderr, io.StringIO()  # (what the calls say there, counted)
    try:
        for _ in range(runs):
            t = time.perf_counter()
            call()
            times.append((time.perf_counter() - t) * 1000)
        said = sys.stderr.getvalue()
    finally:
        sys.stderr = real
    times.sort()
    print(f"warm: median {statistics.median(times):.1f} ms, min {times[0]:.1f} ms over {runs} calls "
          f"(mean {statistics.mean(times):.1f}, p99 {times[min(runs - 1, runs * 99 // 100)]:.1f}, "
          f"max {times[-1]:.1f} ms; {said.count(chr(10))} lines on stderr)")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(profiled):
        call()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    print(f"cProfile of {profiled} warm call(s), by own time:")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/breakdown.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--api", choices=("net_connections", "sockets"), help="profile the Python API instead")
    p.add_argument("--kind", default="tcp", help="the API's kind (default tcp)")
    p.add_argument("--runs", type=int, default=11, help="warm calls for the median (default 11)")
    p.add_argument("--top", type=int, default=15, help="cProfile lines (default 15)")
    p.add_argument("argv", nargs="*", help="sockscope's arguments, after --")
    args = p.parse_args()
    if args.api:
        import sockscope

        fn = getattr(sockscope, args.api)
        call = (lambda: fn(args.kind)) if args.api == "net_connections" else (lambda: list(fn(args.kind)))
        call()
        _warm(call, args.runs, args.top, profiled=10)
        return 0
    if not args.argv:
        p.error("give sockscope's arguments after --, or --api")
    _cli(args.argv, args.runs, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
