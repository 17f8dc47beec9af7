"""Timing inference two ways: Keras `model.predict` as most users call it, and `serve`,
the model called through one compiled function (tf.function, jax.jit, ...: the backend's
compiled_call) as a serving stack calls it."""

from __future__ import annotations

import keras
import numpy as np

from batchbench.worker.backends import get_backend
from batchbench.worker.data import count_rows, leaves, slice_rows
from batchbench.worker.timing import ALIGN_MAX_PASS_S, RepeatClock, WindowRule, clock


def window_steps(sweep: dict) -> int:
    """A predict window: at least `min_steps` and `stability.window_steps` batches."""
    return max(sweep["min_steps"], (sweep.get("stability") or {}).get("window_steps", 1))


def _to_host(outputs) -> None:
    """Block until the outputs exist on the host (asynchronous GPUs cannot flatter us)."""
    for leaf in leaves(outputs):
        keras.ops.convert_to_numpy(leaf)


class BatchTimer(keras.callbacks.Callback):
    def __init__(self, repeat_clock: RepeatClock):
        super().__init__()
        self.clock = repeat_clock
        self._begin = 0.0
        self._begin_step = 0
        self.stop_after: int | None = None
        self.batches = 0

    def on_predict_batch_begin(self, batch, logs=None):
        self._begin = clock()
        self._begin_step = batch

    def on_predict_batch_end(self, batch, logs=None):
        if logs and "outputs" in logs:
            _to_host(logs["outputs"])
        elapsed = clock() - self._begin
        steps = max(1, batch - self._begin_step + 1)  # steps_per_execution > 1: several batches per call
        for _ in range(steps):
            self.clock.add(elapsed / steps)
        self.batches += steps
        if self.clock.done or (self.stop_after is not None and self.batches >= self.stop_after):
            self.model.stop_predicting = True


def measure_predict(model, x, batch_size: int, sweep: dict, meter=None, window_closed=None,
                    warm_up: bool = True) -> dict:
    """Per-batch latency from the callback; throughput from the wall time of whole calls,
    which includes the per-call work (input pipeline, output concatenation) users pay.

    The first call is one whole `model.predict` over the data, as a user's script makes it:
    it traces and warms up, and it is the trial's memory window. `window_closed()` is called
    as it returns (the caller reads the peaks there and tells the controller); the timing
    windows after it are not what a single call costs. A resident peak never comes down, so
    later calls could not be told apart afterwards. `warm_up` False: no first call, the model
    and data being warm already (the compute-only phase on arrays)."""
    if hasattr(x, "batched"):  # a tf.data pipeline: it runs in every call, as in the user's
        call = {"x": x.batched(batch_size, batches=x.steps(batch_size) if x.infinite else None)}
        n_full = x.steps(batch_size) * batch_size
    else:
        n_full = (count_rows(x) // batch_size) * batch_size
        call = {"x": slice_rows(x, 0, n_full), "batch_size": batch_size}
    rc = RepeatClock(batch_size, 0, 1, 0.0, WindowRule(1_000_000))
    timer = BatchTimer(rc)
    rule = WindowRule.from_sweep(sweep, windows=True)
    sweep = {**sweep, "min_steps": window_steps(sweep)}
    if warm_up:
        model.predict(**call, verbose=0, callbacks=[timer])
    if window_closed is not None:
        window_closed()
    # Data shorter than the warm-up: more warm-up batches, cut calls, after the window.
    timer.stop_after = 1 + sweep["warmup_steps"]
    while 0 < timer.batches < timer.stop_after:
        model.predict(**call, verbose=0, callbacks=[timer])
    timer.stop_after = None
    _collect()
    first_step_s = rc.first_step_s
    latencies_start = len(rc.step_s)
    repeat_samples, repeat_time_s, throughputs = [], [], []
    if meter is not None:
        meter.start()
    batches_per_call = n_full // batch_size
    warm = rc.step_s or [rc.first_step_s or 0.0]
    call_s = batches_per_call * sum(warm) / len(warm)
    whole_calls = call_s <= max(2 * sweep["min_time_s"], ALIGN_MAX_PASS_S)
    while not rule.finished(throughputs):
        start, before = clock(), timer.batches
        stop = _RepeatStop(timer, before, sweep, start, whole_calls)
        while not stop.complete():
            model.predict(**call, verbose=0, callbacks=[stop])
        repeat_time_s.append(clock() - start)
        repeat_samples.append((timer.batches - before) * batch_size)
        throughputs.append(repeat_samples[-1] / repeat_time_s[-1])
        _collect()
    energy_j = meter.stop() if meter is not None else None
    return {"first_step_s": first_step_s, "step_s": rc.step_s[latencies_start:],
            "repeat_samples": repeat_samples, "repeat_time_s": repeat_time_s,
            "steps": sum(repeat_samples) // batch_size, "stable": rule.stable(throughputs),
            "energy_j": energy_j}


def compute_only(model, x, batch_size: int, sweep: dict, measured: dict) -> dict:
    """The input-bound diagnosis for predict: the same timing on `x`, batches held in memory
    (a pipeline's first batches in tf.data's memory cache; arrays, which the sweep does not
    diagnose, as themselves), in a
    fixed number of windows as long (in batches) as the `measured` ones."""
    import statistics

    from batchbench.worker.fit import COMPUTE_ONLY_REPEATS

    windows = [s // batch_size for s in measured.get("repeat_samples") or []]
    sweep = {**sweep, "repeats": COMPUTE_ONLY_REPEATS + 1, "min_time_s": 0.0,  # the first window: a warm-up
             "min_steps": int(statistics.median(windows)) if windows else window_steps(sweep),
             "stability": {**(sweep.get("stability") or {}), "window_steps": 1, "tolerance": None}}
    # A pipeline's cached batches warm up in a first call (it fills the cache); arrays are warm.
    measured = measure_predict(model, x, batch_size, sweep, warm_up=hasattr(x, "batched"))
    return {"repeat_samples": measured["repeat_samples"][1:], "repeat_time_s": measured["repeat_time_s"][1:],
            "batches": x.steps(batch_size) if hasattr(x, "batched") else count_rows(x) // batch_size}



def _collect() -> None:
    """Free what a cut `model.predict` call leaves in reference cycles, between windows
    (never inside one). A call stopped by `stop_predicting` keeps its input pipeline, a copy
    of the data, alive in a cycle that Python's collector may not reach for many calls:
    MobileNetV2's 192 MiB of input piled up one copy a window, 1.6 GiB resident in 12
    windows, memory no user's call pays and that the machine must still hold."""
    import gc

    gc.collect()


class _RepeatStop(keras.callbacks.Callback):
    """Wraps the BatchTimer for one call and stops the call when the repeat is complete."""

    def __init__(self, timer: BatchTimer, batches_before: int, sweep: dict, start: float,
                 whole_calls: bool = False):
        super().__init__()
        self.timer, self.before, self.sweep, self.start = timer, batches_before, sweep, start
        # Short calls are never cut: every window then pays the same per-call costs.
        self.whole_calls = whole_calls

    def complete(self) -> bool:
        steps = self.timer.batches - self.before
        return steps >= self.sweep["min_steps"] and clock() - self.start >= self.sweep["min_time_s"]

    def set_model(self, model):
        super().set_model(model)
        self.timer.set_model(model)

    def on_predict_batch_begin(self, batch, logs=None):
        self.timer.on_predict_batch_begin(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self.timer.on_predict_batch_end(batch, logs)
        if self.complete() and not self.whole_calls:
            self.model.stop_predicting = True


def measure_serve(model, x, batch_size: int, sweep: dict, jit_compile, meter=None, window_closed=None) -> dict:
    """The model called through one compiled function on pre-made batches; each call's
    outputs are copied to the host, as a server must before it answers.

    Memory window: making the batches (the server's copy of its requests) and one pass over
    all of them (the trace and each batch's first call): what a server answering this data
    once holds. `window_closed()` is called after that pass; the timed calls come after it."""
    fn, to_tensor = get_backend(keras.backend.backend()).compiled_call(model, jit_compile)
    n_batches = count_rows(x) // batch_size
    batches = [keras.tree.map_structure(to_tensor, slice_rows(x, i * batch_size, (i + 1) * batch_size))
               for i in range(n_batches)]
    first_pass = []
    for batch in batches:
        start = clock()
        _to_host(fn(batch))
        first_pass.append(clock() - start)
    if window_closed is not None:
        window_closed()
    # The first pass warmed up: only the warm-up steps it did not cover are left.
    warmup = max(0, sweep["warmup_steps"] - (n_batches - 1))
    rc = RepeatClock(batch_size, warmup, window_steps(sweep), sweep["min_time_s"],
                     WindowRule.from_sweep(sweep, windows=True), meter=meter,
                     first_step_s=first_pass[0] if first_pass else None)
    if rc.first_step_s is not None and warmup == 0 and meter is not None:
        meter.start()  # RepeatClock starts it when its warm-up ends; here none is left
    i = 0
    while not rc.done:
        start = clock()
        _to_host(fn(batches[i % n_batches]))
        rc.add(clock() - start)
        i += 1
    return rc.summary()


def predictions(model, x, batch_size: int, rows: int = 64) -> np.ndarray:
    """The first `rows` predictions, computed in batches of `batch_size` (so the check
    really runs at this batch size), for the consistency check."""
    n_full = (count_rows(x) // batch_size) * batch_size
    n = max(min(rows, count_rows(x)), min(batch_size, n_full))
    out = model.predict(slice_rows(x, 0, n), batch_size=batch_size, verbose=0)
    keep = min(rows, n)
    return np.concatenate([np.asarray(leaf, dtype="float64").reshape(n, -1)[:keep] for leaf in leaves(out)], axis=1)
