"""What the batch size does to learning: quality after a fixed budget, time to a target,
learning-rate scaling, and the gradient noise scale (McCandlish et al., 2018)."""

from __future__ import annotations

import math
import time
from typing import Any

import keras
import numpy as np

from batchbench.errors import ConfigError
from batchbench.targets import lower_is_better
from batchbench.worker.backends import seed_keras
from batchbench.worker.data import take_rows


def scaled_learning_rate(base_lr: float, rule: str, batch_size: int, base_batch_size: int) -> float:
    """Goyal et al. (2017): linear scaling; sqrt scaling for adaptive optimizers."""
    ratio = batch_size / base_batch_size
    if rule == "linear":
        return base_lr * ratio
    if rule == "sqrt":
        return base_lr * math.sqrt(ratio)
    return base_lr


def reference_learning_rate(config: dict, model=None) -> float | None:
    """The learning rate the model trains at before any scaling: the config's `compile`
    optimizer (Keras' default rate for one given by name), else the optimizer of a model
    that came compiled. None for a schedule (it cannot be scaled by one factor)."""
    from batchbench.worker.models import is_compiled, make_optimizer

    spec = (config["model"].get("compile") or {}).get("optimizer")
    if model is not None and is_compiled(model):
        optimizer = model.optimizer
    else:
        optimizer = make_optimizer(spec or "adam")
    if isinstance(getattr(optimizer, "_learning_rate", None), keras.optimizers.schedules.LearningRateSchedule):
        return None
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class WarmupLearningRate(keras.callbacks.Callback):
    """Ramp linearly from the reference rate to the scaled one over the warm-up steps."""

    def __init__(self, start_lr: float, target_lr: float, warmup_steps: int):
        super().__init__()
        self.start, self.target, self.steps, self.seen = start_lr, target_lr, max(1, warmup_steps), 0

    def on_train_batch_begin(self, batch, logs=None):
        if self.seen <= self.steps:
            frac = min(1.0, self.seen / self.steps)
            self.model.optimizer.learning_rate = self.start + (self.target - self.start) * frac
        self.seen += 1


class TargetWatch(keras.callbacks.Callback):
    """Counts training time only (validation excluded: it costs the same for every batch
    size) and stops once the target metric is reached."""

    def __init__(self, metric: str | None, value: float | None):
        super().__init__()
        self.metric, self.value = metric, value
        self.train_s = 0.0
        self.time_to_target_s: float | None = None
        self.epochs_to_target: int | None = None
        self._start = 0.0
        self._in_eval = False

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._in_eval = time.perf_counter(), False

    def on_test_begin(self, logs=None):
        if not self._in_eval:
            self.train_s += time.perf_counter() - self._start
            self._in_eval = True

    def on_epoch_end(self, epoch, logs=None):
        if not self._in_eval:
            self.train_s += time.perf_counter() - self._start
        if self.metric is None or not logs or self.metric not in logs:
            return
        reached = (logs[self.metric] <= self.value) if lower_is_better(self.metric) else (logs[self.metric] >= self.value)
        if reached and self.epochs_to_target is None:
            self.time_to_target_s, self.epochs_to_target = self.train_s, epoch + 1
            self.model.stop_training = True


def train_for_quality(model, train, val, batch_size: int, sweep: dict, lr: float, reference_lr: float,
                      seed: int) -> dict[str, Any]:
    """Train from the shared initial weights for `epochs` (or until `target`), over all
    the training data in a seeded order, and report the quality reached."""
    target = sweep.get("target")
    epochs = int(target["max_epochs"] if target else sweep["epochs"])
    watch = TargetWatch(target["metric"] if target else None, target["value"] if target else None)
    callbacks: list = [watch]
    steps_per_epoch = math.ceil(train.samples / batch_size)
    if sweep.get("lr_warmup_epochs"):
        callbacks.append(WarmupLearningRate(reference_lr, lr, sweep["lr_warmup_epochs"] * steps_per_epoch))
    seed_keras(seed)  # keras.utils.set_random_seed would import TensorFlow under JAX too
    history = model.fit(train.x, train.y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
                        validation_data=(val.x, val.y) if val is not None else None, callbacks=callbacks)
    logs = {k: v[-1] for k, v in history.history.items() if v}
    if target and target["metric"] not in logs:
        raise ConfigError(f"the run reports no metric {target['metric']!r} (it has {', '.join(sorted(logs))})",
                          key="sweep.target.metric")
    epochs_run = len(history.epoch)
    out: dict[str, Any] = {
        "final_loss": float(logs["loss"]) if "loss" in logs else None,
        "val_loss": float(logs["val_loss"]) if "val_loss" in logs else None,
        "updates": steps_per_epoch * epochs_run,
        "samples_seen": train.samples * epochs_run,
        "epochs": epochs_run,
        "train_time_s": watch.train_s,
        "time_to_target_s": watch.time_to_target_s,
        "epochs_to_target": watch.epochs_to_target,
    }
    for name, value in logs.items():
        if name.startswith("val_") and name != "val_loss":
            out[name] = float(value)
        elif name not in ("loss", "learning_rate") and not name.startswith("val_"):
            out[f"final_{name}"] = float(value)
    return out


def _squared_grad_norm(model, x, y) -> float:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred)
    grads = tape.gradient(loss, model.trainable_variables)
    return float(sum(float(tf.reduce_sum(tf.square(tf.cast(g, "float32")))) for g in grads if g is not None))


def gradient_noise_scale(model, train, b_small: int, b_big: int, seed: int, n_small: int = 48,
                         n_big: int = 12) -> dict[str, Any]:
    """B_simple = tr(Σ) / |G|², from mean squared gradient norms at two batch sizes
    (McCandlish et al., 2018, appendix A): E|G_B|² = |G|² + tr(Σ)/B, solved for both."""
    rng = np.random.default_rng(seed)
    n = train.samples

    def mean_sq(b: int, count: int) -> float:
        values = []
        for _ in range(count):
            idx = np.sort(rng.choice(n, size=b, replace=False))
            values.append(_squared_grad_norm(model, take_rows(train.x, idx), take_rows(train.y, idx)))
        return float(np.mean(values))

    g_small, g_big = mean_sq(b_small, n_small), mean_sq(b_big, n_big)
    g2 = (b_big * g_big - b_small * g_small) / (b_big - b_small)
    trace = (g_small - g_big) / (1 / b_small - 1 / b_big)
    out = {"b_small": b_small, "b_big": b_big, "grad_sq_small": g_small, "grad_sq_big": g_big,
           "true_grad_sq": g2, "trace_sigma": trace}
    if g2 <= 0 or trace <= 0:
        out["gradient_noise_scale"] = None
        out["note"] = "the gradient noise swamped the estimate; raise the sample count or the large batch"
    else:
        out["gradient_noise_scale"] = trace / g2
    return out

