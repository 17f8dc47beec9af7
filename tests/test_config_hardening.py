"""Configs that must survive a round trip (overrides, resume) and inputs that must never get past
validation: every bad one is one ConfigError line, exit 2, never a traceback. No TensorFlow."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from batchbench.config import (
    apply_overrides,
    config_from_dict,
    diff_settings,
    file_digest,
    folder_name,
    load_config,
    parse_yaml,
    read_yaml,
    static_checks,
)
from batchbench.errors import ConfigError
from batchbench.units import parse_batch_sizes

SWEEP = "sweep: {batch_sizes: [16, 32], repeats: 3}\n"
CYCLE: list = []
CYCLE.append(CYCLE)

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


# ---------------------------------------------------------------- hostile or broken YAML
def problem(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.format_message()
    assert "Traceback" not in message and "\n" not in message, message  # one line
    assert message.startswith(f"{path}: "), message
    return message


def laughs(levels: int = 9) -> str:
    text = "model:\n  builtin: mlp\n  kwargs:\n    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, levels):
        text += f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n"
    return text + SWEEP


def test_billion_laughs_is_refused_while_loading(tmp_path):
    started = time.perf_counter()
    message = problem(write(tmp_path, laughs()))
    assert time.perf_counter() - started < 5  # counted, never expanded
    assert "line 8, column 9: got more than 100,000 values here once aliases are expanded" in message


def test_anchors_within_the_bounds_still_work(tmp_path):
    config = load_config(write(tmp_path, laughs(levels=4)))  # 10,000 values once expanded
    assert len(config.model.kwargs["l3"]) == 10 and config.model.kwargs["l3"][0][0][0] == ["lol"] * 10


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("model: {builtin: mlp, kwargs: {x: " + "[" * 5000 + "]" * 5000 + "}}\n" + SWEEP,
         "line 1, column 96", "got values nested more than 64 levels deep, expected a flatter config"),
        ("model: {builtin: mlp, kwargs: {x: " + "9" * 5000 + "}}\n" + SWEEP,
         "line 1, column 35", "got an integer of 5000 digits, expected at most 100 digits"),
        ("model: {builtin: mlp, kwargs: {x: -" + "1_000" * 100 + "}}\n" + SWEEP,
         "line 1, column 35", "got an integer of 400 digits"),
        ("model: {builtin: mlp, kwargs: {a: &a [*a]}}\n" + SWEEP,
         "line 1, column 39", "got the alias *a inside its own anchor &a, expected aliases that do not contain"),
        ("model: {builtin: mlp, kwargs: &k {x: 1, y: {<<: *k}}}\n" + SWEEP,
         "line 1, column 49", "got the alias *k inside its own anchor &k"),
        ("model: {builtin: mlp, kwargs: {a: !!binary /w==}}\n" + SWEEP,
         "line 1, column 35", "got the YAML tag !!binary, expected plain YAML"),
        ("model: {builtin: mlp, kwargs: {a: !!set {x, y}}}\n" + SWEEP, "line 1, column 35", "got the YAML tag !!set"),
        ("model: {builtin: mlp, kwargs: {a: !mine x}}\n" + SWEEP, "line 1, column 35", "got the YAML tag !mine"),
        ("model: {builtin: mlp, kwargs: {a: !!timestamp 2024-02-30}}\n" + SWEEP,
         "line 1, column 35", "got the YAML tag !!timestamp"),
        ("a: &x 1\nb: &x 2\n" + MODELS["builtin"] + SWEEP,
         "line 2, column 4", "got the anchor &x twice (first on line 1), expected each anchor once"),
        ("1: 2\n" + MODELS["builtin"] + SWEEP, None, "got the key 1, expected text keys"),
        ("~: 2\n" + MODELS["builtin"] + SWEEP, None, "got the key null, expected text keys"),
        ("model: {builtin: mlp, kwargs: {7: 2}}\n" + SWEEP, "model.kwargs", "got the key 7, expected text keys"),
        (MODELS["builtin"] + "\x00" + SWEEP, "line 2", "got the character #x0000, expected printable text"),
    ],
)
def test_yaml_beyond_a_config_is_one_line_naming_file_and_line(tmp_path, text, where, words):
    path = write(tmp_path, text)
    message = problem(path)
    assert message.startswith(f"{path}: {where}: " if where else f"{path}: got "), message
    assert words in message


def test_deep_nesting_through_aliases_is_refused(tmp_path):
    # each anchor is 40 levels deep, within the bound; nested in one another they are not
    text = "model:\n  builtin: mlp\n  kwargs:\n    a: &a " + "[" * 40 + "1" + "]" * 40 + "\n"
    text += "    b: &b " + "[" * 30 + "*a" + "]" * 30 + "\n" + SWEEP
    message = problem(write(tmp_path, text))
    assert "got values nested more than 64 levels deep once aliases are expanded" in message


def test_a_config_file_over_a_mebibyte_is_refused_unread(tmp_path):
    path = write(tmp_path, MODELS["builtin"] + SWEEP + "# " + "x" * 2**20 + "\n")
    assert problem(path) == f"{path}: is larger than 1 MiB, expected a YAML config file (a config is a few KiB)"


def test_an_endless_file_is_refused_not_read_to_the_end(tmp_path):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(ConfigError, match="is larger than 1 MiB"):
        read_yaml("/dev/zero")


def test_unquoted_dates_stay_text(tmp_path):
    config = load_config(write(tmp_path, "model: {builtin: mlp, kwargs: {since: 2024-02-30, at: 2024-01-01}}\n"
                                         + SWEEP))
    assert config.model.kwargs == {"since": "2024-02-30", "at": "2024-01-01"}


def test_parse_yaml_has_the_same_protections():
    with pytest.raises(ConfigError, match=r"^\(command line\): line 1, column 8: got the alias \*a inside"):
        parse_yaml("a: &a [*a]\n", "(command line)")
    with pytest.raises(ConfigError, match=r"^x.yaml: line 1, column 4: got an integer of 200 digits"):
        parse_yaml("a: " + "1" * 200, "x.yaml")
    with pytest.raises(ConfigError, match="expected a YAML config of at most 1 MiB"):
        parse_yaml("a: 1\n" * 2**18)
    assert parse_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize(
    ("kwargs", "key", "words"),
    [
        ({"x": float("nan")}, "model.kwargs.x", "got nan, expected a finite number"),
        ({"x": [1, float("inf")]}, "model.kwargs.x[1]", "got inf, expected a finite number"),
        ({"x": datetime.date(2024, 1, 1)}, "model.kwargs.x", "got date datetime.date(2024, 1, 1), expected plain"),
        ({"x": {"y": b"\xff"}}, "model.kwargs.x.y", "got bytes b'\\xff', expected plain values"),
        ({1: 2}, "model.kwargs", "got the key 1, expected text keys"),
        ({"x": CYCLE}, "model.kwargs.x[0]", "got a list that contains itself, expected plain values"),
    ],
)
def test_kwargs_from_python_must_be_plain_json(kwargs, key, words):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"model": {"builtin": "mlp", "kwargs": kwargs}, "sweep": {"batch_sizes": [8]}})
    assert info.value.format_message().startswith(f"config: {key}: {words}")


def test_callable_kwargs_and_optimizer_extras_must_be_plain_too():
    with pytest.raises(ConfigError, match=r"^config: data.callable.kwargs.n: got nan"):
        config_from_dict({"model": {"builtin": "mlp"}, "data": {"callable": {"function": "m:f",
                                                                              "kwargs": {"n": float("nan")}}},
                          "sweep": {"batch_sizes": [8]}})
    with pytest.raises(ConfigError, match=r"^config: model.compile.optimizer.momentum: got inf"):
        config_from_dict({"model": {"builtin": "mlp", "compile": {"optimizer": {"name": "sgd",
                                                                                "momentum": float("inf")}}},
                          "sweep": {"batch_sizes": [8]}})


# ---------------------------------------------------------------- predict-throughput's own config
def predict(tmp_path, text, model_ref=None, input_shape=None):
    from batchbench.prepare import prepare

    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        prepare(str(path), model_ref=model_ref, input_shape=input_shape, default={"model": {"builtin": "mlp"}})
    message = info.value.format_message()
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


@pytest.mark.parametrize(("model_ref", "input_shape"), [("builtin:mlp", None), (None, "8"), ("builtin:cnn", "8,8,3")])
@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- a\n- b\n", "got list ['a', 'b'], expected a mapping with keys name, model"),
        ("hello\n", "got str 'hello', expected a mapping"),
        ("42\n", "got int 42, expected a mapping"),
        ("model: {builtin: mlp}\ndata: 5\n" + SWEEP, "data: got 5, expected a mapping with keys synthetic"),
        ("model: {builtin: mlp}\ndata: {synthetic: 5}\n" + SWEEP, "data.synthetic: got 5, expected a mapping"),
        ("model: {builtin: mlp}\ndata: [1]\n" + SWEEP, "data: got [1], expected a mapping"),
    ],
)
def test_predict_throughput_overrides_on_a_bad_file_are_one_line(tmp_path, text, words, model_ref, input_shape):
    assert predict(tmp_path, text, model_ref, input_shape).startswith(words)


def test_predict_throughput_input_shape_on_a_model_that_is_not_a_mapping(tmp_path):
    assert predict(tmp_path, "model: [1, 2]\n" + SWEEP, input_shape="8").startswith(
        "model: got [1, 2], expected a mapping with keys builtin")


def test_predict_throughput_input_shape_fills_in_bare_synthetic(tmp_path):
    from batchbench.prepare import prepare

    path = write(tmp_path, "model: {builtin: mlp}\ndata:\n  synthetic:\n" + SWEEP)
    config = prepare(str(path), input_shape="6", default={}).config
    assert config.model.input_shape == [6] and config.data.synthetic.input_shape == [6]


@pytest.mark.parametrize(("model", "name"), [({"path": "/m/my model.keras"}, "predict-my_model"),
                                             ({"builtin": "cnn"}, "predict-cnn"),
                                             ({"factory": "zoo.sub:build"}, "predict-zoo-sub-build"),
                                             ({"path": "/m/..keras"}, "predict--")])
def test_predict_throughput_names_from_a_model_are_folder_names(model, name):
    from batchbench.prepare import _name_for

    assert _name_for(model) == name
    config_from_dict({"name": name, "model": {"builtin": "mlp"}, "sweep": {"batch_sizes": [8]}})


# ---------------------------------------------------------------- names and batch sizes that escape
@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "../up", "a\\b", "/abs", "a b", "x" * 101, "", "a\x00"])
def test_a_name_must_be_one_plain_folder(name):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"name": name, "model": {"builtin": "mlp"}, "sweep": {"batch_sizes": [8]}})
    assert info.value.format_message().startswith("config: name: got ")
    assert "expected a folder name" in info.value.format_message()


@pytest.mark.parametrize("name", ["resnet", "v1.2", "my-run_3", "x" * 100, "modèle", "-dash"])
def test_plain_names_pass(name):
    assert config_from_dict({"name": name, "model": {"builtin": "mlp"}, "sweep": {"batch_sizes": [8]}}).name == name


@pytest.mark.parametrize(("filename", "name"), [("..yaml", "batchbench"), ("...yaml", "batchbench"),
                                                (".hidden.yaml", "hidden"), ("a b.c.yaml", "a_b.c"),
                                                ("x" * 150 + ".yaml", "x" * 100)])
def test_the_name_from_a_file_stem_is_always_safe(tmp_path, filename, name):
    config = load_config(write(tmp_path, MODELS["builtin"] + SWEEP, filename))
    assert config.name == name


def test_folder_name():
    assert [folder_name(t) for t in ["..", ".", "a/../b", ".git", "", "ok"]] == \
        ["batchbench", "batchbench", "a_.._b", "git", "batchbench", "ok"]
    assert folder_name("..", fallback="predict") == "predict"


@pytest.mark.parametrize(
    ("batch_sizes", "key", "words"),
    [
        ([2**63 + 1], "sweep.batch_sizes[0]", "got 9223372036854775809, expected a batch size of at most 16,777,216"),
        ([8, 2**24 + 1], "sweep.batch_sizes[1]", "expected a batch size of at most 16,777,216 (2**24)"),
        ({"min": 1, "max": 1e300}, "sweep.batch_sizes.max", "got 1e+300, expected a batch size of at most"),
        ({"min": 2**30, "max": 2**31}, "sweep.batch_sizes.min", "expected a batch size of at most"),
        (list(range(1, 66)), "sweep.batch_sizes", "got 65 batch sizes, expected at most 64 in one sweep"),
        ("1-99999999999999999999", "sweep.batch_sizes", "expected batch sizes of at most 16,777,216 (2**24)"),
        ("8," + "9" * 5000, "sweep.batch_sizes", "is too large), expected batch sizes of at most"),
        (",".join(map(str, range(1, 70))), "sweep.batch_sizes", "got 69 batch sizes, expected at most 64"),
    ],
)
def test_batch_sizes_are_bounded(batch_sizes, key, words):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"model": {"builtin": "mlp"}, "sweep": {"batch_sizes": batch_sizes}})
    message = info.value.format_message()
    assert message.startswith(f"config: {key}: got "), message
    assert words in message and len(message) < 300


def test_the_largest_batch_sizes_still_pass():
    sweep = {"batch_sizes": {"min": 1, "max": 2**24}}
    assert config_from_dict({"model": {"builtin": "mlp"}, "sweep": sweep}).sweep.batch_sizes[-1] == 2**24
    many = {"batch_sizes": list(range(1, 65))}
    assert len(config_from_dict({"model": {"builtin": "mlp"}, "sweep": many}).sweep.batch_sizes) == 64


def test_batch_size_bounds_apply_to_overrides_too(tmp_path):
    config = load_config(write(tmp_path, MODELS["builtin"] + SWEEP))
    with pytest.raises(ConfigError, match=r"^--batch-sizes: got 16777217, expected a batch size of at most"):
        apply_overrides(config, batch_sizes=[2**24 + 1])


@pytest.mark.parametrize(("text", "words"), [("1-" + "9" * 40, "expected batch sizes of at most 16,777,216"),
                                             ("8,33554432", "'33554432' is too large"),
                                             (",".join(map(str, range(1, 66))), "got 65 batch sizes")])
def test_parse_batch_sizes_is_bounded(text, words):
    with pytest.raises(ValueError) as info:
        parse_batch_sizes(text)
    assert str(info.value).startswith("got ") and words in str(info.value) and len(str(info.value)) < 200


def test_static_checks_can_leave_output_dir_to_out(tmp_path):
    (tmp_path / "blocked").write_text("a file where the results folder should be")
    config = load_config(write(tmp_path, MODELS["builtin"] + SWEEP + "output: {dir: blocked/results}\n"))
    with pytest.raises(ConfigError, match="output.dir: got .*blocked/results, but .*blocked is a file"):
        static_checks(config)
    static_checks(config, check_output_dir=False)  # --out given: output.dir is never used


# ---------------------------------------------------------------- measured settings: a run's identity
NPZ_CONFIG = MODELS["path"] + DATA["npz"] + SWEEP


def strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def test_measured_settings_hold_what_is_measured_with_relative_paths_and_digests(tmp_path):
    folder = project(tmp_path / "proj")
    config = load_config(write(folder, "name: mine\n" + NPZ_CONFIG + "output: {dir: out}\n"))
    settings = config.measured_settings()
    assert list(settings) == ["model", "data", "sweep", "device"]  # not name, not output
    assert settings["model"]["path"] == "model.keras"
    assert settings["data"]["npz"] == {"path": "data/d.npz", "x": "features", "y": "y"}
    assert settings["model"]["digest"] == "sha256:" + hashlib.sha256(b"keras bytes").hexdigest()
    assert settings["data"]["digest"] == "sha256:" + hashlib.sha256((folder / "data/d.npz").read_bytes()).hexdigest()
    assert not [s for s in strings(settings) if Path(s).is_absolute()]
    assert settings["sweep"]["repeats"] == 3 and settings["device"] == {"use": "auto", "logical_devices": None}
    assert config.measurement_hash() == hashlib.sha256(
        json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def test_the_same_project_checked_out_elsewhere_measures_the_same(tmp_path):
    one = project(tmp_path / "one")
    config = load_config(write(one, NPZ_CONFIG))
    shutil.copytree(one, tmp_path / "deep" / "two")
    other = load_config(tmp_path / "deep" / "two" / "config.yaml")
    assert other.resolved()["data"]["npz"]["path"] != config.resolved()["data"]["npz"]["path"]
    assert other.measured_settings() == config.measured_settings()
    assert other.measurement_hash() == config.measurement_hash()


def test_a_file_outside_the_project_is_still_relative(tmp_path):
    project(tmp_path / "shared")
    folder = tmp_path / "proj"
    folder.mkdir()
    config = load_config(write(folder, f"model: {{path: {tmp_path / 'shared' / 'model.keras'}}}\n" + SWEEP))
    assert config.measured_settings()["model"]["path"] == "../shared/model.keras"


@pytest.mark.parametrize(
    ("change", "keys"),
    [
        (lambda f: (f / "data" / "d.npz").write_bytes(b"other features"), ["data.digest"]),
        (lambda f: (f / "model.keras").write_bytes(b"retrained"), ["model.digest"]),
        (lambda f: (f / "config.yaml").write_text(NPZ_CONFIG.replace("repeats: 3", "repeats: 5")), ["sweep.repeats"]),
        (lambda f: ((f / "config.yaml").write_text(NPZ_CONFIG.replace("repeats: 3", "repeats: 5")),
                    (f / "data" / "d.npz").write_bytes(b"swapped")), ["data.digest", "sweep.repeats"]),
        (lambda f: (f / "config.yaml").write_text(NPZ_CONFIG + "device: cpu\n"), ["device.use"]),
        (lambda f: (f / "config.yaml").write_text(NPZ_CONFIG.replace("x: features", "x: pixels")), ["data.npz.x"]),
        (lambda f: (f / "data" / "d.npz").unlink(), ["data.digest"]),
    ],
)
def test_what_changed_is_named(tmp_path, change, keys):
    folder = project(tmp_path)
    before = load_config(write(folder, NPZ_CONFIG))
    settings, digest = before.measured_settings(), before.measurement_hash()  # what run.json keeps
    change(folder)
    after = load_config(folder / "config.yaml")
    assert diff_settings(settings, after.measured_settings()) == keys
    assert after.measurement_hash() != digest


def test_what_does_not_change_a_measurement_is_not_named(tmp_path):
    folder = project(tmp_path)
    before = load_config(write(folder, NPZ_CONFIG))
    after = load_config(write(folder, "name: renamed\n" + NPZ_CONFIG + "output: {dir: elsewhere, plots: false}\n",
                              "other.yaml"))
    assert diff_settings(before.measured_settings(), after.measured_settings()) == []
    assert after.measurement_hash() == before.measurement_hash()


def test_a_saved_model_folder_is_digested_file_by_file(tmp_path):
    folder = project(tmp_path)
    config = load_config(write(folder, MODELS["savedmodel"] + SWEEP))
    first = config.measured_settings()["model"]["digest"]
    assert first.startswith("sha256:") and first == config.measured_settings()["model"]["digest"]
    (folder / "saved" / "variables" / "variables.data-00000-of-00001").write_bytes(b"weights")
    second = config.measured_settings()["model"]["digest"]
    (folder / "saved" / "variables" / "variables.index").write_bytes(b"changed index")
    third = config.measured_settings()["model"]["digest"]
    assert len({first, second, third}) == 3


def test_diff_settings():
    old = {"model": {"builtin": "mlp", "kwargs": {"hidden": 8}}, "sweep": {"repeats": 3, "batch_sizes": [8, 16],
                                                                           "find_max": True}}
    assert diff_settings(old, old) == []
    new = {"model": {"builtin": "mlp", "kwargs": {"hidden": 16, "depth": 2}},
           "sweep": {"repeats": 3, "batch_sizes": [8, 32], "find_max": 1}, "device": {"use": "cpu"}}
    assert diff_settings(old, new) == ["model.kwargs.hidden", "model.kwargs.depth", "sweep.batch_sizes",
                                       "sweep.find_max", "device"]
    assert diff_settings({}, {"a": {"b": 1}}) == ["a"]
    assert diff_settings({"a": {"b": 1}}, {"a": 5}) == ["a"]


def test_digests_are_streamed_and_remembered(tmp_path, monkeypatch):
    big = tmp_path / "big.npz"
    blob = bytes(range(256)) * (3 * 2**12 + 1)  # just over 3 MiB: several chunks
    big.write_bytes(blob)
    assert file_digest(big) == "sha256:" + hashlib.sha256(blob).hexdigest()
    reads = []
    original = Path.open

    def counted(self, *args, **kwargs):
        reads.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counted)
    assert file_digest(big) == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert reads == []  # same path, mtime and size: not read again
    with open(big, "wb") as stream:  # not Path.open, which is counted
        stream.write(blob[:-1] + b"!")  # the same size: only the mtime tells
    os.utime(big, ns=(big.stat().st_atime_ns, big.stat().st_mtime_ns + 10**9))  # coarse clocks: make sure
    assert file_digest(big) == "sha256:" + hashlib.sha256(blob[:-1] + b"!").hexdigest()
    assert reads == [big]
    assert file_digest(tmp_path / "missing.npz") is None
