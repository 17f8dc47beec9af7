"""The worker server: imports TensorFlow once, then forks one fresh child per job.

Why a fork server: a trial's memory figures are only honest in a process that ran
nothing before it (TF never returns memory to the OS), and importing TensorFlow costs
seconds. Forking after the import (before TF's runtime or any device is initialised)
gives each trial a clean process for the price of a fork.

Protocol: JSON lines. Requests arrive on stdin; events leave on the file descriptor that
was stdout when the server started (fd 1 itself is pointed at the log, because native
libraries print there).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies, so no orphan outlives a killed controller."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _child(request: dict) -> None:
    code = 0
    try:
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log_fd = os.open(request["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        from batchbench.worker.job import run_job

        result = run_job(request)
        tmp = request["result_path"] + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(result, fh, default=str)
        os.replace(tmp, request["result_path"])
    except BaseException:  # noqa: BLE001 - a child must never return into the server loop
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main() -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    events = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull if os.environ.get("BATCHBENCH_VERBOSE") != "1" else 2, 1)

    def send(**event) -> None:
        events.write(json.dumps(event) + "\n")
        events.flush()

    started = time.perf_counter()
    preload_error = None
    try:
        from batchbench.worker import preload

        preload.import_frameworks()
    except Exception as exc:  # noqa: BLE001 - reported to the controller, which decides
        preload_error = f"{type(exc).__name__}: {exc}"
    send(event="ready", pid=os.getpid(), import_s=time.perf_counter() - started, error=preload_error)

    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "exit":
            break
        pid = os.fork()
        if pid == 0:
            _child(request)
        send(event="started", pid=pid)
        _, status = os.waitpid(pid, 0)
        send(event="exited", pid=pid, returncode=os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
