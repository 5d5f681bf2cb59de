"""The exporter's defaults: what its options show and its parts start from, in a module that imports
nothing.  ``sockscope exporter --help``, the man page and the completion scripts read them without the
exporter's own modules (asyncio, the collector: ~50 ms); :mod:`sockscope.exporter`,
:class:`sockscope.exporter_web.Limits` and :mod:`sockscope.exporter_conn` take them from here."""

DEFAULT_LISTEN = ("127.0.0.1", 9466)
DEFAULT_MAX_LISTENERS = 100
INSTALL_HINT = "the exporter needs prometheus_client: pip install '.[exporter]' in the sockscope checkout"

# -- the HTTP server's bounds (exporter_web.Limits; see that module's docstring)
MAX_CONNECTIONS = 512
HEADER_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0
WRITE_TIMEOUT = 30.0
BACKLOG = 1024
MAX_HEAD = 16384
WORKERS = 2
#: scrapes served at once (0: no limit), node_exporter's default
MAX_REQUESTS = 40

#: a connection just given its slot cannot be evicted this long while it waits for its first request
#: head: the time a client needs to send one once connected (some round trips: a TLS handshake, then the
#: request).  Without it, a scraper admitted while every other connection was busy (wrong passwords
#: waiting for their bcrypt check) was itself the connection waiting longest for a head, and the next
#: newcomer closed it before its head was read.  Short, as it holds newcomers in the queue: an idle
#: client keeps its slot at least this long, unless the queue is full
ADMIT_GRACE = 0.5
