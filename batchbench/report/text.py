"""Text that comes from a results file (names, errors, axis values), made safe to show.

A run folder may come from anywhere (a CI artifact of a fork's pull request), so its strings
are data: rich markup in them must print literally, and terminal control sequences (ESC, CSI,
bidi overrides) must never reach the terminal. Markdown and HTML escape on top of this.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

# C0 and C1 controls (ESC, BEL, CSI ...) and the bidi controls that reorder what a reader sees.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match) -> str:
    char = match.group()
    if char in "\n\t\r":
        return " "
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: Any) -> str:
    """One line of printable text: control characters shown as escapes, newlines as spaces."""
    return _CONTROL.sub(_visible, "" if value is None else str(value))


def plain(value: Any, style: str = "") -> Text:
    """A rich Text that prints `value` literally: Text is never parsed as markup."""
    return Text(clean(value), style=style)


def brief(value: Any, limit: int = 40) -> str:
    """A value as a message quotes it: repr, cut to `limit` characters."""
    if isinstance(value, (dict, list)):
        return type(value).__name__
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return "a number too large"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
