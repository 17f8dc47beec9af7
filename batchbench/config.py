"""YAML -> validated config objects. Every error names the file, the key path, what was
found and what was expected. Plain Python: never imports TensorFlow."""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from batchbench.errors import ConfigError
from batchbench.units import parse_fraction, parse_size, powers_of_two

BUILTIN_MODELS = ("mlp", "cnn")
MODES = ("fit", "predict")
PREDICT_METHODS = ("predict", "serve")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "float16", "bfloat16")
BACKENDS = ("tensorflow", "jax", "torch")
STRATEGIES = ("default", "mirrored")
LR_SCALING = ("none", "linear", "sqrt")
AXES = ("precision", "jit_compile", "backend", "strategy")


class KeyedError(ValueError):
    """A validation error that belongs to a sub-key of the field (e.g. ``[2]`` or ``.min``)."""

    def __init__(self, subkey: str, message: str):
        super().__init__(message)
        self.subkey = subkey


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


def _exactly_one(obj: BaseModel, fields: tuple[str, ...], what: str) -> None:
    given = [f for f in fields if getattr(obj, f) is not None]
    if len(given) != 1:
        found = ", ".join(given) if given else "none"
        raise ValueError(f"{what} needs exactly one of {', '.join(fields)}; found {found}")


def _positive_int(value: Any, subkey: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise KeyedError(subkey, f"got {value!r}, expected a positive integer")
    if value <= 0:
        raise KeyedError(subkey, f"got {value!r}, expected a positive integer")
    return value


# ---------------------------------------------------------------- model
class OptimizerSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    learning_rate: float | None = Field(default=None, gt=0)


class CompileSpec(_Strict):
    optimizer: str | OptimizerSpec = "adam"
    loss: str | None = None
    metrics: list[str] = Field(default_factory=list)


class ModelSpec(_Strict):
    builtin: Literal["mlp", "cnn"] | None = None
    application: str | None = None
    path: str | None = None
    factory: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    compile: CompileSpec | None = None
    input_shape: list[int] | None = None

    @field_validator("factory")
    @classmethod
    def _factory_form(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError(f"got {value!r}, expected 'package.module:function'")
        return value

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            for i, dim in enumerate(value):
                _positive_int(dim, f"[{i}]")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        _exactly_one(self, ("builtin", "application", "path", "factory"), "model")
        return self

    @property
    def source(self) -> str:
        for key in ("builtin", "application", "path", "factory"):
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
    samples: int = Field(default=1024, gt=0)
    num_classes: int | None = Field(default=None, gt=1)
    input_shape: list[int] | None = None


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
        if not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError(f"got {value!r}, expected 'package.module:function'")
        return value


class DataSpec(_Strict):
    synthetic: SyntheticSpec | None = None
    npz: NpzSpec | None = None
    csv: CsvSpec | None = None
    callable: CallableSpec | None = None
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0)

    @field_validator("synthetic", mode="before")
    @classmethod
    def _empty_synthetic(cls, value: Any) -> Any:
        return {} if value is None or value is True else value

    @model_validator(mode="before")
    @classmethod
    def _bare_synthetic(cls, data: Any) -> Any:
        # `synthetic:` with nothing under it means "all defaults".
        if isinstance(data, dict) and "synthetic" in data and data["synthetic"] is None:
            data = {**data, "synthetic": {}}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        _exactly_one(self, ("synthetic", "npz", "csv", "callable"), "data")
        return self

    @property
    def source(self) -> str:
        return next(k for k in ("synthetic", "npz", "csv", "callable") if getattr(self, k) is not None)


# ---------------------------------------------------------------- device
_DEVICE_RE = re.compile(r"^(auto|cpu|gpu|gpu:\d+(,\d+)*)$")


class DeviceSpec(_Strict):
    use: str = "auto"
    logical_devices: int | None = Field(default=None, gt=0)

    @field_validator("use", mode="before")
    @classmethod
    def _use(cls, value: Any) -> str:
        text = str(value).strip().lower().replace(" ", "")
        if not _DEVICE_RE.match(text):
            raise ValueError(f"got {value!r}, expected auto, cpu, gpu, gpu:N or gpu:0,1")
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
    window_steps: int = Field(default=10, gt=0)
    tolerance: float = Field(default=0.10, gt=0, lt=1)
    max_windows: int = Field(default=12, ge=3)


class TargetSpec(_Strict):
    metric: str
    value: float
    max_epochs: int = Field(default=20, gt=0)


def _axis_list(value: Any, allowed: tuple | None, key: str) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError("got an empty list, expected at least one value")
    out = []
    for i, item in enumerate(values):
        if allowed is not None and item not in allowed:
            sub = f"[{i}]" if isinstance(value, list) else ""
            raise KeyedError(sub, f"got {item!r}, expected one of {', '.join(map(str, allowed))}")
        if item not in out:
            out.append(item)
    return out


class SweepSpec(_Strict):
    batch_sizes: list[int]
    modes: list[Literal["fit", "predict"]] = Field(default_factory=lambda: ["fit", "predict"])
    methods: list[Literal["predict", "serve"]] = Field(default_factory=lambda: ["predict", "serve"])
    epochs: int = Field(default=1, gt=0)
    repeats: int = Field(default=7, gt=0)
    seed: int = 0
    warmup_steps: int = Field(default=2, ge=0)
    min_steps: int = Field(default=5, gt=0)
    min_time_s: float = Field(default=0.25, ge=0)
    trial_timeout_s: float = Field(default=900.0, gt=0)
    stability: StabilitySpec = Field(default_factory=StabilitySpec)
    slo_ms: float | None = Field(default=None, gt=0)
    percentile: float = Field(default=99.0, gt=0, le=100)
    find_max: bool = False
    search_granularity: int = Field(default=8, gt=0)
    margin: float = 0.0
    memory_limit: int | None = None
    memory_fraction: float = Field(default=0.9, gt=0, le=1)
    device_memory_limit: int | None = None
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    base_batch_size: int | None = Field(default=None, gt=0)
    lr_warmup_epochs: int = Field(default=0, ge=0)
    target: TargetSpec | None = None
    precision: list[str] = Field(default_factory=lambda: ["float32"])
    jit_compile: list[bool | Literal["auto"]] = Field(default_factory=lambda: ["auto"])
    backend: list[str] = Field(default_factory=lambda: ["tensorflow"])
    strategy: list[str] = Field(default_factory=lambda: ["default"])

    @field_validator("batch_sizes", mode="before")
    @classmethod
    def _batch_sizes(cls, value: Any) -> list[int]:
        if isinstance(value, dict):
            unknown = set(value) - {"min", "max"}
            if unknown:
                raise KeyedError(f".{sorted(unknown)[0]}", "unknown key, expected min and max")
            for key in ("min", "max"):
                if key not in value:
                    raise KeyedError(f".{key}", "missing, a range needs both min and max")
                _positive_int(value[key], f".{key}")
            try:
                return powers_of_two(int(value["min"]), int(value["max"]))
            except ValueError as exc:
                raise KeyedError("", str(exc)) from None
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = [value] if isinstance(value, int) else value
        if isinstance(value, str):
            from batchbench.units import parse_batch_sizes

            try:
                return parse_batch_sizes(value)
            except ValueError as exc:
                raise KeyedError("", str(exc)) from None
        if not isinstance(value, list):
            raise ValueError(f"got {value!r}, expected a list of positive integers or {{min, max}}")
        if not value:
            raise ValueError("got an empty list, expected at least one batch size")
        return sorted({_positive_int(v, f"[{i}]") for i, v in enumerate(value)})

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
        if isinstance(value, list) and not value:
            raise ValueError("got an empty list, expected at least one value")
        return value

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, value: Any) -> list[str]:
        return _axis_list(value, PRECISIONS, "precision")

    @field_validator("jit_compile", mode="before")
    @classmethod
    def _jit(cls, value: Any) -> list:
        values = value if isinstance(value, list) else [value]
        normalized = []
        for v in values:
            if isinstance(v, str) and v.lower() in ("true", "false"):
                v = v.lower() == "true"
            normalized.append(v)
        return _axis_list(normalized if isinstance(value, list) else normalized[0],
                          (True, False, "auto"), "jit_compile")

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, value: Any) -> list[str]:
        return _axis_list(value, BACKENDS, "backend")

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, value: Any) -> list[str]:
        return _axis_list(value, STRATEGIES, "strategy")


class OutputSpec(_Strict):
    dir: str = "results"
    plots: bool = True


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
        if not re.fullmatch(r"[\w.\-]+", value):
            raise ValueError(f"got {value!r}, expected letters, digits, '.', '-' or '_' (it names a folder)")
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
        """The config as it will run: defaults filled in, paths absolute."""
        return json.loads(self.model_dump_json())

    def measurement_hash(self) -> str:
        """Hash of everything that changes what a trial measures (not where results go)."""
        data = self.resolved()
        data.pop("output", None)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- loading
_PATH_KEYS = (("model", "path"), ("data", "npz", "path"), ("data", "csv", "path"), ("output", "dir"))
_KNOWN_KEYS: dict[str, list[str]] = {}


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part) or part in (
            "list[int]", "str", "int", "bool", "dict", "float", "OptimizerSpec", "literal['auto']"
        ):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_for_loc(loc: tuple) -> type[BaseModel] | None:
    model: Any = Config
    for part in loc:
        if isinstance(part, int) or model is None:
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _describe(error: dict) -> tuple[str, str]:
    loc = tuple(error["loc"])
    key = _format_loc(loc)
    kind = error["type"]
    found = error.get("input")
    if kind == "extra_forbidden":
        parent = _model_for_loc(loc[:-1])
        known = [k for k in (parent.model_fields if parent else {}) if k not in ("source_file", "base_dir")]
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean '{guess[0]}'?" if guess else (f"; known keys: {', '.join(known)}" if known else "")
        return key, f"unknown key{hint}"
    if kind == "missing":
        return key, "missing, this key is required"
    exc = (error.get("ctx") or {}).get("error")
    if isinstance(exc, KeyedError):
        return key + exc.subkey, str(exc)
    message = str(exc) if isinstance(exc, Exception) else error["msg"]
    message = message[0].lower() + message[1:] if message else message
    if isinstance(exc, Exception) and str(exc).startswith("got "):
        return key, message
    if kind == "value_error" and "needs exactly one" in message:
        return key, message
    return key, f"got {found!r}, {message}" if found is not None and not isinstance(found, dict) else message


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
    """Validate an already-parsed mapping. ``source`` names the file in messages."""
    label = source or "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping of keys (name, model, data, sweep, ...), got {type(raw).__name__}",
                          file=label)
    base = Path(base_dir).resolve()
    data = _resolve_paths(raw, base)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors()]
        first_key = problems[0][0]
        lines = [f"{key}: {msg}" for key, msg in problems]
        message = f"{len(lines)} problems:\n  " + "\n  ".join(lines)
        raise ConfigError(message if len(lines) > 1 else problems[0][1], file=label,
                          key=None if len(lines) > 1 else first_key) from None
    config.source_file = source
    config.base_dir = str(base)
    if "name" not in raw and source:
        config.name = re.sub(r"[^\w.\-]", "_", Path(source).stem) or "batchbench"
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    label = str(path)
    if not path.exists():
        raise ConfigError("file not found", file=label)
    if path.is_dir():
        raise ConfigError("is a folder, expected a YAML file", file=label)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot be read ({exc})", file=label) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"YAML syntax error at {where}{exc.problem}", file=label) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", file=label) from None
    if raw is None:
        raise ConfigError("is empty, expected keys name, model, data, sweep", file=label)
    return config_from_dict(raw, source=label, base_dir=path.parent)


def apply_overrides(config: Config, **overrides: Any) -> Config:
    """Command-line overrides (None means 'not given'), validated like the file itself."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return config
    raw = json.loads(config.model_dump_json())
    for key, value in given.items():
        raw["sweep"][key] = value
    try:
        updated = Config.model_validate(raw)
    except ValidationError as exc:
        key, msg = _describe(exc.errors()[0])
        raise ConfigError(msg, key="--" + key.split(".")[-1].split("[")[0].replace("_", "-")) from None
    updated.source_file, updated.base_dir = config.source_file, config.base_dir
    return updated


def static_checks(config: Config) -> None:
    """Checks that need the file system but not TensorFlow: files exist, factories are findable."""
    import importlib.util
    import sys

    label = config.source_file or "config"
    if config.model.path is not None and not Path(config.model.path).exists():
        raise ConfigError(f"file not found: {config.model.path}", file=label, key="model.path")
    for key, spec in (("data.npz.path", config.data.npz), ("data.csv.path", config.data.csv)):
        if spec is not None and not Path(spec.path).is_file():
            raise ConfigError(f"file not found: {spec.path}", file=label, key=key)
    for key, target in (("model.factory", config.model.factory),
                        ("data.callable.function", config.data.callable and config.data.callable.function)):
        if not target:
            continue
        module = target.split(":", 1)[0]
        if config.base_dir not in sys.path:
            sys.path.insert(0, config.base_dir)
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is None:
            raise ConfigError(f"cannot find module '{module}' (looked beside the config in {config.base_dir} "
                              "and on the Python path)", file=label, key=key)
