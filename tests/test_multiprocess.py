"""Data parallelism over processes (Keras 3 on JAX), with two local processes standing in
for two hosts."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from batchbench.results import read_rows
from tests.conftest import run_cli, tiny_config

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax (batchbench[jax])")]

MP_SWEEP = {"batch_sizes": [16, 32], "modes": ["fit"], "backend": "jax"}


def test_two_processes_one_results_file_identical_training(tmp_path, write_config):
    config = write_config(tiny_config(sweep=MP_SWEEP))
    result = run_cli("sweep", config, "--local-processes", "2", "--out", tmp_path / "run", "-q", timeout=300)
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "run" / "results.csv")
    peer = read_rows(tmp_path / "run" / "peers" / "process-1" / "results.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row, other in zip(rows, peer):
        assert row["processes"] == 2 and row["devices_per_process"] == 1 and row["replicas"] == 2
        assert row["per_process_batch_size"] == row["batch_size"] // 2
        assert row["steps"] == other["steps"]  # equal step counts, guaranteed by the tool
        assert row["final_loss"] == other["final_loss"]  # one model, trained on one global batch
    assert not (tmp_path / "run" / "peers" / "process-1" / "run.json").read_text() == ""


def test_a_dying_process_ends_the_other_without_a_hang(tmp_path, fixtures_path, write_config):
    shutil.copy(fixtures_path / "faulty_models.py", tmp_path)
    config = write_config(tiny_config(model={"factory": "faulty_models:crash_in_process", "kwargs": {"process": 1}},
                                      sweep=MP_SWEEP))
    result = run_cli("sweep", config, "--local-processes", "2", "--out", tmp_path / "run", "-q", timeout=240)
    rows = read_rows(tmp_path / "run" / "results.csv")
    # the survivor learns it from the collective (a Gloo reset) or from the launcher, within seconds
    assert rows[0]["status"] == "error"
    assert "process 1" in rows[0]["error"] or "Gloo" in rows[0]["error"]
    assert len(rows) == 1  # it stopped rather than wait at the next join
    assert result.returncode == 1


def test_an_unreachable_coordinator_is_exit_2(tmp_path, write_config):
    config = write_config(tiny_config(sweep=MP_SWEEP))
    result = run_cli("sweep", config, "--num-processes", "2", "--process-id", "1", "--coordinator", "127.0.0.1:9",
                     "--join-timeout", "5", "--out", tmp_path / "run", "-q", timeout=120)
    assert result.returncode == 2 and "--coordinator" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, key", [
    (["--num-processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:1234"], "--process-id"),
    (["--num-processes", "2", "--process-id", "0", "--coordinator", "nohost"], "--coordinator"),
    (["--num-processes", "0", "--process-id", "0", "--coordinator", "127.0.0.1:1234"], "--num-processes"),
])
def test_bad_process_options_are_exit_2(write_config, args, key):
    result = run_cli("sweep", write_config(tiny_config(sweep=MP_SWEEP)), *args, "-q")
    assert result.returncode == 2 and key in result.stderr


def test_tensorflow_backend_is_refused_for_multi_process(tmp_path, write_config):
    result = run_cli("sweep", write_config(tiny_config(sweep={"modes": ["fit"]})), "--local-processes", "2",
                     "--out", tmp_path / "r", "-q")
    assert result.returncode == 2 and "sweep.backend" in result.stderr and "jax" in result.stderr
