"""The measurement rules, on fake clocks: pure Python, no TensorFlow."""

from __future__ import annotations

import random

from batchbench.worker.timing import RepeatClock, WindowRule


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
