"""A config's folder is not trusted: its files run only when the config names them, its git
repository runs nothing, and whatever a trial starts ends with the trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import yaml

from batchbench.envinfo import git_info
from batchbench.results import read_rows
from batchbench.runner import USER_PATH_VAR, worker_env
from tests.conftest import ROOT, run_cli, tiny_config

SHADOWS = ("json", "random", "keras")  # a stdlib module, one the worker imports late, a framework

# A factory whose trials start helper processes and never end them: one in the trial's process
# group, one in a session of its own (as a daemon would). Each pid is written to pids.txt.
SPAWNERS = '''
import os, subprocess, time

import keras

HERE = os.path.dirname(os.path.abspath(__file__))


def spawn(**_):
    helpers = [subprocess.Popen(["sleep", "300"]), subprocess.Popen(["sleep", "300"], start_new_session=True)]
    with open(os.path.join(HERE, "pids.txt"), "a") as fh:
        fh.writelines(f"{p.pid}\\n" for p in helpers)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="softmax")])


def hang_at(batch=16, **_):
    """spawn(), and a fit that hangs at `batch` (after saying so in a file named in-flight)."""
    model = spawn()
    original_fit = model.fit

    def fit(x, y=None, batch_size=None, **kw):
        if batch_size == batch:
            open(os.path.join(HERE, "in-flight"), "w").close()
            time.sleep(3600)
        return original_fit(x, y, batch_size=batch_size, **kw)

    model.fit = fit
    return model
'''


def write_spawners(folder: Path, factory: str, sweep: dict) -> Path:
    (folder / "spawners.py").write_text(SPAWNERS)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(model={"factory": f"spawners:{factory}"}, sweep=sweep)))
    return config


def assert_helpers_gone(folder: Path) -> None:
    pids = [int(line) for line in (folder / "pids.txt").read_text().split()]
    assert len(pids) >= 4  # the preflight's and at least one trial's
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _is_sleep(pid)]
        if not alive:
            return
        time.sleep(0.1)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"helper processes outlived the sweep: {alive}")


def _is_sleep(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.cmdline()[:1] == ["sleep"]
    except psutil.Error:
        return False


def test_the_config_folder_travels_apart_from_pythonpath(tmp_path):
    env = worker_env(extra_path=str(tmp_path))
    assert env[USER_PATH_VAR] == str(tmp_path.resolve())
    assert str(tmp_path) not in env.get("PYTHONPATH", "").split(os.pathsep)
    assert USER_PATH_VAR not in worker_env()


@pytest.mark.slow
def test_files_beside_a_config_shadow_nothing_and_its_factory_still_imports(tmp_path):
    for name in SHADOWS:
        (tmp_path / f"{name}.py").write_text(f"open({str(tmp_path / ('imported-' + name))!r}, 'w').close()\n")
    (tmp_path / "mymodels.py").write_text(textwrap.dedent("""
        import keras  # the real one: the config's folder comes last on sys.path

        def build(**_):
            return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="softmax")])
    """))
    (tmp_path / "mydata.py").write_text(textwrap.dedent("""
        import numpy as np

        def load():
            rng = np.random.default_rng(0)
            return rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 4, size=64)
    """))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(
        model={"factory": "mymodels:build"}, data={"callable": {"function": "mydata:load"}},
        sweep={"batch_sizes": [16], "modes": ["predict"], "methods": ["serve"]})))
    # Run from the config's folder, as users do: the worker must not find json.py there either.
    # (-P and PYTHONPATH keep the controller itself to this checkout's batchbench.)
    result = subprocess.run([sys.executable, "-P", "-m", "batchbench", "sweep", str(config), "--out",
                             str(tmp_path / "run"), "-q"], capture_output=True, text=True, timeout=600,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert [r["status"] for r in read_rows(tmp_path / "run" / "results.csv")] == ["ok"]
    assert not [p.name for p in tmp_path.glob("imported-*")]
    assert "Traceback" not in result.stderr


def test_git_metadata_runs_no_program_the_repository_names(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "config.yaml").write_text("name: x\n")
    (repo / "weights.dat").write_text("0123\n")
    (repo / ".gitattributes").write_text("*.dat filter=evil\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    marker = tmp_path / "ran"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\ncat\n")
    hook.chmod(0o755)
    for key in ("core.fsmonitor", "filter.evil.clean", "filter.evil.smudge", "diff.external", "core.pager"):
        subprocess.run([*git, "config", key, str(hook)], check=True)

    for name in ("config.yaml", "weights.dat"):  # stat changed, content not: `git status` runs the filter
        os.utime(repo / name, (0, 0))
    assert git_info(str(repo)) == {"commit": commit, "dirty": False}
    assert not marker.exists()
    (repo / "weights.dat").write_text("4567\n")  # filtered: its bytes need not be the blob's
    assert git_info(str(repo)) == {"commit": commit, "dirty": None}
    (repo / "config.yaml").write_text("name: y\n")
    assert git_info(str(repo)) == {"commit": commit, "dirty": True}
    assert git_info(str(repo / "subfolder-that-is-not-there")) is None
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("ending, returncode", [("finished", 0), (signal.SIGINT, 130), (signal.SIGKILL, -9)],
                         ids=["finished", "interrupted", "controller-killed"])
def test_helper_processes_a_trial_starts_end_with_it(tmp_path, ending, returncode, own_worker_server):
    if ending == "finished":
        config = write_spawners(tmp_path, "spawn", {"batch_sizes": [16], "modes": ["predict"], "methods": ["serve"]})
    else:
        config = write_spawners(tmp_path, "hang_at", {"batch_sizes": [16], "modes": ["fit"]})
    proc = subprocess.Popen([sys.executable, "-m", "batchbench", "sweep", str(config), "--out", str(tmp_path / "run"),
                             "-q"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if ending != "finished":  # Ctrl-C, or the controller itself killed
            wait_for(tmp_path / "in-flight")
            proc.send_signal(ending)
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == returncode, stderr
    assert "Traceback" not in stderr
    assert_helpers_gone(tmp_path)


def wait_for(path: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)



@pytest.mark.slow
def test_links_planted_in_a_run_folder_are_never_written_through(tmp_path, write_config):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    config = write_config(tiny_config(sweep={"batch_sizes": [16, 32], "modes": ["predict"], "methods": ["serve"]}))
    run = tmp_path / "run"
    (run / "trials").mkdir(parents=True)
    (run / "trials" / "predict-serve-b16-r1.log").symlink_to(outside)
    result = run_cli("sweep", config, "--out", run, "-q")
    assert result.returncode == 0, result.stderr
    rows = {r["batch_size"]: r for r in read_rows(run / "results.csv")}
    assert rows[16]["status"] == "error" and "symbolic link" in rows[16]["error"]
    assert rows[32]["status"] == "ok"

    other = tmp_path / "other"
    other.mkdir()
    (other / "worker.log").symlink_to(outside)
    result = run_cli("sweep", config, "--out", other, "-q")
    assert result.returncode == 2 and "symbolic link" in result.stderr and "Traceback" not in result.stderr
    assert outside.read_text() == "keep\n"
