"""``sockscope exporter``: serve Prometheus metrics about the sockets of this host.

Argument errors exit 2 (argparse); a missing ``prometheus_client`` and a
listen address that cannot be bound are raised as
:class:`~sockscope.errors.SockscopeError` (exit 1) for the registry to report.
The collection itself never stops the server: a failing part of a scrape is
exported as ``sockscope_scrape_errors_total`` and logged to stderr.

The HTTP side is a threaded WSGI server (one thread per request) around
prometheus_client's WSGI app: the metrics on ``/metrics`` (gzip and
OpenMetrics negotiated by prometheus_client), a link on ``/``, 404 elsewhere.
``--once`` prints one scrape instead, and exits 1 if a part of it failed.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, Iterable

from sockscope.cli._args import OneLineParser, int_at_least
from sockscope.errors import SockscopeError
from sockscope.exporter import DEFAULT_LISTEN, DEFAULT_MAX_LISTENERS, INSTALL_HINT

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from sockscope.exporter import SocketCollector

EPILOG = f"""\
Serves the Prometheus text format on http://ADDR:PORT/metrics, one sock_diag
pass per scrape.  Only {DEFAULT_LISTEN[0]} is bound unless --listen names another
address (0.0.0.0:{DEFAULT_LISTEN[1]} for every IPv4 address, [::]:{DEFAULT_LISTEN[1]} for every
address).

Metrics: sockscope_sockets{{family,protocol,state}}, the accept queue and backlog
of at most --max-listeners listeners (the rest summed under listener="other"),
TCP retransmits and bytes summed over open sockets, the ss -s counters, and
the scrape's duration, success and errors.  No label names a connection.

--all-netns adds a netns label and collects every network namespace: those
named in /var/run/netns (label: the name) and those of running processes
(label: ino:<inode>).  It needs CAP_SYS_ADMIN (setns).

Needs prometheus_client: {INSTALL_HINT.split(": ", 1)[1]}

exit status:
  0  stopped by SIGINT/SIGTERM (--once: the scrape had no error)
  1  prometheus_client missing, cannot listen (--once: some part of the scrape failed)
  2  usage error
"""


def _listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``[V6ADDR]:PORT`` or ``PORT`` (on 127.0.0.1); the address must be explicit."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = DEFAULT_LISTEN[0], text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise argparse.ArgumentTypeError(f"write an IPv6 address in brackets: [{host}]:{port_text}")
    if not host:
        raise argparse.ArgumentTypeError(
            f"name the address to bind, e.g. 0.0.0.0:{port_text} (every IPv4 address) "
            f"or 127.0.0.1:{port_text}")
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return host, port


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        usage_status=2,
        prog="sockscope exporter",
        description="Serve Prometheus metrics about sockets (sock_diag), for scraping.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--listen", type=_listen, default=DEFAULT_LISTEN, metavar="ADDR:PORT",
                   help=f"address to serve on (default {DEFAULT_LISTEN[0]}:{DEFAULT_LISTEN[1]}; port 0 picks one)")
    p.add_argument("--max-listeners", type=int_at_least(0), default=DEFAULT_MAX_LISTENERS, metavar="N",
                   help=f"listeners exported one by one (default {DEFAULT_MAX_LISTENERS}); "
                        "the rest are summed under listener=\"other\"")
    p.add_argument("--all-netns", action="store_true",
                   help="collect every network namespace, with a netns label")
    p.add_argument("--proc", default="/proc", metavar="DIR",
                   help="where procfs is mounted (default /proc)")
    p.add_argument("--once", action="store_true",
                   help="print one scrape to stdout and exit instead of serving")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from sockscope import exporter

    exporter.require_prometheus_client()
    collector = exporter.SocketCollector(
        max_listeners=args.max_listeners, all_netns=args.all_netns, proc=args.proc.rstrip("/") or "/",
        log=lambda msg: print(f"sockscope: {msg}", file=sys.stderr, flush=True),
    )
    registry = make_registry(collector)
    if args.once:
        sys.stdout.buffer.write(exposition(registry))
        return 1 if any(s.errors for s in collector.last) else 0
    host, port = args.listen
    server = make_server(host, port, registry)
    return _serve(server, host)


def _serve(server: object, host: str) -> int:
    """Run ``server`` until SIGINT/SIGTERM; then stop it and return 0."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve_forever, name="sockscope-exporter-http",  # type: ignore[attr-defined]
                              daemon=True)
    try:
        thread.start()
        bound_port = server.server_address[1]  # type: ignore[attr-defined]
        where = f"[{host}]" if ":" in host else host
        print(f"sockscope exporter: serving http://{where}:{bound_port}/metrics", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            if not thread.is_alive():
                raise SockscopeError("the HTTP server stopped unexpectedly")
    finally:
        if thread.is_alive():
            server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
        for s, h in old.items():
            signal.signal(s, h)
    return 0


_INDEX = (b"<html><head><title>sockscope exporter</title></head><body><h1>sockscope exporter</h1>"
          b"<p><a href=\"/metrics\">/metrics</a></p></body></html>\n")


def make_app(registry: CollectorRegistry) -> Callable[..., Any]:
    """The WSGI app: the metrics on ``/metrics``, a link on ``/``, 404 elsewhere."""
    from prometheus_client import make_wsgi_app

    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [_INDEX]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: the metrics are on /metrics\n"]

    return app


def make_server(host: str, port: int, registry: CollectorRegistry) -> Any:
    """A bound, threaded WSGI server (one thread per request); ``serve_forever()`` runs it."""
    from socketserver import TCPServer, ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server as _make

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SockscopeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, *_, sockaddr = infos[0]

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = family

        def server_bind(self) -> None:
            # HTTPServer.server_bind() calls socket.getfqdn(): a DNS query, at every start. Skip it.
            TCPServer.server_bind(self)
            self.server_name = host
            self.server_port = self.server_address[1]
            self.setup_environ()

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the base class's parameter names
            pass

    try:
        return _make(str(sockaddr[0]), port, make_app(registry), Server, handler_class=QuietHandler)
    except OSError as exc:
        raise SockscopeError(f"cannot listen on {_hostport(host, port)}: {exc.strerror}") from exc


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def make_registry(collector: SocketCollector, *, process_metrics: bool = True) -> CollectorRegistry:
    """A registry holding ``collector`` (plus prometheus_client's ``process_*`` metrics)."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """One scrape in the Prometheus text format."""
    from prometheus_client import generate_latest

    data: bytes = generate_latest(registry)
    return data
