"""A report as a list of blocks, rendered from the same content to Markdown and to one self-contained HTML file
(figures embedded as base64 PNG), so the two can never say different things. Inline markup is limited to **bold**
and `code`; a `code` span naming a file of the report's tables/ folder links to it (no other link is ever made).
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from sublim.core.text import inert_markdown as inert, one_line


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


def percent(level: float) -> str:
    """A confidence level (0 < level < 1) with the digits that tell it from 100%: '90%', '99.96%'."""
    return f"{100 * level:.{max(0, math.ceil(-math.log10(1 - level)) - 2)}f}%"


def ci(estimate: Any, low: Any, high: Any, level: Any = None) -> str:
    """`0.0080 [0.0067, 0.0094]`: an estimate and its interval on one line, to the digit that gives the interval's
    half-width two significant digits (at most 4 of the largest; scientific below 1e-6; 3 significant digits
    without an interval); a level other than 95% is named, e.g. `(90%)`."""
    x = [float(v) if isinstance(v, (int, float)) else math.nan for v in (estimate, low, high)]
    half = (x[2] - x[1]) / 2
    tag = f" ({percent(level)})" if isinstance(level, float) and level != 0.95 and 0 < level < 1 else ""
    if not (math.isfinite(half + x[0]) and half > 0 and max(map(abs, x)) < 1e5):
        return fmt(x[0]) + (f" [{fmt(x[1])}, {fmt(x[2])}]{tag}" if math.isfinite(half + x[0]) else "")
    size = math.floor(math.log10(max(map(abs, x))))  # at most 4 significant digits of the largest number
    digits = min(max(0, 1 - math.floor(math.log10(half))), max(0, 3 - size))
    shown = [f"{v:.{digits}f}" if digits <= 6 else f"{v:.{digits + size}e}" for v in x]
    shown = [re.sub(r"^-(?=0\.?0*$)", "", v).replace("-", "\u2212", 1) if v.startswith("-") else v for v in shown]
    return f"{shown[0]} [{shown[1]}, {shown[2]}]{tag}"


LINKED = re.compile(r"`(tables/[\w.-]+\.csv)`")  # a table of the report, shown as a relative link
NUMERIC = re.compile(r"[\d.e+\u2212 -]*(\[[^\]]*\])?( \(\d+(?:\.\d+)?%\))?( [✓✗])?|n/a")  # numbers: right-aligned
NUMBERS = re.compile(r"(?:[\u2212-]?[\d.]+(?:e[-+]?\d+)? \[[^\]]*\](?: \(\d+(?:\.\d+)?%\))?)")  # an estimate [CI]


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {inert(block.text)}")
        elif isinstance(block, Paragraph):
            parts.append(LINKED.sub(r"[`\1`](\1)", inert(block.text)))
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {inert(item)}" for item in block.items))
        elif isinstance(block, Table):
            def line(cells: list[str]) -> str:
                return "| " + " | ".join(inert(cell).replace("|", "\\|") for cell in cells) + " |"
            parts.append("\n".join([line(block.header), line(["---"] * len(block.header)),
                                    *map(line, block.rows)]))
        else:
            parts.append(f"![{Path(block.file).stem}]({block.file})\n\n*{inert(block.caption)}*")
    return "\n\n".join(parts) + "\n"


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1220px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
td.n { text-align: right; } .n, .w { white-space: nowrap; } .n { font-variant-numeric: tabular-nums; }
th { background: #f2f2f2; } figure { margin: 1.5em 0; } img { max-width: 100%; height: auto; }
figcaption { font-style: italic; color: #444; } code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _inline(text: str) -> str:
    text = html.escape(one_line(text))
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = NUMBERS.sub(r'<span class="n">\g<0></span>', text)
    text = LINKED.sub(r'<a href="\1"><code>\1</code></a>', text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _kind(cell: str) -> str:
    """A table cell's class: numbers right-aligned on one line; short words on one line."""
    return ' class="n"' if NUMERIC.fullmatch(cell) else ' class="w"' if len(cell) <= 16 else ""


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
            body = "".join("<tr>" + "".join(f"<td{_kind(cell)}>{_inline(cell)}</td>" for cell in row) + "</tr>"
                           for row in block.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            data = base64.b64encode((folder / block.file).read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{_inline(block.caption)}</figcaption></figure>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")
