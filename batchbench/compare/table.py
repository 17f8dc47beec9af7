"""The terminal table: the verdict first, then the rows that need attention, sized to the
terminal. Columns are chosen by the width there is, never cut: the least important go first
(p, status, samples/s), and details wraps in a column wide enough to read. A comparison of
many rows shows the rows that changed and counts the rest."""

from __future__ import annotations

import os

from batchbench.compare.cells import COLUMNS, NUMERIC, cells, method_text
from batchbench.compare.text import safe, varying
from batchbench.compare.verdicts import (
    ADDED,
    CANNOT_JUDGE,
    IMPROVEMENT,
    NOT_ENOUGH_REPEATS,
    NOT_JUDGED,
    REGRESSION,
    REMOVED,
    UNCHANGED,
    Comparison,
    Entry,
)

STYLE = {REGRESSION: "bold red", IMPROVEMENT: "green", NOT_ENOUGH_REPEATS: "yellow", CANNOT_JUDGE: "yellow",
         NOT_JUDGED: "yellow", ADDED: "cyan", REMOVED: "cyan"}
ALL_ROWS = 40        # up to this many rows, every row is shown
MAX_ROWS = 200       # beyond, the rows that changed, at most this many
MIN_DETAILS = 30     # a narrower details column reads one word per line
# Left out first, to fit: p, then status (a change of status is spelled out in details too);
# then details moves below the table; samples/s goes last.
DROP_ORDER = ("p", "status", "samples/s")
INLINE_DROPS = 2


def make_compare_console():
    """The report's console, at the width $COLUMNS asks for when it is set (piped output too)."""
    from batchbench.report.tables import make_console

    console = make_console()
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) >= 20:
        console.width = int(columns)
    return console


def pick_rows(entries: list[Entry]) -> tuple[list[Entry], str]:
    """The rows to show, and a line saying what was left out ('' when nothing was)."""
    if len(entries) <= ALL_ROWS:
        return entries, ""
    changed = [e for e in entries if e.verdict != UNCHANGED]
    shown = changed[:MAX_ROWS]
    left = [f"{len(entries) - len(changed):,} unchanged"]
    if len(changed) > len(shown):
        left.append(f"{len(changed) - len(shown):,} more that changed")
    return shown, (f"{len(shown):,} of {len(entries):,} rows shown ({' and '.join(left)} left out); "
                   "--format csv or json lists every row")


WRAPPED = ("what", "details")  # every other column keeps its whole width: numbers are never cut


def _widths(rows: list[dict[str, str]], columns: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(natural, least) content width of each column, in terminal cells."""
    from rich.cells import cell_len

    natural, least = {}, {}
    for c in columns:
        texts = [r.get(c, "") for r in rows]
        natural[c] = max([cell_len(c)] + [cell_len(t) for t in texts])
        if c == "details":
            least[c] = min(natural[c], MIN_DETAILS)
        elif c == "what":
            word = max([cell_len(c)] + [cell_len(w) for t in texts for w in t.split()])
            least[c] = min(natural[c], max(min(word, 30), 10))
        else:
            least[c] = natural[c]
    return natural, least


def _overhead(n: int) -> int:
    # box.SIMPLE_HEAD: an edge cell each side, one between columns; padding 1 a side, none at the edges
    return 2 + (n - 1) + 2 * n - 2


def _fit(columns: list[str], least: dict[str, int], width: int, order: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Leave out the least important columns (in `order`) until the least widths fit."""
    columns, dropped = list(columns), []
    while sum(least[c] for c in columns) + _overhead(len(columns)) > width:
        droppable = [c for c in order if c in columns]
        if not droppable:
            break
        columns.remove(droppable[0])
        dropped.append(droppable[0])
    return columns, dropped


def layout(rows: list[dict[str, str]], width: int) -> tuple[dict[str, int], list[str]]:
    """Column -> content width for a table that fits `width`, and the columns left out to fit
    (the least important first). When details cannot get a readable width even so, it leaves
    the table: a `note` column numbers the rows, and their details follow the table at full
    width (each row's dict gets its `note` number). Numbers are never cut or wrapped."""
    columns = [c for c in COLUMNS if c in ("verdict", "what") or any(r[c] for r in rows)]
    natural, least = _widths(rows, columns)
    kept, dropped = _fit(columns, least, width, DROP_ORDER[:INLINE_DROPS])
    if "details" in kept and sum(least[c] for c in kept) + _overhead(len(kept)) > width:
        numbered = [r for r in rows if r["details"]]
        for n, row in enumerate(numbered, start=1):
            row["note"] = str(n)
        columns = [c if c != "details" else "note" for c in columns]
        natural["note"] = least["note"] = max(len("note"), len(str(len(numbered))))
        kept, dropped = _fit(columns, least, width, DROP_ORDER)
    widths = {c: natural[c] for c in kept if c not in WRAPPED}
    room = width - _overhead(len(kept)) - sum(widths.values())
    details = min(natural["details"], max(least["details"], room - natural["what"])) if "details" in kept else 0
    widths["what"] = max(8, min(natural["what"], room - details))
    if details:
        widths["details"] = max(8, room - widths["what"]) if room - widths["what"] < natural["details"] else details
    return {c: widths[c] for c in kept}, dropped


def _table(title, rows: list[dict[str, str]], styles: list[str | None], widths: dict[str, int]):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for name, width in widths.items():
        if name in WRAPPED:
            table.add_column(name, width=width, overflow="fold")
        else:
            table.add_column(name, justify="right" if name in NUMERIC else "left", no_wrap=True, min_width=width)
    for row, style in zip(rows, styles, strict=True):
        table.add_row(*(Text(row.get(c, "")) for c in widths), style=style)
    return table


def render_table(comparison: Comparison, console) -> None:
    from rich.text import Text

    summary = comparison.summary()
    style = "bold red" if summary.regressed else "bold yellow" if summary.unjudged else "bold green"
    console.print(Text(f"batchbench compare: {summary.headline}", style=style))
    for warning in comparison.warnings:
        console.print(Text(f"warning: {safe(warning)}", style="yellow"))
    entries, left_out = pick_rows(comparison.entries)
    keys = [e.key for e in comparison.entries if e.kind == "trial"]
    shown = varying(keys, comparison.key_columns)
    rows = [cells(e, shown, comparison.alpha) for e in entries]
    styles = [STYLE.get(e.verdict) for e in entries]
    title = Text(f"{safe(comparison.baseline.label)} → {safe(comparison.current.label)}")
    widths, dropped = layout(rows, console.width)
    console.print(_table(title, rows, styles, widths))
    if "note" in widths:
        for row, row_style in zip(rows, styles, strict=True):
            if row.get("note"):
                console.print(Text(f"{row['note']}: {row['details']}", style=row_style or ""))
        console.print()
    notes = [left_out] if left_out else []
    if dropped:
        notes.append(f"columns left out to fit {console.width} characters: {', '.join(dropped)} "
                     "(a wider terminal, or --format markdown, shows them)")
    for note in notes:
        console.print(Text(note, style="dim"))
    console.print(Text(f"{summary.headline}: {summary.line()}", style=style))
    console.print(Text(method_text(comparison), style="dim"))
