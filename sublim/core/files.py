"""Atomic file writes and bounded reads, shared by every package: a crash never leaves a half-written
file, and a file received from someone else is read only when it is a regular file of a sane size.

Each file is written to a temporary name in its own folder and renamed into place, so a reader
sees either the old complete file or the new complete one. Kept free of torch and Ray so that
`analysis` can use it.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable

from .text import one_line

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
SWEEP_NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME_LENGTH - 1}}}")  # fullmatch: no "a\n"
# A trial id is a folder name: no path separator, no leading dot. Checked (with fullmatch) before any file is opened.
TRIAL_ID_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9@._+=-]{{0,{MAX_NAME_LENGTH - 1}}}")


MAX_FILE_BYTES = 2**30  # any file read back (a default trial's checkpoint is about 3 MB, its trace 60 kB)
MAX_JSON_BYTES = 2**28  # sweep.json of 50,000 trials is about 60 MB
MAX_JSON_DEPTH = 32  # what sublim writes nests at most 6 levels deep


class UnreadableFile(ValueError):
    """A file that is not read: a symbolic link, not a regular file, too large, or JSON nested too deep."""


def read_regular(path: Path, max_bytes: int = MAX_FILE_BYTES, follow_links: bool = False) -> bytes:
    """The bytes of `path`, only when it is a regular file of at most `max_bytes`: a symbolic link is never
    followed (unless `follow_links`: a file the user named, such as a spec), and a FIFO, device or folder is
    refused without blocking. Raises UnreadableFile, or OSError when `path` cannot be opened (FileNotFoundError
    when there is nothing there)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW))
    except OSError as error:
        if error.errno == errno.ELOOP:  # what O_NOFOLLOW gives for a link
            raise UnreadableFile(f"{path.name} is a symbolic link; only regular files are read") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnreadableFile(f"{path.name} is not a regular file (a folder, FIFO or device); only regular files "
                             "are read")
    with open(fd, "rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnreadableFile(f"{path.name} is larger than {max_bytes:,} bytes; not read")
    return data


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value in `path` (see `read_regular`), nested at most `max_depth` levels. Raises UnreadableFile,
    ValueError when it is not UTF-8 JSON, or OSError."""
    too_deep = UnreadableFile(f"{Path(path).name} is nested deeper than {max_depth} levels; not read")
    try:
        value = json.loads(read_regular(path, max_bytes).decode("utf-8"))
    except RecursionError:
        raise too_deep from None
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:  # iterative: a deep value must not exhaust the stack here either
        item, depth = stack.pop()
        if depth > max_depth:
            raise too_deep
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return value


# What went wrong, in words, for the errors a path given on the command line or found in a folder can raise.
OS_PROBLEMS = {
    errno.ENAMETOOLONG: "a name in this path is longer than the file system allows (255 bytes)",
    errno.EROFS: "it is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted there",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.ENOENT: "there is no such file or folder, or the file system refuses to create one there",
    errno.EISDIR: "it is a folder, not a file",
    errno.ELOOP: "it leads through too many symbolic links",
    errno.ENOSPC: "no space is left on its disk",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EEXIST: "something is already there",
    errno.EXDEV: "it is on another file system",
}


def os_problem(error: OSError) -> str:
    """What went wrong, in words, without the path."""
    return one_line(OS_PROBLEMS.get(error.errno, (error.strerror or str(error) or type(error).__name__).lower()))


def os_error_line(error: OSError) -> str:
    """An OSError as one line naming the path and what went wrong: what the command line prints instead of a
    traceback."""
    where = error.filename if error.filename is not None else "a file"
    shown = repr(where)[1:-1] if isinstance(where, str) else repr(where)  # a NUL or newline shown, not printed
    shown = shown if len(shown) <= 200 else shown[:120] + "..." + shown[-60:]
    return f"{shown}: {os_problem(error)}"


def unwritable(path: Path) -> str | None:
    """Why `path` cannot be (or become) a folder we write into, or None when it can: its nearest existing folder is
    probed by creating (and removing) a folder in it, since permissions alone do not tell a read-only mount, /proc
    or a quota. Checked before any work, so that results are never computed only to be lost."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        return f"{existing} is a file; give a folder"
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".sublim-probe-"))
    except OSError as error:
        return f"{existing} is not writable ({os_problem(error)}); give a folder you can write to"
    return None


def holds_marker(path: Path, written_by: str) -> bool:
    """Whether `path` is a marker that `written_by` wrote into a folder it made (a small regular JSON file saying
    so): what lets a command replace that folder, never a guess from the names of the files in it."""
    try:
        value = read_json(path, max_bytes=1 << 12)
    except (OSError, ValueError):
        return False
    return isinstance(value, dict) and value.get("written_by") == written_by


class DiskFull(OSError):
    """No space (or quota) left where a file was to be written; nothing was half-written."""


class DataError(RuntimeError):
    """MNIST could not be found, downloaded, or one of its files is damaged. Here, free of torch, so that
    `sublim sweep` can name it among its errors and still check a spec without importing torch."""


class InstallError(RuntimeError):
    """torch and torchvision are not a working pair (e.g. a CPU-only torch beside a CUDA-built torchvision)."""


def atomic_write(path: Path, write: Callable[[Path], None], replace: bool = True) -> bool:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it onto `path`.

    With `replace=False` the file is created only if `path` does not exist yet, atomically even when
    several processes race (a hard link fails on an existing name); returns whether it was created.
    A full disk raises DiskFull, saying so in one line; the file at `path` is then as it was.
    """
    path = Path(path)
    try:
        return _atomic_write(path, write, replace)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            if Path(str(error.filename)).name.startswith(f".{path.name}."):  # name the file, not its temporary
                raise OSError(error.errno, error.strerror, str(path)) from None
            raise
        raise DiskFull(f"no space left on the disk holding {path.parent}: {path.name} was not written, and "
                       "nothing was half-written") from None


def _atomic_write(path: Path, write: Callable[[Path], None], replace: bool) -> bool:
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
