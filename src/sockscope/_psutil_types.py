"""psutil's named tuples ``addr``, ``sconn`` and ``pconn``, as :func:`sockscope.net_connections`
and :func:`sockscope.process_connections` return them.

In a module of their own because :mod:`collections` costs ~1.5 ms of start-up:
the listing (``sockscope -tan``) never imports this; :mod:`sockscope.query`
hands the names out on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple

    class addr(NamedTuple):
        ip: str
        port: int

    class sconn(NamedTuple):
        fd: int
        family: int
        type: int
        laddr: addr | tuple[()] | str
        raddr: addr | tuple[()] | str
        status: str
        pid: int | None

    class pconn(NamedTuple):
        fd: int
        family: int
        type: int
        laddr: addr | tuple[()] | str
        raddr: addr | tuple[()] | str
        status: str

else:
    from collections import namedtuple

    addr = namedtuple("addr", "ip port")
    addr.__doc__ = "psutil's ``addr``: an (ip, port) pair."
    sconn = namedtuple("sconn", "fd family type laddr raddr status pid")
    sconn.__doc__ = "psutil's ``sconn``: one row of :func:`sockscope.net_connections`."
    pconn = namedtuple("pconn", "fd family type laddr raddr status")
    pconn.__doc__ = "psutil's ``pconn``: one row of :func:`sockscope.process_connections`."

__all__ = ["addr", "sconn", "pconn"]
