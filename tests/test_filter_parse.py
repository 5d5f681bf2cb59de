"""The ss filter parser and printer: a table of expressions, the errors with their
caret, ``-F`` files, and hypothesis (token soup never raises anything but
FilterSyntaxError; printed trees parse back equal).

Lookups are hermetic: :class:`FakeResolver` answers DNS names and cgroup paths
from tables (no query ever leaves the machine); services come from the real
/etc/services (ssh = 22, http = 80) and ``lo`` is interface 1 in every netns.
"""

from __future__ import annotations

import io
import ipaddress
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sockscope.errors import UsageError
from sockscope.filter import FilterSyntaxError, FilterValueError, parse, parse_file
from sockscope.filter.expr import (
    AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_TIPC, AF_UNIX, AF_VSOCK, AF_XDP,
    And, Autobound, CgroupCond, DevCond, Expr, HostCond, LinkCond, MarkCond, NetlinkCond,
    Not, Or, OtherFamilyCond, PortCmp, UnixCond,
)
from sockscope.filter.parser import Resolver, tokenize

V4, V6 = 2, 10
HOSTS = {
    "localhost": [(V4, bytes([127, 0, 0, 1]))],
    "dual.test": [(V4, bytes([127, 0, 0, 9])), (V6, bytes(15) + b"\x09")],
    "six.test": [(V6, bytes(15) + b"\x01")],
}
CGROUPS = {"/": 1, "/a b/c(d)": 42, "/sys.slice": 7}


class FakeResolver(Resolver):
    """Hosts and cgroups from tables; services real, except "amb" (tcp 1, udp 2)."""

    def hosts(self, name: str, family: int) -> list[tuple[int, bytes]]:
        return [(f, raw) for f, raw in HOSTS.get(name, []) if family in (0, f)]

    def service(self, name: str, proto: str) -> int | None:
        if name == "amb":
            return 1 if proto == "tcp" else 2
        return super().service(name, proto)

    def cgroup_id(self, path: str) -> int | None:
        return CGROUPS.get(path)


R = FakeResolver()


def P(text: str | list[str], **kw: object) -> Expr | None:
    words = text.split(" ") if isinstance(text, str) else text
    return parse(words, resolver=R, **kw)  # type: ignore[arg-type]


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


def S(port: int = -1, *nets: str, family: int = 0, name: str | None = None) -> HostCond:
    return HostCond("src", port, tuple(net(n) for n in nets), family, name)


def D(port: int = -1, *nets: str, family: int = 0, name: str | None = None) -> HostCond:
    return HostCond("dst", port, tuple(net(n) for n in nets), family, name)


A1, A2, A3 = S(1), S(2), D(3)

# (input words, expected tree, canonical text)
CASES: list[tuple[str | list[str], Expr, str]] = [
    # ports and every operator spelling
    ("sport = :22", S(22), "sport = :22"),
    ("sport == :22", S(22), "sport = :22"),
    ("sport eq :22", S(22), "sport = :22"),
    ("sport :22", S(22), "sport = :22"),
    ("dport = 22", D(22), "dport = :22"),
    ("src :22", S(22), "sport = :22"),
    ("src *:22", S(22), "sport = :22"),
    ("dport = *:22", D(), "dst *"),  # ss: the whole word is the port, and "*…" is any
    ("dport != :22", Not(D(22)), "dport != :22"),
    ("dport ne :22", Not(D(22)), "dport != :22"),
    ("dport neq :22", Not(D(22)), "dport != :22"),
    ("sport > :1024", Not(PortCmp("src", "le", 1024)), "sport > :1024"),
    ("sport gt :1024", Not(PortCmp("src", "le", 1024)), "sport > :1024"),
    ("sport < :1024", Not(PortCmp("src", "ge", 1024)), "sport < :1024"),
    ("sport lt :1024", Not(PortCmp("src", "ge", 1024)), "sport < :1024"),
    ("dport >= :1024", PortCmp("dst", "ge", 1024), "dport >= :1024"),
    ("dport ge :1024", PortCmp("dst", "ge", 1024), "dport >= :1024"),
    ("dport geq :1024", PortCmp("dst", "ge", 1024), "dport >= :1024"),
    ("dport <= :1024", PortCmp("dst", "le", 1024), "dport <= :1024"),
    ("dport le :1024", PortCmp("dst", "le", 1024), "dport <= :1024"),
    ("dport leq :1024", PortCmp("dst", "le", 1024), "dport <= :1024"),
    ("sport >= :1024 and sport <= :2048",
     And(PortCmp("src", "ge", 1024), PortCmp("src", "le", 2048)), "sport >= :1024 and sport <= :2048"),
    ("sport = :ssh", S(22), "sport = :22"),
    ("dport = :http", D(80), "dport = :80"),
    ("sport = :0x16", S(22), "sport = :22"),
    ("sport = :010", S(8), "sport = :8"),  # strtol base 0, like ss
    # boolean operators, adjacency, flat precedence, parentheses
    ("sport = :1 and sport = :2", And(A1, A2), "sport = :1 and sport = :2"),
    ("sport = :1 && sport = :2", And(A1, A2), "sport = :1 and sport = :2"),
    ("sport = :1 & sport = :2", And(A1, A2), "sport = :1 and sport = :2"),
    ("sport = :1 sport = :2", And(A1, A2), "sport = :1 and sport = :2"),
    ("sport = :1 or sport = :2", Or(A1, A2), "sport = :1 or sport = :2"),
    ("sport = :1 || sport = :2", Or(A1, A2), "sport = :1 or sport = :2"),
    ("sport = :1 | sport = :2", Or(A1, A2), "sport = :1 or sport = :2"),
    ("sport = :1 or sport = :2 and dport = :3", And(Or(A1, A2), A3),
     "sport = :1 or sport = :2 and dport = :3"),
    ("sport = :1 and sport = :2 or dport = :3", Or(And(A1, A2), A3),
     "sport = :1 and sport = :2 or dport = :3"),
    ("sport = :1 or ( sport = :2 and dport = :3 )", Or(A1, And(A2, A3)),
     "sport = :1 or ( sport = :2 and dport = :3 )"),
    ("not sport = :1", Not(A1), "sport != :1"),
    ("! sport = :1 or sport = :2", Or(Not(A1), A2), "sport != :1 or sport = :2"),
    ("! ( sport = :1 or sport = :2 )", Not(Or(A1, A2)), "not ( sport = :1 or sport = :2 )"),
    ("not not sport = :1", Not(Not(A1)), "not sport != :1"),
    ("( ( sport = :1 or sport = :2 ) and not ( dport = :3 ) )", And(Or(A1, A2), Not(A3)),
     "sport = :1 or sport = :2 and dport != :3"),
    (["( dport = :3 )"], A3, "dport = :3"),
    (["(", "dport", "=", ":3", ")"], A3, "dport = :3"),
    (["(dport", "=", ":3)"], A3, "dport = :3"),
    (["\\(", "dport", "=", ":3", "\\)"], A3, "dport = :3"),
    (["((dport", "=", ":3))"], A3, "dport = :3"),
    (["sport\t=\t:1"], A1, "sport = :1"),
    # inet hosts
    ("src 127.0.0.1", S(-1, "127.0.0.1/32"), "src 127.0.0.1"),
    ("src 127.0.0.1:22", S(22, "127.0.0.1/32"), "src 127.0.0.1:22"),
    ("src 127.0.0.1:", S(-1, "127.0.0.1/32"), "src 127.0.0.1"),
    ("dst 10.0.0.0/8", D(-1, "10.0.0.0/8"), "dst 10.0.0.0/8"),
    ("dst 10.1.2.3/8:80", D(80, "10.0.0.0/8"), "dst 10.0.0.0/8:80"),
    ("src 127/8", S(-1, "127.0.0.0/8"), "src 127.0.0.0/8"),
    ("src 10.0.0.0/255.0.0.0", S(-1, "10.0.0.0/8"), "src 10.0.0.0/8"),
    ("dst [::1]", D(-1, "::1/128"), "dst [::1]"),
    ("dst [::1]:22", D(22, "::1/128"), "dst [::1]:22"),
    ("src [fe80::/10]", S(-1, "fe80::/10"), "src [fe80::/10]"),
    ("src fe80::/10", S(-1, "fe80::/10"), "src [fe80::/10]"),
    ("src [fe80::/10]:443", S(443, "fe80::/10"), "src [fe80::/10]:443"),
    ("src [::ffff:127.0.0.1]", S(-1, "::ffff:127.0.0.1/128"), "src [::ffff:127.0.0.1]"),
    ("src *", S(), "src *"),
    ("src default", S(), "src *"),
    ("src inet:127.0.0.1", S(-1, "127.0.0.1/32", family=AF_INET), "src inet:127.0.0.1"),
    ("src inet:any", S(-1, "0.0.0.0/0", family=AF_INET), "src inet:0.0.0.0/0"),
    ("src inet6:*", S(family=AF_INET6), "src inet6:*"),
    ("dst inet6:[::1]:80", D(80, "::1/128", family=AF_INET6), "dst inet6:[::1]:80"),
    ("sport = inet6::22", S(22, family=AF_INET6), "sport = inet6::22"),
    ("src localhost", S(-1, "127.0.0.1/32", name="localhost"), "src localhost"),
    ("dst localhost:http", D(80, "127.0.0.1/32", name="localhost"), "dst localhost:80"),
    ("dst dual.test", D(-1, "127.0.0.9/32", "::9/128", name="dual.test"), "dst dual.test"),
    ("dst inet6:dual.test", D(-1, "::9/128", family=AF_INET6, name="dual.test"), "dst inet6:dual.test"),
    # other families
    ("src unix:/tmp/*", UnixCond("src", "/tmp/*"), "src unix:/tmp/*"),
    (["src", "unix:/tmp/a\\ b"], UnixCond("src", "/tmp/a b"), "src unix:/tmp/a\\ b"),
    ("src unix:/run/x(1)", UnixCond("src", "/run/x(1)"), "src unix:/run/x\\(1\\)"),
    ("dst unix:*", UnixCond("dst", "*"), "dst unix:*"),
    ("sport = unix:@abc", UnixCond("src", "@abc"), "src unix:@abc"),
    ("src link:ip:1", LinkCond("src", 0x800, 1), "src link:2048:1"),
    ("src link:IPv6", LinkCond("src", 0x86DD), "src link:34525"),
    ("src link:*:lo", LinkCond("src", None, 1), "src link:*:1"),
    ("sport = link:3", LinkCond("src", None, 3), "src link:*:3"),
    ("dst link:", LinkCond("dst"), "dst link:*"),
    ("src netlink:rtnl:kernel", NetlinkCond("src", 0, 0), "src netlink:0:0"),
    ("src netlink:genl:-5", NetlinkCond("src", 16, -5), "src netlink:16:-5"),
    ("sport >= link::2", PortCmp("src", "ge", 2, AF_PACKET), "sport >= link::2"),
    # dev, fwmark, cgroup, autobound
    ("dev lo", DevCond(1, "lo"), "dev lo"),
    ("dev = 1", DevCond(1), "dev 1"),
    ("dev != lo", Not(DevCond(1, "lo")), "dev != lo"),
    ("dev 0", DevCond(0), "dev 0"),
    ("fwmark 0x10/0xff", MarkCond(0x10, 0xFF), "fwmark 0x10/0xff"),
    ("fwmark = 5", MarkCond(5), "fwmark 0x5"),
    ("fwmark != 0x1", Not(MarkCond(1)), "fwmark != 0x1"),
    ("cgroup /", CgroupCond("/", 1), "cgroup /"),
    (["cgroup", "!=", "/a\\ b/c(d)"], Not(CgroupCond("/a b/c(d)", 42)), "cgroup != /a\\ b/c\\(d\\)"),
    ("autobound", Autobound(), "autobound"),
    ("not autobound", Not(Autobound()), "not autobound"),
    ("autobound and dev lo or fwmark 1", Or(And(Autobound(), DevCond(1, "lo")), MarkCond(1)),
     "autobound and dev lo or fwmark 0x1"),
]


@pytest.mark.parametrize("words,tree,text", CASES, ids=[str(c[0]) for c in CASES])
def test_table(words: str | list[str], tree: Expr, text: str) -> None:
    got = P(words)
    assert got == tree
    assert str(got) == text
    assert P([text]) == tree  # the canonical text reads back as the same tree
    if "\\ " not in text:
        assert P(text) == tree  # also as separate argv words


def test_empty_expression_is_none() -> None:
    assert P([]) is None
    assert P(["", " ", "\t"]) is None


def test_preferred_family_reads_bare_hosts() -> None:
    assert P("src /tmp/x*", family=AF_UNIX) == UnixCond("src", "/tmp/x*")
    assert P("src 127.0.0.1", family=AF_INET) == S(-1, "127.0.0.1/32", family=AF_INET)
    assert P("src ip:lo", family=AF_PACKET) == LinkCond("src", 0x800, 1)
    assert P("src rtnl", family=AF_NETLINK) == NetlinkCond("src", 0)
    with pytest.raises(FilterSyntaxError, match="an inet prefix is expected"):
        P("src 127.0.0.1", family=AF_INET6)


def test_service_names_follow_protocols() -> None:
    with pytest.raises(FilterSyntaxError, match='ambiguous port "amb"'):
        P("sport = :amb")
    assert P("sport = :amb", protocols=("tcp",)) == S(1)
    assert P("sport = :amb", protocols=("udp",)) == S(2)
    with pytest.raises(FilterSyntaxError, match='"ssh" does not look like a port'):
        P("sport = :ssh", protocols=())


def test_families_and_needs_userspace() -> None:
    def fam(text: str) -> frozenset[int] | None:
        e = P(text)
        assert e is not None
        return e.families()

    assert fam("sport = :22") is None
    assert fam("src inet6:* or sport = :1") == {AF_INET6}
    assert fam("src unix:/x or src inet:127.0.0.1") == {AF_INET}  # the last prefix wins, like ss
    assert fam("src inet:127.0.0.1 or src unix:/x") == {AF_UNIX}
    assert fam("dport >= netlink::5") == {AF_NETLINK}
    assert fam("src link:*") == {AF_PACKET}
    userspace = {t: P(t).needs_userspace() for t in (  # type: ignore[union-attr]
        "sport = :22", "src 127.0.0.1 and fwmark 1", "cgroup /", "dev lo", "autobound",
        "sport = :1 or src unix:*", "not src link:*", "src netlink:*")}
    assert userspace == {"sport = :22": False, "src 127.0.0.1 and fwmark 1": False, "cgroup /": False,
                         "dev lo": True, "autobound": True, "sport = :1 or src unix:*": True,
                         "not src link:*": True, "src netlink:*": True}


def test_tokenize_positions_and_escapes() -> None:
    display, toks = tokenize(["( dport", "=", "a\\ b\\", "x)"])
    assert display == "( dport = a\\ b\\ x)"
    assert [(t.text, t.start, t.kind) for t in toks] == [
        ("(", 0, "("), ("dport", 2, "dport"), ("=", 8, "eq"), ("a b", 10, "word"),
        ("x", 16, "word"), (")", 17, ")")]


# (input, reason, caret column, exit status: ss's, where ss refuses it too)
ERRORS: list[tuple[str | list[str], str, int, int]] = [
    ("dport = :nope", '"nope" does not look like a port', 8, 1),
    ("src ::1", 'an inet prefix is expected rather than ":"', 4, 1),
    ("src nosuch.test", 'an inet prefix is expected rather than "nosuch.test"', 4, 1),
    ("src inet6:127.0.0.1", 'an inet prefix is expected rather than "127.0.0.1"', 4, 1),
    ("src [::1", 'missing "]" in "[::1"', 4, 1),
    ("( sport = :1", '"(" is never closed', 0, 255),
    ("sport = :1 )", 'unexpected ")" without "("', 11, 255),
    ("( )", 'empty "( )"', 2, 255),
    ("dst", '"dst" needs an address', 3, 255),
    ("dst and sport = :1", '"dst" needs an address, not "and"', 4, 255),
    ("dst != 1.2.3.4", '"dst" takes only "=" (write "not dst …" to negate)', 4, 255),
    ("sport = :1 and", 'nothing after "and"', 14, 255),
    ("sport = :1 or or", 'unexpected "or"', 14, 255),
    ("not", 'nothing after "not"', 3, 255),
    ("sport >= *", '">=" needs a port number, not "*"', 9, 255),  # ss: any port (documented refusal)
    ("dport > 1.2.3.4:5", '"1.2.3.4:5" does not look like a port', 8, 1),
    ("src unix:/x or sport >= unix:/y", '">=" compares ports; unix sockets have none', 24, 255),  # ss: accepted
    ("127.0.0.1", 'unexpected "127.0.0.1"', 0, 255),  # a host where ss wants a keyword: grammar
    ("foo", 'unexpected "foo"', 0, 1),  # not even a host: ss's lexer says "Cannot parse dst/src address"
    ("sport = :1 foo", 'unexpected "foo"', 11, 1),
    ("sport = :1 state established", '"state" must come before the filter expression', 11, 1),
    ("dst 1.2.3.4 state established", '"state" must come before the filter expression', 12, 1),
    ("dev nosuchdev0", 'cannot find device "nosuchdev0"', 4, 1),
    ("dev >= lo", '"dev" takes "=" or "!="', 4, 255),
    ("fwmark 5abc", '"5abc" is not a mark (MARK or MARK/MASK)', 7, 1),  # ss: sscanf reads 5 (documented refusal)
    ("fwmark 1/0x1ffffffff", '"1/0x1ffffffff" is not a mark (MARK or MARK/MASK)', 7, 1),
    ("cgroup /nope", 'cannot find cgroup "/nope"', 7, 1),
    ("src link:nosuchproto", '"nosuchproto" is not a link-layer protocol', 4, 1),
    ("src link:ip:nosuchdev0", 'cannot find device "nosuchdev0"', 4, 1),
    ("src netlink:route", '"route" is not a netlink protocol', 4, 1),
    ("src netlink:*:x", '"x" is not a netlink port id', 4, 1),
    ("sport >= :99999", '">=" compares 16-bit ports: 99999 is out of range', 9, 255),  # ss: cut to 16 bits
    ("dport < :-5", '"<" compares 16-bit ports: -5 is out of range', 8, 255),
    ("src vsock:x", '"x" is not a vsock CID', 4, 1),
    ("src vsock:1:", '"" is not a vsock port', 4, 1),
    ("dport = vsock::5:6", '"5:6" is not a vsock port', 8, 1),
    (["sport = :1", "or", "dport\t= :nope"], '"nope" does not look like a port', 22, 1),
    ("dport = :" + "9" * 4301, f'"{"9" * 4301}" does not look like a port', 8, 1),  # int() would raise
    ("src 1.2.3.4/" + "9" * 5000, f'an inet prefix is expected rather than "1.2.3.4/{"9" * 5000}"', 4, 1),
    ("fwmark " + "1" * 5000, f'"{"1" * 5000}" is not a mark (MARK or MARK/MASK)', 7, 1),
    ("src netlink:" + "7" * 5000, f'"{"7" * 5000}" is not a netlink protocol', 4, 1),
    ("src netlink:1:" + "7" * 5000, f'"{"7" * 5000}" is not a netlink port id', 4, 1),
    ("src link:" + "7" * 5000, f'"{"7" * 5000}" is not a link-layer protocol', 4, 1),
    ("src 0x" + "f" * 5000, f'an inet prefix is expected rather than "0x{"f" * 5000}"', 4, 1),
]


def _error_text(expression: str, column: int) -> tuple[str, int]:
    """What the message quotes of a long expression (see FilterSyntaxError), and the caret's column in it."""
    from sockscope.errors import SHOWN

    if len(expression) <= SHOWN:
        return expression, column
    start = max(0, min(column - SHOWN // 2, len(expression) - SHOWN))
    head = "..." if start else ""
    tail = "..." if start + SHOWN < len(expression) else ""
    return head + expression[start:start + SHOWN] + tail, column - start + len(head)


@pytest.mark.parametrize("words,reason,column,status", ERRORS, ids=[str(e[0])[:40] for e in ERRORS])
def test_errors(words: str | list[str], reason: str, column: int, status: int) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        P(words)
    exc = info.value
    expression = words if isinstance(words, str) else " ".join(words).replace("\t", " ")
    if len(reason) > 200:  # a huge token quoted: both ends kept
        reason = reason[:100] + "..." + reason[-100:]
    assert exc.reason == reason
    assert exc.position == column
    assert exc.expression == expression
    shown, col = _error_text(expression, column)
    assert str(exc) == f'bad filter "{shown}": {reason}'
    assert "\n" not in str(exc)
    assert exc.caret == f"{shown}\n{' ' * col}^"
    assert isinstance(exc, UsageError) and exc.exit_status == status
    assert isinstance(exc, FilterValueError) == (status == 1)


def test_parse_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "filter"
    f.write_text("# listeners we care about\n( sport = :1\n\n   or sport = :2 )\n#and dport = :3\n")
    assert parse_file(str(f), resolver=R) == Or(A1, A2)
    assert parse_file(str(f), ["dport", "=", ":3"], resolver=R) == And(A3, Or(A1, A2))
    monkeypatch.setattr(sys, "stdin", io.StringIO("dport = :3\n"))
    assert parse_file("-", resolver=R) == A3
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    assert parse_file(str(empty)) is None
    with pytest.raises(UsageError, match="cannot read filter file") as info:
        parse_file(str(tmp_path / "missing"))
    assert not isinstance(info.value, FilterSyntaxError)
    bad = tmp_path / "bad"
    bad.write_text("sport = :1\nor dport = :nope\n")
    with pytest.raises(FilterSyntaxError) as err:
        parse_file(str(bad), resolver=R)
    assert err.value.expression == "sport = :1 or dport = :nope"
    assert err.value.position == len("sport = :1 or dport = ")


def test_filter_file_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-F reads at most MAX_FILE bytes: a larger file (or /dev/zero, which never ends) is one
    clear UsageError, never a MemoryError or minutes of work."""
    from sockscope.filter.parser import MAX_FILE

    assert MAX_FILE == 1 << 20
    fits = tmp_path / "fits"
    fits.write_bytes(b"sport = :1\n" + b"#" * (MAX_FILE - 12) + b"\n")
    assert fits.stat().st_size == MAX_FILE
    assert parse_file(str(fits), resolver=R) == A1
    big = tmp_path / "big"
    big.write_bytes(b"#" * MAX_FILE + b"\n")
    for path in (str(big), "/dev/zero"):
        with pytest.raises(UsageError) as info:
            parse_file(path, resolver=R)
        assert not isinstance(info.value, FilterSyntaxError)
        assert str(info.value) == f"filter file {path} is larger than 1 MiB"
    monkeypatch.setattr(sys, "stdin", io.BytesIO(b"sport = :1 " * (MAX_FILE // 10)))
    with pytest.raises(UsageError, match="filter file - is larger than 1 MiB"):
        parse_file("-", resolver=R)
    with pytest.raises(UsageError, match="cannot read filter file"):
        parse_file(str(tmp_path))  # a directory


def test_glued_parentheses_in_linear_time_and_bounded_depth() -> None:
    """120,001 glued parentheses: split into tokens in one pass (this took ~30 s), then the
    nesting limit answers with a one-line grammar error (no RecursionError)."""
    from sockscope.filter.parser import MAX_DEPTH

    text = "(" * 60000 + "x" + ")" * 60000
    display, toks = tokenize([text])
    assert display == text and len(toks) == 120001
    assert toks[60000].text == "x" and toks[60000].start == 60000
    assert [t.kind for t in toks[:3]] == ["("] * 3 and toks[-1].kind == ")" and toks[-1].start == 120000
    with pytest.raises(FilterSyntaxError, match="nested") as info:
        P([text])
    exc = info.value
    assert exc.exit_status == 255 and exc.position == MAX_DEPTH
    assert "\n" not in str(exc) and len(str(exc)) < 400  # the message quotes a window of the expression
    shown, caret = exc.caret.split("\n")
    assert len(shown) <= 206 and caret == " " * shown.index("(((") + " " * MAX_DEPTH + "^"
    with pytest.raises(FilterSyntaxError, match="nested"):
        P("not " * 60000 + "autobound")


@pytest.mark.parametrize("words, shown, column", [
    (["dport", "=", ":2\n2"], "dport = :2\\x0a2", 8),                  # a newline inside a token
    (["src", "\x1b[31mred"], "src \\x1b[31mred", 4),                    # a terminal escape
    (["foo\rbar"], "foo\\x0dbar", 0),
    (["sport = :1", "x\u2028y"], "sport = :1 x\\u2028y", 11),           # a Unicode line separator
    (["dport", "=", ":\udcff"], "dport = :\\xff", 8),                   # an undecodable byte: the byte itself
    # escapes before the bad token (after a unix: host the port is a UNIX host too, as in ss: compared, refused)
    (["src", "unix:a\x01\x85b", "and", "dport", ">", ":nope"],
     "src unix:a\\x01\\x85b and dport > :nope", len("src unix:a\\x01\\x85b and dport > ")),
])
def test_control_characters_are_escaped(words: list[str], shown: str, column: int) -> None:
    """The message is one printable line (it spanned two with a newline in a token); the
    caret line sits under the bad token of the escaped expression."""
    with pytest.raises(FilterSyntaxError) as info:
        P(words)
    exc = info.value
    msg = str(exc)
    assert msg.isprintable() and len(msg.splitlines()) == 1, msg
    assert msg.startswith(f'bad filter "{shown}": ')
    assert exc.expression == shown and exc.position == column
    assert exc.caret == f"{shown}\n{' ' * column}^"


def test_errors_are_printable_everywhere() -> None:
    """Every SockscopeError's message is escaped (state names, file names …), not only filters'."""
    from sockscope.filter.states import parse_state_words

    with pytest.raises(UsageError) as info:
        parse_state_words(["state", "x\ny"], 0)
    assert str(info.value) == "wrong state name: x\\x0ay"
    with pytest.raises(UsageError) as info:
        parse_state_words(["state", "é" * 5000], 0)
    assert str(info.value) == "wrong state name: " + "é" * 482 + "..." + "é" * 500  # both ends of a huge word


@pytest.mark.parametrize("text, tree", [
    ("dport = :99999", D(99999)),            # ss: parses, matches nothing (a C int)
    ("dport = :-2", D(-2)),
    ("dport = :-1", D()),                    # ss: -1 is its "any port"
    ("sport = :2147483647", S(2147483647)),
    ("sport = :0x10000", S(65536)),
    ("src 127.0.0.1:70000", S(70000, "127.0.0.1/32")),
])
def test_ports_are_c_ints_like_ss(text: str, tree: Expr) -> None:
    """ss reads ports with get_integer: what it accepts parses here too, meaning what it means to ss."""
    from sockscope.filter import compile_bytecode, compile_predicate, required_ports
    from sockscope.records import Endpoint, Socket, State

    assert P(text) == tree and P(str(tree)) == tree
    sockets = [Socket("tcp", 2, State.ESTABLISHED, 0, 0, Endpoint("127.0.0.1", lp), Endpoint("127.0.0.1", pp), 1)
               for lp, pp in ((0, 65535), (65535, 0), (34463, 34463), (1, 1))]
    pred = compile_predicate(tree)
    assert sum(map(pred, sockets)) == (4 if text == "dport = :-1" else 0)
    assert compile_bytecode(tree) is not None and not tree.needs_userspace()  # HOSTCOND's port is an s32
    assert required_ports(tree) == (0, 0)


@pytest.mark.parametrize("family, text, tree", [
    (AF_VSOCK, "dport = :22", OtherFamilyCond("dst", AF_VSOCK, "*", 22)),
    (AF_VSOCK, "src 3", OtherFamilyCond("src", AF_VSOCK, "3")),
    (AF_VSOCK, "src 0x10:010", OtherFamilyCond("src", AF_VSOCK, "16", 8)),
    (AF_VSOCK, "src :5", OtherFamilyCond("src", AF_VSOCK, "*", 5)),
    (AF_VSOCK, "src *", OtherFamilyCond("src", AF_VSOCK)),
    (AF_VSOCK, "dport >= :5", PortCmp("dst", "ge", 5, AF_VSOCK)),
    (AF_VSOCK, "src inet:127.0.0.1", S(-1, "127.0.0.1/32", family=AF_INET)),  # a prefix wins, as in ss
    (0, "src vsock:4294967295:4294967295", OtherFamilyCond("src", AF_VSOCK, "4294967295", 4294967295)),
    (AF_TIPC, "dport = :22", OtherFamilyCond("dst", AF_TIPC, "*", 22)),
    (AF_TIPC, "src 1.2.3.4:80", OtherFamilyCond("src", AF_TIPC, "1.2.3.4", 80)),
    (AF_TIPC, "src 10.1", OtherFamilyCond("src", AF_TIPC, "10.1.0.0")),
    (AF_TIPC, "src any", OtherFamilyCond("src", AF_TIPC)),
    (AF_XDP, "src [1.2.3.4]:5", OtherFamilyCond("src", AF_XDP, "1.2.3.4", 5)),
    (AF_XDP, "dport = :99999", OtherFamilyCond("dst", AF_XDP, "*", 99999)),
    (AF_XDP, "sport <= :7", PortCmp("src", "le", 7, AF_XDP)),
])
def test_families_sockscope_does_not_list(family: int, text: str, tree: Expr) -> None:
    """--vsock/--tipc/--xdp (and -f vsock|tipc|xdp) with a filter: hosts read as ss reads
    them (this raised ValueError: unsupported preferred family); they narrow the listing to
    their family, print back, need userspace (no bytecode) and match nothing listed."""
    from sockscope.filter import compile_bytecode, compile_predicate
    from sockscope.records import Endpoint, Socket, State

    got = P(text, family=family)
    assert got == tree
    assert P(str(got)) == got
    if not isinstance(got, HostCond):
        assert got.families() == frozenset({tree.family})  # type: ignore[attr-defined]
        assert compile_bytecode(got) is None and got.needs_userspace()
        s = Socket("tcp", 2, State.LISTEN, 0, 0, Endpoint("1.2.3.4", 22), Endpoint("0.0.0.0", 0), 1)
        assert not compile_predicate(got)(s) or isinstance(got, PortCmp)


@pytest.mark.parametrize("family, text, reason", [
    (AF_VSOCK, "src 1.2.3.4", '"1.2.3.4" is not a vsock CID'),
    (AF_VSOCK, "src 1:", '"" is not a vsock port'),
    (AF_VSOCK, "src 4294967296", '"4294967296" is not a vsock CID'),
    (AF_VSOCK, "dport >= :x", '"x" is not a vsock port'),
    (AF_TIPC, "src [::1]", 'an inet prefix is expected rather than "::1"'),
    (AF_TIPC, "src localhost", 'an inet prefix is expected rather than "localhost"'),
    (AF_TIPC, "src 127/8", 'an inet prefix is expected rather than "127/8"'),
    (AF_XDP, "src 1.2.3.4.5", 'an inet prefix is expected rather than "1.2.3.4.5"'),
    (AF_XDP, "dport = :nope", '"nope" does not look like a port'),
])
def test_family_hosts_refused_like_ss(family: int, text: str, reason: str) -> None:
    with pytest.raises(FilterValueError) as info:
        P(text, family=family)
    assert info.value.reason == reason and info.value.exit_status == 1


def test_unknown_preferred_family_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unsupported preferred family 99"):
        parse(["dport = :1"], family=99)


# ---------------------------------------------------------------- hypothesis

WORDS = ["(", ")", "!", "not", "and", "&&", "&", "or", "||", "|", "src", "dst", "sport", "dport",
         "dev", "fwmark", "cgroup", "autobound", "=", "==", "eq", "!=", "ne", ">", "gt", "<", "lt",
         ">=", "geq", "<=", "leq", ":22", ":ssh", "*", "*:22", "127.0.0.1", "[::1]", "[::1]:22",
         "10.0.0.0/8", "127/8", "fe80::/10", "localhost", "unix:/tmp/*", "link:ip", "netlink:rtnl",
         "inet:", "inet6:*", "lo", "0x10/0xff", "/", "state", "[", "]", "\\", "(x", "y)", ""]
CHARS = "()[]:*/.\\!=<>&| \tabcdefx0123456789-@#%\0é"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(WORDS), st.text(CHARS, max_size=12)), max_size=12))
def test_token_soup_only_raises_filter_errors(words: list[str]) -> None:
    try:
        tree = parse(words, resolver=R)
    except FilterSyntaxError as exc:
        assert "\n" not in str(exc)
        assert 0 <= exc.position <= len(exc.expression)
        return
    if tree is not None:  # whatever parsed also prints and reads back
        assert parse([str(tree)], resolver=R) == tree


sides = st.sampled_from(["src", "dst"])
ports = st.one_of(st.just(-1), st.integers(0, 0xFFFF))
int32 = st.integers(-(1 << 31), (1 << 31) - 1)


@st.composite
def inet_hosts(draw: st.DrawFn) -> HostCond:
    side, port = draw(sides), draw(ports)
    family = draw(st.sampled_from([0, AF_INET, AF_INET6]))
    kind = draw(st.sampled_from(["any", "net", "name"]))
    if kind == "name":
        name = draw(st.sampled_from(sorted(HOSTS)))
        found = R.hosts(name, family)
        if found:
            nets = tuple(dict.fromkeys(ipaddress.ip_network((raw, 32 if f == V4 else 128)) for f, raw in found))
            return HostCond(side, port, nets, family, name)
    if kind != "any":
        version = {AF_INET: 4, AF_INET6: 6}.get(family) or draw(st.sampled_from([4, 6]))
        addr = draw(st.ip_addresses(v=version))
        plen = draw(st.integers(0, addr.max_prefixlen))
        return HostCond(side, port, (ipaddress.ip_network((addr, plen), strict=False),), family)
    return HostCond(side, port, (), family)


patterns = st.text("ab/*?[]!^-\\ ()@.\t:", max_size=10)
leaves = st.one_of(
    inet_hosts(),
    st.builds(UnixCond, sides, patterns),
    st.builds(LinkCond, sides, st.one_of(st.none(), st.integers(0, 0xFFFF)), int32),
    st.builds(NetlinkCond, sides, st.one_of(st.none(), st.integers(0, 255)), int32),
    st.builds(PortCmp, sides, st.sampled_from(["ge", "le"]), st.integers(0, 0xFFFF),
              st.sampled_from([0, AF_INET, AF_INET6])),
    st.builds(PortCmp, sides, st.sampled_from(["ge", "le"]), int32.filter(lambda p: p != -1),
              st.sampled_from([AF_PACKET, AF_NETLINK])),
    st.builds(DevCond, st.integers(0, 0xFFFFFFFF)),
    st.just(DevCond(1, "lo")),
    st.builds(MarkCond, st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
    st.sampled_from([CgroupCond(p, i) for p, i in CGROUPS.items()]),
    st.just(Autobound()),
)
trees = st.recursive(leaves, lambda sub: st.one_of(
    st.builds(And, sub, sub), st.builds(Or, sub, sub), st.builds(Not, sub)), max_leaves=12)


@settings(max_examples=500, deadline=None)
@given(trees)
def test_printed_trees_read_back_equal(tree: Expr) -> None:
    from sockscope.filter import compile_bytecode

    # a host read in the preferred family (family 0) after one of a family: the parser reads it in that
    # family (ss's parse_hostcond), so no text gives this tree
    declared = False
    for leaf in tree.leaves():
        if isinstance(leaf, (HostCond, PortCmp)) and leaf.family == 0:
            assume(not declared)
        declared = declared or bool(leaf._declared_family())

    # the two back ends' contract: no bytecode exactly when a node needs userspace
    assert (compile_bytecode(tree) is None) == any(
        isinstance(leaf, (DevCond, UnixCond, LinkCond, NetlinkCond))
        or (isinstance(leaf, PortCmp) and leaf.family in (AF_PACKET, AF_NETLINK))
        for leaf in tree.leaves())
    if compile_bytecode(tree) is None:
        assert tree.needs_userspace()
    text = str(tree)
    assert parse([text], resolver=R) == tree
    if "\\ " not in text:  # the same text as separate argv words
        assert parse(text.split(" "), resolver=R) == tree


def test_long_chains_and_deep_nesting() -> None:
    from sockscope.filter import compile_bytecode, compile_predicate
    from sockscope.filter.parser import MAX_DEPTH
    from sockscope.records import Endpoint, Socket, State

    words: list[str] = []
    for i in range(3000):  # a generated -F file: 3000 ports, or'ed
        words += (["or"] if i else []) + ["sport", "=", f":{i + 1}"]
    tree = P(words)
    assert tree is not None
    text = str(tree)
    assert text.count(" or ") == 2999 and str(P([text])) == text
    bc = compile_bytecode(tree)
    assert bc is not None and len(bc) == 3000 * 16 + 2999 * 4
    pred = compile_predicate(tree)
    sock = lambda port: Socket("tcp", 2, State.LISTEN, 0, 0, Endpoint("127.0.0.1", port),  # noqa: E731
                               Endpoint("0.0.0.0", 0), 1)
    assert pred(sock(3000)) and not pred(sock(3001))
    assert len(list(tree.leaves())) == 3000
    too_long = P(words + ["or"] + words)  # 6000 conditions: more than the u16 attribute holds
    assert too_long is not None and compile_bytecode(too_long) is None

    deep = "( " * MAX_DEPTH + "autobound" + " )" * MAX_DEPTH
    assert P(deep) == Autobound()
    assert P("not " * MAX_DEPTH + "autobound") is not None
    with pytest.raises(FilterSyntaxError, match="nested") as info:
        P("( " * (MAX_DEPTH + 1) + "autobound" + " )" * (MAX_DEPTH + 1))
    assert info.value.position == 2 * MAX_DEPTH


_C_NUM_REFERENCE = r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)"


def _c_num_reference(text: str, pos: int) -> tuple[int, int] | None:
    """C's strtol(base 0) as a regular expression (what the scanner replaced, to keep `re` off start-up)."""
    import re

    m = re.compile(_C_NUM_REFERENCE).match(text, pos)
    if m is None:
        return None
    d = m.group(2)
    value = int(d[2:], 16) if d[:2] in ("0x", "0X") else int(d, 8) if d[0] == "0" else int(d)
    return (-value if m.group(1) == "-" else value), m.end()


@given(st.text(alphabet="0123456789xXabfFg+-. \t\n", max_size=9), st.integers(min_value=0, max_value=9))
@settings(max_examples=3000, deadline=None)
def test_c_num_reads_what_strtol_reads(text: str, pos: int) -> None:
    from sockscope.filter.values import c_num as _c_num

    pos = min(pos, len(text))
    assert _c_num(text, pos) == _c_num_reference(text, pos)


@pytest.mark.parametrize("text, ports", [
    ("dport = :20000", (0, 20000)),
    ("sport = :80", (80, 0)),
    ("sport = :80 and dport = :443", (80, 443)),
    ("dst 127.0.0.1:8080", (0, 8080)),
    ("( dport = :22 ) and src 127.0.0.1", (0, 22)),
    ("dport = :22 or dport = :80", (0, 0)),  # either port: no single one
    ("not dport = :22", (0, 0)),
    ("dport != :22", (0, 0)),
    ("dport >= :22", (0, 0)),
    ("sport = :22 or sport = :80 and src [::1]", (0, 0)),  # (A or B) and C
    ("src 127.0.0.1", (0, 0)),
    ("dport = :0", (0, 0)),  # 0 in the request means any port
])
def test_required_ports(text: str, ports: tuple[int, int]) -> None:
    """The ports every match must have, which go into the TCP dump request."""
    from sockscope.filter import parse, required_ports

    expr = parse(text.split())
    assert expr is not None
    assert required_ports(expr) == ports


def test_cgroup_paths_no_file_name_holds_are_not_found() -> None:
    """A path with NUL or a lone surrogate (the API's strings may have one) is no cgroup, said as
    such, not an exception from deep inside."""
    from sockscope.filter.values import Resolver

    for path in ("\ud800", "/a\0b", "\udcff\ud800"):
        assert Resolver().cgroup_id(path) is None, path
