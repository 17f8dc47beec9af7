"""Worker lifecycle: start the fork server, hand it one job at a time, watch the child
(timeout, memory), and classify how it ended. Never imports TensorFlow."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from batchbench.errors import BatchbenchError

READY_TIMEOUT_S = 300.0
POLL_S = 0.05


class WorkerError(RuntimeError):
    """The worker server itself could not start or died between jobs."""


@dataclass
class JobOutcome:
    """How a job ended, as the controller saw it."""

    result: dict | None          # what the child wrote, if it finished
    returncode: int | None       # the child's exit code; negative: killed by that signal
    timed_out: bool = False
    memory_killed: bool = False  # we ended it: resident memory crossed the cap
    peak_rss_mib: float | None = None  # the highest RSS the watchdog saw
    elapsed_s: float = 0.0

    @property
    def signal_name(self) -> str | None:
        if self.returncode is not None and self.returncode < 0:
            try:
                return signal.Signals(-self.returncode).name
            except ValueError:
                return f"signal {-self.returncode}"
        return None


def worker_env(backend: str = "tensorflow", verbose: bool = False, extra_path: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    if not verbose:
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    env["BATCHBENCH_VERBOSE"] = "1" if verbose else "0"
    root = str(Path(__file__).resolve().parent.parent)
    paths = [p for p in (extra_path, root, env.get("PYTHONPATH")) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class Worker:
    """A fork server process: imports the frameworks once, then one fresh child per job."""

    def __init__(self, env: dict[str, str], log_path: Path | None = None, verbose: bool = False):
        self.env = env
        self.verbose = verbose
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self._buffer = b""
        self.import_s: float | None = None
        self.current_pid: int | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self.proc and self.proc.poll() is None:
            return
        stderr: Any = None if self.verbose else subprocess.DEVNULL
        if self.log_path and not self.verbose:
            stderr = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchbench.worker.server"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=self.env,
            start_new_session=True,  # Ctrl-C in the terminal reaches the controller only
        )
        if stderr not in (None, subprocess.DEVNULL):
            stderr.close()
        self._buffer = b""
        ready = self._read_event(READY_TIMEOUT_S)
        if ready is None or ready.get("event") != "ready":
            self.close()
            raise WorkerError("the worker process did not start (run with --verbose to see why)")
        if ready.get("error"):
            self.close()
            raise BatchbenchError(f"the worker cannot import its frameworks: {ready['error']}")
        self.import_s = ready.get("import_s")

    def close(self) -> None:
        if not self.proc:
            return
        if self.current_pid:
            _kill(self.current_pid)
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(b'{"op": "exit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ jobs
    def run(self, request: dict, timeout_s: float | None = None, memory_cap_bytes: int | None = None,
            log_path: Path | None = None, on_tick=None) -> JobOutcome:
        """Run one job in a fresh child. Blocks until the child ends or is ended."""
        self.start()
        fd, result_path = tempfile.mkstemp(prefix="batchbench-", suffix=".json")
        os.close(fd)
        os.unlink(result_path)
        if log_path is None:
            fd, log_name = tempfile.mkstemp(prefix="batchbench-", suffix=".log")
            os.close(fd)
            log_path = Path(log_name)
        request = {**request, "result_path": result_path, "log_path": str(log_path)}
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()
            raise WorkerError("the worker process died before the job started") from None
        started = time.monotonic()
        event = self._read_event(60.0)
        if not event or event.get("event") != "started":
            self.close()
            raise WorkerError("the worker process did not start the job")
        pid = self.current_pid = event["pid"]
        outcome = JobOutcome(result=None, returncode=None)
        peak_rss = 0
        try:
            child = psutil.Process(pid)
        except psutil.Error:
            child = None
        while True:
            event = self._read_event(POLL_S)
            if event and event.get("event") == "exited":
                outcome.returncode = event["returncode"]
                break
            if event is None and self.proc.poll() is not None:
                outcome.returncode = None  # the server itself died
                break
            elapsed = time.monotonic() - started
            if child is not None:
                try:
                    rss = child.memory_info().rss
                    peak_rss = max(peak_rss, rss)
                except psutil.Error:
                    rss = 0
                if memory_cap_bytes and rss > memory_cap_bytes and not outcome.memory_killed:
                    outcome.memory_killed = True
                    _kill(pid)
            if timeout_s and elapsed > timeout_s and not outcome.timed_out:
                outcome.timed_out = True
                _kill(pid)
            if on_tick:
                on_tick()
        self.current_pid = None
        outcome.elapsed_s = time.monotonic() - started
        outcome.peak_rss_mib = peak_rss / 2**20 if peak_rss else None
        if os.path.exists(result_path):
            try:
                with open(result_path) as fh:
                    outcome.result = json.load(fh)
            except (OSError, json.JSONDecodeError):
                outcome.result = None
            os.unlink(result_path)
        if outcome.returncode is None:
            self.close()
        return outcome

    def interrupt(self) -> None:
        """End the running child at once (Ctrl-C)."""
        if self.current_pid:
            _kill(self.current_pid)

    def _read_event(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc is None:
                return None
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
