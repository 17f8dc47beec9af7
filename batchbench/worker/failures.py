"""How a trial ended: out of memory, or some other error."""

from __future__ import annotations

OOM_MESSAGES = (
    "Dst tensor is not initialized",          # GPU OOM disguised as InternalError
    "Failed to get convolution algorithm",    # cuDNN workspace allocation failed
    "OOM when allocating",
    "out of memory",
    "RESOURCE_EXHAUSTED",
    "CUDA_ERROR_OUT_OF_MEMORY",
    "failed to allocate memory",
    "std::bad_alloc",
)


def classify(exc: BaseException) -> str:
    """'oom' or 'error' for an exception raised inside a trial."""
    if isinstance(exc, MemoryError):
        return "oom"
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ == "ResourceExhaustedError":
            return "oom"
        text = str(exc)
        if any(marker.lower() in text.lower() for marker in OOM_MESSAGES):
            return "oom"
        exc = exc.__cause__ or exc.__context__
    return "error"


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"
