"""A group's recommendations as sentences a person can act on: which batch size to use, what
it costs against the best, and when the sweep itself should change (go higher, go smaller)."""

from __future__ import annotations

import math
from typing import Any

from batchbench.recommend import FLOOR, latency_column, open_edge
from batchbench.report.columns import tail_name
from batchbench.report.runs import is_number


def _sig(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _by_batch(rows: list[dict]) -> dict[int, dict]:
    """One measured row per batch size, the ladder's before a search's."""
    found: dict[int, dict] = {}
    for row in sorted(rows, key=lambda r: r.get("phase") not in (None, "", "ladder")):
        if row.get("status") == "ok" and is_number(row.get("throughput_sps")):
            found.setdefault(row["batch_size"], row)
    return found


def _verb(rows: list[dict]) -> str:
    if rows[0].get("mode") == "fit":
        return "Train"
    return "Serve" if rows[0].get("method") == "serve" else "Predict"


def _tied(rec: dict, batch: int) -> bool:
    tied = rec.get("tied_with_best")
    return batch in tied if isinstance(tied, list) else tied is True


def _memory_saved(chosen: dict, best: dict) -> str:
    for key in ("peak_device_mib", "peak_host_mib"):
        if is_number(chosen.get(key)) and is_number(best.get(key)):
            saved = best[key] - chosen[key]
            return f"{saved:,.0f} MiB less memory" if saved >= max(1.0, 0.01 * best[key]) else ""
    return ""


def _choice(rec: dict, predict: bool) -> int | None:
    order = ["slo", "recommended"] + (["knee"] if predict else []) + ["smallest_near_best", "best_throughput"]
    return next((rec[k] for k in order if isinstance(rec.get(k), int)), None)


def _action(verb: str, choice: int, rec: dict, rows: dict[int, dict], slo_ms: Any, tail: str) -> str:
    best_batch = rec["best_throughput"]
    chosen, best = rows.get(choice), rows.get(best_batch)
    if chosen is None or best is None:
        return f"{verb} at {choice}."
    p = tail_name(tail)
    if choice == best_batch:
        head = f"{verb} at {choice}: the best throughput, {_sig(best['throughput_sps'])} samples/s"
    else:
        share = math.floor(100 * chosen["throughput_sps"] / best["throughput_sps"])
        head = f"{verb} at {choice}: {share}% of the best throughput ({best_batch})"
        if _tied(rec, choice):
            tied = rec.get("tied_with_best")
            sizes = sorted(tied) if isinstance(tied, list) and len(tied) > 1 else sorted({choice, best_batch})
            listed = ", ".join(map(str, sizes[:-1])) + f" and {sizes[-1]}"
            head = (f"{verb} at {choice}: {listed} are within the measurement noise of each other, and {choice} "
                    f"is the smallest ({share}% of the best throughput ({best_batch}))")
    costs = []
    if choice == rec.get("slo") and is_number(slo_ms):
        costs.append(f"the fastest with {p} within {slo_ms:g} ms" + (f" ({_sig(chosen[tail])} ms)"
                                                                    if is_number(chosen.get(tail)) else ""))
    elif choice != best_batch and verb != "Train" and is_number(chosen.get(tail)) and is_number(best.get(tail)):
        costs.append(f"{p} {_sig(chosen[tail])} ms instead of {_sig(best[tail])} ms")
    if choice != best_batch:
        costs.append(_memory_saved(chosen, best))
    return ", ".join([head] + [c for c in costs if c]) + "."


def _unsettled(rec: dict, rows: dict[int, dict]) -> list[str]:
    """Where this run's intervals leave the pick open: the sizes whose tie with the best could go
    either way, with their ratio to the best, its interval and the tie rule's edge it spans."""
    best = rows.get(rec.get("best_throughput"))
    parts = []
    for batch in rec.get("unsettled") or []:
        found = open_edge(rows[batch], best) if batch in rows and best else None
        if found:
            edge, span = found
            share = rows[batch]["throughput_sps"] / best["throughput_sps"]
            line = f"the {FLOOR:.0%} floor below which no size counts as tied" if edge == FLOOR else \
                f"the {edge:.0%} line above which a size counts as tied"
            parts.append(f"{batch} reads {share:.0%} of {best['batch_size']}'s throughput "
                         f"(95% interval {100 * span[0]:.0f}-{span[1]:.0%}, across {line})")
    if not parts:
        return []
    return [f"Not settled: {'; '.join(parts)}, so the same sweep run again may recommend another size. More rounds "
            "(sweep.rounds: a higher max, a smaller rel_half_width) or a quieter machine settle it."]


def _nothing_ran(rows: list[dict]) -> str:
    ooms = [r["batch_size"] for r in rows if r.get("status") == "oom"]
    if ooms:
        return f"No batch size ran: {min(ooms)} already ran out of memory; sweep smaller sizes."
    return "No batch size ran ok: the note column and trials/*.log say why."


def advice(rows: list[dict], rec: dict, slo_ms: Any = None, percentile: float = 99) -> list[str]:
    """Sentences for one group, the batch size to use first."""
    if not rows:
        return []
    measured = _by_batch(rows)
    if not isinstance(rec.get("best_throughput"), int) or not measured:
        return [_nothing_ran(rows)]
    predict = rows[0].get("mode") == "predict"
    tail = latency_column(percentile) if predict else "step_ms_p90"
    sentences = []
    if "slo" in rec and rec["slo"] is None:
        lowest = min((r for r in measured.values() if is_number(r.get(tail))), key=lambda r: r[tail], default=None)
        goal = f"{tail_name(tail)} ≤ {slo_ms:g} ms" if is_number(slo_ms) else "the latency budget"
        sentences.append(f"No batch size meets {goal}" + (f"; the lowest was {_sig(lowest[tail])} ms, at "
                                                          f"{lowest['batch_size']}." if lowest else "."))
    choice = _choice(rec, predict)
    sentences.append(_action(_verb(rows), choice, rec, measured, slo_ms, tail))
    if choice == rec.get("recommended") and not isinstance(rec.get("slo"), int):  # an SLO pick reads latency
        sentences += _unsettled(rec, measured)
    best = rec["best_throughput"]
    if best == max(r["batch_size"] for r in rows) and len(measured) > 1 and \
            not any(r.get("status") == "oom" for r in rows):
        sentences.append(f"Throughput was still rising at {best}, the largest size tried: sweep higher.")
    return sentences + _memory(rec, rows) + _training(rec)


def _memory(rec: dict, rows: list[dict]) -> list[str]:
    out = []
    found, safe = rec.get("max_batch_size"), rec.get("safe_batch_size")
    if isinstance(found, int):
        trials = f" (a search of {rec['search_trials']} trials)" if isinstance(rec.get("search_trials"), int) else ""
        margin = f"; {safe} leaves the safety margin" if isinstance(safe, int) and safe != found else ""
        out.append(f"The largest batch that fits in memory is {found}{trials}{margin}.")
    elif "max_batch_size" in rec:
        reached = rec.get("fits_up_to_at_least") or rec.get("largest_ok")
        if isinstance(reached, int):
            out.append(f"Nothing ran out of memory up to {reached}.")
    if safe is None and isinstance(rec.get("safe_batch_size_reason"), str):
        out.append(f"No safe batch size: {rec['safe_batch_size_reason']}.")
    advice_ = rec.get("accumulation_advice")
    if isinstance(advice_, dict) and {"wanted", "batch_size", "gradient_accumulation_steps"} <= set(advice_):
        out.append(f"Batch {advice_['wanted']} does not fit: use {advice_['batch_size']} with "
                   f"gradient_accumulation_steps={advice_['gradient_accumulation_steps']}.")
    return out


def _training(rec: dict) -> list[str]:
    out = []
    if "fastest_to_target" in rec:
        target = rec["fastest_to_target"]
        out.append(f"Fastest to the target: {target}." if target is not None else "No batch size reached the target.")
    if is_number(rec.get("critical_batch_size")):
        out.append(f"Critical batch size ≈ {rec['critical_batch_size']:,.0f} (gradient noise scale): larger "
                   "batches need more samples to train as far.")
    return out


def fastest_configurations(groups: dict[str, list[dict]], recs: dict[str, Any]) -> list[str]:
    """Across sweep axes, the fastest group of each mode (and method): like compared with like."""
    kinds: dict[str, list[tuple[float, str, int]]] = {}
    for key, rows in groups.items():
        rec = recs.get(key) or {}
        row = _by_batch(rows).get(rec.get("best_throughput"))
        if row is not None:
            kinds.setdefault(key.split("|", 1)[0], []).append((row["throughput_sps"], key, row["batch_size"]))
    return [f"Fastest {kind} configuration: {key} at {batch} ({_sig(sps)} samples/s)."
            for kind, found in kinds.items() if len(found) > 1 for sps, key, batch in [max(found)]]
