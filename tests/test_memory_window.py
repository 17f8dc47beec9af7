"""A trial's memory window: predict's peak is one whole `model.predict` call (serve's: making
the batches and one pass over them), fit's the whole trial; the controller's cap watcher holds
the same window against the cap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from batchbench.runner import WINDOW_PATH_KEY, Worker, worker_env

MiB = 2**20

# A stand-in for the worker server, speaking its protocol (JSON lines) with children that
# allocate what the request says: `before` MiB inside the memory window, then (after marking
# its end when `mark`) `after` MiB, each held for `hold_s`.
FAKE_SERVER = r"""
import json, subprocess, sys
CHILD = '''
import json, os, sys, time
req = json.loads(sys.argv[1])
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")
held = [b"x" * (req["before"] << 20)]
time.sleep(req["hold_s"])
if req.get("free_before_mark"):
    held.clear()
if req["mark"]:
    with open(req["window_path"] + ".tmp", "w") as fh:
        json.dump({"window": "first_call", "peak_host_bytes": hwm()}, fh)
    os.replace(req["window_path"] + ".tmp", req["window_path"])
held.append(b"x" * (req["after"] << 20))
time.sleep(req["hold_s"])
with open(req["result_path"], "w") as fh:
    json.dump({"status": "ok", "window_peak": hwm()}, fh)
'''
events = sys.stdout
events.write(json.dumps({"event": "ready", "pid": 0, "import_s": 0.0, "error": None}) + "\n")
events.flush()
for line in sys.stdin:
    req = json.loads(line)
    if req.get("op") == "exit":
        break
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(req)], start_new_session=True)
    events.write(json.dumps({"event": "started", "pid": child.pid}) + "\n")
    events.flush()
    code = child.wait()
    events.write(json.dumps({"event": "exited", "pid": child.pid, "returncode": code}) + "\n")
    events.flush()
"""


class FakeWorker(Worker):
    def start(self) -> None:
        if self.proc and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen([sys.executable, "-c", FAKE_SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=self.env)
        self._buffer = b""
        assert (self._read_event(30) or {}).get("event") == "ready"


@pytest.fixture
def fake_worker():
    with FakeWorker(worker_env()) as worker:
        yield worker


def job(before: int, after: int, mark: bool, hold_s: float = 0.6, **extra) -> dict:
    return {"op": "trial", "before": before, "after": after, "mark": mark, "hold_s": hold_s, **extra}


CAP = 200 * MiB  # a bare Python child is ~10 MiB resident


def test_the_request_names_the_window_marker_in_the_jobs_scratch_folder(fake_worker):
    outcome = fake_worker.run(job(10, 0, mark=True, hold_s=0.1), memory_cap_bytes=CAP)
    assert outcome.result["status"] == "ok"
    assert WINDOW_PATH_KEY == "window_path" and outcome.memory_window == "first_call"


def test_crossing_the_cap_after_the_window_closed_is_not_killed(fake_worker):
    outcome = fake_worker.run(job(20, 400, mark=True), memory_cap_bytes=CAP)
    assert not outcome.memory_killed
    assert outcome.result and outcome.result["status"] == "ok"
    assert outcome.memory_window == "first_call"
    assert outcome.peak_rss_mib > CAP / MiB  # the watcher still saw (and records) it
    assert outcome.window_peak_rss_mib is not None and outcome.window_peak_rss_mib < CAP / MiB


def test_crossing_the_cap_inside_the_window_is_killed(fake_worker):
    outcome = fake_worker.run(job(400, 0, mark=True, hold_s=3.0), memory_cap_bytes=CAP)
    assert outcome.memory_killed and outcome.result is None
    assert outcome.memory_window is None  # it never got to close its window


def test_a_crossing_too_brief_to_sample_is_caught_by_the_windows_peak(fake_worker):
    """The window's VmHWM, in the marker, is held against the cap as well as the samples."""
    outcome = fake_worker.run(job(400, 0, mark=True, hold_s=0.0, free_before_mark=True), memory_cap_bytes=CAP)
    assert outcome.memory_killed


def test_a_job_that_marks_no_window_is_held_to_the_cap_throughout(fake_worker):
    """fit (and every job that marks nothing): the whole job is its window, as before."""
    outcome = fake_worker.run(job(20, 400, mark=False), memory_cap_bytes=CAP)
    assert outcome.memory_killed and outcome.memory_window is None


def test_no_cap_kills_nothing(fake_worker):
    outcome = fake_worker.run(job(20, 300, mark=True, hold_s=0.2))
    assert not outcome.memory_killed and outcome.result["status"] == "ok"


# ---------------------------------------------------------------- real trials (TensorFlow)

AXES = {"precision": "float32", "jit_compile": "auto", "backend": "tensorflow", "strategy": "default"}


def trial_config(model: dict, samples: int, input_shape: list, **sweep) -> dict:
    """A resolved config as the controller hands one to the worker."""
    from batchbench.config.loading import config_from_dict

    raw = {"name": "window", "model": {**model, "input_shape": input_shape},
           "data": {"synthetic": {"samples": samples, "num_classes": 4}},
           "sweep": {"batch_sizes": [8], "repeats": 1, "min_steps": 1, "min_time_s": 0.0, "warmup_steps": 1,
                     **sweep}}
    resolved = config_from_dict(raw).resolved()
    resolved["sweep"]["stability"] = {**resolved["sweep"]["stability"], "window_steps": 1, "tolerance": None}
    return {**resolved, "_base_dir": "/tmp"}


def trial(config: dict, mode: str, method: str, batch_size: int) -> dict:
    return {"op": "trial", "config": config,
            "trial": {"mode": mode, "method": method, "batch_size": batch_size, "axes": AXES, "phase": "sweep"}}


@pytest.fixture(scope="module")
def worker():
    with Worker(worker_env()) as w:
        yield w


def ok(outcome) -> dict:
    assert outcome.result and outcome.result.get("status") == "ok", outcome.result
    return outcome.result


# Activations dominate: 64x64 images through 32 filters are 0.5 MiB a sample per layer, the
# input 48 KiB a sample.
CNN = {"builtin": "cnn", "kwargs": {"filters": 32, "depth": 2, "hidden": 16}}
CNN_SHAPE = [64, 64, 3]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["predict", "serve"])
def test_the_peak_is_one_call_however_many_timing_windows_follow(worker, method):
    few = trial_config(CNN, 512, CNN_SHAPE, repeats=1, min_time_s=0.0)
    many = trial_config(CNN, 512, CNN_SHAPE, repeats=12, min_time_s=0.3)
    a = ok(worker.run(trial(few, "predict", method, 64)))
    b = ok(worker.run(trial(many, "predict", method, 64)))
    assert a["memory_window"] == b["memory_window"] == ("first_call" if method == "predict" else "first_pass")
    assert len(b["measurement"]["repeat_samples"]) >= 4 * len(a["measurement"]["repeat_samples"])
    assert b["peak_host_mib"] == pytest.approx(a["peak_host_mib"], rel=0.05)


@pytest.mark.slow
def test_a_larger_batch_costs_more_per_call_where_activations_dominate(worker):
    config = trial_config(CNN, 512, CNN_SHAPE)
    small = ok(worker.run(trial(config, "predict", "predict", 8)))
    large = ok(worker.run(trial(config, "predict", "predict", 256)))
    assert large["peak_host_mib"] > small["peak_host_mib"] + 50  # 256 x 0.5 MiB per layer output


@pytest.mark.slow
def test_the_peak_is_real_and_the_watcher_saw_the_same_window(worker):
    config = trial_config(CNN, 512, CNN_SHAPE, repeats=4, min_time_s=0.2)
    outcome = worker.run(trial(config, "predict", "predict", 64), memory_cap_bytes=64 * 2**30)
    result = ok(outcome)
    assert outcome.memory_window == result["memory_window"] == "first_call"
    # VmHWM at the window's end is at least every resident size the watcher sampled in it,
    # and above what the data alone holds (512 x 48 KiB).
    assert result["peak_host_mib"] >= 0.99 * outcome.window_peak_rss_mib
    assert result["peak_host_mib"] > 24


@pytest.mark.slow
def test_fit_keeps_the_whole_trial_as_its_window(worker):
    config = trial_config({"builtin": "mlp", "kwargs": {"hidden": 64, "depth": 1}}, 256, [32], modes=["fit"])
    outcome = worker.run(trial(config, "fit", "", 32), memory_cap_bytes=64 * 2**30)
    assert ok(outcome)["memory_window"] == "trial"
    assert outcome.memory_window == "trial"  # marked at its very end: the cap held throughout


@pytest.mark.slow
def test_a_cpu_hog_beside_the_trial_moves_its_peak_by_a_few_percent_at_most(worker):
    """Generous: the spreads themselves are measured in benchmarks/memory.py (hog_spread)."""
    config = trial_config({"builtin": "mlp", "kwargs": {"hidden": 512, "depth": 3}}, 2048, [256], modes=["fit"])
    request = trial(config, "fit", "", 512)
    quiet = ok(worker.run(request))["peak_host_mib"]
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]
    try:
        busy = ok(worker.run(request))["peak_host_mib"]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert busy == pytest.approx(quiet, rel=0.08)
