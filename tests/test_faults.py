"""Sweeps that survive anything: each fault is caused for real, then results.csv must be
valid, hold every finished trial, and --resume must complete the run without repeats."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from batchbench.errors import OutputError
from batchbench.results import read_rows
from tests.conftest import ROOT, own_children, run_cli, tiny_config
from tests.test_isolation import assert_helpers_gone, wait_for, write_spawners

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("own_worker_server")]  # the worker lifecycle itself

SLOW_TRIALS = {"batch_sizes": [8, 16, 32, 64], "modes": ["predict"], "methods": ["serve"], "repeats": 3,
               "min_time_s": 0.3, "min_steps": 3, "warmup_steps": 1, "rounds": 1}


def start_sweep(config: Path, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "batchbench", "sweep", str(config), "--out", str(run_dir), "-q"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(run_dir: Path, n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    path = run_dir / "results.csv"
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n + 1:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} never reached {n} rows")


def trial_process(controller: subprocess.Popen, timeout: float = 60) -> psutil.Process:
    """The running trial: a child of the worker server, itself a child of the controller."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(controller.pid).children(recursive=True):
            try:
                if child.parent().pid != controller.pid:
                    return child
            except psutil.Error:
                continue
        time.sleep(0.05)
    raise AssertionError("no trial process appeared")


def assert_resume_completes(config: Path | None, run_dir: Path, before: list[dict]) -> None:
    result = run_cli("sweep", *([config] if config else []), "--resume", run_dir, "-q")
    assert result.returncode == 0, result.stderr
    rows = read_rows(run_dir / "results.csv")
    assert [r["batch_size"] for r in rows] == [8, 16, 32, 64]  # each trial once, none repeated
    for old in before:  # finished trials were kept, not re-run
        assert next(r for r in rows if r["trial_id"] == old["trial_id"])["throughput_sps"] == old["throughput_sps"]


@pytest.fixture
def slow_config(write_config):
    return write_config(tiny_config(sweep=SLOW_TRIALS))


def test_worker_killed_mid_trial_is_an_error_row_and_the_sweep_goes_on(tmp_path, slow_config):
    run_dir = tmp_path / "run"
    proc = start_sweep(slow_config, run_dir)
    wait_for_rows(run_dir, 1)
    victim = trial_process(proc)
    victim.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=180) == 0
    rows = read_rows(run_dir / "results.csv")
    assert len(rows) == 4
    killed = [r for r in rows if r["status"] != "ok"]
    assert len(killed) == 1 and "SIGKILL" in killed[0]["error"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_interrupt_keeps_what_finished_and_prints_the_resume_command(tmp_path, slow_config, sig):
    run_dir = tmp_path / "run"
    proc = start_sweep(slow_config, run_dir)
    wait_for_rows(run_dir, 1)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert f"batchbench sweep --resume {run_dir}" in stderr
    assert "Traceback" not in stderr
    before = read_rows(run_dir / "results.csv")
    assert 1 <= len(before) < 4 and all(r["status"] == "ok" for r in before)
    assert not any(p.pid for p in own_children() if p.name().startswith("python") and p.ppid() == proc.pid)
    assert_resume_completes(None, run_dir, before)  # exactly the printed command


def test_a_second_interrupt_stops_at_once(tmp_path, slow_config):
    run_dir = tmp_path / "run"
    proc = start_sweep(slow_config, run_dir)
    wait_for_rows(run_dir, 1)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    read_rows(run_dir / "results.csv")  # still valid


def test_a_stopped_worker_server_is_a_timeout_and_the_next_trial_gets_a_fresh_one(tmp_path):
    config = write_spawners(tmp_path, "hang_at", {"batch_sizes": [16, 32], "modes": ["fit"], "trial_timeout_s": 10})
    run_dir = tmp_path / "run"
    proc = start_sweep(config, run_dir)
    server = None
    try:
        wait_for(tmp_path / "in-flight")  # the trial at 16 is running (and will hang)
        server = next(p for p in psutil.Process(proc.pid).children() if "batchbench.worker.server" in p.cmdline())
        server.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        _, stderr = proc.communicate(timeout=150)
    finally:
        if server is not None and server.is_running():
            server.send_signal(signal.SIGCONT)
        proc.kill()
    assert proc.returncode == 0, stderr
    rows = {r["batch_size"]: r for r in read_rows(run_dir / "results.csv")}
    assert rows[16]["status"] == "timeout" and "trial_timeout_s=10" in rows[16]["error"]
    assert rows[16]["wall_s"] < 10 + 10  # the timeout, the grace for the server to answer, no more
    assert rows[32]["status"] == "ok"  # in a fresh server
    assert not server.is_running() and time.monotonic() - stopped_at < 150
    assert "Traceback" not in stderr + (run_dir / "worker.log").read_text()
    assert_helpers_gone(tmp_path)


def test_controller_killed_leaves_no_partial_line_and_resume_works(tmp_path, slow_config):
    run_dir = tmp_path / "run"
    proc = start_sweep(slow_config, run_dir)
    wait_for_rows(run_dir, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.5)  # the worker dies with its parent (PR_SET_PDEATHSIG)
    text = (run_dir / "results.csv").read_text()
    assert text.endswith("\n")
    before = read_rows(run_dir / "results.csv")
    assert len(before) >= 2
    assert_resume_completes(slow_config, run_dir, before)


def test_an_unwritable_output_directory_is_exit_2_before_any_trial(tmp_path, write_config):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("sweep", write_config(tiny_config()), "--out", blocker / "run", "-q")
    assert result.returncode == 2
    assert "cannot write the run directory" in result.stderr and "Traceback" not in result.stderr


def test_a_write_that_fails_mid_run_is_a_clear_error_and_damages_nothing(tmp_path):
    from batchbench.config import config_from_dict
    from batchbench.sweep import Sweep, SweepOptions

    appends = {"n": 0}

    def fail_on_second_row():
        appends["n"] += 1
        if appends["n"] == 2:
            raise OSError(28, "No space left on device")

    config = config_from_dict(tiny_config(sweep={"batch_sizes": [8, 16, 32], "modes": ["predict"],
                                                 "methods": ["serve"]}))
    run_dir = tmp_path / "run"
    with pytest.raises(OutputError, match="No space left on device"):
        Sweep(config, SweepOptions(out=run_dir, write_fault=fail_on_second_row)).run()
    rows = read_rows(run_dir / "results.csv")
    assert [r["batch_size"] for r in rows] == [8]
    import json

    json.loads((run_dir / "run.json").read_text())  # still whole
    assert not own_children()  # no worker left behind
