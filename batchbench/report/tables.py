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
    show_latency = rows and rows[0].get("mode") == "predict"
    table = Table(title=f"{key}", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    table.add_column("batch", justify="right")
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
    if show_quality:
        table.add_column("val loss", justify="right")
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
        cells = [str(row["batch_size"]), Text(status if row.get("stable") is not False else "ok (unstable)",
                                              style=STATUS_STYLE.get(status, "")),
                 fmt(row.get("throughput_sps")), spread, fmt(row.get("step_ms_median"), 2),
                 fmt(row.get("step_ms_p90"), 2)]
        if show_latency:
            cells.append(fmt(row.get("step_ms_p99"), 2))
        cells += [fmt(row.get("first_step_s"), 2), fmt(row.get("peak_host_mib"), 0)]
        if show_device:
            cells.append(fmt(row.get("peak_device_mib"), 0))
        if show_quality:
            cells.append(fmt(row.get("val_loss"), 3))
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
             ("max_batch_size", "largest that fits"), ("safe_batch_size", "safe with margin"),
             ("fastest_to_target", "fastest to target")]
    for field, label in names:
        if field in rec and rec[field] is not None:
            parts.append(f"{label} {rec[field]}")
    if "slo" in rec:
        parts.append(f"best within SLO {rec['slo']}" if rec["slo"] is not None else "no batch size meets the SLO")
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
