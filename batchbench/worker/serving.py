"""The serving load test, in the worker: a real dynamic batcher and an open-loop Poisson load
around the model's compiled call (the `serve` method's), and the per-batch latency the
simulator works from.

The load generator is a precomputed arrival schedule (serving/batching.py): a request has
arrived once the clock passes its time, so arrivals never wait for the server (open loop) and
nothing is made per request on the hot path. The batcher's thread reads the schedule, sleeps
until its batch's run time (TF Serving's rule: full, or the timeout after the oldest request),
takes the waiting requests' rows and calls the model. Each request's latency is from its
scheduled arrival to the moment its batch's outputs are on the host.

Isolation: one job (a fresh child process) per max_batch_size: the model is built and its
call traced once for batch sizes 1..max_batch_size, then every load point of every timeout for
that size runs in it, one after another. Each finished point is appended to a file the
controller reads as the job runs, so a crash or Ctrl-C keeps the points before it."""

from __future__ import annotations

import json
import os
import resource
import threading
import time

import numpy as np

from batchbench.serving.batching import batch_end, close_time, point_duration_s, point_row, schedule, summarize
from batchbench.serving.search import search_settings
from batchbench.worker.timing import clock

MIN_SLEEP_S = 50e-6  # shorter waits are not slept: the sleep itself would overshoot them
PROFILE_ROUNDS, PROFILE_CALLS, PROFILE_MIN_S = 8, 4, 0.15  # at least 32 busy calls a size, 0.15 s a size
PROFILE_IDLE_MS, PROFILE_IDLE_CALLS = (0.25, 1.0, 5.0), 2  # pauses before a call; 16 calls a size after each
CEILING_REQUESTS = 20_000


def run_load(run_batch, arrivals: np.ndarray, max_batch_size: int, timeout_s: float, threads: int = 1,
             lead_s: float = 0.005):
    """Serve the schedule; (started, answered, batch sizes), in seconds from the schedule's
    start. `run_batch(first, end)` computes the answers of requests first..end-1.

    With threads > 1, as TF Serving's num_batch_threads: one batch is open at a time (its
    thread holds the lock while it waits for it to fill), and up to `threads` run at once."""
    n = len(arrivals)
    started, answered = np.empty(n), np.empty(n)
    sizes: list[int] = []
    state = {"next": 0}
    lock = threading.Lock()
    t0 = clock() + lead_s

    def serve() -> None:
        while True:
            with lock:
                first = state["next"]
                if first >= n:
                    return
                at = close_time(arrivals, first, clock() - t0, max_batch_size, timeout_s)
                wait = at - (clock() - t0)
                if wait > MIN_SLEEP_S:
                    time.sleep(wait)
                now = clock() - t0
                end = batch_end(arrivals, first, now, max_batch_size)
                state["next"] = end
            run_batch(first, end)
            done = clock() - t0
            started[first:end], answered[first:end] = now, done
            sizes.append(end - first)

    if threads <= 1:
        serve()
    else:
        workers = [threading.Thread(target=serve, daemon=True) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    return started, answered, sizes


class Server:
    """The model's compiled call on batches of request rows, as measure_serve builds it."""

    def __init__(self, model, x, jit_compile: bool):
        import keras

        from batchbench.worker.backends import get_backend
        from batchbench.worker.data import count_rows, slice_rows
        from batchbench.worker.predict import _to_host

        self.fn, to_tensor = get_backend(keras.backend.backend()).compiled_call(model, jit_compile)
        self.rows = count_rows(x)
        self._x, self._slice, self._to_host = x, slice_rows, _to_host
        self._convert = lambda batch: keras.tree.map_structure(to_tensor, batch)

    def run_batch(self, first: int, end: int) -> None:
        """Requests first..end-1: request i's sample is a row of the data, taken in order."""
        k = end - first
        start = first % (self.rows - k + 1)
        self._to_host(self.fn(self._convert(self._slice(self._x, start, start + k))))

    def warm(self, max_batch_size: int) -> None:
        """Trace the call for every batch size the batcher can make (TensorFlow relaxes the
        batch dimension after a few shapes), twice each: no point pays a trace."""
        for _ in range(2):
            for k in range(1, max_batch_size + 1):
                self.run_batch(0, k)

    def latency_samples_ms(self, sizes: list[int], idle_ms: tuple[float, ...] = PROFILE_IDLE_MS) -> dict:
        """Per-call latency at each size in the two states a server meets: busy (PROFILE_CALLS
        calls back to back, as a loaded batcher runs full batches) and after the server sat
        idle for each of `idle_ms` (a call after a pause costs more: the framework's pool
        threads have parked and the cores gone cold; on the 2-core machine a batch of 64 took
        1.4 ms back to back, 1.8 ms after 1 ms idle, 2.6 ms after 5 ms). The busy blocks and
        the calls after a pause run in a seeded random order round after round: a burst of
        load from elsewhere lands on every size and state a little, not on one whole.

        Returns {"busy": {size: [ms]}, "after_idle": [{size: [ms]}, one per pause], "idle_ms":
        [the measured pause before each state's calls, median ms]}."""
        import random

        busy: dict[int, list[float]] = {k: [] for k in sizes}
        after: list[dict[int, list[float]]] = [{k: [] for k in sizes} for _ in idle_ms]
        pauses: list[list[float]] = [[] for _ in idle_ms]
        order = random.Random(0)
        begin = clock()
        rounds = 0
        while rounds < PROFILE_ROUNDS or (clock() - begin < PROFILE_MIN_S * len(sizes) and rounds < 4 * PROFILE_ROUNDS):
            units = [[(k, None)] * PROFILE_CALLS for k in sizes]
            units += [[(k, g)] for k in sizes for g in range(len(idle_ms)) for _ in range(PROFILE_IDLE_CALLS)]
            order.shuffle(units)
            n = 0
            for k, gap in (call for unit in units for call in unit):
                if gap is not None:
                    paused = clock()
                    time.sleep(idle_ms[gap] / 1e3)
                start = clock()
                self.run_batch(n, n + k)
                elapsed = (clock() - start) * 1e3
                n += k
                if gap is None:
                    busy[k].append(elapsed)
                else:
                    after[gap][k].append(elapsed)
                    pauses[gap].append((start - paused) * 1e3)
            rounds += 1
        return {"busy": busy, "after_idle": after,
                "idle_ms": [float(np.median(p)) if p else g for p, g in zip(pauses, idle_ms)]}


def generator_ceiling_qps(max_batch_size: int, timeout_s: float = 0.0) -> float:
    """Requests per second the batcher and schedule handle around an empty model (every
    request already waiting): the load test's own limit. A point near it measures the load
    test, not the server."""
    arrivals = np.zeros(CEILING_REQUESTS)
    begin = clock()
    run_load(lambda first, end: None, arrivals, max_batch_size, timeout_s, lead_s=0.0)
    return CEILING_REQUESTS / (clock() - begin)


def _build(config: dict, axes: dict) -> Server:
    from batchbench.worker.job import Workload
    from batchbench.worker.models import compile_model

    work = Workload(config, axes)
    if not work.inference_only:
        compile_model(work.model, config, jit_compile=axes.get("jit_compile", "auto"))
    server = Server(work.model, work.data.x, getattr(work.model, "jit_compile", False) is True)
    server.params = work.params
    return server


def profile(config: dict, axes: dict, max_batch_size: int, sizes: list[int]) -> dict:
    """The latency of one call at each batch size, and the generator's ceiling."""
    server = _build(config, axes)
    server.warm(max_batch_size)
    samples = server.latency_samples_ms(sizes)
    return {"status": "ok", "batch_sizes": sizes, "samples_ms": [samples["busy"][k] for k in sizes],
            "idle_ms": samples["idle_ms"],
            "after_idle_ms": [[state[k] for k in sizes] for state in samples["after_idle"]],
            "generator_ceiling_qps": generator_ceiling_qps(1), "params": server.params}


def _seed(base: int, max_batch_size: int, timeout_ms: float, rate: float) -> int:
    return (base * 1_000_003 + max_batch_size * 7919 + int(round(timeout_ms * 1000)) * 31 + int(rate * 10)) % 2**32


def load_points(config: dict, axes: dict, job: dict) -> dict:
    """Every load point of one max_batch_size: a rate search per timeout (or the given rates),
    each point appended to job["points_path"] as a JSON line as it ends."""
    serving = config["serving"]
    m = int(job["max_batch_size"])
    server = _build(config, axes)
    server.warm(m)
    ceiling = generator_ceiling_qps(m)
    threads = int(serving["num_batch_threads"])
    percentile, slo = float(serving["percentile"]), float(serving["slo_ms"])

    def point(timeout_ms: float, rate: float, repeat: int) -> dict:
        duration = point_duration_s(rate, percentile, serving["min_duration_s"], serving["max_duration_s"])
        if repeat:  # the answer is a claim about sustained load: its repeats sustain it longer
            duration = max(duration, float(serving["confirm_duration_s"]))
        arrivals = schedule(rate, duration, _seed(int(config["sweep"]["seed"]) + 101 * repeat, m, timeout_ms, rate))
        before = resource.getrusage(resource.RUSAGE_SELF)
        started, answered, sizes = run_load(server.run_batch, arrivals, m, timeout_ms / 1e3, threads)
        after = resource.getrusage(resource.RUSAGE_SELF)
        result = summarize(rate, arrivals, started, answered, sizes, percentile, slo)
        row = {**point_row(result, m, timeout_ms, threads, slo, duration, ceiling, repeat),
               # How often the kernel took the CPU away from this process mid-work: other load on
               # the machine, the usual reason one point's tail differs from its neighbours'.
               "preemptions_per_s": (after.ru_nivcsw - before.ru_nivcsw) / max(float(answered[-1]), 1e-9)}
        append_point(job["points_path"], row)
        return row

    answers = search_settings(job["settings"], point, job.get("known") or [], rel_tol=float(serving["rel_tol"]),
                              max_points=int(serving["max_points"]), repeats=int(serving["confirm_repeats"]),
                              holds=lambda row: bool(row.get("held")))
    return {"status": "ok", "max_qps": answers, "generator_ceiling_qps": ceiling}


def append_point(path: str, row: dict) -> None:
    """One finished load point, as a JSON line, on disk before the next point starts."""
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def run_serving_job(request: dict) -> dict:
    from batchbench.worker.job import _scope, _setup

    config, axes = request["config"], request.get("axes") or {}
    device_info = _setup(config, axes)
    with _scope(device_info):
        if request["op"] == "serving_profile":
            return profile(config, axes, int(request["max_batch_size"]), list(request["sizes"]))
        return load_points(config, axes, request["job"])
