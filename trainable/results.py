"""A trial's files: its outputs (summary and trace), its resumable state and cached teachers.

All written atomically (see sublim.core.files); states load without unpickling arbitrary objects.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from sublim.core.config import TrialConfig
from sublim.core.files import DIVERGED_FILE, SUMMARY_FILE, TRACE_FILE, atomic_write, read_json, read_regular, write_json
from sublim.core.schema import trace_table
from sublim.core.text import first_sentence
from sublim.core.versions import library_versions

from .trial import Diverged, Teacher


def write_trial_outputs(out_dir: Path, summary: dict[str, Any], trace: dict[str, torch.Tensor]) -> None:
    """`summary.json` and `trace.parquet` (one row per optimizer step) in `out_dir`.

    The trace goes first: a folder with a summary always has its trace.
    """
    out_dir = Path(out_dir)
    table = trace_table({name: values.numpy() for name, values in trace.items()})
    buffer = pa.BufferOutputStream()  # serialized first, so that a full disk is an OSError that says so
    pq.write_table(table, buffer)
    atomic_write(out_dir / TRACE_FILE, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    write_json(out_dir / SUMMARY_FILE, summary)


def write_diverged(out_dir: Path, config: TrialConfig, error: Diverged) -> None:
    """`diverged.json`: where the trial stopped and on what, with its config: a status, never a result."""
    write_json(Path(out_dir) / DIVERGED_FILE, {**error.record(), "config": config.to_dict(),
                                               "versions": library_versions()})


def save_state(path: Path, state: dict[str, Any], replace: bool = True) -> bool:
    """Whether it was written: with `replace=False`, not when `path` exists (see `atomic_write`). Serialized first:
    torch's own file writer reports a full disk as "enforce fail at inline_container.cc"."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()), replace=replace)


def load_state(path: Path) -> dict[str, Any]:
    """Load a state written by `save_state` without unpickling arbitrary objects, from a regular file only (see
    `read_regular`: a FIFO there never blocks)."""
    return torch.load(io.BytesIO(read_regular(path)), map_location="cpu", weights_only=True)


class TeacherCache:
    """Trained teachers on disk, one file per teacher key, so arms of a seed share one teacher.

    A teacher that diverged leaves its record instead (`teacher-<key>.diverged.json`): training is
    deterministic, so the seed's other arms take the record rather than train it to the same step again.
    """

    def __init__(self, folder: Path, log: Callable[[str], None] = print):
        self.folder = Path(folder)
        self.log = log

    def path(self, key: str) -> Path:
        return self.folder / f"teacher-{key}.pt"

    def get(self, key: str) -> Teacher | None:
        """The stored teacher of `key`; None when there is none, or when its file is unusable, which is then
        set aside (renamed `*.bad`) so that the teacher is trained again."""
        path = self.path(key)
        try:
            teacher = Teacher.from_state_dict(load_state(path))
            if teacher.key != key:
                raise ValueError(f"it holds teacher {teacher.key}")
        except FileNotFoundError:
            return None
        except Exception as error:  # unreadable, not tensors only, not a teacher, or another key
            return self.set_aside(path, "teacher file", error)
        return teacher

    def get_or_train(self, key: str, train: Callable[[], Teacher]) -> tuple[Teacher, bool]:
        """The stored teacher of `key`, else `train()`'s, stored (the first stored when several trials trained it at
        once), and whether this call trained it. Raises the recorded `Diverged` of a teacher that diverged before;
        one that diverges now is recorded, then raised."""
        teacher = self.get(key)
        if teacher is not None:
            return teacher, False
        diverged = self.divergence(key)
        if diverged is not None:
            raise diverged
        try:
            teacher = train()
        except Diverged as error:
            write_json(self.divergence_path(key), {"key": key, **error.record()})
            raise
        return self.put_first(teacher), True

    def divergence_path(self, key: str) -> Path:
        return self.folder / f"teacher-{key}.{DIVERGED_FILE}"

    def divergence(self, key: str) -> Diverged | None:
        """The recorded divergence of `key`'s teacher; None when there is none, or when the record is unusable,
        which is then set aside (renamed `*.bad`) so that the teacher is trained again."""
        path = self.divergence_path(key)
        try:
            record = read_json(path)
            error = Diverged(record["model"], record["step"], record["quantity"])
            if record != {"key": key, **error.record()} or error.model != "teacher" or type(error.step) is not int:
                raise ValueError(f"not the divergence record of teacher {key}")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as problem:
            return self.set_aside(path, "teacher record", problem)
        return error

    def set_aside(self, path: Path, what: str, problem: Exception) -> None:
        """Rename an unusable file to `*.bad` (kept for a look, never read again) and say so; the teacher is then
        trained again."""
        aside = path.with_name(path.name + ".bad")
        path.replace(aside)
        self.log(f"{what} {path} unusable ({type(problem).__name__}: {first_sentence(problem)}); set aside as "
                 f"{aside.name}, training the teacher again")

    def put_first(self, teacher: Teacher) -> Teacher:
        """Store `teacher` unless another process stored its key first; the stored teacher either way.

        Trials of one seed that train its teacher at the same time then all use the first one stored:
        the same parameters (training is deterministic), and one training time in every summary.
        """
        while not save_state(self.path(teacher.key), teacher.state_dict(), replace=False):
            stored = self.get(teacher.key)  # an unusable file is set aside here, and the loop stores this one
            if stored is not None:
                return stored
        return teacher
