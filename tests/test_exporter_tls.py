"""``--web.config.file``: the exporter-toolkit web config (TLS, client certificates, basic auth).

A throwaway CA, server and client certificates are made with the ``openssl``
command into ``tmp_path``; passwords are hashed with ``bcrypt`` (cost 4: the
cost is read from the hash, and a low one keeps the tests fast).  The
exporter serves in a fresh network namespace and a Python client in the same
namespace connects on loopback.  Invalid configs are one-line errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from test_exporter import EXPORTER, Holder, Served

bcrypt = pytest.importorskip("bcrypt", reason="pip install -e '.[dev]' installs it")

PASSWORD = "s3cret pass"


def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def make_pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/::1/localhost, and two client certificates
    (SAN DNS:scraper.test and DNS:intruder.test), all signed by the CA; EC keys."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    # a CA as RFC 5280 has it (key usage included): Python 3.13's clients check it (VERIFY_X509_STRICT)
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=sockscope test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    exts = {"server": "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
            "scraper": "subjectAltName=DNS:scraper.test\nextendedKeyUsage=clientAuth\n",
            "intruder": "subjectAltName=DNS:intruder.test\nextendedKeyUsage=clientAuth\n"}
    for name, ext in exts.items():
        (d / f"{name}.ext").write_text("basicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid\n"
                                      "subjectKeyIdentifier=hash\n" + ext)
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    return {p.stem + p.suffix.replace(".", "_"): p for p in d.iterdir()}


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()  # type: ignore[no-any-return]


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def holder() -> Iterator[Holder]:
    h = Holder({})
    try:
        yield h
    finally:
        h.close()


#: Inside the netns: each request [url, user, password, cert, key, ca]; prints [status or error, headers].
CLIENT = r'''
import base64, json, ssl, sys, urllib.request, urllib.error
out = []
for url, user, password, cert, key, ca in json.loads(sys.argv[1]):
    req = urllib.request.Request(url)
    if user is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    ctx = None
    if url.startswith("https:"):
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            out.append([r.status, dict(r.headers), r.read().decode()[:2000]])
    except urllib.error.HTTPError as e:
        out.append([e.code, dict(e.headers), ""])
    except Exception as e:
        out.append([type(getattr(e, "reason", e)).__name__, {}, str(e)])
print(json.dumps(out))
'''


def requests(h: Holder, reqs: list[list[Any]]) -> list[list[Any]]:
    r = h.run([sys.executable, "-c", CLIENT, json.dumps(reqs)], timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_tls_with_basic_auth(holder: Holder, pki: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"""\
tls_server_config:
  cert_file: {pki['server_crt']}
  key_file: pki/server.key      # relative to the config file, as exporter-toolkit reads it
http_server_config:
  headers:
    X-Content-Type-Options: nosniff
basic_auth_users:
  prometheus: {bcrypt_hash(PASSWORD)}
  other: {bcrypt_hash("other")}
""")
    srv = Served(holder.netns, "--web.config.file", str(cfg))
    try:
        assert srv.url == "https://127.0.0.1:9466/metrics"
        ca = str(pki["ca_crt"])
        url = srv.url
        got = requests(holder, [[url, "prometheus", PASSWORD, None, None, ca],
                                [url, "prometheus", PASSWORD, None, None, ca],  # cached: no second bcrypt
                                [url, "prometheus", "wrong", None, None, ca],
                                [url, "other", PASSWORD, None, None, ca],  # another user's password
                                [url, "nobody", PASSWORD, None, None, ca],
                                [url, None, None, None, None, ca],
                                ["https://127.0.0.1:9466/", None, None, None, None, ca],
                                ["http://127.0.0.1:9466/metrics", "prometheus", PASSWORD, None, None, ca]])
        statuses = [g[0] for g in got]
        assert statuses == [200, 200, 401, 401, 401, 401, 401, 400], got  # 400: plain HTTP to a TLS port
        assert "sockscope_sockets{" in got[0][2]
        assert got[0][1]["X-Content-Type-Options"] == "nosniff"
        assert got[2][1]["WWW-Authenticate"] == 'Basic realm="sockscope"'
    finally:
        assert srv.stop() == 0, srv.stderr
    assert srv.stderr == ""


def test_client_certificates_required(holder: Holder, pki: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "web.yml"
    # inline PEM for the server's certificate and key, a file for the client CA
    body = {"tls_server_config": {"cert": pki["server_crt"].read_text(), "key": pki["server_key"].read_text(),
                                  "client_auth_type": "RequireAndVerifyClientCert",
                                  "client_ca_file": str(pki["ca_crt"]), "client_allowed_sans": ["scraper.test"],
                                  "min_version": "TLS13"}}
    cfg.write_text(json.dumps(body))  # JSON is YAML
    srv = Served(holder.netns, "--web.config.file", str(cfg), "--listen", "[::1]:9466")
    try:
        ca, url = str(pki["ca_crt"]), srv.url
        assert url == "https://[::1]:9466/metrics"
        got = requests(holder, [[url, None, None, str(pki["scraper_crt"]), str(pki["scraper_key"]), ca],
                                [url, None, None, None, None, ca],
                                [url, None, None, str(pki["intruder_crt"]), str(pki["intruder_key"]), ca]])
        assert got[0][0] == 200, got
        assert got[1][0] in ("SSLError", "ConnectionResetError", "RemoteDisconnected"), got  # no certificate
        assert got[2][0] in ("RemoteDisconnected", "ConnectionResetError"), got  # a SAN not allowed
    finally:
        assert srv.stop() == 0, srv.stderr
    assert srv.stderr == ""


#: Inside the netns: raw (not TLS) clients of the TLS port; each [bytes sent in pieces (0.3 s apart),
#: whether to shut the sending side after]: prints [what came back until EOF, seconds until EOF].
RAW = r'''
import json, socket, sys, time
out = []
for pieces, shut in json.loads(sys.argv[1]):
    s = socket.create_connection(("127.0.0.1", 9466), timeout=30)
    t0, got = time.monotonic(), b""
    try:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.3)
            s.sendall(piece.encode("latin-1"))
        if shut:
            s.shutdown(socket.SHUT_WR)
        while chunk := s.recv(65536):
            got += chunk
    except TimeoutError:
        got = b"(no EOF in 30 s)"
    except ConnectionResetError:
        pass  # after the answer: the server closed with the rest of the request unread, as Go's does
    out.append([got.decode("latin-1"), round(time.monotonic() - t0, 2)])
    s.close()
print(json.dumps(out))
'''

GO_ANSWER = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


def test_plain_http_to_the_tls_port_gets_gos_answer(holder: Holder, pki: dict[str, Path], tmp_path: Path) -> None:
    """Plain HTTP sent to the TLS port was closed silently (curl: "Empty reply from server"); Go's
    net/http, node_exporter's server, answers 400 when the first five bytes look like HTTP.  Other
    bytes still go to the TLS handshake (which fails: closed, no answer), a byte and a stall still
    waits out the header deadline, and TLS clients are served as before."""
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"tls_server_config: {{cert_file: {pki['server_crt']}, key_file: {pki['server_key']}}}\n")
    srv = Served(holder.netns, "--web.config.file", str(cfg), "--web.header-timeout", "2")
    try:
        cases = [[["GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"], False],
                 [["HEAD / HTTP/1.0\r\n\r\n"], False],
                 [["OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"], False],
                 [["PUT /metrics HTTP/1.1\r\nHost: x\r\n\r\n"], False],
                 [["G", "ET", " /metrics HTTP/1.1\r\n\r\n"], False],  # trickled in: the fifth byte decides
                 [["hello, this is not TLS\r\n\r\n"], False],
                 [["GET http://x/metrics HTTP/1.1\r\n\r\n"], False],  # not one of Go's five starts either
                 [["GET"], True],  # EOF before five bytes
                 [["G"], False]]  # then nothing: the header deadline
        got = json.loads(holder.run([sys.executable, "-c", RAW, json.dumps(cases)], timeout=120).stdout)
        assert [g[0] for g in got] == [GO_ANSWER] * 5 + [""] * 4, got
        assert all(g[1] < 1.5 for g in got[:8]), got
        assert 1.5 < got[8][1] < 15, got  # closed by the 2 s header deadline, not before
        url, ca = srv.url, str(pki["ca_crt"])
        assert [g[0] for g in requests(holder, [[url, None, None, None, None, ca]] * 3)] == [200] * 3
    finally:
        assert srv.stop() == 0, srv.stderr
    assert srv.stderr == ""


def test_the_connection_cap_closes_evicted_tls_connections_at_once(holder: Holder, pki: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    """A new TLS connection is first looked at (plain HTTP?) through a duplicate of its socket: an
    eviction must end that look too, or the evicted sockets stayed open until the header deadline."""
    from test_exporter_web import end_clients, hold, server_conns

    cfg = tmp_path / "web.yml"
    cfg.write_text(f"tls_server_config: {{cert_file: {pki['server_crt']}, key_file: {pki['server_key']}}}\n")
    srv = Served(holder.netns, "--web.config.file", str(cfg), "--web.max-connections", "4",
                 "--web.header-timeout", "60")
    p = hold(holder, 9466, 40)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == b"READY"
        deadline = time.monotonic() + 20
        while server_conns(holder, 9466) > 4:
            assert time.monotonic() < deadline, server_conns(holder, 9466)
            time.sleep(0.2)
        url, ca = srv.url, str(pki["ca_crt"])
        assert [g[0] for g in requests(holder, [[url, None, None, None, None, ca]] * 2)] == [200] * 2
    finally:
        out = end_clients(p)
        assert srv.stop() == 0, srv.stderr
    assert out["idle_closed"] >= 36, out


BAD_CONFIGS = [
    ("tls_config:\n  cert_file: x\n", "unknown field 'tls_config' in the file"),
    ("a: [\n", "not YAML (line 2)"),
    ("- 1\n", "the file must be a mapping"),
    ("tls_server_config:\n  cert_file: c.crt\n", "tls_server_config: missing key_file"),
    ("tls_server_config:\n  cert_file: no.crt\n  key_file: no.key\n",
     "cert_file {d}/no.crt: No such file or directory"),
    ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Maybe\n",
     "client_auth_type 'Maybe' is not one of NoClientCert,"),
    ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerifyClientCert\n",
     "client_auth_type RequireAndVerifyClientCert needs client_ca_file"),
    ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAnyClientCert\n",
     "RequireAnyClientCert is not supported"),
    ("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS14\n", "min_version 'TLS14' is not one of"),
    ("tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
     "tls_server_config.cipher_suites is not supported"),
    ("basic_auth_users:\n  prometheus: plaintext\n", "the password of user 'prometheus' is not a bcrypt hash"),
    ('basic_auth_users:\n  "\\e[31m": x\n', "the password of user '\\x1b[31m' is not a bcrypt hash"),
    ("rate_limit:\n  interval: 1s\n", "rate_limit is not supported"),
    ("http_server_config:\n  headers:\n    X-Evil: 1\n", "unknown field 'X-Evil' in http_server_config.headers"),
    ('tls_server_config:\n  cert_file: "\\e[31mc\\nx"\n  key_file: k\n',
     "cert_file {d}/\\x1b[31mc\\x0ax: No such file or directory"),
]


@pytest.mark.parametrize("text,msg", BAD_CONFIGS)
def test_a_bad_web_config_is_a_one_line_error(holder: Holder, tmp_path: Path, text: str, msg: str) -> None:
    cfg = tmp_path / "web.yml"
    cfg.write_text(text)
    r = holder.run([*EXPORTER, "--web.config.file", str(cfg)], timeout=30)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith(f"sockscope: web config {str(cfg)!r}: "), r.stderr
    assert msg.format(d=tmp_path) in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "\x1b" not in r.stderr


def _fifo_cert(d: Path, pki: dict[str, Path]) -> tuple[str, str]:
    os.mkfifo(d / "fifo.crt")
    return f"cert_file: fifo.crt\n  key_file: {pki['server_key']}\n", f"cert_file {d}/fifo.crt: not a regular file"


def _fifo_ca(d: Path, pki: dict[str, Path]) -> tuple[str, str]:
    os.mkfifo(d / "fifo-ca.crt")
    return (f"cert_file: {pki['server_crt']}\n  key_file: {pki['server_key']}\n"
            f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: fifo-ca.crt\n",
            f"client_ca_file {d}/fifo-ca.crt: not a regular file")


def _endless_key(d: Path, pki: dict[str, Path]) -> tuple[str, str]:
    return f"cert_file: {pki['server_crt']}\n  key_file: /dev/zero\n", "key_file /dev/zero: not a regular file"


def _huge_cert(d: Path, pki: dict[str, Path]) -> tuple[str, str]:
    from sockscope.webconfig import MAX_PEM_SIZE

    with open(d / "huge.crt", "wb") as f:
        f.write(pki["server_crt"].read_bytes())
        f.truncate(MAX_PEM_SIZE + 1)  # (sparse)
    return (f"cert_file: huge.crt\n  key_file: {pki['server_key']}\n",
            f"cert_file {d}/huge.crt: larger than {MAX_PEM_SIZE} bytes")


@pytest.mark.parametrize("make", [_fifo_cert, _fifo_ca, _endless_key, _huge_cert])
def test_tls_files_that_are_not_bounded_regular_files_are_one_line_errors(
        holder: Holder, pki: dict[str, Path], tmp_path: Path, make: Callable[[Path, dict[str, Path]], tuple[str, str]],
) -> None:
    """cert_file, key_file and client_ca_file went to OpenSSL by name: a FIFO hung the start (and a
    reload, on the event loop), /dev/zero was read for ever, a huge file whole."""
    tls, msg = make(tmp_path, pki)
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"tls_server_config:\n  {tls}")
    r = holder.run([*EXPORTER, "--web.config.file", str(cfg)], timeout=30)  # (a hang: TimeoutExpired)
    assert (r.returncode, r.stdout) == (1, ""), r.stderr
    assert r.stderr == f"sockscope: web config {str(cfg)!r}: {msg}\n"


def test_a_cert_file_replaced_by_a_fifo_keeps_the_previous_config(holder: Holder, tmp_path: Path) -> None:
    """The reload runs on the event loop: a cert_file swapped for a FIFO blocked it in open() for
    good, every scrape with it.  Now one line, the previous config serving, and a good file later
    is picked up again."""
    import shutil

    one, two = make_pki(tmp_path / "one"), make_pki(tmp_path / "two")
    current = tmp_path / "current.crt"
    shutil.copy(one["server_crt"], current)
    shutil.copy(one["server_key"], tmp_path / "current.key")
    cfg = tmp_path / "web.yml"
    cfg.write_text("tls_server_config: {cert_file: current.crt, key_file: current.key}\n")
    srv = Served(holder.netns, "--web.config.file", str(cfg))
    url, ca1, ca2 = srv.url, str(one["ca_crt"]), str(two["ca_crt"])
    try:
        assert [g[0] for g in requests(holder, [[url, None, None, None, None, ca1]])] == [200]
        current.unlink()
        os.mkfifo(current)
        time.sleep(1.2)  # (the files are looked at once a second at most)
        got = requests(holder, [[url, None, None, None, None, ca1]] * 3)
        assert [g[0] for g in got] == [200] * 3, got
        current.unlink()
        shutil.copy(two["server_crt"], current)
        shutil.copy(two["server_key"], tmp_path / "current.key")
        time.sleep(1.2)
        assert [g[0] for g in requests(holder, [[url, None, None, None, None, ca2]])] == [200]
    finally:
        assert srv.stop() == 0, srv.stderr
    assert srv.stderr == (f"sockscope: web config {str(cfg)!r}: cert_file {current}: not a regular file; "
                          "still serving with the previous web config\n")


def test_a_missing_web_config_is_a_one_line_error(holder: Holder, tmp_path: Path) -> None:
    r = holder.run([*EXPORTER, "--web.config.file", str(tmp_path / "nope.yml")], timeout=30)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == f"sockscope: web config {str(tmp_path / 'nope.yml')!r}: No such file or directory\n"


def test_an_empty_web_config_serves_plain_http(holder: Holder, tmp_path: Path) -> None:
    cfg = tmp_path / "web.yml"
    cfg.write_text("# nothing configured\n")
    srv = Served(holder.netns, "--web.config.file", str(cfg))
    try:
        assert srv.url == "http://127.0.0.1:9466/metrics"
        assert requests(holder, [[srv.url, None, None, None, None, None]])[0][0] == 200
    finally:
        assert srv.stop() == 0, srv.stderr


def test_changes_are_picked_up_while_serving(holder: Holder, tmp_path: Path) -> None:
    """A renewed certificate, a new password, then a broken file (the old config stays, one stderr line)."""
    import shutil
    import time

    one, two = make_pki(tmp_path / "one"), make_pki(tmp_path / "two")
    for ext in ("crt", "key"):
        shutil.copy(one[f"server_{ext}"], tmp_path / f"current.{ext}")
    cfg = tmp_path / "web.yml"

    def write(password: str) -> None:
        cfg.write_text(f"tls_server_config: {{cert_file: current.crt, key_file: current.key}}\n"
                       f"basic_auth_users: {{prometheus: '{bcrypt_hash(password)}'}}\n")

    write(PASSWORD)
    srv = Served(holder.netns, "--web.config.file", str(cfg))
    ca1, ca2, url = str(one["ca_crt"]), str(two["ca_crt"]), srv.url
    try:
        got = requests(holder, [[url, "prometheus", PASSWORD, None, None, ca1],
                                [url, "prometheus", PASSWORD, None, None, ca2]])
        assert [g[0] for g in got] == [200, "SSLCertVerificationError"], got
        # the certificate is renewed (a new CA, even): the next connections get it
        for ext in ("crt", "key"):
            shutil.copy(two[f"server_{ext}"], tmp_path / f"current.{ext}")
        time.sleep(1.2)
        got = requests(holder, [[url, "prometheus", PASSWORD, None, None, ca2],
                                [url, "prometheus", PASSWORD, None, None, ca1]])
        assert [g[0] for g in got] == [200, "SSLCertVerificationError"], got
        # a new password
        write("renewed")
        time.sleep(1.2)
        got = requests(holder, [[url, "prometheus", "renewed", None, None, ca2],
                                [url, "prometheus", PASSWORD, None, None, ca2]])
        assert [g[0] for g in got] == [200, 401], got
        # a broken file: the last good config goes on serving
        cfg.write_text("tls_server_config: [\n")
        time.sleep(1.2)
        got = requests(holder, [[url, "prometheus", "renewed", None, None, ca2]] * 3)
        assert [g[0] for g in got] == [200] * 3, got
    finally:
        assert srv.stop() == 0, srv.stderr
    assert srv.stderr.startswith(f"sockscope: web config {str(cfg)!r}: not YAML (line 2): ")
    assert srv.stderr.endswith("; still serving with the previous web config\n") and srv.stderr.count("\n") == 1


@pytest.mark.parametrize("kind,without,wrong_ca", [("VerifyClientCertIfGiven", 200, "SSLError"),
                                                   ("RequestClientCert", 200, 200)])
def test_optional_client_certificates(holder: Holder, pki: dict[str, Path], tmp_path: Path, kind: str,
                                      without: Any, wrong_ca: Any) -> None:
    other = make_pki(tmp_path / "other")  # a client certificate from a CA the server does not trust
    cfg = tmp_path / "web.yml"
    ca_line = f"  client_ca_file: {pki['ca_crt']}\n" if kind != "RequestClientCert" else ""
    cfg.write_text(f"tls_server_config:\n  cert_file: {pki['server_crt']}\n  key_file: {pki['server_key']}\n"
                   f"  client_auth_type: {kind}\n{ca_line}")
    srv = Served(holder.netns, "--web.config.file", str(cfg))
    try:
        ca, url = str(pki["ca_crt"]), srv.url
        got = requests(holder, [[url, None, None, str(pki["scraper_crt"]), str(pki["scraper_key"]), ca],
                                [url, None, None, None, None, ca],
                                [url, None, None, str(other["scraper_crt"]), str(other["scraper_key"]), ca]])
        statuses = [g[0] for g in got]
        assert statuses[:2] == [200, without], got
        assert statuses[2] == wrong_ca or (wrong_ca == "SSLError" and statuses[2] in
                                           ("SSLError", "ConnectionResetError", "RemoteDisconnected")), got
    finally:
        assert srv.stop() == 0, srv.stderr
