"""A saved run as a report reads it: the shared model (batchbench.savedrun) with every column of
every row, checked before anything is drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batchbench.numbers import is_number
from batchbench.results import ResultsFormatError
from batchbench.savedrun import SavedRun, group_rows, read_run

__all__ = ["SavedRun", "group_rows", "is_number", "load_run", "quality_columns", "run_labels"]

MODES = ("fit", "predict")
STATUSES = ("ok", "oom", "error", "timeout", "skipped")
MAX_BATCH = 2**31


def load_run(path: str | Path) -> SavedRun:
    """A run directory (or its results.csv) -> SavedRun with every column of every row;
    ResultsFormatError, one line, when it is not one: damaged files are bad input, never a
    traceback. A report needs no raw samples: they are not read."""
    from batchbench.report.schema import RUN_JSON, problem
    from batchbench.report.text import clean

    try:
        run = read_run(path, samples=False)
    except ResultsFormatError as exc:
        raise ResultsFormatError(clean(exc.format_message())) from None
    for number, row in enumerate(run.rows, start=1):
        found = _row_problem(row)
        if found:
            raise ResultsFormatError(f"{run.csv_path}: not a batchbench results file (row {number}: {clean(found)})")
    found = problem(run.record, RUN_JSON, "run.json") if run.json_path else None
    if found:
        raise ResultsFormatError(f"{run.json_path}: not a batchbench run.json ({clean(found)})")
    return run


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
    plain = [run.name_on_device for run in runs]
    labels = [f"{run.name_on_device} ({run.path.name})" if plain.count(run.name_on_device) > 1 else run.name_on_device
              for run in runs]
    return [label if labels.count(label) == 1 else f"{label} #{i + 1}" for i, label in enumerate(labels)]


def quality_columns(rows: list[dict[str, Any]]) -> list[str]:
    """val_loss first, then every other val_<metric>, then time to target: the ones that hold numbers."""
    rows = [r for r in rows if r.get("mode") == "fit"]
    found = {k for r in rows for k, v in r.items() if k.startswith("val_") and is_number(v)}
    columns = sorted(found, key=lambda c: (c != "val_loss", c))[:3]
    if any(is_number(r.get("time_to_target_s")) for r in rows):
        columns.append("time_to_target_s")
    return columns
