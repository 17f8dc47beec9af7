"""What a tracker is sent, in one place: a point (one results.csv row) split into what names
it (params), what was measured (metrics) and what is said about it (tags); a run (run.json)
into the parent's params, tags and artifacts. Every exporter takes these records as they are;
none computes a figure, and a value missing from the row is missing here too."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchbench.axes import AXES
from batchbench.numbers import is_number
from batchbench.results import RESULTS_CSV, RUN_JSON, saved_row
from batchbench.savedrun import SavedRun, read_record, read_run

# A point's identity: the hyperparameters a dashboard varies (axes as the strings the group keys use).
IDENTITY = ("mode", "method", "batch_size", *AXES, "sequence_length")
# Numbers that say how a trial was set up, not what it measured: tags, not metrics.
SETUP = ("params", "replicas", "per_replica_batch_size", "processes", "devices_per_process",
         "per_process_batch_size", "learning_rate")
# The run's own columns: on the parent, not on every child.
RUN_COLUMNS = ("run_id", "name", "model")
ARTIFACT_SUFFIXES = (".csv", ".json", ".md", ".html", ".png")
MAX_TEXT = 5000  # MLflow keeps tag values up to 8000 characters; a long error is cut well before


@dataclass(frozen=True)
class Point:
    """One point of a sweep, as results.csv holds it."""

    trial_id: str
    status: str
    params: dict[str, Any]        # identity values: numbers (batch_size) or text (mode, axes)
    metrics: dict[str, float]     # every finite figure of the row
    tags: dict[str, str]          # status, error and the rest of the row's words
    step: int                     # rounds that measured it: the metrics' step, so later rounds add history


@dataclass
class RunRecord:
    """One run folder, as run.json (and results.csv) describe it."""

    run_dir: Path
    run_id: str
    name: str
    status: str                   # run.json's: running, complete, interrupted, failed
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    recommendations: dict[str, str] = field(default_factory=dict)
    artifacts: list[Path] = field(default_factory=list)


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    value = str(value)
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT - 3] + "..."


def point_of(row: dict[str, Any], identity: tuple[str, ...] = IDENTITY, step: str = "rounds") -> Point:
    """A results row (in memory or read back) -> Point. In memory a row is first made what
    results.csv will hold, so a point sent mid-sweep and the same point filed later are equal.
    `step`: the column that counts what measured the point (a sweep's rounds)."""
    row = saved_row(row)
    params: dict[str, Any] = {}
    for key in identity:
        value = row.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 100 qps, not 100.0: a name, read back from the CSV as a float
        params[key] = value if is_number(value) else text(value)
    metrics = {k: float(v) for k, v in row.items()
               if k not in identity and k not in SETUP and is_number(v)}
    words = {k: v for k, v in row.items() if k in SETUP or isinstance(v, (str, bool))}  # not NaN or inf
    tags = {k: text(v) for k, v in words.items()
            if k not in identity and k not in RUN_COLUMNS and v is not None and v != ""}
    trial_id = str(row.get("trial_id") or "-".join(str(params[k]) for k in params))
    rounds = row.get(step)
    if isinstance(rounds, float) and rounds.is_integer():
        rounds = int(rounds)  # a column results.csv does not know is saved as a float
    return Point(trial_id, str(row.get("status") or "unknown"), params, metrics, tags,
                 rounds if isinstance(rounds, int) and not isinstance(rounds, bool) else 0)


def saved_points(run_dir: Path, identity: tuple[str, ...] = IDENTITY) -> list[Point]:
    """The points of a saved run's results.csv (none when it has no results.csv)."""
    if not (Path(run_dir) / RESULTS_CSV).exists():
        return []
    return [point_of(row, identity) for row in read_run(run_dir, samples=False).rows]


def tag_key(*parts: str) -> str:
    """An MLflow-safe key: a group key's `|` and `=` become `.` and `:`, anything else odd `_`."""
    key = ".".join(parts).replace("|", ".").replace("=", ":")
    return re.sub(r"[^\w\-./ :]", "_", key)


def run_record(run_dir: Path) -> RunRecord:
    """run.json (and results.csv, for the device and model when run.json lacks them) -> RunRecord."""
    run_dir = Path(run_dir)
    record: dict[str, Any] = {}
    if (run_dir / RUN_JSON).exists():
        record = read_record(run_dir / RUN_JSON, samples=False)[0]
    rows = read_run(run_dir, samples=False).rows if (run_dir / RESULTS_CSV).exists() else []
    saved = SavedRun(str(run_dir), run_dir / RESULTS_CSV, rows, [], record, run_dir / RUN_JSON)
    resolved = record.get("config_resolved") or {}
    model_info = record.get("model_info") or {}
    framework = saved.environment.get("framework") or {}
    git = record.get("git") or {}

    params: dict[str, str] = {}
    section = "serving" if record.get("kind") == "serving" else "sweep"  # a serving run's sweep keys are unused
    for key, value in sorted((resolved.get(section) or {}).items()):
        if value is not None:
            params[f"{section}.{key}"] = text(value)
    model = next((r.get("model") for r in rows if r.get("model")), None)
    if model is None and isinstance(resolved.get("model"), dict):
        model = next((v for k, v in resolved["model"].items() if k not in ("kwargs", "compile", "input_shape")
                      and v is not None), None)
    if model is not None:
        params["model"] = text(model)
    if isinstance(resolved.get("model"), dict) and resolved["model"].get("kwargs"):
        params["model.kwargs"] = text(resolved["model"]["kwargs"])
    if isinstance(resolved.get("data"), dict) and resolved["data"]:
        params["data"] = next(iter(k for k in resolved["data"] if k != "validation_split"), "")
    if model_info.get("params") is not None:
        params["params"] = text(model_info["params"])

    run_id = str(record.get("run_id") or next((r.get("run_id") for r in rows if r.get("run_id")), run_dir.name))
    tags = {"run_id": run_id, "batchbench.version": text(record.get("batchbench_version") or ""),
            "batchbench.run_dir": str(run_dir.resolve()), "batchbench.status": text(record.get("status") or "unknown"),
            "device": saved.device}
    for key, value in (("mlflow.source.git.commit", git.get("commit")), ("git.dirty", git.get("dirty")),
                       ("tensorflow.version", framework.get("tensorflow")), ("keras.version", framework.get("keras")),
                       ("keras.backend", framework.get("keras_backend")),
                       ("python.version", saved.environment.get("python")),
                       ("hostname", saved.environment.get("hostname")), ("config_hash", record.get("config_hash"))):
        if value is not None:
            tags[key] = text(value)
    shard = record.get("shard") if isinstance(record.get("shard"), dict) else {}
    if shard.get("index") and shard.get("count"):  # a shard is its own parent; the merged run is another
        tags["batchbench.shard"] = f"{shard['index']}/{shard['count']}"
    merged = [m.get("run_id") for m in record.get("merged_from") or () if isinstance(m, dict) and m.get("run_id")]
    if merged:
        tags["batchbench.merged_from"] = text(", ".join(merged))

    summary = record.get("summary") if isinstance(record.get("summary"), dict) else {}
    recommendations: dict[str, str] = {}
    for group, picks in (summary.get("recommendations") or {}).items():
        for key, value in (picks.items() if isinstance(picks, dict) else ()):
            recommendations[tag_key("recommend", group, key)] = "none" if value is None else text(value)
    if "serving" in summary:  # a serving run: its answer, every key "none" when no setting met the SLO
        from batchbench.serving.outputs import ANSWER_KEYS

        answer = summary["serving"] if isinstance(summary["serving"], dict) else dict.fromkeys(ANSWER_KEYS)
        for key, value in answer.items():
            recommendations[tag_key("serving", key)] = "none" if value is None else text(value)

    artifacts = sorted(p for p in run_dir.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix in ARTIFACT_SUFFIXES) \
        if run_dir.is_dir() else []
    return RunRecord(run_dir, run_id, str(record.get("name") or saved.name), str(record.get("status") or "unknown"),
                     params, tags, recommendations, artifacts)
