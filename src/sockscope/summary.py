"""``ss -s``: the kernel's socket counters from /proc/net/sockstat{,6} and snmp, as a record.

The counters are read by :func:`sockscope.kernel.sockstat.summary_counts` and laid out by
:mod:`sockscope.render.summary`; the CLI's ``-s`` uses those two alone: importing ``dataclasses``
took half of ``sockscope -s``'s ~29 ms (now ~14 ms, beside ss's ~3 ms)."""

from __future__ import annotations

from sockscope import _lazy_inspect  # noqa: F401  (before dataclasses: see that module)

from dataclasses import dataclass  # noqa: E402

from sockscope.kernel import sockstat  # noqa: E402


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
        return sockstat.summary_totals(self.counts())["tcp_total"]

    @property
    def tcp_closed(self) -> int:
        return sockstat.summary_totals(self.counts())["tcp_closed"]

    def counts(self) -> dict[str, int]:
        """The counters by name, in order (:func:`sockscope.kernel.sockstat.summary_counts`' dict)."""
        return {name: getattr(self, name) for name in sockstat.SUMMARY_FIELDS}

    def to_dict(self) -> dict[str, int]:
        """The counters by name, with ss's derived ``tcp_total`` and ``tcp_closed`` (``-s --json/--csv``)."""
        from sockscope.render.summary import as_dict

        return as_dict(self.counts())

    def text(self) -> str:
        """Exactly ss's layout."""
        from sockscope.render.summary import text

        return text(self.counts())


def read(proc: str = "/proc") -> Summary:
    """Read the counters (of the caller's network namespace)."""
    return Summary(**sockstat.summary_counts(proc))


__all__ = ["Summary", "read"]
