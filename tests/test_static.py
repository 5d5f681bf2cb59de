"""The package stays typed (mypy --strict) and lint-clean (ruff): both run as tests,
so CI fails when either regresses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_strict(tmp_path: Path) -> None:
    r = _run("mypy", "--strict", "--cache-dir", str(tmp_path / "mypy-cache"), "src/sockscope")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


def test_ruff() -> None:
    r = _run("ruff", "check", "--no-cache", "src/sockscope")
    assert r.returncode == 0, r.stdout + r.stderr
