"""Building the user's model from its config source, fresh for every trial."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from typing import Any

from batchbench.errors import ConfigError
from batchbench.worker.failures import classify, one_line, user_code_error

DEFAULT_SHAPES = {"mlp": (32,), "cnn": (32, 32, 3)}


def import_callable(target: str, key: str, base_dir: str) -> Any:
    """'package.module:function' -> the function; the config's folder is importable."""
    if base_dir not in sys.path:
        sys.path.append(base_dir)  # last: a module beside the config shadows nothing
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix
        raise user_code_error(f"cannot import '{module_name}': {type(exc).__name__}: {exc}", key, exc,
                              module_name, base_dir) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"module '{module_name}' has no attribute '{attr}'", key=key)
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"'{target}' is not callable", key=key)
    return obj


def check_kwargs(fn: Any, target: str, kwargs: dict, key: str) -> None:
    """The config's kwargs must bind to the function's parameters: a typo is named, with a
    guess, instead of a TypeError from inside the call."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and C functions may have none
        return
    params = signature.parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for name in kwargs:
            if name not in named:
                guess = difflib.get_close_matches(name, named, n=1)
                hint = f"; did you mean '{guess[0]}'?" if guess else \
                    (f"; it takes {', '.join(named)}" if named else "; it takes no arguments")
                raise ConfigError(f"{target}() has no parameter '{name}'{hint}", key=f"{key}.{name}")
    missing = [n for n, p in params.items() if p.default is p.empty and n not in kwargs
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise ConfigError(f"{target}() needs {', '.join(missing)}; give {'them' if len(missing) > 1 else 'it'} "
                          f"under {key}", key=key)


def call_user(fn: Any, target: str, kwargs: dict, key: str, base_dir: str) -> Any:
    """fn(**kwargs), where an exception in the user's code becomes a ConfigError that
    names the user's line and carries the user's frames; out-of-memory stays what it is."""
    check_kwargs(fn, target, kwargs, key.rsplit(".", 1)[0] + ".kwargs")
    try:
        return fn(**kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the user's code raises
        if _is_oom(exc):
            raise
        raise user_code_error(f"{target}() raised {one_line(exc)}", key, exc,
                              target.partition(":")[0], base_dir) from None


BUILTIN_KWARGS = {"mlp": ("hidden", "depth", "num_classes"), "cnn": ("hidden", "depth", "filters", "num_classes")}


def check_builtin_kwargs(name: str, kwargs: dict) -> None:
    allowed = BUILTIN_KWARGS[name]
    for key, value in kwargs.items():
        if key not in allowed:
            guess = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else f"the builtin {name} takes {', '.join(allowed)}"
            raise ConfigError(f"unknown argument of the builtin {name}; {hint}", key=f"model.kwargs.{key}")
        smallest = 0 if key == "depth" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
            raise ConfigError(f"got {value!r}, expected an integer >= {smallest}", key=f"model.kwargs.{key}")


def builtin_model(name: str, input_shape: tuple, num_classes: int, hidden: int = 64, depth: int = 2,
                  filters: int = 16):
    import keras

    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs
    if name == "mlp":
        if len(input_shape) > 1:
            x = keras.layers.Flatten()(x)
        for _ in range(depth):
            x = keras.layers.Dense(hidden, activation="relu")(x)
    else:
        if len(input_shape) == 2:
            x = keras.layers.Reshape((*input_shape, 1))(x)
        elif len(input_shape) != 3:
            raise ConfigError(f"the builtin cnn needs image inputs (H, W, C), got shape {tuple(input_shape)}",
                              key="model.builtin")
        for i in range(depth):
            x = keras.layers.Conv2D(filters * 2**i, 3, padding="same", activation="relu")(x)
            x = keras.layers.MaxPooling2D()(x) if min(x.shape[1:3]) >= 2 else x
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dense(hidden, activation="relu")(x)
    # One output means a regression target (float labels): a linear head and mse.
    outputs = keras.layers.Dense(num_classes, activation="softmax" if num_classes > 1 else None)(x)
    return keras.Model(inputs, outputs, name=f"batchbench_{name}")


def application_model(name: str, input_shape: tuple | None, kwargs: dict):
    import keras

    available = sorted(n for n in dir(keras.applications) if n[0].isupper())
    if name not in available:
        guess = difflib.get_close_matches(name, available, n=3)
        hint = f"; did you mean {', '.join(guess)}?" if guess else ""
        raise ConfigError(f"'{name}' is not a keras.applications model{hint}", key="model.application")
    kwargs = {**kwargs, "weights": None}  # never download
    if input_shape is not None:
        kwargs.setdefault("input_shape", tuple(input_shape))
    try:
        return getattr(keras.applications, name)(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed: {exc}",
                          key="model.application") from None


def load_model_file(path: str):
    import keras

    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise ConfigError(f"{path} is a folder but not a SavedModel (no saved_model.pb)", key="model.path")
        try:
            layer = keras.layers.TFSMLayer(path, call_endpoint="serving_default")
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"cannot load SavedModel {path}: {exc}", key="model.path") from None
        return layer
    if not path.endswith((".keras", ".h5", ".hdf5")):
        raise ConfigError(f"{path}: expected a .keras or .h5 file or a SavedModel folder", key="model.path")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=True)
    except Exception as exc:  # noqa: BLE001 - corrupted or foreign files raise anything
        raise ConfigError(f"{path} is not a loadable Keras model: {type(exc).__name__}: {exc}",
                          key="model.path") from None


def build_model(config: dict, data_shape: tuple | None = None, num_classes: int | None = None):
    """A fresh model from the config (uncompiled unless the source compiled it)."""
    import keras

    spec = config["model"]
    kwargs = dict(spec.get("kwargs") or {})
    shape = spec.get("input_shape") or (config["data"].get("synthetic") or {}).get("input_shape")
    if spec.get("builtin"):
        name = spec["builtin"]
        check_builtin_kwargs(name, kwargs)
        input_shape = tuple(shape or data_shape or DEFAULT_SHAPES[name])
        classes = kwargs.pop("num_classes", None) or num_classes or \
            (config["data"].get("synthetic") or {}).get("num_classes") or 10
        return builtin_model(name, input_shape, classes, **kwargs)
    if spec.get("application"):
        return application_model(spec["application"], shape or data_shape, kwargs)
    if spec.get("path"):
        return load_model_file(spec["path"])
    factory = import_callable(spec["factory"], "model.factory", config["_base_dir"])
    model = call_user(factory, spec["factory"], kwargs, "model.factory", config["_base_dir"])
    if not isinstance(model, keras.Model):
        raise ConfigError(f"{spec['factory']}() returned {type(model).__name__}, expected a keras.Model",
                          key="model.factory")
    return model


def _is_oom(exc: BaseException) -> bool:
    return classify(exc) == "oom"


def is_compiled(model) -> bool:
    return bool(getattr(model, "compiled", False)) and getattr(model, "optimizer", None) is not None


def default_loss(model) -> str:
    shape = model.outputs[0].shape if getattr(model, "outputs", None) else None
    if shape is not None and shape[-1] == 1:
        return "mse"
    return "sparse_categorical_crossentropy"


def make_optimizer(spec: Any, learning_rate: float | None = None):
    import keras

    if isinstance(spec, str):
        try:
            opt = keras.optimizers.get(spec)
        except ValueError:
            raise ConfigError(f"'{spec}' is not a Keras optimizer{_guess(spec, _public_names(keras.optimizers))}",
                              key="model.compile.optimizer") from None
        if learning_rate is not None:
            opt.learning_rate = learning_rate
        return opt
    cfg = {k: v for k, v in spec.items() if k != "name" and v is not None}
    if learning_rate is not None:
        cfg["learning_rate"] = learning_rate
    try:
        return keras.optimizers.get({"class_name": spec["name"], "config": cfg})
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot make optimizer {spec['name']!r}: {exc}", key="model.compile.optimizer") from None


# Names Keras' compile resolves itself, from the target's and output's shapes.
LOSS_ALIASES = ("crossentropy", "ce")
METRIC_ALIASES = ("accuracy", "acc")


def _public_names(module) -> list[str]:
    skip = {"get", "serialize", "deserialize", "schedules", "legacy"}
    return [n for n in dir(module) if not n.startswith("_") and n not in skip]


def _guess(name: str, names: list[str]) -> str:
    same_style = [n for n in names if n[:1].isupper() == name[:1].isupper()]  # adam -> adam, not Adam
    lowered = {n.lower(): n for n in same_style or names}
    guess = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(lowered[g] for g in guess)}?" if guess else ""


def check_compile_names(config: dict) -> None:
    """The config's loss and metrics name things Keras has (Keras itself would only say so
    in the first training step, inside every trial)."""
    import keras

    spec = config["model"].get("compile") or {}
    loss = spec.get("loss")
    if loss and loss.lower() not in LOSS_ALIASES:
        try:
            keras.losses.get(loss)
        except (ValueError, TypeError):
            raise ConfigError(f"'{loss}' is not a Keras loss{_guess(loss, _public_names(keras.losses))}",
                              key="model.compile.loss") from None
    for i, metric in enumerate(spec.get("metrics") or []):
        if metric.lower() in METRIC_ALIASES:
            continue
        try:
            keras.metrics.get(metric)
        except (ValueError, TypeError):
            names = [*_public_names(keras.metrics), *METRIC_ALIASES]
            raise ConfigError(f"'{metric}' is not a Keras metric{_guess(metric, names)}",
                              key=f"model.compile.metrics[{i}]") from None


def base_learning_rate(config: dict) -> float | None:
    opt = ((config["model"].get("compile") or {}).get("optimizer")) or "adam"
    if isinstance(opt, dict) and opt.get("learning_rate"):
        return float(opt["learning_rate"])
    return None


def compile_model(model, config: dict, jit_compile: Any = "auto", learning_rate: float | None = None) -> None:
    """Compile for fit unless the source already did; the jit axis always applies."""
    spec = config["model"].get("compile") or {}
    if is_compiled(model):  # DESIGN: `compile` is for models that come uncompiled
        if learning_rate is not None:
            model.optimizer.learning_rate = learning_rate
        if jit_compile != "auto":
            model.jit_compile = bool(jit_compile)
        return
    loss = spec.get("loss") or default_loss(model)
    try:
        model.compile(optimizer=make_optimizer(spec.get("optimizer") or "adam", learning_rate),
                      loss=loss, metrics=list(spec.get("metrics") or []), jit_compile=jit_compile)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"compile failed: {exc}", key="model.compile") from None


def count_params(model) -> int:
    try:
        return int(model.count_params())
    except ValueError:
        return 0


def has_batch_norm(model) -> bool:
    import keras

    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in _layers(model))


def has_convolution(model) -> bool:
    """Whether any layer convolves (Conv1D/2D/3D, separable, depthwise, transposed)."""
    return any("Conv" in type(layer).__name__ for layer in _layers(model))


def loss_name(model) -> str | None:
    """The loss a compiled model trains with, as a name ('sparse_categorical_crossentropy')."""
    loss = getattr(model, "loss", None)
    if loss is None:
        return None
    if isinstance(loss, str):
        return loss
    if isinstance(loss, dict):
        return ", ".join(f"{k}: {loss_name_of(v)}" for k, v in loss.items())
    if isinstance(loss, (list, tuple)):
        return ", ".join(loss_name_of(v) for v in loss)
    return loss_name_of(loss)


def loss_name_of(loss) -> str:
    if isinstance(loss, str):
        return loss
    return str(getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__)


def _layers(model):
    for layer in getattr(model, "layers", []) or []:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def check_metrics(model, config: dict, x_head: Any, y_head: Any, y_pred: Any, from_config: bool) -> None:
    """The compiled metrics take the targets (Keras would fail only inside every trial).
    `from_config`: the metrics are the config's (the model came uncompiled)."""
    import keras

    try:
        model.compute_metrics(x_head, y_head, y_pred, sample_weight=None)
        return
    except Exception as exc:  # noqa: BLE001 - a mismatch surfaces as any of the backend's errors
        if _is_oom(exc):
            raise
        failure = exc
    names = list((config["model"].get("compile") or {}).get("metrics") or []) if from_config else []
    key = "model.compile.metrics" if from_config else f"model.{_source(config)}"
    if names and not isinstance(y_pred, (list, tuple, dict)):
        for i, name in enumerate(names):  # which one: try each alone
            if name.lower() in METRIC_ALIASES:
                continue
            metric = keras.metrics.get(name)
            if not isinstance(metric, keras.metrics.Metric):
                metric = keras.metrics.MeanMetricWrapper(metric)
            try:
                metric.update_state(y_head, y_pred)
            except Exception as exc:  # noqa: BLE001
                failure, key = exc, f"model.compile.metrics[{i}]"
                break
    raise ConfigError(f"the metrics cannot take the targets: {one_line(failure)}", key=key) from None


def _source(config: dict) -> str:
    return next(k for k in ("builtin", "application", "path", "factory") if config["model"].get(k))
