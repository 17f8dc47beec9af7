"""Sweep axes (precision, XLA, backend) and energy."""

from __future__ import annotations

import importlib.util
import json

import pytest

from batchbench.results import read_rows
from batchbench.worker.trackers import EnergyMeter
from tests.conftest import run_cli, tiny_config


@pytest.mark.slow
def test_a_precision_by_xla_grid_reports_every_group_and_the_fastest(tmp_path, write_config):
    config = write_config(tiny_config(sweep={"batch_sizes": [16, 32], "modes": ["fit"],
                                             "precision": ["float32", "mixed_bfloat16"],
                                             "jit_compile": [False, True]}))
    result = run_cli("sweep", config, "--out", tmp_path / "run", "--json")
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "run" / "results.csv")
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    assert {(r["precision"], r["jit_compile"]) for r in rows} == {
        (p, j) for p in ("float32", "mixed_bfloat16") for j in (False, True)}
    recs = json.loads(result.stdout)["recommendations"]
    groups = [k for k in recs if k != "overall"]
    assert sorted(groups) == sorted(f"fit|precision={p}|jit_compile={j}"
                                    for p in ("float32", "mixed_bfloat16") for j in ("false", "true"))
    best = max(rows, key=lambda r: r["throughput_sps"])
    assert recs["overall"]["batch_size"] == best["batch_size"]
    assert recs["overall"]["group"] == (f"fit|precision={best['precision']}|"
                                        f"jit_compile={str(best['jit_compile']).lower()}")
    # XLA's known slowness on CPUs is for convolutional models: an MLP is not warned about it.
    assert "convolutional" not in result.stderr


def test_the_axis_override_is_validated(write_config):
    result = run_cli("sweep", write_config(tiny_config()), "--precision", "float8", "-q")
    assert result.returncode == 2 and "--precision" in result.stderr and "float8" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install batchbench[jax])")
def test_tensorflow_and_jax_side_by_side(tmp_path, write_config):
    config = write_config(tiny_config(sweep={"batch_sizes": [16], "modes": ["fit", "predict"],
                                             "methods": ["predict", "serve"], "backend": ["tensorflow", "jax"]}))
    result = run_cli("sweep", config, "--out", tmp_path / "run", "--json", "-q")
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "run" / "results.csv")
    assert {(r["backend"], r["mode"], r["method"] or "") for r in rows if r["status"] == "ok"} == {
        (b, m, k) for b in ("tensorflow", "jax") for m, k in (("fit", ""), ("predict", "predict"),
                                                               ("predict", "serve"))}
    recs = json.loads(result.stdout)["recommendations"]
    assert "fit|backend=jax" in recs and "predict/serve|backend=tensorflow" in recs


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed here")
def test_a_backend_that_is_not_installed_names_the_extra(write_config):
    result = run_cli("validate", write_config(tiny_config(sweep={"backend": ["tensorflow", "torch"]})))
    assert result.returncode == 2
    assert "sweep.backend[1]" in result.stderr and "batchbench[torch]" in result.stderr


class FakeEnergyNVML:
    def __init__(self, supports_energy=True):
        self.energy_mj, self.supports = 1_000_000.0, supports_energy

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supports:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle):
        return 150_000  # mW per GPU


def test_energy_from_nvml_total_energy_counters():
    nvml = FakeEnergyNVML()
    meter = EnergyMeter(on_gpu=True, nvml=nvml)
    meter.start()
    nvml.energy_mj += 4_500  # each of the two GPUs spent 4.5 J
    assert meter.stop() == pytest.approx(9.0) and meter.source == "nvml_energy"


def test_energy_falls_back_to_integrated_power_samples():
    import time

    meter = EnergyMeter(on_gpu=True, nvml=FakeEnergyNVML(supports_energy=False), sample_s=0.01)
    meter.start()
    time.sleep(0.2)
    joules = meter.stop()
    assert meter.source == "nvml_power" and joules == pytest.approx(300 * 0.2, rel=0.25)  # 2 x 150 W


def test_energy_from_rapl_counters_with_wraparound(tmp_path):
    domain = tmp_path / "intel-rapl:0"
    domain.mkdir()
    (domain / "max_energy_range_uj").write_text("1000000\n")
    (domain / "energy_uj").write_text("900000\n")
    meter = EnergyMeter(on_gpu=False, rapl_root=str(tmp_path))
    meter.start()
    (domain / "energy_uj").write_text("100000\n")  # wrapped past the range
    assert meter.source == "rapl" and meter.stop() == pytest.approx(0.2)


def test_no_energy_source_means_none_not_zero(tmp_path):
    meter = EnergyMeter(on_gpu=False, rapl_root=str(tmp_path / "absent"))
    meter.start()
    assert meter.stop() is None and meter.source is None
