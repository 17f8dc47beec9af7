"""The TensorFlow backend: tf.config device set-up, the allocator's peak, tf.function serving,
and the features only TensorFlow has (MirroredStrategy, GradientTape, SavedModel folders)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchbench.errors import ConfigError
from batchbench.version import DISTRIBUTION
from batchbench.worker.backends.base import Backend


class TensorFlow(Backend):
    name = "tensorflow"
    extra = "tensorflow"
    mirrored_strategy = True
    noise_scale = True
    saved_model = True

    def configure_devices(self, device: dict, device_memory_limit: int | None) -> dict:
        """Must run before any op executes.

        GPUs get memory growth so device-memory readings mean something, except under
        `device_memory_limit`, where each gets one logical device of that size instead
        (TensorFlow refuses both at once).
        """
        import tensorflow as tf

        use = device.get("use", "auto")
        gpus = tf.config.list_physical_devices("GPU")
        if use == "cpu":
            chosen = []
        elif use in ("auto", "gpu"):
            chosen = gpus
        else:
            indices = [int(i) for i in use.split(":", 1)[1].split(",")]
            missing = [i for i in indices if i >= len(gpus)]
            if missing:
                raise ConfigError(f"asks for {use} but TensorFlow sees {len(gpus)} GPU(s)", key="device")
            chosen = [gpus[i] for i in indices]
        if use == "gpu" and not gpus:
            raise ConfigError(f"asks for a GPU but TensorFlow sees none (install {DISTRIBUTION}[gpu] "
                              "and check the driver with `batchbench env`)", key="device")
        if gpus:
            tf.config.set_visible_devices(chosen, "GPU")
        logical = device.get("logical_devices")
        for gpu in chosen:
            if device_memory_limit:
                per_device = device_memory_limit // (logical or 1) // 2**20
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=per_device)] * (logical or 1))
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
        if logical and not chosen:
            cpus = tf.config.list_physical_devices("CPU")
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(logical)])
        elif logical and chosen and not device_memory_limit:
            raise ConfigError("logical_devices on a GPU needs sweep.device_memory_limit "
                              "(TensorFlow splits a GPU only into sized logical devices)",
                              key="device.logical_devices")
        kind = "gpu" if chosen else "cpu"
        return {"kind": kind, "gpus": [g.name for g in chosen]}

    def describe_device(self) -> str:
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            try:
                details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
                name = details.get("device_name", "GPU")
            except (ValueError, IndexError):
                name = "GPU"
            return f"{len(gpus)}x {name}" if len(gpus) > 1 else name
        return "cpu"

    def reset_peak_memory(self) -> list[str]:
        import tensorflow as tf

        devices = [d.name.replace("/device:", "") for d in tf.config.list_logical_devices("GPU")]
        for name in devices:
            try:
                tf.config.experimental.reset_memory_stats(name)
            except (ValueError, RuntimeError):
                pass
        return devices

    def peak_memory_bytes(self, devices: list[str]) -> int | None:
        if not devices:
            return None
        import tensorflow as tf

        total = 0
        for name in devices:
            try:
                total += int(tf.config.experimental.get_memory_info(name)["peak"])
            except (ValueError, RuntimeError, KeyError):
                return None
        return total

    def compiled_call(self, model, jit_compile: bool) -> tuple[Callable, Callable]:
        """tf.function over the call in inference mode (XLA when asked)."""
        import tensorflow as tf

        return tf.function(lambda inputs: model(inputs, training=False), jit_compile=bool(jit_compile),
                           reduce_retracing=True), tf.convert_to_tensor

    def framework_info(self) -> dict[str, Any]:
        """TensorFlow's whole view: version, CUDA build, devices, threads."""
        from batchbench.worker.backends.tfinfo import tensorflow_view

        return tensorflow_view()

    def make_mirrored_strategy(self, device_info: dict):
        """tf.distribute.MirroredStrategy over the devices `device` names (logical devices
        included: how the multi-device path runs on one CPU)."""
        import tensorflow as tf

        kind = "GPU" if device_info.get("kind") == "gpu" else "CPU"
        devices = [d.name for d in tf.config.list_logical_devices(kind)]
        return tf.distribute.MirroredStrategy(devices=devices)


BACKEND = TensorFlow()
