"""``sockscope exporter`` scraped by a real Prometheus server (Debian's ``prometheus`` package).

``test_prometheus_scrapes_over_tls_with_basic_auth_and_client_certificates``
does the same over TLS (a throwaway CA made with ``openssl``): one exporter
with basic auth, scraped with the right and a wrong password, and one that
requires client certificates, scraped with and without one; the targets
without the right credentials are down.

In a fresh network namespace: a holder process keeps five known TCP listeners
(two connections wait in one accept queue); ``sockscope exporter`` serves on
its default address 127.0.0.1:9466; Prometheus runs on 127.0.0.1:9090 with a
temporary config scraping it every second and a temporary TSDB.  Prometheus's
HTTP API is queried (from inside the namespace) until the expected values
appear.  Everything stays on the namespace's loopback; both servers are
stopped by pid and the temp dir and namespace removed, also on failure.

Skipped, with the reason, only when the ``prometheus`` binary is not installed
(``.ci/run`` installs it with apt-get; an install failure must not stop the
rest of the suite).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from test_exporter import Holder, Served

PROMETHEUS = shutil.which("prometheus")

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sockscope
    static_configs:
      - targets: ["127.0.0.1:9466"]
"""

#: Run inside the netns: query Prometheus until every (query, expected value) holds, or time out.
POLL = r'''
import json, sys, time, urllib.parse, urllib.request
base, checks, timeout = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
last = {}
while True:
    ok = True
    for query, want in checks:
        try:
            url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.load(r)
            result = body["data"]["result"]
            last[query] = [[x["metric"], x["value"][1]] for x in result]
            ok = ok and len(result) == 1 and float(result[0]["value"][1]) == want
        except Exception as exc:  # not up yet, or no sample yet
            last[query] = repr(exc)
            ok = False
    if ok or time.monotonic() > deadline:
        print(json.dumps({"ok": ok, "last": last}))
        break
    time.sleep(0.5)
'''


needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is not installed: .ci/run installs Debian's 'prometheus' "
    "package with apt-get, and that install failed or was not run")


def scraped(holder: Holder, config: str, checks: list[list[Any]], tmp: Path) -> dict[str, Any]:
    """Run Prometheus with ``config`` in the holder's netns until every check holds (or 60 s pass);
    Prometheus is stopped by pid before returning; the poller's last answers are returned."""
    assert PROMETHEUS is not None
    prom: subprocess.Popen[bytes] | None = None
    log = tmp / "prometheus.log"
    (tmp / "prometheus.yml").write_text(config)
    try:
        with open(log, "wb") as logf:
            prom = holder.netns.popen(
                [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                 "--web.listen-address=127.0.0.1:9090", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        r = holder.run([sys.executable, "-c", POLL, "http://127.0.0.1:9090", json.dumps(checks), "60"],
                       timeout=90)
        assert r.returncode == 0, r.stderr
        result: dict[str, Any] = json.loads(r.stdout)
        assert prom.poll() is None, f"prometheus exited: {log.read_text(errors='replace')[-2000:]}"
        assert result["ok"], json.dumps(result["last"], indent=1) + "\n" + log.read_text(errors="replace")[-2000:]
        return result
    finally:
        if prom is not None and prom.poll() is None:
            prom.send_signal(signal.SIGTERM)
            try:
                prom.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(timeout=10)


@needs_prometheus
def test_prometheus_scrapes_the_exporter() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sockscope-prom-"))
    holder: Holder | None = None
    served: Served | None = None
    try:
        holder = Holder({"listeners": [["127.0.0.1", 31000, 4, 2], ["127.0.0.1", 31001, 8, 0],
                                       ["127.0.0.1", 31002, 8, 0], ["127.0.0.1", 31003, 8, 0],
                                       ["127.0.0.1", 31004, 8, 0]]})
        served = Served(holder.netns)  # the default address
        assert served.url == "http://127.0.0.1:9466/metrics"
        checks: list[list[Any]] = [
            # 5 listeners of the holder + the exporter's + Prometheus's own
            ['sockscope_sockets{job="sockscope",family="inet",protocol="tcp",state="LISTEN"}', 7],
            ['sockscope_listener_accept_queue{listener="127.0.0.1:31000",protocol="tcp"}', 2],
            ['sockscope_listener_backlog{listener="127.0.0.1:31000",protocol="tcp"}', 4],
            ['sockscope_scrape_success{job="sockscope"}', 1],
            ['up{job="sockscope"}', 1],
        ]
        result = scraped(holder, CONFIG, checks, tmp)
        # the series Prometheus stored carries our labels, and nothing per connection
        labels = result["last"][checks[0][0]][0][0]
        assert labels == {"__name__": "sockscope_sockets", "family": "inet", "protocol": "tcp", "state": "LISTEN",
                          "instance": "127.0.0.1:9466", "job": "sockscope"}
    finally:
        try:
            if served is not None:
                rc = served.stop()
                assert rc == 0, served.stderr
        finally:
            if holder is not None:
                holder.close()
            shutil.rmtree(tmp, ignore_errors=True)
    assert not tmp.exists()


TLS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: right-password
    scheme: https
    tls_config: {{ca_file: {ca}}}
    basic_auth: {{username: prometheus, password: "{password}"}}
    static_configs: [{{targets: ["127.0.0.1:9466"]}}]
  - job_name: wrong-password
    scheme: https
    tls_config: {{ca_file: {ca}}}
    basic_auth: {{username: prometheus, password: "not it"}}
    static_configs: [{{targets: ["127.0.0.1:9466"]}}]
  - job_name: client-cert
    scheme: https
    tls_config: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}}}
    static_configs: [{{targets: ["localhost:9467"]}}]
  - job_name: no-client-cert
    scheme: https
    tls_config: {{ca_file: {ca}}}
    static_configs: [{{targets: ["localhost:9467"]}}]
"""


@needs_prometheus
def test_prometheus_scrapes_over_tls_with_basic_auth_and_client_certificates() -> None:
    from test_exporter_tls import PASSWORD, bcrypt_hash, make_pki

    tmp = Path(tempfile.mkdtemp(prefix="sockscope-prom-"))
    holder: Holder | None = None
    served: list[Served] = []
    try:
        pki = make_pki(tmp / "pki")
        (tmp / "auth.yml").write_text(f"tls_server_config:\n  cert_file: {pki['server_crt']}\n"
                                      f"  key_file: {pki['server_key']}\n"
                                      f"basic_auth_users:\n  prometheus: {bcrypt_hash(PASSWORD)}\n")
        (tmp / "mtls.yml").write_text(f"tls_server_config:\n  cert_file: {pki['server_crt']}\n"
                                      f"  key_file: {pki['server_key']}\n"
                                      "  client_auth_type: RequireAndVerifyClientCert\n"
                                      f"  client_ca_file: {pki['ca_crt']}\n")
        holder = Holder({"listeners": [["127.0.0.1", 31000, 4, 2]]})
        served.append(Served(holder.netns, "--web.config.file", str(tmp / "auth.yml")))
        served.append(Served(holder.netns, "--web.config.file", str(tmp / "mtls.yml"), "--listen", "127.0.0.1:9467"))
        assert [s.url for s in served] == ["https://127.0.0.1:9466/metrics", "https://127.0.0.1:9467/metrics"]
        config = TLS_CONFIG.format(ca=pki["ca_crt"], cert=pki["scraper_crt"], key=pki["scraper_key"],
                                   password=PASSWORD)
        checks: list[list[Any]] = [
            ['up{job="right-password"}', 1],
            ['up{job="wrong-password"}', 0],
            ['up{job="client-cert"}', 1],
            ['up{job="no-client-cert"}', 0],
            ['sockscope_listener_accept_queue{job="right-password",listener="127.0.0.1:31000"}', 2],
            ['sockscope_scrape_success{job="client-cert"}', 1],
            ['absent(sockscope_sockets{job="wrong-password"})', 1],  # nothing stored from the refused scrapes
        ]
        scraped(holder, config, checks, tmp)
    finally:
        try:
            rcs = [s.stop() for s in served]  # every one stopped before any assertion
            assert rcs == [0] * len(served), [s.stderr for s in served]
            # after the banner, nothing: refused clients are not logged
            assert [s.stderr for s in served] == [""] * len(served)
        finally:
            if holder is not None:
                holder.close()
            shutil.rmtree(tmp, ignore_errors=True)
    assert not tmp.exists()
