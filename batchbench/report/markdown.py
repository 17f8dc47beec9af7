"""The report as GitHub-flavoured markdown: ready to paste into a pull request or a wiki."""

from __future__ import annotations

import os
import re
from pathlib import Path

from batchbench.report.document import Block, Bullets, Heading, Image, Paragraph, Table
from batchbench.report.text import clean

# What could turn text from a results file into markup: HTML, links, code, emphasis, strikethrough.
# An underscore inside a word never emphasises (GFM), so names like mixed_float16 stay as they are.
_SPECIAL = re.compile(r"[\\`*\[\]<>&~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_BLOCK_START = re.compile(r"^(\s*)([#+-](?=\s|$)|\d+(?=[.)](\s|$)))")


def inline(text: str, block: bool = True) -> str:
    """Text shown as itself: every markdown construct in it escaped, on one line (`block`: and
    what would start a heading or a list at the start of a line)."""
    text = _SPECIAL.sub(lambda m: "\\" + m.group(), clean(text))
    if not block:
        return text
    return _BLOCK_START.sub(lambda m: m.group(1) + ("\\" + m.group(2) if not m.group(2).isdigit()
                                                    else m.group(2) + "\\"), text)


def _cell(text: str) -> str:
    # A pipe would end the cell.
    return inline(text, block=False).replace("|", "\\|")


def table_markdown(table: Table) -> list[str]:
    header = "| " + " | ".join(_cell(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---:" if i in table.right else "---" for i in range(len(table.columns))) + "|"
    lines = [header, rule]
    for index, row in enumerate(table.rows):
        cells = [_cell(c) for c in row]
        if index == table.bold_row:
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(blocks: list[Block], base: Path) -> str:
    """Blocks -> markdown; image links are relative to `base`, the folder the report is written to."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + inline(block.text))
        elif isinstance(block, Paragraph):
            parts.append(inline(block.text))
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {inline(item)}" for item in block.items))
        elif isinstance(block, Table):
            parts.append("\n".join(table_markdown(block)))
        elif isinstance(block, Image):
            link = Path(os.path.relpath(block.path, base)).as_posix()
            parts.append(f"![{block.title}]({link})")
    return "\n\n".join(parts) + "\n"
