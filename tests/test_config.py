"""Config loading and validation: every error names the file and the key path, says what was
found and what was expected. Plain Python over YAML files in tmp_path; no TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchbench.config import (
    AXES,
    Config,
    apply_overrides,
    config_from_dict,
    keras_application_names,
    load_config,
    static_checks,
)
from batchbench.errors import ConfigError

MINIMAL = "model: {builtin: mlp}\nsweep: {batch_sizes: [8, 16]}\n"


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def check(path: Path) -> Config:
    """What `batchbench validate` does: load, then the file-system checks."""
    config = load_config(path)
    static_checks(config)
    return config


def problem(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        check(path)
    message = info.value.format_message()
    assert "Traceback" not in message
    return message


def assert_says(message: str, path: Path, key: str | None, *fragments: str) -> None:
    """'<file>: <key.path>: <found>, <expected>' -- the file first, then the key, then the words."""
    where = f"{path}: {key}: " if key else f"{path}: "
    assert message.startswith(where) or f"\n  {where}" in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# ---------------------------------------------------------------- a valid config
def test_minimal_config_fills_in_defaults(tmp_path):
    config = check(write(tmp_path, MINIMAL))
    assert config.model.source == "builtin" and config.model.label == "mlp"
    assert config.data.source == "synthetic" and config.data.synthetic.samples == 1024
    assert config.sweep.batch_sizes == [8, 16]
    assert config.sweep.modes == ["fit", "predict"]
    assert config.sweep.methods == ["predict", "serve"]
    assert config.device.use == "auto" and config.device.gpu_indices is None
    assert config.output.dir == "results"  # not given: the working directory's results/, not the config's
    assert config.axes() == {"precision": ["float32"], "jit_compile": ["auto"], "backend": ["tensorflow"],
                             "strategy": ["default"], "sequence_length": [None]}
    assert tuple(config.axes()) == AXES
    assert config.varying_axes() == []


def test_a_full_config_reads_as_written(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "houses.csv").write_text("a,b,price\n1,2,3.5\n")
    config = check(write(tmp_path, """
name: houses
model:
  builtin: mlp
  kwargs: {hidden: 32}
  compile:
    optimizer: {name: adam, learning_rate: 0.01, beta_1: 0.8}
    loss: mse
    metrics: mae
data:
  csv: {path: data/houses.csv, target: price}
  validation_split: 0.2
sweep:
  batch_sizes: {min: 8, max: 64}
  modes: predict
  repeats: 3
  memory_limit: 1.5GiB
  device_memory_limit: 800MiB
  margin: 10%
  find_max: true
  slo_ms: 20
  percentile: 95
  lr_scaling: sqrt
  base_batch_size: 32
  target: {metric: val_loss, value: 0.1, max_epochs: 5}
  precision: [float32, mixed_bfloat16]
  jit_compile: [false, true]
  backend: tensorflow
  strategy: default
device: {use: cpu, logical_devices: 2}
output: {dir: out, plots: false}
"""))
    assert config.name == "houses"
    assert config.model.compile.optimizer.name == "adam"
    assert config.model.compile.optimizer.learning_rate == 0.01
    assert config.model.compile.optimizer.model_extra == {"beta_1": 0.8}
    assert config.model.compile.metrics == ["mae"]
    assert config.data.csv.path == str(tmp_path / "data" / "houses.csv")
    assert config.sweep.batch_sizes == [8, 16, 32, 64]
    assert config.sweep.modes == ["predict"]
    assert config.sweep.memory_limit == int(1.5 * 1024**3)
    assert config.sweep.device_memory_limit == 800 * 1024**2
    assert config.sweep.margin == pytest.approx(0.10)
    assert config.sweep.target.max_epochs == 5
    assert config.sweep.jit_compile == [False, True]
    assert config.varying_axes() == ["precision", "jit_compile"]
    assert config.device.use == "cpu" and config.device.logical_devices == 2
    assert config.output.dir == str(tmp_path / "out") and config.output.plots is False


@pytest.mark.parametrize(
    ("batch_sizes", "expected"),
    [
        ("[32, 8, 8, 16]", [8, 16, 32]),
        ("[16.0]", [16]),
        ("64", [64]),
        ("'8,16,32'", [8, 16, 32]),
        ("'1-8'", [1, 2, 4, 8]),
        ("{min: 1, max: 256}", [1, 2, 4, 8, 16, 32, 64, 128, 256]),
        ("{min: 3, max: 20}", [4, 8, 16]),
    ],
)
def test_batch_sizes_as_a_list_a_string_or_a_range(tmp_path, batch_sizes, expected):
    config = check(write(tmp_path, f"model: {{builtin: mlp}}\nsweep: {{batch_sizes: {batch_sizes}}}\n"))
    assert config.sweep.batch_sizes == expected


@pytest.mark.parametrize(
    ("device", "use", "gpus"),
    [("cpu", "cpu", []), ("gpu", "gpu", None), ("auto", "auto", None), ("GPU:1", "gpu:1", [1]),
     ("'gpu:0,1'", "gpu:0,1", [0, 1]), ("'gpu:0, 2'", "gpu:0,2", [0, 2]), ("{use: gpu:3}", "gpu:3", [3])],
)
def test_device_strings(tmp_path, device, use, gpus):
    config = check(write(tmp_path, MINIMAL + f"device: {device}\n"))
    assert config.device.use == use
    assert config.device.gpu_indices == gpus


@pytest.mark.parametrize("synthetic", ["synthetic:", "synthetic: {}", "synthetic: true"])
def test_bare_synthetic_means_all_defaults(tmp_path, synthetic):
    config = check(write(tmp_path, MINIMAL + f"data:\n  {synthetic}\n"))
    assert config.data.source == "synthetic" and config.data.synthetic.samples == 1024


# ---------------------------------------------------------------- the file itself
def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert_says(problem(path), path, None, "not found", "expected")


def test_config_path_is_a_folder(tmp_path):
    assert_says(problem(tmp_path), tmp_path, None, "is a folder, expected a YAML config file")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_config(tmp_path, text):
    path = write(tmp_path, text)
    assert_says(problem(path), path, None, "is empty, expected", "model", "sweep")


def test_unreadable_config(tmp_path, monkeypatch):
    path = write(tmp_path, MINIMAL)
    original = Path.open

    def denied(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    assert_says(problem(path), path, None, "cannot be read (Permission denied)", "expected")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_config_without_read_permission(tmp_path):
    path = write(tmp_path, MINIMAL)
    path.chmod(0)
    try:
        assert_says(problem(path), path, None, "cannot be read")
    finally:
        path.chmod(0o644)


def test_binary_file_is_not_a_config(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04\xff\xfe\x00binary")
    assert_says(problem(path), path, None, "is not UTF-8 text, expected a YAML config file")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("model:\n  builtin: mlp\n sweep: [1,\n", "line 3", "YAML syntax error"),
        ("model: {builtin: mlp\nsweep: {batch_sizes: [8]}\n", "line 2", "YAML syntax error"),
        ("model:\n  builtin: mlp\nsweep:\n  batch_sizes: [8, 16\n  repeats: 3\n", "line 5", "YAML syntax error"),
        ("model:\n\tbuiltin: mlp\n", "line 2", "spaces, not tabs"),
        ("name: a: b\n", "line 1", "YAML syntax error"),
    ],
)
def test_yaml_syntax_error_gives_the_line(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    message = problem(path)
    assert message.startswith(f"{path}: {line}, column "), message
    assert fragment in message


def test_a_key_given_twice_is_an_error_not_a_silent_overwrite(tmp_path):
    path = write(tmp_path, "model: {builtin: mlp}\nsweep: {batch_sizes: [8]}\nmodel: {builtin: cnn}\n")
    message = problem(path)
    assert_says(message, path, "line 3, column 1", "got the key 'model' twice (first on line 1)")


def test_yaml_anchors_and_merge_keys_still_work(tmp_path):
    config = check(write(tmp_path, """
model: &mlp {builtin: mlp}
sweep:
  <<: {repeats: 3, batch_sizes: [8]}
  repeats: 4
"""))
    assert config.sweep.repeats == 4 and config.sweep.batch_sizes == [8]


def test_python_tags_are_refused_by_the_safe_loader(tmp_path):
    path = write(tmp_path, "model: !!python/object/apply:os.system ['true']\nsweep: {batch_sizes: [8]}\n")
    assert_says(problem(path), path, "line 1, column 8", "got the YAML tag !!python/object/apply:os.system",
                "expected plain YAML")


@pytest.mark.parametrize(("text", "found"), [("- a\n- b\n", "list"), ("hello\n", "str"), ("42\n", "int")])
def test_top_level_must_be_a_mapping(tmp_path, text, found):
    path = write(tmp_path, text)
    assert_says(problem(path), path, None, f"got {found}", "expected a mapping with keys name, model")


# ---------------------------------------------------------------- unknown keys, at every level
@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        (MINIMAL + "swep: {}\n", "swep", "did you mean 'sweep'?"),
        (MINIMAL + "nmae: x\n", "nmae", "did you mean 'name'?"),
        ("model: {builtin: mlp, kwarg: {}}\nsweep: {batch_sizes: [8]}\n", "model.kwarg", "did you mean 'kwargs'?"),
        ("model: {builtin: mlp, compile: {optimiser: adam}}\nsweep: {batch_sizes: [8]}\n",
         "model.compile.optimiser", "did you mean 'optimizer'?"),
        ("model: {builtin: mlp, compile: {optimizer: {name: adam, lr: 0.1}}}\nsweep: {batch_sizes: [8]}\n",
         "model.compile.optimizer.lr", "did you mean 'learning_rate'?"),
        ("model: {builtin: mlp, compile: {optimizer: {name: adam, learning_rat: 0.1}}}\nsweep: {batch_sizes: [8]}\n",
         "model.compile.optimizer.learning_rat", "did you mean 'learning_rate'?"),
        (MINIMAL + "data: {synthetc: {}}\n", "data.synthetc", "did you mean 'synthetic'?"),
        (MINIMAL + "data: {synthetic: {sample: 10}}\n", "data.synthetic.sample", "did you mean 'samples'?"),
        (MINIMAL + "data: {npz: {path: a.npz, xx: x}}\n", "data.npz.xx", "did you mean 'x'?"),
        (MINIMAL + "data: {csv: {path: a.csv, targt: y}}\n", "data.csv.targt", "did you mean 'target'?"),
        (MINIMAL + "data: {callable: {function: 'm:f', kwarg: {}}}\n", "data.callable.kwarg",
         "did you mean 'kwargs'?"),
        (MINIMAL + "data: {synthetic: {}, validation_splt: 0.1}\n", "data.validation_splt",
         "did you mean 'validation_split'?"),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], repeat: 3}\n", "sweep.repeat", "did you mean 'repeats'?"),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], batch_size: [8]}\n", "sweep.batch_size",
         "did you mean 'batch_sizes'?"),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], stability: {window_step: 5}}\n",
         "sweep.stability.window_step", "did you mean 'window_steps'?"),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], target: {metric: loss, value: 1, max_epoch: 3}}\n",
         "sweep.target.max_epoch", "did you mean 'max_epochs'?"),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: {min: 1, mx: 8}}\n", "sweep.batch_sizes.mx",
         "did you mean 'max'?"),
        (MINIMAL + "device: {use: cpu, logical_device: 2}\n", "device.logical_device",
         "did you mean 'logical_devices'?"),
        (MINIMAL + "output: {dirr: out}\n", "output.dirr", "did you mean 'dir'?"),
    ],
)
def test_misspelled_keys_name_the_key_and_suggest_the_right_one(tmp_path, text, key, hint):
    path = write(tmp_path, text)
    assert_says(problem(path), path, key, "unknown key", hint)


def test_unknown_key_without_a_near_match_lists_the_known_keys(tmp_path):
    path = write(tmp_path, MINIMAL + "colour: blue\n")
    assert_says(problem(path), path, "colour", "unknown key, expected one of name, model, data, sweep, device, output")


@pytest.mark.parametrize(
    ("text", "key", "home"),
    [
        ("model: {builtin: mlp}\nbatch_sizes: [8]\nsweep: {batch_sizes: [8]}\n", "batch_sizes", "under sweep"),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], samples: 64}\n", "sweep.samples", "under data.synthetic"),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], name: x}\n", "sweep.name", "at the top level"),
    ],
)
def test_keys_at_the_wrong_level_say_where_they_belong(tmp_path, text, key, home):
    path = write(tmp_path, text)
    assert_says(problem(path), path, key, f"unknown key here, expected it {home}")


# ---------------------------------------------------------------- wrong types and values
@pytest.mark.parametrize(
    ("text", "key", "fragments"),
    [
        ("model: mlp\nsweep: {batch_sizes: [8]}\n", "model", ["got 'mlp'", "expected a mapping with keys builtin"]),
        ("model: {builtin: mlp}\nsweep: [8, 16]\n", "sweep", ["got [8, 16]", "expected a mapping with keys batch_sizes"]),
        ("model: {builtin: resnet}\nsweep: {batch_sizes: [8]}\n", "model.builtin",
         ["got 'resnet'", "expected mlp or cnn"]),
        ("model: {builtin: mlp, kwargs: [1, 2]}\nsweep: {batch_sizes: [8]}\n", "model.kwargs",
         ["got [1, 2]", "expected a mapping"]),
        ("model: {builtin: mlp, input_shape: [32, 0]}\nsweep: {batch_sizes: [8]}\n", "model.input_shape[1]",
         ["got 0", "expected a positive integer"]),
        ("model: {builtin: mlp, compile: {optimizer: 3}}\nsweep: {batch_sizes: [8]}\n", "model.compile.optimizer",
         ["got 3", "expected an optimizer name such as adam"]),
        ("model: {builtin: mlp, compile: {metrics: {a: 1}}}\nsweep: {batch_sizes: [8]}\n", "model.compile.metrics",
         ["got {a: 1}", "expected a list"]),
        ("name: 3\n" + MINIMAL, "name", ["got 3", "expected a string"]),
        ("name: 'my/run'\n" + MINIMAL, "name", ["got 'my/run'", "it names a folder"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], repeats: many}\n", "sweep.repeats",
         ["got 'many'", "expected a positive integer"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], repeats: 2.5}\n", "sweep.repeats",
         ["got 2.5", "expected a positive integer"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], repeats: 0}\n", "sweep.repeats",
         ["got 0", "expected a positive integer"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], epochs: true}\n", "sweep.epochs",
         ["got true", "expected a positive integer"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], warmup_steps: -1}\n", "sweep.warmup_steps",
         ["got -1", "expected an integer at least 0"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], min_time_s: fast}\n", "sweep.min_time_s",
         ["got 'fast'", "expected a number at least 0"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], trial_timeout_s: .nan}\n", "sweep.trial_timeout_s",
         ["got nan", "expected a number greater than 0"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], find_max: maybe}\n", "sweep.find_max",
         ["got 'maybe'", "expected true or false"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], percentile: 101}\n", "sweep.percentile",
         ["got 101", "expected a number greater than 0 and at most 100"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], slo_ms: -5}\n", "sweep.slo_ms",
         ["got -5", "greater than 0"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], modes: [fit, train]}\n", "sweep.modes[1]",
         ["got 'train'", "expected fit or predict"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], modes: []}\n", "sweep.modes",
         ["got an empty list", "expected at least one"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], methods: [serve, call]}\n", "sweep.methods[1]",
         ["got 'call'", "expected predict or serve"]),
        ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], stability: {max_windows: 2}}\n",
         "sweep.stability.max_windows", ["got 2", "expected an integer at least 3"]),
        (MINIMAL + "data: {synthetic: {samples: 0}}\n", "data.synthetic.samples", ["got 0", "positive integer"]),
        (MINIMAL + "data: {synthetic: {}, validation_split: 1.5}\n", "data.validation_split",
         ["got 1.5", "expected a number at least 0 and less than 1"]),
        (MINIMAL + "data: {csv: {path: a.csv}}\n", "data.csv.target",
         ["missing", "expected the name of the target column"]),
        (MINIMAL + "output: {plots: maybe}\n", "output.plots", ["got 'maybe'", "expected true or false"]),
        ("model: {builtin: mlp}\n", "sweep", ["missing", "expected a mapping with at least batch_sizes"]),
    ],
)
def test_wrong_types_say_what_was_found_and_what_was_expected(tmp_path, text, key, fragments):
    path = write(tmp_path, text)
    assert_says(problem(path), path, key, *fragments)


# ---------------------------------------------------------------- batch sizes
@pytest.mark.parametrize(
    ("batch_sizes", "key", "fragments"),
    [
        ("[8, 16, 0]", "sweep.batch_sizes[2]", ["got 0", "expected a positive integer"]),
        ("[8, 16, -4]", "sweep.batch_sizes[2]", ["got -4", "expected a positive integer"]),
        ("[8, 16, 2.5]", "sweep.batch_sizes[2]", ["got 2.5", "expected a positive integer"]),
        ("[8, abc]", "sweep.batch_sizes[1]", ["got 'abc'", "expected a positive integer"]),
        ("[8, true]", "sweep.batch_sizes[1]", ["got true", "expected a positive integer"]),
        ("[8, null]", "sweep.batch_sizes[1]", ["got null", "expected a positive integer"]),
        ("[]", "sweep.batch_sizes", ["got an empty list", "expected at least one batch size"]),
        ("null", "sweep.batch_sizes", ["got null", "expected a list such as [8, 16, 32]"]),
        ("0", "sweep.batch_sizes[0]", ["got 0", "expected a positive integer"]),
        ("'8,x'", "sweep.batch_sizes", ["got '8,x'", "expected batch sizes such as 8,16,32"]),
        ("{min: 64, max: 8}", "sweep.batch_sizes", ["got min 64 larger than max 8", "expected min <= max"]),
        ("{max: 8}", "sweep.batch_sizes.min", ["missing", "expected both min and max"]),
        ("{min: 8}", "sweep.batch_sizes.max", ["missing", "expected both min and max"]),
        ("{min: 0, max: 8}", "sweep.batch_sizes.min", ["got 0", "expected a positive integer"]),
        ("{min: 1, max: 2.5}", "sweep.batch_sizes.max", ["got 2.5", "expected a positive integer"]),
        ("{min: 5, max: 7}", "sweep.batch_sizes", ["no power of two"]),
    ],
)
def test_bad_batch_sizes(tmp_path, batch_sizes, key, fragments):
    path = write(tmp_path, f"model: {{builtin: mlp}}\nsweep: {{batch_sizes: {batch_sizes}}}\n")
    assert_says(problem(path), path, key, *fragments)


def test_missing_batch_sizes(tmp_path):
    path = write(tmp_path, "model: {builtin: mlp}\nsweep: {repeats: 3}\n")
    assert_says(problem(path), path, "sweep.batch_sizes", "missing, expected a list such as [8, 16, 32]")


# ---------------------------------------------------------------- sources
@pytest.mark.parametrize(
    ("model", "found"),
    [
        ("{builtin: mlp, application: MobileNetV2}", "got builtin and application"),
        ("{path: m.keras, factory: 'm:f'}", "got path and factory"),
        ("{kwargs: {hidden: 3}}", "got none of them"),
        ("{}", "got none of them"),
    ],
)
def test_exactly_one_model_source(tmp_path, model, found):
    path = write(tmp_path, f"model: {model}\nsweep: {{batch_sizes: [8]}}\n")
    assert_says(problem(path), path, "model", found, "expected exactly one of builtin, application, path or factory")


def test_missing_model(tmp_path):
    path = write(tmp_path, "sweep: {batch_sizes: [8]}\n")
    assert_says(problem(path), path, "model", "missing, expected a model source")


@pytest.mark.parametrize(
    ("data", "found"),
    [
        ("{synthetic: {}, npz: {path: a.npz}}", "got synthetic and npz"),
        ("{csv: {path: a.csv, target: y}, callable: {function: 'm:f'}}", "got csv and callable"),
        ("{validation_split: 0.1}", "got none of them"),
    ],
)
def test_exactly_one_data_source(tmp_path, data, found):
    path = write(tmp_path, MINIMAL + f"data: {data}\n")
    assert_says(problem(path), path, "data", found, "expected exactly one of synthetic, npz, csv, callable or image_dir")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("model: {factory: mymodels}\nsweep: {batch_sizes: [8]}\n", "model.factory"),
        ("model: {factory: 'mymodels:'}\nsweep: {batch_sizes: [8]}\n", "model.factory"),
        (MINIMAL + "data: {callable: {function: 'load data'}}\n", "data.callable.function"),
    ],
)
def test_references_must_read_module_colon_function(tmp_path, text, key):
    path = write(tmp_path, text)
    assert_says(problem(path), path, key, "expected 'module:function'")


# ---------------------------------------------------------------- files and modules (static checks)
def test_model_file_that_does_not_exist(tmp_path):
    path = write(tmp_path, "model: {path: models/nope.keras}\nsweep: {batch_sizes: [8]}\n")
    missing = tmp_path / "models" / "nope.keras"
    assert_says(problem(path), path, "model.path", f"got {missing}, which does not exist",
                "expected a .keras or .h5 file or a SavedModel folder")


def test_model_file_of_the_wrong_kind(tmp_path):
    (tmp_path / "weights.txt").write_text("not a model")
    path = write(tmp_path, "model: {path: weights.txt}\nsweep: {batch_sizes: [8]}\n")
    assert_says(problem(path), path, "model.path", "weights.txt", "expected a .keras or .h5 file")


def test_model_folder_that_is_not_a_saved_model(tmp_path):
    (tmp_path / "exported").mkdir()
    path = write(tmp_path, "model: {path: exported}\nsweep: {batch_sizes: [8]}\n")
    assert_says(problem(path), path, "model.path", "holds no saved_model.pb")
    (tmp_path / "exported" / "saved_model.pb").write_bytes(b"")
    assert check(path).model.path == str(tmp_path / "exported")


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".hdf5"])
def test_model_files_that_exist_pass_validation(tmp_path, suffix):
    (tmp_path / f"m{suffix}").write_bytes(b"")
    config = check(write(tmp_path, f"model: {{path: m{suffix}}}\nsweep: {{batch_sizes: [8]}}\n"))
    assert config.model.label == f"m{suffix}"


@pytest.mark.parametrize(
    ("data", "key", "kind"),
    [
        ("{npz: {path: data/nope.npz}}", "data.npz.path", "an .npz file"),
        ("{csv: {path: data/nope.csv, target: price}}", "data.csv.path", "a CSV file"),
    ],
)
def test_data_file_that_does_not_exist(tmp_path, data, key, kind):
    path = write(tmp_path, MINIMAL + f"data: {data}\n")
    assert_says(problem(path), path, key, "which does not exist", f"expected {kind}")


def test_data_path_that_is_a_folder(tmp_path):
    (tmp_path / "data").mkdir()
    path = write(tmp_path, MINIMAL + "data: {npz: {path: data}}\n")
    assert_says(problem(path), path, "data.npz.path", "got the folder", "expected an .npz file")


def test_factory_module_that_cannot_be_found(tmp_path):
    path = write(tmp_path, "model: {factory: 'no_such_module_xyz:build'}\nsweep: {batch_sizes: [8]}\n")
    assert_says(problem(path), path, "model.factory", "no module 'no_such_module_xyz'", str(tmp_path),
                "expected 'module:function'")


def test_callable_module_that_cannot_be_found(tmp_path):
    path = write(tmp_path, MINIMAL + "data: {callable: {function: 'no_such_loader_xyz:load'}}\n")
    assert_says(problem(path), path, "data.callable.function", "no module 'no_such_loader_xyz'")


def test_factory_function_that_the_module_does_not_define(tmp_path):
    (tmp_path / "zoo_fn_missing.py").write_text("def small_convnet():\n    pass\n")
    path = write(tmp_path, "model: {factory: 'zoo_fn_missing:small_convnt'}\nsweep: {batch_sizes: [8]}\n")
    assert_says(problem(path), path, "model.factory", "defines no 'small_convnt'",
                "did you mean 'zoo_fn_missing:small_convnet'?")


def test_factory_beside_the_config_is_found_without_being_imported(tmp_path, monkeypatch):
    # validate must not run the user's module: it would import TensorFlow (or worse).
    (tmp_path / "zoo_not_run.py").write_text(
        "raise RuntimeError('imported!')\nimport keras\n\ndef build(num_classes=10):\n    return None\n")
    monkeypatch.chdir(tmp_path.parent)
    config = check(write(tmp_path, "model: {factory: 'zoo_not_run:build'}\nsweep: {batch_sizes: [8]}\n"))
    assert config.model.factory == "zoo_not_run:build"
    assert "zoo_not_run" not in __import__("sys").modules


def test_factory_in_a_package_is_found_without_running_the_package(tmp_path):
    package = tmp_path / "zoo_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('package imported!')\n")
    (package / "convnets.py").write_text("def build():\n    return None\n")
    path_before = list(__import__("sys").path)
    check(write(tmp_path, "model: {factory: 'zoo_pkg.convnets:build'}\nsweep: {batch_sizes: [8]}\n"))
    assert __import__("sys").path == path_before  # the controller's import path is left alone
    path = write(tmp_path, "model: {factory: 'zoo_pkg.resnets:build'}\nsweep: {batch_sizes: [8]}\n")
    assert_says(problem(path), path, "model.factory", "no module 'zoo_pkg.resnets'")
    path = write(tmp_path, "model: {factory: 'zoo_pkg.convnets.deeper:build'}\nsweep: {batch_sizes: [8]}\n")
    assert_says(problem(path), path, "model.factory", "no module 'zoo_pkg.convnets.deeper'")


def test_factory_from_an_installed_module(tmp_path):
    check(write(tmp_path, "model: {factory: 'json:loads'}\nsweep: {batch_sizes: [8]}\n"))
    check(write(tmp_path, "model: {factory: 'os.path:join'}\nsweep: {batch_sizes: [8]}\n"))
    path = write(tmp_path, "model: {factory: 'json:lods'}\nsweep: {batch_sizes: [8]}\n")
    assert_says(problem(path), path, "model.factory", "defines no 'lods'", "did you mean 'json:loads'?")


def test_factory_module_with_star_imports_is_given_the_benefit_of_the_doubt(tmp_path):
    (tmp_path / "zoo_star.py").write_text("from os.path import *\n")
    check(write(tmp_path, "model: {factory: 'zoo_star:anything'}\nsweep: {batch_sizes: [8]}\n"))


@pytest.mark.skipif(keras_application_names() is None, reason="Keras is not installed")
@pytest.mark.parametrize(("name", "hint"), [("MobileNetV5", "MobileNet"), ("resnet50", "ResNet50")])
def test_unknown_application_name(tmp_path, name, hint):
    path = write(tmp_path, f"model: {{application: {name}}}\nsweep: {{batch_sizes: [8]}}\n")
    assert_says(problem(path), path, "model.application", f"got '{name}'", "keras.applications does not have",
                f"did you mean {hint}")


@pytest.mark.skipif(keras_application_names() is None, reason="Keras is not installed")
def test_known_application_names_pass():
    names = keras_application_names()
    assert {"MobileNetV2", "ResNet50", "EfficientNetB0"} <= names
    assert "imagenet_utils" not in names and "mobilenet_v2" not in names


def test_output_dir_blocked_by_a_file(tmp_path):
    (tmp_path / "results").write_text("")
    path = write(tmp_path, MINIMAL + "output: {dir: results/mine}\n")
    assert_says(problem(path), path, "output.dir", "is a file", "expected a folder where results can be written")


def test_static_problems_are_reported_together(tmp_path):
    path = write(tmp_path, "model: {path: nope.h5}\ndata: {csv: {path: nope.csv, target: y}}\n"
                           "sweep: {batch_sizes: [8]}\n")
    message = problem(path)
    assert message.startswith(f"{path}: 2 problems:")
    assert_says(message, path, "model.path", "nope.h5")
    assert_says(message, path, "data.csv.path", "nope.csv")


# ---------------------------------------------------------------- devices, sizes, axes, learning rates
@pytest.mark.parametrize(
    ("device", "key", "found"),
    [
        ("tpu", "device.use", "got 'tpu'"),
        ("'gpu:'", "device.use", "got 'gpu:'"),
        ("gpu:x", "device.use", "got 'gpu:x'"),
        ("'gpu:0,'", "device.use", "got 'gpu:0,'"),
        ("cuda", "device.use", "got 'cuda'"),
        ("0", "device.use", "got 0"),
        ("{use: gpu1}", "device.use", "got 'gpu1'"),
        ("[cpu]", "device", "got ['cpu']"),
        ("{use: cpu, logical_devices: 0}", "device.logical_devices", "got 0"),
    ],
)
def test_bad_device(tmp_path, device, key, found):
    path = write(tmp_path, MINIMAL + f"device: {device}\n")
    message = problem(path)
    assert_says(message, path, key, found)
    if key == "device.use":
        assert "expected auto, cpu, gpu, gpu:N" in message


@pytest.mark.parametrize(
    ("line", "key", "fragments"),
    [
        ("memory_limit: 12XB", "sweep.memory_limit", ["got '12XB'", "unknown unit 'XB'", "expected a size"]),
        ("memory_limit: lots", "sweep.memory_limit", ["got 'lots'", "expected a size such as 1.5GiB"]),
        ("device_memory_limit: -1GiB", "sweep.device_memory_limit", ["got '-1GiB'", "expected a size"]),
        ("device_memory_limit: 0", "sweep.device_memory_limit", ["got 0", "expected a positive size"]),
        ("memory_limit: [1GiB]", "sweep.memory_limit", ["got ['1GiB']", "expected a size"]),
        ("margin: 150%", "sweep.margin", ["got '150%'", "expected a fraction from 0 up to"]),
        ("margin: lots", "sweep.margin", ["got 'lots'", "expected a fraction such as 10%"]),
        ("margin: null", "sweep.margin", ["got null", "expected a fraction"]),
        ("precision: fp16", "sweep.precision", ["got 'fp16'", "expected float32, mixed_float16"]),
        ("precision: [float32, fp16]", "sweep.precision[1]", ["got 'fp16'", "or bfloat16"]),
        ("precision: []", "sweep.precision", ["got an empty list", "expected at least one value"]),
        ("backend: mxnet", "sweep.backend", ["got 'mxnet'", "expected tensorflow, jax or torch"]),
        ("backend: [jax, Torch]", "sweep.backend[1]", ["got 'Torch'", "expected tensorflow, jax or torch"]),
        ("strategy: [default, tpu]", "sweep.strategy[1]", ["got 'tpu'", "expected default or mirrored"]),
        ("jit_compile: maybe", "sweep.jit_compile", ["got 'maybe'", "expected true, false or auto"]),
        ("jit_compile: [true, 1]", "sweep.jit_compile[1]", ["got 1", "expected true, false or auto"]),
        ("lr_scaling: quadratic", "sweep.lr_scaling", ["got 'quadratic'", "expected none, linear or sqrt"]),
        ("lr_scaling: true", "sweep.lr_scaling", ["got true", "expected none, linear or sqrt"]),
        ("base_batch_size: 0", "sweep.base_batch_size", ["got 0", "expected a positive integer"]),
        ("lr_warmup_epochs: -1", "sweep.lr_warmup_epochs", ["got -1", "at least 0"]),
        ("target: {metric: val_loss, value: 0.1, max_epochs: 0}", "sweep.target.max_epochs",
         ["got 0", "expected a positive integer"]),
        ("target: {value: 0.1}", "sweep.target.metric", ["missing", "expected a metric name"]),
        ("target: {metric: val_loss}", "sweep.target.value", ["missing", "expected the metric value"]),
        ("target: val_loss", "sweep.target", ["got 'val_loss'", "expected a mapping with keys metric, value"]),
    ],
)
def test_bad_sweep_values(tmp_path, line, key, fragments):
    path = write(tmp_path, f"model: {{builtin: mlp}}\nsweep:\n  batch_sizes: [8]\n  {line}\n")
    assert_says(problem(path), path, key, *fragments)


@pytest.mark.parametrize(
    ("line", "attribute", "value"),
    [
        ("memory_limit: 1.5GiB", "memory_limit", int(1.5 * 1024**3)),
        ("memory_limit: 2G", "memory_limit", 2 * 1000**3),
        ("device_memory_limit: 800MiB", "device_memory_limit", 800 * 1024**2),
        ("margin: 10%", "margin", pytest.approx(0.1)),
        ("margin: 0.15", "margin", pytest.approx(0.15)),
        ("precision: mixed_float16", "precision", ["mixed_float16"]),
        ("precision: [float32, float32, mixed_bfloat16]", "precision", ["float32", "mixed_bfloat16"]),
        ("jit_compile: [auto, true, 'false']", "jit_compile", ["auto", True, False]),
        ("jit_compile: false", "jit_compile", [False]),
        ("backend: [tensorflow, jax]", "backend", ["tensorflow", "jax"]),
        ("strategy: mirrored", "strategy", ["mirrored"]),
        ("lr_scaling: linear", "lr_scaling", "linear"),
        ("modes: 'predict, fit'", "modes", ["predict", "fit"]),
        ("modes: [fit, fit]", "modes", ["fit"]),
    ],
)
def test_good_sweep_values(tmp_path, line, attribute, value):
    config = check(write(tmp_path, f"model: {{builtin: mlp}}\nsweep:\n  batch_sizes: [8]\n  {line}\n"))
    assert getattr(config.sweep, attribute) == value


@pytest.mark.parametrize(
    ("optimizer", "key", "fragments"),
    [
        ("{name: adam, learning_rate: -1}", "model.compile.optimizer.learning_rate",
         ["got -1", "expected a number greater than 0"]),
        ("{name: adam, learning_rate: 0}", "model.compile.optimizer.learning_rate", ["got 0", "greater than 0"]),
        ("{name: adam, learning_rate: fast}", "model.compile.optimizer.learning_rate",
         ["got 'fast'", "expected a number"]),
        ("{learning_rate: 0.01}", "model.compile.optimizer.name", ["missing", "expected an optimizer name"]),
        ("[adam]", "model.compile.optimizer", ["got ['adam']", "expected an optimizer name such as adam"]),
    ],
)
def test_bad_optimizer(tmp_path, optimizer, key, fragments):
    path = write(tmp_path, f"model: {{builtin: mlp, compile: {{optimizer: {optimizer}}}}}\nsweep: {{batch_sizes: [8]}}\n")
    message = problem(path)
    assert_says(message, path, key, *fragments)
    assert "problems" not in message  # one mistake, one message (not one per union member)


def test_optimizer_by_name_or_mapping(tmp_path):
    config = check(write(tmp_path, "model: {builtin: mlp, compile: {optimizer: sgd}}\nsweep: {batch_sizes: [8]}\n"))
    assert config.model.compile.optimizer == "sgd"
    config = check(write(tmp_path, "model: {builtin: mlp, compile: {optimizer: {name: sgd, momentum: 0.9}}}\n"
                                   "sweep: {batch_sizes: [8]}\n"))
    assert config.model.compile.optimizer.name == "sgd"
    assert config.model.compile.optimizer.learning_rate is None  # Keras' default for sgd
    assert config.resolved()["model"]["compile"]["optimizer"] == {"name": "sgd", "learning_rate": None,
                                                                    "momentum": 0.9}


# ---------------------------------------------------------------- several problems at once
def test_several_problems_are_listed_one_per_line(tmp_path):
    path = write(tmp_path, "model: {builtin: mlp, kwarg: 1}\nsweep: {batch_sizes: [0, 8], repeats: 0, repeat: 1}\n"
                           "foo: 1\n")
    message = problem(path)
    lines = message.splitlines()
    assert lines[0] == f"{path}: 5 problems:"
    assert len(lines) == 6
    for line in lines[1:]:
        assert line.startswith(f"  {path}: ")
    assert_says(message, path, "model.kwarg", "did you mean 'kwargs'?")
    assert_says(message, path, "sweep.batch_sizes[0]", "got 0")
    assert_says(message, path, "sweep.repeats", "got 0")
    assert_says(message, path, "sweep.repeat", "did you mean 'repeats'?")
    assert_says(message, path, "foo", "unknown key")


def test_config_error_carries_file_key_and_problems(tmp_path):
    path = write(tmp_path, "model: {builtin: mlp}\nsweep: {batch_sizes: [8, 16, 0]}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    assert info.value.key == "sweep.batch_sizes[2]"
    assert info.value.exit_code == 2
    assert info.value.problems == [("sweep.batch_sizes[2]", "got 0, expected a positive integer")]
    assert info.value.format_message() == f"{path}: sweep.batch_sizes[2]: got 0, expected a positive integer"


# ---------------------------------------------------------------- paths, names and the config's folder
def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "configs" / "data").mkdir(parents=True)
    (project / "configs" / "data" / "train.npz").write_bytes(b"")
    (project / "models").mkdir()
    (project / "models" / "net.keras").write_bytes(b"")
    path = write(project, "model: {path: ../models/net.keras}\ndata: {npz: {path: data/train.npz}}\n"
                          "sweep: {batch_sizes: [8]}\noutput: {dir: ../runs}\n", name="configs/bench.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = check(Path("..") / path.relative_to(tmp_path))  # as typed: ../project/configs/bench.yaml
    configs = (project / "configs").resolve()
    assert config.model.path == str(project / "models" / "net.keras")
    assert config.data.npz.path == str(configs / "data" / "train.npz")
    assert config.output.dir == str(project / "runs")
    assert config.base_dir == str(configs)


def test_relative_paths_resolve_and_pass_static_checks(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "h.csv").write_text("a,y\n1,2\n")
    path = write(tmp_path, MINIMAL + "data: {csv: {path: data/h.csv, target: y}}\n")
    monkeypatch.chdir("/")
    config = check(path)
    assert config.data.csv.path == str(tmp_path / "data" / "h.csv")


def test_absolute_and_home_paths_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "abs.csv").write_text("a,y\n1,2\n")
    config = load_config(write(tmp_path, MINIMAL + f"data: {{csv: {{path: {tmp_path / 'abs.csv'}, target: y}}}}\n"
                                                   "output: {dir: ~/results}\n"))
    assert config.data.csv.path == str(tmp_path / "abs.csv")
    assert config.output.dir == str(tmp_path / "home" / "results")


def test_factory_module_is_found_beside_the_config_from_any_working_directory(tmp_path, monkeypatch):
    folder = tmp_path / "cfgs"
    folder.mkdir()
    (folder / "zoo_beside.py").write_text("def build():\n    return None\n")
    path = write(folder, "model: {factory: 'zoo_beside:build'}\nsweep: {batch_sizes: [8]}\n")
    monkeypatch.chdir(tmp_path)
    assert check(path).base_dir == str(folder)


@pytest.mark.parametrize(("filename", "name"), [("resnet-sweep.yaml", "resnet-sweep"), ("my model.yml", "my_model"),
                                                ("v1.2.yaml", "v1.2")])
def test_name_defaults_to_the_file_stem(tmp_path, filename, name):
    config = load_config(write(tmp_path, MINIMAL, name=filename))
    assert config.name == name
    assert config.source_file == str(tmp_path / filename)


def test_explicit_name_wins_over_the_file_stem(tmp_path):
    assert load_config(write(tmp_path, "name: mine\n" + MINIMAL, name="other.yaml")).name == "mine"


def test_config_from_dict_without_a_file():
    config = config_from_dict({"model": {"builtin": "cnn"}, "sweep": {"batch_sizes": [4]}})
    assert config.name == "batchbench" and config.source_file is None
    with pytest.raises(ConfigError, match=r"^config: sweep.batch_sizes\[0\]: got 0"):
        config_from_dict({"model": {"builtin": "cnn"}, "sweep": {"batch_sizes": [0]}})
    with pytest.raises(ConfigError, match=r"^config: got list"):
        config_from_dict([1, 2])


# ---------------------------------------------------------------- the measurement hash
def _hash(tmp_path, text: str) -> str:
    return load_config(write(tmp_path, text)).measurement_hash()


def test_measurement_hash_is_stable(tmp_path):
    assert _hash(tmp_path, MINIMAL) == _hash(tmp_path, MINIMAL)
    # the same config written differently (defaults spelled out, other key order) measures the same
    spelled_out = "sweep: {repeats: 3, rounds: {min: 3}, batch_sizes: [16, 8], modes: [fit, predict]}\nmodel: {builtin: mlp}\n"
    assert _hash(tmp_path, spelled_out) == _hash(tmp_path, MINIMAL)


@pytest.mark.parametrize(
    "changed",
    [
        "model: {builtin: mlp}\nsweep: {batch_sizes: [8, 16], repeats: 5}\n",
        "model: {builtin: mlp}\nsweep: {batch_sizes: [8, 16], rounds: 2}\n",
        "model: {builtin: mlp}\nsweep: {batch_sizes: [8, 32]}\n",
        "model: {builtin: mlp}\nsweep: {batch_sizes: [8, 16], precision: mixed_bfloat16}\n",
        "model: {builtin: mlp}\nsweep: {batch_sizes: [8, 16], min_time_s: 1}\n",
        "model: {builtin: cnn}\nsweep: {batch_sizes: [8, 16]}\n",
        MINIMAL + "data: {synthetic: {samples: 64}}\n",
        MINIMAL + "device: cpu\n",
    ],
)
def test_measurement_hash_changes_with_what_is_measured(tmp_path, changed):
    assert _hash(tmp_path, changed) != _hash(tmp_path, MINIMAL)


@pytest.mark.parametrize("output", ["output: {dir: elsewhere}\n", "output: {plots: false}\n",
                                    "output: {dir: /tmp/x, plots: false}\n"])
def test_measurement_hash_ignores_where_results_go(tmp_path, output):
    assert _hash(tmp_path, MINIMAL + output) == _hash(tmp_path, MINIMAL)


# ---------------------------------------------------------------- command-line overrides
@pytest.fixture
def base_config(tmp_path) -> Config:
    return load_config(write(tmp_path, MINIMAL, name="base.yaml"))


def test_no_overrides_returns_the_config_unchanged(base_config):
    assert apply_overrides(base_config) is base_config
    assert apply_overrides(base_config, batch_sizes=None, repeats=None) is base_config


def test_overrides_are_applied_and_validated_like_the_file(base_config):
    updated = apply_overrides(base_config, batch_sizes=[64, 32], modes=["predict"], repeats=2,
                              memory_limit="1.5GiB", margin="10%", precision=["float32", "mixed_bfloat16"],
                              jit_compile=["true"], find_max=True)
    assert updated.sweep.batch_sizes == [32, 64]
    assert updated.sweep.modes == ["predict"] and updated.sweep.repeats == 2
    assert updated.sweep.memory_limit == int(1.5 * 1024**3)
    assert updated.sweep.margin == pytest.approx(0.1)
    assert updated.sweep.jit_compile == [True] and updated.sweep.find_max is True
    assert updated.varying_axes() == ["precision"]
    assert updated.source_file == base_config.source_file and updated.base_dir == base_config.base_dir
    assert updated.name == "base"
    assert base_config.sweep.batch_sizes == [8, 16]  # the original is untouched
    assert updated.measurement_hash() != base_config.measurement_hash()


@pytest.mark.parametrize(
    ("overrides", "option", "fragments"),
    [
        ({"batch_sizes": [0, 8]}, "--batch-sizes", ["got 0", "expected a positive integer"]),
        ({"batch_sizes": []}, "--batch-sizes", ["got an empty list"]),
        ({"batch_sizes": "8,x"}, "--batch-sizes", ["'x' is not a positive integer"]),
        ({"memory_limit": "12XB"}, "--memory-limit", ["got '12XB'", "unknown unit"]),
        ({"device_memory_limit": "lots"}, "--device-memory-limit", ["got 'lots'", "expected a size"]),
        ({"margin": "200%"}, "--margin", ["got '200%'", "expected a fraction"]),
        ({"modes": ["train"]}, "--modes", ["got 'train'", "expected fit or predict"]),
        ({"methods": ["call"]}, "--methods", ["got 'call'", "expected predict or serve"]),
        ({"repeats": 0}, "--repeats", ["got 0", "expected a positive integer"]),
        ({"percentile": 120.0}, "--percentile", ["got 120.0", "at most 100"]),
        ({"slo_ms": -1.0}, "--slo-ms", ["got -1.0", "greater than 0"]),
        ({"precision": ["fp8"]}, "--precision", ["got 'fp8'"]),
        ({"jit_compile": ["maybe"]}, "--jit-compile", ["got 'maybe'", "expected true, false or auto"]),
        ({"backend": ["mxnet"]}, "--backend", ["got 'mxnet'"]),
        ({"strategy": ["tpu"]}, "--strategy", ["got 'tpu'"]),
        ({"batch_size": [8]}, "--batch-size", ["unknown key, did you mean 'batch_sizes'?"]),
    ],
)
def test_override_errors_name_the_option(base_config, overrides, option, fragments):
    with pytest.raises(ConfigError) as info:
        apply_overrides(base_config, **overrides)
    message = info.value.format_message()
    assert message.startswith(f"{option}: "), message
    for fragment in fragments:
        assert fragment in message
    assert "base.yaml" not in message  # the file is fine; the option is what is wrong


def test_several_bad_overrides_are_listed_together(base_config):
    with pytest.raises(ConfigError) as info:
        apply_overrides(base_config, repeats=0, jit_compile=["maybe"])
    message = info.value.format_message()
    assert message.splitlines()[0] == "2 problems:"
    assert "  --repeats: got 0" in message and "  --jit-compile: got 'maybe'" in message
