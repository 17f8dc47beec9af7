"""Recommendations from rows: pure functions over plain data."""

from __future__ import annotations

from batchbench.recommend import recommend_group, summarize


def row(batch, tp, p99=None, status="ok", mode="predict", method="predict"):
    return {"mode": mode, "method": method, "batch_size": batch, "status": status, "throughput_sps": tp,
            "step_ms_p99": p99, "step_ms_median": p99, "precision": "float32"}


ROWS = [row(1, 100, 1.0), row(8, 700, 2.0), row(32, 900, 6.0), row(128, 960, 20.0), row(512, 1000, 80.0)]


def test_best_knee_and_near_best():
    rec = recommend_group(ROWS)
    assert rec["best_throughput"] == 512
    assert rec["knee"] == 32  # the smallest batch reaching 90% of the best
    assert rec["recommended"] == 128 and rec["tied_with_best"] == [128, 512]  # one round: within 5% is tied
    assert rec["largest_ok"] == 512


def test_slo_pick_is_the_best_row_within_the_budget_on_the_tables_own_numbers():
    for budget in (1.5, 6.0, 25.0, 100.0):
        pick = recommend_group(ROWS, slo_ms=budget, percentile=99)["slo"]
        within = [r for r in ROWS if r["step_ms_p99"] <= budget]
        assert pick == max(within, key=lambda r: r["throughput_sps"])["batch_size"]


def test_no_batch_meets_the_slo_is_null_not_missing():
    rec = recommend_group(ROWS, slo_ms=0.5)
    assert "slo" in rec and rec["slo"] is None


def test_oom_rows_are_never_recommended():
    rows = ROWS[:3] + [row(128, None, status="oom"), row(512, None, status="skipped")]
    rec = recommend_group(rows)
    assert rec["best_throughput"] == 32 and rec["largest_ok"] == 32


def test_summary_counts_and_overall_prefers_fit_groups():
    rows = ROWS + [row(16, 50, mode="fit", method=""), row(64, 80, mode="fit", method=""),
                   row(128, None, status="oom", mode="fit", method="")]
    summary = summarize(rows, varying=[])
    assert summary["status_counts"] == {"ok": 7, "oom": 1}
    assert summary["recommendations"]["overall"] == {"group": "fit", "batch_size": 64, "throughput_sps": 80}


def test_predict_vs_serve_gap_per_batch():
    rows = [row(8, 100), row(8, 400, method="serve"), row(32, 300), row(32, 600, method="serve")]
    assert summarize(rows, [])["predict_vs_serve"] == {"8": 0.25, "32": 0.5}


def test_group_keys_name_varying_axes():
    rows = [dict(row(8, 100, mode="fit", method=""), precision=p) for p in ("float32", "mixed_bfloat16")]
    recs = summarize(rows, varying=["precision"])["recommendations"]
    assert {"fit|precision=float32", "fit|precision=mixed_bfloat16"} <= set(recs)
