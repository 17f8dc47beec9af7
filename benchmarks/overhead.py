"""(2) Overhead: `batchbench sweep`'s wall time against one process doing the same trials.

Both are timed from outside, start-up and TensorFlow's import included. batchbench runs as
users run it (report and plots included); the script does each trial's steps and repeats
as batchbench's first run says it did, one trial after another, in one process. Each side
runs twice, alternating (sweep, script, sweep, script; --quick: the script once), and the
faster of its runs counts: the least a side can cost, which a busy moment of the machine can
only lengthen.
The two sweeps are also the repeatability section's run and rerun.
"""

from __future__ import annotations

from benchmarks import tool
from benchmarks.cases import QUICK
from benchmarks.figures import Figure

GOAL_X = 1.3


def run(ctx: tool.Context) -> tuple[list[Figure], tool.Run, tool.Run]:
    case, settings = ctx.plan.sweep, ctx.plan.settings
    sweeps: list[tool.Run] = []
    scripts: list[tool.Handwritten] = []
    for n in (1, 2):
        ctx.log(f"overhead: batchbench sweep {case.name} ({len(case.trials())} trials), run {n} of 2")
        sweeps.append(ctx.sweep(case.config(settings), f"sweep-{n}", plots=True))
        trials = [{"mode": r["mode"], "method": r.get("method") or "", "batch_size": r["batch_size"],
                   "steps": r["steps"], "repeats": r["repeats"]} for r in sweeps[0].rows if r["status"] == "ok"]
        if n == 2 and settings == QUICK:
            continue  # --quick: the script once (the second sweep is the repeatability section's rerun)
        ctx.log(f"overhead: the same {len(trials)} trials in one process, run {n} of 2")
        scripts.append(ctx.handwritten(case.request("sequence", settings, trials), f"sequence-{n}"))
    return figures(sweeps, scripts), sweeps[0], sweeps[1]


def figures(sweeps: list[tool.Run], scripts: list[tool.Handwritten]) -> list[Figure]:
    bb = min(sweeps, key=lambda r: r.wall_s)
    sc = min(scripts, key=lambda s: s.wall_s)
    ok = [r for r in bb.rows if r["status"] == "ok"]
    bb_trials_s = sum(r["wall_s"] for r in ok)
    sc_trials_s = sum(t["wall_s"] for t in sc.result["trials"])
    ratio = bb.wall_s / sc.wall_s
    cpu_ratio = min(r.child.cpu_s for r in sweeps) / min(s.child.cpu_s for s in scripts)
    per_trial = (bb_trials_s - sc_trials_s) / len(ok) if ok else None
    note = "" if len(ok) == len(bb.rows) else f"; only the {len(ok)} ok of {len(bb.rows)} trials compared"

    def walls(runs: list) -> str:
        return ", ".join(f"{r.wall_s:.1f} s ({tool.busy(r.child)})" for r in runs)

    return [
        Figure("overhead", "sweep wall time: batchbench / single-process script", ratio, "x", f"<= {GOAL_X}x",
               ratio <= GOAL_X, detail=f"the faster of {len(sweeps)} and {len(scripts)} runs; {len(ok)} trials{note}"),
        Figure("overhead", "sweep CPU time: batchbench / single-process script", cpu_ratio, "x", "-", None,
               detail="the lesser of 2 runs each, every process of each side included: less sensitive than wall "
                      "time to what else the machine runs"),
        Figure("overhead", "batchbench sweep wall time", bb.wall_s, "s", "-", None,
               detail=f"trials {bb_trials_s:.1f} s (as the controller timed them); the rest "
                      f"{bb.wall_s - bb_trials_s:.1f} s: start-up, worker's TF import, preflight, env, report, plots; "
                      f"runs: {walls(sweeps)}"),
        Figure("overhead", "single-process script wall time", sc.wall_s, "s", "-", None,
               detail=f"trials {sc_trials_s:.1f} s; the rest {sc.wall_s - sc_trials_s:.1f} s: start-up, TF import "
                      f"({sc.result['imports']['import_s']:.1f} s); runs: {walls(scripts)}"),
        Figure("overhead", "per-trial cost of batchbench's fresh process", per_trial, "s", "-", None,
               detail="(batchbench trials - script trials) / trials: fork, TF runtime start, result hand-off, "
                      "consistency check"),
    ]
