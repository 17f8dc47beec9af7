"""Running both sides as a user would: the installed `batchbench` command, and the
hand-written script in a fresh process of its own. The bench itself never imports
TensorFlow, so nothing it does shares a process with what it measures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from batchbench.results import read_rows

ROOT = Path(__file__).resolve().parent.parent
HANDWRITTEN = Path(__file__).resolve().parent / "handwritten.py"
clock = time.perf_counter


class BenchError(RuntimeError):
    """A side of the comparison failed to run; the message says which and why."""


def batchbench_command() -> list[str]:
    """The console script beside this interpreter (what `make` installs), else `-m`."""
    script = Path(sys.executable).parent / "batchbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "batchbench"]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def cpu_busy_s() -> float | None:
    """CPU seconds the whole machine has spent busy, every process together (Linux
    /proc/stat: user, nice, system, irq, softirq and steal, which another VM took)."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Child:
    """How a measured child process went: wall time, its own CPU time and peak resident
    size (its descendants included, from wait4), and the share of the machine's CPUs that
    other processes took meanwhile: the noise no repeat inside the child can see."""

    returncode: int
    wall_s: float
    cpu_s: float
    max_rss_mib: float
    others_cpu_share: float | None


def run_child(args: list[str], log_path: Path) -> Child:
    """Run and wait with wait4, which gives this child's own rusage, not the sum over every
    child this bench has had (RUSAGE_CHILDREN)."""
    busy_before = cpu_busy_s()
    with open(log_path, "w") as log:
        started = clock()
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = clock() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    busy_after = cpu_busy_s()
    cpu_s = usage.ru_utime + usage.ru_stime
    others = None
    if busy_before is not None and busy_after is not None and wall_s > 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        others = min(1.0, max(0.0, busy_after - busy_before - cpu_s) / (wall_s * cores))
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    max_rss = usage.ru_maxrss / 2**20 if sys.platform == "darwin" else usage.ru_maxrss / 1024
    return Child(proc.returncode, wall_s, cpu_s, max_rss, others)


@dataclass
class Run:
    """A finished batchbench sweep: where it is, how its command went, its rows."""

    run_dir: Path
    child: Child
    rows: list[dict[str, Any]]

    @property
    def wall_s(self) -> float:
        return self.child.wall_s

    def row(self, mode: str, method: str, batch_size: int) -> dict[str, Any] | None:
        for r in self.rows:
            if r["mode"] == mode and (r.get("method") or "") == method and r["batch_size"] == batch_size:
                return r
        return None


def sweep(config: dict, run_dir: Path, plots: bool = False) -> Run:
    """`batchbench sweep CONFIG --out RUN_DIR --json -q`, timed from outside."""
    run_dir = Path(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    config_path = run_dir.parent / f"{run_dir.name}.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [*batchbench_command(), "sweep", str(config_path), "--out", str(run_dir), "--json", "-q"]
    if not plots:
        cmd.append("--no-plots")
    log_path = run_dir.parent / f"{run_dir.name}.log"
    child = run_child(cmd, log_path)
    if child.returncode != 0:
        raise BenchError(f"batchbench sweep {config['name']} exited {child.returncode}: {_tail(log_path.read_text())}")
    return Run(run_dir, child, read_rows(run_dir / "results.csv"))


@dataclass
class Handwritten:
    """What the hand-written script reported, and how its process went."""

    result: dict[str, Any]
    child: Child

    @property
    def wall_s(self) -> float:
        return self.child.wall_s

    @property
    def max_rss_mib(self) -> float:
        """The kernel's account of the whole process: its peak resident size over its life."""
        return self.child.max_rss_mib


def handwritten(request: dict, work_dir: Path, label: str) -> Handwritten:
    """Run the hand-written script in a fresh process of its own."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    request_path, result_path = work_dir / f"{label}.request.json", work_dir / f"{label}.result.json"
    log_path = work_dir / f"{label}.log"
    request_path.write_text(json.dumps(request))
    result_path.unlink(missing_ok=True)
    child = run_child([sys.executable, str(HANDWRITTEN), str(request_path), str(result_path)], log_path)
    if child.returncode != 0 or not result_path.exists():
        raise BenchError(f"hand-written {label} exited {child.returncode}: {_tail(log_path.read_text())}")
    return Handwritten(json.loads(result_path.read_text()), child)


def busy(child: Child) -> str:
    share = child.others_cpu_share
    return "other processes' CPU share unknown" if share is None else f"other processes took {share:.0%} of the CPUs"


def timed_command(args: list[str], ok_codes: tuple[int, ...] = (0,)) -> float:
    started = clock()
    proc = subprocess.run(args, capture_output=True, text=True, env=child_env(), cwd=ROOT)
    wall_s = clock() - started
    if proc.returncode not in ok_codes:
        raise BenchError(f"{' '.join(args)} exited {proc.returncode}: {_tail(proc.stderr)}")
    return wall_s


def imports_tensorflow(args: list[str]) -> bool:
    """Whether running `batchbench ARGS` imports TensorFlow (python -X importtime lists
    every module imported)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "batchbench", *args], capture_output=True,
                          text=True, env=child_env(), cwd=ROOT)
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return bool(modules & {"tensorflow", "keras"})


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:])


@dataclass
class Context:
    """What every section gets: the plan (cases and settings), a folder for its runs, and
    both sides to run, each run's process kept for the noise report."""

    plan: Any  # cases.Plan
    work: Path
    children: list[Child] = field(default_factory=list)

    def sweep(self, config: dict, label: str, plots: bool = False) -> Run:
        run = sweep(config, self.work / "runs" / label, plots)
        self.children.append(run.child)
        return run

    def handwritten(self, request: dict, label: str) -> Handwritten:
        hand = handwritten(request, self.work / "handwritten", label)
        self.children.append(hand.child)
        return hand

    def busiest_share(self) -> float | None:
        shares = [c.others_cpu_share for c in self.children if c.others_cpu_share is not None]
        return max(shares) if shares else None

    def log(self, message: str) -> None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"[bench {time.strftime('%H:%M:%S')} load {load:.2f}] {message}", file=sys.stderr, flush=True)
