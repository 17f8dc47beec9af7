"""The records of a comparison: one Entry per compared point with its verdict, each figure's
change, the speed test, and the Comparison that holds them with its summary. Plain data; the
judging is in judge.py."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from batchbench.compare.environment import EnvironmentDiff
from batchbench.compare.inputs import Row, Run
from batchbench.compare.metrics import METRICS, ROW_METRICS, SPEED

SPEED_METRICS = frozenset(name for name, m in METRICS.items() if m.kind == SPEED)
HIGHER_IS_BETTER = frozenset(name for name, m in METRICS.items() if m.higher_is_better)

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
NOT_ENOUGH_REPEATS = "not enough repeats"
CANNOT_JUDGE = "cannot judge"  # a NaN/inf or non-numeric figure, or results.csv and run.json that disagree
NOT_JUDGED = "not judged"      # a change of status that is neither better nor worse (ok → skipped)
ADDED = "added"
REMOVED = "removed"
# The order rows are shown in: what needs attention first.
VERDICT_ORDER = (REGRESSION, CANNOT_JUDGE, NOT_ENOUGH_REPEATS, IMPROVEMENT, NOT_JUDGED, ADDED, REMOVED, UNCHANGED)
# Rows that may hide a regression: compare must not pass them (exit 4).
UNJUDGED = (NOT_ENOUGH_REPEATS, CANNOT_JUDGE)

# Outcomes of one metric within a row.
WITHIN_THRESHOLD = "within threshold"
WITHIN_NOISE = "within noise"
AGAINST_THROUGHPUT = "against the throughput change"
REPORTED = "reported"


class MetricChange:
    """One figure of a row in both runs. Its change and how to read it are worked out once, at
    creation (a plain class with slots: a comparison of 100,000 rows makes close to a million)."""

    __slots__ = ("metric", "baseline", "current", "threshold", "outcome", "change", "beyond", "worse")

    def __init__(self, metric: str, baseline: float, current: float, threshold: float | None, outcome: str = ""):
        self.metric, self.baseline, self.current, self.threshold, self.outcome = (
            metric, baseline, current, threshold, outcome)
        if baseline == 0:
            change = 0.0 if current == 0 else math.inf
        else:
            change = current / baseline - 1.0  # relative, current against baseline: -0.2 is 20% lower
        self.change = change
        self.beyond = threshold is not None and abs(change) > threshold  # further than the threshold
        self.worse = change < 0 if metric in HIGHER_IS_BETTER else change > 0

    @property
    def ratio(self) -> float:
        return self.change + 1.0

    def __repr__(self) -> str:
        return f"MetricChange({self.metric}, {self.baseline:g} → {self.current:g}, {self.outcome or 'not judged yet'})"


# How a row's speed is tested (significance.py says why).
MANN_WHITNEY = "mann-whitney-u two-sided, holm"           # repeats as the unit: one round a side
ROUNDS_TEST = "welch-t on log round medians, holm"         # rounds as the unit, repeats within them
GROUP_TEST = "welch-t on the group's mean log round medians, holm over groups"  # a group's speed as a whole


@dataclass(slots=True)
class SpeedTest:
    n_baseline: int              # repeats, all rounds together
    n_current: int
    min_p: float                 # the best these sample sizes can do
    p_value: float | None = None
    p_adjusted: float | None = None
    slower: bool | None = None   # the current throughputs tend to be lower
    method: str = MANN_WHITNEY
    rounds_baseline: int = 1
    rounds_current: int = 1


@dataclass(slots=True, eq=False)
class Entry:
    """One compared point: a trial row in both runs (or one), a group's max_batch_size, or a
    group's speed as a whole (its geometric-mean throughput over the batch sizes both ran)."""

    key: dict[str, Any]           # the matching columns and their values
    kind: str = "trial"           # "trial" | "group" (max_batch_size) | "speed" (the group's speed)
    phase: str | None = None      # ladder | search | confirm
    baseline: Row | dict[str, Any] | None = None
    current: Row | dict[str, Any] | None = None
    verdict: str = ""
    changes: list[MetricChange] | None = None  # the judged figures; see `metrics`
    notes: list[str] = field(default_factory=list)
    test: SpeedTest | None = None
    samples: tuple[Any, Any] | None = field(default=None, repr=False)  # per-repeat throughputs
    rounds: tuple[Any, Any] | None = field(default=None, repr=False)   # the round of each repeat, or None
    thresholds_only: bool = False
    quiet: dict[str, float | None] | None = field(default=None, repr=False)  # thresholds of a quiet row

    @property
    def baseline_status(self) -> str | None:
        row = self.baseline
        return row.status if type(row) is Row else None if row is None else row.get("status")

    @property
    def current_status(self) -> str | None:
        row = self.current
        return row.status if type(row) is Row else None if row is None else row.get("status")

    @property
    def metrics(self) -> list[MetricChange]:
        """Every figure both rows have, with its change and outcome. A quiet row (every figure a
        number, none beyond its threshold) keeps none: its figures are made when asked for, as
        100,000 quiet rows would otherwise hold close to a million of them."""
        if self.changes is not None:
            return self.changes
        if self.quiet is None:
            return []
        return [_quiet_change(name, b, c, self.quiet.get(name))
                for name, b, c in zip(ROW_METRICS, self.baseline.figures, self.current.figures, strict=True)
                if b is not None and c is not None]

    def figure_changes(self) -> list[tuple[str, float, float, float, float | None, str]]:
        """(metric, baseline, current, change, threshold, outcome) of every figure, as `metrics`
        gives them; for a quiet row worked out without making MetricChange records (the json and
        csv of 100,000 rows spend most of their time here)."""
        if self.changes is not None or self.quiet is None:
            return [(m.metric, m.baseline, m.current, m.change, m.threshold, m.outcome) for m in self.metrics]
        out, limits = [], self.quiet
        for name, b, c in zip(ROW_METRICS, self.baseline.figures, self.current.figures, strict=True):
            if b is not None and c is not None:
                t = limits.get(name)
                out.append((name, b, c, c / b - 1.0 if b else (0.0 if c == 0 else math.inf), t,
                            REPORTED if t is None else WITHIN_THRESHOLD))
        return out

    def metric(self, name: str) -> MetricChange | None:
        if self.changes is None and self.quiet is not None:
            b, c = self.baseline.get(name), self.current.get(name)
            return None if b is None or c is None else _quiet_change(name, b, c, self.quiet.get(name))
        for m in self.metrics:
            if m.metric == name:
                return m
        return None

    def speed_candidates(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.beyond and m.metric in SPEED_METRICS]


def _quiet_change(name: str, baseline: float, current: float, threshold: float | None) -> MetricChange:
    return MetricChange(name, baseline, current, threshold, REPORTED if threshold is None else WITHIN_THRESHOLD)


@dataclass
class Summary:
    regressed: int
    improved: int
    unchanged: int
    not_judged: int           # every row without a verdict of better, worse or unchanged
    unjudged: int             # of those, the rows that may hide a regression (exit 4)
    not_enough_repeats: int
    cannot_judge: int
    added: int
    removed: int
    shared_ok: int
    throughput_geomean_ratio: float | None

    def line(self) -> str:
        judged = (f"{self.regressed:,} regressed, {self.improved:,} improved, {self.unchanged:,} unchanged, "
                  f"{self.not_judged:,} not judged")
        why = [f"{self.not_enough_repeats:,} for too few repeats"] if self.not_enough_repeats else []
        why += [f"{self.cannot_judge:,} for figures that cannot be judged"] if self.cannot_judge else []
        if why:
            judged += f" ({', '.join(why)})"
        listed = f"{self.added:,} added, {self.removed:,} removed"
        if self.throughput_geomean_ratio is None:
            ratio = "no shared ok rows for a throughput ratio"
        else:
            r = self.throughput_geomean_ratio
            ratio = (f"throughput geometric mean ×{r:.3f} ({(r - 1) * 100:+.1f}%) over {self.shared_ok:,} "
                     "shared ok rows")
        return f"{judged}; {listed}; {ratio}"

    @property
    def headline(self) -> str:
        """The verdict in a few words: what the first line of every format says."""
        unjudged = f"{self.unjudged:,} row{'s' if self.unjudged != 1 else ''} could not be judged"
        if self.regressed:
            regressions = f"{self.regressed:,} regression{'s' if self.regressed != 1 else ''}"
            return f"{regressions}; {unjudged}" if self.unjudged else regressions
        if not self.unjudged:
            return "no regressions"
        why = ["too few repeats to test a change beyond its threshold"] if self.not_enough_repeats else []
        why += ["figures that are not numbers, or results.csv and run.json disagree"] if self.cannot_judge else []
        return f"{unjudged} ({'; '.join(why)})"

    @property
    def verdict(self) -> str:
        return REGRESSION if self.regressed else CANNOT_JUDGE if self.unjudged else "ok"


@dataclass
class Comparison:
    baseline: Run
    current: Run
    entries: list[Entry]
    key_columns: list[str]
    thresholds: dict[str, float | None]
    alpha: float
    environment: EnvironmentDiff
    notes: list[str] = field(default_factory=list)  # run-wide caveats, e.g. thresholds only
    _summary: Summary | None = field(default=None, repr=False)

    @property
    def regressions(self) -> list[Entry]:
        return [e for e in self.entries if e.verdict == REGRESSION]

    @property
    def unjudged(self) -> list[Entry]:
        """Rows that moved beyond a threshold (or hold bad figures) and could not be judged."""
        return [e for e in self.entries if e.verdict in UNJUDGED]

    @property
    def warnings(self) -> list[str]:
        return self.environment.warnings() + self.baseline.warnings + self.current.warnings + self.notes

    def summary(self) -> Summary:
        if self._summary is None:
            self._summary = _summarise(self.entries)
        return self._summary


def _summarise(entries: list[Entry]) -> Summary:
    count = dict.fromkeys(VERDICT_ORDER, 0)
    log_sum, shared = 0.0, 0
    at = ROW_METRICS.index("throughput_sps")
    for e in entries:
        count[e.verdict] = count.get(e.verdict, 0) + 1
        if e.kind == "trial" and e.baseline_status == "ok" and e.current_status == "ok":
            if e.quiet is not None:  # figures that are finite floats, by what makes a row quiet
                b, c = e.baseline.figures[at], e.current.figures[at]
            else:
                m = e.metric("throughput_sps")
                b, c = (m.baseline, m.current) if m is not None else (None, None)
            if b is not None and b > 0 and c > 0:
                log_sum += math.log(c / b)
                shared += 1
    unjudged = sum(count[v] for v in UNJUDGED)
    return Summary(regressed=count[REGRESSION], improved=count[IMPROVEMENT], unchanged=count[UNCHANGED],
                   not_judged=count[NOT_JUDGED] + unjudged, unjudged=unjudged,
                   not_enough_repeats=count[NOT_ENOUGH_REPEATS], cannot_judge=count[CANNOT_JUDGE],
                   added=count[ADDED], removed=count[REMOVED], shared_ok=shared,
                   throughput_geomean_ratio=math.exp(log_sum / shared) if shared else None)
