"""`compare` for two serving runs: the answer's max rate (higher is better) and its p99 (lower
is better), then each setting both runs measured. A figure that moved past its threshold the
wrong way is a regression (exit 1). No significance test: a rate search yields one max per
setting, not repeats, so the threshold must sit above the machine's noise (default 10%)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from batchbench.compare.metrics import ThresholdError, _percent
from batchbench.results import ResultsFormatError, read_run_json
from batchbench.serving import outputs

DEFAULTS = {"max_qps": 0.10, "latency_ms_p99": 0.20}
HIGHER_IS_BETTER = {"max_qps": True, "latency_ms_p99": False}


def is_serving_run(path: str | Path) -> bool:
    path = Path(path)
    folder = path.parent if path.name == outputs.SERVING_CSV else path
    return (folder / outputs.SERVING_CSV).exists() and not (folder / "results.csv").exists()


def _folder(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.name == outputs.SERVING_CSV else path


def load_serving(path: str | Path) -> tuple[list[dict], dict]:
    """(serving.csv rows, run.json's summary or {}), checked."""
    folder = _folder(path)
    try:
        rows = outputs.read_serving_rows(folder / outputs.SERVING_CSV)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultsFormatError(f"{folder / outputs.SERVING_CSV}: cannot be read ({exc})") from None
    if rows and not {"max_batch_size", "batch_timeout_ms", "offered_qps"} <= set(rows[0]):
        raise ResultsFormatError(f"{folder / outputs.SERVING_CSV}: not a batchbench serving.csv")
    summary = {}
    if (folder / "run.json").exists():
        summary = read_run_json(folder / "run.json").get("summary") or {}
    return rows, summary


def parse_limits(specs) -> dict[str, float]:
    limits = dict(DEFAULTS)
    for spec in specs or ():
        if "=" in spec:
            name, _, text = spec.partition("=")
            if name.strip() not in DEFAULTS:
                raise ThresholdError(f"--threshold {spec!r}: serving runs judge {' and '.join(DEFAULTS)}")
            limits[name.strip()] = _percent(spec, text)
        else:
            limits = {name: _percent(spec, spec) for name in DEFAULTS}
    return limits


def _judge(metric: str, base, cur, limits: dict[str, float]) -> str:
    if base is None and cur is None:
        return "none met"
    if cur is None:  # the baseline met the SLO somewhere, the current run nowhere
        return "regression" if metric == "max_qps" else "missing"
    if base is None:
        return "improvement" if metric == "max_qps" else "new"
    change = (cur - base) / base if base else 0.0
    worse = -change if HIGHER_IS_BETTER[metric] else change
    if worse > limits[metric]:
        return "regression"
    if -worse > limits[metric]:
        return "improvement"
    return "unchanged"


def compare_serving(baseline: str | Path, current: str | Path, thresholds=(), fmt: str = "table") -> int:
    for path in (baseline, current):
        if not is_serving_run(path):
            raise ResultsFormatError(f"{path}: not a serving run (no serving.csv); compare a serving run with "
                                     "another serving run")
    limits = parse_limits(thresholds)
    (b_rows, b_sum), (c_rows, c_sum) = load_serving(baseline), load_serving(current)
    lines = []
    b_ans = b_sum.get("serving") or outputs.choose(b_rows, 1, b_sum.get("confirm_repeats"))
    c_ans = c_sum.get("serving") or outputs.choose(c_rows, 1, c_sum.get("confirm_repeats"))

    def setting(ans):
        return f"{ans['max_batch_size']}/{ans['batch_timeout_ms']:g} ms" if ans else "none"

    for metric in ("max_qps", "latency_ms_p99"):
        base, cur = (b_ans or {}).get(metric), (c_ans or {}).get(metric)
        lines.append({"what": f"answer ({setting(b_ans)} -> {setting(c_ans)})", "metric": metric, "baseline": base,
                      "current": cur, "change_pct": (cur / base - 1) * 100 if base and cur else None,
                      "verdict": _judge(metric, base, cur, limits)})
    b_max = outputs.setting_max(b_rows, repeats=b_sum.get("confirm_repeats"))
    c_max = outputs.setting_max(c_rows, repeats=c_sum.get("confirm_repeats"))
    for key in sorted(set(b_max) & set(c_max)):
        base, cur = (b_max[key] or {}).get("offered_qps"), (c_max[key] or {}).get("offered_qps")
        lines.append({"what": f"max_batch_size {key[0]}, timeout {key[1]:g} ms", "metric": "max_qps",
                      "baseline": base, "current": cur,
                      "change_pct": (cur / base - 1) * 100 if base and cur else None,
                      "verdict": _judge("max_qps", base, cur, limits)})
    regressions = [line for line in lines if line["verdict"] == "regression"]
    _render(lines, fmt, limits)
    return 1 if regressions else 0


def _render(lines: list[dict], fmt: str, limits: dict[str, float]) -> None:
    if fmt == "json":
        json.dump({"kind": "serving", "thresholds": limits, "rows": lines}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(lines[0]) if lines else ["what"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
        return

    def cell(v):
        return "" if v is None else f"{v:,.2f}" if isinstance(v, float) else str(v)

    head = ["what", "metric", "baseline", "current", "change %", "verdict"]
    body = [[line["what"], line["metric"], cell(line["baseline"]), cell(line["current"]),
             f"{line['change_pct']:+.1f}" if line["change_pct"] is not None else "", line["verdict"]]
            for line in lines]
    if fmt == "markdown":
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in body]
        sys.stdout.write("\n".join(out) + "\n")
        return
    from rich.table import Table

    from batchbench.report.tables import make_console

    table = Table(title=f"serving: max_qps higher is better (threshold {limits['max_qps']:.0%}), p99 lower "
                        f"(threshold {limits['latency_ms_p99']:.0%})")
    for name in head:
        table.add_column(name)
    for row in body:
        table.add_row(*row)
    make_console().print(table)
