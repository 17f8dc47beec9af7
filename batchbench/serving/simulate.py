"""A discrete-event simulation of the batcher, in milliseconds of CPU: the same batching rule
(serving/batching.py) and the same Poisson arrivals, with each batch's compute time drawn from
the latency measured for that batch size. It ranks the settings, so that only the promising
ones are measured, and it starts each measured search near its answer.

A batch's compute depends on its size and on how long the server sat idle before it (the
profile measures both). What it leaves out, and so what the gap to the measurement is made
of: the batcher's own bookkeeping and its thread's wake-up delay after a sleep, interference
from other processes, and (with num_batch_threads > 1) batches slowing each other down on
shared cores."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from batchbench.serving.batching import (
    WARMUP_FRACTION,
    LoadResult,
    batch_end,
    close_time,
    meets,
    required_requests,
    schedule,
    summarize,
)
from batchbench.serving.search import rate_key

STALL_RATIO = 10.0
SIM_MIN_REQUESTS = 40_000  # 400 requests above a p99: a p99 smooth enough in the rate to bisect on


@dataclass
class ServiceTimes:
    """Per-batch compute time: the measured median for each measured batch size (made
    non-decreasing), linear in between, times a draw from the measured spread (sample /
    its size's median), pooled over every size. Pooled, because a stall (another process
    holding the CPU for 100 ms) belongs to the machine, not to a batch size: one such call
    among a size's 60 would otherwise make that size stall 1 time in 60 in the simulation.
    Calls over STALL_RATIO times their size's median are such stalls (one batch's compute does
    not vary tenfold on its own), and they are left out (`stalls` counts them): the simulation is of the server on a quiet
    machine; the measurement says what the machine's other load did to it.

    The median also depends on how long the server sat idle before the call: `samples_ms`
    are busy calls (right after another), `after_idle_ms[i]` calls after a pause of
    `idle_ms[i]`; in between the median is linear in the pause, past the longest it stays
    there. A profile without them (an older run's) has the busy figure whatever the pause."""

    batch_sizes: list[int]
    samples_ms: list[list[float]]
    idle_ms: list[float] = field(default_factory=list)
    after_idle_ms: list[list[list[float]]] = field(default_factory=list)

    @classmethod
    def from_profile(cls, profile: dict) -> ServiceTimes:
        order = sorted(range(len(profile["batch_sizes"])), key=lambda i: profile["batch_sizes"][i])
        idle = [float(g) for g in profile.get("idle_ms") or []]
        after = profile.get("after_idle_ms") or []
        if len(after) != len(idle):
            idle, after = [], []
        return cls([int(profile["batch_sizes"][i]) for i in order],
                   [list(map(float, profile["samples_ms"][i])) for i in order], idle,
                   [[list(map(float, state[i])) for i in order] for state in after])

    def __post_init__(self) -> None:
        self._sizes = np.asarray(self.batch_sizes, dtype=float)
        states = [self.samples_ms, *self.after_idle_ms]
        self._gaps_ms = [0.0, *self.idle_ms]
        self._medians_by_state = [monotone([float(np.median(s)) for s in state], [len(s) for s in state])
                                  for state in states]
        self._medians = self._medians_by_state[0]
        spread = np.concatenate([np.asarray(s) / np.median(s) for state in states for s in state])
        far = STALL_RATIO
        self.calls = len(spread)
        self.stalls = int(np.sum(spread > far))
        self._spread_all = spread[spread <= far]

    def median_ms(self, k: int | np.ndarray, idle_ms: float = 0.0) -> np.ndarray | float:
        """A busy call's median at k rows (one k, or an array), or one's after `idle_ms` of pause
        (one k)."""
        if idle_ms <= 0.0 or len(self._gaps_ms) == 1:
            return np.interp(k, self._sizes, self._medians)
        return float(np.interp(idle_ms, self._gaps_ms, [np.interp(k, self._sizes, m) for m in self._medians_by_state]))

    def medians_table_s(self, max_batch_size: int) -> tuple[list[float], list[list[float]]]:
        """The pauses (s) and, per pause, the median (s) at every k in 0..max_batch_size: what the
        simulation's loop reads once per batch."""
        ks = np.arange(max_batch_size + 1)
        table = [(np.interp(ks, self._sizes, m) / 1e3).tolist() for m in self._medians_by_state]
        return [g / 1e3 for g in self._gaps_ms], table

    def percentile_ms(self, k: int, q: float) -> float:
        return float(self.median_ms(k) * np.percentile(self._spread_all, q))

    def _spread(self, k: int) -> np.ndarray:
        return self._spread_all

    def draw_ratio(self, k: int, rng: np.random.Generator) -> float:
        ratios = self._spread(k)
        return float(ratios[rng.integers(len(ratios))])

    def ratio_draws(self, k: int, rng: np.random.Generator, n: int) -> list[float]:
        """n draws at once, for the small batch sizes that make many batches."""
        ratios = self._spread(max(1, k))
        return ratios[rng.integers(len(ratios), size=n)].tolist()

    def capacity_qps(self, max_batch_size: int) -> float:
        """Requests per second when every batch is full and back to back: the rate no
        setting can pass."""
        return max_batch_size / (float(self.median_ms(max_batch_size)) / 1e3)


def _after_pause(gaps_s: list[float], table: list[list[float]], k: int, pause_s: float) -> float:
    """The median (s) of a call at k rows after `pause_s` idle: linear between the profiled
    pauses, the longest's beyond it."""
    if pause_s <= 0.0 or len(gaps_s) == 1:
        return table[0][k]
    for i in range(1, len(gaps_s)):
        if pause_s <= gaps_s[i]:
            w = (pause_s - gaps_s[i - 1]) / (gaps_s[i] - gaps_s[i - 1])
            return table[i - 1][k] + w * (table[i][k] - table[i - 1][k])
    return table[-1][k]


def monotone(values: list[float], weights: list[int]) -> np.ndarray:
    """The closest non-decreasing curve (weighted least squares; pool-adjacent-violators). A
    batch of more rows does not compute faster than one of fewer: a size that measured slower
    than a bigger one met a burst of load from elsewhere, and the two are pooled."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(values, weights):
        blocks.append([value, float(max(weight, 1)), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.asarray([v for v, _, n in blocks for _ in range(n)])


def simulate(service: ServiceTimes, rate_qps: float, max_batch_size: int, timeout_ms: float, percentile: float,
             threads: int = 1, seed: int = 0, requests: int | None = None, slo_ms: float = 0.0) -> LoadResult:
    """One simulated load point."""
    n = requests or max(SIM_MIN_REQUESTS, required_requests(percentile))
    arrivals = schedule(rate_qps, n / rate_qps, seed)
    times = arrivals.tolist()  # plain floats: the loop below runs once per batch
    rng = np.random.default_rng(seed + 1)
    gaps_s, table = service.medians_table_s(max_batch_size)
    picks = [service.ratio_draws(k, rng, len(times)) for k in range(max_batch_size + 1)] \
        if max_batch_size <= 8 else None
    started = np.empty(len(times))
    answered = np.empty(len(times))
    sizes = []
    free = [0.0] * threads
    last_done = -math.inf  # when the latest batch so far ends: before it, the server is not idle
    timeout_s = timeout_ms / 1e3
    i = batches = late = 0
    keep_from = int(len(times) * WARMUP_FRACTION)
    allowed_late = (1.0 - percentile / 100.0) * (len(times) - keep_from)  # more, and the percentile misses
    slo_s = slo_ms / 1e3 if slo_ms > 0 else math.inf
    while i < len(times):
        free_at = heapq.heappop(free)
        at = close_time(times, i, free_at, max_batch_size, timeout_s)
        j = batch_end(times, i, at, max_batch_size)
        k = j - i
        ratio = picks[k][batches] if picks is not None else service.draw_ratio(k, rng)
        done = at + _after_pause(gaps_s, table, k, at - last_done) * ratio
        last_done = max(last_done, done)
        started[i:j], answered[i:j] = at, done
        sizes.append(k)
        heapq.heappush(free, done)
        if i >= keep_from and done - times[i] > slo_s:
            late += sum(1 for t in times[i:j] if done - t > slo_s)
            if late > allowed_late:  # the SLO is missed already: no need to serve the rest
                result = summarize(rate_qps, arrivals[:j], started[:j], answered[:j], sizes, percentile, slo_ms)
                result.latency_ms_at = math.inf
                return result
        i = j
        batches += 1
    return summarize(rate_qps, arrivals, started, answered, sizes, percentile, slo_ms)


GRID_POINTS, GRID_SPAN = 12, 20.0  # rates from capacity / 20 to capacity, 12 of them


def simulated_max(service: ServiceTimes, max_batch_size: int, timeout_ms: float, slo_ms: float, percentile: float,
                  threads: int = 1, seed: int = 0) -> tuple[float | None, LoadResult | None]:
    """The simulated max rate of one setting and its load point there.

    A grid of rates first, then a bisection above the highest that met the SLO: with a
    heavy-tailed profile (a busy machine's), the percentile need not rise with the rate (small
    batches at light load can draw worse tails than full ones), so a bisection alone could
    settle on a low crossing. The simulation is cheap enough to look everywhere."""
    capacity = service.capacity_qps(max_batch_size) * threads
    grid = [rate_key(capacity / GRID_SPAN ** (1 - i / (GRID_POINTS - 1))) for i in range(GRID_POINTS)]
    results: dict[float, LoadResult] = {}

    def measure(rate: float) -> bool:
        if rate not in results:
            results[rate] = simulate(service, rate, max_batch_size, timeout_ms, percentile, threads, seed,
                                     slo_ms=slo_ms)
        return meets(results[rate], slo_ms)

    met = [rate for rate in grid if measure(rate)]
    if not met:
        return None, None
    lo = max(met)
    hi = next((rate for rate in grid if rate > lo), capacity * 1.5)
    while hi / lo - 1.0 > 0.02:
        mid = rate_key((lo * hi) ** 0.5)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if measure(mid) else (lo, mid)
    return lo, results[lo]
