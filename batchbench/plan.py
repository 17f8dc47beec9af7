"""Config -> ordered trials. Within a group (same mode, method and axis values) batch sizes
run smallest first; after an OOM at B the larger ones are skipped; with find_max a search
then narrows the gap between the last size that fitted and the first that did not. When
nothing fitted below the first OOM (the ladder started too high), the search first halves
down until a size fits (down to batch 1), then bisects up."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from batchbench.config import AXES, Config


@dataclass(frozen=True)
class Group:
    mode: str
    method: str  # "" for fit
    axes: tuple[tuple[str, Any], ...]
    varying: tuple[str, ...]

    @property
    def key(self) -> str:
        key = self.mode + (f"/{self.method}" if self.method else "")
        for axis, value in self.axes:
            if axis in self.varying:
                key += f"|{axis}={_fmt(value)}"
        return key


def _fmt(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Trial:
    """One planned point (group x batch size x phase) in one round. `trial_id` names the point
    (its results.csv row, pooled over rounds); `record_id` names this round's trial process
    (its record and log in trials/)."""

    group: Group
    batch_size: int
    phase: str = "ladder"  # ladder | search | confirm
    round: int = 1

    def in_round(self, number: int) -> Trial:
        return Trial(self.group, self.batch_size, self.phase, number)

    @property
    def record_id(self) -> str:
        return f"{self.trial_id}-r{self.round}"

    @property
    def mode(self) -> str:
        return self.group.mode

    @property
    def method(self) -> str:
        return self.group.method

    @property
    def trial_id(self) -> str:
        parts = [self.group.mode] + ([self.group.method] if self.group.method else [])
        parts.append(f"b{self.batch_size}")
        parts += [f"{axis}={_fmt(v)}" for axis, v in self.group.axes if axis in self.group.varying]
        if self.phase != "ladder":
            parts.append(self.phase)
        return "-".join(parts)


@dataclass(frozen=True)
class Skip:
    """A planned point that does not run, with the reason the row gives."""

    trial: Trial
    reason: str


def build_groups(config: Config) -> list[Group]:
    axes = config.axes()
    varying = tuple(config.varying_axes())
    groups = []
    for values in itertools.product(*(axes[a] for a in AXES)):
        combo = tuple(zip(AXES, values))
        for mode in config.sweep.modes:
            methods = config.sweep.methods if mode == "predict" else [""]
            for method in methods:
                groups.append(Group(mode, method, combo, varying))
    return groups


@dataclass
class GroupPlan:
    """The trials of one group, decided one at a time from the statuses seen so far."""

    group: Group
    batch_sizes: list[int]
    max_samples: int
    find_max: bool = False
    granularity: int = 8
    oom_at: int | None = None
    ok_sizes: list[int] = field(default_factory=list)
    search_trials: int = 0
    max_batch_size: int | None = None
    confirmed: bool | None = None
    nothing_fits: bool = False  # even batch 1 ran out of memory
    _queue: list = field(default_factory=list)
    _ladder_left: list[int] = field(default_factory=list)
    _lo: int = 0
    _hi: int = 0
    _stage: str = "ladder"

    def __post_init__(self) -> None:
        self._ladder_left = sorted(self.batch_sizes)

    def next(self) -> Trial | Skip | None:
        if self._stage == "ladder":
            while self._ladder_left:
                b = self._ladder_left.pop(0)
                trial = Trial(self.group, b)
                if b > self.max_samples:
                    what = "training samples" if self.group.mode == "fit" else "samples"
                    return Skip(trial, f"larger than the {self.max_samples} {what}")
                if self.oom_at is not None:
                    return Skip(trial, f"larger than an OOM at {self.oom_at}")
                return trial
            self._stage = "search"
            if not (self.find_max and self.oom_at is not None):
                self._stage = "done"
                return None
            self._lo = max([s for s in self.ok_sizes if s < self.oom_at], default=0)
            self._hi = self.oom_at
        if self._stage == "search":
            if not self._lo:
                # Nothing fitted yet: halve from the smallest OOM until a size fits, then bisect.
                if self._hi > 1:
                    self.search_trials += 1
                    return Trial(self.group, self._hi // 2, "search")
                self.nothing_fits = True
                self._stage = "done"
                return None
            mid = self._midpoint()
            if mid is not None:
                self.search_trials += 1
                return Trial(self.group, mid, "search")
            self.max_batch_size = self._lo or None
            self._stage = "confirm"
            if self._lo:
                self.search_trials += 1
                return Trial(self.group, self._lo, "confirm")
        self._stage = "done"
        return None

    def _midpoint(self) -> int | None:
        g = min(self.granularity, self._lo)  # below the granularity itself, bisect to 1
        if self._hi - self._lo <= g:
            return None
        mid = (self._lo + self._hi) // 2
        mid = max(self._lo + g, (mid // g) * g)
        return mid if mid < self._hi else None

    def record(self, trial: Trial, status: str) -> None:
        b = trial.batch_size
        if trial.phase == "confirm":
            self.confirmed = status == "ok"
            if status != "ok":
                self.max_batch_size = max([s for s in self.ok_sizes if s < b], default=None)
                if self.max_batch_size is None and b > 1:
                    # A short search trial fitted but the full pass did not, and nothing smaller
                    # was tried (the ladder started too high): search on below it.
                    self._stage, self._lo, self._hi, self.confirmed = "search", 0, b, None
            return
        if status == "ok":
            self.ok_sizes.append(b)
            if trial.phase == "search":
                self._lo = b
        elif status == "oom":
            if trial.phase == "search":
                self._hi = b
            elif self.oom_at is None:
                self.oom_at = b
        elif trial.phase == "search":
            self._hi = b  # an error inside the search: do not look above it

    def out_of_memory_later(self, batch_size: int) -> Trial | Skip | None:
        """A size that ran out of memory in a later round, before any search trial ran: the
        ladder's answer is revised as if it had run out there, and the search (if any)
        starts again from it. Returns the plan's next trial."""
        if self.oom_at is None or batch_size < self.oom_at:
            self.oom_at = batch_size
            self.ok_sizes = [s for s in self.ok_sizes if s < batch_size]
            self.search_trials = 0
            if self.find_max:
                self._stage = "search"
                self._lo, self._hi = max(self.ok_sizes, default=0), batch_size
            else:
                self._stage = "done"
        return self.next()

    @property
    def mode_is_fit(self) -> bool:
        return self.group.mode == "fit"

    @property
    def ladder_size(self) -> int:
        return len(self.batch_sizes)
