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
REPRODUCE = 0.02  # the same trial's peak_host_mib, run after run and beside a CPU hog: within +-2%
HOG_ROUNDS = 5
# The trial the reproducibility figures run: a wide MLP's fit at a large batch (the case).
HOG_TRIAL = {"model": {"builtin": "mlp", "kwargs": {"hidden": 1024, "depth": 3}, "input_shape": [256]},
             "data": {"synthetic": {"samples": 4096, "num_classes": 10}},
             "mode": "fit", "method": "", "batch_size": 1024}


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
        # The peak is one round-trial's (round 1's, a fresh process): one round's steps and repeats
        # (the row sums them over rounds), and for inference the window batchbench reads it over.
        rounds = int(row.get("rounds") or 1)
        trial = {"mode": mode, "method": method, "batch_size": batch_size, "steps": row["steps"] // rounds,
                 "repeats": max(1, row["repeats"] // rounds), "memory_window": row.get("memory_window")}
        hand = ctx.handwritten(case.request("memory", ctx.plan.settings, [trial]),
                               f"memory-{case_name}-{mode}-{batch_size}")
        figures += compare(name, row["peak_host_mib"], hand)
    from benchmarks.cases import QUICK, TINY_MLP

    quick = ctx.plan.settings == QUICK  # --quick: the smallest trial, once each way (proves nothing)
    spec = {**HOG_TRIAL, "model": {**TINY_MLP, "input_shape": [16]}, "batch_size": 64} if quick else HOG_TRIAL
    rounds = 1 if quick else HOG_ROUNDS
    ctx.log(f"memory: the same trial {rounds} times quiet and {rounds} times beside a CPU hog")
    figures += hog_spread(spec, rounds)
    return figures


def hog_runs(spec: dict, rounds: int, hogs: int = 2, cap_bytes: int | None = None) -> dict[str, list]:
    """One trial through the real worker server (a fresh fork each time), in alternating rounds:
    alone, then beside `hogs` busy-looping processes. The peaks (None: not ok), by kind."""
    import subprocess
    import sys

    from batchbench.config.loading import config_from_dict
    from batchbench.runner import Worker, worker_env

    raw = {"name": "hog", "model": spec["model"], "data": spec["data"],
           "sweep": {"batch_sizes": [spec["batch_size"]], "modes": [spec["mode"]], **spec.get("sweep", {})}}
    config = {**config_from_dict(raw).resolved(), "_base_dir": "."}
    axes = {"precision": "float32", "jit_compile": "auto", "backend": "tensorflow", "strategy": "default"}
    request = {"op": "trial", "config": config,
               "trial": {"mode": spec["mode"], "method": spec["method"], "batch_size": spec["batch_size"],
                         "axes": axes, "phase": "sweep"}}
    peaks: dict[str, list] = {"quiet": [], "hog": []}
    with Worker(worker_env()) as worker:
        for _ in range(rounds):
            for kind in ("quiet", "hog"):
                busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(hogs if kind == "hog" else 0)]
                try:
                    outcome = worker.run(request, memory_cap_bytes=cap_bytes)
                finally:
                    for proc in busy:
                        proc.kill()
                        proc.wait()
                result = outcome.result or {}
                peaks[kind].append(result.get("peak_host_mib") if result.get("status") == "ok" else None)
    return peaks


def spread(values: list[float]) -> tuple[float, float, float]:
    """(median, lowest, highest as fractions of the median: -0.01 is 1% below it)."""
    import statistics

    med = statistics.median(values)
    return med, min(values) / med - 1, max(values) / med - 1


def hog_spread(spec: dict, rounds: int = HOG_ROUNDS) -> list[Figure]:
    peaks = hog_runs(spec, rounds)
    name = f"{spec['mode']} {spec['model'].get('builtin') or spec['model'].get('application')} b{spec['batch_size']}"
    goal = f"+-{REPRODUCE:.0%}"
    figures = []
    for kind in ("quiet", "hog", "all"):
        values = peaks["quiet"] + peaks["hog"] if kind == "all" else peaks[kind]
        ok = [v for v in values if v is not None]
        if len(ok) < len(values) or not ok:
            figures.append(Figure("memory", f"{name}: peak_host_mib spread, {kind}", None, "%", goal, False,
                                  detail=f"{len(values) - len(ok)} of {len(values)} trials not ok"))
            continue
        med, low, high = spread(ok)
        worst = max(0.0, -low, high)
        figures.append(Figure("memory", f"{name}: peak_host_mib spread over {len(ok)} runs, {kind}"
                                        + (" (2 busy-looping processes beside it)" if kind == "hog" else ""),
                              100 * worst, "%", goal, worst <= REPRODUCE, spread_low=100 * low,
                              spread_high=100 * high,  # the runs' deviations from their median, in %
                              detail=f"median {med:.0f} MiB, runs {med * (1 + low):.0f}-{med * (1 + high):.0f} MiB"))
    return figures


if __name__ == "__main__":  # python -m benchmarks.memory: the reproducibility figures alone
    for figure in hog_spread(HOG_TRIAL):
        print(f"{figure.figure}: {figure.value if figure.value is None else round(figure.value, 2)} {figure.unit} "
              f"(goal {figure.goal}, {'met' if figure.met else 'NOT met'}; {figure.detail})")


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
