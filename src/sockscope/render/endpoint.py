"""ss-style endpoint text for the human views (``who``, ``top``): one function per job.

* :func:`inet_address` — an IP address as ss prints it: IPv4 as is, IPv6 in
  brackets (``[::1]``, ``[::ffff:127.0.0.1]``), the dual-stack wildcard ``::``
  as ``*`` (``[::]`` when the socket is v6only), a bound device as ``%if``
  after it (``127.0.0.1%lo``, ``[fe80::1]%v0``).
* :func:`endpoint` — one end of a socket record, as ss's ``Address:Port``
  column pair reads: ``addr:port`` for TCP/UDP (port 0 is ``*``; the device
  only on the local end, like ss), ``NAME INODE`` / ``* PEER-INODE`` for UNIX
  sockets (ss's separator there is a space; an unnamed socket is ``*``),
  ``PROTOCOL:PORTID`` for netlink sockets, ``[ETHERTYPE]:DEVICE`` for packet ones.
* :func:`tolerant` — an output stream that writes what its encoding lacks as
  backslash escapes (never a UnicodeEncodeError).
* :func:`escape` — text that is safe on one line of a terminal.  ss writes a
  UNIX name's bytes raw, so a newline in a path cuts its row; these views
  escape control characters (``\\x0a``) and bytes that are not UTF-8 (kept as
  surrogates by ``os.fsdecode``: ``\\xff``, the original byte).  For printable
  names the text is ss's, byte for byte.

Ports are numeric (ss -n).  Nothing here reads the system except the
interface name of an index (:func:`sockscope.render.names.ifname`).
"""

from __future__ import annotations

from sockscope._addr import AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX
from sockscope.errors import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

    from sockscope.records import Socket



def escape(text: str) -> str:
    """``text`` with every non-printable character escaped (:func:`sockscope.errors.printable`)."""
    return printable(text)


def inet_address(family: int, address: str, v6only: bool | None = None, ifname: str = "") -> str:
    """An IP address as ss prints it (see the module docstring); ``ifname`` is the bound device."""
    if family == AF_INET6:
        text = "*" if address == "::" and not v6only else f"[{address}]"
    else:
        text = address
    return f"{text}%{escape(ifname)}" if ifname else text


def endpoint(s: Socket, which: str) -> str:
    """The ``local`` or ``peer`` end of ``s`` as ss prints it (numeric ports), escaped."""
    local = which == "local"
    ep = s.local if local else s.peer
    fam = s.family
    if fam == AF_INET or fam == AF_INET6:
        ifname = ""
        if local and s.ifindex:
            from sockscope.render import names

            ifname = names.ifname(s.ifindex, s.netns)
        return f"{inet_address(fam, ep.address, s.v6only, ifname)}:{ep.port or '*'}"
    if fam == AF_UNIX:
        if local:
            return f"{escape(ep.address) or '*'} {s.inode}"
        return f"* {s.peer_inode or 0}"
    if fam == AF_NETLINK or fam == AF_PACKET:  # the listing's cells, numeric (ss -n): address and port joined
        from sockscope.render.ends import netlink_ends, packet_ends

        if fam == AF_NETLINK:
            cells = netlink_ends(True, s.protocol or 0, s.local.port, s.peer.address, s.peer.port)
        else:
            cells = packet_ends(True, s.protocol or 0, s.local.port, s.netns)
        return escape("".join(cells[:2] if local else cells[2:]))
    return escape(ep.address) or "*"


def tolerant(stream: IO[str]) -> None:
    """Make ``stream`` write characters its encoding lacks (``PYTHONIOENCODING=ascii``,
    a C locale) as backslash escapes instead of raising UnicodeEncodeError."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="backslashreplace")
        except (ValueError, OSError):
            pass


__all__ = ["escape", "inet_address", "endpoint", "tolerant"]
