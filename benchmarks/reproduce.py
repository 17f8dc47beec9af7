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
- each run's wall time (the README quotes the default sweep's duration).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reproduce"))
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
    print(text_table(figs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
