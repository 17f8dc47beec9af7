"""The JAX backend: jax.jit serving over the stateless call, device memory from the
devices' own statistics. Nothing here imports TensorFlow.

`device` picks JAX's default device; `device_memory_limit` is the XLA client's memory
fraction (XLA_CLIENT_MEM_FRACTION: the limit over the GPU's memory as NVML reports
it), set before JAX starts its GPU client, and the allocator's own `bytes_limit` is reported
back. Without a limit JAX does not preallocate (XLA_PYTHON_CLIENT_PREALLOCATE=false, as
TensorFlow's memory growth), so NVML's per-process figure means something."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from batchbench.errors import ConfigError
from batchbench.worker.backends.base import Backend, choose_gpus, nvml_totals


class Jax(Backend):
    name = "jax"
    extra = "jax"

    def __init__(self) -> None:
        self.device = None  # the jax.Device trials run on, once configure_devices has run

    def prepare_devices(self, device: dict, device_memory_limit: int | None) -> None:
        """Before JAX starts a backend (and before a multi-process job is joined): the platform,
        the preallocation and the memory fraction, which JAX reads when it makes its client."""
        import jax

        use = device.get("use", "auto")
        if use == "cpu":
            jax.config.update("jax_platforms", "cpu")
            return
        totals = nvml_totals()
        if totals is not None:
            chosen = choose_gpus(use, device_memory_limit, totals, "NVML")
        elif device_memory_limit:
            raise ConfigError("a device memory limit on the jax backend is a fraction of the GPU's memory, "
                              "read from NVML, and NVML sees no GPU here", key="sweep.device_memory_limit")
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        if device_memory_limit:
            fraction = device_memory_limit / min(totals[i] for i in chosen)
            os.environ.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)  # the deprecated name: both set is an error
            os.environ["XLA_CLIENT_MEM_FRACTION"] = f"{fraction:.6f}"

    def configure_devices(self, device: dict, device_memory_limit: int | None) -> dict:
        """After prepare_devices: the GPU `device` names among this process's own, as JAX's
        default device (left to Keras' distribution in a multi-process job)."""
        import jax

        use = device.get("use", "auto")
        if use == "cpu":
            self.device = jax.local_devices(backend="cpu")[0]
            return {"backend": self.name, "kind": "cpu", "gpus": []}
        gpus = _gpus(jax)
        chosen = choose_gpus(use, None, [_total(d) for d in gpus], "JAX")  # the limit: NVML's check before
        if not gpus:
            self.device = jax.local_devices()[0]
            return {"backend": self.name, "kind": "cpu", "gpus": []}
        self.device = gpus[chosen[0]]
        if jax.process_count() == 1:
            jax.config.update("jax_default_device", self.device)
        stats = self.device.memory_stats() or {}
        info = {"backend": self.name, "kind": "gpu", "gpus": [str(gpus[i]) for i in chosen]}
        if "bytes_limit" in stats:
            info["allocator_limit_mib"] = stats["bytes_limit"] / 2**20
        return info

    def describe_device(self) -> str:
        import jax

        dev = self.device or jax.devices()[0]
        return "cpu" if dev.platform == "cpu" else getattr(dev, "device_kind", dev.platform)

    # No reset: JAX's peak_bytes_in_use cannot be reset, and each trial runs in a fresh fork
    # of the server, so the device's peak is the trial's own.
    def peak_memory_bytes(self, devices: list[str]) -> int | None:
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

    def compiled_call(self, model, jit_compile: bool) -> tuple[Callable, Callable]:
        """jax.jit over the stateless call (always compiled: that is how JAX runs)."""
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        jitted = jax.jit(lambda tv, ntv, inputs: model.stateless_call(tv, ntv, inputs, training=False)[0])
        return (lambda inputs: jitted(trainable, non_trainable, inputs)), jax.numpy.asarray

    def framework_info(self) -> dict[str, Any]:
        import jax

        return {**super().framework_info(), "jax": jax.__version__,
                "jax_devices": [str(d) for d in jax.devices()]}


def _gpus(jax) -> list:
    """This process's GPUs (in a multi-process job jax.devices() holds the others' too)."""
    try:
        return list(jax.local_devices(backend="gpu"))
    except RuntimeError:  # no GPU backend (a CPU-only jaxlib, or no driver)
        return []


def _total(dev) -> int:
    """The device's memory in bytes as its allocator sees it: bytes_limit is the whole device
    less what XLA reserves, or the memory fraction of it."""
    stats = dev.memory_stats() or {}
    return int(stats.get("bytes_limit") or 0)


BACKEND = Jax()
