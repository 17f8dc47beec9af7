"""Rounds: every planned point is measured in several fresh trial processes, and the rounds,
not the repeats inside one process, are the independent unit of its interval.

Round 1 is the ordered ladder (smallest batch first, so an OOM still skips the larger sizes
and predict's consistency reference is the smallest size). Later rounds run the points that
are still wanted in a seeded random order, so a slow minute of the machine lands on
different sizes in different rounds. A point is wanted for round k while every round so far
measured it (ok) and either k <= rounds.min, or its interval is still wider than
rounds.rel_half_width of its throughput, k <= rounds.max, and its figure can still change its
group's pick (`contenders`): rounds past the minimum go to the sizes that compete with the
best, not to a batch of 16 at a third of the best's throughput.

Rounds after the first share a process per group (`sweep.rounds.shared`): one trial process
times all of a group's points due in that round, one after another, so a round costs one
process start and one model build per group instead of one per point. The first round stays
one fresh process per point: it is the one that measures memory (a process that ran several
sizes holds the largest one's peak) and runs the ordered ladder.

`pool` turns a point's round rows into its one results.csv row; everything here is a pure
function of plain rows, tested without processes.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from typing import Any, TypeVar

from batchbench import inputbound
from batchbench.config.schema import RoundsSpec
from batchbench.lengths import tokens_per_s
from batchbench.recommend import FLOOR, group_key
from batchbench.stats import Interval, Stats, round_interval

T = TypeVar("T")

# What run.json keeps of each round-trial beside the pooled row.
ROUND_FIELDS = ("round", "status", "throughput_sps", "throughput_sps_min", "throughput_sps_max", "repeats",
                "peak_host_mib", "peak_device_mib", "wall_s", "finished_at", "error", "input_bound_ratio", "shared_round")
SUMMED = ("repeats", "steps", "samples", "timed_s", "wall_s", "energy_j")
PEAKS = ("peak_host_mib", "peak_device_mib", "nvml_process_mib")


def round_order(points: Sequence[T], round_number: int, seed: int) -> list[T]:
    """The points of a later round in a random order that the seed and round number decide
    (the same on resume and in every process of a multi-process run)."""
    order = list(points)
    if round_number > 1:
        random.Random(f"batchbench-rounds:{seed}:{round_number}").shuffle(order)
    return order


def interval_of(rows: Sequence[dict]) -> Interval | None:
    return round_interval([r["throughput_sps"] for r in rows
                           if r.get("status") == "ok" and r.get("throughput_sps") is not None])


def wants_round(rows: Sequence[dict], number: int, spec: RoundsSpec, adaptive: bool = True) -> bool:
    """Whether a point whose rounds so far gave `rows` gets round `number`."""
    if not rows or any(r.get("status") != "ok" for r in rows) or number > spec.max:
        return False
    if number <= spec.min:
        return True
    if not adaptive:
        return False
    interval = interval_of(rows)
    return interval is None or interval.rel_half_width > spec.rel_half_width


def pool(rows: Sequence[dict], samples: Sequence[dict | None]) -> tuple[dict, dict | None]:
    """A point's results.csv row and run.json samples from its round rows (round order).

    throughput_sps is the geometric mean of the rounds' medians, with its 95% interval over
    rounds; _min/_max and the latency percentiles are over every repeat and step of every
    round; counts and times are summed; memory peaks are the highest round's; `stable` holds
    only if every round was. A round that failed after others ran ok makes the point fail
    (a size that sometimes runs out of memory is not one to use), keeping the figures."""
    ok = [(r, s) for r, s in zip(rows, samples, strict=True) if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    row = {k: v for k, v in (ok[0][0] if ok else rows[0]).items() if k != "round"}
    row["rounds"] = len(ok)
    if failed and ok:
        bad = failed[0]
        row.update(status=bad["status"], oom_kind=bad.get("oom_kind"),
                   error=f"round {bad.get('round', '?')} of {len(rows)}: {bad.get('error')} "
                         f"({len(ok)} round(s) ran ok before)")
    if not ok:
        return row, samples[0] if samples else None
    oks = [r for r, _ in ok]
    throughputs, rounds_of, step_ms = [], [], []
    for r, s in ok:
        s = s or {}
        values = list(s.get("throughput_sps") or [])
        throughputs += values
        rounds_of += [int(r.get("round") or 1) - 1] * len(values)
        step_ms += list(s.get("step_ms") or [])
    interval = interval_of(oks)
    if interval is not None:
        row["throughput_sps"] = interval.center
        row["throughput_sps_ci_low"], row["throughput_sps_ci_high"] = interval.low, interval.high
    if throughputs:
        row["throughput_sps_min"], row["throughput_sps_max"] = min(throughputs), max(throughputs)
    if step_ms and len(oks) > 1:
        st = Stats.from_values(step_ms)
        row.update(step_ms_median=st.median, step_ms_p90=st.p90, step_ms_p95=st.p95, step_ms_p99=st.p99,
                   step_ms_max=st.max, sample_ms=st.median / row["batch_size"])
    for key in SUMMED:
        values = [r[key] for r in oks if r.get(key) is not None]
        row[key] = sum(values) if values else None
    for key in PEAKS:
        values = [r[key] for r in oks if r.get(key) is not None]
        row[key] = max(values) if values else None
    headroom = [r["headroom_mib"] for r in oks if r.get("headroom_mib") is not None]
    row["headroom_mib"] = min(headroom) if headroom else None
    # The first step's cost is a fresh process's (trace, compile): a shared round's sizes after
    # the first reuse what the earlier ones traced, so its rows count only without a fresh one.
    fresh = [r for r in oks if not r.get("shared_round")] or oks
    first = [r["first_step_s"] for r in fresh if r.get("first_step_s") is not None]
    row["first_step_s"] = statistics.median(first) if first else None
    if row.get("energy_j") is not None and row.get("samples"):
        row["j_per_1k"] = row["energy_j"] / row["samples"] * 1000
    row.update(inputbound.pooled(oks))
    row["tokens_per_s"] = tokens_per_s(row)
    stable = [r.get("stable") for r in oks if r.get("stable") is not None]
    row["stable"] = all(stable) if stable else row.get("stable")
    row["finished_at"] = oks[-1].get("finished_at") or row.get("finished_at")
    pooled: dict[str, Any] = {"throughput_sps": throughputs, "round": rounds_of, "step_ms": step_ms}
    return row, pooled


class PooledRows:
    """A sweep's rows pooled over rounds: each point's round rows (by_point) and samples, its
    one pooled row (rows, in the order the points first ran), its pooled samples and each
    round's figures (for run.json)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.samples: dict[str, dict] = {}
        self.rounds: dict[str, list[dict]] = {}
        self.by_point: dict[str, list[dict]] = {}
        self._samples: dict[str, list[dict | None]] = {}
        self._index: dict[str, int] = {}

    def status(self, point: str) -> str | None:
        """The status of the point's latest round (None before it ran)."""
        rows = self.by_point.get(point)
        return rows[-1].get("status") if rows else None

    def row(self, point: str) -> dict:
        """The point's pooled row (its results.csv row)."""
        return self.rows[self._index[point]]

    def add(self, point: str, round_number: int, row: dict, samples: dict | None) -> None:
        rows = self.by_point.setdefault(point, [])
        kept = self._samples.setdefault(point, [])
        rows.append({**row, "round": round_number})
        kept.append(samples)
        pooled, pooled_samples = pool(rows, kept)
        if pooled_samples is not None:
            self.samples[point] = pooled_samples
        self.rounds[point] = [{k: r.get(k) for k in ROUND_FIELDS} for r in rows]
        if point in self._index:
            self.rows[self._index[point]] = pooled
        else:
            self._index[point] = len(self.rows)
            self.rows.append(pooled)


def contenders(rows: Sequence[dict], varying: Sequence[str] = (), slo_ms: float | None = None) -> set[str]:
    """The trial_ids of the pooled ladder rows whose figure can still change their group's pick:
    each group's best, and every point whose interval reaches up to FLOOR (0.90) of the best's
    interval's low end; below that a point can be tied with the best neither now nor after more
    rounds move both (recommend.tied_with). A point without an interval contends; with an SLO,
    every predict point does (the SLO's pick reads latency, not ties with the best)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("status") == "ok" and row.get("throughput_sps") and row.get("phase") in (None, "", "ladder"):
            groups.setdefault(group_key(row, list(varying)), []).append(row)
    out: set[str] = set()
    for members in groups.values():
        best = max(members, key=lambda r: r["throughput_sps"])
        best_low = best.get("throughput_sps_ci_low") or best["throughput_sps"]
        for row in members:
            high = row.get("throughput_sps_ci_high")
            if row is best or high is None or high >= FLOOR * best_low \
                    or (slo_ms is not None and row.get("mode") == "predict"):
                out.add(row["trial_id"])
    return out


def settled(rows: Sequence[dict], varying: Sequence[str] = (), slo_ms: float | None = None) -> set[str]:
    """The ladder points that can no longer change their group's pick (not `contenders`)."""
    ladder = {r["trial_id"] for r in rows if r.get("status") == "ok" and r.get("phase") in (None, "", "ladder")}
    return ladder - contenders(rows, varying, slo_ms)


def precision_note(intervals: dict[str, Interval | None], spec: RoundsSpec,
                   settled: set[str] | frozenset[str] = frozenset()) -> tuple[str, bool]:
    """Why the rounds stopped, in words, from the points' final intervals, and whether every
    point reached the target. `settled` points got no rounds past the minimum because their
    figure cannot change the pick (`contenders`): they are counted, not held to the target."""
    measured = {k: v for k, v in intervals.items() if v is not None}
    if not measured:
        return "", True
    judged = {k: v for k, v in measured.items() if k not in settled} or measured
    aside = len(measured) - len(judged)
    tail = (f"; {aside} point(s) well below their group's best kept {spec.min} round(s): more could not "
            "change the pick") if aside and not spec.fixed else ""
    wide = sorted(((v.rel_half_width, k) for k, v in judged.items() if v.rel_half_width > spec.rel_half_width),
                  reverse=True)
    median = statistics.median(v.rel_half_width for v in judged.values())
    if not wide:
        return (f"every {'contending ' if aside else ''}point's 95% interval is within ±{spec.rel_half_width:.0%} "
                f"of its throughput (median ±{median:.1%}), after {min(v.n for v in judged.values())}-"
                f"{max(v.n for v in judged.values())} rounds{tail}"), True
    if spec.fixed:
        return (f"{len(wide)} of {len(judged)} points are wider than ±{spec.rel_half_width:.0%} after "
                f"{spec.max} round(s) (median ±{median:.1%})"), False
    listed = ", ".join(f"{k} ±{w:.0%}" for w, k in wide[:3])
    return (f"{len(wide)} of {len(judged)} {'contending ' if aside else ''}points did not reach "
            f"±{spec.rel_half_width:.0%} within {spec.max} rounds (median ±{median:.1%}; widest {listed}): the "
            f"machine is noisy; quiet it, or raise sweep.rounds.max{tail}"), False
