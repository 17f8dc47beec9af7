"""rich tables per group, fitted to the terminal's width, with what to do underneath."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from batchbench.recommend import recommend_group
from batchbench.report.advice import advice, fastest_configurations
from batchbench.report.columns import NOTE, Column, best_index, number, result_columns
from batchbench.report.runs import group_rows, is_number
from batchbench.report.text import plain

__all__ = ["STATUS_STYLE", "fmt", "group_rows", "group_table", "make_console", "render_results"]

STATUS_STYLE = {"ok": "green", "oom": "red", "error": "red", "timeout": "yellow", "skipped": "dim"}
NOTE_MIN = 16  # a note column narrower than this is dropped rather than wrapped into a ribbon
PIPED_WIDTH = 160


def make_console(stderr: bool = False) -> Console:
    """Colour on a terminal only (and never under NO_COLOR); COLUMNS, when set, is the width."""
    stream = sys.stderr if stderr else sys.stdout
    plain_ = bool(os.environ.get("NO_COLOR")) or not stream.isatty()
    sized = stream.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(file=stream, no_color=plain_, highlight=False, soft_wrap=False,
                   width=None if sized else PIPED_WIDTH)


def fmt(value: Any, places: int = 0) -> str:
    """One figure with a fixed number of decimals ('' when it is not a number)."""
    return number(value, places) if is_number(value) else ""


def _table(title: str, columns: list[Column], rows: list[dict], bold: int | None) -> Table:
    table = Table(title=plain(title), box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for column in columns:
        wraps = column.name == NOTE
        table.add_column(plain(column.name), justify="right" if column.numeric else "left", no_wrap=not wraps,
                         min_width=NOTE_MIN if wraps else None, overflow="fold" if wraps else "ellipsis")
    for index, row in enumerate(rows):
        status_style = STATUS_STYLE.get(str(row.get("status")), "")
        cells = [plain(c.cells[index], status_style if c.name == "status" else "") for c in columns]
        table.add_row(*cells, style="bold" if index == bold else None)
    return table


def fit_columns(console: Console, title: str, columns: list[Column], rows: list[dict]) -> list[Column]:
    """The most important columns that fit the console's width, in their reading order."""
    width = console.size.width
    shown = [c for c in columns if any(c.cells)]
    note = next((c for c in shown if c.name == NOTE), None)
    keep = [c for c in shown if c is not note]

    def natural(cols: list[Column]) -> int:
        return Measurement.get(console, console.options.update(width=10**6), _table(title, cols, rows, None)).maximum

    while natural(keep) > width and any(c.priority for c in keep):
        worst = max(c.priority for c in keep)
        keep.remove([c for c in keep if c.priority == worst][-1])
    if note is not None and natural(keep) + NOTE_MIN + 3 <= width:
        keep.append(note)
    return keep


def group_table(console: Console, key: str, rows: list[dict], percentile: float = 99,
                best_batch: Any = None, tied: Any = None) -> tuple[Table, list[str]]:
    """One group's table at the console's width, and the names of the columns left out."""
    columns = result_columns(rows, percentile, tied if isinstance(tied, list) else None)
    keep = fit_columns(console, key, columns, rows)
    hidden = [c.name for c in columns if c not in keep and any(c.cells)]
    return _table(key, keep, rows, best_index(rows, best_batch)), hidden


def _sentences(sentences: list[str]) -> Table:
    """The advice under a table: an arrow, then each sentence, wrapped with a hanging indent."""
    grid = Table.grid(padding=(0, 1, 0, 0), pad_edge=False)
    grid.add_column(width=3, justify="right", style="cyan")
    grid.add_column(style="cyan")
    for index, sentence in enumerate(sentences):
        grid.add_row("→" if index == 0 else "", plain(sentence, "cyan"))
    return grid


def render_results(console: Console, rows: list[dict], varying: list[str], summary: dict,
                   slo_ms: float | None = None, percentile: float = 99) -> None:
    if not rows:
        console.print(plain("No trials ran."))
        return
    recs = summary.get("recommendations") or {}
    groups = group_rows(rows, varying)
    for key, group in groups.items():
        rec = recs.get(key) or recommend_group(group, slo_ms, percentile)
        table, hidden = group_table(console, key, group, percentile, rec.get("best_throughput"),
                                    rec.get("tied_with_best"))
        console.print(table)
        console.print(_sentences(advice(group, rec, slo_ms, percentile)))
        if hidden:
            console.print(plain(f"  (not shown at this width: {', '.join(hidden)}; see report.md)", "dim"))
        console.print()
    gap = summary.get("predict_vs_serve")
    if isinstance(gap, dict) and gap:
        console.print(plain("model.predict / compiled call throughput: "
                            + ", ".join(f"b{b} {ratio:.2f}x" for b, ratio in gap.items() if is_number(ratio)), "cyan"))
    from batchbench.report.lengths import render_length_frontier, saved_frontier

    render_length_frontier(console, saved_frontier(summary))
    for line in fastest_configurations(groups, recs):
        console.print(plain(line, "bold"))
