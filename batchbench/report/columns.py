"""The columns of a results table, shared by the terminal, markdown and HTML.

Each column is formatted as a whole: one number of decimals for every cell in it, chosen so
its smallest value keeps three significant digits, so figures line up and compare at a glance.
Each column also has a priority: a narrow terminal drops the least important ones instead of
cutting numbers short.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchbench.recommend import latency_column
from batchbench.report.runs import is_number, quality_columns

NOTE = "note"
NOTE_LIMIT = 80


@dataclass
class Column:
    name: str
    cells: list[str]
    priority: int = 0  # 0 is never dropped; the highest goes first when the width runs out
    numeric: bool = True


def decimals(values: list[Any], most: int = 3, digits: int = 5) -> int:
    """Decimals that give the smallest value three significant digits (at most `most`), and
    the largest no more than `digits` in all."""
    sizes = [abs(v) for v in values if is_number(v) and v != 0]
    if not sizes:
        return 0
    wanted = 2 - math.floor(math.log10(min(sizes)))
    whole = max(1, math.floor(math.log10(max(sizes))) + 1)
    return max(0, min(most, wanted, digits - whole))


def number(value: Any, places: int) -> str:
    if not is_number(value):
        return ""
    return f"{value:.3g}" if abs(value) >= 1e15 else f"{value:,.{places}f}"


def _numbers(rows: list[dict], keys: list[str], **kw) -> Callable[[str], list[str]]:
    """A formatter for any of `keys`, with decimals chosen over all of them together."""
    places = decimals([r.get(k) for r in rows for k in keys], **kw)
    return lambda key: [number(r.get(key), places) for r in rows]


def status_cell(row: dict) -> str:
    """The status, marked unstable where a single round's windows never agreed. A row pooled over
    rounds shows its noise in its interval (the 95% CI column): its windows are not extended to
    agree, so `stable` false there is the machine's noise the interval already carries."""
    status = str(row.get("status") or "")
    unstable = row.get("stable") is False and not is_number(row.get("throughput_sps_ci_low"))
    return "ok (unstable)" if status == "ok" and unstable else status


def note_cell(row: dict) -> str:
    parts = []
    if row.get("phase") in ("search", "confirm"):
        parts.append(str(row["phase"]))
    if row.get("bn_small_batch"):
        parts.append("small batch for BatchNorm")
    if row.get("error"):
        parts.append(str(row["error"]))
    text = " ".join(parts)
    return text if len(text) <= NOTE_LIMIT else text[: NOTE_LIMIT - 1] + "…"


def input_cell(row: dict) -> str:
    """`input_bound_ratio` (compute-only / measured throughput), marked where it is the limit."""
    ratio = row.get("input_bound_ratio")
    if not is_number(ratio):
        return ""
    return f"yes {ratio:.1f}x" if row.get("input_bound") is True else f"no {ratio:.1f}x"


def tail_name(column: str) -> str:
    return "max" if column == "step_ms_max" else "p" + column.rsplit("_p", 1)[-1]


def interval_cell(row: dict) -> str:
    """The 95% interval over rounds as ± a share of the throughput ('' with one round)."""
    low, high, center = row.get("throughput_sps_ci_low"), row.get("throughput_sps_ci_high"), row.get("throughput_sps")
    if not (is_number(low) and is_number(high) and is_number(center)) or center <= 0:
        return ""
    half = (high - low) / 2 / center
    return f"±{half:.1%}"


def batch_cell(row: dict, tied: list[int] | None) -> str:
    """The batch size, marked ≈ when it is tied with the best (within noise or 5%)."""
    return f"{row['batch_size']} ≈" if tied and row["batch_size"] in tied and row.get("status") == "ok" and \
        row.get("phase") in (None, "", "ladder") else str(row["batch_size"])


def result_columns(rows: list[dict], percentile: float = 99, tied: list[int] | None = None) -> list[Column]:
    """Every column the rows have figures for, in reading order; `tied`: the batch sizes tied
    with the best (marked ≈)."""
    predict = bool(rows) and rows[0].get("mode") == "predict"
    sps = _numbers(rows, ["throughput_sps", "throughput_sps_min", "throughput_sps_max"])
    lat_keys = ["step_ms_median", "step_ms_p90"]
    if predict and latency_column(percentile) not in lat_keys:
        lat_keys.append(latency_column(percentile))
    ms = _numbers(rows, lat_keys)
    lows, highs = sps("throughput_sps_min"), sps("throughput_sps_max")
    tied = tied if tied and len(tied) > 1 else None
    columns = [
        Column("batch", [batch_cell(r, tied) for r in rows]),
        Column("status", [status_cell(r) for r in rows], numeric=False),
        Column("samples/s", sps("throughput_sps"), 1),
        Column("95% CI", [interval_cell(r) for r in rows], 2),
        Column("spread", [f"{lo}–{hi}" if lo and hi else "" for lo, hi in zip(lows, highs, strict=True)], 3),
        Column("p50 ms" if predict else "step p50 ms", ms("step_ms_median"), 2),
        Column("p90 ms", ms("step_ms_p90"), 6),
    ]
    if len(lat_keys) > 2:
        columns.append(Column(f"{tail_name(lat_keys[2])} ms", ms(lat_keys[2]), 4))
    device = any(is_number(r.get("peak_device_mib")) for r in rows)
    columns.append(Column("first s", _numbers(rows, ["first_step_s"])("first_step_s"), 7))
    columns.append(Column("host MiB", _numbers(rows, ["peak_host_mib"])("peak_host_mib"), 6 if device else 5))
    if device:
        columns.append(Column("device MiB", _numbers(rows, ["peak_device_mib"])("peak_device_mib"), 4))
    if any(is_number(r.get("replicas")) and r["replicas"] > 1 or is_number(r.get("processes")) and r["processes"] > 1
           for r in rows):
        columns.append(Column("replicas", [number(r.get("replicas"), 0) for r in rows], 3))
        columns.append(Column("per replica", [number(r.get("per_replica_batch_size"), 0) for r in rows], 5))
    if any(is_number(r.get("tokens_per_s")) for r in rows):
        columns.insert(3, Column("tokens/s", _numbers(rows, ["tokens_per_s"])("tokens_per_s"), 3))
    if any(r.get("input_bound") is True for r in rows):  # shown where the input was the limit somewhere
        columns.append(Column("input-bound", [input_cell(r) for r in rows], 2, numeric=False))
    rates = {round(r["learning_rate"], 12) for r in rows if is_number(r.get("learning_rate"))}
    if len(rates) > 1:
        columns.append(Column("lr", [f"{r['learning_rate']:.3g}" if is_number(r.get("learning_rate")) else ""
                                     for r in rows], 5))
    columns += _quality(rows)
    columns.append(Column(NOTE, [note_cell(r) for r in rows], 9, numeric=False))
    return columns


def _quality(rows: list[dict]) -> list[Column]:
    columns = []
    for key in quality_columns(rows):
        cells = _numbers(rows, [key], most=4)(key)
        if key == "time_to_target_s":
            cells = [_reached(cell, r) for cell, r in zip(cells, rows, strict=True)]
            columns.append(Column("to target s", cells, 4))
        else:
            columns.append(Column(key.replace("_", " "), cells, 4 if key == "val_loss" else 5))
    return columns


def _reached(seconds: str, row: dict) -> str:
    if seconds:
        epochs = row.get("epochs_to_target")
        return f"{seconds} ({epochs} ep)" if is_number(epochs) else seconds
    return "not reached" if row.get("status") == "ok" and row.get("mode") == "fit" else ""


def best_index(rows: list[dict], best_batch: Any = None) -> int | None:
    """The row to set in bold: the recommendation's best batch size, else the fastest row."""
    ok = [i for i, r in enumerate(rows) if r.get("status") == "ok" and is_number(r.get("throughput_sps"))]
    if not ok:
        return None
    chosen = [i for i in ok if rows[i]["batch_size"] == best_batch]
    ladder = [i for i in chosen if rows[i].get("phase") in (None, "", "ladder")]
    if ladder or chosen:
        return (ladder or chosen)[0]
    return max(ok, key=lambda i: rows[i]["throughput_sps"])
