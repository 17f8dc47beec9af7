"""Advice that reproduces: the default sweep of configs/quickstart.yaml, three times back to
back, as a new user would run it (`make sweep`).

    .venv/bin/python benchmarks/reproduce.py [--runs 3] [--config configs/quickstart.yaml] [--out DIR]

Figures (goals from issue #16):
- `recommended` per group: the same in every run, and never a trivial pick (its throughput at
  least 0.85 of the group's best);
- the relative curve (each row's throughput over its group's best): how far it moves between
  consecutive runs, the median over rows (goal <= 5%);
- the median interval half-width over rows (goal <= 5%: intervals that tie everything are no
  answer);
- coverage: how many of a rerun's rows land inside the first run's 95% interval. Rounds inside
  one run cannot see a shift of the whole machine between runs, so this is reported, not judged;
- each run's wall time (the README quotes the default sweep's duration);
- the machine's noise floor (`noise_floor`): the points that decide each group's pick (its
  best and the next smaller size, from run 1) timed by the hand-written plain-Keras script
  (benchmarks/handwritten.py) in several fresh processes, alternating the order: how much a
  plain script's figure moves from one process to the next, the 95% half-width that gives an
  interval over 3 or 6 rounds (the same t-interval on the log scale as batchbench's), the
  rounds a +-5% half-width would take, and each group's deciding ratio as the plain script
  reads it beside the tie rule's 90% floor. Rounds cannot be more precise than the processes
  they are made of: where these miss, the machine, not the tool, sets the limit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import math  # noqa: E402

import yaml  # noqa: E402

from batchbench.recommend import FLOOR  # noqa: E402
from batchbench.stats import t_quantile  # noqa: E402
from benchmarks import tool  # noqa: E402
from benchmarks.figures import Figure, text_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TRIVIAL = 0.85
DRIFT_GOAL = 0.05
HALF_WIDTH_GOAL = 0.05


def key(row: dict) -> tuple[str, int]:
    return (row["mode"] + (f"/{row['method']}" if row.get("method") else ""), row["batch_size"])


def ok_rows(run: tool.Run) -> dict[tuple[str, int], dict]:
    return {key(r): r for r in run.rows if r["status"] == "ok" and r.get("phase") in (None, "", "ladder")}


def relative(rows: dict[tuple[str, int], dict]) -> dict[tuple[str, int], float]:
    best: dict[str, float] = {}
    for (group, _), r in rows.items():
        best[group] = max(best.get(group, 0.0), r["throughput_sps"])
    return {k: r["throughput_sps"] / best[k[0]] for k, r in rows.items()}


def figures(runs: list[tool.Run]) -> list[Figure]:
    out: list[Figure] = []
    recs = [json.loads((r.run_dir / "run.json").read_text())["summary"]["recommendations"] for r in runs]
    groups = [g for g in recs[0] if g != "overall"]
    for group in groups:
        picks = [rec.get(group, {}).get("recommended") for rec in recs]
        shares = []
        for run, rec in zip(runs, recs, strict=True):
            rows = {k[1]: r for k, r in ok_rows(run).items() if k[0] == group}
            best, pick = rec.get(group, {}).get("best_throughput"), rec.get(group, {}).get("recommended")
            if best in rows and pick in rows:
                shares.append(rows[pick]["throughput_sps"] / rows[best]["throughput_sps"])
        same = len(set(picks)) == 1 and picks[0] is not None
        out.append(Figure("reproduce", f"{group}: recommended in each run", None if not same else picks[0], "",
                          "identical", same, detail=" / ".join(str(p) for p in picks)))
        worst = min(shares) if shares else None
        out.append(Figure("reproduce", f"{group}: the pick's throughput / the best's (worst run)", worst, "x",
                          f">= {TRIVIAL}", worst is not None and worst >= TRIVIAL,
                          detail=", ".join(f"{s:.3f}" for s in shares)))
    curves = [relative(ok_rows(r)) for r in runs]
    drifts = [abs(b[k] / a[k] - 1) for a, b in zip(curves, curves[1:]) for k in a if k in b]
    median_drift = statistics.median(drifts) if drifts else None
    out.append(Figure("reproduce", "relative curve drift between consecutive runs (median over rows)",
                      None if median_drift is None else 100 * median_drift, "%", f"<= {DRIFT_GOAL:.0%}",
                      median_drift is not None and median_drift <= DRIFT_GOAL,
                      detail=f"{len(drifts)} row pairs; worst {100 * max(drifts):.1f}%" if drifts else ""))
    halves = [(r["throughput_sps_ci_high"] - r["throughput_sps_ci_low"]) / 2 / r["throughput_sps"]
              for run in runs for r in ok_rows(run).values()
              if r.get("throughput_sps_ci_low") is not None and r.get("throughput_sps_ci_high") is not None]
    median_half = statistics.median(halves) if halves else None
    out.append(Figure("reproduce", "median 95% interval half-width over rows", None if median_half is None else
                      100 * median_half, "%", f"<= {HALF_WIDTH_GOAL:.0%}",
                      median_half is not None and median_half <= HALF_WIDTH_GOAL, detail=f"{len(halves)} rows"))
    first = ok_rows(runs[0])
    inside = total = 0
    for run in runs[1:]:
        for k, r in ok_rows(run).items():
            a = first.get(k)
            if a and a.get("throughput_sps_ci_low") is not None:
                total += 1
                inside += a["throughput_sps_ci_low"] <= r["throughput_sps"] <= a["throughput_sps_ci_high"]
    out.append(Figure("reproduce", "reruns inside the first run's 95% interval", 100 * inside / total if total
                      else None, "%", "-", None, detail=f"{inside} of {total} rows (an interval over one run's "
                                                      "rounds cannot see the machine shift between runs)"))
    rounds = [r["rounds"] for run in runs for r in ok_rows(run).values() if r.get("rounds")]
    out.append(Figure("reproduce", "rounds per point (median, max)", statistics.median(rounds) if rounds else None,
                      "", "-", None, detail=f"max {max(rounds)}" if rounds else ""))
    for n, run in enumerate(runs, 1):
        out.append(Figure("reproduce", f"run {n} wall time", run.wall_s, "s", "-", None, detail=tool.busy(run.child)))
    return out


def deciding_points(run: tool.Run, recs: dict) -> list[dict]:
    """Each group's best size and the next smaller one (where the pick is decided), from run 1's
    rows and recommendations, as hand-written trials."""
    rows = ok_rows(run)
    out = []
    for group, rec in recs.items():
        best = rec.get("best_throughput") if group != "overall" else None
        if best is None:
            continue
        below = [b for g, b in rows if g == group and b < best]
        mode, _, method = group.partition("/")
        for b in ([max(below)] if below else []) + [best]:
            out.append({"mode": mode, "method": method, "batch_size": b})
    return out


def noise_floor(config: dict, run: tool.Run, work_dir: Path, processes: int) -> list[Figure]:
    record = json.loads((run.run_dir / "run.json").read_text())
    data = (config.get("data") or {}).get("synthetic")
    shapes = (record.get("model_info") or {}).get("input_shapes") or []
    model = config.get("model") or {}
    if data is None or len(shapes) != 1 or not (model.get("builtin") or model.get("application")) or processes < 2:
        return [Figure("reproduce", "noise floor: plain Keras in fresh processes", None, "", "-", None,
                       detail="not measured: needs a built-in or keras.applications model on synthetic data "
                              "and --noise-processes of 2 or more")]
    sweep = config.get("sweep") or {}
    trials = deciding_points(run, record["summary"]["recommendations"])
    request = {"op": "fidelity", "model": model, "input_shape": list(shapes[0]),
               "num_classes": data.get("num_classes") or 10, "samples": data.get("samples") or 1024,
               "seed": sweep.get("seed", 0), "repeats": sweep.get("repeats", 3),
               "min_time_s": sweep.get("min_time_s", 0.25), "warmup_steps": sweep.get("warmup_steps", 2)}
    figures: dict[str, dict[int, list[float]]] = {}  # group -> batch size -> one figure per process
    busy = []
    for n in range(processes):
        order = trials if n % 2 == 0 else trials[::-1]  # a drift of the machine lands on both ends
        hand = tool.handwritten({**request, "trials": order}, work_dir, f"noise-{n + 1}")
        busy.append(hand.child.others_cpu_share or 0.0)
        for t in hand.result["trials"]:
            group, batch_size = key(t)
            figures.setdefault(group, {}).setdefault(batch_size, []).append(t["throughput_sps"])
    spread = {(g, b): statistics.stdev(math.log(v) for v in vs) for g, by in figures.items() for b, vs in by.items()}
    cv = statistics.median(spread.values())
    named = ", ".join(f"{g} b{b} {100 * s:.1f}%" for (g, b), s in spread.items())

    def half_width(rounds: int) -> float:
        h = t_quantile(0.95, rounds - 1) * cv / math.sqrt(rounds)
        return (math.exp(h) - math.exp(-h)) / 2

    needed = next((n for n in range(2, 1000) if half_width(n) <= HALF_WIDTH_GOAL), None)
    out = [Figure("reproduce", "noise floor: a plain Keras script's process-to-process variation (median over "
                  "points)", 100 * cv, "%", "-", None,
                  detail=f"sd of log throughput over {processes} fresh processes: {named}; other processes took "
                         f"at most {max(busy):.0%} of the CPUs"),
           Figure("reproduce", "noise floor: the 95% half-width it gives an interval over 3 rounds", 100 * half_width(3),
                  "%", "-", None, detail=f"{100 * half_width(6):.1f}% over 6 rounds; +-{HALF_WIDTH_GOAL:.0%} "
                                         f"would take {needed} rounds")]
    for group, by in figures.items():
        if len(by) != 2:
            continue
        small, large = sorted(by)
        ratios = [a / b for a, b in zip(by[small], by[large], strict=True)]
        ratio = statistics.median(ratios)
        # a ratio of two sizes from separate processes moves by about sqrt(2) times one figure's variation
        near = abs(math.log(ratio / FLOOR)) < 2 * math.sqrt(2) * cv
        where = ("within two standard deviations (of this noise) of the tie rule's floor: the pick between these "
                 "two follows the noise" if near else "clear of the tie rule's floor")
        out.append(Figure("reproduce", f"noise floor: {group} {small} / {large} as plain Keras reads it",
                          ratio, "x", "-", None, min(ratios), max(ratios),
                          detail=f"per process: {', '.join(f'{r:.2f}' for r in ratios)}; {where} ({FLOOR:.2f})"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reproduce"))
    parser.add_argument("--noise-processes", type=int, default=6,
                        help="fresh plain-Keras processes for the noise floor (0: not measured)")
    args = parser.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    config.setdefault("model", {})
    base = Path(args.config).resolve().parent
    for section in ("model", "data"):  # file paths in the config stay relative to its own folder
        for spec in [config.get(section) or {}] + [v for v in (config.get(section) or {}).values() if isinstance(v, dict)]:
            if isinstance(spec.get("path"), str) and not Path(spec["path"]).is_absolute():
                spec["path"] = str(base / spec["path"])
    runs = []
    for n in range(1, args.runs + 1):
        print(f"reproduce: run {n} of {args.runs}: batchbench sweep {args.config}", file=sys.stderr, flush=True)
        runs.append(tool.sweep(config, Path(args.out) / f"run-{n}"))
    figs = figures(runs)
    if args.noise_processes:
        print(f"reproduce: noise floor, {args.noise_processes} fresh plain-Keras processes", file=sys.stderr, flush=True)
        figs += noise_floor(config, runs[0], Path(args.out) / "noise", args.noise_processes)
    print(text_table(figs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
