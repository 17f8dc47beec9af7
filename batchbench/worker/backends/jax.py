"""The JAX backend: jax.jit serving over the stateless call, device memory from the
devices' own statistics. Nothing here imports TensorFlow.

`device` and `device_memory_limit` are not applied under JAX (the default
configure_devices): JAX's own defaults choose the devices and preallocate their memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchbench.worker.backends.base import Backend


class Jax(Backend):
    name = "jax"
    extra = "jax"

    def describe_device(self) -> str:
        import jax

        dev = jax.devices()[0]
        return "cpu" if dev.platform == "cpu" else getattr(dev, "device_kind", dev.platform)

    def on_gpu(self, device_info: dict) -> bool:
        import jax

        return any(d.platform == "gpu" for d in jax.devices())

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


BACKEND = Jax()
