"""``ss -s``: the kernel's socket counters from /proc/net/sockstat{,6} and snmp."""

from __future__ import annotations

from dataclasses import dataclass

from sockscope.errors import SockscopeError
from sockscope.kernel import sockstat


@dataclass(frozen=True, slots=True)
class Summary:
    """The counters ``ss -s`` prints, per network namespace, except ``tcp_alloc``
    (and so ``tcp_total`` and ``tcp_closed``), ``tcp_orphan`` and ``tcp_mem``,
    which the kernel counts machine-wide."""

    sockets_used: int = 0
    tcp_inuse4: int = 0
    tcp_inuse6: int = 0
    tcp_orphan: int = 0
    tcp_timewait: int = 0
    tcp_alloc: int = 0
    tcp_mem: int = 0
    tcp_estab: int = 0
    udp4: int = 0
    udp6: int = 0
    raw4: int = 0
    raw6: int = 0
    frag4: int = 0
    frag6: int = 0

    @property
    def tcp_total(self) -> int:
        return self.tcp_alloc + self.tcp_timewait

    @property
    def tcp_closed(self) -> int:
        return self.tcp_alloc - (self.tcp_inuse4 + self.tcp_inuse6 - self.tcp_timewait)

    def to_dict(self) -> dict[str, int]:
        """The counters by name, with ss's derived ``tcp_total`` and ``tcp_closed`` (``-s --json/--csv``)."""
        d = {name: getattr(self, name) for name in self.__dataclass_fields__}
        d["tcp_total"], d["tcp_closed"] = self.tcp_total, self.tcp_closed
        return d

    def text(self) -> str:
        """Exactly ss's layout."""
        s = self
        rows = [
            ("RAW", s.raw4, s.raw6),
            ("UDP", s.udp4, s.udp6),
            ("TCP", s.tcp_inuse4, s.tcp_inuse6),
            ("INET", s.raw4 + s.udp4 + s.tcp_inuse4, s.raw6 + s.udp6 + s.tcp_inuse6),
            ("FRAG", s.frag4, s.frag6),
        ]
        lines = [
            f"Total: {s.sockets_used}",
            f"TCP:   {s.tcp_total} (estab {s.tcp_estab}, closed {s.tcp_closed}, "
            f"orphaned {s.tcp_orphan}, timewait {s.tcp_timewait})",
            "",
            "Transport Total     IP        IPv6",
        ]
        lines += [f"{n}\t  {a + b:<9d} {a:<9d} {b:<9d}" for n, a, b in rows]
        return "\n".join(lines) + "\n\n"


#: /proc/net/sockstat{,6} line -> {Summary field: word on that line}
_SOCKSTAT: dict[bytes, dict[str, bytes]] = {
    b"sockets": {"sockets_used": b"used"},
    b"TCP": {"tcp_inuse4": b"inuse", "tcp_orphan": b"orphan", "tcp_timewait": b"tw", "tcp_alloc": b"alloc",
             "tcp_mem": b"mem"},
    b"TCP6": {"tcp_inuse6": b"inuse"},
    b"UDP": {"udp4": b"inuse"},
    b"UDP6": {"udp6": b"inuse"},
    b"RAW": {"raw4": b"inuse"},
    b"RAW6": {"raw6": b"inuse"},
    b"FRAG": {"frag4": b"inuse"},
    b"FRAG6": {"frag6": b"inuse"},
}


def read(proc: str = "/proc") -> Summary:
    """Read the counters (of the caller's network namespace)."""
    got: dict[tuple[bytes, bytes], int] = {}
    found = False
    for name in ("sockstat", "sockstat6"):
        try:
            with open(f"{proc}/net/{name}", "rb") as f:
                got.update(sockstat.parse(f.read()))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise SockscopeError(f"cannot read {proc}/net/{name}: {exc.strerror}") from exc
        found = True
    vals = {field: got.get((line, word), 0) for line, fields in _SOCKSTAT.items() for field, word in fields.items()}
    if not found:
        raise SockscopeError(f"cannot read {proc}/net/sockstat")
    try:
        with open(f"{proc}/net/snmp") as f:
            snmp = [line.split() for line in f if line.startswith("Tcp:")]
        if len(snmp) >= 2 and "CurrEstab" in snmp[0]:
            vals["tcp_estab"] = int(snmp[1][snmp[0].index("CurrEstab")])
    except (OSError, ValueError):
        pass
    return Summary(**vals)


__all__ = ["Summary", "read"]
