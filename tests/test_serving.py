"""`batchbench serving`: the batching rule, the simulator, the rate search, serving.csv and the
files servers read, all without TensorFlow; the run loop with a fake worker (its load points
made by the simulator); and one slow end-to-end run with a tiny real model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from batchbench.config import config_from_dict
from batchbench.errors import BatchbenchError, ConfigError, InterruptedSweep
from batchbench.runner import JobOutcome
from batchbench.serving import outputs
from batchbench.serving.batching import holds, point_duration_s, point_row, required_requests, schedule
from batchbench.serving.options import SWEEP_FOR_SERVING, load_serving_config
from batchbench.serving.run import ServingOptions, ServingRun
from batchbench.serving.search import RateSearch, rate_key, search_settings
from batchbench.serving.simulate import ServiceTimes, simulate, simulated_max
from tests.conftest import run_cli


@pytest.fixture(autouse=True)
def _shorter_simulations(monkeypatch):
    """10,000 simulated requests a point instead of 40,000: the relations tested hold either way."""
    import batchbench.serving.simulate as simulate_module

    monkeypatch.setattr(simulate_module, "SIM_MIN_REQUESTS", 10_000)


def constant_service(base_ms: float = 1.0, per_row_ms: float = 0.1, largest: int = 64) -> ServiceTimes:
    """Compute time base + per_row * k, no spread: the simulator's answers are then exact."""
    sizes = [1, 2, 4, 8, 16, 32, 64][: [1, 2, 4, 8, 16, 32, 64].index(largest) + 1]
    return ServiceTimes(sizes, [[base_ms + per_row_ms * k] * 5 for k in sizes])


# ---------------------------------------------------------------- the simulator
def test_more_rate_means_a_higher_p99_and_a_busier_batcher():
    service = constant_service()
    light, heavy = (simulate(service, rate, 16, 1.0, 99, seed=3) for rate in (500, 4000))
    assert heavy.latency_ms_p99 > light.latency_ms_p99
    assert heavy.batch_size_mean > light.batch_size_mean >= 1
    assert light.latency_ms_p50 <= light.latency_ms_p90 <= light.latency_ms_p99
    assert light.queue_ms_p99 <= light.latency_ms_p99


def test_max_batch_1_with_no_timeout_is_a_single_server_queue():
    """Lindley's recursion on the same arrivals: wait(n+1) = max(0, wait(n) + D - gap)."""
    service_ms, rate, n = 1.0, 700.0, 20_000
    result = simulate(constant_service(service_ms, 0.0), rate, 1, 0.0, 99, seed=5, requests=n)
    arrivals = schedule(rate, n / rate, 5)
    wait = np.zeros(len(arrivals))
    for i in range(1, len(arrivals)):
        wait[i] = max(0.0, wait[i - 1] + service_ms / 1e3 - (arrivals[i] - arrivals[i - 1]))
    latency = (wait + service_ms / 1e3)[len(arrivals) // 10:] * 1e3
    assert result.latency_ms_p99 == pytest.approx(np.percentile(latency, 99), rel=1e-9)
    assert result.latency_ms_p50 == pytest.approx(np.percentile(latency, 50), rel=1e-9)
    assert result.batch_size_mean == 1.0
    # M/D/1's mean wait, rho * D / (2 (1 - rho)), within sampling error
    rho = rate * service_ms / 1e3
    assert np.mean(wait) * 1e3 == pytest.approx(rho * service_ms / (2 * (1 - rho)), rel=0.1)


def test_a_timeout_waits_for_a_fuller_batch_at_light_load():
    service = constant_service()
    eager, patient = (simulate(service, 300, 16, t, 99, seed=1) for t in (0.0, 5.0))
    assert patient.batch_size_mean > eager.batch_size_mean
    assert patient.latency_ms_p50 > eager.latency_ms_p50  # the wait is latency
    assert patient.latency_ms_p99 <= 5.0 + service.median_ms(16) + 1e-6 + 2.7  # never much past timeout + compute


def test_a_bigger_max_batch_holds_more_rate_when_batching_amortizes():
    service = constant_service(base_ms=2.0, per_row_ms=0.02)
    small, _ = simulated_max(service, 1, 0.0, 20.0, 99)
    big, point = simulated_max(service, 32, 2.0, 20.0, 99)
    assert small is not None and big is not None and big > 3 * small
    assert small < 1e3 / 2.0  # never past one request per compute time
    assert point.latency_ms_p99 <= 20.0


def test_a_stall_in_the_profile_is_the_machines_not_the_batch_sizes():
    quiet = constant_service(base_ms=1.0, per_row_ms=0.05, largest=16)
    samples = [list(x) for x in quiet.samples_ms]
    samples[2] = samples[2] + [100 * samples[2][0]]  # one call at batch 4 held off the CPU for 100x
    stalled = ServiceTimes(quiet.batch_sizes, samples)
    assert stalled.stalls == 1 and quiet.stalls == 0
    assert simulated_max(stalled, 16, 1.0, 20.0, 99)[0] == simulated_max(quiet, 16, 1.0, 20.0, 99)[0]


def idle_costly_service(factor: float = 3.0) -> ServiceTimes:
    """constant_service's busy calls, and calls after a pause costing up to `factor` times them:
    1.5x after 1 ms idle, `factor` x after 5 ms (a pool whose threads park when idle)."""
    busy = constant_service(largest=16)
    scaled = [[[v * f for v in s] for s in busy.samples_ms] for f in (1.5, factor)]
    return ServiceTimes(busy.batch_sizes, busy.samples_ms, [1.0, 5.0], scaled)


def test_a_call_after_a_pause_costs_what_the_profile_measured_after_that_pause():
    service = idle_costly_service()
    busy = service.median_ms(16)
    assert service.median_ms(16, idle_ms=0.0) == pytest.approx(busy)
    assert service.median_ms(16, idle_ms=1.0) == pytest.approx(1.5 * busy)
    assert service.median_ms(16, idle_ms=3.0) == pytest.approx(2.25 * busy)  # linear in between
    assert service.median_ms(16, idle_ms=50.0) == pytest.approx(3.0 * busy)  # the longest pause's beyond it
    assert service.capacity_qps(16) == pytest.approx(constant_service(largest=16).capacity_qps(16))
    old = ServiceTimes.from_profile({"batch_sizes": service.batch_sizes, "samples_ms": service.samples_ms})
    assert old.median_ms(16, idle_ms=50.0) == pytest.approx(busy)  # an older profile: busy whatever the pause


def test_the_simulated_server_pays_for_its_idle_time():
    flat, costly = constant_service(largest=16), idle_costly_service()
    # Light load: ~10 ms between requests, every batch after a long pause, 3x the busy compute.
    light_flat, light_costly = (simulate(s, 100, 16, 0.0, 99, seed=2) for s in (flat, costly))
    assert light_costly.latency_ms_p50 == pytest.approx(3 * light_flat.latency_ms_p50, rel=0.05)
    # Near capacity the batches run back to back: the pause costs next to nothing.
    rate = 0.9 * flat.capacity_qps(16)
    heavy_flat, heavy_costly = (simulate(s, rate, 16, 0.0, 99, seed=2) for s in (flat, costly))
    assert heavy_costly.achieved_qps >= 0.95 * rate
    assert heavy_costly.latency_ms_p50 < 1.5 * heavy_flat.latency_ms_p50
    best_flat, best_costly = (simulated_max(s, 16, 0.0, 20.0, 99)[0] for s in (flat, costly))
    assert best_costly is not None and best_costly <= best_flat


# ---------------------------------------------------------------- the search
def synthetic_p99(rate: float, capacity: float = 1000.0) -> float:
    """A queue's p99: grows without bound as the rate nears capacity."""
    return 2.0 + 8.0 / max(1e-9, 1.0 - rate / capacity)


def test_bisection_finds_the_boundary_from_either_side():
    boundary = 1000.0 * (1 - 8.0 / 18.0)  # synthetic_p99 == 20 ms there
    for start in (100.0, 3000.0, boundary):
        search = RateSearch(start, rel_tol=0.02, max_points=30)
        best = search.run(lambda r: synthetic_p99(r) <= 20.0)
        assert best is not None and best <= boundary and best >= boundary / 1.02 ** 2


def test_a_lucky_point_above_a_failure_never_counts():
    search = RateSearch(100.0)
    for rate, met in ((100, True), (150, False), (225, True)):
        search.record(rate, met)
    assert search.max_qps == 100
    assert 100 < search.next_rate() < 150


def test_a_setting_that_meets_nothing_ends_with_no_answer():
    search = RateSearch(1000.0, max_steps=3)
    assert search.run(lambda r: False) is None
    assert len(search.points) == 4


def test_known_points_are_not_measured_again():
    measured = []

    def measure(timeout_ms, rate, repeat):
        measured.append((rate, repeat))
        return {"batch_timeout_ms": timeout_ms, "offered_qps": rate, "repeat": repeat,
                "slo_met": synthetic_p99(rate) <= 20}

    settings = [{"batch_timeout_ms": 1.0, "start_qps": 400.0}]
    first = search_settings(settings, measure, [], max_points=5)
    assert measured[-2:] == [(first["1"], 1), (first["1"], 2)]  # the answer measured twice more, fresh arrivals
    kept = [{"batch_timeout_ms": 1.0, "offered_qps": r, "repeat": k, "slo_met": synthetic_p99(r) <= 20}
            for r, k in measured[:3]]
    total = len(measured)
    measured.clear()
    again = search_settings(settings, measure, kept, max_points=5)
    assert again == first and len(measured) == total - 3  # only the points the first session lost


def test_an_answer_that_does_not_hold_again_sends_the_search_lower():
    calls = []

    def measure(timeout_ms, rate, repeat):
        calls.append((rate, repeat))
        lucky = repeat == 0 and 500 < rate < 515  # met once by luck, never again
        return {"batch_timeout_ms": timeout_ms, "offered_qps": rate, "repeat": repeat,
                "slo_met": rate <= 500 or lucky}

    answer = search_settings([{"batch_timeout_ms": 0.0, "start_qps": 600.0}], measure, [], rel_tol=0.02)["0"]
    assert answer is not None and 400 <= answer <= 500
    lucky = [rate for rate, repeat in calls if repeat == 0 and 500 < rate < 515]
    assert lucky and all((rate, k) in calls for rate in lucky[-1:] for k in (1,))  # measured again, and missed


def test_every_repeat_of_the_answer_must_hold_or_the_next_met_rate_below_is_tried():
    calls = []

    def measure(timeout_ms, rate, repeat):
        calls.append((rate, repeat))
        # up to 500 req/s always; up to 530 the first two measurements only: luck at the cliff
        met = rate <= 500 or (rate <= 530 and repeat < 2)
        return {"batch_timeout_ms": timeout_ms, "offered_qps": rate, "repeat": repeat, "slo_met": met}

    answer = search_settings([{"batch_timeout_ms": 0.0, "start_qps": 600.0}], measure, [], rel_tol=0.02,
                             repeats=2, confirmations=4)["0"]
    searched = sorted({r for r, k in calls if k == 0})
    lucky = [r for r in searched if 500 < r <= 530]
    assert lucky and all((r, 1) in calls and (r, 2) in calls for r in lucky)  # each held once, then missed
    assert answer == max(r for r in searched if r <= 500)  # the next met rate below the last that missed
    assert all((answer, k) in calls for k in (1, 2))  # and it held twice
    assert not [r for r, k in calls[calls.index((lucky[0], 2)) + 1:] if k == 0]  # no search near the cliff
    assert search_settings([{"batch_timeout_ms": 0.0, "start_qps": 520.0}],
                           lambda t, r, k: {"slo_met": k == 0}, [], confirmations=2)["0"] is None  # nothing holds


def test_the_answer_read_back_from_the_rows_follows_the_search():
    def row(rate, repeat=0, met=True, held=None, p99=10.0):
        out = {"source": "measured", "max_batch_size": 16, "batch_timeout_ms": 2.0, "offered_qps": rate,
               "repeat": repeat, "slo_met": met, "latency_ms_p99": p99}
        return out if held is None else {**out, "held": held}

    key = (16, 2.0)
    searched = [row(400), row(600), row(700, met=False), row(600, 1, held=True, p99=14.0), row(600, 2, held=False),
                row(500), row(500, 1, held=True, p99=12.0), row(500, 2, held=True, p99=11.0)]
    best = outputs.setting_max(searched)[key]
    assert best["offered_qps"] == 500 and best["latency_ms_p99"] == 12.0  # 600 did not hold; the worst p99 of 500
    assert outputs.setting_max(searched[:5])[key] is None  # 400 and 500 met once but never held: no answer yet
    assert outputs.setting_max(searched, confirmed=False)[key]["offered_qps"] == 600  # the search's own max
    gap = outputs.comparison(searched + [{**row(660), "source": "simulated"}])[0]
    assert (gap["measured_max_qps"], gap["search_max_qps"]) == (500, 600)
    assert gap["gap_pct"] == pytest.approx(32.0) and gap["search_gap_pct"] == pytest.approx(10.0)
    given = [row(100), row(200), row(300, met=False)]  # --rates: no repeats, nothing to confirm
    assert outputs.setting_max(given)[key]["offered_qps"] == 200
    assert outputs.setting_max(given, repeats=0)[key]["offered_qps"] == 200
    assert outputs.setting_max([{**r, "source": "simulated"} for r in given], "simulated")[key]["offered_qps"] == 200


def test_an_answer_whose_repeats_did_not_all_run_is_no_answer():
    def row(rate, repeat=0, held=None, m=16):
        out = {"source": "measured", "max_batch_size": m, "batch_timeout_ms": 0.0, "offered_qps": rate,
               "repeat": repeat, "slo_met": True, "latency_ms_p99": 10.0}
        return out if held is None else {**out, "held": held}

    # the job ended (crash, timeout, Ctrl-C) after the first of two repeats at 500, and before
    # any repeat of 16's search max: neither is an answer when the run asked for 2 repeats
    cut = [row(400), row(500), row(500, 1, held=True), row(800, m=32)]
    assert outputs.setting_max(cut, repeats=2) == {(16, 0.0): None, (32, 0.0): None}
    assert outputs.choose(cut, 1, repeats=2) is None
    # read back without the run's figure, the rows' own (1 repeat) is the rule: 16 answers 500,
    # and a setting with search points but no repeat at all does not
    assert outputs.setting_max(cut)[(16, 0.0)]["offered_qps"] == 500 and outputs.setting_max(cut)[(32, 0.0)] is None
    # the trackers' child for the setting says the same as the summary
    from batchbench.serving.track import setting_row

    assert "max_qps" not in setting_row(cut, 16, 0.0, done=True, repeats=2)
    assert setting_row(cut, 16, 0.0, done=True)["max_qps"] == 500
    whole = cut + [row(500, 2, held=True)]
    assert setting_row(whole, 16, 0.0, done=True, repeats=2)["max_qps"] == 500
    assert outputs.setting_max(whole, repeats=2)[(16, 0.0)]["offered_qps"] == 500
    # a serving.csv from before the held column: a repeat that met the SLO held
    old = [{k: v for k, v in r.items() if k != "held"} for r in whole]
    assert outputs.setting_max(old, repeats=2)[(16, 0.0)]["offered_qps"] == 500
    missed = [*old[:-1], {**old[-1], "slo_met": False}]  # its second repeat missed: 500 failed
    assert outputs.setting_max(missed, repeats=2)[(16, 0.0)] is None  # and 400 was never confirmed


def test_after_the_last_candidate_fails_nothing_more_is_measured():
    calls = []

    def measure(timeout_ms, rate, repeat):
        calls.append((rate, repeat))
        return {"batch_timeout_ms": timeout_ms, "offered_qps": rate, "repeat": repeat, "slo_met": repeat == 0}

    assert search_settings([{"batch_timeout_ms": 0.0, "start_qps": 520.0}], measure, [], confirmations=2,
                           repeats=2)["0"] is None
    assert calls[-1][1] == 1  # the last candidate's failed repeat ends the setting: no search below it


def test_the_answers_repeat_must_hold_with_headroom():
    assert holds({"slo_met": True, "latency_ms_at_percentile": 17.9}, 20.0)
    assert not holds({"slo_met": True, "latency_ms_at_percentile": 19.0}, 20.0)  # a bare pass at the edge
    assert not holds({"slo_met": False, "latency_ms_at_percentile": 5.0}, 20.0)  # fell behind, say


def test_point_length_follows_the_percentile():
    assert required_requests(99) >= 50 / 0.01 and required_requests(90) >= 50 / 0.1
    assert required_requests(99.9) > required_requests(99) > required_requests(90)
    assert point_duration_s(1e6, 99, 1.0, 3.0) == 1.0           # fast: the minimum
    assert point_duration_s(10, 99, 1.0, 3.0) == 3.0             # slow: capped
    assert point_duration_s(2000, 99, 1.0, 5.0) == pytest.approx(required_requests(99) / 2000)
    assert rate_key(1234.5678) == 1235 and rate_key(0.012345) == 0.01235


# ---------------------------------------------------------------- outputs
def measured_row(m, t, rate, met, p99=5.0):
    return {"source": "measured", "status": "ok", "max_batch_size": m, "batch_timeout_ms": t, "offered_qps": rate,
            "latency_ms_p99": p99, "latency_ms_at_percentile": p99, "slo_met": met, "batch_size_mean": 2.0}


def test_the_answer_and_the_server_files_carry_the_same_setting(tmp_path):
    rows = [measured_row(8, 2.0, 900, True, 9.0), measured_row(8, 2.0, 1000, False),
            measured_row(16, 5.0, 1500, True, 12.0), measured_row(16, 5.0, 1700, False),
            measured_row(16, 5.0, 1800, True)]  # above a failure: ignored
    answer = outputs.choose(rows, threads=2)
    assert answer == {"max_batch_size": 16, "batch_timeout_ms": 5.0, "max_qps": 1500, "latency_ms_p99": 12.0,
                      "num_batch_threads": 2}
    outputs.write_server_files(tmp_path, answer, slo_ms=20, batch_ms=2.0)
    read = outputs.parse_server_files(tmp_path)
    for form in ("tf_serving", "triton"):
        assert read[form] == {k: answer[k] for k in ("max_batch_size", "batch_timeout_ms", "num_batch_threads")}
    assert "max_enqueued_batches { value: 20 }" in (tmp_path / outputs.TF_SERVING_FILE).read_text()


def test_serving_csv_round_trips(tmp_path):
    writer = outputs.ServingWriter(tmp_path)
    row = {**measured_row(4, 1.0, 250.0, True), "requests": 5000, "steady": True}
    writer.append(row)
    writer.append({**row, "offered_qps": 300.0, "slo_met": False})
    back = writer.rows()
    assert len(back) == 2 and back[0]["requests"] == 5000 and back[0]["slo_met"] is True
    assert back[1]["offered_qps"] == 300.0 and back[1]["max_batch_size"] == 4


# ---------------------------------------------------------------- the run loop, with a fake worker
PROFILE = {"status": "ok", "batch_sizes": [1, 2, 4, 8, 16], "samples_ms": [[1.0 + 0.1 * k] * 9 for k in (1, 2, 4, 8, 16)],
           "generator_ceiling_qps": 200_000.0}


class SimulatedWorker:
    """A worker whose load points come from the simulator (the batcher's rule, exact service
    times): the controller's loop, resume and interrupt, in milliseconds."""

    def __init__(self, stop_after: int | None = None, slower: float = 1.0, samples: int = 1024):
        self.profile = {**PROFILE, "samples_ms": [[v * slower for v in s] for s in PROFILE["samples_ms"]]}
        self.samples = samples  # the data's rows, as the preflight counts them
        self.requests: list[dict] = []
        self.measured = 0
        self.stop_after = stop_after
        self.on_interrupt = None

    def run(self, request, **kw):
        self.requests.append(request)
        if request["op"] == "preflight":
            return JobOutcome(result={"status": "ok", "samples": self.samples, "params": 10, "framework": {}},
                              returncode=0)
        if request["op"] == "serving_profile":
            return JobOutcome(result=dict(self.profile), returncode=0)
        job, serving = request["job"], request["config"]["serving"]
        service = ServiceTimes.from_profile(self.profile)

        def measure(timeout_ms, rate, repeat):
            if self.stop_after is not None and self.measured >= self.stop_after:
                self.on_interrupt()
                raise KeyboardInterrupt
            self.measured += 1
            result = simulate(service, rate, job["max_batch_size"], timeout_ms, serving["percentile"], seed=repeat)
            row = point_row(result, job["max_batch_size"], timeout_ms, 1, serving["slo_ms"], 1.0, 200_000.0, repeat)
            with open(job["points_path"], "a") as fh:
                fh.write(json.dumps(row) + "\n")
            kw["on_tick"]()
            return row

        try:
            search_settings(job["settings"], measure, job["known"], max_points=serving["max_points"],
                            repeats=serving["confirm_repeats"], holds=lambda row: bool(row.get("held")))
        except KeyboardInterrupt:
            return JobOutcome(result=None, returncode=-9)
        return JobOutcome(result={"status": "ok"}, returncode=0)

    def interrupt(self):
        pass

    def close(self):
        pass


def serving_config(tmp_path, **serving):
    raw = {"name": "srv", "model": {"builtin": "mlp"}, "sweep": dict(SWEEP_FOR_SERVING),
           "serving": {"slo_ms": 20, "max_batch_sizes": [4, 16], "timeouts_ms": [0, 2], "measure_top": 2,
                       **serving}}
    return config_from_dict(raw, base_dir=tmp_path)


def test_the_loop_measures_the_simulators_best_and_answers(tmp_path):
    fake = SimulatedWorker()
    run = ServingRun(serving_config(tmp_path), ServingOptions(out=tmp_path / "run", worker_factory=lambda *a: fake))
    outcome = run.run()
    rows = outputs.read_serving_rows(tmp_path / "run" / outputs.SERVING_CSV)
    assert len([r for r in rows if r["source"] == "simulated"]) == 4  # every setting simulated
    measured = {(r["max_batch_size"], r["batch_timeout_ms"]) for r in rows if r["source"] == "measured"}
    assert len(measured) == 2 and all(m == 16 for m, _ in measured)  # the two best only
    answer = outcome.summary["serving"]
    assert answer["max_batch_size"] == 16 and answer["latency_ms_p99"] <= 20
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["kind"] == "serving" and record["summary"]["serving"] == answer
    read = outputs.parse_server_files(tmp_path / "run")
    assert read["tf_serving"]["batch_timeout_ms"] == answer["batch_timeout_ms"]
    gaps = outcome.summary["simulated_vs_measured"]
    assert all(-6 <= g["gap_pct"] <= 0 for g in gaps)  # the fake measures with the simulator: within the search step


def test_interrupt_keeps_finished_points_and_resume_measures_only_the_rest(tmp_path):
    out = tmp_path / "run"
    fake = SimulatedWorker(stop_after=3)
    run = ServingRun(serving_config(tmp_path), ServingOptions(out=out, worker_factory=lambda *a: fake))

    def ctrl_c():
        run.interrupted = 1

    fake.on_interrupt = ctrl_c
    with pytest.raises(InterruptedSweep, match="resume with"):
        run.run()
    kept = [r for r in outputs.read_serving_rows(out / outputs.SERVING_CSV) if r["source"] == "measured"]
    assert len(kept) == 3
    again = SimulatedWorker()
    ServingRun(serving_config(tmp_path), ServingOptions(resume=out, worker_factory=lambda *a: again)).run()
    fresh = SimulatedWorker()
    ServingRun(serving_config(tmp_path), ServingOptions(out=tmp_path / "whole", worker_factory=lambda *a: fresh)).run()
    assert again.measured == fresh.measured - 3  # the three kept points were not measured again
    final = outputs.read_serving_rows(out / outputs.SERVING_CSV)
    assert len(final) == len(outputs.read_serving_rows(tmp_path / "whole" / outputs.SERVING_CSV))
    assert not any(r["op"] == "serving_profile" for r in again.requests)  # the profile is kept too


def test_an_slo_below_a_single_request_measures_nothing_and_says_so(tmp_path):
    fake = SimulatedWorker()
    outcome = ServingRun(serving_config(tmp_path, slo_ms=0.5),
                         ServingOptions(out=tmp_path / "run", worker_factory=lambda *a: fake)).run()
    assert outcome.exit_code == 0 and outcome.summary["serving"] is None and fake.measured == 0
    assert any("below the latency of a single request" in w for w in outcome.summary["warnings"])


class FailingWorker(SimulatedWorker):
    """A worker that fails at one job after the preflight: its result an error, or an exception."""

    def __init__(self, op: str, failure: str):
        super().__init__()
        self.op, self.failure = op, failure

    def run(self, request, **kw):
        if request["op"] != self.op:
            return super().run(request, **kw)
        if self.failure == "raises":
            raise RuntimeError("the pipe broke")
        return JobOutcome(result={"status": "error", "error": "the model would not compile"}, returncode=1)


@pytest.mark.parametrize("op, failure, error, reason", [
    ("serving_profile", "error result", BatchbenchError, "the latency profile failed: the model would not compile"),
    ("serving_points", "raises", RuntimeError, "RuntimeError: the pipe broke"),
])
def test_a_run_that_fails_after_preflight_ends_failed_with_its_reason(tmp_path, op, failure, error, reason):
    fake = FailingWorker(op, failure)
    with pytest.raises(error):
        ServingRun(serving_config(tmp_path), ServingOptions(out=tmp_path / "run", worker_factory=lambda *a: fake)).run()
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "failed" and reason in record["error"]
    assert record["ended_at"] >= record["started_at"]


def test_compare_judges_max_qps_and_report_renders_serving_runs(tmp_path, capsys):
    from batchbench.compare import compare_command
    from batchbench.report import report_command

    for name, slower in (("base", 1.0), ("same", 1.0), ("slow", 2.0)):
        fake = SimulatedWorker(slower=slower)
        ServingRun(serving_config(tmp_path), ServingOptions(out=tmp_path / name, worker_factory=lambda *a, f=fake: f)).run()
    assert compare_command(str(tmp_path / "base"), str(tmp_path / "same"), fmt="json") == 0
    capsys.readouterr()
    assert compare_command(str(tmp_path / "base"), str(tmp_path / "slow"), fmt="json") == 1
    verdicts = json.loads(capsys.readouterr().out)["rows"]
    assert verdicts[0]["metric"] == "max_qps" and verdicts[0]["verdict"] == "regression"
    assert verdicts[0]["current"] < verdicts[0]["baseline"]
    assert compare_command(str(tmp_path / "slow"), str(tmp_path / "base"), fmt="markdown") == 0  # faster: fine
    assert report_command([str(tmp_path / "base")], plots=True) == 0
    text = (tmp_path / "base" / "report.md").read_text()
    assert "**Answer:** `max_batch_size` 16" in text and "serving_latency.png" in text
    assert report_command([str(tmp_path / "base")], fmt="html", plots=True) == 0  # the sweep's HTML renderer
    page = (tmp_path / "base" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "**" not in page and "<table>" in page
    assert "Answer: max_batch_size 16" in page and '<tr class="best">' in page and "data:image/png;base64," in page
    assert page.count("<tr>") + page.count('<tr class="best">') == 1 + 4  # the header and one row per setting
    assert report_command([str(tmp_path / "base"), str(tmp_path / "slow")], out=tmp_path / "both", fmt="html",
                          plots=False) == 0
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == ["base.html", "slow.html"]


# ---------------------------------------------------------------- bad input (no TensorFlow)
@pytest.mark.parametrize("given, option", [
    ({"slo_ms": 0}, "--slo-ms"),
    ({"slo_ms": 20, "rates": "100,-5"}, "--rates"),
    ({"slo_ms": 20, "timeouts_ms": "0,-1"}, "--timeouts-ms"),
    ({"slo_ms": 20, "max_batch_sizes": "4096"}, "--max-batch-sizes"),
    ({"slo_ms": 20, "percentile": 100}, "--percentile"),
    ({}, "--slo-ms"),
])
def test_bad_options_are_errors_naming_the_option(write_config, given, option):
    path = write_config({"model": {"builtin": "mlp"}, "data": {"synthetic": {"samples": 512}}})
    with pytest.raises(ConfigError) as caught:
        load_serving_config(path, None, given)
    assert option in str(caught.value)


def test_bad_config_keys_name_the_key(write_config):
    path = write_config({"model": {"builtin": "mlp"}, "data": {"synthetic": {"samples": 512}},
                         "serving": {"slo_ms": 20, "max_batch_sizes": [1024], "timeouts_ms": [-2]}})
    with pytest.raises(ConfigError, match=r"serving\.timeouts_ms\[0\]: got -2"):
        load_serving_config(path, None, {})
    path = write_config({"model": {"builtin": "mlp"}, "data": {"synthetic": {"samples": 512}},
                         "serving": {"slo_ms": 20, "max_batch_sizes": [1024]}})
    with pytest.raises(ConfigError, match=r"serving\.max_batch_sizes: got 1024, above the 512 samples"):
        load_serving_config(path, None, {})


def test_serving_slo_never_inherits_the_sweeps_and_bad_input_exits_2(write_config):
    path = write_config({"model": {"builtin": "mlp"}, "sweep": {"batch_sizes": [8], "slo_ms": 20}})
    result = run_cli("serving", path)
    assert result.returncode == 2 and "--slo-ms" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("serving", path, "--slo-ms", "20", "--rates", "0")
    assert result.returncode == 2 and "--rates: got 0" in result.stderr and "Traceback" not in result.stderr


def test_validate_checks_a_serving_config_without_a_sweep_section():
    from tests.conftest import ROOT

    result = run_cli("validate", ROOT / "examples" / "serving" / "serving.yaml")
    assert result.returncode == 0 and "valid serving config" in result.stdout and "p99 <= 20 ms" in result.stdout


# ---------------------------------------------------------------- every data kind, with the command line's options
def data_kinds(tmp_path) -> dict[str, dict]:
    """One `data:` section per kind, 12 rows each, its files in tmp_path."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(12, 4)).astype("float32"), y=rng.integers(0, 3, 12))
    (tmp_path / "table.csv").write_text("a,b,target\n" + "".join(f"{i * 0.5},{-i},{i % 3}\n" for i in range(12)))
    (tmp_path / "loaders.py").write_text("import numpy as np\n"
                                         "def load(n=12):\n"
                                         "    return np.ones((n, 4), 'float32'), np.zeros(n, 'int32')\n")
    return {"synthetic": {"synthetic": {"samples": 12}}, "npz": {"npz": {"path": "data.npz"}},
            "csv": {"csv": {"path": "table.csv", "target": "target"}},
            "callable": {"callable": {"function": "loaders:load", "kwargs": {"n": 12}}}}


KINDS = ("synthetic", "npz", "csv", "callable")
# As the command line gives them (strings, a range), over a config's serving keys.
OVERRIDES = {"max_batch_sizes": "2-8", "timeouts_ms": "0,1.5", "rates": "100,400", "slo_ms": 30.0}


@pytest.mark.parametrize("kind", KINDS)
def test_every_data_kind_validates_and_takes_the_command_lines_options(tmp_path, write_config, kind):
    from batchbench.serving.options import describe_serving_config

    path = write_config({"name": f"srv-{kind}", "model": {"builtin": "mlp"}, "data": data_kinds(tmp_path)[kind],
                         "serving": {"slo_ms": 20, "max_batch_sizes": [4], "timeouts_ms": [0]}})
    assert "valid serving config" in describe_serving_config(path) and kind in describe_serving_config(path)
    config, _, given = load_serving_config(path, None, {**OVERRIDES, "percentile": None})
    assert given == set(OVERRIDES)
    s = config.serving
    assert (s.max_batch_sizes, s.timeouts_ms, s.rates, s.slo_ms) == ([2, 4, 8], [0, 1.5], [100, 400], 30)
    fake = SimulatedWorker(samples=12)
    outcome = ServingRun(config, ServingOptions(out=tmp_path / "run", given=given,
                                                worker_factory=lambda *a: fake)).run()
    rows = outputs.read_serving_rows(tmp_path / "run" / outputs.SERVING_CSV)
    assert {(r["max_batch_size"], r["batch_timeout_ms"]) for r in rows if r["source"] == "simulated"} == \
        {(m, t) for m in (2, 4, 8) for t in (0, 1.5)}
    measured = [r for r in rows if r["source"] == "measured"]
    assert measured and {r["offered_qps"] for r in measured} <= {100.0, 400.0}  # the rates given, no search
    assert all(r["latency_ms_at_percentile"] <= 30 for r in measured if r["slo_met"])
    assert outcome.summary["slo_ms"] == 30 and outcome.exit_code == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("from_cli", [False, True])
def test_a_max_batch_size_above_the_data_is_refused_before_any_load(tmp_path, write_config, kind, from_cli):
    path = write_config({"name": "srv", "model": {"builtin": "mlp"}, "data": data_kinds(tmp_path)[kind],
                         "serving": {"slo_ms": 20, "max_batch_sizes": [4, 16] if not from_cli else [4]}})
    overrides = {"max_batch_sizes": "4,16"} if from_cli else {}
    key = "--max-batch-sizes" if from_cli else "serving.max_batch_sizes"
    fake = SimulatedWorker(samples=12)
    with pytest.raises(ConfigError, match=rf"{key}: got 16, above the 12 samples") as caught:
        config, _, given = load_serving_config(path, None, overrides)  # synthetic: its size is known here
        ServingRun(config, ServingOptions(out=tmp_path / "run", given=given, worker_factory=lambda *a: fake)).run()
    assert caught.value.exit_code == 2
    assert [r["op"] for r in fake.requests] == ([] if kind == "synthetic" else ["preflight"])  # no profile, no load
    assert not (tmp_path / "run" / outputs.SERVING_CSV).exists()


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_serving_end_to_end_with_a_tiny_model(tmp_path, write_config):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(64, 8)).astype("float32"), y=rng.integers(0, 3, 64))
    path = write_config({"name": "tiny-serving", "model": {"builtin": "mlp", "kwargs": {"hidden": 16, "depth": 1}},
                         "data": {"npz": {"path": "data.npz"}},
                         "serving": {"slo_ms": 50, "percentile": 90, "max_batch_sizes": [1, 8],
                                     "timeouts_ms": [0, 2], "measure_top": 1, "min_duration_s": 0.2,
                                     "max_duration_s": 0.4, "max_points": 3, "confirm_duration_s": 0.6}})
    out = tmp_path / "run"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("serving", path, "--out", out, "--json", "--no-plots", "--mlflow", store)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: MLflow" not in result.stderr
    summary = json.loads(result.stdout)
    rows = outputs.read_serving_rows(out / outputs.SERVING_CSV)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)  # the run in MLflow: a parent, a child per setting, the answer as tags
    found = client.search_runs([client.get_experiment_by_name("tiny-serving").experiment_id])
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = {(int(r.data.params["max_batch_size"]), float(r.data.params["batch_timeout_ms"])): r
                for r in found if "mlflow.parentRunId" in r.data.tags}
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert set(children) == {(r["max_batch_size"], r["batch_timeout_ms"]) for r in rows}
    for key, best in outputs.setting_max(rows).items():
        assert children[key].data.metrics.get("max_qps") == (best or {}).get("offered_qps")
    assert parents[0].data.tags["serving.max_qps"] == ("none" if summary["serving"] is None
                                                       else str(summary["serving"]["max_qps"]))
    measured = [r for r in rows if r["source"] == "measured"]
    assert 1 <= len(measured) <= 3 + 3 * (2 + 3)  # max_points; 3 candidates, 2 repeats and 3 points below each
    for r in measured:  # the search's points within their bounds; the answer's repeats sustain the load longer
        assert 0.2 <= r["duration_s"] <= 0.4 if not r["repeat"] else r["duration_s"] == 0.6
        assert (r.get("held") is None) == (not r["repeat"])
    for r in measured:
        assert r["requests"] == pytest.approx(0.9 * r["offered_qps"] * r["duration_s"], rel=0.25, abs=5)
        assert r["latency_ms_p50"] <= r["latency_ms_p90"] <= r["latency_ms_p99"]
        assert 1 <= r["batch_size_mean"] <= r["max_batch_size"]
        assert r["achieved_qps"] <= 1.2 * r["offered_qps"]
    profile = json.loads((out / outputs.PROFILE_JSON).read_text())  # busy calls, and calls after each pause
    assert len(profile["after_idle_ms"]) == len(profile["idle_ms"]) >= 1
    for pause, state in zip(profile["idle_ms"], profile["after_idle_ms"]):
        assert pause > 0 and len(state) == len(profile["batch_sizes"]) and all(state)
    assert profile["idle_ms"] == sorted(profile["idle_ms"])  # measured pauses, never shorter than asked
    if summary["serving"] is not None:
        read = outputs.parse_server_files(out)
        assert read["triton"]["max_batch_size"] == summary["serving"]["max_batch_size"]
    big = run_cli("serving", path, "--out", tmp_path / "big", "--max-batch-sizes", "128")
    assert big.returncode == 2 and "--max-batch-sizes" in big.stderr and "64 samples" in big.stderr
