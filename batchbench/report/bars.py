"""A compact throughput chart for the terminal: one bar per batch size, under the tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from batchbench.report.columns import decimals, number
from batchbench.report.runs import group_rows, is_number
from batchbench.report.tables import STATUS_STYLE
from batchbench.report.text import plain

EIGHTHS = " ▏▎▍▌▋▊▉"
WIDTH = 32


def bar(value: float, top: float, width: int = WIDTH) -> str:
    """A bar `width` cells long at `top`, drawn to an eighth of a cell."""
    eighths = round(width * 8 * value / top) if top > 0 else 0
    eighths = max(1, min(eighths, width * 8)) if value > 0 else 0
    full, rest = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[rest] if rest else "")


def throughput_bars(title: str, rows: list[dict[str, Any]], width: int = WIDTH) -> Table:
    """One group's throughput per batch size; the best in bold, sizes that did not run say why."""
    measured = {r["batch_size"]: r for r in rows if r.get("status") == "ok" and is_number(r.get("throughput_sps"))}
    top = max((r["throughput_sps"] for r in measured.values()), default=0)
    places = decimals([r["throughput_sps"] for r in measured.values()])
    table = Table(title=plain(f"{title}: samples/s per batch size"), title_justify="left", title_style="bold", box=None,
                  show_header=False, pad_edge=False, padding=(0, 1))
    table.add_column(justify="right", style="dim")
    table.add_column(no_wrap=True, min_width=width)
    table.add_column(justify="right")
    table.add_column()
    for batch in sorted({r["batch_size"] for r in rows}):
        row = measured.get(batch) or next(r for r in rows if r["batch_size"] == batch)
        if row.get("status") != "ok" or batch not in measured:
            status = row.get("status") or "no figure"
            table.add_row(str(batch), plain(status, STATUS_STYLE.get(status, "dim")), "", "")
            continue
        best = row["throughput_sps"] == top
        style = "bold green" if best else "green"
        table.add_row(str(batch), Text(bar(row["throughput_sps"], top, width), style=style),
                      Text(number(row["throughput_sps"], places), style="bold" if best else ""), "best" if best else "")
    return table


def render_throughput_bars(console: Console, rows: list[dict[str, Any]], varying: list[str]) -> None:
    """Every group's chart, in the order of the tables, narrower on a narrow terminal."""
    width = max(8, min(WIDTH, console.size.width - 28))
    for key, group in group_rows(rows, varying).items():
        console.print(throughput_bars(key, group, width))
        console.print()
