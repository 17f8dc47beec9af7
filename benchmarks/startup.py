"""(5) Start-up: commands that must not import TensorFlow, timed from outside (the median
of several runs, the console script as users run it)."""

from __future__ import annotations

import statistics

from benchmarks import cases, tool
from benchmarks.figures import Figure


def two_runs(ctx: tool.Context) -> tuple[tool.Run, tool.Run]:
    """Two small saved runs for `compare`, when the overhead section's are missing."""
    config = cases.plan(quick=True).sweep.config(cases.QUICK)
    return ctx.sweep(config, "startup-a"), ctx.sweep(config, "startup-b")


def run(ctx: tool.Context, first: tool.Run, second: tool.Run) -> list[Figure]:
    commands = [
        ("batchbench --help", ["--help"], 0.5, (0,)),
        ("batchbench validate configs/quickstart.yaml", ["validate", str(tool.ROOT / "configs" / "quickstart.yaml")],
         0.5, (0,)),
        # compare exits 1 on a regression; either verdict is a finished comparison
        ("batchbench compare RUN RERUN", ["compare", str(first.run_dir), str(second.run_dir)], 1.0, (0, 1, 4)),
    ]
    figures = []
    for name, args, goal_s, ok_codes in commands:
        ctx.log(f"start-up: {name}")
        times = [tool.timed_command([*tool.batchbench_command(), *args], ok_codes)
                 for _ in range(ctx.plan.startup_runs)]
        median = statistics.median(times)
        tf = tool.imports_tensorflow(args)
        figures.append(Figure("startup", name, median, "s", f"< {goal_s:g} s, no TensorFlow", median < goal_s and not tf,
                              min(times), max(times),
                              f"median of {len(times)} runs; imports TensorFlow: {'yes' if tf else 'no'}"))
    return figures
