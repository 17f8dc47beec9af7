"""Timing model.fit: one continuous fit, a callback reading the clock at every step end."""

from __future__ import annotations

import keras

from batchbench.worker.data import take_rows
from batchbench.worker.timing import RepeatClock, WindowRule, clock


class StepTimer(keras.callbacks.Callback):
    """Overriding on_train_batch_end makes Keras run callbacks synchronously (the logs are
    converted to floats), so the clock is read after the step's results exist on the host."""

    def __init__(self, repeat_clock: RepeatClock):
        super().__init__()
        self.clock = repeat_clock
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


def measure_fit(model, train, batch_size: int, sweep: dict, epochs_cap: int = 1_000_000, meter=None,
                processes: int = 1, process_id: int = 0) -> dict:
    """Fit on whole batches only: a partial last batch is another shape (Keras retraces).

    With several processes `batch_size` is the global batch: each process feeds its own
    rows (every `processes`-th of the same whole-batch data) in batches of
    batch_size / processes, so every process runs the same number of steps."""
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
    rc = RepeatClock(batch_size, sweep["warmup_steps"], min_steps, sweep["min_time_s"],
                     WindowRule.from_sweep(sweep, windows=False), meter=meter, period=steps_per_epoch)
    timer = StepTimer(rc)
    history = model.fit(data.x, data.y, batch_size=local_batch, epochs=epochs_cap, shuffle=processes == 1,
                        verbose=0, callbacks=[timer])
    out = rc.summary()
    out["steps_per_epoch"] = steps_per_epoch
    out["epochs_run"] = len(history.epoch)
    losses = history.history.get("loss") or []
    out["final_loss"] = float(losses[-1]) if losses else None
    return out

