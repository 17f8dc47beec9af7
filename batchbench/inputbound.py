"""The input-bound diagnosis, from raw figures: is the input pipeline what limits a batch size?

Each fit or predict trial also times the same model on a few of the same batches held in memory
(the worker's compute-only phase). `input_bound_ratio` is that compute-only throughput over the
measured one; at INPUT_BOUND or more the model waits on its input (`input_bound`). Pipelines
only: arrays are in memory already, and the phase would time the same work again (the worker's
job._diagnoses). Pure functions of plain rows, tested without TensorFlow."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from batchbench.numbers import is_number

INPUT_BOUND = 1.25  # compute-only at least this much faster than measured: the input is the limit


def trial_figures(compute_only: dict | None, throughputs: Sequence[float]) -> dict:
    """One trial's columns from its compute-only repeats and its measured repeats' throughputs
    (their median is `throughput_sps`). Input-bound takes both: a ratio of INPUT_BOUND or more,
    and every compute-only repeat faster than every measured one (a gap beyond the spread: on
    a busy machine short windows of the same work differ by tens of per cent)."""
    measured = [v for v in throughputs if is_number(v) and v > 0]
    if not compute_only or not measured:
        return {}
    rates = [s / t for s, t in zip(compute_only.get("repeat_samples") or [], compute_only.get("repeat_time_s") or [])
             if t > 0]
    if not rates:
        return {}
    sps = statistics.median(rates)
    ratio = sps / statistics.median(measured)
    return {"compute_only_sps": sps, "input_bound_ratio": ratio,
            "input_bound": bool(ratio >= INPUT_BOUND and min(rates) > max(measured))}


def pooled(rows: Sequence[dict]) -> dict:
    """A point's figures over its rounds: the median of the rounds' ratios (each round compares
    its own two phases, in the same process) and of their compute-only throughputs; input-bound
    when that ratio is INPUT_BOUND or more and most rounds found it so."""
    rounds = [r for r in rows if is_number(r.get("input_bound_ratio"))]
    if not rounds:
        return {}
    sps = [r["compute_only_sps"] for r in rounds if is_number(r.get("compute_only_sps"))]
    ratio = statistics.median(r["input_bound_ratio"] for r in rounds)
    flagged = sum(1 for r in rounds if r.get("input_bound") is True)
    return {"compute_only_sps": statistics.median(sps) if sps else None, "input_bound_ratio": ratio,
            "input_bound": bool(ratio >= INPUT_BOUND and 2 * flagged > len(rounds))}


def bound_sizes(rows: Sequence[dict]) -> list[int]:
    """The ladder batch sizes flagged input-bound."""
    return sorted({r["batch_size"] for r in rows if r.get("status") == "ok" and r.get("input_bound") is True
                   and r.get("phase") in (None, "", "ladder")})


def sentence(key: str, rows: Sequence[dict]) -> str | None:
    """What the summary says of one group, or None when its input never was the limit."""
    sizes = bound_sizes(rows)
    if not sizes:
        return None
    ratios = [r["input_bound_ratio"] for r in rows if r["batch_size"] in sizes and is_number(r.get("input_bound_ratio"))]
    every = len(sizes) == len({r["batch_size"] for r in rows if r.get("status") == "ok" and is_number(r.get("input_bound_ratio"))})
    where = "every batch size" if every else "batch size " + ", ".join(map(str, sizes))
    low, high = (f"{v:.1f}" if v < 10 else f"{v:.0f}" for v in (min(ratios), max(ratios)))
    span = low if low == high else f"{low}-{high}"
    return (f"{key}: the input pipeline is the limit at {where} (the model computes "
            f"{span}x faster on the same batches held in memory): parallelise "
            "its map (num_parallel_calls=tf.data.AUTOTUNE), prefetch, or cache it")
