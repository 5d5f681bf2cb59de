"""argv words (or a ``-F`` file) -> filter syntax tree, with ss's grammar and quirks.

Contract
--------
:func:`parse` takes the words after the ``state …`` part and returns an
:class:`~.expr.Expr`, or None for an empty expression.  Every failure is a
:class:`~.expr.FilterSyntaxError` (nothing else escapes, whatever the input).

Tokens: each word is re-split on blanks (space, tab); a backslash makes the
next character literal (ss's ``get_token_from_line``).  Unlike ss, ``(`` glued
to the front of a word and surplus ``)`` glued to its end are split off, so
``(dport = :22)`` works too.  Keywords are ss's, case-sensitive.

Grammar (ss's ``ssfilter.y``): ``list := expr | list [and|or] expr`` (no
operator = and), evaluated flat, left to right: ``A or B and C`` is
``(A or B) and C``.  ``expr := ( list ) | not expr | src|dst [=] HOST |
sport|dport [OP] HOST | dev|fwmark|cgroup [=|!=] VALUE | autobound``.

Hosts follow ss's ``parse_hostcond`` (a family prefix, ``[v6]``, ``*``,
``host:port``, ``/len`` or ``/netmask``, DNS fallback, services).  Where ss
accepts nonsense that silently matches nothing, this parser refuses it: ports
outside 0..65535, ``*`` as the bound of ``>=``/``<=``, ``fwmark`` with trailing
garbage, ``vsock:`` hosts (sockscope lists no vsock sockets).

Lookups (DNS, services, interfaces, cgroups) go through a :class:`Resolver`;
pass a subclass to make them hermetic.
"""

from __future__ import annotations

import os
import sys

from sockscope.errors import UsageError
from sockscope.filter.expr import (
    AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX, AF_UNSPEC,
    Autobound, CgroupCond, DevCond, Expr, FilterSyntaxError, HostCond, LinkCond,
    MarkCond, NetlinkCond, Not, Or, And, PortCmp, UnixCond,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from typing import Sequence

# ipaddress and _socket (name look-ups) are imported where first needed: a
# filter of ports alone needs neither, and start-up time is a feature (re,
# enum, collections are not used here at all: ~6 ms of imports).

_KINDS = {word: kind for kind, words in (
    ("not", "! not"), ("and", "& && and"), ("or", "| || or"), ("(", "("), (")", ")"),
    ("dst", "dst"), ("src", "src"), ("dport", "dport"), ("sport", "sport"), ("dev", "dev"),
    ("fwmark", "fwmark"), ("cgroup", "cgroup"), ("autobound", "autobound"),
    ("ge", ">= ge geq"), ("le", "<= le leq"), ("ne", "!= ne neq"), ("eq", "= == eq"),
    ("gt", "> gt"), ("lt", "< lt"),
) for word in words.split()}
_OPERATORS = frozenset(("ge", "le", "ne", "eq", "gt", "lt"))
_PREFIXES = (("unix:", AF_UNIX), ("link:", AF_PACKET), ("netlink:", AF_NETLINK),
             ("vsock:", 40), ("inet:", AF_INET), ("inet6:", AF_INET6))
#: Deeper nesting is refused (the parser and the back ends recurse on it).
MAX_DEPTH = 100
_FAMILIES = frozenset((AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET))

# iproute2 lib/ll_proto.c (names compared case-insensitively) and lib/rt_names.c.
_LL_PROTOS = {
    "loop": 0x0060, "pup": 0x0200, "pupat": 0x0201, "ip": 0x0800, "x25": 0x0805, "arp": 0x0806,
    "bpq": 0x08FF, "ieeepup": 0x0A00, "ieeepupat": 0x0A01, "dec": 0x6000, "dna_dl": 0x6001,
    "dna_rc": 0x6002, "dna_rt": 0x6003, "lat": 0x6004, "diag": 0x6005, "cust": 0x6006,
    "sca": 0x6007, "rarp": 0x8035, "atalk": 0x809B, "aarp": 0x80F3, "ipx": 0x8137,
    "ipv6": 0x86DD, "ppp_disc": 0x8863, "ppp_ses": 0x8864, "atmmpoa": 0x884C,
    "atmfate": 0x8884, "802_3": 0x0001, "ax25": 0x0002, "all": 0x0003, "802_2": 0x0004,
    "snap": 0x0005, "ddcmp": 0x0006, "wan_ppp": 0x0007, "ppp_mp": 0x0008, "localtalk": 0x0009,
    "can": 0x000C, "ppptalk": 0x0010, "tr_802_2": 0x0011, "mobitex": 0x0015, "control": 0x0016,
    "irda": 0x0017, "econet": 0x0018, "tipc": 0x88CA, "aoe": 0x88A2, "802.1q": 0x8100,
    "802.1ad": 0x88A8, "lldp": 0x88CC, "ipv4": 0x0800,
}
_NL_PROTOS = {
    "rtnl": 0, "unused": 1, "usersock": 2, "fw": 3, "tcpdiag": 4, "nflog": 5, "xfrm": 6,
    "selinux": 7, "iscsi": 8, "audit": 9, "fiblookup": 10, "connector": 11, "nft": 12,
    "ip6fw": 13, "dec-rt": 14, "uevent": 15, "genl": 16, "scsi-trans": 18, "ecryptfs": 19,
    "rdma": 20, "crypto": 21,
}

_SPACE = " \t\n\v\f\r"
_OCT, _DEC, _HEX = frozenset("01234567"), frozenset("0123456789"), frozenset("0123456789abcdefABCDEF")


def _c_num(text: str, pos: int = 0) -> tuple[int, int] | None:
    """(signed value, end) of the number C's strto[u]l(base 0) reads at ``pos``
    (leading white space, a sign, then 0x… hex, 0… octal or decimal); None: no digits."""
    n = len(text)
    while pos < n and text[pos] in _SPACE:
        pos += 1
    sign = 1
    if pos < n and text[pos] in "+-":
        sign = -1 if text[pos] == "-" else 1
        pos += 1
    if pos >= n or text[pos] not in _DEC:
        return None
    if text[pos] == "0" and text[pos + 1:pos + 2] in ("x", "X") and text[pos + 2:pos + 3] in _HEX:
        digits, base, start = _HEX, 16, pos + 2
    elif text[pos] == "0":
        digits, base, start = _OCT, 8, pos
    else:
        digits, base, start = _DEC, 10, pos
    end = start
    while end < n and text[end] in digits:
        end += 1
    return sign * int(text[start:end], base), end


def _c_int(text: str, low: int, high: int) -> int | None:
    """The whole of ``text`` as a base-0 C integer in [low, high], else None."""
    r = _c_num(text)
    if r is None or r[1] != len(text) or not low <= r[0] <= high:
        return None
    return r[0]


def _ipv4(text: str) -> bytes | None:
    """iproute2's ``get_addr_ipv4``: 1 to 4 base-0 parts, missing ones zero (``127/8``)."""
    parts: list[int] = []
    pos = 0
    for i in range(4):
        r = _c_num(text, pos)
        if r is None or not 0 <= r[0] <= 255:
            return None
        parts.append(r[0])
        pos = r[1]
        if pos == len(text):
            return bytes(parts + [0] * (4 - len(parts)))
        if i == 3 or text[pos] != ".":
            return None
        pos += 1
    return None


class Resolver:
    """The name lookups a filter may need.  Override any method to make them hermetic.

    Every method returns None/empty for "not found" and never raises.
    """

    def hosts(self, name: str, family: int) -> list[tuple[int, bytes]]:
        """All (family, packed address) of ``name``: A then AAAA for AF_UNSPEC."""
        import _socket as socket  # the C module: socket.py's enum set-up costs start-up time

        out: list[tuple[int, bytes]] = []
        for fam in ((AF_INET, AF_INET6) if family == AF_UNSPEC else (family,)):
            try:
                infos = socket.getaddrinfo(name, None, fam, socket.SOCK_STREAM)
            except (OSError, UnicodeError, ValueError):
                continue
            for info_fam, _t, _p, _c, sa in infos:
                try:
                    raw = socket.inet_pton(info_fam, str(sa[0]).split("%", 1)[0])
                except (OSError, ValueError):
                    continue
                if (int(info_fam), raw) not in out:
                    out.append((int(info_fam), raw))
        return out

    def service(self, name: str, proto: str) -> int | None:
        """The port of service ``name`` for ``proto`` ("tcp"/"udp") from the services database."""
        import _socket as socket

        try:
            return socket.getservbyname(name, proto)
        except (OSError, ValueError):
            return None

    def ifindex(self, name: str) -> int | None:
        """The index of interface ``name`` in the current network namespace."""
        import _socket as socket

        try:
            return socket.if_nametoindex(name)
        except (OSError, ValueError):
            return None

    def cgroup_id(self, path: str) -> int | None:
        """The cgroup v2 id (the directory's inode) of ``path``, relative to the cgroup2 mount."""
        mount = _cgroup2_mount()
        if mount is None or "\0" in path:
            return None
        candidates = [os.path.join(mount, path.lstrip("/"))]
        if os.path.isabs(path) and (path + "/").startswith(mount.rstrip("/") + "/"):
            candidates.insert(0, path)
        for candidate in candidates:
            try:
                st = os.stat(candidate)
            except (OSError, ValueError):
                continue
            if os.path.isdir(candidate):
                return st.st_ino
        return None


def _cgroup2_mount() -> str | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split(" ")[4].replace("\\040", " ")
    except OSError:
        pass
    return None


class Token:
    """One token: its text after unescaping, its column in the expression, its kind."""

    __slots__ = ("text", "start", "kind")

    def __init__(self, text: str, start: int, kind: str) -> None:
        self.text, self.start, self.kind = text, start, kind

    def __repr__(self) -> str:
        return f"Token(text={self.text!r}, start={self.start!r}, kind={self.kind!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Token):
            return NotImplemented
        return (self.text, self.start, self.kind) == (other.text, other.start, other.kind)

    def __hash__(self) -> int:
        return hash((self.text, self.start, self.kind))


def tokenize(words: Sequence[str]) -> tuple[str, list[Token]]:
    """(the expression as one line, its tokens).  See the module docstring for the rules."""
    tokens: list[Token] = []
    offset = 0
    for word in words:
        _split_word(word, offset, tokens)
        offset += len(word) + 1
    display = " ".join(words)
    return display.translate(_ONE_LINE), tokens


_ONE_LINE = str.maketrans("\t\n\r\v\f", "     ")


def _split_word(word: str, base: int, out: list[Token]) -> None:
    i, n = 0, len(word)
    while i < n:
        while i < n and word[i] in " \t":
            i += 1
        chars: list[tuple[str, bool, int]] = []  # (char, escaped, column)
        while i < n and word[i] not in " \t":
            if word[i] == "\\":
                if i + 1 < n:
                    chars.append((word[i + 1], True, base + i))
                i += 2
            else:
                chars.append((word[i], False, base + i))
                i += 1
        if chars:
            _emit(chars, out)


def _emit(chars: list[tuple[str, bool, int]], out: list[Token]) -> None:
    """Append the token(s) of one blank-separated chunk, splitting glued parentheses."""
    while len(chars) > 1 and chars[0][:2] == ("(", False):
        out.append(Token("(", chars[0][2], "("))
        chars = chars[1:]
    opens = sum(1 for c in chars if c[:2] == ("(", False))
    closes = sum(1 for c in chars if c[:2] == (")", False))
    tail: list[Token] = []
    while len(chars) > 1 and chars[-1][:2] == (")", False) and closes > opens:
        tail.append(Token(")", chars[-1][2], ")"))
        chars = chars[:-1]
        closes -= 1
    text = "".join(c[0] for c in chars)
    out.append(Token(text, chars[0][2], _KINDS.get(text, "word")))
    out.extend(reversed(tail))


def parse(words: Sequence[str], *, family: int = AF_UNSPEC,
          protocols: Sequence[str] = ("tcp", "udp"), resolver: Resolver | None = None) -> Expr | None:
    """Parse a filter expression given as argv words; None when there are no tokens.

    ``family`` is ss's "preferred family": the last of -4/-6/-0/-x/-f given
    (AF_INET, AF_INET6, AF_PACKET, AF_UNIX, AF_NETLINK), or AF_UNSPEC.  A
    host without a prefix is read in that family.  ``protocols`` are the
    tables being listed among "tcp"/"udp": service names are looked up for
    those (a name with different tcp and udp ports is an error, like ss).
    """
    if family not in _FAMILIES:
        raise ValueError(f"unsupported preferred family {family}")
    display, tokens = tokenize(list(words))
    return _Parser(display, tokens, family, tuple(protocols), resolver or Resolver()).parse()


def parse_file(path: str, words: Sequence[str] = (), *, family: int = AF_UNSPEC,
               protocols: Sequence[str] = ("tcp", "udp"), resolver: Resolver | None = None) -> Expr | None:
    """``-F FILE``: ``words`` (the command line's expression) then the file's lines.

    A path starting with ``-`` reads standard input (as ss does); lines
    starting with ``#`` are skipped, and so are lines starting with ``0``,
    as ss 6.1 skips them (its comment test reads ``'#'`` and ``0`` alike), so
    that a filter file means the same to both.  An unreadable file is a UsageError.
    """
    try:
        if path.startswith("-"):
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read filter file {path}: {exc.strerror or exc}") from exc
    lines = [line for line in text.splitlines() if not line.startswith(("#", "0"))]
    return parse([*words, *lines], family=family, protocols=protocols, resolver=resolver)


class _Parser:
    def __init__(self, display: str, tokens: list[Token], family: int,
                 protocols: tuple[str, ...], resolver: Resolver) -> None:
        self.display = display
        self.tokens = tokens
        self.i = 0
        self.family = family
        self.protocols = protocols
        self.resolver = resolver
        self.depth = 0

    def error(self, reason: str, tok: Token | None = None) -> FilterSyntaxError:
        return FilterSyntaxError(self.display, reason, tok.start if tok else len(self.display))

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token | None:
        tok = self.peek()
        if tok is not None:
            self.i += 1
        return tok

    def parse(self) -> Expr | None:
        if not self.tokens:
            return None
        e = self.parse_list()
        tok = self.peek()
        if tok is not None:
            raise self.error('unexpected ")" without "("', tok)
        return e

    def parse_list(self) -> Expr:
        left = self.parse_expr(None)
        while (tok := self.peek()) is not None and tok.kind != ")":
            if tok.kind in ("and", "or"):
                self.i += 1
                right = self.parse_expr(tok)
                left = And(left, right) if tok.kind == "and" else Or(left, right)
            else:
                left = And(left, self.parse_expr(None))
        return left

    def parse_expr(self, after: Token | None) -> Expr:
        tok = self.take()
        if tok is None:
            raise self.error(f'nothing after "{after.text}"' if after else "unexpected end of filter")
        kind = tok.kind
        if kind in ("(", "not"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"more than {MAX_DEPTH} nested parentheses or negations", tok)
            try:
                return self.nested(tok)
            finally:
                self.depth -= 1
        if kind in ("src", "dst"):
            op = self.peek()
            if op is not None and op.kind == "eq":
                self.i += 1
            elif op is not None and op.kind in _OPERATORS:
                raise self.error(f'"{tok.text}" takes only "=" (write "not {tok.text} …" to negate)', op)
            return self.host(self.value(tok, "an address"), tok.text, False)
        if kind in ("sport", "dport"):
            return self.port_cond(tok)
        if kind in ("dev", "fwmark", "cgroup"):
            return self.simple_cond(tok)
        if kind == "autobound":
            return Autobound()
        if tok.text in ("state", "exclude", "excl"):
            raise self.error(f'"{tok.text}" must come before the filter expression', tok)
        if kind == ")":
            raise self.error('unexpected ")"', tok)
        raise self.error(f'unexpected "{tok.text}"', tok)

    def nested(self, tok: Token) -> Expr:
        if tok.kind == "not":
            return Not(self.parse_expr(tok))
        if (nxt := self.peek()) is not None and nxt.kind == ")":
            raise self.error('empty "( )"', nxt)
        inner = self.parse_list()
        if self.take() is None:
            raise self.error('"(" is never closed', tok)
        return inner

    def value(self, key: Token, what: str) -> Token:
        tok = self.take()
        if tok is None:
            raise self.error(f'"{key.text}" needs {what}')
        if tok.kind != "word":
            raise self.error(f'"{key.text}" needs {what}, not "{tok.text}"', tok)
        return tok

    def port_cond(self, key: Token) -> Expr:
        side = "src" if key.kind == "sport" else "dst"
        op = self.peek()
        kind = "eq"
        if op is not None and op.kind in _OPERATORS:
            self.i += 1
            kind = op.kind
        val = self.value(key, "a port")
        leaf = self.host(val, side, True)
        if kind == "eq":
            return leaf
        if kind == "ne":
            return Not(leaf)
        assert op is not None
        if isinstance(leaf, HostCond):
            port, fam = leaf.port, leaf.family
        elif isinstance(leaf, LinkCond):
            port, fam = leaf.ifindex, AF_PACKET
        elif isinstance(leaf, NetlinkCond):
            port, fam = leaf.portid, AF_NETLINK
        else:
            raise self.error(f'"{op.text}" compares ports; unix sockets have none', val)
        if port == -1:
            raise self.error(f'"{op.text}" needs a port number, not "{val.text}"', val)
        if kind in ("ge", "le"):
            return PortCmp(side, kind, port, fam)
        return Not(PortCmp(side, "le" if kind == "gt" else "ge", port, fam))

    def simple_cond(self, key: Token) -> Expr:
        op = self.peek()
        negate = False
        if op is not None and op.kind in ("eq", "ne"):
            self.i += 1
            negate = op.kind == "ne"
        elif op is not None and op.kind in _OPERATORS:
            raise self.error(f'"{key.text}" takes "=" or "!="', op)
        what = {"dev": "an interface", "fwmark": "a mark", "cgroup": "a cgroup path"}[key.kind]
        val = self.value(key, what)
        text = val.text
        leaf: Expr
        if key.kind == "dev":
            idx = self.resolver.ifindex(text)
            if idx:
                leaf = DevCond(idx, text)
            elif (num := _c_int(text, 0, 0xFFFFFFFF)) is not None:
                leaf = DevCond(num)
            else:
                raise self.error(f'cannot find device "{text}"', val)
        elif key.kind == "fwmark":
            mark, slash, mask = text.partition("/")
            m = _c_int(mark, 0, 0xFFFFFFFF)
            k = _c_int(mask, 0, 0xFFFFFFFF) if slash else 0xFFFFFFFF
            if m is None or k is None:
                raise self.error(f'"{text}" is not a mark (MARK or MARK/MASK)', val)
            leaf = MarkCond(m, k)
        else:
            cid = self.resolver.cgroup_id(text)
            if cid is None:
                raise self.error(f'cannot find cgroup "{text}"', val)
            leaf = CgroupCond(text, cid)
        return Not(leaf) if negate else leaf

    # -- hosts (ss's parse_hostcond) -------------------------------------------------

    def host(self, tok: Token, side: str, is_port: bool) -> Expr:
        text = tok.text
        fam = self.family
        for prefix, f in _PREFIXES:
            if text.startswith(prefix):
                fam, text = f, text[len(prefix):]
                break
        if fam == AF_UNIX:
            return UnixCond(side, text)
        if fam in (AF_PACKET, AF_NETLINK):
            return self.link_host(tok, text, side, is_port, fam)
        if fam not in (AF_UNSPEC, AF_INET, AF_INET6):
            raise self.error("vsock hosts are not supported", tok)
        addr, port_text = text, None
        if text.startswith("["):
            close = text.find("]", 1)
            if close < 0:
                raise self.error(f'missing "]" in "{tok.text}"', tok)
            addr, port_text = text[1:close], text[close + 1:]
        elif text.startswith("*"):
            port_text = text[1:]
        else:
            slash = text.find("/")
            colon = text.rfind(":", max(slash, 0))
            if colon >= 0:
                addr, port_text = text[:colon], text[colon:]
        if is_port:
            # ss reads the whole word as the port (brackets stripped): so
            # "dport = *:22" is any port, as in ss.
            port_text = text[1:text.find("]", 1)] if text.startswith("[") else text
        port = -1
        if port_text:
            if port_text[0] == ":":
                port_text = port_text[1:]
            if port_text and port_text[0] != "*":
                port = self.port(port_text, tok)
        prefixes: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
        name = None
        if not is_port and addr and addr[0] != "*":
            import ipaddress

            pfx = _get_prefix(addr, fam)
            if pfx is not None:
                if pfx[0] != AF_UNSPEC:
                    prefixes = (ipaddress.ip_network((pfx[1], pfx[2]), strict=False),)
            else:
                found = self.resolver.hosts(addr, fam) if _may_be_hostname(addr) else []
                bits = {AF_INET: 32, AF_INET6: 128}
                prefixes = tuple(ipaddress.ip_network((raw, bits[f])) for f, raw in found
                                 if f in bits and (fam == AF_UNSPEC or f == fam))
                if not prefixes:
                    raise self.error(f'an inet prefix is expected rather than "{addr}"', tok)
                name = addr
        return HostCond(side, port, prefixes, fam, name)

    def port(self, text: str, tok: Token) -> int:
        r = _c_num(text)
        if r is not None and r[1] == len(text):
            if not 0 <= r[0] <= 0xFFFF:
                raise self.error(f'port "{text}" is out of range', tok)
            return r[0]
        found = {p for proto in ("udp", "tcp") if proto in self.protocols
                 and (p := self.resolver.service(text, proto)) is not None}
        if len(found) > 1:
            raise self.error(f'ambiguous port "{text}"', tok)
        if not found:
            raise self.error(f'"{text}" does not look like a port', tok)
        return found.pop()

    def link_host(self, tok: Token, text: str, side: str, is_port: bool, fam: int) -> Expr:
        """``link:PROTO:IFACE`` and ``netlink:PROTO:PORTID`` (ss's find_port split: first colon)."""
        addr, port_text = text, None
        if is_port:
            port_text = text
        elif (colon := text.find(":")) >= 0:
            addr, port_text = text[:colon], text[colon:]
        port = -1
        if port_text is not None:
            if port_text.startswith(":"):
                port_text = port_text[1:]
            if port_text and port_text != "*":
                num = _c_int(port_text, -(1 << 31), (1 << 31) - 1)
                if num is not None:
                    port = num
                elif fam == AF_NETLINK and port_text == "kernel":
                    port = 0
                elif fam == AF_PACKET and (idx := self.resolver.ifindex(port_text)):
                    port = idx
                elif fam == AF_PACKET:
                    raise self.error(f'cannot find device "{port_text}"', tok)
                else:
                    raise self.error(f'"{port_text}" is not a netlink port id', tok)
        proto = None
        if not is_port and addr and addr != "*":
            if fam == AF_PACKET:
                proto = _LL_PROTOS.get(addr.lower())
                if proto is None:
                    proto = _c_int(addr, 0, 0xFFFF)
            else:
                proto = _NL_PROTOS.get(addr)
                if proto is None:
                    proto = _c_int(addr, 0, 255)
            if proto is None:
                what = "link-layer protocol" if fam == AF_PACKET else "netlink protocol"
                raise self.error(f'"{addr}" is not a {what}', tok)
        if fam == AF_PACKET:
            return LinkCond(side, proto, port)
        return NetlinkCond(side, proto, port)


def _get_addr(name: str, fam: int) -> tuple[int, bytes, bool] | None:
    """iproute2's ``get_addr_1`` for inet: (family, packed, is default/any/all)."""
    if name in ("default", "all", "any"):
        return fam, bytes({AF_INET: 4, AF_INET6: 16}.get(fam, 0)), True
    if ":" in name:
        if fam not in (AF_UNSPEC, AF_INET6):
            return None
        import _socket as socket

        try:
            return AF_INET6, socket.inet_pton(socket.AF_INET6, name), False
        except (OSError, ValueError):
            return None
    if fam not in (AF_UNSPEC, AF_INET):
        return None
    raw = _ipv4(name)
    return None if raw is None else (AF_INET, raw, False)


def _get_prefix(arg: str, fam: int) -> tuple[int, bytes, int] | None:
    """iproute2's ``get_prefix_1``: (family, packed, prefix length) or None."""
    addr, slash, mask = arg.partition("/")
    r = _get_addr(addr, fam)
    if r is None:
        return None
    family, raw, special = r
    bitlen = {AF_INET: 32, AF_INET6: 128}.get(family, 0)
    if slash:
        if special:
            return None
        plen = _c_int(mask, 0, 0xFFFFFFFF)
        if plen is None:
            m = _get_addr(mask, AF_INET)
            if m is None or m[0] != AF_INET:
                return None
            host = ~int.from_bytes(m[1] or bytes(4), "big") & 0xFFFFFFFF
            if host & (host + 1):
                return None
            plen = 32 - host.bit_length()
        if plen > bitlen:
            return None
        bitlen = plen
    elif special:
        bitlen = 0
    return family, raw, bitlen


def _may_be_hostname(text: str) -> bool:
    """False for text no resolver could know (spares a pointless DNS query)."""
    return bool(text) and not any(c in text for c in ":/[]*\\ \t\0")


__all__ = ["parse", "parse_file", "tokenize", "Resolver", "Token"]
