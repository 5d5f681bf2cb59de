"""The table's cells of netlink and packet sockets (``ss -f netlink``, ``-0``): their four
address cells (ss's "ends") and the rows of a batch of :mod:`sockscope.kernel.others`.

Imported only when such sockets are listed: an inet or UNIX listing does not load it.
"""

from __future__ import annotations

from sockscope.filter.states import ESTABLISHED
from sockscope.render import names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockscope.kernel.others import Batch
    from sockscope.render.table import CellMaker


def rows(maker: CellMaker, b: Batch) -> list[list[str]]:
    """The rows of a netlink or packet batch (:class:`~sockscope.kernel.others.Batch`): the cells
    :meth:`CellMaker.cells <sockscope.render.table.CellMaker.cells>` makes of their records,
    without making records."""
    owners = maker.owners if maker.opts.processes else None
    numeric = maker.opts.numeric
    out = []
    if b.table == "nl":  # (no users:(…) for netlink sockets, also with -p: ss names their owner in the address)
        for proto, st, portid, dst, group, rq, wq in zip(b.protocol, b.state, b.portid, b.dst_portid, b.dst_group,
                                                          b.rqueue, b.wqueue):
            peer = (str(group), dst) if st == ESTABLISHED else ("", 0)  # (connected)
            out.append(["nl", "UNCONN", f"{rq:<6}", f"{wq:<6}", *netlink_ends(numeric, proto, portid, *peer), "", ""])
    else:
        ns = maker.netns  # (--all-netns: the namespace the caller is in now, whose interfaces these are)
        for ptype, proto, ino, rq, ifindex in zip(b.type, b.protocol, b.inode, b.rqueue, b.ifindex):
            if ns is not None and ifindex:
                names.learn_ifname(ns, ifindex)
            out.append(["p_raw" if ptype == 3 else "p_dgr", "UNCONN", f"{rq:<6}", f"{0:<6}",
                        *packet_ends(numeric, proto, ifindex, ns), owners.text(ino) if owners is not None else "",
                        ""])
    return out


def netlink_ends(numeric: bool, proto: int, portid: int, peer: str, peer_port: int) -> list[str]:
    """A netlink socket's four address cells (``-n``: ``numeric``): protocol and owner, group and peer portid."""
    pname = str(proto) if numeric else names.NL_PROTOCOLS.get(proto, str(proto))
    if portid == -1:
        owner = "*"
    elif numeric:
        owner = str(portid)
    elif portid == 0:
        owner = "kernel"
    else:
        comm = names.process_name(portid) if portid > 0 else None
        owner = f"{comm}/{portid}" if comm is not None else str(portid)
    return [pname + ":", owner] + ([peer + ":", str(peer_port)] if peer else ["*", ""])


def packet_ends(numeric: bool, proto: int, ifindex: int, netns: str | None) -> list[str]:
    """A packet socket's four address cells (``-n``: ``numeric``): ethertype and interface, no peer."""
    if proto == 3:
        addr = "*"
    else:
        addr = f"[{proto}]" if numeric else names.ETHERTYPES.get(proto, f"[{proto}]")
    return [addr + ":", "*" if not ifindex else names.ifname(ifindex, netns), "*", ""]


__all__ = ["rows", "netlink_ends", "packet_ends"]
