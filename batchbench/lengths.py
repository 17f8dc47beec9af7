"""The sequence-length axis's figures: tokens per second, and the frontier users size
transformers by: per length, the largest batch that fits and the fastest one. Pure functions
of plain rows and recommendations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from batchbench.numbers import is_number
from batchbench.recommend import group_key


def tokens_per_s(row: dict) -> float | None:
    """throughput_sps × sequence_length (None off the axis)."""
    length, sps = row.get("sequence_length"), row.get("throughput_sps")
    return sps * length if is_number(length) and is_number(sps) else None


def frontier(rows: Sequence[dict], recommendations: dict[str, Any], varying: list[str]) -> list[dict]:
    """One entry per group (mode, method, the other axes) and sequence length, shortest first:
    the largest batch that fits (find-max's answer, else the largest that ran ok), the batch
    with the best throughput and its tokens per second."""
    if not any(is_number(r.get("sequence_length")) for r in rows):
        return []
    others = [a for a in varying if a != "sequence_length"]
    out = []
    for key, rec in recommendations.items():
        group = [r for r in rows if group_key(r, varying) == key and is_number(r.get("sequence_length"))]
        if not group or not isinstance(rec, dict):
            continue
        best = next((r for r in group if r["batch_size"] == rec.get("best_throughput") and r.get("status") == "ok"
                     and r.get("phase") in (None, "", "ladder")), None)
        entry = {"group": group_key(group[0], others), "sequence_length": group[0]["sequence_length"],
                 "largest_batch": rec["max_batch_size"] if isinstance(rec.get("max_batch_size"), int)
                 else rec.get("largest_ok"),
                 "found_by": "find_max" if isinstance(rec.get("max_batch_size"), int) else "largest_ok",
                 "best_throughput": rec.get("best_throughput"),
                 "tokens_per_s": tokens_per_s(best) if best else None}
        out.append(entry)
    return sorted(out, key=lambda e: (e["group"], e["sequence_length"]))
