"""The bench's one record, a Figure, and its formats: a terminal table, CSV and markdown,
each a small function of the same list."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields

SECTIONS = ("fidelity", "overhead", "repeatability", "memory", "startup")


@dataclass(frozen=True)
class Figure:
    """One measured figure beside its goal. `met` is None where the figure has no goal of its
    own (it explains another); `spread_low`/`spread_high` bound `value` where that applies."""

    section: str
    figure: str
    value: float | None
    unit: str
    goal: str
    met: bool | None
    spread_low: float | None = None
    spread_high: float | None = None
    detail: str = ""


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "x":
        return f"{value:.3f}x"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.3g}{unit}"


def fmt_spread(f: Figure) -> str:
    if f.spread_low is None or f.spread_high is None:
        return ""
    if f.unit == "x":
        return f"{f.spread_low:.3f}-{f.spread_high:.3f}"
    return f"{fmt_value(f.spread_low, f.unit)}-{fmt_value(f.spread_high, f.unit)}"


def fmt_met(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "NOT MET")


HEADER = ("section", "figure", "value", "spread", "goal", "met", "detail")


def _cells(f: Figure) -> tuple[str, ...]:
    return (f.section, f.figure, fmt_value(f.value, f.unit), fmt_spread(f), f.goal, fmt_met(f.met), f.detail)


def text_table(figures: list[Figure]) -> str:
    rows = [HEADER, *(_cells(f) for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(esc(c) for c in _cells(f)) + " |" for f in figures]
    return "\n".join(lines)


def to_csv(figures: list[Figure]) -> str:
    """Raw numbers, not formatted text: a later run or a notebook can compare them."""
    buf = io.StringIO()
    names = [f.name for f in fields(Figure)]
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for figure in figures:
        row = asdict(figure)
        row["met"] = "" if figure.met is None else str(figure.met).lower()
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def goals_summary(figures: list[Figure]) -> str:
    judged = [f for f in figures if f.met is not None]
    missed = [f for f in judged if not f.met]
    return f"{len(judged) - len(missed)} of {len(judged)} goals met" + (
        f"; not met: {', '.join(f'{f.section}: {f.figure}' for f in missed)}" if missed else "")
