"""End to end: real TensorFlow trials in worker processes, checked by the relations between
the figures (never by fixed values: machines differ)."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest

from batchbench.results import read_rows
from tests.conftest import ROOT, TINY_SWEEP, run_cli, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One fit+predict sweep of the built-in MLP, shared by the relation tests."""
    import yaml

    tmp = tmp_path_factory.mktemp("tiny")
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(sweep={"batch_sizes": [16, 64, 512], "rounds": 2})))
    result = run_cli("sweep", config, "--out", tmp / "run", "--json")
    assert result.returncode == 0, result.stderr
    return tmp / "run", json.loads(result.stdout), result


def test_rows_for_every_batch_size_mode_and_method(tiny_run):
    run_dir, summary, _ = tiny_run
    rows = read_rows(run_dir / "results.csv")
    seen = {(r["mode"], r["method"] or "", r["batch_size"]) for r in rows}
    for mode, method in (("fit", ""), ("predict", "predict"), ("predict", "serve")):
        for batch in (16, 64):
            assert (mode, method, batch) in seen
    # 512 > 256 samples: skipped with a reason, in every group
    skipped = [r for r in rows if r["batch_size"] == 512]
    assert len(skipped) == 3 and all(r["status"] == "skipped" and "256" in r["error"] for r in skipped)
    assert summary["status_counts"] == {"ok": 6, "skipped": 3}


def test_figures_relate_as_they_must(tiny_run):
    run_dir, _, _ = tiny_run
    for r in read_rows(run_dir / "results.csv"):
        if r["status"] != "ok":
            continue
        # throughput x time = samples: the median repeat lies within the spread of all
        overall = r["samples"] / r["timed_s"]
        assert r["throughput_sps_min"] <= overall * 1.0001 and overall <= r["throughput_sps_max"] * 1.0001
        assert r["throughput_sps_min"] <= r["throughput_sps"] <= r["throughput_sps_max"]
        # two rounds (the second shared by the group's sizes in one process): the pooled figure lies inside its interval
        assert r["rounds"] == 2 and r["throughput_sps_ci_low"] <= r["throughput_sps"] <= r["throughput_sps_ci_high"]
        assert r["step_ms_median"] <= r["step_ms_p90"] <= r["step_ms_p95"] <= r["step_ms_p99"] <= r["step_ms_max"]
        assert math.isclose(r["sample_ms"], r["step_ms_median"] / r["batch_size"], rel_tol=1e-3)
        assert r["peak_host_mib"] > 0 and r["first_step_s"] > 0 and r["wall_s"] >= r["timed_s"]
        assert r["params"] > 0
        if r["mode"] == "fit":
            assert r["repeats"] == TINY_SWEEP["repeats"] * r["rounds"]
        else:  # windows: with rounds, exactly max(repeats, 3) a round; stable if each round's agreed
            assert r["repeats"] == max(TINY_SWEEP["repeats"], 3) * r["rounds"] and r["stable"] in (True, False)
        assert r["samples"] % r["batch_size"] == 0  # whole batches only
        assert r["peak_device_mib"] is None  # CPU: empty, never zero
        if not any(Path("/sys/class/powercap").glob("intel-rapl:*")):
            assert r["energy_j"] is None and r["j_per_1k"] is None  # nothing reports energy: empty


def test_run_json_holds_what_compare_and_resume_need(tiny_run):
    run_dir, summary, _ = tiny_run
    record = json.loads((run_dir / "run.json").read_text())
    assert record["schema_version"] >= 1 and record["status"] == "complete"
    assert record["config_hash"] and record["config_resolved"]["sweep"]["batch_sizes"] == [16, 64, 512]
    env = record["environment"]
    assert env["cpu_model"] and env["memory_total_mib"] > 0 and env["framework"]["tensorflow"]
    assert "load_average" in env and "cpu_affinity" in env and "tf_threads" in env["framework"]
    samples = record["samples"]["fit-b16"]
    assert len(samples["throughput_sps"]) == 2 * TINY_SWEEP["repeats"] and all(s > 0 for s in samples["throughput_sps"])
    assert samples["round"] == [0] * TINY_SWEEP["repeats"] + [1] * TINY_SWEEP["repeats"]  # compare's unit
    assert [r["round"] for r in record["rounds"]["fit-b16"]] == [1, 2]
    # round 2 of each group ran its two sizes in one process: real figures, no memory figure
    for tid in ("fit-b16", "fit-b64", "predict-predict-b64", "predict-serve-b16"):
        first, second = record["rounds"][tid]
        assert first["shared_round"] is None and first["peak_host_mib"] > 0
        assert second["shared_round"] is True and second["peak_host_mib"] is None and second["throughput_sps"] > 0
        if tid.startswith("predict"):  # with rounds, no round's windows are extended until they agree
            assert first["repeats"] == second["repeats"] == max(TINY_SWEEP["repeats"], 3)
    assert all(len(record["samples"][r]["throughput_sps"]) >= TINY_SWEEP["repeats"] for r in record["samples"])
    recs = summary["recommendations"]
    assert set(recs) >= {"fit", "predict/predict", "predict/serve", "overall"}
    for key in ("fit", "predict/predict"):
        assert recs[key]["best_throughput"] in (16, 64)
        assert recs[key]["largest_ok"] == 64


def test_tensorflow_stays_out_of_the_controller(tmp_path):
    """The sweep runs in-process here, and the controller must not have imported TF."""
    import subprocess
    import sys

    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(sweep={"batch_sizes": [32], "modes": ["predict"],
                                                        "methods": ["serve"]})))
    code = (
        "import sys\n"
        "from batchbench.cli import main\n"
        f"try:\n    main(['sweep', {str(config)!r}, '--out', {str(tmp_path / 'r')!r}, '-q'])\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('TF' if any(m == 'tensorflow' or m.startswith('tensorflow.') or m == 'keras' for m in sys.modules)"
        " else 'clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.stdout.strip().endswith("clean"), out.stderr


def test_oom_becomes_a_row_and_larger_sizes_are_skipped(tmp_path, fixtures_path, write_config):
    shutil.copy(fixtures_path / "faulty_models.py", tmp_path)
    config = write_config(tiny_config(model={"factory": "faulty_models:oom_above", "kwargs": {"limit": 32}},
                                      sweep={"batch_sizes": [16, 32, 64, 128], "modes": ["fit", "predict"],
                                             "methods": ["predict"]}))
    result = run_cli("sweep", config, "--out", tmp_path / "run", "-q")
    assert result.returncode == 0, result.stderr  # OOM rows are results, not failures
    rows = {(r["mode"], r["batch_size"]): r for r in read_rows(tmp_path / "run" / "results.csv")}
    for mode in ("fit", "predict"):
        assert rows[(mode, 16)]["status"] == "ok" and rows[(mode, 32)]["status"] == "ok"
        assert rows[(mode, 64)]["status"] == "oom" and "ResourceExhaustedError" in rows[(mode, 64)]["error"]
        assert rows[(mode, 64)]["oom_kind"] == "host"
        assert rows[(mode, 128)]["status"] == "skipped" and rows[(mode, 128)]["error"] == "larger than an OOM at 64"
    log = (tmp_path / "run" / "trials" / "fit-b64-r1.log").read_text()  # the first round's trial
    assert "Traceback" in log and "ResourceExhaustedError" in log


def test_a_crashing_worker_is_an_error_row_and_the_sweep_goes_on(tmp_path, fixtures_path, write_config):
    shutil.copy(fixtures_path / "faulty_models.py", tmp_path)
    config = write_config(tiny_config(model={"factory": "faulty_models:crash_at", "kwargs": {"batch": 32}},
                                      sweep={"batch_sizes": [16, 32, 64], "modes": ["fit"]}))
    result = run_cli("sweep", config, "--out", tmp_path / "run", "-q")
    assert result.returncode == 0, result.stderr
    rows = {r["batch_size"]: r for r in read_rows(tmp_path / "run" / "results.csv")}
    assert rows[32]["status"] == "error" and "SIGSEGV" in rows[32]["error"]
    # the next trial runs in a healthy worker: nothing left over, nothing skipped
    assert rows[16]["status"] == "ok" and rows[64]["status"] == "ok"


def test_a_hanging_trial_times_out(tmp_path, fixtures_path, write_config):
    shutil.copy(fixtures_path / "faulty_models.py", tmp_path)
    config = write_config(tiny_config(model={"factory": "faulty_models:hang_at", "kwargs": {"batch": 32}},
                                      sweep={"batch_sizes": [16, 32], "modes": ["fit"], "trial_timeout_s": 8}))
    result = run_cli("sweep", config, "--out", tmp_path / "run", "-q")
    assert result.returncode == 0, result.stderr
    rows = {r["batch_size"]: r for r in read_rows(tmp_path / "run" / "results.csv")}
    assert rows[32]["status"] == "timeout" and "trial_timeout_s=8" in rows[32]["error"]
    assert rows[16]["status"] == "ok"


def test_every_trial_failing_exits_1(tmp_path, fixtures_path, write_config):
    shutil.copy(fixtures_path / "faulty_models.py", tmp_path)
    config = write_config(tiny_config(model={"factory": "faulty_models:crash_at", "kwargs": {"batch": 16}},
                                      sweep={"batch_sizes": [16], "modes": ["fit"]}))
    result = run_cli("sweep", config, "--out", tmp_path / "run", "-q")
    assert result.returncode == 1


def test_resume_runs_only_the_missing_trials(tmp_path, write_config):
    config = write_config(tiny_config(sweep={"batch_sizes": [16, 32], "modes": ["predict"], "methods": ["serve"]}))
    run_dir = tmp_path / "run"
    assert run_cli("sweep", config, "--out", run_dir, "--repeats", "2", "-q").returncode == 0
    csv_path = run_dir / "results.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    first = read_rows(csv_path)[0]
    # as if the controller had been killed while writing the second row
    csv_path.write_text("".join(lines[:2]) + lines[2][:25])
    result = run_cli("sweep", "--resume", run_dir, "-q")  # the config as it ran, overrides included
    assert result.returncode == 0, result.stderr
    rows = read_rows(csv_path)
    assert [r["batch_size"] for r in rows] == [16, 32] and rows[1]["repeats"] >= 2
    assert rows[0]["throughput_sps"] == first["throughput_sps"]  # the finished trial was not re-run
    with open(csv_path, newline="") as fh:
        assert all(len(line) == len(rows[0]) for line in csv.DictReader(fh))


def test_resume_refuses_a_changed_config(tmp_path, write_config):
    config = write_config(tiny_config(sweep={"batch_sizes": [16], "modes": ["predict"], "methods": ["serve"]}))
    run_dir = tmp_path / "run"
    assert run_cli("sweep", config, "--out", run_dir, "-q").returncode == 0
    changed = write_config(tiny_config(sweep={"batch_sizes": [16], "modes": ["predict"], "methods": ["serve"],
                                              "repeats": 5}), name="changed.yaml")
    result = run_cli("sweep", changed, "--resume", run_dir, "-q")
    assert result.returncode == 2 and "measured settings changed" in result.stderr and "sweep.repeats" in result.stderr and "Traceback" not in result.stderr


def test_python_api_returns_a_dataframe(tmp_path):
    from batchbench import run_sweep

    frame = run_sweep(tiny_config(sweep={"batch_sizes": [16], "modes": ["predict"], "methods": ["serve"]}),
                      out=tmp_path / "api")
    assert list(frame["status"]) == ["ok"] and frame["throughput_sps"].iloc[0] > 0
    assert frame.attrs["summary"]["recommendations"]["predict/serve"]["best_throughput"] == 16


def test_general_models_dict_inputs_open_shapes_text_labels(tmp_path, write_config):
    """Models and data not in the repository: named dict inputs, a model built without an
    Input, a CSV whose target is text."""
    (tmp_path / "general.py").write_text(
        "import keras\nimport numpy as np\n"
        "def two_inputs():\n"
        "    a = keras.Input((8,), name='a'); b = keras.Input((4,), name='b')\n"
        "    x = keras.layers.Concatenate()([a, b])\n"
        "    x = keras.layers.BatchNormalization()(keras.layers.Dense(8, activation='relu')(x))\n"
        "    return keras.Model({'a': a, 'b': b}, keras.layers.Dense(3, activation='softmax')(x))\n"
        "def named_data():\n"
        "    rng = np.random.default_rng(0)\n"
        "    return {'b': rng.random((96, 4), dtype='float32'), 'a': rng.random((96, 8), dtype='float32')}, "
        "rng.integers(0, 3, 96)\n"
        "def no_input():\n"
        "    return keras.Sequential([keras.layers.Dense(8, activation='relu'), keras.layers.Dense(2)])\n")
    sweep = {"batch_sizes": [8, 32], "modes": ["fit", "predict"], "methods": ["serve"]}
    dict_cfg = write_config(tiny_config(model={"factory": "general:two_inputs"},
                                        data={"callable": {"function": "general:named_data"}}, sweep=sweep), "d.yaml")
    open_cfg = write_config(tiny_config(model={"factory": "general:no_input", "input_shape": [6],
                                               "compile": {"loss": "mse"}}, sweep=sweep), "o.yaml")
    (tmp_path / "t.csv").write_text("x1,x2,label\n" + "".join(f"{i % 7},{i % 3},{'cat' if i % 2 else 'dog'}\n"
                                                              for i in range(80)))
    csv_cfg = write_config(tiny_config(data={"csv": {"path": "t.csv", "target": "label"}}, sweep=sweep), "c.yaml")
    for config in (dict_cfg, open_cfg, csv_cfg):
        out = tmp_path / f"run-{config.stem}"
        result = run_cli("sweep", config, "--out", out, "-q")
        assert result.returncode == 0, (config.name, result.stderr)
        rows = read_rows(out / "results.csv")
        assert [r["status"] for r in rows] == ["ok"] * 4, (config.name, [r["error"] for r in rows])
    bn = read_rows(tmp_path / "run-d" / "results.csv")
    assert [r["bn_small_batch"] for r in bn if r["mode"] == "fit"] == [True, False]  # BatchNorm at batch 8


def test_every_column_of_a_real_run_is_in_the_spec_and_the_readme(tiny_run):
    from batchbench.columns import BY_NAME, PATTERNS

    run_dir, _, _ = tiny_run
    header = (run_dir / "results.csv").read_text().splitlines()[0].split(",")
    readme = (ROOT / "README.md").read_text()
    prefixes = tuple(p.split("<")[0] for p, _ in PATTERNS)
    for column in header:
        assert column in BY_NAME or column.startswith(prefixes), column
        assert f"`{column}`" in readme or column.startswith(prefixes), column
