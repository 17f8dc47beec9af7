"""`batchbench merge`: the shards of one sweep (`--shard I/N`, run on many machines) made into one
run folder, as if one sweep had run them all: results.csv with every row, run.json with the
summary and recommendations computed again over all rows by the sweep's own code
(summary.sweep_summary), the trial records and logs, and the plots and report.

The inputs must have the same measured settings (run.json's config_hash: relative paths and
data digests, never --out, --shard or where the shard ran). A trial in two inputs is refused
unless --prefer newest says which to keep; a planned trial in no input is a warning that names
it (a shard that never ran or did not finish). Never imports TensorFlow."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchbench.config import Config, config_from_dict, diff_settings
from batchbench.errors import BatchbenchError, ConfigError, OutputError
from batchbench.plan import Trial, build_groups
from batchbench.recommend import group_key
from batchbench.results import RESULTS_CSV, RUN_JSON, ResultsWriter, finite, read_run_json, write_json_atomic
from batchbench.rounds import interval_of, precision_note, settled
from batchbench.rundir import RunLock, make_run_dir, new_run_id, now_iso
from batchbench.runfiles import write_atomic
from batchbench.savedrun import SavedRun, read_run
from batchbench.shard import Shard, shard_points
from batchbench.summary import sweep_summary
from batchbench.version import RESULTS_SCHEMA_VERSION, __version__

PREFER = ("newest",)
_RECORD = re.compile(r"^(?P<trial>.+)-r\d+\.(?:result\.json|log)$")


@dataclass
class Input:
    """One input: its saved run, its full run.json and the shard it says it is."""

    run: SavedRun
    record: dict[str, Any]
    shard: Shard | None

    @property
    def label(self) -> str:
        return f"{self.run.label} (shard {self.shard})" if self.shard else self.run.label


@dataclass
class MergeOutcome:
    run_dir: Path
    rows: list[dict]
    summary: dict
    warnings: list[str] = field(default_factory=list)


def _read(path: str | Path) -> Input:
    folder = Path(path)
    if folder.is_dir() and (folder / RUN_JSON).exists() and not (folder / RESULTS_CSV).exists():
        # a shard with no points of its own (more shards than points) has no rows to write
        run = SavedRun(str(path), folder / RESULTS_CSV, [], [], {}, folder / RUN_JSON)
    else:
        run = read_run(path, samples=False)  # rows and checks from savedrun; the full samples below
    if run.json_path is None:
        raise BatchbenchError(f"{path}: no {RUN_JSON} beside {RESULTS_CSV}: merge needs each shard's run.json "
                              "(its settings hash, samples and summary)")
    record = read_run_json(run.json_path)
    for key in ("config_hash", "config_resolved"):
        if not record.get(key):
            raise BatchbenchError(f"{run.json_path}: has no {key}, so its settings cannot be checked against the "
                                  "other shards")
    return Input(run, record, Shard.from_record(record.get("shard")))


def _check_same_settings(inputs: list[Input]) -> None:
    first = inputs[0]
    for other in inputs[1:]:
        if other.record["config_hash"] == first.record["config_hash"]:
            continue
        changed = diff_settings(first.record.get("measured_settings") or {}, other.record.get("measured_settings") or {})
        what = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "") if changed \
            else f"hash {first.record['config_hash']} there, {other.record['config_hash']} here"
        raise BatchbenchError(f"{other.run.label}: its measured settings differ from {first.run.label}'s ({what}); "
                              "merge takes shards of one sweep: the same config, data and options")


def _finished(row: dict, source: Input) -> str:
    return str(row.get("finished_at") or source.record.get("ended_at") or source.record.get("started_at") or "")


def _choose(inputs: list[Input], prefer: str | None) -> tuple[dict[str, tuple[Input, dict]], list[str]]:
    """(trial id -> (the input it comes from, its row), the warning about trials in two inputs).
    A trial in two inputs is an error unless prefer == "newest": then the row that finished
    last wins (the later input on a tie)."""
    chosen: dict[str, tuple[Input, dict]] = {}
    overlap: dict[str, list[str]] = {}
    for source in inputs:
        for row in source.run.rows:
            tid = str(row.get("trial_id") or "")
            if not tid:
                raise BatchbenchError(f"{source.run.csv_path}: a row has no trial_id, so it cannot be merged")
            if tid in chosen:
                overlap.setdefault(tid, [chosen[tid][0].run.label]).append(source.run.label)
                if prefer != "newest" or _finished(row, source) < _finished(*reversed(chosen[tid])):
                    continue
            chosen[tid] = (source, row)
    if not overlap:
        return chosen, []
    listed = ", ".join(f"{tid} (in {' and '.join(where)})" for tid, where in list(overlap.items())[:4])
    more = f" and {len(overlap) - 4} more" if len(overlap) > 4 else ""
    if prefer != "newest":
        raise BatchbenchError(f"{len(overlap)} trial(s) are in more than one input: {listed}{more}; each trial must "
                              "come from one shard (pass --prefer newest to keep the one that finished last)")
    return chosen, [f"{len(overlap)} trial(s) are in more than one input: {listed}{more}; kept the one that "
                    "finished last (--prefer newest)"]


def _config(first: Input) -> Config:
    record = first.record
    return config_from_dict(record["config_resolved"], source=record.get("config_file") or str(first.run.json_path),
                            base_dir=record.get("base_dir") or ".")


def _missing(config: Config, inputs: list[Input], present: set[str]) -> list[str]:
    """A warning per shard (of the inputs' partition) whose planned trials are in no input."""
    groups = build_groups(config)
    planned = [Trial(g, b).trial_id for g in groups for b in sorted(config.sweep.batch_sizes)]
    lost = [t for t in planned if t not in present]
    if not lost:
        return []
    counts = sorted({s.shard.count for s in inputs if s.shard})
    out = []
    if len(counts) == 1:
        count = counts[0]
        for index in range(1, count + 1):
            theirs = [Trial(g, b).trial_id for g, sizes in shard_points(groups, config.sweep.batch_sizes,
                                                                        Shard(index, count)) for b in sizes]
            gone = [t for t in theirs if t in lost]
            if gone:
                given = any(s.shard and s.shard.index == index for s in inputs)
                why = "did not finish" if given else "is not among the inputs"
                out.append(f"shard {index}/{count} {why}: {len(gone)} of its {len(theirs)} planned trial(s) are in "
                           f"no input ({_listed(gone)})")
        return out
    return [f"{len(lost)} of {len(planned)} planned trial(s) are in no input ({_listed(lost)})"]


def _listed(ids: list[str], most: int = 6) -> str:
    return ", ".join(ids[:most]) + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _status(source: Input) -> str:
    """A run's status; an earlier merge's is its shards' (what it lacked is checked again here)."""
    merged = source.record.get("merged_from")
    if isinstance(merged, list):
        return next((str(m.get("status")) for m in merged if m.get("status") != "complete"), "complete")
    return str(source.record.get("status"))


def _environment_warning(inputs: list[Input]) -> list[str]:
    from batchbench.compare.environment import FIELDS, describe

    first = describe(inputs[0].record.get("environment"))
    out = []
    for other in inputs[1:]:
        theirs = describe(other.record.get("environment"))
        differ = [f"{label} {first.get(key)!r} vs {theirs.get(key)!r}" for key, label in FIELDS
                  if first.get(key) is not None and theirs.get(key) is not None and first[key] != theirs[key]]
        if differ:
            out.append(f"{other.label} ran in another environment than {inputs[0].label} ({'; '.join(differ)}): "
                       "its figures are not comparable with the others'")
    return out


def _summary_inputs(inputs: list[Input]) -> tuple[dict, dict | None, list[str], dict, list[str]]:
    """(frontier, noise scale, warnings, noisy, unstable) over the inputs. The noise scale is
    shard 1's (a sweep-level job, run there only); a warning every input gave is said once,
    one only some gave is prefixed with the input it came from."""
    frontier: dict = {}
    noisy: dict = {}
    unstable: list[str] = []
    said: dict[str, list[str]] = {}
    for source in sorted(inputs, key=lambda s: str(s.record.get("ended_at") or "")):  # the newest search wins
        saved = source.record.get("summary_inputs") or {}
        frontier.update(saved.get("frontier") or {})
        noisy.update(saved.get("noisy") or {})
        unstable += [u for u in saved.get("unstable") or [] if u not in unstable]
        for warning in saved.get("warnings") or []:
            said.setdefault(str(warning), []).append(source.label)
    warnings = [w if len(where) == len(inputs) else f"{', '.join(where)}: {w}" for w, where in said.items()]
    firsts = [s for s in inputs if s.shard and s.shard.index == 1] + inputs
    noise = next((s.record["noise_scale"] for s in firsts if s.record.get("noise_scale")), None)
    return frontier, noise, warnings, noisy, unstable


def _order(config: Config, chosen: dict[str, tuple[Input, dict]]) -> list[dict]:
    """Rows in the order an unsharded sweep writes them: every group's ladder (group by group,
    by batch size), then each group's search trials in the order they ran."""
    varying = config.varying_axes()
    groups = [g.key for g in build_groups(config)]
    position = {tid: n for n, tid in enumerate(chosen)}

    def key(item: tuple[str, tuple[Input, dict]]):
        tid, (_, row) = item
        gk = group_key(row, varying)
        ladder = row.get("phase") in (None, "", "ladder")
        return (not ladder, groups.index(gk) if gk in groups else len(groups),
                row["batch_size"] if ladder else position[tid])

    return [row for _, (_, row) in sorted(chosen.items(), key=key)]


def _prepare_out(out: Path, inputs: list[Input]) -> RunLock:
    for source in inputs:
        if source.run.path.resolve() == out.resolve():
            raise ConfigError(f"{out} is one of the inputs; merge into a new folder", key="--out")
    make_run_dir(out)
    lock = RunLock.acquire(out, key="--out")
    try:
        if (out / RESULTS_CSV).exists():
            previous = (out / RUN_JSON).exists() and read_run_json(out / RUN_JSON).get("merged_from")
            if not previous:
                raise ConfigError(f"{out} already holds results that no merge wrote; choose another --out", key="--out")
            # An earlier merge (a shard came late): replaced whole, nothing of it kept.
            (out / RESULTS_CSV).unlink()
            for path in (out / "trials").iterdir():
                if path.is_file() and not path.is_symlink():
                    path.unlink()
    except BaseException:
        lock.release()
        raise
    return lock


def _copy_trial_files(inputs: list[Input], chosen: dict[str, tuple[Input, dict]], noise_from: Input | None,
                      out: Path) -> None:
    """Each kept trial's records and logs from the input it came from; each predict group's
    consistency reference and the sweep-level logs once."""
    copied: set[str] = set()
    for source in inputs:
        folder = source.run.path / "trials"
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.is_symlink() or path.name in copied:
                continue
            match = _RECORD.match(path.name)
            if match:
                keep = chosen.get(match["trial"], (None,))[0] is source
            elif path.name.startswith("reference-") and path.suffix == ".npy":
                keep = True
            elif path.name in ("noise-scale.log", "preflight.log"):
                keep = source is (noise_from or inputs[0])
            else:
                keep = False
            if keep:
                write_atomic(out / "trials" / path.name, path.read_bytes(), fsync=False)
                copied.add(path.name)


def merge_runs(run_dirs: list[str | Path], out: str | Path, prefer: str | None = None) -> MergeOutcome:
    """The shards in run_dirs as one run folder in out (see the module's doc)."""
    if not run_dirs:
        raise ConfigError("give the run folders of the shards to merge", key="RUN_DIR")
    if prefer is not None and prefer not in PREFER:
        raise ConfigError(f"got {prefer!r}, expected {' or '.join(PREFER)}", key="--prefer")
    out = Path(out)
    inputs = [_read(path) for path in run_dirs]  # every input checked before anything is written
    _check_same_settings(inputs)
    config = _config(inputs[0])
    chosen, preferred = _choose(inputs, prefer)
    rows = _order(config, chosen)
    missing = _missing(config, inputs, set(chosen))
    warnings = missing + preferred + _environment_warning(inputs)
    unfinished = [s for s in inputs if _status(s) != "complete"]
    for source in unfinished:
        warnings.append(f"{source.label} did not finish (status {_status(source)}): finish it with "
                        f"batchbench sweep --resume {source.run.path}, then merge again")
    frontier, noise, shard_warnings, noisy, unstable = _summary_inputs(inputs)
    noise_from = next((s for s in inputs if s.record.get("noise_scale") == noise and noise is not None), None)
    samples: dict[str, Any] = {}
    rounds: dict[str, Any] = {}
    for tid, (source, _) in chosen.items():
        if tid in (source.record.get("samples") or {}):
            samples[tid] = source.record["samples"][tid]
        if tid in (source.record.get("rounds") or {}):
            rounds[tid] = source.record["rounds"][tid]

    summary = sweep_summary(config, rows, frontier, noise, warnings + shard_warnings, noisy, unstable, str(out))
    intervals = {tid: interval_of(rounds[tid]) for tid, (_, row) in chosen.items()
                 if tid in rounds and row.get("phase") in (None, "", "ladder")}
    note, _ = precision_note(intervals, config.sweep.rounds,
                             settled(rows, config.varying_axes(), config.sweep.slo_ms))
    if note:
        summary["rounds"] = note

    lock = _prepare_out(out, inputs)
    try:
        writer = ResultsWriter(out)
        writer.replace_all(rows)
        _copy_trial_files(inputs, chosen, noise_from, out)
        first = inputs[0].record
        record = {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "batchbench_version": __version__,
            "run_id": new_run_id(f"{config.name}-merged"),
            "name": first.get("name") or config.name,
            "status": "complete" if not (unfinished or missing) else "incomplete",
            "argv": sys.argv,
            **{k: first.get(k) for k in ("config_file", "base_dir", "config", "config_resolved", "config_hash",
                                         "measured_settings", "git", "environment", "model_info")},
            "started_at": min((s.record.get("started_at") or "" for s in inputs), default=None) or None,
            "ended_at": max((s.record.get("ended_at") or "" for s in inputs), default=None) or now_iso(),
            "samples": samples,
            "rounds": rounds,
            "noise_scale": noise,
            "shard": None,
            "merged_from": [{"run_dir": str(s.run.path), "run_id": s.record.get("run_id"),
                             "shard": s.shard.to_record() if s.shard else None, "status": s.record.get("status"),
                             "started_at": s.record.get("started_at"), "ended_at": s.record.get("ended_at"),
                             "trials": sum(1 for src, _ in chosen.values() if src is s),
                             "environment": s.record.get("environment")} for s in inputs],
            # the inputs' own warnings: merge's (missing shards, ...) are made again by a later merge
            "summary_inputs": {"frontier": frontier, "warnings": shard_warnings, "noisy": noisy,
                               "unstable": unstable},
            "summary": summary,
        }
        try:
            write_json_atomic(out / RUN_JSON, finite(record))
        except OSError as exc:
            raise OutputError(f"cannot write {out / RUN_JSON}: {exc.strerror or exc}") from None
    finally:
        lock.release()
    return MergeOutcome(out, rows, summary, summary.get("warnings") or [])


def merge_command(run_dirs: list[str], out: Path, prefer: str | None, plots: bool) -> int:
    """`batchbench merge`: merge, then the plots and report as `batchbench report` writes them,
    a line per warning, and where the merged run is."""
    from batchbench.report import write_run_report
    from batchbench.report.text import plain

    outcome = merge_runs(run_dirs, out, prefer)
    write_run_report(outcome.run_dir, plots=plots)
    for warning in outcome.warnings:
        print(f"warning: {plain(warning)}", file=sys.stderr)
    counts = ", ".join(f"{n} {k}" for k, n in outcome.summary.get("status_counts", {}).items())
    print(plain(f"merged {len(run_dirs)} run(s), {len(outcome.rows)} trial(s) ({counts}) into {outcome.run_dir}"),
          file=sys.stderr)
    return 0


__all__ = ["MergeOutcome", "merge_command", "merge_runs"]
