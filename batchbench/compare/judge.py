"""Matched rows -> one verdict each.

A speed change counts only when it is beyond its threshold *and* the raw throughputs differ
significantly (Holm-corrected over the rows tested): rounds as the unit where both runs have two
or more (Welch's t on log round medians), else repeats (Mann–Whitney U); see significance.py. Memory figures,
nearly deterministic, count by threshold alone. A batch size that ran before and now runs out
of memory (or fails) is a regression in its own right.

A row compare cannot judge is never passed as unchanged: a speed change beyond its threshold
that no test can confirm is "not enough repeats"; a figure that is NaN, inf or text, or a
results.csv figure its own raw repeats in run.json contradict, is "cannot judge" (or a
regression, when the worse reading of the figures is one).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from batchbench.compare.environment import diff_environments
from batchbench.compare.inputs import KEY_COLUMNS, Run
from batchbench.compare.match import match_rows, sort_key
from batchbench.compare.metrics import MEMORY, METRICS, ROW_METRICS
from batchbench.compare.significance import (
    group_rounds,
    group_test,
    holm,
    mann_whitney,
    min_p_value,
    repeats_needed,
    round_count,
    round_medians,
    rounds_test,
)
from batchbench.compare.text import group_label, number, percent, real, row_label, shown_value, varying
from batchbench.compare.verdicts import (
    ADDED,
    AGAINST_THROUGHPUT,
    CANNOT_JUDGE,
    GROUP_TEST,
    IMPROVEMENT,
    MANN_WHITNEY,
    NOT_ENOUGH_REPEATS,
    NOT_JUDGED,
    REGRESSION,
    REMOVED,
    REPORTED,
    ROUNDS_TEST,
    UNCHANGED,
    WITHIN_NOISE,
    WITHIN_THRESHOLD,
    Comparison,
    Entry,
    MetricChange,
    SpeedTest,
)

FAILED = ("oom", "error", "timeout")
# results.csv keeps 6 significant digits of a median that lies within its repeats: a figure
# further than this outside their range is not rounding, it is a different number.
AGREEMENT = 0.01
ROW_WARNINGS = 10  # warnings that name a row, before "and N more"
THROUGHPUT = ROW_METRICS.index("throughput_sps")
MIN_ROUNDS = 2    # a side needs this many rounds for the rounds to be the unit (a variance needs two)
ROUNDS_HINT = f"or {MIN_ROUNDS} or more rounds a side (sweep.rounds)"


def center(values: list[float], rounds: list[int] | None) -> float:
    """What results.csv's throughput_sps is made of: the median repeat of one round, the
    geometric mean of the rounds' medians for more."""
    medians = round_medians(values, rounds)
    if len(medians) == 1 or min(medians) <= 0:
        return statistics.median(values)
    return math.exp(statistics.fmean(math.log(v) for v in medians))


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


def _metric_changes(entry: Entry, thresholds: dict[str, float | None]) -> list[str]:
    """The figures both rows have, as changes; returns what makes the row impossible to judge
    (a figure that is NaN, inf or not a number; a throughput on one side only)."""
    bad = []
    metrics = entry.changes = []
    for name, b, c in zip(ROW_METRICS, entry.baseline.figures, entry.current.figures, strict=True):
        if b is None and c is None:
            continue
        if real(b) and real(c):
            metrics.append(MetricChange(name, float(b), float(c), thresholds.get(name)))
            continue
        for side, value in (("baseline", b), ("current", c)):
            if value is not None and not real(value):
                bad.append(f"{name} is {shown_value(value)} in the {side}, not a finite number")
    if not bad and (entry.baseline.get("throughput_sps") is None) != (entry.current.get("throughput_sps") is None):
        bad.append(f"no throughput_sps in the {'baseline' if entry.baseline.get('throughput_sps') is None else 'current'}")
    return bad


def _check_samples(entry: Entry, samples: tuple[Any, Any], rounds_of: Callable[[], tuple[Any, Any]],
                   thresholds: dict[str, float | None]) -> tuple[list[str], bool]:
    """What the raw repeats say against results.csv: NaN/inf repeats, or a figure outside the
    range of its own repeats. When the files disagree, the worse reading counts: the repeats'
    medians moving beyond the threshold make the row a regression even if the CSV says not
    (returned as True)."""
    doubts, sides = [], (("baseline", entry.baseline), ("current", entry.current))
    for (side, row), values in zip(sides, samples, strict=True):
        if not values:
            continue
        total = sum(values)
        if total - total != 0.0 and not all(map(math.isfinite, values)):  # NaN or inf among them
            doubts.append(f"run.json's raw repeats in the {side} hold {'nan' if any(map(math.isnan, values)) else 'inf'}")
            continue
        figure, low, high = row.figures[THROUGHPUT], min(values), max(values)
        if real(figure) and not low * (1 - AGREEMENT) <= figure <= high * (1 + AGREEMENT):
            doubts.append(f"results.csv says throughput_sps {number(figure)} in the {side}, but its {len(values)} "
                          f"raw repeats in run.json say {number(low)}–{number(high)}")
    if doubts and all(v and all(map(math.isfinite, v)) for v in samples):
        rounds = rounds_of()
        m = MetricChange("throughput_sps", center(samples[0], rounds[0]), center(samples[1], rounds[1]),
                         thresholds.get("throughput_sps"))
        if m.beyond and m.worse:
            doubts.append(f"the raw repeats' medians moved {percent(m.change)}")
            return doubts, True
    return doubts, False


def _prepare_test(entry: Entry, samples: tuple[Any, Any], rounds: tuple[Any, Any], has_samples: bool) -> None:
    """Decide how the row's speed is judged: a test (rounds as the unit where both sides have
    enough of them, else repeats), thresholds only, or too few repeats."""
    if not entry.speed_candidates() or entry.thresholds_only:
        return
    b, c = samples
    if b is None or c is None or not len(b) or not len(c):
        entry.thresholds_only = True
        if has_samples:
            entry.notes.append("no raw samples in run.json for this row: judged by threshold alone")
        return
    n_rounds = (round_count(rounds[0]), round_count(rounds[1]))
    entry.samples, entry.rounds = (list(b), list(c)), rounds
    if min(n_rounds) >= MIN_ROUNDS:
        entry.test = SpeedTest(len(b), len(c), 0.0, method=ROUNDS_TEST, rounds_baseline=n_rounds[0],
                               rounds_current=n_rounds[1])
        return
    entry.test = SpeedTest(len(b), len(c), min_p_value(len(b), len(c)), rounds_baseline=n_rounds[0],
                           rounds_current=n_rounds[1])
    if max(n_rounds) >= MIN_ROUNDS:
        side = "baseline" if n_rounds[0] < MIN_ROUNDS else "current"
        entry.notes.append(f"one round in the {side}: tested on repeats, taken as independent")


def _run_tests(entries: list[Entry], alpha: float) -> None:
    tested = [e for e in entries if e.test is not None and e.test.min_p <= alpha]
    # Holm's first step needs p <= alpha/m: if no row could get there, no row can be significant.
    if tested and min(e.test.min_p for e in tested) > alpha / len(tested):
        for e in tested:
            e.notes.append(f"{len(tested)} rows to test need p ≤ {alpha / len(tested):.2g} after correction; "
                           f"{e.test.n_baseline} vs {e.test.n_current} repeats reach at best p = "
                           f"{e.test.min_p:.2g}; use --repeats {repeats_needed(alpha / len(tested))} or more, "
                           f"{ROUNDS_HINT}")
        tested = []
    for e in tested:
        found = rounds_test(e.samples[0], e.rounds[0], e.samples[1], e.rounds[1]) \
            if e.test.method == ROUNDS_TEST else None
        if found is None and e.test.method == ROUNDS_TEST:
            # rounds that do not vary at all: nothing between rounds to test against, the repeats are the unit
            e.test.method = MANN_WHITNEY
            e.notes.append("the rounds' medians do not vary: tested on repeats")
        e.test.p_value, e.test.slower = found or mann_whitney(*e.samples)
    for e, p in zip(tested, holm([e.test.p_value for e in tested]), strict=True):
        e.test.p_adjusted = p


def _judge_metrics(entry: Entry, alpha: float) -> str:
    test = entry.test
    for m in entry.metrics:
        if m.threshold is None:
            m.outcome = REPORTED
        elif not m.beyond:
            m.outcome = WITHIN_THRESHOLD
        elif METRICS[m.metric].kind == MEMORY or entry.thresholds_only:
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
                           f"(> alpha {alpha:g}); use --repeats {repeats_needed(alpha)} or more, {ROUNDS_HINT}")
    # An improvement elsewhere never hides a speed change that could not be tested.
    for verdict in (REGRESSION, NOT_ENOUGH_REPEATS, IMPROVEMENT):
        if verdict in outcomes:
            return verdict
    return UNCHANGED


def _is_quiet(entry: Entry, limits: list[float | None]) -> bool:
    """Every figure a finite float on both sides (or absent from both) and none beyond its
    threshold: the common case, settled cheaply, without making its figures' records."""
    for limit, b, c in zip(limits, entry.baseline.figures, entry.current.figures, strict=True):
        if b is None and c is None:
            continue
        # x - x is 0.0 for a finite float, NaN for NaN and inf; anything else takes the long way
        if type(b) is not float or type(c) is not float or b - b != 0.0 or c - c != 0.0:
            return False
        if limit is not None and (abs(c / b - 1.0) > limit if b else c != 0.0):
            return False
    return True


def _rounds(run: Run, trial_id: Any, values: list[float] | None) -> list[int] | None:
    return run.sample_rounds(trial_id, len(values)) if values is not None and run.rounds else None


def _prepare_row(entry: Entry, baseline: Run, current: Run, thresholds: dict[str, float | None],
                 limits: list[float | None]) -> tuple[list[str], bool]:
    """Figures and samples of a row that ran ok in both runs. Returns what makes the row
    doubtful, and whether the raw repeats alone already call it a regression. A quiet row that
    its raw repeats do not contradict is unchanged at once."""
    quiet = _is_quiet(entry, limits)
    if not quiet and (doubts := _metric_changes(entry, thresholds)):
        worse = False
    else:
        samples = (baseline.samples(entry.baseline.trial_id), current.samples(entry.current.trial_id))

        def rounds_of() -> tuple[Any, Any]:  # only for the rows that need them: most are quiet
            return (_rounds(baseline, entry.baseline.trial_id, samples[0]),
                    _rounds(current, entry.current.trial_id, samples[1]))

        doubts, worse = _check_samples(entry, samples, rounds_of, thresholds)
        if quiet and not doubts:
            entry.quiet, entry.verdict = thresholds, UNCHANGED
            return doubts, worse
        if quiet:
            _metric_changes(entry, thresholds)
        if not doubts:
            _prepare_test(entry, samples, rounds_of(), baseline.has_samples and current.has_samples)
            return doubts, worse
    entry.thresholds_only = True  # nothing trustworthy to test: each figure counts by its threshold
    entry.notes.extend(doubts)
    return doubts, worse


def _group_entries(baseline: Run, current: Run, thresholds: dict[str, float | None]) -> list[Entry]:
    """max_batch_size, per group, from each run.json's summary (find_max runs)."""
    entries = []
    b_recs, c_recs = baseline.recommendations, current.recommendations
    for group, b_rec in b_recs.items():
        c_rec = c_recs.get(group)
        b = b_rec.get("max_batch_size") if isinstance(b_rec, dict) else None
        c = c_rec.get("max_batch_size") if isinstance(c_rec, dict) else None
        if real(b) and real(c):
            entry = Entry(key={"group": group}, kind="group",
                          baseline={"status": "ok", "max_batch_size": b}, current={"status": "ok", "max_batch_size": c})
            m = MetricChange("max_batch_size", float(b), float(c), thresholds.get("max_batch_size"))
            m.outcome = (REGRESSION if m.worse else IMPROVEMENT) if m.beyond else WITHIN_THRESHOLD
            entry.changes = [m]
            entry.verdict = m.outcome if m.beyond else UNCHANGED
            entries.append(entry)
    return entries


def _speed_entries(entries: list[Entry], baseline: Run, current: Run, columns: list[str],
                   thresholds: dict[str, float | None], alpha: float) -> list[Entry]:
    """Each group's speed as a whole (mode/method and axes; every batch size of the ladder that
    ran ok in both runs, with rounds on both sides): its geometric-mean throughput, tested with
    the rounds as the unit (significance.group_test), Holm-corrected over the groups. A change
    that slows every batch size by a little is a regression here even when no single row can
    show it; a group of one row is the row itself, and is left to the row's test."""
    threshold = thresholds.get("throughput_sps")
    if threshold is None or not (baseline.rounds and current.rounds):
        return []
    at, shown = ROW_METRICS.index("throughput_sps"), varying([e.key for e in entries if e.kind == "trial"], columns)
    groups: dict[str, list[tuple[tuple, tuple]]] = {}
    for e in entries:
        if e.kind != "trial" or e.phase not in (None, "", "ladder") or e.baseline_status != "ok" \
                or e.current_status != "ok" or not (real(e.baseline.figures[at]) and real(e.current.figures[at])):
            continue
        sides = []
        for run, row in ((baseline, e.baseline), (current, e.current)):
            values = run.samples(row.trial_id)
            rounds = _rounds(run, row.trial_id, values)
            if not values or rounds is None or not all(map(math.isfinite, values)):
                break
            sides.append((values, rounds))
        else:
            groups.setdefault(group_label(e.key, shown), []).append(tuple(sides))
    tested = []
    for label, rows in groups.items():
        if len(rows) < 2:
            continue
        b, c = group_rounds([r[0] for r in rows]), group_rounds([r[1] for r in rows])
        found = group_test(b, c) if min(len(b), len(c)) >= MIN_ROUNDS else None
        if found is None:
            continue
        ratio, p, slower = found
        entry = Entry(key={"group": label}, kind="speed", baseline={"status": "ok"}, current={"status": "ok"})
        entry.changes = [MetricChange("throughput_sps", math.exp(statistics.fmean(b)), math.exp(statistics.fmean(c)),
                                      threshold)]
        entry.test = SpeedTest(sum(len(r[0][0]) for r in rows), sum(len(r[1][0]) for r in rows), 0.0, p_value=p,
                               slower=slower, method=GROUP_TEST, rounds_baseline=len(b), rounds_current=len(c))
        entry.notes.append(f"{len(rows)} batch sizes, {len(b)} vs {len(c)} rounds")
        tested.append(entry)
    for entry, p in zip(tested, holm([e.test.p_value for e in tested]), strict=True):
        entry.test.p_adjusted = p
        m = entry.changes[0]
        if not m.beyond:
            m.outcome, entry.verdict = WITHIN_THRESHOLD, UNCHANGED
        elif p > alpha:
            m.outcome, entry.verdict = WITHIN_NOISE, UNCHANGED
        elif m.worse == entry.test.slower:
            m.outcome = entry.verdict = REGRESSION if m.worse else IMPROVEMENT
        else:
            m.outcome, entry.verdict = AGAINST_THROUGHPUT, UNCHANGED
    return tested


def _row_warnings(doubtful: list[tuple[Entry, list[str]]], columns: list[str]) -> list[str]:
    shown = varying([e.key for e, _ in doubtful], columns)
    out = [f"{row_label(e.key, e.phase, shown)}: {'; '.join(doubts)}: judged conservatively, as {e.verdict}"
           for e, doubts in doubtful[:ROW_WARNINGS]]
    if len(doubtful) > ROW_WARNINGS:
        out.append(f"and {len(doubtful) - ROW_WARNINGS} more rows whose figures cannot be judged "
                   "(--format json or csv names them all)")
    return out


def compare_runs(baseline: Run, current: Run, thresholds: dict[str, float | None], alpha: float = 0.05) -> Comparison:
    """Two runs -> a Comparison: every row matched, judged and sorted, the environments diffed."""
    columns = [c for c in KEY_COLUMNS if c in baseline.columns and c in current.columns]
    entries = match_rows(baseline, current, columns)
    limits = [thresholds.get(name) for name in ROW_METRICS]
    pending: list[Entry] = []
    doubtful: list[tuple[Entry, list[str]]] = []
    worse_by_repeats: set[int] = set()  # ids of rows whose raw repeats alone say regression
    for entry in entries:
        verdict = _status_verdict(entry)
        if verdict is not None:
            entry.verdict = verdict
            continue
        doubts, worse = _prepare_row(entry, baseline, current, thresholds, limits)
        if entry.verdict:
            continue  # quiet: unchanged
        pending.append(entry)
        if doubts:
            doubtful.append((entry, doubts))
        if worse:
            worse_by_repeats.add(id(entry))
    _run_tests(pending, alpha)
    for entry in pending:
        entry.verdict = _judge_metrics(entry, alpha)
    # A doubtful row gets the worse reading: a regression if any reading says so, else not passed.
    for entry, _ in doubtful:
        entry.verdict = REGRESSION if entry.verdict == REGRESSION or id(entry) in worse_by_repeats else CANNOT_JUDGE
    entries += _speed_entries(entries, baseline, current, columns, thresholds, alpha)
    entries += _group_entries(baseline, current, thresholds)
    # What needs attention first, in a stable order; unchanged rows last, in the files' order
    # (a sweep writes them in plan order, and there may be 100,000 of them).
    unchanged = [e for e in entries if e.verdict == UNCHANGED]
    entries = sorted((e for e in entries if e.verdict != UNCHANGED), key=sort_key) + unchanged

    notes = []
    without = list(dict.fromkeys(run.label for run in (baseline, current) if not run.has_samples))
    if without:
        notes.append(f"thresholds only: no run.json beside {' and '.join(without)}, so there are no raw samples "
                     "to test; speed changes beyond their threshold count without a significance test")
    notes += _row_warnings(doubtful, columns)
    env = diff_environments(baseline.environment, current.environment, (baseline.label, current.label))
    return Comparison(baseline, current, entries, columns, thresholds, alpha, env, notes)
