"""A run as compare sees it: the rows of results.csv (only the columns it compares) and, when it
is there, run.json with its raw per-repeat throughputs.

Both files are read lean: results.csv is streamed and each row keeps, as a small record, the
cells compare uses; of run.json's samples only the per-repeat throughputs are kept. Two runs of
100,000 trials fit in a few hundred MiB."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

from batchbench.axes import AXES
from batchbench.compare.metrics import ROW_METRICS
from batchbench.results import RESULTS_CSV, RUN_JSON, ResultsFormatError, locate_run, parse_value, read_run_json

# The columns rows are matched by, in the order a label names them.
KEY_COLUMNS = ("model", "mode", "method", "batch_size", *AXES)
REQUIRED = ("batch_size", "status", "mode")
FIELDS = ("status", "error", "trial_id", "phase")
_KEY_AT = {name: i for i, name in enumerate(KEY_COLUMNS)}
_FIGURE_AT = {name: i for i, name in enumerate(ROW_METRICS)}


@dataclass(slots=True, eq=False)
class Row:
    """One trial of results.csv, as compare uses it (the file's other columns are not kept)."""

    key: tuple             # the KEY_COLUMNS values, in that order; None where a cell is empty
    status: str | None
    error: str | None
    trial_id: str | None
    phase: str | None
    figures: tuple         # the ROW_METRICS values, in that order: a float, None, or the text found

    def get(self, name: str, default: Any = None) -> Any:
        """A cell by its column name, as the row's dict would give it."""
        if name in _FIGURE_AT:
            value = self.figures[_FIGURE_AT[name]]
        elif name in _KEY_AT:
            value = self.key[_KEY_AT[name]]
        else:
            value = getattr(self, name) if name in FIELDS else None
        return default if value is None else value


@dataclass
class Run:
    label: str                     # the path as the user gave it
    csv_path: Path
    rows: list[Row]
    columns: list[str]             # results.csv's header
    record: dict[str, Any] | None  # run.json without its samples; None when there is none
    throughputs: dict[str, Any] = field(default_factory=dict, repr=False)  # trial id -> raw repeats
    warnings: list[str] = field(default_factory=list)
    json_path: Path | None = None

    @property
    def has_samples(self) -> bool:
        return self.record is not None

    def samples(self, trial_id: Any) -> list[float] | None:
        """The raw per-repeat throughputs of one trial, or None when run.json has none. A list
        that is not of numbers is bad input, named by its place in the file."""
        values = self.throughputs.get(trial_id if type(trial_id) is str else str(trial_id))
        if values is None:
            return None
        try:
            if type(values) is not list:
                raise TypeError
            sum(values)  # the cheapest way to find a string or a null among them
        except TypeError:
            raise ResultsFormatError(f"{self.json_path}: samples[{str(trial_id)[:80]!r}].throughput_sps: "
                                     "expected a list of numbers") from None
        return values

    @property
    def environment(self) -> dict[str, Any] | None:
        env = (self.record or {}).get("environment")
        return env if isinstance(env, dict) else None

    @property
    def recommendations(self) -> dict[str, Any]:
        summary = (self.record or {}).get("summary") or {}
        recs = summary.get("recommendations") if isinstance(summary, dict) else None
        return recs if isinstance(recs, dict) else {}

    @property
    def description(self) -> str:
        """Where the run came from, for the report's footer: path, run id, git commit."""
        parts = [self.label]
        if self.record:
            if self.record.get("run_id"):
                parts.append(str(self.record["run_id"]))
            git = self.record.get("git") or {}
            if isinstance(git, dict) and git.get("commit"):
                parts.append(f"commit {str(git['commit'])[:10]}" + (" (dirty)" if git.get("dirty") else ""))
        return ", ".join(parts)


def _read_record(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """run.json without its samples, and trial id -> the raw per-repeat throughputs (the other
    sample lists, per-step times, can be large: they are let go at once)."""
    try:
        record = read_run_json(path)
    except (RecursionError, ValueError, MemoryError) as exc:  # the reader's own checks missed it
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200] or type(exc).__name__
        raise ResultsFormatError(f"{path}: cannot be read as batchbench run.json ({reason})") from None
    samples = record.pop("samples", None) or {}
    if not isinstance(samples, dict):
        raise ResultsFormatError(f"{path}: samples: expected a mapping of trial ids")
    try:
        return record, {str(tid): rec.get("throughput_sps") for tid, rec in samples.items()}
    except AttributeError:
        tid = next(tid for tid, rec in samples.items() if not isinstance(rec, dict))
        raise ResultsFormatError(f"{path}: samples[{str(tid)[:80]!r}]: expected a mapping of sample lists") from None


def _figure(text: str) -> Any:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return parse_value("", text)  # true/false, or the text itself: not a number


def _figures(texts: tuple[str, ...]) -> tuple:
    """A row's figure cells -> values. The common rows take one C loop: every figure there, or
    all but peak_device_mib (last; empty on a CPU)."""
    try:
        if "" not in texts:
            return tuple(map(float, texts))
        if texts[-1] == "" and texts.count("") == 1:
            return (*map(float, texts[:-1]), None)
    except ValueError:
        pass
    return tuple(map(_figure, texts))


def _read_rows(path: Path) -> tuple[list[str], list[Row], list[str]]:
    """results.csv -> (header, rows, warnings). Streamed: the file is never held whole, and the
    repeated texts (model names, statuses) are parsed once and shared by every row."""
    csv.field_size_limit(2**31 - 1)
    rows: list[Row] = []
    skipped: list[int] = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or not set(REQUIRED) <= set(header):
            raise ResultsFormatError(f"{path}: not a batchbench results file (no batch_size, status and mode columns)")
        width = len(header)
        at = {name: i for i, name in reversed(list(enumerate(header)))}  # a repeated column: its first cell
        pad = any(name not in at for name in (*KEY_COLUMNS, *ROW_METRICS, *FIELDS))
        # a column the file lacks reads an empty cell appended to each line
        keys, figures, fields = (itemgetter(*[at.get(name, width) for name in names])
                                 for names in (KEY_COLUMNS, ROW_METRICS, FIELDS))
        shared = lru_cache(maxsize=None)(parse_value)
        for cells in reader:
            if len(cells) != width:
                if cells:
                    skipped.append(reader.line_num)
                continue
            if pad:
                cells.append("")
            status, error, trial_id, phase = fields(cells)
            rows.append(Row(tuple(map(shared, KEY_COLUMNS, keys(cells))), shared("status", status), error or None,
                            trial_id or None, shared("phase", phase), _figures(figures(cells))))
    warnings = []
    if skipped:
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        warnings.append(f"{path}: line {skipped[0]}{more} skipped: not as many cells as the header "
                        "(a damaged or hand-edited file)")
    return header, rows, warnings


def load_run(path: str | Path) -> Run:
    """A run directory, a results.csv or a run.json -> Run. Anything else is a one-line error."""
    given = Path(path)
    if not given.exists():
        raise ResultsFormatError(f"{path}: no such file or directory")
    if given.is_file() and given.name == RUN_JSON:
        given = given.parent
    if given.is_dir() and not (given / RESULTS_CSV).exists():
        raise ResultsFormatError(f"{path}: not a batchbench run directory (no {RESULTS_CSV} in it)")
    csv_path, json_path = locate_run(given)
    # run.json first: its parse is the largest transient, better held before the rows are.
    record, throughputs = _read_record(json_path) if json_path else (None, {})
    try:
        header, rows, warnings = _read_rows(csv_path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ResultsFormatError(f"{csv_path}: not a batchbench results file ({str(exc)[:200]})") from None
    except OSError as exc:
        raise ResultsFormatError(f"{csv_path}: cannot be read ({exc.strerror or exc})") from None
    if not rows:
        raise ResultsFormatError(f"{csv_path}: batchbench results with no rows (did the sweep run any trial?)")
    return Run(str(path), csv_path, rows, header, record, throughputs, warnings, json_path)
