"""A discrete-event simulation of the batcher, in milliseconds of CPU: the same batching rule
(serving/batching.py) and the same Poisson arrivals, with each batch's compute time drawn from
the latency measured for that batch size. It ranks the settings, so that only the promising
ones are measured, and it starts each measured search near its answer.

What it leaves out, and so what the gap to the measurement is made of: the batcher's own
bookkeeping and its thread's wake-up delay after a sleep, interference from other processes,
and (with num_batch_threads > 1) batches slowing each other down on shared cores."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from batchbench.serving.batching import LoadResult, batch_end, close_time, required_requests, schedule, summarize
from batchbench.serving.search import RateSearch

SIM_MIN_REQUESTS = 20_000


@dataclass
class ServiceTimes:
    """Per-batch compute time: the measured median for each measured batch size, linear in
    between, times a draw from that size's measured spread (sample / median)."""

    batch_sizes: list[int]
    samples_ms: list[list[float]]

    @classmethod
    def from_profile(cls, profile: dict) -> ServiceTimes:
        pairs = sorted(zip(profile["batch_sizes"], profile["samples_ms"]))
        return cls([int(b) for b, _ in pairs], [list(map(float, s)) for _, s in pairs])

    def __post_init__(self) -> None:
        self._sizes = np.asarray(self.batch_sizes, dtype=float)
        self._medians = np.asarray([np.median(s) for s in self.samples_ms])
        self._ratios = [np.asarray(s) / np.median(s) for s in self.samples_ms]

    def median_ms(self, k: int | np.ndarray) -> np.ndarray | float:
        return np.interp(k, self._sizes, self._medians)

    def percentile_ms(self, k: int, q: float) -> float:
        i = int(np.argmin(np.abs(self._sizes - k)))
        return float(self.median_ms(k) * np.percentile(self._ratios[i], q))

    def draw_s(self, k: int, rng: np.random.Generator) -> float:
        i = int(np.searchsorted(self._sizes, k))
        i = min(i, len(self._sizes) - 1)
        ratios = self._ratios[i]
        return float(self.median_ms(k)) * float(ratios[rng.integers(len(ratios))]) / 1e3

    def capacity_qps(self, max_batch_size: int) -> float:
        """Requests per second when every batch is full: the rate no setting can pass."""
        return max_batch_size / (float(self.median_ms(max_batch_size)) / 1e3)


def simulate(service: ServiceTimes, rate_qps: float, max_batch_size: int, timeout_ms: float, percentile: float,
             threads: int = 1, seed: int = 0, requests: int | None = None) -> LoadResult:
    """One simulated load point."""
    n = requests or max(SIM_MIN_REQUESTS, required_requests(percentile))
    arrivals = schedule(rate_qps, n / rate_qps, seed)
    rng = np.random.default_rng(seed + 1)
    started = np.empty(len(arrivals))
    answered = np.empty(len(arrivals))
    sizes = []
    free = [0.0] * threads
    timeout_s = timeout_ms / 1e3
    i = 0
    while i < len(arrivals):
        free_at = heapq.heappop(free)
        at = close_time(arrivals, i, free_at, max_batch_size, timeout_s)
        j = batch_end(arrivals, i, at, max_batch_size)
        done = at + service.draw_s(j - i, rng)
        started[i:j], answered[i:j] = at, done
        sizes.append(j - i)
        heapq.heappush(free, done)
        i = j
    return summarize(rate_qps, arrivals, started, answered, sizes, percentile)


def meets(result: LoadResult, slo_ms: float) -> bool:
    """The SLO test every point takes, simulated or measured: its percentile within the SLO,
    the server keeping up with the load (achieved >= 95% of offered), a steady state."""
    return result.latency_ms_at <= slo_ms and result.achieved_qps >= 0.95 * result.offered_qps and result.steady


def simulated_max(service: ServiceTimes, max_batch_size: int, timeout_ms: float, slo_ms: float, percentile: float,
                  threads: int = 1, seed: int = 0) -> tuple[float | None, LoadResult | None]:
    """The simulated max rate of one setting and its load point there."""
    start = 0.7 * service.capacity_qps(max_batch_size) * threads
    search = RateSearch(start, rel_tol=0.02, max_points=16, max_steps=12)
    results: dict[float, LoadResult] = {}

    def measure(rate: float) -> bool:
        results[rate] = simulate(service, rate, max_batch_size, timeout_ms, percentile, threads, seed)
        return meets(results[rate], slo_ms)

    best = search.run(measure)
    return best, results.get(best) if best is not None else None
