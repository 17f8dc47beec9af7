"""compare at scale: two 100k-row runs, `batchbench compare` in every format, timed from outside.

    .venv/bin/python benchmarks/compare_scale.py [--rows 100000] [--formats table,json] [--rounds 3]
    .venv/bin/python benchmarks/bench.py --compare-scale

The runs are written to a temporary folder the way a sweep writes them (results.csv with
every column, run.json with 10 raw repeats per trial, in `--rounds` rounds with the round of
each repeat named when that is more than 1): a few rows slower, a few faster, the rest fresh
noise. Each format runs in its own process; the figures are its wall time, its CPU
time and its peak resident memory (the child's own rusage). Goal: at most 5 s and 500 MiB for
every format. No TensorFlow anywhere: it runs in seconds on any machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `batchbench` and `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batchbench.results import COLUMNS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

FORMATS = ("table", "markdown", "json", "csv")
GOAL_S = 5.0
GOAL_MIB = 500.0
REPEATS = 10
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _cell(value: object) -> str:
    return "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


def write_run(path: Path, rows: int, seed: int, slower_every: int = 0, faster_every: int = 0,
              rounds: int = 1) -> Path:
    """A run directory of `rows` trials: models m0, m1, ... × fit/predict × BATCH_SIZES.
    Every `slower_every`-th trial runs 20% slower, every `faster_every`-th 20% faster. With
    `rounds` > 1 the repeats are split into that many rounds, each named in run.json."""
    path.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    samples: dict[str, dict] = {}
    with open(path / "results.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for i in range(rows):
            model, mode = f"m{i // (2 * len(BATCH_SIZES))}", ("fit", "predict")[i // len(BATCH_SIZES) % 2]
            batch = BATCH_SIZES[i % len(BATCH_SIZES)]
            factor = 1.0
            if slower_every and i % slower_every == 1:
                factor = 0.8
            elif faster_every and i % faster_every == 2:
                factor = 1.25
            base = 1000.0 * batch ** 0.5 * factor
            repeats = [base * (1 + rng.uniform(-0.02, 0.02)) for _ in range(REPEATS)]
            median = sorted(repeats)[REPEATS // 2]
            step_ms = batch / median * 1000
            trial_id = f"{model}-{mode}-b{batch}"
            row = {"run_id": path.name, "name": "scale", "model": model, "mode": mode,
                   "method": "predict" if mode == "predict" else "", "batch_size": batch, "status": "ok",
                   "throughput_sps": median, "throughput_sps_min": min(repeats), "throughput_sps_max": max(repeats),
                   "step_ms_median": step_ms, "step_ms_p90": step_ms * 1.1, "step_ms_p95": step_ms * 1.2,
                   "step_ms_p99": step_ms * 1.5, "step_ms_max": step_ms * 3, "sample_ms": step_ms / batch,
                   "first_step_s": 0.5, "wall_s": 2.0, "peak_host_mib": 400.0 + rng.uniform(0, 4),
                   "repeats": REPEATS, "rounds": rounds, "params": 22026, "trial_id": trial_id, "phase": "ladder", "device": "cpu",
                   "precision": "float32", "jit_compile": "auto", "backend": "tensorflow", "strategy": "default"}
            writer.writerow([_cell(row.get(c)) for c in COLUMNS])
            samples[trial_id] = {"throughput_sps": [round(v, 3) for v in repeats]}
            if rounds > 1:
                samples[trial_id]["round"] = [i * rounds // REPEATS for i in range(REPEATS)]
    with open(path / "run.json", "w") as fh:
        json.dump({"schema_version": 1, "batchbench_version": "0.1.0", "run_id": path.name, "name": "scale",
                   "status": "complete", "environment": {"cpu_model": "bench"}, "samples": samples,
                   "summary": {"recommendations": {}}}, fh)
    return path


def measure(baseline: Path, current: Path, fmt: str, columns: int = 120) -> dict:
    """One `batchbench compare` in a fresh process: wall time, CPU time and peak RSS (that child's
    own rusage, from wait4), exit code and how many lines it printed."""
    env = {**os.environ, "COLUMNS": str(columns)}
    env.pop("GITHUB_STEP_SUMMARY", None)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "batchbench", "compare", str(baseline), str(current),
                                 "--format", fmt], stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines, errors = sum(1 for _ in out), err.read().strip().splitlines()
    return {"format": fmt, "wall_s": wall_s, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_mib": usage.ru_maxrss / 1024, "exit_code": proc.returncode, "stdout_lines": lines,
            "error": errors[-1] if proc.returncode not in (0, 1, 4) and errors else ""}


def run(rows: int = 100_000, formats: tuple[str, ...] = FORMATS, repeat: int = 1, rounds: int = 1) -> list[dict]:
    """Write the two runs, compare them `repeat` times per format; the median wall and CPU time
    and the largest peak RSS of each format, printed as they come."""
    with tempfile.TemporaryDirectory(prefix="batchbench-compare-scale-") as tmp:
        base = write_run(Path(tmp) / "base", rows, seed=1, rounds=rounds)
        head = write_run(Path(tmp) / "head", rows, seed=2, slower_every=997, faster_every=1009, rounds=rounds)
        mib = {name: (base / name).stat().st_size / 2**20 for name in ("results.csv", "run.json")}
        print(f"compare at scale: two runs of {rows:,} rows ({mib['results.csv']:.1f} MiB results.csv and "
              f"{mib['run.json']:.1f} MiB run.json each; {rounds} round(s) per trial); load average {os.getloadavg()[0]:.2f} at the start")
        print(f"{'format':<9} {'wall':>8} {'cpu':>8} {'peak RSS':>9}  exit  lines    goal (<= {GOAL_S:g} s, "
              f"<= {GOAL_MIB:g} MiB)")
        results = []
        for fmt in formats:
            tries = [measure(base, head, fmt) for _ in range(repeat)]
            r = {**tries[0], "wall_s": statistics.median(t["wall_s"] for t in tries),
                 "cpu_s": statistics.median(t["cpu_s"] for t in tries), "peak_mib": max(t["peak_mib"] for t in tries)}
            r["met"] = r["wall_s"] <= GOAL_S and r["peak_mib"] <= GOAL_MIB and not r["error"]
            print(f"{fmt:<9} {r['wall_s']:>6.2f} s {r['cpu_s']:>6.2f} s {r['peak_mib']:>5.0f} MiB  {r['exit_code']:>4}  "
                  f"{r['stdout_lines']:>7,}  {'met' if r['met'] else 'NOT MET'}{'  ' + r['error'] if r['error'] else ''}",
                  flush=True)
            results.append(r)
    print(f"load average {os.getloadavg()[0]:.2f} at the end (wall time is CPU time plus waiting for a core; "
          "on a busy machine, read the cpu column)")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="trials per run (default 100000)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma list (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="compares per format; the median is shown")
    parser.add_argument("--rounds", type=int, default=1, help="rounds the 10 repeats of a trial are split into")
    args = parser.parse_args(argv)
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        parser.error(f"unknown format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    results = run(args.rows, formats, max(1, args.repeat), max(1, args.rounds))
    return 0 if all(not r["error"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
