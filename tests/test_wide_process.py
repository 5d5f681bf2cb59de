"""A Process column hundreds of characters wide (a listener held by many processes, as a prefork
server's is): every row is padded to it, and such rows are written by ``render.padded`` (each
row's padding a slice of one run of spaces, given to ``os.writev``).  Compared with ss byte for
byte, to a pipe and to a file, and the writer's short writes on a non-blocking pipe."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time

from conftest import SOCKSCOPE
from sockscope.render import padded
from sockscope.render.writer import TableWriter

_PREFORK = r"""
import json, os, socket, subprocess, sys, tempfile
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
cmd = json.loads(sys.argv[1])
lst = socket.create_server(("127.0.0.1", 0), backlog=64)
port = lst.getsockname()[1]
gate_r, gate_w = os.pipe()
kids = []
for _ in range(24):  # each holds the listener: its users:(...) cell is ~700 characters
    pid = os.fork()
    if pid == 0:
        os.close(gate_w)
        os.read(gate_r, 1)  # until the parent closes its end
        os._exit(0)
    kids.append(pid)
os.close(gate_r)
clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
accepted = [lst.accept()[0] for _ in range(30)]
out = {}
try:
    for name, argv in (("ss", ["ss", "-tanp"]), ("ours", cmd + ["-tanp"]), ("ss_e", ["ss", "-tanpe"]),
                       ("ours_e", cmd + ["-tanpe"])):
        r = subprocess.run(argv, capture_output=True)  # a pipe
        out[name] = [r.returncode, r.stdout.decode(), r.stderr.decode() if name.startswith("ours") else ""]
    with tempfile.TemporaryFile() as f:  # a file
        r = subprocess.run(cmd + ["-tanp"], stdout=f, stderr=subprocess.PIPE)
        f.seek(0)
        out["file"] = [r.returncode, f.read().decode(), r.stderr.decode()]
finally:
    os.close(gate_w)
    for pid in kids:
        os.waitpid(pid, 0)
print(json.dumps(out))
"""


def test_prefork_rows_as_ss_writes_them() -> None:
    res = subprocess.run(["unshare", "-n", sys.executable, "-c", _PREFORK, json.dumps(SOCKSCOPE)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    rc, ss_text, _ = got["ss"]
    assert rc == 0 and ss_text.count("\n") == 62, ss_text[:300]  # header, the listener, 60 connections
    lines = ss_text.splitlines()
    width = len(lines[1])
    assert width > 600 and all(len(line) == width for line in lines[2:-1]), "ss pads every row"
    for name in ("ours", "file"):
        rc, text, err = got[name]
        assert rc == 0 and err == "", err
        assert text == ss_text, name
    rc, text, err = got["ours_e"]  # details after the users: the padding still ends the row
    assert rc == 0 and err == ""
    assert _without_cgroup(text) == _without_cgroup(got["ss_e"][1])


def _without_cgroup(text: str) -> list[str]:
    # ss prints no cgroup where it finds no cgroup2 mount; sockscope reads the socket's cgroup id
    return [" ".join(w for w in line.split() if not w.startswith("cgroup:")) for line in text.splitlines()]


def _rows(n: int, wide: int) -> list[list[str]]:
    rows = []
    for i in range(n):
        users = f'users:(("p{i}",pid={i},fd=3))' + ("" if i else ",x" * wide)
        rows.append(["tcp", "ESTAB", "0", "0", f"10.0.{i % 256}.{i // 256}", str(i), "1.2.3.4", "80", users, ""])
    return rows


def test_written_rows_equal_the_text_layout(tmp_path: object) -> None:
    """The same rows through a StringIO (text, as before) and through a file (writev): same bytes,
    the last row's cell (not measured, wider than the column) unpadded in both."""
    rows = _rows(3000, 400) + [_rows(1, 0)[0][:8] + ["x" * 2000, ""]]
    text = io.StringIO()
    path = os.path.join(str(tmp_path), "out")
    for out in (text, open(path, "w", encoding="utf-8")):
        w = TableWriter(out, [True] * 9, batch=100000)
        for row in rows:
            w.add(row)
        w.flush()
        if out is not text:
            assert padded.file_for(out) is not None
            out.close()
    assert padded.file_for(text) is None
    with open(path, encoding="utf-8") as f:
        assert f.read() == text.getvalue()


def test_short_writes_on_a_full_non_blocking_pipe() -> None:
    """A reader slower than the writer, on a non-blocking pipe: every byte arrives, in order."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    got = bytearray()

    def read() -> None:
        while True:
            time.sleep(0.001)
            chunk = os.read(r, 7919)
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    pieces = [bytes([65 + i % 26]) * (i % 5000) for i in range(3000)]
    try:
        padded._writev_all(w, list(pieces))
    finally:
        os.close(w)
        reader.join(timeout=60)
        os.close(r)
    assert bytes(got) == b"".join(pieces)
