"""The machine, as the controller sees it without TensorFlow: CPU, memory, load, GPUs."""

from __future__ import annotations

import hashlib
import os
import platform
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

THREAD_VARS = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
               "TF_ENABLE_ONEDNN_OPTS", "CUDA_VISIBLE_DEVICES", "KERAS_BACKEND")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus_from_nvml(nvml: Any = None) -> dict[str, Any]:
    """Name, memory and driver of every GPU NVML reports. No driver means no GPU, not an error."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return {"available": False, "reason": "nvidia-ml-py is not installed", "gpus": []}
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return {"available": False, "reason": f"no NVIDIA driver ({type(exc).__name__})", "gpus": []}
    try:
        driver = nvml.nvmlSystemGetDriverVersion()
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            name = nvml.nvmlDeviceGetName(handle)
            gpus.append({
                "index": i,
                "name": name.decode() if isinstance(name, bytes) else name,
                "memory_total_mib": mem.total / 2**20,
                "memory_used_mib": mem.used / 2**20,
            })
        return {"available": True, "driver": driver.decode() if isinstance(driver, bytes) else driver,
                "gpus": gpus}
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


# A config folder may be anyone's repository (a download, a pull request), and git runs the
# programs its .git/config names: core.fsmonitor whenever the index is read, clean filters when a
# file's stat data changed or is racy (status, diff-index, even without --quiet), a lazy fetch's
# ssh command in a partial clone. So git only reads objects and attributes here (rev-parse,
# ls-tree, check-attr), with those settings overridden, and files are hashed in Python.
_GIT_SAFE = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "protocol.allow=never",
             "--no-optional-locks", "--literal-pathspecs", "--no-pager")
_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_EXTERNAL_DIFF")
_HASH_BUDGET = 256 * 2**20  # tracked bytes hashed at most; beyond that, "dirty" is unknown (None)
_TRANSFORMS = ("filter", "ident", "working-tree-encoding", "eol")  # checkout rewrites such files
_dirty_cache: dict[tuple, tuple] = {}  # (top, tree listing's digest) -> (stat signature, dirty)


def _git(path: str | Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return subprocess.run(["git", "-C", str(path), *_GIT_SAFE, *args], capture_output=True, timeout=10, env=env,
                          stdin=subprocess.DEVNULL)


def git_info(path: str = ".") -> dict[str, Any] | None:
    """The commit checked out where `path` is, and whether the tracked files differ from it (None:
    cannot tell without running the repository's filters); None outside a repository. Runs no
    hook, fsmonitor or filter of the repository's."""
    try:
        head = _git(path, "rev-parse", "--show-toplevel", "HEAD")
        if head.returncode != 0:
            return None
        top, commit = head.stdout.decode(errors="surrogateescape").splitlines()[-2:]
        return {"commit": commit.strip(), "dirty": _worktree_differs(Path(top))}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _worktree_differs(top: Path) -> bool | None:
    """Every tracked file, hashed as a git blob and compared with HEAD's (the index is not read:
    trusting its stat data is what makes git re-hash through filters). Remembered while no
    tracked file's stat data changes, since a sweep asks once per result row."""
    listing = _git(top, "ls-tree", "-r", "-l", "-z", "--full-tree", "HEAD")
    if listing.returncode != 0:
        return None
    blobs = []
    for record in listing.stdout.split(b"\0"):
        meta, _, name = record.partition(b"\t")
        fields = meta.split()
        if len(fields) == 4 and fields[1] == b"blob":  # submodules (commit) are not followed
            blobs.append((os.fsdecode(name), fields[0], fields[2].decode(), int(fields[3])))
    stats = []
    for name, *_ in blobs:
        try:
            st = os.lstat(top / name)
            stats.append((st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        except OSError:
            stats.append(None)
    key, signature = (str(top), hashlib.sha1(listing.stdout).hexdigest()), tuple(stats)
    if key in _dirty_cache and _dirty_cache[key][0] == signature:
        return _dirty_cache[key][1]
    changed = _changed_blobs(top, blobs, stats)
    if changed is None:
        dirty = None
    elif not changed:
        dirty = False
    elif len(changed) <= 100 and _transformed(top, changed):
        dirty = None  # only files that checkout rewrites differ: no telling without their filters
    else:
        dirty = True
    if len(_dirty_cache) > 8:
        _dirty_cache.clear()
    _dirty_cache[key] = (signature, dirty)
    return dirty


def _changed_blobs(top: Path, blobs: list, stats: list) -> list[str] | None:
    changed, budget = [], _HASH_BUDGET
    for (name, mode, oid, size), st in zip(blobs, stats, strict=True):
        if st is None or stat.S_ISLNK(st[0]) != (mode == b"120000"):
            changed.append(name)
            continue
        try:
            if stat.S_ISLNK(st[0]):
                content = os.fsencode(os.readlink(top / name))
            elif not stat.S_ISREG(st[0]) or st[1] != size:
                changed.append(name)
                continue
            else:
                budget -= size
                if budget < 0:
                    return None
                content = (top / name).read_bytes()
        except OSError:
            changed.append(name)
            continue
        digest = hashlib.sha1() if len(oid) == 40 else hashlib.sha256()
        digest.update(b"blob %d\0" % len(content))
        digest.update(content)
        if digest.hexdigest() != oid:
            changed.append(name)
    return changed


def _transformed(top: Path, names: list[str]) -> bool:
    """Whether every changed file is one whose checkout git rewrites (a filter, ident, an
    encoding, CRLF line ends): its bytes differ from the blob without any edit."""
    attrs = _git(top, "check-attr", "-z", *_TRANSFORMS, "--", *names)
    if attrs.returncode != 0:
        return False
    fields = attrs.stdout.split(b"\0")
    rewritten = set()
    for path, attr, value in zip(fields[0::3], fields[1::3], fields[2::3]):
        if value not in (b"unspecified", b"unset") and (attr != b"eol" or value == b"crlf"):
            rewritten.add(os.fsdecode(path))
    return all(name in rewritten for name in names)


def host_environment() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    try:
        load = list(os.getloadavg())
    except (OSError, AttributeError):
        load = None
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_cores_logical": psutil.cpu_count(logical=True),
        "cpu_affinity": affinity,
        "memory_total_mib": vm.total / 2**20,
        "memory_available_mib": vm.available / 2**20,
        "load_average": load,
        "thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        "nvml": gpus_from_nvml(),
    }


def busy_warning(env: dict[str, Any]) -> str | None:
    """A busy machine skews every figure: say so."""
    load = env.get("load_average")
    cores = len(env.get("cpu_affinity") or []) or env.get("cpu_cores_logical") or 1
    if load and load[0] > 0.5 * cores:
        return (f"the machine is busy (load average {load[0]:.2f} on {cores} cores): "
                "figures will be slower and noisier than on an idle machine")
    return None


def cgroup_limit_bytes(root: str = "/sys/fs/cgroup") -> tuple[int, int] | None:
    """(limit, usage) of this process's memory cgroup, when one caps it (v2, else v1)."""
    from pathlib import Path

    base = Path(root)
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit_text = (base / limit_file).read_text().strip()
            usage = int((base / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max":
            return None
        limit = int(limit_text)
        if limit >= 2**60:  # v1's "no limit"
            return None
        return limit, usage
    return None


def available_memory_bytes() -> int:
    """What a trial can still use: the machine's available memory, or less inside a
    container whose cgroup caps memory (its OOM killer fires first there)."""
    available = psutil.virtual_memory().available
    cgroup = cgroup_limit_bytes()
    if cgroup:
        limit, usage = cgroup
        available = min(available, max(0, limit - usage))
    return available
