"""Timing model.fit in two phases, each its own `model.fit` call on the same model:

1. synchronised (`StepTimer`, a per-step callback): the first step (trace/compile), the
   warm-up steps, then a short sample of step latencies (`timing.LatencySampler`). A batch
   hook makes Keras convert every step's logs to floats before the next step is
   dispatched, so each interval is one step with its results on the host: that is what
   `step_s` means, and why these steps are kept out of the throughput.
2. unsynchronised (`RepeatTimer`, epoch hooks only): chunks of whole passes or of a fixed
   number of steps (`timing.plan_chunks`), the clock read only at chunk ends, where Keras
   has read the metrics back (so the chunk's last step has finished on the device). With
   no batch-end hook Keras dispatches the steps in between as in a plain fit (on JAX and
   torch the batch-end work runs in a thread, the next step queued meanwhile). The first
   chunk is a warm-up; repeats are whole chunks (`timing.ChunkRepeats`).
"""

from __future__ import annotations

import math

import keras

from batchbench.worker.data import take_rows
from batchbench.worker.timing import LATENCY_TIME_S, ChunkRepeats, LatencySampler, WindowRule, clock, plan_chunks

BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end")


class StepTimer(keras.callbacks.Callback):
    """Overriding on_train_batch_end makes Keras run callbacks synchronously (the logs are
    converted to floats), so the clock is read after the step's results exist on the host.
    Feeds step durations to `sink` (anything with add(seconds) and done)."""

    def __init__(self, sink):
        super().__init__()
        self.clock = sink
        self._last: float | None = None
        self._begin_step = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._begin_step = batch
        if self._last is None:
            self._last = clock()

    def on_train_batch_end(self, batch, logs=None):
        now = clock()
        # With steps_per_execution > 1 Keras calls back once per execution of several
        # steps: count them all, each taking its share of the interval.
        steps = max(1, batch - self._begin_step + 1)
        for _ in range(steps):
            self.clock.add((now - self._last) / steps)
        self._last = now
        if self.clock.done:
            self.model.stop_training = True


class RepeatTimer(keras.callbacks.Callback):
    """Epoch hooks only (no batch hook: Keras keeps dispatching steps without waiting for
    them). Every epoch is a chunk of `chunk_steps` steps; its end is read after Keras has
    converted the epoch's logs to floats, i.e. after the device finished its last step."""

    def __init__(self, repeats: ChunkRepeats, chunk_steps: int):
        super().__init__()
        self.repeats = repeats
        self.chunk_steps = chunk_steps

    def on_epoch_end(self, epoch, logs=None):
        self.repeats.chunk_end(self.chunk_steps, clock())
        if self.repeats.done:
            self.model.stop_training = True


def has_batch_hooks(callback) -> bool:
    """Whether a callback overrides a per-batch hook (Keras then stops dispatching
    asynchronously; TensorFlow converts the logs at every step anyway)."""
    return any(not getattr(getattr(callback, name), "_is_default", False) for name in BATCH_HOOKS)


def measure_fit(model, train, batch_size: int, sweep: dict, epochs_cap: int = 1_000_000, meter=None,
                processes: int = 1, process_id: int = 0) -> dict:
    """Fit on whole batches only: a partial last batch is another shape (Keras retraces).

    With several processes `batch_size` is the global batch: each process feeds its own
    rows (every `processes`-th of the same whole-batch data) in batches of
    batch_size / processes, and nothing that decides a step count reads a clock (the
    sweep's min_time_s is 0 there, the latency phase has a fixed length, the chunks are
    planned from step counts), so every process runs the same number of steps."""
    n_full = (train.samples // batch_size) * batch_size
    data = train.take(0, n_full)
    steps_per_epoch = n_full // batch_size
    local_batch = batch_size // processes
    if processes > 1:
        idx = list(range(process_id, n_full, processes))
        data = type(data)(take_rows(data.x, idx), take_rows(data.y, idx), data.source)
    min_steps = sweep["min_steps"]
    if sweep.get("epochs"):
        min_steps = max(min_steps, sweep["epochs"] * steps_per_epoch)
    shuffle = processes == 1
    timed = processes == 1

    sampler = LatencySampler(sweep["warmup_steps"], time_s=LATENCY_TIME_S if timed else 0.0)
    model.fit(data.x, data.y, batch_size=local_batch, epochs=epochs_cap, shuffle=shuffle, verbose=0,
              callbacks=[StepTimer(sampler)])

    plan = plan_chunks(steps_per_epoch, min_steps, sampler.estimate_s(), sweep["min_time_s"],
                       int(getattr(model, "steps_per_execution", 1) or 1), timed=timed)
    timed_data = data if plan.batches == steps_per_epoch else data.take(0, plan.batches * local_batch)
    repeats = ChunkRepeats(batch_size, min_steps, sweep["min_time_s"], WindowRule.from_sweep(sweep, windows=False),
                           meter=meter)
    history = model.fit(timed_data.x, timed_data.y, batch_size=local_batch, epochs=epochs_cap,
                        steps_per_epoch=plan.steps_per_epoch, shuffle=shuffle, verbose=0,
                        callbacks=[RepeatTimer(repeats, plan.chunk_steps)])

    out = repeats.summary(sampler.first_step_s, sampler.step_s)
    out["steps_per_epoch"] = steps_per_epoch
    out["epochs_run"] = math.ceil((sampler.steps_run + repeats.steps_run) / max(1, steps_per_epoch))
    losses = history.history.get("loss") or []
    out["final_loss"] = float(losses[-1]) if losses else None
    return out
