"""Latency statistics for tcping and the load generator: pure functions, no I/O.

Percentiles use the *nearest-rank* method (the value at rank ``ceil(p/100 * n)``
of the sorted sample), so every reported percentile is a latency that was
actually measured; p50 of ``[1, 2, 3, 4]`` is 2 and p99 of fewer than 100
samples is the maximum.  Times are in seconds; :func:`format_ms` renders them
as milliseconds the way ping does (three decimals).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank ``p``-th percentile (0 < p <= 100) of an ascending, non-empty sequence."""
    if not sorted_values:
        raise ValueError("percentile of an empty sample")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {p}")
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """min/avg/max/p50/p99 of a sample of durations, in seconds."""

    count: int
    min: float
    avg: float
    max: float
    p50: float
    p99: float

    def as_ms(self) -> dict[str, float]:
        """The summary in milliseconds, for JSON output."""
        return {
            "min_ms": self.min * 1e3,
            "avg_ms": self.avg * 1e3,
            "max_ms": self.max * 1e3,
            "p50_ms": self.p50 * 1e3,
            "p99_ms": self.p99 * 1e3,
        }

    def line(self) -> str:
        """``min/avg/max/p50/p99 = 0.101/0.130/0.180/0.120/0.180 ms``."""
        values = "/".join(format_ms(v) for v in (self.min, self.avg, self.max, self.p50, self.p99))
        return f"min/avg/max/p50/p99 = {values} ms"


def summarize(values: Iterable[float]) -> LatencySummary | None:
    """The :class:`LatencySummary` of ``values``, or None for an empty sample."""
    ordered = sorted(values)
    if not ordered:
        return None
    return LatencySummary(
        count=len(ordered),
        min=ordered[0],
        avg=math.fsum(ordered) / len(ordered),
        max=ordered[-1],
        p50=percentile(ordered, 50),
        p99=percentile(ordered, 99),
    )


def format_ms(seconds: float) -> str:
    """Seconds as milliseconds with three decimals: ``0.000142`` -> ``0.142``."""
    return f"{seconds * 1e3:.3f}"


__all__ = ["percentile", "LatencySummary", "summarize", "format_ms"]
