"""Instructions one warm call takes, counted by valgrind: a measure of small changes.

On this VM a warm call's time moves by 10–30 % from one minute to the next, so a change worth
2 % cannot be seen in milliseconds without hundreds of alternating runs.  The number of
instructions the process executes does not move (callgrind counts them; the kernel's work is not
counted, and valgrind runs the threads one at a time).  Run it inside the namespace to look at,
with the python of the venv to measure::

    ip netns exec NAME bench/.venv/bin/python bench/instructions.py -- -xa
    ip netns exec NAME bench/.venv/bin/python bench/instructions.py --api net_connections --kind unix
    ip netns exec NAME bench/.venv/bin/python bench/instructions.py --src /tmp/other/src -- -xa

It runs the call 2 and 5 times, each in a fresh process under ``valgrind --tool=callgrind``,
and prints a third of the difference: the instructions of one warm call (start-up, imports and
the first calls cancel out).  Each count is the lesser of two such processes: what varies from
one process to the next (a wait for a thread's end that spins longer, a one-time cost one of them
pays) only adds instructions (a fresh clone's suite once counted 186.7 M for the process of 2
calls and 160.1 M for the one of 5).  A process before them, not counted, fills sockscope's caches (the
BPF layout is learned from the kernel's BTF once: ~0.9 G instructions).  ``--src``: the
sockscope tree to import (another checkout's ``src``, to compare with); by default the one this
venv imports.  Not a benchmark: the figures in bench/README.md's tables come from run.py.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

_CALLS = (2, 5)


def _child(args: argparse.Namespace) -> None:
    """The measured process: ``args.child`` calls (after the imports)."""
    if args.api:
        import sockscope

        fn = getattr(sockscope, args.api)
        for _ in range(args.child):
            fn(args.kind)
        return
    import sockscope.cli

    with open(os.devnull, "w") as devnull:
        real, sys.stdout = sys.stdout, devnull
        try:
            for _ in range(args.child):
                sockscope.cli.main(list(args.argv))
                devnull.flush()
        finally:
            sys.stdout = real


def _child_command(args: argparse.Namespace, calls: int) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of a process making ``calls`` calls."""
    argv = [sys.executable, os.path.abspath(__file__), "--child", str(calls)]
    if args.api:
        argv += ["--api", args.api, "--kind", args.kind]
    argv += ["--", *args.argv]
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.path.abspath(args.src)
    return argv, env


def _warm_caches(args: argparse.Namespace) -> None:
    """One call in a process not counted: sockscope's caches filled (the BPF layout, learned from BTF)."""
    argv, env = _child_command(args, 1)
    subprocess.run(argv, env=env, timeout=600, check=True, stdout=subprocess.DEVNULL)


def _count(args: argparse.Namespace, calls: int) -> int:
    """Instructions of a process making ``calls`` calls."""
    argv, env = _child_command(args, calls)
    try:
        done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
                              capture_output=True, text=True, env=env, timeout=600)
    except FileNotFoundError:
        sys.exit("instructions.py: valgrind is not installed (apt-get install valgrind)")
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        tail = done.stderr.strip().splitlines()[-3:]
        sys.exit(f"instructions.py: the measured process failed (exit {done.returncode}): {' | '.join(tail)}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--api", choices=("net_connections", "sockets"), help="time this API call, not the CLI")
    ap.add_argument("--kind", default="tcp", help="the API call's kind (default tcp)")
    ap.add_argument("--src", help="the sockscope source tree to import (default: the venv's)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("argv", nargs="*", help="sockscope's arguments (after --)")
    args = ap.parse_args(argv)
    if args.child is not None:
        _child(args)
        return 0
    _warm_caches(args)
    few, many = (min(_count(args, n), _count(args, n)) for n in _CALLS)
    what = f"{args.api}({args.kind!r})" if args.api else "sockscope " + " ".join(args.argv)
    print(f"{what}: {(many - few) / (_CALLS[1] - _CALLS[0]) / 1e6:.2f} M instructions a warm call "
          f"(processes of {_CALLS[0]} and {_CALLS[1]} calls: {few / 1e6:.1f} and {many / 1e6:.1f} M)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
