"""``--all-netns`` against ss run inside each namespace: every namespace's rows of the one table are
the rows ss lists there (the Netns column aside), for the listing's batch path (the table, ``-p``,
``-i``) and its record path (details that need whole records), in two private namespaces whose
sockets differ (TCP over IPv4 and IPv6, UDP, UNIX named and abstract, a device-bound socket whose
interface index names another device in the other namespace, a packet socket)."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from conftest import SOCKSCOPE
from nsutil import Netns, end_holders, read_line
from test_details_vs_ss import _lines

_HOLD = r"""
import os, socket, sys
keep = []
tag, dev, path = sys.argv[1], sys.argv[2], sys.argv[3]
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    l = socket.socket(fam); l.bind((host, 7000 + len(tag))); l.listen()
    for _ in range(2 + len(tag)):
        c = socket.create_connection((host, 7000 + len(tag))); a, _ = l.accept(); keep += [c, a]
    keep.append(l)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 5300 + len(tag))); keep.append(u)
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode()); b.bind(("0.0.0.0", 5353)); keep.append(b)
x = socket.socket(socket.AF_UNIX); x.bind(path); x.listen(); keep.append(x)
y = socket.socket(socket.AF_UNIX); y.connect(path); keep += [y, x.accept()[0]]
z = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); z.bind("\0sockscope-allnetns-" + tag); keep.append(z)
p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806)); p.bind((dev, 0)); keep.append(p)
print("READY", flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def two() -> Iterator[list[Netns]]:
    """Two namespaces, each with a veth pair (its device: index 3 in both, two names) and a holder."""
    spaces: list[Netns] = []
    holders: list[subprocess.Popen[bytes]] = []
    tmp = tempfile.mkdtemp(prefix="sockscope-allnetns-")
    try:
        for k in range(2):
            ns = Netns()
            spaces.append(ns)
            dev = f"an{k}-{ns.name[-4:]}"
            subprocess.run(["ip", "-n", ns.name, "link", "add", dev, "type", "veth", "peer", "name", f"p{dev}"],
                           check=True, capture_output=True)
            subprocess.run(["ip", "-n", ns.name, "link", "set", dev, "up"], check=True, capture_output=True)
            h = ns.popen([sys.executable, "-c", _HOLD, "x" * (k + 1), dev, os.path.join(tmp, f"s{k}")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            holders.append(h)
            assert read_line(h, 30).strip() == "READY"
        yield spaces
    finally:
        end_holders(holders, spaces)
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


def _rows(text: str, mask: bool) -> list[str]:
    """A table's rows, each with the lines of its details (``-i``'s, after a tab) joined to it."""
    return _lines(text.replace("\n\t", " "), mask)


def _theirs(ns: Netns, argv: list[str], mask: bool) -> list[str]:
    """ss's rows inside ``ns`` (its header left out), as the tries agree on them."""
    for _ in range(4):
        a = _rows(ns.run(["ss", *argv]).stdout, mask)[1:]
        b = _rows(ns.run(["ss", *argv]).stdout, mask)[1:]
        if a == b:
            break
    return a


@pytest.mark.parametrize("argv", ["-tan", "-uan", "-xa", "-a", "-tanp", "-xap", "-0a", "-tani", "-ltnp", "-tano",
                                  "-xae", "-uanm"])
def test_every_namespace_lists_what_ss_lists_inside_it(two: list[Netns], argv: str) -> None:
    args = argv.split()
    mask = "i" in argv or "o" in argv
    for _ in range(4):
        want = {ns.name: _theirs(ns, args, mask) for ns in two}
        run = subprocess.run([*SOCKSCOPE, "--all-netns", *args], capture_output=True, text=True)
        assert run.returncode == 0 and not run.stderr, run.stderr
        head, *rows = _rows(run.stdout, mask)
        assert head.split()[0] == "Netns"
        got = {ns.name: [r.split(" ", 1)[1] for r in rows if r.split(" ", 1)[0] == ns.name] for ns in two}
        if got == want:
            break
    for ns in two:
        assert got[ns.name] == want[ns.name], f"ss {argv} in {ns.name} (-) vs sockscope --all-netns (+):\n" + \
            "\n".join(difflib.unified_diff(want[ns.name], got[ns.name], lineterm="", n=0))
        assert want[ns.name], f"nothing listed in {ns.name}: the case tests nothing"
