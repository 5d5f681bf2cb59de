"""Where a command's CPU time goes, the kernel's part included: perf samples of cold runs, by category.

Run it inside the namespace to look at::

    ip netns exec NAME python3 bench/native.py -- -tan              # bench/.venv's sockscope
    ip netns exec NAME python3 bench/native.py --venv bench/.venv-distro -- -xa
    ip netns exec NAME python3 bench/native.py --command ss -- -tan

It runs the command ``--runs`` times (cold processes, output to /dev/null) under ``perf record -g``
(perf samples every CPU the runs' threads are on, at ``--frequency`` Hz), and puts each sample of
theirs in one category by where it was taken:

* in user space, by the shared object: the interpreter (libpython, or the executable it is linked
  into), libc, the dynamic linker, any other;
* in the kernel, by what it was under, looked for in this order along the call chain: a page fault;
  a dump (the sock_diag requests sent and their replies received: the kernel walks its tables and
  makes each datagram in ``recv``, the first one in ``send``, and copies them out); the threads'
  hand-offs (futexes, switches); the process's own life (exec, mmap, munmap, brk, clone, exit);
  writing; files (open, read, stat); anything else.

It prints each category's share of the samples and the milliseconds of CPU a run spends there: the
CPU time (user and system, from ``getrusage``) of as many runs again without perf, shared out by the
samples.  (perf's sampling costs the sampled runs CPU time of their own, most of it in the kernel:
their CPU time under perf is printed too.)  ``breakdown.py`` and
``instructions.py`` look inside the Python code; this looks at the whole process, the kernel's work
for it included, which they do not see.  Needs ``perf`` (Debian: linux-perf) and root.  Nothing here
is timed by the test suite (tests/test_bench_smoke.py runs it once, for its output's shape).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from types import ModuleType

HERE = os.path.dirname(os.path.abspath(__file__))

#: kernel categories: the first whose marks a sample's call chain holds (innermost frame first)
KERNEL = (
    ("kernel: page faults", ("exc_page_fault", "handle_mm_fault")),
    ("kernel: the dump (the walk of its tables, the datagrams made and copied out)",
     ("netlink_recvmsg", "netlink_sendmsg", "netlink_dump", "__sys_recvfrom", "__sys_recvmsg", "__sys_sendto",
      "__sys_sendmsg")),
    ("kernel: threads (futexes, switches)", ("futex", "schedule", "finish_task_switch", "try_to_wake_up")),
    ("kernel: the process (exec, mmap, exit, clone)", ("execve", "bprm_", "exit_group", "do_exit", "mmap", "munmap",
                                                       "_brk", "clone", "mprotect")),
    ("kernel: writing", ("ksys_write", "vfs_write")),
    ("kernel: files (open, read, stat)", ("openat", "ksys_read", "vfs_read", "newfstatat", "statx", "getdents",
                                          "readlink", "filp_close")),
)
OTHER_KERNEL = "kernel: other"


def category(frames: list[tuple[str, str]], interpreter: str) -> str:
    """The category of a sample whose call chain is ``frames`` ((symbol, object), innermost first);
    ``interpreter``: the object the Python interpreter's code is in (besides libpython)."""
    if not frames:
        return OTHER_KERNEL
    dso = frames[0][1]
    if "kernel" not in dso:
        name = dso.rsplit("/", 1)[-1]
        if "libpython" in name or (interpreter and name == interpreter):
            return "user: the interpreter"
        if name.startswith("libc.so") or name.startswith("libc-"):
            return "user: libc"
        if name.startswith("ld-linux") or name.startswith("ld-"):
            return "user: the dynamic linker"
        return f"user: {name}"
    names = [s for s, d in frames if "kernel" in d]
    for label, marks in KERNEL:
        if any(mark in s for s in names for mark in marks):
            return label
    return OTHER_KERNEL


def samples(script: Iterable[str], pids: set[int]) -> Iterator[list[tuple[str, str]]]:
    """The call chains of ``perf script -F pid,ip,sym,dso`` output, of the processes ``pids``."""
    pid: int | None = None
    frames: list[tuple[str, str]] = []
    for line in script:
        line = line.rstrip("\n")
        if not line.strip():
            if pid in pids:
                yield frames
            pid, frames = None, []
        elif not line.startswith("\t"):  # a sample's head: its pid, right-aligned (a frame line starts with a tab)
            try:
                pid = int(line.split()[0])
            except ValueError:
                pid = None
        else:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                sym, _, dso = parts[1].rpartition(" (")
                frames.append((sym, dso.rstrip(")")))
    if frames and pid in pids:
        yield frames


def _runner() -> ModuleType:
    """bench/run.py, loaded by path (``tests/`` has modules of its siblings' names)."""
    spec = importlib.util.spec_from_file_location("bench_run", os.path.join(HERE, "run.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def inner(argv: list[str], pids_file: str) -> int:
    """The runs themselves (this file run again under perf): the command ``argv`` each time; the runs'
    pids, then their CPU time in milliseconds, written to ``pids_file``."""
    runs, cmd = int(argv[0]), argv[1:]
    pids = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pids.append(proc.pid)
        proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    with open(pids_file, "w") as f:
        f.write(" ".join(map(str, pids)) + f"\n{cpu}\n")
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        return inner(sys.argv[3:], sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--frequency", type=int, default=10000, help="perf's samples a second (default 10000)")
    ap.add_argument("--venv", help="whose sockscope script to run (default: the one run.py measures: "
                                   "bench/.venv's, else the repository's .venv's)")
    ap.add_argument("--command", help="another command to run instead of sockscope (ss, say)")
    ap.add_argument("args", nargs="*", help="the command's arguments (after --)")
    opts = ap.parse_args()
    if not 1 <= opts.runs <= 10_000 or not 1 <= opts.frequency <= 100_000:
        ap.error("--runs is 1 to 10,000, --frequency 1 to 100,000")
    perf = shutil.which("perf")
    if perf is None:
        print("native.py: perf is not installed (Debian: apt-get install linux-perf)", file=sys.stderr)
        return 2
    if opts.command:
        cmd = [shutil.which(opts.command) or opts.command]
        real = os.path.basename(os.path.realpath(cmd[0]))
        interpreter = real if real.startswith("python") else ""  # (`--command PYTHON -- -c pass`: its start)
    else:
        # the sockscope run.py measures, unless a venv is named
        cmd = [os.path.join(opts.venv, "bin", "sockscope") if opts.venv else _runner()._default_sockscope()]
        if not os.path.exists(cmd[0]):
            print(f"native.py: no sockscope script at {cmd[0]}", file=sys.stderr)
            return 2
        interpreter = os.path.basename(os.path.realpath(os.path.join(os.path.dirname(cmd[0]), "python")))
    with tempfile.TemporaryDirectory(prefix="sockscope-native-") as tmp:
        data, pids_file = os.path.join(tmp, "perf.data"), os.path.join(tmp, "pids")
        rec = subprocess.run([perf, "record", "-q", "-g", "-F", str(opts.frequency), "-o", data, "--",
                              sys.executable, os.path.abspath(__file__), "--inner", pids_file, str(opts.runs),
                              *cmd, *opts.args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if rec.returncode != 0 or not os.path.exists(pids_file):
            print(f"native.py: perf record failed: {rec.stderr.strip()[-500:]}", file=sys.stderr)
            return 1
        with open(pids_file) as f:
            pid_line, cpu_line = f.read().splitlines()[:2]
        pids, cpu_sampled = {int(p) for p in pid_line.split()}, float(cpu_line)
        inner([str(opts.runs), *cmd, *opts.args], pids_file)  # the same runs, not sampled
        with open(pids_file) as f:
            cpu = float(f.read().splitlines()[1])
        script = subprocess.Popen([perf, "script", "-i", data, "-F", "pid,ip,sym,dso"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, errors="replace")
        assert script.stdout is not None
        counts = Counter(category(frames, interpreter) for frames in samples(script.stdout, pids))
        script.wait()
    total = sum(counts.values())
    if not total:
        print("native.py: no samples of the runs", file=sys.stderr)
        return 1
    per_run = cpu / opts.runs
    print(f"{' '.join([os.path.basename(cmd[0]), *opts.args])}: {opts.runs} runs, {per_run:.1f} ms of CPU a run "
          f"({cpu_sampled / opts.runs:.1f} ms under perf), {total} samples")
    for label, n in counts.most_common():
        print(f"  {100 * n / total:5.1f} %  {per_run * n / total:6.1f} ms  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
