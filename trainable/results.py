"""Writing a trial's outputs and states atomically: a crash never leaves a half-written file.

Every file is written to a temporary name in the same folder and renamed into place, so a reader
sees either the old complete file or the new complete one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .trial import Teacher

SUMMARY_FILE = "summary.json"
TRACE_FILE = "trace.parquet"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_safe(value: Any) -> Any:
    """NaN and infinity as null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, value: Any) -> None:
    text = json.dumps(_json_safe(value), indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_trial_outputs(out_dir: Path, summary: dict[str, Any], trace: dict[str, torch.Tensor]) -> None:
    """`summary.json` and `trace.parquet` (one row per optimizer step) in `out_dir`.

    The trace goes first: a folder with a summary always has its trace.
    """
    out_dir = Path(out_dir)
    table = pa.table({name: values.numpy() for name, values in trace.items()})
    table = table.set_column(0, "step", table["step"].cast(pa.int64()))
    table = table.set_column(1, "epoch", table["epoch"].cast(pa.int64()))
    atomic_write(out_dir / TRACE_FILE, lambda tmp: pq.write_table(table, tmp))
    write_json(out_dir / SUMMARY_FILE, summary)


def save_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any]:
    """Load a state written by `save_state` without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


class TeacherCache:
    """Trained teachers on disk, one file per teacher key, so arms of a seed share one teacher."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"teacher-{key}.pt"

    def get(self, key: str) -> Teacher | None:
        path = self.path(key)
        return Teacher.from_state_dict(load_state(path)) if path.exists() else None

    def put(self, teacher: Teacher) -> None:
        save_state(self.path(teacher.key), teacher.state_dict())
