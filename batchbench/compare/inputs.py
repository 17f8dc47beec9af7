"""A run as compare sees it: the rows of results.csv and, when it is there, run.json."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchbench.results import RESULTS_CSV, RUN_JSON, ResultsFormatError, locate_run, read_rows, read_run_json


@dataclass
class Run:
    label: str                   # the path as the user gave it
    csv_path: Path
    rows: list[dict[str, Any]]
    columns: list[str]
    record: dict[str, Any] | None  # run.json; None when there is none beside results.csv

    @property
    def has_samples(self) -> bool:
        return self.record is not None

    def samples(self, trial_id: Any) -> list[float] | None:
        """The raw per-repeat throughputs of one trial, or None when run.json has none."""
        if self.record is None or trial_id is None:
            return None
        values = ((self.record.get("samples") or {}).get(str(trial_id)) or {}).get("throughput_sps")
        if not isinstance(values, list):
            return None
        return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]

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
    try:
        rows = read_rows(csv_path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ResultsFormatError(f"{csv_path}: not a batchbench results file ({exc})") from None
    except OSError as exc:
        raise ResultsFormatError(f"{csv_path}: cannot be read ({exc.strerror or exc})") from None
    if not rows:
        raise ResultsFormatError(f"{csv_path}: batchbench results with no rows (did the sweep run any trial?)")
    record = read_run_json(json_path) if json_path else None
    return Run(label=str(path), csv_path=csv_path, rows=rows, columns=list(rows[0]), record=record)
