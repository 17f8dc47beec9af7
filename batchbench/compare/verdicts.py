"""Matched rows -> one verdict each.

A speed change counts only when it is beyond its threshold *and* the per-repeat throughputs
differ significantly (Mann–Whitney U, Holm-corrected over the rows tested). Memory figures,
nearly deterministic, count by threshold alone. A batch size that ran before and now runs out
of memory (or fails) is a regression in its own right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from batchbench.compare.environment import EnvironmentDiff, diff_environments
from batchbench.compare.inputs import Run
from batchbench.compare.metrics import MEMORY, METRICS, ROW_METRICS, SPEED
from batchbench.compare.significance import holm, mann_whitney, min_p_value, repeats_needed
from batchbench.errors import BatchbenchError

KEY_COLUMNS = ("model", "mode", "method", "batch_size", "precision", "jit_compile", "backend", "strategy")
FAILED = ("oom", "error", "timeout")

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
NOT_ENOUGH_REPEATS = "not enough repeats"
NOT_JUDGED = "not judged"
ADDED = "added"
REMOVED = "removed"
# The order rows are shown in: what needs attention first.
VERDICT_ORDER = (REGRESSION, IMPROVEMENT, NOT_ENOUGH_REPEATS, NOT_JUDGED, ADDED, REMOVED, UNCHANGED)

# Outcomes of one metric within a row.
WITHIN_THRESHOLD = "within threshold"
WITHIN_NOISE = "within noise"
AGAINST_THROUGHPUT = "against the throughput change"
REPORTED = "reported"


class NoRowsInCommon(BatchbenchError):
    """The two runs share no (model, mode, method, batch size, axes) point."""


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class MetricChange:
    metric: str
    baseline: float
    current: float
    threshold: float | None
    outcome: str = ""

    @property
    def ratio(self) -> float:
        if self.baseline == 0:
            return 1.0 if self.current == 0 else math.inf
        return self.current / self.baseline

    @property
    def change(self) -> float:
        """Relative change, current against baseline: -0.2 is 20% lower."""
        return self.ratio - 1.0

    @property
    def beyond(self) -> bool:
        return self.threshold is not None and abs(self.change) > self.threshold

    @property
    def worse(self) -> bool:
        return self.change < 0 if METRICS[self.metric].higher_is_better else self.change > 0


@dataclass
class SpeedTest:
    n_baseline: int
    n_current: int
    min_p: float                 # the best these sample sizes can do
    p_value: float | None = None
    p_adjusted: float | None = None
    slower: bool | None = None   # the current throughputs tend to be lower


@dataclass
class Entry:
    """One compared point: a trial row in both runs (or one), or a group's max_batch_size."""

    key: dict[str, Any]           # the matching columns and their values
    kind: str = "trial"           # "trial" | "group"
    phase: str | None = None      # ladder | search | confirm
    baseline: dict[str, Any] | None = None
    current: dict[str, Any] | None = None
    verdict: str = ""
    metrics: list[MetricChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    test: SpeedTest | None = None
    samples: tuple[list[float], list[float]] | None = field(default=None, repr=False)  # per-repeat throughputs
    thresholds_only: bool = False

    @property
    def baseline_status(self) -> str | None:
        return None if self.baseline is None else self.baseline.get("status")

    @property
    def current_status(self) -> str | None:
        return None if self.current is None else self.current.get("status")

    def metric(self, name: str) -> MetricChange | None:
        return next((m for m in self.metrics if m.metric == name), None)

    def speed_candidates(self) -> list[MetricChange]:
        return [m for m in self.metrics if METRICS[m.metric].kind == SPEED and m.beyond]


@dataclass
class Summary:
    regressed: int
    improved: int
    unchanged: int
    not_judged: int
    not_enough_repeats: int
    added: int
    removed: int
    shared_ok: int
    throughput_geomean_ratio: float | None

    def line(self) -> str:
        judged = (f"{self.regressed} regressed, {self.improved} improved, {self.unchanged} unchanged, "
                  f"{self.not_judged} not judged")
        if self.not_enough_repeats:
            judged += f" ({self.not_enough_repeats} for too few repeats)"
        listed = f"{self.added} added, {self.removed} removed"
        if self.throughput_geomean_ratio is None:
            ratio = "no shared ok rows for a throughput ratio"
        else:
            r = self.throughput_geomean_ratio
            ratio = f"throughput geometric mean ×{r:.3f} ({(r - 1) * 100:+.1f}%) over {self.shared_ok} shared ok rows"
        return f"{judged}; {listed}; {ratio}"


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

    @property
    def regressions(self) -> list[Entry]:
        return [e for e in self.entries if e.verdict == REGRESSION]

    @property
    def warnings(self) -> list[str]:
        return self.environment.warnings() + self.notes

    def summary(self) -> Summary:
        count = {v: sum(1 for e in self.entries if e.verdict == v) for v in VERDICT_ORDER}
        ratios = [m.ratio for e in self.entries
                  if e.kind == "trial" and e.baseline_status == "ok" and e.current_status == "ok"
                  and (m := e.metric("throughput_sps")) and m.baseline > 0 and m.current > 0]
        geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None
        return Summary(regressed=count[REGRESSION], improved=count[IMPROVEMENT], unchanged=count[UNCHANGED],
                       not_judged=count[NOT_JUDGED] + count[NOT_ENOUGH_REPEATS],
                       not_enough_repeats=count[NOT_ENOUGH_REPEATS], added=count[ADDED],
                       removed=count[REMOVED], shared_ok=len(ratios), throughput_geomean_ratio=geomean)


# ---------------------------------------------------------------------------- matching
def _index(rows: list[dict], columns: list[str]) -> dict[tuple, dict]:
    """Rows by their matching key. Search/confirm rows of a find_max run are told apart from
    ladder rows by their phase, and any other repeat of a key by its occurrence: nothing dropped."""
    out: dict[tuple, dict] = {}
    for row in rows:
        phase = row.get("phase") if row.get("phase") not in (None, "ladder") else None
        base = tuple(row.get(c) for c in columns) + (phase,)
        key, n = base + (0,), 0
        while key in out:
            n += 1
            key = base + (n,)
        out[key] = row
    return out


def _sort_key(entry: Entry) -> tuple:
    return (VERDICT_ORDER.index(entry.verdict),
            tuple(str(v) for k, v in entry.key.items() if k != "batch_size"),
            entry.key.get("batch_size") if _num(entry.key.get("batch_size")) else math.inf,
            entry.phase or "")


def _match(baseline: Run, current: Run, columns: list[str]) -> list[Entry]:
    b_rows, c_rows = _index(baseline.rows, columns), _index(current.rows, columns)
    entries = []
    for key in list(b_rows) + [k for k in c_rows if k not in b_rows]:
        b, c = b_rows.get(key), c_rows.get(key)
        row = b or c
        entries.append(Entry(key={col: row.get(col) for col in columns}, phase=key[-2], baseline=b, current=c))
    if not any(e.baseline is not None and e.current is not None for e in entries):
        raise NoRowsInCommon(
            f"no rows in common between {baseline.label} ({_points(baseline)}) and {current.label} "
            f"({_points(current)}): rows are matched by {', '.join(columns)}")
    return entries


def _points(run: Run) -> str:
    groups = sorted({(str(r.get("model")), r.get("mode", "") + (f"/{r['method']}" if r.get("method") else ""))
                     for r in run.rows})
    sizes = sorted({r["batch_size"] for r in run.rows if _num(r.get("batch_size"))})
    what = ", ".join(f"{m} {g}" for m, g in groups)
    return f"{what} at batch sizes {', '.join(map(str, sizes))}" if sizes else what


# ---------------------------------------------------------------------------- judging
def _status_verdict(entry: Entry) -> str | None:
    """A verdict from the statuses alone, or None when both ran ok and the figures decide."""
    b, c = entry.baseline_status, entry.current_status
    if entry.baseline is None:
        return ADDED
    if entry.current is None:
        return REMOVED
    if b == "ok" and c == "ok":
        return None
    if b == c:
        return UNCHANGED
    if b == "ok" and c in FAILED:
        reason = entry.current.get("error")
        entry.notes.append(f"ok → {c}" + (f": {reason}" if reason else ""))
        return REGRESSION
    if c == "ok":
        entry.notes.append(f"{b} → ok: runs now")
        return IMPROVEMENT
    entry.notes.append(f"{b} → {c}" + (f": {entry.current.get('error')}" if entry.current.get("error") else ""))
    return NOT_JUDGED


def _metric_changes(entry: Entry, thresholds: dict[str, float | None]) -> None:
    for name in ROW_METRICS:
        b, c = entry.baseline.get(name), entry.current.get(name)
        if _num(b) and _num(c):
            entry.metrics.append(MetricChange(name, float(b), float(c), thresholds.get(name)))


def _prepare_test(entry: Entry, baseline: Run, current: Run) -> None:
    """Decide how the row's speed is judged: a test, thresholds only, or too few repeats."""
    if not entry.speed_candidates():
        return
    b = baseline.samples(entry.baseline.get("trial_id"))
    c = current.samples(entry.current.get("trial_id"))
    if not b or not c:
        entry.thresholds_only = True
        if baseline.has_samples and current.has_samples:
            entry.notes.append("no raw samples in run.json for this row: judged by threshold alone")
        return
    entry.test = SpeedTest(len(b), len(c), min_p_value(len(b), len(c)))
    entry.samples = (b, c)


def _run_tests(entries: list[Entry], alpha: float) -> None:
    tested = [e for e in entries if e.test is not None and e.test.min_p <= alpha]
    # Holm's first step needs p <= alpha/m: if no row could get there, no row can be significant.
    if tested and min(e.test.min_p for e in tested) > alpha / len(tested):
        for e in tested:
            e.notes.append(f"{len(tested)} rows to test need p ≤ {alpha / len(tested):.2g} after correction; "
                           f"{e.test.n_baseline} vs {e.test.n_current} repeats reach at best p = "
                           f"{e.test.min_p:.2g}; use --repeats {repeats_needed(alpha / len(tested))} or more")
        tested = []
    for e in tested:
        e.test.p_value, e.test.slower = mann_whitney(*e.samples)
    for e, p in zip(tested, holm([e.test.p_value for e in tested]), strict=True):
        e.test.p_adjusted = p


def _judge_metrics(entry: Entry, alpha: float) -> str:
    test = entry.test
    for m in entry.metrics:
        kind = METRICS[m.metric].kind
        if m.threshold is None:
            m.outcome = REPORTED
        elif not m.beyond:
            m.outcome = WITHIN_THRESHOLD
        elif kind == MEMORY or entry.thresholds_only:
            m.outcome = REGRESSION if m.worse else IMPROVEMENT
        elif test is None or test.p_adjusted is None:
            m.outcome = NOT_ENOUGH_REPEATS
        elif test.p_adjusted > alpha:
            m.outcome = WITHIN_NOISE
        elif m.worse == test.slower:
            # The test says which way the row's speed moved; a figure that moved that way counts.
            m.outcome = REGRESSION if m.worse else IMPROVEMENT
        else:
            m.outcome = AGAINST_THROUGHPUT
    outcomes = {m.outcome for m in entry.metrics}
    if NOT_ENOUGH_REPEATS in outcomes and test is not None and test.min_p > alpha:
        entry.notes.append(f"{test.n_baseline} vs {test.n_current} repeats reach at best p = {test.min_p:.2g} "
                           f"(> alpha {alpha:g}); use --repeats {repeats_needed(alpha)} or more")
    for verdict in (REGRESSION, IMPROVEMENT, NOT_ENOUGH_REPEATS):
        if verdict in outcomes:
            return verdict
    return UNCHANGED


def _group_entries(baseline: Run, current: Run, thresholds: dict[str, float | None]) -> list[Entry]:
    """max_batch_size, per group, from each run.json's summary (find_max runs)."""
    entries = []
    b_recs, c_recs = baseline.recommendations, current.recommendations
    for group in b_recs:
        b = (b_recs.get(group) or {}).get("max_batch_size")
        c = (c_recs.get(group) or {}).get("max_batch_size") if isinstance(c_recs.get(group), dict) else None
        if _num(b) and _num(c):
            entry = Entry(key={"group": group}, kind="group",
                          baseline={"status": "ok", "max_batch_size": b}, current={"status": "ok", "max_batch_size": c})
            m = MetricChange("max_batch_size", float(b), float(c), thresholds.get("max_batch_size"))
            m.outcome = (REGRESSION if m.worse else IMPROVEMENT) if m.beyond else WITHIN_THRESHOLD
            entry.metrics.append(m)
            entry.verdict = m.outcome if m.beyond else UNCHANGED
            entries.append(entry)
    return entries


def compare_runs(baseline: Run, current: Run, thresholds: dict[str, float | None], alpha: float = 0.05) -> Comparison:
    columns = [c for c in KEY_COLUMNS if c in baseline.columns and c in current.columns]
    entries = _match(baseline, current, columns)
    for entry in entries:
        verdict = _status_verdict(entry)
        if verdict is not None:
            entry.verdict = verdict
            continue
        _metric_changes(entry, thresholds)
        _prepare_test(entry, baseline, current)
    _run_tests(entries, alpha)
    for entry in entries:
        if not entry.verdict:
            entry.verdict = _judge_metrics(entry, alpha)
    entries += _group_entries(baseline, current, thresholds)
    entries.sort(key=_sort_key)

    notes = []
    without = list(dict.fromkeys(run.label for run in (baseline, current) if not run.has_samples))
    if without:
        notes.append(f"thresholds only: no run.json beside {' and '.join(without)}, so there are no raw samples "
                     "to test; speed changes beyond their threshold count without a significance test")
    env = diff_environments(baseline.environment, current.environment, (baseline.label, current.label))
    return Comparison(baseline, current, entries, columns, thresholds, alpha, env, notes)
