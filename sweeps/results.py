"""A sweep's results folder: self-describing, so `sublim report` needs nothing else.

Layout at `<storage>/<name>/`:
    sweep.json                  name, parsed spec, library versions and every expected trial
    spec.yaml                   the spec file as given
    trials/<trial_id>/          summary.json + trace.parquet of a finished trial, or error.txt
    teachers/teacher-<key>.pt   the trained teachers (one per seed), reused by every arm and on resume
    tune/                       Ray Tune's own experiment state and per-epoch checkpoints
Only the driver writes here (besides Tune), so the folder needs no shared storage for its own files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sublim.core.files import ERROR_FILE, SUMMARY_FILE, SWEEP_FILE, TRACE_FILE, atomic_write, write_json, write_text
from sublim.core.versions import library_versions
from sublim.trainable.results import TeacherCache

from .spec import SweepSpec

SPEC_FILE = "spec.yaml"


class SweepError(ValueError):
    """The results folder cannot take this sweep (another grid there, nothing to resume, ...)."""


def trial_records(spec: SweepSpec) -> list[dict[str, Any]]:
    return [{"trial_id": t.trial_id, "arm": t.config.arm, "config": t.config.to_dict(),
             "teacher_key": t.config.teacher_key} for t in spec.trials]


class ResultsFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()
        self.teachers = TeacherCache(self.path / "teachers")

    @property
    def tune_dir(self) -> Path:
        return self.path / "tune"

    def trial_dir(self, trial_id: str) -> Path:
        return self.path / "trials" / trial_id

    def exists(self) -> bool:
        return (self.path / SWEEP_FILE).exists()

    def check_compatible(self, spec: SweepSpec) -> None:
        """A folder continues only the sweep it was made for: the same trials with the same configs."""
        recorded = json.loads((self.path / SWEEP_FILE).read_text())["trials"]
        expected = trial_records(spec)
        if recorded != expected:
            differing = next((e["trial_id"] for r, e in zip(recorded, expected) if r != e), None)
            detail = (f"trial {differing} differs" if differing
                      else f"{len(recorded)} trials there, {len(expected)} in the spec")
            raise SweepError(f"{self.path} holds a different sweep ({detail}); choose another --name or --storage, "
                             "or resume it with the spec it was started with (its spec.yaml)")

    def describe(self, name: str, spec: SweepSpec, spec_text: str) -> None:
        """Write spec.yaml and sweep.json (atomically) before any trial starts."""
        write_text(self.path / SPEC_FILE, spec_text)
        write_json(self.path / SWEEP_FILE, {"name": name, "spec": spec.to_dict(), "versions": library_versions(),
                                            "trials": trial_records(spec)})

    def finished(self) -> set[str]:
        folder = self.path / "trials"
        return {p.parent.name for p in folder.glob(f"*/{SUMMARY_FILE}")} if folder.exists() else set()

    def is_finished(self, trial_id: str) -> bool:
        return (self.trial_dir(trial_id) / SUMMARY_FILE).exists()

    def store_outputs(self, trial_id: str, source: Path) -> None:
        """Copy a finished trial's trace, then its summary (a folder with a summary has its trace)."""
        target = self.trial_dir(trial_id)
        for name in (TRACE_FILE, SUMMARY_FILE):
            atomic_write(target / name, lambda tmp, name=name: shutil.copyfile(Path(source) / name, tmp))
        (target / ERROR_FILE).unlink(missing_ok=True)

    def store_error(self, trial_id: str, text: str) -> None:
        write_text(self.trial_dir(trial_id) / ERROR_FILE, text)
