"""The CLI's entry point: load, compare, render, append to $GITHUB_STEP_SUMMARY, exit code."""

from __future__ import annotations

import os
import sys

import click

from batchbench.compare.formats import render_csv, render_json, render_markdown, render_table
from batchbench.compare.inputs import load_run
from batchbench.compare.metrics import parse_thresholds
from batchbench.compare.verdicts import Comparison, compare_runs
from batchbench.errors import BatchbenchError

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_ENVIRONMENT = 3  # bad input is 2: BatchbenchError's own exit code


def exit_code(comparison: Comparison, fail_on: str = "regression", strict_env: bool = False) -> int:
    """3 when the environments differ under --strict-env (the figures are not comparable, so this
    wins over a regression); 1 on a regression unless --fail-on never; else 0."""
    if strict_env and comparison.environment.differs:
        return EXIT_ENVIRONMENT
    if fail_on == "regression" and comparison.regressions:
        return EXIT_REGRESSION
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
    if not 0 < alpha < 1:
        raise BatchbenchError(f"--alpha {alpha:g}: must be between 0 and 1, e.g. 0.05")
    limits = parse_thresholds(thresholds)
    comparison = compare_runs(load_run(baseline), load_run(current), limits, alpha)
    markdown = render_markdown(comparison)
    if fmt == "table":
        from batchbench.report.tables import make_console

        render_table(comparison, make_console())
    else:
        for warning in comparison.warnings:
            click.echo(f"warning: {warning}", err=True)
        text = {"markdown": lambda: markdown, "json": lambda: render_json(comparison),
                "csv": lambda: render_csv(comparison)}[fmt]()
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    write_step_summary(markdown)
    code = exit_code(comparison, fail_on, strict_env)
    if code == EXIT_ENVIRONMENT:
        click.echo("error: the environments differ and --strict-env is set (exit 3)", err=True)
    return code
