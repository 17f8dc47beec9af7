"""The machine, as the controller sees it without TensorFlow: CPU, memory, load, GPUs."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from typing import Any

import psutil

THREAD_VARS = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
               "TF_ENABLE_ONEDNN_OPTS", "CUDA_VISIBLE_DEVICES", "KERAS_BACKEND")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus_from_nvml(nvml: Any = None) -> dict[str, Any]:
    """Name, memory and driver of every GPU NVML reports. No driver means no GPU, not an error."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return {"available": False, "reason": "nvidia-ml-py is not installed", "gpus": []}
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return {"available": False, "reason": f"no NVIDIA driver ({type(exc).__name__})", "gpus": []}
    try:
        driver = nvml.nvmlSystemGetDriverVersion()
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            name = nvml.nvmlDeviceGetName(handle)
            gpus.append({
                "index": i,
                "name": name.decode() if isinstance(name, bytes) else name,
                "memory_total_mib": mem.total / 2**20,
                "memory_used_mib": mem.used / 2**20,
            })
        return {"available": True, "driver": driver.decode() if isinstance(driver, bytes) else driver,
                "gpus": gpus}
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def git_info(path: str = ".") -> dict[str, Any] | None:
    try:
        commit = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return None


def host_environment() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    try:
        load = list(os.getloadavg())
    except (OSError, AttributeError):
        load = None
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_cores_logical": psutil.cpu_count(logical=True),
        "cpu_affinity": affinity,
        "memory_total_mib": vm.total / 2**20,
        "memory_available_mib": vm.available / 2**20,
        "load_average": load,
        "thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        "nvml": gpus_from_nvml(),
    }


def busy_warning(env: dict[str, Any]) -> str | None:
    """A busy machine skews every figure: say so."""
    load = env.get("load_average")
    cores = len(env.get("cpu_affinity") or []) or env.get("cpu_cores_logical") or 1
    if load and load[0] > 0.5 * cores:
        return (f"the machine is busy (load average {load[0]:.2f} on {cores} cores): "
                "figures will be slower and noisier than on an idle machine")
    return None


def cgroup_limit_bytes(root: str = "/sys/fs/cgroup") -> tuple[int, int] | None:
    """(limit, usage) of this process's memory cgroup, when one caps it (v2, else v1)."""
    from pathlib import Path

    base = Path(root)
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit_text = (base / limit_file).read_text().strip()
            usage = int((base / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max":
            return None
        limit = int(limit_text)
        if limit >= 2**60:  # v1's "no limit"
            return None
        return limit, usage
    return None


def available_memory_bytes() -> int:
    """What a trial can still use: the machine's available memory, or less inside a
    container whose cgroup caps memory (its OOM killer fires first there)."""
    available = psutil.virtual_memory().available
    cgroup = cgroup_limit_bytes()
    if cgroup:
        limit, usage = cgroup
        available = min(available, max(0, limit - usage))
    return available
