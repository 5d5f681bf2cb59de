"""``--json`` and ``--csv`` are written a block of records at a time, column by column
(:mod:`sockscope.render.machine`).  Their text must be exactly what one ``json.dumps`` of each
record's ``to_dict`` (and one CSV row of it) gives: the per-record writers ``-E`` uses are the
reference.  Records of every family from the real kernel (the shared population, with every
detail asked for), and records hypothesis makes: every field of every kind the columns tell
apart (ints, None, bools, strings that need escaping, nested values, ints where a bool belongs)."""

from __future__ import annotations

import csv
import io
import json
import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockscope.kernel.layout import MPTCP_SUBFLOW_ATTRS, TLS_INFO_FIELDS
from sockscope.kernel.tcpinfo import TcpInfo, from_fields
from sockscope.records import STATES, Endpoint, Owner, SkMem, Socket, make_socket
from sockscope.render import machine


def reference_json(socks: list[Socket]) -> str:
    """The array as it was written before the columns: a json.dumps of each record's to_dict."""
    rows = [json.dumps(s.to_dict(), separators=(",", ":")) for s in socks]
    return "[\n" + ",\n".join(rows) + "\n]\n" if rows else "[]\n"


def reference_csv(socks: list[Socket]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(machine.FIELDS)
    for s in socks:
        w.writerow(machine._csv_row(s))
    return out.getvalue()


def written(write: Any, socks: list[Socket]) -> str:
    out = io.StringIO()
    write(iter(socks), out)
    return out.getvalue()


def assert_same(socks: list[Socket]) -> None:
    got, want = written(machine.write_json, socks), reference_json(socks)
    assert got == want
    assert json.loads(got) == [s.to_dict() for s in socks]
    assert written(machine.write_csv, socks) == reference_csv(socks)


# --- the real kernel ---------------------------------------------------------------------------------

KERNEL = r"""
import io, json, sys
from sockscope.query import Query, run, EXT_INFO, EXT_MEM, EXT_TOS
from sockscope.filter.states import EVERY_STATE
from sockscope.render import machine
q = Query(tables=frozenset(("tcp", "udp", "raw", "u_str", "u_dgr", "u_seq", "nl", "p_raw", "p_dgr")),
          families=frozenset((1, 2, 10, 16, 17)), states=EVERY_STATE, details=True,
          ext=EXT_INFO | EXT_MEM | EXT_TOS)
socks = list(run(q))
machine.BLOCK = int(sys.argv[1])
out = io.StringIO(); machine.write_json(iter(socks), out)
rows = [json.dumps(s.to_dict(), separators=(",", ":")) for s in socks]
ref = "[\n" + ",\n".join(rows) + "\n]\n"
out2 = io.StringIO(); machine.write_csv(iter(socks), out2)
import csv
out3 = io.StringIO(); w = csv.writer(out3, lineterminator="\n"); w.writerow(machine.FIELDS)
for s in socks:
    w.writerow(machine._csv_row(s))
kinds = sorted({s.netid for s in socks})
print(json.dumps({"n": len(socks), "json": out.getvalue() == ref, "csv": out2.getvalue() == out3.getvalue(),
                  "kinds": kinds, "tcp_info": sum(s.tcp_info is not None for s in socks),
                  "skmem": sum(s.skmem is not None for s in socks)}))
"""


@pytest.mark.parametrize("block", [1024, 7])
def test_every_family_from_the_kernel_is_written_as_to_dict(population: Any, block: int) -> None:
    """Every table of the shared population (TCP in many states over both families, UDP, UNIX of
    every type, netlink, packet), with tcp_info, skmem and the other details; in one block and
    in blocks of 7 (the joins between blocks)."""
    population.ensure_timewait()
    r = population.python(KERNEL, str(block))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["json"] and got["csv"], got
    assert {"tcp", "udp", "u_str", "u_dgr", "nl"} <= set(got["kinds"]), got
    assert got["tcp_info"] > 5 and got["skmem"] > 5 and got["n"] > 40, got


# --- records hypothesis makes ------------------------------------------------------------------------

ints = st.integers(min_value=0, max_value=(1 << 64) - 1)
small = st.integers(min_value=0, max_value=255)
texts = st.text(max_size=12)  # any code point: quotes, backslashes, controls, non-ASCII, surrogates
NFIELDS = len(TcpInfo._fields)


@st.composite
def tcp_infos(draw: Any) -> TcpInfo:
    values = draw(st.lists(st.integers(min_value=0, max_value=(1 << 32) - 1), min_size=NFIELDS - 3,
                           max_size=NFIELDS - 3))
    info = from_fields(tuple(values), draw(st.integers(min_value=0, max_value=300)))
    odd = draw(st.sampled_from(["none", "none", "none", "int-flag", "bool-field"]))
    if odd == "int-flag":  # an int where from_fields puts its bool: written as json.dumps writes it
        info = info._replace(delivery_rate_app_limited=1)
    elif odd == "bool-field":
        info = info._replace(rto=True)
    return info


def _maybe(strategy: Any) -> Any:
    return st.one_of(st.none(), strategy)  # (an optional field: None or a value)


def tls() -> Any:
    return _maybe(st.tuples(*[_maybe(small) for _ in TLS_INFO_FIELDS]))


def subflow() -> Any:
    top = max(MPTCP_SUBFLOW_ATTRS) + 1
    return _maybe(st.tuples(*[_maybe(ints) for _ in range(top)]))


def rings() -> Any:
    ring = st.tuples(*[small for _ in range(7)])
    return st.tuples(_maybe(ring), _maybe(ring), _maybe(ints))


# Each field's strategy is made once, here: a strategy made anew at every draw is validated anew,
# which was most of this test's time (300 examples of up to 12 records: 19.5 s alone, now 8.5 s).
_NETIDS = st.sampled_from(["tcp", "udp", "u_str", "nl", "p_raw"]) | texts
_FAMILIES = st.sampled_from([1, 2, 10, 16, 17, 40, socket.AF_INET])
_STATES = st.sampled_from(STATES)
_ENDPOINTS = st.builds(Endpoint, texts, ints)
_MAYBE_INT, _MAYBE_SMALL, _MAYBE_TEXT, _MAYBE_BOOL = _maybe(ints), _maybe(small), _maybe(texts), _maybe(st.booleans())
_OWNERS = st.lists(st.builds(Owner, ints, ints, texts, _MAYBE_INT), max_size=2).map(tuple)
_TCP_INFOS = _maybe(tcp_infos())
_SKMEMS = _maybe(st.builds(SkMem, *[ints] * 7, _MAYBE_INT, _MAYBE_INT))
_FOUR_INTS = _maybe(st.tuples(ints, ints, ints, ints))
_FIVE = _maybe(st.tuples(small, small, ints, ints, ints))
_FOURTEEN_INTS = _maybe(st.tuples(*[ints] * 14))
_SOCKADDRS = _maybe(st.lists(st.sampled_from([(2, 4), (10, 16)]).flatmap(lambda fam: st.tuples(
    st.just(fam[0]), small, st.binary(min_size=fam[1], max_size=fam[1]), st.binary(max_size=8))),
    max_size=2).map(tuple))
_ULP = _maybe(st.tuples(texts, tls(), subflow()))
_RINGS = _maybe(rings())


@st.composite
def records(draw: Any) -> Socket:
    return make_socket(
        draw(_NETIDS), draw(_FAMILIES), draw(_STATES),
        draw(ints), draw(ints),
        draw(_ENDPOINTS), draw(_ENDPOINTS),
        draw(ints),
        draw(_MAYBE_INT), draw(_MAYBE_INT), draw(ints), draw(_MAYBE_INT),
        draw(_MAYBE_BOOL), draw(_MAYBE_SMALL),
        draw(_OWNERS),
        draw(_MAYBE_TEXT), draw(_MAYBE_SMALL), draw(small), draw(ints), draw(small),
        draw(_MAYBE_INT), draw(_MAYBE_INT), draw(_MAYBE_TEXT),
        draw(_TCP_INFOS),
        draw(_SKMEMS),
        None, None, None,  # unix_vfs, unix_pending, groups: not in to_dict
        draw(_FOUR_INTS),
        draw(_FIVE),
        None, None, None, None, None, None,  # packet_info, tos, tclass, class_id, sockopt, bpf
        draw(_FOURTEEN_INTS),
        draw(_SOCKADDRS),
        draw(_ULP),
        draw(_RINGS),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), max_size=12), st.integers(min_value=1, max_value=5))
def test_any_records_are_written_as_to_dict(socks: list[Socket], block: int) -> None:
    old = machine.BLOCK
    machine.BLOCK = block
    try:
        assert_same(socks)
    finally:
        machine.BLOCK = old


@settings(max_examples=60, deadline=None)
@given(records())
def test_a_column_of_one_record_repeated_is_written_as_to_dict(s: Socket) -> None:
    """Every column then has one kind of value in every row (the columns' fast cases)."""
    assert_same([s] * 5)


def test_no_records() -> None:
    assert written(machine.write_json, []) == "[]\n"
    assert written(machine.write_csv, []) == ",".join(machine.FIELDS) + "\n"


def test_a_bounded_table_of_texts_keeps_what_it_knew() -> None:
    """The per-value text tables are cleared when full (ever new values: paths, addresses); what
    they knew to begin with (None's "null") stays."""
    from sockscope._addr import Texts

    texts = Texts(str.upper, {None: "null"}, bound=3)
    assert [texts[k] for k in ("a", "b", "c", "d", None)] == ["A", "B", "C", "D", "null"]
    assert len(texts) <= 3
