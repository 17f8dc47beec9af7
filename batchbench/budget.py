"""The memory budget of a sweep, decided once after the preflight: the cap a trial's resident
memory may not cross, and what a trial's peak is measured against for headroom and the safe
batch size (the device's memory on a GPU, the host cap on a CPU)."""

from __future__ import annotations

from dataclasses import dataclass

from batchbench.config import Config

MiB = 2**20


@dataclass(frozen=True)
class MemoryBudget:
    cap_bytes: int            # a trial is ended as oom when its resident memory crosses this
    limit_bytes: int | None   # the user's --memory-limit (a peak over it, too brief to catch, is oom too)
    budget_mib: float         # what the peak column is measured against
    column: str               # peak_host_mib or peak_device_mib

    @property
    def cap_mib(self) -> float:
        return self.cap_bytes / MiB


def memory_budget(config: Config, env: dict, device: str | None, available_bytes: int) -> MemoryBudget:
    """A trial may use at most `memory_limit`, or `memory_fraction` of the memory available at
    the start, so a sweep never invites the kernel's OOM killer onto the user's machine."""
    sweep = config.sweep
    cap = sweep.memory_limit or int(available_bytes * sweep.memory_fraction)
    gpus = (env.get("nvml") or {}).get("gpus") or []
    on_gpu = (device or "cpu") != "cpu"
    if on_gpu and (sweep.device_memory_limit or gpus):
        # The peak is summed over the GPUs used, so the budget is too.
        used = config.device.gpu_indices
        chosen = [g for g in gpus if used is None or g["index"] in used] or gpus[:1]
        if sweep.device_memory_limit:
            budget = sweep.device_memory_limit * max(1, len(chosen)) / MiB
        else:
            budget = float(sum(g["memory_total_mib"] for g in chosen))
        return MemoryBudget(cap, sweep.memory_limit, budget, "peak_device_mib")
    return MemoryBudget(cap, sweep.memory_limit, cap / MiB, "peak_host_mib")
