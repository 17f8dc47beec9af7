"""How time is read, in one place: perf_counter after a synchronisation (the step's or the
chunk's results exist on the host).

Two ways of timing, for two figures:

- **Throughput** (fit: `repeat_samples` / `repeat_time_s`, `ChunkRepeats`): a repeat is a
  run of whole chunks (a Keras epoch: one data pass, or a fixed number of steps when a pass
  is long, see `plan_chunks`) lasting at least `min_steps` steps and `min_time_s` seconds;
  the clock is read only at chunk ends, where Keras has already read the metrics back (the
  device has finished the chunk's last step), so between two readings the steps are
  dispatched as in any plain `model.fit`: nothing waits for a step's result on the host
  (on JAX and torch the next step is queued while one runs). Its throughput is samples /
  its wall time, chunk boundaries (iterator set-up, epoch-end work) included.
- **Step latency** (`step_s`, `first_step_s`, `LatencySampler`): a separate short phase
  with a per-step callback, so that every step's results are on the host before the next
  one starts: `step_s` are the intervals between consecutive step ends (one synchronised
  step each, input fetching and callback work included); `first_step_s` is the first step,
  tracing/compilation included. These steps are not part of any repeat.

`RepeatClock` (predict's per-batch repeats) feeds on step durations instead: a repeat is a
run of consecutive steady-state steps, its step times add up to its wall time exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

clock = time.perf_counter
ALIGN_MAX_PASS_S = 0.5  # passes shorter than this are never cut by a repeat boundary
# The synchronised latency phase: at least LATENCY_MIN_STEPS steps and LATENCY_TIME_S
# seconds, at most LATENCY_MAX_STEPS steps (with several processes: exactly the minimum).
LATENCY_MIN_STEPS = 10
LATENCY_MAX_STEPS = 100
LATENCY_TIME_S = 0.1
# A chunk is sized from the synchronised step time with this margin, so that one chunk
# usually makes a whole repeat (unsynchronised steps are at most as long).
CHUNK_MARGIN = 1.25


@dataclass(frozen=True)
class WindowRule:
    """When to stop timing: after `repeats` windows, or, with a tolerance, once the last
    `agree` windows' throughputs agree within it (at most `max_windows` windows)."""

    repeats: int
    tolerance: float | None = None
    max_windows: int | None = None
    agree: int = 3

    @classmethod
    def from_sweep(cls, sweep: dict, windows: bool) -> WindowRule:
        if not windows:
            return cls(sweep["repeats"])
        stability = sweep.get("stability") or {}
        return cls(sweep["repeats"], stability.get("tolerance", 0.10),
                   max(stability.get("max_windows", 12), sweep["repeats"]))

    def agreed(self, throughputs: list[float]) -> bool:
        last = throughputs[-self.agree:]
        return len(last) == self.agree and min(last) > 0 and max(last) / min(last) - 1 <= self.tolerance

    def finished(self, throughputs: list[float]) -> bool:
        n = len(throughputs)
        if self.tolerance is None:
            return n >= self.repeats
        return n >= self.repeats and (self.agreed(throughputs) or n >= self.max_windows)

    def stable(self, throughputs: list[float]) -> bool | None:
        return None if self.tolerance is None else self.agreed(throughputs)


@dataclass
class RepeatClock:
    """Feeds on step durations; cuts them into warmup, repeats and done."""

    batch_size: int
    warmup_steps: int
    min_steps: int
    min_time_s: float
    rule: WindowRule
    first_step_s: float | None = None
    step_s: list[float] = field(default_factory=list)
    repeat_steps: list[int] = field(default_factory=list)
    repeat_time_s: list[float] = field(default_factory=list)
    _warm_left: int = 0
    _cur_steps: int = 0
    _cur_time: float = 0.0

    throughputs: list[float] = field(default_factory=list)
    done: bool = False
    meter: Any = None  # started when the steady state begins, stopped when timing is done
    energy_j: float | None = None
    # Steps per data pass (an epoch). When a pass is short, a repeat holds whole passes, so
    # every repeat pays the same number of pass boundaries (iterator set-up, epoch-end
    # callbacks): otherwise those spikes fall unevenly and the repeats disagree.
    period: int | None = None
    _align: bool | None = None

    def __post_init__(self) -> None:
        self._warm_left = self.warmup_steps

    def add(self, seconds: float) -> None:
        """One step of `batch_size` samples took `seconds` (wall, results on the host)."""
        if self.first_step_s is None:
            self.first_step_s = seconds
            if self._warm_left == 0:
                self._meter_start()
            return
        if self._warm_left > 0:
            self._warm_left -= 1
            if self._warm_left == 0:
                self._meter_start()
            return
        if self.done:
            return
        self.step_s.append(seconds)
        self._cur_steps += 1
        self._cur_time += seconds
        if self._cur_steps >= self.min_steps and self._cur_time >= self.min_time_s and self._aligned():
            self.repeat_steps.append(self._cur_steps)
            self.repeat_time_s.append(self._cur_time)
            self.throughputs.append(self._cur_steps * self.batch_size / self._cur_time if self._cur_time else 0.0)
            self.done = self.rule.finished(self.throughputs)
            self._cur_steps, self._cur_time = 0, 0.0
            if self.done and self.meter is not None:
                self.energy_j = self.meter.stop()

    def _aligned(self) -> bool:
        if not self.period or self.period <= 1:
            return True
        if self._align is None:  # decided once, when the first repeat could close
            pass_s = self.period * self._cur_time / self._cur_steps
            self._align = pass_s <= max(2 * self.min_time_s, ALIGN_MAX_PASS_S)
        return not self._align or self._cur_steps % self.period == 0

    def _meter_start(self) -> None:
        if self.meter is not None:
            self.meter.start()

    def summary(self) -> dict:
        return {
            "first_step_s": self.first_step_s,
            "step_s": self.step_s,
            "repeat_samples": [s * self.batch_size for s in self.repeat_steps],
            "repeat_time_s": self.repeat_time_s,
            "steps": sum(self.repeat_steps),
            "stable": self.rule.stable(self.throughputs),
            "energy_j": self.energy_j,
        }


@dataclass
class LatencySampler:
    """The synchronised phase: the first step, `warmup_steps`, then the latency samples:
    at least `min_steps` and `time_s` seconds of them, at most `max_steps` (`time_s` 0:
    exactly `min_steps`, the same count in every process)."""

    warmup_steps: int
    min_steps: int = LATENCY_MIN_STEPS
    max_steps: int = LATENCY_MAX_STEPS
    time_s: float = LATENCY_TIME_S
    first_step_s: float | None = None
    step_s: list[float] = field(default_factory=list)
    steps_run: int = 0
    done: bool = False
    _warm_left: int = 0

    def __post_init__(self) -> None:
        self._warm_left = self.warmup_steps
        self.max_steps = max(self.max_steps, self.min_steps)

    def add(self, seconds: float) -> None:
        if self.done:
            return
        self.steps_run += 1
        if self.first_step_s is None:
            self.first_step_s = seconds
        elif self._warm_left > 0:
            self._warm_left -= 1
        else:
            self.step_s.append(seconds)
        n = len(self.step_s)
        self.done = n >= self.max_steps or (n >= self.min_steps and sum(self.step_s) >= self.time_s)

    def estimate_s(self) -> float | None:
        """A synchronised step's typical duration (for sizing chunks)."""
        warm = self.step_s or ([self.first_step_s] if self.first_step_s is not None else [])
        return sorted(warm)[len(warm) // 2] if warm else None


@dataclass(frozen=True)
class ChunkPlan:
    """How the timed fit is cut into Keras epochs (chunks), each ending in one sync."""

    steps_per_epoch: int | None  # Keras's steps_per_epoch: None = whole data passes
    chunk_steps: int  # steps in every chunk (the pass, when whole passes)
    batches: int  # batches of the data the timed fit uses (a multiple of chunk_steps)


def plan_chunks(pass_steps: int, need_steps: int, step_s: float | None, min_time_s: float,
                steps_per_execution: int = 1, timed: bool = True) -> ChunkPlan:
    """Chunks of whole passes when a pass is short (every repeat then pays the same pass
    boundaries, as `RepeatClock` aligns them) or a repeat needs a pass anyway; otherwise
    chunks of about one repeat's steps that divide the pass exactly (when no divisor is
    close, the last batches of the data, fewer than a chunk, are left out), so that no chunk is cut short at a pass
    end and every chunk's step count is known without a per-step hook.

    `timed` False (several processes): nothing depends on a clock, so every process makes
    the same plan and runs the same steps: whole passes when a pass is at most 4 repeats."""
    p = max(1, pass_steps)
    s = max(1, steps_per_execution)
    need = max(1, need_steps)
    if timed and step_s and step_s > 0:
        need = max(need, math.ceil(CHUNK_MARGIN * min_time_s / step_s))
        whole = p * step_s <= max(2 * min_time_s, ALIGN_MAX_PASS_S)
    else:
        whole = p <= 4 * need
    c = -(-need // s) * s
    if whole or c >= p:
        return ChunkPlan(None, p, p)
    for d in range(c, min(p, int(1.5 * c)) + 1):
        if p % d == 0 and d % s == 0:
            return ChunkPlan(d, d, p)
    if 2 * c > p:  # leaving out p - c batches would drop most of the data: a repeat is a pass
        return ChunkPlan(None, p, p)
    return ChunkPlan(c, c, p // c * c)


@dataclass
class ChunkRepeats:
    """Feeds on chunk ends (`steps` steps done, the device synchronised, the clock read
    `now`); the first chunk is a warm-up; then repeats of whole chunks lasting at least
    `min_steps` steps and `min_time_s` seconds, until `rule` says done."""

    batch_size: int
    min_steps: int
    min_time_s: float
    rule: WindowRule
    meter: Any = None  # started when the warm-up chunk ends, stopped when timing is done
    repeat_steps: list[int] = field(default_factory=list)
    repeat_time_s: list[float] = field(default_factory=list)
    throughputs: list[float] = field(default_factory=list)
    chunks: int = 0
    steps_run: int = 0
    done: bool = False
    energy_j: float | None = None
    _start: float | None = None
    _cur_steps: int = 0

    def chunk_end(self, steps: int, now: float) -> None:
        if self.done:
            return
        self.chunks += 1
        self.steps_run += steps
        if self._start is None:
            self._start = now
            if self.meter is not None:
                self.meter.start()
            return
        self._cur_steps += steps
        elapsed = now - self._start
        if self._cur_steps >= self.min_steps and elapsed >= self.min_time_s:
            self.repeat_steps.append(self._cur_steps)
            self.repeat_time_s.append(elapsed)
            self.throughputs.append(self._cur_steps * self.batch_size / elapsed if elapsed > 0 else 0.0)
            self._start, self._cur_steps = now, 0
            self.done = self.rule.finished(self.throughputs)
            if self.done and self.meter is not None:
                self.energy_j = self.meter.stop()

    def summary(self, first_step_s: float | None, step_s: list[float]) -> dict:
        return {
            "first_step_s": first_step_s,
            "step_s": step_s,
            "repeat_samples": [s * self.batch_size for s in self.repeat_steps],
            "repeat_time_s": self.repeat_time_s,
            "steps": sum(self.repeat_steps),
            "stable": self.rule.stable(self.throughputs),
            "energy_j": self.energy_j,
        }
