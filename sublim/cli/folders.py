"""Output folders checked before any work: a run or sweep that cannot write its results fails at once."""

from __future__ import annotations

import os
from pathlib import Path


def unwritable(path: Path) -> str | None:
    """Why `path` cannot be (or become) a folder we write into, or None when it can."""
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        return f"{existing} is a file; give a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable; give a folder you can write to"
    return None
