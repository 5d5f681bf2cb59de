"""sockscope: see and use Linux sockets.

The public API is flat and re-exported here:

* :func:`sockets` streams rich :class:`Socket` records from the kernel (sock_diag);
* :func:`net_connections` is a drop-in for ``psutil.net_connections``;
* the records (:class:`Socket`, :class:`Endpoint`, :class:`Owner`, :class:`State`)
  and the error hierarchy rooted at :class:`SockscopeError`.
"""

_TYPE_CHECKING = False
if _TYPE_CHECKING:
    from sockscope.errors import (
        AccessDenied,
        CannotInspect,
        DecodeError,
        NetlinkError,
        NoSuchProcess,
        NotSupported,
        PermissionDenied,
        SockscopeError,
        UsageError,
    )
    from sockscope.psutil_api import net_connections
    from sockscope.sockets_api import sockets
    from sockscope.records import Endpoint, Owner, Socket, State

__version__ = "0.1.0"

_WHERE = {
    "sockets": "sockets_api", "net_connections": "psutil_api", "process_connections": "psutil_api",
    "Socket": "records", "Endpoint": "records", "Owner": "records", "State": "records",
    **dict.fromkeys(("SockscopeError", "UsageError", "DecodeError", "NetlinkError", "NotSupported",
                     "PermissionDenied", "NoSuchProcess", "CannotInspect", "AccessDenied"), "errors"),
}


def __getattr__(name: str) -> object:
    # The query layer and the records (dataclasses, enum) are imported on first
    # use, so that `import sockscope` and the listing's fast path stay cheap; the
    # errors too (the listing loads them with the modules it preloads: cli._preload).
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sockscope' has no attribute {name!r}")
    value = getattr(__import__(f"sockscope.{module}", fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = (
    "sockets",
    "net_connections",
    "process_connections",
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
    "NoSuchProcess",
    "CannotInspect",
    "AccessDenied",
    "__version__",
)
