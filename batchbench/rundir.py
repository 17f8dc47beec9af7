"""The run folder: created safely, locked against a second sweep, and named in messages by
the command the user actually ran."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from batchbench.errors import ConfigError, OutputError
from batchbench.runfiles import make_dir, refuse_symlink

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
