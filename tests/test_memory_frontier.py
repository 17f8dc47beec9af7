"""The memory frontier for real on the CPU: a cap that a growing batch crosses."""

from __future__ import annotations

import json

import pytest

from batchbench.plan import Group, GroupPlan, Skip
from batchbench.results import read_rows
from tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # memory caps measured against a quiet machine

GROUP = Group("fit", "", (("precision", "float32"),), ())


def drive(plan: GroupPlan, fits_up_to: int) -> list:
    """Run a plan against a fake machine where batches up to `fits_up_to` fit."""
    seen = []
    while (item := plan.next()) is not None:
        if isinstance(item, Skip):
            seen.append(("skip", item.trial.batch_size))
            continue
        status = "ok" if item.batch_size <= fits_up_to else "oom"
        seen.append((item.phase, item.batch_size, status))
        plan.record(item, status)
    return seen


@pytest.mark.parametrize("fits_up_to", [1, 100, 700, 1000, 1023])
def test_binary_search_finds_the_max_to_the_granularity_in_log_trials(fits_up_to):
    plan = GroupPlan(GROUP, [2**i for i in range(11)], max_samples=10**6, find_max=True, granularity=8)
    seen = drive(plan, fits_up_to)
    assert plan.max_batch_size is not None
    assert plan.max_batch_size <= fits_up_to < plan.max_batch_size + 8 or fits_up_to < 8
    search = [s for s in seen if s[0] == "search"]
    gap = plan.oom_at - max([b for b in plan.ok_sizes if b < plan.oom_at and b in [2**i for i in range(11)]],
                            default=0)
    assert len(search) <= max(1, (gap // 8).bit_length())  # about log2(range / granularity), not a scan
    assert seen[-1][0] == "confirm" and plan.confirmed


def test_nothing_ran_out_of_memory_means_no_max():
    plan = GroupPlan(GROUP, [8, 16], max_samples=100, find_max=True)
    drive(plan, 10**6)
    assert plan.max_batch_size is None and plan.oom_at is None


def test_a_capped_cpu_sweep_shows_the_frontier(tmp_path, write_config):
    config = write_config({
        "name": "frontier",
        "model": {"builtin": "mlp", "kwargs": {"hidden": 1024, "depth": 2}, "input_shape": [1024]},
        "data": {"synthetic": {"samples": 4096, "num_classes": 10}},
        "sweep": {"batch_sizes": [128, 512, 2048, 4096], "modes": ["fit"], "repeats": 1, "min_steps": 1,
                  "min_time_s": 0, "warmup_steps": 0, "search_granularity": 256, "rounds": 1},
    })
    uncapped = run_cli("sweep", config, "--out", tmp_path / "free", "--batch-sizes", "128,2048", "-q")
    assert uncapped.returncode == 0, uncapped.stderr
    small, large = (r["peak_host_mib"] for r in read_rows(tmp_path / "free" / "results.csv"))
    assert large > small  # a larger batch needs more memory
    cap = (small + large) / 2
    result = run_cli("sweep", config, "--out", tmp_path / "capped", "--memory-limit", f"{cap:.0f}MiB",
                     "--find-max", "--margin", "5%", "--json")
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "capped" / "results.csv")
    ladder = {r["batch_size"]: r for r in rows if r["phase"] == "ladder"}
    assert ladder[128]["status"] == "ok" and ladder[128]["peak_host_mib"] <= cap
    first_oom = min(b for b, r in ladder.items() if r["status"] == "oom")
    assert all(r["status"] == "ok" for b, r in ladder.items() if b < first_oom)
    assert all(r["status"] == "skipped" for b, r in ladder.items() if b > first_oom)
    assert ladder[first_oom]["oom_kind"] == "host"
    rec = json.loads(result.stdout)["recommendations"]["fit"]
    last_ok = max(b for b, r in ladder.items() if r["status"] == "ok")
    confirm = [r for r in rows if r["phase"] == "confirm"]
    assert len(confirm) == 1 and confirm[0]["status"] in ("ok", "oom")
    if confirm[0]["status"] == "ok":
        assert last_ok <= rec["max_batch_size"] < first_oom
        assert confirm[0]["batch_size"] == rec["max_batch_size"]
        assert confirm[0]["steps"] >= 4096 // rec["max_batch_size"]  # a full epoch, not a few steps
    else:
        # The full pass needs more than the ladder's few steps: the cap sits between two sizes'
        # peaks by construction, so it can fall between a size's short trial and its full
        # epoch. Then the answer is the largest size below that ran ok, never the one that failed.
        oks = [r["batch_size"] for r in rows if r["status"] == "ok" and r["phase"] in ("ladder", "search")]
        assert rec["max_batch_size"] == max((b for b in oks if b < confirm[0]["batch_size"]), default=None)
    assert rec["search_trials"] >= 1
    safe = rec["safe_batch_size"]  # None when no batch leaves the margin free
    if safe is not None:
        assert safe <= rec["max_batch_size"]
        assert min(r["peak_host_mib"] for r in rows if r["batch_size"] == safe and r["status"] == "ok") <= 0.95 * cap
    assert all(r["peak_host_mib"] > 0.95 * cap for r in rows if r["status"] == "ok" and
               (safe is None or r["batch_size"] > safe))
    assert all(r["headroom_mib"] >= -1 for r in rows if r["status"] == "ok")
