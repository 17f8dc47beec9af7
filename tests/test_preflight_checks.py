"""The preflight refuses what every trial would fail on (or silently get wrong), naming the
key, and lets through every config Keras itself would train: arbitrary models, multi-output,
dict inputs, regression. The preflight job runs in this process on tiny models; two checks
go through the real CLI."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import run_cli, tiny_config

pytestmark = pytest.mark.slow

MODELS = '''
import keras
import numpy as np


def classifier(classes=10, **_):
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(classes, activation="softmax")])


def build(**_):
    return helper()


def helper():
    raise ValueError("oops")


def strict(width, depth=1):
    return classifier()


def load(n=64):
    rng = np.random.default_rng(0)
    return rng.random((n, 8), dtype="float32"), rng.integers(0, 10, n)


def load_broken(**_):
    return {}["missing"]


def load_one():
    return np.zeros((64, 8))


def load_scalar_y():
    return np.zeros((64, 8)), 3


def load_ragged():
    return [[1.0, 2.0], [3.0]], [0, 1]


def two_outputs():
    x = keras.Input((8,), name="features")
    h = keras.layers.Dense(8, activation="relu")(x)
    kind = keras.layers.Dense(3, activation="softmax", name="kind")(h)
    size = keras.layers.Dense(2, name="size")(h)
    model = keras.Model(x, {"kind": kind, "size": size})
    model.compile("adam", loss={"kind": "sparse_categorical_crossentropy", "size": "mse"},
                  metrics={"kind": ["accuracy"]})
    return model


def two_output_data():
    rng = np.random.default_rng(0)
    return (rng.random((64, 8), dtype="float32"),
            {"kind": rng.integers(0, 3, 64), "size": rng.random((64, 2), dtype="float32")})


def sequence_tagger():
    x = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(20, 4)(x)
    return keras.Model(x, keras.layers.Dense(6, activation="softmax")(h))


def sequence_data():
    rng = np.random.default_rng(0)
    return rng.integers(0, 20, (64, 5)), rng.integers(0, 6, (64, 5))


class OwnStep(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):  # ignores the targets' shape on purpose
        return {"loss": 0.0}


def own_step():
    return OwnStep()


def own_step_data():
    return np.zeros((64, 8), dtype="float32"), np.zeros((64, 7, 7), dtype="float32")


class Exploding(keras.layers.Layer):
    def call(self, x):
        if x.shape[0] is not None:  # builds (batch None), then fails on real data
            raise RuntimeError("my layer broke")
        return x


def explodes_on_call():
    return keras.Sequential([keras.Input((8,)), Exploding(), keras.layers.Dense(2)])


def scheduled():
    model = classifier()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.9)
    model.compile(keras.optimizers.SGD(schedule), "sparse_categorical_crossentropy")
    return model


class Regressor(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)


def regressor():
    return Regressor()


def regression_data():
    rng = np.random.default_rng(0)
    return rng.random((64, 8), dtype="float32"), rng.random(64, dtype="float32")
'''


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("preflight")
    (path / "zoo.py").write_text(MODELS)
    rng = np.random.default_rng(0)
    x = rng.random((256, 8), dtype="float32")
    arrays = {"bad_shape": rng.integers(0, 10, (256, 3, 4)), "too_big": rng.integers(0, 13, 256),
              "negative": rng.integers(-1, 10, 256), "labels": rng.integers(0, 10, 256),
              "one_hot": np.eye(10, dtype="float32")[rng.integers(0, 10, 256)],
              "column": rng.integers(0, 10, (256, 1)), "halves": rng.integers(0, 10, 256) + 0.5,
              "text": np.array(["cat", "dog"] * 128), "three": rng.random((256, 3), dtype="float32")}
    for name, y in arrays.items():
        np.savez(path / f"{name}.npz", x=x, y=y)
    (path / "wide.csv").write_text(",".join(f"f{j}" for j in range(8)) + ",label\n" +
                                   "".join(",".join(str((i + j) % 5) for j in range(8)) + f",{i % 12}\n"
                                           for i in range(96)))
    np.savez(path / "objects.npz", x=x, y=np.array([{"label": 1}] * 256, dtype=object))
    (path / "gaps.csv").write_text("a,b,label\n1,2,0\n3,,1\n5,6,0\n")
    (path / "syntax_error.py").write_text("def build(:\n    pass\n")
    (path / "import_error.py").write_text("import numpy\n\nVALUE = 1 / 0\n")
    return path


def preflight(folder, **overrides) -> dict:
    from batchbench.config import config_from_dict
    from batchbench.worker.job import run_job

    raw = tiny_config(**overrides)
    config = config_from_dict(raw, base_dir=folder)
    resolved = config.resolved()
    resolved["_base_dir"] = config.base_dir
    return run_job({"op": "preflight", "config": resolved, "axes": {}})


def refused(result: dict, key: str, *words: str) -> None:
    assert result["status"] == "config_error", result
    assert result["key"] == key, result
    for word in words:
        assert word in result["message"], (word, result["message"])


CLASSIFIER = {"factory": "zoo:classifier"}


def npz(name: str) -> dict:
    return {"npz": {"path": f"{name}.npz"}}


# ---------------------------------------------------------------- loss and metrics by name
def test_an_unknown_loss_is_refused_with_a_guess(folder):
    refused(preflight(folder, model={"builtin": "mlp", "compile": {"loss": "not_a_loss"}}),
            "model.compile.loss", "not_a_loss", "not a Keras loss")
    refused(preflight(folder, model={"builtin": "mlp", "compile": {"loss": "sparse_categorical_crossentropie"}}),
            "model.compile.loss", "did you mean sparse_categorical_crossentropy")


def test_an_unknown_metric_is_refused_by_its_index(folder):
    result = preflight(folder, model={"builtin": "mlp", "compile": {"metrics": ["accuracy", "acc", "mae", "nope"]}})
    refused(result, "model.compile.metrics[3]", "'nope' is not a Keras metric")
    refused(preflight(folder, model={"builtin": "mlp", "compile": {"metrics": ["acuracy"]}}),
            "model.compile.metrics[0]", "did you mean accuracy")


def test_an_unknown_optimizer_names_the_optimizer_key(folder):
    refused(preflight(folder, model={"builtin": "mlp", "compile": {"optimizer": "adamm"}}),
            "model.compile.optimizer", "adamm", "did you mean")


def test_a_misspelled_builtin_argument_is_refused(folder):
    refused(preflight(folder, model={"builtin": "mlp", "kwargs": {"hiden": 8}}), "model.kwargs.hiden",
            "did you mean 'hidden'")


# ---------------------------------------------------------------- targets against the output
def test_a_target_shape_the_loss_cannot_take_names_both_shapes(folder):
    result = preflight(folder, model=CLASSIFIER, data=npz("bad_shape"))
    refused(result, "data.npz.y", "(256, 3, 4)", "(None, 10)", "sparse_categorical_crossentropy", "(None,)")


def test_integer_labels_under_a_one_hot_loss_get_a_hint(folder):
    result = preflight(folder, model={**CLASSIFIER, "compile": {"loss": "categorical_crossentropy"}},
                       data=npz("labels"))
    refused(result, "data.npz.y", "(256,)", "one-hot", "(None, 10)", "use sparse_categorical_crossentropy")


def test_labels_outside_the_outputs_classes_are_refused(folder):
    refused(preflight(folder, model=CLASSIFIER, data=npz("too_big")), "data.npz.y",
            "labels up to 12", "10 classes")
    refused(preflight(folder, model=CLASSIFIER, data=npz("negative")), "data.npz.y",
            "negative labels", "-1", "0..9")
    refused(preflight(folder, model={"builtin": "mlp", "compile": {"loss": "sparse_categorical_crossentropy"}},
                      data=npz("negative")), "data.npz.y", "negative labels")
    refused(preflight(folder, model=CLASSIFIER, data=npz("halves")), "data.npz.y", "not whole numbers")
    refused(preflight(folder, model=CLASSIFIER, data=npz("text")), "data.npz.y", "text")


def test_a_csv_target_with_more_classes_than_the_model_names_the_target(folder):
    result = preflight(folder, model=CLASSIFIER, data={"csv": {"path": "wide.csv", "target": "label"}})
    refused(result, "data.csv.target", "labels up to 11", "10 classes")


def test_a_regression_target_of_another_width_is_refused_by_the_general_check(folder):
    result = preflight(folder, model={**CLASSIFIER, "compile": {"loss": "mse"}}, data=npz("three"))
    refused(result, "data.npz.y", "(256, 3)", "(None, 10)", "mse")


def test_a_default_loss_that_does_not_fit_says_to_set_one(folder):
    # A subclassed model shows no output shape, so batchbench's default loss is a guess.
    result = preflight(folder, model={"factory": "zoo:regressor"},
                       data={"callable": {"function": "zoo:regression_data"}})
    refused(result, "data.callable.function", "not whole numbers", "set model.compile.loss")
    result = preflight(folder, model={"factory": "zoo:regressor", "compile": {"loss": "mse"}},
                       data={"callable": {"function": "zoo:regression_data"}})
    assert result["status"] == "ok", result


def test_empty_csv_cells_are_refused_for_fit_only(folder):
    data = {"csv": {"path": "gaps.csv", "target": "label"}}
    refused(preflight(folder, data=data), "data.csv", "column(s) b have empty cells", "line 3")
    assert preflight(folder, data=data, sweep={"modes": ["predict"]})["status"] == "ok"


def test_an_npz_array_of_python_objects_is_named(folder):
    refused(preflight(folder, data=npz("objects")), "data.npz.y", "array 'y' cannot be read", "numeric")


def test_lr_scaling_over_a_schedule_is_refused_before_any_trial(folder):
    refused(preflight(folder, model={"factory": "zoo:scheduled"}, sweep={"lr_scaling": "linear"}),
            "sweep.lr_scaling", "schedule")


def test_targets_are_not_checked_when_only_predict_runs(folder):
    result = preflight(folder, model=CLASSIFIER, data=npz("bad_shape"), sweep={"modes": ["predict"]})
    assert result["status"] == "ok", result


@pytest.mark.parametrize("model, data", [
    (CLASSIFIER, "labels"),
    (CLASSIFIER, "column"),  # (n, 1) class labels
    ({**CLASSIFIER, "compile": {"loss": "categorical_crossentropy", "metrics": ["categorical_accuracy"]}},
     "one_hot"),
    ({**CLASSIFIER, "compile": {"loss": "crossentropy", "metrics": ["acc"]}}, "one_hot"),
    ({**CLASSIFIER, "compile": {"loss": "ce"}}, "labels"),
    ({**CLASSIFIER, "compile": {"loss": "mse"}}, "one_hot"),
    ({"builtin": "mlp"}, "negative"),  # integer regression targets: the builtin gets a linear head
    ({"builtin": "mlp", "compile": {"loss": "huber", "metrics": ["mae"]}}, "halves"),
])
def test_configs_keras_trains_pass(folder, model, data):
    result = preflight(folder, model=model, data=npz(data))
    assert result["status"] == "ok", result


@pytest.mark.parametrize("model, function", [
    ("zoo:two_outputs", "zoo:two_output_data"),  # dict outputs, compiled by the factory
    ("zoo:sequence_tagger", "zoo:sequence_data"),  # a label per time step
    ("zoo:own_step", "zoo:own_step_data"),  # a train_step of its own: targets are its business
])
def test_general_models_pass(folder, model, function):
    result = preflight(folder, model={"factory": model}, data={"callable": {"function": function}})
    assert result["status"] == "ok", result


# ---------------------------------------------------------------- the user's own traceback
def test_a_factory_error_names_the_users_line_and_keeps_their_frames(folder):
    result = preflight(folder, model={"factory": "zoo:build"})
    refused(result, "model.factory", "zoo:build() raised ValueError: oops", "(at zoo.py:15, in helper)")
    trace = result["traceback"]
    assert trace.startswith("Traceback (most recent call last):\n")
    assert 'zoo.py", line 11, in build' in trace and 'zoo.py", line 15, in helper' in trace
    assert trace.endswith("ValueError: oops\n")
    assert "batchbench" not in trace and "site-packages" not in trace


def test_a_data_callable_error_names_the_users_line(folder):
    result = preflight(folder, data={"callable": {"function": "zoo:load_broken"}})
    refused(result, "data.callable.function", "zoo:load_broken() raised KeyError", "zoo.py:28, in load_broken")
    assert result["traceback"].endswith("KeyError: 'missing'\n")


def test_import_errors_point_into_the_users_module(folder):
    result = preflight(folder, model={"factory": "import_error:build"})
    refused(result, "model.factory", "ZeroDivisionError", "(at import_error.py:3, in <module>)")
    assert 'import_error.py", line 3' in result["traceback"]
    result = preflight(folder, model={"factory": "syntax_error:build"})
    refused(result, "model.factory", "SyntaxError", "syntax_error.py:1")
    assert "SyntaxError" in result["traceback"]


def test_a_layer_of_the_users_that_raises_keeps_their_frame(folder):
    result = preflight(folder, model={"factory": "zoo:explodes_on_call"})
    refused(result, "data.synthetic", "my layer broke", "zoo.py:")
    assert "raise RuntimeError" in result["traceback"]


def test_other_config_errors_carry_no_traceback(folder):
    result = preflight(folder, model={"builtin": "mlp", "compile": {"loss": "not_a_loss"}})
    assert result["traceback"] is None
    result = preflight(folder, model={"factory": "no_such_module:build"})
    refused(result, "model.factory", "cannot import 'no_such_module'")
    assert result["traceback"] is None and "(at " not in result["message"]


# ---------------------------------------------------------------- what a callable gives
def test_kwargs_that_do_not_bind_are_named(folder):
    refused(preflight(folder, model={"factory": "zoo:strict", "kwargs": {"widht": 3}}), "model.kwargs.widht",
            "zoo:strict() has no parameter 'widht'", "did you mean 'width'")
    refused(preflight(folder, model={"factory": "zoo:strict"}), "model.kwargs", "needs width")
    refused(preflight(folder, data={"callable": {"function": "zoo:load", "kwargs": {"rows": 3}}}),
            "data.callable.kwargs.rows", "no parameter 'rows'")


@pytest.mark.parametrize("function, words", [
    ("zoo:load_one", ("returned ndarray", "a pair (x, y)")),
    ("zoo:load_scalar_y", ("returned y is a single int",)),
    ("zoo:load_ragged", ("returned x cannot become an array",)),
])
def test_a_callable_returning_the_wrong_thing_is_named(folder, function, words):
    refused(preflight(folder, data={"callable": {"function": function}}), "data.callable.function", *words)


def test_features_that_do_not_fit_the_input_name_the_x_key(folder):
    import keras

    keras.Sequential([keras.Input((5,)), keras.layers.Dense(10, activation="softmax")]).save(folder / "m5.keras")
    refused(preflight(folder, model={"path": "m5.keras"}, data=npz("labels")), "data.npz.x",
            "(256, 8)", "(None, 5)")


# ---------------------------------------------------------------- end to end
def test_the_cli_exits_2_before_any_trial_naming_the_key(tmp_path, write_config):
    config = write_config(tiny_config(model={"builtin": "mlp", "compile": {"metrics": ["nope"]}}))
    result = run_cli("sweep", config, "--out", tmp_path / "run", "-q")
    assert result.returncode == 2, result.stderr
    assert f"error: {config}: model.compile.metrics[0]: 'nope' is not a Keras metric" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run" / "results.csv").exists()
