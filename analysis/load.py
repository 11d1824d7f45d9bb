"""Reading a results folder into two tables: one row per trial, one row per optimizer step.

It reads files only (JSON and Parquet), so a report needs neither torch nor a running Ray, and it
accepts partial sweeps: every trial that `sweep.json` expects gets a row, with a status saying
whether it completed, stopped early, diverged, left numbers that are no result (invalid), failed or
is missing. Only completed trials ever reach a statistic.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sublim.core.files import (DIVERGED_FILE, ERROR_FILE, SUMMARY_FILE, SWEEP_FILE, TRACE_FILE, TRIAL_ID_PATTERN,
                               TRIALS_DIR)
from sublim.core.mitigations import MITIGATIONS
from sublim.core.schema import SUMMARY_FIELDS, TRACE_COLUMNS

from .errors import ReportError

# diverged: stopped on a non-finite loss, gradient or parameter (diverged.json); invalid: its files are no
# result (non-finite numbers, or a summary of another config). Neither is ever fed to a statistic.
STATUSES = ("completed", "incomplete", "diverged", "invalid", "failed", "missing")
INIT_ORDER = ("shared", "independent")

# summary list -> (column prefix, number of its first element): acc_epoch_0 is before distillation.
PER_EPOCH = {
    "acc_by_epoch": ("acc_epoch", 0),
    "alignment_by_epoch": ("alignment_epoch", 1),
    "frac_positive_by_epoch": ("frac_positive_epoch", 1),
    "applied_alignment_by_epoch": ("applied_alignment_epoch", 1),
    "update_alignment_by_epoch": ("update_alignment_epoch", 1),
}
# Newer than the results folders they may be missing from, and not what makes a trial a result: absent, or
# null in a summary, they are missing numbers (a warning), never a reason to call the trial invalid.
OPTIONAL = ("mean_update_alignment", "update_alignment_by_epoch")
NOT_NUMBERS = ("arm", "teacher_key", "versions", "config")
SCALARS = tuple(name for name in SUMMARY_FIELDS if name not in PER_EPOCH and name not in NOT_NUMBERS)
# Without these a trial says nothing: null (the writers' NaN) or infinite makes it invalid, as does a
# non-finite value in any per-epoch list or in the trace's alignment.
REQUIRED = ("trait_gain", "mean_alignment", "student_acc", "student_acc_before", "teacher_acc")
# diverged.json key -> trials column; the columns are there (empty) for every trial.
DIVERGED_COLUMNS = {"model": "diverged_model", "step": "diverged_step", "quantity": "diverged_quantity"}
IDENTITY = ("seed", "mitigation", "strength", "student_init")


@dataclass
class Results:
    """A loaded results folder: `trials` (one row per expected trial) and `steps` (the step traces)."""

    path: Path
    name: str
    kind: str  # "sweep" or "run"
    trials: pd.DataFrame
    steps: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    sequential: dict[str, Any] | None = None  # a sweep grown in waves: its design, each look, why it stopped

    @property
    def completed(self) -> pd.DataFrame:
        """The trials every statistic is computed on: those that ran all their epochs to finite numbers."""
        return self.trials[self.trials["status"] == "completed"]


def load_results(path: str | Path) -> Results:
    """Load a sweep folder (`sweep.json` + `trials/`) or a single-run folder (`summary.json` or `diverged.json`)."""
    path = Path(path)
    expected = (f"expected a results folder holding {SWEEP_FILE} (from `sublim sweep`) "
                f"or {SUMMARY_FILE} (from `sublim run`)")
    if not path.is_dir():
        raise ReportError(f"{path}: no such folder; {expected}")
    if (path / SWEEP_FILE).is_file():
        return _load_sweep(path)
    if (path / SUMMARY_FILE).is_file() or (path / DIVERGED_FILE).is_file():
        return _load_run(path)
    raise ReportError(f"{path}: not a results folder; {expected}")


def arm_order(trials: pd.DataFrame) -> list[str]:
    """Arms in reading order: none, projection, liminal; by strength; shared init before independent."""
    def rank(values: list[str], value: Any) -> int:
        return values.index(value) if value in values else len(values)

    firsts = trials.groupby("arm", sort=False).first()
    return sorted(firsts.index, key=lambda arm: (
        rank(list(MITIGATIONS), firsts.at[arm, "mitigation"]),
        _sortable(firsts.at[arm, "strength"]),
        rank(list(INIT_ORDER), firsts.at[arm, "student_init"]),
        arm,
    ))


def _sortable(value: Any) -> float:
    number = pd.to_numeric(value, errors="coerce")
    return float(number) if pd.notna(number) else np.inf


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: unreadable ({error}); expected a JSON file written by sublim") from None


def _read_object(path: Path) -> dict[str, Any]:
    value = _read_json(path)
    if not isinstance(value, dict):
        raise ReportError(f"{path}: not a JSON object")
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _foreign(record: dict[str, Any], expected: dict[str, Any] | None, name: str) -> str | None:
    """Why a trial file is not this trial's (its config is not the one sweep.json records), if it is not."""
    if expected is None or record.get("config") == expected:
        return None
    held = "holds no config" if record.get("config") is None else "belongs to another config"
    return f"{name} {held} than {SWEEP_FILE} records for this trial"


def _non_finite(summary: dict[str, Any]) -> str | None:
    """Why a summary's numbers are no result: a required number or a per-epoch value null (NaN) or infinite."""
    bad = [key for key in REQUIRED if key in summary and not _finite(summary[key])]
    bad += [key for key in PER_EPOCH if key not in OPTIONAL and key in summary
            and not (isinstance(summary[key], list) and all(map(_finite, summary[key])))]
    return f"{SUMMARY_FILE}: {', '.join(bad)} not finite (null, NaN or infinite)" if bad else None


def _trace_problem(trace: pd.DataFrame) -> str | None:
    """Why a trace is no result: an alignment that is not finite (a lacking column is only a warning)."""
    if "alignment" not in trace:
        return None
    finite = np.isfinite(pd.to_numeric(trace["alignment"], errors="coerce").to_numpy(dtype=float))
    if finite.all():
        return None
    first = trace["step"].iloc[int(np.argmin(finite))] if "step" in trace else "?"
    return f"{TRACE_FILE}: alignment not finite at {int((~finite).sum())} of {len(trace)} steps (first at step {first})"


class _Loader:
    """Collects trial rows, traces and what was wrong with them, then builds the two tables."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.traces: list[pd.DataFrame] = []
        self.lacking: Counter[str] = Counter()
        self.notes: list[str] = []

    def add(self, trial_id: str, arm: str | None, expected: dict[str, Any] | None, teacher_key: str | None,
            folder: Path) -> None:
        """One trial: its status from the files in `folder` (diverged.json first, as `sublim sweep` reads
        them), its numbers from summary.json and trace; `expected` is sweep.json's config of it."""
        row: dict[str, Any] = {"trial_id": trial_id, "arm": arm, "status": "missing", "error": None,
                               "teacher_key": teacher_key}
        config = expected
        if (folder / DIVERGED_FILE).is_file():
            config = _diverged(row, folder / DIVERGED_FILE, expected)
        elif (folder / SUMMARY_FILE).is_file():
            config = self._finished(row, folder, expected)
        elif (folder / ERROR_FILE).is_file():
            row.update(status="failed", error=_last_line(folder / ERROR_FILE))
        config = config if isinstance(config, dict) else {}
        if not row["arm"]:
            self.lacking["arm label"] += 1
            row["arm"] = "unlabelled"
        for key in IDENTITY:
            if key not in config:
                self.lacking[f"config '{key}'"] += 1
        row.update({key: value for key, value in config.items() if key not in row})
        self.rows.append(row)

    def _finished(self, row: dict[str, Any], folder: Path, expected: dict[str, Any] | None) -> Any:
        """A summary.json: completed, incomplete or invalid (with why); returns the trial's config."""
        try:
            summary = _read_object(folder / SUMMARY_FILE)
        except ReportError as error:
            row.update(status="failed", error=str(error))
            return expected
        config = expected or summary.get("config") or {}
        row["arm"] = row["arm"] or summary.get("arm")
        row["teacher_key"] = row["teacher_key"] or summary.get("teacher_key")
        row.update(self._summary_values(summary))
        problem = _foreign(summary, expected, SUMMARY_FILE) or _non_finite(summary)
        done, planned = summary.get("epochs_done"), config.get("epochs") if isinstance(config, dict) else None
        if problem is None and done is not None and planned is not None and done < planned:
            row["status"] = "incomplete"
            return config
        trace = None if problem else self._read_trace(folder / TRACE_FILE)
        problem = problem or (None if trace is None else _trace_problem(trace))
        if problem:
            row.update(status="invalid", error=problem)
            return config
        row["status"] = "completed"
        if trace is not None:
            self.traces.append(self._full_columns(trace).assign(trial_id=row["trial_id"]))
        return config

    def _summary_values(self, summary: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key in SCALARS:
            if key not in summary:
                self.lacking[f"summary.json '{key}'"] += 1
            values[key] = _number(summary.get(key))
        for key, (prefix, first) in PER_EPOCH.items():
            if key not in summary:
                self.lacking[f"summary.json '{key}'"] += 1
            values_list = summary.get(key)
            for offset, value in enumerate(values_list if isinstance(values_list, list) else []):
                values[f"{prefix}_{first + offset}"] = _number(value)
        return values

    def _read_trace(self, path: Path) -> pd.DataFrame | None:
        """The trace as written, or None (noted) when it is absent or unreadable."""
        if not path.is_file():
            self.lacking[TRACE_FILE] += 1
            return None
        try:
            return pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for a damaged file
            self.notes.append(f"{path}: unreadable trace ignored ({type(error).__name__}: {error})")
            return None

    def _full_columns(self, trace: pd.DataFrame) -> pd.DataFrame:
        for column in TRACE_COLUMNS:
            if column not in trace:
                self.lacking[f"trace column '{column}'"] += 1
                trace[column] = np.nan
        return trace[list(TRACE_COLUMNS)]

    def results(self, path: Path, name: str, kind: str) -> Results:
        trials = pd.DataFrame(self.rows)
        for key in (*IDENTITY, *DIVERGED_COLUMNS.values()):
            if key not in trials:
                trials[key] = np.nan
        trials["strength"] = pd.to_numeric(trials["strength"], errors="coerce")
        trials["diverged_step"] = pd.to_numeric(trials["diverged_step"], errors="coerce").astype("Int64")
        trials = trials[_column_order(trials)]
        steps = pd.concat(self.traces, ignore_index=True) if self.traces else pd.DataFrame(
            columns=[*TRACE_COLUMNS, "trial_id"])
        steps = steps.merge(trials[["trial_id", "arm", "seed"]], on="trial_id", how="left")
        steps = steps[["trial_id", "arm", "seed", *TRACE_COLUMNS]]
        warnings = [f"{what} absent in {count} trial(s); numbers that need it are left out"
                    for what, count in sorted(self.lacking.items())] + self.notes
        return Results(path=path, name=name, kind=kind, trials=trials, steps=steps, warnings=warnings)


def _diverged(row: dict[str, Any], path: Path, expected: dict[str, Any] | None) -> Any:
    """A diverged.json: the trial diverged (where and in what), or is invalid when it belongs to another config."""
    try:
        record = _read_object(path)
    except ReportError as error:
        row.update(status="failed", error=str(error))
        return expected
    problem = _foreign(record, expected, DIVERGED_FILE)
    if problem:
        row.update(status="invalid", error=problem)
        return expected
    where = {column: record.get(key) for key, column in DIVERGED_COLUMNS.items()}
    if not isinstance(where["diverged_step"], int) or isinstance(where["diverged_step"], bool):
        where["diverged_step"] = None  # a damaged record: the step is unknown, the status stands
    message = f"diverged at step {where['diverged_step']}: its {where['diverged_quantity']} is not finite"
    row.update(status="diverged", error=record.get("message") or message, **where)
    return expected or record.get("config")


def _column_order(trials: pd.DataFrame) -> list[str]:
    """Identity first, then results, per-epoch columns in epoch order, then the rest of the config."""
    head = ["trial_id", "arm", "status", "error", *DIVERGED_COLUMNS.values(), *IDENTITY, "teacher_key", *SCALARS]
    epoch_cols = sorted((c for c in trials if any(c.startswith(p + "_") for p, _ in PER_EPOCH.values())),
                        key=lambda c: (c.rsplit("_", 1)[0], int(c.rsplit("_", 1)[1])))
    head = [c for c in head if c in trials] + epoch_cols
    return head + [c for c in trials if c not in head]


def _number(value: Any) -> float:
    """JSON null (the writers' NaN) and non-numbers as NaN."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan


def _last_line(path: Path) -> str:
    """The last non-empty line of an error file: usually the exception message."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError as error:
        return f"{path.name} unreadable: {error}"
    return lines[-1][:300] if lines else "(empty error.txt)"


def _listed_trials(path: Path, sweep: Any) -> list[dict[str, Any]]:
    """sweep.json's trials, every id checked to be a plain folder name before any trial file is opened."""
    listed = sweep.get("trials") if isinstance(sweep, dict) else None
    if not isinstance(listed, list) or not all(isinstance(t, dict) and "trial_id" in t for t in listed):
        raise ReportError(f"{path / SWEEP_FILE}: has no list of trials with a 'trial_id' each; "
                          "expected the sweep.json written by `sublim sweep`")
    if not listed:
        raise ReportError(f"{path / SWEEP_FILE}: lists no trials; nothing to analyse")
    seen: set[str] = set()
    for trial in listed:
        trial_id = trial["trial_id"]
        if not isinstance(trial_id, str) or not TRIAL_ID_PATTERN.fullmatch(trial_id):
            raise ReportError(f"{path / SWEEP_FILE}: trial id {trial_id!r} is not a folder name under {TRIALS_DIR}/ "
                              "(letters, digits, '@', '.', '_', '+', '-'; no path separator); expected the "
                              "sweep.json written by `sublim sweep`")
        if trial_id in seen:
            raise ReportError(f"{path / SWEEP_FILE}: lists trial id {trial_id!r} twice; expected one entry per trial")
        seen.add(trial_id)
    return listed


def _load_sweep(path: Path) -> Results:
    sweep = _read_json(path / SWEEP_FILE)
    listed = _listed_trials(path, sweep)
    loader = _Loader()
    for trial in listed:
        loader.add(trial["trial_id"], trial.get("arm"), trial.get("config"), trial.get("teacher_key"),
                   path / TRIALS_DIR / trial["trial_id"])
    known = {trial["trial_id"] for trial in listed}
    strays = [p.name for p in (path / TRIALS_DIR).glob("*") if p.is_dir() and p.name not in known]
    if strays:
        loader.notes.append(f"{len(strays)} folder(s) under {TRIALS_DIR}/ not listed in {SWEEP_FILE} ignored")
    results = loader.results(path, str(sweep.get("name") or path.name), "sweep")
    results.sequential = sweep.get("sequential") if isinstance(sweep.get("sequential"), dict) else None
    return _checked(results)


def _load_run(path: Path) -> Results:
    loader = _Loader()
    loader.add(path.name, None, None, None, path)
    return _checked(loader.results(path, path.name, "run"))


def _checked(results: Results) -> Results:
    """Nothing to analyse without a completed trial: say so, with the first reason a trial gave none."""
    if results.completed.empty:
        trials = results.trials
        counts = ", ".join(f"{n} {status}" for status, n in trials["status"].value_counts().items())
        stopped = trials[trials["status"].isin(("failed", "diverged", "invalid"))]
        first = stopped.iloc[0] if len(stopped) else None
        why = "" if first is None else f"; first {first['status']} ({first['trial_id']}): {first['error']}"
        raise ReportError(f"{results.path}: no completed trial among {len(trials)} ({counts}); "
                          f"nothing to analyse{why}")
    return results
