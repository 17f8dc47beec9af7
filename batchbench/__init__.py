"""batchbench: which batch size should I use on this hardware, and what does each one cost?"""

from batchbench.version import DISTRIBUTION, RESULTS_SCHEMA_VERSION, __version__

__all__ = ["__version__", "DISTRIBUTION", "RESULTS_SCHEMA_VERSION", "run_sweep"]


def run_sweep(config, **overrides):
    """Run a sweep from a config path or dict and return its results as a DataFrame.

    The notebook entry point: ``run_sweep("configs/quickstart.yaml", batch_sizes=[8, 16])``.
    """
    from batchbench.api import run_sweep as _run_sweep

    return _run_sweep(config, **overrides)
