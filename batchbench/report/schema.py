"""The shape of the run.json fields a report reads, checked before anything is drawn: a field of
the wrong type is bad input (exit 2, one line), never a traceback halfway through a plot."""

from __future__ import annotations

from typing import Any

from batchbench.numbers import is_number
from batchbench.report.text import brief


class Num:
    """A finite number."""


class Int:
    """A whole number, not a bool, small enough for any arithmetic a report does."""


BATCH = Int
GPU = {"name": str, "memory_total_mib": Num}
ENVIRONMENT = {
    "cpu_model": str, "cpu_cores_logical": Int, "memory_total_mib": Num, "load_average": [Num], "python": str,
    "nvml": {"driver": str, "gpus": [GPU]},
    "framework": {"tensorflow": str, "keras": str, "keras_backend": str, "tf_devices": [{"type": str}],
                  "jax": str, "jax_devices": [str], "torch": str, "torch_devices": [str]},
}
SWEEP = {"batch_sizes": [BATCH], "repeats": Int, "slo_ms": Num, "percentile": Num, "memory_limit": Num,
         "device_memory_limit": Num, "target": {"metric": str, "value": Num}}
RECOMMENDATION = {
    **{k: BATCH for k in ("best_throughput", "largest_ok", "smallest_near_best", "recommended", "knee", "slo",
                          "max_batch_size", "safe_batch_size", "fastest_to_target", "fits_up_to_at_least")},
    "critical_batch_size": Num, "gradient_noise_scale": Num, "search_trials": Int, "safe_batch_size_reason": str,
    "tied_with_best": ([BATCH], bool), "unsettled": [BATCH],
    "accumulation_advice": {"wanted": BATCH, "batch_size": BATCH, "gradient_accumulation_steps": Int},
}
RUN_JSON = {
    "name": str, "run_id": str, "started_at": str, "ended_at": str, "batchbench_version": str,
    "environment": ENVIRONMENT, "model_info": {"model_name": str, "params": Int},
    "config_resolved": {"sweep": SWEEP}, "git": {"commit": str, "dirty": bool},
    "summary": {"status_counts": {"*": Int}, "warnings": [str], "predict_vs_serve": {"*": Num},
                "recommendations": {"overall": {"group": str, "batch_size": BATCH, "throughput_sps": Num},
                                    "*": RECOMMENDATION}},
}
NAMES = {Num: "a number", Int: "a whole number", str: "a string", bool: "true or false"}


def _matches(value: Any, schema: Any) -> bool:
    if schema is Num:
        return is_number(value)
    if schema is Int:
        return is_number(value) and isinstance(value, int) and abs(value) < 2**53
    return isinstance(value, schema)


def _what(schema: Any) -> str:
    if isinstance(schema, tuple):
        return " or ".join(_what(s) for s in schema)
    return "an object" if isinstance(schema, dict) else "a list" if isinstance(schema, list) else NAMES[schema]


def problem(value: Any, schema: Any, path: str) -> str | None:
    """Where `value` first breaks `schema`, as a sentence; None when it fits. Absent or null
    fields always fit (a run leaves out what it did not compute)."""
    if value is None:
        return None
    if isinstance(schema, tuple):
        fits = [problem(value, s, path) for s in schema]
        return None if None in fits else f"{path} should be {_what(schema)}"
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"{path} should be an object, not {type(value).__name__}"
        for key, item in value.items():
            sub = schema.get(key, schema.get("*")) if isinstance(key, str) else None
            found = problem(item, sub, f"{path}.{key}") if sub is not None else None
            if found:
                return found
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{path} should be a list, not {type(value).__name__}"
        return next((p for i, item in enumerate(value) if (p := problem(item, schema[0], f"{path}[{i}]"))), None)
    return None if _matches(value, schema) else f"{path} should be {_what(schema)}, not {brief(value)}"

