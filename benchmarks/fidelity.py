"""(1) Fidelity: batchbench's throughput against the hand-written figure, per row.

Goal: the ratio within 0.95-1.05, or within the hand-written figure's own spread (its
slowest and fastest repeat over its median) where the machine is noisier than 5%.
"""

from __future__ import annotations

import statistics

from benchmarks import tool
from benchmarks.figures import Figure

LOW, HIGH = 0.95, 1.05
GOAL = f"{LOW:.2f}-{HIGH:.2f} or within spread"


def run(ctx: tool.Context) -> tuple[list[Figure], dict[str, tool.Run]]:
    figures: list[Figure] = []
    runs: dict[str, tool.Run] = {}
    settings = ctx.plan.settings
    for case in ctx.plan.fidelity:
        ctx.log(f"fidelity: {case.name}, hand-written ({len(case.trials())} trials in one fresh process)")
        hand = ctx.handwritten(case.request("fidelity", settings), f"fidelity-{case.name}")
        ctx.log(f"fidelity: {case.name}, batchbench sweep")
        run = runs[case.name] = ctx.sweep(case.config(settings), f"fidelity-{case.name}")
        for trial in hand.result["trials"]:
            figures.append(compare(case.name, trial, run.row(trial["mode"], trial["method"], trial["batch_size"])))
        figures.append(noise(case.name, hand.child, run.child))
    return figures, runs


def noise(name: str, hand: tool.Child, bench: tool.Child) -> Figure:
    """Other processes' use of the CPUs while each side ran: what the hand-written spread
    cannot show, since the two sides run minutes apart."""
    shares = [s for s in (hand.others_cpu_share, bench.others_cpu_share) if s is not None]
    return Figure("fidelity", f"{name}: CPU share other processes took", 100 * max(shares) if shares else None, "%",
                  "-", None, detail=f"while hand-written ran: {tool.busy(hand)}; while batchbench ran: "
                                    f"{tool.busy(bench)}")


def label(case: str, mode: str, method: str, batch_size: int) -> str:
    return f"{case} {mode}{'/' + method if method else ''} b={batch_size}"


def compare(case: str, trial: dict, row: dict | None) -> Figure:
    name = label(case, trial["mode"], trial["method"], trial["batch_size"]) + ": batchbench / hand-written"
    hand = trial["throughputs_sps"]
    median = statistics.median(hand)
    low, high = min(hand) / median, max(hand) / median
    if row is None or row["status"] != "ok" or not row.get("throughput_sps"):
        reason = "no row" if row is None else f"{row['status']}: {row.get('error') or ''}"
        return Figure("fidelity", name, None, "x", GOAL, False, low, high, f"batchbench {reason}")
    ratio = row["throughput_sps"] / median
    met = LOW <= ratio <= HIGH or low <= ratio <= high
    detail = (f"batchbench {row['throughput_sps']:.0f} sps ({row['throughput_sps_min']:.0f}-"
              f"{row['throughput_sps_max']:.0f}), hand-written {median:.0f} sps ({min(hand):.0f}-{max(hand):.0f})")
    return Figure("fidelity", name, ratio, "x", GOAL, met, low, high, detail)
