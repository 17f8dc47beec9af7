"""MLflow and TensorBoard exporters: read back with each tracker's own reader (MLflow's client on
a real SQLite store, TensorBoard's EventMultiplexer and HParams plugin data). The sweeps here
run with a fake worker (no TensorFlow); one slow test runs the real CLI end to end."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchbench.config import config_from_dict
from batchbench.export import Trackers, open_trackers, point_of
from batchbench.results import read_rows
from batchbench.sweep import Sweep, SweepOptions
from batchbench.version import RESULTS_SCHEMA_VERSION
from tests.conftest import run_cli, tiny_config
from tests.test_rounds import RoundWorker

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

FRAMEWORKS = ("tensorflow", "keras")


def _framework_modules() -> set[str]:
    return {m for m in sys.modules if m.split(".")[0] in FRAMEWORKS}


@pytest.fixture(autouse=True)
def no_framework_imports():
    """The exporters never import TensorFlow or Keras. Where another test file in this worker
    process loaded them already, a module of theirs loaded now still fails this; the fast tier
    (tests/conftest.py refuses both) checks it from a clean process."""
    before = _framework_modules()
    yield
    assert not _framework_modules() - before


# ---------------------------------------------------------------- readers
@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    """An MLflow SQLite store with its tables made once (seconds); each test gets a copy."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "empty.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, empty_db):
    path = tmp_path / "mlflow" / "mlflow.db"
    path.parent.mkdir()
    shutil.copy(empty_db, path)
    return f"sqlite:///{path}"


def mlflow_runs(uri: str, experiment: str = "tiny") -> tuple[list, list]:
    """(parents, children) of an experiment, as MLflow's own client finds them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def tensorboard_runs(logdir: Path):
    """TensorBoard's multiplexer over logdir, and its HParams plugin data (run -> tag -> content)."""
    # TensorBoard's readers use TensorFlow's file system when TensorFlow imports; told it is
    # absent, they use their own (the fast tier refuses TensorFlow in the test process).
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    return multiplexer, multiplexer.PluginRunToTagToContent("hparams")


def sessions(logdir: Path) -> dict[str, dict]:
    """session run -> {hparams, status, scalars: tag -> [(step, value)]}."""
    from tensorboard.plugins.hparams import api_pb2, metadata

    multiplexer, content = tensorboard_runs(logdir)
    out = {}
    for run, tags in content.items():
        if metadata.SESSION_START_INFO_TAG not in tags:
            continue
        start = metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
        hparams = {k: (v.number_value if v.WhichOneof("kind") == "number_value" else v.string_value)
                   for k, v in start.hparams.items()}
        end = tags.get(metadata.SESSION_END_INFO_TAG)
        status = api_pb2.Status.Name(metadata.parse_session_end_info_plugin_data(end).status) if end else None
        accumulator = multiplexer.GetAccumulator(run)
        scalars = {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
                   for tag in accumulator.Tags()["scalars"]}
        out[run] = {"hparams": hparams, "status": status, "scalars": scalars, "group": start.group_name}
    return out


# ---------------------------------------------------------------- sweeps with a fake worker
def fake_sweep(tmp_path, observer=None, resume=False, worker=None, **sweep):
    config = config_from_dict(tiny_config(sweep={"batch_sizes": [8, 16, 32, 64], "modes": ["fit"], "rounds": 2,
                                                 **sweep}), base_dir=tmp_path)
    worker = worker or RoundWorker(noise=0.2, oom=lambda batch, number: batch == 64 and number == 2)
    options = SweepOptions(out=None if resume else tmp_path / "run", resume=tmp_path / "run" if resume else None,
                           worker_factory=lambda *a: worker, observer=observer)
    return Sweep(config, options).run()


def test_a_row_becomes_identity_figures_and_words():
    row = {"run_id": "r", "name": "tiny", "model": "mlp", "mode": "predict", "method": "serve", "batch_size": 32,
           "precision": "float32", "jit_compile": True, "status": "ok", "error": None, "trial_id": "predict-serve-b32",
           "throughput_sps": 1234.56789, "throughput_sps_ci_low": float("nan"), "rounds": 2, "params": 100,
           "stable": False, "peak_device_mib": None}
    point = point_of(row)
    assert point.params == {"mode": "predict", "method": "serve", "batch_size": 32, "precision": "float32",
                            "jit_compile": "true"}
    assert point.metrics == {"throughput_sps": 1234.57, "rounds": 2.0}  # as results.csv holds it; no NaN, no None
    assert point.tags == {"status": "ok", "trial_id": "predict-serve-b32", "params": "100", "stable": "false"}
    assert point.step == 2 and point.trial_id == "predict-serve-b32"
    oom = point_of({"mode": "fit", "method": "", "batch_size": 64, "status": "oom", "error": "out of memory",
                    "trial_id": "fit-b64", "throughput_sps": None, "rounds": 0})
    assert oom.metrics == {"rounds": 0.0} and oom.tags["error"] == "out of memory" and "method" not in oom.params


def test_a_sweep_files_a_parent_and_a_child_per_row_updated_as_rounds_end(tmp_path, store):
    trackers = open_trackers(store, tmp_path / "tb")
    seen: list[tuple[str, int, bool]] = []
    point = trackers.point

    def spy(run_dir, row):  # the run folder is written first: the row is in results.csv already
        on_disk = {r["trial_id"]: r for r in read_rows(Path(run_dir) / "results.csv")}
        seen.append((row["trial_id"], row["rounds"], on_disk[row["trial_id"]]["rounds"] == row["rounds"]))
        point(run_dir, row)

    trackers.point = spy
    outcome = fake_sweep(tmp_path, observer=trackers)
    trackers.finish(outcome.run_dir)
    assert trackers.warnings == []
    assert all(written for _, _, written in seen) and ("fit-b8", 2, True) in seen  # updated after round 2

    rows = read_rows(outcome.run_dir / "results.csv")
    parents, children = mlflow_runs(store)
    assert len(parents) == 1 and len(children) == len(rows) == 4
    parent = parents[0]
    assert parent.data.tags["run_id"] == rows[0]["run_id"] and parent.info.status == "FINISHED"
    assert parent.data.params["sweep.batch_sizes"] == "[8, 16, 32, 64]" and parent.data.params["params"] == "100"
    assert parent.data.tags["recommend.fit.best_throughput"] == str(outcome.summary["recommendations"]["fit"]
                                                                     ["best_throughput"])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"results.csv", "run.json"}
    by_trial = {c.data.tags["trial_id"]: c for c in children}
    for row in rows:
        child = by_trial[row["trial_id"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.params["batch_size"] == str(row["batch_size"]) and child.data.tags["status"] == row["status"]
        if row["status"] == "ok":
            assert child.data.metrics["throughput_sps"] == row["throughput_sps"]
            assert child.data.metrics["throughput_sps_ci_low"] <= row["throughput_sps"] <= \
                child.data.metrics["throughput_sps_ci_high"]
            history = client.get_metric_history(child.info.run_id, "throughput_sps")
            assert [m.step for m in history] == [1, 2]  # round 1's figure, then the pooled one
    oom = by_trial["fit-b64"]  # ok in round 1, out of memory in round 2: the point failed
    assert oom.info.status == "FAILED" and oom.data.tags["status"] == "oom" and "round 2" in oom.data.tags["error"]

    found = sessions(tmp_path / "tb")
    assert len(found) == len(rows)
    for row in rows:
        session = found[f"{row['run_id']}/{row['trial_id']}"]
        assert session["hparams"]["batch_size"] == row["batch_size"] and session["hparams"]["mode"] == "fit"
        assert session["status"] == ("STATUS_SUCCESS" if row["status"] == "ok" else "STATUS_FAILURE")
        if row["status"] == "ok":
            assert session["scalars"]["throughput_sps"][-1][0] == 2
            assert session["scalars"]["throughput_sps"][-1][1] == pytest.approx(row["throughput_sps"], rel=1e-6)


def test_filing_a_saved_run_again_updates_the_same_parent_and_adds_nothing(tmp_path, store):
    outcome = fake_sweep(tmp_path)
    for _ in range(2):
        trackers = open_trackers(store, tmp_path / "tb")
        trackers.file(outcome.run_dir)
        assert trackers.warnings == []
    parents, children = mlflow_runs(store)
    assert len(parents) == 1 and len(children) == 4
    from mlflow.tracking import MlflowClient

    child = next(c for c in children if c.data.tags["trial_id"] == "fit-b8")
    assert len(MlflowClient(store).get_metric_history(child.info.run_id, "throughput_sps")) == 1
    sizes = {p: p.stat().st_size for p in (tmp_path / "tb").rglob("*tfevents*")}
    again = open_trackers(None, tmp_path / "tb")
    again.file(outcome.run_dir)
    after = {p: p.stat().st_size for p in (tmp_path / "tb").rglob("*tfevents*")}
    session_files = [p for p in sizes if "experiment" not in p.name]
    assert len(session_files) == 4 and all(after[p] == sizes[p] for p in session_files)


def test_an_interrupted_and_resumed_sweep_keeps_one_parent(tmp_path, store):
    first = RoundWorker()

    def kill(n):
        if n == 5:
            raise KeyboardInterrupt  # dies in round 2 (one shared process) after the four of round 1 were saved

    first.on_trial = kill
    trackers = open_trackers(store, tmp_path / "tb")
    with pytest.raises(KeyboardInterrupt):
        fake_sweep(tmp_path, observer=trackers, worker=first)
    parents, children = mlflow_runs(store)
    assert len(parents) == 1 and parents[0].info.status == "RUNNING" and len(children) == 4
    resumed = open_trackers(store, tmp_path / "tb")  # a new process: the parent is found by its run_id tag
    outcome = fake_sweep(tmp_path, observer=resumed, resume=True, worker=RoundWorker())
    resumed.finish(outcome.run_dir)
    parents, children = mlflow_runs(store)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.tags["trial_id"] for c in children) == ["fit-b16", "fit-b32", "fit-b64", "fit-b8"]
    assert all(c.data.metrics["rounds"] == 2 for c in children)
    assert len(sessions(tmp_path / "tb")) == 4


def test_an_unreachable_server_is_one_warning_and_the_results_are_intact(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    trackers = open_trackers(f"http://127.0.0.1:{port}", tmp_path / "tb")
    started = time.monotonic()
    outcome = fake_sweep(tmp_path, observer=trackers)
    trackers.finish(outcome.run_dir)
    assert time.monotonic() - started < 60
    assert len(trackers.warnings) == 1 and "switched off" in trackers.warnings[0]
    assert f"batchbench report {outcome.run_dir} --mlflow http://127.0.0.1:{port}" in trackers.warnings[0]
    assert len(read_rows(outcome.run_dir / "results.csv")) == 4 and outcome.exit_code == 0
    assert len(sessions(tmp_path / "tb")) == 4  # the other tracker goes on


def test_a_store_that_refuses_writes_is_switched_off_at_its_first_failure(tmp_path, store):
    from mlflow.exceptions import MlflowException

    trackers = open_trackers(store)
    calls = []

    def refuse(*args, **kw):
        calls.append(args)
        raise MlflowException("RESOURCE_EXHAUSTED: the store is full")

    trackers.exporters[0].client.log_batch = refuse
    outcome = fake_sweep(tmp_path, observer=trackers)
    trackers.finish(outcome.run_dir)
    assert len(calls) == 1 and len(trackers.warnings) == 1 and "the store is full" in trackers.warnings[0]
    assert outcome.exit_code == 0 and len(read_rows(outcome.run_dir / "results.csv")) == 4


# ---------------------------------------------------------------- bad input: exit 2 before any trial
def cli(*args, **kw):
    from batchbench.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


def test_mlflow_without_the_extra_names_it(tmp_path, write_config, monkeypatch):
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` fails, as where it is not installed
    config = write_config(tiny_config())
    result = cli("sweep", config, "--mlflow", f"sqlite:///{tmp_path}/m.db", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "pip install 'keras-batchbench[mlflow]'" in result.output
    assert "--mlflow" in result.output and not (tmp_path / "run").exists()
    result = cli("report", tmp_path, "--mlflow", f"sqlite:///{tmp_path}/m.db")
    assert result.exit_code == 2 and "keras-batchbench[mlflow]" in result.output


def test_tensorboard_without_the_extra_names_it(tmp_path, write_config, monkeypatch):
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    result = cli("sweep", write_config(tiny_config()), "--tensorboard", tmp_path / "tb", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "pip install 'keras-batchbench[tensorboard]'" in result.output
    assert not (tmp_path / "run").exists()


def test_a_uri_mlflow_refuses_or_cannot_open_is_exit_2(tmp_path, write_config):
    config = write_config(tiny_config(output={"mlflow": "nosuchscheme://x"}))
    result = cli("sweep", config, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "output.mlflow" in result.output and "nosuchscheme" in result.output
    (tmp_path / "blocker").write_text("a file, not a folder")
    result = cli("sweep", config, "--out", tmp_path / "run", "--mlflow", f"sqlite:///{tmp_path}/blocker/mlflow.db")
    assert result.exit_code == 2 and "--mlflow" in result.output and "cannot open" in result.output
    assert not (tmp_path / "run").exists()


def test_a_tensorboard_folder_that_cannot_be_written_is_exit_2(tmp_path, write_config):
    (tmp_path / "blocker").write_text("a file, not a folder")
    config = write_config(tiny_config())
    for args in (["sweep", config, "--tensorboard", tmp_path / "blocker" / "tb"],
                 ["predict-throughput", "--tensorboard", tmp_path / "blocker" / "tb"]):
        result = cli(*args, "--out", tmp_path / "run")
        assert result.exit_code == 2 and "--tensorboard" in result.output and "cannot be written" in result.output
        assert not (tmp_path / "run").exists()
    config = write_config(tiny_config(output={"tensorboard": "blocker/tb"}))  # relative to the config's folder
    result = cli("sweep", config, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "output.tensorboard" in result.output


def test_the_output_keys_validate_and_a_relative_tensorboard_folder_is_the_configs(tmp_path):
    config = config_from_dict(tiny_config(output={"mlflow": "sqlite:///m.db", "tensorboard": "tb"}), base_dir=tmp_path)
    assert config.output.mlflow == "sqlite:///m.db" and config.output.tensorboard == str(tmp_path.resolve() / "tb")
    assert config.resolved()["output"]["tensorboard"] == str(tmp_path.resolve() / "tb")
    assert config.measurement_hash() == config_from_dict(tiny_config(), base_dir=tmp_path).measurement_hash()
    from batchbench.errors import ConfigError

    with pytest.raises(ConfigError, match="output.mlflow"):
        config_from_dict(tiny_config(output={"mlflow": ""}), base_dir=tmp_path)


def test_report_files_a_saved_run(tmp_path, store):
    outcome = fake_sweep(tmp_path)
    result = cli("report", outcome.run_dir, "--mlflow", store, "--tensorboard", tmp_path / "tb", "--no-plots")
    assert result.exit_code == 0, result.output
    parents, children = mlflow_runs(store)
    assert len(parents) == 1 and len(children) == 4
    assert len(sessions(tmp_path / "tb")) == 4


@pytest.fixture
def fake_worker(monkeypatch):
    """The CLI's sweep with a fake worker (no processes, no TensorFlow); `stop_at` interrupts it."""
    state = {"stop_at": None}

    def worker(sweep, backend):
        if backend not in sweep.workers:
            fake = sweep.workers[backend] = RoundWorker()
            fake.on_trial = lambda n: setattr(sweep, "interrupted", 1) if n == state["stop_at"] else None
        return sweep.workers[backend]

    monkeypatch.setattr(Sweep, "worker", worker)
    return state


def test_the_cli_files_an_interrupted_sweep_and_its_resume_into_one_parent(tmp_path, write_config, store,
                                                                           fake_worker):
    config = write_config(tiny_config(sweep={"batch_sizes": [8, 16, 32, 64], "modes": ["fit"], "rounds": 2}))
    fake_worker["stop_at"] = 5  # round 2's shared process
    result = cli("sweep", config, "--out", tmp_path / "run", "--mlflow", store, "--tensorboard", tmp_path / "tb",
                 "-q", "--no-plots")
    assert result.exit_code == 130
    parents, children = mlflow_runs(store)
    assert len(parents) == 1 and parents[0].info.status == "KILLED" and len(children) == 4
    fake_worker["stop_at"] = None
    result = cli("sweep", "--resume", tmp_path / "run", "-q", "--no-plots")  # the trackers come from run.json
    assert result.exit_code == 0, result.output
    parents, children = mlflow_runs(store)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.metrics["rounds"] for c in children) == [2, 2, 2, 2]
    assert {a.path for a in __import__("mlflow").tracking.MlflowClient(store).list_artifacts(
        parents[0].info.run_id)} >= {"results.csv", "run.json", "report.md"}
    assert all(s["status"] == "STATUS_SUCCESS" for s in sessions(tmp_path / "tb").values())


def test_a_sweep_that_fails_after_preflight_ends_its_parent_failed(tmp_path, write_config, store, monkeypatch):
    def worker(sweep, backend):
        if backend not in sweep.workers:
            fake = sweep.workers[backend] = RoundWorker()

            def on_trial(n):
                if n == 3:
                    raise RuntimeError("the pipe broke")
            fake.on_trial = on_trial
        return sweep.workers[backend]

    monkeypatch.setattr(Sweep, "worker", worker)
    config = write_config(tiny_config(sweep={"batch_sizes": [8, 16, 32, 64], "modes": ["fit"], "rounds": 1}))
    with pytest.raises(RuntimeError, match="the pipe broke"):  # an internal error, not bad input
        cli("sweep", config, "--out", tmp_path / "run", "--mlflow", store, "-q", "--no-plots")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"
    parents, children = mlflow_runs(store)
    # the parent ends FAILED (it stayed RUNNING before), and the points that finished are filed
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}


def test_the_cli_sweep_with_an_unreachable_server_warns_once_and_exits_0(tmp_path, write_config, fake_worker):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(tiny_config(sweep={"batch_sizes": [8, 16], "modes": ["fit"], "rounds": 2}))
    result = cli("sweep", config, "--out", tmp_path / "run", "--mlflow", f"http://127.0.0.1:{port}", "-q",
                 "--no-plots")
    assert result.exit_code == 0, result.output
    assert result.output.count("warning: MLflow") == 1 and "switched off" in result.output
    assert [r["status"] for r in read_rows(tmp_path / "run" / "results.csv")] == ["ok", "ok"]


def test_another_kind_of_run_files_its_own_rows_with_its_own_identity(tmp_path, store):
    run_dir = tmp_path / "serving-run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"schema_version": RESULTS_SCHEMA_VERSION, "run_id": "serve-1",
                                                  "name": "tiny", "status": "complete",
                                                  "summary": {"serving": {"max_batch_size": 32}}}))
    (run_dir / "serving.csv").write_text("max_batch_size,batch_timeout_ms\n32,5\n")
    identity = ("max_batch_size", "batch_timeout_ms", "offered_qps")
    rows = [{"max_batch_size": 32, "batch_timeout_ms": 5.0, "offered_qps": q, "achieved_qps": q * 0.99,
             "latency_ms_p99": 12.5, "slo_met": True, "status": "ok", "trial_id": f"serve-b32-t5-q{q}"}
            for q in (100, 200)]
    trackers = open_trackers(store, tmp_path / "tb")
    for row in rows:
        trackers.point(run_dir, row, identity=identity)
    trackers.finish(run_dir, points=[point_of(r, identity) for r in rows])
    assert trackers.warnings == []
    parents, children = mlflow_runs(store)
    assert len(parents) == 1 and parents[0].data.tags["serving.max_batch_size"] == "32"
    assert sorted(c.data.params["offered_qps"] for c in children) == ["100", "200"]
    assert all(c.data.metrics["latency_ms_p99"] == 12.5 and c.data.tags["slo_met"] == "true" for c in children)
    from mlflow.tracking import MlflowClient

    assert "serving.csv" in {a.path for a in MlflowClient(store).list_artifacts(parents[0].info.run_id)}
    assert {s["hparams"]["offered_qps"] for s in sessions(tmp_path / "tb").values()} == {100, 200}


def test_predict_throughput_shards_file_a_parent_each_and_their_merge_one_with_every_point(tmp_path, write_config,
                                                                                          store, fake_worker):
    config = write_config(tiny_config(sweep={"batch_sizes": [8, 16, 32, 64], "rounds": 2}))
    shards = [tmp_path / f"shard-{i}" for i in (1, 2)]
    for i, out in enumerate(shards, 1):
        result = cli("predict-throughput", config, "--shard", f"{i}/2", "--out", out, "--mlflow", store, "-q",
                     "--no-plots")
        assert result.exit_code == 0, result.output
    parents, children = mlflow_runs(store)
    run_ids = [json.loads((out / "run.json").read_text())["run_id"] for out in shards]
    assert sorted(p.data.tags["run_id"] for p in parents) == sorted(run_ids)  # a shard's run_id is its own
    assert {p.data.tags["batchbench.shard"] for p in parents} == {"1/2", "2/2"}
    for parent in parents:
        out = shards[int(parent.data.tags["batchbench.shard"][0]) - 1]
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert sorted(c.data.tags["trial_id"] for c in mine) == sorted(r["trial_id"] for r in
                                                                        read_rows(out / "results.csv"))
    result = cli("merge", *shards, "--out", tmp_path / "merged", "--no-plots")
    assert result.exit_code == 0, result.output
    result = cli("report", tmp_path / "merged", "--mlflow", store, "--no-plots")
    assert result.exit_code == 0, result.output
    parents, children = mlflow_runs(store)
    merged = [p for p in parents if "batchbench.shard" not in p.data.tags]
    assert len(parents) == 3 and len(merged) == 1
    assert set(merged[0].data.tags["batchbench.merged_from"].split(", ")) == set(run_ids)
    mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == merged[0].info.run_id]
    rows = read_rows(tmp_path / "merged" / "results.csv")
    assert len(rows) == 8 and sorted(c.data.tags["trial_id"] for c in mine) == sorted(r["trial_id"] for r in rows)
    assert any(k.startswith("recommend.") for k in merged[0].data.tags)  # picks over every shard's points


# ---------------------------------------------------------------- serving runs: a child per batching setting
SERVING = {"name": "srv", "model": {"builtin": "mlp"}, "data": {"synthetic": {"samples": 1024}},
           "serving": {"slo_ms": 20, "max_batch_sizes": [4, 16], "timeouts_ms": [0, 2], "measure_top": 2}}


@pytest.fixture
def serving_worker(monkeypatch):
    """The CLI's serving command with load points made by the simulator (no processes, no
    TensorFlow); `stop_after` load points, it is interrupted."""
    import batchbench.serving.simulate as simulate_module
    from batchbench.serving.run import ServingRun
    from tests.test_serving import SimulatedWorker

    monkeypatch.setattr(simulate_module, "SIM_MIN_REQUESTS", 10_000)
    fake = SimulatedWorker()

    def worker(run):
        fake.on_interrupt = lambda: setattr(run, "interrupted", 1)
        return fake

    monkeypatch.setattr(ServingRun, "_worker", worker)
    return fake


def test_a_settings_max_is_sent_only_when_its_search_ended():
    """A repeat that misses takes a max back, and a tracker cannot unsay a metric."""
    from batchbench.serving.track import SETTING, STEP, setting_row

    base = {"max_batch_size": 8, "batch_timeout_ms": 2.0, "num_batch_threads": 1, "status": "ok"}
    rows = [{**base, "source": "simulated", "offered_qps": 900.0, "slo_met": True},
            {**base, "source": "measured", "offered_qps": 500.0, "slo_met": True, "latency_ms_p99": 10.0, "repeat": 0},
            {**base, "source": "measured", "offered_qps": 800.0, "slo_met": True, "latency_ms_p99": 18.0, "repeat": 0},
            {**base, "source": "measured", "offered_qps": 800.0, "slo_met": False, "latency_ms_p99": 31.0, "repeat": 1,
             "held": False},
            *({**base, "source": "measured", "offered_qps": 500.0, "slo_met": True, "latency_ms_p99": 10.0 - k,
               "repeat": k, "held": True} for k in (1, 2))]  # the next met rate below, held twice
    running = setting_row(rows[:3], 8, 2)
    assert "max_qps" not in running and "slo_met" not in running
    assert running["last_offered_qps"] == 800 and running[STEP] == 2 and running["simulated_max_qps"] == 900
    done = setting_row(rows, 8, 2, done=True)
    assert done["max_qps"] == 500 and done["latency_ms_p99"] == 10 and done["slo_met"] is True
    assert done["gap_pct"] == pytest.approx((900 / 500 - 1) * 100) and done[STEP] == 5
    point = point_of(done, SETTING, step=STEP)
    assert point.params == {"max_batch_size": 8, "batch_timeout_ms": 2, "num_batch_threads": 1} and point.step == 5
    assert point.trial_id == "serve-b8-t2" and point.tags["slo_met"] == "true" and point.tags["source"] == "measured"


def test_a_serving_run_files_a_child_per_setting_updated_as_its_load_points_end(tmp_path, write_config, store,
                                                                                 serving_worker):
    from mlflow.tracking import MlflowClient

    from batchbench.serving.outputs import read_serving_rows, setting_max

    out = tmp_path / "run"
    result = cli("serving", write_config(SERVING), "--out", out, "--mlflow", store, "--tensorboard", tmp_path / "tb",
                 "-q", "--no-plots")
    assert result.exit_code == 0, result.output
    assert "warning: MLflow" not in result.output and "warning: TensorBoard" not in result.output
    answer = json.loads((out / "run.json").read_text())["summary"]["serving"]
    rows = read_serving_rows(out / "serving.csv")
    measured = setting_max(rows)
    parents, children = mlflow_runs(store, "srv")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0].data
    assert parent.tags["serving.max_batch_size"] == str(answer["max_batch_size"])
    assert float(parent.tags["serving.max_qps"]) == answer["max_qps"]
    assert float(parent.params["serving.slo_ms"]) == 20 and not any(k.startswith("sweep.") for k in parent.params)
    client = MlflowClient(store)
    assert {"serving.csv", "run.json", "report.md"} <= {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert len(children) == 4  # every setting simulated; the two best measured too
    by_setting = {(int(c.data.params["max_batch_size"]), float(c.data.params["batch_timeout_ms"])): c for c in children}
    assert set(by_setting) == {(4, 0.0), (4, 2.0), (16, 0.0), (16, 2.0)}
    assert all("simulated_max_qps" in c.data.metrics and c.data.params["num_batch_threads"] == "1" for c in children)
    assert sorted(key for key, c in by_setting.items() if c.data.tags["source"] == "measured") == sorted(measured)
    for key, best in measured.items():
        child = by_setting[key]
        points = [r for r in rows if r["source"] == "measured" and (r["max_batch_size"], r["batch_timeout_ms"]) == key]
        assert child.data.metrics["max_qps"] == best["offered_qps"]
        assert child.data.metrics["latency_ms_p99"] == best["latency_ms_p99"] <= 20
        history = client.get_metric_history(child.info.run_id, "load_points")
        # sent as each load point ended: one step per point, the metric's value its step
        assert [(m.step, m.value) for m in history] == [(n, n) for n in range(len(history))]
        assert history[-1].value == len(points) > 1
        rates = client.get_metric_history(child.info.run_id, "last_offered_qps")
        sent = [(n, r["offered_qps"]) for n, r in enumerate(points, 1)]  # only what changed is sent again
        assert [(m.step, m.value) for m in rates] == [p for i, p in enumerate(sent) if i == 0 or p[1] != sent[i - 1][1]]
    chosen = [key for key, c in by_setting.items() if c.data.tags["answer"] == "true"]
    assert chosen == [(answer["max_batch_size"], answer["batch_timeout_ms"])]
    assert {(s["hparams"]["max_batch_size"], s["hparams"]["batch_timeout_ms"])
            for s in sessions(tmp_path / "tb").values()} == set(by_setting)
    # filed again (report --mlflow): the same parent and children, nothing added
    result = cli("report", out, "--mlflow", store, "--tensorboard", tmp_path / "tb", "--no-plots")
    assert result.exit_code == 0, result.output
    again_parents, again_children = mlflow_runs(store, "srv")
    assert [p.info.run_id for p in again_parents] == [parents[0].info.run_id]
    assert sorted(c.info.run_id for c in again_children) == sorted(c.info.run_id for c in children)
    assert len(sessions(tmp_path / "tb")) == 4


def test_report_files_a_saved_serving_run_that_never_had_a_tracker(tmp_path, write_config, store, serving_worker):
    out = tmp_path / "run"
    assert cli("serving", write_config(SERVING), "--out", out, "-q", "--no-plots").exit_code == 0
    result = cli("report", out, "--mlflow", store, "--no-plots")
    assert result.exit_code == 0, result.output
    parents, children = mlflow_runs(store, "srv")
    assert len(parents) == 1 and len(children) == 4
    assert sum(c.data.tags.get("answer") == "true" for c in children) == 1


def test_an_interrupted_serving_run_and_its_resume_keep_one_parent(tmp_path, write_config, store, serving_worker):
    out = tmp_path / "run"
    serving_worker.stop_after = 2
    result = cli("serving", write_config({**SERVING, "output": {"mlflow": store}}), "--out", out, "-q", "--no-plots")
    assert result.exit_code == 130
    parents, children = mlflow_runs(store, "srv")
    assert len(parents) == 1 and parents[0].info.status == "KILLED" and len(children) == 4
    assert not any("max_qps" in c.data.metrics for c in children)  # a search cut short has no max yet
    assert sum(c.data.metrics["load_points"] for c in children) == 2
    serving_worker.stop_after = None
    result = cli("serving", "--resume", out, "-q", "--no-plots")  # the tracker comes from run.json
    assert result.exit_code == 0, result.output
    parents, again = mlflow_runs(store, "srv")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(again) == 4
    assert sum("max_qps" in c.data.metrics for c in again) == 2  # the two measured settings
    assert "serving.max_batch_size" in parents[0].data.tags


def test_serving_with_bad_tracker_input_exits_2_before_any_load(tmp_path, write_config, serving_worker):
    (tmp_path / "blocker").write_text("a file, not a folder")
    plain, tracked = write_config(SERVING), write_config({**SERVING, "output": {"mlflow": "nosuchscheme://x"}}, "o.yaml")
    for config, args, named in ((plain, ["--mlflow", "nosuchscheme://x"], "--mlflow"),
                                (plain, ["--tensorboard", tmp_path / "blocker" / "tb"], "--tensorboard"),
                                (tracked, [], "output.mlflow")):
        result = cli("serving", config, "--out", tmp_path / "run", *args)
        assert result.exit_code == 2 and named in result.output and "Traceback" not in result.output
        assert not (tmp_path / "run").exists() and serving_worker.requests == []


def test_a_serving_run_with_an_unreachable_server_warns_once_and_exits_0(tmp_path, write_config, serving_worker):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli("serving", write_config(SERVING), "--out", tmp_path / "run", "--mlflow", f"http://127.0.0.1:{port}",
                 "-q", "--no-plots")
    assert result.exit_code == 0, result.output
    assert result.output.count("warning: MLflow") == 1 and "switched off" in result.output
    assert f"batchbench report {tmp_path / 'run'} --mlflow" in " ".join(result.output.split())
    rows = json.loads((tmp_path / "run" / "run.json").read_text())["summary"]
    assert rows["serving"] is not None and (tmp_path / "run" / "serving.csv").exists()


def test_a_trackers_object_without_exporters_is_inert(tmp_path):
    trackers = Trackers([])
    assert not trackers
    trackers.finish(tmp_path)  # nothing was sent: nothing to finish


# ---------------------------------------------------------------- the real thing
@pytest.mark.slow
def test_a_real_sweep_with_both_trackers(tmp_path, write_config, store):
    config = write_config(tiny_config(sweep={"batch_sizes": [16, 64], "modes": ["fit"], "rounds": 2}))
    tb = tmp_path / "tb"
    result = run_cli("sweep", config, "--out", tmp_path / "run", "--mlflow", store, "--tensorboard", tb, "-q",
                     "--no-plots")
    assert result.returncode == 0, result.stderr
    assert "warning: MLflow" not in result.stderr and "warning: TensorBoard" not in result.stderr
    assert "INFO" not in result.stderr  # MLflow's and alembic's start-up logs stay out of -q
    rows = read_rows(tmp_path / "run" / "results.csv")
    assert len(rows) == 2 and all(r["rounds"] == 2 for r in rows)
    parents, children = mlflow_runs(store)
    assert len(parents) == 1 and len(children) == len(rows)
    by_trial = {c.data.tags["trial_id"]: c for c in children}
    for row in rows:
        assert by_trial[row["trial_id"]].data.metrics["throughput_sps"] == row["throughput_sps"]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["config_resolved"]["output"]["mlflow"] == store  # a resume files into the same store
    found = sessions(tb)
    assert sorted(found) == sorted(f"{r['run_id']}/{r['trial_id']}" for r in rows)
    assert all(s["status"] == "STATUS_SUCCESS" and s["scalars"]["throughput_sps"][-1][0] == 2 for s in found.values())
    again = cli("report", tmp_path / "run", "--mlflow", store, "--no-plots")
    assert again.exit_code == 0, again.output
    assert len(mlflow_runs(store)[0]) == 1 and len(mlflow_runs(store)[1]) == 2
