"""Rows of two runs -> matched pairs: by model, mode, method, batch size and the sweep axes
(the key columns both files have), with find_max's search and confirm rows kept apart by phase.
Nothing is dropped: a row in one run only is added or removed."""

from __future__ import annotations

import math

from batchbench.compare.inputs import KEY_COLUMNS, Row, Run
from batchbench.compare.text import real
from batchbench.compare.verdicts import VERDICT_ORDER, Entry
from batchbench.errors import BatchbenchError


class NoRowsInCommon(BatchbenchError):
    """The two runs share no (model, mode, method, batch size, axes) point."""


def _index(rows: list[Row], columns: list[str]) -> dict[tuple, Row]:
    """Rows by their matching key. Search/confirm rows of a find_max run are told apart from
    ladder rows by their phase, and any other repeat of a key by its occurrence: nothing dropped."""
    out: dict[tuple, Row] = {}
    at = [KEY_COLUMNS.index(c) for c in columns]
    every = at == list(range(len(KEY_COLUMNS)))
    for row in rows:
        phase = row.phase if row.phase != "ladder" else None
        base = (*(row.key if every else [row.key[i] for i in at]), phase)
        key, n = base + (0,), 0
        while key in out:
            n += 1
            key = base + (n,)
        out[key] = row
    return out


def sort_key(entry: Entry) -> tuple:
    """Verdicts that need attention first, then by what the row is and its batch size."""
    return (VERDICT_ORDER.index(entry.verdict),
            tuple(str(v) for k, v in entry.key.items() if k != "batch_size"),
            entry.key.get("batch_size") if real(entry.key.get("batch_size")) else math.inf,
            entry.phase or "")


def match_rows(baseline: Run, current: Run, columns: list[str]) -> list[Entry]:
    """One Entry per point of either run, matched by `columns`; no rows in common is bad input."""
    b_rows, c_rows = _index(baseline.rows, columns), _index(current.rows, columns)
    entries = []
    for key in list(b_rows) + [k for k in c_rows if k not in b_rows]:
        b, c = b_rows.get(key), c_rows.get(key)
        entries.append(Entry(key=dict(zip(columns, key, strict=False)), phase=key[-2], baseline=b, current=c))
    if not any(e.baseline is not None and e.current is not None for e in entries):
        raise NoRowsInCommon(
            f"no rows in common between {baseline.label} ({_points(baseline)}) and {current.label} "
            f"({_points(current)}): rows are matched by {', '.join(columns)}")
    return entries


def _points(run: Run) -> str:
    groups = sorted({(str(r.get("model")), str(r.get("mode", "")) + (f"/{r.get('method')}" if r.get("method") else ""))
                     for r in run.rows})
    sizes = sorted({r.get("batch_size") for r in run.rows if real(r.get("batch_size"))})
    what = ", ".join(f"{m} {g}" for m, g in groups[:20]) + (f" and {len(groups) - 20} more" if len(groups) > 20 else "")
    return f"{what} at batch sizes {', '.join(map(str, sizes))}" if sizes else what
