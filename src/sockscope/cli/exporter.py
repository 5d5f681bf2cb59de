"""``sockscope exporter``: serve Prometheus metrics about the sockets of this host.

Usage errors exit 255 (like the listing); a missing ``prometheus_client``, an
address that cannot be bound and a bad ``--web.config.file`` are raised as
:class:`~sockscope.errors.SockscopeError` (exit 1) for the registry to report
in one line.  The collection itself never stops the server: a failing part of
a scrape is exported as ``sockscope_scrape_errors_total`` and logged to stderr.

The HTTP side is :mod:`sockscope.exporter_web` (one asyncio loop, bounded
connections and deadlines; TLS and basic auth from the web config);
``--once`` prints one scrape instead, and exits 1 if a part of it failed.
The flags are spelled as node_exporter's (``--web.listen-address``,
``--web.config.file``, ``--web.telemetry-path``, ``--web.max-requests``,
``--web.disable-exporter-metrics``, ``--path.procfs``), so that a
node_exporter unit's flags carry over; ``--listen`` and ``--proc`` are aliases
of ``--web.listen-address`` and ``--path.procfs``.
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys
from typing import TYPE_CHECKING

from sockscope.cli._args import OneLineParser, int_at_least, positive_int, positive_seconds, seconds
# (the defaults alone: the exporter's modules, asyncio among them, are imported when it runs, not for
# --help, the man page or the completion scripts)
from sockscope.exporter_defaults import (ADMIT_GRACE, DEFAULT_LISTEN, DEFAULT_MAX_LISTENERS, HEADER_TIMEOUT,
                                         IDLE_TIMEOUT, INSTALL_HINT, MAX_CONNECTIONS, MAX_REQUESTS)

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from sockscope.exporter_metrics import SocketCollector
    from sockscope.exporter_web import Address

DEFAULT_ADDRESS = f"{DEFAULT_LISTEN[0]}:{DEFAULT_LISTEN[1]}"

EPILOG = f"""\
Serves the Prometheus text format on http://ADDR:PORT/metrics, one sock_diag
pass per scrape.  --web.listen-address may be given several times: every
address is served, or the exporter exits with an error.  ADDR:PORT binds one
address ([V6ADDR]:PORT for IPv6), :PORT every address of the host (IPv6 and
IPv4), as node_exporter does.  Unlike node_exporter the default is
{DEFAULT_ADDRESS}: only this host can scrape until you say otherwise.

--web.config.file takes the exporter-toolkit web config that node_exporter
reads (YAML): tls_server_config (cert_file, key_file, client_auth_type,
client_ca_file, client_allowed_sans, min_version, max_version),
basic_auth_users (bcrypt hashes) and http_server_config.headers.

--web.max-requests bounds the scrapes of the metrics path being served at once
(waiting for the collection or being sent), as node_exporter's does: one more
gets 503 "Limit of concurrent requests reached (N), try again later." at once.

Metrics: sockscope_sockets{{family,protocol,state}}, the accept queue and backlog
of at most --max-listeners listeners (the rest summed under listener="other"),
TCP retransmits and bytes summed over open sockets, the ss -s counters
(sockscope_sockstat_*), sockscope_build_info, and the scrape's duration,
success and errors.  No label names a connection.

--all-netns adds a netns label and collects every network namespace: those
named in /var/run/netns (label: the name) and those of running processes
(label: ino:<inode>).  It needs CAP_SYS_ADMIN (setns).  A namespace that
disappears during a scrape is left out of it.

Needs prometheus_client (and PyYAML and bcrypt for --web.config.file):
{INSTALL_HINT.split(": ", 1)[1]}

exit status:
  0    stopped by SIGINT/SIGTERM (--once: the scrape had no error)
  1    a dependency missing, cannot listen, bad web config (--once: some part of the scrape failed)
  255  usage error
"""


def listen_address(text: str) -> Address:
    """``HOST:PORT``, ``[V6ADDR]:PORT`` or ``:PORT`` (every address), as node_exporter reads them
    (the brackets' errors: :func:`sockscope.hostport.split`'s, as every command's)."""
    from sockscope import hostport
    from sockscope.exporter_web import Address

    shown = hostport.shown
    if text.startswith("[]"):  # (the exporter's own hint: no address is every address)
        raise argparse.ArgumentTypeError(f"empty brackets in {shown(text)}: write :PORT for every address")
    try:
        host, port_text, _ = hostport.split(text)
    except hostport.BadHostPort as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if port_text is None:
        if text.startswith("["):
            raise argparse.ArgumentTypeError(f"missing port in {shown(text)}: write {hostport.retyped(host)}")
        if ":" in text:  # two colons or more, unbracketed
            split_off = hostport.trailing_port(text)
            if split_off is not None:
                address, last = split_off
                raise argparse.ArgumentTypeError(
                    f"write an IPv6 address in brackets: {hostport.retyped(address, port=last)}")
            raise argparse.ArgumentTypeError(f"not HOST:PORT: {shown(text)} (an IPv6 address goes in brackets, "
                                             f"as [::1]:9100)")
        if _digits(text):
            raise argparse.ArgumentTypeError(
                f"{shown(text)} has no address: write :{text} for every address of the host "
                f"or 127.0.0.1:{text} for this host only")
        raise argparse.ArgumentTypeError(f"missing port in {shown(text)}: write {hostport.retyped(text, False)}")
    if not _digits(port_text):
        raise argparse.ArgumentTypeError(f"not a port number: {shown(port_text)}")
    port = int(port_text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return Address(host, port)


def _digits(text: str) -> bool:
    """ASCII digits, at most 5 of them (a port's; more is no port, and no 4,301-digit int is made)."""
    return text.isascii() and text.isdigit() and len(text) <= 5


def _path(text: str) -> str:
    if not text.startswith("/") or any(c in text for c in " ?#") or not text.isprintable():
        raise argparse.ArgumentTypeError(f"not a URL path starting with '/': {text!r}")
    return text


def _procfs(text: str) -> str:
    if not text:  # ("" would read /, whose thread-self/net/… is no procfs of this host)
        raise argparse.ArgumentTypeError("empty path: give the directory procfs is mounted on, as /proc")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="sockscope exporter",
        description="Serve Prometheus metrics about sockets (sock_diag), for scraping.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--web.listen-address", "--listen", dest="listen", type=listen_address, action="append",
                   metavar="ADDR:PORT",
                   help=f"address to serve on, repeatable (default {DEFAULT_ADDRESS}; :PORT = every address; "
                        "port 0 picks one)")
    p.add_argument("--web.config.file", dest="web_config", metavar="FILE",
                   help="exporter-toolkit web config (YAML): TLS, client certificates, basic auth")
    p.add_argument("--web.telemetry-path", dest="path", type=_path, default="/metrics", metavar="PATH",
                   help="URL path of the metrics (default /metrics)")
    p.add_argument("--web.max-connections", dest="max_connections", type=positive_int, default=MAX_CONNECTIONS,
                   metavar="N", help=f"connections served at once at most (default {MAX_CONNECTIONS}); at the "
                   "limit the connection idle longest, or whose client has not taken a response for 1 s, is closed "
                   f"for a new one (not one connected less than {ADMIT_GRACE:g} s ago that has not sent its request "
                   "yet); when none can be, the new one waits unread in a queue of as many for the next free slot, "
                   "within --web.header-timeout of its arrival.  Connections count by client address (IPv4, IPv6 "
                   "/64): an address holding two more than the newcomer's gives way first, and a free slot goes to "
                   "the queued connection whose address has the fewest served (first come among those)")
    p.add_argument("--web.max-requests", dest="max_requests", type=int_at_least(0), default=MAX_REQUESTS,
                   metavar="N", help=f"scrapes of the metrics served at once at most (default {MAX_REQUESTS}; "
                   "0: no limit); one more gets 503 at once")
    p.add_argument("--web.disable-exporter-metrics", dest="disable_exporter_metrics", action="store_true",
                   help="leave out the process_* metrics about the exporter's own process")
    p.add_argument("--web.header-timeout", dest="header_timeout", type=positive_seconds, default=HEADER_TIMEOUT,
                   metavar="SECONDS",
                   help=f"time for a TLS handshake and a request head (default {HEADER_TIMEOUT:g})")
    p.add_argument("--web.idle-timeout", dest="idle_timeout", type=seconds, default=IDLE_TIMEOUT,
                   metavar="SECONDS", help=f"keep-alive time between requests (default {IDLE_TIMEOUT:g}; 0: never "
                   "closed for idling, the limit still closes the one idle longest)")
    p.add_argument("--max-listeners", type=int_at_least(0), default=DEFAULT_MAX_LISTENERS, metavar="N",
                   help=f"listeners exported one by one (default {DEFAULT_MAX_LISTENERS}); "
                        "the rest are summed under listener=\"other\"")
    p.add_argument("--all-netns", action="store_true",
                   help="collect every network namespace, with a netns label")
    p.add_argument("--path.procfs", "--proc", dest="proc", type=_procfs, default="/proc", metavar="DIR",
                   help="where procfs is mounted (default /proc)")
    p.add_argument("--once", action="store_true",
                   help="print one scrape to stdout and exit instead of serving")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from sockscope import exporter_metrics, exporter_web

    exporter_metrics.require_prometheus_client()
    config = None
    if args.web_config is not None:
        from sockscope import webconfig

        config = webconfig.load(args.web_config)
    if args.once:
        return _once(args)
    from sockscope.services.servelog import ServeLog

    # A log that never blocks: a stderr nobody reads (a full pipe) must not stall the
    # scrapes (the collector logs from the render thread) nor the exit.
    log = ServeLog(sys.stderr, rate=0, banner="sockscope: ", stamps=False)
    try:
        collector = exporter_metrics.SocketCollector(
            max_listeners=args.max_listeners, all_netns=args.all_netns, proc=args.proc.rstrip("/") or "/",
            log=log.say,
        )
        registry = make_registry(collector, process_metrics=not args.disable_exporter_metrics)
        limits = exporter_web.Limits(max_connections=args.max_connections, header_timeout=args.header_timeout,
                                     idle_timeout=args.idle_timeout, max_requests=args.max_requests)
        addrs = args.listen or [listen_address(DEFAULT_ADDRESS)]
        _raise_fd_limit(limits.max_connections + limits.queue_size)
        socks = []
        try:
            for addr in addrs:
                socks.append(exporter_web.bind(addr, limits.backlog))
            server = exporter_web.Server(socks, registry, limits=limits, config=config,
                                         config_path=args.web_config, path=args.path, log=log.say)
            tls = config is not None and config.tls is not None
            for sock, addr in zip(socks, addrs):
                log.say(f"serving {exporter_web.url_of(sock, addr, tls, args.path)}", banner="sockscope exporter: ")
            stops = (signal.SIGINT, signal.SIGTERM)
            # these until the loop runs; then the loop's own (which wake its wait through its pipe)
            old = {s: signal.signal(s, lambda signum, frame: server.stop()) for s in stops}
            try:
                server.run(stops)
            finally:
                for s, h in old.items():
                    signal.signal(s, h)
        finally:
            for sock in socks:
                sock.close()
    finally:
        log.close()
    return 0


def _once(args: argparse.Namespace) -> int:
    """``--once``: one scrape on stdout; 1 if a part of it failed (each failure one line on stderr)."""
    from sockscope import exporter_metrics

    collector = exporter_metrics.SocketCollector(
        max_listeners=args.max_listeners, all_netns=args.all_netns, proc=args.proc.rstrip("/") or "/",
        log=_log,
    )
    registry = make_registry(collector, process_metrics=not args.disable_exporter_metrics)
    sys.stdout.buffer.write(exposition(registry))
    return 1 if any(s.errors for s in collector.last) else 0


def _log(msg: str) -> None:
    """One line on stderr, whatever ``msg`` holds (paths and peers' input may hold control characters)."""
    from sockscope.errors import printable

    print(f"sockscope: {printable(msg)}", file=sys.stderr, flush=True)


def _raise_fd_limit(max_connections: int) -> None:
    """Room for every connection held, served or queued (plus the collection's own descriptors), as far as
    the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max_connections + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            pass


def make_registry(collector: SocketCollector, *, process_metrics: bool = True) -> CollectorRegistry:
    """A registry holding ``collector``, plus prometheus_client's ``process_*`` metrics unless
    ``process_metrics`` is False (``--web.disable-exporter-metrics``: node_exporter's flag leaves out
    its own process, Go and promhttp metrics; ours are the process ones, there being no others)."""
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
