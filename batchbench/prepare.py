"""One way in: the CLI's sweep and predict-throughput and the Python API all get their config
here -- a file, a resumed run folder, a model named on the command line or the built-in
default -- with the overrides applied and every check that needs no TensorFlow done."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchbench.backends import check_backends
from batchbench.config import Config, apply_overrides, config_from_dict, folder_name, read_yaml, show, static_checks
from batchbench.errors import ConfigError
from batchbench.results import RUN_JSON, read_run_json


def parse_model_ref(ref: str) -> dict:
    """builtin:NAME, application:NAME, a model file path, or module:function."""
    kind, _, name = ref.partition(":")
    if kind in ("builtin", "application") and name:
        return {kind: name}
    if Path(ref).suffix in (".keras", ".h5", ".hdf5") or Path(ref).is_dir():
        return {"path": str(Path(ref).resolve())}
    if ":" in ref and name:
        return {"factory": ref}
    raise ConfigError(f"got {ref!r}, expected builtin:NAME, application:NAME, a .keras/.h5 file, "
                      "a SavedModel folder or module:function", key="--model")


def parse_shape(text: str) -> list[int]:
    try:
        dims = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    except ValueError:
        dims = []
    if not dims or any(d <= 0 for d in dims):
        raise ConfigError(f"got {text!r}, expected positive integers such as 96,96,3", key="--input-shape")
    return dims


DEFAULT_PREDICT_CONFIG = {
    "name": "predict-throughput",
    "model": {"builtin": "mlp", "kwargs": {"hidden": 256, "depth": 3}},
    "data": {"synthetic": {"samples": 2048}},
    "sweep": {"batch_sizes": {"min": 1, "max": 512}, "modes": ["predict"], "repeats": 3,
              "min_time_s": 0.1},
}


@dataclass
class Prepared:
    """A config ready to sweep, and the mapping as the user gave it (kept in run.json)."""

    config: Config
    raw: Any


def prepare(config_path: str | Path | dict | None = None, *, resume: Path | None = None,
            default: dict | None = None, model_ref: str | None = None, input_shape: str | None = None,
            overrides: dict[str, Any] | None = None, base_dir: str | Path = ".", out_given: bool = False,
            plots: bool | None = None) -> Prepared:
    """Load (a file or a mapping, a --resume folder, --model/--input-shape over either, or the
    default), apply sweep-key overrides (an error names the option), and run the static checks
    and the backend check. Never imports TensorFlow."""
    if isinstance(config_path, dict):
        config, raw = config_from_dict(config_path, source=None, base_dir=base_dir), config_path
    elif model_ref is not None or input_shape is not None:
        config, raw = _with_model(config_path, model_ref, input_shape, default or DEFAULT_PREDICT_CONFIG)
    else:
        config, raw = _load(config_path, resume, default)
    config = apply_overrides(config, **(overrides or {}))
    if plots is False:
        config.output.plots = False
    # With --out (or --resume) the results go there: output.dir is not where anything is written.
    static_checks(config, check_output_dir=not (out_given or resume))
    check_backends(config)
    return Prepared(config, raw)


def _load(config_path: str | Path | None, resume: Path | None, default: dict | None) -> tuple[Config, Any]:
    if config_path:
        raw = read_yaml(config_path)
        if raw is None:
            raise ConfigError("is empty, expected a mapping with at least model and sweep "
                              "(e.g. model: {builtin: mlp} and sweep: {batch_sizes: [8, 16, 32]})",
                              file=str(config_path))
        return config_from_dict(raw, source=str(config_path), base_dir=Path(config_path).parent), raw
    if resume:
        run_json = Path(resume) / RUN_JSON
        if not run_json.exists():
            raise ConfigError(f"{resume} is not a batchbench run directory (no {RUN_JSON})", key="--resume")
        record = read_run_json(run_json)
        resolved, source, base = (record.get(k) for k in ("config_resolved", "config_file", "base_dir"))
        if not isinstance(resolved, dict) or not isinstance(source, (str, type(None))) or \
                not isinstance(base, (str, type(None))):
            raise ConfigError(f"{run_json} lacks the config it ran with (config_resolved, config_file, base_dir), "
                              "so it cannot be resumed; start a new run", key="--resume")
        # The config as it ran (command-line overrides included), so the hash matches.
        return config_from_dict(resolved, source=source or str(run_json), base_dir=base or "."), record.get("config")
    if default is not None:
        return config_from_dict(default, source="(built-in default)"), default
    raise ConfigError("give a CONFIG file (or --resume RUN_DIR)")


def _with_model(config_path, model_ref, input_shape, default: dict) -> tuple[Config, Any]:
    """CONFIG (or the default) with --model and --input-shape laid over it."""
    if config_path:
        raw = read_yaml(config_path)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"got {type(raw).__name__} {show(raw)}, expected a mapping with keys "
                              "name, model, data, sweep, device, output", file=str(config_path))
        base_dir = Path(config_path).parent
        source = str(config_path)
    else:
        raw = copy.deepcopy(default)
        base_dir = Path.cwd()
        source = "(command line)"
    if model_ref is not None:
        raw["model"] = parse_model_ref(model_ref)
        raw["name"] = (raw.get("name") if config_path else None) or _name_for(raw["model"])
    if input_shape is not None:
        shape = parse_shape(input_shape)
        # Laid over mappings only: anything else stays as written, for the validator to name.
        model = raw.setdefault("model", {})
        if isinstance(model, dict):
            model["input_shape"] = shape
        data = raw.setdefault("data", {"synthetic": {}})
        synthetic = data.get("synthetic", False) if isinstance(data, dict) else False
        if synthetic is None or synthetic is True or isinstance(synthetic, dict):  # `synthetic:` alone: defaults
            data["synthetic"] = {**(synthetic if isinstance(synthetic, dict) else {}), "input_shape": shape}
    return config_from_dict(raw, source=source, base_dir=base_dir), raw


def _name_for(model: dict) -> str:
    kind, value = next(iter(model.items()))
    label = Path(str(value)).stem if kind == "path" else str(value)
    return folder_name("predict-" + label.replace(":", "-").replace(".", "-"), "predict")
