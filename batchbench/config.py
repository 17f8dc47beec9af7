"""YAML -> validated config objects. Plain Python: never imports TensorFlow.

Every error reads ``<file>: <key.path>: <what was found>, <what was expected>``; a config with
several problems gets one such line per problem, under a count."""

from __future__ import annotations

import ast
import copy
import difflib
import hashlib
import importlib.machinery
import importlib.util
import json
import math
import os
import re
import sys
import types
from pathlib import Path
from stat import S_ISREG
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from batchbench.errors import ConfigError
from batchbench.units import (
    MAX_BATCH_SIZE,
    check_batch_size_count,
    parse_batch_sizes,
    parse_fraction,
    parse_size,
    powers_of_two,
)

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "float16", "bfloat16")
BACKENDS = ("tensorflow", "jax", "torch")
STRATEGIES = ("default", "mirrored")
AXES = ("precision", "jit_compile", "backend", "strategy")
MODEL_SOURCES = ("builtin", "application", "path", "factory")
DATA_SOURCES = ("synthetic", "npz", "csv", "callable")
MODEL_FILE_SUFFIXES = (".keras", ".h5", ".hdf5")

# A config is a few KiB of plain YAML. These bounds keep hostile or broken files (billion laughs,
# deep nesting, huge integers) from reaching the validator, and so from ever reaching a worker.
MAX_CONFIG_BYTES = 2**20
MAX_YAML_NODES = 100_000  # values after aliases are expanded
MAX_YAML_DEPTH = 64  # nesting levels, aliases expanded
MAX_INT_DIGITS = 100


class KeyedError(ValueError):
    """A validation error that belongs to a sub-key of the field (e.g. ``[2]`` or ``.min``)."""

    def __init__(self, subkey: str, message: str):
        super().__init__(message)
        self.subkey = subkey


def show(value: Any) -> str:
    """A found value as the user wrote it in YAML (null, true, 'text', [1, 2]), kept short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode reads `true` as 1; in a config that is always a mistake.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")  # _describe words it from the field's type
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Num = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


def _exactly_one(obj: BaseModel, fields: tuple[str, ...]) -> None:
    given = [f for f in fields if getattr(obj, f) is not None]
    if len(given) != 1:
        found = " and ".join(given) if given else "none of them"
        raise KeyedError("", f"got {found}, expected exactly one of {_either(fields)}")


def _chosen_source_only(obj: BaseModel, data: dict, fields: tuple[str, ...]) -> dict:
    # The sources not chosen are left out, not written as null: `synthetic: null` beside `npz:` would
    # read back as a bare `synthetic:` (all defaults) and so as two sources.
    return {k: v for k, v in data.items() if not (k in fields and getattr(obj, k) is None)}


def _either(values) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def _positive_int(value: Any, subkey: str = "") -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise KeyedError(subkey, f"got {show(value)}, expected a positive integer")
    return value


def _reference(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", value):
        raise ValueError(f"got {show(value)}, expected 'module:function' (e.g. mymodels:build)")
    return value


def _plain(value: Any, subkey: str = "", within: tuple[int, ...] = ()) -> Any:
    """``value`` when it is plain data that travels to the worker as JSON unchanged: text, numbers,
    true/false, null, lists and mappings with text keys (so no NaN, dates, bytes or cycles)."""
    if isinstance(value, (list, tuple, dict)):
        if id(value) in within:
            raise KeyedError(subkey, f"got a {type(value).__name__} that contains itself, expected plain values")
        if len(within) >= MAX_YAML_DEPTH:
            raise KeyedError(subkey, f"got values nested more than {MAX_YAML_DEPTH} levels deep, "
                                     "expected a flatter value")
        within = (*within, id(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise KeyedError(subkey, f"got {value}, expected a finite number")
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _plain(item, f"{subkey}[{i}]", within)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise KeyedError(subkey, f"got the key {show(key)}, expected text keys")
            _plain(item, f"{subkey}.{key}", within)
        return value
    raise KeyedError(subkey, f"got {type(value).__name__} {show(value)}, expected plain values: text, numbers, "
                             "true/false, null, lists and mappings")


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
            _plain(self.model_extra[key], f".{key}")
        return self


def _optimizer_kind(value: Any) -> str | None:
    # A dict when validating, an OptimizerSpec when serializing.
    if isinstance(value, str):
        return "name"
    return "spec" if isinstance(value, (dict, OptimizerSpec)) else None


# Tags of tagged unions appear in pydantic's error locations; they are not keys the user wrote.
_UNION_TAGS = {"~name", "~spec"}

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


class ModelSpec(_Strict):
    builtin: Literal["mlp", "cnn"] | None = None
    application: str | None = None
    path: str | None = None
    factory: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    compile: CompileSpec | None = None
    input_shape: list[Int] | None = None

    @field_validator("factory")
    @classmethod
    def _factory_form(cls, value: str | None) -> str | None:
        return _reference(value)

    @field_validator("kwargs", mode="before")
    @classmethod
    def _plain_kwargs(cls, value: Any) -> Any:
        return _plain(value)

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if not value:
                raise ValueError("got an empty list, expected the input's dimensions such as [96, 96, 3]")
            for i, dim in enumerate(value):
                _positive_int(dim, f"[{i}]")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        _exactly_one(self, MODEL_SOURCES)
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        return _chosen_source_only(self, handler(self), MODEL_SOURCES)

    @property
    def source(self) -> str:
        for key in MODEL_SOURCES:
            if getattr(self, key) is not None:
                return key
        raise AssertionError("validated model has a source")

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
        return _reference(value)

    @field_validator("kwargs", mode="before")
    @classmethod
    def _plain_kwargs(cls, value: Any) -> Any:
        return _plain(value)


class DataSpec(_Strict):
    synthetic: SyntheticSpec | None = None
    npz: NpzSpec | None = None
    csv: CsvSpec | None = None
    callable: CallableSpec | None = None
    validation_split: Num = Field(default=0.0, ge=0.0, lt=1.0)

    @model_validator(mode="before")
    @classmethod
    def _bare_synthetic(cls, data: Any) -> Any:
        # `synthetic:` with nothing under it (or `synthetic: true`) means "all defaults".
        if isinstance(data, dict) and data.get("synthetic", False) in (None, True):
            data = {**data, "synthetic": {}}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        _exactly_one(self, DATA_SOURCES)
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        return _chosen_source_only(self, handler(self), DATA_SOURCES)

    @property
    def source(self) -> str:
        return next(k for k in DATA_SOURCES if getattr(self, k) is not None)


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
    max_windows: Int = Field(default=12, ge=3)


class TargetSpec(_Strict):
    metric: str
    value: Num
    max_epochs: Int = Field(default=20, gt=0)


def _axis_list(value: Any, allowed: tuple) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError("got an empty list, expected at least one value")
    out = []
    for i, item in enumerate(values):
        if not any(a == item and type(a) is type(item) for a in allowed):
            sub = f"[{i}]" if isinstance(value, list) else ""
            raise KeyedError(sub, f"got {show(item)}, expected {_either(show(a).strip(chr(39)) for a in allowed)}")
        if item not in out:
            out.append(item)
    return out


def _batch_size(value: Any, subkey: str) -> int:
    size = _positive_int(value, subkey)
    if size > MAX_BATCH_SIZE:
        raise KeyedError(subkey, f"got {show(value)}, expected a batch size of at most {MAX_BATCH_SIZE:,} (2**24)")
    return size


def _batch_size_range(value: dict) -> list[int]:
    for key in value:
        if key not in ("min", "max"):
            guess = difflib.get_close_matches(str(key), ["min", "max"], n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else "expected min and max"
            raise KeyedError(f".{key}", f"unknown key, {hint}")
    for key in ("min", "max"):
        if key not in value:
            raise KeyedError(f".{key}", "missing, expected both min and max (e.g. {min: 8, max: 256})")
        _batch_size(value[key], f".{key}")
    low, high = int(value["min"]), int(value["max"])
    if low > high:
        raise KeyedError("", f"got min {low} larger than max {high}, expected min <= max")
    try:
        return powers_of_two(low, high)
    except ValueError as exc:
        raise KeyedError("", str(exc)) from None


class SweepSpec(_Strict):
    batch_sizes: list[int]
    modes: list[Literal["fit", "predict"]] = Field(default_factory=lambda: ["fit", "predict"])
    methods: list[Literal["predict", "serve"]] = Field(default_factory=lambda: ["predict", "serve"])
    epochs: Int | None = Field(default=None, gt=0)
    repeats: Int = Field(default=7, gt=0)
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
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    base_batch_size: Int | None = Field(default=None, gt=0)
    lr_warmup_epochs: Int = Field(default=0, ge=0)
    target: TargetSpec | None = None
    precision: list[str] = Field(default_factory=lambda: ["float32"])
    jit_compile: list[bool | Literal["auto"]] = Field(default_factory=lambda: ["auto"])
    backend: list[str] = Field(default_factory=lambda: ["tensorflow"])
    strategy: list[str] = Field(default_factory=lambda: ["default"])

    @field_validator("percentile")
    @classmethod
    def _percentile(cls, value: float) -> float:
        if value not in (50, 90, 95, 99, 100):
            raise ValueError(f"got {value:g}, expected 50, 90, 95, 99 or 100 (the latencies a row records)")
        return value

    @field_validator("batch_sizes", mode="before")
    @classmethod
    def _batch_sizes(cls, value: Any) -> list[int]:
        if isinstance(value, dict):
            return _batch_size_range(value)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, str):
            try:
                return parse_batch_sizes(value)
            except ValueError as exc:
                raise KeyedError("", str(exc)) from None
        if not isinstance(value, list):
            raise ValueError(f"got {show(value)}, expected a list such as [8, 16, 32] or a range {{min: 8, max: 256}}")
        if not value:
            raise ValueError("got an empty list, expected at least one batch size such as [8, 16, 32]")
        sizes = sorted({_batch_size(v, f"[{i}]") for i, v in enumerate(value)})
        try:
            return check_batch_size_count(sizes)
        except ValueError as exc:
            raise KeyedError("", str(exc)) from None

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
        return _axis_list(value, PRECISIONS)

    @field_validator("jit_compile", mode="before")
    @classmethod
    def _jit(cls, value: Any) -> list:
        def normal(v: Any) -> Any:
            return v.lower() == "true" if isinstance(v, str) and v.lower() in ("true", "false") else v

        return _axis_list([normal(v) for v in value] if isinstance(value, list) else normal(value),
                          (True, False, "auto"))

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, value: Any) -> list[str]:
        return _axis_list(value, BACKENDS)

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, value: Any) -> list[str]:
        return _axis_list(value, STRATEGIES)


class OutputSpec(_Strict):
    dir: str = "results"
    plots: bool = True


# A run is written under output.dir/<name>/: one plain folder, never '.', '..' or hidden.
_NAME_RE = re.compile(r"[\w\-][\w.\-]*")
MAX_NAME_LENGTH = 100


def folder_name(text: str, fallback: str = "batchbench") -> str:
    """A safe run name made from ``text`` (a file stem, a model reference): characters outside
    letters, digits, '.', '-' and '_' become '_', leading dots go, and it is cut to length."""
    name = re.sub(r"[^\w.\-]", "_", text).lstrip(".")[:MAX_NAME_LENGTH]
    return name if name and _NAME_RE.fullmatch(name) else fallback


class Config(_Strict):
    name: str = "batchbench"
    model: ModelSpec
    data: DataSpec = Field(default_factory=lambda: DataSpec(synthetic=SyntheticSpec()))
    sweep: SweepSpec
    device: DeviceSpec = Field(default_factory=DeviceSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value) or len(value) > MAX_NAME_LENGTH:
            raise ValueError(f"got {show(value)}, expected a folder name: letters, digits, '.', '-' or '_', "
                             f"not starting with '.', at most {MAX_NAME_LENGTH} characters (it names a folder "
                             "under output.dir)")
        return value

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> Any:
        return {"use": value} if isinstance(value, (str, int)) else value

    # Filled in by load_config, not by the user.
    source_file: str | None = Field(default=None, exclude=True)
    base_dir: str = Field(default=".", exclude=True)

    def axes(self) -> dict[str, list]:
        return {axis: list(getattr(self.sweep, axis)) for axis in AXES}

    def varying_axes(self) -> list[str]:
        return [axis for axis, values in self.axes().items() if len(values) > 1]

    def resolved(self) -> dict[str, Any]:
        """The config as it will run: defaults filled in, paths absolute (output.dir too: a relative
        one is the working directory's), only the chosen model and data source. It reads back as the
        same config: ``config_from_dict(config.resolved())``."""
        data = json.loads(self.model_dump_json())
        data["output"]["dir"] = os.path.abspath(os.path.expanduser(data["output"]["dir"]))
        return data

    def measured_settings(self) -> dict[str, Any]:
        """Everything that changes what a trial measures -- model, data, sweep, device -- and not
        where results go or what they are called (output, name): a run folder's identity for
        --resume. Paths are relative to the config's folder, so the same project checked out
        elsewhere matches; the content of a model or data file is in ``model.digest`` /
        ``data.digest`` (sha256), so a swapped file does not."""
        settings = self.resolved()
        for key in ("output", "name"):
            settings.pop(key, None)
        for section, spec in (("model", settings["model"]), ("data", settings["data"].get("npz")),
                              ("data", settings["data"].get("csv"))):
            if spec is not None and spec.get("path") is not None:
                settings[section]["digest"] = file_digest(spec["path"])
                spec["path"] = Path(os.path.relpath(spec["path"], self.base_dir)).as_posix()
        # The user's own code is measured too: an edited factory or loader is a changed setting.
        for section, ref in (("model", self.model.factory),
                             ("data", self.data.callable and self.data.callable.function)):
            spec = _find_module(ref.partition(":")[0], self.base_dir) if ref else None
            if spec is not None and spec.origin and spec.origin.endswith(".py"):
                settings[section]["code_digest"] = file_digest(spec.origin)
        return settings

    def measurement_hash(self) -> str:
        """sha256 (its first 16 hex digits) of measured_settings() as canonical JSON."""
        return hashlib.sha256(_canonical(self.measured_settings()).encode()).hexdigest()[:16]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def diff_settings(old: dict, new: dict) -> list[str]:
    """The dotted keys whose values differ between two measured_settings() (a key only one side has
    counts), in the order they appear, e.g. ["sweep.repeats", "data.digest"]; [] when they match.
    Lists are compared whole: a changed batch size list is "sweep.batch_sizes"."""
    changed: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in [*a, *(k for k in b if k not in a)]:
                where = f"{prefix}.{key}" if prefix else str(key)
                if key not in a or key not in b:
                    changed.append(where)
                else:
                    walk(a[key], b[key], where)
        elif _canonical(a) != _canonical(b):  # as the hash sees them: true is not 1
            changed.append(prefix)

    walk(old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}, "")
    return changed


# ---------------------------------------------------------------- file digests
_DIGEST_CHUNK = 2**20
_digests: dict[tuple, str] = {}  # (path, inode, mtime, size) -> digest, for this process


def file_digest(path: str | Path) -> str | None:
    """'sha256:<hex>' of a file's bytes, read in 1 MiB chunks and remembered per path, mtime and
    size; for a folder (a SavedModel), of every file's relative path and digest. None when there is
    nothing readable there."""
    p = Path(path)
    try:
        if p.is_dir():
            return _folder_digest(p)
        stat = p.stat()
        if not S_ISREG(stat.st_mode):
            return None  # a FIFO or a device would never end
        key = (str(p.resolve()), stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if key not in _digests:
            digest = hashlib.sha256()
            with p.open("rb") as stream:
                while chunk := stream.read(_DIGEST_CHUNK):
                    digest.update(chunk)
            _digests[key] = "sha256:" + digest.hexdigest()
        return _digests[key]
    except OSError:
        return None


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            file = Path(root, name)
            digest.update(f"{file.relative_to(folder).as_posix()}\0{file_digest(file)}\n".encode())
    return "sha256:" + digest.hexdigest()


_INTERNAL_FIELDS = ("source_file", "base_dir")


# ---------------------------------------------------------------- describing errors
def _clean_loc(loc: tuple) -> tuple:
    return tuple(p for p in loc if not (isinstance(p, str) and (p.startswith("function-") or p in _UNION_TAGS)))


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in _clean_loc(loc):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(annotation: Any) -> tuple[Any, list]:
    """Strip Annotated and Optional; return the bare type and the constraints found on the way."""
    metadata: list = []
    while True:
        if get_origin(annotation) is Annotated:
            annotation, *extra = get_args(annotation)
            metadata.extend(extra)
        elif get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation, metadata
            annotation = members[0]
        else:
            return annotation, metadata


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_at(loc: tuple) -> tuple[Any, list] | None:
    """The annotation and constraints of the config key at ``loc`` (None: not a known key)."""
    annotation, metadata = Config, []
    for part in _clean_loc(loc):
        annotation, extra = _unwrap(annotation)
        if get_origin(annotation) in (Union, types.UnionType):
            annotation = next((a for a in map(lambda a: _unwrap(a)[0], get_args(annotation)) if _is_model(a)), None)
        if isinstance(part, int):
            if get_origin(annotation) is not list:
                return None
            annotation, metadata = get_args(annotation)[0], []
        elif _is_model(annotation):
            field = annotation.model_fields.get(part)
            if field is None or part in _INTERNAL_FIELDS:
                return None
            annotation, metadata = field.annotation, list(field.metadata)
        else:
            return None
    annotation, extra = _unwrap(annotation)
    return annotation, metadata + extra


def _known_keys(model: type[BaseModel]) -> list[str]:
    return [k for k in model.model_fields if k not in _INTERNAL_FIELDS]


def _key_homes() -> dict[str, list[str]]:
    """Every config key -> the sections it belongs to ('batch_sizes' -> ['sweep'], '' for the
    top level), for keys written at the wrong level."""
    homes: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name in _known_keys(model):
            homes.setdefault(name, []).append(prefix)
            annotation = _unwrap(model.model_fields[name].annotation)[0]
            if _is_model(annotation):
                walk(annotation, f"{prefix}.{name}" if prefix else name)

    walk(Config, "")
    return homes


def _bounds(metadata: list) -> str:
    words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
    parts = []
    for item in metadata:
        for attr, word in words.items():
            bound = getattr(item, attr, None)
            if bound is not None and not isinstance(bound, bool):
                parts.append(f"{word} {bound:g}" if isinstance(bound, float) else f"{word} {bound}")
    return " and ".join(parts)


def _expected(annotation: Any, metadata: list) -> str:
    """A type in the user's words: 'a positive integer', 'fit or predict', 'true or false', ..."""
    bounds = _bounds(metadata)
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "a positive integer" if bounds == "greater than 0" else "an integer" + (f" {bounds}" if bounds else "")
    if annotation is float:
        return "a number" + (f" {bounds}" if bounds else "")
    if annotation is str:
        return "a string"
    if get_origin(annotation) is Literal:
        return _either(get_args(annotation))
    if get_origin(annotation) is list:
        return f"a list, each item {_expected(*_unwrap(get_args(annotation)[0]))}"
    if get_origin(annotation) is dict or annotation is dict:
        return "a mapping of keys to values"
    if _is_model(annotation):
        keys = _known_keys(annotation)
        return "a mapping with keys " + ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
    if get_origin(annotation) in (Union, types.UnionType):
        return " or ".join(_expected(*_unwrap(a)) for a in get_args(annotation) if a is not type(None))
    return str(annotation)


# What a missing required key should hold, where the type alone says too little.
_MISSING = {
    "model": "a model source: builtin, application, path or factory (e.g. model: {builtin: mlp})",
    "sweep": "a mapping with at least batch_sizes (e.g. sweep: {batch_sizes: [8, 16, 32]})",
    "sweep.batch_sizes": "a list such as [8, 16, 32] or a range {min: 8, max: 256}",
    "data.npz.path": "the path of an .npz file",
    "data.csv.path": "the path of a CSV file",
    "data.csv.target": "the name of the target column",
    "data.callable.function": "'module:function' returning (x, y)",
    "sweep.target.metric": "a metric name such as val_loss or accuracy",
    "sweep.target.value": "the metric value to reach",
    "model.compile.optimizer.name": "an optimizer name such as adam or sgd",
}


def _describe(error: dict) -> tuple[str, str]:
    """One pydantic error -> (key path, 'what was found, what was expected')."""
    loc = tuple(error["loc"])
    key = _format_loc(loc)
    kind = error["type"]
    found = error.get("input")
    if kind == "invalid_key":  # the location ends with the key itself
        return _format_loc(loc[:-1]), f"got the key {show(found)}, expected text keys"
    if kind == "extra_forbidden":
        parent = _field_at(loc[:-1])
        known = _known_keys(parent[0]) if parent and _is_model(parent[0]) else []
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        if guess:
            return key, f"unknown key, did you mean '{guess[0]}'?"
        homes = [home for home in _key_homes().get(str(loc[-1]), []) if home != _format_loc(loc[:-1])]
        if homes:
            where = _either(f"under {home}" if home else "at the top level" for home in homes)
            return key, f"unknown key here, expected it {where}"
        return key, "unknown key" + (f", expected one of {', '.join(known)}" if known else "")
    field = _field_at(loc)
    if kind == "missing":
        hint = _MISSING.get(key) or (_expected(*field) if field else "a value")
        return key, f"missing, expected {hint}"
    exc = (error.get("ctx") or {}).get("error")
    if isinstance(exc, KeyedError):
        return key + exc.subkey, str(exc)
    if isinstance(exc, Exception) and str(exc).startswith("got "):
        return key, str(exc)
    if kind == "optimizer_type":
        return key, f"got {show(found)}, {error['msg']}"
    if field is not None:
        return key, f"got {show(found)}, expected {_expected(*field)}"
    message = str(exc) if isinstance(exc, Exception) else error["msg"]
    return key, f"got {show(found)}, {message[:1].lower()}{message[1:]}"


def _problems_error(problems: list[tuple[str, str]], label: str | None) -> ConfigError:
    """One ConfigError for one or several (key, message) problems; ``problems`` stays on it."""
    if len(problems) == 1:
        error = ConfigError(problems[0][1], file=label, key=problems[0][0] or None)
    else:
        prefix = f"{label}: " if label else ""
        lines = "\n".join(f"  {prefix}{key}: {message}" if key else f"  {prefix}{message}"
                          for key, message in problems)
        error = ConfigError(f"{len(problems)} problems:\n{lines}", file=label)
    error.problems = problems
    return error


# ---------------------------------------------------------------- loading
_PATH_KEYS = (("model", "path"), ("data", "npz", "path"), ("data", "csv", "path"), ("output", "dir"))


def _resolve_paths(raw: dict, base_dir: Path) -> dict:
    data = copy.deepcopy(raw)
    for path_keys in _PATH_KEYS:
        node = data
        for k in path_keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(path_keys[-1]), str):
            p = Path(node[path_keys[-1]]).expanduser()
            node[path_keys[-1]] = str(p if p.is_absolute() else (base_dir / p).resolve())
    return data


def config_from_dict(raw: Any, source: str | None = None, base_dir: str | Path = ".") -> Config:
    """Validate an already-parsed mapping. ``source`` names the file in messages; relative paths
    are resolved against ``base_dir``."""
    label = source or "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"got {type(raw).__name__} {show(raw)}, expected a mapping with keys "
                          "name, model, data, sweep, device, output", file=label)
    base = Path(base_dir).resolve()
    data = _resolve_paths(raw, base)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _problems_error([_describe(e) for e in exc.errors()], label) from None
    config.source_file = source
    config.base_dir = str(base)
    if "name" not in raw and source:
        config.name = folder_name(Path(source).stem)
    return config


_YAML = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}


class _LimitError(yaml.MarkedYAMLError):
    """A file beyond what a config can be; the problem reads 'got ..., expected ...'."""

    def __init__(self, problem: str, mark):
        super().__init__(problem=problem, problem_mark=mark)


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag


class _ConfigLoader(yaml.SafeLoader):
    """The safe loader, bounded: a key given twice in one mapping is an error, not a silent overwrite;
    nesting, alias expansion and integers have limits; recursive aliases and tags beyond plain YAML
    are refused; an unquoted date stays text (no config key is a date, and every value travels to
    the worker as JSON)."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _YAML + "timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._open_anchors: set[str] = set()

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if event.anchor in self._open_anchors:
                raise _LimitError(f"got the alias *{event.anchor} inside its own anchor &{event.anchor}, "
                                  "expected aliases that do not contain themselves", event.start_mark)
            return super().compose_node(parent, index)
        event = self.peek_event()
        if self._depth >= MAX_YAML_DEPTH:
            raise _LimitError(f"got values nested more than {MAX_YAML_DEPTH} levels deep, "
                              "expected a flatter config", event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor in self.anchors:
            first = self.anchors[anchor].start_mark.line + 1
            raise _LimitError(f"got the anchor &{anchor} twice (first on line {first}), expected each anchor once",
                              event.start_mark)
        self._depth += 1
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(anchor)

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _bounded(node, {}, 1)
        return node

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # the values a constructor cannot make
            raise _LimitError(f"got {show(node.value) if isinstance(node.value, str) else 'a value'} that YAML "
                              f"cannot read ({exc}), expected plain YAML values", node.start_mark) from None

    def construct_yaml_int(self, node):
        digits = len(str(node.value).replace("_", "").lstrip("+-"))
        if digits > MAX_INT_DIGITS:
            raise _LimitError(f"got an integer of {digits} digits, expected at most {MAX_INT_DIGITS} digits",
                              node.start_mark)
        return super().construct_yaml_int(node)

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == _YAML + "merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"got the key {key!r} twice (first on line {first.line + 1}), "
                    "expected each key once", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_ConfigLoader.add_constructor(_YAML + "int", _ConfigLoader.construct_yaml_int)


def _bounded(node: yaml.Node, sizes: dict[int, tuple[int, int]], depth: int) -> tuple[int, int]:
    """(values, levels) under ``node`` with aliases expanded, refusing any beyond the limits and any
    tag beyond plain YAML. ``sizes`` holds nodes already counted (an alias is a shared node)."""
    known = sizes.get(id(node))
    if known is None:
        if node.tag not in _PLAIN_TAGS:
            raise _LimitError(f"got the YAML tag {_show_tag(node.tag)}, expected plain YAML: text, numbers, "
                              "true/false, null, lists and mappings (no tags such as !!python or !!binary)",
                              node.start_mark)
        count, levels = 1, 1
        children = node.value if isinstance(node, yaml.SequenceNode) else \
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
        for child in children:
            child_count, child_levels = _bounded(child, sizes, depth + 1)
            count, levels = count + child_count, max(levels, child_levels + 1)
            if count > MAX_YAML_NODES:
                raise _LimitError(f"got more than {MAX_YAML_NODES:,} values here once aliases are expanded, "
                                  "expected a config of a few hundred", node.start_mark)
        known = sizes[id(node)] = (count, levels)
    if depth - 1 + known[1] > MAX_YAML_DEPTH:
        raise _LimitError(f"got values nested more than {MAX_YAML_DEPTH} levels deep once aliases are expanded, "
                          "expected a flatter config", node.start_mark)
    return known


def parse_yaml(text: str, source: str = "config") -> Any:
    """YAML text -> plain data (dicts, lists, text, numbers, booleans, None) with every protection
    read_yaml has, or a ConfigError that names ``source`` (and the line)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"got {len(text):,} characters, expected a YAML config of at most "
                          f"{MAX_CONFIG_BYTES // 2**20} MiB", file=source)
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader subclass
    except _LimitError as exc:
        mark = exc.problem_mark
        raise ConfigError(exc.problem, file=source, key=f"line {mark.line + 1}, column {mark.column + 1}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = exc.problem or "invalid YAML"
        if isinstance(exc, yaml.constructor.ConstructorError):
            message = problem if problem.startswith("got ") else \
                f"YAML error: {problem}, expected plain YAML (text, numbers, lists and mappings)"
        else:
            tabs = " (YAML is indented with spaces, not tabs)" if "\\t" in problem else ""
            message = f"YAML syntax error: {problem}{tabs}"
        raise ConfigError(message, file=source, key=where) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(f"got the character #x{code:04x}, expected printable text (YAML allows no "
                          "control characters)", file=source, key=f"line {line}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {' '.join(str(exc).split())}", file=source) from None
    except RecursionError:  # the limits above should make this unreachable; never a traceback
        raise ConfigError(f"got values nested too deeply, expected at most {MAX_YAML_DEPTH} levels",
                          file=source) from None


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML of a config file, or a ConfigError that names the file (and the line)."""
    path = Path(path)
    label = str(path)
    if not path.exists():
        raise ConfigError("not found, expected the path of a YAML config file", file=label)
    if path.is_dir():
        raise ConfigError("is a folder, expected a YAML config file", file=label)
    try:
        with path.open("rb") as stream:
            blob = stream.read(MAX_CONFIG_BYTES + 1)  # bounded: the path may be /dev/zero or a huge file
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot be read ({reason}), expected a readable YAML config file", file=label) from None
    if len(blob) > MAX_CONFIG_BYTES:
        raise ConfigError(f"is larger than {MAX_CONFIG_BYTES // 2**20} MiB, expected a YAML config file "
                          "(a config is a few KiB)", file=label)
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text, expected a YAML config file", file=label) from None
    return parse_yaml(text, label)


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    raw = read_yaml(path)
    if raw is None:
        raise ConfigError("is empty, expected a mapping with at least model and sweep "
                          "(e.g. model: {builtin: mlp} and sweep: {batch_sizes: [8, 16, 32]})", file=str(path))
    return config_from_dict(raw, source=str(path), base_dir=path.parent)


def apply_overrides(config: Config, **overrides: Any) -> Config:
    """Command-line overrides of sweep keys (None means 'not given'), validated like the file itself;
    an error names the option (``--batch-sizes``), not the file."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return config
    raw = config.model_dump(mode="json")
    for key, value in given.items():
        raw["sweep"][key] = value
    try:
        updated = Config.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = _clean_loc(tuple(error["loc"]))
            _, message = _describe(error)
            option = loc[1] if len(loc) > 1 and loc[0] == "sweep" else loc[-1] if loc else "?"
            problems.append(("--" + str(option).replace("_", "-"), message))
        raise _problems_error(problems, None) from None
    updated.source_file, updated.base_dir = config.source_file, config.base_dir
    return updated


# ---------------------------------------------------------------- checks beyond the schema
def static_checks(config: Config, check_output_dir: bool = True) -> None:
    """Checks that need the file system but not TensorFlow: files exist, factories are findable,
    application names are real, output.dir can be written (unless ``check_output_dir`` is False:
    the run goes to --out instead). Every problem is reported at once."""
    problems: list[tuple[str, str]] = []
    model = config.model
    if model.path is not None:
        problems += _check_model_path(model.path)
    for key, spec, kind in (("data.npz.path", config.data.npz, "an .npz file"),
                            ("data.csv.path", config.data.csv, "a CSV file")):
        if spec is not None:
            problem = _check_file(spec.path, kind)
            if problem:
                problems.append((key, problem))
    if model.application is not None:
        names = keras_application_names()
        if names and model.application not in names:
            guess = difflib.get_close_matches(model.application, sorted(names), n=3)
            hint = f"did you mean {_either(guess)}?" if guess else "expected a keras.applications name such as MobileNetV2"
            problems.append(("model.application", f"got {show(model.application)}, which keras.applications "
                                                  f"does not have, {hint}"))
    for key, target in (("model.factory", model.factory),
                        ("data.callable.function", config.data.callable and config.data.callable.function)):
        if target:
            problem = _check_reference(target, config.base_dir)
            if problem:
                problems.append((key, problem))
    problem = _check_output_dir(config.output.dir) if check_output_dir else None
    if problem:
        problems.append(("output.dir", problem))
    if problems:
        raise _problems_error(problems, config.source_file or "config")


def _check_file(path: str, kind: str) -> str | None:
    p = Path(path)
    if p.is_dir():
        return f"got the folder {path}, expected {kind}"
    if not p.exists():
        return f"got {path}, which does not exist, expected {kind}"
    return None


def _check_model_path(path: str) -> list[tuple[str, str]]:
    expected = "expected a .keras or .h5 file or a SavedModel folder"
    p = Path(path)
    if not p.exists():
        return [("model.path", f"got {path}, which does not exist, {expected}")]
    if p.is_dir() and not (p / "saved_model.pb").exists():
        return [("model.path", f"got the folder {path}, which holds no saved_model.pb, {expected}")]
    if p.is_file() and p.suffix.lower() not in MODEL_FILE_SUFFIXES:
        return [("model.path", f"got {path}, {expected}")]
    return []


def _check_output_dir(path: str) -> str | None:
    p = Path(path)
    while not p.exists() and p.parent != p:
        p = p.parent
    if not p.is_dir():
        return f"got {path}, but {p} is a file, expected a folder where results can be written"
    if not os.access(p, os.W_OK | os.X_OK):
        return f"got {path}, but {p} is not writable, expected a folder where results can be written"
    return None


def _check_reference(target: str, base_dir: str) -> str | None:
    """'module:function' -> None when the module can be found and (if it is plain Python
    source) defines the function; never imports the module itself."""
    module_name, _, attr = target.partition(":")
    spec = _find_module(module_name, base_dir)
    if spec is None:
        return (f"got {show(target)}, but no module '{module_name}' is beside the config ({base_dir}) or on the "
                f"Python path, expected 'module:function' with module.py beside the config or installed")
    names = _top_level_names(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    first = attr.split(".")[0]
    if names is not None and first not in names:
        guess = difflib.get_close_matches(first, sorted(n for n in names if not n.startswith("_")), n=1)
        hint = f"did you mean '{module_name}:{guess[0]}'?" if guess else f"expected a function defined in {spec.origin}"
        return f"got {show(target)}, but {spec.origin} defines no '{first}', {hint}"
    return None


def _find_module(name: str, base_dir: str) -> importlib.machinery.ModuleSpec | None:
    """Where `import name` would find its source, with the config's folder first on the path as
    in the worker. Unlike importlib.util.find_spec('a.b') it runs no package __init__ on the way."""
    parts = name.split(".")
    search: list[str] | None = [base_dir, *sys.path]
    spec = None
    for depth in range(1, len(parts) + 1):
        full = ".".join(parts[:depth])
        loaded = sys.modules.get(full)
        if loaded is not None and getattr(loaded, "__spec__", None) is not None:
            spec = loaded.__spec__  # already imported (os.path, say): nothing runs by looking
            search = list(spec.submodule_search_locations or []) or None
            continue
        if search is None:
            return None  # a parent that is a plain module has no submodules
        try:
            spec = importlib.machinery.PathFinder.find_spec(full, search)
            if spec is None and depth == 1:
                spec = importlib.util.find_spec(full)  # built-in and frozen modules
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return None
        search = list(spec.submodule_search_locations) if spec.submodule_search_locations is not None else None
    return spec


def _top_level_names(source_file: str) -> set[str] | None:
    """Names a Python file defines at top level; None when it could define more (star imports,
    module __getattr__) or cannot be parsed, so the check stays silent rather than wrong."""
    try:
        tree = ast.parse(Path(source_file).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.Name,)) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Global):
            names.update(node.names)
    if "__getattr__" in names or "globals" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}:
        return None
    return names


def keras_application_names() -> set[str] | None:
    """The model names keras.applications exports, read from Keras' own source so that
    validating a config never imports Keras (and so TensorFlow). None when that is not possible."""
    try:
        spec = importlib.util.find_spec("keras")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    names: set[str] = set()
    for root in spec.submodule_search_locations:
        for candidate in ("applications/__init__.py", "api/applications/__init__.py"):
            path = Path(root) / candidate
            if not path.is_file():
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, UnicodeDecodeError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    names.update(a.asname or a.name for a in node.names if (a.asname or a.name)[:1].isupper())
    return names or None


__all__ = [
    "AXES", "Config", "ConfigError", "KeyedError", "apply_overrides", "config_from_dict", "diff_settings",
    "file_digest", "folder_name", "keras_application_names", "load_config", "parse_yaml", "read_yaml", "show",
    "static_checks",
]
