"""The sequence-length frontier as a small table: per group and length, the largest batch and
the fastest one, with its tokens per second (the summary's `sequence_length_frontier`). Its
rows are made here once; the terminal, report.md and report.html each render them."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from batchbench.report.columns import number
from batchbench.report.runs import is_number
from batchbench.report.text import plain

TITLE = "largest batch per sequence length"
COLUMNS = ["group", "length", "largest batch", "fastest batch", "tokens/s"]
NUMERIC = {1, 2, 3, 4}  # the columns of numbers, aligned right
NOTE = ("(+: the largest size that ran, nothing out of memory up to it; find_max searches on from the first "
        "size that runs out)")


def saved_frontier(summary: dict[str, Any]) -> list[dict]:
    """The summary's frontier entries; none when the run had no sequence_length axis."""
    entries = summary.get("sequence_length_frontier")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def length_cells(entries: list[dict]) -> list[list[str]]:
    """One row of text per entry, in COLUMNS' order; a largest batch that find_max did not
    search is marked + (the true largest may be bigger)."""
    cells = []
    for e in entries:
        largest = e.get("largest_batch")
        largest_cell = "" if largest is None else f"{largest}" + ("" if e.get("found_by") == "find_max" else "+")
        cells.append([str(e.get("group", "")), str(e.get("sequence_length", "")), largest_cell,
                      "" if e.get("best_throughput") is None else str(e["best_throughput"]),
                      number(e["tokens_per_s"], 0) if is_number(e.get("tokens_per_s")) else ""])
    return cells


def length_note(entries: list[dict]) -> str | None:
    """What + means, when a row has one."""
    return NOTE if any(e.get("found_by") != "find_max" for e in entries) else None


def length_table(entries: list[dict]) -> Table:
    table = Table(title=plain(TITLE), box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for index, name in enumerate(COLUMNS):
        table.add_column(plain(name), justify="right" if index in NUMERIC else "left", no_wrap=True)
    for row in length_cells(entries):
        table.add_row(*(plain(cell) for cell in row))
    return table


def render_length_frontier(console: Console, entries: list[dict]) -> None:
    if not entries:
        return
    console.print(length_table(entries))
    if note := length_note(entries):
        console.print(plain(f"  {note}", "dim"))
    console.print()
