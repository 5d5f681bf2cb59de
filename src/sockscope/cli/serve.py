"""``sockscope serve``: parse argv into a :class:`~sockscope.services.serve.ServeConfig` and run it.

Argument errors exit 255 (argparse, as for every subcommand); everything else is
raised as a :class:`~sockscope.errors.SockscopeError` subclass for the registry
to report.
"""

from __future__ import annotations

import argparse

from sockscope.cli._args import OneLineParser, int_at_least, port_type, positive_int, positive_seconds, seconds
# (the defaults from the services' package alone: the server's modules, asyncio among them, ~60-80 ms, are
# imported when it runs, not for --help, the man page or the completion scripts)
from sockscope.services import (DEFAULT_BACKLOG, DEFAULT_GRACE, DEFAULT_IDLE_TIMEOUT, DEFAULT_LOCK_TIMEOUT,
                                DEFAULT_LOG_RATE, DEFAULT_MESSAGE, DEFAULT_MIN_RATE, DEFAULT_PEER_RATE,
                                DEFAULT_PORT, DEFAULT_WINDOW, FD_RESERVE, GREET_LINGER, MAX_DATAGRAM)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockscope.services.serve import Proto, ServeConfig

EPILOG = f"""\
By default only loopback addresses are bound: those of 'localhost' (v4 and v6)
and the host name's address when it is a loopback address, so the classic
tutorial client (socket.gethostname(), port {DEFAULT_PORT}) works unmodified.
Use --host (repeatable; a name binds all its addresses) for other interfaces,
e.g. --host 0.0.0.0 --host ::.

greet mode sends the message, half-closes, and closes once the client has
closed (or after {GREET_LINGER:g}s).  echo mode returns every byte.  Over UDP each
datagram gets the message (greet) or itself (echo) back; --max-conns and
--idle-timeout apply to stream connections only.  One line per connection
(per datagram) is logged to stderr: peer, bytes in/out, duration, end reason;
at most --log-rate lines a second (the rest are counted in a summary line), and
a log that is not read never stops the server (lines are dropped and counted).

When all --max-conns slots are taken, a new connection takes the slot of one
that is done (greeted, awaiting the client's close), or too slow (less than
--min-rate bytes in its last --rate-window), or of a peer address holding more
connections than the new one's; if there is none, the new one is closed.
--max-per-peer caps one address (IPv6: one /64) at all times.  Over UDP each
peer gets at most --udp-peer-rate replies a second.

SIGINT/SIGTERM (and SIGHUP, a closed terminal, unless ignored as under nohup):
stop accepting, give in-flight connections --grace seconds, close the rest,
remove a UNIX path, exit 0 (a second signal skips the grace period).

exit status:
    0  stopped by SIGINT/SIGTERM/SIGHUP
    1  cannot bind: port (or UNIX path) already in use, address not local,
       permission denied, path exists and is not a socket
    4  a --host name does not resolve
  255  usage error
"""

_port = port_type(0)


#: listen() takes a C int (the kernel then caps it at net.core.somaxconn)
_BACKLOG_MAX = (1 << 31) - 1


def _backlog(text: str) -> int:
    value = positive_int(text)
    if value > _BACKLOG_MAX:
        raise argparse.ArgumentTypeError(f"too large (at most {_BACKLOG_MAX}): {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``sockscope serve``."""
    parser = OneLineParser(
        prog="sockscope serve",
        description="Run a greeting or echo server (asyncio) over TCP, UDP or a UNIX stream socket.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_argument_group("where")
    where.add_argument(
        "--host",
        action="append",
        metavar="ADDR",
        help="address or name to bind (repeatable); default: loopback only",
    )
    where.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    kind = where.add_mutually_exclusive_group()
    kind.add_argument("--tcp", dest="proto", action="store_const", const="tcp", help="TCP (the default)")
    kind.add_argument("--udp", dest="proto", action="store_const", const="udp", help="UDP")
    kind.add_argument(
        "--unix",
        metavar="PATH",
        help="UNIX stream socket at PATH (@NAME: abstract); removed on exit; a stale one is replaced",
    )
    what = parser.add_argument_group("behaviour")
    what.add_argument("--mode", choices=("greet", "echo"), default="greet", help="greet (default) or echo")
    what.add_argument(
        "--message", metavar="TEXT", default=DEFAULT_MESSAGE, help=f"greeting, UTF-8 (default {DEFAULT_MESSAGE!r})"
    )
    what.add_argument(
        "--max-conns",
        type=positive_int,
        metavar="N",
        help=f"close connections past N at once (default: fd limit - {FD_RESERVE})",
    )
    what.add_argument(
        "--idle-timeout",
        type=seconds,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="SECONDS",
        help=f"close connections idle this long; 0: never (default {DEFAULT_IDLE_TIMEOUT:g})",
    )
    what.add_argument(
        "--max-per-peer",
        type=positive_int,
        metavar="N",
        help="close connections of one peer address (IPv6: one /64; UNIX: one uid) past N at once (default: no cap)",
    )
    what.add_argument(
        "--min-rate",
        type=int_at_least(0),
        default=DEFAULT_MIN_RATE,
        metavar="BYTES",
        help=f"when slots are full, a connection moving fewer bytes/s can be evicted; 0: never "
        f"(default {DEFAULT_MIN_RATE})",
    )
    what.add_argument(
        "--rate-window",
        type=positive_seconds,
        default=DEFAULT_WINDOW,
        metavar="SECONDS",
        help=f"window (and minimum age) for --min-rate (default {DEFAULT_WINDOW:g})",
    )
    what.add_argument(
        "--udp-peer-rate",
        type=int_at_least(0),
        default=DEFAULT_PEER_RATE,
        metavar="N",
        help=f"UDP replies per second to one peer address; 0: no limit (default {DEFAULT_PEER_RATE})",
    )
    what.add_argument(
        "--lock-timeout",
        type=seconds,
        default=DEFAULT_LOCK_TIMEOUT,
        metavar="SECONDS",
        help=f"--unix: wait this long for the directory lock (default {DEFAULT_LOCK_TIMEOUT:g})",
    )
    what.add_argument(
        "--backlog",
        type=_backlog,
        default=DEFAULT_BACKLOG,
        metavar="N",
        help=f"listen backlog (default {DEFAULT_BACKLOG})",
    )
    what.add_argument(
        "--grace",
        type=seconds,
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help=f"on SIGINT/SIGTERM, time left to in-flight connections (default {DEFAULT_GRACE:g})",
    )
    what.add_argument("-q", "--quiet", action="store_true", help="no per-connection log lines")
    what.add_argument(
        "--log-rate",
        type=int_at_least(0),
        default=DEFAULT_LOG_RATE,
        metavar="N",
        help=f"per-connection log lines per second, at most; 0: no limit (default {DEFAULT_LOG_RATE})",
    )
    return parser


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServeConfig:
    """Check option combinations and build the config (usage errors exit 255 via ``parser.error``)."""
    proto: Proto = "unix" if args.unix is not None else (args.proto or "tcp")
    if proto == "unix" and args.host:
        parser.error("--host cannot be combined with --unix")
    if args.unix == "" or args.unix == "@":
        parser.error("--unix needs a path (or @name)")
    message = args.message.encode("utf-8", "surrogateescape")
    if proto == "udp" and args.mode == "greet" and len(message) > MAX_DATAGRAM:
        parser.error(f"--message: {len(message)} bytes do not fit in one UDP datagram (max {MAX_DATAGRAM})")
    from sockscope.services.serve import ServeConfig

    return ServeConfig(
        proto=proto,
        hosts=tuple(args.host or ()),
        port=args.port,
        unix_path=args.unix,
        mode=args.mode,
        message=message,
        max_conns=args.max_conns,
        idle_timeout=args.idle_timeout or None,
        backlog=args.backlog,
        grace=args.grace,
        quiet=args.quiet,
        max_per_peer=args.max_per_peer,
        min_rate=args.min_rate,
        rate_window=args.rate_window,
        lock_timeout=args.lock_timeout,
        log_rate=args.log_rate,
        udp_peer_rate=args.udp_peer_rate,
    )


def main(argv: list[str]) -> int:
    """Entry point of ``sockscope serve``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    from sockscope.services.serve import run

    return run(config)
