"""Checks beyond the schema that need the file system but not TensorFlow: the files a config
names exist, its factories are findable, its application names are real, its output folder can
be written."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from batchbench.config.lookups import find_module, keras_application_names, python_source, top_level_names
from batchbench.config.messages import problems_error
from batchbench.config.schema import Config
from batchbench.config.values import either, show

MODEL_FILE_SUFFIXES = (".keras", ".h5", ".hdf5")


def static_checks(config: Config, check_output_dir: bool = True) -> None:
    """Checks that need the file system but not TensorFlow: files exist, factories are findable,
    application names are real, output.dir can be written (unless ``check_output_dir`` is False:
    the run goes to --out instead). Every problem is reported at once."""
    model, data = config.model, config.data
    found: list[tuple[str, str | None]] = []
    if model.path is not None:
        found.append(("model.path", _check_model_path(model.path)))
    if data.npz is not None:
        found.append(("data.npz.path", _check_file(data.npz.path, "an .npz file")))
    if data.csv is not None:
        found.append(("data.csv.path", _check_file(data.csv.path, "a CSV file")))
    if data.image_dir is not None:
        found.append(("data.image_dir.path", check_image_dir(data.image_dir.path, data.image_dir.labels)))
    if model.application is not None:
        found.append(("model.application", _check_application(model.application)))
    if model.factory:
        found.append(("model.factory", _check_reference(model.factory, config.base_dir)))
    if data.callable is not None and data.callable.function:
        found.append(("data.callable.function", _check_reference(data.callable.function, config.base_dir)))
    if check_output_dir:
        found.append(("output.dir", _check_output_dir(config.output.dir)))
    problems = [(key, problem) for key, problem in found if problem]
    if problems:
        raise problems_error(problems, config.source_file or "config")


def _check_file(path: str, kind: str) -> str | None:
    p = Path(path)
    if p.is_dir():
        return f"got the folder {path}, expected {kind}"
    if not p.exists():
        return f"got {path}, which does not exist, expected {kind}"
    return None


# What keras.utils.image_dataset_from_directory reads.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def check_image_dir(path: str, labels: str) -> str | None:
    """A folder of images as keras.utils.image_dataset_from_directory reads it: with labels
    inferred, one subfolder per class (at least two classes) holding images; without, images
    anywhere under it."""
    p = Path(path)
    if not p.is_dir():
        return f"got {path}, which {'is a file' if p.exists() else 'does not exist'}, expected a folder of images"

    def images(folder: Path) -> int:
        return sum(1 for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())

    if labels == "none":
        return None if images(p) else f"got {path}, which holds no images ({', '.join(IMAGE_SUFFIXES)})"
    classes = {d.name: images(d) for d in sorted(p.iterdir()) if d.is_dir()}
    classes = {name: n for name, n in classes.items() if n}
    if not classes:
        loose = " (images lie directly in it: put them in one subfolder per class, or use labels: none)" \
            if any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()) else ""
        return f"got {path}, which holds no class subfolders with images{loose}"
    if len(classes) == 1:
        return (f"got {path}, which holds one class ({next(iter(classes))}), expected at least two class "
                "subfolders (a classifier needs two classes; use labels: none to time predict on them)")
    return None


def _check_model_path(path: str) -> str | None:
    expected = "expected a .keras or .h5 file or a SavedModel folder"
    p = Path(path)
    if not p.exists():
        return f"got {path}, which does not exist, {expected}"
    if p.is_dir() and not (p / "saved_model.pb").exists():
        return f"got the folder {path}, which holds no saved_model.pb, {expected}"
    if p.is_file() and p.suffix.lower() not in MODEL_FILE_SUFFIXES:
        return f"got {path}, {expected}"
    return None


def _check_application(name: str) -> str | None:
    names = keras_application_names()
    if not names or name in names:
        return None
    # Look-alike characters first (EfficientNetBO is EfficientNetB0, not B7), then spelling.
    alike = [n for n in sorted(names) if _lookalike(n) == _lookalike(name)]
    guess = alike[:1] or difflib.get_close_matches(name, sorted(names), n=3)
    hint = f"did you mean {either(guess)}?" if guess else "expected a keras.applications name such as MobileNetV2"
    return f"got {show(name)}, which keras.applications does not have, {hint}"


def _lookalike(name: str) -> str:
    return name.lower().replace("o", "0").replace("l", "1").replace("i", "1").replace("-", "").replace("_", "")


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
    spec = find_module(module_name, base_dir)
    if spec is None:
        return (f"got {show(target)}, but no module '{module_name}' is beside the config ({base_dir}) or on the "
                f"Python path, expected 'module:function' with module.py beside the config or installed")
    source = python_source(spec)
    names = top_level_names(source) if source else None
    first = attr.split(".")[0]
    if names is not None and first not in names:
        guess = difflib.get_close_matches(first, sorted(n for n in names if not n.startswith("_")), n=1)
        hint = f"did you mean '{module_name}:{guess[0]}'?" if guess else f"expected a function defined in {spec.origin}"
        return f"got {show(target)}, but {spec.origin} defines no '{first}', {hint}"
    return None
