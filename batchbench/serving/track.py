"""A serving run in MLflow and TensorBoard (export/): the parent is the run (run.json, its
answer as `serving.<key>` tags, serving.csv an artifact); a child is one batching setting
(max_batch_size, batch_timeout_ms, num_batch_threads), sent when its simulated row lands and
again as each of its load points ends (step: the load points measured). Once its search ends,
its metrics are the setting's answer, read from serving.csv's rows by the same rule as the
run's answer (outputs.setting_max): the simulated and the measured max rate, and the figures
measured at that rate."""

from __future__ import annotations

from pathlib import Path

from batchbench.export.records import Point, point_of
from batchbench.serving import outputs

SETTING = ("max_batch_size", "batch_timeout_ms", "num_batch_threads")
STEP = "load_points"
AT_MAX = ("latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_at_percentile", "queue_ms_p99",
          "achieved_qps", "batch_size_mean", "requests")


def setting_row(rows: list[dict], max_batch_size: int, timeout_ms: float, done: bool = False,
                answer: dict | None = None, final: bool = False, repeats: int | None = None) -> dict:
    """One setting's row for the trackers. While its search runs: its load points so far and the
    last one's rate and latency (a history, step by step). `done` (its search ended): its max
    rate and the figures measured there, sent only then, since a later point (a repeat that
    misses) can take a max back and a tracker cannot unsay a metric. `final`: the run ended, so
    whether it is the `answer` is said too. `repeats`: the repeats an answer needs, as the
    run's summary says (outputs.setting_max)."""
    key = (int(max_batch_size), float(timeout_ms))
    mine = [r for r in rows if (int(r["max_batch_size"]), float(r["batch_timeout_ms"])) == key]
    measured = [r for r in mine if r.get("source") == "measured"]
    simulated = outputs.setting_max(mine, "simulated").get(key)
    threads = next((r["num_batch_threads"] for r in mine if r.get("num_batch_threads") is not None), None)
    row = {"trial_id": f"serve-b{key[0]}-t{key[1]:g}", "max_batch_size": key[0], "batch_timeout_ms": key[1],
           "num_batch_threads": threads, "source": "measured" if measured else "simulated",
           "status": "error" if measured and all(r.get("status") == "error" for r in measured) else "ok",
           "simulated_max_qps": (simulated or {}).get("offered_qps"), STEP: len(measured)}
    points = [r for r in measured if r.get("offered_qps")]
    if points:
        row["last_offered_qps"] = points[-1]["offered_qps"]
        row["last_latency_ms_at_percentile"] = points[-1].get("latency_ms_at_percentile")
    errors = [r["error"] for r in measured if r.get("error")]
    if errors:
        row["error"] = errors[-1]
    if done and measured:
        best = outputs.setting_max(mine, "measured", repeats=repeats).get(key)
        row["slo_met"] = best is not None
        if best is not None:
            row["max_qps"] = best["offered_qps"]
            row.update({k: best.get(k) for k in AT_MAX})
            if row["simulated_max_qps"]:
                row["gap_pct"] = (row["simulated_max_qps"] / best["offered_qps"] - 1.0) * 100
    if final:
        row["answer"] = bool(answer) and (answer["max_batch_size"], float(answer["batch_timeout_ms"])) == key
    return row


def setting_points(rows: list[dict], answer: dict | None, done: set | None = None,
                   repeats: int | None = None) -> list[Point]:
    """Every setting of the run, as the trackers file it at the end (`done`: the settings whose
    search ended; None: all of them, the run completed)."""
    keys = sorted({(int(r["max_batch_size"]), float(r["batch_timeout_ms"])) for r in rows})
    return [point_of(setting_row(rows, m, t, done is None or (m, t) in done, answer, final=True, repeats=repeats),
                     SETTING, step=STEP) for m, t in keys]


def saved_setting_points(run_dir: str | Path) -> list[Point] | None:
    """A saved serving run's settings (None: not a serving run, the trackers read results.csv).
    Only a completed run's maxima are sent: an interrupted one's may yet be taken back."""
    from batchbench.results import RUN_JSON, read_run_json
    from batchbench.serving.compare import is_serving_run, load_serving

    if not is_serving_run(run_dir):
        return None
    rows, summary = load_serving(run_dir)
    record = read_run_json(Path(run_dir) / RUN_JSON) if (Path(run_dir) / RUN_JSON).exists() else {}
    return setting_points(rows, summary.get("serving"), None if record.get("status") == "complete" else set(),
                          summary.get("confirm_repeats"))
