"""The Python API for notebooks: run a sweep, get a DataFrame."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_sweep(config: str | Path | dict, out: str | Path | None = None, resume: str | Path | None = None,
              verbose: bool = False, base_dir: str | Path = ".", **overrides: Any):
    """Run a sweep from a config path or dict; returns results.csv as a pandas DataFrame.

    Sweep keys can be overridden by keyword (``batch_sizes=[8, 16]``, ``modes=["predict"]``).
    The DataFrame's ``attrs`` hold ``run_dir`` and the ``summary`` (recommendations).
    """
    import pandas as pd

    from batchbench.config import apply_overrides, config_from_dict, load_config, static_checks
    from batchbench.sweep import Sweep, SweepOptions

    if isinstance(config, dict):
        raw = config
        cfg = config_from_dict(config, source=None, base_dir=base_dir)
    else:
        import yaml

        cfg = load_config(config)
        raw = yaml.safe_load(Path(config).read_text())
    cfg = apply_overrides(cfg, **overrides)
    static_checks(cfg)
    outcome = Sweep(cfg, SweepOptions(out=Path(out) if out else None, resume=Path(resume) if resume else None,
                                      verbose=verbose), raw_config=raw).run()
    frame = pd.DataFrame(outcome.rows)
    frame.attrs["run_dir"] = str(outcome.run_dir)
    frame.attrs["summary"] = outcome.summary
    return frame
