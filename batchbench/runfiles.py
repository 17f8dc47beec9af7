"""Every write into a run folder goes through here: no write follows a symlink, nothing is
truncated in place, and new files get the user's umask.

Run folders travel (CI artifacts of pull requests from forks), so a ``results.csv`` or
``report.md`` in one may be a symlink planted to make the next ``report`` or ``--resume``
overwrite a file elsewhere. Whole files are written to a temporary name in the same folder and
renamed over the old name (a rename replaces a symlink itself, never its target); appends open
with ``O_NOFOLLOW``; folders are refused when they are symlinks."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from batchbench.errors import OutputError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _symlink_error(path: Path) -> OutputError:
    return OutputError(f"{path} is a symbolic link; batchbench never writes through links in a run folder "
                       "(remove it, or choose another --out)")


def refuse_symlink(path: str | Path) -> None:
    """OutputError when ``path`` exists as a symlink."""
    path = Path(path)
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise _symlink_error(path)
    except FileNotFoundError:
        pass


def make_dir(path: str | Path) -> Path:
    """mkdir -p, refusing a final component that is a symlink or not a folder."""
    path = Path(path)
    refuse_symlink(path)
    path.mkdir(parents=True, exist_ok=True)
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise OutputError(f"{path} is not a folder")
    return path


def write_atomic(path: str | Path, data: str | bytes, fsync: bool = True) -> None:
    """Replace ``path`` whole: a temporary file beside it, then a rename. Never follows a link
    at ``path`` (the link itself is replaced) and never leaves a half-written file."""
    path = Path(path)
    refuse_symlink(path.parent)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    for attempt in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{attempt}.tmp")
        try:
            # 0o666 & ~umask, as any new file gets (mkstemp's 0600 is why run.json was private).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 100 stale temporary files
        raise OutputError(f"cannot create a temporary file beside {path}")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def open_append(path: str | Path, binary: bool = False):
    """A file opened for appending that is refused (OutputError) when ``path`` is a symlink."""
    path = Path(path)
    refuse_symlink(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno == 40 or (path.is_symlink()):  # ELOOP: O_NOFOLLOW met a link
            raise _symlink_error(path) from None
        raise
    if binary:
        return os.fdopen(fd, "ab")
    return os.fdopen(fd, "a", encoding="utf-8", newline="")


def open_read(path: str | Path, binary: bool = False):
    """Open a run file for reading, refusing symlinks (what is read may be rewritten next)."""
    path = Path(path)
    refuse_symlink(path)
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    if binary:
        return os.fdopen(fd, "rb")
    return os.fdopen(fd, "r", encoding="utf-8", newline="")


def save_figure(fig, path: str | Path, **kwargs) -> None:
    """matplotlib's savefig, through write_atomic."""
    buf = io.BytesIO()
    fig.savefig(buf, **kwargs)
    write_atomic(path, buf.getvalue(), fsync=False)


__all__ = ["make_dir", "open_append", "open_read", "refuse_symlink", "save_figure", "write_atomic"]


def install_handler(handler) -> dict:
    """`handler` for SIGINT and SIGTERM; the previous handlers, to restore. Outside the main
    thread (a notebook's executor) nothing is installed."""
    import signal

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:
            pass
    return previous


def restore_handlers(previous: dict) -> None:
    import signal

    for sig, old in previous.items():
        signal.signal(sig, old)
