"""Multi-process data parallelism (Keras 3 on JAX): joining the job and leaving it together."""

from __future__ import annotations

import sys

from batchbench.errors import ConfigError
from batchbench.worker.failures import one_line


def join_processes(dist: dict) -> dict:
    """Multi-process data parallelism (Keras 3 on JAX): join the job, then make every
    process's batch one shard of a global batch. Must run before the model is built."""
    import jax
    import keras

    try:
        jax.distributed.initialize(coordinator_address=dist["coordinator"], num_processes=dist["num_processes"],
                                   process_id=dist["process_id"],
                                   initialization_timeout=int(dist.get("timeout_s", 60)),
                                   heartbeat_timeout_seconds=10)
    except Exception as exc:  # noqa: BLE001 - jax raises RuntimeError/XlaRuntimeError/DEADLINE_EXCEEDED
        raise ConfigError(f"could not join {dist['num_processes']} processes through the coordinator "
                          f"{dist['coordinator']} within {dist.get('timeout_s', 60)} s: {one_line(exc)}",
                          key="--coordinator") from None
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=keras.distribution.list_devices(), auto_shard_dataset=False))
    return {"processes": jax.process_count(), "devices_per_process": jax.local_device_count(),
            "total_devices": jax.device_count()}


def leave_processes() -> None:
    """Leave a multi-process job together: a process that exits without shutting its client
    down makes the coordination service report an error to the others, which then abort."""
    jax = sys.modules.get("jax")
    if jax is None:
        return
    try:
        jax.distributed.shutdown()
    except Exception:  # noqa: BLE001 - never joined, or already gone: nothing to leave
        pass
