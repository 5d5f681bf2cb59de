"""``sockscope top``: snapshot mode, the model, and the live screen driven through tmux.

Everything runs in a private network namespace (``sockscope-t-<hex>``) with
processes this module starts:

* ``top-server`` listens on 127.0.0.1:7300 and drains what it accepts;
* ``top-client`` connects, sends an 8 MiB burst, then a steady 256 KiB/s
  (32 KiB every 1/8 s), so the receive/send rates have a known size that is
  far from the byte totals.

The interactive tests run ``sockscope top`` in a real terminal: a tmux server
on a private socket (``tmux -S DIR/sockscope-test-<hex>``, killed at the end),
keys sent with ``send-keys``, the screen read with ``capture-pane``.
Teardown (always): the scene's processes by pid, the tmux server, the netns.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nsutil import AsUser, Netns, ScriptScene  # noqa: E402

SOCKSCOPE = [sys.executable, "-m", "sockscope"]
PORT = 7300
RATE = 256 * 1024

SCENE = r'''
import json, os, socket, sys, threading, time

role = sys.argv[1]
if role == "server":
    comm("top-server")
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 7300))
    lst.listen(8)
    say("READY", pid=os.getpid(), listener=ino(lst))
    a, _ = lst.accept()
    say("ACCEPTED", inode=ino(a), port=a.getpeername()[1])
    def drain():
        while a.recv(1 << 16):
            pass
    threading.Thread(target=drain, daemon=True).start()
    hold()
elif role == "client":
    comm("top-client")
    c = socket.create_connection(("127.0.0.1", 7300))
    c.sendall(b"x" * (8 << 20))
    say("READY", pid=os.getpid(), inode=ino(c), port=c.getsockname()[1])
    def pump():
        chunk = b"y" * (32 << 10)
        t = time.monotonic()
        while True:
            c.sendall(chunk)
            t += 0.125
            time.sleep(max(0.0, t - time.monotonic()))
    threading.Thread(target=pump, daemon=True).start()
    hold()
elif role == "names":  # UNIX names with a newline and with a byte that is not UTF-8
    comm("top-names")
    tmp = os.fsencode(sys.argv[2])
    held = []
    for name in (b"/odd\nname.sock", b"/raw-\xff.sock"):
        u = socket.socket(socket.AF_UNIX)
        u.bind(tmp + name)
        u.listen(4)
        held.append(u)
    say("READY", pid=os.getpid(), newline=ino(held[0]), raw=ino(held[1]))
    hold()
'''


class Scene(ScriptScene):
    """The processes of the scene; ``top(argv)`` runs ``sockscope top`` in the netns."""

    def __init__(self) -> None:
        super().__init__(SCENE, "sockscope-top-")

    def top(self, *argv: str, user: AsUser | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        if user is not None:  # as another user, from a copy that user can read
            return self.netns.run(user.argv("top", *argv), timeout=60, env={**(env or {}), **user.env},
                                  cwd=user.tmp)
        return self.netns.run([*SOCKSCOPE, "top", *argv], timeout=60, env=env)

    def python(self, code: str) -> Any:
        r = self.netns.run([sys.executable, "-c", code], timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    if os.geteuid() != 0:
        pytest.fail("these tests need root (ip netns add)", pytrace=False)
    sc = Scene()
    try:
        sc.start("server")
        sc.start("client")
        sc.expect("server", "ACCEPTED")
        sc.start("names", sc.tmp)
        yield sc
    finally:
        sc.close()
    assert not sc.netns.exists()
    assert not os.path.exists(sc.tmp)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def bytes_of(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)([KMG]?)", text)
    assert m, f"not a rate: {text!r}"
    return float(m.group(1)) * _UNITS[m.group(2)]


def rows_of(out: str) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """(header lines, column names, rows as {column: cell}) of a snapshot."""
    head, _, table = out.partition("\n\n")
    lines = table.splitlines()
    cols = lines[0].split()
    rows = []
    for ln in lines[1:]:
        cells = ln.split()
        if len(cells) == len(cols) - 1 and cols[-1] == "Process":
            cells.append("")  # no visible owner
        assert len(cells) == len(cols), ln
        rows.append(dict(zip(cols, cells)))
    return head.splitlines(), cols, rows


# --------------------------------------------------------------------------
# snapshot mode


def test_snapshot_content_and_rates(scene: Scene) -> None:
    srv, cli = scene.info["server"], scene.info["client"]
    r = scene.top("-t")  # stdout is a pipe: one snapshot, two samples 1 s apart
    assert r.returncode == 0, r.stderr
    head, cols, rows = rows_of(r.stdout)
    assert re.fullmatch(r"sockscope top  \d\d:\d\d:\d\d  every 1s  sockets 3  opened 0  closed 0", head[0])
    assert head[1] == "ESTAB 2  LISTEN 1"
    assert head[2] == "view sockets  sort Rx/s desc  ? help"
    # one table (-t): no Net column, like ss
    assert cols == ["State", "Recv-Q", "Send-Q", "Local", "Peer", "Rx/s", "Tx/s", "Process"]
    srv_end, cli_end, lst = rows  # sorted by receive rate: the receiving end first
    assert (srv_end["State"], srv_end["Local"], srv_end["Peer"]) == \
        ("ESTAB", f"127.0.0.1:{PORT}", f"127.0.0.1:{cli['port']}")
    assert srv_end["Process"] == f"top-server/{srv['pid']}"
    assert (cli_end["State"], cli_end["Local"], cli_end["Peer"]) == \
        ("ESTAB", f"127.0.0.1:{cli['port']}", f"127.0.0.1:{PORT}")
    assert cli_end["Process"] == f"top-client/{cli['pid']}"
    assert (lst["State"], lst["Local"], lst["Peer"], lst["Send-Q"]) == ("LISTEN", f"127.0.0.1:{PORT}", "0.0.0.0:*", "8")
    assert lst["Process"] == f"top-server/{srv['pid']}"
    # rates: ~256 KiB/s on both ends (8 MiB+ already moved: these are not totals)
    assert RATE / 2 <= bytes_of(srv_end["Rx/s"]) <= RATE * 2, srv_end
    assert bytes_of(srv_end["Tx/s"]) == 0
    assert bytes_of(cli_end["Rx/s"]) == 0
    assert RATE / 2 <= bytes_of(cli_end["Tx/s"]) <= RATE * 2, cli_end
    assert (lst["Rx/s"], lst["Tx/s"]) == ("0", "0")


def test_snapshot_once_processes_view(scene: Scene) -> None:
    srv, cli = scene.info["server"], scene.info["client"]
    r = scene.top("--once", "-t", "-P", "-d", "0.5")
    assert r.returncode == 0, r.stderr
    head, cols, rows = rows_of(r.stdout)
    assert head[2] == "view processes  sort Rx/s desc  ? help"
    assert cols == ["PID", "Process", "Socks", "Estab", "Listen", "Recv-Q", "Send-Q", "Rx/s", "Tx/s", "New", "Gone"]
    assert [row["PID"] for row in rows] == [str(srv["pid"]), str(cli["pid"])]  # sorted by Rx/s
    s, c = rows
    assert [s[k] for k in ("Process", "Socks", "Estab", "Listen", "Send-Q")] == ["top-server", "2", "1", "1", "8"]
    assert [c[k] for k in ("Process", "Socks", "Estab", "Listen")] == ["top-client", "1", "1", "0"]
    assert RATE / 2 <= bytes_of(s["Rx/s"]) <= RATE * 2
    assert RATE / 2 <= bytes_of(c["Tx/s"]) <= RATE * 2


def test_snapshot_filters_and_sort(scene: Scene) -> None:
    cli = scene.info["client"]
    r = scene.top("--once", "-d", "0", "-t", "state", "listening")
    assert r.returncode == 0, r.stderr
    head, _cols, rows = rows_of(r.stdout)
    assert "filter 'state listening'" in head[2]
    assert [row["State"] for row in rows] == ["LISTEN"]
    # an ss filter expression
    r = scene.top("--once", "-d", "0", "-t", "sport", "=", f":{PORT}")
    assert r.returncode == 0, r.stderr
    head, _cols, rows = rows_of(r.stdout)
    assert f"filter 'sport = :{PORT}'" in head[2] and "(text)" not in head[2]
    assert sorted(row["State"] for row in rows) == ["ESTAB", "LISTEN"]
    assert {row["Local"] for row in rows} == {f"127.0.0.1:{PORT}"}
    # a word that is not a filter expression matches the row text
    r = scene.top("--once", "-d", "0", "-t", "top-client")
    _head, _cols, rows = rows_of(r.stdout)
    assert [row["Process"] for row in rows] == [f"top-client/{cli['pid']}"]
    # sort by local address, ascending; TCP and UDP: the Net column is back
    r = scene.top("--once", "-d", "0", "-s", "local")
    _head, cols, rows = rows_of(r.stdout)
    assert cols[0] == "Net" and {row["Net"] for row in rows} == {"tcp"}
    ports = [int(row["Local"].rsplit(":", 1)[1]) for row in rows]
    assert ports == sorted(ports) and len(ports) == 3  # by address, then port number
    assert scene.top("--once", "-s", "nope").returncode == 255
    for delay in (["-d", "-1"], ["--delay", "-0.5"], ["-d=-1"], ["--delay=-3"]):  # (-1 is no option: the range's error)
        r = scene.top("--once", *delay)
        assert r.returncode == 255 and r.stderr == "sockscope: top: -d must be between 0 and 3600 seconds\n", (delay, r)
    r = scene.top("--once", "-d", "0", "state", "listen")
    assert r.returncode == 255 and r.stderr == "sockscope: wrong state name: listen\n"


def test_snapshot_without_root(scene: Scene, nobody: AsUser) -> None:
    r = scene.top("--once", "-d", "0.5", "-t", user=nobody)
    assert r.returncode == 0, r.stderr
    head, _cols, rows = rows_of(r.stdout)
    assert "owners partial: run as root" in head[2]
    assert len(rows) == 3 and all(row["Process"] == "" for row in rows)  # the sockets, no owners
    assert all(RATE / 2 <= bytes_of(row["Rx/s"]) <= RATE * 2 for row in rows if row["Local"] == f"127.0.0.1:{PORT}"
               and row["State"] == "ESTAB")
    assert "could not be read (run as root)" in r.stderr


def test_snapshot_escapes_unix_names(scene: Scene) -> None:
    """A newline in a UNIX path does not cut its row; a byte that is not UTF-8
    is escaped, also with an ASCII-only output (no UnicodeEncodeError)."""
    names = scene.info["names"]
    r = scene.top("--once", "-d", "0", "-x", "top-names", env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and r.stdout.isascii()
    head, table = r.stdout.split("\n\n")
    lines = table.splitlines()
    assert lines[0].split() == ["Net", "State", "Recv-Q", "Send-Q", "Local", "Peer", "Rx/s", "Tx/s", "Process"]
    rows = sorted(ln.split() for ln in lines[1:])
    pid = names["pid"]
    assert rows == [
        ["u_str", "LISTEN", "0", "4", f"{scene.tmp}/odd\\x0aname.sock", str(names["newline"]), "*", "0", "-", "-",
         f"top-names/{pid}"],
        ["u_str", "LISTEN", "0", "4", f"{scene.tmp}/raw-\\xff.sock", str(names["raw"]), "*", "0", "-", "-",
         f"top-names/{pid}"],
    ]


def test_snapshot_netns_options(scene: Scene) -> None:
    """-N and --all-netns (a Netns column), run from outside the scene's namespace."""
    srv = scene.info["server"]
    top = [*SOCKSCOPE, "top", "--once", "-d", "0", "-t"]
    r = subprocess.run([*top, "-N", scene.netns.name], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    _head, _cols, rows = rows_of(r.stdout)
    assert sorted((row["State"], row["Local"]) for row in rows)[1:] == \
        [("ESTAB", f"127.0.0.1:{PORT}"), ("LISTEN", f"127.0.0.1:{PORT}")]
    # every namespace: this one's rows (picked by the text filter) carry its name
    r = subprocess.run([*top, "--all-netns", scene.netns.name], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    _head, cols, rows = rows_of(r.stdout)
    assert cols[-2:] == ["Process", "Netns"]
    assert len(rows) == 3 and {row["Netns"] for row in rows} == {scene.netns.name}
    assert f"top-server/{srv['pid']}" in {row["Process"] for row in rows}
    r = subprocess.run([*top, "-N", "sockscope-no-such-netns"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no-such-netns" in r.stderr


def test_usage_errors_exit_255(scene: Scene) -> None:
    for argv in (("--bogus",), ("-N", "x", "--all-netns"), ("-d", "x")):
        r = scene.top("--once", *argv)
        assert r.returncode == 255 and r.stderr.count("\n") == 1, (argv, r.stderr)


# --------------------------------------------------------------------------
# the model and the incremental owner map, against the real kernel

MODEL_CODE = r'''
import json, os, socket, subprocess, sys, time
from sockscope.query import Query, SS_ALL
from sockscope.top.model import Model
from sockscope.top.owners import OwnerCache

def ino(s):
    return os.fstat(s.fileno()).st_ino

q = Query(frozenset({"tcp", "udp"}), frozenset({2, 10}), SS_ALL | (1 << 12))
owners = OwnerCache(sweep_every=0.0)
m = Model(q, owners=owners)
lst = socket.socket(); lst.bind(("127.0.0.1", 7301)); lst.listen(8)
old = socket.create_connection(("127.0.0.1", 7301)); old_srv, _ = lst.accept()
gone_fd = old.fileno()
s1 = m.sample()
# between the samples: one connection closes, one opens (fd numbers reused: same
# fd count for this process), and a new process starts holding a UDP socket
old.close(); old_srv.close()
new = socket.create_connection(("127.0.0.1", 7301)); new_srv, _ = lst.accept()
child = subprocess.Popen([sys.executable, "-c",
    "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 7302)); "
    "print(__import__('os').fstat(s.fileno()).st_ino, flush=True); sys.stdin.read()"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
child_ino = int(child.stdout.readline())
time.sleep(0.2)
s2 = m.sample()
# a socket whose fd number was reused with no change in the fd count: found by the sweep
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 7303))
u_fd = u.fileno(); u.close()
u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u2.bind(("127.0.0.1", 7304))
s3 = m.sample()
u2_ino, u2_fd = ino(u2), u2.fileno()
u2.close()
child.stdin.close(); child.wait()
s4 = m.sample()
def rows(s):
    return {str(r.sock.inode): {"holders": [list(h) for h in r.holders], "new": r.new,
                                "state": r.sock.state.ss_name} for r in s.rows if r.sock.inode}
print(json.dumps({
    "me": os.getpid(), "child": child.pid, "child_ino": child_ino,
    "new": ino(new), "new_fd": new.fileno(), "new_srv": ino(new_srv), "new_srv_fd": new_srv.fileno(),
    "gone_fd": gone_fd, "u2": u2_ino, "u2_fd": u2_fd,
    "s1": {"opened": s1.opened, "closed": s1.closed, "first": s1.first, "totals": s1.totals},
    "s2": {"opened": s2.opened, "closed": s2.closed, "totals": s2.totals, "rows": rows(s2),
           "closed_owners": {str(k): v for k, v in s2.closed_owners.items()}},
    "s3": {"opened": s3.opened, "closed": s3.closed, "rows": rows(s3)},
    "s4": {"opened": s4.opened, "closed": s4.closed},
    "u_fd": u_fd, "stats": owners.stats,
}))
'''


@pytest.fixture
def netns() -> Iterator[Netns]:
    """A netns of its own (the model test leaves TIME-WAIT sockets behind for 60 s)."""
    ns = Netns()
    try:
        yield ns
    finally:
        ns.delete()
    assert not ns.exists()


@pytest.mark.parametrize("via", ["bpf", "proc"])
def test_model_opened_closed_and_new_owners(netns: Netns, via: str) -> None:
    """The same scene with the owners from the kernel's iterator and from the incremental /proc walk."""
    r = netns.run([sys.executable, "-c", MODEL_CODE], env={"SOCKSCOPE_OWNERS": via}, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout.strip().splitlines()[-1])
    me, child = d["me"], d["child"]
    assert d["s1"]["first"] is True and d["s1"]["opened"] == 0 and d["s1"]["closed"] == 0
    # s2: the new pair and the child's UDP socket opened; of the old pair the
    # server end closed, while the client end (which closed first) is now in
    # TIME-WAIT: the kernel keeps its cookie, so it is the same connection
    s2 = d["s2"]
    assert s2["closed"] == 1, s2
    assert s2["opened"] == 3, s2
    assert s2["closed_owners"] == {str(me): 1}
    assert s2["totals"] == {"ESTAB": 2, "TIME-WAIT": 1, "LISTEN": 1, "UNCONN": 1}
    rows = s2["rows"]
    assert rows[str(d["new"])] == {"holders": [[me, d["new_fd"]]], "new": True, "state": "ESTAB"}
    assert rows[str(d["new_srv"])] == {"holders": [[me, d["new_srv_fd"]]], "new": True, "state": "ESTAB"}
    assert d["new_fd"] == d["gone_fd"]  # the fd number was reused
    assert [h[0] for h in rows[str(d["child_ino"])]["holders"]] == [child]  # a new process
    # s3: the reused fd number of a closed UDP socket, same fd count: still found
    assert d["u2_fd"] == d["u_fd"]
    assert d["s3"]["rows"][str(d["u2"])]["holders"] == [[me, d["u2_fd"]]]
    assert d["s3"]["opened"] == 1
    # s4: the UDP socket and the child's are gone
    assert d["s4"]["closed"] == 2
    if via == "proc":  # never a second full scan: only new inodes were looked up
        assert d["stats"]["full"] == 1 and d["stats"]["kernel"] == 0
    else:  # the kernel asked on every sample
        assert d["stats"]["kernel"] == 4 and d["stats"]["full"] == 0


# --------------------------------------------------------------------------
# the live screen, through tmux


class Tmux:
    """A tmux server on a private socket with one 80x24 pane running sh."""

    def __init__(self, width: int = 80, height: int = 24) -> None:
        import tempfile

        self.name = f"sockscope-test-{secrets.token_hex(4)}"
        self.started = False
        # the socket in a directory of its own (tmux's default, /tmp/tmux-UID, would be left behind)
        self.dir = tempfile.mkdtemp(prefix="sockscope-tmux-")
        self.socket_path = os.path.join(self.dir, self.name)
        env = dict(os.environ, PS1="$ ", TERM="xterm")
        try:
            subprocess.run(["tmux", "-S", self.socket_path, "-f", "/dev/null", "new-session", "-d",
                            "-x", str(width), "-y", str(height), "sh"], check=True, env=env)
        except BaseException:
            os.rmdir(self.dir)
            raise
        self.started = True

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket_path, *args], check=True, capture_output=True,
                              text=True).stdout

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-l", text)

    def screen(self) -> list[str]:
        return self.tmux("capture-pane", "-p").split("\n")[:-1]

    def wait(self, pred: Callable[[list[str]], bool], timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if pred(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError("screen never matched:\n" + "\n".join(s))
            time.sleep(0.1)

    def wait_text(self, text: str, timeout: float = 20.0) -> list[str]:
        return self.wait(lambda s: any(text in line for line in s), timeout)

    def pane_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "#{pane_pid}").strip())

    def kill(self) -> None:
        """End our tmux server (only ours: its private socket) and remove the socket and its directory."""
        if self.started:
            subprocess.run(["tmux", "-S", self.socket_path, "kill-server"], capture_output=True)
            self.started = False
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
            os.rmdir(self.dir)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux()
    try:
        yield t
    finally:
        t.kill()
    r = subprocess.run(["tmux", "-S", t.socket_path, "list-sessions"], capture_output=True)
    assert r.returncode != 0, "tmux server still running"
    assert not os.path.exists(t.dir)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def _header(line: str) -> bool:
    """Whether ``line`` is top's first line ("sockscope top  12:00:00  every 0.5s …"), not the
    command typed to start it (which a long path to the interpreter wraps onto a line of its own)."""
    return re.match(r"sockscope top  \S+  every ", line) is not None


def _start_top(scene: Scene, t: Tmux, args: str = "") -> None:
    cmd = f"ip netns exec {scene.netns.name} {sys.executable} -m sockscope top -d 0.5 -t {args}; echo EXITED-$?"
    t.type(cmd)
    t.send("Enter")
    t.wait(lambda s: _header(s[0]) and "rows" in s[-1])


def _stty_sane(t: Tmux) -> None:
    """The terminal is in cooked mode again: icanon and echo on (curses turns both off)."""
    t.type("echo STTY$(stty -a | tr ' ;' '\\n\\n' | grep -x -c -e icanon -e echo)-"
           "$(stty -a | tr ' ;' '\\n\\n' | grep -x -c -e -icanon -e -echo)END")
    t.send("Enter")
    s = t.wait(lambda s: any(re.fullmatch(r"STTY\d+-\d+END", line.strip()) for line in s))
    assert "STTY2-0END" in [line.strip() for line in s], s


def test_interactive_screen_keys_and_quit(scene: Scene, tmux: Tmux) -> None:
    srv, cli = scene.info["server"], scene.info["client"]
    _start_top(scene, tmux)
    s = tmux.screen()
    assert len(s) == 24 and all(len(line) <= 80 for line in s)
    assert s[1] == "ESTAB 2  LISTEN 1"
    assert s[2].startswith("view sockets  sort Rx/s desc")
    assert s[3].split() == ["State", "Recv-Q", "Send-Q", "Local", "Peer", "Rx/s", "Tx/s", "Process"]
    body = [line.split() for line in s[4:7]]
    assert {row[7] for row in body} == {f"top-server/{srv['pid']}", f"top-client/{cli['pid']}"}
    assert s[-1].strip() == "rows 1-3 of 3"
    # rates show once two ticks are in: the receiving end on top
    s = tmux.wait(lambda s: s[4].split()[5] not in ("-", "0"))
    assert s[4].split()[3] == f"127.0.0.1:{PORT}"
    assert RATE / 2 <= bytes_of(s[4].split()[5]) <= RATE * 2

    tmux.send("?")
    tmux.wait_text("sockscope top: keys")
    tmux.send("x")
    tmux.wait(lambda s: _header(s[0]) and "rows" in s[-1])

    tmux.send("Tab")
    # (a capture may come while curses is still redrawing: the view's line first, the old rows
    # below it; the screen is read again until its rows are the processes view's too)
    s = tmux.wait(lambda s: s[2].startswith("view processes")
                  and not any(line.startswith(("ESTAB", "LISTEN")) for line in s[4:7]))
    assert s[3].split()[:3] == ["PID", "Process", "Socks"]
    assert {line.split()[1] for line in s[4:6]} == {"top-server", "top-client"}
    tmux.send("Tab")
    tmux.wait(lambda s: s[2].startswith("view sockets"))

    tmux.send(">")
    tmux.wait(lambda s: s[2].startswith("view sockets  sort Tx/s desc"))
    s = tmux.wait(lambda s: s[4].split()[7] == f"top-client/{cli['pid']}")  # the sender first
    tmux.send("r")
    tmux.wait(lambda s: s[2].startswith("view sockets  sort Tx/s asc"))
    tmux.send("4")
    # (read again while curses redraws the rows below the view's line: the rows are in the new order once
    # the first one is the listener's, which the assertion holds to)
    s = tmux.wait(lambda s: s[2].startswith("view sockets  sort Local asc") and s[4].split()[3] == f"127.0.0.1:{PORT}")
    assert s[4].split()[3] == f"127.0.0.1:{PORT}"  # 127.0.0.1:7300 before the client's port
    tmux.type("\u00b2")  # a digit that is no column number: ignored (int() refuses it)
    tmux.send("?")
    tmux.wait_text("sockscope top: keys")
    tmux.send("x")
    tmux.wait(lambda s: s[2].startswith("view sockets  sort Local asc") and "rows" in s[-1])

    tmux.send("/")
    tmux.type("state listening")
    tmux.wait_text("filter: state listening")
    tmux.send("Enter")
    s = tmux.wait(lambda s: "filter 'state listening'" in s[2] and s[-1].strip() == "rows 1-1 of 1")
    assert s[4].split()[0] == "LISTEN" and s[5].strip() == ""
    tmux.send("Escape")
    tmux.wait(lambda s: s[-1].strip() == "rows 1-3 of 3")
    tmux.send("/")
    tmux.type(f"dport = :{PORT}")
    tmux.send("Enter")
    s = tmux.wait(lambda s: s[-1].strip() == "rows 1-1 of 1")
    assert s[4].split()[7] == f"top-client/{cli['pid']}"
    tmux.send("/", "C-u", "Enter")
    tmux.wait(lambda s: s[-1].strip() == "rows 1-3 of 3" and "filter" not in s[2])

    tmux.send("p")
    s = tmux.wait(lambda s: "[PAUSED]" in s[0])
    time.sleep(1.6)
    assert tmux.screen()[0] == s[0]  # the clock stands still: no tick while paused
    tmux.send("p")
    tmux.wait(lambda s: "[PAUSED]" not in s[0])

    tmux.send("q")
    s = tmux.wait_text("EXITED-0")
    assert not any(map(_header, s)), s
    _stty_sane(tmux)


def test_interactive_resize(scene: Scene, tmux: Tmux) -> None:
    _start_top(scene, tmux)
    for w, h in ((60, 15), (100, 30), (80, 24)):
        tmux.tmux("resize-window", "-x", str(w), "-y", str(h))
        s = tmux.wait(lambda s, h=h: len(s) == h and _header(s[0]) and "rows 1-3 of 3" in s[-1])
        assert all(len(line) <= w for line in s), s
        assert s[3].split()[:2] == ["State", "Recv-Q"]
    tmux.tmux("resize-window", "-x", "20", "-y", "4")
    tmux.wait_text("terminal too small")
    tmux.tmux("resize-window", "-x", "80", "-y", "24")
    tmux.wait(lambda s: _header(s[0]))
    tmux.send("q")
    tmux.wait_text("EXITED-0")


def test_interactive_sigterm_and_ctrl_c_restore_the_terminal(scene: Scene, tmux: Tmux) -> None:
    _start_top(scene, tmux)
    (top_pid,) = _children(tmux.pane_pid())
    with open(f"/proc/{top_pid}/cmdline", "rb") as f:
        assert b"sockscope\0top" in f.read()
    os.kill(top_pid, 15)
    s = tmux.wait_text("EXITED-143")
    assert not any(map(_header, s)), s
    _stty_sane(tmux)
    tmux.send("clear", "Enter")
    _start_top(scene, tmux)
    tmux.send("C-c")
    tmux.wait_text("EXITED-0")
    _stty_sane(tmux)
