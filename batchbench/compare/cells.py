"""The text of a compared row, cell by cell, shared by the terminal table and markdown. Every
string that comes from a results file passes through `safe` here, once."""

from __future__ import annotations

from batchbench.compare.text import group_label, number, p_text, percent, safe
from batchbench.compare.verdicts import (
    IMPROVEMENT,
    REGRESSION,
    REPORTED,
    WITHIN_NOISE,
    WITHIN_THRESHOLD,
    Comparison,
    Entry,
    MetricChange,
)

COLUMNS = ("verdict", "what", "batch", "status", "samples/s", "change", "p", "details")
NUMERIC = ("batch", "samples/s", "change", "p")


def what(entry: Entry, varying: list[str]) -> str:
    if entry.kind == "group":
        return f"{safe(entry.key['group'])} (largest batch that fits)"
    if entry.kind == "speed":
        return f"{safe(entry.key['group'])} (all batch sizes: geometric mean)"
    return safe(group_label(entry.key, varying) + (f" ({entry.phase})" if entry.phase else ""))


def status_text(entry: Entry) -> str:
    b, c = entry.baseline_status, entry.current_status
    if entry.kind in ("group", "speed"):
        return ""
    if b is None or c is None:
        return safe(b or c or "")
    return safe(b if b == c else f"{b} → {c}")


def batch_text(entry: Entry) -> str:
    if entry.kind == "group":
        m = entry.metrics[0]
        return f"{number(m.baseline)} → {number(m.current)}"
    if entry.kind == "speed":
        return "all"
    return safe(entry.key.get("batch_size", ""))


def throughput_text(entry: Entry) -> tuple[str, str]:
    m = entry.metric("throughput_sps")
    if m is not None:
        return f"{number(m.baseline)} → {number(m.current)}", percent(m.change)
    if entry.kind == "group":
        return "", percent(entry.metrics[0].change)
    row = entry.current or entry.baseline or {}
    return number(row.get("throughput_sps")), ""


def _suffix(m: MetricChange) -> str:
    return "" if m.outcome in (REGRESSION, IMPROVEMENT) else f" ({m.outcome})"


def metric_parts(entry: Entry) -> list[str]:
    """The figures that moved beyond their threshold, throughput aside (it has its own columns)."""
    if entry.kind != "trial":
        return []
    shown = [m for m in entry.metrics if m.metric != "throughput_sps"
             and m.outcome not in (WITHIN_THRESHOLD, REPORTED, WITHIN_NOISE)]
    steps = [m for m in shown if m.metric.startswith("step_ms_")]
    parts = []
    if steps:
        parts.append("step ms " + ", ".join(
            f"{m.metric.removeprefix('step_ms_').replace('median', 'p50')} {percent(m.change)}{_suffix(m)}"
            for m in steps))
    for m in shown:
        if m in steps or (m.metric == "sample_ms" and any(s.metric == "step_ms_median" for s in steps)):
            continue  # sample_ms is step_ms_median / batch size: the same change
        parts.append(f"{m.metric} {percent(m.change)} ({number(m.baseline)} → {number(m.current)}){_suffix(m)}")
    return parts


def details(entry: Entry, alpha: float) -> str:
    """What moved beyond its threshold, then why the row is judged as it is."""
    parts = []
    test = entry.test
    if test and test.p_adjusted is not None and test.p_adjusted > alpha:
        parts.append(f"speed within noise (p = {p_text(test.p_adjusted)} > {alpha:g})")
    parts += metric_parts(entry)
    if entry.thresholds_only and entry.speed_candidates():
        parts.append("threshold only, no significance test")
    return safe("; ".join(parts + entry.notes))


def cells(entry: Entry, varying: list[str], alpha: float) -> dict[str, str]:
    """Column name -> text, safe to print."""
    throughput, change = throughput_text(entry)
    return {"verdict": entry.verdict, "what": what(entry, varying), "batch": batch_text(entry),
            "status": status_text(entry), "samples/s": throughput, "change": change,
            "p": p_text(entry.test.p_adjusted) if entry.test else "", "details": details(entry, alpha)}


def thresholds_text(comparison: Comparison) -> str:
    groups: dict[float, list[str]] = {}
    for name, value in comparison.thresholds.items():
        if value is not None:
            groups.setdefault(value, []).append(name)
    return "; ".join(f"{value * 100:g}% for {', '.join(names)}" for value, names in groups.items())


def method_text(comparison: Comparison) -> str:
    return (f"Thresholds: {thresholds_text(comparison)}. Speed changes also need a significance test, "
            f"Holm-corrected over the rows tested, at alpha {comparison.alpha:g}: Welch's t on the rounds' log "
            "median throughputs where both runs have two or more rounds, else a two-sided Mann–Whitney U test on "
            "the per-repeat throughputs. Each group's speed as a whole (every batch size both runs measured, "
            "rounds on both sides) is tested too: Welch's t on the per-round mean of its rows' log medians, "
            "Holm-corrected over the groups. Memory figures need the threshold alone.")
