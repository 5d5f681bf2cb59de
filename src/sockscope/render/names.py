"""Name look-ups for the table, cached: services, protocols, hosts, interfaces.

Service and protocol names come from ``/etc/services`` and ``/etc/protocols``
(parsed once, lazily, as ss's getservbyport/getprotobynumber read them);
ports inside the kernel's ephemeral range are never named, like ss, but for
those rpcbind names with ``-r`` (render/rpcbind.py).
"""

from __future__ import annotations

SERVICES, PROTOCOLS = "/etc/services", "/etc/protocols"
_MAX_TABLE = 8 << 20  # bytes read of either file at most (Fedora's services: 0.7 MiB, 11,000 lines)
_services: dict[tuple[int, bytes], bytes] | None = None
_named: dict[str | None, dict[int, str]] = {}  # protocol -> named_ports(protocol)
_protocols: dict[int, str] | None = None
_ephemeral: tuple[int, int] | None = None
#: protocol -> port -> rpcbind's name for it (None: numeric), before /etc/services and the ephemeral
#: range (``-r``: render/rpcbind.py, :func:`use_rpc`)
_rpc: dict[str, dict[int, str | None]] = {}
_hosts: dict[str, str] = {}
_ifnames: dict[tuple[str | None, int], str] = {}  # (namespace label or None, index) -> name


def _read(path: str, limit: int = _MAX_TABLE) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return b""


def _load_services() -> dict[tuple[int, bytes], bytes]:
    """(port, protocol) -> name of each line ``NAME PORT/PROTOCOL [ALIAS …] [# …]`` of
    /etc/services, the first line of a (port, protocol) winning as getservbyport reads them; a port
    is 1–5 ASCII digits up to 65535 (anything else names nothing)."""
    table: dict[tuple[int, bytes], bytes] = {}
    for line in _read(SERVICES).split(b"\n"):
        words = line.split(b"#", 1)[0].split()
        if len(words) < 2:
            continue
        port, slash, proto = words[1].partition(b"/")
        if slash and len(port) <= 5 and port.isdigit() and int(port) <= 0xFFFF:
            table.setdefault((int(port), proto), words[0])
    return table


def numbered(path: str, digits: int, limit: int = _MAX_TABLE) -> dict[int, str]:
    """number -> name of each line ``NAME NUMBER [ALIAS …] [# …]`` of a file of the kind of
    /etc/protocols and /etc/rpc (the first ``limit`` bytes), the first line of a number winning as
    glibc reads them; a number is 1 to ``digits`` ASCII digits (anything else names nothing)."""
    table: dict[int, str] = {}
    for line in _read(path, limit).split(b"\n"):
        parts = line.split(b"#", 1)[0].split()
        if len(parts) >= 2 and len(parts[1]) <= digits and parts[1].isdigit():
            table.setdefault(int(parts[1]), parts[0].decode("utf-8", "replace"))
    return table


def _load_protocols() -> dict[int, str]:
    return numbered(PROTOCOLS, 3)  # (at most 3 ASCII digits)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ip_local_port_range (ss's fallback: 1024-4999)."""
    global _ephemeral
    if _ephemeral is None:
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                lo, hi = (int(x) for x in f.read().split()[:2])
            _ephemeral = (lo, hi)
        except (OSError, ValueError):
            _ephemeral = (1024, 4999)
    return _ephemeral


def use_rpc(names: dict[str, dict[int, str | None]]) -> None:
    """Name ports as rpcbind's registrations do (:attr:`sockscope.render.rpcbind.Registrations.names`)."""
    global _rpc
    _rpc = names
    _named.clear()


def rpc_named(proto: str | None) -> bool:
    """Whether rpcbind's registrations name some port of ``proto`` (in the ephemeral range too)."""
    return proto is not None and bool(_rpc.get(proto))


def service(port: int, proto: str | None) -> str | None:
    """The /etc/services name of ``port``/``proto``, None if none or ephemeral."""
    return named_ports(proto).get(port)


def named_ports(proto: str | None) -> dict[int, str]:
    """port -> /etc/services name, for the ports of ``proto`` that ss names: each one but 0 and
    those in the kernel's ephemeral range that the file names, then as rpcbind names them
    (:func:`use_rpc`); ``proto`` None: of any protocol,
    the file's first line for the port (getservbyport's answer for no protocol).  Made once for
    each protocol."""
    global _services
    table = _named.get(proto)
    if table is None:
        if _services is None:
            _services = _load_services()
        lo, hi = ephemeral_range()
        if proto is not None:
            want = proto.encode("ascii", "replace")
            table = {p: name.decode("utf-8", "replace") for (p, pr), name in _services.items()
                     if pr == want and p and not lo <= p <= hi}
        else:
            table = {}
            for (p, _), name in _services.items():  # (in the file's order: a port's first line wins)
                if p and not lo <= p <= hi and p not in table:
                    table[p] = name.decode("utf-8", "replace")
        for p, rpc_name in _rpc.get(proto or "", {}).items():  # (rpcbind's first, as ss asks them)
            if rpc_name is None:
                table.pop(p, None)
            else:
                table[p] = rpc_name
        _named[proto] = table
    return table


def protocol(number: int) -> str:
    """``/etc/protocols`` name of an IP protocol number, or ``ipproto-N``."""
    global _protocols
    if _protocols is None:
        _protocols = _load_protocols()
    return _protocols.get(number) or f"ipproto-{number}"


def host(address: str) -> str:
    """Reverse-resolve an IP address (``-r``); the address itself on failure."""
    name = _hosts.get(address)
    if name is None:
        import _socket  # (the C module: ``socket``'s enums cost ~6-9 ms of a start)

        target = address[7:] if address.startswith("::ffff:") and "." in address else address
        try:
            name = _socket.gethostbyaddr(target)[0]
        except (OSError, UnicodeError):
            name = address
        if len(_hosts) >= 1 << 16:  # bounded: -E -r follows ever new peers
            _hosts.clear()
        _hosts[address] = name
    return name


def ifname(index: int, netns: str | None = None) -> str:
    """Interface name of an index (the number as text when unknown).

    An index means something only in its own network namespace: with
    ``netns`` (a label of ``--all-netns``) the name is the one
    :func:`learn_ifname` found inside that namespace; without, it is looked
    up in the caller's namespace."""
    name = _ifnames.get((netns, index))
    if name is None:
        if netns is not None:
            return str(index)  # not learnt inside its namespace: the number, never another namespace's name
        name = _ifnames[(None, index)] = _lookup_ifname(index)
    return name


def learn_ifname(netns: str, index: int) -> None:
    """Look ``index`` up now, from inside namespace ``netns`` (the calling
    thread must be in it), for :func:`ifname` to answer later from anywhere."""
    if (netns, index) not in _ifnames:
        _ifnames[(netns, index)] = _lookup_ifname(index)


def _lookup_ifname(index: int) -> str:
    import _socket  # (the C module: ``socket``'s enums cost ~6-9 ms of a start)

    try:
        return _socket.if_indextoname(index)
    except OSError:
        return str(index)


NL_PROTOCOLS = {
    0: "rtnl", 1: "unused", 2: "usersock", 3: "fw", 4: "tcpdiag", 5: "nflog", 6: "xfrm",
    7: "selinux", 8: "iscsi", 9: "audit", 10: "fiblookup", 11: "connector", 12: "nft",
    13: "ip6fw", 14: "dec-rt", 15: "uevent", 16: "genl", 18: "scsi-trans", 19: "ecryptfs",
    20: "rdma", 21: "crypto",
}

ETHERTYPES = {
    0x0001: "802_3", 0x0002: "ax25", 0x0004: "802_2", 0x0005: "snap", 0x0060: "loop",
    0x0800: "ip", 0x0805: "x25", 0x0806: "arp", 0x8035: "rarp", 0x809B: "atalk",
    0x8100: "8021q", 0x8137: "ipx", 0x86DD: "ipv6", 0x8847: "mpls_uc", 0x8848: "mpls_mc",
    0x8863: "ppp_disc", 0x8864: "ppp_ses", 0x88A8: "802.1ad", 0x88CC: "lldp", 0x88E5: "macsec",
}


def process_name(pid: int) -> str | None:
    """comm of a live pid (for netlink port ids), None if no such process."""
    from sockscope.processes import comm

    return comm(pid)


_cgroups: dict[int, str] | None = None


def cgroup_path(cgroup_id: int) -> str:
    """The cgroup v2 path of a cgroup id (its directory's inode on the cgroup2
    mount), like ss's ``cg_id_to_path``; ``unreachable:ID`` when not found."""
    global _cgroups
    if _cgroups is None:
        import os

        from sockscope.filter.values import cgroup2_mount

        _cgroups = {}
        root = cgroup2_mount()
        try:
            if root is None:
                raise OSError("no cgroup2 mount")
            _cgroups[os.stat(root).st_ino] = "/"
            for dirpath, dirnames, _files in os.walk(root):
                for d in dirnames:
                    full = os.path.join(dirpath, d)
                    try:
                        _cgroups[os.stat(full).st_ino] = full[len(root):]
                    except OSError:
                        pass
        except OSError:
            pass
    return _cgroups.get(cgroup_id, f"unreachable:{cgroup_id:x}")
