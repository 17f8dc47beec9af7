"""Every output of compare is a small function of the same Comparison: a rich table for the
terminal, markdown for pull requests and $GITHUB_STEP_SUMMARY, json and csv for tools."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from batchbench.compare.metrics import METRICS
from batchbench.compare.verdicts import (
    ADDED,
    IMPROVEMENT,
    NOT_ENOUGH_REPEATS,
    NOT_JUDGED,
    REGRESSION,
    REMOVED,
    REPORTED,
    UNCHANGED,
    WITHIN_NOISE,
    WITHIN_THRESHOLD,
    Comparison,
    Entry,
    MetricChange,
)

COLUMNS = ("verdict", "what", "batch", "status", "samples/s", "change", "p", "details")
STYLE = {REGRESSION: "bold red", IMPROVEMENT: "green", NOT_ENOUGH_REPEATS: "yellow", NOT_JUDGED: "yellow",
         ADDED: "cyan", REMOVED: "cyan", UNCHANGED: ""}
ICON = {REGRESSION: "❌", IMPROVEMENT: "✅", NOT_ENOUGH_REPEATS: "⚠️", NOT_JUDGED: "⚠️",
        ADDED: "➕", REMOVED: "➖", UNCHANGED: ""}


# ---------------------------------------------------------------------------- cells
def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any) -> str:
    if not _num(value):
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3f}"


def percent(change: float) -> str:
    return f"{change * 100:+.1f}%" if math.isfinite(change) else "new"


def p_text(p: float | None) -> str:
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def varying_columns(comparison: Comparison) -> list[str]:
    """Key columns worth naming in a row's label: those whose values differ between rows."""
    trials = [e for e in comparison.entries if e.kind == "trial"]
    return [c for c in comparison.key_columns if c not in ("mode", "method", "batch_size")
            and len({str(e.key.get(c)) for e in trials}) > 1]


def what(entry: Entry, varying: list[str]) -> str:
    if entry.kind == "group":
        return f"{entry.key['group']} (largest batch that fits)"
    text = str(entry.key.get("mode") or "") + (f"/{entry.key['method']}" if entry.key.get("method") else "")
    if "model" in varying:
        text = f"{entry.key.get('model')} {text}"
    axes = [f"{c}={str(entry.key.get(c)).lower() if isinstance(entry.key.get(c), bool) else entry.key.get(c)}"
            for c in varying if c != "model"]
    text += "".join(f" {a}" for a in axes)
    return text + (f" ({entry.phase})" if entry.phase else "")


def status_text(entry: Entry) -> str:
    b, c = entry.baseline_status, entry.current_status
    if entry.kind == "group":
        return ""
    if b is None or c is None:
        return str(b or c or "")
    return b if b == c else f"{b} → {c}"


def batch_text(entry: Entry) -> str:
    if entry.kind == "group":
        m = entry.metrics[0]
        return f"{number(m.baseline)} → {number(m.current)}"
    return str(entry.key.get("batch_size", ""))


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
    return "; ".join(parts + entry.notes)


def cells(entry: Entry, varying: list[str], alpha: float) -> list[str]:
    throughput, change = throughput_text(entry)
    p = p_text(entry.test.p_adjusted) if entry.test else ""
    return [entry.verdict, what(entry, varying), batch_text(entry), status_text(entry), throughput, change, p,
            details(entry, alpha)]


def heading(comparison: Comparison) -> str:
    n = len(comparison.regressions)
    return f"{n} regression{'s' if n != 1 else ''}" if n else "no regressions"


def thresholds_text(comparison: Comparison) -> str:
    judged = {k: v for k, v in comparison.thresholds.items() if v is not None}
    groups: dict[float, list[str]] = {}
    for name, value in judged.items():
        groups.setdefault(value, []).append(name)
    return "; ".join(f"{value * 100:g}% for {', '.join(names)}" for value, names in groups.items())


def method_text(comparison: Comparison) -> str:
    return (f"Thresholds: {thresholds_text(comparison)}. Speed changes also need a two-sided Mann–Whitney U test "
            f"on the per-repeat throughputs, Holm-corrected over the rows tested, at alpha {comparison.alpha:g}; "
            "memory figures need the threshold alone.")


# ---------------------------------------------------------------------------- formats
def render_table(comparison: Comparison, console) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    for warning in comparison.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    varying = varying_columns(comparison)
    table = Table(title=f"batchbench compare: {comparison.baseline.label} → {comparison.current.label}",
                  box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for name in COLUMNS:
        table.add_column(name, justify="right" if name in ("batch", "samples/s", "change", "p") else "left")
    for entry in comparison.entries:
        table.add_row(*cells(entry, varying, comparison.alpha), style=STYLE.get(entry.verdict) or None)
    console.print(table)
    summary = comparison.summary()
    style = "bold red" if summary.regressed else "bold green"
    console.print(Text(f"{heading(comparison)}: {summary.line()}", style=style))
    console.print(Text(method_text(comparison), style="dim"))


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(
        "---:" if c in ("batch", "samples/s", "change", "p") else "---" for c in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(comparison: Comparison) -> str:
    summary = comparison.summary()
    varying = varying_columns(comparison)
    icon = "❌" if summary.regressed else "✅"
    lines = [f"### batchbench compare: {icon} {heading(comparison)}", ""]
    for warning in comparison.warnings:
        lines += [f"> ⚠️ {_md_cell(warning)}", ">"]
    if comparison.warnings:
        lines[-1] = ""
    lines += [summary.line(), ""]
    shown = [e for e in comparison.entries if e.verdict != UNCHANGED]
    quiet = [e for e in comparison.entries if e.verdict == UNCHANGED]

    def row(e: Entry) -> list[str]:
        c = cells(e, varying, comparison.alpha)
        c[0] = f"{ICON.get(e.verdict, '')} {c[0]}".strip()
        return c

    if shown:
        lines += _md_table([row(e) for e in shown]) + [""]
    if quiet:
        lines += [f"<details><summary>{len(quiet)} unchanged</summary>", ""]
        lines += _md_table([row(e) for e in quiet]) + ["", "</details>", ""]
    lines += [f"Baseline: `{comparison.baseline.description}` · current: `{comparison.current.description}`", "",
              method_text(comparison), ""]
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def to_dict(comparison: Comparison) -> dict[str, Any]:
    summary = comparison.summary()
    env = comparison.environment

    def entry_dict(e: Entry) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": e.verdict, "kind": e.kind, **e.key, "phase": e.phase,
                               "baseline_status": e.baseline_status, "current_status": e.current_status,
                               "thresholds_only": e.thresholds_only, "notes": e.notes}
        out["test"] = None if e.test is None else {
            "method": "mann-whitney-u two-sided, holm", "n_baseline": e.test.n_baseline,
            "n_current": e.test.n_current, "min_p": e.test.min_p, "p_value": e.test.p_value,
            "p_adjusted": e.test.p_adjusted, "slower": e.test.slower}
        out["metrics"] = [{"metric": m.metric, "baseline": m.baseline, "current": m.current,
                           "change": _finite(m.change), "threshold": m.threshold,
                           "higher_is_better": METRICS[m.metric].higher_is_better, "outcome": m.outcome}
                          for m in e.metrics]
        return out

    return {
        "baseline": {"path": comparison.baseline.label, "has_run_json": comparison.baseline.has_samples},
        "current": {"path": comparison.current.label, "has_run_json": comparison.current.has_samples},
        "verdict": REGRESSION if summary.regressed else "ok",
        "summary": {"regressed": summary.regressed, "improved": summary.improved, "unchanged": summary.unchanged,
                    "not_judged": summary.not_judged, "not_enough_repeats": summary.not_enough_repeats,
                    "added": summary.added, "removed": summary.removed, "shared_ok_rows": summary.shared_ok,
                    "throughput_geomean_ratio": summary.throughput_geomean_ratio},
        "warnings": comparison.warnings,
        "environment": {"baseline": env.baseline, "current": env.current,
                        "differences": [{"field": f, "baseline": b, "current": c} for f, b, c in env.differences]},
        "thresholds": comparison.thresholds,
        "alpha": comparison.alpha,
        "match_columns": comparison.key_columns,
        "rows": [entry_dict(e) for e in comparison.entries],
    }


def render_json(comparison: Comparison) -> str:
    return json.dumps(to_dict(comparison), indent=2, default=str)


CSV_COLUMNS = ["verdict", "kind", "group", "phase", "baseline_status", "current_status", "metric", "baseline",
               "current", "change_pct", "threshold_pct", "outcome", "n_baseline", "n_current", "p_value",
               "p_adjusted", "note"]


def render_csv(comparison: Comparison) -> str:
    """Tidy: one line per compared row and metric (a row with no figures gets one line)."""
    columns = CSV_COLUMNS[:2] + comparison.key_columns + CSV_COLUMNS[2:]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for e in comparison.entries:
        base = {"verdict": e.verdict, "kind": e.kind, **e.key, "phase": e.phase or "",
                "baseline_status": e.baseline_status or "", "current_status": e.current_status or "",
                "note": "; ".join(e.notes)}
        if e.test:
            base.update(n_baseline=e.test.n_baseline, n_current=e.test.n_current,
                        p_value=_g(e.test.p_value), p_adjusted=_g(e.test.p_adjusted))
        for m in e.metrics or [None]:
            line = dict(base)
            if m is not None:
                threshold = None if m.threshold is None else m.threshold * 100
                line.update(metric=m.metric, baseline=_g(m.baseline), current=_g(m.current),
                            change_pct=_g(m.change * 100), threshold_pct=_g(threshold), outcome=m.outcome)
            writer.writerow({k: ("" if v is None else v) for k, v in line.items()})
    return buf.getvalue()


def _g(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"
