"""Parsing the small languages users type: sizes, percentages and batch-size lists.

Every ValueError reads "got <what was found>, expected <what was expected>", so callers can put a
file and key path (or an option name) in front of it and have a complete sentence."""

from __future__ import annotations

import math
import re

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3,
    "ti": 1024**4, "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")
_SIZE_EXPECTED = "expected a size such as 1.5GiB, 800MiB or 2GB"


def _show(value: object) -> str:
    """A value as it looks in YAML: null and true rather than Python's None and True."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def parse_size(text: str | int | float) -> int:
    """'1.5GiB' -> bytes. Plain numbers are bytes. Raises ValueError with a readable reason."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"got {_show(text)}, {_SIZE_EXPECTED}")
    if isinstance(text, (int, float)):
        value, unit = float(text), ""
    else:
        match = _SIZE_RE.match(text)
        if not match:
            raise ValueError(f"got {_show(text)}, {_SIZE_EXPECTED}")
        value, unit = float(match.group(1)), match.group(2).lower()
    if unit not in _SIZE_UNITS:
        raise ValueError(f"got {text!r}, an unknown unit {match.group(2)!r}; {_SIZE_EXPECTED} "
                         "(units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)")
    if not math.isfinite(value):
        raise ValueError(f"got {_show(text)}, {_SIZE_EXPECTED}")
    size = int(value * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError(f"got {text!r}, expected a positive size such as 1.5GiB or 800MiB")
    return size


def format_mib(n_bytes: float | None) -> str:
    return "" if n_bytes is None else f"{n_bytes / 2**20:.0f} MiB"


def parse_fraction(text: str | int | float) -> float:
    """'10%' or 0.1 -> 0.1; from 0 up to (not including) 1."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"got {_show(text)}, expected a fraction such as 10% or 0.1")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        raw = text.strip()
        try:
            value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        except ValueError:
            raise ValueError(f"got {_show(text)}, expected a fraction such as 10% or 0.1") from None
    if not (math.isfinite(value) and 0 <= value < 1):
        raise ValueError(f"got {text!r}, expected a fraction from 0 up to (not including) 100%, such as 10% or 0.1")
    return value


# Bounds that make a typo (1e300, a stray digit) an error rather than a plan of a thousand trials
# or a batch no device can hold: 2**24 samples in one batch is far beyond any accelerator today.
MAX_BATCH_SIZE = 2**24
MAX_BATCH_SIZES = 64  # batch sizes in one sweep
_TOO_LARGE = f"expected batch sizes of at most {MAX_BATCH_SIZE:,} (2**24)"


def _clip(text: str, limit: int = 60) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit - 4] + "...'"


def _too_large(digits: str) -> bool:
    # Compared by length first: int() of thousands of digits raises (Python's digit limit).
    digits = digits.lstrip("0")
    return len(digits) > len(str(MAX_BATCH_SIZE)) or int(digits or "0") > MAX_BATCH_SIZE


def check_batch_size_count(sizes: list[int]) -> list[int]:
    """``sizes`` when there are at most MAX_BATCH_SIZES of them."""
    if len(sizes) > MAX_BATCH_SIZES:
        raise ValueError(f"got {len(sizes)} batch sizes, expected at most {MAX_BATCH_SIZES} in one sweep")
    return sizes


def powers_of_two(low: int, high: int) -> list[int]:
    """Every power of two in [low, high], which must lie within 1 .. MAX_BATCH_SIZE."""
    if low < 1 or high < 1:
        raise ValueError(f"got the range {low}-{high}, expected positive batch sizes")
    if low > high:
        raise ValueError(f"got the range {low}-{high} (min is larger than max), expected min <= max")
    if high > MAX_BATCH_SIZE:
        raise ValueError(f"got the range {low}-{high}, {_TOO_LARGE}")
    sizes, p = [], 1
    while p <= high:
        if p >= low:
            sizes.append(p)
        p *= 2
    if not sizes:
        raise ValueError(f"got the range {low}-{high}, which holds no power of two, "
                         "expected a range with at least one (such as 4-8)")
    return sizes


_BATCH_EXPECTED = "expected batch sizes such as 8,16,32 or a range 1-256"


def parse_batch_sizes(text: str) -> list[int]:
    """'8,16,32' -> [8, 16, 32]; '1-256' -> every power of two from 1 to 256."""
    raw = str(text).strip()
    if not raw:
        raise ValueError(f"got nothing, {_BATCH_EXPECTED}")
    range_match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", raw)
    if range_match:
        if _too_large(range_match.group(1)) or _too_large(range_match.group(2)):
            raise ValueError(f"got the range {_clip(raw)}, {_TOO_LARGE}")
        return powers_of_two(int(range_match.group(1)), int(range_match.group(2)))
    sizes = []
    for part in raw.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d+", part) or not part.strip("0"):
            raise ValueError(f"got {text!r} ({part!r} is not a positive integer), {_BATCH_EXPECTED}")
        if _too_large(part):
            raise ValueError(f"got {_clip(text)} ({_clip(part, 24)} is too large), {_TOO_LARGE}")
        sizes.append(int(part))
    return check_batch_size_count(sorted(set(sizes)))


def parse_list(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]
