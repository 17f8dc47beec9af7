"""The torch backend: the module under no_grad for serving, CUDA's allocator peak. Nothing
here imports TensorFlow, and nothing imports torch until an operation runs.

`device` is the device Keras' torch backend puts the work on (cpu, or cuda:N);
`device_memory_limit` is torch.cuda.set_per_process_memory_fraction of that GPU's memory, so
the caching allocator raises torch.OutOfMemoryError past it, as TensorFlow's logical device does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchbench.worker.backends.base import Backend, choose_gpus


class Torch(Backend):
    name = "torch"
    extra = "torch"

    def __init__(self) -> None:
        self.gpu: int | None = None  # the CUDA device trials run on; None on the CPU

    def preload(self) -> None:
        """Keras' torch backend asks torch.cuda.is_available() on import, in the server before it
        forks: the NVML-based check answers without initialising CUDA, which a fork cannot inherit."""
        import os

        os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
        super().preload()

    def configure_devices(self, device: dict, device_memory_limit: int | None) -> dict:
        import torch

        use = device.get("use", "auto")
        cuda = torch.cuda.is_available() and use != "cpu"
        totals = [torch.cuda.get_device_properties(i).total_memory
                  for i in range(torch.cuda.device_count())] if cuda else []
        chosen = choose_gpus(use, device_memory_limit, totals, "torch")
        if not chosen:
            self.gpu = None
            set_keras_device("cpu")
            return {"backend": self.name, "kind": "cpu", "gpus": []}
        self.gpu = chosen[0]
        torch.cuda.set_device(self.gpu)
        set_keras_device(f"cuda:{self.gpu}")
        info = {"backend": self.name, "kind": "gpu", "gpus": [f"cuda:{self.gpu}"]}
        if device_memory_limit:
            torch.cuda.set_per_process_memory_fraction(device_memory_limit / totals[self.gpu], self.gpu)
            info["allocator_limit_mib"] = device_memory_limit / 2**20
        return info

    def describe_device(self) -> str:
        import torch

        if self.gpu is None:
            return "cpu"
        return torch.cuda.get_device_name(self.gpu)

    # No reset: each trial runs in a fresh fork that has not touched CUDA, so
    # max_memory_allocated is already the trial's own peak.
    def peak_memory_bytes(self, devices: list[str]) -> int | None:
        import torch

        if self.gpu is None:
            return None
        return int(torch.cuda.max_memory_allocated(self.gpu))

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


def set_keras_device(name: str) -> None:
    """Where Keras' torch backend puts tensors and variables (what its device scope sets)."""
    from keras.src.backend.common import global_state

    global_state.set_global_attribute("torch_device", name)


BACKEND = Torch()
