"""The results record: one row per point in results.csv (pooled over its rounds, replaced
atomically as rounds finish); run.json replaced atomically. Plain data, no TensorFlow.

A finished round-trial is first saved whole, row and raw samples together, as
``trials/<trial_id>-r<round>.result.json`` (one atomic file: the durable unit); results.csv
is made from those records. A crash or a full disk between the two loses nothing: resume
makes results.csv again from the records."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from batchbench.columns import BOOL_COLUMNS, COLUMNS, INT_COLUMNS, TEXT_COLUMNS
from batchbench.errors import BatchbenchError, OutputError
from batchbench.numbers import finite
from batchbench.runfiles import make_dir, open_append, open_read, refuse_symlink, write_atomic
from batchbench.version import RESULTS_SCHEMA_VERSION

__all__ = ["BOOL_COLUMNS", "COLUMNS", "INT_COLUMNS", "TEXT_COLUMNS", "RESULTS_CSV", "RUN_JSON", "ResultsFormatError",
           "ResultsWriter", "load_results", "load_trial_records", "locate_run", "read_rows", "read_run_json",
           "results_frame", "save_trial_record", "saved_row", "write_json_atomic", "finite", "dumps"]

# run.json versions this code reads. 1: raw samples only inside run.json; 2: also one
# trials/<id>.result.json per finished trial, and the measured settings beside the hash.
READABLE_SCHEMAS = (1, 2)
MAX_RUN_JSON_BYTES = 512 * 2**20
RESULTS_CSV = "results.csv"
RUN_JSON = "run.json"


class ResultsFormatError(BatchbenchError):
    """A file that is not batchbench results."""


def cell(value: Any) -> str:
    """A value as a CSV cell: empty for None, true/false, floats to 6 significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e15 else repr(value)
    return str(value)


def _line(values: Iterable[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([cell(v) for v in values])
    return buf.getvalue()


def parse_value(column: str, text: str) -> Any:
    """CSV text back to Python values (the inverse of cell)."""
    if text == "":
        return None
    if column in TEXT_COLUMNS and column != "jit_compile":
        return text
    if text in ("true", "false"):
        return text == "true"
    if column in INT_COLUMNS:
        try:
            return int(float(text))
        except (ValueError, OverflowError):
            return text
    try:
        return float(text)
    except ValueError:
        return text


def saved_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as results.csv reads it back (floats to the CSV's six significant digits): what an
    exporter sends while the sweep runs equals what it files from the saved run later."""
    return {k: parse_value(k, cell(v)) for k, v in row.items()}


def _records(path: Path, text: str, strict: bool) -> tuple[list[str], list[dict[str, Any]], bool]:
    """(header, rows, unterminated). A damaged line (more or fewer cells than the header) is
    an error when strict (resume must never drop a row silently), skipped otherwise. A last
    line without its newline is a write cut short when its cells are short (dropped: resume
    restores the row from its trial record), a whole row if not; either way the file needs
    rewriting before anything is appended (``unterminated``)."""
    unterminated = bool(text) and not text.endswith("\n")
    try:
        lines = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ResultsFormatError(f"{path}: not a readable CSV file ({exc})") from None
    if not lines:
        raise ResultsFormatError(f"{path}: empty, expected a batchbench results file")
    header = lines[0]
    if not {"batch_size", "status", "mode"} <= set(header):
        raise ResultsFormatError(f"{path}: not a batchbench results file (no batch_size, status and mode columns)")
    rows = []
    for number, cells in enumerate(lines[1:], start=2):
        if not cells:
            continue
        if len(cells) != len(header):
            if number == len(lines) and unterminated and len(cells) < len(header):
                break
            if strict:
                raise ResultsFormatError(f"{path}: line {number} has {len(cells)} cells, expected {len(header)} "
                                         "(edited by hand?); fix or remove that line, nothing was changed")
            continue
        rows.append({k: parse_value(k, v) for k, v in zip(header, cells)})
    return header, rows, unterminated


def _read_text(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as fh:  # reading changes nothing: links are fine
            return fh.read()
    except UnicodeDecodeError:
        raise ResultsFormatError(f"{path}: not UTF-8 text, expected a batchbench results file") from None
    except OSError as exc:
        raise ResultsFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_rows(path: Path, strict: bool = False) -> list[dict[str, Any]]:
    """results.csv -> list of dicts with typed values. Pure Python: no pandas needed."""
    path = Path(path)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    return _records(path, _read_text(path), strict)[1]


class ResultsWriter:
    """Appends one row per finished trial to results.csv and flushes it to disk at once. An
    existing file (resume) is validated before anything in it changes."""

    def __init__(self, run_dir: Path, fault_injector=None):
        self.path = Path(run_dir) / RESULTS_CSV
        self.columns = list(COLUMNS)
        self._fault = fault_injector
        refuse_symlink(self.path)
        if self.path.exists() and self.path.stat().st_size:
            header, rows, partial = _records(self.path, _read_text(self.path), strict=True)
            self.columns = header + [c for c in COLUMNS if c not in header]
            if partial or self.columns != header:
                self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        text = _line(self.columns) + "".join(_line(row.get(c) for c in self.columns) for row in rows)
        write_atomic(self.path, text)

    def replace_all(self, rows: list[dict[str, Any]]) -> None:
        """Every row at once, atomically: the pooled rows after another round-trial."""
        try:
            if self._fault:
                self._fault()
            for row in rows:
                self.columns += [k for k in row if k not in self.columns]
            self._rewrite(rows)
        except OSError as exc:
            raise OutputError(f"cannot write results to {self.path}: {exc.strerror or exc}") from None

    def rows(self) -> list[dict[str, Any]]:
        return read_rows(self.path, strict=True) if self.path.exists() and self.path.stat().st_size else []

    def append(self, row: dict[str, Any]) -> None:
        new = [k for k in row if k not in self.columns]
        try:
            if self._fault:
                self._fault()
            if new:
                # A column nobody knew at the start (e.g. val_<metric>): widen the file atomically.
                existing = self.rows()
                self.columns += new
                self._rewrite(existing)
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            with open_append(self.path) as fh:
                text = (_line(self.columns) if fresh else "") + _line(row.get(c) for c in self.columns)
                fh.write(text)  # one write per row: a crash leaves whole lines or a repairable tail
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OutputError(f"cannot write results to {self.path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- the durable unit
def _record_path(run_dir: Path, record_id: str) -> Path:
    return Path(run_dir) / "trials" / f"{record_id}.result.json"


def save_trial_record(run_dir: Path, record_id: str, row: dict[str, Any], samples: dict[str, Any] | None) -> None:
    """A finished round-trial's row and raw samples, as one atomic file, before the CSV row."""
    try:
        make_dir(Path(run_dir) / "trials")
        write_json_atomic(_record_path(run_dir, record_id), {"record_id": record_id, "row": row, "samples": samples})
    except OSError as exc:
        raise OutputError(f"cannot save the result of {record_id}: {exc.strerror or exc}") from None


def load_trial_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    """record_id -> {"record_id", "row", "samples"} for every readable record (a damaged one is
    ignored: its trial then runs again)."""
    out: dict[str, dict[str, Any]] = {}
    folder = Path(run_dir) / "trials"
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.result.json")):
        try:
            with open_read(path) as fh:
                data = json.load(fh)
        except (OSError, ValueError, RecursionError, BatchbenchError):
            continue
        if isinstance(data, dict) and isinstance(data.get("row"), dict) and data["row"].get("trial_id"):
            out[str(data.get("record_id") or data["row"]["trial_id"])] = data
    return out


def write_json_atomic(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, default=str, allow_nan=False) + "\n"
    write_atomic(Path(path), text)


# ---------------------------------------------------------------- reading runs
def results_frame(rows: list[dict[str, Any]]):
    """Rows -> the typed pandas DataFrame that load_results and run_sweep both return: every
    known column in the contract's order (then any others), integers as Int64, flags as
    boolean, text as string; ``method`` is "" for fit rows, never NaN, so pivots keep them."""
    import pandas as pd

    extra = [c for row in rows for c in row if c not in COLUMNS]
    columns = COLUMNS + list(dict.fromkeys(extra))
    frame = pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=columns)
    for column in columns:
        values = frame[column]
        if column in INT_COLUMNS:
            frame[column] = pd.to_numeric(values, errors="coerce").astype("Int64")
        elif column in BOOL_COLUMNS:
            frame[column] = values.map(lambda v: v if isinstance(v, bool) else pd.NA).astype("boolean")
        elif column in TEXT_COLUMNS:
            text = values.map(lambda v: pd.NA if _missing(v) else (str(v).lower() if isinstance(v, bool) else str(v)))
            frame[column] = text.astype("string")
        elif column in COLUMNS or values.map(lambda v: v is None or isinstance(v, (int, float))).all():
            frame[column] = pd.to_numeric(values, errors="coerce").astype("float64")
    frame["method"] = frame["method"].fillna("")
    return frame


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def load_results(path: str | Path):
    """A run directory or results.csv -> the typed DataFrame (for notebooks)."""
    path = Path(path)
    csv_path = path / RESULTS_CSV if path.is_dir() else path
    return results_frame(read_rows(csv_path))


def locate_run(path: str | Path) -> tuple[Path, Path | None]:
    """A run directory or a results.csv -> (results.csv, run.json or None)."""
    path = Path(path)
    csv_path = path / RESULTS_CSV if path.is_dir() else path
    if not csv_path.exists():
        raise ResultsFormatError(f"{path}: no {RESULTS_CSV} found")
    run_json = csv_path.parent / RUN_JSON
    return csv_path, run_json if run_json.exists() else None


def read_run_json(path: Path) -> dict[str, Any]:
    """run.json, checked: a readable size, plain JSON, a schema version this code reads."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_RUN_JSON_BYTES:
            raise ResultsFormatError(f"{path}: over {MAX_RUN_JSON_BYTES // 2**20} MiB, not a batchbench run.json")
        with open(path, encoding="utf-8") as fh:  # a linked run.json is read; it is replaced, never written through
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else \
            (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)[:200])
        raise ResultsFormatError(f"{path}: cannot be read as batchbench run.json ({reason})") from None
    except BatchbenchError as exc:
        raise ResultsFormatError(f"{path}: {exc.format_message()}") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ResultsFormatError(f"{path}: not a batchbench run.json (no schema_version)")
    version = data["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version not in READABLE_SCHEMAS:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > RESULTS_SCHEMA_VERSION
        hint = "written by a newer batchbench: upgrade" if newer else "not a schema this batchbench knows"
        raise ResultsFormatError(f"{path}: schema_version {str(version)[:20]!s}, expected "
                                 f"{' or '.join(map(str, READABLE_SCHEMAS))} ({hint})")
    for key, kind in (("environment", dict), ("samples", dict), ("summary", dict), ("config_resolved", dict)):
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise ResultsFormatError(f"{path}: {key}: got {type(data[key]).__name__}, expected a mapping")
    return data


def dumps(obj: Any) -> str:
    """The --json output: indented, NaN as null."""
    return json.dumps(finite(obj), indent=2, default=str)
