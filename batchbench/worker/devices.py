"""What the worker sees, for `batchbench env` and run.json: versions, devices, thread
settings. Setting the devices up is each backend's (batchbench/worker/backends/)."""

from __future__ import annotations

import platform
import sys
from typing import Any

from batchbench.worker.backends import current


def framework_info() -> dict[str, Any]:
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    import keras

    info["keras"] = keras.__version__
    info["keras_backend"] = keras.backend.backend()
    info.update(current().framework_info())
    return info
