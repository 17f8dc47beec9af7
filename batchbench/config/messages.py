"""pydantic's errors in the user's words: each becomes ``<key.path>: got ..., expected ...``, and
one or several of them one ConfigError that names the file."""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from batchbench.config.schema import MODEL_SOURCES, UNION_TAGS, Config
from batchbench.config.values import KeyedError, either, show
from batchbench.errors import ConfigError


def clean_loc(loc: tuple) -> tuple:
    """An error location without the parts that are not keys the user wrote."""
    return tuple(p for p in loc if not (isinstance(p, str) and (p.startswith("function-") or p in UNION_TAGS)))


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in clean_loc(loc):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(annotation: Any) -> tuple[Any, list]:
    """Strip Annotated and Optional; return the bare type and the constraints found on the way."""
    metadata: list = []
    while True:
        if get_origin(annotation) is Annotated:
            annotation, *extra = get_args(annotation)
            metadata.extend(extra)
        elif get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation, metadata
            annotation = members[0]
        else:
            return annotation, metadata


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_at(loc: tuple) -> tuple[Any, list] | None:
    """The annotation and constraints of the config key at ``loc`` (None: not a known key)."""
    annotation, metadata = Config, []
    for part in clean_loc(loc):
        annotation = _unwrap(annotation)[0]
        if get_origin(annotation) in (Union, types.UnionType):
            annotation = next((a for a in map(lambda a: _unwrap(a)[0], get_args(annotation)) if _is_model(a)), None)
        if isinstance(part, int):
            if get_origin(annotation) is not list:
                return None
            annotation, metadata = get_args(annotation)[0], []
        elif _is_model(annotation):
            field = annotation.model_fields.get(part)
            if field is None or field.exclude:
                return None
            annotation, metadata = field.annotation, list(field.metadata)
        else:
            return None
    annotation, extra = _unwrap(annotation)
    return annotation, metadata + extra


def known_keys(model: type[BaseModel]) -> list[str]:
    """The keys a user may write in ``model``, in order (not those the loader fills in)."""
    return [name for name, field in model.model_fields.items() if not field.exclude]


def _key_homes() -> dict[str, list[str]]:
    """Every config key -> the sections it belongs to ('batch_sizes' -> ['sweep'], '' for the
    top level), for keys written at the wrong level."""
    homes: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name in known_keys(model):
            homes.setdefault(name, []).append(prefix)
            annotation = _unwrap(model.model_fields[name].annotation)[0]
            if _is_model(annotation):
                walk(annotation, f"{prefix}.{name}" if prefix else name)

    walk(Config, "")
    return homes


def _bounds(metadata: list) -> str:
    words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
    parts = []
    for item in metadata:
        for attr, word in words.items():
            bound = getattr(item, attr, None)
            if bound is not None and not isinstance(bound, bool):
                parts.append(f"{word} {bound:g}" if isinstance(bound, float) else f"{word} {bound}")
    return " and ".join(parts)


def _expected(annotation: Any, metadata: list) -> str:
    """A type in the user's words: 'a positive integer', 'fit or predict', 'true or false', ..."""
    bounds = _bounds(metadata)
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "a positive integer" if bounds == "greater than 0" else "an integer" + (f" {bounds}" if bounds else "")
    if annotation is float:
        return "a number" + (f" {bounds}" if bounds else "")
    if annotation is str:
        return "a string"
    if get_origin(annotation) is Literal:
        return either(get_args(annotation))
    if get_origin(annotation) is list:
        return f"a list, each item {_expected(*_unwrap(get_args(annotation)[0]))}"
    if get_origin(annotation) is dict or annotation is dict:
        return "a mapping of keys to values"
    if _is_model(annotation):
        keys = known_keys(annotation)
        return "a mapping with keys " + ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
    if get_origin(annotation) in (Union, types.UnionType):
        return " or ".join(_expected(*_unwrap(a)) for a in get_args(annotation) if a is not type(None))
    return str(annotation)


# What a missing required key should hold, where the type alone says too little.
_MISSING = {
    "model": f"a model source: {either(MODEL_SOURCES)} (e.g. model: {{builtin: mlp}})",
    "sweep": "a mapping with at least batch_sizes (e.g. sweep: {batch_sizes: [8, 16, 32]})",
    "sweep.batch_sizes": "a list such as [8, 16, 32] or a range {min: 8, max: 256}",
    "data.npz.path": "the path of an .npz file",
    "data.csv.path": "the path of a CSV file",
    "data.csv.target": "the name of the target column",
    "data.callable.function": "'module:function' returning (x, y)",
    "sweep.target.metric": "a metric name such as val_loss or accuracy",
    "sweep.target.value": "the metric value to reach",
    "model.compile.optimizer.name": "an optimizer name such as adam or sgd",
}


def describe(error: dict) -> tuple[str, str]:
    """One pydantic error -> (key path, 'what was found, what was expected')."""
    loc = tuple(error["loc"])
    key = _format_loc(loc)
    kind = error["type"]
    found = error.get("input")
    if kind == "invalid_key":  # the location ends with the key itself
        return _format_loc(loc[:-1]), f"got the key {show(found)}, expected text keys"
    if kind == "extra_forbidden":
        parent = _field_at(loc[:-1])
        known = known_keys(parent[0]) if parent and _is_model(parent[0]) else []
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        if guess:
            return key, f"unknown key, did you mean '{guess[0]}'?"
        homes = [home for home in _key_homes().get(str(loc[-1]), []) if home != _format_loc(loc[:-1])]
        if homes:
            where = either(f"under {home}" if home else "at the top level" for home in homes)
            return key, f"unknown key here, expected it {where}"
        return key, "unknown key" + (f", expected one of {', '.join(known)}" if known else "")
    field = _field_at(loc)
    if kind == "missing":
        hint = _MISSING.get(key) or (_expected(*field) if field else "a value")
        return key, f"missing, expected {hint}"
    exc = (error.get("ctx") or {}).get("error")
    if isinstance(exc, KeyedError):
        return key + exc.subkey, str(exc)
    if isinstance(exc, Exception) and str(exc).startswith("got "):
        return key, str(exc)
    if kind == "optimizer_type":
        return key, f"got {show(found)}, {error['msg']}"
    if field is not None:
        return key, f"got {show(found)}, expected {_expected(*field)}"
    message = str(exc) if isinstance(exc, Exception) else error["msg"]
    return key, f"got {show(found)}, {message[:1].lower()}{message[1:]}"


def problems_error(problems: list[tuple[str, str]], label: str | None) -> ConfigError:
    """One ConfigError for one or several (key, message) problems; ``problems`` stays on it."""
    if len(problems) == 1:
        error = ConfigError(problems[0][1], file=label, key=problems[0][0] or None)
    else:
        prefix = f"{label}: " if label else ""
        lines = "\n".join(f"  {prefix}{key}: {message}" if key else f"  {prefix}{message}"
                          for key, message in problems)
        error = ConfigError(f"{len(problems)} problems:\n{lines}", file=label)
    error.problems = problems
    return error
