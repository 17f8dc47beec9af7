"""What a config value may be, and how a found value is shown in a message.

Everything here is below the schema: the field types and value checks its validators use, the
bounds that keep a hostile file away from the validator, and the wording of a found value."""

from __future__ import annotations

import difflib
import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from batchbench.units import MAX_BATCH_SIZE, check_batch_size_count, parse_batch_sizes, powers_of_two

# A config is a few KiB of plain YAML. These bounds keep hostile or broken files (billion laughs,
# deep nesting, huge integers) from reaching the validator, and so from ever reaching a worker.
MAX_CONFIG_BYTES = 2**20
MAX_YAML_NODES = 100_000  # values after aliases are expanded
MAX_YAML_DEPTH = 64  # nesting levels, aliases expanded
MAX_INT_DIGITS = 100

# A run is written under output.dir/<name>/: one plain folder, never '.', '..' or hidden.
_NAME_RE = re.compile(r"[\w\-][\w.\-]*")
MAX_NAME_LENGTH = 100


class KeyedError(ValueError):
    """A validation error that belongs to a sub-key of the field (e.g. ``[2]`` or ``.min``)."""

    def __init__(self, subkey: str, message: str):
        super().__init__(message)
        self.subkey = subkey


def show(value: Any) -> str:
    """A found value as the user wrote it in YAML (null, true, 'text', [1, 2]), kept short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def either(values) -> str:
    """'a', 'a or b', 'a, b or c'."""
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode reads `true` as 1; in a config that is always a mistake.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")  # messages.describe words it from the field's type
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Num = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]


def positive_int(value: Any, subkey: str = "") -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise KeyedError(subkey, f"got {show(value)}, expected a positive integer")
    return value


def reference(value: str | None) -> str | None:
    """``value`` when it reads 'module:function' (or is None)."""
    if value is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", value):
        raise ValueError(f"got {show(value)}, expected 'module:function' (e.g. mymodels:build)")
    return value


def plain(value: Any, subkey: str = "", within: tuple[int, ...] = ()) -> Any:
    """``value`` when it is plain data that travels to the worker as JSON unchanged: text, numbers,
    true/false, null, lists and mappings with text keys (so no NaN, dates, bytes or cycles)."""
    if isinstance(value, (list, tuple, dict)):
        if id(value) in within:
            raise KeyedError(subkey, f"got a {type(value).__name__} that contains itself, expected plain values")
        if len(within) >= MAX_YAML_DEPTH:
            raise KeyedError(subkey, f"got values nested more than {MAX_YAML_DEPTH} levels deep, "
                                     "expected a flatter value")
        within = (*within, id(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise KeyedError(subkey, f"got {value}, expected a finite number")
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            plain(item, f"{subkey}[{i}]", within)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise KeyedError(subkey, f"got the key {show(key)}, expected text keys")
            plain(item, f"{subkey}.{key}", within)
        return value
    raise KeyedError(subkey, f"got {type(value).__name__} {show(value)}, expected plain values: text, numbers, "
                             "true/false, null, lists and mappings")


def axis_list(value: Any, allowed: tuple) -> list:
    """A sweep axis as a list of distinct values from ``allowed`` (a single value is a list of one);
    ``True`` is not ``1``."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError("got an empty list, expected at least one value")
    out = []
    for i, item in enumerate(values):
        if not any(a == item and type(a) is type(item) for a in allowed):
            sub = f"[{i}]" if isinstance(value, list) else ""
            raise KeyedError(sub, f"got {show(item)}, expected {either(show(a).strip(chr(39)) for a in allowed)}")
        if item not in out:
            out.append(item)
    return out


def length_list(value: Any) -> list[int]:
    """``sweep.sequence_length`` as distinct positive lengths in the order given, from a list,
    one length or text ('128,256', as --sequence-length gives it)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):  # the command line's comma list comes as text
        value = [int(v) if isinstance(v, str) and v.strip().isdigit() else v for v in value]
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError("got an empty list, expected at least one length such as [128, 256]")
    out: list[int] = []
    for i, item in enumerate(values):
        length = positive_int(item, f"[{i}]" if isinstance(value, list) else "")
        if length not in out:
            out.append(length)
    return out


def _batch_size(value: Any, subkey: str) -> int:
    size = positive_int(value, subkey)
    if size > MAX_BATCH_SIZE:
        raise KeyedError(subkey, f"got {show(value)}, expected a batch size of at most {MAX_BATCH_SIZE:,} (2**24)")
    return size


def _batch_size_range(value: dict) -> list[int]:
    """``{min, max}`` -> every power of two in the range."""
    for key in value:
        if key not in ("min", "max"):
            guess = difflib.get_close_matches(str(key), ["min", "max"], n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else "expected min and max"
            raise KeyedError(f".{key}", f"unknown key, {hint}")
    for key in ("min", "max"):
        if key not in value:
            raise KeyedError(f".{key}", "missing, expected both min and max (e.g. {min: 8, max: 256})")
        _batch_size(value[key], f".{key}")
    low, high = int(value["min"]), int(value["max"])
    if low > high:
        raise KeyedError("", f"got min {low} larger than max {high}, expected min <= max")
    try:
        return powers_of_two(low, high)
    except ValueError as exc:
        raise KeyedError("", str(exc)) from None


def batch_size_list(value: Any) -> list[int]:
    """``sweep.batch_sizes`` as sorted distinct sizes, from a list, one size, text ('8,16' or
    '1-256') or a range ``{min, max}`` (every power of two in it)."""
    if isinstance(value, dict):
        return _batch_size_range(value)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, str):
        try:
            return parse_batch_sizes(value)
        except ValueError as exc:
            raise KeyedError("", str(exc)) from None
    if not isinstance(value, list):
        raise ValueError(f"got {show(value)}, expected a list such as [8, 16, 32] or a range {{min: 8, max: 256}}")
    if not value:
        raise ValueError("got an empty list, expected at least one batch size such as [8, 16, 32]")
    sizes = sorted({_batch_size(v, f"[{i}]") for i, v in enumerate(value)})
    try:
        return check_batch_size_count(sizes)
    except ValueError as exc:
        raise KeyedError("", str(exc)) from None


def is_folder_name(text: str) -> bool:
    """Whether ``text`` can name a run's folder: letters, digits, '.', '-' or '_', not hidden."""
    return bool(_NAME_RE.fullmatch(text)) and len(text) <= MAX_NAME_LENGTH


def folder_name(text: str, fallback: str = "batchbench") -> str:
    """A safe run name made from ``text`` (a file stem, a model reference): characters outside
    letters, digits, '.', '-' and '_' become '_', leading dots go, and it is cut to length."""
    name = re.sub(r"[^\w.\-]", "_", text).lstrip(".")[:MAX_NAME_LENGTH]
    return name if is_folder_name(name) else fallback
