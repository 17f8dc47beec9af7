"""One process of a multi-process run (Keras 3 on JAX, data parallel): its settings and the
checks a config must pass for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batchbench.config import Config
from batchbench.errors import ConfigError


@dataclass(frozen=True)
class Distributed:
    """One process of a multi-process run (Keras 3 on JAX, data parallel)."""

    num_processes: int
    process_id: int
    host: str
    port: int
    timeout_s: int = 60

    def coordinator(self, job_index: int) -> str:
        # Every job (preflight, each trial) joins afresh: a fresh process per trial, so a
        # fresh port per job, in the same order on every process.
        return f"{self.host}:{self.port + job_index}"


def parse_distributed(num_processes: int | None, process_id: int | None, coordinator: str | None,
                      join_timeout: int | None = None) -> Distributed | None:
    if num_processes is None and process_id is None and coordinator is None:
        return None
    if join_timeout is not None and join_timeout < 1:
        raise ConfigError(f"got {join_timeout}, expected seconds (1 or more)", key="--join-timeout")
    if not num_processes or num_processes < 1:
        raise ConfigError(f"got {num_processes!r}, expected the number of processes (1 or more)",
                          key="--num-processes")
    if process_id is None or not 0 <= process_id < num_processes:
        raise ConfigError(f"got {process_id!r}, expected 0 to {num_processes - 1}", key="--process-id")
    host, _, port = (coordinator or "").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"got {coordinator!r}, expected HOST:PORT (e.g. 10.0.0.1:12345)", key="--coordinator")
    return Distributed(num_processes, process_id, host, int(port), join_timeout or 60)


def check_distributed(config: Config, dist: Distributed, resume: Path | None) -> None:
    label = config.source_file or "config"
    if config.sweep.backend != ["jax"]:
        raise ConfigError("multi-process runs use Keras 3 on JAX (TensorFlow's MultiWorkerMirroredStrategy "
                          "does not work with Keras 3): set sweep.backend: jax or pass --backend jax",
                          file=label, key="sweep.backend")
    if config.sweep.modes != ["fit"]:
        raise ConfigError("multi-process runs measure data-parallel training: use modes: [fit]", file=label,
                          key="sweep.modes")
    if resume:
        raise ConfigError("a multi-process run cannot be resumed (the other processes keep no results); "
                          "start it again", key="--resume")
    bad = [b for b in config.sweep.batch_sizes if b % dist.num_processes]
    if bad:
        raise ConfigError(f"batch sizes {', '.join(map(str, bad))} do not split evenly over "
                          f"{dist.num_processes} processes (the batch size is the global batch)",
                          file=label, key="sweep.batch_sizes")
