"""Option sets nobody wrote by hand, against the real ss: tables, families, modifiers, detail options,
state words and filter expressions drawn at random (a fixed seed: the same sets every run) and
listed by both over the session's population; and filter expressions drawn the same way (nested
``and``/``or``/``not``/parentheses over ports, prefixes, names, ``dev``, ``autobound``…).  Session
50's draws found four differences the hand-written sets had not (a host prefix after -6, a host name
of two families, -r's rpcbind names, an inet host where ``dev`` keeps ss from sending bytecode).

What may differ, and is masked: a listing's own sockets (its NETLINK_SOCK_DIAG socket, its socket to
rpcbind under -r: each lister has its own inode and port id) and the values that move between two
runs (timers, tcp_info clocks and counters).  Where ss accepts a port comparison against a UNIX
host (``-x sport > :1000``: a comparison that means nothing), sockscope refuses it in one line
(README); those draws check that line.
"""

from __future__ import annotations

import difflib
import random
import re

import pytest

from conftest import Harness
from test_details_vs_ss import _lines

_TABLES = ["-t", "-u", "-x", "-w", "-0", "-4", "-6", "-M", "-A tcp,udp", "-A unix_dgram", "-A packet", "-A netlink",
           "-A inet", "-A all", "-f inet", "-f inet6", "-f unix", "-f link", "-f netlink", ""]
_MODIFIERS = ["-a", "-l", "-n", "-r", "-p", "-e", "-o", "-m", "-i", "-H", "-O", "--tos", "--cgroup", "-T", ""]
_STATES = ["state established", "state listening", "exclude listening", "state connected", "state synchronized",
           "state time-wait", "state closed", "state all", "state bucket", "state big", "exclude established",
           "state fin-wait-2", "state close-wait", "state syn-recv", "state unconnected"]
_FILTERS = ["sport = :22", "dport > :1000", "src 127.0.0.1", "dst [::1]", "sport = :ssh", "src 127.0.0.0/8",
            "dport != :53", "( sport = :80 or sport = :443 )", "src unix:*", "not dst 127.0.0.1",
            "sport >= :5000 and sport <= :9999", "dev lo", "autobound", "src [::ffff:127.0.0.1]", "src localhost",
            "src ip6-localhost", "dst ip6-loopback", "fwmark = 0", "src unix:/tmp/*", "src @*", "src inet:127.0.0.1",
            "src inet6:*", "dst 127.0.0.1:5001", "src [::1]:80", "not ( sport >= :1 )", "src link:*",
            "src netlink:rtnl", "src *", "dst 0/0", "sport = :-1"]


def _draw(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    sets = []
    for _ in range(count):
        words = [rng.choice(_TABLES) for _ in range(rng.randint(1, 2))]
        words += [rng.choice(_MODIFIERS) for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.3:
            words.append(rng.choice(_STATES))
        if rng.random() < 0.5:
            words.append(rng.choice(_FILTERS))
        sets.append(" ".join(w for w in words if w))
    return sets


SETS = _draw(20261207, 160)
#: a lister's own sockets: its diag socket (netlink, ``tcpdiag:`` or ``4:`` and its port id) and, under
#: -r, its unnamed unconnected UNIX socket to an rpcbind that is not there
_OWN = re.compile(r"^(?:nl )?(?:UNCONN )?\d+ \d+ (?:tcpdiag|4):(?!kernel)\S+ "
                  r"|^(?:u_str )?UNCONN 0 0 \* \d+ \* 0(?: |$)")
_REFUSED = "compares ports; unix sockets have none"


def _rows(text: str) -> list[str]:
    return [line for line in _lines(text, mask=True) if not _OWN.match(line)]


_LEAVES = ["sport = :22", "dport > :1000", "src 127.0.0.1", "dst [::1]", "sport = :ssh", "src 127.0.0.0/8",
           "dport != :53", "sport >= :5000", "sport <= :9999", "src localhost", "autobound", "dev lo",
           "src [::ffff:127.0.0.1]", "dst 127.0.0.1:5001", "src [::1]:80", "sport = :-1", "dport = :0",
           "src *:ssh", "dst 0/0", "fwmark = 0", "src 0.0.0.0/8", "dport eq :3456", "sport lt :1024",
           "src ::/0", "dst 127.0.0.2", "dport = :http", "src [::1]/128", "dst *", "src ip6-localhost"]
_EXPR_OPTIONS = ["-ta", "-tan", "-ua", "-a", "-4ta", "-6ta", "-tao", "-tl", "-tanp", "-uan"]


def _expression(rng: random.Random, depth: int) -> str:
    r = rng.random()
    if depth <= 0 or r < 0.35:
        return rng.choice(_LEAVES)
    if r < 0.5:
        return "not " + _expression(rng, depth - 1)
    if r < 0.65:
        return "( " + _expression(rng, depth - 1) + " )"
    op = rng.choice(["and ", "or ", "&& ", "|| ", ""])  # ("": and, as ss reads two nodes in a row)
    return f"{_expression(rng, depth - 1)} {op}{_expression(rng, depth - 1)}"


def _draw_expressions(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(_EXPR_OPTIONS)} {_expression(rng, 4)}" for _ in range(count)]


EXPRESSIONS = _draw_expressions(5, 120)


def test_the_draws_cover_what_they_are_for() -> None:
    joined = "\n".join(SETS)
    for word in ("-x", "-r", "-p", "-e", "-o", "-m", "-i", "state", "src inet:", "ip6-", "-A", "-f"):
        assert word in joined, word
    assert len(set(SETS)) > 150
    exprs = "\n".join(EXPRESSIONS)
    for word in (" not ", " or ", " and ", "(", "dev lo", "dst 0/0", "autobound"):
        assert word in exprs, word
    assert len(set(EXPRESSIONS)) > 110


@pytest.mark.parametrize("options", SETS + EXPRESSIONS)
def test_drawn_option_set_as_ss(fresh_population: Harness, options: str) -> None:
    argv = options.split()
    for _ in range(4):  # (a TIME-WAIT may end between two runs of ss)
        a, ours, c = fresh_population.ss(argv), fresh_population.sockscope(argv), fresh_population.ss(argv)
        if _rows(a.stdout) == _rows(c.stdout) and a.returncode == c.returncode:
            break
    assert "Traceback" not in ours.stderr, ours.stderr
    if _REFUSED in ours.stderr:
        assert ours.returncode == 255 and ours.stdout == "" and ours.stderr.startswith("sockscope: bad filter")
        return
    assert (ours.returncode == 0) == (a.returncode == 0), (a.returncode, ours.returncode, a.stderr, ours.stderr)
    want, got = _rows(a.stdout), _rows(ours.stdout)
    assert got == want, f"ss {options} (-) vs sockscope (+):\n" + "\n".join(
        difflib.unified_diff(want, got, lineterm="", n=0))
