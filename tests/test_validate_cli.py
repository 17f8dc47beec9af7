"""`batchbench validate CONFIG`: exit 0 for a good config, 2 with one clear message (the file, the
key path, what was found and what was expected) and no traceback for a bad one; never imports
TensorFlow. The example configs under configs/ are validated here too (validated, not run)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from batchbench.cli import main
from batchbench.config import keras_application_names, load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
REALISTIC = ["mobilenet", "csv-table", "npz-digits", "factory"]  # one per model and data source
EXAMPLES = ["quickstart", *REALISTIC]


def validate(path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["validate", str(path)])
    output = result.output  # stdout and stderr, as the terminal shows them
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert "Traceback" not in output
    return result.exit_code, output


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_config_exits_0_and_summarizes(tmp_path):
    path = write(tmp_path, "model: {builtin: mlp}\nsweep: {batch_sizes: {min: 8, max: 32}, modes: [predict]}\n")
    code, output = validate(path)
    assert code == 0
    assert f"{path}: valid" in output
    assert "8, 16, 32" in output and "predict" in output


# Each bad input the issue lists: (YAML, key path, words the message must hold).
BAD = {
    "unknown top-level key": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8]}\nswep: {}\n",
                              "swep", "did you mean 'sweep'?"),
    "misspelled model key": ("model: {builtin: mlp, kwarg: {}}\nsweep: {batch_sizes: [8]}\n",
                             "model.kwarg", "did you mean 'kwargs'?"),
    "misspelled sweep key": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], repeat: 3}\n",
                             "sweep.repeat", "did you mean 'repeats'?"),
    "misspelled nested key": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], target: {metric: loss, value: 1, "
                              "max_epoch: 2}}\n", "sweep.target.max_epoch", "did you mean 'max_epochs'?"),
    "wrong type": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], repeats: many}\n",
                   "sweep.repeats", "got 'many', expected a positive integer"),
    "zero batch size": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8, 16, 0]}\n",
                        "sweep.batch_sizes[2]", "got 0, expected a positive integer"),
    "negative batch size": ("model: {builtin: mlp}\nsweep: {batch_sizes: [-8]}\n",
                            "sweep.batch_sizes[0]", "got -8"),
    "fractional batch size": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8, 12.5]}\n",
                              "sweep.batch_sizes[1]", "got 12.5"),
    "empty batch sizes": ("model: {builtin: mlp}\nsweep: {batch_sizes: []}\n",
                          "sweep.batch_sizes", "got an empty list"),
    "min > max": ("model: {builtin: mlp}\nsweep: {batch_sizes: {min: 64, max: 8}}\n",
                  "sweep.batch_sizes", "got min 64 larger than max 8, expected min <= max"),
    "missing min": ("model: {builtin: mlp}\nsweep: {batch_sizes: {max: 8}}\n",
                    "sweep.batch_sizes.min", "missing"),
    "two model sources": ("model: {builtin: mlp, factory: 'a:b'}\nsweep: {batch_sizes: [8]}\n",
                          "model", "got builtin and factory, expected exactly one of"),
    "no model source": ("model: {kwargs: {}}\nsweep: {batch_sizes: [8]}\n", "model", "got none of them"),
    "two data sources": ("model: {builtin: mlp}\ndata: {synthetic: {}, csv: {path: a.csv, target: y}}\n"
                         "sweep: {batch_sizes: [8]}\n", "data", "got synthetic and csv"),
    "model file missing": ("model: {path: missing.keras}\nsweep: {batch_sizes: [8]}\n",
                           "model.path", "missing.keras, which does not exist"),
    "npz missing": ("model: {builtin: mlp}\ndata: {npz: {path: missing.npz}}\nsweep: {batch_sizes: [8]}\n",
                    "data.npz.path", "missing.npz, which does not exist"),
    "csv missing": ("model: {builtin: mlp}\ndata: {csv: {path: missing.csv, target: y}}\nsweep: {batch_sizes: [8]}\n",
                    "data.csv.path", "missing.csv, which does not exist"),
    "factory not importable": ("model: {factory: 'not_a_module_xyz:build'}\nsweep: {batch_sizes: [8]}\n",
                               "model.factory", "no module 'not_a_module_xyz'"),
    "bad device": ("model: {builtin: mlp}\ndevice: tpu:0\nsweep: {batch_sizes: [8]}\n",
                   "device.use", "got 'tpu:0', expected auto, cpu, gpu"),
    "bad size": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], memory_limit: 12XB}\n",
                 "sweep.memory_limit", "got '12XB'"),
    "bad margin": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], margin: 100%}\n",
                   "sweep.margin", "got '100%'"),
    "bad precision": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], precision: [float32, half]}\n",
                      "sweep.precision[1]", "got 'half'"),
    "bad backend": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], backend: theano}\n",
                    "sweep.backend", "got 'theano', expected tensorflow, jax or torch"),
    "bad strategy": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], strategy: horovod}\n",
                     "sweep.strategy", "got 'horovod', expected default or mirrored"),
    "bad lr_scaling": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], lr_scaling: cubic}\n",
                       "sweep.lr_scaling", "got 'cubic', expected none, linear or sqrt"),
    "target max_epochs 0": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8], target: {metric: val_loss, value: 0.5, "
                            "max_epochs: 0}}\n", "sweep.target.max_epochs", "got 0, expected a positive integer"),
    "negative learning rate": ("model: {builtin: mlp, compile: {optimizer: {name: adam, learning_rate: -1}}}\n"
                               "sweep: {batch_sizes: [8]}\n",
                               "model.compile.optimizer.learning_rate", "got -1, expected a number greater than 0"),
    "name '..'": ("name: '..'\nmodel: {builtin: mlp}\nsweep: {batch_sizes: [8]}\n",
                  "name", "got '..', expected a folder name"),
    "name with a slash": ("name: ../../etc\nmodel: {builtin: mlp}\nsweep: {batch_sizes: [8]}\n",
                          "name", "got '../../etc', expected a folder name"),
    "hidden name": ("name: .cache\nmodel: {builtin: mlp}\nsweep: {batch_sizes: [8]}\n",
                    "name", "not starting with '.'"),
    "batch size above 2**63": ("model: {builtin: mlp}\nsweep: {batch_sizes: [8, 9223372036854775809]}\n",
                               "sweep.batch_sizes[1]", "expected a batch size of at most 16,777,216 (2**24)"),
    "range to 1e300": ("model: {builtin: mlp}\nsweep: {batch_sizes: {min: 1, max: 1.0e+300}}\n",
                       "sweep.batch_sizes.max", "got 1e+300, expected a batch size of at most"),
    "too many batch sizes": ("model: {builtin: mlp}\nsweep: {batch_sizes: [" + ", ".join(map(str, range(1, 101)))
                             + "]}\n", "sweep.batch_sizes", "got 100 batch sizes, expected at most 64"),
    "model a list": ("model: [1, 2]\nsweep: {batch_sizes: [8]}\n", "model", "got [1, 2], expected a mapping"),
    "data a number": ("model: {builtin: mlp}\ndata: 5\nsweep: {batch_sizes: [8]}\n", "data",
                      "got 5, expected a mapping"),
}
if keras_application_names():
    BAD["unknown application"] = ("model: {application: MobileNetV9}\nsweep: {batch_sizes: [8]}\n",
                                  "model.application", "got 'MobileNetV9'")


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exits_2_naming_file_and_key(tmp_path, case):
    text, key, words = BAD[case]
    path = write(tmp_path, text)
    code, output = validate(path)
    assert code == 2, output
    assert output.startswith(f"error: {path}: {key}: "), output
    assert words in output
    assert len(output.strip().splitlines()) == 1  # one mistake, one line


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("missing", "not found"),
        ("folder", "is a folder"),
        ("empty", "is empty"),
        ("binary", "is not UTF-8 text"),
    ],
)
def test_bad_config_files_exit_2(tmp_path, setup, words):
    path = tmp_path / "config.yaml"
    if setup == "folder":
        path.mkdir()
    elif setup == "empty":
        path.write_text("")
    elif setup == "binary":
        path.write_bytes(b"\x89HDF\r\n\x1a\n\xff\xfe")
    code, output = validate(path)
    assert code == 2
    assert output.startswith(f"error: {path}: ")
    assert words in output


def test_yaml_syntax_error_exits_2_with_the_line(tmp_path):
    path = write(tmp_path, "model:\n  builtin: mlp\nsweep:\n  batch_sizes: [8, 16\n  repeats: 3\n")
    code, output = validate(path)
    assert code == 2
    assert output.startswith(f"error: {path}: line 5, column ")
    assert "YAML syntax error" in output


def test_several_problems_stay_readable(tmp_path):
    path = write(tmp_path, "model: {builtin: mlp, application: Xception}\n"
                           "sweep: {batch_sizes: [0], repeats: -1, precision: fp64}\ndevice: tpu\n")
    code, output = validate(path)
    assert code == 2
    lines = output.strip().splitlines()
    assert lines[0] == f"error: {path}: 5 problems:"
    for line in lines[1:]:
        assert line.startswith(f"  {path}: ")
    assert [line.split(": ")[1] for line in lines[1:]] == [
        "model", "sweep.batch_sizes[0]", "sweep.repeats", "sweep.precision", "device.use"]


def test_validate_as_a_user_runs_it(tmp_path):
    """The real command in a subprocess: exit codes, stderr for errors, no traceback."""
    good = write(tmp_path, "model: {builtin: cnn}\nsweep: {batch_sizes: '1-4'}\n", "good.yaml")
    bad = write(tmp_path, "model: {builtin: cnn}\nsweep: {batch_sizes: [1, 0]}\n", "bad.yaml")
    ok = subprocess.run([sys.executable, "-m", "batchbench", "validate", good.name], capture_output=True,
                        text=True, cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "good.yaml: valid" in ok.stdout
    failed = subprocess.run([sys.executable, "-m", "batchbench", "validate", bad.name], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120)
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert failed.stderr.strip() == "error: bad.yaml: sweep.batch_sizes[1]: got 0, expected a positive integer"


NO_TF = textwrap.dedent("""
    import json, sys
    from click.testing import CliRunner
    from batchbench.cli import main
    codes = [CliRunner().invoke(main, ["validate", path]).exit_code for path in sys.argv[1:]]
    heavy = sorted(m for m in ("tensorflow", "keras", "jax", "torch") if m in sys.modules)
    print(json.dumps({"codes": codes, "heavy": heavy}))
""")


def test_validate_never_imports_tensorflow(tmp_path):
    # A factory module that imports Keras at the top: validate finds it without running it.
    (tmp_path / "heavy_zoo.py").write_text("import keras\nimport tensorflow as tf\n\n\ndef build():\n"
                                           "    return keras.Sequential()\n")
    paths = [
        write(tmp_path, "model: {factory: 'heavy_zoo:build'}\nsweep: {batch_sizes: [8]}\n", "factory.yaml"),
        write(tmp_path, "model: {application: MobileNetV2}\nsweep: {batch_sizes: [8]}\n", "app.yaml"),
        write(tmp_path, "model: {builtin: mlp}\nsweep: {batch_sizes: [0]}\n", "bad.yaml"),
        write(tmp_path, "model: {factory: 'heavy_zoo:buidl'}\nsweep: {batch_sizes: [8]}\n", "typo.yaml"),
        *[CONFIGS / f"{name}.yaml" for name in EXAMPLES],
    ]
    done = subprocess.run([sys.executable, "-c", NO_TF, *map(str, paths)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0, 2, 2] + [0] * len(EXAMPLES)
    assert report["heavy"] == [], f"validate imported {report['heavy']}"


# ---------------------------------------------------------------- the example configs
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_config_is_valid(name):
    code, output = validate(CONFIGS / f"{name}.yaml")
    assert code == 0, output


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_config_validates_from_any_working_directory(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(os.path.relpath(CONFIGS / f"{name}.yaml", tmp_path))
    assert config.name == name
    assert config.base_dir == str(CONFIGS)


def test_example_sweeps_stay_small():
    """Each example runs in a minute or two on two cores: few batch sizes, few repeats."""
    for name in REALISTIC:
        config = load_config(CONFIGS / f"{name}.yaml")
        sweep = config.sweep
        assert len(sweep.batch_sizes) <= 6 and sweep.repeats <= 5 and (sweep.epochs or 1) <= 1, name
        assert config.varying_axes() == [] and not sweep.find_max, name


def test_mobilenet_example():
    config = load_config(CONFIGS / "mobilenet.yaml")
    assert config.model.application == "MobileNetV2"
    assert config.model.kwargs == {"input_shape": [96, 96, 3], "alpha": 0.35, "classes": 10}
    assert config.model.compile.optimizer == "adam"
    assert config.data.synthetic.samples == 256
    assert config.sweep.batch_sizes == [8, 16, 32, 64]


def test_csv_example_and_its_table():
    import pandas as pd

    config = load_config(CONFIGS / "csv-table.yaml")
    assert config.model.builtin == "mlp"
    assert config.data.csv.path == str(CONFIGS / "data" / "housing.csv")
    assert config.data.csv.target == "price"
    table = pd.read_csv(config.data.csv.path)
    assert 350 <= len(table) <= 450
    assert list(table.columns)[-1] == "price" and len(table.columns) == 9
    assert all(pd.api.types.is_numeric_dtype(table[c]) for c in table.columns)
    assert pd.api.types.is_float_dtype(table["price"])  # a float target: a regression head
    assert not table.isna().any().any()


def test_npz_example_and_its_arrays():
    config = load_config(CONFIGS / "npz-digits.yaml")
    assert config.data.npz.path == str(CONFIGS / "data" / "digits.npz")
    with np.load(config.data.npz.path, allow_pickle=False) as archive:
        x, y = archive[config.data.npz.x], archive[config.data.npz.y]
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert np.issubdtype(y.dtype, np.integer) and y.shape == (x.shape[0],)
    assert set(np.unique(y)) == set(range(10))


def test_example_data_is_small_and_reproducible(tmp_path):
    for path in (CONFIGS / "data").iterdir():
        if path.is_file():
            assert path.stat().st_size < 300_000, path
    sys.path.insert(0, str(CONFIGS / "data"))
    try:
        import make_data
    finally:
        sys.path.remove(str(CONFIGS / "data"))
    regenerate = "the data no longer matches configs/data/make_data.py; rerun it"
    assert make_data.housing() == (CONFIGS / "data" / "housing.csv").read_text(), regenerate
    pytest.importorskip("sklearn")
    (tmp_path / "digits.npz").write_bytes(make_data.digits())
    with np.load(tmp_path / "digits.npz") as fresh, np.load(CONFIGS / "data" / "digits.npz") as shipped:
        assert np.array_equal(fresh["x"], shipped["x"]) and np.array_equal(fresh["y"], shipped["y"]), regenerate


def test_factory_example_names_a_function_beside_it():
    config = load_config(CONFIGS / "factory.yaml")
    assert config.model.factory == "mymodels:small_convnet"
    tree = ast.parse((CONFIGS / "mymodels.py").read_text())
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "small_convnet")
    args = [a.arg for a in function.args.args]
    defaults = [ast.literal_eval(d) for d in function.args.defaults]
    assert args == ["num_classes", "input_shape"]
    assert defaults == [10, (28, 28, 1)]


@pytest.mark.slow
def test_factory_example_builds_a_keras_model():
    """Builds the model in a subprocess (TensorFlow stays out of this test process)."""
    script = textwrap.dedent("""
        import json, keras, mymodels
        model = mymodels.small_convnet()
        print(json.dumps({"is_model": isinstance(model, keras.Model), "input": list(model.input_shape),
                          "output": list(model.output_shape), "compiled": model.compiled}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=CONFIGS, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"is_model": True, "input": [None, 28, 28, 1], "output": [None, 10], "compiled": True}


# ---------------------------------------------------------------- inputs beyond a config
HOSTILE = {
    "billion laughs": ("model:\n  builtin: mlp\n  kwargs:\n    l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n"
                       + "".join(f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 9))
                       + "sweep: {batch_sizes: [8]}\n", "line 8, column 9", "once aliases are expanded"),
    "deep nesting": ("model: {builtin: mlp, kwargs: {x: " + "[" * 5000 + "]" * 5000 + "}}\nsweep: {batch_sizes: [8]}\n",
                     "line 1, column 96", "nested more than 64 levels deep"),
    "huge integer": ("model: {builtin: mlp, kwargs: {x: " + "7" * 5000 + "}}\nsweep: {batch_sizes: [8]}\n",
                     "line 1, column 35", "got an integer of 5000 digits"),
    "recursive alias": ("model: {builtin: mlp, kwargs: {a: &a [*a]}}\nsweep: {batch_sizes: [8]}\n",
                        "line 1, column 39", "got the alias *a inside its own anchor &a"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_exits_2_with_one_line(tmp_path, case):
    text, where, words = HOSTILE[case]
    path = write(tmp_path, text)
    code, output = validate(path)
    assert code == 2, output
    assert output.startswith(f"error: {path}: {where}: got "), output
    assert words in output
    assert len(output.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "model: {builtin: mlp}\ndata: 5\n"
                                  "sweep: {batch_sizes: [8]}\n"])
@pytest.mark.parametrize("options", [["--model", "builtin:mlp"], ["--input-shape", "8"],
                                     ["--model", "builtin:mlp", "--input-shape", "8"]])
def test_predict_throughput_with_a_bad_file_and_overrides_exits_2(tmp_path, text, options):
    path = write(tmp_path, text)
    result = CliRunner().invoke(main, ["predict-throughput", str(path), *options, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {path}: ") and "got " in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
