"""Memory trackers used around a trial: host resident peak and accelerator peak."""

from __future__ import annotations

import os
import resource
import sys

MiB = 2**20


class HostMemory:
    """The process's peak resident memory over the tracked region.

    On Linux, writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS, so the
    peak read afterwards belongs to the tracked region. Since the trial runs in a fresh
    fork of the server, the figure is what the trial would reach running alone.
    """

    def __init__(self) -> None:
        self.reset_ok = False

    def start(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.reset_ok = True
        except OSError:
            self.reset_ok = False

    @staticmethod
    def current_bytes() -> int | None:
        return _status_kib("VmRSS")

    def peak_bytes(self) -> int | None:
        hwm = _status_kib("VmHWM")
        if hwm is not None:
            return hwm
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class DeviceMemory:
    """Peak accelerator memory of the tracked region, from the framework's own allocator
    (TF: get_memory_info after reset_memory_stats) and NVML's per-process view."""

    def __init__(self, backend: str = "tensorflow") -> None:
        self.backend = backend
        self.devices: list[str] = []

    def start(self) -> None:
        if self.backend != "tensorflow":
            return
        import tensorflow as tf

        self.devices = [d.name.replace("/device:", "") for d in tf.config.list_logical_devices("GPU")]
        for name in self.devices:
            try:
                tf.config.experimental.reset_memory_stats(name)
            except (ValueError, RuntimeError):
                pass

    def peak_bytes(self) -> int | None:
        if self.backend == "jax":
            return _jax_peak()
        if self.backend == "torch":
            return _torch_peak()
        if not self.devices:
            return None
        import tensorflow as tf

        total = 0
        for name in self.devices:
            try:
                total += int(tf.config.experimental.get_memory_info(name)["peak"])
            except (ValueError, RuntimeError, KeyError):
                return None
        return total


def _jax_peak() -> int | None:
    import jax

    total, seen = 0, False
    for dev in jax.local_devices():
        if dev.platform == "cpu":
            continue
        stats = dev.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            total += int(stats["peak_bytes_in_use"])
            seen = True
    return total if seen else None


def _torch_peak() -> int | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return int(sum(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count())))


def nvml_process_bytes(pid: int | None = None) -> int | None:
    """NVML's view of the memory this process holds on all GPUs (None without NVML)."""
    try:
        import pynvml
    except ImportError:
        return None
    pid = pid or os.getpid()
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver means no GPU, not an error
        return None
    try:
        total, seen = 0, False
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == pid and proc.usedGpuMemory is not None:
                    total += int(proc.usedGpuMemory)
                    seen = True
        return total if seen else None
    except Exception:  # noqa: BLE001
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
