"""tf.data loaders and a sequence model for configs/tf-data.yaml, configs/slow-pipeline.yaml and
configs/sequence-length.yaml. batchbench calls them in its worker process with the config's
`kwargs`; nothing is downloaded.

A loader returns an *unbatched* `tf.data.Dataset` of `(x, y)` elements (or `x` alone, for
predict): batchbench batches it per batch size, as your own `fit` would run it.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf


def _blobs(samples: int, features: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, samples).astype("int32")
    centers = rng.normal(0, 2, (classes, features))
    return (centers[y] + rng.normal(0, 1, (samples, features))).astype("float32"), y


def blobs(samples: int = 2048, features: int = 32, classes: int = 4, seed: int = 0,
          batch: int | None = None) -> tf.data.Dataset:
    """Gaussian blobs, normalised in a parallel map and shuffled each epoch: a pipeline that
    keeps up with a small model. `batch`: return it batched, as many scripts do (batchbench
    then unbatches it and batches it at each batch size, and says so)."""
    x, y = _blobs(samples, features, classes, seed)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(samples, seed=seed)
    ds = ds.map(lambda a, b: (a / 4.0, b), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch) if batch else ds


def cached_blobs(samples: int = 2048, features: int = 32, classes: int = 4, seed: int = 0) -> tf.data.Dataset:
    """The same blobs, normalised once and kept in tf.data's memory cache (`.cache()` after the
    map): after the first pass the pipeline only hands over what it holds, so it keeps up with
    any model (input_bound_ratio near 1)."""
    x, y = _blobs(samples, features, classes, seed)
    return tf.data.Dataset.from_tensor_slices((x, y)).map(lambda a, b: (a / 4.0, b)).cache()


def slow_blobs(samples: int = 2048, features: int = 32, classes: int = 4, delay_ms: float = 1.0,
               seed: int = 0) -> tf.data.Dataset:
    """The same blobs through a per-element Python function (tf.numpy_function, one element at a
    time, no num_parallel_calls): the input pipeline, not the model, is the limit."""
    x, y = _blobs(samples, features, classes, seed)

    def decode(a: np.ndarray) -> np.ndarray:
        time.sleep(delay_ms / 1000)  # stands for per-element Python work: parsing, augmenting
        return a / 4.0

    def step(a, b):
        # numpy_function's output has no static shape: batchbench sets it from the first elements
        # (and says so); tf.ensure_shape(a, [features]) here would say it yourself.
        return tf.numpy_function(decode, [a], tf.float32), b

    return tf.data.Dataset.from_tensor_slices((x, y)).map(step)


def blob_arrays(samples: int = 2048, features: int = 32, classes: int = 4, seed: int = 0):
    """The same data as arrays, for comparison: in memory already, so never input-bound."""
    return _blobs(samples, features, classes, seed)


def tokens(samples: int = 512, sequence_length: int = 64, vocab: int = 1000, seed: int = 0):
    """Token ids and a label per sequence; `sequence_length` comes from sweep.sequence_length."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab, (samples, sequence_length)).astype("int32")
    return x, (x[:, 0] % 2).astype("int32")


def bag_of_embeddings(vocab: int = 1000, width: int = 16, classes: int = 2):
    """The smallest model with a variable-length token input: embed, average, classify."""
    import keras

    tokens_in = keras.Input(shape=(None,), dtype="int32", name="tokens")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(vocab, width)(tokens_in))
    model = keras.Model(tokens_in, keras.layers.Dense(classes, activation="softmax")(h), name="bag_of_embeddings")
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def tiny_transformer(vocab: int = 1000, width: int = 32, heads: int = 2, classes: int = 2):
    """One self-attention block over a variable-length token sequence: Input(shape=(None,))."""
    import keras

    tokens_in = keras.Input(shape=(None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(vocab, width)(tokens_in)
    attended = keras.layers.MultiHeadAttention(heads, width // heads)(h, h)
    h = keras.layers.LayerNormalization()(h + attended)
    h = keras.layers.Dense(width * 2, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    out = keras.layers.Dense(classes, activation="softmax")(h)
    model = keras.Model(tokens_in, out, name="tiny_transformer")
    model.compile("adam", "sparse_categorical_crossentropy")
    return model
