"""Rounds: the pooled row and its interval from known samples, the seeded shuffled order,
adaptive stopping, OOM in a later round, resume after a kill mid-round, and the noise-aware
pick. A fake worker answers the trials: no processes, no TensorFlow."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest

from batchbench.config import config_from_dict
from batchbench.config.schema import RoundsSpec
from batchbench.errors import InterruptedSweep
from batchbench.recommend import recommend_group
from batchbench.results import load_trial_records, read_rows
from batchbench.rounds import contenders, pool, precision_note, round_order, settled, wants_round
from batchbench.runner import JobOutcome
from batchbench.stats import round_interval, t_quantile
from batchbench.sweep import Sweep, SweepOptions
from tests.conftest import tiny_config
from tests.test_sweep_loop import PREFLIGHT


# ---------------------------------------------------------------- pure pieces
def test_interval_from_known_round_figures():
    values = [900.0, 1000.0, 1100.0]
    iv = round_interval(values)
    logs = [math.log(v) for v in values]
    half = t_quantile(0.95, 2) * statistics.stdev(logs) / math.sqrt(3)
    assert iv.center == pytest.approx(math.exp(statistics.fmean(logs)))
    assert iv.low == pytest.approx(iv.center * math.exp(-half)) and iv.high == pytest.approx(iv.center * math.exp(half))
    assert iv.low < min(values) and iv.high > max(values)  # 3 rounds: t(2) = 4.3, wide
    assert round_interval([1000.0]) is None
    tighter = round_interval([990.0, 1000.0, 1010.0, 995.0, 1005.0])
    assert tighter.rel_half_width < iv.rel_half_width


def test_pool_sums_counts_and_keeps_the_highest_peak():
    rows = [{"trial_id": "fit-b8", "batch_size": 8, "status": "ok", "round": k, "throughput_sps": tp,
             "repeats": 3, "samples": 240, "timed_s": 0.1, "wall_s": 1.0, "steps": 30, "peak_host_mib": peak,
             "headroom_mib": 1000 - peak, "first_step_s": 0.2, "stable": None}
            for k, tp, peak in ((1, 1000.0, 500.0), (2, 1100.0, 520.0), (3, 950.0, 510.0))]
    samples = [{"throughput_sps": [tp * 0.98, tp, tp * 1.01], "step_ms": [1.0, 2.0, 3.0]} for tp in (1000, 1100, 950)]
    row, pooled = pool(rows, samples)
    assert row["rounds"] == 3 and row["repeats"] == 9 and row["samples"] == 720 and row["wall_s"] == pytest.approx(3.0)
    assert row["peak_host_mib"] == 520.0 and row["headroom_mib"] == 480.0
    assert row["throughput_sps_ci_low"] < row["throughput_sps"] < row["throughput_sps_ci_high"]
    assert row["throughput_sps_min"] == pytest.approx(950 * 0.98) and row["throughput_sps_max"] == pytest.approx(1111)
    assert pooled["round"] == [0, 0, 0, 1, 1, 1, 2, 2, 2] and len(pooled["throughput_sps"]) == 9
    assert "round" not in row


def test_a_shared_round_keeps_the_fresh_rounds_first_step_and_peak():
    # round 1 ran alone (a cold trace, its own peak); rounds 2-3 shared a process whose earlier
    # sizes had traced already and whose memory held the largest size's peak (none reported)
    rows = [{"trial_id": "fit-b8", "batch_size": 8, "status": "ok", "round": k, "throughput_sps": 1000.0 + k,
             "first_step_s": first, "peak_host_mib": peak, "shared_round": shared}
            for k, first, peak, shared in ((1, 0.4, 500.0, None), (2, 0.01, None, True), (3, 0.02, None, True))]
    row, _ = pool(rows, [None] * 3)
    assert row["first_step_s"] == 0.4 and row["peak_host_mib"] == 500.0 and row["rounds"] == 3
    row, _ = pool(rows[1:], [None] * 2)  # no fresh round (a resumed edge case): the shared ones stand
    assert row["first_step_s"] == pytest.approx(0.015)


def test_a_later_round_out_of_memory_fails_the_point_and_keeps_its_figures():
    rows = [{"trial_id": "fit-b8", "batch_size": 8, "status": "ok", "round": 1, "throughput_sps": 1000.0},
            {"trial_id": "fit-b8", "batch_size": 8, "status": "oom", "round": 2, "error": "crossed the cap",
             "oom_kind": "host"}]
    row, _ = pool(rows, [{"throughput_sps": [1000.0]}, None])
    assert row["status"] == "oom" and row["oom_kind"] == "host" and "round 2 of 2" in row["error"]
    assert row["throughput_sps"] == 1000.0 and row["rounds"] == 1


def test_later_rounds_are_shuffled_by_the_seed_and_the_first_is_the_ladder():
    points = list(range(12))
    assert round_order(points, 1, seed=0) == points
    second = round_order(points, 2, seed=0)
    assert sorted(second) == points and second != points
    assert round_order(points, 2, seed=0) == second  # the same on resume
    assert round_order(points, 3, seed=0) != second and round_order(points, 2, seed=1) != second


def test_rounds_stop_when_the_interval_is_narrow_enough():
    spec = RoundsSpec(min=3, max=6, rel_half_width=0.03)
    row = lambda tp: {"status": "ok", "throughput_sps": tp}  # noqa: E731
    steady = [row(1000.0), row(1001.0), row(999.0)]
    noisy = [row(800.0), row(1000.0), row(1200.0)]
    assert wants_round(steady[:2], 3, spec) and not wants_round(steady, 4, spec)
    assert wants_round(noisy, 4, spec) and not wants_round(noisy * 2, 7, spec)  # max reached
    assert not wants_round(noisy, 4, spec, adaptive=False)  # multi-process: exactly min rounds
    assert not wants_round([row(1000.0), {"status": "oom"}], 3, spec)
    assert RoundsSpec.model_validate(4).fixed and RoundsSpec.model_validate(4).min == 4


def test_contenders_are_the_best_and_the_points_whose_interval_reaches_near_it():
    def row(batch, tp=None, low=None, high=None, mode="fit", status="ok"):
        return {"trial_id": f"{mode}-b{batch}", "mode": mode, "method": "predict" if mode == "predict" else "",
                "batch_size": batch, "status": status, "phase": "ladder", "throughput_sps": tp,
                "throughput_sps_ci_low": low, "throughput_sps_ci_high": high}

    rows = [row(16, 300.0, 250.0, 350.0), row(64, 880.0, 800.0, 960.0), row(256, 1000.0, 980.0, 1020.0),
            row(512, 850.0, 840.0, 870.0), row(1024, status="oom")]
    # 0.90 x 980 = 882: b64's interval reaches it, b512's does not, b16 is far below
    assert contenders(rows) == {"fit-b64", "fit-b256"}
    assert settled(rows) == {"fit-b16", "fit-b512"}
    # each group has its own best: a slow predict group's best contends
    predict = [row(16, 100.0, 90.0, 110.0, mode="predict"), row(64, 50.0, 45.0, 55.0, mode="predict")]
    assert contenders(rows + predict) == {"fit-b64", "fit-b256", "predict-b16"}
    # with an SLO every predict point stays in: the SLO's pick reads latency
    assert contenders(rows + predict, slo_ms=5.0) == {"fit-b64", "fit-b256", "predict-b16", "predict-b64"}
    rows[0]["throughput_sps_ci_high"] = None  # no interval yet: it may still be anything
    assert contenders(rows) == {"fit-b16", "fit-b64", "fit-b256"}
    assert contenders([]) == set()


def test_the_precision_note_holds_only_the_contenders_to_the_target():
    spec = RoundsSpec(min=3, max=6, rel_half_width=0.05)
    narrow, wide = round_interval([1000.0, 1001.0, 999.0]), round_interval([500.0, 800.0, 650.0])
    note, reached = precision_note({"a": narrow, "b": wide}, spec, settled={"b"})
    assert reached and "1 point(s) well below their group's best kept 3 round(s)" in note
    note, reached = precision_note({"a": narrow, "b": wide}, spec)
    assert not reached and "1 of 2 points did not reach" in note


# ---------------------------------------------------------------- the pick
def _row(batch, tp, low=None, high=None):
    return {"mode": "fit", "method": "", "batch_size": batch, "status": "ok", "phase": "ladder",
            "throughput_sps": tp, "throughput_sps_ci_low": low, "throughput_sps_ci_high": high}


def test_the_pick_is_the_smallest_size_tied_with_the_best():
    rows = [_row(64, 700.0, 650, 750), _row(128, 930.0, 900, 1010), _row(256, 1000.0, 980, 1020),
            _row(512, 940.0, 900, 970)]
    rec = recommend_group(rows)
    assert rec["best_throughput"] == 256
    assert rec["tied_with_best"] == [128, 256] and rec["recommended"] == 128  # 512's interval misses 256's
    # wide intervals never tie a size far below the best
    wide = [_row(64, 800.0, 100, 5000), _row(256, 1000.0, 100, 5000)]
    assert recommend_group(wide)["recommended"] == 256
    # one round (no interval): within 5% of the best counts as tied
    flat = [_row(128, 960.0), _row(256, 1000.0)]
    assert recommend_group(flat)["recommended"] == 128


def test_the_pick_is_unsettled_where_a_ratio_interval_crosses_the_floor():
    from batchbench.recommend import FLOOR, NEAR_BEST, open_edge, ratio_interval

    # 256 at 0.88 of 512: below the floor, but its interval over the best's reaches above it
    rows = [_row(64, 500.0, 450, 550), _row(256, 880.0, 790, 980), _row(512, 1000.0, 930, 1070)]
    rec = recommend_group(rows)
    assert rec["recommended"] == 512 and rec["unsettled"] == [256]
    low, high = ratio_interval(rows[1], rows[2])
    assert low < FLOOR <= high and math.isclose(math.sqrt(low * high), 0.88, rel_tol=1e-9)  # centred on the ratio
    # the same figures, measured more tightly: settled, and said as an empty list
    tight = [_row(64, 500.0, 490, 510), _row(256, 880.0, 870, 890), _row(512, 1000.0, 990, 1010)]
    assert recommend_group(tight)["unsettled"] == [] and recommend_group(tight)["recommended"] == 512
    # the pick itself, tied on the overlap of wide intervals, can fall out of the tie: unsettled
    edge = [_row(256, 920.0, 780, 1080), _row(512, 1000.0, 850, 1170)]
    rec = recommend_group(edge)
    assert rec["recommended"] == 256 and rec["unsettled"] == [256]
    # a size above the pick cannot change it, however open its tie
    above = [_row(128, 990.0, 980, 1000), _row(256, 880.0, 700, 1100), _row(512, 1000.0, 990, 1010)]
    rec = recommend_group(above)
    assert rec["recommended"] == 128 and rec["unsettled"] == []
    # the other edge: 256 at 0.935 with an interval reaching above 0.95, where it would be tied
    near = [_row(256, 935.0, 920, 950), _row(512, 1000.0, 985, 1015)]
    rec = recommend_group(near)
    assert rec["recommended"] == 512 and rec["unsettled"] == [256]
    assert open_edge(near[0], near[1]) == (NEAR_BEST, ratio_interval(near[0], near[1]))
    # one round, no intervals, or a best without one: nothing to say either way
    assert "unsettled" not in recommend_group([_row(256, 880.0), _row(512, 1000.0)])
    assert "unsettled" not in recommend_group([_row(256, 880.0, 790, 980), _row(512, 1000.0)])


# ---------------------------------------------------------------- the loop, with a fake worker
class RoundWorker:
    """Each trial's throughput drawn around a per-size level; OOM from a rule."""

    def __init__(self, noise=0.0, oom=lambda batch, number: False, stop_after=None, reports=False):
        self.requests: list[dict] = []
        self.rng = random.Random(1)
        self.noise, self.oom, self.stop_after = noise, oom, stop_after
        self.reports = reports  # a shared process that dies hands over the sizes it finished first
        self.on_trial = None
        self.on_shared = None  # called with the sizes a shared process finished; True: it dies there

    def run(self, request, **kw):
        self.requests.append(request)
        if request["op"] == "preflight":
            return JobOutcome(result=dict(PREFLIGHT), returncode=0)
        t = request["trial"]
        if self.on_trial:
            self.on_trial(len([r for r in self.requests if r["op"] == "trial"]))
        if t.get("shared"):  # a shared round: one process, the whole machine's speed shared by its sizes
            factor = 1 + self.noise * self.rng.uniform(-1, 1)
            shared = []
            for b in t["shared"]:
                if self.oom(b, t["round"]) or (self.on_shared and self.on_shared(shared)):  # the process dies
                    partial = {"status": "partial", "shared": shared} if self.reports and shared else None
                    request["finished"] = [b for b, _ in zip(t["shared"], (partial or {}).get("shared", []))]
                    return JobOutcome(result=partial, returncode=-9, memory_killed=self.oom(b, t["round"]))
                shared.append({**self.result(b, factor), "peak_host_mib": None, "memory_window": "shared"})
            return JobOutcome(result={"status": "ok", "shared": shared}, returncode=0)
        if self.oom(t["batch_size"], t["round"]):
            return JobOutcome(result={"status": "oom", "error": "out of memory"}, returncode=0)
        return JobOutcome(result=self.result(t["batch_size"], 1 + self.noise * self.rng.uniform(-1, 1)), returncode=0)

    def result(self, batch, factor):
        level = 1000.0 * min(batch, 32) / 32
        times = [batch * 10 / (level * factor * (1 + 0.01 * i)) for i in range(3)]
        return {"status": "ok", "peak_host_mib": 500.0 + batch, "measurement": {
            "repeat_samples": [batch * 10] * 3, "repeat_time_s": times,
            "step_s": [0.001] * 30, "first_step_s": 0.2, "steps": 30}}

    def trials(self):
        """(batch size, round) of every round-trial measured: a shared request counts once per
        size it handed over (when it failed as a whole, its other sizes run alone and count there)."""
        out = []
        for r in self.requests:
            if r["op"] != "trial":
                continue
            t = r["trial"]
            if not t.get("shared"):
                out.append((t["batch_size"], t["round"]))
            else:
                out += [(b, t["round"]) for b in r.get("finished", t["shared"])]
        return out

    def interrupt(self):
        pass

    def close(self):
        pass


def run_sweep(tmp_path, worker, resume=False, **sweep):
    config = config_from_dict(tiny_config(sweep={"batch_sizes": [8, 16, 32, 64], "modes": ["fit"], **sweep}),
                              base_dir=tmp_path)
    options = SweepOptions(out=None if resume else tmp_path / "run", resume=tmp_path / "run" if resume else None,
                           worker_factory=lambda *a: worker)
    return Sweep(config, options).run()


def trials(worker):
    return worker.trials()


def test_fixed_rounds_run_the_ladder_then_shuffled_rounds_and_pool_one_row_per_point(tmp_path):
    worker = RoundWorker()
    outcome = run_sweep(tmp_path, worker, rounds=3)
    ran = trials(worker)
    assert ran[:4] == [(8, 1), (16, 1), (32, 1), (64, 1)]
    assert len(ran) == 12 and sorted(b for b, k in ran if k == 2) == [8, 16, 32, 64]
    assert [b for b, k in ran if k == 2] != [8, 16, 32, 64] or [b for b, k in ran if k == 3] != [8, 16, 32, 64]
    rows = read_rows(tmp_path / "run" / "results.csv")
    assert [r["batch_size"] for r in rows] == [8, 16, 32, 64] and {r["rounds"] for r in rows} == {3}
    assert all(r["repeats"] == 9 for r in rows)
    assert len(load_trial_records(tmp_path / "run")) == 12
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert len(run["rounds"]["fit-b8"]) == 3 and run["samples"]["fit-b8"]["round"].count(2) == 3
    assert outcome.summary["recommendations"]["fit"]["recommended"] in (32, 64)


def test_adaptive_rounds_add_rounds_only_where_the_interval_is_wide(tmp_path):
    worker = RoundWorker(noise=0.0)
    run_sweep(tmp_path, worker, rounds={"min": 2, "max": 5, "rel_half_width": 0.05})
    assert max(k for _, k in trials(worker)) == 2  # identical rounds: nothing more to learn
    noisy = RoundWorker(noise=0.3)
    outcome = run_sweep(tmp_path / "noisy", noisy, rounds={"min": 2, "max": 5, "rel_half_width": 0.01})
    assert max(k for _, k in trials(noisy)) == 5
    assert "did not reach ±1%" in outcome.summary["rounds"]
    # rounds past the minimum go to the sizes that compete with the best (32 and 64 here), not
    # to 8 and 16 at a quarter and a half of it
    per_size = {b: max(k for s, k in trials(noisy) if s == b) for b in (8, 16, 32, 64)}
    assert per_size[32] == per_size[64] == 5 and per_size[8] <= 4  # 2 rounds (t = 12.7) tie anything
    spread = RoundWorker(noise=0.1)
    outcome = run_sweep(tmp_path / "spread", spread, rounds={"min": 3, "max": 5, "rel_half_width": 0.01})
    per_size = {b: max(k for s, k in trials(spread) if s == b) for b in (8, 16, 32, 64)}
    assert per_size[8] == per_size[16] == 3 and per_size[32] == per_size[64] == 5
    assert "2 point(s) well below their group's best kept 3 round(s)" in outcome.summary["rounds"]


def test_an_oom_in_a_later_round_stops_the_larger_sizes_there(tmp_path):
    worker = RoundWorker(oom=lambda batch, number: batch >= 32 and number == 2)
    run_sweep(tmp_path, worker, rounds=3)
    ran = trials(worker)
    second = [b for b, k in ran if k == 2]
    assert all(b <= 32 or (b, 2) not in ran[ran.index((32, 2)) + 1:] for b in second)
    assert (64, 3) not in ran and (32, 3) not in ran and (8, 3) in ran
    rows = {r["batch_size"]: r for r in read_rows(tmp_path / "run" / "results.csv")}
    assert rows[32]["status"] == "oom" and rows[8]["status"] == "ok"


def test_later_rounds_share_one_process_per_group_in_the_seeded_order(tmp_path):
    worker = RoundWorker()
    run_sweep(tmp_path, worker, rounds=3)
    requests = [r["trial"] for r in worker.requests if r["op"] == "trial"]
    # round 1: the ordered ladder, one fresh process per point (it measures memory)
    assert [(t["batch_size"], t.get("shared")) for t in requests[:4]] == [(b, None) for b in (8, 16, 32, 64)]
    # rounds 2 and 3: one process each for the group, its sizes in a shuffled order
    assert [t["round"] for t in requests[4:]] == [2, 3]
    orders = [t["shared"] for t in requests[4:]]
    assert all(sorted(o) == [8, 16, 32, 64] for o in orders) and orders != [[8, 16, 32, 64]] * 2
    again = RoundWorker()
    run_sweep(tmp_path / "again", again, rounds=3)
    assert [r["trial"].get("shared") for r in again.requests if r["op"] == "trial"] == [t.get("shared") for t in requests]
    records = load_trial_records(tmp_path / "run")
    assert records["fit-b32-r2"]["row"]["shared_round"] is True and records["fit-b32-r1"]["row"].get("shared_round") is None
    # memory is a first-round figure: the shared rounds carry none, the pooled peak is round 1's
    assert records["fit-b32-r2"]["row"]["peak_host_mib"] is None
    rows = {r["batch_size"]: r for r in read_rows(tmp_path / "run" / "results.csv")}
    assert rows[32]["peak_host_mib"] == records["fit-b32-r1"]["row"]["peak_host_mib"]


def test_a_shared_process_that_dies_reruns_its_sizes_alone_and_the_oom_lands_on_its_size(tmp_path):
    worker = RoundWorker(oom=lambda batch, number: batch == 64 and number >= 2)
    run_sweep(tmp_path, worker, rounds=3)
    ran = trials(worker)
    assert sorted(b for b, k in ran if k == 2) == [8, 16, 32, 64]  # alone after the shared process died
    assert sorted(b for b, k in ran if k == 3) == [8, 16, 32]  # above round 2's OOM: not run again
    round3 = [r["trial"] for r in worker.requests if r["op"] == "trial" and r["trial"]["round"] == 3]
    assert len(round3) == 1 and sorted(round3[0]["shared"]) == [8, 16, 32]
    rows = {r["batch_size"]: r for r in read_rows(tmp_path / "run" / "results.csv")}
    assert rows[64]["status"] == "oom" and rows[32]["status"] == "ok" and rows[32]["rounds"] == 3


@pytest.mark.parametrize("sweep", [{"rounds": {"min": 2, "max": 2, "shared": False}},
                                   {"rounds": 2, "memory_limit": "4GiB"},
                                   {"rounds": 2, "find_max": True}])
def test_rounds_are_not_shared_when_off_or_under_a_memory_question(tmp_path, sweep):
    worker = RoundWorker()
    run_sweep(tmp_path, worker, **sweep)
    later = [r["trial"] for r in worker.requests if r["op"] == "trial" and r["trial"]["round"] == 2]
    assert later and all(not t.get("shared") for t in later)


@pytest.mark.parametrize("shared", [True, False])
def test_resume_after_a_kill_mid_round_runs_only_the_missing_round_trials(tmp_path, shared):
    first = RoundWorker()
    # shared rounds: 4 ladder trials, then one process per later round; else one per round-trial
    kill_at = 6 if shared else 7

    def kill(n):
        if n == kill_at:
            raise KeyboardInterrupt  # the sweep dies in its last (shared) or second round

    first.on_trial = kill
    with pytest.raises(KeyboardInterrupt):
        run_sweep(tmp_path, first, rounds={"min": 3, "max": 3, "shared": shared})
    done = set(trials(first)[:8 if shared else 6])
    again = RoundWorker()
    run_sweep(tmp_path, again, resume=True, rounds={"min": 3, "max": 3, "shared": shared})
    assert set(trials(again)) == {(b, k) for b in (8, 16, 32, 64) for k in (1, 2, 3)} - done
    assert len([r for r in again.requests if r["op"] == "trial"]) == (1 if shared else 6)
    rows = read_rows(tmp_path / "run" / "results.csv")
    assert [r["rounds"] for r in rows] == [3, 3, 3, 3]


def test_a_shared_process_that_dies_keeps_the_sizes_it_finished_and_runs_the_rest_alone(tmp_path):
    worker = RoundWorker(oom=lambda batch, number: batch == 64 and number == 2, reports=True)
    run_sweep(tmp_path, worker, rounds=2)
    shared = next(r for r in worker.requests if r["op"] == "trial" and r["trial"]["round"] == 2)
    order = shared["trial"]["shared"]
    before = order[:order.index(64)]
    alone = [r["trial"]["batch_size"] for r in worker.requests
             if r["op"] == "trial" and r["trial"]["round"] == 2 and not r["trial"].get("shared")]
    # the sizes the process finished before it died are kept, not measured again; the rest
    # (from the one that killed it on) run one process each, so the OOM lands on 64
    assert shared["finished"] == before and sorted(before + alone) == [8, 16, 32, 64] and alone[0] == 64
    records = load_trial_records(tmp_path / "run")
    assert all(records[f"fit-b{b}-r2"]["row"]["shared_round"] is True for b in before)
    assert all(not records[f"fit-b{b}-r2"]["row"].get("shared_round") for b in alone)
    rows = {r["batch_size"]: r for r in read_rows(tmp_path / "run" / "results.csv")}
    assert rows[64]["status"] == "oom" and all(rows[b]["rounds"] == 2 for b in (8, 16, 32))


def ctrl_c_in_the_shared_round(tmp_path, after: int, **options) -> tuple[RoundWorker, list[int]]:
    """A 2-round sweep of 8-64 whose shared round gets Ctrl-C after `after` sizes (the
    controller then ends the process); the worker, and the sizes that round's process was given."""
    config = config_from_dict(tiny_config(sweep={"batch_sizes": [8, 16, 32, 64], "modes": ["fit"], "rounds": 2}),
                              base_dir=tmp_path)
    worker = RoundWorker(reports=True)
    sweep = Sweep(config, SweepOptions(**options, worker_factory=lambda *a: worker))

    def ctrl_c(finished):
        if len(finished) == after:
            sweep.interrupted = 1
            return True
        return False

    worker.on_shared = ctrl_c
    with pytest.raises(InterruptedSweep):
        sweep.run()
    return worker, next(r["trial"]["shared"] for r in worker.requests
                        if r["op"] == "trial" and r["trial"]["round"] == 2)


def test_ctrl_c_during_a_shared_round_keeps_the_sizes_it_finished_and_resume_runs_the_rest(tmp_path):
    _, order = ctrl_c_in_the_shared_round(tmp_path, 2, out=tmp_path / "run")
    kept = {f"fit-b{b}-r1" for b in (8, 16, 32, 64)} | {f"fit-b{b}-r2" for b in order[:2]}
    assert set(load_trial_records(tmp_path / "run")) == kept
    again = RoundWorker()
    run_sweep(tmp_path, again, resume=True, rounds=2)
    assert sorted(trials(again)) == sorted((b, 2) for b in order[2:])
    assert [r["rounds"] for r in read_rows(tmp_path / "run" / "results.csv")] == [2, 2, 2, 2]


def test_a_second_ctrl_c_after_a_resume_still_keeps_what_the_shared_round_finished(tmp_path):
    _, order = ctrl_c_in_the_shared_round(tmp_path, 2, out=tmp_path / "run")
    # the resumed round's process gets the two sizes left; Ctrl-C again after the first of them
    _, again = ctrl_c_in_the_shared_round(tmp_path, 1, resume=tmp_path / "run")
    assert sorted(again) == sorted(order[2:])
    kept = {f"fit-b{b}-r2" for b in (*order[:2], again[0])}
    assert {k for k in load_trial_records(tmp_path / "run") if k.endswith("-r2")} == kept


def test_an_oom_handed_over_by_a_dead_shared_process_caps_the_sizes_run_alone(tmp_path):
    worker = RoundWorker(reports=True)

    def die(finished):  # the process reports 32 out of memory (caught, it goes on), then dies
        if finished and finished[-1].get("status") == "oom":
            return True
        return False

    def result(batch, factor, real=worker.result):
        return {"status": "oom", "error": "out of memory"} if batch == 32 and worker.requests[-1]["trial"].get("shared") \
            else real(batch, factor)

    worker.result, worker.on_shared = result, die
    run_sweep(tmp_path, worker, rounds=2, seed=3)
    shared = next(r for r in worker.requests if r["op"] == "trial" and r["trial"]["round"] == 2)
    order = shared["trial"]["shared"]
    alone = [r["trial"]["batch_size"] for r in worker.requests
             if r["op"] == "trial" and r["trial"]["round"] == 2 and not r["trial"].get("shared")]
    assert shared["finished"] == order[:order.index(32) + 1] and 64 in order[order.index(32) + 1:]
    assert sorted(alone) == sorted(b for b in order[order.index(32) + 1:] if b < 32)  # 64 is not run after 32's OOM


def test_ctrl_c_keeps_every_finished_round_trial(tmp_path):
    rounds = {"min": 2, "max": 2, "shared": False}  # one process per round-trial (shared: the test above)
    config = config_from_dict(tiny_config(sweep={"batch_sizes": [8, 16], "modes": ["fit"], "rounds": rounds}),
                              base_dir=tmp_path)
    worker = RoundWorker()
    sweep = Sweep(config, SweepOptions(out=tmp_path / "run", worker_factory=lambda *a: worker))
    worker.on_trial = lambda n: setattr(sweep, "interrupted", 1) if n == 3 else None
    with pytest.raises(InterruptedSweep):
        sweep.run()
    # the two finished round-trials are kept; the one Ctrl-C cut short is not a measurement
    assert set(load_trial_records(tmp_path / "run")) == {"fit-b8-r1", "fit-b16-r1"}
    assert [r["rounds"] for r in read_rows(tmp_path / "run" / "results.csv")] == [1, 1]


def test_find_max_searches_below_a_size_that_ran_out_of_memory_in_a_later_round(tmp_path):
    # 32 fits in round 1 but not in round 2: the search must not look above it
    worker = RoundWorker(oom=lambda batch, number: batch >= 64 or (batch == 32 and number >= 2))
    outcome = run_sweep(tmp_path, worker, rounds=2, find_max=True, search_granularity=4)
    searched = [b for (b, k), r in zip(trials(worker), [r for r in worker.requests if r["op"] == "trial"],
                                       strict=True) if r["trial"]["phase"] != "ladder"]
    assert searched and all(16 < b < 32 for b in searched[:-1])  # between the last fit and the later OOM
    rec = outcome.summary["recommendations"]["fit"]
    assert 16 <= rec["max_batch_size"] < 32


def test_a_shared_process_hands_over_each_size_as_it_finishes(tmp_path, monkeypatch):
    # the worker writes the sizes so far after each one (with the file the job's final result
    # replaces), so a process ended mid-round (Ctrl-C, a crash, its timeout) still leaves the
    # controller what it finished; a size that fails is its own result and the round goes on
    import batchbench.worker.job as job

    path = tmp_path / "result.json"
    on_disk = []  # what the file held as each size began

    def measure(config, trial, axes, backend, meter, host, work=None):
        on_disk.append([one.get("steps") for one in json.loads(path.read_text())["shared"]] if path.exists() else None)
        if trial["batch_size"] == 32:
            raise RuntimeError("this size's own failure")
        return {"status": "ok", "steps": trial["batch_size"], "peak_host_mib": 900.0}

    monkeypatch.setattr(job, "Workload", lambda config, axes: None)
    monkeypatch.setattr(job, "_measure", measure)
    result = job._measure_shared({}, {"shared": [16, 8, 32, 64]}, {}, "tensorflow", None, None,
                                 lambda one: {**one, "replicas": 1}, str(path))
    handed = json.loads(path.read_text())
    assert result["status"] == "ok" and handed["status"] == "partial"
    assert handed["shared"] == result["shared"] and len(result["shared"]) == 4
    assert [one.get("steps") for one in result["shared"]] == [16, 8, None, 64]
    assert on_disk == [None, [16], [16, 8], [16, 8, None]]  # every size before it, as it began
    assert result["shared"][2]["status"] == "error" and "own failure" in result["shared"][2]["error"]
    assert all(one["replicas"] == 1 and one["peak_host_mib"] is None for one in result["shared"])
    # a hand-over that cannot be written costs the hand-over only
    path = tmp_path / "gone" / "result.json"  # its folder is not there: every write fails
    again = job._measure_shared({}, {"shared": [16, 8]}, {}, "tensorflow", None, None, lambda one: one, str(path))
    assert again["status"] == "ok" and len(again["shared"]) == 2 and not path.parent.exists()
    assert on_disk[-2:] == [None, None]


@pytest.mark.parametrize("rounds", [1, 3])
def test_windows_that_did_not_agree_are_said_as_what_was_tried(rounds):
    """With one round a predict trial extends its windows until they agree, so disagreeing
    windows never stabilised; with rounds no window is extended, and the sentence says the
    rounds' intervals carry that noise instead."""
    from batchbench.summary import sweep_summary

    config = config_from_dict(tiny_config(sweep={"batch_sizes": [16, 64], "rounds": rounds}))
    rows = [{"mode": "predict", "method": "predict", "batch_size": b, "status": "ok", "throughput_sps": 100.0 * b,
             "trial_id": f"predict-predict-b{b}", "stable": False, "phase": "ladder"} for b in (16, 64)]
    said = sweep_summary(config, rows, {}, None, [], {}, ["predict-predict-b16-r1"], "run")["warnings"]
    sentence = next(s for s in said if "predict-predict-b16-r1" in s)
    if rounds == 1:
        assert "never stabilised" in sentence and "rounds" not in sentence
    else:
        assert "never stabilised" not in sentence and "rounds' intervals carry that noise" in sentence
