"""Shared fixtures: tiny real configs that run in seconds on two cores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FRAMEWORKS = ("tensorflow", "keras", "jax", "torch")


@pytest.fixture(autouse=True)
def _fast_tier_stays_framework_free(request):
    """make test-fast: a test that imports TensorFlow, Keras, JAX or torch must be marked slow
    (looking a package up with find_spec is fine: nothing runs)."""
    yield
    if os.environ.get("BATCHBENCH_TEST_FAST"):
        loaded = [name for name in FRAMEWORKS if name in sys.modules]
        assert not loaded, f"{request.node.nodeid} imported {', '.join(loaded)} in the fast tier: mark it slow"


BROKERS: set[int] = set()  # the suite's broker process (a child of this test process, kept all session)


def own_children() -> list:
    """This test process's descendants but for the suite's broker and what it forked."""
    import psutil

    out = []
    for child in psutil.Process().children():
        if child.pid not in BROKERS:
            out += [child, *child.children(recursive=True)]
    return out


@pytest.fixture(scope="session", autouse=True)
def _worker_broker(tmp_path_factory):
    """One process per test worker that imports TensorFlow once and forks a whole worker server
    for every command and sweep that starts one (worker/broker.py): each would otherwise import
    it again, about 6 s of CPU, half of the suite. Tests of the worker's own lifecycle (faults,
    isolation) opt out with `own_worker_server`. Not in the fast tier, nor without TensorFlow."""
    import importlib.util
    import subprocess
    import tempfile
    import time

    from batchbench.runner import BROKER_VAR, python_command, worker_env

    if os.environ.get("BATCHBENCH_TEST_FAST") or importlib.util.find_spec("tensorflow") is None \
            or not sys.platform.startswith("linux"):
        yield
        return
    path = os.path.join(tempfile.mkdtemp(prefix="bb-broker-"), "socket")
    proc = subprocess.Popen(python_command("batchbench.worker.broker", path), env=worker_env("tensorflow"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    while not os.path.exists(path) and proc.poll() is None:  # its imports: what the first test would pay
        time.sleep(0.05)
    if proc.poll() is None:
        os.environ[BROKER_VAR] = path
        BROKERS.add(proc.pid)
    try:
        yield
    finally:
        os.environ.pop(BROKER_VAR, None)
        proc.kill()
        proc.wait()


@pytest.fixture
def own_worker_server(monkeypatch):
    """This test's commands start their own worker servers, as without the suite's broker."""
    from batchbench.runner import BROKER_VAR

    monkeypatch.delenv(BROKER_VAR, raising=False)


# The input-bound diagnosis is off here (a second a pipeline trial; arrays never get it);
# tests/test_pipelines.py turns it on.
TINY_SWEEP = {"repeats": 3, "min_steps": 3, "min_time_s": 0.02, "warmup_steps": 1, "rounds": 1,
              "input_bound_check": False}


def tiny_config(**overrides) -> dict:
    config = {
        "name": "tiny",
        "model": {"builtin": "mlp", "kwargs": {"hidden": 16, "depth": 1}},
        "data": {"synthetic": {"samples": 256, "num_classes": 4}},
        "sweep": {"batch_sizes": [16, 64], **TINY_SWEEP},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict) and key == "sweep":
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@pytest.fixture
def write_config(tmp_path):
    """Write a config dict as YAML in tmp_path (beside a copy-free path to the fixtures)."""

    def _write(config: dict, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    return _write


@pytest.fixture
def fixtures_path():
    return FIXTURES


def run_cli(*args: str, env: dict | None = None, timeout: float = 600):
    """Run the real CLI in a subprocess, as a user would."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "batchbench", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
