"""predict-throughput's config: a file, a model named on the command line, or the default."""

from __future__ import annotations

import copy
from pathlib import Path

from batchbench.errors import ConfigError


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


def predict_config(config_path, model_ref, input_shape, resume, default: dict):
    """The config (and the mapping as given) for predict-throughput: CONFIG, with --model and
    --input-shape laid over it, or the built-in default. Any bad input is a ConfigError."""
    from batchbench.cli import _load
    from batchbench.config import config_from_dict, read_yaml, show

    if model_ref is None and input_shape is None:
        return _load(config_path, resume, default=default)
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
    from batchbench.config import folder_name

    kind, value = next(iter(model.items()))
    label = Path(str(value)).stem if kind == "path" else str(value)
    return folder_name("predict-" + label.replace(":", "-").replace(".", "-"), "predict")
