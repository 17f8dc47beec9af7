"""compare's documents, each a small function of the same Comparison: markdown for pull
requests and $GITHUB_STEP_SUMMARY (sized for them), json and csv for tools (every row, streamed
to the output so that 100,000 rows never sit in memory as one string). The terminal table is
in table.py."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from functools import cache
from typing import Any, TextIO

from batchbench.compare.cells import COLUMNS, NUMERIC, cells, method_text
from batchbench.compare.metrics import ROW_METRICS
from batchbench.compare.text import safe, varying
from batchbench.compare.verdicts import (
    ADDED,
    CANNOT_JUDGE,
    HIGHER_IS_BETTER,
    IMPROVEMENT,
    NOT_ENOUGH_REPEATS,
    NOT_JUDGED,
    REGRESSION,
    REMOVED,
    REPORTED,
    UNCHANGED,
    WITHIN_THRESHOLD,
    Comparison,
    Entry,
)
from batchbench.numbers import finite

ICON = {REGRESSION: "❌", IMPROVEMENT: "✅", NOT_ENOUGH_REPEATS: "⚠️", CANNOT_JUDGE: "⚠️", NOT_JUDGED: "⚠️",
        ADDED: "➕", REMOVED: "➖", UNCHANGED: ""}
# A GitHub comment holds 65,536 characters and a step summary 1 MiB: the markdown lists the
# rows that changed and folds the unchanged ones, up to these counts, and says what it left out.
MD_CHANGED = 200
MD_UNCHANGED = 100


# ---------------------------------------------------------------------------- markdown
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")


def md(text: str) -> str:
    """Text made inert in markdown: no HTML, no emphasis, links, code or table breaks."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(safe(text), quote=False))


def _md_table(rows: list[dict[str, str]]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---:" if c in NUMERIC else "---" for c in COLUMNS) + "|"]
    lines += ["| " + " | ".join(md(row[c]) for c in COLUMNS) + " |" for row in rows]
    return lines


def heading(comparison: Comparison) -> str:
    summary = comparison.summary()
    icon = "❌" if summary.regressed else "⚠️" if summary.unjudged else "✅"
    return f"batchbench compare: {icon} {summary.headline}"


def render_markdown(comparison: Comparison) -> str:
    summary = comparison.summary()
    shown = varying([e.key for e in comparison.entries if e.kind == "trial"], comparison.key_columns)
    lines = [f"### {heading(comparison)}", ""]
    for warning in comparison.warnings:
        lines += [f"> ⚠️ {md(warning)}", ">"]
    if comparison.warnings:
        lines[-1] = ""
    lines += [md(summary.line()), ""]
    changed = [e for e in comparison.entries if e.verdict != UNCHANGED]
    unchanged = [e for e in comparison.entries if e.verdict == UNCHANGED]

    def row(e: Entry) -> dict[str, str]:
        c = cells(e, shown, comparison.alpha)
        c["verdict"] = f"{ICON.get(e.verdict, '')} {c['verdict']}".strip()
        return c

    if changed:
        lines += _md_table([row(e) for e in changed[:MD_CHANGED]]) + [""]
    if unchanged:
        lines += [f"<details><summary>{len(unchanged):,} unchanged</summary>", ""]
        lines += _md_table([row(e) for e in unchanged[:MD_UNCHANGED]]) + ["", "</details>", ""]
    left = max(0, len(changed) - MD_CHANGED) + max(0, len(unchanged) - MD_UNCHANGED)
    if left:
        lines += [f"{left:,} more rows are not listed here; `--format csv` or `--format json` lists every row.", ""]
    lines += [f"Baseline: {md(comparison.baseline.description)} · current: {md(comparison.current.description)}", "",
              method_text(comparison), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- json
def entry_dict(e: Entry, with_metrics: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"verdict": e.verdict, "kind": e.kind, **e.key, "phase": e.phase,
                           "baseline_status": e.baseline_status, "current_status": e.current_status,
                           "thresholds_only": e.thresholds_only, "notes": e.notes}
    out["test"] = None if e.test is None else {
        "method": e.test.method, "n_baseline": e.test.n_baseline, "n_current": e.test.n_current,
        "rounds_baseline": e.test.rounds_baseline, "rounds_current": e.test.rounds_current, "min_p": e.test.min_p, "p_value": e.test.p_value,
        "p_adjusted": e.test.p_adjusted, "slower": e.test.slower}
    if not with_metrics:
        return out
    # A change is inf only when the baseline was 0: written as null, like every non-number.
    out["metrics"] = [{"metric": m.metric, "baseline": m.baseline, "current": m.current,
                       "change": None if m.change == math.inf else m.change, "threshold": m.threshold,
                       "higher_is_better": m.metric in HIGHER_IS_BETTER, "outcome": m.outcome}
                      for m in e.metrics]
    return out


def summary_dict(comparison: Comparison) -> dict[str, Any]:
    """Everything but the rows: the verdict (first), summary, warnings, environments, settings."""
    summary = comparison.summary()
    env = comparison.environment
    return finite({
        "verdict": summary.verdict,  # regression | cannot judge | ok
        "headline": summary.headline,
        "baseline": {"path": comparison.baseline.label, "has_run_json": comparison.baseline.has_samples},
        "current": {"path": comparison.current.label, "has_run_json": comparison.current.has_samples},
        "summary": {"regressed": summary.regressed, "improved": summary.improved, "unchanged": summary.unchanged,
                    "not_judged": summary.not_judged, "could_not_judge": summary.unjudged,
                    "not_enough_repeats": summary.not_enough_repeats, "cannot_judge": summary.cannot_judge,
                    "added": summary.added, "removed": summary.removed, "shared_ok_rows": summary.shared_ok,
                    "throughput_geomean_ratio": summary.throughput_geomean_ratio},
        "warnings": comparison.warnings,
        "environment": {"baseline": env.baseline, "current": env.current,
                        "differences": [{"field": f, "baseline": b, "current": c} for f, b, c in env.differences]},
        "thresholds": comparison.thresholds,
        "alpha": comparison.alpha,
        "match_columns": comparison.key_columns,
    })


@cache
def _frame(name: str, threshold: float | None, outcome: str) -> tuple[str, str]:
    """The fixed text of one figure's JSON, before its baseline and after its change."""
    return (f'{{"metric": "{name}", "baseline": ',
            f', "threshold": {"null" if threshold is None else repr(threshold)}, '
            f'"higher_is_better": {"true" if name in HIGHER_IS_BETTER else "false"}, "outcome": "{outcome}"}}')


def quiet_frames(thresholds: dict[str, float | None]) -> list[tuple[str, str]]:
    """The frames of a quiet row's figures, in ROW_METRICS order: the same for every quiet row."""
    return [_frame(name, t := thresholds.get(name), REPORTED if t is None else WITHIN_THRESHOLD) for name in ROW_METRICS]


def row_json(e: Entry, frames: list[tuple[str, str]] | None = None) -> str:
    """entry_dict(e) as JSON on one line, written by hand for speed (a test holds it equal to
    json.dumps'): the figures are finite floats, a change is null only from a baseline of 0, and
    every other part is compare's own names or json.dumps' own output."""
    if e.quiet is not None and e.key:
        # unchanged, both ok, no test, no notes, every figure within its threshold: the key,
        # the phase and the numbers are all that vary
        frames = frames or quiet_frames(e.quiet)
        figures = ", ".join([f'{pre}{b!r}, "current": {c!r}, "change": '
                             f'{repr(c / b - 1.0) if b else "0.0" if c == 0 else "null"}{post}'
                             for (pre, post), b, c in zip(frames, e.baseline.figures, e.current.figures)
                             if b is not None and c is not None])
        phase = "null" if e.phase is None else json.dumps(e.phase)
        head = (f'{{"verdict": "{UNCHANGED}", "kind": "trial", {json.dumps(e.key, allow_nan=False)[1:-1]}, '
                f'"phase": {phase}, {_QUIET_TAIL}')
    else:
        figures = ", ".join([f'{(frame := _frame(name, threshold, outcome))[0]}{b!r}, "current": {c!r}, '
                             f'"change": {"null" if change == math.inf else repr(change)}{frame[1]}'
                             for name, b, c, change, threshold, outcome in e.figure_changes()])
        head = json.dumps(entry_dict(e, with_metrics=False), allow_nan=False)[:-1]
    return f'{head}, "metrics": [{figures}]}}'


_QUIET_TAIL = '"baseline_status": "ok", "current_status": "ok", "thresholds_only": false, "notes": [], "test": null'


def write_json(comparison: Comparison, out: TextIO) -> None:
    """The document, indented, with one row per line (a row is small; 100,000 of them are not)."""
    head = json.dumps(summary_dict(comparison), indent=2, default=str, allow_nan=False)
    out.write(head[:-2] + ',\n  "rows": [')
    sep, frames = "\n    ", quiet_frames(comparison.thresholds)
    for e in comparison.entries:
        out.write(sep + row_json(e, frames))
        sep = ",\n    "
    out.write("\n  ]\n}\n")


def render_json(comparison: Comparison) -> str:
    buf = io.StringIO()
    write_json(comparison, buf)
    return buf.getvalue()


# ---------------------------------------------------------------------------- csv
CSV_COLUMNS = ["verdict", "kind", "group", "phase", "baseline_status", "current_status", "metric", "baseline",
               "current", "change_pct", "threshold_pct", "outcome", "n_baseline", "n_current", "p_value",
               "p_adjusted", "note"]


_CSV_QUOTED = re.compile('["\r\n]')


def _g(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"


def write_csv(comparison: Comparison, out: TextIO) -> None:
    """Tidy: one line per compared row and metric (a row with no figures gets one line). The first
    line after the header is the overall verdict, kind `summary`."""
    keys = comparison.key_columns
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")  # the terminator is what makes a newline in a cell quoted

    def line(cells: list) -> str:  # csv quoting for the cells that come from files
        buf.seek(0)
        buf.truncate()
        writer.writerow(cells)
        return buf.getvalue()[:-1]

    summary = comparison.summary()
    out.write(line(CSV_COLUMNS[:2] + keys + CSV_COLUMNS[2:]) + "\n")
    out.write(line([summary.verdict, "summary", *[""] * (len(keys) + 14), f"{summary.headline}: {summary.line()}"]) + "\n")
    thresholds = {name: "" if t is None else _g(t * 100) for name, t in comparison.thresholds.items()}
    quiet = [(f",{name},", f",{thresholds[name]},{REPORTED if comparison.thresholds.get(name) is None else WITHIN_THRESHOLD}"
              ",,,,,\n") for name in ROW_METRICS]
    for e in comparison.entries:
        key = e.key
        cells = [e.verdict, e.kind, *["" if key.get(k) is None else str(key[k]) for k in keys],
                 key.get("group", ""), e.phase or "", e.baseline_status or "", e.current_status or ""]
        start = ",".join(cells)
        if start.count(",") != len(cells) - 1 or _CSV_QUOTED.search(start):
            start = line(cells)  # a cell that needs quoting: the csv module's way
        test = e.test
        figures_of_test = [test.n_baseline, test.n_current, _g(test.p_value), _g(test.p_adjusted)] if test else [""] * 4
        end = line([*figures_of_test, "; ".join(e.notes)]) if test or e.notes else ",,,,"
        # metric names, outcomes and figures need no quoting: finite floats, a change inf only from a 0 baseline
        if e.quiet is not None:  # within every threshold, no test, no notes: the frames are fixed
            out.write("".join([f"{start}{pre}{b:.6g},{c:.6g},"
                               f"{format((c / b - 1.0) * 100, '.6g') if b else '' if c else '0'}{post}"
                               for (pre, post), b, c in zip(quiet, e.baseline.figures, e.current.figures)
                               if b is not None and c is not None]))
            continue
        figures = e.figure_changes()
        if not figures:
            out.write(f"{start},,,,,,,{end}\n")
        out.write("".join([f"{start},{name},{b:.6g},{c:.6g},{'' if change == math.inf else format(change * 100, '.6g')},"
                           f"{thresholds[name]},{outcome},{end}\n" for name, b, c, change, _, outcome in figures]))


def render_csv(comparison: Comparison) -> str:
    buf = io.StringIO()
    write_csv(comparison, buf)
    return buf.getvalue()
