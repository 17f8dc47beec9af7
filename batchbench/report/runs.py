"""A saved run, read back from its run directory alone: results.csv, and run.json when it is there."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchbench.axes import AXES
from batchbench.numbers import is_number
from batchbench.recommend import group_key, summarize
from batchbench.results import ResultsFormatError, locate_run, read_rows, read_run_json

MIB = 2**20
MODES = ("fit", "predict")
STATUSES = ("ok", "oom", "error", "timeout", "skipped")
MAX_BATCH = 2**31


def group_rows(rows: list[dict], varying: list[str]) -> dict[str, list[dict]]:
    """Rows by group key, each group in batch-size order (a search's confirming pass last)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(group_key(row, varying), []).append(row)
    return {k: sorted(v, key=lambda r: (r["batch_size"], r.get("phase") == "confirm")) for k, v in groups.items()}


@dataclass
class SavedRun:
    """What a report needs from one run; every field comes from saved files, none from the model."""

    path: Path
    rows: list[dict[str, Any]]
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        names = [r.get("name") for r in self.rows if r.get("name")]
        return str(self.record.get("name") or (names[0] if names else self.path.name))

    @property
    def environment(self) -> dict[str, Any]:
        return self.record.get("environment") or {}

    @property
    def sweep_config(self) -> dict[str, Any]:
        return (self.record.get("config_resolved") or {}).get("sweep") or {}

    @property
    def device(self) -> str:
        """The GPU TensorFlow used, else the CPU model, else what the rows say."""
        env = self.environment
        tf_gpus = [d for d in (env.get("framework") or {}).get("tf_devices") or [] if d.get("type") == "GPU"]
        nvml_gpus = (env.get("nvml") or {}).get("gpus") or []
        if tf_gpus and nvml_gpus:
            return str(nvml_gpus[0].get("name"))
        if env.get("cpu_model"):
            return f"CPU {env['cpu_model']}"
        devices = sorted({str(r["device"]) for r in self.rows if r.get("device")})
        return ", ".join(devices) or "unknown device"

    @property
    def label(self) -> str:
        return f"{self.name} on {self.device}"

    @property
    def varying(self) -> list[str]:
        """The sweep axes whose values differ among the rows: each value gets its own line."""
        return [axis for axis in AXES if len({str(r.get(axis)) for r in self.rows if r.get(axis) is not None}) > 1]

    @property
    def slo_ms(self) -> float | None:
        return self.sweep_config.get("slo_ms")

    @property
    def percentile(self) -> float:
        return float(self.sweep_config.get("percentile") or 99)

    @property
    def memory_cap_mib(self) -> float | None:
        limit = self.sweep_config.get("memory_limit")
        return limit / MIB if isinstance(limit, (int, float)) and limit > 0 else None

    @property
    def device_capacity(self) -> tuple[str, float] | None:
        """(what it is, MiB) of the usable device memory: the logical device's size under
        device_memory_limit, else the first GPU's total as NVML reports it."""
        limit = self.sweep_config.get("device_memory_limit")
        if isinstance(limit, (int, float)) and limit > 0:
            return "device memory limit", limit / MIB
        gpus = (self.environment.get("nvml") or {}).get("gpus") or []
        for gpu in gpus:
            if is_number(gpu.get("memory_total_mib")):
                return f"{gpu.get('name') or 'GPU'} memory", float(gpu["memory_total_mib"])
        return None

    @property
    def summary(self) -> dict[str, Any]:
        """The saved summary (it alone knows the largest-batch search), else one computed from the rows."""
        saved = self.record.get("summary")
        if isinstance(saved, dict) and saved.get("recommendations") is not None:
            return saved
        return summarize(self.rows, self.varying, self.slo_ms, self.percentile)

    def groups(self) -> dict[str, list[dict[str, Any]]]:
        return group_rows(self.rows, self.varying)


def load_run(path: str | Path) -> SavedRun:
    """A run directory (or its results.csv) -> SavedRun; ResultsFormatError, one line, when it
    is not one: damaged files are bad input, never a traceback."""
    from batchbench.report.schema import RUN_JSON, problem
    from batchbench.report.text import clean

    path = Path(path)
    if not path.exists():
        raise ResultsFormatError(f"{path}: no such run directory")
    csv_path, run_json = locate_run(path)
    try:
        rows = read_rows(csv_path)
    except ResultsFormatError as exc:
        raise ResultsFormatError(clean(exc.format_message())) from None
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, OverflowError) as exc:
        raise ResultsFormatError(f"{csv_path}: cannot be read as batchbench results ({clean(exc)})") from None
    for number, row in enumerate(rows, start=1):
        found = _row_problem(row)
        if found:
            raise ResultsFormatError(f"{csv_path}: not a batchbench results file (row {number}: {clean(found)})")
    record: dict[str, Any] = {}
    if run_json:
        try:
            record = read_run_json(run_json)
        except ResultsFormatError as exc:
            raise ResultsFormatError(clean(exc.format_message())) from None
        except (RecursionError, ValueError, OverflowError) as exc:  # nesting too deep, an integer too long
            reason = "nested too deeply" if isinstance(exc, RecursionError) else clean(exc)
            raise ResultsFormatError(f"{run_json}: cannot be read as batchbench run.json ({reason})") from None
        found = problem(record, RUN_JSON, "run.json")
        if found:
            raise ResultsFormatError(f"{run_json}: not a batchbench run.json ({clean(found)})")
    return SavedRun(csv_path.parent, rows, record)


def _row_problem(row: dict[str, Any]) -> str | None:
    from batchbench.report.text import brief

    batch = row.get("batch_size")
    if not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        return f"batch_size {brief(row.get('batch_size'))} is not a whole number from 1 to {MAX_BATCH:,}"
    if row.get("status") not in STATUSES:
        return f"status {brief(row.get('status'))} is not one of {', '.join(STATUSES)}"
    if row.get("mode") not in MODES:
        return f"mode {brief(row.get('mode'))} is not one of {', '.join(MODES)}"
    return None


def run_labels(runs: list[SavedRun]) -> list[str]:
    """Name and device; two runs that share both (base vs head) are told apart by their folder."""
    plain = [run.label for run in runs]
    labels = [f"{run.label} ({run.path.name})" if plain.count(run.label) > 1 else run.label for run in runs]
    return [label if labels.count(label) == 1 else f"{label} #{i + 1}" for i, label in enumerate(labels)]


def quality_columns(rows: list[dict[str, Any]]) -> list[str]:
    """val_loss first, then every other val_<metric>, then time to target: the ones that hold numbers."""
    rows = [r for r in rows if r.get("mode") == "fit"]
    found = {k for r in rows for k, v in r.items() if k.startswith("val_") and is_number(v)}
    columns = sorted(found, key=lambda c: (c != "val_loss", c))[:3]
    if any(is_number(r.get("time_to_target_s")) for r in rows):
        columns.append("time_to_target_s")
    return columns
