"""The sweep's summary (the --json output, also in run.json): status counts, recommendations
per group with find-max's frontier and the training figures, and every warning in words."""

from __future__ import annotations

from typing import Any

from batchbench import inputbound
from batchbench.config import Config
from batchbench.lengths import frontier as length_frontier
from batchbench.recommend import group_key, summarize
from batchbench.rows import NOISY_CV


def sweep_summary(config: Config, rows: list[dict], frontier: dict[str, dict], noise: dict | None,
                  warnings: list[str], noisy: dict[str, float], unstable: list[str], run_dir: str) -> dict[str, Any]:
    varying = config.varying_axes()
    summary = summarize(rows, varying, config.sweep.slo_ms, config.sweep.percentile, frontier)
    for key, rec in summary["recommendations"].items():
        if not key.startswith("fit"):
            continue
        if noise and noise.get("gradient_noise_scale"):
            rec["gradient_noise_scale"] = noise["gradient_noise_scale"]
            rec["critical_batch_size"] = round(noise["gradient_noise_scale"])
        if config.sweep.target:
            reached = [r for r in rows if group_key(r, varying) == key and r.get("time_to_target_s") is not None]
            rec["fastest_to_target"] = min(reached, key=lambda r: r["time_to_target_s"])["batch_size"] if reached \
                else None
    said = list(warnings)
    if noisy:
        worst = sorted(noisy.items(), key=lambda kv: -kv[1])
        listed = ", ".join(f"{tid} ({cv:.0%})" for tid, cv in worst[:4])
        more = f" and {len(worst) - 4} more" if len(worst) > 4 else ""
        said.append(f"{len(worst)} trial(s) are noisy (throughput varies over {NOISY_CV:.0%} between "
                    f"repeats): {listed}{more}; raise sweep.min_time_s or repeats, or quiet the machine")
    if unstable:
        tolerance = f"{config.sweep.stability.tolerance:.0%}"
        if config.sweep.rounds.max > 1:  # with rounds, windows are not extended (worker job.windows_with_rounds)
            said.append(f"{len(unstable)} predict round-trial(s) timed windows whose last 3 did not agree within "
                        f"{tolerance}: {', '.join(unstable[:4])}; the rounds' intervals carry that noise (their "
                        "points' stable is false)")
        else:
            said.append(f"{len(unstable)} predict trial(s) never stabilised (the last 3 windows did not "
                        f"agree within {tolerance}): {', '.join(unstable[:4])}; their figures are marked unstable")
    inconsistent = [r["trial_id"] for r in rows if r.get("consistent") is False]
    if inconsistent:
        said.append(f"predictions change with the batch size beyond float noise: {', '.join(inconsistent[:4])}"
                    " (see max_abs_diff)")
    bound = {}
    for key in summary["recommendations"]:
        group = [r for r in rows if group_key(r, varying) == key]
        sizes = inputbound.bound_sizes(group)
        if sizes:
            bound[key] = sizes
            said.append(inputbound.sentence(key, group))
    if bound:
        summary["input_bound"] = bound
    lengths = length_frontier(rows, summary["recommendations"], varying)
    if lengths:
        summary["sequence_length_frontier"] = lengths
    return {"run_dir": run_dir, **summary, "warnings": said}


def slow_combinations(config: Config, device: str, convolutional: bool | None = None) -> list[str]:
    """Combinations known to be slow on the detected device: warn, and let the numbers speak.
    ``convolutional``: whether the model has convolutions (None: not known)."""
    notes = []
    if device == "cpu":
        sweep = config.sweep
        if "mixed_float16" in sweep.precision or "float16" in sweep.precision:
            if any(j is not True for j in sweep.jit_compile):
                notes.append("float16 compute without XLA is emulated on CPUs and can be hundreds of times "
                             "slower than float32 (bfloat16 is the CPU's half precision)")
        if True in sweep.jit_compile and convolutional is not False:
            notes.append("XLA (jit_compile: true) often makes convolutional models slower on CPUs")
    return notes
