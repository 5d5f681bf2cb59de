"""CLI conventions: --help names every command; completion scripts and the man
page come from the parsers themselves; machine-readable output stays machine
readable (-s and -E with --json/--csv, CSV booleans, bytes that are not UTF-8);
an unknown namespace is an error in the API too; usage errors exit 255.

Sockets are made in private network namespaces (``unshare -n``: the namespace
ends with the script that made it)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sockscope
from conftest import SOCKSCOPE
from sockscope.cli import COMMANDS
from sockscope.cli import completion as _completion
from sockscope.cli.completion import flags, table
from sockscope.cli.options import parse
from sockscope.render.machine import FIELDS

README = Path(__file__).resolve().parent.parent / "README.md"
SUBCOMMANDS = [name for name in COMMANDS if name != "ls"]


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload]


def _in_private_netns(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a Python script in a new network namespace (lo up); it prints its findings as JSON."""
    prelude = "import subprocess; subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)\n"
    return _run(["unshare", "-n", sys.executable, "-c", prelude + script, *args])


# --- --help, completion, man page -----------------------------------------------------------


def test_help_names_every_command() -> None:
    res = _run([*SOCKSCOPE, "--help"])
    assert res.returncode == 0, res.stderr
    for name in ("who", "top", "exporter", "serve", "connect", "completion"):
        assert re.search(rf"^\s+{name}\s+\S", res.stdout, re.M), f"--help does not list {name}:\n{res.stdout}"
    for row in table():  # and every option, every spelling
        for spelling in flags(row):
            assert re.search(rf"(^|[ ,]){re.escape(spelling)}([ ,=]|$)", res.stdout, re.M), spelling


def test_parser_takes_every_option_of_the_table() -> None:
    """The getopt spec is the table's: every spelling parses, to its row's key."""
    for row in table():
        for spelling in flags(row):
            argv = [spelling, "x"] if row[2] else [spelling]
            opts, operands = parse(argv)
            assert opts == [(row, "x" if row[2] else "")] and not operands, (spelling, opts, operands)


def _parser_flags() -> dict[str, list[str]]:
    """Every option spelling of every command's parser: the listing's table, the subcommands' argparse."""
    out = {"ls": [f for row in table() for f in flags(row)]}
    for name in SUBCOMMANDS:
        parser = _completion.command_parser(name)
        out[name] = [f for a in parser._actions for f in a.option_strings] if parser is not None else ["-h", "--help"]
    return out


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_has_every_option_of_every_parser(shell: str) -> None:
    res = _run([*SOCKSCOPE, "completion", shell])
    assert res.returncode == 0 and res.stderr == "", res.stderr
    script = res.stdout
    for name in SUBCOMMANDS:
        assert re.search(rf"(^|[^\w-]){name}([^\w-]|$)", script), f"{shell}: no command {name}"
    for name, spellings in _parser_flags().items():
        for f in spellings:
            if shell == "fish":  # complete -s x / -l long
                want = f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}"
            else:
                want = f
            assert want in script, f"{shell}: {name} option {f} not completed"


def _bash_complete(tmp_path: Path, line: str) -> list[str]:
    script = tmp_path / "sockscope.bash"
    if not script.exists():
        script.write_text(_run([*SOCKSCOPE, "completion", "bash"]).stdout)
    # the words as bash splits them for completion (COMP_WORDBREAKS puts '=' in a word of its own)
    words = line.replace("=", " = ").split() + ([""] if line.endswith(" ") else [])
    driver = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _sockscope; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    res = _run(["bash", "--norc", "-c", driver, "_", str(script), *words])
    assert res.returncode == 0, res.stderr
    return [w for w in res.stdout.splitlines() if w]


@pytest.mark.parametrize(("line", "want"), [
    ("sockscope --js", ["--json"]),
    ("sockscope --all-n", ["--all-netns"]),
    ("sockscope -t state listen", ["listening"]),
    ("sockscope --family=inet", ["inet", "inet6"]),
    ("sockscope -f uni", ["unix"]),
    ("sockscope -A tcp,ud", ["tcp,udp"]),
    ("sockscope -tln dpo", ["dport"]),
    ("sockscope compl", ["completion"]),
    ("sockscope completion ", ["bash", "zsh", "fish"]),
    ("sockscope who --js", ["--json"]),
    ("sockscope serve --mode ", ["greet", "echo"]),
    ("sockscope top --onc", ["--once"]),
    ("sockscope exporter --web.max-r", ["--web.max-requests"]),
    ("sockscope exporter --web.dis", ["--web.disable-exporter-metrics"]),
    ("sockscope exporter --path", ["--path.procfs"]),
    ("sockscope exporter --pro", ["--proc"]),
])
def test_bash_completion_completes(tmp_path: Path, line: str, want: list[str]) -> None:
    assert sorted(_bash_complete(tmp_path, line)) == sorted(want), line


def test_man_page_has_every_option_and_renders() -> None:
    res = _run([*SOCKSCOPE, "--man"])
    assert res.returncode == 0 and res.stderr == "", res.stderr
    page = res.stdout
    assert page.startswith(".TH SOCKSCOPE 8 ")
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILTER", "OUTPUT FORMATS", "COMMANDS",
                    "ENVIRONMENT", "EXIT STATUS", "SEE ALSO"):
        assert f"\n.SH {section}\n" in page, section
    for name in SUBCOMMANDS:
        assert f'\n.SS "sockscope {name}"\n' in page, name
    tags = "\n".join(line for line in page.splitlines() if line.startswith("\\fB"))  # the .TP tags
    for name, spellings in _parser_flags().items():
        for f in spellings:
            assert f"\\fB{f.replace('-', chr(92) + '-')}\\fR" in tags, f"man page: {name} option {f} missing"
    # every line is text or a request the man macros know; a hyphen in text is escaped
    known = {".TH", ".SH", ".SS", ".TP", ".PP", ".B", ".BR", ".br", ".nf", ".fi"}
    for line in page.splitlines():
        if line.startswith((".", "'")):
            assert line.split()[0] in known, line
        assert not re.search(r"(?<!\\)-", line), line
    if shutil.which("groff"):
        out = _run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=page)
        assert out.returncode == 0 and out.stderr == "", out.stderr


def test_completion_usage_error() -> None:
    res = _run([*SOCKSCOPE, "completion", "tcsh"])
    assert res.returncode == 255 and len(res.stderr.splitlines()) == 1 and res.stdout == "", res


# --- machine-readable output ----------------------------------------------------------------

_SUMMARY = """
import json, subprocess, sys
run = lambda *a: subprocess.run([*json.loads(sys.argv[1]), *a], capture_output=True, text=True)
print(json.dumps([[r.returncode, r.stdout, r.stderr] for r in
                  (run("-s"), run("-s", "--json"), run("-s", "--csv"), run("-s", "-t", "--json"))]))
"""


def test_summary_as_json_and_csv() -> None:
    res = _in_private_netns(_SUMMARY, json.dumps(SOCKSCOPE))
    assert res.returncode == 0, res.stderr
    (t_rc, text, _), (j_rc, js, j_err), (c_rc, cs, c_err), (mix_rc, mix_out, mix_err) = json.loads(res.stdout)
    assert t_rc == j_rc == c_rc == 0 and j_err == c_err == "", (j_err, c_err)
    d = json.loads(js)  # one JSON document, nothing else
    assert isinstance(d, dict) and {"sockets_used", "tcp_estab", "tcp_total", "tcp_closed", "udp4", "raw6"} <= set(d)
    assert all(isinstance(v, int) for v in d.values()), d
    assert d["tcp_estab"] == int(re.search(r"estab (\d+)", text).group(1))  # type: ignore[union-attr]
    assert d["udp4"] == 0 and d["tcp_inuse4"] == 0  # a new namespace
    rows = list(csv.reader(io.StringIO(cs)))
    assert len(rows) == 2 and rows[0] == list(d), rows
    assert all(v.isdigit() for v in rows[1]) and rows[1][list(d).index("udp4")] == "0", rows
    # -s with a listing cannot be one document: refused, one line, nothing on stdout
    assert mix_rc == 255 and mix_out == "" and len(mix_err.splitlines()) == 1, (mix_rc, mix_out, mix_err)


_SUMMARY_API = """
import json, socket, subprocess, sys
from sockscope import summary
from sockscope.kernel import sockstat
from sockscope.render import summary as text_of
udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); udp.bind(("::1", 0))
tcp = socket.socket(); tcp.bind(("127.0.0.1", 0)); tcp.listen()
conn = socket.create_connection(tcp.getsockname()); peer, _ = tcp.accept()
# (some counters are the machine's, tcp_mem and the orphans among them: a record is compared with
# counts read right before and right after it, the same both times)
for _ in range(50):
    before = sockstat.summary_counts()
    record = summary.read()
    counts = sockstat.summary_counts()
    if counts == before:
        break
run = lambda *a: subprocess.run([*json.loads(sys.argv[1]), *a], capture_output=True, text=True).stdout
print(json.dumps([list(type(record).__dataclass_fields__), list(counts), record.counts() == counts,
                  record.to_dict(), text_of.as_dict(counts), record.text(), text_of.text(counts),
                  json.loads(run("-s", "--json")), run("-s"), record.tcp_total, record.tcp_closed]))
"""


def test_summary_record_and_cli_say_the_same() -> None:
    """:class:`sockscope.summary.Summary` (the API's record) and the CLI's ``-s`` (the counters as a dict,
    laid out by :mod:`sockscope.render.summary`) give the same counters in the same order, text and JSON."""
    res = _in_private_netns(_SUMMARY_API, json.dumps(SOCKSCOPE))
    assert res.returncode == 0, res.stderr
    fields, keys, same, rec_dict, cli_dict, rec_text, cli_text, js, cli_out, total, closed = json.loads(res.stdout)
    assert fields == keys and same, (fields, keys)
    assert rec_dict == cli_dict and list(rec_dict) == list(js) == [*fields, "tcp_total", "tcp_closed"], js
    # (the namespace's count of sockets, `sockets: used`, also counts the CLI's own while it runs)
    assert {**js, "sockets_used": 0} == {**rec_dict, "sockets_used": 0}, (js, rec_dict)
    assert js["udp6"] == 1 and js["tcp_inuse4"] == 3 and js["tcp_estab"] >= 2, js
    assert (total, closed) == (js["tcp_total"], js["tcp_closed"])
    assert rec_text == cli_text and cli_out.split("\n", 1)[1] == rec_text.split("\n", 1)[1], (cli_out, rec_text)


_SUMMARY_NETNS = """
import json, os, socket, subprocess, sys
udp = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
for u in udp:
    u.bind(("127.0.0.1", 0))
run = lambda *a: subprocess.run([*json.loads(sys.argv[1]), *a], capture_output=True, text=True)
print(json.dumps([os.stat("/proc/self/ns/net").st_ino] + [[r.returncode, r.stdout, r.stderr] for r in
                  (run("-s", "--all-netns", "--json"), run("-s", "--all-netns", "--csv"), run("-s", "--all-netns"))]))
"""


def test_summary_of_every_namespace() -> None:
    res = _in_private_netns(_SUMMARY_NETNS, json.dumps(SOCKSCOPE))
    assert res.returncode == 0, res.stderr
    ino, (j_rc, js, j_err), (c_rc, cs, c_err), (t_rc, text, t_err) = json.loads(res.stdout)
    assert j_rc == c_rc == t_rc == 0 and j_err == c_err == t_err == "", (j_err, c_err, t_err)
    every = json.loads(js)
    assert isinstance(every, list) and every[0]["netns"] == f"ino:{ino}", every[0]  # the current one first
    assert every[0]["udp4"] == 3 and len({d["netns"] for d in every}) == len(every) >= 1
    rows = list(csv.DictReader(io.StringIO(cs)))
    assert list(rows[0])[0] == "netns" and rows[0]["netns"] == f"ino:{ino}" and rows[0]["udp4"] == "3", rows[0]
    assert text.startswith(f"Netns: ino:{ino}\nTotal: ") and "\nUDP\t  3         3 " in text, text


_EVENTS = """
import json, os, select, socket, struct, subprocess, sys, time
out = {}
for fmt in ("--json", "--csv"):
    ev = subprocess.Popen([*json.loads(sys.argv[1]), "-E", "-tn", fmt], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines, deadline = [], time.monotonic() + 20
    try:
        want = 2 if fmt == "--json" else 3  # csv: the header, then rows
        while len(lines) < want and time.monotonic() < deadline:
            # connections closed by RST are freed at once: the kernel announces each destruction
            l = socket.create_server(("127.0.0.1", 0))
            c = socket.create_connection(l.getsockname())
            a, _ = l.accept()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            for s in (c, a, l):
                s.close()
            while select.select([ev.stdout], [], [], 0.3)[0] and len(lines) < want:
                lines.append(ev.stdout.readline().decode())
    finally:
        ev.send_signal(2)
        try:
            rest, err = ev.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # say where it waits, and end it (no process is left behind)
            where = [open(f"/proc/{ev.pid}/{k}").read() for k in ("wchan", "status")]
            ev.kill()
            ev.communicate()
            err = ("still running 10 s after SIGINT, waiting in %s; %s" % tuple(where)).encode()
    out[fmt] = [ev.returncode, lines, err.decode()]
print(json.dumps(out))
"""


def test_events_stream_json_lines_and_csv() -> None:
    res = _in_private_netns(_EVENTS, json.dumps(SOCKSCOPE))
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    rc, lines, err = got["--json"]
    assert rc == 0 and err == "", err
    assert len(lines) == 2, lines
    for line in lines:  # NDJSON: one object per line, as each socket goes
        d = json.loads(line)
        assert d["netid"] == "tcp" and d["family"] == "inet" and set(FIELDS) <= set(d), d
    rc, lines, err = got["--csv"]
    assert rc == 0 and err == "", err
    assert lines[0].rstrip("\n").split(",") == list(FIELDS)
    rows = list(csv.reader(lines[1:]))
    assert rows and all(r[:2] == ["tcp", "inet"] and len(r) == len(FIELDS) for r in rows), rows


_EVENTS_WAKE = """
import json, os, signal, sys, threading, time
from sockscope import actions
r, w = os.pipe()
for fd in (r, w):
    os.set_blocking(fd, False)
signal.set_wakeup_fd(w)
def deliver():  # this thread, not the waiting one, takes the signal: the wait's system call is not interrupted
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=deliver, daemon=True).start()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
def late(signum, frame):
    raise TimeoutError("still waiting 5 s after SIGINT")
signal.signal(signal.SIGALRM, late)  # SIGALRM goes to this thread: it does interrupt the wait
signal.alarm(5)
try:
    for s in actions.events(actions.event_groups(["tcp"], [2, 10]), r):
        print(json.dumps("an event: " + str(s)))
        break
except KeyboardInterrupt:
    print(json.dumps("interrupted"))
except TimeoutError as exc:
    print(json.dumps(str(exc)))
"""


def test_events_wait_ends_on_a_signal_that_did_not_interrupt_it() -> None:
    """A signal whose C handler ran while the wait's system call was not interrupted
    by it (it landed just before the wait began, or on another thread) still ends
    -E's wait, at once: the wait also watches the signal wakeup pipe.  Without that
    it lasts until the next destroyed socket, which in this namespace never comes."""
    res = _in_private_netns(_EVENTS_WAKE)
    assert res.returncode == 0 and json.loads(res.stdout) == "interrupted", (res.stdout, res.stderr)


_V6ONLY = """
import json, socket, subprocess, sys
socks = []
for v6only in (1, 0):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind(("::1", 0) if v6only else ("::", 0))
    s.listen()
    socks.append(s)
run = lambda *a: subprocess.run([*json.loads(sys.argv[1]), *a], capture_output=True, text=True).stdout
print(json.dumps([run("-tln", "--csv"), run("-tln", "--json")]))
"""


def test_csv_writes_booleans_as_json_does() -> None:
    res = _in_private_netns(_V6ONLY, json.dumps(SOCKSCOPE))
    assert res.returncode == 0, res.stderr
    cs, js = json.loads(res.stdout)
    by_port = {d["local_port"]: d["v6only"] for d in json.loads(js)}
    assert sorted(by_port.values()) == [False, True], by_port
    rows = list(csv.DictReader(io.StringIO(cs)))
    assert {int(r["local_port"]): r["v6only"] for r in rows} == {
        p: json.dumps(v) for p, v in by_port.items()}, rows


def test_readme_documents_what_csv_and_json_write() -> None:
    text = README.read_text()
    headers = [line for line in text.splitlines() if line.startswith("netid,family,state,")]
    assert headers and all(h.split(",") == list(FIELDS) for h in headers), headers
    assert '"tid"' in text, "the README does not say what JSON owners' tid is"


# --- non-UTF-8 bytes --------------------------------------------------------------------------

_NON_UTF8 = """
import json, os, signal, socket, subprocess, sys, tempfile
d = tempfile.mkdtemp(prefix="sockscope-t-", dir=sys.argv[2])  # (under the test's tmp_path: gone even if killed)
path = os.path.join(os.fsencode(d), b"caf\\xc3\\xa9\\xff")
socks = []
for name in (b"\\0sockscope-t-\\xff\\xe9", path, "\\0\\u00fc".encode(), "\\0\\u65e5\\u672c".encode()):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(name); s.listen(); socks.append(s)
# a process whose name is not ASCII, holding a listener (its users:(...) cell)
r, w = os.pipe()
child = os.fork()
if child == 0:
    import ctypes
    ctypes.CDLL(None).prctl(15, "\\u00fcn\\u00ef-t".encode(), 0, 0, 0)  # PR_SET_NAME
    t = socket.socket(); t.bind(("127.0.0.1", 4444)); t.listen()
    os.write(w, b"x"); signal.pause(); os._exit(0)
os.read(r, 1)
try:
    out = {}
    # ss pads a column by bytes (it sets no locale): so must sockscope, byte for byte
    for args in (["-xl"], ["-xlp"], ["-tlnp"]):
        out["same " + " ".join(args)] = [subprocess.run(cmd, capture_output=True).stdout.decode("latin-1")
                                         for cmd in (["ss", *args], [*json.loads(sys.argv[1]), *args])]
    for enc in ("ascii", "utf-8"):
        env = dict(os.environ, PYTHONIOENCODING=enc)
        for args in (["-xl"], ["-xl", "--csv"], ["-xl", "--json"]):
            r = subprocess.run([*json.loads(sys.argv[1]), *args], env=env, capture_output=True)
            out[enc + " " + " ".join(args)] = [r.returncode, r.stdout.decode("latin-1"), r.stderr.decode("latin-1")]
    out["ss"] = subprocess.run(["ss", "-xl"], capture_output=True).stdout.decode("latin-1")
    out["dir"] = d
finally:
    os.kill(child, 9); os.waitpid(child, 0)
    os.unlink(path); os.rmdir(d)
print(json.dumps(out))
"""


def test_paths_that_are_not_utf8(tmp_path: Path) -> None:
    res = _in_private_netns(_NON_UTF8, json.dumps(SOCKSCOPE), str(tmp_path))
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    for key, value in got.items():
        if key.startswith("same "):
            assert value[0] == value[1] and "\xc3\xbc" in value[0], (key, value)  # (ss's bytes; "ü" read as latin-1)
            continue
        if key in ("ss", "dir"):
            continue
        rc, out, err = value
        assert rc == 0 and "Traceback" not in err and err == "", (key, err)
        if key.startswith("ascii"):
            out.encode("ascii")  # nothing the stream cannot carry
            if "--json" not in key:  # each byte a stream cannot carry as \\xNN
                assert "@sockscope-t-\\xff\\xe9" in out and "caf\\xc3\\xa9\\xff" in out, (key, out)
        if "--json" in key:
            names = {d["local_address"] for d in json.loads(out)}
            assert "@sockscope-t-\udcff\udce9" in names, names  # Python's surrogateescape, as the API has it
    # to a UTF-8 stream the bytes go out as they are, as ss writes them
    table = got["utf-8 -xl"][1]
    for name in ("@sockscope-t-\xff\xe9", got["dir"] + "/caf\xc3\xa9\xff"):
        assert name in got["ss"] and name in table, (name, table)
    assert "@sockscope-t-\xff\xe9" in got["utf-8 -xl --csv"][1]


# --- the API and exit statuses --------------------------------------------------------------


def test_sockets_in_unknown_namespace_is_an_error() -> None:
    with pytest.raises(sockscope.SockscopeError, match="sockscope-t-doesnotexist"):
        list(sockscope.sockets("tcp", netns="sockscope-t-doesnotexist"))
    with pytest.raises(sockscope.SockscopeError, match="No such file"):
        list(sockscope.sockets("tcp", netns="/nonexistent/sockscope-t-ns"))


@pytest.mark.parametrize("argv", [["--bogus"], ["-A", "tcp", "--man=x"]] + [[name, "--bogus"] for name in SUBCOMMANDS])
def test_usage_errors_exit_255(argv: list[str]) -> None:
    res = _run([*SOCKSCOPE, *argv])
    assert res.returncode == 255 and len(res.stderr.splitlines()) == 1 and res.stdout == "", res


def test_one_line_parser_exits_255_by_default() -> None:
    from sockscope.cli._args import OneLineParser
    from sockscope.errors import UsageError

    with pytest.raises(UsageError) as info:
        OneLineParser(prog="sockscope x").parse_args(["--bogus"])
    assert info.value.exit_status == 255 == UsageError.exit_status


def test_closed_stdout_is_one_line_not_a_traceback() -> None:
    res = _run(["bash", "-c", 'exec "$@" >&-', "_", *SOCKSCOPE, "-tln"])
    assert res.returncode == 1 and res.stderr == "sockscope: standard output is closed\n", res
