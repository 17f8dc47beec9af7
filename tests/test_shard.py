"""A sweep spread over machines: `--shard I/N` (and `--shard auto` from Slurm's or Kubernetes'
variables) runs a deterministic part of the plan, and `batchbench merge` makes the shards one
run. The partition and the variables are pure; the sweeps here use a fake worker (no
processes, no TensorFlow), except the one slow end-to-end test at the bottom."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from batchbench.cli import main
from batchbench.config import config_from_dict
from batchbench.errors import ConfigError
from batchbench.merge import merge_runs
from batchbench.plan import Trial, build_groups
from batchbench.results import read_rows
from batchbench.runner import JobOutcome
from batchbench.shard import Shard, parse_shard, shard_from_environment, shard_points
from batchbench.sweep import Sweep, SweepOptions
from tests.conftest import ROOT, tiny_config
from tests.test_sweep_loop import PREFLIGHT


def points(config, shard):
    return [Trial(g, b).trial_id for g, sizes in shard_points(build_groups(config), config.sweep.batch_sizes, shard)
            for b in sizes]


def every_point(config):
    return [Trial(g, b).trial_id for g in build_groups(config) for b in config.sweep.batch_sizes]


CONFIGS = {
    "one group": {"modes": ["fit"], "batch_sizes": [8, 16, 32, 64, 128, 256, 512]},
    "three groups": {"modes": ["fit", "predict"], "batch_sizes": [8, 16, 32]},
    "twelve groups": {"modes": ["fit", "predict"], "batch_sizes": [8, 16, 32], "precision": ["float32", "mixed_bfloat16"],
                      "jit_compile": [False, True]},
}


# ---------------------------------------------------------------- the partition
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_every_point_is_in_exactly_one_shard(name, count):
    config = config_from_dict(tiny_config(sweep=CONFIGS[name]))
    shards = [points(config, Shard(i, count)) for i in range(1, count + 1)]
    flat = [t for s in shards for t in s]
    assert sorted(flat) == sorted(every_point(config)) and len(flat) == len(set(flat))
    assert points(config, None) == every_point(config)


def test_groups_stay_whole_when_there_are_at_least_as_many_as_shards():
    config = config_from_dict(tiny_config(sweep=CONFIGS["twelve groups"]))
    groups = build_groups(config)
    for index in (1, 2, 3):
        mine = shard_points(groups, config.sweep.batch_sizes, Shard(index, 3))
        assert len(mine) == 4 and all(sizes == [8, 16, 32] for _, sizes in mine)
        # dealt fit groups first: every shard gets training and inference work, not one kind each
        assert {g.mode for g, _ in mine} == {"fit", "predict"}


def test_fewer_groups_than_shards_split_batch_sizes_with_the_smallest_in_shard_1():
    config = config_from_dict(tiny_config(sweep=CONFIGS["three groups"]))
    groups = build_groups(config)
    by_shard = {i: dict((g.key, s) for g, s in shard_points(groups, [8, 16, 32], Shard(i, 5))) for i in range(1, 6)}
    assert by_shard[1] == {"fit": [8], "predict/predict": [8], "predict/serve": [8]}
    assert by_shard[3] == {"fit": [32], "predict/predict": [32], "predict/serve": [32]}
    assert by_shard[4] == {} and by_shard[5] == {}


def test_the_partition_is_the_same_in_every_process_whatever_the_hash_seed(tmp_path):
    config = config_from_dict(tiny_config(sweep=CONFIGS["twelve groups"]))
    here = [points(config, Shard(i, 5)) for i in range(1, 6)]
    script = ("import json; from batchbench.config import config_from_dict; from tests.test_shard import CONFIGS, "
              "points; from tests.conftest import tiny_config; from batchbench.shard import Shard; "
              "c = config_from_dict(tiny_config(sweep=CONFIGS['twelve groups'])); "
              "print(json.dumps([points(c, Shard(i, 5)) for i in range(1, 6)]))")
    for seed in ("0", "12345"):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert json.loads(out.stdout) == here


# ---------------------------------------------------------------- which shard
@pytest.mark.parametrize("text, expected", [("1/1", (1, 1)), ("2/3", (2, 3)), (" 3 / 3 ", (3, 3))])
def test_shard_i_of_n(text, expected):
    shard = parse_shard(text)
    assert (shard.index, shard.count) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "x", "3", "1/0", "-1/3", "2/3/4"])
def test_bad_shard_values_name_the_option(text):
    with pytest.raises(ConfigError) as info:
        parse_shard(text)
    assert info.value.key == "--shard"


SLURM = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_MAX": "6",
         "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "1"}


def test_slurm_array_variables_respect_the_arrays_first_task():
    assert str(shard_from_environment(SLURM)) == "2/3"  # --array=4-6: task 5 is the second
    assert str(shard_from_environment({**SLURM, "SLURM_ARRAY_TASK_ID": "4"})) == "1/3"
    zero = {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert str(shard_from_environment(zero)) == "1/4"
    stepped = {"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_MAX": "16",
               "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert str(shard_from_environment(stepped)) == "3/4"  # --array=10-16:2
    assert str(shard_from_environment(SLURM, shard_count=3)) == "2/3"


@pytest.mark.parametrize("env, count, key, words", [
    ({**SLURM, "SLURM_ARRAY_TASK_ID": "x"}, None, "--shard", "not a whole number"),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "7",
      "SLURM_ARRAY_TASK_COUNT": "3"}, None, "--shard", "not an even range"),  # --array=1,3,7
    (SLURM, 4, "--shard-count", "has 3 tasks"),
    ({"JOB_COMPLETION_INDEX": "1"}, None, "--shard-count", "pass --shard-count N"),
    ({"JOB_COMPLETION_INDEX": "3"}, 3, "--shard-count", "outside 0 to 2"),
    ({}, None, "--shard", "neither a Slurm job array"),
])
def test_bad_scheduler_variables_are_one_message(env, count, key, words):
    with pytest.raises(ConfigError) as info:
        shard_from_environment(env, count)
    assert info.value.key == key and words in info.value.message


def test_kubernetes_indexed_job_counts_from_0():
    assert str(shard_from_environment({"JOB_COMPLETION_INDEX": "0"}, 3)) == "1/3"
    assert str(parse_shard("auto", 3, {"JOB_COMPLETION_INDEX": "2"})) == "3/3"
    with pytest.raises(ConfigError, match="only goes with --shard auto"):
        parse_shard("1/3", 3)


def cli(*args, env=None):
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    return result


@pytest.mark.parametrize("value", ["0/3", "4/3", "x", "auto"])
def test_bad_shard_on_the_command_line_exits_2_naming_the_option(write_config, tmp_path, monkeypatch, value):
    for name in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(name, raising=False)
    path = write_config(tiny_config())
    result = cli("sweep", path, "--shard", value, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "--shard:" in result.output
    assert not (tmp_path / "run").exists()


def test_shard_auto_under_slurm_plans_what_shard_2_of_3_plans(write_config):
    path = write_config(tiny_config(sweep=CONFIGS["twelve groups"]))
    auto = cli("sweep", path, "--shard", "auto", "--dry-run", "--json", env=SLURM)
    given = cli("sweep", path, "--shard", "2/3", "--dry-run", "--json")
    assert auto.exit_code == given.exit_code == 0
    planned = [[t["trial_id"] for g in json.loads(r.output)["groups"] for t in g["trials"]] for r in (auto, given)]
    assert planned[0] == planned[1] and len(planned[0]) == 12


@pytest.mark.parametrize("extra", [["--local-processes", "2"], ["--num-processes", "2", "--process-id", "0",
                                                                 "--coordinator", "127.0.0.1:1234"]])
def test_shard_with_a_multi_process_run_is_refused(write_config, tmp_path, extra):
    path = write_config(tiny_config(sweep={"modes": ["fit"], "backend": "jax"}))
    result = cli("sweep", path, "--shard", "1/2", *extra, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "--shard: cannot go with" in result.output


def test_find_max_with_split_groups_is_refused_before_anything_is_written(write_config, tmp_path):
    path = write_config(tiny_config(sweep={"modes": ["fit"], "find_max": True}))
    result = cli("sweep", path, "--shard", "1/2", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "find-max cannot search a whole ladder" in result.output
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- sweeps with a fake worker
class FakeWorker:
    """Deterministic figures from the batch size; OOM at and above `oom`."""

    def __init__(self, oom: int = 10**9, stop_after: int | None = None):
        self.requests: list[dict] = []
        self.oom, self.stop_after = oom, stop_after

    def run(self, request, **kw):
        self.requests.append(request)
        if request["op"] == "preflight":
            return JobOutcome(result=dict(PREFLIGHT), returncode=0)
        if request["op"] == "noise_scale":
            return JobOutcome(result={"status": "ok", "gradient_noise_scale": 123.0}, returncode=0)
        t = request["trial"]
        if self.stop_after is not None and len(self.trials) > self.stop_after:
            raise KeyboardInterrupt
        if t["batch_size"] >= self.oom:
            return JobOutcome(result={"status": "oom", "error": "out of memory"}, returncode=0)
        level = 1000.0 * min(t["batch_size"], 32) / 32 * (2 if t["mode"] == "predict" else 1)
        times = [t["batch_size"] * 10 / (level * (1 + 0.01 * i)) for i in range(3)]
        return JobOutcome(result={"status": "ok", "peak_host_mib": 500.0 + t["batch_size"], "measurement": {
            "repeat_samples": [t["batch_size"] * 10] * 3, "repeat_time_s": times, "step_s": [0.001] * 30,
            "first_step_s": 0.2, "steps": 30}}, returncode=0)

    @property
    def trials(self) -> list[tuple]:
        return [(r["trial"]["mode"], r["trial"]["method"], r["trial"]["batch_size"], r["trial"]["phase"])
                for r in self.requests if r["op"] == "trial"]

    def interrupt(self):
        pass

    def close(self):
        pass


SWEEP = {"modes": ["fit", "predict"], "batch_sizes": [8, 16, 32, 64], "rounds": 2, "epochs": 1}


def sweep(tmp_path, out, shard=None, resume=False, worker=None, **overrides):
    config = config_from_dict(tiny_config(sweep={**SWEEP, **overrides}), base_dir=tmp_path)
    worker = worker or FakeWorker(oom=64)
    options = SweepOptions(out=None if resume else out, resume=out if resume else None, shard=shard,
                           worker_factory=lambda *a: worker)
    return Sweep(config, options).run(), worker


def strip(value):
    """A summary without what differs between any two runs: where it is, the machine's load and
    free memory at the start (busy warning, memory budget); figures to results.csv's 6 digits."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in ("run_dir", "warnings", "memory_budget_mib")}
    return float(f"{value:.6g}") if isinstance(value, float) else value


def test_three_shards_merge_into_the_unsharded_run(tmp_path):
    whole, whole_worker = sweep(tmp_path, tmp_path / "whole", find_max=True, search_granularity=8)
    shards = []
    for i in (1, 2, 3):
        outcome, worker = sweep(tmp_path, tmp_path / f"shard-{i}", Shard(i, 3), find_max=True, search_granularity=8)
        shards.append((outcome, worker))
        record = json.loads((tmp_path / f"shard-{i}" / "run.json").read_text())
        assert record["shard"]["index"] == i and record["shard"]["count"] == 3
        # the gradient-noise estimate is a sweep-level job: shard 1 alone runs it
        assert any(r["op"] == "noise_scale" for r in worker.requests) == (i == 1)
    ran = sorted(t for _, w in shards for t in w.trials)
    assert ran == sorted(whole_worker.trials)  # ladders, searches and confirms: each in one shard
    merged = merge_runs([tmp_path / f"shard-{i}" for i in (3, 1, 2)], tmp_path / "merged")
    rows = read_rows(tmp_path / "merged" / "results.csv")
    assert [r["trial_id"] for r in rows] == [r["trial_id"] for r in read_rows(tmp_path / "whole" / "results.csv")]
    assert strip(merged.summary) == strip(whole.summary)  # recommendations, find-max, noise scale, rounds
    assert merged.summary["recommendations"]["fit"]["gradient_noise_scale"] == 123.0
    record = json.loads((tmp_path / "merged" / "run.json").read_text())
    assert record["status"] == "complete" and record["shard"] is None
    assert sorted(record["samples"]) == sorted(json.loads((tmp_path / "whole" / "run.json").read_text())["samples"])
    assert {m["shard"]["index"] for m in record["merged_from"]} == {1, 2, 3}
    assert len(list((tmp_path / "merged" / "trials").glob("*.result.json"))) == \
        len(list((tmp_path / "whole" / "trials").glob("*.result.json")))


def test_split_groups_merge_into_the_unsharded_trials(tmp_path):
    sweep(tmp_path, tmp_path / "whole", modes=["fit"])
    for i in (1, 2, 3):
        sweep(tmp_path, tmp_path / f"s{i}", Shard(i, 3), modes=["fit"])
    merge_runs([tmp_path / f"s{i}" for i in (1, 2, 3)], tmp_path / "merged")
    whole = read_rows(tmp_path / "whole" / "results.csv")
    merged = read_rows(tmp_path / "merged" / "results.csv")
    assert [(r["trial_id"], r["status"]) for r in merged] == [(r["trial_id"], r["status"]) for r in whole]
    # 64 ran out of memory in its own shard; skip-after-OOM acts within a shard
    assert {r["batch_size"]: r["status"] for r in merged} == {8: "ok", 16: "ok", 32: "ok", 64: "oom"}


def test_a_shard_with_no_points_says_so_and_merges(tmp_path):
    outcomes = [sweep(tmp_path, tmp_path / f"s{i}", Shard(i, 5), modes=["fit"])[0] for i in range(1, 6)]
    assert not outcomes[4].rows and any("has no points" in w for w in outcomes[4].summary["warnings"])
    merged = merge_runs([tmp_path / f"s{i}" for i in range(1, 6)], tmp_path / "merged")
    assert [r["batch_size"] for r in merged.rows] == [8, 16, 32, 64]
    assert not any("no input" in w for w in merged.warnings)


def test_merge_refuses_runs_of_other_settings_naming_the_run(tmp_path):
    sweep(tmp_path, tmp_path / "s1", Shard(1, 2))
    sweep(tmp_path, tmp_path / "s2", Shard(2, 2), repeats=5)
    result = cli("merge", tmp_path / "s1", tmp_path / "s2", "--out", tmp_path / "merged", "--no-plots")
    assert result.exit_code == 2
    assert f"{tmp_path / 's2'}: its measured settings differ" in result.output and "sweep.repeats" in result.output
    assert not (tmp_path / "merged").exists()


def test_merge_refuses_a_trial_in_two_inputs_unless_prefer_newest(tmp_path):
    sweep(tmp_path, tmp_path / "s1", Shard(1, 2))
    time.sleep(1.1)  # finished_at is to the second
    sweep(tmp_path, tmp_path / "again", Shard(1, 2))
    sweep(tmp_path, tmp_path / "s2", Shard(2, 2))
    # the newer run first: the newest wins, not the last named
    args = ["merge", tmp_path / "again", tmp_path / "s1", tmp_path / "s2", "--out", tmp_path / "merged", "--no-plots"]
    result = cli(*args)
    assert result.exit_code == 2 and "are in more than one input" in result.output and "--prefer newest" in result.output
    result = cli(*args, "--prefer", "newest")
    assert result.exit_code == 0, result.output
    assert "kept the one that finished last" in result.output
    kept = read_rows(tmp_path / "merged" / "results.csv")
    again = {r["trial_id"]: r for r in read_rows(tmp_path / "again" / "results.csv")}
    assert len(kept) == len({r["trial_id"] for r in kept})
    assert all(r["run_id"] == again[r["trial_id"]]["run_id"] for r in kept if r["trial_id"] in again)


def test_a_missing_shard_is_a_warning_naming_its_trials(tmp_path):
    sweep(tmp_path, tmp_path / "s1", Shard(1, 3))
    sweep(tmp_path, tmp_path / "s3", Shard(3, 3))
    result = cli("merge", tmp_path / "s1", tmp_path / "s3", "--out", tmp_path / "merged", "--no-plots")
    assert result.exit_code == 0
    assert "warning: shard 2/3 is not among the inputs" in result.output
    config = config_from_dict(tiny_config(sweep=SWEEP))
    for trial_id in points(config, Shard(2, 3))[:3]:
        assert trial_id in result.output
    record = json.loads((tmp_path / "merged" / "run.json").read_text())
    assert record["status"] == "incomplete"
    assert any("shard 2/3" in w for w in record["summary"]["warnings"])
    # the late shard merged into the incomplete merge: complete, and the old warning is gone
    sweep(tmp_path, tmp_path / "s2", Shard(2, 3))
    late = merge_runs([tmp_path / "merged", tmp_path / "s2"], tmp_path / "whole")
    assert not any("not among the inputs" in w for w in late.warnings)
    assert json.loads((tmp_path / "whole" / "run.json").read_text())["status"] == "complete"
    assert sorted(r["trial_id"] for r in late.rows) == sorted(every_point(config))


def test_a_shard_on_other_hardware_is_a_warning(tmp_path):
    for i in (1, 2):
        sweep(tmp_path, tmp_path / f"s{i}", Shard(i, 2))
    path = tmp_path / "s2" / "run.json"
    record = json.loads(path.read_text())
    record["environment"]["cpu_model"] = "Some Other CPU"
    path.write_text(json.dumps(record))
    merged = merge_runs([tmp_path / "s1", tmp_path / "s2"], tmp_path / "merged")
    assert any("ran in another environment" in w and "Some Other CPU" in w for w in merged.warnings)


def test_a_shard_resumes_as_the_same_shard(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        sweep(tmp_path, tmp_path / "s2", Shard(2, 3), worker=FakeWorker(oom=64, stop_after=2))
    with pytest.raises(ConfigError) as info:
        sweep(tmp_path, tmp_path / "s2", Shard(1, 3), resume=True)
    assert info.value.key == "--shard" and "is shard 2/3" in info.value.message
    preview = cli("sweep", "--resume", tmp_path / "s2", "--dry-run", "--json")
    assert preview.exit_code == 0, preview.output
    assert json.loads(preview.output)["shard"] == "2/3"  # the preview of a resume is of its own shard
    outcome, worker = sweep(tmp_path, tmp_path / "s2", resume=True)
    config = config_from_dict(tiny_config(sweep=SWEEP))
    assert sorted(r["trial_id"] for r in outcome.rows) == sorted(points(config, Shard(2, 3)))
    assert len(worker.trials) < 2 * len(points(config, Shard(2, 3)))  # what was measured is not measured again
    assert json.loads((tmp_path / "s2" / "run.json").read_text())["shard"]["index"] == 2


DATA_KINDS = {
    "synthetic": ({"synthetic": {"samples": 64}}, None),
    "npz": ({"npz": {"path": "data/digits.npz", "x": "x", "y": "y"}}, "data/digits.npz"),
    "csv": ({"csv": {"path": "data/table.csv", "target": "y"}}, "data/table.csv"),
    "callable": ({"callable": {"function": "loader:load"}}, "loader.py"),
}


def _data_file(path, variant: int) -> None:
    if path.suffix == ".npz":
        import numpy as np

        np.savez(path, x=np.full((8, 2), float(variant)), y=np.arange(8) % 2)
    elif path.suffix == ".csv":
        path.write_text("a,y\n" + "".join(f"{i + variant},{i % 2}\n" for i in range(8)))
    else:
        path.write_text(f"def load():\n    return [[{variant}.0]] * 8, [0] * 8\n")


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_shards_checked_out_in_different_folders_have_the_same_settings(tmp_path, kind):
    """The settings hash sees relative paths and the data's (or loader's) digest, never where the
    checkout is; other data is another sweep."""
    data, file = DATA_KINDS[kind]
    hashes = []
    for place, variant in (("a/checkout", 0), ("elsewhere", 0), ("changed", 1)):
        folder = tmp_path / place
        (folder / "data").mkdir(parents=True)
        if file:
            _data_file(folder / file, variant)
        hashes.append(config_from_dict(tiny_config(data=data), base_dir=folder).measurement_hash())
    assert hashes[0] == hashes[1]
    assert (hashes[2] != hashes[0]) == (file is not None)


def test_command_line_overrides_are_what_the_shards_split(write_config):
    path = write_config(tiny_config())
    result = cli("sweep", path, "--batch-sizes", "8,16,32,64", "--modes", "fit", "--shard", "2/2", "--dry-run",
                 "--json")
    assert result.exit_code == 0, result.output
    preview = json.loads(result.output)
    assert preview["shard"] == "2/2"
    assert [t["batch_size"] for g in preview["groups"] for t in g["trials"]] == [16, 64]


def test_compare_and_report_accept_a_merged_run(tmp_path):
    sweep(tmp_path, tmp_path / "whole")
    for i in (1, 2):
        sweep(tmp_path, tmp_path / f"s{i}", Shard(i, 2))
    result = cli("merge", tmp_path / "s1", tmp_path / "s2", "--out", tmp_path / "merged", "--no-plots")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "merged" / "report.md").exists()
    compared = cli("compare", tmp_path / "whole", tmp_path / "merged", "--format", "json")
    assert compared.exit_code == 0, compared.output
    assert cli("report", tmp_path / "merged", "--no-plots").exit_code == 0
    # merging again (a shard came late) replaces the earlier merge
    assert cli("merge", tmp_path / "s1", tmp_path / "s2", "--out", tmp_path / "merged", "--no-plots").exit_code == 0
    result = cli("merge", tmp_path / "s1", tmp_path / "s2", "--out", tmp_path / "whole", "--no-plots")
    assert result.exit_code == 2 and "--out" in result.output


def test_the_scheduler_examples_run_shards_and_merge():
    import re

    import yaml

    jobs = list(yaml.safe_load_all((ROOT / "examples/kubernetes/batchbench-indexed-job.yaml").read_text()))
    spec = jobs[0]["spec"]
    command = spec["template"]["spec"]["containers"][0]["args"][0]
    assert spec["completionMode"] == "Indexed"
    assert f"--shard auto --shard-count {spec['completions']}" in command and "--resume" in command
    merge = yaml.safe_load((ROOT / "examples/kubernetes/batchbench-merge-job.yaml").read_text())
    assert "batchbench merge" in merge["spec"]["template"]["spec"]["containers"][0]["args"][0]
    array = (ROOT / "examples/slurm/batchbench-array.sbatch").read_text()
    assert re.search(r"#SBATCH --array=\d+-\d+", array) and "--shard auto" in array and "--resume" in array
    assert "batchbench merge" in (ROOT / "examples/slurm/batchbench-merge.sbatch").read_text()
    assert "afterany" in (ROOT / "examples/slurm/submit.sh").read_text()


# ---------------------------------------------------------------- end to end, real trials
SHIFTED = """
import keras


class AddBatchSize(keras.layers.Layer):
    def call(self, x):
        return x + keras.ops.cast(keras.ops.shape(x)[0], x.dtype)


def build():
    inputs = keras.Input((8,))
    return keras.Model(inputs, AddBatchSize()(keras.layers.Dense(4)(inputs)))
"""


@pytest.mark.slow
def test_three_shard_processes_and_merge_give_the_planned_trials(tmp_path, write_config):
    """One predict group of three sizes over three shards (split by batch size, run at once as
    separate processes), merged: exactly the unsharded plan's trial ids, each measured, and the
    consistency check against the group's smallest size in every shard. The model adds the
    batch's size to its outputs, so the check's difference is known: batch - 16."""
    (tmp_path / "shifted.py").write_text(SHIFTED)
    path = write_config(tiny_config(model={"factory": "shifted:build"},
                                    sweep={"modes": ["predict"], "methods": ["predict"], "batch_sizes": [16, 32, 64]}))
    planned = json.loads(cli("sweep", path, "--dry-run", "--json").output)
    planned_ids = [t["trial_id"] for g in planned["groups"] for t in g["trials"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    procs = [subprocess.Popen([sys.executable, "-m", "batchbench", "sweep", str(path), "--shard", "auto",
                               "--shard-count", "3", "-q", "--no-plots", "--out", str(tmp_path / f"shard-{i}")],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True,
                              env={**env, "JOB_COMPLETION_INDEX": str(i)}) for i in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    merged = cli("merge", *(tmp_path / f"shard-{i}" for i in range(3)), "--out", tmp_path / "merged", "--no-plots")
    assert merged.exit_code == 0, merged.output
    rows = read_rows(tmp_path / "merged" / "results.csv")
    assert [r["trial_id"] for r in rows] == planned_ids
    assert all(r["status"] == "ok" and r["throughput_sps"] > 0 for r in rows)
    # shards 2 and 3 made the reference at batch 16 themselves: the check means the same in every shard
    assert [r["max_abs_diff"] for r in rows] == [0.0, 16.0, 48.0]
    assert [r["consistent"] for r in rows] == [True, False, False]
    overlap = cli("merge", tmp_path / "shard-0", tmp_path / "merged", "--out", tmp_path / "again", "--no-plots")
    assert overlap.exit_code == 2 and "more than one input" in overlap.output
    assert cli("compare", tmp_path / "merged", tmp_path / "merged").exit_code == 0
    assert cli("report", tmp_path / "merged", "--no-plots").exit_code == 0
