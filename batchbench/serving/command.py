"""The serving command: load the config, run, render the table and the answer."""

from __future__ import annotations

from pathlib import Path

from batchbench.serving.options import load_serving_config


def serving_command(config_path: str | None, kw: dict, out: Path | None, resume: Path | None, as_json: bool,
                    quiet: bool, verbose: bool, plots: bool) -> int:
    import click

    from batchbench.progress import plain
    from batchbench.report.tables import make_console
    from batchbench.results import dumps
    from batchbench.serving.run import ServingOptions, ServingRun

    config, raw, given = load_serving_config(config_path, resume, kw, out_given=bool(out))
    if not plots:
        config.output.plots = False
    err = make_console(stderr=True)
    console = err if as_json else make_console()
    progress = None if quiet else (lambda text: err.print(plain(text), soft_wrap=True, highlight=False))
    outcome = ServingRun(config, ServingOptions(out=out, resume=resume, verbose=verbose, given=given,
                                                progress=progress), raw_config=raw).run()
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
