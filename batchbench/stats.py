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

    @property
    def cv(self) -> float:
        """Coefficient of variation: the noise warning's yardstick."""
        return self.stdev / self.mean if self.mean else math.nan


@dataclass(frozen=True)
class Interval:
    """A point's throughput from its rounds: the geometric mean of the rounds' figures and a
    95% t-interval around it on the log scale (throughputs are ratios: a round 10% slow and
    one 10% fast cancel), with the rounds as the independent unit."""

    center: float
    low: float
    high: float
    n: int

    @property
    def rel_half_width(self) -> float:
        return (self.high - self.low) / 2 / self.center if self.center else math.inf

    def overlaps(self, other: Interval) -> bool:
        return self.low <= other.high and other.low <= self.high


def t_quantile(confidence: float, dof: int) -> float:
    """Student's t two-sided quantile (scipy's; imported here, not at start-up)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, dof))


def round_interval(values: list[float], confidence: float = 0.95) -> Interval | None:
    """None with fewer than two positive figures: one round gives no interval."""
    logs = [math.log(v) for v in values if v and v > 0 and math.isfinite(v)]
    if len(logs) < 2:
        return None
    mean = statistics.fmean(logs)
    half = t_quantile(confidence, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return Interval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(logs))
