"""The measurement rules, on fake clocks (pure Python), and fit's timing on tiny real models (slow)."""

from __future__ import annotations

import random

import pytest

from batchbench.worker.timing import (
    LATENCY_MAX_STEPS,
    LATENCY_MIN_STEPS,
    LATENCY_TIME_S,
    ChunkPlan,
    ChunkRepeats,
    LatencySampler,
    RepeatClock,
    WindowRule,
    plan_chunks,
)


def feed(clock: RepeatClock, durations) -> RepeatClock:
    for d in durations:
        if clock.done:
            break
        clock.add(d)
    return clock


def test_first_step_and_warmup_stay_out_of_the_steady_state():
    clock = feed(RepeatClock(32, warmup_steps=2, min_steps=3, min_time_s=0.0, rule=WindowRule(2)),
                 [5.0, 1.0, 1.0] + [0.01] * 100)
    assert clock.first_step_s == 5.0
    assert clock.step_s == [0.01] * 6  # two repeats of three steps; trace and warmup excluded
    assert clock.summary()["repeat_samples"] == [96, 96]


def test_a_repeat_lasts_min_steps_and_min_time():
    clock = feed(RepeatClock(10, 0, min_steps=2, min_time_s=0.05, rule=WindowRule(3)), [0.0] + [0.01] * 100)
    assert clock.repeat_steps == [5, 5, 5]
    assert all(abs(t - 0.05) < 1e-9 for t in clock.repeat_time_s)
    assert all(abs(tp - 1000) < 1e-6 for tp in clock.throughputs)  # 50 samples / 0.05 s


def test_steady_windows_stop_early_and_are_stable():
    rule = WindowRule(repeats=3, tolerance=0.10, max_windows=12)
    clock = feed(RepeatClock(8, 0, 5, 0.0, rule), [0.0] + [0.002] * 1000)
    assert clock.done and len(clock.throughputs) == 3
    assert clock.summary()["stable"] is True


def test_a_noisy_timing_source_is_flagged_unstable():
    rng = random.Random(7)
    rule = WindowRule(repeats=3, tolerance=0.10, max_windows=8)
    noisy = [0.0] + [rng.choice([0.001, 0.004]) for _ in range(5000)]
    clock = feed(RepeatClock(8, 0, 2, 0.0, rule), noisy)
    assert len(clock.throughputs) == 8  # it kept trying up to max_windows
    assert clock.summary()["stable"] is False


@pytest.mark.parametrize("repeats", [1, 3, 5])
def test_with_rounds_windows_are_not_extended_yet_still_say_whether_they_agreed(repeats):
    from batchbench.worker.job import windows_with_rounds

    single = {"repeats": repeats, "rounds": {"min": 1, "max": 1},
              "stability": {"window_steps": 2, "tolerance": 0.10, "max_windows": 8}}
    assert windows_with_rounds(single) == single  # one round: its windows extend until they agree
    later = windows_with_rounds({**single, "rounds": {"min": 3, "max": 6}})
    assert single["stability"]["max_windows"] == 8  # nothing shared is touched
    rng = random.Random(7)
    noisy = [0.0] + [rng.choice([0.001, 0.004]) for _ in range(5000)]
    first = feed(RepeatClock(8, 0, 2, 0.0, WindowRule.from_sweep(single, windows=True)), noisy)
    again = feed(RepeatClock(8, 0, 2, 0.0, WindowRule.from_sweep(later, windows=True)), noisy)
    assert len(first.throughputs) == 8 and len(again.throughputs) == max(repeats, 3) < len(first.throughputs)
    assert first.summary()["stable"] is False and again.summary()["stable"] is False
    steady = feed(RepeatClock(8, 0, 2, 0.0, WindowRule.from_sweep(later, windows=True)), [0.0] + [0.002] * 1000)
    assert len(steady.throughputs) == max(repeats, 3) and steady.summary()["stable"] is True


def test_fixed_repeats_have_no_stability_verdict():
    clock = feed(RepeatClock(8, 0, 1, 0.0, WindowRule(4)), [0.0] + [0.001] * 10)
    assert len(clock.throughputs) == 4 and clock.summary()["stable"] is None


def test_repeats_hold_whole_passes_when_a_pass_is_short():
    """Every 4th step pays an epoch boundary; aligned repeats all see the same share of them."""
    steps = [0.0] + [0.010 if i % 4 == 3 else 0.001 for i in range(400)]
    aligned = feed(RepeatClock(8, 0, min_steps=5, min_time_s=0.0, rule=WindowRule(5), period=4), steps)
    assert all(n % 4 == 0 for n in aligned.repeat_steps)
    assert max(aligned.throughputs) / min(aligned.throughputs) - 1 < 1e-9
    unaligned = feed(RepeatClock(8, 0, min_steps=5, min_time_s=0.0, rule=WindowRule(5)), steps)
    assert max(unaligned.throughputs) / min(unaligned.throughputs) - 1 > 0.2  # what alignment prevents


def test_long_passes_are_not_waited_for():
    clock = feed(RepeatClock(8, 0, min_steps=5, min_time_s=0.0, rule=WindowRule(3), period=10_000),
                 [0.0] + [0.01] * 100)
    assert clock.repeat_steps == [5, 5, 5]  # a 100 s pass would make every repeat far too long


# ---------------------------------------------------------------------- fit: chunks and latency
def test_the_latency_phase_is_short_and_bounded():
    fast = LatencySampler(warmup_steps=2)
    for _ in range(1000):
        if fast.done:
            break
        fast.add(0.0001)
    assert fast.first_step_s == 0.0001 and len(fast.step_s) == LATENCY_MAX_STEPS  # capped before 0.1 s
    slow = feed(LatencySampler(warmup_steps=0), [3.0] + [1.0] * 100)
    assert len(slow.step_s) == LATENCY_MIN_STEPS  # 10 steps, however long they take
    timed = feed(LatencySampler(warmup_steps=1), [1.0, 1.0] + [0.005] * 100)
    assert LATENCY_MIN_STEPS < len(timed.step_s) < LATENCY_MAX_STEPS
    assert sum(timed.step_s) >= LATENCY_TIME_S > sum(timed.step_s[:-1])
    assert timed.steps_run == 2 + len(timed.step_s)


def test_with_several_processes_the_latency_phase_has_a_fixed_length():
    for step in (0.0001, 0.01, 1.0):
        sampler = feed(LatencySampler(warmup_steps=2, time_s=0.0), [step] * 1000)
        assert len(sampler.step_s) == LATENCY_MIN_STEPS and sampler.steps_run == 1 + 2 + LATENCY_MIN_STEPS


def chunks(repeats: ChunkRepeats, steps: int, durations) -> ChunkRepeats:
    now = 0.0
    for d in durations:
        if repeats.done:
            break
        now += d
        repeats.chunk_end(steps, now)
    return repeats


def test_chunk_repeats_skip_the_warmup_chunk_and_merge_chunks_to_min_steps_and_min_time():
    repeats = chunks(ChunkRepeats(8, min_steps=10, min_time_s=0.25, rule=WindowRule(3)), 4, [9.0] + [0.1] * 100)
    # 4-step chunks of 0.1 s: 3 chunks make 12 steps >= 10 and 0.3 s >= 0.25
    assert repeats.repeat_steps == [12, 12, 12] and repeats.chunks == 1 + 9
    summary = repeats.summary(1.5, [0.02])
    assert summary["repeat_samples"] == [96, 96, 96] and summary["steps"] == 36
    for samples, seconds, tp in zip(summary["repeat_samples"], summary["repeat_time_s"], repeats.throughputs,
                                    strict=True):
        assert abs(tp - samples / seconds) < 1e-9
    assert summary["first_step_s"] == 1.5 and summary["step_s"] == [0.02] and summary["stable"] is None


def test_chunk_repeats_start_and_stop_the_meter_around_the_steady_state():
    events = []

    class Meter:
        def start(self):
            events.append("start")

        def stop(self):
            events.append("stop")
            return 42.0

    repeats = ChunkRepeats(8, 1, 0.0, WindowRule(2), meter=Meter())
    repeats.chunk_end(5, 1.0)
    assert events == ["start"]  # the warm-up chunk ended
    for now in (2.0, 3.0, 4.0):
        repeats.chunk_end(5, now)
    assert events == ["start", "stop"] and repeats.energy_j == 42.0 and len(repeats.throughputs) == 2


def test_short_passes_make_whole_pass_chunks():
    plan = plan_chunks(pass_steps=16, need_steps=5, step_s=0.001, min_time_s=0.25)
    assert plan == ChunkPlan(None, 16, 16)


def test_long_passes_make_chunks_that_divide_the_pass():
    plan = plan_chunks(pass_steps=1000, need_steps=5, step_s=0.01, min_time_s=0.25)
    assert plan.steps_per_epoch == plan.chunk_steps and plan.batches == 1000
    assert 1000 % plan.chunk_steps == 0 and plan.chunk_steps * 0.01 >= 0.25  # one chunk lasts a repeat
    prime = plan_chunks(pass_steps=997, need_steps=5, step_s=0.01, min_time_s=0.25)
    assert prime.batches % prime.chunk_steps == 0 and 997 - prime.chunk_steps < prime.batches <= 997
    spe = plan_chunks(pass_steps=1000, need_steps=5, step_s=0.01, min_time_s=0.25, steps_per_execution=8)
    assert spe.chunk_steps % 8 == 0 and spe.batches % spe.chunk_steps == 0


def test_a_repeat_of_a_pass_or_more_is_whole_passes():
    # the epochs rule: min_steps = epochs x steps per pass
    assert plan_chunks(pass_steps=100, need_steps=300, step_s=1.0, min_time_s=0.0).steps_per_epoch is None
    # a chunk over half the pass would leave most of the data out: whole passes instead
    assert plan_chunks(pass_steps=16, need_steps=9, step_s=0.1, min_time_s=0.0).steps_per_epoch is None


def test_several_processes_plan_without_a_clock():
    plans = {plan_chunks(1000, 5, step_s, 0.0, timed=False) for step_s in (None, 0.0001, 10.0)}
    assert len(plans) == 1 and next(iter(plans)).chunk_steps == 5
    assert plan_chunks(16, 5, 0.0001, 0.0, timed=False).steps_per_epoch is None  # a pass is at most 4 repeats


# ---------------------------------------------------------------------- fit on a real model
SWEEP = {"repeats": 3, "min_steps": 3, "min_time_s": 0.02, "warmup_steps": 1}


def tiny_fit_model():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(8,))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(16, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def tiny_data(samples: int):
    import numpy as np

    from batchbench.worker.data import Dataset

    rng = np.random.default_rng(0)
    return Dataset(rng.standard_normal((samples, 8)).astype("float32"),
                   rng.integers(0, 3, size=(samples,)).astype("int32"), "synthetic")


def spy_fits(model) -> list[dict]:
    """Record every model.fit call's callbacks and steps_per_epoch."""
    calls: list[dict] = []
    real_fit = model.fit

    def fit(*args, **kwargs):
        calls.append({"callbacks": list(kwargs.get("callbacks") or []), "steps_per_epoch": kwargs.get("steps_per_epoch"),
                      "samples": len(args[0] if args else kwargs["x"]),
                      "iterations_before": int(model.optimizer.iterations.numpy())})
        history = real_fit(*args, **kwargs)
        calls[-1]["iterations"] = int(model.optimizer.iterations.numpy()) - calls[-1]["iterations_before"]
        return history

    model.fit = fit
    return calls


KEYS = {"first_step_s", "step_s", "repeat_samples", "repeat_time_s", "steps", "stable", "energy_j",
        "steps_per_epoch", "epochs_run", "final_loss", "compute_only"}


@pytest.mark.slow
def test_fit_times_repeats_without_batch_hooks_and_latency_in_a_phase_of_its_own():
    from batchbench.worker.fit import has_batch_hooks, measure_fit

    model = tiny_fit_model()
    calls = spy_fits(model)
    out = measure_fit(model, tiny_data(256), 16, SWEEP)
    assert set(out) == KEYS
    sync, timed, compute = calls  # the synchronised phase, the timed repeats, the compute-only phase
    assert all(has_batch_hooks(cb) for cb in sync["callbacks"])
    assert timed["callbacks"] and not any(has_batch_hooks(cb) for cb in timed["callbacks"])
    # the latency samples come from the first fit alone: first step + warm-up + samples
    assert sync["iterations"] == 1 + SWEEP["warmup_steps"] + len(out["step_s"])
    assert LATENCY_MIN_STEPS <= len(out["step_s"]) <= LATENCY_MAX_STEPS and all(s > 0 for s in out["step_s"])
    assert out["first_step_s"] > 0
    # the repeats: the count asked for, each at least min_steps and min_time_s, samples / time
    assert len(out["repeat_samples"]) == SWEEP["repeats"] == len(out["repeat_time_s"])
    assert all(s >= SWEEP["min_steps"] * 16 for s in out["repeat_samples"])
    assert all(t >= SWEEP["min_time_s"] for t in out["repeat_time_s"])
    assert out["steps"] * 16 == sum(out["repeat_samples"])
    # every step counted: the timed fit ran its warm-up chunk and the repeats' steps, no more
    assert timed["iterations"] > out["steps"] and timed["iterations"] - out["steps"] <= out["steps_per_epoch"]
    assert out["steps_per_epoch"] == 16 and out["final_loss"] is not None
    assert out["epochs_run"] == -(-(sync["iterations"] + timed["iterations"]) // 16)
    # the input-bound diagnosis: the same arrays, no batch hooks, repeats as long as the measured ones
    assert not any(has_batch_hooks(cb) for cb in compute["callbacks"]) and compute["samples"] == 256
    only = out["compute_only"]
    median_steps = sorted(n // 16 for n in out["repeat_samples"])[1]
    assert len(only["repeat_samples"]) == 3
    assert all(median_steps <= n // 16 < median_steps + only["batches"] for n in only["repeat_samples"])
    # a warm-up chunk, then a warm-up repeat, then the repeats kept
    assert compute["iterations"] > only["batches"] + sum(only["repeat_samples"]) // 16 >= only["batches"] + 3


@pytest.mark.slow
def test_fit_epochs_rule_makes_every_repeat_whole_passes():
    from batchbench.worker.fit import measure_fit

    model = tiny_fit_model()
    calls = spy_fits(model)
    out = measure_fit(model, tiny_data(128), 32, {**SWEEP, "epochs": 2, "repeats": 2, "min_time_s": 0.0})
    assert out["steps_per_epoch"] == 4 and calls[1]["steps_per_epoch"] is None
    assert [s // 32 for s in out["repeat_samples"]] == [8, 8]  # 2 epochs x 4 steps each
    assert calls[1]["iterations"] == 4 + 16


@pytest.mark.slow
def test_fit_chunks_count_every_step_and_processes_run_equal_steps():
    """Several processes (here: two shares of the data, run one after the other): no clock
    decides a count, so both run the same steps; chunks of a long pass count exactly."""
    from batchbench.worker.fit import measure_fit

    sweep = {**SWEEP, "min_time_s": 0.0}
    runs = []
    for pid in (0, 1):
        model = tiny_fit_model()
        calls = spy_fits(model)
        out = measure_fit(model, tiny_data(1024), 16, sweep, processes=2, process_id=pid)
        runs.append((out, calls))
    (a, calls_a), (b, calls_b) = runs
    assert [c["iterations"] for c in calls_a] == [c["iterations"] for c in calls_b]
    assert a["steps"] == b["steps"] and a["repeat_samples"] == b["repeat_samples"]
    timed = calls_a[1]
    assert timed["steps_per_epoch"] and 64 % timed["steps_per_epoch"] == 0  # 64 steps a pass, cut evenly
    assert timed["iterations"] == timed["steps_per_epoch"] + a["steps"]  # a warm-up chunk, then the repeats
    assert len(a["step_s"]) == LATENCY_MIN_STEPS


@pytest.mark.slow
def test_an_epochs_first_step_is_timed_from_its_own_start_not_across_the_pass_boundary(monkeypatch):
    import batchbench.worker.fit as fit

    now = [0.0]
    monkeypatch.setattr(fit, "clock", lambda: now[0])

    class Sink:
        def __init__(self):
            self.added, self.done = [], False

        def add(self, seconds):
            self.added.append(seconds)

    sink = Sink()
    timer = fit.StepTimer(sink)
    for _ in range(3):  # 3 epochs of 2 steps, each step 1 s; 10 s between epochs (epoch end, a new iterator)
        for batch in range(2):
            timer.on_train_batch_begin(batch)
            now[0] += 1.0
            timer.on_train_batch_end(batch)
        now[0] += 10.0
    assert sink.added == [1.0] * 6
