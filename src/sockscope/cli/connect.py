"""``sockscope connect [HOST] [PORT]``: parse argv, then exchange data or run a tcping.

Argument errors exit 255 (argparse, as for every subcommand); network errors are raised as
:mod:`sockscope.services.errors` classes for the registry to report.
"""

from __future__ import annotations

import argparse

from sockscope.cli._args import OneLineParser, port_type, positive_int, positive_seconds, seconds
from sockscope.errors import SockscopeError
# (the defaults from the services' package alone: the client's module, asyncio among what it imports,
# ~60 ms, is imported when it runs, not for --help, the man page or the completion scripts)
from sockscope.services import DEFAULT_INTERVAL, DEFAULT_PORT, DEFAULT_TIMEOUT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockscope.services.connect import Payload, Target

EPILOG = f"""\
Without options it behaves like the classic tutorial client: it connects to
the host name's address on port {DEFAULT_PORT} and prints what the server sends
(until the server closes), with a final newline when the data has none
(--raw: the bytes exactly).  A single numeric argument is taken as the PORT; a
single HOST:PORT or [ADDRESS]:PORT (as the listing prints them) as both.

--send TEXT / --send-file FILE send data ('-' with either: standard input)
while printing the reply, then half-close the connection.  With --udp one
datagram is sent (the data, or an empty one) and the one reply is printed.

--count N and/or --interval S make it a tcping: N connects (forever with
only --interval; Ctrl-C ends it), each attempt's connect latency, then
min/avg/max/p50/p99 and the failures.  With --udp each attempt is a
datagram round trip.

exit status:
  0  success (tcping: every attempt connected)
  1  connection refused (UNIX: no such socket)
  2  data to send unreadable or too large for one datagram
  3  timed out (connect, or no data / no reply within --timeout)
  4  host name does not resolve
  5  other network error (unreachable, reset by peer, permission...)
 130 interrupted
 255 usage error
A tcping that had failures exits with the status of the last failure.
"""

_port = port_type(1)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``sockscope connect``."""
    parser = OneLineParser(
        prog="sockscope connect",
        description="Connect to a server and print what it sends; send data; or measure connect latency (tcping).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", nargs="?", metavar="HOST", help="host name or address (default: this host's name)")
    parser.add_argument("port", nargs="?", metavar="PORT", help=f"port (default {DEFAULT_PORT})")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--tcp", dest="proto", action="store_const", const="tcp", help="TCP (the default)")
    kind.add_argument("--udp", dest="proto", action="store_const", const="udp", help="UDP")
    kind.add_argument("--unix", metavar="PATH", help="UNIX stream socket at PATH (@NAME: abstract)")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--send", metavar="TEXT", help="send TEXT (UTF-8); '-': standard input")
    data.add_argument("--send-file", metavar="FILE", help="send the contents of FILE; '-': standard input")
    parser.add_argument("--raw", action="store_true", help="print received bytes exactly (no final newline added)")
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"bound on resolving, connecting and each wait for data (default {DEFAULT_TIMEOUT:g})",
    )
    ping = parser.add_argument_group("tcping")
    ping.add_argument("-c", "--count", type=positive_int, metavar="N", help="connect N times, print latencies")
    ping.add_argument(
        "-i",
        "--interval",
        type=seconds,
        metavar="SECONDS",
        help=f"seconds between attempts (default {DEFAULT_INTERVAL:g})",
    )
    return parser


def _target(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Target:
    from sockscope.services.connect import Target

    if args.unix is not None:
        if args.host is not None:
            parser.error("HOST and PORT cannot be combined with --unix")
        if args.unix in ("", "@"):
            parser.error("--unix needs a path (or @name)")
        return Target(proto="unix", path=args.unix)
    host, port_text = args.host, args.port
    if port_text is None and host is not None and host.isdigit():
        host, port_text = None, host  # `sockscope connect 8080`
    elif host is not None:
        from sockscope import hostport

        try:  # HOST:PORT (one colon), [ADDRESS]:PORT or [ADDRESS]; anything else (::1, a name) is a HOST
            host, in_host, _ = hostport.split(host)
        except hostport.BadHostPort as exc:
            parser.error(f"argument HOST: {exc}")
        if in_host is not None and port_text is not None:
            parser.error(f"argument HOST: {args.host!r} has a port, and PORT is given too")
        port_text = port_text if in_host is None else in_host
    port = DEFAULT_PORT
    if port_text is not None:
        try:
            port = _port(port_text)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument PORT: {exc}")
    if host == "":
        parser.error("argument HOST: empty host name")
    if not host:
        import socket

        host = socket.gethostname()
    return Target(proto=args.proto or "tcp", host=host, port=port)


def _payload(args: argparse.Namespace) -> Payload | None:
    from sockscope.services.connect import Payload

    if args.send is not None:
        if args.send == "-":
            return Payload(file="-")
        return Payload(data=args.send.encode("utf-8", "surrogateescape"))
    if args.send_file is not None:
        return Payload(file=args.send_file)
    return None


def main(argv: list[str]) -> int:
    """Entry point of ``sockscope connect``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    target = _target(args, parser)
    payload = _payload(args)
    from sockscope.services.connect import run_exchange, run_tcping

    if args.count is not None or args.interval is not None:
        if payload is not None and target.proto != "udp":
            parser.error("--send/--send-file go with --count/--interval only over --udp")
        interval = DEFAULT_INTERVAL if args.interval is None else args.interval
        return run_tcping(target, args.count, interval, args.timeout, payload)
    try:
        return run_exchange(target, payload, args.timeout, args.raw)
    except SockscopeError as exc:
        hint = _port_hint(args.host, args.port)
        if hint and exc.args:
            exc.args = (f"{exc.args[0]} {hint}", *exc.args[1:])
        raise


def _port_hint(host: str | None, port: str | None) -> str:
    """Where HOST is an IPv6 address unbracketed whose last group is decimal digits and PORT is not
    given (``::1:8080``: the address ::1:8080, port 12345), how that group would be written as the
    port; said only when the connection failed.  "" otherwise."""
    from sockscope import hostport

    split_off = None if port is not None or host is None else hostport.trailing_port(host)
    if split_off is None:
        return ""
    address, last = split_off
    return f"(for port {last} of {address}, write {hostport.retyped(address, port=last)})"
