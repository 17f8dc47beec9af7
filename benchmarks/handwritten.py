"""The hand-written side of `make bench`: plain Keras, timed the way a careful engineer
would time it by hand. Always runs in a fresh process of its own:

    python benchmarks/handwritten.py REQUEST.json RESULT.json

REQUEST["op"] is one of
- fidelity: every trial on a freshly built model. fit: one `model.fit`, the clock read at
  epoch ends only, after a warm-up epoch; predict: whole `model.predict` calls after a
  warm-up call; serve: a loop of one compiled `tf.function` over pre-made batches, each
  output copied to the host. A repeat is whole epochs / calls / passes over the data until
  it has lasted `min_time_s`.
- sequence: a sweep's trials one after another in this one process, each doing the steps
  and repeats batchbench's row says it did (what batchbench's per-trial processes cost).
- memory: one trial's memory window's work, alone in this process (fit: the whole trial;
  predict: one whole `model.predict` call; serve: the batches and one pass), with the resident
  peak of the imports and of the work (the parent reads the whole process's ru_maxrss).
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
clock = time.perf_counter
MiB = 2**20


def status_mib(field: str) -> float | None:
    """VmRSS / VmHWM of this process from /proc (Linux), in MiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / MiB
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------- the workload
def build_model(request: dict):
    """The same model batchbench builds: same seed, architecture and compile defaults."""
    import keras

    keras.utils.set_random_seed(request["seed"])
    spec = request["model"]
    kwargs = dict(spec.get("kwargs") or {})
    if spec.get("builtin"):
        from batchbench.worker.models import builtin_model  # plain Keras layers

        model = builtin_model(spec["builtin"], tuple(request["input_shape"]), request["num_classes"], **kwargs)
    else:
        if "input_shape" in kwargs:
            kwargs["input_shape"] = tuple(kwargs["input_shape"])
        model = getattr(keras.applications, spec["application"])(weights=None, **kwargs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def make_data(request: dict):
    """The same arrays as batchbench's synthetic data: one seeded generator, x then y."""
    import numpy as np

    rng = np.random.default_rng(request["seed"])
    n = request["samples"]
    x = rng.standard_normal((n, *request["input_shape"])).astype("float32")
    y = rng.integers(0, max(request["num_classes"], 2), size=(n,)).astype("int32")
    return x, y


def compiled_call(model):
    """One compiled function calling the model for inference (XLA only where Keras chose it)."""
    import tensorflow as tf

    return tf.function(lambda inputs: model(inputs, training=False), jit_compile=model.jit_compile is True)


def premade_batches(x, batch_size: int) -> list:
    import tensorflow as tf

    return [tf.convert_to_tensor(x[i:i + batch_size]) for i in range(0, len(x) - batch_size + 1, batch_size)]


# ---------------------------------------------------------------------- fidelity
def fit_throughputs(model, x, y, batch_size: int, repeats: int, min_time_s: float) -> list[float]:
    import keras

    n = len(x) // batch_size * batch_size

    class EpochClock(keras.callbacks.Callback):
        """Only an epoch hook: Keras keeps dispatching per-step callbacks asynchronously,
        as in any fit without batch callbacks."""

        def __init__(self):
            super().__init__()
            self.repeat_start: float | None = None
            self.epochs = 0
            self.throughputs: list[float] = []

        def on_epoch_end(self, epoch, logs=None):
            now = clock()
            if self.repeat_start is None:  # the warm-up epoch (tracing included) ends
                self.repeat_start = now
                return
            self.epochs += 1
            if now - self.repeat_start >= min_time_s:
                self.throughputs.append(self.epochs * n / (now - self.repeat_start))
                self.repeat_start, self.epochs = now, 0
            if len(self.throughputs) >= repeats:
                self.model.stop_training = True

    timer = EpochClock()
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1_000_000, shuffle=True, verbose=0, callbacks=[timer])
    return timer.throughputs


def repeat_whole(unit, samples_per_unit: int, repeats: int, min_time_s: float) -> list[float]:
    """Run `unit` (one call, one pass) whole, as often as a repeat needs to last min_time_s."""
    out = []
    for _ in range(repeats):
        start, units = clock(), 0
        while True:
            unit()
            units += 1
            elapsed = clock() - start
            if elapsed >= min_time_s:
                break
        out.append(units * samples_per_unit / elapsed)
    return out


def predict_throughputs(model, x, batch_size: int, repeats: int, min_time_s: float) -> list[float]:
    n = len(x) // batch_size * batch_size
    data = x[:n]
    model.predict(data, batch_size=batch_size, verbose=0)  # warm-up call: tracing
    return repeat_whole(lambda: model.predict(data, batch_size=batch_size, verbose=0), n, repeats, min_time_s)


def serve_throughputs(model, x, batch_size: int, repeats: int, min_time_s: float) -> list[float]:
    batches = premade_batches(x, batch_size)
    fn = compiled_call(model)

    def one_pass():
        for batch in batches:
            fn(batch).numpy()

    one_pass()  # warm-up pass: tracing
    return repeat_whole(one_pass, len(batches) * batch_size, repeats, min_time_s)


def fidelity(request: dict) -> dict:
    x, y = make_data(request)
    results = []
    for trial in request["trials"]:
        model = build_model(request)
        b, reps, min_time = trial["batch_size"], request["repeats"], request["min_time_s"]
        if trial["mode"] == "fit":
            tps = fit_throughputs(model, x, y, b, reps, min_time)
        elif trial["method"] == "serve":
            tps = serve_throughputs(model, x, b, reps, min_time)
        else:
            tps = predict_throughputs(model, x, b, reps, min_time)
        results.append({**trial, "throughputs_sps": tps, "throughput_sps": statistics.median(tps)})
    return {"trials": results}


# ---------------------------------------------------------------------- a sweep in one process
def like_a_trial(request: dict, trial: dict) -> dict:
    """One trial's work as batchbench's row describes it: build, compile, the first step,
    `warmup_steps`, then `steps` timed steps in `repeats` repeats (predict: plus the 64-row
    consistency prediction)."""
    import keras

    started = clock()
    model = build_model(request)
    x, y = make_data(request)
    b, warmup = trial["batch_size"], request["warmup_steps"]
    repeats = max(1, int(trial["repeats"]))
    per_repeat = max(1, int(trial["steps"]) // repeats)  # steps ~ repeats x per_repeat, on every path
    marks: list[float] = []
    if trial["mode"] == "fit":
        n = len(x) // b * b
        total = 1 + warmup + repeats * per_repeat

        class StepCount(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.done = 0

            def on_train_batch_end(self, batch, logs=None):
                self.done += 1
                if self.done >= 1 + warmup and (self.done - 1 - warmup) % per_repeat == 0:
                    marks.append(clock())
                if self.done >= total:
                    self.model.stop_training = True

        model.fit(x[:n], y[:n], batch_size=b, epochs=1_000_000, shuffle=True, verbose=0, callbacks=[StepCount()])
    elif trial["method"] == "serve":
        batches = premade_batches(x, b)
        fn = compiled_call(model)
        calls = itertools.count()
        for _ in range(1 + warmup):
            fn(batches[next(calls) % len(batches)]).numpy()
        for _ in range(repeats):
            marks.append(clock())
            for _ in range(per_repeat):
                fn(batches[next(calls) % len(batches)]).numpy()
        marks.append(clock())
    else:
        model.predict(x[:(1 + warmup) * b], batch_size=b, verbose=0)
        for _ in range(repeats):
            marks.append(clock())
            predict_batches(model, x, b, per_repeat)
        marks.append(clock())
        model.predict(x[:64], batch_size=b, verbose=0)
    throughputs = [per_repeat * b / (t1 - t0) for t0, t1 in itertools.pairwise(marks) if t1 > t0]
    return {**trial, "wall_s": clock() - started,
            "throughput_sps": statistics.median(throughputs) if throughputs else None}


def predict_batches(model, x, batch_size: int, batches: int) -> None:
    """`batches` batches through model.predict: whole calls over the data, then the rest."""
    per_call = len(x) // batch_size
    while batches > 0:
        k = min(batches, per_call)
        model.predict(x[:k * batch_size], batch_size=batch_size, verbose=0)
        batches -= k


def sequence(request: dict) -> dict:
    return {"trials": [like_a_trial(request, trial) for trial in request["trials"]]}


def fork_start() -> dict:
    """What a fork of this process has resident at its start, before it does anything
    (batchbench forks every trial from a process that imported TensorFlow, as this one did)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write_fd, json.dumps({"rss_mib": status_mib("VmRSS"), "rss_file_mib": status_mib("RssFile")}).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        seen = json.loads(fh.read())
    os.waitpid(pid, 0)
    return seen


def one_window(request: dict, trial: dict) -> dict:
    """What batchbench's memory window covers for inference: building the model and data, then
    one whole `model.predict` call over the data (`first_call`: what a user's single call costs),
    or the pre-made batches and one pass of the compiled call over them (`first_pass`)."""
    model = build_model(request)
    x, _ = make_data(request)
    b = trial["batch_size"]
    if trial["method"] == "serve":
        fn = compiled_call(model)
        for batch in premade_batches(x, b):
            fn(batch).numpy()
    else:
        model.predict(x[:len(x) // b * b], batch_size=b, verbose=0)
    return dict(trial)


def memory(request: dict) -> dict:
    """One trial's memory, alone: for fit its whole work (`like_a_trial`: batchbench's window is
    the whole trial), for predict and serve what batchbench's window covers (`one_window`)."""
    forked = fork_start()
    reset_ok = reset_peak()
    start_rss = status_mib("VmRSS")
    first = request["trials"][0]
    work = one_window if first.get("memory_window") in ("first_call", "first_pass") else like_a_trial
    trial = work(request, first)
    return {"trials": [trial], "work_peak_mib": status_mib("VmHWM") if reset_ok else None,
            "work_start_rss_mib": start_rss, "fork_start": forked}


OPS = {"fidelity": fidelity, "sequence": sequence, "memory": memory}


def main(request_path: str, result_path: str) -> None:
    with open(request_path) as fh:
        request = json.load(fh)
    started = clock()
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import batchbench.worker.models  # noqa: F401 - imported before the work, as batchbench's worker does

    imports = {"import_s": clock() - started, "rss_mib": status_mib("VmRSS"), "peak_mib": status_mib("VmHWM"),
               "rss_file_mib": status_mib("RssFile")}
    result = {"imports": imports, **OPS[request["op"]](request)}
    with open(result_path, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
