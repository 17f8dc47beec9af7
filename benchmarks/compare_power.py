"""compare's power on real sweeps: a real ~20% slowdown between two default runs is called a
regression, and a rerun of the same code is not.

    .venv/bin/python benchmarks/compare_power.py [--batch-sizes 256,1024] [--rounds 3] [--keep DIR]

Four real `batchbench sweep` runs of the built-in MLP on synthetic data (fit and predict), in
ABBA order (base, head, head, base) so that the machine speeding up or slowing down during the
benchmark favours neither side. The head's model has one more Dense layer of the same width
(about 20% more compute: a genuinely slower model, not a scaled number). The slowdown is
measured from the runs themselves (head / base throughput, geometric mean over the rows and both
pairs) and printed, then `batchbench compare` judges (every row, and each group's speed as a
whole: its `speed` rows):

    base1 -> head1, base2 -> head2   expected: regression (exit 1)
    base1 -> base2, head1 -> head2   the same code run again: expected no regression (exit 0)

A sweep that measures rounds (`--rounds`, sweep.rounds) runs each point in that many rounds
(default 3, the default run's minimum; 0 leaves the sweep's own adaptive default); a sweep from
before rounds runs its default repeats in one round, and the benchmark says which it ran.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCHBENCH = ROOT / ".venv" / "bin" / "batchbench"

CONFIG = """\
name: power-{side}
model:
  builtin: mlp
  kwargs: {{hidden: {hidden}, depth: {depth}}}
data:
  synthetic: {{samples: 4096, num_classes: 10}}
sweep:
  batch_sizes: [{batch_sizes}]
  modes: [fit, predict]
  methods: [predict]
"""


def _command() -> list[str]:
    return [str(BATCHBENCH)] if BATCHBENCH.exists() else [sys.executable, "-m", "batchbench"]


def has_rounds() -> bool:
    """Whether this checkout's sweep measures rounds (a `--rounds` option)."""
    proc = subprocess.run([*_command(), "sweep", "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    return "--rounds" in proc.stdout


def sweep(config: Path, out: Path, rounds: int | None) -> float:
    """One real sweep into `out`; its wall time."""
    args = [*_command(), "sweep", str(config), "--out", str(out), "--no-plots", "-q"]
    if rounds:
        args += ["--rounds", str(rounds)]
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=1800, cwd=ROOT,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if proc.returncode != 0:
        raise SystemExit(f"sweep {out.name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started


def compare(baseline: Path, current: Path) -> tuple[int, dict]:
    proc = subprocess.run([*_command(), "compare", str(baseline), str(current), "--format", "json"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    if proc.returncode not in (0, 1, 4):
        raise SystemExit(f"compare {baseline.name} {current.name} failed (exit {proc.returncode}): {proc.stderr}")
    return proc.returncode, json.loads(proc.stdout)


def _label(row: dict) -> str:
    if row["kind"] == "speed":
        return f"{row['group']} (all)"
    return f"{row['mode']}{'/' + row['method'] if row.get('method') else ''} b{row['batch_size']}"


def throughputs(report: dict) -> dict[str, tuple[float, float]]:
    """Row -> (baseline, current) throughput, for the rows both runs measured ok."""
    out = {}
    for row in report["rows"]:
        m = next((m for m in row.get("metrics") or [] if m["metric"] == "throughput_sps"), None)
        if row["kind"] == "trial" and m is not None:
            out[_label(row)] = (m["baseline"], m["current"])
    return out


def describe(name: str, code: int, report: dict, expect_regression: bool) -> bool:
    s = report["summary"]
    tests = [r["test"] for r in report["rows"] if r.get("test")]
    methods = sorted({t["method"].split(",")[0] for t in tests}) or ["no row needed a test"]
    rounds = sorted({(t["rounds_baseline"], t["rounds_current"]) for t in tests if "rounds_baseline" in t})
    met = (code == 1) if expect_regression else (code == 0)
    print(f"  {name:<16} exit {code}  {report['verdict']:<12} {s['regressed']} regressed, {s['improved']} improved, "
          f"{s['unchanged']} unchanged, {s['could_not_judge']} could not be judged; throughput ×"
          f"{s['throughput_geomean_ratio']:.3f}  [{'; '.join(methods)}"
          f"{'; rounds ' + ', '.join(f'{b} vs {c}' for b, c in rounds) if rounds else ''}]  "
          f"expected {'regression' if expect_regression else 'no regression'}: {'met' if met else 'NOT MET'}")
    for row in report["rows"]:
        if row["kind"] not in ("trial", "speed"):
            continue
        m = next((m for m in row.get("metrics") or [] if m["metric"] == "throughput_sps"), None)
        test = row.get("test")
        p = f"p {test['p_adjusted']:.2g}" if test and test.get("p_adjusted") is not None else "no test"
        change = f"{m['change'] * 100:+6.1f}%" if m and m.get("change") is not None else "      "
        print(f"      {_label(row):<24} {change}  {p:<10} {row['verdict']}")
    return met


def run(batch_sizes: str, hidden: int, depth: int, rounds: int, keep: Path | None) -> int:
    rounds_here = has_rounds()
    used_rounds = (rounds or None) if rounds_here else None
    folder = keep or Path(tempfile.mkdtemp(prefix="batchbench-compare-power-"))
    folder.mkdir(parents=True, exist_ok=True)
    configs = {}
    for side, layers in (("base", depth), ("head", depth + 1)):
        configs[side] = folder / f"{side}.yaml"
        configs[side].write_text(CONFIG.format(side=side, hidden=hidden, depth=layers, batch_sizes=batch_sizes))
    how = (f"{rounds} rounds per point (--rounds {rounds})" if used_rounds else "the sweep's default rounds")\
        if rounds_here else "one round of the default repeats (this sweep has no rounds yet)"
    print(f"compare power: built-in MLP, {depth} vs {depth + 1} Dense layers of {hidden}, batch sizes {batch_sizes}, "
          f"fit and predict; {how}; runs in {folder}; load average {os.getloadavg()[0]:.2f} at the start")
    order = [("base1", "base"), ("head1", "head"), ("head2", "head"), ("base2", "base")]  # ABBA
    for name, side in order:
        seconds = sweep(configs[side], folder / name, used_rounds)
        print(f"  sweep {name:<6} ({side}) {seconds:6.1f} s  load average {os.getloadavg()[0]:.2f}", flush=True)
    runs = {name: folder / name for name, _ in order}
    pairs = {name: compare(runs[a], runs[b]) for name, (a, b) in
             {"base1 -> head1": ("base1", "head1"), "base2 -> head2": ("base2", "head2"),
              "base1 -> base2": ("base1", "base2"), "head1 -> head2": ("head1", "head2")}.items()}
    # the real slowdown, from the runs: head / base per row, geometric mean over rows and both pairs
    logs = {}
    for name in ("base1 -> head1", "base2 -> head2"):
        for row, (b, c) in throughputs(pairs[name][1]).items():
            logs.setdefault(row, []).append(math.log(c / b))
    every = [v for values in logs.values() for v in values]
    slowdown = math.exp(sum(every) / len(every)) - 1 if every else math.nan
    print(f"measured slowdown of the head (one more layer): {slowdown * 100:+.1f}% (geometric mean of head / base "
          f"throughput over {len(logs)} rows and both ABBA pairs)")
    for row, values in logs.items():
        print(f"      {row:<20} {', '.join(f'{(math.exp(v) - 1) * 100:+.1f}%' for v in values)}")
    met = []
    print("verdicts:")
    for name, (code, report) in pairs.items():
        met.append(describe(name, code, report, expect_regression="head" in name and "base" in name))
    print(f"{sum(met)} of {len(met)} verdicts as expected; load average {os.getloadavg()[0]:.2f} at the end")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="256,1024", help="comma list (default 256,1024)")
    parser.add_argument("--hidden", type=int, default=512, help="width of every Dense layer (default 512)")
    parser.add_argument("--depth", type=int, default=5, help="the base's Dense layers; the head has one more (5)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds per point where the sweep has rounds (default 3; 0: the sweep's default)")
    parser.add_argument("--keep", type=Path, help="write the runs here and keep them (default: a temporary folder)")
    args = parser.parse_args(argv)
    return run(args.batch_sizes, args.hidden, args.depth, args.rounds, args.keep)


if __name__ == "__main__":
    sys.exit(main())
