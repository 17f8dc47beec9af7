"""Memory trackers used around a trial: host resident peak and accelerator peak."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from batchbench.worker.backends import get_backend

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
    (each backend's reset_peak_memory and peak_memory_bytes; NVML's per-process view is
    nvml_process_bytes)."""

    def __init__(self, backend: str = "tensorflow") -> None:
        self.backend = get_backend(backend)
        self.devices: list[str] = []

    def start(self) -> None:
        self.devices = self.backend.reset_peak_memory()

    def peak_bytes(self) -> int | None:
        return self.backend.peak_memory_bytes(self.devices)


WINDOW_PATH_KEY = "window_path"  # the job request's key: where the child marks its window's end


class MemoryWindow:
    """The region a trial's memory figures cover, from the trial's start to `close()`.

    fit: the whole trial. predict: the first whole `model.predict` call (setup included);
    serve: making the batches and one pass over them. What runs after the window (predict's
    timing windows) is no part of what the batch size costs, and resident memory never comes
    down, so the peaks are read when it closes. `close()` also writes a marker file (JSON:
    the window's kind and its host peak) where the controller's watcher looks: from then on
    it no longer holds the trial's resident memory against the cap."""

    def __init__(self, host: HostMemory, device: DeviceMemory | None, marker_path: str | None = None) -> None:
        self.host, self.device, self.marker_path = host, device, marker_path
        self.kind: str | None = None
        self.host_bytes: int | None = None
        self.device_bytes: int | None = None

    @property
    def closed(self) -> bool:
        return self.kind is not None

    def close(self, kind: str) -> None:
        if self.closed:
            return
        self.host_bytes = self.host.peak_bytes()
        self.device_bytes = self.device.peak_bytes() if self.device is not None else None
        self.kind = kind
        if self.marker_path:
            # Without a reset VmHWM may hold the server's past: the watcher then keeps its own samples.
            _write_marker(self.marker_path, {"window": kind,
                                             "peak_host_bytes": self.host_bytes if self.host.reset_ok else None,
                                             "peak_device_bytes": self.device_bytes})


def _write_marker(path: str, content: dict) -> None:
    """Atomically (the watcher reads it whole or not at all), never through a planted link."""
    import json

    tmp = path + ".tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(content, fh)
        os.replace(tmp, path)
    except OSError:  # the controller then holds the whole trial against the cap, as before
        pass


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


class EnergyMeter:
    """Joules spent over the timed region, where the hardware reports it.

    GPUs: NVML's total-energy counter (millijoules, Volta and newer) read at both ends;
    without it, NVML power samples integrated over time. CPUs: the RAPL package counters
    under /sys/class/powercap when readable. Nothing reporting energy means None, never a
    guess."""

    def __init__(self, on_gpu: bool, nvml: Any = None, rapl_root: str = "/sys/class/powercap",
                 sample_s: float = 0.05):
        self.on_gpu, self.rapl_root, self.sample_s = on_gpu, rapl_root, sample_s
        self.nvml = nvml
        self.source: str | None = None
        self._handles: list = []
        self._start: list[float] = []
        self._samples: list[tuple[float, float]] = []
        self._thread = None
        self._stop_flag = False

    def start(self) -> None:
        if self.on_gpu and self._nvml_ready():
            try:
                self._start = [float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self._handles]
                self.source = "nvml_energy"
                return
            except Exception:  # noqa: BLE001 - pre-Volta GPUs raise NotSupported
                self._start_power_sampling()
                return
        readings = self._rapl_read()
        if readings:
            self._start, self.source = readings, "rapl"

    def stop(self) -> float | None:
        if self.source == "nvml_energy":
            end = [float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self._handles]
            return sum(e - s for e, s in zip(end, self._start)) / 1000.0
        if self.source == "nvml_power":
            self._stop_flag = True
            if self._thread:
                self._thread.join()
            self._sample_power()
            pts = self._samples
            return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(pts, pts[1:])) or None
        if self.source == "rapl":
            end = self._rapl_read()
            if not end:
                return None
            total = 0.0
            for (e, s, rng) in zip(end, self._start, self._rapl_ranges):
                total += (e - s) if e >= s else (e + rng - s)  # the counter wrapped
            return total / 1e6
        return None

    # -- NVML
    def _nvml_ready(self) -> bool:
        if self.nvml is None:
            try:
                import pynvml as nvml
            except ImportError:
                return False
            self.nvml = nvml
        try:
            self.nvml.nvmlInit()
            self._handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(self.nvml.nvmlDeviceGetCount())]
        except Exception:  # noqa: BLE001 - no driver
            return False
        return bool(self._handles)

    def _sample_power(self) -> None:
        watts = sum(self.nvml.nvmlDeviceGetPowerUsage(h) for h in self._handles) / 1000.0
        self._samples.append((time.perf_counter(), watts))

    def _start_power_sampling(self) -> None:
        import threading

        try:
            self._sample_power()
        except Exception:  # noqa: BLE001
            return
        self.source = "nvml_power"

        def loop() -> None:
            while not self._stop_flag:
                time.sleep(self.sample_s)
                self._sample_power()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    # -- RAPL
    def _rapl_read(self) -> list[float] | None:
        root = Path(self.rapl_root)
        domains = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1) if root.exists() else []
        values, ranges = [], []
        for domain in domains:
            try:
                values.append(float((domain / "energy_uj").read_text()))
                ranges.append(float((domain / "max_energy_range_uj").read_text()))
            except (OSError, ValueError):
                return None
        self._rapl_ranges = ranges
        return values or None
