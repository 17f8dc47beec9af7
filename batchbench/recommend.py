"""Recommendations from result rows: plain Python over plain data."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from batchbench.numbers import is_number

NEAR_BEST = 0.95   # within 5% of the best throughput counts as tied with it
FLOOR = 0.90       # never tied below 90% of the best, however wide the intervals
KNEE = 0.90        # smallest batch reaching 90% of the best throughput


def group_key(row: dict, varying: list[str]) -> str:
    key = row["mode"] + (f"/{row['method']}" if row.get("method") else "")
    for axis in varying:
        value = row.get(axis)
        key += f"|{axis}={str(value).lower() if isinstance(value, bool) else value}"
    return key


def _ok(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok" and is_number(r.get("throughput_sps"))]


def _timed(rows: list[dict]) -> list[dict]:
    """Rows that answer "how fast": the ladder. find-max's search and confirm trials answer
    "does it fit" (short, one-off, often on a machine still busy with the previous one)."""
    return [r for r in _ok(rows) if r.get("phase") in (None, "", "ladder")]


def recommend_group(rows: list[dict], slo_ms: float | None = None, percentile: float = 99) -> dict[str, Any]:
    ok = _timed(rows)
    out: dict[str, Any] = {}
    if _ok(rows):
        out["largest_ok"] = max(r["batch_size"] for r in _ok(rows))
    if not ok:
        return out
    best = max(ok, key=lambda r: r["throughput_sps"])
    out["best_throughput"] = best["batch_size"]
    tied = sorted(r["batch_size"] for r in ok if tied_with(r, best))
    out["recommended"] = tied[0]
    out["tied_with_best"] = tied
    if _interval(best):  # rounds gave the best an interval: say whether they settle the pick
        out["unsettled"] = sorted(r["batch_size"] for r in ok if r["batch_size"] <= tied[0] and open_edge(r, best))
    if rows and rows[0].get("mode") == "predict":
        knee = [r for r in ok if r["throughput_sps"] >= KNEE * best["throughput_sps"]]
        out["knee"] = min(r["batch_size"] for r in knee)
        if slo_ms is not None:
            column = latency_column(percentile)
            within = [r for r in ok if is_number(r.get(column)) and r[column] <= slo_ms]
            out["slo"] = max(within, key=lambda r: r["throughput_sps"])["batch_size"] if within else None
    return out


def _interval(row: dict) -> tuple[float, float] | None:
    low, high = row.get("throughput_sps_ci_low"), row.get("throughput_sps_ci_high")
    return (low, high) if is_number(low) and is_number(high) else None


def tied_with(row: dict, best: dict) -> bool:
    """Whether a row is as fast as the best one for practical purposes: within 5% of it, or
    not distinguishable from it (their 95% intervals over rounds overlap), and never below
    90% of it (wide intervals that tie everything are no answer)."""
    if row is best or row["batch_size"] == best["batch_size"]:
        return True
    ratio = row["throughput_sps"] / best["throughput_sps"]
    if ratio < FLOOR:
        return False
    if ratio >= NEAR_BEST:
        return True
    mine, theirs = _interval(row), _interval(best)
    return bool(mine and theirs and mine[1] >= theirs[0])


def ratio_interval(row: dict, best: dict) -> tuple[float, float] | None:
    """A 95% interval of row's throughput over the best's: the two intervals' half-widths on the
    log scale combined as independent ones (the rounds of two sizes are different processes)."""
    mine, theirs = _interval(row), _interval(best)
    if not mine or not theirs or min(*mine, *theirs) <= 0:
        return None
    half = math.hypot(math.log(mine[1] / mine[0]) / 2, math.log(theirs[1] / theirs[0]) / 2)
    ratio = row["throughput_sps"] / best["throughput_sps"]
    return ratio * math.exp(-half), ratio * math.exp(half)


def open_edge(row: dict, best: dict) -> tuple[float, tuple[float, float]] | None:
    """The edge of the tie rule (FLOOR or NEAR_BEST) that a size's ratio to the best could lie on
    either side of, at this run's precision, with that ratio's interval (`ratio_interval`); None:
    the tie is settled. Where open, the same sweep run again may decide the tie either way.
    (Between the two edges the tie is the intervals' overlap, which their own widths decide; it
    is not counted open.)"""
    if row is best or row["batch_size"] == best["batch_size"]:
        return None
    span = ratio_interval(row, best)
    edge = next((e for e in (FLOOR, NEAR_BEST) if span and span[0] < e <= span[1]), None)
    return (edge, span) if edge is not None and span else None


def latency_column(percentile: float) -> str:
    return {50: "step_ms_median", 90: "step_ms_p90", 95: "step_ms_p95", 99: "step_ms_p99",
            100: "step_ms_max"}.get(int(percentile), "step_ms_p99")


def summarize(rows: list[dict], varying: list[str], slo_ms: float | None = None, percentile: float = 99,
              frontier: dict[str, dict] | None = None) -> dict[str, Any]:
    """The --json summary's status counts and recommendations."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(group_key(row, varying), []).append(row)
    recs: dict[str, Any] = {}
    for key, group_rows in groups.items():
        rec = recommend_group(sorted(group_rows, key=lambda r: r["batch_size"]), slo_ms, percentile)
        rec.update((frontier or {}).get(key, {}))
        recs[key] = rec
    overall = _overall(groups)
    if overall:
        recs["overall"] = overall
    counts = Counter(r.get("status") for r in rows)
    out = {"status_counts": {k: counts[k] for k in ("ok", "oom", "error", "timeout", "skipped") if counts[k]},
           "recommendations": recs}
    gap = predict_vs_serve(rows, varying)
    if gap:
        out["predict_vs_serve"] = gap
    return out


def predict_vs_serve(rows: list[dict], varying: list[str]) -> dict[str, float]:
    """model.predict's throughput as a fraction of the compiled call's, per batch size
    (first axis combination only: the point is the size of the gap)."""
    by_method: dict[str, dict[int, float]] = {"predict": {}, "serve": {}}
    first_axes = None
    for row in _timed(rows):
        if row.get("mode") != "predict" or row.get("method") not in by_method:
            continue
        axes = tuple(row.get(a) for a in varying)
        first_axes = axes if first_axes is None else first_axes
        if axes == first_axes:
            by_method[row["method"]][row["batch_size"]] = row["throughput_sps"]
    shared = sorted(set(by_method["predict"]) & set(by_method["serve"]))
    return {str(b): by_method["predict"][b] / by_method["serve"][b] for b in shared}


def _overall(groups: dict[str, list[dict]]) -> dict[str, Any] | None:
    """The fastest group and its batch size (fit groups when there are any: training and
    inference throughputs are not the same kind of figure)."""
    fit_keys = [k for k in groups if k.startswith("fit")]
    keys = fit_keys or list(groups)
    best = None
    for key in keys:
        for row in _timed(groups[key]):
            if best is None or row["throughput_sps"] > best[1]["throughput_sps"]:
                best = (key, row)
    if best is None:
        return None
    return {"group": best[0], "batch_size": best[1]["batch_size"], "throughput_sps": best[1]["throughput_sps"]}
