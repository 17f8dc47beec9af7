"""rich tables per group, with the recommendation underneath."""

from __future__ import annotations

import math
import os
import sys
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from batchbench.recommend import group_key, recommend_group

STATUS_STYLE = {"ok": "green", "oom": "red", "error": "red", "timeout": "yellow", "skipped": "dim"}


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    plain = bool(os.environ.get("NO_COLOR")) or not stream.isatty()
    return Console(file=stream, no_color=plain, highlight=False, soft_wrap=False,
                   width=None if stream.isatty() else 160)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt(value: Any, digits: int = 1) -> str:
    if not _num(value):
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if abs(value) >= 1 else f"{value:.{digits + 2}f}"


def group_rows(rows: list[dict], varying: list[str]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(group_key(row, varying), []).append(row)
    return {k: sorted(v, key=lambda r: (r["batch_size"], r.get("phase") == "confirm")) for k, v in groups.items()}


def group_table(key: str, rows: list[dict], slo_ms: float | None = None, percentile: float = 99) -> Table:
    ok = [r for r in rows if r.get("status") == "ok" and _num(r.get("throughput_sps"))]
    best = max(ok, key=lambda r: r["throughput_sps"]) if ok else None
    show_device = any(_num(r.get("peak_device_mib")) for r in rows)
    show_quality = any(_num(r.get("val_loss")) for r in rows)
    val_metrics = sorted({k for r in rows for k, v in r.items()
                          if k.startswith("val_") and k != "val_loss" and _num(v)})[:2]
    show_target = any(r.get("target") for r in rows)
    lrs = {round(r["learning_rate"], 12) for r in rows if _num(r.get("learning_rate"))}
    show_lr = len(lrs) > 1
    show_replicas = any(_num(r.get("replicas")) and r["replicas"] > 1 for r in rows) or \
        any(_num(r.get("processes")) and r["processes"] > 1 for r in rows)
    show_latency = rows and rows[0].get("mode") == "predict"
    table = Table(title=f"{key}", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    table.add_column("batch", justify="right")
    if show_replicas:
        table.add_column("replicas", justify="right")
        table.add_column("per replica", justify="right")
    table.add_column("status")
    table.add_column("samples/s", justify="right")
    table.add_column("spread", justify="right")
    table.add_column("step p50 ms" if not show_latency else "p50 ms", justify="right")
    table.add_column("p90 ms", justify="right")
    if show_latency:
        table.add_column("p99 ms", justify="right")
    table.add_column("first s", justify="right")
    table.add_column("host MiB", justify="right")
    if show_device:
        table.add_column("device MiB", justify="right")
    if show_lr:
        table.add_column("lr", justify="right")
    if show_quality:
        table.add_column("val loss", justify="right")
    for metric in val_metrics:
        table.add_column(metric.replace("_", " "), justify="right")
    if show_target:
        table.add_column("to target s", justify="right")
    table.add_column("note")
    for row in rows:
        status = row.get("status", "")
        spread = (f"{fmt(row.get('throughput_sps_min'))}–{fmt(row.get('throughput_sps_max'))}"
                  if _num(row.get("throughput_sps_min")) else "")
        note = row.get("error") or ""
        if row.get("stable") is False:
            note = "unstable " + note
        if row.get("phase") in ("search", "confirm"):
            note = f"{row['phase']} {note}"
        if row.get("bn_small_batch"):
            note = "small batch for BatchNorm " + note
        cells = [str(row["batch_size"])]
        if show_replicas:
            cells += [str(row.get("replicas") or ""), str(row.get("per_replica_batch_size") or "")]
        cells += [Text(status if row.get("stable") is not False else "ok (unstable)",
                                              style=STATUS_STYLE.get(status, "")),
                 fmt(row.get("throughput_sps")), spread, fmt(row.get("step_ms_median"), 2),
                 fmt(row.get("step_ms_p90"), 2)]
        if show_latency:
            cells.append(fmt(row.get("step_ms_p99"), 2))
        cells += [fmt(row.get("first_step_s"), 2), fmt(row.get("peak_host_mib"), 0)]
        if show_device:
            cells.append(fmt(row.get("peak_device_mib"), 0))
        if show_lr:
            cells.append(f"{row['learning_rate']:.3g}" if _num(row.get("learning_rate")) else "")
        if show_quality:
            cells.append(f"{row['val_loss']:.3f}" if _num(row.get("val_loss")) else "")
        for metric in val_metrics:
            cells.append(f"{row[metric]:.3f}" if _num(row.get(metric)) else "")
        if show_target:
            reached = _num(row.get("time_to_target_s"))
            cells.append(f"{row['time_to_target_s']:.2f} ({row['epochs_to_target']} ep)" if reached
                         else ("not reached" if status == "ok" else ""))
        cells.append(_short(note.strip()))
        table.add_row(*cells, style="bold" if row is best else None)
    return table


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def recommendation_lines(key: str, rec: dict) -> list[str]:
    if not rec:
        return [f"{key}: no batch size ran ok"]
    parts = []
    names = [("best_throughput", "best throughput"), ("smallest_near_best", "smallest within 5% of best"),
             ("knee", "knee (90% of best)"), ("largest_ok", "largest that ran"),
             ("max_batch_size", "largest that fits"), ("safe_batch_size", "safe with margin")]
    for field, label in names:
        if field in rec and rec[field] is not None:
            parts.append(f"{label} {rec[field]}")
    if "slo" in rec:
        parts.append(f"best within SLO {rec['slo']}" if rec["slo"] is not None else "no batch size meets the SLO")
    if "fastest_to_target" in rec:
        parts.append(f"fastest to target {rec['fastest_to_target']}" if rec["fastest_to_target"] is not None
                     else "no batch size reached the target")
    if rec.get("critical_batch_size"):
        parts.append(f"critical batch size ≈ {rec['critical_batch_size']} (gradient noise scale)")
    if rec.get("fits_up_to_at_least"):
        parts.append(f"fits up to at least {rec['fits_up_to_at_least']} (nothing ran out of memory)")
    if rec.get("search_trials"):
        parts.append(f"search took {rec['search_trials']} trial(s)")
    advice = rec.get("accumulation_advice")
    if advice:
        parts.append(f"batch {advice['wanted']} does not fit: use batch {advice['batch_size']} with "
                     f"gradient_accumulation_steps={advice['gradient_accumulation_steps']}")
    return [f"{key}: " + "; ".join(parts)]


def render_results(console: Console, rows: list[dict], varying: list[str], summary: dict,
                   slo_ms: float | None = None, percentile: float = 99) -> None:
    recs = summary.get("recommendations", {})
    for key, group in group_rows(rows, varying).items():
        console.print(group_table(key, group, slo_ms, percentile))
        rec = recs.get(key) or recommend_group(group, slo_ms, percentile)
        for line in recommendation_lines(key, rec):
            console.print(Text("  → " + line, style="cyan"))
        console.print()
    gap = summary.get("predict_vs_serve")
    if gap:
        console.print(Text("model.predict / compiled call throughput: "
                           + ", ".join(f"b{b} {ratio:.2f}x" for b, ratio in gap.items()), style="cyan"))
    overall = recs.get("overall")
    if overall and len(group_rows(rows, varying)) > 1:
        console.print(Text(f"fastest overall: {overall['group']} at batch {overall['batch_size']}", style="bold"))
