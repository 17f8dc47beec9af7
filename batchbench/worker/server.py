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


PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MADV_POPULATE_READ = 22  # Linux 5.14+


def resident_file_pages() -> list[tuple[int, int]]:
    """(address, length) runs of file-backed pages resident in this process.

    A fork does not inherit the page-table entries of file-backed mappings (the shared
    libraries: ~490 MiB of TensorFlow here), so a forked trial's resident size would leave
    out memory that a process running the trial alone has resident. The child maps the same
    runs back in before measuring (see populate)."""
    if not sys.platform.startswith("linux"):
        return []
    import numpy as np

    spans = []
    with open("/proc/self/maps") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 6 or not parts[5].startswith("/") or parts[5].startswith(("/dev/", "/memfd")):
                continue
            if not parts[1].startswith("r"):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            spans.append((start, end))
    runs = []
    try:
        with open("/proc/self/pagemap", "rb") as pagemap:
            for start, end in spans:
                pagemap.seek(start // PAGE * 8)
                entries = np.frombuffer(pagemap.read((end - start) // PAGE * 8), dtype=np.uint64)
                present = (entries >> np.uint64(63)).astype(bool)
                if not present.any():
                    continue
                edges = np.flatnonzero(np.diff(np.concatenate(([0], present.view(np.int8), [0]))))
                for a, b in zip(edges[::2], edges[1::2]):
                    runs.append((start + int(a) * PAGE, int(b - a) * PAGE))
    except OSError:
        return []
    return runs


def populate(runs: list[tuple[int, int]]) -> None:
    """Map the server's resident file pages into this child (page cache: no disk I/O)."""
    if not runs:
        return
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for address, length in runs:
        libc.madvise(address, length, MADV_POPULATE_READ)  # best effort: old kernels say EINVAL


def _child(request: dict, resident_runs: list[tuple[int, int]] | None = None) -> None:
    code = 0
    try:
        _die_with_parent()
        populate(resident_runs or [])
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

    resident_runs = None
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "exit":
            break
        if resident_runs is None:
            resident_runs = resident_file_pages()
        pid = os.fork()
        if pid == 0:
            _child(request, resident_runs)
        send(event="started", pid=pid)
        _, status = os.waitpid(pid, 0)
        send(event="exited", pid=pid, returncode=os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
