"""`batchbench predict-throughput`: both call methods, latency percentiles, and the picks."""

from __future__ import annotations

import json

import pytest

from batchbench.recommend import latency_column
from batchbench.results import read_rows
from tests.conftest import run_cli

FAST = ["--repeats", "2", "--rounds", "2"]  # two rounds: the pooled rows of real trial processes


@pytest.mark.slow
def test_default_model_both_methods_latencies_and_picks(tmp_path):
    out = tmp_path / "run"
    result = run_cli("predict-throughput", "--batch-sizes", "2,16,64", "--slo-ms", "1000", "--percentile", "95",
                     "--out", out, "--json", *FAST)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    rows = [r for r in read_rows(out / "results.csv")]
    assert {(r["method"], r["batch_size"]) for r in rows} == {(m, b) for m in ("predict", "serve") for b in (2, 16, 64)}
    for r in rows:
        assert r["mode"] == "predict" and r["status"] == "ok" and r["stable"] in (True, False)
        assert r["step_ms_median"] <= r["step_ms_p90"] <= r["step_ms_p95"] <= r["step_ms_p99"] <= r["step_ms_max"]
        # a batch takes at least its median latency, so throughput cannot beat batch / fastest batch
        assert r["throughput_sps"] <= r["batch_size"] / (r["step_ms_median"] / 1000) * 2
        assert r["max_abs_diff"] is not None and r["consistent"] is True
    for method in ("predict", "serve"):
        rec = summary["recommendations"][f"predict/{method}"]
        group = [r for r in rows if r["method"] == method]
        best = max(group, key=lambda r: r["throughput_sps"])
        assert rec["best_throughput"] == best["batch_size"]
        knee = min(r["batch_size"] for r in group if r["throughput_sps"] >= 0.9 * best["throughput_sps"])
        assert rec["knee"] == knee
        within = [r for r in group if r[latency_column(95)] <= 1000]
        assert rec["slo"] == max(within, key=lambda r: r["throughput_sps"])["batch_size"]
    assert set(summary["predict_vs_serve"]) == {"2", "16", "64"}
    assert "model.predict / compiled call" in result.stderr  # the gap is shown to the user


@pytest.mark.slow
def test_a_model_named_on_the_command_line(tmp_path):
    result = run_cli("predict-throughput", "--model", "builtin:cnn", "--input-shape", "12,12,3",
                     "--batch-sizes", "4", "--methods", "serve", "--out", tmp_path / "r", "--json", *FAST)
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "r" / "results.csv")
    assert [(r["model"], r["status"]) for r in rows] == [("cnn", "ok")]


@pytest.mark.parametrize("args, names", [
    (["--input-shape", "0,3"], "--input-shape"),
    (["--input-shape", "a,b"], "--input-shape"),
    (["--batch-sizes", "8,x"], "--batch-sizes"),
    (["--batch-sizes", "64-8"], "--batch-sizes"),
    (["--slo-ms", "-5"], "--slo-ms"),
    (["--model", "nonsense"], "--model"),
])
def test_bad_input_is_one_clear_message_and_exit_2(args, names):
    result = run_cli("predict-throughput", *args, "-q")
    assert result.returncode == 2, result.stderr
    assert names in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_unknown_application_is_a_config_error_before_any_trial(tmp_path):
    result = run_cli("predict-throughput", "--model", "application:MobileNetV9", "--out", tmp_path / "r", "-q")
    assert result.returncode == 2
    assert "model.application" in result.stderr and "MobileNetV9" in result.stderr
    assert "did you mean" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r" / "results.csv").exists()
