"""Filter syntax tree -> ``INET_DIAG_REQ_BYTECODE`` program, in ss's exact shapes.

Contract
--------
:func:`compile_bytecode` returns the bytes to attach to an inet_diag dump
request (``kernel.inet.encode_request(..., bytecode=...)``), or None when some
node has no bytecode (``dev``, unix/link/netlink hosts, as in ss 6.1, and
vsock/tipc/xdp hosts): then no
bytecode is sent at all and the predicate filters in userspace.  The output
always passes the kernel's ``inet_diag_bc_audit`` (fwmark additionally needs
CAP_NET_ADMIN in the socket's network namespace, else the kernel answers EPERM).

The machine (``inet_diag_bc_run``): ops are ``struct inet_diag_bc_op {u8 code;
u8 yes; u16 no;}``; a true op advances ``yes`` bytes, a false one ``no``
bytes; the socket is accepted iff execution stops exactly at the end, so a
jump 4 bytes past the end rejects.  Shapes (``ssfilter_bytecompile``):

* leaf: ``{code, L, L+4}`` + operands (L = its length);
* ``a and b``: ``a ‖ b`` with a's "reject" jumps (those landing 4 past a's
  end) widened by ``len(b)`` (ss's ``ssfilter_patch``; done here by writing
  each reject jump once, when its block is complete);
* ``a or b``: ``a ‖ {JMP, 4, len(b)+4} ‖ b``;  ``not a``: ``a ‖ {JMP, 4, 8}``;
* port ranges: ``{S_GE|S_LE|D_GE|D_LE, 8, 12} ‖ {0, 0, port}``;
* hosts: ``{S_COND|D_COND, L, L+4} ‖ inet_diag_hostcond ‖ address`` per
  address, joined by ``{JMP, 4, to the end}`` (several come from DNS).
  ``inet_diag_hostcond`` is ``{u8 family, u8 prefix_len, 2 pad, s32 port}``
  (port -1: any; AF_UNSPEC: port only, with 4 zero address bytes like ss;
  an s32: a port outside 0..65535 is sent as is and matches nothing, as in ss).
  Unlike ss, each DNS address keeps its own family.
"""

from __future__ import annotations

import struct

from sockscope.filter.expr import (
    And, Autobound, CgroupCond, Expr, HostCond, MarkCond, Not, Or, PortCmp,
)

# include/uapi/linux/inet_diag.h
BC_NOP = 0
BC_JMP = 1
BC_S_GE = 2
BC_S_LE = 3
BC_D_GE = 4
BC_D_LE = 5
BC_AUTO = 6
BC_S_COND = 7
BC_D_COND = 8
BC_DEV_COND = 9
BC_MARK_COND = 10
BC_S_EQ = 11
BC_D_EQ = 12
BC_CGROUP_COND = 13

OP = struct.Struct("=BBH")  # struct inet_diag_bc_op
HOSTCOND = struct.Struct("=BBxxi")  # struct inet_diag_hostcond (then the address)
MARKCOND = struct.Struct("=II")  # struct inet_diag_markcond
CGROUP_ID = struct.Struct("=Q")  # a packed u64 after the op

#: The attribute length is a u16 that includes its 4-byte header.
MAX_LEN = 0xFFFF - 4

_RANGE_CODES = {("src", "ge"): BC_S_GE, ("src", "le"): BC_S_LE,
                ("dst", "ge"): BC_D_GE, ("dst", "le"): BC_D_LE}


class _NoBytecode(Exception):
    """Some node cannot be expressed in bytecode."""


def compile_bytecode(expr: Expr | None) -> bytes | None:
    """The inet_diag bytecode program for ``expr``; None if it has none (see module doc)."""
    if expr is None:
        return None
    try:
        code, exits = _compile(expr)
        _settle(code, exits)
    except _NoBytecode:
        return None
    return bytes(code)


# _compile returns (code, exits): the offsets of the ops that reject, i.e. whose
# "no" must jump 4 bytes past the end of the block they end up in.  ss writes
# them at once and re-targets them with ssfilter_patch when an "and" appends to
# the block; here they are written once, by _settle, when the block stops
# growing (the left side of "or", the inside of "not", the whole program):
# the same bytes, without walking the program again for every "and".

def _settle(code: bytearray, exits: list[int]) -> None:
    """Point the rejecting ops of ``code`` 4 bytes past its end."""
    end = len(code) + 4
    for pos in exits:
        c, yes, _no = OP.unpack_from(code, pos)
        OP.pack_into(code, pos, c, yes, _jump(end - pos))


def _compile(e: Expr) -> tuple[bytearray, list[int]]:
    spine: list[And | Or] = []  # iterative on the left spine: long and/or chains
    while isinstance(e, (And, Or)):
        spine.append(e)
        e = e.left
    code, exits = _compile_operand(e)
    for node in reversed(spine):
        b, b_exits = _compile(node.right)
        base = len(code)
        if isinstance(node, And):  # a's rejects will jump past b as well
            code += b
            exits.extend(base + p for p in b_exits)
        else:  # a's rejects land on b; a's accept jumps over b
            _settle(code, exits)
            code += _op(BC_JMP, 4, len(b) + 4) + b
            exits = [base + 4 + p for p in b_exits]
        if len(code) > MAX_LEN:
            raise _NoBytecode
    return code, exits


def _compile_operand(e: Expr) -> tuple[bytearray, list[int]]:
    if isinstance(e, Not):
        code, exits = _compile(e.expr)
        _settle(code, exits)  # its rejects land past the JMP: accept; the JMP rejects
        return code + _op(BC_JMP, 4, 8), [len(code)]
    if isinstance(e, HostCond):
        return _host(e)
    if isinstance(e, PortCmp):
        if e._userspace():
            raise _NoBytecode  # not an inet port
        return _op(_RANGE_CODES[e.side, e.op], 8, 12) + _op(BC_NOP, 0, e.port), [0]
    if isinstance(e, Autobound):
        return _op(BC_AUTO, 4, 8), [0]
    if isinstance(e, MarkCond):
        return _op(BC_MARK_COND, 12, 16) + MARKCOND.pack(e.mark, e.mask), [0]
    if isinstance(e, CgroupCond):
        return _op(BC_CGROUP_COND, 12, 16) + CGROUP_ID.pack(e.cgroup_id), [0]
    raise _NoBytecode  # dev, unix/link/netlink/vsock/tipc/xdp hosts


def _jump(no: int) -> int:
    if no > 0xFFFF:
        raise _NoBytecode  # a jump too long for the u16 field
    return no


def _op(code: int, yes: int, no: int) -> bytearray:
    return bytearray(OP.pack(code, yes, _jump(no)))


def _host(e: HostCond) -> tuple[bytearray, list[int]]:
    """One cond per address, the first ones jumping to the end when true (ss's DNS shape), each of
    them the *first* address's: ss 6.1 writes its first address into every cond of a host name's
    list, so the kernel keeps that address's sockets alone (``src localhost`` with ``127.0.0.1`` and
    ``::1``: 127.0.0.1's and the v4-mapped ones), and the userspace check of the whole list keeps
    them all; ss reading /proc checks the whole list only, as the predicate does then."""
    code = BC_S_COND if e.side == "src" else BC_D_COND
    conds = [(10 if net.version == 6 else 2, net.prefixlen, net.network_address.packed)
             for net in e.prefixes[:1]] * len(e.prefixes) or [(0, 0, bytes(4))]
    total = sum(4 + HOSTCOND.size + len(raw) for _, _, raw in conds) + 4 * (len(conds) - 1)
    out = bytearray()
    last = 0
    for i, (family, plen, raw) in enumerate(conds):
        oplen = 4 + HOSTCOND.size + len(raw)
        last = len(out)
        out += _op(code, oplen, oplen + 4) + HOSTCOND.pack(family, plen, e.port) + raw
        if i < len(conds) - 1:
            out += _op(BC_JMP, 4, total - len(out))
    return out, [last]


def required_ports(e: Expr) -> tuple[int, int]:
    """The (sport, dport) every socket ``e`` matches must have, 0 where there
    is no single one: from ``sport = :P`` / ``dport = :P`` (or a host with a
    port) ANDed at the top of the expression.  The kernel can skip every other
    socket before running the bytecode (see ``kernel.inet.encode_request``)."""
    ports = [0, 0]
    todo = [e]
    while todo:
        x = todo.pop()
        if isinstance(x, And):
            todo += [x.left, x.right]
        elif isinstance(x, HostCond) and 0 < x.port <= 0xFFFF:
            i = 0 if x.side == "src" else 1
            ports[i] = ports[i] or x.port  # two different ones: nothing matches, either is right
    return ports[0], ports[1]


__all__ = ["compile_bytecode", "required_ports", "OP", "HOSTCOND", "MARKCOND", "CGROUP_ID", "MAX_LEN",
           "BC_NOP", "BC_JMP", "BC_S_GE", "BC_S_LE", "BC_D_GE", "BC_D_LE", "BC_AUTO",
           "BC_S_COND", "BC_D_COND", "BC_DEV_COND", "BC_MARK_COND", "BC_S_EQ", "BC_D_EQ",
           "BC_CGROUP_COND"]
