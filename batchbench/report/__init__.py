"""Rendering results for people: terminal tables, markdown, HTML, plots. No TensorFlow.

Everything here reads saved files only (results.csv, run.json), so a run directory copied to
another machine, without the model or the data, reports the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from batchbench.report.runs import SavedRun

__all__ = ["report_command", "write_run_report", "write_report"]

REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def write_report(run_dirs: list[str | Path], out_dir: Path, fmt: Literal["md", "html"] = "md",
                 plots: bool = True) -> Path:
    """Plots and report.md (or report.html) for one or more saved runs, written into out_dir."""
    from batchbench.report.runs import load_run

    return _write([load_run(d) for d in run_dirs], Path(out_dir), fmt, plots)


def _write(runs: list[SavedRun], out_dir: Path, fmt: str, plots: bool) -> Path:
    from batchbench.errors import OutputError
    from batchbench.report.document import build_document
    from batchbench.runfiles import make_dir, write_atomic

    try:
        make_dir(out_dir)
        images = []
        if plots:
            from batchbench.report.plots import write_plots

            images = write_plots(runs, out_dir)
        blocks = build_document(runs, images)
        if fmt == "html":
            from batchbench.report.html import render_html

            path, text = out_dir / REPORT_HTML, render_html(blocks)
        else:
            from batchbench.report.markdown import render_markdown

            path, text = out_dir / REPORT_MD, render_markdown(blocks, out_dir)
        write_atomic(path, text, fsync=False)
    except OSError as exc:
        raise OutputError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from None
    return path


def write_run_report(run_dir: Path, plots: bool = True) -> Path:
    """After a sweep: PNG plots (unless plots=False) and report.md in the run directory."""
    return write_report([run_dir], Path(run_dir).resolve(), "md", plots)


def default_report_dir(root: Path = Path("results")) -> Path:
    return root / f"report-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


def report_command(run_dirs: list[str], out: Path | None = None, fmt: Literal["md", "html"] = "md",
                   plots: bool = True) -> int:
    """`batchbench report`: tables and throughput bars in the terminal, then plots and a report file.

    One run reports into its own directory unless --out says otherwise; several runs are overlaid
    into --out, by default results/report-<UTC timestamp>/. Bad input raises ResultsFormatError (exit 2).
    """
    from batchbench.serving.compare import is_serving_run

    if any(is_serving_run(d) for d in run_dirs):
        from batchbench.errors import BatchbenchError
        from batchbench.serving.report import report_serving

        if not all(is_serving_run(d) for d in run_dirs):
            raise BatchbenchError("report: serving runs and sweeps cannot share one report; report them apart")
        return report_serving(run_dirs, out, plots, fmt)
    from rich.rule import Rule

    from batchbench.report.bars import render_throughput_bars
    from batchbench.report.runs import load_run, run_labels
    from batchbench.report.tables import make_console, render_results
    from batchbench.report.text import plain
    from batchbench.runfiles import refuse_symlink

    runs = [load_run(d) for d in run_dirs]  # every input checked before anything is written
    if out is not None:
        refuse_symlink(out)
    console, err_console = make_console(), make_console(stderr=True)
    for run, label in zip(runs, run_labels(runs), strict=True):
        if len(runs) > 1:
            console.print(Rule(plain(label), align="left"))
        render_results(console, run.rows, run.varying, run.summary, run.slo_ms, run.percentile)
        render_throughput_bars(console, run.rows, run.varying)
    if out is None:
        # The run folder the user named, wherever a link to it points; links inside it are refused.
        out = runs[0].path.resolve() if len(runs) == 1 else default_report_dir()
    path = _write(runs, Path(out), fmt, plots)
    err_console.print(plain(f"report: {path}"))
    return 0
