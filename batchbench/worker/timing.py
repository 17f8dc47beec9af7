"""How time is read, in one place: perf_counter after the step's results exist on the host.

A repeat is a run of consecutive steady-state steps that lasts at least `min_steps`
steps and `min_time_s` seconds; its throughput is samples / its wall time. Step times
are the intervals between consecutive step ends, so they add up to the wall time exactly
(input fetching and callback work between steps included).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

clock = time.perf_counter
ALIGN_MAX_PASS_S = 0.5  # passes shorter than this are never cut by a repeat boundary


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
