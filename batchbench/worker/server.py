"""The worker server: imports TensorFlow once, then forks one fresh child per job.

Why a fork server: a trial's memory figures are only honest in a process that ran
nothing before it (TF never returns memory to the OS), and importing TensorFlow costs
seconds. Forking after the import (before TF's runtime or any device is initialised)
gives each trial a clean process for the price of a fork.

Protocol: JSON lines. Requests arrive on stdin; events leave on the file descriptor that
was stdout when the server started (fd 1 itself is pointed at the log, because native
libraries print there).

What a trial starts ends with it: each child leads its own process group, the server is the
subreaper of whatever leaves that group, and the server kills both before it reports the job's
end (a factory that starts a helper process would otherwise leave one behind per trial). The
config's folder goes last on sys.path, in the child only, so a json.py beside a config shadows
nothing.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time

USER_PATH_VAR = "BATCHBENCH_USER_PATH"  # the config's folder (runner.worker_env sets it)
LEFTOVER_S = 1.0  # how long the server keeps killing and reaping what a trial left behind
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _prctl(option: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, value)
        except (OSError, AttributeError):
            pass


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies, so no orphan outlives a killed controller."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


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


def add_user_path(*extra: str | None) -> None:
    """Make the config's folder importable (factory, callable) at the END of sys.path: after the
    standard library, site-packages and batchbench, so none of its files can stand in for them."""
    for entry in (*os.environ.get(USER_PATH_VAR, "").split(os.pathsep), *extra):
        if entry and entry not in sys.path:
            sys.path.append(entry)


def _open_log(path: str) -> int:
    """The trial's log, appended to; never through a symlink planted in the run folder."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NOFOLLOW | _CLOEXEC, 0o666)


def write_result(path: str, result: dict) -> None:
    """The job's result file, replaced whole (a reader never sees half of one)."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(result, fh, default=str)
    os.replace(tmp, path)


def _child(request: dict, resident_runs: list[tuple[int, int]] | None = None) -> None:
    code = 0
    try:
        try:
            os.setpgid(0, 0)  # its own group: whatever the trial's code starts can be ended with it
        except OSError:
            pass
        _die_with_parent()
        populate(resident_runs or [])
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            log_fd = _open_log(request["log_path"])
        except OSError as exc:
            write_result(request["result_path"], {
                "status": "error", "error": f"cannot write the trial log {request['log_path']}: "
                                            f"{'it is a symbolic link' if exc.errno == errno.ELOOP else exc.strerror}"})
            return
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        add_user_path((request.get("config") or {}).get("_base_dir"))
        from batchbench.worker.job import run_job

        write_result(request["result_path"], run_job(request))
    except BaseException:  # noqa: BLE001 - a child must never return into the server loop
        import traceback

        traceback.print_exc()  # into the trial's log
        code = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _descendants(keep: set[int]) -> list:
    """This server's processes below it, but for those in `keep` and theirs."""
    import psutil

    found = []
    try:
        for child in psutil.Process().children():
            if child.pid not in keep:
                found += [child, *child.children(recursive=True)]
    except psutil.Error:
        pass
    return found


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def end_leftovers(pgid: int | None, keep: set[int]) -> None:
    """Kill what a trial left running: its process group, and any process that left the group
    (a new session) and, orphaned, was handed to this server (the subreaper)."""
    import psutil

    if pgid:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + LEFTOVER_S
    while True:
        _reap()
        left = _descendants(keep)
        if not left or time.monotonic() > deadline:
            return
        for proc in left:
            try:
                proc.kill()
            except psutil.Error:
                pass
        time.sleep(0.01)


def import_frameworks() -> tuple[float, str | None]:
    """Import the frameworks (nothing initialised) and freeze what they made; returns the time
    it took and the import's error, which the controller decides about."""
    started = time.perf_counter()
    preload_error = None
    try:
        from batchbench.worker import preload

        preload.import_frameworks()
    except Exception as exc:  # noqa: BLE001 - reported to the controller, which decides
        preload_error = f"{type(exc).__name__}: {exc}"
    # The frameworks' objects go to the collector's permanent generation, here, before any
    # fork (a child that froze them would touch, and so copy, every page that holds one):
    # a trial's gc.collect (predict's between windows) then costs a millisecond, not 0.3 s.
    import gc

    gc.freeze()
    return time.perf_counter() - started, preload_error


def main() -> None:
    # A controller that dies (even by SIGKILL) sends SIGTERM here: what the trial started goes too.
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    events = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull if os.environ.get("BATCHBENCH_VERBOSE") != "1" else 2, 1)
    import_s, preload_error = import_frameworks()
    serve(sys.stdin, events, import_s, preload_error)


def serve(requests, events, import_s: float, preload_error: str | None,
          resident_runs: list[tuple[int, int]] | None = None) -> None:
    """The server's loop: one fresh child per request line, its start and end told on `events`.
    The frameworks are imported already (here or in the broker this process was forked from)."""
    running: dict = {"pid": None, "keep": set()}

    def on_parent_gone(signum, frame) -> None:
        end_leftovers(running["pid"], running["keep"])
        os._exit(1)

    signal.signal(signal.SIGTERM, on_parent_gone)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def send(**event) -> None:
        events.write(json.dumps(event) + "\n")
        events.flush()

    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    keep = running["keep"] = {p.pid for p in _descendants(set())}  # what the frameworks started is theirs
    send(event="ready", pid=os.getpid(), import_s=import_s, error=preload_error)

    try:
        for line in requests:
            request = json.loads(line)
            if request.get("op") == "exit":
                break
            if resident_runs is None:
                resident_runs = resident_file_pages()
            try:
                pid = os.fork()
            except OSError as exc:
                send(event="failed", error=f"cannot start the job: {exc.strerror or exc}")
                continue
            if pid == 0:
                _child(request, resident_runs)
            running["pid"] = pid
            try:
                os.setpgid(pid, pid)  # here too, so the group exists before the controller hears of it
            except OSError:
                pass
            send(event="started", pid=pid)
            _, status = os.waitpid(pid, 0)
            end_leftovers(pid, keep)
            running["pid"] = None
            send(event="exited", pid=pid, returncode=os.waitstatus_to_exitcode(status))
    finally:
        end_leftovers(None, keep)


if __name__ == "__main__":
    main()
