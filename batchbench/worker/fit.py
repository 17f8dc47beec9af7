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
import traceback

import keras

from batchbench.worker.data import take_rows
from batchbench.worker.timing import (
    LATENCY_MAX_STEPS,
    LATENCY_TIME_S,
    ChunkPlan,
    ChunkRepeats,
    LatencySampler,
    WindowRule,
    clock,
    plan_chunks,
)

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
        if self._last is None or batch == 0:
            # An epoch's first step is timed from its own start: the pass boundary before it
            # (epoch-end callbacks, a new iterator over the data: 20-50 ms on a CPU) is a cost
            # of the epoch, which the throughput's whole-pass chunks count, not of a step.
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


class _ArrayFeed:
    """Arrays as `model.fit` takes them (in batches of the local batch size)."""

    def __init__(self, train, batch_size: int, processes: int, process_id: int):
        n_full = (train.samples // batch_size) * batch_size
        self.data = train.take(0, n_full)
        self.steps_per_epoch = n_full // batch_size
        self.local_batch = batch_size // processes
        if processes > 1:
            idx = list(range(process_id, n_full, processes))
            self.data = type(self.data)(take_rows(self.data.x, idx), take_rows(self.data.y, idx), self.data.source)
        self.shuffle = processes == 1

    def fit_args(self, plan: ChunkPlan | None = None) -> dict:
        data = self.data
        if plan is not None and plan.batches != self.steps_per_epoch:
            data = data.take(0, plan.batches * self.local_batch)
        return {"x": data.x, "y": data.y, "batch_size": self.local_batch, "shuffle": self.shuffle,
                "steps_per_epoch": plan.steps_per_epoch if plan else None}

    def in_memory(self, batches: int) -> tuple[dict, int]:
        """fit's arguments for `batches` of the same batches held in memory, and the steps
        in one pass over them. Arrays are in memory already: the same arrays, fed the same way."""
        data = self.data.take(0, batches * self.local_batch)
        return {"x": data.x, "y": data.y, "batch_size": self.local_batch, "shuffle": self.shuffle}, \
            data.samples // self.local_batch


class _PipelineFeed:
    """A tf.data pipeline batched for this trial: it runs at every step, once per epoch."""

    def __init__(self, pipeline, batch_size: int):
        self.pipeline, self.batch_size, self.local_batch, self.shuffle = pipeline, batch_size, batch_size, False
        self.steps_per_epoch = None if pipeline.infinite else pipeline.steps(batch_size)

    def fit_args(self, plan: ChunkPlan | None = None) -> dict:
        if plan is None:  # the latency phase: the StepTimer ends it
            steps = None if self.steps_per_epoch else LATENCY_MAX_STEPS * 10
            return {"x": self.pipeline.batched(self.batch_size), "steps_per_epoch": steps}
        if plan.steps_per_epoch is None:  # whole passes, the pipeline set up anew for each as in any fit
            return {"x": self.pipeline.batched(self.batch_size)}
        return {"x": self.pipeline.batched(self.batch_size, repeat=True, batches=plan.batches),
                "steps_per_epoch": plan.steps_per_epoch}

    def in_memory(self, batches: int) -> tuple[dict, int]:
        """The pipeline's first batches in tf.data's memory cache (filled in the warm-up chunk)."""
        cached = self.pipeline.cached(self.batch_size, self.pipeline.cache_batches(self.batch_size, batches))
        return {"x": cached.batched(self.batch_size, repeat=True), "steps_per_epoch": cached.batches}, cached.batches


def measure_fit(model, train, batch_size: int, sweep: dict, epochs_cap: int = 1_000_000, meter=None,
                processes: int = 1, process_id: int = 0, before_compute_only=None,
                diagnose: bool = True) -> dict:
    """Fit on whole batches only: a partial last batch is another shape (Keras retraces).

    `train` is a Dataset of arrays or a tf.data Pipeline (worker/pipelines.py). With several
    processes `batch_size` is the global batch: each process feeds its own rows (every
    `processes`-th of the same whole-batch data) in batches of batch_size / processes, and
    nothing that decides a step count reads a clock (the sweep's min_time_s is 0 there, the
    latency phase has a fixed length, the chunks are planned from step counts), so every
    process runs the same number of steps.

    Then, in one process and when `diagnose`, the compute-only phase (`compute_only`): the same model on a few of
    the same batches held in memory; `before_compute_only()` is called first (the trial's
    memory window closes there: the copy is no part of what the batch size costs)."""
    feed = _PipelineFeed(train, batch_size) if hasattr(train, "batched") else \
        _ArrayFeed(train, batch_size, processes, process_id)
    steps_per_epoch = feed.steps_per_epoch
    min_steps = sweep["min_steps"]
    if sweep.get("epochs") and steps_per_epoch:
        min_steps = max(min_steps, sweep["epochs"] * steps_per_epoch)
    timed = processes == 1

    sampler = LatencySampler(sweep["warmup_steps"], time_s=LATENCY_TIME_S if timed else 0.0)
    model.fit(**feed.fit_args(), epochs=epochs_cap, verbose=0, callbacks=[StepTimer(sampler)])

    plan = plan_chunks(steps_per_epoch or UNBOUNDED_PASS, min_steps, sampler.estimate_s(), sweep["min_time_s"],
                       int(getattr(model, "steps_per_execution", 1) or 1), timed=timed)
    repeats = ChunkRepeats(batch_size, min_steps, sweep["min_time_s"], WindowRule.from_sweep(sweep, windows=False),
                           meter=meter)
    history = model.fit(**feed.fit_args(plan), epochs=epochs_cap, verbose=0,
                        callbacks=[RepeatTimer(repeats, plan.chunk_steps)])

    out = repeats.summary(sampler.first_step_s, sampler.step_s)
    out["steps_per_epoch"] = steps_per_epoch
    out["epochs_run"] = math.ceil((sampler.steps_run + repeats.steps_run) / max(1, steps_per_epoch or plan.chunk_steps))
    losses = history.history.get("loss") or []
    out["final_loss"] = float(losses[-1]) if losses else None
    if timed and diagnose:
        if before_compute_only is not None:
            before_compute_only()
        try:
            out["compute_only"] = compute_only(model, feed, batch_size, repeats.repeat_steps, plan.chunk_steps,
                                               epochs_cap)
        except Exception:  # noqa: BLE001 - the measurement stands; the diagnosis is extra
            traceback.print_exc()
    return out


UNBOUNDED_PASS = 2**40  # an infinite pipeline's "pass", for planning chunks of fixed steps


def compute_only(model, feed, batch_size: int, measured_steps: list[int], chunk_steps: int,
                 epochs_cap: int = 1_000_000) -> dict:
    """The input-bound diagnosis: the same model on `chunk_steps` of the same batches (fewer
    when they would not fit in CACHE_BYTES) held in memory, fed as the measured phase feeds
    them (a pipeline's batches from tf.data's memory cache; arrays, which the sweep does not
    diagnose (job._diagnoses), as arrays), timed as it is
    (a warm-up chunk, then repeats of whole chunks, each one pass over the copy) in repeats of
    as many steps as the measured repeats: windows of one length on both sides, so contention
    from other processes weighs on both alike. Its throughput over the measured one is
    `input_bound_ratio`."""
    import statistics

    # No gc.collect() first: the measured phase had none, and a fresh heap made this phase about a
    # quarter faster on arrays here (input_bound_ratio 1.24-1.41 with it, 0.90-1.09 without).
    args, batches = feed.in_memory(chunk_steps)
    steps = int(statistics.median(measured_steps)) if measured_steps else batches
    # One repeat more than kept: a new fit's first repeats run measurably slower (about 10% here) even
    # after its warm-up chunk, and the measured phase came after a whole fit of warming up.
    repeats = ChunkRepeats(batch_size, steps, 0.0, WindowRule(COMPUTE_ONLY_REPEATS + 1))
    model.fit(**args, epochs=epochs_cap, verbose=0, callbacks=[RepeatTimer(repeats, batches)])
    return {"repeat_samples": [s * batch_size for s in repeats.repeat_steps[1:]],
            "repeat_time_s": repeats.repeat_time_s[1:], "batches": batches}


COMPUTE_ONLY_REPEATS = 3
COMPUTE_ONLY_MIN_S = 0.1
