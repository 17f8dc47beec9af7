"""Keras backends as modules: `tensorflow.py`, `jax.py` and `torch.py` each do the same few
things for the worker (import the framework, set the devices up, read device memory, make
the compiled serve call, seed, describe itself), so no other worker module asks which
backend it runs on.

Importing a backend module imports no framework: each operation imports its own when it
runs, so a JAX-only or torch-only installation never needs TensorFlow.
"""

from __future__ import annotations

import importlib
import os

from batchbench.worker.backends.base import NAMES, Backend, seed_keras

__all__ = ["NAMES", "Backend", "current", "get_backend", "seed_keras"]


def get_backend(name: str) -> Backend:
    """The backend of that name (`sweep.backend`, the worker's KERAS_BACKEND)."""
    if name not in NAMES:
        raise ValueError(f"unknown Keras backend {name!r}; expected one of {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}").BACKEND


def current() -> Backend:
    """The backend this worker process was started for."""
    return get_backend(os.environ.get("KERAS_BACKEND", "tensorflow"))
