"""Building the user's model from its config source, fresh for every trial."""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from typing import Any

from batchbench.errors import ConfigError

DEFAULT_SHAPES = {"mlp": (32,), "cnn": (32, 32, 3)}


def import_callable(target: str, key: str, base_dir: str) -> Any:
    """'package.module:function' -> the function; the config's folder is importable."""
    if base_dir not in sys.path:
        sys.path.insert(0, base_dir)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix
        raise ConfigError(f"cannot import '{module_name}': {type(exc).__name__}: {exc}", key=key) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"module '{module_name}' has no attribute '{attr}'", key=key)
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"'{target}' is not callable", key=key)
    return obj


def builtin_model(name: str, input_shape: tuple, num_classes: int, hidden: int = 64, depth: int = 2,
                  filters: int = 16, **_: Any):
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
        input_shape = tuple(shape or data_shape or DEFAULT_SHAPES[name])
        classes = kwargs.pop("num_classes", None) or num_classes or \
            (config["data"].get("synthetic") or {}).get("num_classes") or 10
        return builtin_model(name, input_shape, classes, **kwargs)
    if spec.get("application"):
        return application_model(spec["application"], shape or data_shape, kwargs)
    if spec.get("path"):
        return load_model_file(spec["path"])
    factory = import_callable(spec["factory"], "model.factory", config["_base_dir"])
    try:
        model = factory(**kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        if _is_oom(exc):
            raise
        raise ConfigError(f"{spec['factory']}() raised {type(exc).__name__}: {exc}", key="model.factory") from None
    if not isinstance(model, keras.Model):
        raise ConfigError(f"{spec['factory']}() returned {type(model).__name__}, expected a keras.Model",
                          key="model.factory")
    return model


def _is_oom(exc: BaseException) -> bool:
    from batchbench.worker.failures import classify

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
        opt = keras.optimizers.get(spec)
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


def _layers(model):
    for layer in getattr(model, "layers", []) or []:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)
