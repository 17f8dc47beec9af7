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


def load_file_data(config: dict, base_dir: str, sequence_length: int | None = None):
    """npz / csv / callable / image_dir sources, before any model exists: a Dataset of arrays,
    a Pipeline (worker/pipelines.py) for tf.data, None for synthetic. `sequence_length`: the
    sweep axis's value, passed to a data.callable that takes it."""
    spec = config["data"]
    if spec.get("image_dir"):
        from batchbench.worker.pipelines import load_image_dir

        return load_image_dir(spec["image_dir"], float(spec.get("validation_split") or 0.0),
                              int(config["sweep"]["seed"]))
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
        arrays = []
        for key in ("x", "y"):
            try:
                arrays.append(archive[npz[key]])
            except ValueError as exc:  # object arrays need pickle, which a config never gets
                raise ConfigError(f"{npz['path']}: array '{npz[key]}' cannot be read: {exc}; save it with a "
                                  "numeric or string dtype", key=f"data.npz.{key}") from None
        x, y = arrays
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
        if "fit" in config["sweep"]["modes"]:  # NaN trains to a NaN loss; predict times it all the same
            for key, columns in (("data.csv", features), ("data.csv.target", [csv["target"]])):
                empty = [c for c in columns if frame[c].isna().any()]
                if empty:
                    row = int(np.flatnonzero(frame[empty].isna().any(axis=1).to_numpy())[0]) + 2
                    raise ConfigError(f"{csv['path']}: column(s) {', '.join(map(str, empty))} have empty cells "
                                      f"(the first on line {row}); fill or drop them", key=key)
        x = frame[features].to_numpy(dtype="float32")
        y = encode_target(frame[csv["target"]])
        return _checked(Dataset(x, y, "csv"), "data.csv")
    if spec.get("callable"):
        from batchbench.worker.models import call_user, import_callable

        target = spec["callable"]["function"]
        key = "data.callable.function"
        fn = import_callable(target, key, base_dir)
        kwargs = dict(spec["callable"].get("kwargs") or {})
        if sequence_length is not None:
            kwargs["sequence_length"] = _length_parameter(fn, target, sequence_length)
        out = call_user(fn, target, kwargs, key, base_dir)
        from batchbench.worker.pipelines import from_dataset, is_tf_dataset

        if is_tf_dataset(out):
            return from_dataset(out, f"the tf.data.Dataset {target}() returned", key)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            got = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
            raise ConfigError(f"{target}() returned {got}, expected a pair (x, y) of arrays or a tf.data.Dataset",
                              key=key)
        x = _as_arrays(out[0], f"{target}() returned x", key)
        y = _as_arrays(out[1], f"{target}() returned y", key)
        return _checked(Dataset(x, y, "callable"), key)
    return None


def _length_parameter(fn: Any, target: str, length: int) -> int:
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return length
    if "sequence_length" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return length
    raise ConfigError(f"{target}() takes no sequence_length argument, so the data cannot follow the axis: "
                      "add one, or drop sweep.sequence_length", key="sweep.sequence_length")


def _as_arrays(a: Any, what: str, key: str) -> Any:
    """An array, or a list/dict of arrays, with one row per sample."""
    if isinstance(a, dict):
        return {k: _as_arrays(v, f"{what}[{k!r}]", key) for k, v in a.items()}
    if isinstance(a, (list, tuple)) and a and all(hasattr(v, "shape") for v in a):
        # A list of arrays is one array per model input/output, as Keras takes it; nested
        # Python lists of numbers are one array.
        return [_as_arrays(v, f"{what}[{i}]", key) for i, v in enumerate(a)]
    if a is None:
        raise ConfigError(f"{what} = None, expected an array with one row per sample", key=key)
    try:
        array = np.asarray(a)
    except (ValueError, TypeError) as exc:  # ragged nested lists, odd objects
        raise ConfigError(f"{what} cannot become an array: {exc}", key=key) from None
    if array.ndim == 0:
        raise ConfigError(f"{what} is a single {type(a).__name__}, expected an array with one row per sample",
                          key=key)
    return array


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


def synthetic(model, spec: dict, seed: int, sequence_length: int | None = None) -> Dataset:
    """Inputs shaped and typed like the model's, targets of the kind its loss wants;
    `sequence_length` fills the inputs' and outputs' None time dimension."""
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
        if sequence_length is not None and dims and dims[0] is None:
            dims[0] = sequence_length
        if None in dims:
            if shape_override and len(inputs) == 1:
                dims = list(shape_override)
            else:
                raise ConfigError(f"the model's input {getattr(tensor, 'name', '')} has open dimensions "
                                  f"{tuple(tensor.shape)}; give data.synthetic.input_shape", key="data.synthetic")
        dtype = str(getattr(tensor, "dtype", "float32"))
        # Token ids: integer inputs, or (on the sequence-length axis) float ones into an Embedding.
        if "int" in dtype or (vocab and sequence_length is not None):
            xs.append(rng.integers(0, vocab or 2, size=(n, *dims)).astype(dtype))
        else:
            xs.append(rng.standard_normal((n, *dims)).astype("float32"))
    ys = []
    for i, out in enumerate(model.outputs):
        dims = list(out.shape[1:])
        if sequence_length is not None and dims and dims[0] is None:
            dims[0] = sequence_length  # a per-token output
        dims = [d or 1 for d in dims]
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


def arrays_of(data: Any) -> Dataset:
    """The arrays the checks look at: the data itself, or a pipeline's first elements."""
    return getattr(data, "head", data)


def check_against_model(model, data: Dataset, key: str) -> None:
    """Data whose shape does not match the model's input is a config error, found before any trial."""
    data = arrays_of(data)
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


# ---------------------------------------------------------------- targets against the loss
def data_key(config: dict, part: str) -> str:
    """The config key a problem with the data's x or y points at."""
    source = next(k for k in ("synthetic", "npz", "csv", "callable", "image_dir") if config["data"].get(k) is not None)
    keys = {"npz": {"x": "data.npz.x", "y": "data.npz.y"}, "csv": {"x": "data.csv", "y": "data.csv.target"},
            "callable": {"x": "data.callable.function", "y": "data.callable.function"},
            "image_dir": {"x": "data.image_dir", "y": "data.image_dir.labels"}}
    return keys.get(source, {}).get(part, f"data.{source}")


def _shape(dims) -> tuple:
    return (None, *dims)


def _structure(y_pred, names: list[str]) -> tuple[list, list[str]]:
    if isinstance(y_pred, dict):
        return list(y_pred.values()), [str(k) for k in y_pred]
    if isinstance(y_pred, (list, tuple)):
        return list(y_pred), list(names) if len(names) == len(y_pred) else [""] * len(y_pred)
    return [y_pred], list(names[:1]) or [""]


def _pair_targets(model, y: Any, y_pred) -> list[tuple[str, np.ndarray, Any, Any]] | None:
    """(output name, target array, prediction, loss) per model output, or None where the
    structures do not line up plainly (Keras may still take them: the loss check decides)."""
    preds, names = _structure(y_pred, list(getattr(model, "output_names", None) or []))
    if isinstance(y, dict):
        if not all(n in y for n in names):
            return None
        ys = [y[n] for n in names]
    elif isinstance(y, (list, tuple)):
        if len(y) != len(preds):
            return None
        ys = list(y)
    else:
        if len(preds) != 1:
            return None
        ys = [y]
    loss = getattr(model, "loss", None)
    if isinstance(loss, dict):
        losses = [loss.get(n) for n in names]
    elif isinstance(loss, (list, tuple)):
        losses = list(loss) if len(loss) == len(preds) else [None] * len(preds)
    else:
        losses = [loss] * len(preds)
    return [(n, np.asarray(t), p, lo) for n, t, p, lo in zip(names, ys, preds, losses)]


def _loss_kind(loss: Any, y: np.ndarray, pred_dims: tuple) -> tuple[str | None, str]:
    """('sparse' | 'categorical' | None, the loss's name)."""
    if loss is None:
        return None, ""
    name = loss if isinstance(loss, str) else (getattr(loss, "name", None) or getattr(loss, "__name__", None)
                                               or type(loss).__name__)
    low = str(name).lower()
    if low in ("crossentropy", "ce"):  # Keras picks the kind from the shapes, as here
        if not pred_dims or pred_dims[-1] == 1:
            return None, str(name)
        sparse = y.ndim - 1 < len(pred_dims) or (y.ndim > 1 and y.shape[-1] == 1)
        return ("sparse" if sparse else "categorical"), str(name)
    low = low.replace("_", "")
    if "sparsecategorical" in low:
        return "sparse", str(name)
    if "categoricalcrossentropy" in low or "categoricalfocal" in low:  # these need one-hot targets
        return "categorical", str(name)
    return None, str(name)


def check_targets(model, data: Dataset, key: str, x_head: Any, y_pred: Any, eager: bool = True) -> None:
    """Targets the model's loss can take, before any trial: a shape it cannot compute a
    loss from, text labels, class labels outside the output's classes. `y_pred` is the
    model's output for `x_head`, the first rows of the data; `eager`: also compute the loss
    on them (the general check, for any loss and output structure)."""
    import keras

    if type(model).train_step is not keras.Model.train_step:
        return  # a training step of the user's own may use the targets in its own way
    pairs = _pair_targets(model, data.y, y_pred) or []
    for name, y, pred, loss in pairs:
        what = f"y[{name!r}]" if len(pairs) > 1 and name else "y"
        output = f" {name!r}" if len(pairs) > 1 and name else ""
        dims = tuple(int(d) for d in pred.shape[1:])
        kind, loss_name = _loss_kind(loss, y, dims)
        if y.dtype.kind in "USO":
            raise ConfigError(f"{what} holds text or Python objects (dtype {y.dtype}), expected numbers: "
                              "class indices 0..K-1 or regression values", key=key)
        if kind == "sparse" and dims:
            _check_class_labels(what, y, dims, output, loss_name, key)
        elif kind == "categorical" and tuple(y.shape[1:]) != dims:
            hint = ""
            if tuple(y.shape[1:]) in (dims[:-1], (*dims[:-1], 1)):
                hint = "; for integer class labels use sparse_categorical_crossentropy"
            raise ConfigError(f"{what} has shape {tuple(y.shape)} but the model's output{output} is "
                              f"{_shape(dims)}, and its loss {loss_name} takes one-hot targets of shape "
                              f"{_shape(dims)}{hint}", key=key)
    if not eager:
        return
    y_head = slice_rows(data.y, 0, count_rows(x_head))
    try:
        model.compute_loss(x=x_head, y=y_head, y_pred=y_pred)
    except Exception as exc:  # noqa: BLE001 - a mismatch surfaces as any of the backend's errors
        from batchbench.worker.failures import classify, one_line

        if classify(exc) == "oom":
            raise
        got = ", ".join(str(tuple(a.shape)) for a in leaves(data.y))
        want = ", ".join(str(_shape(tuple(p.shape[1:]))) for p in _structure(y_pred, [])[0])
        raise ConfigError(f"y has shape {got} but the model's output is {want}, and its loss {_loss_label(model)} "
                          f"cannot take them: {one_line(exc)}", key=key) from None


def _loss_label(model) -> str:
    loss = getattr(model, "loss", None)
    if isinstance(loss, dict):
        return ", ".join(f"{k}: {_loss_kind(v, np.zeros(1), ())[1]}" for k, v in loss.items())
    if isinstance(loss, (list, tuple)):
        return ", ".join(_loss_kind(v, np.zeros(1), ())[1] for v in loss)
    return _loss_kind(loss, np.zeros(1), ())[1] or "none"


def _check_class_labels(what: str, y: np.ndarray, dims: tuple, output: str, loss_name: str, key: str) -> None:
    classes = dims[-1]
    want = dims[:-1]
    if tuple(y.shape[1:]) not in (want, (*want, 1)):
        hint = "; these look like one-hot targets: use categorical_crossentropy" \
            if tuple(y.shape[1:]) == dims else ""
        raise ConfigError(f"{what} has shape {tuple(y.shape)} but the model's output{output} is {_shape(dims)}, "
                          f"and its loss {loss_name} takes integer class labels of shape {_shape(want)} "
                          f"(or {_shape((*want, 1))}){hint}", key=key)
    if y.size == 0:
        return
    labels = f"class indices 0..{classes - 1}" if classes > 1 else "class index 0 only"
    has = f"the model's output{output} has {classes} class{'es' if classes != 1 else ''}"
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise ConfigError(f"{what} holds values that are not whole numbers, but {loss_name} takes {labels} "
                          f"({has})", key=key)
    low, high = int(np.min(y)), int(np.max(y))
    if low < 0:
        raise ConfigError(f"{what} holds negative labels (the smallest is {low}), but {loss_name} takes {labels} "
                          f"({has})", key=key)
    if high >= classes:
        raise ConfigError(f"{what} holds labels up to {high}, but {has} (labels 0..{classes - 1}); give the "
                          f"model {high + 1} outputs or relabel the data", key=key)
