"""Statistics, computed once from raw samples (the pytest-benchmark way)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without numpy."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Stats:
    """Summary of raw samples; every figure derived from the same list."""

    n: int
    min: float
    max: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    stdev: float

    @classmethod
    def from_values(cls, values: list[float]) -> Stats:
        if not values:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan, nan, nan)
        return cls(
            n=len(values),
            min=min(values),
            max=max(values),
            mean=statistics.fmean(values),
            median=percentile(values, 50),
            p90=percentile(values, 90),
            p95=percentile(values, 95),
            p99=percentile(values, 99),
            stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
        )

    def at(self, q: float) -> float:
        return {50: self.median, 90: self.p90, 95: self.p95, 99: self.p99, 100: self.max}.get(q, math.nan)

    @property
    def cv(self) -> float:
        """Coefficient of variation: the noise warning's yardstick."""
        return self.stdev / self.mean if self.mean else math.nan
