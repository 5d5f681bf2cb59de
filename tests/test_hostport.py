"""``HOST:PORT`` words: one splitter (:mod:`sockscope.hostport`) for ``connect``, ``who`` and the
exporter's ``--web.listen-address``, so that a bracket out of place is the same one-line usage error
in each (before, ``connect`` looked ``[::1`` up as a host name, ``who`` said "bad address", the
exporter "missing ']'")."""

from __future__ import annotations

import pytest

from sockscope import hostport
from sockscope.hostport import BadHostPort, split

from servicehelpers import NetNS, ns

__all__ = ["ns"]  # the fixture, imported for pytest


@pytest.mark.parametrize(("text", "scope", "want"), [
    ("127.0.0.1:80", False, ("127.0.0.1", "80", "")),
    ("localhost:http", False, ("localhost", "http", "")),
    (":9100", False, ("", "9100", "")),
    ("[::1]:80", False, ("::1", "80", "")),
    ("[::1]", False, ("::1", None, "")),
    ("[::1]:", False, ("::1", "", "")),  # (an empty port: the caller's "not a port")
    ("::1", False, ("::1", None, "")),  # a bare IPv6 address: a host alone
    ("::1:80", False, ("::1:80", None, "")),  # (which is the address ::0.1.0.128, not port 80)
    ("host", False, ("host", None, "")),
    ("x:\x1b[31m", False, ("x", "\x1b[31m", "")),  # a bracket in the port: the port's own fault
    ("[fe80::1]%v0:9000", True, ("fe80::1", "9000", "v0")),
    ("[fe80::1%v0]:9000", True, ("fe80::1%v0", "9000", "")),
])
def test_split(text: str, scope: bool, want: tuple[str, str | None, str]) -> None:
    assert split(text, scope) == want


@pytest.mark.parametrize(("text", "said"), [
    ("[::1", "missing ']' in '[::1': write [ADDRESS]:PORT"),
    ("[::1]x", "missing port in '[::1]x': write [::1]:PORT"),
    ("[fe80::1]%v0:9000", "missing port in '[fe80::1]%v0:9000': write [fe80::1]:PORT"),  # (no scope here)
    ("a]:80", "misplaced bracket in 'a]:80': write [ADDRESS]:PORT"),
    ("[[::1]]:80", "misplaced bracket in '[[::1]]:80': write [ADDRESS]:PORT"),
    ("[::1]:80]", "misplaced bracket in '[::1]:80]': write [ADDRESS]:PORT"),
    ("::[1]", "misplaced bracket in '::[1]': write [ADDRESS]:PORT"),
    ("[]:80", "empty brackets in '[]:80': write an address inside them, as [::1]"),
])
def test_bracket_faults_are_said_as_such(text: str, said: str) -> None:
    with pytest.raises(BadHostPort) as exc:
        split(text)
    assert str(exc.value) == said


@pytest.mark.parametrize("name, said", [
    ("a..b", "an empty label"), (".", "an empty label"), ("..", "an empty label"), (".a", "an empty label"),
    ("x" * 64, "a label of 64 characters, over 63"), ("ok." + "y" * 70 + ".", "a label of 70 characters, over 63"),
])
def test_a_refused_host_name_is_said_in_our_words(name: str, said: str) -> None:
    """What the resolver's IDNA encoding refuses, said the same under every Python (3.13 changed the
    codec's words): the encoding refuses each of these (else the test's name is wrong)."""
    with pytest.raises(UnicodeError) as refused:
        name.encode("idna")
    assert hostport.not_a_host_name(name, refused.value) == f"not a host name ({said})"


def test_a_fault_we_do_not_name_is_the_exceptions_own() -> None:
    """A name whose fault is none of ours (a long label beyond ASCII) keeps the codec's text; a
    fully qualified name's final dot is no empty label."""
    name = "é" * 70
    with pytest.raises(UnicodeError) as refused:
        name.encode("idna")
    assert hostport.not_a_host_name(name, refused.value) == f"not a host name ({refused.value})"
    assert hostport.not_a_host_name("host.example.", ValueError("x")) == "not a host name (x)"


def test_messages_are_bounded_and_suggest_nothing_made_of_bad_text() -> None:
    huge = "[" + "a" * 131072
    with pytest.raises(BadHostPort) as exc:
        split(huge)
    assert len(str(exc.value)) < 120 and str(exc.value).endswith("...': write [ADDRESS]:PORT")
    with pytest.raises(BadHostPort) as exc:
        split("[" + "b" * 5000 + "]x")
    assert str(exc.value).endswith("write [ADDRESS]:PORT") and len(str(exc.value)) < 120
    with pytest.raises(BadHostPort) as exc:
        split("[a\x1b[2Jb]x")
    assert "\x1b" not in str(exc.value)
    assert hostport.retyped("a\nb") == "[ADDRESS]:PORT" and hostport.retyped("db1", False, "80") == "db1:80"
    assert hostport.is_ipv6("fe80::1%v0") and not hostport.is_ipv6("1.2.3.4") and not hostport.is_ipv6("x")


#: each command's framing of the splitter's message
FRAMES = {
    ("connect",): "sockscope: connect: argument HOST: {} (see sockscope connect --help)\n",
    ("who",): "sockscope: {}\n",
    ("exporter", "--once", "--web.listen-address"): (
        "sockscope: exporter: argument --web.listen-address/--listen: {} (see sockscope exporter --help)\n"),
}


@pytest.mark.parametrize("word", ["[::1", "[::1]x", "a]:80", "[[::1]]:80", "[::1]:80]", "[" + "z" * 100000])
def test_the_three_commands_say_the_same(ns: NetNS, word: str) -> None:
    """Each word is a usage error (exit 255, one line) in all three, the message the splitter's."""
    with pytest.raises(BadHostPort) as exc:
        split(word)
    for argv, frame in FRAMES.items():
        r = ns.sockscope(*argv, word)
        assert (r.returncode, r.stdout) == (255, b""), (argv, r.stderr[:300])
        assert r.stderr.decode() == frame.format(exc.value), (argv, r.stderr[:300])


def test_the_exporter_s_own_rules_after_the_split(ns: NetNS) -> None:
    """What only the exporter asks (an address always; IPv6 in brackets; a port of digits), said once
    each, bounded; and what it accepts."""
    from sockscope.cli.exporter import listen_address

    for given, said in (
        ("9466", "'9466' has no address: write :9466 for every address of the host or 127.0.0.1:9466 for this "
                 "host only"),
        ("localhost", "missing port in 'localhost': write localhost:PORT"),
        ("::1:9466", "write an IPv6 address in brackets: [::1]:9466"),
        ("1.2.3.4:80:90", "not HOST:PORT: '1.2.3.4:80:90' (an IPv6 address goes in brackets, as [::1]:9100)"),
        ("[]", "empty brackets in '[]': write :PORT for every address"),
        (":123456", "not a port number: '123456'"),
        ("h:" + "9" * 5000, "not a port number: '" + "9" * 60 + "...'"),
        ("x" * 5000, "missing port in '" + "x" * 60 + "...': write HOST:PORT"),
    ):
        r = ns.sockscope("exporter", "--once", "--web.listen-address", given)
        assert r.returncode == 255 and r.stderr.decode() == (
            f"sockscope: exporter: argument --web.listen-address/--listen: {said} (see sockscope exporter --help)\n"
        ), (given[:20], r.stderr[:300])
    assert [(a.host, a.port) for a in map(listen_address, (":9100", "[::1]:0", "localhost:65535"))] == [
        ("", 9100), ("::1", 0), ("localhost", 65535)]
