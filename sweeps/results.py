"""A sweep's results folder: self-describing, so `sublim report` needs nothing else, and verified, so
that nothing damaged, diverged or belonging to another config ever passes for a result.

Layout at `<storage>/<name>/`:
    sweep.json                  name, parsed spec, library versions, every expected trial, and its mitigations'
                                report facts (a plugin's with its distribution and version: the report needs
                                no plugin installed, and a resume without it is refused)
    spec.yaml                   the spec file as given
    trials/<trial_id>/          summary.json + trace.parquet of a finished trial; diverged.json of a
                                diverged one; error.txt of a failed one; checkpoint.pt while it runs
    teachers/teacher-<key>.pt   the trained teachers (one per seed and value of a teacher's axis), reused by
                                every arm and on resume; teacher-<key>.diverged.json where a teacher diverged
                                (not trained again)
    tune/run-<time>/            Ray Tune's own logs of each invocation (TensorBoard) and profile.json
                                (where its cores' time went); never read back
Trials write their own checkpoints and outputs here, from whichever node runs them: on a cluster
the folder must be one that every node mounts at the same path. Nothing here is ever unpickled:
checkpoints and teachers load with `weights_only=True` and are checked against the trial's config.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import stat
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from sublim.core.config import TrialConfig
from sublim.core.mitigations import MITIGATIONS
from sublim.core.files import (CHECKPOINT_FILE, DIVERGED_FILE, ERROR_FILE, MAX_NAME_LENGTH, SUMMARY_FILE, SWEEP_FILE,
                               TRACE_FILE, TRIAL_ID_PATTERN, TRIALS_DIR, read_json,
                               write_json, write_text)
from sublim.core.text import first_sentence, short_repr
from sublim.core.trial_folder import ConfigChecks, read_trial
from sublim.core.versions import library_versions

from .lock import LOCK_FILE, DriverLock
from .spec import GRID_FIELDS, GridTrial, SweepSpec

if TYPE_CHECKING:
    from sublim.trainable import Diverged, Trial
    from sublim.trainable.results import TeacherCache

SPEC_FILE = "spec.yaml"
TUNE_DIR = "tune"
TEACHERS_DIR = "teachers"
SWEEP_ENTRIES = (SWEEP_FILE, SPEC_FILE, TRIALS_DIR, TEACHERS_DIR, TUNE_DIR, LOCK_FILE)  # what a sweep writes at its top
TRIAL_FILES = (SUMMARY_FILE, TRACE_FILE, CHECKPOINT_FILE, DIVERGED_FILE, ERROR_FILE)  # what a trial writes


class SweepError(ValueError):
    """The results folder cannot take this sweep (another grid there, nothing to resume, ...)."""


def trial_records(spec: SweepSpec) -> list[dict[str, Any]]:
    return [{"trial_id": t.trial_id, "arm": t.config.arm, "config": t.config.to_dict(),
             "teacher_key": t.config.teacher_key} for t in spec.trials]


class ResultsFolder:
    def __init__(self, path: str | Path, log: Callable[[str], None] = print):
        self.path = Path(path).expanduser().resolve()
        self.log = log
        self.teachers_dir = self.path / TEACHERS_DIR
        self.lock: DriverLock | None = None
        self.checks = ConfigChecks()  # each distinct config validated once, as the report reads the folder

    @functools.cached_property
    def teachers(self) -> TeacherCache:
        """The stored teachers, which load through torch: a trial's (a sweep's driver never imports torch)."""
        from sublim.trainable.results import TeacherCache

        return TeacherCache(self.teachers_dir, self.log)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's driver lock (lock.py) for the block: one driver per results folder. Re-entrant: a
        block inside another of the same object holds it already. Folders made for the lock and left empty go."""
        if self.lock is not None:
            yield
            return
        made = [folder for folder in (self.path, *self.path.parents) if not folder.exists()]
        self.path.mkdir(parents=True, exist_ok=True)
        lock = DriverLock(self.path, self.log)
        try:
            lock.acquire()
            self.lock = lock
            yield
        finally:
            if self.lock is lock:
                lock.release()
                self.lock = None
            for folder in made:  # the deepest first; one the sweep wrote into stays, and so do those above it
                with suppress(OSError):
                    folder.rmdir()

    @property
    def tune_dir(self) -> Path:
        return self.path / TUNE_DIR

    def trial_dir(self, trial_id: str) -> Path:
        if not TRIAL_ID_PATTERN.fullmatch(trial_id):
            raise SweepError(f"trial id {short_repr(trial_id)} is not allowed; letters, digits, '@', '.', '_', '+', '=', "
                             f"'-', at most {MAX_NAME_LENGTH} characters")
        return self.path / TRIALS_DIR / trial_id

    def exists(self) -> bool:
        return (self.path / SWEEP_FILE).exists()

    def check_entries(self, trials: tuple[GridTrial, ...]) -> None:
        """Refuse, in one line, a folder where the sweep would write or delete through a symbolic link (or fail on a
        folder where a file belongs): trials/, teachers/, tune/ and the trials' folders must be plain folders, and a
        trial's files never folders. Nothing outside the results folder is ever written or deleted, and a folder
        that is no sweep's (no sweep.json) is taken only when it holds nothing but what a sweep writes."""
        if not self.exists() and self.path.is_dir():
            foreign = sorted(p.name for p in self.path.iterdir() if p.name not in SWEEP_ENTRIES)
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise SweepError(f"{self.path}: holds {shown} and no {SWEEP_FILE}, so it is no sweep's results "
                                 "folder: a sweep never writes among files it did not write; choose another --name "
                                 "or --storage")
        folders = [self.path / TRIALS_DIR, self.teachers_dir, self.tune_dir,
                   *(self.trial_dir(t.trial_id) for t in trials)]
        found = [problem for problem in map(self._not_a_plain_folder, folders) if problem]
        found += [f"{path.relative_to(self.path)} is a folder where the trial's file belongs"
                  for path in (self.trial_dir(t.trial_id) / name for t in trials for name in TRIAL_FILES)
                  if path.is_dir() and not path.is_symlink()]
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise SweepError(f"{self.path}: {found[0]}{more}; a sweep never writes or deletes through a symbolic link "
                             "nor replaces a folder in its results folder: move it aside, or make it a plain folder")

    def _not_a_plain_folder(self, path: Path) -> str | None:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(mode):
            return f"{path.relative_to(self.path)} is a symbolic link (to {os.readlink(path)})"
        return None if stat.S_ISDIR(mode) else f"{path.relative_to(self.path)} is not a folder"

    # --- the sweep's description ----------------------------------------------------------------

    def added_by(self, spec: SweepSpec) -> list[str]:
        """The trials `spec` adds to the sweep here (none when it is the same grid). A spec may grow a sweep
        (more seeds, arms, strengths, axis values, axes) but never change what a recorded trial means, nor drop one."""
        recorded = {t["trial_id"] for t in self.recorded_trials()}
        return [t.trial_id for t in self.grid_of(spec).trials if t.trial_id not in recorded]

    def grid_of(self, spec: SweepSpec) -> SweepSpec:
        """`spec` with each trial this folder holds under its id here. A recorded trial is the spec's trial at its
        seed, arm and axis values (on an axis new to the folder, the value it ran with), so a folder grows along an
        axis as it does by seeds, and its trials keep their ids; a spec that lacks one, or gives it other settings,
        is refused naming the key."""
        names = (*GRID_FIELDS, *spec.axes)
        by_point = {tuple(t.config.to_dict()[name] for name in names): t for t in spec.trials}
        ids: dict[str, str] = {}
        for recorded in self.recorded_trials():
            trial_id, config = recorded["trial_id"], recorded["config"]
            trial = by_point.get(tuple(config.get(name) for name in names))
            if trial is None:
                axis = next((name for name in spec.axes if config.get(name) not in spec.axes[name]), None)
                lacks = f" (key 'axes.{axis}' lacks its value {config.get(axis)!r})" if axis else ""
                raise SweepError(f"{self.path} holds trial {trial_id}, which the spec does not list{lacks}: a sweep can "
                                 "grow, not shrink; use a spec whose grid includes every trial there, or another --name")
            expected = trial.config.to_dict()
            key = next((k for k in sorted(config.keys() | expected.keys()) if config.get(k) != expected.get(k)), None)
            if key is not None:
                raise SweepError(f"{self.path} holds a different sweep: key '{key}' is {config.get(key)!r} there and "
                                 f"{expected.get(key)!r} in the spec (trial {trial_id}); choose another "
                                 "--name or --storage, or keep the settings of its spec.yaml")
            ids[trial.trial_id] = trial_id
        return dataclasses.replace(spec, trials=tuple(GridTrial(ids.get(t.trial_id, t.trial_id), t.config)
                                                      for t in spec.trials))

    def recorded_trials(self) -> list[dict[str, Any]]:
        return self._sweep_record()["trials"]

    def _sweep_record(self) -> dict[str, Any]:
        """sweep.json, checked as far as the sweep relies on it: each trial a plain id and a config mapping."""
        path = self.path / SWEEP_FILE
        try:
            sweep = read_json(path)
            for trial in sweep["trials"]:
                self.trial_dir(trial["trial_id"])
                if not isinstance(trial["config"], dict):
                    raise TypeError(f"the config of trial {trial['trial_id']} is not a mapping")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SweepError(f"{path}: damaged ({type(error).__name__}: {error}); expected the sweep.json written "
                             "by `sublim sweep`; move the folder aside or choose another --name") from None
        for trial in sweep["trials"]:  # validated as a spec's trials are, before any value is used
            problem = self.checks.problem(trial["config"], f"its trial {trial['trial_id']}")
            if problem:
                raise SweepError(f"{path}: {problem}; move the folder aside or choose another --name")
        return sweep

    def record(self, name: str, spec: SweepSpec, spec_text: str) -> None:
        """Describe the sweep in sweep.json and spec.yaml before any trial starts; when the spec grows an existing
        sweep, list every trial and add an entry for this extension (when, what, library versions)."""
        with self.locked():  # the check and the write at once: two drivers never extend a folder together
            sweep: dict[str, Any] = {"name": name, "versions": library_versions(), "extensions": []}
            added = [t.trial_id for t in spec.trials]
            if self.exists():
                spec = self.grid_of(spec)
                added = self.added_by(spec)
                if not added:
                    return
                sweep = self._sweep_record()
                sweep.setdefault("extensions", []).append({
                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "added": added,
                    "seeds": sorted({t.config.seed for t in spec.trials if t.trial_id in added}),
                    "arms": sorted({t.config.arm for t in spec.trials if t.trial_id in added}),
                    "spec": spec_text, "versions": library_versions()})
            write_text(self.path / SPEC_FILE, spec_text)
            mitigations = {**sweep.get("mitigations", {}),
                           **MITIGATIONS.record(t.config.mitigation for t in spec.trials)}
            write_json(self.path / SWEEP_FILE, {**sweep, "spec": spec.to_dict(), "trials": trial_records(spec),
                                                "mitigations": mitigations})

    def plugins_missing(self) -> list[str]:
        """The plugins the folder's sweep.json records and this environment lacks, each as 'name (distribution
        version)'. Only names are compared: nothing recorded is imported."""
        try:  # not `_sweep_record`: its check of the trials' configs would refuse them for the missing plugin itself
            sweep = read_json(self.path / SWEEP_FILE) if self.exists() else {}
        except (OSError, ValueError):
            return []  # a damaged sweep.json: the folder's own check says so
        record = sweep.get("mitigations") if isinstance(sweep, dict) else None
        missing = []
        for name, facts in (record.items() if isinstance(record, dict) else ()):
            if name not in MITIGATIONS:
                plugin = facts.get("plugin") if isinstance(facts, dict) else None
                where = (f"{plugin.get('distribution')!s:.60} {plugin.get('version')!s:.30}" if isinstance(plugin, dict)
                         else "not a plugin recorded by this version")
                missing.append(f"{short_repr(name)} (plugin {where})")
        return missing

    def sequential(self) -> dict[str, Any] | None:
        """The group-sequential record of a sweep grown in waves (design, each look, why it stopped), if any."""
        return self._sweep_record().get("sequential")

    def record_sequential(self, record: dict[str, Any]) -> None:
        write_json(self.path / SWEEP_FILE, {**self._sweep_record(), "sequential": record})

    def new_tune_run(self) -> str:
        """A fresh name under tune/ for this invocation's Tune logs: an earlier run's state is never read."""
        name = f"run-{time.strftime('%Y%m%d-%H%M%S')}"
        suffix = 1
        while (self.tune_dir / name).exists():
            name, suffix = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{suffix}", suffix + 1
        return name

    # --- verifying what a trial left ------------------------------------------------------------

    def status(self, trial: GridTrial) -> tuple[str, str | None]:
        """('finished' | 'diverged' | 'pending', what is wrong with the files there, if anything): the results
        folder's one check (`read_trial`), which the report applies too."""
        found = read_trial(self.trial_dir(trial.trial_id), trial.config.to_dict(), self.checks)
        if found.status in ("completed", "diverged"):
            return ("finished" if found.status == "completed" else "diverged"), None
        return "pending", found.problem if found.status in ("invalid", "incomplete") else None

    def clear_outputs(self, trial_id: str) -> None:
        """Remove a trial's unusable outputs so that they never read as a result; its checkpoint stays."""
        folder = self.trial_dir(trial_id)
        for name in (SUMMARY_FILE, TRACE_FILE, DIVERGED_FILE):
            (folder / name).unlink(missing_ok=True)

    def teachers_missing(self, trials: list[GridTrial]) -> list[str]:
        """The teacher keys these trials need that teachers/ lacks (neither a teacher nor its divergence record); an
        unusable file is set aside here, with a line, so that the first trial of its seed trains it again."""
        keys = dict.fromkeys(t.config.teacher_key for t in trials)
        if not self.holds_teachers():
            return list(keys)
        return [key for key in keys if self.teachers.get(key) is None and self.teachers.divergence(key) is None]

    def holds_teachers(self) -> bool:
        """Whether teachers/ holds anything (else no teacher is loaded, nor torch imported, to look)."""
        return any(self.teachers_dir.glob("*"))

    # --- what a running trial writes ------------------------------------------------------------

    def restore(self, trial_id: str, trial: Trial) -> None:
        """Continue `trial` from its checkpoint when there is a usable one (tensors only, same config)."""
        from sublim.trainable.results import load_state

        path = self.trial_dir(trial_id) / CHECKPOINT_FILE
        try:
            trial.load_state_dict(load_state(path))
        except FileNotFoundError:
            return
        except Exception as error:  # unreadable, not tensors only, or another config: start over
            self.log(f"{trial_id}: checkpoint unusable ({type(error).__name__}: {first_sentence(error)}); starting from "
                     "epoch 0")
            path.unlink(missing_ok=True)

    def save_epoch(self, trial_id: str, trial: Trial) -> None:
        """The latest checkpoint while the trial runs; its outputs, and no checkpoint, once it is done."""
        from sublim.trainable.results import save_state, write_trial_outputs

        folder = self.trial_dir(trial_id)
        if trial.epoch < trial.config.epochs:
            save_state(folder / CHECKPOINT_FILE, trial.state_dict())
            return
        write_trial_outputs(folder, trial.summary(), trial.trace_columns())
        self.finish(trial_id)

    def store_diverged(self, trial_id: str, config: TrialConfig, error: Diverged) -> None:
        from sublim.trainable.results import write_diverged

        write_diverged(self.trial_dir(trial_id), config, error)
        self.finish(trial_id)

    def finish(self, trial_id: str) -> None:
        """A trial with a result (or a diverged record) keeps no checkpoint and no error of an earlier attempt."""
        folder = self.trial_dir(trial_id)
        (folder / CHECKPOINT_FILE).unlink(missing_ok=True)
        (folder / ERROR_FILE).unlink(missing_ok=True)

    def store_error(self, trial_id: str, text: str) -> None:
        write_text(self.trial_dir(trial_id) / ERROR_FILE, text)
