"""Device set-up (before TensorFlow's runtime starts) and what TensorFlow sees."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from batchbench.version import DISTRIBUTION
from batchbench.errors import ConfigError


def configure(device: dict, device_memory_limit: int | None, backend: str = "tensorflow") -> dict:
    """Apply the config's `device` to TensorFlow. Must run before any op executes.

    GPUs get memory growth so device-memory readings mean something, except under
    `device_memory_limit`, where each gets one logical device of that size instead
    (TensorFlow refuses both at once).
    """
    if backend != "tensorflow":
        return {"backend": backend}
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
                          "(TensorFlow splits a GPU only into sized logical devices)", key="device.logical_devices")
    kind = "gpu" if chosen else "cpu"
    return {"kind": kind, "gpus": [g.name for g in chosen]}


def describe_device(backend: str = "tensorflow") -> str:
    """A short label for the result rows: the accelerator's name, or the CPU's."""
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            try:
                details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
                name = details.get("device_name", "GPU")
            except (ValueError, IndexError):
                name = "GPU"
            return f"{len(gpus)}x {name}" if len(gpus) > 1 else name
    if backend == "jax":
        import jax

        dev = jax.devices()[0]
        return "cpu" if dev.platform == "cpu" else getattr(dev, "device_kind", dev.platform)
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return "cpu"


def framework_info() -> dict[str, Any]:
    """What the worker sees: versions, devices, thread settings."""
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    import keras

    info["keras"] = keras.__version__
    info["keras_backend"] = keras.backend.backend()
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        build = tf.sysconfig.get_build_info()
        info["cuda_build"] = build.get("cuda_version")
        info["cudnn_build"] = build.get("cudnn_version")
        info["tf_devices"] = [{"name": d.name, "type": d.device_type} for d in tf.config.list_physical_devices()]
        info["tf_threads"] = {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        }
        info["onednn_opts"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")
    except ImportError:
        info["tensorflow"] = None
    if backend == "jax":
        import jax

        info["jax"] = jax.__version__
        info["jax_devices"] = [str(d) for d in jax.devices()]
    return info
