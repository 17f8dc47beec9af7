"""The sequence-length frontier as a small table: per group and length, the largest batch and
the fastest one, with its tokens per second (the summary's `sequence_length_frontier`)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from batchbench.report.columns import number
from batchbench.report.runs import is_number
from batchbench.report.text import plain


def length_table(entries: list[dict]) -> Table:
    table = Table(title=plain("largest batch per sequence length"), box=box.SIMPLE_HEAD, title_justify="left",
                  pad_edge=False)
    for name, right in (("group", False), ("length", True), ("largest batch", True), ("fastest batch", True),
                        ("tokens/s", True)):
        table.add_column(plain(name), justify="right" if right else "left", no_wrap=True)
    for e in entries:
        largest = e.get("largest_batch")
        largest_cell = "" if largest is None else f"{largest}" + ("" if e.get("found_by") == "find_max" else "+")
        table.add_row(plain(str(e.get("group", ""))), str(e.get("sequence_length", "")), largest_cell,
                      "" if e.get("best_throughput") is None else str(e["best_throughput"]),
                      number(e["tokens_per_s"], 0) if is_number(e.get("tokens_per_s")) else "")
    return table


def render_length_frontier(console: Console, entries: list[dict]) -> None:
    if not entries:
        return
    console.print(length_table(entries))
    if any(e.get("found_by") != "find_max" for e in entries):
        console.print(plain("  (+: the largest size that ran, nothing out of memory up to it; find_max searches "
                            "on from the first size that runs out)", "dim"))
    console.print()
