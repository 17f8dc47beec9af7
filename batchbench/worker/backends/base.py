"""The Backend base class: what the worker asks of a framework, and the defaults of a
backend without a feature. Imports no framework."""


from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from batchbench.version import DISTRIBUTION

NAMES = ("tensorflow", "jax", "torch")


class Backend:
    """What the worker asks of a framework. The defaults are what a backend without a
    feature does; the capability flags name the features only some frameworks have."""

    name = ""
    extra: str | None = None  # the distribution's extra that installs the framework
    # TensorFlow-only features; a job on another backend refuses or skips them with its message.
    mirrored_strategy = False  # sweep.strategy: mirrored (tf.distribute.MirroredStrategy)
    noise_scale = False  # the gradient-noise estimate (it differentiates with GradientTape)
    saved_model = False  # SavedModel folders (keras.layers.TFSMLayer; models.py does not ask yet)

    def preload(self) -> None:
        """Import the framework and initialise nothing: the fork server does this once,
        before it forks, and no device may be touched before a fork."""
        try:
            importlib.import_module(self.name)
        except ModuleNotFoundError as exc:
            if exc.name != self.name:
                raise
            how = f"'{DISTRIBUTION}[{self.extra}]'" if self.extra else self.name
            raise ModuleNotFoundError(f"the {self.name} backend is not installed; install it with "
                                      f"pip install {how}", name=self.name) from None

    def prepare_devices(self, device: dict, device_memory_limit: int | None) -> None:
        """What must be set before the framework starts its devices and before a multi-process
        job is joined (JAX's client settings); nothing on most backends."""

    def configure_devices(self, device: dict, device_memory_limit: int | None) -> dict:
        """Apply the config's `device` before any op runs; returns what was chosen."""
        return {"backend": self.name}

    def describe_device(self) -> str:
        """A short label for the result rows: the accelerator's name, or the CPU's."""
        return "cpu"

    def on_gpu(self, device_info: dict) -> bool:
        """Whether the trial computes on a GPU (the energy meter then reads NVML)."""
        return device_info.get("kind") == "gpu"

    def reset_peak_memory(self) -> list[str]:
        """Start a new device-memory peak; returns the devices `peak_memory_bytes` reads."""
        return []

    def peak_memory_bytes(self, devices: list[str]) -> int | None:
        """The allocator's peak since `reset_peak_memory`, over all devices (None on a CPU)."""
        return None

    def compiled_call(self, model, jit_compile: bool) -> tuple[Callable, Callable]:
        """The model as a serving stack calls it, in inference mode, and the function that
        turns a host batch into the framework's tensor. The caller copies the outputs to
        the host inside its timed region."""
        raise NotImplementedError(f"no compiled call for backend {self.name!r}")

    def make_mirrored_strategy(self, device_info: dict):
        raise NotImplementedError(f"no MirroredStrategy on backend {self.name!r}")

    def seed(self, seed: int) -> None:
        """The one seed for weights and data order: Python, NumPy, Keras and the framework."""
        seed_keras(seed)

    def framework_info(self) -> dict[str, Any]:
        """Versions and devices for `batchbench env` and run.json. TensorFlow's version is
        reported under every backend where TensorFlow is installed (compare's environment
        check reads it), without importing it on a backend that does not use it."""
        from batchbench.worker.backends.tfinfo import installed_tensorflow

        return installed_tensorflow()


def seed_keras(seed: int) -> None:
    """keras.utils.set_random_seed, without the TensorFlow import it makes wherever
    TensorFlow is installed: TensorFlow is seeded once something has imported it (a
    tf.data pipeline from data.callable; always, under the TensorFlow backend)."""
    import keras

    try:
        from keras.src.utils import rng_utils

        lazy_tf = rng_utils.tf
        skip_tf = lazy_tf._available is None and "tensorflow" not in sys.modules
    except (ImportError, AttributeError):  # another Keras layout: seed as Keras does
        skip_tf = False
    if not skip_tf:
        keras.utils.set_random_seed(seed)
        return
    lazy_tf._available = False  # Keras asks "is TF installed?" by importing it (seconds, hundreds of MiB)
    try:
        keras.utils.set_random_seed(seed)
    finally:
        lazy_tf._available = None  # a later import of TensorFlow is seen, and seeded, as usual


def device_problem(use: str, limit: int | None, totals: list[int], seen_by: str) -> tuple[str, str] | None:
    """(key, message) for a device request the GPUs seen (their memory in bytes) cannot meet;
    None when it fits. Pure: the controller gives NVML's view, a worker its framework's."""
    if use.startswith("gpu:"):
        indices = [int(i) for i in use.split(":", 1)[1].split(",")]
        missing = [i for i in indices if i >= len(totals)]
        if missing:
            return "device", (f"asks for {use} but {seen_by} sees {len(totals)} GPU(s)"
                              + (f" (indices 0 to {len(totals) - 1})" if totals else ""))
        chosen = [totals[i] for i in indices]
    elif use == "cpu":
        chosen = []
    else:
        chosen = totals
    if limit and chosen and limit > min(chosen):
        return "sweep.device_memory_limit", (f"{limit / 2**30:g} GiB is more than the GPU's memory "
                                             f"({min(chosen) / 2**30:.1f} GiB as {seen_by} reports it)")
    return None


def choose_gpus(use: str, limit: int | None, totals: list[int], seen_by: str) -> list[int]:
    """The GPU indices `device` asks for, among the GPUs seen (their memory in bytes): a
    missing index, a GPU asked for where there is none, or a limit larger than a GPU, is a
    ConfigError naming the key (the worker's check, with what its framework sees)."""
    from batchbench.errors import ConfigError

    if use == "gpu" and not totals:
        raise ConfigError(f"asks for a GPU but {seen_by} sees none (check the driver and the "
                          "framework's CUDA build with `batchbench env`)", key="device")
    problem = device_problem(use, limit, totals, seen_by)
    if problem:
        raise ConfigError(problem[1], key=problem[0])
    if use == "cpu":
        return []
    if use.startswith("gpu:"):
        return [int(i) for i in use.split(":", 1)[1].split(",")]
    return list(range(len(totals)))


def nvml_totals() -> list[int] | None:
    """Each GPU's memory in bytes as NVML reports it; None without NVML."""
    from batchbench.envinfo import gpus_from_nvml

    info = gpus_from_nvml()
    if not info.get("available"):
        return None
    return [int(g["memory_total_mib"] * 2**20) for g in info["gpus"]]
