"""Atomic file writes, shared by every package: a crash never leaves a half-written file.

Each file is written to a temporary name in its own folder and renamed into place, so a reader
sees either the old complete file or the new complete one. Kept free of torch and Ray so that
`analysis` can use it.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

# The names every results folder uses: written by `trainable` and `sweeps`, read by `analysis`.
SWEEP_FILE = "sweep.json"  # a sweep's description: spec, versions, every expected trial
TRIALS_DIR = "trials"  # one folder per trial, named by its trial id
SUMMARY_FILE = "summary.json"  # a finished trial's summary
TRACE_FILE = "trace.parquet"  # its step trace
CHECKPOINT_FILE = "checkpoint.pt"  # a running trial's latest epoch state (tensors only; gone once it finishes)
DIVERGED_FILE = "diverged.json"  # a trial stopped by a non-finite loss, gradient or parameter
ERROR_FILE = "error.txt"  # a trial that failed for good
PROFILE_FILE = "profile.json"  # in each Tune run's folder: where that invocation's core-seconds went (for people)

# Sweep names and trial ids name folders: at most this long, far below file systems' 255 bytes per name.
MAX_NAME_LENGTH = 100
# A trial id is a folder name: no path separator, no leading dot. Checked (with fullmatch) before any file is opened.
TRIAL_ID_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9@._+-]{{0,{MAX_NAME_LENGTH - 1}}}")


def atomic_write(path: Path, write: Callable[[Path], None], replace: bool = True) -> bool:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it onto `path`.

    With `replace=False` the file is created only if `path` does not exist yet, atomically even when
    several processes race (a hard link fails on an existing name); returns whether it was created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make results private to their writer
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: checked, then renamed (a race may then replace)
            if path.exists():
                return False
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def json_safe(value: Any) -> Any:
    """NaN and infinity as None (JSON null): JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(json_safe(value), indent=2, allow_nan=False) + "\n")
