"""Keras backends as modules (batchbench/worker/backends/): one per framework, the same few
operations each, and no TensorFlow where the backend is JAX or torch."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import types

import pytest

from batchbench.errors import ConfigError
from batchbench.worker import job
from batchbench.worker.backends import NAMES, get_backend
from batchbench.worker.backends import jax as jax_backend
from batchbench.worker.backends import torch as torch_backend
from batchbench.worker.trackers import DeviceMemory
from tests.conftest import ROOT

MiB = 2**20
needs_tf = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                              reason="tensorflow is not installed (pip install 'keras-batchbench[tensorflow]')")
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="torch is not installed (pip install 'keras-batchbench[torch]')")


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


FRAMEWORK_FACTS = """
    import json, sys, types
    if "{backend}" == "torch":  # torch's own facts from a stand-in: the point is what else gets imported
        cuda = types.SimpleNamespace(is_available=lambda: False)
        sys.modules["torch"] = types.SimpleNamespace(__version__="2.9.0", version=types.SimpleNamespace(cuda=None),
                                                     cuda=cuda)
        from batchbench.worker.backends import current

        info = current().framework_info()
    else:
        from batchbench.worker.devices import framework_info

        info = framework_info()
    print(json.dumps({{"tensorflow": info.get("tensorflow"), "imported": "tensorflow" in sys.modules,
                      "version": info.get("{backend}")}}))
"""


@needs_tf
@pytest.mark.parametrize("backend", [
    pytest.param("jax", marks=pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                                 reason="jax is not installed (pip install batchbench[jax])")),
    "torch"])
def test_the_framework_facts_under_jax_or_torch_name_tensorflow_without_importing_it(backend):
    from importlib.metadata import version

    result = run_python(FRAMEWORK_FACTS.format(backend=backend), backend=backend)
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout.splitlines()[-1])
    assert facts["imported"] is False, f"the {backend} backend's facts imported TensorFlow"
    assert facts["tensorflow"] == version("tensorflow") and facts["version"]


def test_the_env_table_gives_an_unimported_tensorflow_one_row():
    from batchbench.report.envtable import framework_rows

    rows = dict(framework_rows({"keras": "3.15.1", "keras_backend": "jax", "tensorflow": "2.21.0", "jax": "0.10.2",
                                "jax_devices": ["cpu:0"]}))
    assert rows["TensorFlow"] == "2.21.0 (installed; the jax backend leaves it unimported)"
    assert "CUDA build" not in rows and "TF devices" not in rows  # nothing TensorFlow was not asked about
    whole = dict(framework_rows({"keras_backend": "tensorflow", "tensorflow": "2.21.0", "cuda_build": "12.5.1",
                                 "tf_devices": [{"name": "/physical_device:CPU:0", "type": "CPU"}]}))
    assert whole["TF devices"] == "/physical_device:CPU:0" and whole["CUDA build"].startswith("CUDA 12.5.1")


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
    def __init__(self, platform: str, peak: int | None = None, kind: str = "NVIDIA H100 80GB HBM3",
                 limit: int = 80 * 2**30):
        self.platform, self.peak, self.device_kind, self.limit = platform, peak, kind, limit

    def memory_stats(self):
        if self.platform == "cpu" or self.peak is None:
            return None
        return {"bytes_in_use": 1, "peak_bytes_in_use": self.peak, "bytes_limit": self.limit}

    def __str__(self):
        return f"{self.platform}:{id(self) % 7}"


def fake_jax(*devices: FakeJaxDevice):
    """jax.devices(platform), jax.local_devices() and jax.config.update, recorded."""
    updates: dict = {}

    def devices_of(platform=None):
        found = [d for d in devices if platform is None or d.platform == platform]
        if platform and not found:
            raise RuntimeError(f"Unknown backend {platform}")
        return found or list(devices)

    config = types.SimpleNamespace(update=updates.__setitem__, updates=updates)
    return types.SimpleNamespace(devices=devices_of, local_devices=lambda backend=None: devices_of(backend),
                                 process_count=lambda: 1, config=config)


def set_up(jax, device: dict, limit: int | None = None) -> dict:
    """What a job does: prepare (before JAX starts), then configure."""
    jax.prepare_devices(device, limit)
    return jax.configure_devices(device, limit)


def test_jax_device_peak_sums_the_accelerators_and_skips_the_cpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", fake_jax(FakeJaxDevice("cpu", 999 * MiB),
                                                     FakeJaxDevice("gpu", 300 * MiB), FakeJaxDevice("gpu", 200 * MiB)))
    monkeypatch.setattr(jax_backend, "nvml_totals", lambda: [80 * 2**30, 80 * 2**30])
    tracker = DeviceMemory("jax")
    tracker.start()
    assert tracker.peak_bytes() == 500 * MiB
    info = set_up(get_backend("jax"), {"use": "auto"})
    assert get_backend("jax").on_gpu(info) is True and info["kind"] == "gpu"


def test_jax_on_a_cpu_has_no_device_figure_and_says_cpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", fake_jax(FakeJaxDevice("cpu", 999 * MiB)))
    monkeypatch.setattr(jax_backend, "nvml_totals", lambda: None)
    jax = get_backend("jax")
    info = set_up(jax, {"use": "auto"})
    assert DeviceMemory("jax").peak_bytes() is None
    assert jax.describe_device() == "cpu" and jax.on_gpu(info) is False and info["kind"] == "cpu"


def test_jax_device_picks_the_default_device_and_cpu_pins_the_platform(monkeypatch):
    gpus = [FakeJaxDevice("gpu", 0, kind=f"GPU {i}") for i in range(2)]
    fake = fake_jax(FakeJaxDevice("cpu"), *gpus)
    monkeypatch.setitem(sys.modules, "jax", fake)
    monkeypatch.setattr(jax_backend, "nvml_totals", lambda: [80 * 2**30] * 2)
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    jax = get_backend("jax")
    info = set_up(jax, {"use": "gpu:1"})
    assert fake.config.updates == {"jax_default_device": gpus[1]} and jax.describe_device() == "GPU 1"
    assert info["kind"] == "gpu" and info["gpus"] == [str(gpus[1])]
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"  # as TensorFlow's memory growth
    info = set_up(jax, {"use": "cpu"})
    assert fake.config.updates["jax_platforms"] == "cpu" and info["kind"] == "cpu" and jax.describe_device() == "cpu"


def test_jax_device_memory_limit_is_the_xla_memory_fraction(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", fake_jax(FakeJaxDevice("gpu", 0, limit=6 * 2**30)))
    monkeypatch.setattr(jax_backend, "nvml_totals", lambda: [24 * 2**30])
    monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", ".9")  # the deprecated name, which JAX refuses beside the new
    monkeypatch.delenv("XLA_CLIENT_MEM_FRACTION", raising=False)
    info = set_up(get_backend("jax"), {"use": "auto"}, 6 * 2**30)
    assert os.environ["XLA_CLIENT_MEM_FRACTION"] == "0.250000" and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in os.environ
    assert info["allocator_limit_mib"] == 6 * 1024  # what the allocator reports back
    monkeypatch.delenv("XLA_CLIENT_MEM_FRACTION")


@pytest.mark.parametrize(("use", "limit", "totals", "key", "message"), [
    ("gpu:2", None, [80 * 2**30] * 2, "device", "asks for gpu:2 but NVML sees 2 GPU(s) (indices 0 to 1)"),
    ("auto", 100 * 2**30, [80 * 2**30], "sweep.device_memory_limit",
     "100 GiB is more than the GPU's memory (80.0 GiB as NVML reports it)"),
    ("auto", 4 * 2**30, None, "sweep.device_memory_limit",
     "a device memory limit on the jax backend is a fraction of the GPU's memory, read from NVML, "
     "and NVML sees no GPU here"),
])
def test_jax_device_requests_it_cannot_meet_are_config_errors(monkeypatch, use, limit, totals, key, message):
    monkeypatch.setitem(sys.modules, "jax", fake_jax(FakeJaxDevice("cpu")))
    monkeypatch.setattr(jax_backend, "nvml_totals", lambda: totals)
    with pytest.raises(ConfigError) as caught:
        set_up(get_backend("jax"), {"use": use}, limit)
    assert (caught.value.key, caught.value.reason) == (key, message)


def test_jax_asked_for_a_gpu_it_does_not_see_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", fake_jax(FakeJaxDevice("cpu")))
    monkeypatch.setattr(jax_backend, "nvml_totals", lambda: None)
    with pytest.raises(ConfigError, match="asks for a GPU but JAX sees none") as caught:
        set_up(get_backend("jax"), {"use": "gpu"})
    assert caught.value.key == "device"


class FakeCuda:
    def __init__(self, peaks: list[int], total: int = 80 * 2**30):
        self.peaks, self.total = peaks, total
        self.current, self.fractions = None, {}

    def is_available(self):
        return bool(self.peaks)

    def device_count(self):
        return len(self.peaks)

    def get_device_properties(self, i):
        return types.SimpleNamespace(total_memory=self.total)

    def set_device(self, i):
        self.current = i

    def set_per_process_memory_fraction(self, fraction, i):
        self.fractions[i] = fraction

    def max_memory_allocated(self, i):
        return self.peaks[i]

    def get_device_name(self, i):
        return f"NVIDIA H100 80GB HBM3 #{i}"


@pytest.fixture
def fake_torch(monkeypatch):
    """torch.cuda faked over two GPUs; where Keras is told to put tensors, recorded."""
    placed = []
    monkeypatch.setattr(torch_backend, "set_keras_device", placed.append)

    def install(cuda: FakeCuda):
        monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
        return cuda, placed
    return install


def test_torch_device_peak_and_label_come_from_the_chosen_gpu(fake_torch):
    cuda, placed = fake_torch(FakeCuda([300 * MiB, 200 * MiB]))
    torch = get_backend("torch")
    info = torch.configure_devices({"use": "gpu:1"}, None)
    assert info == {"backend": "torch", "kind": "gpu", "gpus": ["cuda:1"]} and placed == ["cuda:1"]
    assert cuda.current == 1 and torch.on_gpu(info) is True
    tracker = DeviceMemory("torch")
    tracker.start()
    assert tracker.peak_bytes() == 200 * MiB
    assert torch.describe_device() == "NVIDIA H100 80GB HBM3 #1"
    info = torch.configure_devices({"use": "cpu"}, None)  # a GPU is there, and not used
    assert placed[-1] == "cpu" and torch.on_gpu(info) is False
    assert DeviceMemory("torch").peak_bytes() is None and torch.describe_device() == "cpu"


def test_torch_device_memory_limit_is_the_per_process_fraction(fake_torch):
    cuda, _ = fake_torch(FakeCuda([0], total=80 * 2**30))
    info = get_backend("torch").configure_devices({"use": "auto"}, 20 * 2**30)
    assert cuda.fractions == {0: 0.25} and info["allocator_limit_mib"] == 20 * 1024


@pytest.mark.parametrize(("use", "limit", "peaks", "key", "message"), [
    ("gpu:1", None, [0], "device", "asks for gpu:1 but torch sees 1 GPU(s) (indices 0 to 0)"),
    ("gpu:0", None, [], "device", "asks for gpu:0 but torch sees 0 GPU(s)"),
    ("gpu", None, [], "device", "asks for a GPU but torch sees none (check the driver and the framework's "
                                "CUDA build with `batchbench env`)"),
    ("auto", 81 * 2**30, [0], "sweep.device_memory_limit",
     "81 GiB is more than the GPU's memory (80.0 GiB as torch reports it)"),
])
def test_torch_device_requests_it_cannot_meet_are_config_errors(fake_torch, use, limit, peaks, key, message):
    fake_torch(FakeCuda(peaks))
    with pytest.raises(ConfigError) as caught:
        get_backend("torch").configure_devices({"use": use}, limit)
    assert (caught.value.key, caught.value.reason) == (key, message)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install batchbench[jax])")
def test_the_jax_backend_serves_seeds_and_measures_without_tensorflow():
    result = run_python("""
        import random, sys
        import numpy as np
        from batchbench.worker.backends import get_backend

        jax = get_backend("jax")
        jax.preload()
        jax.prepare_devices({"use": "auto"}, None)
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
    assert lines[0] == "{'backend': 'jax', 'kind': 'cpu', 'gpus': []} cpu False (5, 2) None"
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
@needs_tf
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
@needs_tf
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


@pytest.mark.slow
@needs_torch
def test_a_torch_trial_runs_fit_predict_and_serve_without_importing_tensorflow():
    result = run_python("""
        import sys
        from batchbench.config import config_from_dict
        from batchbench.worker import preload
        from batchbench.worker.job import run_job
        from tests.conftest import tiny_config

        preload.import_frameworks()
        config = config_from_dict(tiny_config(sweep={"batch_sizes": [16], "backend": "torch"}))
        resolved = {**config.resolved(), "_base_dir": config.base_dir}
        for mode, method in (("fit", None), ("predict", "predict"), ("predict", "serve")):
            trial = {"mode": mode, "method": method, "batch_size": 16, "axes": {"backend": "torch"}}
            result = run_job({"op": "trial", "config": resolved, "trial": trial})
            m = result["measurement"]
            print(mode, method, result["status"], result.get("error"), result["device"],
                  m["steps"] > 0 and sum(m["repeat_time_s"]) > 0, result.get("peak_device_mib"))
        print("tensorflow" in sys.modules)
        gpu = {**resolved, "device": {"use": "gpu"}}
        print(run_job({"op": "preflight", "config": gpu, "axes": {"backend": "torch"}}))
    """, backend="torch")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["fit None ok None cpu True None", "predict predict ok None cpu True None",
                         "predict serve ok None cpu True None"]
    assert lines[3] == "False", "a torch trial imported TensorFlow"
    assert lines[4] == str({"status": "config_error", "key": "device", "message": "asks for a GPU but torch sees "
                            "none (check the driver and the framework's CUDA build with `batchbench env`)",
                            "traceback": None})


@pytest.mark.slow
@needs_torch
def test_torch_seeding_makes_the_same_weights_and_draws():
    result = run_python("""
        import numpy as np
        from batchbench.worker.backends import get_backend

        torch_backend = get_backend("torch")
        torch_backend.preload()
        torch_backend.configure_devices({"use": "auto"}, None)
        import keras, torch

        def draw():
            torch_backend.seed(5)
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
            return (model.get_weights()[0].tolist(), float(np.random.rand()), float(torch.rand(())))

        first, second = draw(), draw()
        print(first == second, first[0] != keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).get_weights()[0].tolist())
    """, backend="torch")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]
