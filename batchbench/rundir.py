"""The run folder: created safely, locked against a second sweep, opened for a new run or a
resume (with what was measured there before), and named in messages by the command the user
actually ran."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from batchbench.config import Config, diff_settings
from batchbench.errors import ConfigError, InterruptedSweep, OutputError, UserFacing
from batchbench.results import RESULTS_CSV, RUN_JSON, ResultsWriter, load_trial_records, read_run_json
from batchbench.runfiles import make_dir, refuse_symlink
from batchbench.version import RESULTS_SCHEMA_VERSION
from batchbench.worker.failures import one_line  # plain Python: no TensorFlow behind it

LOCK_NAME = ".batchbench.lock"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def make_run_dir(path: Path) -> Path:
    """Create the run folder and its trials/ and prove both writable, before any trial runs.
    Neither may be a symlink (run folders travel; see runfiles)."""
    try:
        make_dir(path)
        make_dir(path / "trials")
        probe = path / f".write-test-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        os.write(fd, b"ok")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write the run directory {path}: {exc.strerror or exc}") from None
    return path


class RunLock:
    """An O_EXCL lock file in the run folder, held from the first moment of a sweep (or a
    resume) to its end: a second sweep on the same folder is refused, not interleaved. flock is
    not used: it is unreliable on NFS, where run folders often live. A lock whose process is
    gone (same host) is stale and taken over."""

    def __init__(self, path: Path):
        self.path = path
        self.held = True

    @classmethod
    def acquire(cls, run_dir: Path, key: str = "--out") -> RunLock:
        path = Path(run_dir) / LOCK_NAME
        refuse_symlink(path)
        host = socket.gethostname()
        for _ in range(3):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
            except FileExistsError:
                owner = _read_owner(path)
                if owner and owner[1] == host and not _alive(owner[0]):
                    try:
                        path.unlink()  # stale: its sweep was killed
                    except FileNotFoundError:
                        pass
                    continue
                who = f"pid {owner[0]} on {owner[1]}" if owner else "another process"
                raise ConfigError(f"{run_dir} is in use by another batchbench sweep ({who}); wait for it to "
                                  f"finish, or remove {path} if that sweep is gone", key=key) from None
            except OSError as exc:
                raise OutputError(f"cannot lock the run directory {run_dir}: {exc.strerror or exc}") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()} {host} {int(time.time())}\n")
            return cls(path)
        raise ConfigError(f"{run_dir} could not be locked (its lock file keeps coming back)", key=key)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        owner = _read_owner(self.path)
        if owner and owner[0] == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def _read_owner(path: Path) -> tuple[int, str] | None:
    try:
        pid, host, *_ = path.read_text(errors="replace").split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def invocation() -> str:
    """How the user ran batchbench, for the commands we print: `.venv/bin/batchbench` when
    that is what they typed, `python -m batchbench` when run as a module."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "batchbench"
    if argv0.endswith("__main__.py") or argv0 == "-m" or argv0.endswith("-c"):
        return f"{sys.executable} -m batchbench"
    return argv0


# ---------------------------------------------------------------- opening a run
@dataclass
class RunStart:
    """A run folder ready for trials: locked, with what an earlier session measured there."""

    run_dir: Path
    run_id: str
    started_at: str
    lock: RunLock
    writer: ResultsWriter
    done: dict[str, dict] = field(default_factory=dict)      # record_id -> a round-trial's row already measured
    samples: dict[str, dict] = field(default_factory=dict)   # record_id -> that round-trial's raw samples
    previous_noise: dict | None = None
    shard_record: dict | None = None                          # the shard run.json recorded (--shard)
    imports: list[str] = field(default_factory=list)         # modules a resume will import


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def ended_by(exc: BaseException) -> tuple[str, str | None]:
    """run.json's status and error for a run that ``exc`` ended. An interrupt is "interrupted"
    (what finished waits for --resume); anything else is "failed" with its reason in one line,
    so that neither a reader nor a tracker takes a dead run for one still going."""
    if isinstance(exc, (InterruptedSweep, KeyboardInterrupt)):
        return "interrupted", None
    return "failed", " ".join(exc.message.split()) if isinstance(exc, UserFacing) else one_line(exc)


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def new_run_id(name: str) -> str:
    """A run's id beside an --out folder: its name, the UTC second and 6 random hex digits (the
    shards of one sweep often start in the same second, and a tracker tells runs apart by it)."""
    return f"{name}-{utc_stamp()}-{secrets.token_hex(3)}"


def default_run_dir(config: Config) -> Path:
    return Path(config.output.dir) / config.name / utc_stamp()


def open_run(config: Config, out: Path | None, resume: Path | None, process_id: int = 0,
             write_fault=None) -> RunStart:
    """The run folder, created and locked before anything else; on resume, the rows (and raw
    samples) already measured there, after checking that the measured settings are the same."""
    if resume:
        return _resume(config, Path(resume), write_fault)
    run_dir = Path(out) if out else default_run_dir(config)
    if process_id > 0:
        # Process 0 alone writes results.csv; the others keep their own rows apart.
        run_dir = run_dir / "peers" / f"process-{process_id}"
    make_run_dir(run_dir)
    lock = RunLock.acquire(run_dir, key="--out")
    try:
        if (run_dir / RESULTS_CSV).exists():
            raise ConfigError(f"{run_dir} already holds results; finish it with --resume {run_dir}, "
                              "or choose another --out", key="--out")
        run_id = run_dir.name if out is None else new_run_id(config.name)
        return RunStart(run_dir, run_id, now_iso(), lock, ResultsWriter(run_dir, fault_injector=write_fault))
    except BaseException:
        lock.release()
        raise


def _resume(config: Config, run_dir: Path, write_fault) -> RunStart:
    run_json = run_dir / RUN_JSON
    if not run_json.exists():
        raise ConfigError(f"{run_dir} is not a batchbench run directory (no {RUN_JSON})", key="--resume")
    make_run_dir(run_dir)
    lock = RunLock.acquire(run_dir, key="--resume")
    try:
        previous = read_run_json(run_json)
        check_same_settings(config, run_dir, previous)
        writer = ResultsWriter(run_dir, fault_injector=write_fault)
        start = RunStart(run_dir, previous.get("run_id") or run_dir.name, previous.get("started_at") or now_iso(),
                         lock, writer, previous_noise=previous.get("noise_scale"),
                         shard_record=previous.get("shard"))
        # The trial records are the durable unit: results.csv (pooled over rounds) is made again
        # from them, so a row lost in a crash or a full disk comes back.
        for record_id, record in load_trial_records(run_dir).items():
            start.done[record_id] = record["row"]
            if record.get("samples"):
                start.samples[record_id] = record["samples"]
        start.imports = [ref for ref in (config.model.factory, config.data.callable and config.data.callable.function)
                         if ref]
        return start
    except BaseException:
        lock.release()
        raise


def check_same_settings(config: Config, run_dir: Path, previous: dict) -> None:
    if previous.get("schema_version") != RESULTS_SCHEMA_VERSION:
        raise ConfigError(f"{run_dir} was written by another batchbench version (results schema "
                          f"{previous.get('schema_version')}, this one writes {RESULTS_SCHEMA_VERSION}), so its "
                          "settings cannot be checked against this one; start a new run (compare and report "
                          "still read it)", key="--resume")
    now = config.measurement_hash()
    if previous.get("config_hash") == now:
        return
    changed = diff_settings(previous.get("measured_settings") or {}, config.measured_settings())
    what = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "") \
        if changed else f"hash {previous.get('config_hash')} there, {now} now"
    raise ConfigError(f"the measured settings changed since {run_dir} started ({what}); resume with the same "
                      "config, data and options, or start a new run", key="--resume")
