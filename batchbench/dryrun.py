"""`--dry-run`: the trials a sweep would run, and how long an earlier run of the same measured
settings took. Plain Python, no TensorFlow, well under a second."""

from __future__ import annotations

import csv
import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from batchbench.config import Config
from batchbench.plan import build_groups


def data_samples(config: Config) -> int | None:
    """How many samples the data holds, where that can be read cheaply (None: not known
    before the worker builds it, e.g. a callable)."""
    data = config.data
    try:
        if data.synthetic is not None:
            return data.synthetic.samples
        if data.npz is not None:
            return _npz_rows(Path(data.npz.path), data.npz.x)
        if data.csv is not None:
            with open(data.csv.path, newline="", encoding="utf-8", errors="replace") as fh:
                return max(0, sum(1 for _ in csv.reader(fh)) - 1)
    except (OSError, ValueError, csv.Error, zipfile.BadZipFile):
        return None
    return None


def _npz_rows(path: Path, key: str) -> int | None:
    import numpy as np

    fmt = np.lib.format
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
        version = fmt.read_magic(member)
        reader = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        shape = reader(member)[0] if reader else None  # the header only, never the data
    return int(shape[0]) if shape else None


def plan_preview(config: Config, resume_dir: Path | None = None, shard=None) -> dict[str, Any]:
    """The planned trials per group (of one shard's points, with --shard), which of them would be
    skipped, and an estimate."""
    from batchbench.shard import check_shard, resumed_shard, shard_points

    if resume_dir:
        shard = resumed_shard(shard, _recorded_shard(resume_dir), resume_dir)
    samples = data_samples(config)
    train = None if samples is None else int(samples * (1 - config.data.validation_split))
    done = _done_trials(resume_dir) if resume_dir else set()
    groups = []
    check_shard(build_groups(config), shard, config.sweep.find_max)
    for group, sizes in shard_points(build_groups(config), config.sweep.batch_sizes, shard):
        limit = train if group.mode == "fit" else samples
        trials = []
        for b in sizes:
            from batchbench.plan import Trial

            trial = Trial(group, b)
            state = "done" if trial.trial_id in done else \
                ("skipped" if limit is not None and b > limit else "planned")
            trials.append({"trial_id": trial.trial_id, "batch_size": b, "phase": "ladder", "state": state})
        groups.append({"group": group.key, "trials": trials})
    planned = [t for g in groups for t in g["trials"] if t["state"] == "planned"]
    out: dict[str, Any] = {
        "name": config.name, "shard": str(shard) if shard else None, "samples": samples, "groups": groups, "planned_trials": len(planned),
        "rounds": {"min": config.sweep.rounds.min, "max": config.sweep.rounds.max,
                   "rel_half_width": config.sweep.rounds.rel_half_width},
        "find_max": config.sweep.find_max,
        "phases": ["ladder"] + (["search", "confirm"] if config.sweep.find_max else []),
    }
    out["estimate"] = estimate(config, [t["trial_id"] for t in planned])
    return out


def _recorded_shard(run_dir: Path) -> Any:
    try:
        return json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8")).get("shard")
    except (OSError, ValueError, AttributeError, RecursionError):  # a preview never fails on a damaged folder
        return None


def _done_trials(run_dir: Path) -> set[str]:
    try:
        from batchbench.results import read_rows

        return {r["trial_id"] for r in read_rows(Path(run_dir) / "results.csv") if r.get("trial_id")}
    except Exception:  # noqa: BLE001 - a preview never fails on a damaged folder
        return set()


def estimate(config: Config, trial_ids: list[str]) -> dict[str, Any] | None:
    """Seconds the planned trials took in the newest earlier run of the same measured settings
    under the results folder (plus that run's fixed costs), or None when there is none."""
    root = Path(config.output.dir) / config.name
    try:
        candidates = sorted(root.glob("*/run.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return None
    want = config.measurement_hash()
    for run_json in candidates[:50]:
        try:
            record = json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if not isinstance(record, dict) or record.get("config_hash") != want:
            continue
        from batchbench.results import read_rows

        try:
            rows = read_rows(run_json.parent / "results.csv")
        except Exception:  # noqa: BLE001
            continue
        walls = {r["trial_id"]: r["wall_s"] for r in rows if isinstance(r.get("wall_s"), (int, float))}
        if not walls:
            continue
        mean = sum(walls.values()) / len(walls)
        trials_s = sum(walls.get(t, mean) for t in trial_ids)
        fixed_s = max(0.0, _span_s(record) - sum(walls.values())) if _span_s(record) else 0.0
        return {"seconds": trials_s + fixed_s, "from_run": str(run_json.parent),
                "matched_trials": sum(1 for t in trial_ids if t in walls)}
    return None


def _span_s(record: dict) -> float:
    try:
        start = datetime.fromisoformat(record["started_at"])
        end = datetime.fromisoformat(record["ended_at"])
        return max(0.0, (end - start).total_seconds())
    except (KeyError, TypeError, ValueError):
        return 0.0


def render_preview(preview: dict[str, Any]) -> str:
    from batchbench.progress import clock

    rounds = preview.get("rounds") or {"min": 1, "max": 1}
    n = preview["planned_trials"]
    each = f"{rounds['min']} round(s)" if rounds["min"] == rounds["max"] else \
        f"{rounds['min']} rounds, up to {rounds['max']} where the interval is wider than ±{rounds['rel_half_width']:.0%}"
    shard = f" (shard {preview['shard']})" if preview.get("shard") else ""
    lines = [f"dry run of {preview['name']}{shard}: {n} point(s) would run, {each} ({n * rounds['min']}"
             + (f"-{n * rounds['max']}" if rounds["max"] > rounds["min"] else "") + " trials)"
             + (f" on {preview['samples']} samples" if preview.get("samples") is not None else "")]
    for group in preview["groups"]:
        cells = []
        for t in group["trials"]:
            mark = {"skipped": " (skipped: more than the samples)", "done": " (done)"}.get(t["state"], "")
            cells.append(f"{t['batch_size']}{mark}")
        lines.append(f"  {group['group']}: batch {', '.join(cells)}")
    if preview["find_max"]:
        lines.append("  then find-max: a search below the first OOM of each group (about log2 trials) and one "
                     "confirming full pass")
    est = preview.get("estimate")
    if est:
        lines.append(f"estimate: about {clock(est['seconds'])} (from the earlier run {est['from_run']}, "
                     f"{est['matched_trials']} of the trials measured there)")
    else:
        lines.append("estimate: none (no earlier run of these measured settings under the results folder)")
    return "\n".join(lines)
