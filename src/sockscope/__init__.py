"""sockscope: see and use Linux sockets.

The public API is flat and re-exported here:

* :func:`sockets` streams rich :class:`Socket` records from the kernel (sock_diag);
* :func:`net_connections` is a drop-in for ``psutil.net_connections``;
* the records (:class:`Socket`, :class:`Endpoint`, :class:`Owner`, :class:`State`)
  and the error hierarchy rooted at :class:`SockscopeError`.
"""

from sockscope.errors import (
    DecodeError,
    NetlinkError,
    NotSupported,
    PermissionDenied,
    SockscopeError,
    UsageError,
)
from sockscope.records import Endpoint, Owner, Socket, State

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The query layer is imported on first use, so that `import sockscope`
    # (and every subcommand that does not list sockets) stays cheap.
    if name in ("sockets", "net_connections"):
        from sockscope import query

        return getattr(query, name)
    raise AttributeError(f"module 'sockscope' has no attribute {name!r}")


__all__ = (
    "sockets",
    "net_connections",
    "Socket",
    "Endpoint",
    "Owner",
    "State",
    "SockscopeError",
    "UsageError",
    "DecodeError",
    "NetlinkError",
    "NotSupported",
    "PermissionDenied",
    "__version__",
)
