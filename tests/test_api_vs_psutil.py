"""The Python API against the references, inside the population's namespace.

* ``sockscope.net_connections(kind)`` must return exactly what
  ``psutil.net_connections(kind)`` returns: same named-tuple fields, same
  values and value types (family/type enums, ``addr`` named tuples or path
  strings, status strings, fd/pid), compared as multisets, for every kind.
* ``sockscope.sockets(...)`` records must agree with ss's rows: netid, state,
  queues, endpoints, inode (``ss -e``'s ``ino:``), UNIX peer inodes, and with
  ``processes=True`` the holders of ``ss -p``.

A small script runs inside the netns (``ip netns exec NAME python -c …``)
and prints JSON.  For psutil it calls psutil, sockscope, psutil again per
kind; if the two psutil answers differ (a TIME-WAIT expired meanwhile) the
whole run is retried.  The same sandwich (ss, script, ss) guards the
``sockets()`` comparisons.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import Harness
from ssparse import Row, parse, parse_users

KINDS = ["inet", "inet4", "inet6", "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix", "all"]

PSUTIL_SCRIPT = r'''
import json, sys
import psutil, sockscope

def canon_addr(a):
    if isinstance(a, tuple):
        return {"kind": "tuple", "fields": list(getattr(a, "_fields", ())), "values": list(a),
                "types": [type(v).__name__ for v in a]}
    return {"kind": type(a).__name__, "value": a}

def canon(c):
    return json.dumps({
        "fields": list(c._fields),
        "fd": c.fd, "fd_type": type(c.fd).__name__,
        "family": [type(c.family).__module__ + "." + type(c.family).__name__, int(c.family)],
        "type": [type(c.type).__module__ + "." + type(c.type).__name__, int(c.type)],
        "laddr": canon_addr(c.laddr), "raddr": canon_addr(c.raddr),
        "status": [isinstance(c.status, str), str(c.status)],
        "pid": c.pid, "pid_type": type(c.pid).__name__,
        "len": len(c),
    }, sort_keys=True)

out = {}
for kind in sys.argv[1:]:
    a = sorted(canon(c) for c in psutil.net_connections(kind))
    try:
        s = sorted(canon(c) for c in sockscope.net_connections(kind))
        err = None
    except Exception as exc:
        s, err = [], f"{type(exc).__name__}: {exc}"
    b = sorted(canon(c) for c in psutil.net_connections(kind))
    out[kind] = {"psutil": a, "psutil_again": b, "sockscope": s, "error": err}
print(json.dumps(out))
'''


def _run_json(pop: Harness, code: str, *args: str) -> Any:
    res = pop.python(code, *args)
    assert res.returncode == 0, f"script failed ({res.returncode}):\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
    return json.loads(res.stdout)


def test_net_connections_matches_psutil(fresh_population: Harness) -> None:
    pop = fresh_population
    for _attempt in range(4):
        data = _run_json(pop, PSUTIL_SCRIPT, *KINDS)
        if all(d["psutil"] == d["psutil_again"] for d in data.values()):
            break
    else:
        pytest.fail("the population moved between two psutil calls 4 times in a row", pytrace=False)
    problems = []
    for kind in KINDS:
        d = data[kind]
        if d["error"]:
            problems.append(f"kind {kind!r}: sockscope.net_connections raised {d['error']}")
            continue
        ref, got = d["psutil"], d["sockscope"]
        assert len(ref) > 0, f"kind {kind!r}: psutil sees nothing: the population is missing"
        if got != ref:
            missing = [x for x in ref if x not in got]
            extra = [x for x in got if x not in ref]
            problems.append(
                f"kind {kind!r}: psutil {len(ref)} entries, sockscope {len(got)}\n"
                + "".join(f"  only psutil:    {x}\n" for x in missing)
                + "".join(f"  only sockscope: {x}\n" for x in extra)
            )
    if problems:
        pytest.fail("net_connections differs from psutil:\n" + "\n".join(problems), pytrace=False)


def test_net_connections_population_visible(fresh_population: Harness) -> None:
    """The psutil reference itself sees the population's owners (else the comparison is weak)."""
    data = _run_json(fresh_population, PSUTIL_SCRIPT, "tcp", "unix")
    pids = {json.loads(x)["pid"] for kind in ("tcp", "unix") for x in data[kind]["psutil"]}
    assert set(fresh_population.pids) <= pids, pids


def test_net_connections_bad_kind_like_psutil(fresh_population: Harness) -> None:
    code = r'''
import json, psutil, sockscope
out = []
for mod in (psutil, sockscope):
    try:
        mod.net_connections("bogus")
        out.append(None)
    except Exception as exc:
        out.append(type(exc).__name__)
print(json.dumps(out))
'''
    assert _run_json(fresh_population, code) == ["ValueError", "ValueError"]


_TWINS_HOLDER = r"""
import socket, sys
socks = []
for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    for _ in range(2):  # two sockets with the same address: equal rows once their owner is out of sight
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 4000))
        if kind == socket.SOCK_STREAM:
            s.listen()
        socks.append(s)
print("READY", flush=True)
sys.stdin.read()
"""


def test_net_connections_ownerless_twins_collapse_like_psutil() -> None:
    """psutil returns a set: rows without an owner that are equal (here two SO_REUSEPORT
    listeners and two UDP sockets on one port, held by a process outside the reader's pid
    namespace) come out once.  sockscope must do the same, and keep rows that only look alike."""
    with _holding(_TWINS_HOLDER) as (ns, _holder):
        out = ns.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", PSUTIL_SCRIPT,
                      "tcp", "udp", "inet"])
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        for kind in ("tcp", "udp", "inet"):
            d = data[kind]
            assert d["error"] is None, d["error"]
            assert d["sockscope"] == d["psutil"], kind
        ports = [json.loads(x)["laddr"]["values"] for x in data["inet"]["psutil"]]
        assert ports == [["127.0.0.1", 4000], ["127.0.0.1", 4000]], ports  # one TCP, one UDP
        assert {json.loads(x)["pid"] for x in data["inet"]["psutil"]} == {None}


@contextlib.contextmanager
def _holding(script: str, *args: str) -> Iterator[tuple[Any, subprocess.Popen[bytes]]]:
    """A private namespace with ``script`` running in it (it prints READY once its sockets are
    made, then holds them until its stdin closes); ended by pid and deleted on the way out."""
    from nsutil import holding

    with holding([sys.executable, "-c", script, *args]) as (ns, holder, line):
        assert line.strip() == "READY"
        yield ns, holder


_SHARED_HOLDER = r"""
import os, socket, sys
d = sys.argv[1]  # the test's own directory (pytest's tmp_path)
keep = []
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM); l.bind(("127.0.0.1", 4100)); l.listen(8)
c = socket.create_connection(("127.0.0.1", 4100)); srv, _ = l.accept()
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::1", 4101))
a, b = socket.socketpair()
x = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); x.bind(os.path.join(d, "trail "))  # psutil: no space
t = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); t.bind(os.path.join(d, "t\tab"))  # two words: ""
y = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); y.bind("\0x y"); y.listen(4)
z = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); z.bind("\0plain"); z.listen(4)
pending = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
for p in pending:
    p.connect("\0plain")  # never accepted: inode 0 in /proc/net/unix, the listener's name
keep += [l, c, srv, u, a, b, x, t, y, z, *pending, os.dup(l.fileno()), os.dup(a.fileno()), os.dup(u.fileno())]
children = []
for n in range(2):  # more holders of every socket, at other fds: psutil names the last pid's first fd
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        for s in (l, a, u):
            os.dup2(s.fileno(), 300 + 10 * n + s.fileno() % 7)
            if n:
                os.close(s.fileno())  # the last child holds them only at the high fds
        os.write(w, b"1"); os.close(w)
        sys.stdin.read()
        os._exit(0)
    os.close(w); os.read(r, 1); os.close(r)
    children.append(pid)
print("READY", flush=True)
sys.stdin.read()
"""


def _alike_in(ns: Any, kinds: list[str], check: str = "", env: dict[str, str] | None = None) -> Any:
    """PSUTIL_SCRIPT (then ``check``) run in ``ns`` for ``kinds`` until psutil gives the same
    twice (up to 4 runs); every kind's sockscope rows asserted equal to psutil's.  The data."""
    for _attempt in range(4):
        out = ns.run([sys.executable, "-c", PSUTIL_SCRIPT + check, *kinds], env=env)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        if all(d["psutil"] == d["psutil_again"] for d in data.values()):
            break
    for kind in kinds:
        d = data[kind]
        assert d["error"] is None, d["error"]
        assert d["sockscope"] == d["psutil"], kind
    return data


@pytest.mark.parametrize("via", ["bpf", "proc"])
def test_net_connections_shared_sockets_like_psutil(tmp_path: Path, via: str) -> None:
    """Sockets held by several processes (forked) at several fds (dup'ed), UNIX names with
    whitespace, connections never accepted: psutil's choice of owner (the last pid's first
    fd; every fd of that pid for UNIX), its path rule and its set, kind by kind; the owners
    from the kernel's iterator, and from the /proc walk (read first, alone, before the dumps)."""
    with _holding(_SHARED_HOLDER, str(tmp_path)) as (ns, holder):
        data = _alike_in(ns, ["tcp", "udp", "udp6", "unix", "inet", "all"], env={"SOCKSCOPE_OWNERS": via})
        unix = [json.loads(x) for x in data["unix"]["psutil"]]
        paths = {r["laddr"]["value"] for r in unix}
        assert any(p.endswith("/trail") for p in paths) and "@plain" in paths, paths
        assert len([r for r in unix if r["laddr"]["value"] == "@plain" and r["pid"] is None]) == 1  # the pending two
        tcp = [json.loads(x) for x in data["tcp"]["psutil"]]
        listener = [r for r in tcp if r["status"][1] == "LISTEN"]
        assert len(listener) == 1 and listener[0]["pid"] not in (None, holder.pid), listener  # a child's
        assert len(unix) > len({(r["laddr"]["value"], r["pid"]) for r in unix})  # some socket at several fds


_UNIX_HOLDER = r"""
import os, socket, sys
d = os.fsencode(sys.argv[1])  # the test's own directory (pytest's tmp_path)
keep = []
def listener(kind, name, pending, accepted=0):
    ls = socket.socket(socket.AF_UNIX, kind); ls.bind(name); ls.listen(16)
    for i in range(pending + accepted):
        c = socket.socket(socket.AF_UNIX, kind); c.connect(name); keep.append(c)
    for _ in range(accepted):
        keep.append(ls.accept()[0])
    keep.append(ls)
listener(socket.SOCK_STREAM, os.path.join(d, b"stream.sock"), 3, 2)
listener(socket.SOCK_SEQPACKET, os.path.join(d, b"seq.sock"), 2)
listener(socket.SOCK_STREAM, os.path.join(d, b"\xff\xfe-not-utf8.sock"), 1)
listener(socket.SOCK_STREAM, b"\0abs\0tract", 2, 1)
listener(socket.SOCK_STREAM, b"\0idle", 0, 1)
listener(socket.SOCK_SEQPACKET, b"\0idle-seq", 0)
dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); dg.bind(os.path.join(d, b"dgram.sock")); keep.append(dg)
for i in range(3):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); c.connect(dg.getsockname()); keep.append(c)
for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
    keep += socket.socketpair(socket.AF_UNIX, kind)
    keep.append(socket.socket(socket.AF_UNIX, kind))  # unbound
keep.append(os.dup(keep[0].fileno()))  # one socket at two fds
print("READY", flush=True)
sys.stdin.read()
"""


def test_net_connections_unix_from_sock_diag_like_psutil(tmp_path: Path) -> None:
    """UNIX sockets read from the UNIX dump where no name has whitespace in it: listeners with
    connections never accepted (psutil lists those from /proc/net/unix, inode 0: one ownerless
    row per listener's type and name), names not UTF-8, abstract names with NULs, socket pairs,
    unbound sockets; the dump is the source actually used."""
    check = "\nfrom sockscope import psutil_api\nassert psutil_api._unix_dump() is not None\n"
    with _holding(_UNIX_HOLDER, str(tmp_path)) as (ns, _holder):
        data = _alike_in(ns, ["unix", "all"], check)
        rows = [json.loads(x) for x in data["unix"]["psutil"]]
        waiting = {r["laddr"]["value"].rsplit("/", 1)[-1] for r in rows if r["pid"] is None}
        assert waiting == {"stream.sock", "seq.sock", "\udcff\udcfe-not-utf8.sock", "@abs@tract"}, waiting
        # SOCKSCOPE_FORCE_PROC: the file's text, read as psutil reads it, gives the same
        check = "\nfrom sockscope import psutil_api\nassert psutil_api._unix_dump() is None\n"
        out = ns.run([sys.executable, "-c", PSUTIL_SCRIPT + check, "unix"], env={"SOCKSCOPE_FORCE_PROC": "1"})
        assert out.returncode == 0, out.stderr
        forced = json.loads(out.stdout)["unix"]
        assert forced["error"] is None and forced["sockscope"] == forced["psutil"] == data["unix"]["psutil"]


_TIME_WAIT_HOLDER = r"""
import socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 4200)); l.listen(64)
l6 = socket.socket(socket.AF_INET6); l6.bind(("::1", 4201)); l6.listen(64)
keep = [l, l6]
for i in range(40):
    host, port, fam = ("127.0.0.1", 4200, socket.AF_INET) if i % 2 else ("::1", 4201, socket.AF_INET6)
    c = socket.socket(fam); c.connect((host, port)); s, _ = (l if i % 2 else l6).accept()
    if i % 4 < 2:
        c.close()  # the client closes first: its end waits in TIME-WAIT
        s.close()
    else:
        keep += [c, s]
print("READY", flush=True)
sys.stdin.read()
"""


def test_net_connections_with_time_wait_like_psutil() -> None:
    """TIME-WAIT sockets among full ones (their shorter messages make the dump's datagrams framed,
    both families in them): the same rows as psutil's, for every TCP kind."""
    with _holding(_TIME_WAIT_HOLDER) as (ns, _holder):
        data = _alike_in(ns, ["tcp", "tcp4", "tcp6", "inet", "all"])
        statuses = [json.loads(x)["status"][1] for x in data["tcp"]["psutil"]]
        assert statuses.count("TIME_WAIT") == 20 and statuses.count("ESTABLISHED") == 40, statuses


# --------------------------------------------------------------------------------------------
# sockets() vs ss

SOCKETS_SCRIPT = r'''
import json, socket, sys
import sockscope
from sockscope import State
specs = json.loads(sys.argv[1])

def scope(r):
    s = getattr(r.local, "scope", None)   # older records carried the scope on the endpoint
    if s is None and getattr(r, "ifindex", 0):
        s = socket.if_indextoname(r.ifindex)
    return s

def view(r):
    return {
        "type": type(r).__name__, "netid": r.netid, "family": int(r.family), "state": r.state.ss_name,
        "recv_q": r.recv_q, "send_q": r.send_q,
        "local_address": r.local.address, "local_port": r.local.port, "local_scope": scope(r),
        "peer_address": r.peer.address, "peer_port": r.peer.port,
        "inode": r.inode, "peer_inode": r.peer_inode, "v6only": r.v6only,
        "owners": [{"name": o.name, "pid": o.pid, "fd": o.fd} for o in r.owners],
    }

out = []
for spec in specs:
    kw = dict(spec["kw"])
    if "states" in kw:
        kw["states"] = [State[n] for n in kw["states"]]
    recs = list(sockscope.sockets(*spec["args"], **kw))
    assert all(isinstance(r, sockscope.Socket) for r in recs), [type(r) for r in recs]
    out.append([view(r) for r in recs])
print(json.dumps(out))
'''

#: (sockets() args, kwargs, the ss options giving the same rows; -e adds ino:, -p users)
SOCKETS_CASES: list[tuple[list[Any], dict[str, Any], str]] = [
    (["tcp"], {}, "-tane"),
    (["udp"], {}, "-uane"),
    ([], {}, "-tuane"),                                   # default kind: inet
    (["inet4"], {}, "-4tuane"),
    (["tcp6"], {}, "-6tane"),
    (["unix"], {}, "-xan"),
    (["tcp"], {"states": ["LISTEN"]}, "-tne state listening"),
    (["inet"], {"states": ["TIME_WAIT"]}, "-tune state time-wait"),
    (["tcp"], {"states": ["CLOSE_WAIT", "FIN_WAIT2"]}, "-tne state close-wait state fin-wait-2"),
    (["tcp"], {"processes": True}, "-tanep"),
    (["unix"], {"processes": True}, "-xanp"),
]
_INO = re.compile(r"\bino:(\d+)")
_UNIX = {"u_str", "u_dgr", "u_seq"}


def _ss_expect(row: Row, default_netid: str | None) -> dict[str, Any]:
    """An ss row in the record's terms."""
    netid = row.netid or default_netid
    out: dict[str, Any] = {"netid": netid, "state": row.state, "recv_q": int(row.recv_q), "send_q": int(row.send_q)}
    if netid in _UNIX:
        out["local"] = ("" if row.local_addr == "*" else row.local_addr, 0, None)
        out["peer"] = ("", 0, None)
        out["inode"] = int(row.local_port)
        out["peer_inode"] = int(row.peer_port)
    else:
        out["local"] = _ss_endpoint(row.local_addr, row.local_port)
        out["peer"] = _ss_endpoint(row.peer_addr, row.peer_port)
        m = _INO.search(row.process)
        out["inode"] = int(m.group(1)) if m else None
    out["owners"] = sorted((n, p, f) for n, p, f in parse_users(row.process))
    return out


def _ss_endpoint(addr: str, port: str) -> tuple[str, int, str | None]:
    scope = None
    if "%" in addr:
        addr, scope = addr.split("%", 1)
    if addr == "*" or addr == "[::]":
        addr = "::"  # ss spells a v6 wildcard "*" (dual-stack) or "[::]" (v6only)
    elif addr.startswith("["):
        addr = addr[1:-1]
    return addr, 0 if port == "*" else int(port), scope


def _record_view(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"netid": d["netid"], "state": d["state"], "recv_q": d["recv_q"], "send_q": d["send_q"],
                           "local": (d["local_address"], d["local_port"], d["local_scope"]),
                           "peer": (d["peer_address"], d["peer_port"], None), "inode": d["inode"]}
    if d["netid"] in _UNIX:
        out["peer_inode"] = d["peer_inode"] or 0
    # Without processes=True a record has no owners, and ss (no -p) shows none either.
    out["owners"] = sorted((o["name"], o["pid"], o["fd"]) for o in d["owners"])
    return out


def _ss_spelling_ok(d: dict[str, Any], row: Row) -> bool:
    """Where the record knows v6only, it must agree with ss's "[::]" (v6only) / "*" spelling."""
    if d.get("v6only") is None or d["family"] != 10 or d["local_address"] != "::":
        return True
    return (row.local_addr.split("%")[0] == "[::]") == bool(d["v6only"])


def test_sockets_match_ss(fresh_population: Harness) -> None:
    sockets_match_ss(fresh_population, SOCKETS_CASES)


def sockets_match_ss(pop: Any, cases: list[tuple[list[Any], dict[str, Any], str]], *, empty_ok: bool = False) -> None:
    """Each case's records (``sockets(*args, **kw)`` in ``pop``'s namespace: its ``python`` and ``ss``
    run there) are ss's rows of its options; ``empty_ok``: a case both show nothing of passes."""
    specs = [{"args": a, "kw": kw} for a, kw, _ in cases]
    for _attempt in range(4):
        before = [pop.ss(shlex.split(o)) for _, _, o in cases]
        res = pop.python(SOCKETS_SCRIPT, json.dumps(specs))
        after = [pop.ss(shlex.split(o)) for _, _, o in cases]
        if all(_stable(b.stdout, a.stdout) for b, a in zip(before, after)):
            break
    else:
        pytest.fail("the population moved between two ss runs 4 times in a row", pytrace=False)
    assert res.returncode == 0 and "Traceback" not in res.stderr, f"sockets() script failed:\n{res.stderr}"
    got_all = json.loads(res.stdout)
    problems = []
    for (args, kw, opts), ss_res, got in zip(cases, before, got_all):
        table = parse(ss_res.stdout)
        default_netid = {"t": "tcp", "u": "udp"}.get(opts.lstrip("-46")[0]) if "Netid" not in table.columns else None
        want = [_ss_expect(r, default_netid) for r in table.rows]
        if empty_ok and not want and not got:
            continue
        assert want, f"ss {opts} shows nothing: the population is missing"
        if kw.get("processes"):
            assert any(w["owners"] for w in want), f"ss {opts} shows no owners"
        if "State" not in table.columns:  # one state shown: the one asked for
            only = {"LISTEN": "LISTEN", "TIME_WAIT": "TIME-WAIT"}[kw["states"][0]]
            want = [dict(w, state=only) for w in want]
        have = [_record_view(d) for d in got]
        label = f"sockets({', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kw.items()])}) vs ss {opts}"
        if have != want:
            lines = [f"{label}: {len(want)} ss rows, {len(have)} records"]
            for i in range(max(len(want), len(have))):
                w = want[i] if i < len(want) else None
                h = have[i] if i < len(have) else None
                if w != h:
                    lines.append(f"  #{i}\n    ss:     {w}\n    record: {h}")
            problems.append("\n".join(lines[:12]))
        bad = [(d, r) for d, r in zip(got, table.rows) if not _ss_spelling_ok(d, r)]
        if bad:
            problems.append(f"{label}: v6only disagrees with ss's spelling: {bad}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def _stable(a: str, b: str) -> bool:
    """Same sockets in both runs (-e timers and cookies aside)."""
    def key(text: str) -> list[tuple[Any, ...]]:
        return [(*r[:8], tuple(parse_users(r.process)), _INO.findall(r.process)) for r in parse(text).rows]
    return key(a) == key(b)


# --------------------------------------------------------------------------------------------
# the procfs setting, threads, /proc/net/unix as text (what psutil's own tests ask)

def _fake_procfs(root: Any, unix_lines: list[bytes]) -> str:
    import os

    os.makedirs(os.path.join(root, "self", "fd"))
    os.makedirs(os.path.join(root, "net"))
    with open(os.path.join(root, "net", "unix"), "wb") as f:
        f.write(b"Num       RefCount Protocol Flags    Type St Inode Path\n" + b"".join(unix_lines))
    return str(root)


def test_procfs_setting_is_honoured(tmp_path: Any) -> None:
    """Everything read from /proc comes from the procfs given: owners and net/unix; a
    directory that is no procfs is an OSError (as psutil raises for its PROCFS_PATH)."""
    import os

    import sockscope
    from sockscope.errors import SockscopeError

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OSError, match="not a procfs") as err:
        sockscope.net_connections(procfs=str(empty))
    assert isinstance(err.value, SockscopeError)
    # names as os.fsdecode gives them (bytes that are not UTF-8 kept as surrogates); a "\r"
    # or a Unicode line separator inside a path does not cut the line
    fake = _fake_procfs(tmp_path / "fake", [
        b"0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/a\r\xe2\x80\xa8b.sock\n",
        b"0000000000000000: 00000002 00000000 00000000 0002 07 4343 @abstract\xff\n",
        b"0000000000000000: 00000002 00000000 00000000 0001 03 4444\n",
    ])
    rows = sockscope.net_connections("unix", procfs=fake)
    # psutil's rule: a path with whitespace in it (here "\r", U+2028) is given as ""; equal rows collapse
    assert sorted((r.laddr, r.pid, r.fd, r.status) for r in rows) == [
        ("", None, -1, "NONE"), ("@abstract\udcff", None, -1, "NONE")]
    from sockscope import procnet

    socks = procnet.read_unix(~0, proc=fake, unaccepted=True)
    assert [(s.inode, s.local.address) for s in socks] == [
        (4242, "/run/a\r\u2028b.sock"), (4343, "@abstract\udcff"), (4444, "")]
    # the real one: our own socket pair is there, with its owner
    import socket

    a, b = socket.socketpair()
    try:
        mine = [r for r in sockscope.net_connections("unix", procfs="/proc") if r.pid == os.getpid()]
        assert {r.fd for r in mine} >= {a.fileno(), b.fileno()}
    finally:
        a.close()
        b.close()


def test_psutil_procfs_path_when_dropped_in(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """psutil.PROCFS_PATH is followed only where sockscope's function stands in for psutil's."""
    import psutil

    import sockscope

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(empty))
    assert isinstance(sockscope.net_connections("tcp"), list)  # not dropped in: psutil's setting is psutil's
    monkeypatch.setattr(psutil, "net_connections", sockscope.net_connections)
    with pytest.raises(OSError, match="not a procfs"):
        psutil.net_connections()


@pytest.mark.parametrize("kind", ["tcp", "unix", "all"])
@pytest.mark.parametrize("via", ["bpf", "proc"])
def test_no_thread_left_after_the_call(kind: str, via: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import sockscope

    monkeypatch.setenv("SOCKSCOPE_OWNERS", via)
    before = sorted(os.listdir("/proc/self/task"))
    for _ in range(30):  # (a helper's last steps after its dump raced the check about one call in 150)
        sockscope.net_connections(kind)
        assert sorted(os.listdir("/proc/self/task")) == before


@pytest.mark.parametrize(("tasks", "ahead"), [(120, True), (5000, False)])
def test_helpers_receive_only_beside_a_short_owner_walk(tasks: int, ahead: bool,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The dumps are received by helper threads where the host runs few tasks (the owners' walk beside
    them is short); beside a long walk (many tasks) a helper would take its core: the calling thread
    receives them."""
    from sockscope import psutil_api

    seen: list[Any] = []
    real = psutil_api.batches

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("ahead"))
        return real(*args, **kwargs)

    monkeypatch.setattr(psutil_api, "_tasks", lambda proc: tasks)
    monkeypatch.setattr(psutil_api, "batches", spy)
    psutil_api.net_connections("inet")
    assert seen == [ahead]


def test_tasks_counted_from_loadavg(tmp_path: Path) -> None:
    from sockscope import psutil_api

    (tmp_path / "loadavg").write_text("0.24 0.58 0.67 1/1084 26767\n")
    assert psutil_api._tasks(str(tmp_path)) == 1084
    (tmp_path / "loadavg").write_text("not a loadavg\n")
    assert psutil_api._tasks(str(tmp_path)) == 1 << 30  # (unreadable: many, no helper)
    assert psutil_api._tasks(str(tmp_path / "missing")) == 1 << 30
