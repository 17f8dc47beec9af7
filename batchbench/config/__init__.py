"""YAML -> validated config objects. Plain Python: never imports TensorFlow.

Every error reads ``<file>: <key.path>: <what was found>, <what was expected>``; a config with
several problems gets one such line per problem, under a count.

The modules, each importing only those before it: ``values`` (what a value may be, how a found
one is shown), ``lookups`` (modules and Keras applications found without importing them),
``settings`` (a run's identity for --resume), ``schema`` (the pydantic models), ``messages``
(pydantic's errors in the user's words), ``loading`` (YAML -> Config, command-line overrides) and
``checks`` (what needs the file system)."""

from batchbench.config.checks import static_checks
from batchbench.config.loading import apply_overrides, config_from_dict, load_config, parse_yaml, read_yaml
from batchbench.config.lookups import keras_application_names
from batchbench.config.schema import AXES, Config, SweepSpec, TargetSpec
from batchbench.config.settings import diff_settings, file_digest
from batchbench.config.values import folder_name, show

__all__ = [
    "AXES", "Config", "SweepSpec", "TargetSpec", "apply_overrides", "config_from_dict", "diff_settings",
    "file_digest", "folder_name", "keras_application_names", "load_config", "parse_yaml", "read_yaml", "show",
    "static_checks",
]
