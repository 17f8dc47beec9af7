"""The Python API for notebooks: run a sweep, get a DataFrame."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_sweep(config: str | Path | dict, out: str | Path | None = None, resume: str | Path | None = None,
              verbose: bool = False, base_dir: str | Path = ".", **overrides: Any):
    """Run a sweep from a config path or dict; returns results.csv as a pandas DataFrame.

    Sweep keys can be overridden by keyword (``batch_sizes=[8, 16]``, ``modes=["predict"]``).
    The DataFrame's ``attrs`` hold ``run_dir`` and the ``summary`` (recommendations). A config's
    ``output.mlflow`` / ``output.tensorboard`` file the run there too (``attrs["tracker_warnings"]``
    says if a tracker failed).
    """
    from batchbench.export import open_trackers
    from batchbench.prepare import prepare
    from batchbench.results import results_frame
    from batchbench.sweep import Sweep, SweepOptions

    prepared = prepare(config, resume=Path(resume) if resume else None, overrides=overrides, base_dir=base_dir,
                       out_given=out is not None)
    cfg, raw = prepared.config, prepared.raw
    trackers = open_trackers(cfg.output.mlflow, cfg.output.tensorboard, mlflow_key="output.mlflow",
                             tensorboard_key="output.tensorboard", verbose=verbose)
    outcome = Sweep(cfg, SweepOptions(out=Path(out) if out else None, resume=Path(resume) if resume else None,
                                      verbose=verbose, observer=trackers or None), raw_config=raw).run()
    trackers.finish(outcome.run_dir)
    frame = results_frame(outcome.rows)
    frame.attrs["tracker_warnings"] = trackers.warnings
    frame.attrs["run_dir"] = str(outcome.run_dir)
    frame.attrs["summary"] = outcome.summary
    return frame
