"""The results record: one row per trial, appended and flushed at once; run.json replaced
atomically. Plain data, no TensorFlow."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from batchbench.errors import BatchbenchError, OutputError

STATUSES = ("ok", "oom", "error", "timeout", "skipped")

# The contract (DESIGN.md) first, then the columns later capabilities fill in.
COLUMNS = [
    "run_id", "name", "model", "mode", "method", "batch_size", "status", "error",
    "throughput_sps", "throughput_sps_min", "throughput_sps_max",
    "step_ms_median", "step_ms_p90", "step_ms_p95", "step_ms_p99", "step_ms_max",
    "sample_ms", "first_step_s", "wall_s", "peak_host_mib", "peak_device_mib",
    "repeats", "params", "stable",
    "trial_id", "phase", "steps", "samples", "timed_s", "device", "oom_kind", "headroom_mib",
    "max_abs_diff", "consistent",
    "precision", "jit_compile", "backend", "strategy", "replicas", "per_replica_batch_size",
    "processes", "devices_per_process", "per_process_batch_size",
    "final_loss", "val_loss", "learning_rate", "updates", "epochs", "samples_seen", "train_time_s",
    "target", "time_to_target_s", "epochs_to_target", "bn_small_batch",
    "energy_j", "j_per_1k", "nvml_process_mib",
]

RESULTS_CSV = "results.csv"
RUN_JSON = "run.json"


class ResultsFormatError(BatchbenchError):
    """A file that is not batchbench results."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e15 else repr(value)
    return str(value)


def _line(values: Iterable[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_cell(v) for v in values])
    return buf.getvalue()


def repair_partial_line(path: Path) -> None:
    """A controller killed mid-write can leave a line without its newline: drop it."""
    if not path.exists():
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


class ResultsWriter:
    """Appends one row per finished trial to results.csv and flushes it to disk at once."""

    def __init__(self, run_dir: Path, fault_injector=None):
        self.path = Path(run_dir) / RESULTS_CSV
        repair_partial_line(self.path)
        self.columns = list(COLUMNS)
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, newline="") as fh:
                header = next(csv.reader(fh), [])
            self.columns = header + [c for c in COLUMNS if c not in header]
            if self.columns != header:
                self._rewrite(read_rows(self.path))
        self._fault = fault_injector

    def _rewrite(self, rows: list[dict]) -> None:
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as fh:
            fh.write(_line(self.columns))
            for row in rows:
                fh.write(_line(row.get(c, "") for c in self.columns))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def append(self, row: dict[str, Any]) -> None:
        new = [k for k in row if k not in self.columns]
        try:
            if self._fault:
                self._fault()
            if new:
                # A column nobody knew at the start (e.g. val_<metric>): widen the file atomically.
                existing = read_rows(self.path) if self.path.exists() else []
                self.columns += new
                self._rewrite(existing)
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            with open(self.path, "a", newline="") as fh:
                text = (_line(self.columns) if fresh else "") + _line(row.get(c) for c in self.columns)
                fh.write(text)  # one write per row: a crash leaves whole lines or a repairable tail
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OutputError(f"cannot write results to {self.path}: {exc.strerror or exc}") from None


def write_json_atomic(path: Path, obj: Any) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".run.", suffix=".json.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, default=str, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def parse_value(column: str, text: str) -> Any:
    """CSV text back to Python values (the inverse of _cell)."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    if column in ("batch_size", "repeats", "params", "steps", "samples", "replicas", "processes",
                  "devices_per_process", "per_process_batch_size", "per_replica_batch_size", "updates",
                  "epochs", "epochs_to_target"):
        try:
            return int(float(text))
        except ValueError:
            return text
    try:
        return float(text)
    except ValueError:
        return text


def read_rows(path: Path) -> list[dict[str, Any]]:
    """results.csv -> list of dicts with typed values. Pure Python: no pandas needed."""
    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"batch_size", "status", "mode"} <= set(reader.fieldnames):
            raise ResultsFormatError(f"{path}: not a batchbench results file "
                                     "(no batch_size, status and mode columns)")
        rows = []
        for raw in reader:
            if None in raw or None in raw.values():  # more or fewer cells than the header: damaged
                continue
            rows.append({k: parse_value(k, v or "") for k, v in raw.items()})
        return rows


def load_results(path: str | Path):
    """A run directory or results.csv -> pandas DataFrame (for notebooks)."""
    import pandas as pd

    path = Path(path)
    csv_path = path / RESULTS_CSV if path.is_dir() else path
    return pd.DataFrame(read_rows(csv_path))


def locate_run(path: str | Path) -> tuple[Path, Path | None]:
    """A run directory or a results.csv -> (results.csv, run.json or None)."""
    path = Path(path)
    csv_path = path / RESULTS_CSV if path.is_dir() else path
    if not csv_path.exists():
        raise ResultsFormatError(f"{path}: no {RESULTS_CSV} found")
    run_json = csv_path.parent / RUN_JSON
    return csv_path, run_json if run_json.exists() else None


def read_run_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsFormatError(f"{path}: cannot be read as batchbench run.json ({exc})") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ResultsFormatError(f"{path}: not a batchbench run.json (no schema_version)")
    return data
