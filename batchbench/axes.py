"""The sweep axes, in one place. An axis is a sweep key whose values multiply the groups
(precision × XLA × backend × strategy); its name is the config key under `sweep`, the
command-line option (`--precision float32,mixed_bfloat16`), the results column and the
`|axis=value` part of a group key. The CLI, the rows, the column spec, the launcher, compare
and report all read this list; adding an axis is an entry here, its field in
config/schema.py, and its effect in the worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[Any, ...]   # the allowed values (empty: any positive whole number)
    default: Any
    meaning: str              # the option's help and the column's meaning

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def choices(self) -> str:
        if not self.values:  # an open axis: any positive whole number
            return "positive whole numbers"
        return ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in self.values)


PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "float16", "bfloat16")
JIT_COMPILE = (True, False, "auto")
BACKENDS = ("tensorflow", "jax", "torch")
STRATEGIES = ("default", "mirrored")

SPEC: tuple[Axis, ...] = (
    Axis("precision", PRECISIONS, "float32", "the Keras dtype policy"),
    Axis("jit_compile", JIT_COMPILE, "auto", "XLA compilation: true, false or auto (Keras decides)"),
    Axis("backend", BACKENDS, "tensorflow", "the Keras backend"),
    Axis("strategy", STRATEGIES, "default", "default, or mirrored (tf.distribute.MirroredStrategy)"),
    # None: the data's own length. A length fills the models' None time dimension (synthetic data,
    # or a data.callable that takes `sequence_length`).
    Axis("sequence_length", (), None, "tokens per sample: the length the model's None time dimension takes"),
)
AXES: tuple[str, ...] = tuple(a.name for a in SPEC)
BY_NAME = {a.name: a for a in SPEC}
