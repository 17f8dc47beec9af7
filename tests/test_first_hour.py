"""What a new user meets in the first hour, every data kind with every option: overrides on
npz/csv/callable configs, predict-throughput on the user's own data, --dry-run, a find-max
whose first size is too big, resume that names what changed, and a terminal that keeps the
user informed while the sweep runs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from batchbench.cli import main
from batchbench.results import read_rows
from tests.conftest import ROOT, run_cli, tiny_config

SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))
OPTIONS = [
    [], ["--batch-sizes", "8,16"], ["--batch-sizes", "1-64"], ["--modes", "predict"], ["--modes", "fit"],
    ["--methods", "serve"], ["--repeats", "2"], ["--memory-limit", "1.5GiB"], ["--slo-ms", "5"],
    ["--percentile", "95"], ["--find-max"], ["--margin", "10%"], ["--precision", "float32,mixed_bfloat16"],
    ["--jit-compile", "false,true"], ["--strategy", "default"],
    ["--batch-sizes", "8", "--modes", "predict", "--repeats", "1", "--find-max"],
]


def data_kinds(tmp: Path) -> dict[str, dict]:
    """One tiny config per data kind, with its files beside it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6)).astype("float32")
    y = rng.integers(0, 3, 128).astype("int32")
    np.savez(tmp / "arrays.npz", x=x, y=y)
    lines = ["a,b,c,d,target"] + [f"{r[0]:.3f},{r[1]:.3f},{r[2]:.3f},{r[3]:.3f},{t}" for r, t in zip(x, y)]
    (tmp / "table.csv").write_text("\n".join(lines) + "\n")
    (tmp / "loaders.py").write_text(
        "import numpy as np\n"
        "def load(n=128):\n"
        "    rng = np.random.default_rng(1)\n"
        "    return rng.normal(size=(n, 5)).astype('float32'), rng.integers(0, 2, n).astype('int32')\n")
    return {
        "synthetic": {"synthetic": {"samples": 128, "num_classes": 3}},
        "npz": {"npz": {"path": "arrays.npz"}},
        "csv": {"csv": {"path": "table.csv", "target": "target"}},
        "callable": {"callable": {"function": "loaders:load", "kwargs": {"n": 128}}},
    }


@pytest.fixture(scope="module")
def kind_configs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("kinds")
    out = {}
    for kind, data in data_kinds(tmp).items():
        path = tmp / f"{kind}.yaml"
        path.write_text(yaml.safe_dump(tiny_config(name=f"kind-{kind}", data=data,
                                                   sweep={"batch_sizes": [8, 32]})))
        out[kind] = path
    return out


def cli(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# ---------------------------------------------------------------- --dry-run, no TensorFlow
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: " ".join(o) or "plain")
def test_every_shipped_config_and_data_kind_takes_every_option(options, kind_configs, tmp_path):
    for config in [*SHIPPED, *kind_configs.values()]:
        for command in ("sweep", "predict-throughput"):
            code, out, err = cli(command, config, *options, "--dry-run", "--out", tmp_path / "never")
            assert code == 0, f"{command} {config.name} {options}: {err}{out}"
            assert "point(s) would run" in out
            assert not (tmp_path / "never").exists()  # a dry run writes nothing


def test_dry_run_lists_the_plan_as_json(kind_configs):
    code, out, _ = cli("sweep", kind_configs["npz"], "--dry-run", "--json", "--batch-sizes", "8,16,256")
    assert code == 0
    preview = json.loads(out)
    assert preview["samples"] == 128
    fit = next(g for g in preview["groups"] if g["group"] == "fit")
    states = {t["batch_size"]: t["state"] for t in fit["trials"]}
    assert states == {8: "planned", 16: "planned", 256: "skipped"}  # 256 > 128 samples
    assert preview["estimate"] is None or preview["estimate"]["seconds"] >= 0


def test_dry_run_never_imports_tensorflow_and_is_quick(kind_configs):
    code = ("import sys, time; t = time.perf_counter(); from batchbench.cli import main\n"
            "try:\n    main(['sweep', sys.argv[1], '--dry-run'])\nexcept SystemExit as e:\n    assert e.code == 0, e\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
            "print(time.perf_counter() - t)")
    import subprocess

    result = subprocess.run([sys.executable, "-c", code, str(kind_configs["csv"])], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "dry run of kind-csv" in result.stdout


def test_overrides_pass_validation_for_every_data_kind(kind_configs):
    from batchbench.config import apply_overrides, config_from_dict, load_config

    for kind, path in kind_configs.items():
        config = load_config(path)
        changed = apply_overrides(config, batch_sizes=[8], modes=["predict"], repeats=2, find_max=True)
        assert changed.data.source == kind and changed.sweep.batch_sizes == [8]
        again = config_from_dict(changed.resolved(), source=str(path), base_dir=config.base_dir)
        assert again.measurement_hash() == changed.measurement_hash()


# ---------------------------------------------------------------- real runs
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["synthetic", "npz", "csv", "callable"])
def test_predict_throughput_runs_on_every_data_kind(kind, kind_configs, tmp_path):
    result = run_cli("predict-throughput", kind_configs[kind], "--batch-sizes", "16", "--repeats", "2", "--rounds", "2",
                     "--out", tmp_path / "run", "--json", "--no-plots")
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "run" / "results.csv")
    assert {(r["method"], r["batch_size"]) for r in rows} == {("predict", 16), ("serve", 16)}
    assert all(r["status"] == "ok" and r["mode"] == "predict" for r in rows)
    # throughput = samples / time, per row
    for r in rows:
        assert r["throughput_sps_min"] <= r["samples"] / r["timed_s"] * 1.0001


@pytest.mark.slow
def test_a_sweep_writing_to_a_file_shows_each_trial_as_it_finishes(kind_configs, tmp_path):
    """stderr to a file (a CI log): the first finished trial is in it while the sweep still runs."""
    import subprocess

    log = tmp_path / "log.txt"
    config = tmp_path / "slow.yaml"
    config.write_text(yaml.safe_dump(tiny_config(sweep={"batch_sizes": [8, 16, 64], "min_time_s": 0.2})))
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "batchbench", "sweep", config, "--out", tmp_path / "run",
                                 "--modes", "fit", "--no-plots"], stdout=subprocess.DEVNULL, stderr=fh, cwd=ROOT)
        seen_while_running = False
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if "fit-b8 r1  ok" in log.read_text():
                seen_while_running = proc.poll() is None
                break
            time.sleep(0.2)
        proc.wait(timeout=300)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert seen_while_running, text
    first = text.splitlines()[0]
    assert first.startswith("batchbench: run folder")  # said at once, before the model is built
    assert "eta" in text and "[3/3] fit-b64 r1  ok" in text


@pytest.mark.slow
def test_find_max_whose_first_size_is_too_big_finds_a_maximum_below_it(tmp_path, write_config):
    config = write_config({
        "name": "too-big",
        # Wide and shallow: activations grow by ~90 MiB per 1024 samples of batch, ten times the
        # spread of one trial's peak between fresh processes (a deep 1024-wide MLP grew by 110
        # MiB from 128 to 2048 against a ±25 MiB spread, and its cap sometimes fell below 128).
        "model": {"builtin": "mlp", "kwargs": {"hidden": 8192, "depth": 1}, "input_shape": [128]},
        "data": {"synthetic": {"samples": 4096, "num_classes": 10}},
        "sweep": {"batch_sizes": [2048, 4096], "modes": ["fit"], "repeats": 1, "min_steps": 1,
                  "min_time_s": 0, "warmup_steps": 0, "search_granularity": 512, "rounds": 1,
                  "input_bound_check": False},
    })
    # The cap: between what batch 128 and batch 2048 need, measured here, so it holds anywhere.
    free = run_cli("sweep", config, "--out", tmp_path / "free", "--batch-sizes", "128,2048", "-q")
    assert free.returncode == 0, free.stderr
    small, large = (r["peak_host_mib"] for r in read_rows(tmp_path / "free" / "results.csv"))
    cap = (small + large) / 2
    result = run_cli("sweep", config, "--out", tmp_path / "capped", "--memory-limit", f"{cap:.0f}MiB",
                     "--find-max", "--margin", "50%", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    rec = summary["recommendations"]["fit"]
    rows = read_rows(tmp_path / "capped" / "results.csv")
    assert rows[0]["batch_size"] == 2048 and rows[0]["status"] == "oom"
    assert rec["max_batch_size"] is not None and 128 <= rec["max_batch_size"] < 2048
    assert "best_throughput" not in rec  # search and confirm trials are not speed figures
    assert rec["safe_batch_size"] is None and "50%" in rec["safe_batch_size_reason"]


@pytest.mark.slow
def test_resume_names_the_changed_settings_and_the_command_that_was_run(tmp_path, write_config):
    config = write_config(tiny_config(sweep={"batch_sizes": [16], "modes": ["predict"], "methods": ["serve"]}))
    first = run_cli("sweep", config, "--out", tmp_path / "run", "--no-plots", "-q")
    assert first.returncode == 0, first.stderr
    again = run_cli("sweep", config, "--resume", tmp_path / "run", "--repeats", "5")
    assert again.returncode == 2
    assert "sweep.repeats" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.slow
def test_resume_puts_back_a_row_whose_csv_line_was_lost(tmp_path, write_config):
    config = write_config(tiny_config(sweep={"batch_sizes": [8, 16], "modes": ["predict"], "methods": ["serve"]}))
    run = tmp_path / "run"
    assert run_cli("sweep", config, "--out", run, "--no-plots", "-q").returncode == 0
    csv_path = run / "results.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    csv_path.write_text("".join(lines[:-1]) + lines[-1][:15])  # the last row cut mid-write
    before = json.loads((run / "run.json").read_text())["samples"]
    resumed = run_cli("sweep", "--resume", run, "--no-plots")
    assert resumed.returncode == 0, resumed.stderr
    rows = read_rows(csv_path)
    assert sorted(r["batch_size"] for r in rows) == [8, 16]
    assert "kept from the earlier run" in resumed.stderr  # nothing ran again
    after = json.loads((run / "run.json").read_text())["samples"]
    assert after.keys() == before.keys() and all(after[k] for k in after)


def test_a_sweep_on_a_folder_in_use_is_refused_before_anything_runs(tmp_path, write_config):
    import os
    import socket

    from batchbench.rundir import LOCK_NAME

    config = write_config(tiny_config())
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(f"{os.getpid()} {socket.gethostname()} 0\n")  # this process: alive
    code, _, err = cli("sweep", config, "--out", run)
    assert code == 2 and "in use by another batchbench sweep" in err
    assert not (run / "results.csv").exists() and (run / LOCK_NAME).exists()


def test_a_run_folder_with_planted_symlinks_is_refused(tmp_path, write_config):
    config = write_config(tiny_config())
    target = tmp_path / "precious.txt"
    target.write_text("keep")
    run = tmp_path / "run"
    run.mkdir()
    (run / "trials").symlink_to(tmp_path)
    code, _, err = cli("sweep", config, "--out", run)
    assert code == 2 and "symbolic link" in err
    assert target.read_text() == "keep"


def test_the_example_ci_workflow_installs_from_a_checkout_under_a_free_name():
    text = (ROOT / "examples" / "github-actions" / "batchbench.yml").read_text()
    assert "pip install batchbench" not in text and 'install "./.batchbench-src[tensorflow]"' in text
    assert "include-hidden-files: true" in text and "--edit-last" not in text
    import tomllib

    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    from batchbench import DISTRIBUTION

    assert name == DISTRIBUTION != "batchbench"


def test_invocation_is_what_the_user_ran(monkeypatch):
    from batchbench.rundir import invocation

    monkeypatch.setattr(sys, "argv", [".venv/bin/batchbench", "sweep"])
    assert invocation() == ".venv/bin/batchbench"
    monkeypatch.setattr(sys, "argv", ["/x/batchbench/__main__.py", "sweep"])
    assert invocation() == f"{sys.executable} -m batchbench"


def test_progress_lines_escape_markup_and_carry_an_eta():
    import io

    from rich.console import Console

    from batchbench.progress import LineProgress

    buf = io.StringIO()
    progress = LineProgress(Console(file=buf, no_color=True, width=80))
    progress({"event": "start", "total": 3})
    progress({"event": "done", "index": 1, "total": 3,
              "row": {"trial_id": "fit-b8", "status": "ok", "throughput_sps": 1234.5, "wall_s": 2.0,
                      "peak_host_mib": 800.0, "step_ms_median": 1.5}})
    progress({"event": "done", "index": 2, "total": 3,
              "row": {"trial_id": "fit-b16", "status": "error", "error": "[bold red]boom\x1b[2J", "wall_s": 1.0}})
    text = buf.getvalue()
    assert "fit-b8  ok  1,234 samples/s" in text and "eta 0:04" in text
    assert "[bold red]boom" in text and "\x1b" not in text


def test_shipped_callable_config_is_valid():
    code, out, err = cli("validate", ROOT / "configs" / "callable-data.yaml")
    assert code == 0, err


@pytest.mark.slow
def test_a_factory_that_raises_names_the_users_line_and_keeps_the_traceback(tmp_path, write_config):
    (tmp_path / "broken.py").write_text("def helper():\n    raise ValueError('oops')\n\n\ndef build():\n"
                                        "    return helper()\n")
    config = write_config(tiny_config(model={"factory": "broken:build"}))
    result = run_cli("sweep", config, "--out", tmp_path / "run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "oops" in result.stderr and "broken.py:2" in result.stderr
    log = tmp_path / "run" / "trials" / "preflight.log"
    assert "Traceback" in log.read_text() and "raise ValueError('oops')" in log.read_text()
    verbose = run_cli("sweep", config, "--out", tmp_path / "run2", "-v")
    assert verbose.returncode == 2 and "raise ValueError('oops')" in verbose.stderr


def test_top_level_help_does_not_cut_command_descriptions():
    code, out, _ = cli("--help")
    commands = out[out.index("Commands:"):]
    assert code == 0 and "..." not in commands
    for name in ("sweep", "predict-throughput", "compare", "validate", "env", "report"):
        assert name in commands


def test_a_look_alike_application_name_suggests_the_one_it_looks_like(tmp_path):
    from batchbench.config import keras_application_names

    if not keras_application_names():
        pytest.skip("keras is not installed")
    path = tmp_path / "c.yaml"
    path.write_text("model: {application: EfficientNetBO}\nsweep: {batch_sizes: [8]}\n")
    code, _, err = cli("validate", path)
    assert code == 2 and "did you mean EfficientNetB0?" in err
