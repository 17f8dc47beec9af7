"""Training dynamics on tiny real models: fairness, the learning-rate rules, time to target,
and the gradient noise scale."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from batchbench.results import read_rows
from tests.conftest import run_cli, tiny_config

pytestmark = pytest.mark.slow


def job_config(raw: dict) -> dict:
    from batchbench.config import config_from_dict

    config = config_from_dict(raw)
    data = config.resolved()
    data["_base_dir"] = config.base_dir
    return data


@pytest.mark.parametrize("rule, expected", [("none", 0.01), ("linear", 0.04), ("sqrt", 0.02)])
def test_learning_rate_rules(rule, expected):
    from batchbench.worker.quality import scaled_learning_rate

    assert math.isclose(scaled_learning_rate(0.01, rule, batch_size=128, base_batch_size=32), expected)


def test_every_trial_starts_from_the_same_initial_weights():
    from batchbench.worker.job import Workload

    work = Workload(job_config(tiny_config()), {})
    again = work.fresh_model()
    other = Workload(job_config(tiny_config()), {}).model
    for a, b, c in zip(work.model.get_weights(), again.get_weights(), other.get_weights()):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def noisy_labels_problem(fraction_random: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2048, 16)).astype("float32")
    y = (x[:, :4] @ np.array([1.0, -1.0, 0.5, 2.0]) > 0).astype("int32")
    flip = rng.random(len(y)) < fraction_random
    y[flip] = rng.integers(0, 2, flip.sum())
    return x, y


def test_gradient_noise_scale_is_finite_positive_and_larger_when_labels_are_noisy():
    import keras

    from batchbench.worker.data import Dataset
    from batchbench.worker.quality import gradient_noise_scale

    estimates = {}
    for fraction in (0.0, 0.9):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
        x, y = noisy_labels_problem(fraction)
        # train briefly on the clean signal's share, so the true gradient is no longer the init's
        estimates[fraction] = gradient_noise_scale(model, Dataset(x, y, "test"), 8, 512, seed=0,
                                                   n_small=64, n_big=16)["gradient_noise_scale"]
    assert all(v is not None and math.isfinite(v) and v > 0 for v in estimates.values())
    assert estimates[0.9] > 2 * estimates[0.0]


def test_quality_columns_updates_and_an_unreachable_target(tmp_path, write_config):
    config = write_config(tiny_config(
        model={"builtin": "mlp", "kwargs": {"hidden": 16, "depth": 1},
               "compile": {"optimizer": {"name": "sgd", "learning_rate": 0.01}, "metrics": ["accuracy"]}},
        data={"synthetic": {"samples": 200, "num_classes": 4}, "validation_split": 0.2},
        sweep={"batch_sizes": [16, 48], "modes": ["fit"], "lr_scaling": "linear", "base_batch_size": 16,
               "target": {"metric": "val_accuracy", "value": 1.01, "max_epochs": 2}}))
    result = run_cli("sweep", config, "--out", tmp_path / "run", "--json", "-q")
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "run" / "results.csv")
    for row in rows:
        assert row["status"] == "ok"  # an unreachable target is not an error
        assert row["time_to_target_s"] is None and row["epochs_to_target"] is None
        assert row["epochs"] == 2
        assert row["updates"] == math.ceil(160 / row["batch_size"]) * row["epochs"]
        assert math.isclose(row["learning_rate"], 0.01 * row["batch_size"] / 16, rel_tol=1e-6)
        assert row["val_loss"] is not None and 0 <= row["val_accuracy"] <= 1 and row["final_loss"] > 0
    rec = json.loads(result.stdout)["recommendations"]["fit"]
    assert rec["fastest_to_target"] is None
    assert "gradient_noise_scale" in json.loads((tmp_path / "run" / "run.json").read_text())["noise_scale"]


def test_a_reachable_target_names_the_fastest_batch(tmp_path, write_config):
    config = write_config(tiny_config(
        model={"builtin": "mlp", "kwargs": {"hidden": 16, "depth": 1}, "compile": {"metrics": ["accuracy"]}},
        data={"synthetic": {"samples": 128, "num_classes": 4}},
        sweep={"batch_sizes": [16, 32], "modes": ["fit"], "target": {"metric": "loss", "value": 100.0,
                                                                     "max_epochs": 3}}))
    result = run_cli("sweep", config, "--out", tmp_path / "run", "--json", "-q")
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "run" / "results.csv")
    assert all(r["epochs_to_target"] == 1 and r["time_to_target_s"] > 0 for r in rows)
    best = min(rows, key=lambda r: r["time_to_target_s"])["batch_size"]
    assert json.loads(result.stdout)["recommendations"]["fit"]["fastest_to_target"] == best


def test_an_unknown_target_metric_is_exit_2_before_any_trial(tmp_path, write_config):
    config = write_config(tiny_config(sweep={"modes": ["fit"], "target": {"metric": "val_acuracy", "value": 0.9}}))
    result = run_cli("sweep", config, "--out", tmp_path / "run", "-q")
    assert result.returncode == 2 and "sweep.target.metric" in result.stderr and "val_acuracy" in result.stderr
    assert "validation_split" in result.stderr  # why no val_ metric exists here
    assert not (tmp_path / "run" / "results.csv").exists()
