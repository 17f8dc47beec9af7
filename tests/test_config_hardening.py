"""Configs that must survive a round trip (overrides, resume) and inputs that must never get past
validation: every bad one is one ConfigError line, exit 2, never a traceback. No TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchbench.config import apply_overrides, config_from_dict, load_config, static_checks

SWEEP = "sweep: {batch_sizes: [16, 32], repeats: 3}\n"

MODELS = {
    "builtin": "model: {builtin: mlp, kwargs: {hidden: 8}}\n",
    "application": "model: {application: MobileNetV2, kwargs: {alpha: 0.35}, input_shape: [32, 32, 3]}\n",
    "path": "model: {path: model.keras, compile: {optimizer: {name: sgd, momentum: 0.9}, loss: mse}}\n",
    "savedmodel": "model: {path: saved}\n",
    "factory": "model: {factory: 'zoo:build', kwargs: {width: 4}}\n",
}
DATA = {
    "synthetic": "data: {synthetic: {samples: 64, num_classes: 3}}\n",
    "bare synthetic": "data:\n  synthetic:\n",
    "default": "",
    "npz": "data: {npz: {path: data/d.npz, x: features}, validation_split: 0.25}\n",
    "csv": "data: {csv: {path: data/t.csv, target: y, features: [a]}}\n",
    "callable": "data: {callable: {function: 'loaders:load', kwargs: {n: 5}}}\n",
}


def project(folder: Path) -> Path:
    """A config folder with every kind of file a config can name."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "d.npz").write_bytes(b"PK\x03\x04 not really an npz")
    (folder / "data" / "t.csv").write_text("a,y\n1,2\n")
    (folder / "model.keras").write_bytes(b"keras bytes")
    (folder / "saved" / "variables").mkdir(parents=True, exist_ok=True)
    (folder / "saved" / "saved_model.pb").write_bytes(b"pb")
    (folder / "saved" / "variables" / "variables.index").write_bytes(b"index")
    (folder / "zoo.py").write_text("def build(width=2):\n    return None\n")
    (folder / "loaders.py").write_text("def load(n=1):\n    return None, None\n")
    return folder


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("data", sorted(DATA))
def test_every_model_and_data_kind_survives_overrides_and_resume(tmp_path, model, data):
    folder = project(tmp_path / "proj")
    config = load_config(write(folder, MODELS[model] + DATA[data] + SWEEP))
    static_checks(config)
    resolved = config.resolved()
    kind = "synthetic" if data in ("bare synthetic", "default") else data
    assert set(resolved["data"]) == {kind, "validation_split"}  # the chosen source only, no nulls beside it
    assert config.model.source in resolved["model"]

    # resume rebuilds the config from run.json's config_resolved
    again = config_from_dict(resolved, source=config.source_file, base_dir=config.base_dir)
    assert again.resolved() == resolved
    assert again.measurement_hash() == config.measurement_hash()
    assert again.model_dump(exclude={"output"}) == config.model_dump(exclude={"output"})

    # any command-line override
    updated = apply_overrides(config, batch_sizes=[8], modes=["predict"])
    assert updated.sweep.batch_sizes == [8] and updated.sweep.modes == ["predict"]
    assert updated.data == config.data and updated.model == config.model
    assert updated.resolved() == {**resolved, "sweep": {**resolved["sweep"], "batch_sizes": [8], "modes": ["predict"]}}
    again = config_from_dict(updated.resolved(), source=config.source_file, base_dir=config.base_dir)
    assert again.resolved() == updated.resolved()


def test_a_user_writing_synthetic_beside_another_source_is_still_told(tmp_path):
    project(tmp_path)
    with pytest.raises(Exception, match="got synthetic and npz, expected exactly one"):
        load_config(write(tmp_path, MODELS["builtin"] + "data:\n  synthetic:\n  npz: {path: data/d.npz}\n" + SWEEP))


def test_resolved_output_dir_is_absolute_and_reads_back_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = project(tmp_path / "elsewhere")
    config = load_config(write(folder, MODELS["builtin"] + SWEEP))
    assert config.output.dir == "results"
    assert config.resolved()["output"]["dir"] == str(tmp_path / "results")  # the working directory's
    again = config_from_dict(config.resolved(), source=config.source_file, base_dir=config.base_dir)
    assert again.output.dir == str(tmp_path / "results")
