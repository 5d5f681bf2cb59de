"""netns.visit: what --all-netns found may be gone before it is visited."""

from __future__ import annotations

import pytest

from sockscope import netns


def test_a_namespace_deleted_after_it_was_listed_is_skipped() -> None:
    targets = [("gone-before-visit", "/var/run/netns/sockscope-test-never-made"), ("self", "/proc/self/ns/net")]
    assert list(netns.visit(targets, lambda label: iter([label]))) == ["self"]
    # one named by the caller must exist
    with pytest.raises(netns.NetnsError):
        list(netns.visit(targets[:1], lambda label: iter([label]), gone_ok=False))


_THREAD_SCRIPT = r"""
import os, sys, threading
import sockscope
from sockscope import netns

def own() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino

def work(a: str, b: str, out: list) -> None:
    fd = os.open(f"/var/run/netns/{a}", os.O_RDONLY)
    netns.setns(fd)  # this thread alone now lives in a
    os.close(fd)
    inside = own()
    rows = list(sockscope.sockets("tcp", netns=b))  # b's sockets, read from b; then back to a
    own_rows = list(sockscope.sockets("tcp", netns=a))  # its own namespace: visited without setns
    out.extend([inside, own(), len(rows), len(own_rows)])

out: list = []
t = threading.Thread(target=work, args=(sys.argv[1], sys.argv[2], out))
t.start()
t.join()
print(*out, own())
"""


def test_a_thread_in_a_namespace_of_its_own_returns_to_it() -> None:
    """A thread that entered namespace A (``setns``: the thread alone) and lists namespace B gets B's
    sockets and is back in A after it; the process's other threads stay where they were.  Before, it
    was taken to the process's namespace (``/proc/self``'s, the main thread's)."""
    import subprocess
    import sys

    from nsutil import Netns

    a, b = Netns(), Netns()
    try:
        # B holds one listener (a process of its own, ended by pid below)
        holder = subprocess.Popen(
            b.argv([sys.executable, "-c",
                         "import socket, sys; s = socket.create_server(('127.0.0.1', 7411)); print(1, flush=True); "
                         "sys.stdin.read()"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "1"
            r = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT, a.name, b.name], capture_output=True,
                               text=True, timeout=60)
        finally:
            holder.kill()
            holder.wait()
        assert r.returncode == 0, r.stderr
        inside, after, b_rows, a_rows, main_thread = map(int, r.stdout.split())
        assert b_rows == 1 and a_rows == 0, r.stdout
        assert after == inside, "the thread was not brought back to its own namespace"
        assert main_thread != inside, r.stdout  # (the main thread never left the test's namespace)
    finally:
        a.delete()
        b.delete()


@pytest.mark.parametrize("fmt", [[], ["--json"], ["--csv"], ["-s"]])
def test_all_netns_that_may_not_enter_one_fails_before_any_row(nobody: object, fmt: list[str]) -> None:
    """``--all-netns`` run by a user who may not enter another namespace (setns needs
    CAP_SYS_ADMIN): one line naming it, exit 1, and nothing on stdout, not the first namespace's rows
    followed by the error (a table cut short, a JSON document left open)."""
    import os
    import subprocess

    from nsutil import AsUser, Netns

    assert isinstance(nobody, AsUser)
    ns = Netns("sockscope-allns-")  # (a named one: anyone may open /run/netns/NAME, not enter it)
    try:
        r = subprocess.run(nobody.argv("--all-netns", "-tan", *fmt), capture_output=True, text=True, timeout=60,
                           env={**os.environ, **nobody.env}, cwd=nobody.tmp)
        assert (r.returncode, r.stdout) == (1, ""), r
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("sockscope: cannot enter network namespace "), r
        assert r.stderr.endswith(": Operation not permitted\n"), r.stderr
    finally:
        ns.delete()
    assert not ns.exists()
