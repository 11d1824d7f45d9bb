"""A report as a list of blocks, rendered from the same content to Markdown and to one self-contained
HTML file (figures embedded as base64 PNG), so the two can never say different things.

Inline markup in text is limited to **bold** and `code`, which both renderers understand.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    file: str  # relative to the report folder
    caption: str


Block = Union[Heading, Paragraph, Bullets, Table, Image]


def fmt(value: Any) -> str:
    """A number as the report prints it (3 significant digits); missing values as 'n/a'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    if isinstance(value, (int, float)):
        return f"{value:.3g}"
    return str(value)


def inert(text: str) -> str:
    """Text as Markdown that renders it, never as markup: no raw HTML (`<` escaped) and no link (`](` broken),
    whatever a results folder's files hold."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("](", "]\\(")


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {inert(block.text)}")
        elif isinstance(block, Paragraph):
            parts.append(inert(block.text))
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {inert(item)}" for item in block.items))
        elif isinstance(block, Table):
            def line(cells: list[str]) -> str:
                return "| " + " | ".join(inert(cell).replace("|", "\\|") for cell in cells) + " |"
            parts.append("\n".join([line(block.header), line(["---"] * len(block.header)),
                                    *map(line, block.rows)]))
        else:
            parts.append(f"![{block.caption}]({block.file})\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 78em; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
figure { margin: 1.5em 0; } img { max-width: 100%; } figcaption { font-style: italic; color: #444; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def to_html(blocks: list[Block], title: str, folder: Path) -> str:
    """One HTML file; figures are read from `folder` and embedded, so the file stands alone."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline(cell)}</th>" for cell in block.header)
            body = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>"
                           for row in block.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            data = base64.b64encode((folder / block.file).read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{_inline(block.caption)}</figcaption></figure>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")
