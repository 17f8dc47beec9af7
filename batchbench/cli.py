"""click commands: parse, call one function of the library, render. Nothing else."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click

from batchbench.axes import AXES
from batchbench.axes import SPEC as AXIS_SPEC
from batchbench.errors import BatchbenchError, ConfigError, InterruptedSweep
from batchbench.version import __version__


def sweep_options(func):
    """Options shared by `sweep` and `predict-throughput`."""
    options = [
        click.option("--out", type=click.Path(path_type=Path), help="The run directory (exact)."),
        click.option("--batch-sizes", help="8,16,32 or a range 1-256 (every power of two in it)."),
        click.option("--modes", help="fit,predict"),
        click.option("--methods", help="predict,serve (how predict mode calls the model)."),
        click.option("--repeats", type=int, help="Timed repeats per trial (each round's)."),
        click.option("--rounds", type=int, help="Measure every point in exactly N rounds (fresh processes, "
                                                 "shuffled order); default: 3, more for noisy points, up to 6."),
        click.option("--max-time-s", type=float, help="Add no rounds past this many seconds of sweeping."),
        click.option("--memory-limit", help="Cap a trial's memory, e.g. 1.5GiB."),
        click.option("--device-memory-limit", help="Cap the GPU's memory at this size, e.g. 8GiB, on every backend "
                     "(TensorFlow: a logical GPU; JAX: the XLA memory fraction; torch: the per-process fraction)."),
        click.option("--find-max", is_flag=True, default=None, help="Search the largest batch that fits."),
        click.option("--margin", help="Memory margin for the safe batch size, e.g. 10%."),
        click.option("--slo-ms", type=float, help="Latency budget per batch, in ms."),
        click.option("--percentile", type=float, help="The latency percentile the SLO applies to (default 99)."),
        *(click.option(axis.option, help=f"Axis, a comma list of {axis.choices}: {axis.meaning}.") for axis in AXIS_SPEC),
        click.option("--resume", type=click.Path(path_type=Path), help="Finish an interrupted run directory."),
        click.option("--num-processes", type=int, help="Multi-process run (JAX): how many processes in all."),
        click.option("--process-id", type=int, help="Multi-process run: this process's rank, 0 to N-1."),
        click.option("--coordinator", help="Multi-process run: HOST:PORT of process 0 (ports PORT, PORT+1, ... are used)."),
        click.option("--local-processes", type=int, help="Start N processes on this machine and run them together."),
        click.option("--join-timeout", type=int, help="Multi-process run: seconds to wait for all processes "
                                                         "to join (default 60)."),
        click.option("--shard", help="Run only shard I of N of the planned points (I/N, from 1), or auto: from "
                                     "a Slurm job array or a Kubernetes Indexed Job (see batchbench merge)."),
        click.option("--shard-count", type=int, help="With --shard auto under Kubernetes: the Job's completions."),
        click.option("--json", "as_json", is_flag=True, help="Print only the JSON summary on stdout."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar or tables."),
        click.option("--verbose", "-v", is_flag=True, help="Show TensorFlow's logs and keep every trial log."),
        click.option("--no-plots", is_flag=True, help="Do not write PNG plots."),
        *tracker_options(),
        click.option("--dry-run", is_flag=True, help="Show the planned trials (and an estimate), run nothing."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def tracker_options() -> list:
    """--mlflow and --tensorboard (sweep, predict-throughput, report)."""
    return [click.option("--mlflow", metavar="URI", help="Also file the run in MLflow: a parent run, a child per "
                                                         "point (sqlite:///mlflow.db, http://host:5000, ...)."),
            click.option("--tensorboard", metavar="DIR", type=click.Path(path_type=Path),
                         help="Also write TensorBoard HParams logs (a session per point) into DIR.")]


def _trackers(config, kw: dict):
    """The trackers from --mlflow/--tensorboard or output.mlflow/output.tensorboard, checked
    before any trial (exit 2); the flags are written into the config, so a resume files on."""
    from batchbench.export import open_trackers

    where = f"{config.source_file or 'config'}: output."
    if kw.get("mlflow"):
        config.output.mlflow = kw["mlflow"]
    if kw.get("tensorboard"):
        config.output.tensorboard = str(Path(kw["tensorboard"]).expanduser().resolve())
    return open_trackers(config.output.mlflow, config.output.tensorboard, verbose=kw.get("verbose", False),
                         mlflow_key="--mlflow" if kw.get("mlflow") else where + "mlflow",
                         tensorboard_key="--tensorboard" if kw.get("tensorboard") else where + "tensorboard")


def _finish_trackers(trackers, run_dir, console) -> None:
    from batchbench.progress import plain

    if not trackers or run_dir is None:
        return
    trackers.finish(run_dir)
    for warning in trackers.warnings:
        console.print(f"[yellow]warning:[/yellow] {plain(warning)}", soft_wrap=True)


def _overrides(kw: dict) -> dict:
    from batchbench.units import parse_batch_sizes, parse_list

    out = {}
    if kw.get("batch_sizes") is not None:
        try:
            out["batch_sizes"] = parse_batch_sizes(kw["batch_sizes"])
        except ValueError as exc:
            raise ConfigError(str(exc), key="--batch-sizes") from None
    for key in ("modes", "methods", *AXES):
        if kw.get(key) is not None:
            out[key] = parse_list(kw[key])
    for key in ("repeats", "rounds", "max_time_s", "memory_limit", "device_memory_limit", "margin", "slo_ms", "percentile"):
        if kw.get(key) is not None:
            out[key] = kw[key]
    if kw.get("find_max"):
        out["find_max"] = True
    return out


def _prepare(config, kw: dict, **extra):
    from batchbench.prepare import prepare

    return prepare(config, resume=kw.get("resume"), overrides=_overrides(kw), out_given=bool(kw.get("out")),
                   plots=False if kw.get("no_plots") else None, **extra)


def run_sweep_command(prepared, kw: dict) -> None:
    from batchbench.report.tables import make_console, render_results
    from batchbench.results import dumps
    from batchbench.shard import parse_shard, refuse_with_processes
    from batchbench.sweep import Sweep, SweepOptions

    config, raw = prepared.config, prepared.raw
    shard = parse_shard(kw.get("shard"), kw.get("shard_count"), os.environ)
    refuse_with_processes(shard, kw.get("num_processes"), kw.get("local_processes"))
    if kw.get("dry_run"):
        from batchbench.dryrun import plan_preview, render_preview

        preview = plan_preview(config, kw.get("resume"), shard=shard)
        click.echo(dumps(preview) if kw.get("as_json") else render_preview(preview))
        sys.exit(0)
    from batchbench.distributed import parse_distributed

    distributed = parse_distributed(kw.get("num_processes"), kw.get("process_id"), kw.get("coordinator"),
                                    kw.get("join_timeout"))
    # Checked before any trial or peer process starts (exit 2); only process 0 files the run.
    trackers = _trackers(config, kw) if not (distributed and distributed.process_id > 0) else None
    launcher = None
    if kw.get("local_processes") is not None:
        from batchbench.launcher import LocalLauncher

        launcher = LocalLauncher(config, kw)
        distributed, kw["out"] = launcher.start()
    as_json, quiet = kw.get("as_json"), kw.get("quiet")
    err_console = make_console(stderr=True)
    out_console = err_console if as_json else make_console()
    from batchbench.progress import LineProgress

    progress = None if quiet else LineProgress(err_console)
    options = SweepOptions(out=kw.get("out"), resume=kw.get("resume"), verbose=kw.get("verbose", False),
                           progress=progress, distributed=distributed,
                           peer_failed=launcher.peer_failed if launcher else None, shard=shard,
                           observer=trackers)
    sweep = Sweep(config, options, raw_config=raw)
    try:
        outcome = sweep.run()
    except BaseException:
        # interrupted (KILLED) or failed (FAILED, as run.json now says): what finished is filed too
        _finish_trackers(trackers, sweep.run_dir, err_console)
        raise
    finally:
        if progress:
            progress.stop()
        if launcher:
            launcher.finish()
    _write_reports(outcome, config)
    _finish_trackers(trackers, outcome.run_dir, err_console)
    if not quiet:
        render_results(out_console, outcome.rows, config.varying_axes(), outcome.summary,
                       config.sweep.slo_ms, config.sweep.percentile)
        from batchbench.report.bars import render_throughput_bars
        from batchbench.report.tables import group_rows

        if len(group_rows(outcome.rows, config.varying_axes())) <= 3:  # beyond that, the plots say it better
            render_throughput_bars(out_console, outcome.rows, config.varying_axes())
    from batchbench.progress import plain

    for warning in outcome.summary.get("warnings") or outcome.warnings:  # also under --quiet
        err_console.print(f"[yellow]warning:[/yellow] {plain(warning)}", soft_wrap=True)
    if not quiet:
        err_console.print(f"results: {plain(outcome.run_dir)}", soft_wrap=True)
    if as_json:
        click.echo(dumps(outcome.summary))
    sys.exit(outcome.exit_code)


def _write_reports(outcome, config) -> None:
    """Plots and report.md beside the results; never fatal to a finished sweep."""
    try:
        from batchbench.report import write_run_report
    except ImportError:
        return
    try:
        write_run_report(outcome.run_dir, plots=config.output.plots)
    except Exception as exc:  # noqa: BLE001 - the measurements are safe on disk already
        click.echo(f"warning: could not write the report: {exc}", err=True)


def _handle_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (BatchbenchError, InterruptedSweep, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
    return wrapper


class _Commands(click.Group):
    """batchbench's errors are plain exceptions (the worker needs no click): here they become
    their message on stderr and their exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (BatchbenchError, InterruptedSweep) as exc:
            exc.show()
            ctx.exit(exc.exit_code)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchbench")
def main() -> None:
    """Which batch size should I use on this hardware, and what does each one cost?

    Sweeps batch sizes through Keras model.fit and model.predict and records time,
    throughput, latency, peak memory and out-of-memory failures.
    """
    if not os.environ.get("BATCHBENCH_VERBOSE"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for stream in (sys.stdout, sys.stderr):
        # A terminal or log that cannot show a character (PYTHONIOENCODING=ascii) gets a '?',
        # never a UnicodeEncodeError traceback.
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):
                pass


@main.command(short_help="Sweep batch sizes through fit and predict.")
@click.argument("config", required=False)
@sweep_options
@_handle_errors
def sweep(config, **kw):
    """Sweep batch sizes through fit and/or predict, as CONFIG describes."""
    run_sweep_command(_prepare(config, kw), kw)


@main.command("predict-throughput", short_help="Inference only: throughput and latency.")
@click.argument("config", required=False)
@click.option("--model", "model_ref", help="builtin:NAME, application:NAME, a model file, or module:function.")
@click.option("--input-shape", help="e.g. 96,96,3, where the model leaves it open.")
@sweep_options
@_handle_errors
def predict_throughput(config, model_ref, input_shape, **kw):
    """Inference only: throughput and latency percentiles per batch size, both call methods."""
    from batchbench.prepare import DEFAULT_PREDICT_CONFIG

    kw["modes"] = kw.get("modes") or "predict"
    run_sweep_command(_prepare(config, kw, default=DEFAULT_PREDICT_CONFIG, model_ref=model_ref,
                               input_shape=input_shape), kw)


@main.command(short_help="Dynamic batching under load: the max request rate under a latency SLO.")
@click.argument("config", required=False)
@click.option("--slo-ms", type=float, help="Per-request latency budget in ms, queueing included (not sweep.slo_ms).")
@click.option("--percentile", type=float, help="The percentile the SLO applies to (default 99).")
@click.option("--max-batch-sizes", help="max_batch_size values: 1,4,16 or a range 1-64 (powers of two).")
@click.option("--timeouts-ms", help="batch_timeout values in ms, e.g. 0,1,2,5,10.")
@click.option("--rates", help="Measure these request rates (req/s) instead of searching, e.g. 500,1000.")
@click.option("--num-batch-threads", type=int, help="Batches run at once, as TF Serving's (default 1).")
@click.option("--measure-top", type=int, help="How many of the simulator's best settings to measure (default 3).")
@click.option("--out", type=click.Path(path_type=Path), help="The run directory (exact).")
@click.option("--resume", type=click.Path(path_type=Path), help="Finish an interrupted serving run.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or tables.")
@click.option("--verbose", "-v", is_flag=True, help="Show TensorFlow's logs and keep every job log.")
@click.option("--no-plots", is_flag=True, help="Do not write the PNG plot.")
@click.option("--mlflow", metavar="URI", help="Also file the run in MLflow: a parent run, a child per batching "
                                              "setting (sqlite:///mlflow.db, http://host:5000, ...).")
@click.option("--tensorboard", metavar="DIR", type=click.Path(path_type=Path),
              help="Also write TensorBoard HParams logs (a session per batching setting) into DIR.")
@_handle_errors
def serving(config, out, resume, as_json, quiet, verbose, no_plots, mlflow, tensorboard, **kw):
    """Requests of one sample arrive at a Poisson rate; a dynamic batcher (TF Serving's
    max_batch_size and batch_timeout) serves them with the model's compiled call. For each
    setting, find the highest rate whose percentile latency meets the SLO; write serving.csv,
    the answer, and TF Serving and Triton files."""
    from batchbench.serving.command import serving_command

    sys.exit(serving_command(config, kw, out=out, resume=resume, as_json=as_json, quiet=quiet, verbose=verbose,
                             plots=not no_plots, mlflow=mlflow, tensorboard=tensorboard))


@main.command(short_help="Check a config; run nothing.")
@click.argument("config")
def validate(config):
    """Check a config without running it (never imports TensorFlow)."""
    from batchbench.prepare import prepare
    from batchbench.serving.options import is_serving_config

    if is_serving_config(config):
        from batchbench.serving.options import describe_serving_config

        click.echo(describe_serving_config(config))
        return
    cfg = prepare(config).config
    n = len(cfg.sweep.batch_sizes)
    click.echo(f"{config}: valid — model {cfg.model.source}:{cfg.model.label}, data {cfg.data.source}, "
               f"batch sizes {', '.join(map(str, cfg.sweep.batch_sizes))} ({n}), modes {', '.join(cfg.sweep.modes)}")


@main.command(short_help="What this machine and its Keras backend see.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.option("--backend", default="tensorflow", help="Which Keras backend's view to report.")
def env(as_json, backend):
    """Detected CPU, memory, GPUs, driver, and what the Keras backend sees (from a worker)."""
    from batchbench.backends import require_installed
    from batchbench.envinfo import busy_warning, host_environment
    from batchbench.runner import Worker, worker_env

    require_installed(backend, key="--backend")
    record = host_environment()
    with Worker(worker_env(backend)) as worker:
        outcome = worker.run({"op": "env"}, timeout_s=300)
    record["framework"] = (outcome.result or {}).get("info") or {"error": "the worker could not report"}
    if as_json:
        click.echo(json.dumps(record, indent=2, default=str))
        return
    from batchbench.report.envtable import render_env

    render_env(record, busy_warning(record))


@main.command(short_help="CI verdict: did CURRENT regress from BASELINE?")
@click.argument("baseline")
@click.argument("current")
@click.option("--threshold", multiple=True, help="5% for all metrics, or METRIC=10%; repeatable.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json", "csv"]), default="table")
@click.option("--fail-on", type=click.Choice(["regression", "never"]), default="regression",
              help="regression (default): exit 1 on a regression, else 4 when a row moved beyond its threshold "
                   "but could not be judged; never: report only, exit 0 (--strict-env's 3 still applies).")
@click.option("--strict-env", is_flag=True, help="Exit 3 when the two runs' environments differ.")
@click.option("--alpha", type=float, default=0.05, help="Significance level after correction.")
def compare(baseline, current, threshold, fmt, fail_on, strict_env, alpha):
    """Regression verdicts between two runs (run directories or results.csv files).

    \b
    Exit codes: 0 no regression; 1 regression; 2 bad input; 3 environments differ under
    --strict-env (wins over all); 4 a row moved beyond its threshold but could not be judged
    (too few repeats, NaN/inf figures, results.csv and run.json that disagree).
    """
    from batchbench.compare import compare_command

    sys.exit(compare_command(baseline, current, thresholds=threshold, fmt=fmt, fail_on=fail_on,
                             strict_env=strict_env, alpha=alpha))


@main.command(short_help="Tables, plots and reports from saved runs.")
@click.argument("run_dirs", nargs=-1, required=True)
@click.option("--out", type=click.Path(path_type=Path), help="Where a multi-run report goes.")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md")
@click.option("--no-plots", is_flag=True, help="Tables only.")
@click.option("--mlflow", metavar="URI", help="File each run in MLflow (again: its parent run is updated).")
@click.option("--tensorboard", metavar="DIR", type=click.Path(path_type=Path),
              help="Write each run's TensorBoard HParams logs into DIR.")
def report(run_dirs, out, fmt, no_plots, mlflow, tensorboard):
    """Rebuild tables, plots and a report from saved results (no TensorFlow, no re-running).

    With --mlflow or --tensorboard, each run is also filed there; exit 1 when a tracker refused it.
    """
    from batchbench.report import report_command

    trackers = None
    if mlflow or tensorboard:
        from batchbench.export import open_trackers

        trackers = open_trackers(mlflow, tensorboard)  # checked before anything is written
    code = report_command(list(run_dirs), out=out, fmt=fmt, plots=not no_plots)
    if trackers:
        from batchbench.export import file_runs

        code = file_runs(trackers, list(run_dirs)) or code
    sys.exit(code)


@main.command(short_help="One run from the shards of a sweep (--shard).")
@click.argument("run_dirs", nargs=-1, required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The merged run directory.")
@click.option("--prefer", type=click.Choice(["newest"]), help="A trial in two inputs: keep the one that finished last "
                                                             "(without it, that is an error).")
@click.option("--no-plots", is_flag=True, help="Do not write PNG plots.")
def merge(run_dirs, out, prefer, no_plots):
    """Merge the run folders of a sharded sweep (batchbench sweep --shard I/N) into one run folder:
    results.csv, run.json with the summary computed again over all rows, plots and report.md.

    \b
    Exit codes: 0 merged (a shard that is missing is a warning naming its trials); 2 bad input:
    runs of different measured settings, a trial in two inputs without --prefer newest.
    """
    from batchbench.merge import merge_command

    sys.exit(merge_command(list(run_dirs), out, prefer, plots=not no_plots))


if __name__ == "__main__":
    main()
