"""The greeting server (``serve``) and its client (``connect``).

The defaults their options show live here, in the package itself, which imports nothing: the CLI's
parsers (``--help``, the man page, the completion scripts) read them without importing the services
(asyncio and the rest: ~60-80 ms of a start); each service imports them from here."""

#: the port both use unless told otherwise
DEFAULT_PORT = 12345

# -- serve
DEFAULT_MESSAGE = "Thank you for connecting"
DEFAULT_BACKLOG = 511
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_GRACE = 2.0
DEFAULT_LOCK_TIMEOUT = 10.0
#: Seconds a greeted client has, after the greeting is flushed, to close its end.
GREET_LINGER = 2.0
#: File descriptors kept free for the listeners, the event loop and stdio.
FD_RESERVE = 64
#: New connections admitted per second and source before the limit looks at them (``admission``).
DEFAULT_MIN_RATE = 64
DEFAULT_WINDOW = 1.0
#: Per-connection lines admitted per second by default (``servelog``).
DEFAULT_LOG_RATE = 200
#: Replies per second and peer by default (``serve_udp``).
DEFAULT_PEER_RATE = 1000

# -- connect
DEFAULT_TIMEOUT = 10.0
DEFAULT_INTERVAL = 1.0
#: the largest UDP payload over IPv4 (65,535 less the IP and UDP headers)
MAX_DATAGRAM = 65507
