"""The report as one self-contained HTML file: styles inline, images embedded as base64."""

from __future__ import annotations

import base64
import html
from typing import Any

from batchbench.report.document import Block, Bullets, Heading, Image, Paragraph, Table
from batchbench.report.text import clean


def escape(text: Any) -> str:
    """Text shown as itself: HTML-escaped (quotes too), control characters made visible."""
    return html.escape(clean(text), quote=True)

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1280px;
       margin: 2em auto; padding: 0 1em; color: #1f2328; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { font-weight: bold; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 0.9em; }
"""


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = []
    for index, row in enumerate(table.rows):
        cells = "".join(f'<td class="num">{escape(c)}</td>' if i in table.right else f"<td>{escape(c)}</td>"
                        for i, c in enumerate(row))
        body.append(f'<tr class="best">{cells}</tr>' if index == table.bold_row else f"<tr>{cells}</tr>")
    head_row = f"<thead><tr>{head}</tr></thead>" if any(table.columns) else ""
    return f"<table>{head_row}<tbody>{''.join(body)}</tbody></table>"


def _image(image: Image) -> str:
    data = base64.b64encode(image.path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{escape(image.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(image.title)}</figcaption></figure>")


def render_html(blocks: list[Block]) -> str:
    title = next((b.text for b in blocks if isinstance(b, Heading)), "batchbench report")
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Image):
            parts.append(_image(block))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n")
