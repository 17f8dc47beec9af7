"""A run folder's identity for --resume, as plain data: the settings that change what a trial
measures, their hash, which of them changed, and the digests of the files they name."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from stat import S_ISREG
from typing import Any

from batchbench.config.lookups import find_module, python_source


def measured_settings(resolved: dict[str, Any], base_dir: str, code: dict[str, str | None]) -> dict[str, Any]:
    """``resolved`` (a Config.resolved()) without output and name, its model and data files as
    paths relative to ``base_dir`` plus a ``digest`` of their content, and a ``code_digest`` for
    each section whose ``code`` reference ('module:function') names a Python file."""
    settings = copy.deepcopy(resolved)
    for key in ("output", "name"):
        settings.pop(key, None)
    for section, spec in (("model", settings["model"]), ("data", settings["data"].get("npz")),
                          ("data", settings["data"].get("csv")), ("data", settings["data"].get("image_dir"))):
        if spec is not None and spec.get("path") is not None:
            # An image folder can hold a dataset of many GB: its listing (names and sizes) stands for it.
            digest = listing_digest if spec is settings["data"].get("image_dir") else file_digest
            settings[section]["digest"] = digest(spec["path"])
            spec["path"] = Path(os.path.relpath(spec["path"], base_dir)).as_posix()
    # The user's own code is measured too: an edited factory or loader is a changed setting.
    for section, ref in code.items():
        source = python_source(find_module(ref.partition(":")[0], base_dir)) if ref else None
        if source is not None:
            settings[section]["code_digest"] = file_digest(source)
    return settings


def settings_hash(settings: dict[str, Any]) -> str:
    """sha256 (its first 16 hex digits) of measured settings as canonical JSON."""
    return hashlib.sha256(_canonical(settings).encode()).hexdigest()[:16]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def diff_settings(old: dict, new: dict) -> list[str]:
    """The dotted keys whose values differ between two measured_settings() (a key only one side has
    counts), in the order they appear, e.g. ["sweep.repeats", "data.digest"]; [] when they match.
    Lists are compared whole: a changed batch size list is "sweep.batch_sizes"."""
    changed: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in [*a, *(k for k in b if k not in a)]:
                where = f"{prefix}.{key}" if prefix else str(key)
                if key not in a or key not in b:
                    changed.append(where)
                else:
                    walk(a[key], b[key], where)
        elif _canonical(a) != _canonical(b):  # as the hash sees them: true is not 1
            changed.append(prefix)

    walk(old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}, "")
    return changed


_DIGEST_CHUNK = 2**20
_digests: dict[tuple, str] = {}  # (path, inode, mtime, size) -> digest, for this process


def file_digest(path: str | Path) -> str | None:
    """'sha256:<hex>' of a file's bytes, read in 1 MiB chunks and remembered per path, mtime and
    size; for a folder (a SavedModel), of every file's relative path and digest. None when there is
    nothing readable there."""
    p = Path(path)
    try:
        if p.is_dir():
            return _folder_digest(p)
        stat = p.stat()
        if not S_ISREG(stat.st_mode):
            return None  # a FIFO or a device would never end
        key = (str(p.resolve()), stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if key not in _digests:
            digest = hashlib.sha256()
            with p.open("rb") as stream:
                while chunk := stream.read(_DIGEST_CHUNK):
                    digest.update(chunk)
            _digests[key] = "sha256:" + digest.hexdigest()
        return _digests[key]
    except OSError:
        return None


def listing_digest(path: str | Path) -> str | None:
    """'sha256:<hex>' of a folder's listing: every file's relative path and size, not its bytes
    (an image folder's identity, read in seconds also when it holds a whole dataset)."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            file = Path(root, name)
            try:
                size = file.stat().st_size
            except OSError:
                size = -1
            digest.update(f"{file.relative_to(folder).as_posix()}\0{size}\n".encode())
    return "sha256:" + digest.hexdigest()


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            file = Path(root, name)
            digest.update(f"{file.relative_to(folder).as_posix()}\0{file_digest(file)}\n".encode())
    return "sha256:" + digest.hexdigest()
