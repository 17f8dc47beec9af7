"""Model factories for configs/factory.yaml (`factory: "mymodels:small_convnet"`).

batchbench imports this file in its worker process only, so importing Keras at the top is fine:
`batchbench validate` reads the file without running it.
"""

from __future__ import annotations

import keras


def small_convnet(num_classes: int = 10, input_shape: tuple[int, ...] = (28, 28, 1)) -> keras.Model:
    """A small MNIST-sized convnet, compiled with Adam and sparse categorical cross-entropy."""
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="label")(x)
    model = keras.Model(inputs, outputs, name="small_convnet")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
