"""Which Keras backends this installation can run, and what each can do, checked in the
controller before any trial (find_spec only: nothing is imported).

TensorFlow is an extra like JAX and torch (as Keras 3 ships): a sweep asks only for the
backends it names, and the features only TensorFlow has -- MirroredStrategy, the
gradient-noise estimate, SavedModel folders -- are named here when another backend is asked
for them, before any trial runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from batchbench.config import Config
from batchbench.errors import ConfigError
from batchbench.version import DISTRIBUTION
from batchbench.worker.backends.base import device_problem

EXTRAS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
MiB = 2**20

__all__ = ["check_backends", "check_devices", "device_problem", "tensorflow_only_notes"]


def installed(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


def not_installed(backend: str) -> str | None:
    """The message for a backend that is not installed (naming its extra, and the backends
    that are); None when it is."""
    if installed(backend):
        return None
    others = [b for b in EXTRAS if b != backend and installed(b)]
    return (f"the {backend} backend is not installed; install it with "
            f"pip install '{DISTRIBUTION}[{EXTRAS.get(backend, backend)}]'"
            + (f", or use a backend installed here ({', '.join(others)})" if others else ""))


def require_installed(backend: str, key: str) -> None:
    """`batchbench env --backend`: a config error naming the option, before any worker starts."""
    if backend not in EXTRAS:
        raise ConfigError(f"got {backend!r}, expected one of {', '.join(EXTRAS)}", key=key)
    message = not_installed(backend)
    if message:
        raise ConfigError(message, key=key)


def check_backends(config: Config) -> None:
    """A backend that is not installed, or a TensorFlow-only feature asked of another backend,
    is a config error naming the key, before any trial."""
    backends = config.sweep.backend
    for i, backend in enumerate(backends):
        message = not_installed(backend)
        if message:
            key = f"sweep.backend[{i}]" if len(backends) > 1 else "sweep.backend"
            raise ConfigError(message, file=config.source_file or "config", key=key)
    others = [b for b in backends if b != "tensorflow"]
    if not others:
        return
    names = ", ".join(others)
    if "mirrored" in config.sweep.strategy:
        raise ConfigError(f"strategy mirrored is tf.distribute.MirroredStrategy, which only the tensorflow "
                          f"backend has; sweep.backend asks for {names} (use backend tensorflow, or "
                          "strategy default)", file=config.source_file or "config", key="sweep.strategy")
    if config.device.logical_devices:
        raise ConfigError(f"logical devices split a device for MirroredStrategy, which only the tensorflow "
                          f"backend has; sweep.backend asks for {names}", file=config.source_file or "config",
                          key="device.logical_devices")
    path = config.model.path
    if path is not None and Path(path).is_dir():
        raise ConfigError(f"{path} is a SavedModel folder, which only the tensorflow backend loads "
                          f"(keras.layers.TFSMLayer); sweep.backend asks for {names} (save the model as "
                          ".keras, or use backend tensorflow)", file=config.source_file or "config",
                          key="model.path")


def tensorflow_only_notes(config: Config) -> list[str]:
    """What a sweep will leave out because its backend is not TensorFlow (warnings, given
    before any trial): the gradient-noise estimate runs on the first backend only."""
    sweep = config.sweep
    first = sweep.backend[0]
    if first != "tensorflow" and "fit" in sweep.modes and (sweep.epochs or sweep.target):
        return [f"the gradient-noise estimate (critical_batch_size) uses TensorFlow's GradientTape and is "
                f"not made on backend {first}: put tensorflow first in sweep.backend to get it"]
    return []


def check_devices(config: Config, nvml: dict) -> None:
    """`device` and `sweep.device_memory_limit` against the GPUs NVML reports: a GPU index
    that does not exist, or a limit larger than a GPU's memory, is a config error on every
    backend, before any trial. Without NVML (no driver, no nvidia-ml-py) the worker checks
    what its framework sees instead (the same device_problem)."""
    if not nvml.get("available"):
        return
    gpus = nvml.get("gpus") or []
    totals = [int(g["memory_total_mib"] * MiB) for g in gpus]
    problem = device_problem(config.device.use, config.sweep.device_memory_limit, totals, "NVML")
    if problem:
        key, message = problem
        raise ConfigError(message, file=config.source_file or "config", key=key)
