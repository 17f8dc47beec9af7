"""(4) Memory: the peak_host_mib batchbench reports for a trial against the peak resident
size of a fresh process doing the same work alone.

Two readings of that process: the kernel's ru_maxrss (its whole life, TensorFlow's import
included) and its own VmHWM reset once the imports are done (the work alone: batchbench's
definition, which resets VmHWM at the trial's start in a fork of a process that imported
TensorFlow). Goal: within 10%.
"""

from __future__ import annotations

from dataclasses import replace

from benchmarks import tool
from benchmarks.fidelity import label
from benchmarks.figures import Figure

TOLERANCE = 0.10
GOAL = f"{1 - TOLERANCE:.2f}-{1 + TOLERANCE:.2f}"


def run(ctx: tool.Context, runs: dict[str, tool.Run]) -> list[Figure]:
    cases = {case.name: case for case in ctx.plan.fidelity}
    figures: list[Figure] = []
    for case_name, mode, method, batch_size in ctx.plan.memory:
        case = cases[case_name]
        name = label(case_name, mode, method, batch_size)
        row = runs[case_name].row(mode, method, batch_size) if case_name in runs else None
        if row is None:  # not measured by the fidelity section: one trial of its own
            ctx.log(f"memory: batchbench sweep {name}")
            alone = replace(case, batch_sizes=(batch_size,), modes=(mode,), methods=(method or "predict",))
            row = ctx.sweep(alone.config(ctx.plan.settings), f"memory-{case_name}").rows[0]
        if row["status"] != "ok" or row.get("peak_host_mib") is None:
            figures.append(Figure("memory", f"{name}: batchbench peak / ru_maxrss", None, "x", GOAL, False,
                                  detail=f"batchbench row {row['status']}"))
            continue
        ctx.log(f"memory: {name} alone in a fresh process")
        trial = {"mode": mode, "method": method, "batch_size": batch_size, "steps": row["steps"],
                 "repeats": row["repeats"]}
        hand = ctx.handwritten(case.request("memory", ctx.plan.settings, [trial]),
                               f"memory-{case_name}-{mode}-{batch_size}")
        figures += compare(name, row["peak_host_mib"], hand)
    return figures


def compare(name: str, reported_mib: float, hand: tool.Handwritten) -> list[Figure]:
    imports = hand.result["imports"]
    whole = reported_mib / hand.max_rss_mib
    out = [Figure("memory", f"{name}: batchbench peak_host_mib / fresh process's ru_maxrss", whole, "x", GOAL,
                  abs(whole - 1) <= TOLERANCE,
                  detail=f"batchbench {reported_mib:.0f} MiB; ru_maxrss {hand.max_rss_mib:.0f} MiB; the imports "
                         f"alone peaked at {imports['peak_mib']:.0f} MiB and left {imports['rss_mib']:.0f} MiB "
                         f"resident")]
    work_peak = hand.result.get("work_peak_mib")
    if work_peak:
        own = reported_mib / work_peak
        out.append(Figure("memory", f"{name}: batchbench peak_host_mib / the work's own peak (VmHWM reset after "
                                    "the imports)", own, "x", GOAL, abs(own - 1) <= TOLERANCE,
                          detail=f"work's own peak {work_peak:.0f} MiB, from {hand.result['work_start_rss_mib']:.0f} "
                                 "MiB at its start"))
    forked = hand.result.get("fork_start") or {}
    if forked.get("rss_mib") is not None:
        out.append(Figure("memory", f"{name}: resident memory a fork of the imported process starts without",
                          imports["rss_mib"] - forked["rss_mib"], "MiB", "-", None,
                          detail=f"after the imports {imports['rss_mib']:.0f} MiB resident "
                                 f"({imports.get('rss_file_mib') or 0:.0f} MiB file-backed); a fork starts at "
                                 f"{forked['rss_mib']:.0f} MiB ({forked.get('rss_file_mib') or 0:.0f} MiB "
                                 "file-backed): pages of shared libraries are not copied into a child's page tables"))
    return out
