"""Keras 3 without TensorFlow (the README's `pip install 'keras-batchbench[jax]'`): these run in
the venv `make test-notf` builds, and skip, saying so, where TensorFlow is installed."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import run_cli, tiny_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                                reason="tensorflow is installed here; `make test-notf` runs these in a venv without it")
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")


@pytest.mark.slow
@needs_jax
def test_env_reports_the_jax_backend_and_no_tensorflow():
    result = run_cli("env", "--json", "--backend", "jax")
    assert result.returncode == 0, result.stderr
    framework = json.loads(result.stdout)["framework"]
    assert framework["keras_backend"] == "jax" and framework["tensorflow"] is None
    assert framework["jax"] and framework["jax_devices"]


def test_a_tensorflow_backend_asked_for_names_the_extra():
    result = run_cli("env")  # the default backend is tensorflow
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("error: --backend: the tensorflow backend is not installed; install it with pip install "
            "'keras-batchbench[tensorflow]'") in result.stderr


def test_a_sweep_on_tensorflow_stops_before_any_trial(tmp_path, write_config):
    config = write_config(tiny_config())  # no sweep.backend: tensorflow
    out = tmp_path / "run"
    result = run_cli("sweep", config, "--out", out, "-q")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (f"error: {config}: sweep.backend: the tensorflow backend is not installed; install it with pip install "
            "'keras-batchbench[tensorflow]'") in result.stderr
    assert not list(out.glob("trials/*.json"))


@pytest.mark.slow
@needs_jax
def test_a_jax_sweep_with_a_tensorflow_only_request_runs_and_names_what_it_leaves_out(tmp_path, write_config):
    config = write_config(tiny_config(sweep={"backend": "jax", "modes": ["fit"], "batch_sizes": [16],
                                             "epochs": 1}))
    out = tmp_path / "run"
    result = run_cli("sweep", config, "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["environment"]["framework"]["tensorflow"] is None
    assert any("gradient-noise estimate" in w and "backend jax" in w for w in record["summary"]["warnings"])
    assert "gradient-noise estimate" in result.stderr
