"""Text taken from files sublim did not write (a received results folder, a spec, a library's message), made safe
for where it goes: one plain line for a message or a report, a file name that stays in its folder.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

LINE_BREAKS = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+")
CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f]")  # the other C0 controls (NUL, ESC, ...) and DEL
NOT_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._=+@-]+")
MAX_STEM = 80  # far below file systems' 255 bytes per name, with room for a suffix such as '.png'


def one_line(text: Any) -> str:
    """`text` as one line: control characters (NUL included) dropped, every line break a space."""
    return LINE_BREAKS.sub(" ", CONTROLS.sub("", str(text))).strip()


def inert_markdown(text: Any) -> str:
    """Text as Markdown that renders it, never as markup, whatever a results folder's files hold: one line (no
    line-start syntax), no raw HTML (`<` escaped), no link, image or link definition (`](`, `][`, `]:` broken), no
    bare web address that a renderer would link (`://`, `www.` broken). Bold and code spans stay: the report's own."""
    text = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace("://", ":\\/\\/")
    return re.sub(r"\](?=[(\[:])", r"]\\", re.sub(r"(?i)\bwww\.", lambda m: m[0][:3] + "\\.", text))


def short_repr(value: Any, limit: int = 40) -> str:
    """repr of `value` (quotes and escapes: a NUL or newline shown, never printed), cut to fit a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def first_sentence(text: Any) -> str:
    """The first sentence of a message (a library's often runs to several, over several lines)."""
    line = one_line(text)
    return re.split(r"(?<=[.!?:;])\s", line, maxsplit=1)[0].rstrip(".:;") or line


def file_stem(text: str, max_length: int = MAX_STEM) -> str:
    """A file name (without suffix) for `text` that stays in its folder: letters, digits and '._=+@-' kept, every
    other run of characters '_', no leading dot. When that changed `text` or it is longer than `max_length`, it is
    cut and followed by a short hash of `text`, so distinct texts keep distinct names."""
    slug = NOT_IN_FILE_NAMES.sub("_", text).lstrip(".") or "_"
    if slug == text and len(text) <= max_length:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{slug[:max_length - len(digest) - 1]}-{digest}"
