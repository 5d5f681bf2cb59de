"""The listing's modules loaded from their ``.pyc`` files directly (``sockscope.cli._preload``).

The modules must come out as the import system makes them, the list must be what every
listing imports (each module after those it imports), and any ``.pyc`` that is not
believable (stale, missing, hash-based) must leave the rest to the import system.  Each
case runs in a fresh interpreter on a copy of the package, compiled here.
"""

from __future__ import annotations

import compileall
import json
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import interpreters
import sockscope

_SRC = Path(sockscope.__file__).parent

# what a module got from its loading: its attributes, its spec's, its parent's attribute
_DESCRIBE = """
import json, sys
def describe(name):
    m = sys.modules[name]
    s = m.__spec__
    parent, _, attr = name.rpartition(".")
    return {"file": m.__file__, "cached": m.__cached__, "package": m.__package__,
            "path": getattr(m, "__path__", None), "loader": [type(m.__loader__).__name__, m.__loader__.name,
            m.__loader__.path], "spec": [s.name, s.origin, s.cached, s.parent, s.has_location,
            s.submodule_search_locations], "parent_attr": getattr(sys.modules[parent], attr) is m,
            "source": m.__loader__.get_source(name) is not None,
            "co_filename": sorted({f.__code__.co_filename for f in vars(m).values()
                                   if getattr(f, "__module__", None) == name and hasattr(f, "__code__")})}
"""


#: the suite's interpreter, then every other one of the machine (``tests/interpreters.py``): each
#: writes and checks its own ``.pyc`` files (magic number, flags, stamps)
PYTHONS, PYTHON_IDS = interpreters.EVERY, interpreters.EVERY_IDS


def _copy(tmp_path: Path, mode: py_compile.PycInvalidationMode = py_compile.PycInvalidationMode.TIMESTAMP,
          python: str = sys.executable) -> Path:
    """A copy of the package under ``tmp_path``, compiled by ``python``; returns the directory to put
    on sys.path."""
    build, root = tmp_path / "build", tmp_path / "src"
    shutil.copytree(_SRC, build / "sockscope", ignore=shutil.ignore_patterns("__pycache__"))
    if python == sys.executable:
        assert compileall.compile_dir(str(build), quiet=1, force=True, invalidation_mode=mode)
    else:
        assert mode is py_compile.PycInvalidationMode.TIMESTAMP
        subprocess.run([python, "-m", "compileall", "-q", "-f", str(build)], check=True, timeout=120)
    build.rename(root)  # (the .pyc files name the sources where they were compiled: now elsewhere)
    return root


def _python(root: Path, code: str, *args: str, netns: bool = False,
            python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    argv = [python, "-c", code, *args]
    proc = subprocess.run((["unshare", "-n"] if netns else []) + argv, capture_output=True, text=True,
                          timeout=60, env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return proc


def _spied(body: str) -> str:
    """``body`` run with a finder first on sys.meta_path that notes which sockscope modules the
    import system was asked for; prints ``{"asked": [...], **what body put in out}``."""
    return _DESCRIBE + (
        "asked = []\n"
        "class Spy:\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        if name.startswith('sockscope'):\n"
        "            asked.append(name)\n"
        "sys.meta_path.insert(0, Spy)\n"
        "out = {}\n" + body + "\nprint(json.dumps({'asked': asked, **out}))\n")


@pytest.mark.parametrize("python", PYTHONS, ids=PYTHON_IDS)
def test_preloaded_modules_are_what_the_import_system_makes(tmp_path: Path, python: str) -> None:
    root = _copy(tmp_path, python=python)
    preloaded = json.loads(_python(root, python=python, code=_spied(
        "import sockscope.cli as cli\n"
        "cli._preload(cli.LISTING_MODULES)\n"
        "out['modules'] = {n: describe(n) for n in cli.LISTING_MODULES}\n"
        "out['listed'] = list(cli.LISTING_MODULES)\n")).stdout)
    listed = preloaded["listed"]
    assert not set(preloaded["asked"]) & set(listed), preloaded["asked"]  # none went through the import system
    imported = json.loads(_python(root, python=python, code=_spied(
        "import importlib\n"
        f"out['modules'] = {{n: describe(n) for n in {listed!r} if importlib.import_module(n)}}\n")).stdout)
    assert set(imported["asked"]) >= set(listed)
    for name in listed:
        assert preloaded["modules"][name] == imported["modules"][name], name
        got = preloaded["modules"][name]
        assert got["file"].startswith(str(root)) and got["parent_attr"] and got["source"]
        assert got["co_filename"] in ([], [got["file"]])


@pytest.mark.parametrize("options", ["-tan", "-xa", "-uan", "-tuln"])
def test_listing_modules_are_what_every_listing_imports_in_order(tmp_path: Path, options: str) -> None:
    """The list is the modules a listing imports besides the package and the CLI
    (the listing of UNIX sockets needs no inet decoder nor socket counts, the others no UNIX decoder), each after those
    it imports (checked above: preloading asks the import system for none of them)."""
    root = _copy(tmp_path)
    probe = (
        "import io, json, sys\n"
        "import sockscope.cli as cli\n"
        "listed = cli.LISTING_MODULES\n"
        "cli._preload = lambda names: None\n"  # the import system alone: what the listing really imports
        "sys.stdout = io.StringIO()\n"
        "status = cli.main(sys.argv[1:])\n"
        "sys.stdout = sys.__stdout__\n"
        "print(json.dumps([status, [m for m in sys.modules if m.startswith('sockscope')], listed]))\n")
    status, imported, listed = json.loads(_python(root, probe, options, netns=True).stdout)
    assert status == 0
    # (an inet listing also reads the namespace's socket counts: which dumps to make)
    decoder = ({"sockscope.kernel.unix", "sockscope.kernel.unix_tail"} if options == "-xa"  # (its tail strategy)
               else {"sockscope.kernel.inet", "sockscope.kernel.sockstat"})
    assert set(imported) == set(listed) | {"sockscope", "sockscope.cli"} | decoder


def _listing_with(root: Path, setup: str, python: str = sys.executable) -> dict[str, object]:
    probe = _spied(
        "import io\n" + setup + "\n"
        "import sockscope.cli as cli\n"
        "sys.stdout = io.StringIO()\n"
        "status = cli.main(sys.argv[1:])\n"
        "text = sys.stdout.getvalue(); sys.stdout = sys.__stdout__\n"
        "out.update(status=status, header=text.split()[:2], listed=list(cli.LISTING_MODULES),\n"
        "           stale=getattr(sys.modules['sockscope.render.writer'], 'STALE_CHECK', None))\n")
    return json.loads(_python(root, probe, "-tan", netns=True, python=python).stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("python", PYTHONS, ids=PYTHON_IDS)
def test_a_stale_pyc_ends_the_preloading(tmp_path: Path, python: str) -> None:
    """A source edited after its .pyc was written (another size): that module and the ones after
    it are left to the import system, which reads the source."""
    root = _copy(tmp_path, python=python)
    writer = root / "sockscope" / "render" / "writer.py"
    stamp = writer.stat()
    writer.write_text(writer.read_text() + "\nSTALE_CHECK = 1\n")
    os.utime(writer, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the same mtime: only the size tells
    got = _listing_with(root, "", python=python)
    assert got["status"] == 0 and got["header"] == ["State", "Recv-Q"]
    assert got["stale"] == 1
    listed = got["listed"]
    assert isinstance(listed, list)
    after = listed[listed.index("sockscope.render.writer"):]
    assert set(after) <= set(got["asked"]) and not set(listed[: len(listed) - len(after)]) & set(got["asked"])


def test_missing_or_hash_based_pycs_leave_the_import_system_at_work(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    shutil.rmtree(root / "sockscope" / "kernel" / "__pycache__")
    got = _listing_with(root, "")
    assert got["status"] == 0 and got["header"] == ["State", "Recv-Q"]
    assert "sockscope.kernel" in got["asked"] and "sockscope.render.writer" not in got["asked"]

    hashed = _copy(tmp_path / "hashed", py_compile.PycInvalidationMode.CHECKED_HASH)
    got = _listing_with(hashed, "")
    assert got["status"] == 0 and got["header"] == ["State", "Recv-Q"]
    assert set(got["listed"]) <= set(got["asked"])  # type: ignore[arg-type]

    got = _listing_with(_copy(tmp_path / "prefix"), "sys.pycache_prefix = '/nonexistent'")
    assert got["status"] == 0 and set(got["listed"]) <= set(got["asked"])  # type: ignore[arg-type]
