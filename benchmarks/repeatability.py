"""(3) Repeatability: the overhead section's sweep and its rerun; per row the rerun's
throughput over the first run's, beside the spread (slowest and fastest repeat) the first
run reported.

Goal: the reported spread covers the rerun's value for most rows (more than half).
"""

from __future__ import annotations

import statistics

from benchmarks import tool
from benchmarks.fidelity import label
from benchmarks.figures import Figure

GOAL_COVERED = 0.5


def figures(case: str, first: tool.Run, second: tool.Run) -> list[Figure]:
    out: list[Figure] = []
    diffs: list[tuple[float, str]] = []
    spreads: list[float] = []
    covered = 0
    for a in first.rows:
        b = second.row(a["mode"], a.get("method") or "", a["batch_size"])
        if a["status"] != "ok" or b is None or b["status"] != "ok":
            continue
        name = label(case, a["mode"], a.get("method") or "", a["batch_size"])
        median, low, high = a["throughput_sps"], a["throughput_sps_min"], a["throughput_sps_max"]
        ratio = b["throughput_sps"] / median
        inside = low <= b["throughput_sps"] <= high
        covered += inside
        diffs.append((abs(ratio - 1), name))
        spreads.append((high - low) / median)
        out.append(Figure("repeatability", f"{name}: rerun / run", ratio, "x", "-", None, low / median,
                          high / median, "inside the reported spread" if inside else "outside the reported spread"))
    if not diffs:
        return [Figure("repeatability", "rows measured in both runs", 0, "", "> 0", False)]
    n = len(diffs)
    worst = max(diffs)
    out += [
        Figure("repeatability", "rows whose rerun lies inside the first run's spread", 100 * covered / n, "%",
               f"> {GOAL_COVERED:.0%} (most rows)", covered / n > GOAL_COVERED,
               detail=f"{covered} of {n} rows; first run: {tool.busy(first.child)}; rerun: {tool.busy(second.child)}"),
        Figure("repeatability", "median |rerun / run - 1|", 100 * statistics.median(d for d, _ in diffs), "%", "-",
               None, detail=f"median reported spread (max-min)/median: {100 * statistics.median(spreads):.1f}%"),
        Figure("repeatability", "worst |rerun / run - 1|", 100 * worst[0], "%", "-", None, detail=worst[1]),
    ]
    return out
