"""A result row from a trial and how its job ended: pure functions of literal outcomes, so
the row classification (ok, oom, error, timeout) is tested without processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchbench import inputbound
from batchbench.axes import AXES
from batchbench.budget import MemoryBudget, MiB
from batchbench.config import TargetSpec
from batchbench.errors import ConfigError
from batchbench.lengths import tokens_per_s
from batchbench.plan import Trial
from batchbench.runfiles import write_atomic
from batchbench.runner import JobOutcome
from batchbench.stats import Stats
from batchbench.targets import target_label

BN_SMALL_BATCH = 16  # BatchNormalization statistics get noisy below this per-replica batch
NOISY_CV = 0.10  # throughput varying more than this between repeats earns a warning


@dataclass(frozen=True)
class RowContext:
    """What every row of a sweep shares."""

    run_id: str
    name: str
    model: str
    preflight: dict
    budget: MemoryBudget
    trial_timeout_s: float
    target: TargetSpec | None = None


@dataclass
class TrialRow:
    """A row, and what the sweep keeps beside it."""

    row: dict
    samples: dict | None = None       # raw per-repeat figures, for run.json and compare
    noisy_cv: float | None = None     # set when the repeats vary more than NOISY_CV
    unstable: bool = False            # predict windows that never agreed
    notes: list[str] = field(default_factory=list)


def base_row(trial: Trial, ctx: RowContext, status: str, error: str | None = None) -> dict:
    axes = dict(trial.group.axes)
    pre = ctx.preflight
    return {
        "run_id": ctx.run_id, "name": ctx.name, "model": ctx.model,
        "mode": trial.mode, "method": trial.method, "batch_size": trial.batch_size,
        "status": status, "error": error, "trial_id": trial.trial_id, "phase": trial.phase,
        "params": pre.get("params"), "device": pre.get("device"),
        **{axis: axes.get(axis) for axis in AXES}, "loss": pre.get("loss") if trial.mode == "fit" else None,
        "bn_small_batch": bool(trial.mode == "fit" and pre.get("has_batch_norm") and trial.batch_size < BN_SMALL_BATCH),
    }


def classify_death(outcome: JobOutcome, available_bytes: int) -> tuple[str, str]:
    """A job that reported nothing: how it ended, in words."""
    sig = outcome.signal_name
    if outcome.returncode is None:
        return "error", "the worker process died during the trial"
    if sig == "SIGKILL":
        rss = (outcome.peak_rss_mib or 0) * MiB
        if rss and rss > 0.5 * (available_bytes + rss):
            return "oom", (f"killed by SIGKILL after reaching {outcome.peak_rss_mib:.0f} MiB resident: "
                           "most likely the kernel's out-of-memory killer")
        return "error", "the worker was killed by SIGKILL"
    if sig:
        return "error", f"the worker was killed by {sig}"
    return "error", f"the worker exited with code {outcome.returncode} before reporting a result"


def row_from_outcome(trial: Trial, outcome: JobOutcome, wall_s: float, ctx: RowContext,
                     available_bytes: int = 0) -> TrialRow:
    result = dict(outcome.result or {})
    status = result.get("status")
    error = result.get("error")
    if outcome.timed_out:
        status, error = "timeout", f"ran longer than trial_timeout_s={ctx.trial_timeout_s:g}s"
    elif outcome.memory_killed:
        status, error = "oom", f"resident memory crossed the cap of {ctx.budget.cap_mib:.0f} MiB; the trial was ended"
        result["oom_kind"] = "host"
    elif status == "config_error":
        status, error = "error", result.get("message")
    elif status is None:
        status, error = classify_death(outcome, available_bytes)
    row = base_row(trial, ctx, status=status, error=error)
    out = TrialRow(row)
    row["wall_s"] = wall_s
    pre = ctx.preflight
    if status == "oom":
        row["oom_kind"] = result.get("oom_kind") or ("device" if pre.get("device", "cpu") != "cpu" else "host")
    if result.get("replicas"):
        row["replicas"] = result["replicas"]
        row["per_replica_batch_size"] = trial.batch_size // result["replicas"]
        row["bn_small_batch"] = bool(trial.mode == "fit" and pre.get("has_batch_norm") and
                                     row["per_replica_batch_size"] < BN_SMALL_BATCH)
    if result.get("processes"):
        row["processes"] = result["processes"]
        row["devices_per_process"] = result.get("devices_per_process")
        row["per_process_batch_size"] = trial.batch_size // result["processes"]
    for key in ("params", "device", "max_abs_diff", "consistent", "nvml_process_mib", "memory_window"):
        if result.get(key) is not None:
            row[key] = result[key]
    for key, value in (result.get("quality") or {}).items():
        if value is not None:
            row[key] = value
    if ctx.target and trial.mode == "fit" and trial.phase != "confirm":
        row["target"] = target_label(ctx.target.metric, ctx.target.value)
    if status == "ok":
        _add_figures(out, trial, result)
        peak = row.get(ctx.budget.column)
        if peak is not None:
            row["headroom_mib"] = ctx.budget.budget_mib - peak
        limit = ctx.budget.limit_bytes
        if limit and (row.get("peak_host_mib") or 0) > limit / MiB:
            # Too brief for the watchdog to catch, but VmHWM saw it: it would not fit.
            row.update(status="oom", oom_kind="host",
                       error=f"peak resident memory {row['peak_host_mib']:.0f} MiB exceeded the memory limit "
                             f"of {limit / MiB:.0f} MiB")
    return out


def _add_figures(out: TrialRow, trial: Trial, result: dict) -> None:
    m = result["measurement"]
    batch = trial.batch_size
    throughputs = [s / t for s, t in zip(m["repeat_samples"], m["repeat_time_s"]) if t > 0]
    tp = Stats.from_values(throughputs)
    step_ms = [s * 1000 for s in m["step_s"]]
    st = Stats.from_values(step_ms)
    out.samples = {"throughput_sps": throughputs, "step_ms": thin(step_ms)}
    if tp.n > 1 and tp.cv > NOISY_CV:
        out.noisy_cv = tp.cv
    out.row.update({
        "throughput_sps": tp.median, "throughput_sps_min": tp.min, "throughput_sps_max": tp.max,
        "step_ms_median": st.median, "step_ms_p90": st.p90, "step_ms_p95": st.p95,
        "step_ms_p99": st.p99, "step_ms_max": st.max, "sample_ms": st.median / batch,
        "first_step_s": m.get("first_step_s"), "peak_host_mib": result.get("peak_host_mib"),
        "peak_device_mib": result.get("peak_device_mib"), "repeats": tp.n,
        "steps": m.get("steps"), "samples": sum(m["repeat_samples"]), "timed_s": sum(m["repeat_time_s"]),
    })
    out.row.update(inputbound.trial_figures(m.get("compute_only"), throughputs))
    out.row["tokens_per_s"] = tokens_per_s(out.row)
    if m.get("energy_j") is not None:
        samples = out.row["samples"]
        out.row["energy_j"] = m["energy_j"]
        out.row["j_per_1k"] = m["energy_j"] / samples * 1000 if samples else None
    if trial.mode != "fit":
        out.row["stable"] = m.get("stable")
        out.unstable = m.get("stable") is False


def thin(values: list[float], limit: int = 2000) -> list[float]:
    """Raw samples kept in run.json, evenly thinned past `limit` to keep the file small."""
    if len(values) <= limit:
        return [round(v, 6) for v in values]
    step = len(values) / limit
    return [round(values[int(i * step)], 6) for i in range(limit)]


def preflight_result(outcome: JobOutcome, log: Path, label: str, verbose: bool, dist: Any = None) -> dict:
    """What the preflight job found: its result when the model and data fit together, else
    the ConfigError (exit 2) that says what the user can fix."""
    result = outcome.result or {}
    if result.get("status") == "config_error":
        message = result["message"]
        if result.get("traceback"):
            # The user's own frames: kept in the log, shown with --verbose.
            write_atomic(log, str(result["traceback"]))
            message += (f"\n{result['traceback']}".rstrip() if verbose
                        else f" (traceback in {log})")
        raise ConfigError(message, file=label, key=result.get("key"))
    if result.get("status") != "ok" and dist and log.exists() and any(
            marker in log.read_text(errors="replace") for marker in ("DEADLINE_EXCEEDED", "CoordinationService")):
        # JAX aborts the process when the job cannot form: say what the user can fix.
        raise ConfigError(f"could not join the {dist.num_processes} processes through the coordinator "
                          f"{dist.coordinator(0)} within {dist.timeout_s} s: is process 0 running, and the port "
                          f"reachable from here? (details in {log})", key="--coordinator")
    if result.get("status") != "ok":
        reason = result.get("error") or ending(outcome) or "unknown failure"
        raise ConfigError(f"the model and data could not be built: {reason} (details in {log})", file=label)
    return result


def ending(outcome: JobOutcome) -> str | None:
    if outcome.timed_out:
        return "timed out"
    if outcome.signal_name:
        return f"killed by {outcome.signal_name}"
    return None


__all__ = ["BN_SMALL_BATCH", "NOISY_CV", "RowContext", "TrialRow", "base_row", "classify_death", "ending",
           "preflight_result", "row_from_outcome", "thin"]
