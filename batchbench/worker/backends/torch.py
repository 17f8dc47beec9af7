"""The torch backend: the module under no_grad for serving, CUDA's allocator peak. Nothing
here imports TensorFlow, and nothing imports torch until an operation runs.

`device` and `device_memory_limit` are not applied under torch (the default
configure_devices): Keras' torch backend puts the work on the first CUDA device when there is one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchbench.worker.backends.base import Backend


class Torch(Backend):
    name = "torch"
    extra = "torch"

    def describe_device(self) -> str:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"

    def on_gpu(self, device_info: dict) -> bool:
        import torch

        return torch.cuda.is_available()

    # No reset: each trial runs in a fresh fork that has not touched CUDA, so
    # max_memory_allocated is already the trial's own peak.
    def peak_memory_bytes(self, devices: list[str]) -> int | None:
        import torch

        if not torch.cuda.is_available():
            return None
        return int(sum(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count())))

    def compiled_call(self, model, jit_compile: bool) -> tuple[Callable, Callable]:
        """The module called eagerly under no_grad. torch.compile is not applied, so torch's
        serve figures are eager ones."""
        import keras
        import torch

        def call(inputs):
            with torch.no_grad():
                return model(inputs, training=False)

        return call, keras.ops.convert_to_tensor

    def framework_info(self) -> dict[str, Any]:
        import torch

        cuda = torch.cuda.is_available()
        return {**super().framework_info(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
                "torch_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                if cuda else []}


BACKEND = Torch()
