"""TensorFlow's view of the machine for `batchbench env` and run.json, under every backend
where TensorFlow is installed (the env table, the report's device label and compare read it)."""

from __future__ import annotations

import os
from typing import Any


def tensorflow_view() -> dict[str, Any]:
    """What TensorFlow sees (version, CUDA build, devices, threads); None where it is not
    installed."""
    info: dict[str, Any] = {}
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        build = tf.sysconfig.get_build_info()
        info["cuda_build"] = build.get("cuda_version")
        info["cudnn_build"] = build.get("cudnn_version")
        info["tf_devices"] = [{"name": d.name, "type": d.device_type} for d in tf.config.list_physical_devices()]
        info["tf_threads"] = {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        }
        info["onednn_opts"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")
    except ImportError:
        info["tensorflow"] = None
    return info
