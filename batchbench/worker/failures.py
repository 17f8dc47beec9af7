"""How a trial ended: out of memory, or some other error; and where in the user's own code
an error was raised."""

from __future__ import annotations

import os
import re
import sys
import sysconfig
import traceback

from batchbench.errors import ConfigError

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


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Keras bolds parts of the errors it re-raises


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(_ANSI.sub("", str(exc)).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ---------------------------------------------------------------- the user's own frames
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARY_DIRS = tuple({os.path.abspath(p) + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")
                       if (p := sysconfig.get_paths().get(key))})


def _is_users(filename: str, own_dirs: tuple[str, ...]) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    path = os.path.abspath(filename)
    if path.startswith(own_dirs):  # the user's package, even when it is installed
        return True
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not path.startswith((_PACKAGE_DIR + os.sep, *_LIBRARY_DIRS))


def _own_dirs(module: str | None) -> tuple[str, ...]:
    top = sys.modules.get((module or "").split(".")[0])
    path = getattr(top, "__file__", None)
    return (os.path.dirname(os.path.abspath(path)) + os.sep,) if path else ()


def _filtered(te: traceback.TracebackException, own: tuple[str, ...], seen: set) -> None:
    if id(te) in seen:
        return
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if _is_users(f.filename, own)])
    for chained in (te.__cause__, te.__context__):
        if chained is not None:
            _filtered(chained, own, seen)


def user_traceback(exc: BaseException, module: str | None = None) -> str:
    """The traceback as traceback.format_exception writes it, keeping only the user's frames
    (outside batchbench, the standard library and site-packages: Keras, TensorFlow, NumPy);
    `module` names the user's package, whose frames count even when it is installed."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    _filtered(te, _own_dirs(module), set())
    return _ANSI.sub("", "".join(te.format()))


def innermost_user_frame(exc: BaseException, module: str | None = None) -> tuple[str, int, str] | None:
    """(file, line, function) of the deepest frame in the user's code, or for a SyntaxError
    the place it points at."""
    own = _own_dirs(module)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_users(f.filename, own)]
    if frames:
        return frames[-1].filename, frames[-1].lineno or 0, frames[-1].name
    if isinstance(exc, SyntaxError) and exc.filename:
        return exc.filename, exc.lineno or 0, "<module>"
    return None


def user_code_error(message: str, key: str, exc: BaseException, module: str | None = None,
                    base_dir: str | None = None) -> ConfigError:
    """A ConfigError for an exception raised in the user's code: the message ends with the
    innermost user frame (file:line); `user_traceback` holds the user's frames (None when
    none of the frames is theirs, as for a module that is not there at all)."""
    where = innermost_user_frame(exc, module)
    error = ConfigError(message, key=key)
    error.user_traceback = None
    if where is not None:
        path, line, func = where
        if base_dir and os.path.abspath(path).startswith(os.path.abspath(base_dir) + os.sep):
            path = os.path.relpath(path, base_dir)
        error = ConfigError(f"{message} (at {path}:{line}, in {func})", key=key)
        error.user_traceback = user_traceback(exc, module)
    return error
