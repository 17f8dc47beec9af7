"""The sweep loop with a fake worker (no processes, no TensorFlow): rows classified from
literal outcomes, skip-after-OOM per group, the durable record, find-max's frontier."""

from __future__ import annotations

import json

import pytest

from batchbench.budget import MemoryBudget
from batchbench.config import config_from_dict
from batchbench.plan import Group, Trial
from batchbench.results import load_trial_records, read_rows
from batchbench.rows import RowContext, classify_death, row_from_outcome
from batchbench.runner import JobOutcome
from batchbench.sweep import Sweep, SweepOptions
from tests.conftest import tiny_config

PREFLIGHT = {"status": "ok", "params": 100, "device": "cpu", "samples": 256, "train_samples": 256,
             "has_batch_norm": False, "has_conv": False, "loss": "mse", "framework": {}}


def measurement(batch: int, repeats: int = 3) -> dict:
    return {"repeat_samples": [batch * 10] * repeats, "repeat_time_s": [0.01 * (1 + i / 10) for i in range(repeats)],
            "step_s": [0.001] * 30, "first_step_s": 0.2, "steps": 30 * repeats}


class FakeWorker:
    """Answers each job from a rule: (mode, method, batch) -> JobOutcome."""

    def __init__(self, rule):
        self.rule = rule
        self.requests: list[dict] = []

    def run(self, request, **kw):
        self.requests.append(request)
        if request["op"] == "preflight":
            return JobOutcome(result=dict(PREFLIGHT), returncode=0)
        t = request["trial"]
        return self.rule(t["mode"], t["method"], t["batch_size"])

    def interrupt(self):
        pass

    def close(self):
        pass


def ok(batch: int) -> JobOutcome:
    return JobOutcome(result={"status": "ok", "measurement": measurement(batch), "peak_host_mib": 500.0 + batch},
                      returncode=0)


def sweep_with(rule, tmp_path, **sweep_keys):
    config = config_from_dict(tiny_config(sweep={"batch_sizes": [8, 16, 32, 64], **sweep_keys}), base_dir=tmp_path)
    fake = FakeWorker(rule)
    options = SweepOptions(out=tmp_path / "run", worker_factory=lambda *a: fake)
    return Sweep(config, options).run(), fake


def test_rows_are_classified_from_literal_outcomes(tmp_path):
    def rule(mode, method, batch):
        if mode == "predict" and method == "serve" and batch == 16:
            return JobOutcome(result=None, returncode=-9, peak_rss_mib=1.0)  # killed, small: not an OOM
        if mode == "predict" and method == "predict" and batch == 32:
            return JobOutcome(result=None, returncode=None, timed_out=True)
        if mode == "fit" and batch == 32:
            return JobOutcome(result=None, returncode=-9, memory_killed=True)
        return ok(batch)

    outcome, fake = sweep_with(rule, tmp_path)
    by_id = {r["trial_id"]: r for r in outcome.rows}
    assert by_id["fit-b32"]["status"] == "oom" and by_id["fit-b32"]["oom_kind"] == "host"
    assert by_id["fit-b64"]["status"] == "skipped" and "OOM at 32" in by_id["fit-b64"]["error"]
    assert by_id["predict-serve-b16"]["status"] == "error" and "SIGKILL" in by_id["predict-serve-b16"]["error"]
    assert by_id["predict-serve-b32"]["status"] == "ok"  # an error is not an OOM: the group goes on
    assert by_id["predict-predict-b32"]["status"] == "timeout"
    assert by_id["predict-predict-b64"]["status"] == "ok"  # skips stay within their group
    ran = [r for r in fake.requests if r["op"] == "trial"]
    assert len(ran) == len(outcome.rows) - 1  # only the skipped row did not run
    fit8 = by_id["fit-b8"]
    assert fit8["throughput_sps_min"] <= fit8["throughput_sps"] <= fit8["throughput_sps_max"]
    assert fit8["loss"] == "mse" and fit8["finished_at"]
    # every row is on disk, as a record with its samples and in the CSV
    records = load_trial_records(tmp_path / "run")
    assert set(records) == {f"{tid}-r1" for tid in by_id}  # one round each (the tiny config's rounds: 1)
    assert records["fit-b8-r1"]["samples"]["throughput_sps"]
    assert {r["trial_id"] for r in read_rows(tmp_path / "run" / "results.csv")} == set(by_id)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "complete" and set(run["samples"]) == {k for k, r in by_id.items() if r["status"] == "ok"}
    assert outcome.exit_code == 0


def test_find_max_from_literal_outcomes(tmp_path):
    def rule(mode, method, batch):
        return ok(batch) if batch <= 40 else JobOutcome(result=None, returncode=-9, memory_killed=True)

    outcome, _ = sweep_with(rule, tmp_path, modes=["fit"], find_max=True, search_granularity=4, margin=0.0)
    rec = outcome.summary["recommendations"]["fit"]
    assert rec["max_batch_size"] == 40 and rec["best_throughput"] <= 32


def test_all_errors_exit_1(tmp_path):
    outcome, _ = sweep_with(lambda *a: JobOutcome(result=None, returncode=3), tmp_path, modes=["fit"])
    assert {r["status"] for r in outcome.rows} == {"error"} and outcome.exit_code == 1


@pytest.mark.parametrize("returncode, rss, available, status", [
    (-9, 900.0, 100 * 2**20, "oom"),   # most of the memory there was: the kernel's OOM killer
    (-9, 10.0, 10_000 * 2**20, "error"),
    (-11, None, 0, "error"),
    (1, None, 0, "error"),
    (None, None, 0, "error"),
])
def test_how_a_silent_death_is_read(returncode, rss, available, status):
    got, reason = classify_death(JobOutcome(result=None, returncode=returncode, peak_rss_mib=rss), available)
    assert got == status and reason


def test_a_brief_peak_over_the_limit_is_an_oom():
    group = Group("fit", "", (("precision", "float32"), ("jit_compile", "auto"), ("backend", "tensorflow"),
                              ("strategy", "default")), ())
    budget = MemoryBudget(cap_bytes=600 * 2**20, limit_bytes=600 * 2**20, budget_mib=600.0, column="peak_host_mib")
    ctx = RowContext("r", "n", "mlp", PREFLIGHT, budget, 60.0)
    made = row_from_outcome(Trial(group, 200), ok(200), 1.0, ctx)  # peak 700 MiB > 600
    assert made.row["status"] == "oom" and "exceeded the memory limit" in made.row["error"]
    fine = row_from_outcome(Trial(group, 50), ok(50), 1.0, ctx)
    assert fine.row["status"] == "ok" and fine.row["headroom_mib"] == pytest.approx(600 - 550)


def test_a_target_on_an_error_metric_is_lower_is_better():
    from batchbench.targets import target_label

    assert target_label("val_mae", 0.5) == "val_mae<=0.5" and target_label("val_loss", 1) == "val_loss<=1"
    assert target_label("val_accuracy", 0.9) == "val_accuracy>=0.9"


def test_a_full_disk_between_record_and_csv_row_loses_nothing_on_resume(tmp_path):
    """The trial's record (row + samples) is saved before its CSV row: a write that fails after
    it (a full disk) ends the sweep, and resume puts the row back, samples included, without
    running the trial again."""
    from batchbench.errors import OutputError

    config = config_from_dict(tiny_config(sweep={"batch_sizes": [8, 16], "modes": ["fit"]}), base_dir=tmp_path)
    calls = {"n": 0}

    def full_disk():
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")

    fake = FakeWorker(lambda mode, method, batch: ok(batch))
    options = SweepOptions(out=tmp_path / "run", worker_factory=lambda *a: fake, write_fault=full_disk)
    with pytest.raises(OutputError, match="No space left"):
        Sweep(config, options).run()
    assert [r["batch_size"] for r in read_rows(tmp_path / "run" / "results.csv")] == [8]
    again = FakeWorker(lambda mode, method, batch: ok(batch))
    resumed = Sweep(config, SweepOptions(resume=tmp_path / "run", worker_factory=lambda *a: again)).run()
    trials = [r["trial"]["batch_size"] for r in again.requests if r["op"] == "trial"]
    assert trials == []  # b16 came back from its record: nothing ran again
    assert sorted(r["batch_size"] for r in read_rows(tmp_path / "run" / "results.csv")) == [8, 16]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert set(run["samples"]) == {"fit-b8", "fit-b16"} and run["samples"]["fit-b16"]["throughput_sps"]
    assert resumed.exit_code == 0


def test_a_sweep_that_fails_after_preflight_ends_failed_with_its_reason(tmp_path):
    def rule(mode, method, batch):
        if batch == 16:
            raise RuntimeError("the pipe broke")
        return ok(batch)

    with pytest.raises(RuntimeError):
        sweep_with(rule, tmp_path, modes=["fit"])
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == "RuntimeError: the pipe broke"
    assert record["ended_at"] >= record["started_at"]
