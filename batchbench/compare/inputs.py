"""A run as compare sees it: the shared saved-run model (batchbench.savedrun) with each row of
results.csv kept as a small record of the cells compare uses (the file's other columns are not
kept), and of run.json's samples the per-repeat throughputs and their rounds. Two runs of
100,000 trials fit in a few hundred MiB."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

from batchbench.axes import AXES
from batchbench.compare.metrics import ROW_METRICS
from batchbench.results import ResultsFormatError, parse_value
from batchbench.savedrun import SavedRun, read_run

# The columns rows are matched by, in the order a label names them.
KEY_COLUMNS = ("model", "mode", "method", "batch_size", *AXES)
FIELDS = ("status", "error", "trial_id", "phase")
_KEY_AT = {name: i for i, name in enumerate(KEY_COLUMNS)}
_FIGURE_AT = {name: i for i, name in enumerate(ROW_METRICS)}

Run = SavedRun  # compare's runs are saved runs with lean rows


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


def lean_rows(header: list[str]):
    """The row format compare reads with: cells -> Row. The repeated texts (model names,
    statuses) are parsed once per file and shared by every row."""
    width = len(header)
    at = {name: i for i, name in reversed(list(enumerate(header)))}  # a repeated column: its first cell
    pad = any(name not in at for name in (*KEY_COLUMNS, *ROW_METRICS, *FIELDS))
    # a column the file lacks reads an empty cell appended to each line
    keys, figures, fields = (itemgetter(*[at.get(name, width) for name in names])
                             for names in (KEY_COLUMNS, ROW_METRICS, FIELDS))
    shared = lru_cache(maxsize=None)(parse_value)

    def row(cells: list[str]) -> Row:
        if pad:
            cells.append("")
        status, error, trial_id, phase = fields(cells)
        return Row(tuple(map(shared, KEY_COLUMNS, keys(cells))), shared("status", status), error or None,
                   trial_id or None, shared("phase", phase), _figures(figures(cells)))

    return row


def load_run(path: str | Path) -> SavedRun:
    """A run directory, a results.csv or a run.json -> a saved run with lean rows. Anything
    else, a results.csv without rows too, is a one-line error."""
    run = read_run(path, lean_rows)
    if not run.rows:
        raise ResultsFormatError(f"{run.csv_path}: batchbench results with no rows (did the sweep run any trial?)")
    return run
