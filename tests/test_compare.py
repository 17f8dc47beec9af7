"""`batchbench compare`: every verdict, on real results files written by batchbench's own writer."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchbench.cli import main
from batchbench.compare.cells import COLUMNS
from batchbench.compare.metrics import parse_thresholds
from batchbench.compare.significance import holm, min_p_value, repeats_needed
from batchbench.results import ResultsWriter, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent

# The shape of a real run.json's environment (a CPU machine), trimmed.
ENVIRONMENT = {
    "hostname": "runner", "os": "Linux-6.8-x86_64", "python": "3.11.7", "cpu_model": "AMD EPYC 7763",
    "cpu_cores_physical": 2, "cpu_cores_logical": 4, "cpu_affinity": [0, 1, 2, 3],
    "memory_total_mib": 16000.0, "memory_available_mib": 15000.0, "load_average": [0.3, 0.2, 0.1],
    "thread_env": {}, "nvml": {"available": False, "reason": "no NVIDIA driver", "gpus": []},
    "framework": {"python": "3.11.7", "keras": "3.15.1", "keras_backend": "tensorflow", "tensorflow": "2.21.0",
                  "tf_devices": [{"name": "/physical_device:CPU:0", "type": "CPU"}],
                  "tf_threads": {"intra_op": 0, "inter_op": 0}},
}

# (mode, method, batch size, median throughput in samples/s, peak host MiB)
POINTS = [("fit", "", 16, 10_000.0, 370.0), ("fit", "", 64, 20_000.0, 372.0),
          ("predict", "predict", 16, 8_000.0, 360.0), ("predict", "predict", 64, 18_000.0, 362.0)]


def trial_id(mode: str, method: str, batch: int) -> str:
    return "-".join([mode] + ([method] if method else []) + [f"b{batch}"])


def make_run(path: Path, *, scale: float | dict[str, float] = 1.0, repeats: int = 7, seed: int = 0,
             rows: dict[str, dict] | None = None, samples: dict[str, list[float]] | None = None,
             env: dict | None = None, run_json: bool = True, summary: dict | None = None,
             extra_rows: list[dict] = (), rounds: int = 1, round_scale: dict[str, list[float]] | None = None) -> Path:
    """A run directory like a sweep writes: results.csv through ResultsWriter, run.json through
    write_json_atomic. `scale` multiplies throughput (all rows, or per trial id); per-repeat
    throughputs scatter ±3% around the median; `rows` overrides cells, `samples` the raw repeats.
    With `rounds` > 1 each point is measured in that many rounds of `repeats` repeats, each
    round ±2% off the point's throughput (times `round_scale[trial][round]`), run.json naming
    each repeat's round and throughput_sps the geometric mean of the rounds' medians, as the
    sweep pools them."""
    path.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    writer = ResultsWriter(path)
    raw: dict[str, dict] = {}
    for mode, method, batch, throughput, host_mib in POINTS:
        tid = trial_id(mode, method, batch)
        factor = scale.get(tid, 1.0) if isinstance(scale, dict) else scale
        round_of = None
        if rounds > 1:
            shifts = (round_scale or {}).get(tid, [1.0] * rounds)
            effects = [shifts[r] * (1 + rng.uniform(-0.02, 0.02)) for r in range(rounds)]
            round_of = [r for r in range(rounds) for _ in range(repeats)]
            repeat_tps = [throughput * factor * effects[r] * (1 + rng.uniform(-0.03, 0.03)) for r in round_of]
            medians = [statistics.median(repeat_tps[r * repeats:(r + 1) * repeats]) for r in range(rounds)]
            median = math.exp(statistics.fmean(math.log(m) for m in medians))
        else:
            repeat_tps = [throughput * factor * (1 + rng.uniform(-0.03, 0.03)) for _ in range(repeats)]
            repeat_tps = (samples or {}).get(tid, repeat_tps)
            median = sorted(repeat_tps)[len(repeat_tps) // 2]
        step_ms = batch / median * 1000
        row = {"run_id": path.name, "name": "tiny", "model": "mlp", "mode": mode, "method": method,
               "batch_size": batch, "status": "ok", "throughput_sps": median,
               "throughput_sps_min": min(repeat_tps), "throughput_sps_max": max(repeat_tps),
               "step_ms_median": step_ms, "step_ms_p90": step_ms * 1.1, "step_ms_p95": step_ms * 1.2,
               "step_ms_p99": step_ms * 1.5, "step_ms_max": step_ms * 40, "sample_ms": step_ms / batch,
               "first_step_s": 0.6, "wall_s": 2.0, "peak_host_mib": host_mib, "repeats": len(repeat_tps),
               "params": 22026, "trial_id": tid, "phase": "ladder", "device": "cpu", "precision": "float32",
               "jit_compile": "auto", "backend": "tensorflow", "strategy": "default"}
        if rounds > 1:
            row["rounds"] = rounds
        override = (rows or {}).get(tid, {})
        row.update(override)
        if row["status"] != "ok":
            for column in list(row):
                if column.startswith(("throughput", "step_ms", "sample_ms", "peak_")):
                    row[column] = None
        writer.append(row)
        if row["status"] == "ok":
            raw[tid] = {"throughput_sps": repeat_tps, "step_ms": [step_ms] * 50}
            if round_of is not None:
                raw[tid]["round"] = round_of
    for row in extra_rows:
        writer.append(row)
    if run_json:
        write_json_atomic(path / "run.json", {
            "schema_version": 1, "batchbench_version": "0.1.0", "run_id": path.name, "name": "tiny",
            "status": "complete", "git": {"commit": "0123456789abcdef", "dirty": False},
            "environment": env or ENVIRONMENT, "samples": raw,
            "summary": summary or {"status_counts": {"ok": len(raw)}, "recommendations": {}},
        })
    return path


def compare(*args: str, env: dict | None = None):
    # A wide terminal unless a test asks for a width: lines then never wrap, whatever runs pytest.
    result = CliRunner().invoke(main, ["compare", *map(str, args)], env={"COLUMNS": "200", **(env or {})})
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def compare_json(*args: str) -> tuple[int, dict]:
    result = compare(*args, "--format", "json")
    return result.exit_code, json.loads(result.stdout)


def verdicts(report: dict) -> dict[str, str]:
    return {r.get("trial") or trial_id(r["mode"], r["method"] or "", r["batch_size"]): r["verdict"]
            for r in report["rows"] if r["kind"] == "trial"}


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return make_run(tmp_path / "base", seed=1)


# ---------------------------------------------------------------------------- verdicts
def test_identical_runs_have_no_regression(base: Path):
    code, report = compare_json(base, base)
    assert code == 0
    assert set(verdicts(report).values()) == {"unchanged"}
    assert report["summary"]["throughput_geomean_ratio"] == pytest.approx(1.0)


def test_rerun_with_fresh_noise_is_unchanged(base: Path, tmp_path: Path):
    result = compare(base, make_run(tmp_path / "head", seed=2))
    assert result.exit_code == 0, result.output
    assert "no regressions: 0 regressed, 0 improved, 4 unchanged, 0 not judged" in result.output


def test_real_slowdown_is_a_regression(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head", seed=2, scale={"fit-b64": 0.8})
    code, report = compare_json(base, head)
    assert code == 1
    assert verdicts(report) == {"fit-b64": "regression", "fit-b16": "unchanged",
                                "predict-predict-b16": "unchanged", "predict-predict-b64": "unchanged"}
    row = next(r for r in report["rows"] if r["verdict"] == "regression")
    assert row["test"]["p_value"] == pytest.approx(min_p_value(7, 7))  # complete separation
    assert row["test"]["slower"] is True
    throughput = next(m for m in row["metrics"] if m["metric"] == "throughput_sps")
    assert throughput["change"] == pytest.approx(-0.2, abs=0.04)
    assert throughput["outcome"] == "regression"
    table = compare(base, head)
    assert table.exit_code == 1
    lines = table.output.splitlines()
    assert lines.index(next(line for line in lines if "regression" in line)) < \
        lines.index(next(line for line in lines if "unchanged" in line))  # regressions first
    assert "1 regression: 1 regressed" in table.output


def test_fail_on_never_reports_but_exits_zero(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head", seed=2, scale=0.8)
    result = compare(base, head, "--fail-on", "never")
    assert result.exit_code == 0
    assert "4 regressions: 4 regressed" in result.output
    assert "×0.8" in result.output  # geometric-mean throughput ratio


def test_speedup_is_an_improvement(base: Path, tmp_path: Path):
    code, report = compare_json(base, make_run(tmp_path / "head", seed=2, scale=1.25))
    assert code == 0
    assert set(verdicts(report).values()) == {"improvement"}
    assert report["summary"]["improved"] == 4


def test_change_beyond_threshold_but_within_noise_is_unchanged(tmp_path: Path):
    noisy = [10_000, 6_000, 14_000, 9_000, 11_000, 7_000, 13_000]
    base = make_run(tmp_path / "base", samples={"fit-b16": noisy})
    head = make_run(tmp_path / "head", samples={"fit-b16": [v * 0.92 for v in noisy]})
    code, report = compare_json(base, head)
    assert code == 0
    row = next(r for r in report["rows"] if r["batch_size"] == 16 and r["mode"] == "fit")
    assert row["verdict"] == "unchanged"
    assert row["test"]["p_adjusted"] > 0.05
    assert "speed within noise" in compare(base, head).output


def test_new_oom_is_a_regression(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head", seed=2,
                    rows={"fit-b64": {"status": "oom", "error": "OOM when allocating tensor", "oom_kind": "host"}})
    code, report = compare_json(base, head)
    assert code == 1
    assert verdicts(report)["fit-b64"] == "regression"
    row = next(r for r in report["rows"] if r["verdict"] == "regression")
    assert (row["baseline_status"], row["current_status"]) == ("ok", "oom")
    assert "ok → oom: OOM when allocating tensor" in row["notes"]
    assert "ok → oom" in compare(base, head).output


def test_batch_that_fits_now_is_an_improvement(tmp_path: Path):
    base = make_run(tmp_path / "base", rows={"fit-b64": {"status": "oom", "error": "OOM"}})
    code, report = compare_json(base, make_run(tmp_path / "head", seed=2))
    assert code == 0
    assert verdicts(report)["fit-b64"] == "improvement"


def test_memory_increase_is_judged_by_threshold_alone(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head", seed=2, rows={"predict-predict-b16": {"peak_host_mib": 360.0 * 1.2}})
    code, report = compare_json(base, head)
    assert code == 1
    assert verdicts(report)["predict-predict-b16"] == "regression"
    row = next(r for r in report["rows"] if r["verdict"] == "regression")
    memory = next(m for m in row["metrics"] if m["metric"] == "peak_host_mib")
    assert memory["outcome"] == "regression" and row["test"] is None  # no test for memory
    assert "peak_host_mib +20.0%" in compare(base, head).output
    assert compare(base, head, "--threshold", "peak_host_mib=25%").exit_code == 0
    assert compare(base, head, "--threshold", "30%").exit_code == 0


def test_too_few_repeats_is_not_unchanged(tmp_path: Path):
    base = make_run(tmp_path / "base", repeats=3)
    head = make_run(tmp_path / "head", repeats=3, seed=2, scale={"fit-b64": 0.8})
    code, report = compare_json(base, head)
    assert code == 4  # moved beyond its threshold, and no test could judge it: not a pass
    assert verdicts(report)["fit-b64"] == "not enough repeats"
    assert verdicts(report)["fit-b16"] == "unchanged"  # within threshold needs no test
    assert report["summary"]["not_enough_repeats"] == 1 and report["summary"]["could_not_judge"] == 1
    row = next(r for r in report["rows"] if r["verdict"] == "not enough repeats")
    assert any("3 vs 3 repeats reach at best p = 0.1" in note for note in row["notes"])
    assert f"--repeats {repeats_needed(0.05)}" in compare(base, head, "--format", "markdown").output


def test_unjudged_move_says_so_first_in_every_format(tmp_path: Path):
    base = make_run(tmp_path / "base", repeats=3)
    head = make_run(tmp_path / "head", repeats=3, seed=2, scale={"fit-b64": 0.77})
    table = compare(base, head)
    assert table.exit_code == 4
    assert table.stdout.splitlines()[0] == "batchbench compare: 1 row could not be judged " \
        "(too few repeats to test a change beyond its threshold)"
    assert "no regressions" not in table.stdout
    markdown = compare(base, head, "--format", "markdown")
    assert markdown.exit_code == 4
    title = markdown.stdout.splitlines()[0]
    assert title.startswith("### batchbench compare: ⚠️ 1 row could not be judged") and "✅" not in title
    code, report = compare_json(base, head)
    assert code == 4 and list(report)[:2] == ["verdict", "headline"]
    assert report["verdict"] == "cannot judge" and "could not be judged" in report["headline"]
    lines = compare(base, head, "--format", "csv").stdout.splitlines()
    first = next(csv.DictReader(io.StringIO("\n".join(lines[:2]))))
    assert (first["kind"], first["verdict"]) == ("summary", "cannot judge")
    assert "could not be judged" in first["note"]
    never = compare(base, head, "--fail-on", "never")
    assert never.exit_code == 0 and never.stdout.splitlines()[0].startswith("batchbench compare: 1 row could not")


def test_exit_codes_rank_environment_then_regression_then_unjudged(tmp_path: Path):
    other = copy.deepcopy(ENVIRONMENT)
    other["cpu_model"] = "Intel Xeon Platinum 8370C"
    base = make_run(tmp_path / "base", repeats=3)
    unjudged = make_run(tmp_path / "unjudged", repeats=3, seed=2, scale={"fit-b64": 0.8})
    both = make_run(tmp_path / "both", repeats=3, seed=2, scale={"fit-b64": 0.8},
                    rows={"fit-b16": {"status": "oom", "error": "OOM"}})
    moved_elsewhere = make_run(tmp_path / "elsewhere", repeats=3, seed=2, scale={"fit-b64": 0.8}, env=other)
    assert compare(base, unjudged).exit_code == 4
    assert compare(base, both).exit_code == 1                       # a regression wins over 4
    assert compare(base, both, "--fail-on", "never").exit_code == 0
    assert compare(base, moved_elsewhere).exit_code == 4
    assert compare(base, moved_elsewhere, "--strict-env").exit_code == 3  # 3 wins over everything
    assert compare(base, moved_elsewhere, "--strict-env", "--fail-on", "never").exit_code == 3
    _, report = compare_json(base, both)
    assert report["verdict"] == "regression"
    assert report["headline"] == "1 regression; 1 row could not be judged"


def test_an_improvement_elsewhere_does_not_hide_an_untested_speed_change(tmp_path: Path):
    base = make_run(tmp_path / "base", repeats=3)
    head = make_run(tmp_path / "head", repeats=3, seed=2, scale={"fit-b64": 0.8},
                    rows={"fit-b64": {"peak_host_mib": 300.0}})
    code, report = compare_json(base, head)
    assert code == 4 and verdicts(report)["fit-b64"] == "not enough repeats"


def test_default_run_can_be_judged(tmp_path: Path):
    # A default sweep measures every point in sweep.rounds' minimum of rounds, sweep.repeats each:
    # four rows moving at once must still be judged (regressions, not "not enough repeats").
    from batchbench.config import SweepSpec

    repeats = SweepSpec.model_fields["repeats"].default
    field = SweepSpec.model_fields.get("rounds")
    rounds = field.default_factory().min if field is not None else 1  # before rounds: one round
    if rounds >= 2:
        assert repeats >= 1  # the rounds are the unit: any number of repeats in them will do
    else:
        assert repeats >= repeats_needed(0.05 / 4)
    base = make_run(tmp_path / "base", repeats=repeats, rounds=rounds)
    code, report = compare_json(base, make_run(tmp_path / "head", repeats=repeats, rounds=rounds, seed=2, scale=0.8))
    assert code == 1 and set(verdicts(report).values()) == {"regression"}
    rerun = make_run(tmp_path / "rerun", repeats=repeats, rounds=rounds, seed=3)
    assert compare(base, rerun).exit_code == 0
    # the least that can ever judge one row at alpha 0.05 with one round: 4 repeats a side (p >= 0.029)
    assert repeats_needed(0.05) == 4 and min_p_value(3, 3) > 0.05 >= min_p_value(4, 4)


def test_too_few_repeats_after_correction(tmp_path: Path):
    # 4 vs 4 reaches p = 0.029 alone, but 4 rows tested at once need p <= 0.0125.
    base = make_run(tmp_path / "base", repeats=4)
    code, report = compare_json(base, make_run(tmp_path / "head", repeats=4, seed=2, scale=0.8))
    assert code == 4
    assert set(verdicts(report).values()) == {"not enough repeats"}
    assert "use --repeats 5 or more" in report["rows"][0]["notes"][0]  # 5 vs 5 reaches 0.0079 <= 0.05/4


def test_results_csv_without_run_json_uses_thresholds_only(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head", seed=2, scale={"fit-b64": 0.8}, run_json=False)
    result = compare(base, head / "results.csv")
    assert result.exit_code == 1
    assert "thresholds only: no run.json beside" in result.output
    code, report = compare_json(base, head)
    assert verdicts(report)["fit-b64"] == "regression" and verdicts(report)["fit-b16"] == "unchanged"
    assert report["current"]["has_run_json"] is False
    assert any("thresholds only" in w for w in report["warnings"])


def test_environment_difference_warns_and_strict_env_exits_3(base: Path, tmp_path: Path):
    other = copy.deepcopy(ENVIRONMENT)
    other["cpu_model"] = "Intel Xeon Platinum 8370C"
    other["framework"]["tensorflow"] = "2.20.0"
    head = make_run(tmp_path / "head", seed=2, env=other)
    result = compare(base, head)
    assert result.exit_code == 0
    verdict, first = result.output.splitlines()[:2]  # the verdict, then the warnings
    assert verdict == "batchbench compare: no regressions"
    assert first.startswith("warning: the two runs were made in different environments")
    assert "CPU model 'AMD EPYC 7763' → 'Intel Xeon Platinum 8370C'" in result.output
    assert "TensorFlow '2.21.0' → '2.20.0'" in result.output
    assert compare(base, head, "--strict-env").exit_code == 3
    assert compare(base, base, "--strict-env").exit_code == 0


def test_gpu_difference_is_an_environment_difference(base: Path, tmp_path: Path):
    gpu = copy.deepcopy(ENVIRONMENT)
    gpu["nvml"] = {"available": True, "driver": "550.54", "gpus": [{"index": 0, "name": "NVIDIA A10G"}]}
    gpu["framework"]["tf_devices"].append({"name": "/physical_device:GPU:0", "type": "GPU"})
    _, report = compare_json(base, make_run(tmp_path / "head", env=gpu))
    fields = {d["field"] for d in report["environment"]["differences"]}
    assert {"GPU", "GPU count", "devices TensorFlow used"} <= fields


@pytest.mark.parametrize("backend, version, other, label", [("jax", "0.10.2", "0.9.0", "JAX"),
                                                           ("torch", "2.9.0", "2.8.1", "torch")])
def test_a_jax_or_torch_version_difference_is_an_environment_difference(tmp_path: Path, backend, version, other,
                                                                        label):
    def env(v: str) -> dict:
        on = copy.deepcopy(ENVIRONMENT)
        on["framework"].update(keras_backend=backend, **{backend: v})
        return on

    a = make_run(tmp_path / "a", env=env(version))
    b = make_run(tmp_path / "b", seed=2, env=env(other))
    _, report = compare_json(a, b)
    assert [(d["field"], d["baseline"], d["current"]) for d in report["environment"]["differences"]] == \
        [(label, version, other)]
    assert compare(a, b, "--strict-env").exit_code == 3
    assert compare(a, make_run(tmp_path / "same", seed=3, env=env(version)), "--strict-env").exit_code == 0
    _, tf_only = compare_json(make_run(tmp_path / "tf"), make_run(tmp_path / "tf2", seed=2))
    assert backend not in tf_only["environment"]["baseline"]  # a run that never used the backend has no such field


def test_added_and_removed_rows_are_listed(base: Path, tmp_path: Path):
    extra = {"run_id": "head", "name": "tiny", "model": "mlp", "mode": "fit", "method": None, "batch_size": 256,
             "status": "ok", "throughput_sps": 30_000.0, "trial_id": "fit-b256", "phase": "ladder",
             "precision": "float32", "jit_compile": "auto", "backend": "tensorflow", "strategy": "default"}
    head = make_run(tmp_path / "head", seed=2, extra_rows=[extra])
    code, report = compare_json(head, base)
    assert code == 0
    assert verdicts(report)["fit-b256"] == "removed"
    code, report = compare_json(base, head)
    assert verdicts(report)["fit-b256"] == "added"
    assert report["summary"]["added"] == 1 and report["summary"]["unchanged"] == 4


def test_find_max_rows_are_all_kept_and_max_batch_size_is_judged(tmp_path: Path):
    def confirm(batch: int) -> dict:
        return {"run_id": "x", "model": "mlp", "mode": "fit", "method": None, "batch_size": batch, "status": "ok",
                "throughput_sps": 20_000.0, "trial_id": f"fit-b{batch}-confirm", "phase": "confirm",
                "precision": "float32", "jit_compile": "auto", "backend": "tensorflow", "strategy": "default"}

    def summary(largest: int) -> dict:
        return {"recommendations": {"fit": {"best_throughput": 64, "max_batch_size": largest}}}

    base = make_run(tmp_path / "base", extra_rows=[confirm(64)], summary=summary(1216))
    head = make_run(tmp_path / "head", seed=2, extra_rows=[confirm(64)], summary=summary(1024))
    code, report = compare_json(base, head)
    assert code == 1
    phases = [r["phase"] for r in report["rows"] if r["kind"] == "trial" and r["batch_size"] == 64
              and r["mode"] == "fit"]
    assert set(phases) == {"confirm", None}
    group = next(r for r in report["rows"] if r["kind"] == "group")
    assert group["group"] == "fit" and group["verdict"] == "regression"
    assert compare(base, head, "--threshold", "max_batch_size=20%").exit_code == 0


def test_older_results_with_fewer_columns_compare_on_what_both_have(base: Path, tmp_path: Path):
    older = tmp_path / "older.csv"
    with open(older, "w", newline="") as fh:  # no axes, no step times: an early results file
        writer = csv.writer(fh)
        writer.writerow(["model", "mode", "method", "batch_size", "status", "throughput_sps", "peak_host_mib"])
        for mode, method, batch, throughput, host_mib in POINTS:
            writer.writerow(["mlp", mode, method, batch, "ok", throughput * (0.8 if batch == 64 else 1.0), host_mib])
    code, report = compare_json(base, older)
    assert report["match_columns"] == ["model", "mode", "method", "batch_size"]
    assert code == 1 and verdicts(report)["fit-b64"] == "regression"  # thresholds only: no run.json
    assert verdicts(report)["fit-b16"] == "unchanged"


# ---------------------------------------------------------------------------- figures that cannot be judged
@pytest.mark.parametrize("value, shown", [(math.nan, "nan"), (math.inf, "inf"), ("fast", "'fast'")])
def test_a_figure_that_is_not_a_number_cannot_be_judged(base: Path, tmp_path: Path, value, shown: str):
    head = make_run(tmp_path / "head", seed=2, rows={"fit-b64": {"throughput_sps": value}})
    result = compare(base, head, "--format", "json")
    assert result.exit_code == 4
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout  # strict JSON
    report = json.loads(result.stdout)
    assert verdicts(report)["fit-b64"] == "cannot judge" and report["verdict"] == "cannot judge"
    row = next(r for r in report["rows"] if r["verdict"] == "cannot judge")
    assert f"throughput_sps is {shown} in the current, not a finite number" in row["notes"]
    assert "fit batch 64" in result.stderr  # a warning line naming the row
    assert compare(base, head, "--fail-on", "never").exit_code == 0


def test_a_bad_figure_does_not_hide_a_regression_beside_it(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head", seed=2, rows={"fit-b64": {"step_ms_p99": math.nan, "peak_host_mib": 600.0}})
    code, report = compare_json(base, head)
    assert code == 1 and verdicts(report)["fit-b64"] == "regression"


def test_csv_figure_its_raw_repeats_contradict_is_warned_and_judged_by_the_worse_reading(base: Path, tmp_path: Path):
    # results.csv edited to 0 samples/s while run.json's repeats say ~20,000/s: not "unchanged"
    edited = make_run(tmp_path / "edited", seed=2, rows={"fit-b64": {"throughput_sps": 0.0}})
    result = compare(base, edited, "--format", "json")
    assert result.exit_code == 1
    assert verdicts(json.loads(result.stdout))["fit-b64"] == "regression"
    warning = next(line for line in result.stderr.splitlines() if "fit batch 64" in line)
    assert warning.startswith("warning: ") and "results.csv says throughput_sps 0 in the current" in warning
    assert "raw repeats in run.json say 19," in warning
    table = compare(base, edited)
    assert any(line.startswith("warning: mlp fit batch 64") for line in table.stdout.splitlines()[:4])
    # the other way: the CSV says nothing moved, the repeats say 20% slower
    slower = [20_000.0 * 0.8 * (1 + i / 100) for i in range(7)]
    hidden = make_run(tmp_path / "hidden", seed=2, samples={"fit-b64": slower},
                      rows={"fit-b64": {"throughput_sps": 20_000.0}})
    code, report = compare_json(base, hidden)
    assert code == 1 and verdicts(report)["fit-b64"] == "regression"
    # files that disagree and neither reading is worse: not passed either
    boasting = make_run(tmp_path / "boasting", seed=2, rows={"fit-b64": {"throughput_sps": 40_000.0}})
    code, report = compare_json(base, boasting)
    assert code == 4 and verdicts(report)["fit-b64"] == "cannot judge"


def test_raw_repeats_that_are_nan_cannot_be_judged(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head", seed=2)
    record = json.loads((head / "run.json").read_text())
    record["samples"]["fit-b16"]["throughput_sps"][0] = math.nan
    (head / "run.json").write_text(json.dumps(record))  # NaN is what json.dumps writes by default
    code, report = compare_json(base, head)
    assert code == 4 and verdicts(report)["fit-b16"] == "cannot judge"


# ---------------------------------------------------------------------------- bad input: exit 2
def test_missing_path_is_exit_2(base: Path, tmp_path: Path):
    result = compare(base, tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "nowhere: no such file or directory" in result.output


def test_not_batchbench_results_is_exit_2(base: Path, tmp_path: Path):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    result = compare(base, other)
    assert result.exit_code == 2 and "not a batchbench results file" in result.output
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\x00")
    assert compare(base, binary).exit_code == 2
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    result = compare(base, empty_dir)
    assert result.exit_code == 2 and "not a batchbench run directory" in result.output


def test_header_only_results_is_exit_2(base: Path, tmp_path: Path):
    head = tmp_path / "head"
    head.mkdir()
    (head / "results.csv").write_text((base / "results.csv").read_text().splitlines()[0] + "\n")
    result = compare(base, head)
    assert result.exit_code == 2 and "no rows" in result.output


def test_damaged_run_json_is_exit_2(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head")
    (head / "run.json").write_text("{not json")
    result = compare(base, head)
    assert result.exit_code == 2 and "run.json" in result.output


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("text, reason", [
    ('{"schema_version": 99, "samples": {}}', "99"),
    ('{"schema_version": 1, "deep": ' + "[" * 5000 + "]" * 5000 + "}", "run.json"),
    ('{"schema_version": 1, "huge": ' + "7" * 5000 + "}", "run.json"),
    ('{"schema_version": 1, "samples": [1, 2]}', "samples"),
    ('{"schema_version": 1, "samples": {"fit-b16": [1, 2]}}', "samples['fit-b16']"),
    ('{"schema_version": 1, "samples": {"fit-b16": {"throughput_sps": ["fast"]}}}', "samples['fit-b16'].throughput_sps"),
    ('{"schema_version": 1, "environment": {"nvml": {"gpus": 5}}, "summary": {"recommendations": {"fit": [1]}}}', None),
])
def test_run_json_compare_cannot_use_is_one_line_exit_2(base: Path, tmp_path: Path, text: str, reason: str | None):
    head = make_run(tmp_path / "head", seed=2)
    (head / "run.json").write_text(text)
    result = compare(base, head, "--format", "json")
    if reason is None:  # odd shapes where compare only reads what it can: no crash, no judgement lost
        assert result.exit_code == 0
        return
    line = one_error_line(result)
    assert str(head / "run.json") in line and reason in line


def test_no_rows_in_common_is_exit_2(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head", rows={tid: {"model": "cnn"} for tid in
                                             [trial_id(m, me, b) for m, me, b, _, _ in POINTS]})
    result = compare(base, head)
    assert result.exit_code == 2
    assert "no rows in common" in result.output and "cnn fit" in result.output


@pytest.mark.parametrize("spec", ["abc", "5", "-5%", "peak=10%", "peak_host_mib=", "peak_host_mib=ten%"])
def test_bad_threshold_is_exit_2(base: Path, spec: str):
    result = compare(base, base, "--threshold", spec)
    assert result.exit_code == 2
    assert result.output.startswith(f"error: --threshold {spec!r}")


def test_bad_alpha_is_exit_2(base: Path):
    result = compare(base, base, "--alpha", "0")
    assert result.exit_code == 2 and "--alpha" in result.output


def test_thresholds_parse():
    limits = parse_thresholds(["peak_host_mib=20%", "3%"])
    assert limits["throughput_sps"] == pytest.approx(0.03)
    assert limits["peak_host_mib"] == pytest.approx(0.20)  # named wins over the overall, in any order
    assert limits["step_ms_max"] is None                   # reported, judged only when named
    assert parse_thresholds(["step_ms_max=50%"])["step_ms_max"] == pytest.approx(0.5)
    defaults = parse_thresholds()
    assert defaults["throughput_sps"] == 0.05 and defaults["peak_device_mib"] == 0.10


def test_mann_whitney_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    from batchbench.compare.significance import mann_whitney

    rng = random.Random(0)
    for _ in range(400):
        n1, n2 = rng.randint(1, 12), rng.randint(1, 12)
        if rng.random() < 0.3:  # ties: the normal approximation with its tie correction
            current, baseline = [rng.choice([1, 2, 3]) for _ in range(n1)], [rng.choice([1, 2, 3, 4]) for _ in range(n2)]
        else:                   # no ties, a sample of 8 or fewer: the exact distribution
            current = [rng.gauss(0, 1) for _ in range(n1)]
            baseline = [rng.gauss(rng.choice([0, 0.5, 2]), 1) for _ in range(n2)]
        expected = stats.mannwhitneyu(current, baseline, alternative="two-sided")
        p, lower = mann_whitney(baseline, current)
        assert p == pytest.approx(float(expected.pvalue) if expected.pvalue == expected.pvalue else 1.0, abs=1e-12)
        assert lower == (float(expected.statistic) < n1 * n2 / 2)


def test_figures_are_read_as_numbers_none_or_the_text_found():
    from batchbench.compare.inputs import _figures
    from batchbench.compare.metrics import ROW_METRICS

    assert ROW_METRICS[-1] == "peak_device_mib"  # empty on a CPU: the fast path counts on it
    assert _figures(("1", "2.5")) == (1.0, 2.5)
    assert _figures(("1", "")) == (1.0, None)
    assert _figures(("", "2")) == (None, 2.0)
    nan, text, flag = _figures(("nan", "fast", "true"))
    assert math.isnan(nan) and text == "fast" and flag is True


def test_statistics_arithmetic():
    assert min_p_value(3, 3) == pytest.approx(0.1)
    assert min_p_value(6, 6) == pytest.approx(0.00216, abs=1e-5)
    assert min_p_value(7, 7) < 0.001
    assert repeats_needed(0.05) == 4
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


# ---------------------------------------------------------------------------- outputs
def test_markdown_json_csv_outputs(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head", seed=2, scale={"fit-b64": 0.8})
    markdown = compare(base, head, "--format", "markdown")
    assert markdown.exit_code == 1
    assert markdown.stdout.startswith("### batchbench compare: ❌ 1 regression")
    assert "| ❌ regression | fit | 64 |" in markdown.stdout
    assert "<details><summary>3 unchanged</summary>" in markdown.stdout
    rows = list(csv.DictReader(io.StringIO(compare(base, head, "--format", "csv").stdout)))
    throughput = [r for r in rows if r["metric"] == "throughput_sps" and r["batch_size"] == "64" and r["mode"] == "fit"]
    assert throughput[0]["verdict"] == "regression" and float(throughput[0]["change_pct"]) < -15


def test_strings_from_results_files_are_shown_literally(tmp_path: Path):
    evil = {"fit-b16": {"model": "[bold red]x[/]"}, "fit-b64": {"model": "\x1b[2Jwipe|<img src=x>`$x$`"}}
    base = make_run(tmp_path / "base", rows=evil)
    head = make_run(tmp_path / "head", seed=2, scale={"fit-b16": 0.8},
                    rows={**evil, "fit-b64": {**evil["fit-b64"], "status": "error", "error": "boom \x1b]0;t\x07"}})
    table = compare(base, head, env={"COLUMNS": "200"})
    assert table.exit_code == 1
    assert "[bold red]x[/]" in table.stdout                        # markup shown, not obeyed
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout  # no raw control characters
    assert "\\x1b[2Jwipe" in table.stdout and "\\x1b]0;t\\x07" in table.stdout
    markdown = compare(base, head, "--format", "markdown").stdout
    assert "\x1b" not in markdown and "<img" not in markdown and "&lt;img" in markdown
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| verdict"):
            assert len(re.findall(r"(?<!\\)\|", line)) == len(COLUMNS) + 1, line  # the cells stay cells
    models = {r["model"] for r in json.loads(compare(base, head, "--format", "json").stdout)["rows"]}
    assert {"[bold red]x[/]", "\x1b[2Jwipe|<img src=x>`$x$`"} <= models  # the data itself is kept
    rows = list(csv.DictReader(io.StringIO(compare(base, head, "--format", "csv").stdout)))
    assert {"[bold red]x[/]", "\x1b[2Jwipe|<img src=x>`$x$`"} <= {r["model"] for r in rows}


def test_csv_quotes_what_needs_quoting(base: Path, tmp_path: Path):
    names = {"fit-b16": {"model": 'a,b "quoted"'}, "fit-b64": {"model": "two\nlines"}}
    base = make_run(tmp_path / "base", rows=names)
    head = make_run(tmp_path / "head", seed=2, rows=names)
    rows = list(csv.DictReader(io.StringIO(compare(base, head, "--format", "csv").stdout)))
    assert {'a,b "quoted"', "two\nlines", "mlp"} == {r["model"] for r in rows if r["kind"] == "trial"}
    assert {len(r) for r in rows} == {len(rows[0])}


@pytest.mark.parametrize("width", [80, 100, 60])
def test_table_fits_the_terminal_without_cutting_numbers(tmp_path: Path, width: int):
    axes = {tid: {"precision": "mixed_bfloat16" if "b64" in tid else "float32"} for tid in
            [trial_id(m, me, b) for m, me, b, _, _ in POINTS]}
    base = make_run(tmp_path / "base", rows=axes)
    head = make_run(tmp_path / "head", seed=2, scale={"fit-b64": 0.8}, rows={
        **axes, "predict-predict-b16": {"status": "oom", "error": "OOM when allocating tensor with shape "
                                        "[64,1024,1024] and type float on /job:localhost/replica:0/task:0"}})
    result = compare(base, head, env={"COLUMNS": str(width)})
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in result.stdout
    assert re.search(r"-(19|20|21)\.\d%", result.stdout)  # the change, whole
    if width >= 100:
        assert re.search(r"\d\d,\d{3} → \d\d,\d{3}", result.stdout)  # samples/s, whole
    assert "columns left out to fit" in result.stdout
    assert "ok → oom: OOM when allocating tensor" in result.stdout.replace("\n", " ")


def test_table_layout_gives_details_a_readable_width():
    from batchbench.compare.table import MIN_DETAILS, layout

    rows = [{"verdict": "not enough repeats", "what": "mlp fit precision=mixed_bfloat16", "batch": "1024",
             "status": "ok", "samples/s": "123,456 → 98,765", "change": "-20.0%", "p": "<0.001",
             "details": "step ms p50 +25.0%, p90 +25.0%, p95 +25.0%, p99 +25.0%; 3 vs 3 repeats reach at best p = "
                        "0.1 (> alpha 0.05); use --repeats 4 or more"}]
    for width in (60, 80, 100, 120, 140):
        widths, dropped = layout([dict(r) for r in rows], width)
        assert sum(widths.values()) + 3 * len(widths) - 1 <= width
        assert {"verdict", "what", "batch", "change"} <= set(widths)
        assert dropped == [c for c in ("p", "status", "samples/s") if c not in widths]  # least important first
        # details in a column wide enough to read, or below the table, numbered
        assert widths.get("details", 0) >= MIN_DETAILS or ("note" in widths and "details" not in widths)
    assert "note" in layout([dict(r) for r in rows], 80)[0]
    assert layout([dict(r) for r in rows], 200)[1] == []


def test_many_rows_are_summarised_in_the_table_and_markdown(tmp_path: Path):
    from benchmarks.compare_scale import write_run

    base = write_run(tmp_path / "base", 2000, seed=1)
    head = write_run(tmp_path / "head", 2000, seed=2, slower_every=97, faster_every=211)
    table = compare(base, head)
    assert table.exit_code == 1
    changed = [line for line in table.stdout.splitlines() if line.lstrip().startswith(("regression", "improvement"))]
    assert 20 <= len(changed) <= 40
    assert len(table.stdout.splitlines()) < 120
    assert re.search(r"\d+ of 2,000 rows shown \(1,9\d\d unchanged left out\)", table.stdout)
    markdown = compare(base, head, "--format", "markdown").stdout
    assert "<details><summary>1,9" in markdown and "more rows are not listed here" in markdown
    report = json.loads(compare(base, head, "--format", "json").stdout)
    assert len(report["rows"]) == 2000
    lines = compare(base, head, "--format", "csv").stdout.splitlines()
    assert len(lines) == 2 + 2000 * 8  # header, verdict, one line per row and figure


def test_json_rows_are_what_json_dumps_would_write(base: Path, tmp_path: Path):
    from batchbench.compare import compare_runs, load_run
    from batchbench.compare.formats import entry_dict, row_json
    from batchbench.compare.metrics import parse_thresholds

    zero = {"peak_host_mib": 0.0, "step_ms_max": 0.0}  # a change from 0: none, or not a number
    base = make_run(tmp_path / "zero-base", rows={"fit-b16": zero, "predict-predict-b16": zero})
    head = make_run(tmp_path / "head", seed=2, scale={"fit-b64": 0.8},
                    rows={"fit-b16": {**zero, "step_ms_max": 5.0}, "predict-predict-b16": {"peak_host_mib": 9.0}})
    comparison = compare_runs(load_run(base), load_run(head), parse_thresholds())
    assert {e.quiet is None for e in comparison.entries} == {True, False}  # quiet rows and judged ones
    for entry in comparison.entries:
        assert json.loads(row_json(entry)) == json.loads(json.dumps(entry_dict(entry)))
    lines = list(csv.DictReader(io.StringIO(compare(base, head, "--format", "csv").stdout)))
    fit16 = {r["metric"]: r for r in lines if r["mode"] == "fit" and r["batch_size"] == "16"}
    assert fit16["peak_host_mib"]["change_pct"] == "0" and fit16["step_ms_max"]["change_pct"] == ""
    assert fit16["step_ms_max"]["outcome"] == "reported" and fit16["peak_host_mib"]["outcome"] == "within threshold"


def test_compare_scale_benchmark_runs(tmp_path: Path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare_scale.py"), "--rows", "300",
                           "--formats", "table,json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    for fmt in ("table", "json"):
        assert re.search(rf"^{fmt} +\d+\.\d+ s +\d+\.\d+ s +\d+ MiB", proc.stdout, re.M), proc.stdout


def test_github_step_summary_gets_the_markdown(base: Path, tmp_path: Path):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    result = compare(base, base, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 0
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "### batchbench compare: ✅ no regressions" in text


def test_compare_never_imports_tensorflow(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head", seed=2, scale=0.8)
    bare = make_run(tmp_path / "bare", run_json=False)
    script = textwrap.dedent(f"""
        import sys
        from batchbench.cli import main

        def run(*args):
            try:
                main(["compare", *args, "--format", "json"], standalone_mode=False)
            except SystemExit:
                pass

        run({str(bare)!r}, {str(bare)!r})
        run({str(base)!r}, {str(head)!r})  # rows to test: the test is pure Python
        heavy = [m for m in ("tensorflow", "keras", "torch", "jax", "scipy", "pandas") if m in sys.modules]
        assert not heavy, heavy
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_two_real_tiny_sweeps(tmp_path: Path):
    config = tmp_path / "tiny.yaml"
    config.write_text(textwrap.dedent("""
        name: tiny
        model: {builtin: mlp}
        data: {synthetic: {samples: 256}}
        sweep:
          batch_sizes: [16, 32]
          modes: [predict]
          methods: [predict]
          repeats: 3
          rounds: 2
          min_time_s: 0.05
          input_bound_check: false
    """))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for run in ("base", "head"):
        proc = subprocess.run([sys.executable, "-m", "batchbench", "sweep", str(config), "--out",
                               str(tmp_path / run), "--no-plots", "-q"], capture_output=True, text=True,
                              timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "batchbench", "compare", str(tmp_path / "base"),
                           str(tmp_path / "head"), "--format", "json"], capture_output=True, text=True, timeout=60)
    report = json.loads(proc.stdout)
    # Two real runs on a shared machine may truly differ (another process took the CPU): the
    # verdicts are whatever was measured, but they must agree with the exit code and each other.
    regressed = [r for r in report["rows"] if r["verdict"] == "regression"]
    unjudged = [r for r in report["rows"] if r["verdict"] in ("not enough repeats", "cannot judge")]
    assert proc.returncode == (1 if regressed else 4 if unjudged else 0), proc.stderr
    assert report["summary"]["regressed"] == len(regressed)
    assert sorted((r["mode"], r["method"], r["batch_size"]) for r in report["rows"] if r["kind"] == "trial") \
        == [("predict", "predict", 16), ("predict", "predict", 32)]
    # the group's speed as a whole, from the same rounds (two rounds a side: a variance each)
    assert [r["group"] for r in report["rows"] if r["kind"] == "speed"] == ["predict/predict"]
    assert {r["baseline_status"] for r in report["rows"]} == {"ok"}
    assert report["environment"]["differences"] == []
    assert report["summary"]["shared_ok_rows"] == 2
    for row in report["rows"]:
        if row["test"] is not None:  # per-window throughputs from run.json
            assert row["test"]["n_baseline"] >= 3 and row["test"]["n_current"] >= 3
    same = subprocess.run([sys.executable, "-m", "batchbench", "compare", str(tmp_path / "base"),
                           str(tmp_path / "base" / "results.csv")], capture_output=True, text=True, timeout=60)
    assert same.returncode == 0 and "0 regressed, 0 improved, 3 unchanged" in same.stdout  # 2 rows and their group


# ---------------------------------------------------------------------------- rounds
def _round_samples(rng: random.Random, rounds: int, repeats: int, level: float = 1000.0, round_sd: float = 0.04,
                   repeat_sd: float = 0.01, shift: dict[int, float] | None = None) -> tuple[list[float], list[int]]:
    """Throughputs of `rounds` rounds of `repeats` each: a round effect (log-normal, `round_sd`)
    shared by its repeats, and repeat noise; `shift` multiplies chosen rounds."""
    values, of = [], []
    for r in range(rounds):
        effect = level * math.exp(rng.gauss(0, round_sd)) * (shift or {}).get(r, 1.0)
        for _ in range(repeats):
            values.append(effect * math.exp(rng.gauss(0, repeat_sd)))
            of.append(r)
    return values, of


def test_rounds_test_on_known_samples():
    from batchbench.compare.significance import mann_whitney, rounds_test

    rng = random.Random(7)
    # identical distributions, rounds that differ more than the repeats inside them: the rounds
    # test keeps its false alarms near alpha; Mann–Whitney on every repeat, as if independent, does not
    alarms = {"rounds": 0, "repeats": 0}
    trials = 400
    for _ in range(trials):
        (b, br), (c, cr) = _round_samples(rng, 3, 3), _round_samples(rng, 3, 3)
        alarms["rounds"] += rounds_test(b, br, c, cr)[0] <= 0.05
        alarms["repeats"] += mann_whitney(b, c)[0] <= 0.05
    assert alarms["rounds"] / trials <= 0.08
    assert alarms["repeats"] / trials > 2 * alarms["rounds"] / trials
    # a clear 20% slowdown over 3 rounds × 3 repeats: significant at the default alpha, and slower
    b, br = _round_samples(rng, 3, 3, round_sd=0.03)
    c, cr = _round_samples(rng, 3, 3, level=800.0, round_sd=0.03)
    p, slower = rounds_test(b, br, c, cr)
    assert p <= 0.05 and slower
    assert rounds_test(c, cr, b, br)[1] is False  # a speed-up the other way round
    # a 20% shift confined to one round of the head: that round's minute, not the code
    hits = 0
    for _ in range(200):
        (b, br), (c, cr) = _round_samples(rng, 3, 3, round_sd=0.03), _round_samples(rng, 3, 3, round_sd=0.03,
                                                                                    shift={1: 0.8})
        hits += rounds_test(b, br, c, cr)[0] <= 0.05
    assert hits / 200 <= 0.10
    # rounds that do not vary at all leave nothing to test against: the caller falls back to repeats
    assert rounds_test([1.0, 2.0, 1.0, 2.0], [0, 0, 1, 1], [3.0, 4.0, 3.0, 4.0], [0, 0, 1, 1]) is None


def test_welch_t_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    from batchbench.compare.significance import t_two_sided, welch

    rng = random.Random(1)
    for _ in range(300):
        b = [rng.gauss(0, rng.choice([0.5, 1, 3])) for _ in range(rng.randint(2, 9))]
        c = [rng.gauss(rng.choice([0, 0.5, 2]), rng.choice([0.5, 1, 3])) for _ in range(rng.randint(2, 9))]
        expected = stats.ttest_ind(c, b, equal_var=False)
        t, _, p = welch(b, c)
        assert t == pytest.approx(float(expected.statistic), rel=1e-9)
        assert p == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-15)
    for t, df in ((0.0, 3), (2.776, 4), (40.0, 2), (-1.5, 17.3)):
        assert t_two_sided(t, df) == pytest.approx(2 * float(stats.t.sf(abs(t), df)), rel=1e-9, abs=1e-15)


def test_default_rounds_slowdown_is_a_regression_and_rerun_is_not(tmp_path: Path):
    base = make_run(tmp_path / "base", repeats=3, rounds=3, seed=1)
    head = make_run(tmp_path / "head", repeats=3, rounds=3, seed=2, scale={"fit-b64": 0.8})
    code, report = compare_json(base, head)
    assert code == 1
    assert verdicts(report) == {"fit-b64": "regression", "fit-b16": "unchanged",
                                "predict-predict-b16": "unchanged", "predict-predict-b64": "unchanged"}
    row = next(r for r in report["rows"] if r["verdict"] == "regression" and r["kind"] == "trial")
    test = row["test"]
    assert test["method"].startswith("welch-t on log round medians")
    assert (test["rounds_baseline"], test["rounds_current"], test["n_baseline"], test["n_current"]) == (3, 3, 9, 9)
    assert test["p_adjusted"] <= 0.05 and test["slower"] is True
    # 3 vs 3 rounds' medians under Mann–Whitney could never get below p = 0.1: the rounds test can
    assert min_p_value(3, 3) > 0.05
    assert compare(base, make_run(tmp_path / "rerun", repeats=3, rounds=3, seed=3)).exit_code == 0


def test_a_shift_in_one_round_of_the_head_is_not_a_regression(tmp_path: Path):
    base = make_run(tmp_path / "base", repeats=3, rounds=3, seed=1)
    head = make_run(tmp_path / "head", repeats=3, rounds=3, seed=2, round_scale={"fit-b64": [1.0, 0.8, 1.0]})
    code, report = compare_json(base, head)
    row = next(r for r in report["rows"] if r["mode"] == "fit" and r["batch_size"] == 64)
    throughput = next(m for m in row["metrics"] if m["metric"] == "throughput_sps")
    assert throughput["change"] < -0.05  # beyond the threshold: it was tested
    assert row["test"]["method"].startswith("welch-t") and row["test"]["p_adjusted"] > 0.05
    assert code == 0 and row["verdict"] == "unchanged"


def test_group_test_on_known_samples():
    from batchbench.compare.significance import group_rounds, group_test, holm, rounds_test

    # the rounds every row has: a row measured in more rounds (a contender) adds none
    rows = [([100.0, 102.0, 90.0, 91.0, 95.0], [0, 0, 1, 1, 2]), ([50.0, 40.0], [0, 1])]
    assert group_rounds(rows) == pytest.approx([(math.log(101.0) + math.log(50.0)) / 2,
                                                (math.log(90.5) + math.log(40.0)) / 2])
    assert group_rounds([([0.0, 1.0], [0, 1]), ([1.0, 1.0], [0, 1])]) == []

    rng = random.Random(11)

    def side(rows_n: int, level: float) -> list[tuple[list[float], list[int]]]:
        return [_round_samples(rng, 3, 3, level=level * (1 + i), round_sd=0.08) for i in range(rows_n)]

    # the same code on both sides: false alarms near alpha, not above
    trials, alarms = 400, 0
    for _ in range(trials):
        alarms += group_test(group_rounds(side(4, 1000.0)), group_rounds(side(4, 1000.0)))[1] <= 0.05
    assert alarms / trials <= 0.08
    # a uniform 12% slowdown of 4 rows, each round ±8%: the group finds it far more often than any
    # single row does after Holm's correction over the 4 rows
    found_group = found_row = 0
    for _ in range(200):
        b, c = side(4, 1000.0), side(4, 880.0)
        ratio, p, slower = group_test(group_rounds(b), group_rounds(c))
        assert ratio == pytest.approx(0.88, rel=0.15)
        found_group += p <= 0.05 and slower
        row_p = holm([rounds_test(*bb, *cc)[0] for bb, cc in zip(b, c, strict=True)])
        found_row += min(row_p) <= 0.05
    assert found_group > 1.5 * found_row and found_group / 200 >= 0.5
    assert group_test([1.0, 1.0], [2.0, 2.0]) is None  # no variation to test against
    assert group_test([1.0], [2.0, 2.1]) is None       # one round: no variance


def test_a_group_slowed_uniformly_is_a_regression_as_a_whole(tmp_path: Path):
    base = make_run(tmp_path / "base", repeats=3, rounds=3, seed=1)
    head = make_run(tmp_path / "head", repeats=3, rounds=3, seed=2,
                    scale={"fit-b16": 0.91, "fit-b64": 0.91})
    code, report = compare_json(base, head)
    speed = {r["group"]: r for r in report["rows"] if r["kind"] == "speed"}
    assert set(speed) == {"fit", "predict/predict"}
    fit = speed["fit"]
    assert code == 1 and fit["verdict"] == "regression" and speed["predict/predict"]["verdict"] == "unchanged"
    assert fit["test"]["method"].startswith("welch-t on the group's") and fit["test"]["slower"] is True
    assert (fit["test"]["rounds_baseline"], fit["test"]["rounds_current"]) == (3, 3)
    throughput = fit["metrics"][0]
    assert throughput["metric"] == "throughput_sps" and throughput["change"] == pytest.approx(-0.09, abs=0.03)
    assert report["summary"]["regressed"] == sum(r["verdict"] == "regression" for r in report["rows"])
    # every format names it
    assert "fit (all batch sizes: geometric mean)" in compare(base, head).stdout
    assert "fit (all batch sizes: geometric mean)" in compare(base, head, "--format", "markdown").stdout
    lines = [ln for ln in compare(base, head, "--format", "csv").stdout.splitlines() if ln.startswith("regression,speed,")]
    assert lines and ",fit," in lines[0]
    # a rerun of the same code: no group moves
    code, report = compare_json(base, make_run(tmp_path / "rerun", repeats=3, rounds=3, seed=3))
    assert code == 0 and {r["verdict"] for r in report["rows"] if r["kind"] == "speed"} == {"unchanged"}
    # a batch size that failed on one side is not in its group's figure; one left is no group
    rows = {"fit-b64": {"status": "oom", "throughput_sps": None}}
    code, report = compare_json(base, make_run(tmp_path / "oom", repeats=3, rounds=3, seed=2, rows=rows))
    assert [r["group"] for r in report["rows"] if r["kind"] == "speed"] == ["predict/predict"]
    # runs without rounds: the repeats are not a unit for a group, and there is no group test
    code, report = compare_json(make_run(tmp_path / "r1", seed=1), make_run(tmp_path / "r2", seed=2, scale=0.9))
    assert not [r for r in report["rows"] if r["kind"] == "speed"]


def test_runs_without_rounds_are_judged_as_before(base: Path, tmp_path: Path):
    head = make_run(tmp_path / "head", seed=2, scale={"fit-b64": 0.8})
    record = json.loads((head / "run.json").read_text())
    assert all("round" not in s for s in record["samples"].values())
    _, report = compare_json(base, head)
    row = next(r for r in report["rows"] if r["verdict"] == "regression")
    assert row["test"]["method"] == "mann-whitney-u two-sided, holm"
    assert (row["test"]["rounds_baseline"], row["test"]["rounds_current"]) == (1, 1)
    assert row["test"]["p_value"] == pytest.approx(min_p_value(7, 7))
    # an old baseline against a head with rounds: the repeats are the unit, and a note says so
    rounds = make_run(tmp_path / "rounds", repeats=3, rounds=3, seed=2, scale={"fit-b64": 0.8})
    code, report = compare_json(base, rounds)
    row = next(r for r in report["rows"] if r["mode"] == "fit" and r["batch_size"] == 64)
    assert code == 1 and row["verdict"] == "regression"
    assert row["test"]["method"].startswith("mann-whitney") and (row["test"]["n_baseline"], row["test"]["n_current"]) == (7, 9)
    assert "one round in the baseline: tested on repeats, taken as independent" in row["notes"]
    # one round of 3 repeats a side is still too few, and the note says what would do
    few = make_run(tmp_path / "few", repeats=3)
    code, report = compare_json(few, make_run(tmp_path / "few-head", repeats=3, seed=2, scale={"fit-b64": 0.8}))
    row = next(r for r in report["rows"] if r["verdict"] == "not enough repeats")
    assert code == 4 and any("or 2 or more rounds a side" in note for note in row["notes"])


def test_round_lists_that_do_not_match_their_throughputs_are_bad_input(tmp_path: Path):
    base = make_run(tmp_path / "base", repeats=3, rounds=3, seed=1)
    head = make_run(tmp_path / "head", repeats=3, rounds=3, seed=2, scale={"fit-b64": 0.8})
    record = json.loads((head / "run.json").read_text())
    record["samples"]["fit-b64"]["round"] = record["samples"]["fit-b64"]["round"][:-1]
    (head / "run.json").write_text(json.dumps(record))
    line = one_error_line(compare(base, head))
    assert "samples['fit-b64'].round" in line
