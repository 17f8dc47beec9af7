"""The serving command: load the config, run, render the table and the answer."""

from __future__ import annotations

from pathlib import Path

from batchbench.serving.options import load_serving_config


def serving_command(config_path: str | None, kw: dict, out: Path | None, resume: Path | None, as_json: bool,
                    quiet: bool, verbose: bool, plots: bool, mlflow: str | None = None,
                    tensorboard: Path | None = None) -> int:
    import click

    from batchbench.cli import _trackers
    from batchbench.progress import plain
    from batchbench.report.tables import make_console
    from batchbench.results import dumps
    from batchbench.serving.run import ServingOptions, ServingRun

    config, raw, given = load_serving_config(config_path, resume, kw, out_given=bool(out))
    if not plots:
        config.output.plots = False
    # --mlflow/--tensorboard or output.mlflow/output.tensorboard, checked before any load (exit 2),
    # and kept in run.json's config, so a resume files on into the same place.
    trackers = _trackers(config, {"mlflow": mlflow, "tensorboard": tensorboard, "verbose": verbose})
    err = make_console(stderr=True)
    console = err if as_json else make_console()
    progress = None if quiet else (lambda text: err.print(plain(text), soft_wrap=True, highlight=False))
    try:
        outcome = ServingRun(config, ServingOptions(out=out, resume=resume, verbose=verbose, given=given,
                                                    progress=progress, trackers=trackers), raw_config=raw).run()
    finally:
        for warning in trackers.warnings:  # a tracker that failed: once, at the end; the exit is the run's
            err.print(f"[yellow]warning:[/yellow] {plain(warning)}", soft_wrap=True)
    if not quiet:
        from batchbench.serving.table import render_serving

        render_serving(console, outcome.rows, outcome.summary)
    for warning in outcome.summary.get("warnings") or []:
        err.print(f"[yellow]warning:[/yellow] {plain(warning)}", soft_wrap=True)
    if not quiet:
        err.print(f"results: {plain(outcome.run_dir)}", soft_wrap=True)
    if as_json:
        click.echo(dumps(outcome.summary))
    return outcome.exit_code
