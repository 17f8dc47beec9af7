"""Small pieces of text every format shares: numbers, percentages, p-values, and strings from
results files made safe to print (a model name is data, never a terminal command)."""

from __future__ import annotations

import math
import re
from typing import Any

# C0/C1 control characters (ESC starts terminal commands) and the invisible format characters
# that reorder or hide text (bidi overrides, zero-width): shown as escapes, never sent raw.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: Any) -> str:
    """Text from a results file, with control characters shown as escapes (\\x1b, \\n)."""
    text = str(text)
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any) -> str:
    if not real(value):
        return ""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3f}"


def percent(change: float) -> str:
    return f"{change * 100:+.1f}%" if math.isfinite(change) else "new"


def p_text(p: float | None) -> str:
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def shown_value(value: Any) -> str:
    """A figure as found in the file, for messages about figures that are not numbers."""
    return str(value) if isinstance(value, float) else repr(safe(value)[:40])


def varying(keys: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """Key columns worth naming in a row's label: those whose values differ between rows."""
    out = []
    for column in columns:
        if column in ("mode", "method", "batch_size"):
            continue
        if len({k.get(column) for k in keys}) > 1:
            out.append(column)
    return out


def group_label(key: dict[str, Any], shown: list[str]) -> str:
    """A group of rows (not yet made safe): the model where it varies, mode/method, the `shown` axes."""
    text = str(key.get("mode") or "") + (f"/{key['method']}" if key.get("method") else "")
    if "model" in shown:
        text = f"{key.get('model')} {text}"
    return text + "".join(f" {c}={str(key.get(c)).lower() if isinstance(key.get(c), bool) else key.get(c)}"
                          for c in shown if c != "model")


def row_label(key: dict[str, Any], phase: str | None, shown: list[str]) -> str:
    """A row in a message: model, mode/method, batch size and the `shown` axes."""
    mode = f"{key.get('mode') or ''}" + (f"/{key['method']}" if key.get("method") else "")
    parts = [str(key.get("model") or ""), mode, f"batch {key.get('batch_size')}"]
    parts += [f"{c}={key.get(c)}" for c in shown if c != "model"]
    return safe(" ".join(p for p in parts if p) + (f" ({phase})" if phase else ""))
