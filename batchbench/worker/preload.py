"""What the worker server imports before it forks: the frameworks, nothing initialised."""

from __future__ import annotations

import os


def import_frameworks() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    import numpy  # noqa: F401

    if backend == "tensorflow":
        import tensorflow  # noqa: F401
    elif backend == "jax":
        import jax  # noqa: F401
    elif backend == "torch":
        import torch  # noqa: F401
    import keras  # noqa: F401

    import batchbench.worker.job  # noqa: F401
