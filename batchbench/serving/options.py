"""The serving command's config: a file (or a resumed run) with `serving:` keys, the command
line laid over them; every error names the option or the key, and none imports TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batchbench.backends import check_backends
from batchbench.config import Config, config_from_dict, read_yaml, static_checks
from batchbench.config.loading import override_section
from batchbench.errors import ConfigError
from batchbench.results import RUN_JSON, read_run_json

OPTIONS = ("slo_ms", "percentile", "max_batch_sizes", "timeouts_ms", "rates", "num_batch_threads", "measure_top")
# A serving config needs no sweep section; its sweep keys (seed, device caps) keep their defaults.
SWEEP_FOR_SERVING = {"batch_sizes": [1], "modes": ["predict"], "methods": ["serve"]}


def option_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def load_serving_config(config_path: str | Path | None, resume: Path | None, overrides: dict[str, Any],
                        out_given: bool = False) -> tuple[Config, Any, set[str]]:
    """(config, the mapping as given, the keys the command line set)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if resume:
        run_json = Path(resume) / RUN_JSON
        if not run_json.exists():
            raise ConfigError(f"{resume} is not a batchbench run directory (no {RUN_JSON})", key="--resume")
        record = read_run_json(run_json)
        if record.get("kind") != "serving" or not isinstance(record.get("config_resolved"), dict):
            raise ConfigError(f"{resume} is not a serving run (resume a sweep with `batchbench sweep --resume`)",
                              key="--resume")
        config = config_from_dict(record["config_resolved"], source=record.get("config_file") or str(run_json),
                                  base_dir=record.get("base_dir") or ".")
        raw = record.get("config")
        given = {}  # the run's own settings: resume measures what it started measuring
    elif config_path:
        raw = read_yaml(config_path)
        if not isinstance(raw, dict):
            raise ConfigError("expected a mapping with model, data and serving keys", file=str(config_path))
        data = {**raw, "sweep": raw.get("sweep") or dict(SWEEP_FOR_SERVING)}
        config = config_from_dict(data, source=str(config_path), base_dir=Path(config_path).parent)
    else:
        raise ConfigError("give a CONFIG file (or --resume RUN_DIR)")
    config = _apply(config, given)
    if config.serving is None or config.serving.slo_ms is None:
        raise ConfigError("no latency budget: give --slo-ms (or serving.slo_ms), the per-request budget in ms, "
                          "queueing included (sweep.slo_ms, a per-batch budget, is not used)", key="--slo-ms")
    if config.serving.max_duration_s < config.serving.min_duration_s:
        raise ConfigError(f"got {config.serving.max_duration_s:g}, below min_duration_s "
                          f"{config.serving.min_duration_s:g}", key="serving.max_duration_s")
    static_checks(config, check_output_dir=not (out_given or resume))
    check_backends(config)
    if config.data.synthetic is not None:  # its size is known here; a file's comes from the preflight
        check_against_data(config, config.data.synthetic.samples, set(given))
    return config, raw, set(given)


def _apply(config: Config, given: dict[str, Any]) -> Config:
    return override_section(config, "serving", given)


def check_against_data(config: Config, samples: int, given: set[str]) -> None:
    """A max_batch_size above the data cannot be filled by distinct rows."""
    biggest = max(config.serving.max_batch_sizes)
    if biggest > samples:
        key = option_name("max_batch_sizes") if "max_batch_sizes" in given else "serving.max_batch_sizes"
        raise ConfigError(f"got {biggest}, above the {samples} samples of the data: a batch is made of distinct "
                          f"rows, so max_batch_size can be at most {samples}", key=key)


def is_serving_config(path: str | Path) -> bool:
    """A config for `batchbench serving` alone: `serving:` keys and no `sweep:` section."""
    try:
        raw = read_yaml(path)
    except ConfigError:
        return False  # the sweep's loader says what is wrong with it
    return isinstance(raw, dict) and "serving" in raw and "sweep" not in raw


def describe_serving_config(path: str | Path) -> str:
    """`validate`'s line for a serving config (the checks of `serving`, without running)."""
    config, _, _ = load_serving_config(path, None, {})
    s = config.serving
    return (f"{path}: valid serving config — model {config.model.source}:{config.model.label}, data "
            f"{config.data.source}, max_batch_sizes {', '.join(map(str, s.max_batch_sizes))}, timeouts "
            f"{', '.join(f'{t:g}' for t in s.timeouts_ms)} ms, p{s.percentile:g} <= {s.slo_ms:g} ms")
