"""The other CPython interpreters (3.11 and later) of this machine, to run sockscope under them.

Users run sockscope under the Python their host has (Debian 12's 3.11, Ubuntu 24.04's 3.12,
Debian 13's and Fedora's 3.13): what changes between versions (``dataclasses`` asking
``inspect``, the idna codec's messages, argparse's help layout, what ``ssl`` verifies) has broken
it before.  The suite runs under one interpreter (the README's venv); the tests that use this
module run sockscope's core again under each other minor version found, from the source tree
(``PYTHONPATH=src``): the core is the standard library alone, nothing to install.

Where they are looked for: ``$SOCKSCOPE_TEST_PYTHONS`` (paths, ``:``-separated) if set; else
``python3.N`` on ``PATH`` and pyenv's versions (``versions/3.*`` under ``$PYENV_ROOT``, ``~/.pyenv``,
the root whose shims are on ``PATH``, or the one the running interpreter comes from).  One interpreter per
minor version, none of the running one's.  ``$SOCKSCOPE_TEST_PYTHONS_REQUIRED`` (minor versions,
space-separated, as ``.ci/run`` sets it) makes a missing one a failure instead of a skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
RUNNING = "%d.%d" % sys.version_info[:2]


def _candidates() -> list[str]:
    given = os.environ.get("SOCKSCOPE_TEST_PYTHONS")
    if given:
        return [p for p in given.split(os.pathsep) if p]
    found = [shutil.which(f"python3.{minor}") for minor in range(11, 20)]
    # pyenv's versions, wherever its root is: $PYENV_ROOT, ~/.pyenv, or the one whose shims are on PATH
    # (a shim is a script that picks a version: the versions themselves are taken instead)
    roots = {os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")}
    own = Path(getattr(sys, "_base_executable", "") or sys.executable).resolve()  # ROOT/versions/V/bin/python
    if len(own.parents) > 3 and own.parents[2].name == "versions":
        roots.add(str(own.parents[3]))
    roots |= {str(Path(p).parents[1]) for p in found if p and Path(p).parent.name == "shims"}
    for root in sorted(r for r in roots if r):
        found += sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3")))
    return [p for p in found if p and os.path.basename(os.path.dirname(p)) != "shims"]


def _version(path: str) -> tuple[int, int] | None:
    try:
        r = subprocess.run([path, "-I", "-c", "import sys; print(*sys.version_info[:2])"],
                           capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    parts = r.stdout.split()
    if r.returncode != 0 or len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def _find() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in _candidates():
        version = _version(path)
        if version is None or version < (3, 11):
            continue
        name = "%d.%d" % version
        if name != RUNNING and name not in found:
            found[name] = path
    return dict(sorted(found.items(), key=lambda item: tuple(map(int, item[0].split(".")))))


#: minor version ("3.13") -> the interpreter's path
OTHERS: dict[str, str] = _find()
#: the suite's own interpreter, then each of :data:`OTHERS` (and their ids, for ``parametrize``)
EVERY: list[str] = [sys.executable, *OTHERS.values()]
EVERY_IDS: list[str] = [RUNNING, *OTHERS]
#: the minor versions that must be found (``$SOCKSCOPE_TEST_PYTHONS_REQUIRED``)
REQUIRED: list[str] = os.environ.get("SOCKSCOPE_TEST_PYTHONS_REQUIRED", "").split()


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment to run sockscope from the source tree under another interpreter."""
    out = dict(os.environ)
    out["PYTHONPATH"] = str(SRC) + (os.pathsep + out["PYTHONPATH"] if out.get("PYTHONPATH") else "")
    out.pop("PYTHONHOME", None)
    out.update(extra or {})
    return out
