"""`make gpu-check`'s plan and its summary (benchmarks/gpu_check.py), without running it: the
GPU version asks for what the issue names, the small one says it is small, and the summary
states the find-max answer from the rows as they came."""

from __future__ import annotations

import re

from batchbench.config import config_from_dict
from benchmarks import gpu_check
from tests.conftest import ROOT

GiB = 2**30


def by_name(plan):
    return {c["name"]: c for c in plan}


def test_the_gpu_version_is_the_issue_list_and_every_config_is_valid():
    plan = by_name(gpu_check.checks(gpu=True, backends=["jax", "torch"]))
    assert list(plan) == ["env-jax", "env-torch", "mlp", "findmax", "resnet50", "findmax-torch"]
    assert plan["env-torch"]["args"] == ["env", "--json", "--backend", "torch"]
    resnet = config_from_dict(plan["resnet50"]["config"])
    assert resnet.model.application == "ResNet50" and resnet.model.kwargs["input_shape"] == [224, 224, 3]
    assert resnet.sweep.batch_sizes == [1, 32, 256, 1024] and resnet.sweep.methods == ["predict", "serve"]
    assert resnet.sweep.backend == ["jax"]
    mlp = config_from_dict(plan["mlp"]["config"])
    assert mlp.sweep.backend == ["jax", "torch"] and mlp.sweep.modes == ["fit", "predict"]
    for name, backend in (("findmax", "jax"), ("findmax-torch", "torch")):
        findmax = config_from_dict(plan[name]["config"])
        assert findmax.sweep.find_max and findmax.sweep.device_memory_limit == 4 * GiB
        assert findmax.sweep.backend == [backend] and findmax.sweep.modes == ["fit"]


def test_the_small_version_has_no_device_limit_and_no_torch_find_max():
    plan = by_name(gpu_check.checks(gpu=False, backends=["jax"]))
    assert list(plan) == ["env-jax", "mlp", "findmax", "resnet50"]
    findmax = config_from_dict(plan["findmax"]["config"])
    assert findmax.sweep.device_memory_limit is None and findmax.sweep.memory_limit is not None
    assert max(config_from_dict(plan["resnet50"]["config"]).sweep.batch_sizes) <= 8


def row(check, batch, status, phase="ladder", **extra):
    return {"check": check, "backend": "jax", "mode": "fit", "method": "", "phase": phase,
            "batch_size": str(batch), "status": status, **extra}


def test_the_summary_reports_the_frontier_and_whether_the_confirmed_maximum_fits():
    rows = [row("findmax", 1024, "ok", peak_device_mib="900", nvml_process_mib="1400", j_per_1k="2.5"),
            row("findmax", 2048, "oom", oom_kind="device"),
            row("findmax", 1536, "ok", phase="search", peak_device_mib="3000", nvml_process_mib="3500"),
            row("findmax", 1536, "ok", phase="confirm", peak_device_mib="3100", nvml_process_mib="3600")]
    runs = {"findmax": {"config_resolved": {"sweep": {"device_memory_limit": 4 * GiB}},
                        "summary": {"recommendations": {"fit": {"max_batch_size": 1536, "safe_batch_size": 1536}}}}}
    nvml = {"gpus": [{"name": "NVIDIA H200", "memory_total_mib": 143771.0}], "driver": "580"}
    outcomes = [{"name": "findmax", "code": 0, "seconds": 12.0}]
    text, figures = gpu_check.summarise(True, nvml, outcomes, rows, runs)
    assert text.startswith("# batchbench gpu-check: NVIDIA H200 (143771 MiB), driver 580")
    assert figures["findmax"] == {"limit_bytes": 4 * GiB, "max_batch_size": 1536, "safe_batch_size": 1536,
                                  "oom_batch_sizes": [2048], "confirm_rows_ok": True, "confirm_peak_mib": 3100.0,
                                  "confirm_peak_under_limit": True}
    assert "OOM at 2048; the confirm trial(s) ran ok, peak 3100 MiB within the limit" in text
    assert figures["peak_vs_nvml_rows"] == 3 and figures["nvml_minus_peak_mib_median"] == 500.0
    assert figures["rows_with_energy"] == 1
    small, _ = gpu_check.summarise(False, {"gpus": []}, outcomes, rows, runs)
    assert small.splitlines()[0].startswith("# batchbench gpu-check: no GPU: small version")


def test_the_makefile_installs_the_carried_wheels_into_a_target_folder():
    text = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*--no-index --no-deps .*--target \$\(GPU_SITE\) \$\(GPU_WHEELS\)/\*\.whl", text)
    assert "--python-version 3.12" in text and "benchmarks/gpu_check.py --out $(OUT)" in text
