"""tf.data input pipelines in the worker: a `data.callable` that returns a `tf.data.Dataset`,
and `data.image_dir` (keras.utils.image_dataset_from_directory). Both are held unbatched and
batched per trial (`drop_remainder=True`, prefetch AUTOTUNE unless the pipeline prefetches
already), so the pipeline really runs while a trial is timed, once per epoch, as in the user's
own `fit`. TensorFlow is imported here only, and only when one of them is used: the array
sources never need it (JAX and torch run without TensorFlow)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchbench.errors import ConfigError
from batchbench.worker.data import Dataset, count_rows, leaves

HEAD_ROWS = 64  # elements read for the checks before any trial (shapes, targets)
CACHE_BYTES = 256 * 2**20  # the input-bound phase's in-memory copy of batches, at most
INFINITE = 2**62  # samples of a dataset that repeats forever: no batch size is too large for it
INFINITE_PASS_BATCHES = 64  # what predict reads of a dataset that repeats forever, per call


def is_tf_dataset(obj: Any) -> bool:
    """Whether `obj` is a tf.data.Dataset, without importing TensorFlow (the user's code did)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(obj, tf.data.Dataset)


@dataclass
class Pipeline:
    """An unbatched tf.data.Dataset of `(x, y)` elements (or `x` alone, for predict)."""

    dataset: Any
    source: str
    samples: int  # elements in one pass (INFINITE when it repeats forever)
    has_y: bool
    prefetches: bool
    head: Dataset  # its first elements as arrays: what the checks before any trial look at
    num_classes: int | None = None
    notes: list[str] = field(default_factory=list)
    validation: Pipeline | None = None  # a split made by the source itself (image_dir)

    @property
    def infinite(self) -> bool:
        return self.samples >= INFINITE

    def batched(self, batch_size: int, repeat: bool = False, batches: int | None = None):
        """The pipeline as a trial runs it: whole batches; `batches`: only the first ones;
        `repeat`: again and again (for fits cut into steps_per_epoch chunks)."""
        import tensorflow as tf

        ds = self.dataset.batch(batch_size, drop_remainder=True)
        if batches is not None:
            ds = ds.take(batches)
        if repeat and not self.infinite:
            ds = ds.repeat()
        return ds if self.prefetches else ds.prefetch(tf.data.AUTOTUNE)

    def steps(self, batch_size: int) -> int:
        """Whole batches in one pass; an infinite dataset's "pass" for predict is its first
        INFINITE_PASS_BATCHES batches (as `model.predict(ds, steps=...)` would read)."""
        return INFINITE_PASS_BATCHES if self.infinite else self.samples // batch_size

    def split(self, fraction: float) -> tuple[Pipeline, Pipeline | None]:
        """(training, validation) pipelines: the source's own split, or the last `fraction`
        of the elements (a finite dataset only)."""
        if self.validation is not None or not fraction:
            return self, self.validation
        if self.infinite:
            raise ConfigError("validation_split needs a finite dataset (this one repeats forever)",
                              key="data.validation_split")
        n_val = int(self.samples * fraction)
        train = Pipeline(self.dataset.take(self.samples - n_val), self.source, self.samples - n_val, self.has_y,
                         self.prefetches, self.head, self.num_classes, self.notes)
        val = Pipeline(self.dataset.skip(self.samples - n_val), self.source, n_val, self.has_y, self.prefetches,
                       self.head, self.num_classes)
        return train, val

    def cached(self, batch_size: int, batches: int) -> CachedBatches:
        return CachedBatches(self, batch_size, batches)

    def in_memory(self, batch_size: int, batches: int) -> Dataset:
        """The first `batches` whole batches, read through the pipeline into arrays: what the
        model computes on when the input costs nothing."""
        parts = list(self.dataset.batch(batch_size, drop_remainder=True).take(max(1, batches)).as_numpy_iterator())
        if not parts:
            raise ConfigError(f"the pipeline gave no whole batch of {batch_size}", key=f"data.{self.source}")
        if self.has_y:
            return Dataset(_concat([p[0] for p in parts]), _concat([p[1] for p in parts]), self.source)
        return Dataset(_concat(parts), None, self.source)

    def batch_bytes(self, batch_size: int) -> int:
        rows = max(1, count_rows(self.head.x))
        per_row = sum(a.nbytes for a in leaves(self.head.x) + (leaves(self.head.y) if self.has_y else [])) / rows
        return int(per_row * batch_size)

    def cache_batches(self, batch_size: int, wanted: int) -> int:
        """How many batches the in-memory copy holds: `wanted`, within CACHE_BYTES and one pass."""
        fit = max(1, CACHE_BYTES // max(1, self.batch_bytes(batch_size)))
        return max(1, min(wanted, fit, self.steps(batch_size)))


class CachedBatches:
    """A pipeline's first `batches` whole batches in tf.data's memory cache, filled by the first
    pass over them (a warm-up): the input-bound diagnosis's input that costs (almost) nothing.
    Runs where a Pipeline runs (`batched`, `steps`)."""

    infinite = False

    def __init__(self, pipeline: Pipeline, batch_size: int, batches: int):
        self.batch_size, self.batches = batch_size, batches
        self.dataset = pipeline.dataset.batch(batch_size, drop_remainder=True).take(batches).cache()

    def batched(self, batch_size: int, repeat: bool = False, batches: int | None = None):
        import tensorflow as tf

        return (self.dataset.repeat() if repeat else self.dataset).prefetch(tf.data.AUTOTUNE)

    def steps(self, batch_size: int) -> int:
        return self.batches


def _concat(parts: list) -> Any:
    first = parts[0]
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return [_concat([p[i] for p in parts]) for i in range(len(first))]
    return np.concatenate(parts)


# ---------------------------------------------------------------- making one
def _chain(ds) -> list[str]:
    """The dataset's transformations, outermost first (tf.data keeps each one's input)."""
    names = []
    while ds is not None and len(names) < 1000:
        names.append(type(ds).__name__)
        ds = getattr(ds, "_input_dataset", None)
    return names


def _is_batched(names: list[str]) -> bool:
    for name in names:  # the outermost of batch / unbatch decides
        if "Unbatch" in name:
            return False
        if "Batch" in name:
            return True
    return False


def _cardinality(ds, key: str) -> int:
    import tensorflow as tf

    n = int(ds.cardinality())
    if n == tf.data.INFINITE_CARDINALITY:
        return INFINITE
    if n == tf.data.UNKNOWN_CARDINALITY:  # a filter, say: count one pass
        n = int(ds.reduce(np.int64(0), lambda count, _: count + 1))
    if n == 0:
        raise ConfigError("the dataset holds no elements", key=key)
    return n


def from_dataset(ds, what: str, key: str, num_classes: int | None = None) -> Pipeline:
    """A user's tf.data.Dataset as a Pipeline: rebatched per batch size when it comes batched."""
    notes = []
    names = _chain(ds)
    if _is_batched(names):
        ds = ds.unbatch()
        notes.append(f"{what} is batched: batchbench unbatches it and batches it again at each batch size "
                     "(return it unbatched to skip this step)")
    spec = ds.element_spec
    has_y = isinstance(spec, tuple) and len(spec) in (2, 3)
    if isinstance(spec, tuple) and len(spec) == 3:
        ds = ds.map(lambda x, y, w: (x, y))  # sample weights change no timing
        notes.append(f"{what} gives (x, y, sample_weight) elements: the weights are left out")
    try:
        head = list(ds.take(HEAD_ROWS).batch(HEAD_ROWS).as_numpy_iterator())
    except Exception as exc:  # noqa: BLE001 - the user's pipeline raises whatever it raises
        from batchbench.worker.failures import classify, one_line

        if classify(exc) == "oom":
            raise
        raise ConfigError(f"{what} cannot be read: {one_line(exc)}", key=key) from None
    if not head:
        raise ConfigError(f"{what} holds no elements", key=key)
    first = head[0]
    head_data = Dataset(first[0], first[1], "tf.data") if has_y else Dataset(first, None, "tf.data")
    ds, known = _with_known_shapes(ds, first)
    if not known:
        notes.append(f"{what} gives elements of unknown shape (a tf.numpy_function or tf.py_function): batchbench "
                     "sets the shapes its first elements have, as tf.ensure_shape would (Keras cannot fit without)")
    samples = _cardinality(ds, key)
    return Pipeline(ds, key.split(".")[1], samples, has_y, any("Prefetch" in n for n in names), head_data,
                    num_classes, notes)


def _with_known_shapes(ds, head) -> tuple[Any, bool]:
    """`ds`, and True, when every element's shape is known; else `ds` mapped through
    tf.ensure_shape to the shapes of the first elements (`head`, batched), and False."""
    import tensorflow as tf

    specs = tf.nest.flatten(ds.element_spec)
    if all(spec.shape.rank is not None and None not in spec.shape.as_list() for spec in specs
           if hasattr(spec, "shape")):
        return ds, True
    shapes = [np.asarray(leaf).shape[1:] for leaf in tf.nest.flatten(head)]

    def ensure(*element):
        leaves_ = tf.nest.flatten(element)
        fixed = [tf.ensure_shape(t, shape) if spec.shape.rank is None or None in spec.shape.as_list() else t
                 for t, shape, spec in zip(leaves_, shapes, specs)]
        out = tf.nest.pack_sequence_as(element, fixed)
        return out if len(out) > 1 else out[0]

    return ds.map(ensure), False


def load_image_dir(spec: dict, validation_split: float, seed: int) -> Pipeline:
    """data.image_dir through keras.utils.image_dataset_from_directory, unbatched."""
    import keras

    key = "data.image_dir.path"
    labels = "inferred" if spec.get("labels", "inferred") == "inferred" else None
    kwargs = dict(labels=labels, label_mode="int" if labels else None, color_mode=spec.get("color_mode", "rgb"),
                  image_size=tuple(spec.get("image_size") or (256, 256)), batch_size=None, shuffle=True, seed=seed,
                  verbose=False)
    try:
        if validation_split:
            train, val = keras.utils.image_dataset_from_directory(spec["path"], validation_split=validation_split,
                                                                  subset="both", **kwargs)
        else:
            train, val = keras.utils.image_dataset_from_directory(spec["path"], **kwargs), None
    except ValueError as exc:  # no images, too few for the split, ...
        raise ConfigError(f"{spec['path']}: {exc}", key=key) from None
    classes = len(getattr(train, "class_names", None) or []) or None
    pipeline = from_dataset(train, f"the images in {spec['path']}", key, classes)
    pipeline.source = "image_dir"
    if val is not None:
        if int(val.cardinality()) == 0:
            raise ConfigError(f"validation_split {validation_split:g} leaves no validation images", key="data.validation_split")
        pipeline.validation = from_dataset(val, f"the validation images in {spec['path']}", key, classes)
    return pipeline


def check_pipeline(model, pipeline: Pipeline, modes: list[str], key: str) -> None:
    """What a trial would meet, before any: fit needs (x, y) elements; the elements have the
    model's input rank."""
    if "fit" in modes and not pipeline.has_y:
        raise ConfigError("the dataset gives x alone, but fit needs (x, y) elements: give labels, or use "
                          "modes: [predict]", key=key)
    inputs = list(getattr(model, "inputs", None) or [])
    x = pipeline.head.x
    if len(inputs) == 1 and not isinstance(x, dict) and len(leaves(x)) == 1:
        want, got = tuple(inputs[0].shape[1:]), tuple(leaves(x)[0].shape[1:])
        if len(got) == len(want) + 1:
            raise ConfigError(f"its elements have shape {got}, one dimension more than the model's input "
                              f"{(None, *want)}: is it batched in a way batchbench cannot see? Return it unbatched",
                              key=key)
