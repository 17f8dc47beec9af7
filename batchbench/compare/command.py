"""The CLI's entry point: load, compare, render, append to $GITHUB_STEP_SUMMARY, exit code."""

from __future__ import annotations

import gc
import os
import sys

import click

from batchbench.compare.formats import render_markdown, write_csv, write_json
from batchbench.compare.inputs import load_run
from batchbench.compare.judge import compare_runs
from batchbench.compare.metrics import parse_thresholds
from batchbench.compare.table import make_compare_console, render_table
from batchbench.compare.text import safe
from batchbench.compare.verdicts import Comparison
from batchbench.errors import BatchbenchError

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_ENVIRONMENT = 3  # bad input is 2: BatchbenchError's own exit code
EXIT_UNJUDGED = 4


def exit_code(comparison: Comparison, fail_on: str = "regression", strict_env: bool = False) -> int:
    """3 when the environments differ under --strict-env (the figures are not comparable, so this
    wins over everything); with --fail-on never, 0; else 1 on a regression, then 4 when a row
    moved beyond its threshold (or holds figures that are not numbers) and could not be judged:
    compare never passes what it could not judge."""
    if strict_env and comparison.environment.differs:
        return EXIT_ENVIRONMENT
    if fail_on == "never":
        return EXIT_OK
    if comparison.regressions:
        return EXIT_REGRESSION
    if comparison.unjudged:
        return EXIT_UNJUDGED
    return EXIT_OK


def write_step_summary(markdown: str) -> None:
    """In GitHub Actions, the verdict goes on the run's summary page too."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    except OSError as exc:
        click.echo(f"warning: cannot append to $GITHUB_STEP_SUMMARY ({path}): {exc.strerror or exc}", err=True)


def compare_command(baseline: str, current: str, thresholds: tuple[str, ...] = (), fmt: str = "table",
                    fail_on: str = "regression", strict_env: bool = False, alpha: float = 0.05) -> int:
    """`batchbench compare`: the verdict on stdout in `fmt`, warnings on stderr (but for the
    table), and the exit code (0, 1, 3 or 4; bad input raises a BatchbenchError, exit 2)."""
    if not 0 < alpha < 1:
        raise BatchbenchError(f"--alpha {alpha:g}: must be between 0 and 1, e.g. 0.05")
    from batchbench.serving.compare import compare_serving, is_serving_run

    if is_serving_run(baseline) or is_serving_run(current):
        return compare_serving(baseline, current, thresholds, fmt)
    limits = parse_thresholds(thresholds)
    # Hundreds of thousands of small records and no reference cycles among them: the cycle
    # collector would only walk them again and again (it took half the time of a large compare).
    gc.disable()
    try:
        return _compare(baseline, current, limits, fmt, fail_on, strict_env, alpha)
    finally:
        gc.enable()


def _compare(baseline: str, current: str, limits: dict[str, float | None], fmt: str, fail_on: str,
             strict_env: bool, alpha: float) -> int:
    comparison = compare_runs(load_run(baseline), load_run(current), limits, alpha)
    markdown = render_markdown(comparison) if fmt == "markdown" or os.environ.get("GITHUB_STEP_SUMMARY") else ""
    if fmt == "table":
        render_table(comparison, make_compare_console())
    else:
        for warning in comparison.warnings:
            click.echo(f"warning: {safe(warning)}", err=True)
        if fmt == "markdown":
            sys.stdout.write(markdown if markdown.endswith("\n") else markdown + "\n")
        else:
            (write_json if fmt == "json" else write_csv)(comparison, sys.stdout)
        sys.stdout.flush()
    if markdown:
        write_step_summary(markdown)
    code = exit_code(comparison, fail_on, strict_env)
    if code == EXIT_ENVIRONMENT:
        click.echo("error: the environments differ and --strict-env is set (exit 3)", err=True)
    elif code == EXIT_UNJUDGED:
        click.echo(f"error: {comparison.summary().headline} (exit 4; --fail-on never reports it without failing)",
                   err=True)
    return code
