"""The batching rule and the load, shared by the real batcher (worker/serving.py) and the
simulator (serving/simulate.py), so both batch the same way. Plain NumPy, no TensorFlow.

The rule is TF Serving's: a batch opens at its oldest waiting request; it is run when it holds
`max_batch_size` requests or when `batch_timeout` has passed since that request arrived,
whichever comes first, and never before a batch thread is free; a free thread then takes every
waiting request up to `max_batch_size`."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

# A p99 from fewer than this many requests in its tail is one or two unlucky requests, not a
# percentile: a load point lasts long enough for TAIL_REQUESTS above its percentile.
TAIL_REQUESTS = 50
WARMUP_FRACTION = 0.1  # the first requests of a point, kept out of its statistics


def schedule(rate_qps: float, duration_s: float, seed: int) -> np.ndarray:
    """Poisson arrivals (exponential gaps, seeded) over `duration_s`: seconds from the start."""
    rng = np.random.default_rng(seed)
    n = max(1, int(math.ceil(rate_qps * duration_s)))
    return np.cumsum(rng.exponential(1.0 / rate_qps, n))


def close_time(arrivals, first: int, free_at: float, max_batch_size: int, timeout_s: float) -> float:
    """When the batch that opens at request `first` is run, by a thread free at `free_at`."""
    full = first + max_batch_size - 1
    full_at = arrivals[full] if full < len(arrivals) else math.inf
    return max(free_at, min(full_at, arrivals[first] + timeout_s))


def batch_end(arrivals, first: int, at: float, max_batch_size: int) -> int:
    """One past the last request a batch run at time `at` takes (at least the first)."""
    return max(first + 1, bisect.bisect_right(arrivals, at, first, min(first + max_batch_size, len(arrivals))))


def profile_sizes(max_batch_size: int) -> list[int]:
    """The batch sizes whose latency is measured for the simulator: every size to 8, then
    powers of two and their midpoints (it interpolates in between)."""
    sizes = set(range(1, min(8, max_batch_size) + 1))
    p = 8
    while p <= max_batch_size:
        sizes.update({p, min(max_batch_size, p + p // 2)})
        p *= 2
    sizes.add(max_batch_size)
    return sorted(sizes)


def required_requests(percentile: float) -> int:
    """Requests a load point needs: TAIL_REQUESTS above the percentile, warm-up excluded."""
    return int(math.ceil(TAIL_REQUESTS / (1.0 - percentile / 100.0) / (1.0 - WARMUP_FRACTION)))


def point_duration_s(rate_qps: float, percentile: float, min_s: float, max_s: float) -> float:
    """How long a load point at `rate_qps` runs: long enough for `required_requests`, within
    [min_s, max_s] (the cap keeps low rates short; such a point says it has fewer requests)."""
    return min(max_s, max(min_s, required_requests(percentile) / rate_qps))


@dataclass
class LoadResult:
    """One load point's figures, from its per-request times (seconds from the schedule's start)."""

    offered_qps: float
    achieved_qps: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_at: float          # at the SLO's percentile
    queue_ms_p99: float
    batch_size_mean: float
    requests: int                 # measured (the warm-up excluded)
    steady: bool
    enough_requests: bool

    def as_row(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "latency_ms_at"}


def summarize(rate_qps: float, arrivals: np.ndarray, started: np.ndarray, answered: np.ndarray,
              batch_sizes: list[int] | np.ndarray, percentile: float, slo_ms: float = 0.0) -> LoadResult:
    """Latency is from a request's arrival to its answer: queueing, the batch's wait and the
    compute. The queue time is from arrival to the start of its batch's call."""
    n = len(arrivals)
    keep = slice(int(n * WARMUP_FRACTION), n)
    latency = (answered - arrivals)[keep] * 1e3
    queue = (started - arrivals)[keep] * 1e3
    span = float(answered[-1] - arrivals[0]) if n > 1 else float(answered[0])
    achieved = (n - 1) / span if n > 1 and span > 0 else 0.0
    sizes = np.asarray(batch_sizes, dtype=float)
    return LoadResult(
        offered_qps=float(rate_qps), achieved_qps=achieved,
        latency_ms_p50=float(np.percentile(latency, 50)), latency_ms_p90=float(np.percentile(latency, 90)),
        latency_ms_p99=float(np.percentile(latency, 99)), latency_ms_at=float(np.percentile(latency, percentile)),
        queue_ms_p99=float(np.percentile(queue, 99)),
        batch_size_mean=float(sizes.mean()) if len(sizes) else 0.0, requests=int(len(latency)),
        steady=is_steady(latency, slo_ms), enough_requests=len(latency) >= required_requests(percentile) *
        (1.0 - WARMUP_FRACTION) - 1)


def is_steady(latency_ms: np.ndarray, slo_ms: float = 0.0) -> bool:
    """False when the latency keeps growing through the point (a queue that never stops
    building): the median of the last third 1.5 times the first third's and higher by over a
    quarter of the SLO (and 1 ms). Such a point's p99 depends on how long it ran, so it is no
    figure of the setting; a smaller drift is noise."""
    if len(latency_ms) < 30:
        return True
    third = len(latency_ms) // 3
    first, last = np.median(latency_ms[:third]), np.median(latency_ms[-third:])
    return not (last > 1.5 * first and last - first > max(1.0, 0.25 * slo_ms))


def meets(result: LoadResult, slo_ms: float) -> bool:
    """The SLO test every point takes, simulated or measured: its percentile within the SLO,
    the server keeping up with the load (achieved >= 95% of offered), a steady state."""
    return result.latency_ms_at <= slo_ms and result.achieved_qps >= 0.95 * result.offered_qps and result.steady


CONFIRM_HEADROOM = 0.9


def holds(row: dict, slo_ms: float) -> bool:
    """The answer's repeat, with fresh arrivals: it must meet the SLO with 10% to spare. At the
    max rate the percentile sits near the SLO by construction, so a bare pass there is a coin
    toss on a noisy machine; the headroom makes the answer one that holds when measured again."""
    return bool(row.get("slo_met")) and row["latency_ms_at_percentile"] <= CONFIRM_HEADROOM * slo_ms


def point_row(result: LoadResult, max_batch_size: int, timeout_ms: float, threads: int, slo_ms: float,
              duration_s: float, ceiling_qps: float, repeat: int = 0) -> dict:
    """A measured load point's serving.csv row. A point offered over half the load generator's
    own ceiling (measured around an empty model) is generator-bound: failed, whatever it shows.
    A repeat of a search's answer (repeat >= 1) says whether it `held`."""
    bound = result.offered_qps > 0.5 * ceiling_qps
    row = {"max_batch_size": max_batch_size, "batch_timeout_ms": timeout_ms, "num_batch_threads": threads,
           **result.as_row(), "latency_ms_at_percentile": result.latency_ms_at,
           "slo_met": (not bound) and meets(result, slo_ms), "duration_s": duration_s,
           "generator_ceiling_qps": ceiling_qps, "status": "generator_bound" if bound else "ok",
           "source": "measured", "repeat": repeat}
    if repeat:
        row["held"] = holds(row, slo_ms)
    return row
