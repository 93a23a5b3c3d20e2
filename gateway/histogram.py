"""``Histogram``: fixed buckets counted on a hot path, read by ``/metrics``.

A leaf module (standard library only) so that the store and the runtime, which must
not import ``gateway.metrics``, can count into one. ``observe`` is a bisect into a
fixed tuple and two additions (0.12 µs on the development machine, see
docs/metrics.md): no lock, so each histogram has ONE thread that observes into it
(the writer thread for batch sizes, the event loop for call latencies). A reader on
another thread may see ``sum`` one observation behind the buckets; the count is the
buckets' total, so ``+Inf`` and ``_count`` always agree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# Call latencies on a Pi: 1 ms (a cached point read) .. 10 s (an action on a slow link).
LATENCY_BOUNDS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Histogram:
    """Counts of observations per bucket ``value <= bound`` (Prometheus's ``le``), the
    last count for values above every bound (``+Inf``), and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be distinct and increasing")
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` (bisect_left: a value equal to a bound falls in its bucket)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), ending with (inf, count)."""
        counts = list(self.counts)  # one copy: the observing thread may move on meanwhile
        out: list[tuple[float, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
            total += n
            out.append((bound, total))
        return out
