"""What the worker server imports before it forks: the frameworks, nothing initialised."""

from __future__ import annotations

import os


def import_frameworks() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy  # noqa: F401

    from batchbench.worker.backends import current

    current().preload()
    import keras  # noqa: F401

    import batchbench.worker.job  # noqa: F401
