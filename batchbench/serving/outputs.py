"""What a serving run writes: serving.csv (one row per load point, appended as each ends),
the answer (the JSON summary's top-level `serving`), and the same setting in the forms servers
read: a TF Serving batching parameters file and a Triton config.pbtxt dynamic_batching snippet."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from batchbench.results import cell
from batchbench.runfiles import open_append, refuse_symlink, write_atomic

SERVING_CSV = "serving.csv"
TF_SERVING_FILE = "batching_parameters.txt"
TRITON_FILE = "triton_config.pbtxt"
PROFILE_JSON = "serving_profile.json"

COLUMNS = (
    "run_id", "name", "model", "source", "status", "max_batch_size", "batch_timeout_ms", "num_batch_threads",
    "offered_qps", "repeat", "achieved_qps", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
    "latency_ms_at_percentile", "queue_ms_p99", "batch_size_mean", "requests", "slo_met", "steady",
    "enough_requests", "held", "duration_s", "generator_ceiling_qps", "preemptions_per_s", "error",
)
INT = {"max_batch_size", "num_batch_threads", "requests", "repeat"}
TEXT = {"run_id", "name", "model", "source", "status", "error"}


def _parse(column: str, text: str) -> Any:
    if text == "":
        return None
    if column in TEXT:
        return text
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(float(text)) if column in INT else float(text)
    except ValueError:
        return text


class ServingWriter:
    """serving.csv: a row appended, flushed and synced as each load point ends."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / SERVING_CSV
        refuse_symlink(self.path)

    def rows(self) -> list[dict]:
        return read_serving_rows(self.path) if self.path.exists() else []

    def _header(self) -> tuple[str, ...]:
        with open(self.path, encoding="utf-8", newline="") as fh:
            return tuple(next(csv.reader(fh), COLUMNS))

    def append(self, row: dict) -> None:
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if fresh:
            writer.writerow(COLUMNS)
        # A resumed run keeps its file's columns (one written by an older version has fewer).
        columns = COLUMNS if fresh else self._header()
        writer.writerow([cell(row.get(c)) for c in columns])
        with open_append(self.path) as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())


def read_serving_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        lines = list(csv.reader(fh))
    if not lines:
        return []
    header = lines[0]
    return [{k: _parse(k, v) for k, v in zip(header, cells)} for cells in lines[1:] if len(cells) == len(header)]


def point_key(row: dict) -> tuple:
    from batchbench.serving.search import rate_key

    return (row.get("source"), int(row["max_batch_size"]), float(row["batch_timeout_ms"]),
            rate_key(float(row["offered_qps"])) if row.get("offered_qps") else None, int(row.get("repeat") or 0))


# ---------------------------------------------------------------- the answer
def setting_max(rows: list[dict], source: str = "measured", confirmed: bool = True,
                repeats: int | None = None) -> dict[tuple[int, float], dict | None]:
    """(max_batch_size, timeout) -> the row of its highest rate that met the SLO below every
    rate that did not (None: no rate met it): the search's rule (serving/search.py), read back
    from the rows. A rate measured twice must have met it twice, and a repeat that did not hold
    (`held` false: missed the SLO's headroom) fails its rate. With `repeats` (the run's
    serving.confirm_repeats; 0 when it measured given rates) a rate answers only when each of
    its repeats 1..`repeats` is there and held: an unconfirmed point, or one whose repeats an
    interrupted or failed job never ran, is no max. None: as many as the rows show any rate
    got (a run from before the repeats: none). The row returned is the worst (highest p99) of
    that rate's measurements. `confirmed=False`: the search's own max, its points alone (the
    repeats left out), as one short point shows it."""
    picked = [row for row in rows if row.get("source") == source and row.get("offered_qps")
              and (confirmed or not row.get("repeat"))]
    if repeats is None or not confirmed:
        repeats = max((int(row.get("repeat") or 0) for row in picked), default=0)
    by_setting: dict[tuple[int, float], list[dict]] = {}
    for row in picked:
        by_setting.setdefault((int(row["max_batch_size"]), float(row["batch_timeout_ms"])), []).append(row)
    out = {}
    for key, points in by_setting.items():
        failed = [p["offered_qps"] for p in points if not p.get("slo_met") or (p.get("repeat") and not _held(p))]
        ceiling = min(failed) if failed else math.inf
        held = {(p["offered_qps"], int(p["repeat"])) for p in points if p.get("repeat") and _held(p)}
        met = [p["offered_qps"] for p in points if p.get("slo_met") and p["offered_qps"] < ceiling
               and all((p["offered_qps"], k) in held for k in range(1, repeats + 1))]
        # The answer's figures: the worst of its measurements (the search's point and its repeats).
        out[key] = max((p for p in points if p["offered_qps"] == max(met)),
                       key=lambda p: p.get("latency_ms_p99") or 0.0) if met else None
    return out


def _held(row: dict) -> bool:
    """A repeat's verdict; a serving.csv from before the `held` column: that it met the SLO."""
    return bool(row["held"]) if row.get("held") is not None else bool(row.get("slo_met"))


# The answer's keys, as the JSON summary, the table and the trackers carry them.
ANSWER_KEYS = ("max_batch_size", "batch_timeout_ms", "max_qps", "latency_ms_p99", "num_batch_threads")


def choose(rows: list[dict], threads: int, repeats: int | None = None) -> dict | None:
    """The answer: the measured setting with the highest max rate (ties within 2%: the lower
    p99), its rate held through `repeats` repeats (setting_max). Simulated rows never decide it."""
    best = [row for row in setting_max(rows, repeats=repeats).values() if row is not None]
    if not best:
        return None
    top = max(r["offered_qps"] for r in best)
    near = [r for r in best if r["offered_qps"] >= 0.98 * top]
    row = min(near, key=lambda r: (r["latency_ms_p99"], -r["offered_qps"]))
    return {"max_batch_size": int(row["max_batch_size"]), "batch_timeout_ms": float(row["batch_timeout_ms"]),
            "max_qps": float(row["offered_qps"]), "latency_ms_p99": float(row["latency_ms_p99"]),
            "num_batch_threads": threads}


def comparison(rows: list[dict], repeats: int | None = None) -> list[dict]:
    """Simulated against measured max rate, for every measured setting: the gap is a figure.
    `measured_max_qps` is the answer (its repeats held, sustained); `search_max_qps` the search's
    max before them, one short point at each rate, as the simulator models a point."""
    simulated, measured = setting_max(rows, "simulated"), setting_max(rows, "measured", repeats=repeats)
    searched = setting_max(rows, "measured", confirmed=False)

    def gap(sim_qps, qps):
        return (sim_qps / qps - 1.0) * 100 if sim_qps and qps else None

    out = []
    for (m, t), row in sorted(measured.items()):
        sim_qps = (simulated.get((m, t)) or {}).get("offered_qps")
        meas_qps, search_qps = (row or {}).get("offered_qps"), (searched.get((m, t)) or {}).get("offered_qps")
        out.append({"max_batch_size": m, "batch_timeout_ms": t, "simulated_max_qps": sim_qps,
                    "measured_max_qps": meas_qps, "gap_pct": gap(sim_qps, meas_qps),
                    "search_max_qps": search_qps, "search_gap_pct": gap(sim_qps, search_qps),
                    "latency_ms_p99": (row or {}).get("latency_ms_p99")})
    return out


def max_enqueued_batches(answer: dict, slo_ms: float, batch_ms: float) -> int:
    """Batches worth queueing: those the server can still finish within the SLO. A request
    behind more would miss it anyway; TF Serving rejects it at once instead."""
    return max(1, int(slo_ms // max(batch_ms, 1e-3)) * answer["num_batch_threads"])


def tf_serving_text(answer: dict, enqueued: int) -> str:
    return (f"max_batch_size {{ value: {answer['max_batch_size']} }}\n"
            f"batch_timeout_micros {{ value: {int(round(answer['batch_timeout_ms'] * 1000))} }}\n"
            f"num_batch_threads {{ value: {answer['num_batch_threads']} }}\n"
            f"max_enqueued_batches {{ value: {enqueued} }}\n")


def triton_text(answer: dict) -> str:
    return (f"# batchbench serving: {answer['max_qps']:.0f} requests/s at p99 {answer['latency_ms_p99']:.2f} ms\n"
            f"max_batch_size: {answer['max_batch_size']}\n"
            "dynamic_batching {\n"
            f"  preferred_batch_size: [ {answer['max_batch_size']} ]\n"
            f"  max_queue_delay_microseconds: {int(round(answer['batch_timeout_ms'] * 1000))}\n"
            "}\n"
            f"instance_group [ {{ count: {answer['num_batch_threads']} kind: KIND_CPU }} ]\n")


def write_server_files(run_dir: Path, answer: dict | None, slo_ms: float, batch_ms: float) -> list[str]:
    """The TF Serving and Triton files for the answer (none when there is no answer)."""
    if answer is None:
        return []
    write_atomic(Path(run_dir) / TF_SERVING_FILE, tf_serving_text(answer, max_enqueued_batches(answer, slo_ms,
                                                                                                   batch_ms)))
    write_atomic(Path(run_dir) / TRITON_FILE, triton_text(answer))
    return [TF_SERVING_FILE, TRITON_FILE]


def parse_server_files(run_dir: Path) -> dict:
    """The setting the two files carry, read back (the test that they match the summary)."""
    import re

    tf = (Path(run_dir) / TF_SERVING_FILE).read_text()
    triton = (Path(run_dir) / TRITON_FILE).read_text()

    def field(text: str, pattern: str) -> int:
        return int(re.search(pattern, text).group(1))

    return {"tf_serving": {"max_batch_size": field(tf, r"max_batch_size \{ value: (\d+)"),
                           "batch_timeout_ms": field(tf, r"batch_timeout_micros \{ value: (\d+)") / 1000,
                           "num_batch_threads": field(tf, r"num_batch_threads \{ value: (\d+)")},
            "triton": {"max_batch_size": field(triton, r"max_batch_size: (\d+)"),
                       "batch_timeout_ms": field(triton, r"max_queue_delay_microseconds: (\d+)") / 1000,
                       "num_batch_threads": field(triton, r"count: (\d+)")}}
