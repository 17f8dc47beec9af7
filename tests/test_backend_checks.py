"""The controller's backend checks, before any trial: a backend that is not installed, a
TensorFlow-only feature asked of JAX or torch, a GPU index that does not exist, a device memory
limit larger than the GPU. No framework is imported here (the CLI runs with a fake NVML)."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

from batchbench import backends
from batchbench.backends import check_backends, check_devices, device_problem, tensorflow_only_notes
from batchbench.config import config_from_dict
from batchbench.errors import ConfigError
from tests.conftest import run_cli, tiny_config

GiB = 2**30


def config_of(**overrides):
    return config_from_dict(tiny_config(**overrides))


@pytest.mark.parametrize(("use", "limit", "totals", "expected"), [
    ("auto", None, [], None),
    ("auto", 8 * GiB, [], None),  # no GPU: the limit has nothing to apply to
    ("gpu:1", 8 * GiB, [80 * GiB, 24 * GiB], None),
    ("cpu", 200 * GiB, [80 * GiB], None),  # the CPU is asked for: no GPU's memory to exceed
    ("gpu:0,3", None, [80 * GiB] * 2, ("device", "asks for gpu:0,3 but NVML sees 2 GPU(s) (indices 0 to 1)")),
    ("gpu:1", 30 * GiB, [80 * GiB, 24 * GiB],
     ("sweep.device_memory_limit", "30 GiB is more than the GPU's memory (24.0 GiB as NVML reports it)")),
    ("auto", 30 * GiB, [80 * GiB, 24 * GiB],  # every GPU is used: the smallest one bounds it
     ("sweep.device_memory_limit", "30 GiB is more than the GPU's memory (24.0 GiB as NVML reports it)")),
])
def test_device_problem_names_the_key(use, limit, totals, expected):
    assert device_problem(use, limit, totals, "NVML") == expected


def test_check_devices_reads_nvml_and_skips_without_it():
    config = config_of(device={"use": "gpu:2"})
    with pytest.raises(ConfigError) as caught:
        check_devices(config, {"available": True, "gpus": [{"index": 0, "memory_total_mib": 81920.0}]})
    assert caught.value.key == "device" and "NVML sees 1 GPU(s)" in caught.value.reason
    check_devices(config, {"available": False, "gpus": []})  # no NVML: the worker's framework checks


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_tensorflow_only_features_are_refused_by_name_for_other_backends(backend, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda name: True)
    with pytest.raises(ConfigError) as caught:
        check_backends(config_of(sweep={"backend": ["tensorflow", backend], "strategy": "mirrored"}))
    assert caught.value.key == "sweep.strategy"
    assert caught.value.reason.startswith("strategy mirrored is tf.distribute.MirroredStrategy, which only the "
                                          f"tensorflow backend has; sweep.backend asks for {backend}")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ConfigError) as caught:
        check_backends(config_of(model={"path": str(saved)}, sweep={"backend": backend}))
    assert caught.value.key == "model.path" and "SavedModel folder, which only the tensorflow backend" \
        in caught.value.reason
    with pytest.raises(ConfigError) as caught:
        check_backends(config_of(device={"use": "cpu", "logical_devices": 2}, sweep={"backend": backend}))
    assert caught.value.key == "device.logical_devices"
    check_backends(config_of(sweep={"backend": backend}))  # nothing TensorFlow-only: fine
    check_backends(config_of(sweep={"strategy": "mirrored"}, device={"use": "cpu", "logical_devices": 2}))


def test_the_noise_estimate_is_named_when_the_first_backend_is_not_tensorflow():
    assert tensorflow_only_notes(config_of(sweep={"backend": ["jax", "tensorflow"], "modes": ["fit"],
                                                  "epochs": 2})) == [
        "the gradient-noise estimate (critical_batch_size) uses TensorFlow's GradientTape and is not made on "
        "backend jax: put tensorflow first in sweep.backend to get it"]
    assert tensorflow_only_notes(config_of(sweep={"backend": ["tensorflow", "jax"], "modes": ["fit"],
                                                  "epochs": 2})) == []
    assert tensorflow_only_notes(config_of(sweep={"backend": "jax", "modes": ["fit"]})) == []  # no estimate asked


def test_a_backend_that_is_not_installed_names_its_extra_and_the_installed_ones(monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda name: name == "jax")
    with pytest.raises(ConfigError) as caught:
        check_backends(config_of(sweep={"backend": ["jax", "tensorflow"]}))
    assert caught.value.key == "sweep.backend[1]"
    assert caught.value.reason == ("the tensorflow backend is not installed; install it with pip install "
                                   "'keras-batchbench[tensorflow]', or use a backend installed here (jax)")
    with pytest.raises(ConfigError) as caught:
        backends.require_installed("torch", key="--backend")
    assert caught.value.key == "--backend" and "keras-batchbench[torch]" in caught.value.reason


FAKE_NVML = textwrap.dedent("""
    # A stand-in for nvidia-ml-py: one 80 GiB GPU (the controller reads it before any trial).
    import types

    class NVMLError(Exception):
        pass

    def nvmlInit(): pass
    def nvmlShutdown(): pass
    def nvmlSystemGetDriverVersion(): return "550.54.15"
    def nvmlDeviceGetCount(): return 1
    def nvmlDeviceGetHandleByIndex(i): return i
    def nvmlDeviceGetName(h): return "NVIDIA H100 80GB HBM3"
    def nvmlDeviceGetMemoryInfo(h): return types.SimpleNamespace(total=80 * 2**30, used=0, free=80 * 2**30)
    def nvmlDeviceGetComputeRunningProcesses(h): return []
""")


@pytest.mark.parametrize(("device", "option", "key", "message"), [
    ("gpu:3", [], "device", "asks for gpu:3 but NVML sees 1 GPU(s) (indices 0 to 0)"),
    ("auto", ["--device-memory-limit", "100GiB"], "sweep.device_memory_limit",
     "100 GiB is more than the GPU's memory (80.0 GiB as NVML reports it)"),
])
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_sweep_refuses_a_device_the_machine_lacks_before_any_trial(tmp_path, write_config, backend, device,
                                                                    option, key, message):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    (tmp_path / "fakenvml").mkdir()
    (tmp_path / "fakenvml" / "pynvml.py").write_text(FAKE_NVML)
    config = write_config(tiny_config(device={"use": device}, sweep={"backend": backend}))
    out = tmp_path / "run"
    result = run_cli("sweep", config, "--out", out, "-q", *option, env={"PYTHONPATH": str(tmp_path / "fakenvml")})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: {config}: {key}: {message}"
    assert "Traceback" not in result.stderr
    assert not list(out.glob("trials/*.json")), "a trial ran"


def test_validate_names_a_tensorflow_only_strategy_on_jax(write_config):
    config = write_config(tiny_config(sweep={"backend": "jax", "strategy": "mirrored"}))
    result = run_cli("validate", config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: {config}: sweep.strategy: strategy mirrored is tf.distribute.MirroredStrategy" in result.stderr


def test_env_names_the_backend_option():
    result = run_cli("env", "--backend", "mxnet", "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == "error: --backend: got 'mxnet', expected one of tensorflow, jax, torch"
