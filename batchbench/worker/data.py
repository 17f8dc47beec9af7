"""Loading the config's data, or making synthetic data that fits the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from batchbench.errors import ConfigError


@dataclass
class Dataset:
    """x and y as the model takes them (an array, or a list/dict of arrays per input)."""

    x: Any
    y: Any
    source: str

    @property
    def samples(self) -> int:
        return count_rows(self.x)

    def take(self, start: int, stop: int) -> Dataset:
        return Dataset(slice_rows(self.x, start, stop), slice_rows(self.y, start, stop), self.source)


def count_rows(x: Any) -> int:
    if isinstance(x, dict):
        return count_rows(next(iter(x.values())))
    if isinstance(x, (list, tuple)):
        return count_rows(x[0])
    return int(x.shape[0])


def slice_rows(x: Any, start: int, stop: int) -> Any:
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: slice_rows(v, start, stop) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [slice_rows(v, start, stop) for v in x]
    return x[start:stop]


def take_rows(x: Any, idx) -> Any:
    """Rows `idx` (an index array) of an array, or of each array in a list/dict."""
    if isinstance(x, dict):
        return {k: v[idx] for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [v[idx] for v in x]
    return x[idx]


def leaves(x: Any) -> list:
    if isinstance(x, dict):
        return [a for v in x.values() for a in leaves(v)]
    if isinstance(x, (list, tuple)):
        return [a for v in x for a in leaves(v)]
    return [x]


def load_file_data(config: dict, base_dir: str) -> Dataset | None:
    """npz / csv / callable sources, before any model exists. None for synthetic."""
    spec = config["data"]
    if spec.get("npz"):
        npz = spec["npz"]
        try:
            archive = np.load(npz["path"], allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - a damaged file raises many things
            raise ConfigError(f"cannot read {npz['path']} as .npz: {exc}", key="data.npz.path") from None
        for key in ("x", "y"):
            if npz[key] not in archive.files:
                raise ConfigError(f"{npz['path']} has no array '{npz[key]}' (it has {', '.join(archive.files)})",
                                  key=f"data.npz.{key}")
        x, y = archive[npz["x"]], archive[npz["y"]]
        return _checked(Dataset(x, y, "npz"), "data.npz")
    if spec.get("csv"):
        import pandas as pd

        csv = spec["csv"]
        try:
            frame = pd.read_csv(csv["path"])
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"cannot read {csv['path']} as CSV: {exc}", key="data.csv.path") from None
        if csv["target"] not in frame.columns:
            raise ConfigError(f"{csv['path']} has no column '{csv['target']}' "
                              f"(it has {', '.join(map(str, frame.columns))})", key="data.csv.target")
        features = csv.get("features") or [c for c in frame.columns if c != csv["target"]]
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise ConfigError(f"{csv['path']} has no column(s) {', '.join(missing)}", key="data.csv.features")
        non_numeric = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_numeric:
            raise ConfigError(f"{csv['path']}: feature column(s) {', '.join(non_numeric)} are not numeric; "
                              "encode them or list numeric ones under data.csv.features", key="data.csv")
        x = frame[features].to_numpy(dtype="float32")
        y = encode_target(frame[csv["target"]])
        return _checked(Dataset(x, y, "csv"), "data.csv")
    if spec.get("callable"):
        from batchbench.worker.models import import_callable

        fn = import_callable(spec["callable"]["function"], "data.callable.function", base_dir)
        try:
            out = fn(**(spec["callable"].get("kwargs") or {}))
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"{spec['callable']['function']}() raised {type(exc).__name__}: {exc}",
                              key="data.callable.function") from None
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ConfigError(f"{spec['callable']['function']}() returned {type(out).__name__}, expected (x, y)",
                              key="data.callable.function")
        x, y = out
        return _checked(Dataset(_as_arrays(x), _as_arrays(y), "callable"), "data.callable")
    return None


def _as_arrays(a: Any) -> Any:
    if isinstance(a, dict):
        return {k: np.asarray(v) for k, v in a.items()}
    if isinstance(a, (list, tuple)):
        return [np.asarray(v) for v in a]
    return np.asarray(a)


def _checked(data: Dataset, key: str) -> Dataset:
    rows_x = {int(a.shape[0]) if a.ndim else 0 for a in leaves(data.x)}
    rows_y = {int(a.shape[0]) if a.ndim else 0 for a in leaves(data.y)}
    if len(rows_x | rows_y) != 1:
        raise ConfigError(f"x and y have different numbers of rows ({sorted(rows_x)} vs {sorted(rows_y)})", key=key)
    if 0 in rows_x:
        raise ConfigError("holds no rows", key=key)
    return data


def encode_target(target) -> np.ndarray:
    """A CSV target as a model takes it: text labels become class indices (in sorted
    order); integers are classes only when they look like class indices (0..K-1, few,
    mostly used), otherwise a regression target, like floats."""
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        codes, _ = pd.factorize(target.astype(str), sort=True)
        return codes.astype("int32")
    values = target.to_numpy()
    if np.issubdtype(values.dtype, np.integer) and looks_like_classes(values):
        return values.astype("int32")
    return values.astype("float32")


def looks_like_classes(y: np.ndarray) -> bool:
    if y.size == 0 or y.min() < 0:
        return False
    k = int(y.max()) + 1
    return k <= 1000 and len(np.unique(y)) >= 0.5 * k


def num_classes_of(y: Any) -> int | None:
    y = leaves(y)[0]
    if y.ndim == 2 and y.shape[1] > 1:
        return int(y.shape[1])
    if np.issubdtype(y.dtype, np.integer) and looks_like_classes(y):
        return int(y.max()) + 1
    return None


def _loss_name(model, index: int = 0) -> str:
    loss = getattr(model, "loss", None)
    if isinstance(loss, (list, tuple)):
        loss = loss[index] if index < len(loss) else loss[0]
    elif isinstance(loss, dict):
        loss = list(loss.values())[index] if index < len(loss) else next(iter(loss.values()))
    name = loss if isinstance(loss, str) else (getattr(loss, "name", None) or getattr(loss, "__name__", None)
                                               or type(loss).__name__)
    return str(name).lower()


def synthetic(model, spec: dict, seed: int) -> Dataset:
    """Inputs shaped and typed like the model's, targets of the kind its loss wants."""
    rng = np.random.default_rng(seed)
    n = int(spec.get("samples") or 1024)
    shape_override = spec.get("input_shape")
    xs = []
    inputs = list(getattr(model, "inputs", None) or [])
    if not inputs:
        raise ConfigError("synthetic data needs a model with known inputs; give data.synthetic.input_shape "
                          "or use another data source", key="data.synthetic")
    vocab = _smallest_vocab(model)
    for tensor in inputs:
        dims = list(tensor.shape[1:])
        if None in dims:
            if shape_override and len(inputs) == 1:
                dims = list(shape_override)
            else:
                raise ConfigError(f"the model's input {getattr(tensor, 'name', '')} has open dimensions "
                                  f"{tuple(tensor.shape)}; give data.synthetic.input_shape", key="data.synthetic")
        dtype = str(getattr(tensor, "dtype", "float32"))
        if "int" in dtype:
            xs.append(rng.integers(0, vocab or 2, size=(n, *dims)).astype(dtype))
        else:
            xs.append(rng.standard_normal((n, *dims)).astype("float32"))
    ys = []
    for i, out in enumerate(model.outputs):
        dims = [d or 1 for d in out.shape[1:]]
        loss = _loss_name(model, i)
        classes = dims[-1] if dims else 1
        if "sparse" in loss:
            ys.append(rng.integers(0, max(classes, 2), size=(n, *dims[:-1])).astype("int32"))
        elif "categorical" in loss:
            ys.append(np.eye(classes, dtype="float32")[rng.integers(0, classes, size=(n, *dims[:-1]))])
        elif "binary" in loss or "hinge" in loss:
            ys.append(rng.integers(0, 2, size=(n, *dims)).astype("float32"))
        else:
            ys.append(rng.standard_normal((n, *dims)).astype("float32"))
    x = xs[0] if len(xs) == 1 else xs
    y = ys[0] if len(ys) == 1 else ys
    return Dataset(x, y, "synthetic")


def _smallest_vocab(model) -> int | None:
    import keras

    from batchbench.worker.models import _layers

    sizes = [layer.input_dim for layer in _layers(model) if isinstance(layer, keras.layers.Embedding)]
    return min(sizes) if sizes else None


def check_against_model(model, data: Dataset, key: str) -> None:
    """Data whose shape does not match the model's input is a config error, found before any trial."""
    inputs = list(getattr(model, "inputs", None) or [])
    if not inputs:
        return
    if isinstance(data.x, dict):
        # Keras matches dict inputs by name, so do we.
        names = [getattr(t, "name", "") for t in inputs]
        missing = [n for n in names if n not in data.x]
        if missing:
            raise ConfigError(f"the data has inputs {', '.join(map(str, data.x))} but the model's are "
                              f"{', '.join(names)} (missing {', '.join(missing)})", key=key)
        xs = [data.x[n] for n in names]
    else:
        xs = leaves(data.x)
    if len(xs) != len(inputs):
        raise ConfigError(f"the data has {len(xs)} input array(s) but the model takes {len(inputs)}", key=key)
    for arr, tensor in zip(xs, inputs):
        want = tuple(tensor.shape[1:])
        got = tuple(arr.shape[1:])
        if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got)):
            raise ConfigError(f"x has shape {tuple(arr.shape)} but the model's input is "
                              f"{(None, *want)}", key=key)
