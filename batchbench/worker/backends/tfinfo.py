"""TensorFlow's view of the machine for `batchbench env` and run.json (the env table, the
report's device label and compare read it): whole under the TensorFlow backend; under JAX or
torch only its installed version, unless something in the process imported it anyway."""

from __future__ import annotations

import os
import sys
from importlib import metadata
from typing import Any

# The distributions that install the `tensorflow` module.
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly")


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


def installed_tensorflow() -> dict[str, Any]:
    """TensorFlow's version from its package metadata, never importing it: the import costs a
    JAX or torch worker seconds and hundreds of MiB for a version string. Where the process
    has imported TensorFlow already (a tf.data pipeline from data.callable), its whole view."""
    if "tensorflow" in sys.modules:
        return tensorflow_view()
    for distribution in TF_DISTRIBUTIONS:
        try:
            return {"tensorflow": metadata.version(distribution)}
        except metadata.PackageNotFoundError:
            continue
    return {"tensorflow": None}
