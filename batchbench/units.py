"""Parsing the small languages users type: sizes, percentages and batch-size lists."""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int | float) -> int:
    """'1.5GiB' -> bytes. Plain numbers are bytes. Raises ValueError with a readable reason."""
    if isinstance(text, bool):
        raise ValueError(f"expected a size such as 1.5GiB or 800MiB, got {text!r}")
    if isinstance(text, (int, float)):
        value, unit = float(text), ""
    else:
        match = _SIZE_RE.match(str(text))
        if not match:
            raise ValueError(f"expected a size such as 1.5GiB or 800MiB, got {text!r}")
        value, unit = float(match.group(1)), match.group(2).lower()
    if unit not in _SIZE_UNITS:
        raise ValueError(f"unknown size unit {unit!r} in {text!r} (use B, KiB, MiB, GiB, KB, MB, GB)")
    size = int(value * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError(f"a size must be positive, got {text!r}")
    return size


def format_mib(n_bytes: float | None) -> str:
    return "" if n_bytes is None else f"{n_bytes / 2**20:.0f} MiB"


def parse_fraction(text: str | int | float) -> float:
    """'10%' or 0.1 -> 0.1."""
    if isinstance(text, bool):
        raise ValueError(f"expected a fraction such as 10% or 0.1, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        raw = str(text).strip()
        try:
            value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        except ValueError:
            raise ValueError(f"expected a fraction such as 10% or 0.1, got {text!r}") from None
    if not 0 <= value < 1:
        raise ValueError(f"expected a fraction from 0 up to (not including) 100%, got {text!r}")
    return value


def powers_of_two(low: int, high: int) -> list[int]:
    """Every power of two in [low, high]."""
    if low < 1 or high < 1:
        raise ValueError(f"batch sizes must be positive, got {low}-{high}")
    if low > high:
        raise ValueError(f"min ({low}) is larger than max ({high})")
    sizes, p = [], 1
    while p <= high:
        if p >= low:
            sizes.append(p)
        p *= 2
    if not sizes:
        raise ValueError(f"no power of two lies between {low} and {high}")
    return sizes


def parse_batch_sizes(text: str) -> list[int]:
    """'8,16,32' -> [8, 16, 32]; '1-256' -> every power of two from 1 to 256."""
    raw = str(text).strip()
    if not raw:
        raise ValueError("expected batch sizes such as 8,16,32 or a range 1-256, got nothing")
    range_match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", raw)
    if range_match:
        return powers_of_two(int(range_match.group(1)), int(range_match.group(2)))
    sizes = []
    for part in raw.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d+", part) or int(part) <= 0:
            raise ValueError(
                f"expected batch sizes such as 8,16,32 or a range 1-256, got {text!r} "
                f"({part!r} is not a positive integer)"
            )
        sizes.append(int(part))
    return sorted(set(sizes))


def parse_list(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]
