"""A saved run, read back from its folder alone: results.csv, streamed row by row, and run.json
(when it is there) without its bulky sample lists. `batchbench compare` and `batchbench report`
both read runs through this module; each chooses only what a row becomes (`row_format`).

results.csv is never held whole: `iter_rows` hands out one row at a time, and a row format can
keep as little of it as it needs (compare keeps a small record of the cells it compares, so two
runs of 100,000 trials fit in a few hundred MiB). Of run.json's samples only the per-repeat
throughputs and the round of each repeat are kept; the per-step times, by far the largest part,
are let go at once."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchbench.axes import AXES
from batchbench.numbers import is_number
from batchbench.results import RESULTS_CSV, RUN_JSON, ResultsFormatError, locate_run, parse_value, read_run_json

MIB = 2**20
REQUIRED = ("batch_size", "status", "mode")

# A row format: given results.csv's header, the function that turns one line's cells into a row.
RowFormat = Callable[[list[str]], Callable[[list[str]], Any]]


def typed_rows(header: list[str]) -> Callable[[list[str]], dict[str, Any]]:
    """Each row as a dict of every column, typed as results.read_rows types them."""
    return lambda cells: {name: parse_value(name, text) for name, text in zip(header, cells)}


def iter_rows(path: str | Path, row_format: RowFormat = typed_rows, skipped: list[int] | None = None,
              header: list[str] | None = None) -> Iterator[Any]:
    """results.csv's rows, one at a time, as `row_format` makes them. A line with more or fewer
    cells than the header (a damaged or hand-edited file, a write cut short) is passed over, its
    line number added to `skipped`; `header` receives the header. A file that is not batchbench
    results is a ResultsFormatError, one line."""
    path = Path(path)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with open(path, encoding="utf-8", newline="") as fh:  # reading changes nothing: links are fine
            reader = csv.reader(fh)
            columns = next(reader, None)
            if not columns:
                raise ResultsFormatError(f"{path}: empty, not a batchbench results file")
            if not set(REQUIRED) <= set(columns):
                raise ResultsFormatError(f"{path}: not a batchbench results file (no batch_size, status and "
                                         "mode columns)")
            if header is not None:
                header[:] = columns
            make, width = row_format(columns), len(columns)
            for cells in reader:
                if len(cells) != width:
                    if cells and skipped is not None:
                        skipped.append(reader.line_num)
                    continue
                yield make(cells)
    except UnicodeDecodeError:
        raise ResultsFormatError(f"{path}: not a batchbench results file (not UTF-8 text)") from None
    except csv.Error as exc:
        raise ResultsFormatError(f"{path}: not a batchbench results file ({str(exc)[:200]})") from None
    except OSError as exc:
        raise ResultsFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_record(path: Path, samples: bool = True) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """run.json without its samples; trial id -> its raw per-repeat throughputs; trial id -> the
    round of each repeat (only for trials that name their rounds). With samples=False the
    samples are dropped unread."""
    try:
        record = read_run_json(path)
    except (RecursionError, ValueError, OverflowError, MemoryError) as exc:  # the reader's own checks missed it
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200] or type(exc).__name__
        raise ResultsFormatError(f"{path}: cannot be read as batchbench run.json ({reason})") from None
    found = record.pop("samples", None) or {}
    if not samples:
        return record, {}, {}
    if not isinstance(found, dict):
        raise ResultsFormatError(f"{path}: samples: expected a mapping of trial ids")
    try:
        throughputs = {str(tid): rec.get("throughput_sps") for tid, rec in found.items()}
        rounds = {str(tid): rec["round"] for tid, rec in found.items() if rec.get("round") is not None}
    except AttributeError:
        tid = next(tid for tid, rec in found.items() if not isinstance(rec, dict))
        raise ResultsFormatError(f"{path}: samples[{str(tid)[:80]!r}]: expected a mapping of sample lists") from None
    return record, throughputs, rounds


def group_rows(rows: list[dict], varying: list[str]) -> dict[str, list[dict]]:
    """Rows by group key, each group in batch-size order (a search's confirming pass last)."""
    from batchbench.recommend import group_key

    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(group_key(row, varying), []).append(row)
    return {k: sorted(v, key=lambda r: (r["batch_size"], r.get("phase") == "confirm")) for k, v in groups.items()}


@dataclass(eq=False)
class SavedRun:
    """One saved run; every field comes from its files, none from the model or the data."""

    label: str                     # the path as the user gave it
    csv_path: Path
    rows: list[Any]                # as the row format made them (report: dicts of every column)
    columns: list[str]             # results.csv's header
    record: dict[str, Any] = field(default_factory=dict)  # run.json without its samples; {} without one
    json_path: Path | None = None
    throughputs: dict[str, Any] = field(default_factory=dict, repr=False)  # trial id -> raw repeats
    rounds: dict[str, Any] = field(default_factory=dict, repr=False)       # trial id -> round of each repeat
    warnings: list[str] = field(default_factory=list)

    # ---------------------------------------------------------------- the raw samples
    @property
    def has_samples(self) -> bool:
        """Whether run.json is there: its samples are what a significance test needs."""
        return self.json_path is not None

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

    def sample_rounds(self, trial_id: Any, count: int) -> list[int] | None:
        """The round index of each of a trial's `count` repeats, or None when run.json does not
        say (a run saved before rounds: one round). A list that is not as many whole numbers
        from 0 as there are repeats is bad input."""
        values = self.rounds.get(trial_id if type(trial_id) is str else str(trial_id))
        if values is None:
            return None
        if type(values) is not list or len(values) != count or \
                not all(type(v) is int and v >= 0 for v in values):
            raise ResultsFormatError(f"{self.json_path}: samples[{str(trial_id)[:80]!r}].round: expected a list "
                                     f"of round numbers from 0, one for each of its {count} throughputs")
        return values

    # ---------------------------------------------------------------- what run.json says
    @property
    def path(self) -> Path:
        """The run folder."""
        return self.csv_path.parent

    @property
    def environment(self) -> dict[str, Any]:
        env = self.record.get("environment")
        return env if isinstance(env, dict) else {}

    @property
    def recommendations(self) -> dict[str, Any]:
        summary = self.record.get("summary") or {}
        recs = summary.get("recommendations") if isinstance(summary, dict) else None
        return recs if isinstance(recs, dict) else {}

    @property
    def description(self) -> str:
        """Where the run came from, for a footer: path, run id, git commit."""
        parts = [self.label]
        if self.record.get("run_id"):
            parts.append(str(self.record["run_id"]))
        git = self.record.get("git") or {}
        if isinstance(git, dict) and git.get("commit"):
            parts.append(f"commit {str(git['commit'])[:10]}" + (" (dirty)" if git.get("dirty") else ""))
        return ", ".join(parts)

    @property
    def name(self) -> str:
        names = [r.get("name") for r in self.rows if r.get("name")]
        return str(self.record.get("name") or (names[0] if names else self.path.name))

    @property
    def sweep_config(self) -> dict[str, Any]:
        return (self.record.get("config_resolved") or {}).get("sweep") or {}

    @property
    def device(self) -> str:
        """The GPU the Keras backend used, else the CPU model, else what the rows say."""
        env = self.environment
        nvml_gpus = (env.get("nvml") or {}).get("gpus") or []
        if _framework_saw_a_gpu(env.get("framework") or {}) and nvml_gpus:
            return str(nvml_gpus[0].get("name"))
        if env.get("cpu_model"):
            return f"CPU {env['cpu_model']}"
        devices = sorted({str(r.get("device")) for r in self.rows if r.get("device")})
        return ", ".join(devices) or "unknown device"

    @property
    def name_on_device(self) -> str:
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
        for gpu in (self.environment.get("nvml") or {}).get("gpus") or []:
            if is_number(gpu.get("memory_total_mib")):
                return f"{gpu.get('name') or 'GPU'} memory", float(gpu["memory_total_mib"])
        return None

    @property
    def summary(self) -> dict[str, Any]:
        """The saved summary (it alone knows the largest-batch search), else one computed from the rows."""
        saved = self.record.get("summary")
        if isinstance(saved, dict) and saved.get("recommendations") is not None:
            return saved
        from batchbench.recommend import summarize

        return summarize(self.rows, self.varying, self.slo_ms, self.percentile)

    def groups(self) -> dict[str, list[dict[str, Any]]]:
        return group_rows(self.rows, self.varying)


def read_run(path: str | Path, row_format: RowFormat = typed_rows, samples: bool = True) -> SavedRun:
    """A run directory, its results.csv or its run.json -> SavedRun, run.json read first (its
    parse is the largest transient, better held before the rows are). Anything else is a
    one-line ResultsFormatError: damaged files are bad input, never a traceback."""
    given = Path(path)
    if not given.exists():
        raise ResultsFormatError(f"{path}: no such file or directory")
    if given.is_file() and given.name == RUN_JSON:
        given = given.parent
    if given.is_dir() and not (given / RESULTS_CSV).exists():
        raise ResultsFormatError(f"{path}: not a batchbench run directory (no {RESULTS_CSV} in it)")
    csv_path, json_path = locate_run(given)
    record, throughputs, rounds = read_record(json_path, samples) if json_path else ({}, {}, {})
    header: list[str] = []
    skipped: list[int] = []
    try:
        rows = list(iter_rows(csv_path, row_format, skipped, header))
    except (UnicodeDecodeError, csv.Error, ValueError, OverflowError) as exc:  # from a row format
        raise ResultsFormatError(f"{csv_path}: cannot be read as batchbench results ({str(exc)[:200]})") from None
    warnings = []
    if skipped:
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        warnings.append(f"{csv_path}: line {skipped[0]}{more} skipped: not as many cells as the header "
                        "(a damaged or hand-edited file)")
    return SavedRun(str(path), csv_path, rows, header, record, json_path, throughputs, rounds, warnings)


def _framework_saw_a_gpu(fw: dict[str, Any]) -> bool:
    """Whether the backend's framework listed a GPU: TensorFlow's devices (the TensorFlow
    backend's; another backend leaves TensorFlow unimported), JAX's or torch's."""
    tf_gpus = [d for d in fw.get("tf_devices") or [] if d.get("type") == "GPU"]
    jax_gpus = [d for d in fw.get("jax_devices") or [] if str(d).startswith(("cuda", "gpu", "rocm"))]
    return bool(tf_gpus or jax_gpus or fw.get("torch_devices"))
