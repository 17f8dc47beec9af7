"""find-max's answer for one group: the largest batch that fits, the safe size that leaves a
margin of the memory budget free, and what to do when a wanted batch does not fit."""

from __future__ import annotations

from typing import Any

from batchbench.budget import MemoryBudget
from batchbench.plan import GroupPlan


def in_group(row: dict, plan: GroupPlan) -> bool:
    group = plan.group
    return (row.get("mode") == group.mode and (row.get("method") or "") == group.method and
            all(str(row.get(axis)).lower() == str(value).lower() for axis, value in group.axes))


def frontier(plan: GroupPlan, rows: list[dict], budget: MemoryBudget, margin: float) -> dict[str, Any]:
    out: dict[str, Any] = {"max_batch_size": plan.max_batch_size, "search_trials": plan.search_trials}
    if plan.oom_at is None:
        out["fits_up_to_at_least"] = max(plan.ok_sizes, default=None)
    if plan.nothing_fits:
        out["max_batch_size_reason"] = f"even batch 1 ran out of memory (first OOM at {plan.oom_at})"
    column = budget.column
    usable = budget.budget_mib * (1 - margin)
    measured = [r for r in rows if r.get("trial_id", "").startswith(plan.group.mode) and in_group(r, plan)
                and r["status"] == "ok" and r.get(column) is not None]
    if plan.max_batch_size is not None:  # never above the confirmed maximum
        measured = [r for r in measured if r["batch_size"] <= plan.max_batch_size]
    fitting = [r for r in measured if r[column] <= usable]
    out["safe_batch_size"] = max((r["batch_size"] for r in fitting), default=None)
    out["memory_budget_mib"] = budget.budget_mib
    if out["safe_batch_size"] is None:
        if not measured:
            out["safe_batch_size_reason"] = "no batch size ran to the end with its memory measured"
        else:
            least = min(measured, key=lambda r: r[column])
            out["safe_batch_size_reason"] = (
                f"no batch size that ran leaves {margin:.0%} of the {budget.budget_mib:.0f} MiB budget free "
                f"({usable:.0f} MiB usable; the smallest peak was {least[column]:.0f} MiB at batch "
                f"{least['batch_size']}): lower --margin or raise the memory limit")
    if plan.mode_is_fit and plan.oom_at is not None and plan.max_batch_size:
        wanted = plan.oom_at
        steps = -(-wanted // plan.max_batch_size)
        micro = -(-wanted // steps)
        out["accumulation_advice"] = {"wanted": wanted, "batch_size": micro, "gradient_accumulation_steps": steps}
    return out
