"""The report as GitHub-flavoured markdown: ready to paste into a pull request or a wiki."""

from __future__ import annotations

import os
from pathlib import Path

from batchbench.report.document import Block, Bullets, Heading, Image, Paragraph, Table


def _cell(text: str) -> str:
    # A pipe would end the cell, a newline the row.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


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
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            parts.append("\n".join(table_markdown(block)))
        elif isinstance(block, Image):
            link = Path(os.path.relpath(block.path, base)).as_posix()
            parts.append(f"![{block.title}]({link})")
    return "\n\n".join(parts) + "\n"
