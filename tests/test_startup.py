"""Start-up time is a feature: the listing's path must not import what it does not use.

The plain listing (`sockscope -tuln`, `-tan`, `-tanp`, `-xa`) takes the codec's column
path, which needs neither the records (their dataclasses and enum), nor
``typing``, ``inspect``, ``importlib``, ``collections``, ``re`` or the
``signal`` module, nor ``operator`` (the built-in ``_operator`` is imported directly)
or ``queue``'s shared library (the receive-ahead hand-off is a built-in deque); of
the CLI, only the option table and its getopt (``cli/options.py``), not what turns
the table into help, a man page or completion scripts.  Run in a private network
namespace; timing itself is the bench's job (bench/run.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import interpreters

_HEAVY = ("dataclasses", "sockscope.records", "typing", "inspect", "importlib", "signal", "enum", "collections", "re",
          "socket",
          # operator wraps the built-in _operator (~0.6 ms); _queue is a shared library (~0.4 ms)
          # where the built-in _collections.deque does
          "operator", "_queue", "queue",
          # the option table is all the listing needs of the CLI's docs: not argparse, nor what makes
          # --help, the man page and the completion scripts, nor the machine formats
          "argparse", "sockscope.cli.manpage", "sockscope.cli.completion", "json", "csv")

# (what the interpreter's own start-up loaded, a .pth file's imports among them, is not sockscope's)
_PROBE = (
    "import sys, io\n"
    "_before = set(sys.modules)\n"
    "from sockscope.cli import main\n"
    "sys.stdout = io.StringIO()\n"
    "status = main(sys.argv[1:])\n"
    "out = sys.stdout.getvalue(); sys.stdout = sys.__stdout__\n"
    f"print(status, sorted(m for m in {_HEAVY!r} if m in sys.modules and m not in _before),"
    " out.splitlines()[0].split()[:2])\n"
)


#: the suite's interpreter, then every other one of the machine (``tests/interpreters.py``): what a
#: start imports changes between versions (3.12's ``dataclasses`` asks ``inspect``); the others run
#: sockscope from the source tree
PYTHONS, PYTHON_IDS = interpreters.EVERY, interpreters.EVERY_IDS


def _env(python: str) -> dict[str, str] | None:
    return None if python == sys.executable else interpreters.env()


@pytest.mark.parametrize("options", ["-tuln", "-tan", "-tanp", "-uan", "-xa", "-a", "-l"])
@pytest.mark.parametrize("python", PYTHONS, ids=PYTHON_IDS)
def test_listing_path_imports_stay_light(python: str, options: str) -> None:
    proc = subprocess.run(
        ["unshare", "-n", python, "-c", _PROBE, options],
        capture_output=True, text=True, timeout=60, env=_env(python),
    )
    assert proc.returncode == 0, proc.stderr
    status, heavy, header = proc.stdout.strip().split(" ", 2)
    assert status == "0", proc.stdout
    assert heavy == "[]", f"sockscope {options} imported {heavy}"
    assert "Recv-Q" in header or "State" in header


@pytest.mark.parametrize("options", ["-tulr", "-xar"])
def test_a_resolving_listing_imports_stay_light(options: str) -> None:
    """``-r`` asks rpcbind first (render/rpcbind.py): the client reads its reply by hand, with no
    ``re`` (~3 ms of imports, with ``enum``).  Run where /run is a fresh tmpfs: no rpcbind of the
    machine's is asked."""
    proc = subprocess.run(
        ["unshare", "-n", "-m", "--propagation", "private", "--", "sh", "-c",
         'mount -t tmpfs tmpfs /run && exec "$0" "$@"', sys.executable, "-c", _PROBE, options],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    status, heavy, _header = proc.stdout.strip().split(" ", 2)
    assert status == "0" and heavy == "[]", f"sockscope {options} imported {heavy}"


def test_owners_by_the_walk_import_no_loader_nor_functools() -> None:
    """``-p`` where the owners come from the /proc walk (``SOCKSCOPE_OWNERS=proc``, as in a container
    without CAP_BPF): neither the BPF loader and ctypes (the owner service asks ``bpf_caps`` first) nor
    functools and the collections it imports (the walk reads the links without ``partial``): ~4-6 ms of
    such a listing's start here."""
    probe = _PROBE.replace(f"{_HEAVY!r}", repr((*_HEAVY, "functools", "sockscope.kernel.bpf", "ctypes")))
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", probe, "-tanp"], capture_output=True, text=True,
                          timeout=60, env={**__import__("os").environ, "SOCKSCOPE_OWNERS": "proc"})
    assert proc.returncode == 0, proc.stderr
    status, heavy, header = proc.stdout.strip().split(" ", 2)
    assert status == "0" and heavy == "[]", f"sockscope -tanp by the walk imported {heavy}"
    assert "State" in header


def test_interface_names_do_not_import_socket() -> None:
    """A socket bound to an interface shows its name (``127.0.0.1%lo:PORT``), looked up with the C
    module's ``if_indextoname`` (``_socket``): not ``socket`` and the enums and ``re`` it imports
    (~6-9 ms of a start).  Also where ``--all-netns`` learns the name inside each namespace."""
    script = ("import os, socket\n"
              "assert os.system('ip link set lo up') == 0\n"
              "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'lo')\n"
              "s.bind(('127.0.0.1', 0)); s.listen()\n"
              "del socket; sys = __import__('sys'); [sys.modules.pop(m) for m in list(sys.modules)"
              " if m in ('socket', 'selectors', 'enum', 're', 'collections', 'functools', 'operator')]\n") + _PROBE
    for options in (["-tln"], ["--all-netns", "-tln"]):
        proc = subprocess.run(["unshare", "-n", sys.executable, "-c", script.replace(
            "out.splitlines()[0].split()[:2]", "[line for line in out.splitlines() if '%lo:' in line][:1]"), *options],
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        status, rest = proc.stdout.strip().split(" ", 1)
        heavy, _, shown = rest.partition("] ")
        assert status == "0" and heavy + "]" == "[]", f"sockscope {' '.join(options)} imported {heavy}]"
        assert "127.0.0.1%lo:" in shown, proc.stdout


def test_who_imports_stay_light() -> None:
    """``sockscope who :PORT`` (text) imports neither ``inspect`` (every one of its dataclasses has a
    docstring: ``dataclasses`` makes one with ``inspect`` otherwise), ``typing``, ``socket`` (the
    target's addresses through the C module), nor ``json`` (only for ``--json``): ~20 ms of its start."""
    probe = ("import sys, io, socket\n"
             "assert __import__('os').system('ip link set lo up') == 0\n"
             "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); port = s.getsockname()[1]\n"
             "del socket; [sys.modules.pop(m) for m in list(sys.modules)"
             " if m in ('socket', 'selectors', 'enum', 're', 'collections', 'functools', 'operator', 'typing')]\n"
             "from sockscope.cli import main\n"
             "sys.stdout = io.StringIO()\n"
             "status = main(['who', f':{port}'])\n"
             "out = sys.stdout.getvalue(); sys.stdout = sys.__stdout__\n"
             "heavy = ('ast', 'dis', 'tokenize', 'typing', 'socket', 'json')  # (inspect's own: its stub stays)\n"
             "print(status, sorted(m for m in heavy if m in sys.modules), repr(out.splitlines()[0]))\n")
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    status, rest = proc.stdout.strip().split(" ", 1)
    heavy, _, first = rest.partition("] ")
    assert status == "0" and heavy + "]" == "[]", f"sockscope who imported {heavy}]"
    assert "LISTEN" in first and "127.0.0.1:" in first, first


@pytest.mark.parametrize("python", PYTHONS, ids=PYTHON_IDS)
def test_records_import_no_inspect(python: str) -> None:
    """The records' dataclasses are made without the real ``inspect``, also where ``dataclasses`` asks
    ``inspect.get_annotations`` of each class (Python 3.12 and later): the stand-in answers it, and
    ``ast``, ``dis``, ``tokenize`` stay out (~8 ms of a start)."""
    probe = ("import sys, sockscope.records, sockscope.who, sockscope.summary, sockscope.who_target\n"
             "print(sorted(m for m in ('ast', 'dis', 'tokenize') if m in sys.modules),"
             " type(sys.modules['inspect']).__name__)\n")
    proc = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60, env=_env(python))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "_LazyInspect"], proc.stdout


def test_the_stand_in_answers_get_annotations_as_inspect_does() -> None:
    """``_lazy_inspect._get_annotations`` against the real ``inspect.get_annotations``: every
    dataclass of the package, classes without annotations or with inherited ones only, a class
    whose annotations are not a dict; and a module and a function, which it hands over."""
    import dataclasses
    import importlib
    import inspect
    import pkgutil

    import sockscope
    from sockscope import _lazy_inspect

    classes: list[object] = []
    for info in pkgutil.walk_packages(sockscope.__path__, "sockscope."):
        if info.name.startswith(("sockscope.cli", "sockscope.top")) or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        classes += [c for c in vars(module).values() if isinstance(c, type) and dataclasses.is_dataclass(c)]
    assert len(classes) > 20

    class Plain:
        pass

    class Child(sockscope.records.Socket):
        pass

    class Odd:
        __annotations__ = (("x", int),)  # type: ignore[assignment]

    for obj in (*classes, Plain, Child, dataclasses, _lazy_inspect._get_annotations):
        assert _lazy_inspect._get_annotations(obj) == inspect.get_annotations(obj), obj  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        inspect.get_annotations(Odd)
    with pytest.raises(ValueError):
        _lazy_inspect._get_annotations(Odd)


@pytest.mark.parametrize("argv", [["serve", "--help"], ["connect", "--help"], ["exporter", "--help"],
                                  ["completion", "bash"]])
def test_service_help_imports_no_asyncio(argv: list[str]) -> None:
    """``serve --help``, ``connect --help``, ``exporter --help`` and the completion scripts (which build
    every parser; the man page too) read the defaults from modules that import nothing
    (``sockscope/services/__init__.py``, ``exporter_defaults.py``): the services and the exporter,
    asyncio among their imports (~50-80 ms), are imported when the command runs."""
    probe = ("import sys, io\n"
             "from sockscope.cli import main\n"
             "sys.stdout = io.StringIO()\n"
             "try:\n"
             f"    status = main({argv!r})\n"
             "except SystemExit as exc:\n"
             "    status = exc.code\n"
             "out = sys.stdout.getvalue(); sys.stdout = sys.__stdout__\n"
             "heavy = ('asyncio', 'ssl', 'sockscope.services.serve', 'sockscope.services.connect',"
             " 'sockscope.exporter', 'sockscope.exporter_web')\n"
             "print(status, sorted(m for m in heavy if m in sys.modules), bool(out.strip()))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "[]", "True"], proc.stdout


def test_namespace_options_import_no_records() -> None:
    """``-N NAME`` and ``--all-netns`` find and enter namespaces with plain tuples (``netns.found``):
    not ``dataclasses`` and ``inspect`` (~14 ms of start here before; the exporter's ``NetnsRef``
    records are made where it lists them).  ctypes stays: Python 3.11 has no ``os.setns``."""
    import os

    name = f"sockscope-startup-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for options in (["-N", name, "-tan"], ["--all-netns", "-tan"]):
            proc = subprocess.run(["unshare", "-n", sys.executable, "-c", _PROBE, *options],
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stderr
            status, heavy, header = proc.stdout.strip().split(" ", 2)
            assert status == "0" and heavy == "[]", f"sockscope {' '.join(options)} imported {heavy}"
            assert "State" in header or "Netns" in header, header
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.parametrize(("options", "uses"), [
    (["-s"], ()),
    (["-s", "--json"], ("json", "re", "enum", "collections", "operator")),  # (json's own imports)
    (["-s", "--csv"], ("csv", "re", "enum", "collections", "operator"))])
def test_summary_imports_stay_light(options: list[str], uses: tuple[str, ...]) -> None:
    """``-s`` prints the kernel's counters from a dict (:func:`sockscope.kernel.sockstat.summary_counts`,
    :mod:`sockscope.render.summary`): not the :class:`sockscope.summary.Summary` record's module and its
    ``dataclasses`` (~15 ms of a ~30 ms command before), nor the records."""
    probe = _PROBE.replace(f"{_HEAVY!r}", repr((*(m for m in _HEAVY if m not in uses), "sockscope.summary")))
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", probe, *options],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    status, heavy, first = proc.stdout.strip().split(" ", 2)
    assert status == "0", proc.stdout
    assert heavy == "[]", f"sockscope {' '.join(options)} imported {heavy}"
    assert "Total:" in first or "sockets_used" in first, first


@pytest.mark.parametrize("options", ["-tuln", "-tan", "-uan", "-xa"])
def test_numeric_listing_leaves_names_and_attributes(options: str) -> None:
    """A numeric listing whose rows need no attribute decoder (no -e/-i) imports neither the names'
    module (services, hosts, interfaces) nor the inet attributes' decoders: each is imported where
    it is first wanted.  Nor ``struct``, which only re-exports the C module ``_struct`` the decoders
    import.  An IPv6 wildcard's one attribute (v6only: ``*`` or ``[::]``) is read without them."""
    probe = _PROBE.replace(f"{_HEAVY!r}", repr(("sockscope.render.names", "sockscope.kernel.inet_attrs", "struct")))
    script = ("import socket\n"
              "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
              "u = socket.socket(type=socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0))\n") + probe
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", script, options],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    status, found, _header = proc.stdout.strip().split(" ", 2)
    assert status == "0" and found == "[]", f"sockscope {options} imported {found}"
    with_v6 = script.replace("socket.socket(); s.bind(('127.0.0.1', 0))",
                             "socket.socket(socket.AF_INET6); s.bind(('::', 0))")
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", with_v6, "-tln"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().split(" ", 2)[:2] == ["0", "[]"], proc.stdout


_MADE_PROBE = (
    "import sys, io\n"
    "from sockscope.cli import main\n"
    "from sockscope.kernel import layout\n"
    "sys.stdout = io.StringIO()\n"
    "status = main(sys.argv[1:])\n"
    "sys.stdout = sys.__stdout__\n"
    "def made(v):\n"
    "    try:\n"
    "        object.__getattribute__(v, 'size')\n"
    "    except AttributeError:\n"
    "        return False\n"
    "    return True\n"
    "print(status, sorted(n for n, v in vars(layout).items() if isinstance(v, layout.Layout) and made(v)))\n"
)


@pytest.mark.parametrize(("options", "layouts"), [
    ("-tan", ["INET_DIAG_MSG"]), ("-xa", ["UNIX_DIAG_MSG"]),
    ("-tani", ["INET_DIAG_MSG", "MPTCP_INFO", "TCP_BBR_INFO", "TCP_DCTCP_INFO", "TCP_DIAG_MD5SIG", "TCP_INFO"])])
def test_a_listing_makes_only_the_layouts_it_reads(options: str, layouts: list[str]) -> None:
    """A message layout's offsets and struct are made when first read: making all ten cost every
    listing's start ~0.4 ms (~0.55 M instructions of a ~47.7 M `-tan` process).  With a socket of each
    kind the listing shows (a connection, for -i's tcp_info; -i's attribute decoders read the layouts
    of the attributes they decode as they are imported)."""
    script = ("import os, socket\n"
              "assert os.system('ip link set lo up') == 0\n"
              "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
              "c = socket.create_connection(s.getsockname()); a, _ = s.accept()\n"
              "u = socket.socket(socket.AF_UNIX); u.bind('\\0sockscope-layout-probe'); u.listen()\n") + _MADE_PROBE
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", script, options],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    status, made = proc.stdout.strip().split(" ", 1)
    assert status == "0" and made == repr(layouts), proc.stdout


_HINT_PROBE = (
    "import os, socket, sys\n"
    "assert os.system('ip link set lo up') == 0\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1024)\n"
    "held = []\n"
    "for _ in range(800):\n"  # 1,601 TCP sockets: the listing's datagrams join into blocks above 128 KiB
    "    c = socket.create_connection(s.getsockname()); a, _ = s.accept(); held += (c, a)\n"
    "sys.stdout.flush()\n"
    "from sockscope.cli import entry\n"
    "sys.argv[1:] = ['-tan']\n"
    "entry()\n"
)


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="the hint is glibc's malloc's")
def test_listing_process_raises_the_mmap_threshold_at_once() -> None:
    """A listing process's first allocation is :data:`sockscope.cli.MALLOC_HINT`'s block, mapped and
    unmapped untouched before the first dump; glibc then takes the listing's big buffers from its heap:
    no anonymous mapping of the sizes it would map them with (above its default threshold, 128 KiB,
    below the hint's size) comes after, but the interpreter's own 1 MiB arenas.  Watched by strace,
    in a namespace of 1,601 TCP sockets (the datagrams of -tan, joined, are blocks of up to 256 KiB)."""
    import re
    import shutil

    from sockscope.cli import MALLOC_HINT

    if shutil.which("strace") is None:
        pytest.fail("strace is not installed (.ci/run installs it)")
    proc = subprocess.run(["unshare", "-n", "strace", "-qq", "-e", "trace=mmap,munmap,socket", sys.executable, "-c",
                           _HINT_PROBE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("\n") == 1 + 1601, proc.stdout[:500]  # the header and every socket
    calls = proc.stderr.splitlines()
    rw = r"mmap\(NULL, (\d+), PROT_READ\|PROT_WRITE, MAP_PRIVATE\|MAP_ANONYMOUS, -1, 0\) = (0x[0-9a-f]+)"
    hint = next((k for k, line in enumerate(calls) if (m := re.match(rw, line)) and int(m[1]) > MALLOC_HINT), None)
    assert hint is not None, "the hint's block was never mapped"
    first = re.match(rw, calls[hint])
    assert first is not None
    address = first[2]
    assert calls[hint + 1].startswith(f"munmap({address}, "), calls[hint : hint + 2]
    netlink = [k for k, line in enumerate(calls) if line.startswith("socket(AF_NETLINK")]
    assert netlink and netlink[0] > hint, "the hint comes before the first dump"
    after = [int(m[1]) for line in calls[hint + 2 :] if (m := re.match(rw, line))]
    assert [size for size in after if 128 << 10 < size <= MALLOC_HINT and size != 1 << 20] == [], after
