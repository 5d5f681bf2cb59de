"""``sockscope who``'s TARGET parser and the shared endpoint text: pure, no namespace needed."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_target_precedence_and_escape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented order of TARGET forms (pure: no namespace needed), and the escaping."""
    import socket

    from sockscope.errors import UsageError
    from sockscope.render.endpoint import escape, inet_address
    from sockscope.who_target import parse_target

    monkeypatch.chdir(tmp_path)
    kinds = {"inode:7": "inode", "@x": "abstract", "123": "pid", "./python3": "path", ":22": "port",
             "*:22": "port", "127.0.0.1:22": "hostport", "[::1]:22": "hostport", "python3": "process",
             "systemd-resolve": "process", "a.b_c+d": "process"}
    for text, kind in kinds.items():
        assert parse_target(text).kind == kind, text
    with socket.socket(socket.AF_UNIX) as s:  # a socket file in the current directory wins over a process name
        s.bind("python3")
        assert parse_target("python3").kind == "path"
    (tmp_path / "plainfile").write_text("")
    assert parse_target("plainfile").kind == "process"  # not a socket: a name
    t = parse_target("[::ffff:127.0.0.1]:9003")
    assert t.hosts == frozenset({"127.0.0.1"}) and t.value == 9003
    for text in ("[fe80::1]%v0:9000", "[fe80::1%v0]:9000"):
        t = parse_target(text)
        assert (t.hosts, t.scope, t.value) == (frozenset({"fe80::1"}), "v0", 9000)
    t = parse_target("127.0.0.1%lo:9999")
    assert (t.hosts, t.scope) == (frozenset({"127.0.0.1"}), "lo")
    for bad in ("", "a:b:c", "what?", "x y", "[1.2.3.4]:1", "1" * 4400, ":" + "1" * 4400):
        with pytest.raises(UsageError):
            parse_target(bad)
    assert escape("a\nb\tc\x7f\u2028\udcff") == "a\\x0ab\\x09c\\x7f\\u2028\\xff"
    assert escape("café @x") == "café @x"
    assert inet_address(10, "::", False) == "*" and inet_address(10, "::", True) == "[::]"
    assert inet_address(10, "fe80::1", True, "v0") == "[fe80::1]%v0"
    assert inet_address(2, "127.0.0.1", None, "lo") == "127.0.0.1%lo"
