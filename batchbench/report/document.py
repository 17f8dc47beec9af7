"""A report as plain blocks (headings, tables, bullets, images), built once from saved runs;
markdown.py and html.py each render the same blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchbench.recommend import recommend_group
from batchbench.report.advice import advice, fastest_configurations
from batchbench.report.columns import best_index, result_columns
from batchbench.report.lengths import COLUMNS, NUMERIC, TITLE, length_cells, length_note, saved_frontier
from batchbench.report.runs import SavedRun, is_number, run_labels

MAX_WARNINGS = 10
IMAGE_TITLES = {"throughput": "Throughput against batch size", "latency": "Latency against batch size",
                "memory": "Peak memory against batch size", "quality": "Validation quality against batch size"}


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    right: set[int] = field(default_factory=set)  # columns of numbers, aligned right
    bold_row: int | None = None


@dataclass
class Image:
    path: Path
    title: str


Block = Heading | Paragraph | Bullets | Table | Image


def build_document(runs: list[SavedRun], images: list[Path]) -> list[Block]:
    """The whole report: what to use first, then the pictures, then every number behind them."""
    labels = run_labels(runs)
    title = runs[0].name if len(runs) == 1 else " vs ".join(labels)
    blocks: list[Block] = [Heading(1, f"batchbench report: {title}")]
    if len(runs) > 1:
        blocks.append(Paragraph(f"{len(runs)} runs overlaid in the plots, each line labelled by what tells it apart."))
    for run, label in zip(runs, labels, strict=True):
        if len(runs) > 1:
            blocks.append(Heading(2, f"Recommendations: {label}"))
        else:
            blocks.append(Paragraph(_status_line(run)))
            blocks.append(Heading(2, "Recommendations"))
        blocks += _recommendations(run)
    if images:
        blocks.append(Heading(2, "Plots"))
        blocks += [Image(path, IMAGE_TITLES.get(path.stem, path.stem)) for path in images]
    for run, label in zip(runs, labels, strict=True):
        if len(runs) > 1:
            blocks += [Heading(2, f"Run: {label}"), Paragraph(_status_line(run))]
        sub = 2 if len(runs) == 1 else 3
        blocks.append(Heading(sub, "Results"))
        for key, rows in run.groups().items():
            rec = (run.summary.get("recommendations") or {}).get(key, {})
            blocks += [Heading(sub + 1, key),
                       group_table(rows, run.percentile, rec.get("best_throughput"), rec.get("tied_with_best"))]
        blocks += _length_frontier(run, sub + 1)
        blocks += _warnings(run, sub)
        blocks += [Heading(sub, "Environment"), environment_table(run)]
    return blocks


def _status_line(run: SavedRun) -> str:
    counts = run.summary.get("status_counts") or {}
    trials = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no trials"
    when = run.record.get("started_at")
    return f"Run {run.record.get('run_id') or run.path.name} on {run.device}" + (f", started {when}" if when else "") \
        + f": {trials}."


def _recommendations(run: SavedRun) -> list[Block]:
    recs = run.summary.get("recommendations") or {}
    groups = run.groups()
    items = [f"{key}: " + " ".join(advice(rows, recs.get(key) or recommend_group(rows, run.slo_ms, run.percentile),
                                          run.slo_ms, run.percentile))
             for key, rows in groups.items()]
    items += fastest_configurations(groups, recs)
    return [Bullets(items)] if items else [Paragraph("No trials ran.")]


def _length_frontier(run: SavedRun, level: int) -> list[Block]:
    """The sequence-length frontier, as the terminal shows it after the groups."""
    entries = saved_frontier(run.summary)
    if not entries:
        return []
    blocks: list[Block] = [Heading(level, TITLE.capitalize()), Table(COLUMNS, length_cells(entries), right=NUMERIC)]
    if note := length_note(entries):
        blocks.append(Paragraph(note))
    return blocks


def _warnings(run: SavedRun, level: int) -> list[Block]:
    warnings = [str(w) for w in run.summary.get("warnings") or []]
    if not warnings:
        return []
    shown = warnings[:MAX_WARNINGS]
    if len(warnings) > MAX_WARNINGS:
        shown.append(f"… and {len(warnings) - MAX_WARNINGS} more (see run.json)")
    return [Heading(level, "Warnings"), Bullets(shown)]


def group_table(rows: list[dict[str, Any]], percentile: float = 99, best_batch: Any = None,
                tied: Any = None) -> Table:
    """One group's rows with every column the terminal may leave out; the best throughput in
    bold, the sizes tied with it marked ≈."""
    columns = [c for c in result_columns(rows, percentile, tied if isinstance(tied, list) else None) if any(c.cells)]
    return Table([c.name for c in columns], [[c.cells[i] for c in columns] for i in range(len(rows))],
                 right={i for i, c in enumerate(columns) if c.numeric}, bold_row=best_index(rows, best_batch))


def environment_table(run: SavedRun) -> Table:
    env = run.environment
    fw = env.get("framework") or {}
    nvml = env.get("nvml") or {}
    model = run.record.get("model_info") or {}
    sweep = run.sweep_config
    git = run.record.get("git") or {}
    pairs = [
        ("run", f"{run.name} ({run.record.get('run_id') or run.path.name})"),
        ("started / ended", " / ".join(str(run.record.get(k) or "?") for k in ("started_at", "ended_at"))
         if run.record.get("started_at") else ""),
        ("device", run.device),
        ("CPU", f"{env.get('cpu_model')} ({env.get('cpu_cores_logical')} logical cores)" if env.get("cpu_model")
         else ""),
        ("memory", f"{env['memory_total_mib'] / 1024:.1f} GiB" if is_number(env.get("memory_total_mib")) else ""),
        ("GPUs", "; ".join(f"{g.get('name')} {g['memory_total_mib'] / 1024:.1f} GiB" if is_number(
            g.get("memory_total_mib")) else str(g.get("name")) for g in nvml.get("gpus") or []) + (f" (driver {nvml['driver']})" if nvml.get("driver")
                                                               else "")),
        ("load average at start", ", ".join(f"{x:.2f}" for x in env.get("load_average") or [])),
        ("TensorFlow / Keras", f"{fw.get('tensorflow')} / {fw.get('keras')} (backend {fw.get('keras_backend')})"
         if fw.get("tensorflow") or fw.get("keras") else ""),
        ("Python", str(env.get("python") or "")),
        ("model", f"{model.get('model_name')}, {model['params']:,} parameters" if model.get("params")
         else ", ".join(sorted({str(r['model']) for r in run.rows if r.get("model")}))),
        ("batch sizes", ", ".join(map(str, sweep.get("batch_sizes") or sorted({r["batch_size"] for r in run.rows})))),
        ("repeats", str(sweep.get("repeats") or "")),
        ("latency SLO", f"{run.slo_ms:g} ms at p{run.percentile:g}" if run.slo_ms else ""),
        ("batchbench", str(run.record.get("batchbench_version") or "")),
        ("git commit", f"{git['commit'][:12]}{' (dirty)' if git.get('dirty') else ''}" if git.get("commit") else ""),
    ]
    return Table(["", ""], [[key, value] for key, value in pairs if value])
