"""Worker lifecycle: start the fork server, hand it one job at a time, watch the child
(timeout, memory), and classify how it ended. Never imports TensorFlow."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from batchbench.errors import BatchbenchError, OutputError

READY_TIMEOUT_S = 300.0
START_TIMEOUT_S = 60.0  # a healthy server answers a request with "started" at once
EXIT_GRACE_S = 5.0      # once the child is ended (or gone), how long the server may take to say so
POLL_S = 0.05
USER_PATH_VAR = "BATCHBENCH_USER_PATH"  # read by worker/server.py
WINDOW_PATH_KEY = "window_path"  # the request's key for the memory window's marker (worker/trackers.py)
WINDOW_FILE = "memory_window.json"
# A broker's socket (worker/broker.py): where set, a worker server is forked from a process that
# imported the frameworks already, if nothing that takes effect at import differs (IMPORT_VARS).
BROKER_VAR = "BATCHBENCH_WORKER_BROKER"
IMPORT_VARS = ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL", "BATCHBENCH_VERBOSE", "PYTHONPATH",
               "TF_ENABLE_ONEDNN_OPTS", "TF_USE_LEGACY_KERAS", "CUDA_VISIBLE_DEVICES", "XLA_FLAGS", "TF_XLA_FLAGS",
               "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
               "XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_CLIENT_MEM_FRACTION",
               "JAX_PLATFORMS", "KERAS_HOME", "LD_PRELOAD", "MALLOC_ARENA_MAX")
PACKAGE_DIR = Path(__file__).resolve().parent

# Runs a module of this very batchbench (the one the controller runs) under `python -P`: no
# script folder, working folder or config folder on sys.path, and the package loaded from its
# own folder rather than found on a path where something else could stand in for it.
_BOOTSTRAP = """\
import importlib.util, os, runpy, sys
root, module = sys.argv[1:3]
del sys.argv[1:3]
spec = importlib.util.spec_from_file_location("batchbench", os.path.join(root, "__init__.py"),
                                              submodule_search_locations=[root])
sys.modules["batchbench"] = package = importlib.util.module_from_spec(spec)
spec.loader.exec_module(package)
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def python_command(module: str, *args: str) -> list[str]:
    """The argv that runs `python -m <module> <args>` for a batchbench module, shadow-free."""
    return [sys.executable, "-P", "-c", _BOOTSTRAP, str(PACKAGE_DIR), module, *args]


class WorkerError(RuntimeError):
    """The worker server itself could not start or died between jobs."""


@dataclass
class JobOutcome:
    """How a job ended, as the controller saw it."""

    result: dict | None          # what the child wrote, if it finished
    returncode: int | None       # the child's exit code; negative: killed by that signal; None: the server was lost
    timed_out: bool = False
    memory_killed: bool = False  # we ended it: resident memory crossed the cap inside its memory window
    peak_rss_mib: float | None = None  # the highest RSS the watchdog saw, over the whole job
    # The trial's memory window (worker/trackers.MemoryWindow), as the child marked its end:
    # "first_call" (predict), "first_pass" (serve); None: never marked (fit, other jobs, or
    # it did not get that far), so the whole job was its window.
    memory_window: str | None = None
    window_peak_rss_mib: float | None = None  # the highest RSS the watchdog saw inside the window
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
    """The worker's environment. `extra_path` (the config's folder) travels in its own variable,
    which the worker appends to the end of sys.path: on PYTHONPATH it would come before the
    standard library, and a json.py beside a config would be imported in place of json."""
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    if not verbose:
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    env["BATCHBENCH_VERBOSE"] = "1" if verbose else "0"
    env.pop(USER_PATH_VAR, None)
    if extra_path:
        env[USER_PATH_VAR] = str(Path(extra_path).resolve())
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
        self._ended_at: float | None = None  # when we ended the running child

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self.proc and self.proc.poll() is None:
            return
        stderr: Any = None if self.verbose else subprocess.DEVNULL
        if self.log_path and not self.verbose:
            stderr = _open_log(self.log_path)
        try:
            self.proc = _brokered(self.env, stderr) if self.env.get(BROKER_VAR) else None
            self.proc = self.proc or subprocess.Popen(
                python_command("batchbench.worker.server"),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=self.env,
                start_new_session=True,  # Ctrl-C in the terminal reaches the controller only
            )
        except OSError as exc:
            raise WorkerError(f"the worker process could not be started: {exc.strerror or exc}") from None
        finally:
            if stderr not in (None, subprocess.DEVNULL):
                stderr.close()
        self._buffer = self.proc.buffered if isinstance(self.proc, BrokeredServer) else b""
        ready = self._read_event(READY_TIMEOUT_S)
        if ready is None or ready.get("event") != "ready":
            self._kill_server()
            raise WorkerError("the worker process did not start (run with --verbose to see why)")
        if ready.get("error"):
            self.close()
            raise BatchbenchError(f"the worker cannot import its frameworks: {ready['error']}")
        self.import_s = ready.get("import_s")

    def close(self) -> None:
        """Ask the server to exit (it ends what its trials left running); kill it if it does not."""
        if not self.proc:
            return
        if self.current_pid:
            _kill_group(self.current_pid)
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(b'{"op": "exit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        self._kill_server()

    def _kill_server(self) -> None:
        """SIGKILL the server and everything under it (a stopped or wedged server included)."""
        if not self.proc:
            return
        if self.current_pid:
            # The child dies with the server (PDEATHSIG); what it started would not.
            _kill_group(self.current_pid, leader=False)
        if self.proc.poll() is None:
            try:
                tree = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.Error:
                tree = []
            for proc in tree:
                _kill_process(proc)
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except (OSError, AttributeError):
                pass
        self.proc = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ jobs
    def run(self, request: dict, timeout_s: float | None = None, memory_cap_bytes: int | None = None,
            log_path: Path | None = None, on_tick=None) -> JobOutcome:
        """Run one job in a fresh child. Blocks until the child ends or is ended; with
        `timeout_s`, never much longer than that, whatever state the server is in."""
        self.start()
        scratch = tempfile.mkdtemp(prefix="batchbench-job-")  # private (0700): the child's result file
        try:
            return self._run(request, scratch, timeout_s, memory_cap_bytes, log_path, on_tick)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _run(self, request: dict, scratch: str, timeout_s: float | None, memory_cap_bytes: int | None,
             log_path: Path | None, on_tick) -> JobOutcome:
        result_path = os.path.join(scratch, "result.json")
        log = str(log_path) if log_path else os.path.join(scratch, "job.log")
        window_path = os.path.join(scratch, WINDOW_FILE)
        request = {**request, "result_path": result_path, "log_path": log, WINDOW_PATH_KEY: window_path}
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._kill_server()
            raise WorkerError("the worker process died before the job started") from None
        started = time.monotonic()
        deadline = started + timeout_s if timeout_s else None
        outcome = JobOutcome(result=None, returncode=None)
        wait = START_TIMEOUT_S if deadline is None else min(START_TIMEOUT_S, timeout_s)
        event = self._read_event(wait)
        if not event or event.get("event") != "started":
            self._kill_server()
            if event is None and deadline is not None and time.monotonic() >= deadline:
                outcome.timed_out = True
                outcome.elapsed_s = time.monotonic() - started
                return outcome
            reason = (event or {}).get("error") or "the worker process did not start the job"
            raise WorkerError(reason)
        pid = self.current_pid = event["pid"]
        self._ended_at = None
        gone_at = None  # when the child was first seen gone
        checked_at = started
        peak_rss = window_rss = 0
        window_open = True
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
                break  # the server itself died
            now = time.monotonic()
            rss = 0
            if child is not None:
                try:
                    rss = child.memory_info().rss
                    peak_rss = max(peak_rss, rss)
                except psutil.Error:
                    pass
            # The cap holds inside the memory window only: the same region the trial's
            # peak_host_mib covers. Read after the sample: a sample taken while no marker
            # was there was taken inside the window.
            marker = _window_marker(window_path) if window_open else None
            if marker is not None:
                window_open = False
                outcome.memory_window = str(marker.get("window") or "") or None
                rss = int(marker.get("peak_host_bytes") or rss)  # VmHWM at the window's end
            else:
                window_rss = max(window_rss, rss) if window_open else window_rss
            if memory_cap_bytes and rss > memory_cap_bytes and not outcome.memory_killed \
                    and (window_open or marker is not None):
                outcome.memory_killed = True
                self._end_child()
            if deadline is not None and now > deadline and not outcome.timed_out:
                outcome.timed_out = True
                self._end_child()
            if on_tick:
                on_tick()
            if gone_at is None and now - checked_at > 1.0:
                checked_at = now
                gone_at = None if _alive(child) else now
            # The server reports a child's end at once; one that does not (stopped, wedged) is lost.
            since = min((t for t in (self._ended_at, gone_at) if t is not None), default=None)
            if since is not None and now - since > EXIT_GRACE_S:
                break
        outcome.elapsed_s = time.monotonic() - started
        outcome.peak_rss_mib = peak_rss / 2**20 if peak_rss else None
        outcome.window_peak_rss_mib = window_rss / 2**20 if window_rss else None
        if window_open and (marker := _window_marker(window_path)) is not None:  # closed after the last look
            outcome.memory_window = str(marker.get("window") or "") or None
        if outcome.returncode is None:
            self._kill_server()
        self.current_pid = None
        if os.path.exists(result_path):
            try:
                with open(result_path) as fh:
                    outcome.result = json.load(fh)
            except (OSError, json.JSONDecodeError):
                outcome.result = None
        return outcome

    def interrupt(self) -> None:
        """End the running child at once (Ctrl-C)."""
        if self.current_pid:
            self._end_child()

    def _end_child(self) -> None:
        if self.current_pid:
            _kill_group(self.current_pid)
            self._ended_at = self._ended_at or time.monotonic()

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


class BrokeredServer:
    """A worker server forked by a broker (worker/broker.py), behind the few parts of Popen's
    interface the Worker uses: it is not this process's child, so its end is seen by its pid."""

    def __init__(self, sock, pid: int, buffered: bytes):
        self.sock, self.pid, self.buffered = sock, pid, buffered
        self.stdin = sock.makefile("wb")
        self.stdout = sock.makefile("rb", buffering=0)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not psutil.pid_exists(self.pid):
            self.returncode = -signal.SIGKILL  # its exit status went to the broker
        if self.returncode is None:
            try:
                if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                    self.returncode = -signal.SIGKILL
            except psutil.Error:
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("worker server", timeout)
            time.sleep(0.01)
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass
        self.sock.close()


def _brokered(env: dict[str, str], stderr: Any) -> BrokeredServer | None:
    """A server forked by the broker named in env, or None (no broker there, or it refused:
    something that takes effect at import differs), and the controller starts its own."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(env[BROKER_VAR])
        header = {"env": env, "cwd": os.getcwd(), "package_dir": str(PACKAGE_DIR), "python": sys.executable}
        log = stderr.fileno() if hasattr(stderr, "fileno") else (sys.stderr.fileno() if stderr is None else None)
        socket.send_fds(sock, [(json.dumps(header) + "\n").encode()], [log] if log is not None else [])
        sock.settimeout(READY_TIMEOUT_S)
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("the broker hung up")
            data += chunk
        sock.settimeout(None)
    except (OSError, ValueError):
        sock.close()
        return None
    line, rest = data.split(b"\n", 1)
    event = json.loads(line)
    if event.get("event") != "ready":
        sock.close()
        return None  # refused
    return BrokeredServer(sock, int(event["pid"]), line + b"\n" + rest)


def _window_marker(path: str) -> dict | None:
    """The child's mark that its memory window closed (written atomically), or None."""
    try:
        with open(path) as fh:
            marker = json.load(fh)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _open_log(path: Path):
    from batchbench.runfiles import open_append

    try:
        return open_append(path, binary=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _alive(proc: psutil.Process | None) -> bool:
    try:
        return proc is not None and proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill_group(pid: int, leader: bool = True) -> None:
    """SIGKILL a trial child and its process group: whatever the trial's code started. A pid that
    still names a group cannot have been reused; the bare pid is tried only while the job runs."""
    try:
        os.killpg(pid, signal.SIGKILL)
        return
    except ProcessLookupError:
        pass
    except PermissionError:
        return
    if leader:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_process(proc: psutil.Process) -> None:
    try:
        proc.kill()
    except psutil.Error:
        pass
