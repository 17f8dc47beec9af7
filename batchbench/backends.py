"""Which Keras backends this installation can run, checked in the controller before any
trial (find_spec only: nothing is imported)."""

from __future__ import annotations

import importlib.util

from batchbench.config import Config
from batchbench.errors import ConfigError
from batchbench.version import DISTRIBUTION

EXTRAS = {"jax": "jax", "torch": "torch"}


def check_backends(config: Config) -> None:
    """A backend that is not installed is a config error naming the extra, before any trial."""
    for i, backend in enumerate(config.sweep.backend):
        if importlib.util.find_spec(backend) is None:
            key = f"sweep.backend[{i}]" if len(config.sweep.backend) > 1 else "sweep.backend"
            raise ConfigError(f"the {backend} backend is not installed; install it with "
                              f"pip install '{DISTRIBUTION}[{EXTRAS.get(backend, backend)}]'",
                              file=config.source_file or "config", key=key)
