"""Keras backends as modules (batchbench/worker/backends/): one per framework, the same few
operations each, and no TensorFlow where the backend is JAX or torch."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import types

import pytest

from batchbench.errors import ConfigError
from batchbench.worker import job
from batchbench.worker.backends import NAMES, get_backend
from batchbench.worker.trackers import DeviceMemory
from tests.conftest import ROOT

MiB = 2**20


def run_python(code: str, backend: str) -> subprocess.CompletedProcess:
    """Python in a fresh process with KERAS_BACKEND set, as the worker server runs."""
    import os

    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("BATCHBENCH_TEST_FAST", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def test_every_backend_is_a_module_of_its_name():
    for name in NAMES:
        assert get_backend(name).name == name
    with pytest.raises(ValueError, match="unknown Keras backend 'mxnet'; expected one of tensorflow, jax, torch"):
        get_backend("mxnet")


def test_importing_the_backends_imports_no_framework():
    result = run_python("""
        import sys
        from batchbench.worker.backends import NAMES, get_backend
        import batchbench.worker.job, batchbench.worker.preload
        for name in NAMES:
            get_backend(name)
        print(sorted(m for m in ("tensorflow", "keras", "jax", "torch") if m in sys.modules))
    """, backend="jax")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_tensorflow_only_features_are_capability_flags():
    tf, others = get_backend("tensorflow"), [get_backend("jax"), get_backend("torch")]
    assert tf.mirrored_strategy and tf.noise_scale and tf.saved_model
    assert not any(b.mirrored_strategy or b.noise_scale or b.saved_model for b in others)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_mirrored_on_another_backend_keeps_its_message(backend):
    with pytest.raises(ConfigError) as caught:
        job.make_strategy("mirrored", backend, {})
    assert caught.value.key == "sweep.strategy"
    assert caught.value.reason == "strategy: mirrored is TensorFlow's; use backend tensorflow"
    assert job.make_strategy("default", backend, {}) is None


def test_a_framework_that_is_not_installed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if it were absent
    with pytest.raises(ModuleNotFoundError) as caught:
        get_backend("torch").preload()
    assert str(caught.value) == ("the torch backend is not installed; install it with "
                                 "pip install 'keras-batchbench[torch]'")
    assert caught.value.name == "torch"


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed here")
def test_the_worker_server_says_which_extra_torch_needs():
    result = run_python("""
        from batchbench.worker import preload
        try:
            preload.import_frameworks()
        except ModuleNotFoundError as exc:
            print(exc)
    """, backend="torch")
    assert "the torch backend is not installed; install it with pip install 'keras-batchbench[torch]'" \
        in result.stdout, result.stderr


class FakeJaxDevice:
    def __init__(self, platform: str, peak: int | None = None, kind: str = "NVIDIA H100 80GB HBM3"):
        self.platform, self.peak, self.device_kind = platform, peak, kind

    def memory_stats(self):
        return None if self.peak is None else {"bytes_in_use": 1, "peak_bytes_in_use": self.peak}


def fake_jax(*devices: FakeJaxDevice):
    return types.SimpleNamespace(devices=lambda: list(devices), local_devices=lambda: list(devices))


def test_jax_device_peak_sums_the_accelerators_and_skips_the_cpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", fake_jax(FakeJaxDevice("cpu", 999 * MiB),
                                                     FakeJaxDevice("gpu", 300 * MiB), FakeJaxDevice("gpu", 200 * MiB)))
    tracker = DeviceMemory("jax")
    tracker.start()
    assert tracker.peak_bytes() == 500 * MiB
    assert get_backend("jax").on_gpu({}) is True


def test_jax_on_a_cpu_has_no_device_figure_and_says_cpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", fake_jax(FakeJaxDevice("cpu", 999 * MiB)))
    jax = get_backend("jax")
    assert DeviceMemory("jax").peak_bytes() is None
    assert jax.describe_device() == "cpu" and jax.on_gpu({}) is False


class FakeCuda:
    def __init__(self, peaks: list[int]):
        self.peaks = peaks

    def is_available(self):
        return bool(self.peaks)

    def device_count(self):
        return len(self.peaks)

    def max_memory_allocated(self, i):
        return self.peaks[i]

    def get_device_name(self, i):
        return "NVIDIA H100 80GB HBM3"


def test_torch_device_peak_and_label_come_from_cuda(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=FakeCuda([300 * MiB, 200 * MiB])))
    torch = get_backend("torch")
    tracker = DeviceMemory("torch")
    tracker.start()
    assert tracker.peak_bytes() == 500 * MiB
    assert torch.describe_device() == "NVIDIA H100 80GB HBM3" and torch.on_gpu({}) is True
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=FakeCuda([])))
    assert DeviceMemory("torch").peak_bytes() is None and torch.describe_device() == "cpu"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install batchbench[jax])")
def test_the_jax_backend_serves_seeds_and_measures_without_tensorflow():
    result = run_python("""
        import random, sys
        import numpy as np
        from batchbench.worker.backends import get_backend

        jax = get_backend("jax")
        jax.preload()
        info = jax.configure_devices({"use": "auto"}, None)
        jax.seed(3)
        import keras

        draws = (random.random(), float(np.random.rand()), keras.ops.convert_to_numpy(keras.random.uniform((3,))))
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        fn, to_tensor = jax.compiled_call(model, True)
        out = keras.ops.convert_to_numpy(fn(to_tensor(np.ones((5, 4), "float32"))))
        peak = jax.peak_memory_bytes(jax.reset_peak_memory())
        print(info, jax.describe_device(), jax.on_gpu(info), out.shape, peak)
        print("tensorflow" in sys.modules)
        keras.utils.set_random_seed(3)  # what Keras itself does (it imports TensorFlow where installed)
        again = (random.random(), float(np.random.rand()), keras.ops.convert_to_numpy(keras.random.uniform((3,))))
        print(draws[:2] == again[:2] and bool((draws[2] == again[2]).all()))
    """, backend="jax")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "{'backend': 'jax'} cpu False (5, 2) None"
    assert lines[1] == "False", "the JAX backend imported TensorFlow"
    assert lines[2] == "True", "seeding differs from keras.utils.set_random_seed"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install batchbench[jax])")
def test_a_jax_trial_runs_without_importing_tensorflow():
    result = run_python("""
        import sys
        from batchbench.config import config_from_dict
        from batchbench.worker.job import run_job
        from tests.conftest import tiny_config

        config = config_from_dict(tiny_config(sweep={"batch_sizes": [16], "backend": "jax"}))
        resolved = {**config.resolved(), "_base_dir": config.base_dir}
        for mode, method in (("fit", None), ("predict", "predict"), ("predict", "serve")):
            trial = {"mode": mode, "method": method, "batch_size": 16, "axes": {"backend": "jax"}}
            result = run_job({"op": "trial", "config": resolved, "trial": trial})
            print(mode, method, result["status"], result.get("error"), result["device"])
        print("tensorflow" in sys.modules)
        print(run_job({"op": "noise_scale", "config": resolved, "axes": {"backend": "jax"}}))
    """, backend="jax")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["fit None ok None cpu", "predict predict ok None cpu", "predict serve ok None cpu"]
    assert lines[3] == "False", "a JAX trial imported TensorFlow"
    assert lines[4] == str({"status": "ok", "gradient_noise_scale": None, "note": "the noise-scale estimate uses "
                            "TensorFlow's GradientTape: run it with backend tensorflow"})


@pytest.mark.slow
def test_mirrored_strategy_spans_the_logical_cpu_devices():
    result = run_python("""
        from batchbench.config import config_from_dict
        from batchbench.worker.job import run_job
        from tests.conftest import tiny_config

        config = config_from_dict(tiny_config(device={"use": "cpu", "logical_devices": 2},
                                              sweep={"batch_sizes": [16], "strategy": "mirrored"}))
        resolved = {**config.resolved(), "_base_dir": config.base_dir}
        result = run_job({"op": "preflight", "config": resolved, "axes": {"strategy": "mirrored"}})
        print(result["status"], result.get("message"), result.get("replicas"), result.get("device"))
    """, backend="tensorflow")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "ok None 2 cpu"


@pytest.mark.slow
def test_seeding_under_tensorflow_is_keras_own():
    import random

    import keras
    import numpy as np
    import tensorflow as tf

    def draws():
        return (random.random(), float(np.random.rand()), float(tf.random.uniform(())),
                keras.ops.convert_to_numpy(keras.random.uniform((3,))).tolist())

    get_backend("tensorflow").seed(11)
    ours = draws()
    keras.utils.set_random_seed(11)
    assert draws() == ours
