"""The worker broker (worker/broker.py): a server forked from a process that imported the
frameworks already speaks the server's protocol, takes the controller's environment and folder,
ends when its controller hangs up, and is refused where something that takes effect at import
differs (then the controller starts its own server, as without a broker)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from batchbench.runner import BROKER_VAR, BrokeredServer, Worker, python_command, worker_env

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the broker passes descriptors: Linux")]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("broker") / "socket")
    proc = subprocess.Popen(python_command("batchbench.worker.broker", path), env=worker_env("tensorflow"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(path):
        assert proc.poll() is None and time.monotonic() < deadline, "the broker did not come up"
        time.sleep(0.1)
    yield path, proc
    proc.kill()
    proc.wait()


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                time.sleep(0.05)
                continue
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def brokered_worker(path: str, tmp_path, **env) -> Worker:
    return Worker({**worker_env("tensorflow"), BROKER_VAR: path, **env}, log_path=tmp_path / "worker.log")


def test_a_brokered_server_runs_jobs_in_fresh_children_in_the_controllers_folder(broker, tmp_path, monkeypatch):
    path, proc = broker
    monkeypatch.chdir(tmp_path)
    worker = brokered_worker(path, tmp_path)
    with worker:
        worker.start()
        assert isinstance(worker.proc, BrokeredServer)
        server = psutil.Process(worker.proc.pid)
        assert server.ppid() == proc.pid  # forked by the broker, not started by this process
        assert server.cwd() == str(tmp_path)  # (its environment: the factory tests import from a config's folder)
        first = worker.run({"op": "env"}, timeout_s=120)
        second = worker.run({"op": "env"}, timeout_s=120)
        assert first.returncode == 0 and first.result["status"] == "ok"
        assert second.returncode == 0 and first.result["info"] == second.result["info"]
    assert gone(server.pid)  # closed: it ended (the broker's child, reaped by the kernel)
    with brokered_worker(path, tmp_path) as again:  # the next controller gets a server of its own
        again.start()
        assert again.proc.pid != server.pid and psutil.Process(again.proc.pid).ppid() == proc.pid


def test_a_server_whose_controller_hangs_up_ends(broker, tmp_path):
    path, _ = broker
    worker = brokered_worker(path, tmp_path)
    worker.start()
    pid = worker.proc.pid
    for end in (worker.proc.stdin, worker.proc.stdout, worker.proc.sock):
        end.close()  # as when the controller dies: the connection goes, no "exit" is sent
    assert gone(pid)


def test_what_takes_effect_at_import_differing_means_a_server_of_its_own(broker, tmp_path):
    path, _ = broker
    with brokered_worker(path, tmp_path, TF_CPP_MIN_LOG_LEVEL="0") as worker:
        worker.start()
        assert isinstance(worker.proc, subprocess.Popen)  # refused: the log level is set at import
        assert worker.run({"op": "env"}, timeout_s=120).result["status"] == "ok"
    with brokered_worker(str(tmp_path / "no-broker-here"), tmp_path) as worker:
        worker.start()
        assert isinstance(worker.proc, subprocess.Popen)
