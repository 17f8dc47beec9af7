"""The config as pydantic models: every key, its type, its default and its validator.

Each set of allowed words is one tuple here; the field types are made from it, and messages
list the choices from the same tuple."""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)

from batchbench.axes import AXES, BACKENDS, JIT_COMPILE, PRECISIONS, STRATEGIES
from batchbench.axes import BY_NAME as AXIS
from batchbench.config.settings import measured_settings, settings_hash
from batchbench.config.values import (
    MAX_NAME_LENGTH,
    Int,
    KeyedError,
    Num,
    axis_list,
    batch_size_list,
    either,
    is_folder_name,
    length_list,
    plain,
    positive_int,
    reference,
    show,
)
from batchbench.units import parse_fraction, parse_size

BUILTIN_MODELS = ("mlp", "cnn")
MODES = ("fit", "predict")
METHODS = ("predict", "serve")
LR_SCALINGS = ("none", "linear", "sqrt")
PERCENTILES = (50, 90, 95, 99, 100)  # the latencies a row records
# The axes' values live with the axes (batchbench/axes.py), the fields here.
MODEL_SOURCES = ("builtin", "application", "path", "factory")
DATA_SOURCES = ("synthetic", "npz", "csv", "callable", "image_dir")
COLOR_MODES = ("rgb", "grayscale", "rgba")
IMAGE_LABELS = ("inferred", "none")
# Sources read through tf.data (TensorFlow only); a data.callable may return a tf.data.Dataset too.
TF_DATA_SOURCES = ("image_dir",)

Builtin = Literal[*BUILTIN_MODELS]
Mode = Literal[*MODES]
Method = Literal[*METHODS]
LrScaling = Literal[*LR_SCALINGS]
Precision = Literal[*PRECISIONS]
JitCompile = Literal[*JIT_COMPILE]
Backend = Literal[*BACKENDS]
Strategy = Literal[*STRATEGIES]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _OneSource(_Strict):
    """A section that takes exactly one of its ``sources`` (the model: builtin, path, ...)."""

    sources: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _one_source(self) -> _OneSource:
        given = [f for f in self.sources if getattr(self, f) is not None]
        if len(given) != 1:
            found = " and ".join(given) if given else "none of them"
            raise KeyedError("", f"got {found}, expected exactly one of {either(self.sources)}")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        # The sources not chosen are left out, not written as null: `synthetic: null` beside `npz:` would
        # read back as a bare `synthetic:` (all defaults) and so as two sources.
        return {k: v for k, v in handler(self).items() if not (k in self.sources and getattr(self, k) is None)}

    @property
    def source(self) -> str:
        return next(key for key in self.sources if getattr(self, key) is not None)


# ---------------------------------------------------------------- model
class OptimizerSpec(BaseModel):
    """``{name, learning_rate, ...}``; other keys go to the optimizer as they are (beta_1, momentum)."""

    model_config = ConfigDict(extra="allow")
    name: str
    learning_rate: Num | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _misspelled_learning_rate(self) -> OptimizerSpec:
        for key in self.model_extra or {}:
            if key in ("lr", "learningrate", "rate") or difflib.get_close_matches(key, ["learning_rate"], cutoff=0.8):
                raise KeyedError(f".{key}", "unknown key, did you mean 'learning_rate'?")
            plain(self.model_extra[key], f".{key}")
        return self


def _optimizer_kind(value: Any) -> str | None:
    # A dict when validating, an OptimizerSpec when serializing.
    if isinstance(value, str):
        return "name"
    return "spec" if isinstance(value, (dict, OptimizerSpec)) else None


# Tags of tagged unions appear in pydantic's error locations; they are not keys the user wrote.
UNION_TAGS = {"~name", "~spec"}

Optimizer = Annotated[
    Union[Annotated[str, Tag("~name")], Annotated[OptimizerSpec, Tag("~spec")]],  # noqa: UP007 - tags need Union
    Discriminator(
        lambda v: None if _optimizer_kind(v) is None else "~" + _optimizer_kind(v),
        custom_error_type="optimizer_type",
        custom_error_message="expected an optimizer name such as adam, or {name: adam, learning_rate: 0.001}",
    ),
]


class CompileSpec(_Strict):
    optimizer: Optimizer = "adam"
    loss: str | None = None
    metrics: list[str] = Field(default_factory=list)

    @field_validator("metrics", mode="before")
    @classmethod
    def _one_metric(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ModelSpec(_OneSource):
    sources = MODEL_SOURCES

    builtin: Builtin | None = None
    application: str | None = None
    path: str | None = None
    factory: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    compile: CompileSpec | None = None
    input_shape: list[Int] | None = None

    @field_validator("factory")
    @classmethod
    def _factory_form(cls, value: str | None) -> str | None:
        return reference(value)

    @field_validator("kwargs", mode="before")
    @classmethod
    def _plain_kwargs(cls, value: Any) -> Any:
        return plain(value)

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if not value:
                raise ValueError("got an empty list, expected the input's dimensions such as [96, 96, 3]")
            for i, dim in enumerate(value):
                positive_int(dim, f"[{i}]")
        return value

    @property
    def label(self) -> str:
        """What the results call this model."""
        if self.path is not None:
            return Path(self.path).name
        return str(getattr(self, self.source))


# ---------------------------------------------------------------- data
class SyntheticSpec(_Strict):
    samples: Int = Field(default=1024, gt=0)
    num_classes: Int | None = Field(default=None, gt=1)
    input_shape: list[Int] | None = None


class NpzSpec(_Strict):
    path: str
    x: str = "x"
    y: str = "y"


class CsvSpec(_Strict):
    path: str
    target: str
    features: list[str] | None = None


class CallableSpec(_Strict):
    function: str
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("function")
    @classmethod
    def _function_form(cls, value: str) -> str:
        return reference(value)

    @field_validator("kwargs", mode="before")
    @classmethod
    def _plain_kwargs(cls, value: Any) -> Any:
        return plain(value)


class ImageDirSpec(_Strict):
    """A folder read by keras.utils.image_dataset_from_directory: one subfolder per class
    (labels: inferred), or images anywhere under it (labels: none, predict only)."""

    path: str
    image_size: list[Int] = Field(default_factory=lambda: [256, 256])
    color_mode: Literal[*COLOR_MODES] = "rgb"
    labels: Literal[*IMAGE_LABELS] = "inferred"

    @field_validator("labels", mode="before")
    @classmethod
    def _no_labels(cls, value: Any) -> Any:
        return "none" if value is None else value

    @field_validator("image_size")
    @classmethod
    def _size(cls, value: list[int]) -> list[int]:
        if len(value) != 2:
            raise ValueError(f"got {len(value)} number(s), expected [height, width]")
        for i, dim in enumerate(value):
            positive_int(dim, f"[{i}]")
        return value


class DataSpec(_OneSource):
    sources = DATA_SOURCES

    synthetic: SyntheticSpec | None = None
    npz: NpzSpec | None = None
    csv: CsvSpec | None = None
    callable: CallableSpec | None = None
    image_dir: ImageDirSpec | None = None
    validation_split: Num = Field(default=0.0, ge=0.0, lt=1.0)

    @model_validator(mode="before")
    @classmethod
    def _bare_synthetic(cls, data: Any) -> Any:
        # `synthetic:` with nothing under it (or `synthetic: true`) means "all defaults".
        if isinstance(data, dict) and data.get("synthetic", False) in (None, True):
            data = {**data, "synthetic": {}}
        return data


# ---------------------------------------------------------------- device
_DEVICE_RE = re.compile(r"^(auto|cpu|gpu|gpu:\d+(,\d+)*)$")


class DeviceSpec(_Strict):
    use: str = "auto"
    logical_devices: Int | None = Field(default=None, gt=0)

    @field_validator("use", mode="before")
    @classmethod
    def _use(cls, value: Any) -> str:
        text = str(value).strip().lower().replace(" ", "") if isinstance(value, str) else None
        if text is None or not _DEVICE_RE.match(text):
            raise ValueError(f"got {show(value)}, expected auto, cpu, gpu, gpu:N or a list of GPUs such as gpu:0,1")
        return text

    @property
    def gpu_indices(self) -> list[int] | None:
        """None: all GPUs; [] none; else the listed ones."""
        if self.use == "cpu":
            return []
        if self.use in ("auto", "gpu"):
            return None
        return [int(i) for i in self.use.split(":", 1)[1].split(",")]


# ---------------------------------------------------------------- sweep
class StabilitySpec(_Strict):
    window_steps: Int = Field(default=10, gt=0)
    tolerance: Num = Field(default=0.10, gt=0, lt=1)
    max_windows: Int = Field(default=6, ge=3)  # rounds, not one trial's windows, carry the noise


class RoundsSpec(_Strict):
    """How many rounds each point is measured in: the first in a fresh trial process per point,
    the later ones in a seeded random order, a group's points sharing one process per round
    (`shared`). After `min` rounds, a point gets more (up to `max`) while
    its 95% interval's half-width is wider than `rel_half_width` of its throughput."""

    min: Int = Field(default=3, gt=0)
    max: Int = Field(default=6, gt=0)
    rel_half_width: Num = Field(default=0.05, gt=0, lt=1)
    # Rounds after the first run a group's points in one process per round (rounds.py's doc);
    # false: one fresh process per point in every round.
    shared: bool = True

    @model_validator(mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(f"got {value}, expected a whole number of rounds of at least 1")
            return {"min": value, "max": value}  # a fixed number of rounds
        return value

    @model_validator(mode="after")
    def _order(self) -> RoundsSpec:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self

    @property
    def fixed(self) -> bool:
        return self.min == self.max


class TargetSpec(_Strict):
    metric: str
    value: Num
    max_epochs: Int = Field(default=20, gt=0)


class SweepSpec(_Strict):
    batch_sizes: list[int]
    modes: list[Mode] = Field(default_factory=lambda: list(MODES))
    methods: list[Method] = Field(default_factory=lambda: list(METHODS))
    epochs: Int | None = Field(default=None, gt=0)
    repeats: Int = Field(default=3, gt=0)
    rounds: RoundsSpec = Field(default_factory=RoundsSpec)
    max_time_s: Num | None = Field(default=None, gt=0)
    seed: Int = 0
    warmup_steps: Int = Field(default=2, ge=0)
    min_steps: Int = Field(default=5, gt=0)
    min_time_s: Num = Field(default=0.25, ge=0)
    trial_timeout_s: Num = Field(default=900.0, gt=0)
    stability: StabilitySpec = Field(default_factory=StabilitySpec)
    slo_ms: Num | None = Field(default=None, gt=0)
    percentile: Num = Field(default=99.0, gt=0, le=100)
    find_max: bool = False
    search_granularity: Int = Field(default=8, gt=0)
    margin: float = 0.0
    memory_limit: int | None = None
    memory_fraction: Num = Field(default=0.9, gt=0, le=1)
    device_memory_limit: int | None = None
    lr_scaling: LrScaling = "none"
    base_batch_size: Int | None = Field(default=None, gt=0)
    lr_warmup_epochs: Int = Field(default=0, ge=0)
    target: TargetSpec | None = None
    precision: list[Precision] = Field(default_factory=lambda: [AXIS["precision"].default])
    jit_compile: list[JitCompile] = Field(default_factory=lambda: [AXIS["jit_compile"].default])
    backend: list[Backend] = Field(default_factory=lambda: [AXIS["backend"].default])
    strategy: list[Strategy] = Field(default_factory=lambda: [AXIS["strategy"].default])
    sequence_length: list[int] | None = None  # None: the data's own length (axes() gives [None])
    input_bound_check: bool = True  # the compute-only phase (input_bound_ratio), once per pipeline point

    @field_validator("percentile")
    @classmethod
    def _percentile(cls, value: float) -> float:
        if value not in PERCENTILES:
            raise ValueError(f"got {value:g}, expected {either(PERCENTILES)} (the latencies a row records)")
        return value

    @field_validator("batch_sizes", mode="before")
    @classmethod
    def _batch_sizes(cls, value: Any) -> list[int]:
        return batch_size_list(value)

    @field_validator("margin", mode="before")
    @classmethod
    def _margin(cls, value: Any) -> float:
        return parse_fraction(value)

    @field_validator("memory_limit", "device_memory_limit", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int | None:
        return None if value is None else parse_size(value)

    @field_validator("modes", "methods", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if isinstance(value, list):
            if not value:
                raise ValueError("got an empty list, expected at least one value")
            value = list(dict.fromkeys(value)) if all(isinstance(v, str) for v in value) else value
        return value

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, value: Any) -> list[str]:
        return axis_list(value, PRECISIONS)

    @field_validator("jit_compile", mode="before")
    @classmethod
    def _jit(cls, value: Any) -> list:
        def normal(v: Any) -> Any:
            return v.lower() == "true" if isinstance(v, str) and v.lower() in ("true", "false") else v

        return axis_list([normal(v) for v in value] if isinstance(value, list) else normal(value), JIT_COMPILE)

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, value: Any) -> list[str]:
        return axis_list(value, BACKENDS)

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, value: Any) -> list[str]:
        return axis_list(value, STRATEGIES)

    @field_validator("sequence_length", mode="before")
    @classmethod
    def _sequence_length(cls, value: Any) -> list[int] | None:
        return None if value is None else length_list(value)


class ServingSpec(_Strict):
    """`batchbench serving`: dynamic batching under load. `slo_ms` is a per-request budget,
    queueing included; it never inherits `sweep.slo_ms` (a per-batch budget)."""

    slo_ms: Num | None = Field(default=None, gt=0)
    percentile: Num = Field(default=99.0, gt=0, lt=100)
    max_batch_sizes: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    timeouts_ms: list[Num] = Field(default_factory=lambda: [0.0, 1.0, 2.0, 5.0, 10.0])
    rates: list[Num] | None = None
    num_batch_threads: Int = Field(default=1, gt=0)
    measure_top: Int = Field(default=3, gt=0)
    min_duration_s: Num = Field(default=1.0, gt=0)
    max_duration_s: Num = Field(default=4.0, gt=0)
    rel_tol: Num = Field(default=0.05, gt=0)
    max_points: Int = Field(default=8, gt=1)
    confirm_repeats: Int = Field(default=2, gt=0)
    confirm_duration_s: Num = Field(default=5.0, gt=0)

    @field_validator("max_batch_sizes", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> list[int]:
        return batch_size_list(value)

    @field_validator("timeouts_ms", "rates", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and not value:
            raise ValueError("got an empty list, expected at least one number")
        return value

    @field_validator("timeouts_ms")
    @classmethod
    def _timeouts(cls, value: list[float]) -> list[float]:
        for i, v in enumerate(value):
            if v < 0:
                raise KeyedError(f"[{i}]", f"got {v:g}, expected a timeout of 0 ms or more")
        return sorted(set(value))

    @field_validator("rates")
    @classmethod
    def _rates(cls, value: list[float] | None) -> list[float] | None:
        for i, v in enumerate(value or []):
            if v <= 0:
                raise KeyedError(f"[{i}]", f"got {v:g}, expected a request rate above 0 (requests per second)")
        return sorted(set(value)) if value else value


class OutputSpec(_Strict):
    dir: str = "results"
    plots: bool = True
    mlflow: str | None = Field(default=None, min_length=1)       # a tracking URI: the run is filed there too
    tensorboard: str | None = Field(default=None, min_length=1)  # a folder: TensorBoard HParams logs


class Config(_Strict):
    name: str = "batchbench"
    model: ModelSpec
    data: DataSpec = Field(default_factory=lambda: DataSpec(synthetic=SyntheticSpec()))
    sweep: SweepSpec
    device: DeviceSpec = Field(default_factory=DeviceSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    serving: ServingSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_folder_name(value):
            raise ValueError(f"got {show(value)}, expected a folder name: letters, digits, '.', '-' or '_', "
                             f"not starting with '.', at most {MAX_NAME_LENGTH} characters (it names a folder "
                             "under output.dir)")
        return value

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> Any:
        return {"use": value} if isinstance(value, (str, int)) else value

    # Filled in by load_config, not by the user (messages tell them apart by exclude=True).
    source_file: str | None = Field(default=None, exclude=True)
    base_dir: str = Field(default=".", exclude=True)

    def axes(self) -> dict[str, list]:
        return {axis: list(getattr(self.sweep, axis) or [AXIS[axis].default]) for axis in AXES}

    @model_validator(mode="after")
    def _data_fits_sweep(self) -> Config:
        source = self.data.source
        if source in TF_DATA_SOURCES:
            other = [b for b in self.sweep.backend if b != "tensorflow"]
            if other:
                raise KeyedError("sweep.backend", f"got {either(other)}, but data.{source} is read with tf.data, "
                                 "which runs on TensorFlow only: use backend tensorflow")
        if self.sweep.sequence_length and source not in ("synthetic", "callable"):
            raise KeyedError("sweep.sequence_length", f"data.{source} has one fixed length; sequence_length needs "
                             "synthetic data (made per length) or a data.callable that takes sequence_length")
        if source == "image_dir" and self.data.image_dir.labels == "none" and "fit" in self.sweep.modes:
            raise KeyedError("data.image_dir.labels", "got none, but fit needs labels: use labels: inferred "
                             "(one subfolder per class) or modes: [predict]")
        return self

    def varying_axes(self) -> list[str]:
        return [axis for axis, values in self.axes().items() if len(values) > 1]

    def resolved(self) -> dict[str, Any]:
        """The config as it will run: defaults filled in, paths absolute (output.dir too: a relative
        one is the working directory's), only the chosen model and data source. It reads back as the
        same config: ``config_from_dict(config.resolved())``."""
        data = json.loads(self.model_dump_json())
        if data.get("serving") is None:
            data.pop("serving", None)  # a sweep's settings (and so its hash) stay as they were
        if data["sweep"].get("sequence_length") is None:
            data["sweep"].pop("sequence_length", None)  # likewise for a sweep without the length axis
        if data["sweep"].get("input_bound_check") is True:
            data["sweep"].pop("input_bound_check")  # and with the input-bound diagnosis on (the default)
        data["output"]["dir"] = os.path.abspath(os.path.expanduser(data["output"]["dir"]))
        return data

    def measured_settings(self) -> dict[str, Any]:
        """Everything that changes what a trial measures -- model, data, sweep, device -- and not
        where results go or what they are called (output, name): a run folder's identity for
        --resume. Paths are relative to the config's folder, so the same project checked out
        elsewhere matches; the content of a model or data file is in ``model.digest`` /
        ``data.digest`` (sha256), so a swapped file does not; so is the user's factory or loader
        (``code_digest``)."""
        code = {"model": self.model.factory, "data": self.data.callable and self.data.callable.function}
        return measured_settings(self.resolved(), self.base_dir, code)

    def measurement_hash(self) -> str:
        """sha256 (its first 16 hex digits) of measured_settings() as canonical JSON."""
        return settings_hash(self.measured_settings())
