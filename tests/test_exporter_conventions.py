"""``sockscope exporter`` against Prometheus's own conventions, and --all-netns under churn.

* ``promtool check metrics`` (Debian's ``prometheus`` package, which ``.ci/run``
  installs) finds nothing to say about a scrape, plain or with ``--all-netns``.
* A namespace that disappears between being listed and being collected
  (``ip netns del``, its last process exiting, or its name unmounted but not
  yet unlinked) is left out of the scrape: no ``scrape_success 0``, no error
  counted, no line on stderr.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nsutil import Netns
from test_exporter import EXPORTER, Holder, parse_exposition, series, value

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed: .ci/run installs Debian's 'prometheus' package "
    "(which ships it) with apt-get, and that install failed or was not run")


def _promtool(text: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)


@needs_promtool
def test_promtool_check_metrics_is_clean() -> None:
    h = Holder({"listeners": [["127.0.0.1", 31000, 4, 2]], "bulk": [30000, 5, 3]})
    try:
        for args in ([], ["--all-netns"]):
            r = h.run([*EXPORTER, "--once", *args])
            assert r.returncode == 0, r.stderr
            assert "sockscope_sockstat_tcp_inuse" in r.stdout
            check = _promtool(r.stdout)
            assert (check.returncode, check.stdout, check.stderr) == (0, "", ""), args
    finally:
        h.close()


def test_promtool_would_catch_a_bad_name() -> None:
    """The check above can fail: the old names are refused (skipped only where promtool is)."""
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (see test_promtool_check_metrics_is_clean)")
    bad = "# HELP sockscope_summary_tcp_timewait x\n# TYPE sockscope_summary_tcp_timewait gauge\n" \
          "sockscope_summary_tcp_timewait 1\n"
    r = _promtool(bad)
    assert r.returncode != 0 and "should not include type 'summary'" in r.stdout + r.stderr


def test_a_namespace_gone_during_a_scrape_is_left_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root (ip netns add, setns)", pytrace=False)
    from prometheus_client import generate_latest

    from sockscope import exporter
    from sockscope.cli.exporter import make_registry
    from sockscope.exporter_metrics import SocketCollector

    live = Netns(prefix="sockscope-exp-")
    deleted = Netns(prefix="sockscope-exp-")
    proc = subprocess.Popen(["unshare", "--net", "sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        def ref(label: str, path: str) -> exporter.NetnsRef:
            return exporter.NetnsRef(label, os.stat(path).st_ino, (path,))

        # wait until the child is in its own namespace
        own = os.stat("/proc/self/ns/net").st_ino
        for _ in range(200):
            try:
                if os.stat(f"/proc/{proc.pid}/ns/net").st_ino != own:
                    break
            except FileNotFoundError:
                pass
            subprocess.run(["sleep", "0.02"])
        refs = [ref(live.name, f"/var/run/netns/{live.name}"), ref(deleted.name, f"/var/run/netns/{deleted.name}"),
                ref(f"ino:{os.stat(f'/proc/{proc.pid}/ns/net').st_ino}", f"/proc/{proc.pid}/ns/net")]
        # a name unmounted but not yet unlinked is a plain file: not the namespace listed
        leftover = tmp_path / "leftover"
        leftover.write_text("")
        refs.append(exporter.NetnsRef("leftover", refs[1].inode, (str(leftover),)))
        # now they go away, after being listed and before being collected
        deleted.delete()
        proc.kill()
        proc.wait()
        monkeypatch.setattr(exporter, "list_netns", lambda proc, run_dir: list(refs))
        logs: list[str] = []
        collector = SocketCollector(all_netns=True, log=logs.append)
        for _ in range(3):
            _, samples = parse_exposition(generate_latest(make_registry(collector, process_metrics=False)).decode())
            assert logs == []
            assert {dict(lab)["netns"] for lab in series(samples, "sockscope_scrape_success")} == {live.name}
            assert value(samples, "sockscope_scrape_success", netns=live.name) == 1
            assert set(series(samples, "sockscope_scrape_errors_total").values()) == {0}
        assert [s.netns for s in collector.last] == [live.name]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        deleted.delete()
        live.delete()

