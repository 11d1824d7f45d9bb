"""Reading a results folder into two tables: one row per trial, one row per optimizer step.

It reads files only (JSON and Parquet), so a report needs neither torch nor a running Ray, and it
accepts partial sweeps: every trial that `sweep.json` expects gets a row, with a status saying
whether it completed, stopped early, failed or is missing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sublim.core.files import ERROR_FILE, SUMMARY_FILE, SWEEP_FILE, TRACE_FILE
from sublim.core.mitigations import MITIGATIONS
from sublim.core.schema import TRACE_COLUMNS

from .errors import ReportError

TRIALS_DIR = "trials"

STATUSES = ("completed", "incomplete", "failed", "missing")
INIT_ORDER = ("shared", "independent")

SCALARS = ("teacher_acc", "student_acc_before", "student_acc", "trait_gain", "mean_alignment",
           "frac_positive_steps", "mean_applied_alignment", "epochs_done", "steps", "final_distill_loss",
           "teacher_seconds", "student_seconds", "seconds")
# summary list -> (column prefix, number of its first element): acc_epoch_0 is before distillation.
PER_EPOCH = {
    "acc_by_epoch": ("acc_epoch", 0),
    "alignment_by_epoch": ("alignment_epoch", 1),
    "frac_positive_by_epoch": ("frac_positive_epoch", 1),
    "applied_alignment_by_epoch": ("applied_alignment_epoch", 1),
}
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

    @property
    def completed(self) -> pd.DataFrame:
        """The trials every statistic is computed on: those that ran all their epochs."""
        return self.trials[self.trials["status"] == "completed"]


def load_results(path: str | Path) -> Results:
    """Load a sweep folder (`sweep.json` + `trials/`) or a single-run folder (`summary.json`)."""
    path = Path(path)
    expected = (f"expected a results folder holding {SWEEP_FILE} (from `sublim sweep`) "
                f"or {SUMMARY_FILE} (from `sublim run`)")
    if not path.is_dir():
        raise ReportError(f"{path}: no such folder; {expected}")
    if (path / SWEEP_FILE).is_file():
        return _load_sweep(path)
    if (path / SUMMARY_FILE).is_file():
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


class _Loader:
    """Collects trial rows, traces and what was wrong with them, then builds the two tables."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.traces: list[pd.DataFrame] = []
        self.lacking: Counter[str] = Counter()
        self.notes: list[str] = []

    def add(self, trial_id: str, arm: str | None, config: dict[str, Any] | None, teacher_key: str | None,
            folder: Path) -> None:
        """One trial: its status from the files in `folder`, its numbers from summary.json and trace."""
        row: dict[str, Any] = {"trial_id": trial_id, "arm": arm, "status": "missing", "error": None,
                               "teacher_key": teacher_key}
        summary = None
        if (folder / SUMMARY_FILE).is_file():
            try:
                summary = _read_json(folder / SUMMARY_FILE)
                if not isinstance(summary, dict):
                    raise ReportError(f"{folder / SUMMARY_FILE}: not a JSON object")
            except ReportError as error:
                row.update(status="failed", error=str(error))
                summary = None
        elif (folder / ERROR_FILE).is_file():
            row.update(status="failed", error=_last_line(folder / ERROR_FILE))
        if summary is not None:
            config = config or summary.get("config") or {}
            row["arm"] = row["arm"] or summary.get("arm")
            row["teacher_key"] = row["teacher_key"] or summary.get("teacher_key")
            row.update(self._summary_values(summary))
            done, planned = summary.get("epochs_done"), config.get("epochs")
            stopped_early = done is not None and planned is not None and done < planned
            row["status"] = "incomplete" if stopped_early else "completed"
            if not stopped_early:
                self._add_trace(trial_id, folder / TRACE_FILE)
        if not row["arm"]:
            self.lacking["arm label"] += 1
            row["arm"] = "unlabelled"
        for key in IDENTITY:
            if key not in (config or {}):
                self.lacking[f"config '{key}'"] += 1
        row.update({key: value for key, value in (config or {}).items() if key not in row})
        self.rows.append(row)

    def _summary_values(self, summary: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key in SCALARS:
            if key not in summary:
                self.lacking[f"summary.json '{key}'"] += 1
            values[key] = _number(summary.get(key))
        for key, (prefix, first) in PER_EPOCH.items():
            if key not in summary:
                self.lacking[f"summary.json '{key}'"] += 1
            for offset, value in enumerate(summary.get(key) or []):
                values[f"{prefix}_{first + offset}"] = _number(value)
        return values

    def _add_trace(self, trial_id: str, path: Path) -> None:
        if not path.is_file():
            self.lacking[TRACE_FILE] += 1
            return
        try:
            trace = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for a damaged file
            self.notes.append(f"{path}: unreadable trace ignored ({type(error).__name__}: {error})")
            return
        for column in TRACE_COLUMNS:
            if column not in trace:
                self.lacking[f"trace column '{column}'"] += 1
                trace[column] = np.nan
        self.traces.append(trace[list(TRACE_COLUMNS)].assign(trial_id=trial_id))

    def results(self, path: Path, name: str, kind: str) -> Results:
        trials = pd.DataFrame(self.rows)
        for key in IDENTITY:
            if key not in trials:
                trials[key] = np.nan
        trials["strength"] = pd.to_numeric(trials["strength"], errors="coerce")
        trials = trials[_column_order(trials)]
        steps = pd.concat(self.traces, ignore_index=True) if self.traces else pd.DataFrame(
            columns=[*TRACE_COLUMNS, "trial_id"])
        steps = steps.merge(trials[["trial_id", "arm", "seed"]], on="trial_id", how="left")
        steps = steps[["trial_id", "arm", "seed", *TRACE_COLUMNS]]
        warnings = [f"{what} absent in {count} trial(s); numbers that need it are left out"
                    for what, count in sorted(self.lacking.items())] + self.notes
        return Results(path=path, name=name, kind=kind, trials=trials, steps=steps, warnings=warnings)


def _column_order(trials: pd.DataFrame) -> list[str]:
    """Identity first, then results, per-epoch columns in epoch order, then the rest of the config."""
    head = ["trial_id", "arm", "status", "error", *IDENTITY, "teacher_key", *SCALARS]
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


def _load_sweep(path: Path) -> Results:
    sweep = _read_json(path / SWEEP_FILE)
    listed = sweep.get("trials") if isinstance(sweep, dict) else None
    if not isinstance(listed, list) or not all(isinstance(t, dict) and "trial_id" in t for t in listed):
        raise ReportError(f"{path / SWEEP_FILE}: has no list of trials with a 'trial_id' each; "
                          "expected the sweep.json written by `sublim sweep`")
    if not listed:
        raise ReportError(f"{path / SWEEP_FILE}: lists no trials; nothing to analyse")
    loader = _Loader()
    for trial in listed:
        trial_id = str(trial["trial_id"])
        loader.add(trial_id, trial.get("arm"), trial.get("config"), trial.get("teacher_key"),
                   path / TRIALS_DIR / trial_id)
    known = {str(trial["trial_id"]) for trial in listed}
    strays = [p.name for p in (path / TRIALS_DIR).glob("*") if p.is_dir() and p.name not in known]
    if strays:
        loader.notes.append(f"{len(strays)} folder(s) under {TRIALS_DIR}/ not listed in {SWEEP_FILE} ignored")
    return _checked(loader.results(path, str(sweep.get("name") or path.name), "sweep"))


def _load_run(path: Path) -> Results:
    loader = _Loader()
    loader.add(path.name, None, None, None, path)
    return _checked(loader.results(path, path.name, "run"))


def _checked(results: Results) -> Results:
    """Nothing to analyse without a completed trial: say so, with the first failure's message."""
    if results.completed.empty:
        trials = results.trials
        counts = ", ".join(f"{n} {status}" for status, n in trials["status"].value_counts().items())
        failed = trials[trials["status"] == "failed"]
        first = f"; first error ({failed.iloc[0]['trial_id']}): {failed.iloc[0]['error']}" if len(failed) else ""
        raise ReportError(f"{results.path}: no completed trial among {len(trials)} ({counts}); "
                          f"nothing to analyse{first}")
    return results
