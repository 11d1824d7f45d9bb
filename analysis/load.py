"""Reading a results folder into two tables: one row per trial, one row per optimizer step.

It reads files only (JSON and Parquet), so a report needs neither torch nor a running Ray, and it
accepts partial sweeps: every trial that `sweep.json` expects gets a row, with a status saying
whether it completed, stopped early, diverged, left numbers that are no result (invalid), failed or
is missing. Only completed trials ever reach a statistic.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sublim.core.config import TrialConfig, axis_values_problem
from sublim.core.files import (DIVERGED_FILE, SUMMARY_FILE, SWEEP_FILE, SWEEP_NAME_PATTERN, TRIAL_ID_PATTERN,
                               TRIALS_DIR, read_json)
from sublim.core.mitigations import BUILT_IN, remember
from sublim.core.records import sequential_problem
from sublim.core.schema import SUMMARY_COUNTS, SUMMARY_FIELDS, TRACE_COLUMNS
from sublim.core.trial_folder import ConfigChecks, read_trial

from .errors import ReportError

INIT_ORDER = ("shared", "independent")

# summary list -> (column prefix, number of its first element): acc_epoch_0 is before distillation.
PER_EPOCH = {
    "acc_by_epoch": ("acc_epoch", 0),
    "alignment_by_epoch": ("alignment_epoch", 1),
    "frac_positive_by_epoch": ("frac_positive_epoch", 1),
    "applied_alignment_by_epoch": ("applied_alignment_epoch", 1),
    "update_alignment_by_epoch": ("update_alignment_epoch", 1),
}
NOT_NUMBERS = ("arm", "teacher_key", "versions", "config", "ran_on")
SCALARS = tuple(name for name in SUMMARY_FIELDS if name not in PER_EPOCH and name not in NOT_NUMBERS)
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
    axes: dict[str, list[Any]] = field(default_factory=dict)  # the spec's axes: each varied setting's values

    @property
    def completed(self) -> pd.DataFrame:
        """The trials every statistic is computed on: those that ran all their epochs to finite numbers."""
        return self.trials[self.trials["status"] == "completed"]

    @property
    def epochs(self) -> pd.DataFrame:
        """The per-epoch columns of `trials` (acc_epoch_0, alignment_epoch_1, ...) long: one row per trial and epoch
        (0 = before distillation, when only `acc` is known), a column per metric, beside the trial's identity."""
        metrics = []
        for prefix, _ in PER_EPOCH.values():
            columns = [c for c in self.trials if c.startswith(prefix + "_") and c.rsplit("_", 1)[1].isdigit()]
            metric = self.trials[["trial_id", *columns]].melt("trial_id", var_name="epoch",
                                                               value_name=prefix.removesuffix("_epoch"))
            metrics.append(metric.astype({"epoch": str}).assign(epoch=lambda m: m["epoch"].str.rsplit("_", n=1).str[1]
                                                                .astype(int)).set_index(["trial_id", "epoch"]))
        long = pd.concat(metrics, axis=1).reset_index().sort_values("epoch", kind="stable")
        return self.trials[["trial_id", "arm", "status", *IDENTITY]].merge(long, on="trial_id", how="left")


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
        rank(list(BUILT_IN), firsts.at[arm, "mitigation"]), str(firsts.at[arm, "mitigation"]),  # then plugins, by name
        _sortable(firsts.at[arm, "strength"]),
        rank(list(INIT_ORDER), firsts.at[arm, "student_init"]),
        arm,
    ))


def _sortable(value: Any) -> float:
    number = pd.to_numeric(value, errors="coerce")
    return float(number) if pd.notna(number) else np.inf


def _read_object(path: Path) -> dict[str, Any]:
    """sweep.json as a JSON object (a regular file, bounded in size and nesting), or one line saying why not."""
    try:
        value = read_json(path)
    except (OSError, ValueError) as error:  # UnreadableFile is a ValueError
        raise ReportError(f"{path}: unreadable ({error}); expected a JSON file written by sublim") from None
    if not isinstance(value, dict):
        raise ReportError(f"{path}: not a JSON object")
    return value


class _Loader:
    """Collects trial rows, traces and what was wrong with them, then builds the two tables."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.traces: list[pa.Table] = []
        self.trace_ids: list[str] = []  # each trace's trial, a column added once to all of them
        self.lacking: Counter[str] = Counter()
        self.notes: list[str] = []
        self.checks = ConfigChecks()

    def add(self, trial_id: str, expected: dict[str, Any] | None, folder: Path) -> None:
        """One trial, as the results folder's one check (`read_trial`) finds it; `expected` is sweep.json's
        config of it. Only a completed trial's numbers and trace are kept; its arm and teacher key are its
        validated config's, never a label from the folder."""
        found = read_trial(folder, expected, self.checks)
        checked = found.trial_config
        row: dict[str, Any] = {"trial_id": trial_id, "arm": checked and checked.arm, "status": found.status,
                               "error": found.problem, "teacher_key": checked and checked.teacher_key}
        if found.record is not None:
            row.update({column: found.record.get(key) for key, column in DIVERGED_COLUMNS.items()})
            if not isinstance(row["diverged_step"], int) or isinstance(row["diverged_step"], bool):
                row["diverged_step"] = None  # a damaged record: the step is unknown, the status stands
            row["error"] = found.record.get("message") or (
                f"diverged at step {row['diverged_step']}: its {row['diverged_quantity']} is not finite")
        if found.summary is not None and found.status in ("completed", "incomplete"):
            row.update(self._summary_values(found.summary))
        if found.trace is not None and found.is_result:  # kept in Arrow: one pandas table of all traces at the end
            self.lacking.update(f"trace column '{c}'" for c in set(TRACE_COLUMNS) - set(found.trace.schema.names))
            self.traces.append(found.trace)
            self.trace_ids.append(trial_id)
        config = found.config or {}
        if not row["arm"]:
            self.lacking["arm label"] += 1
            row["arm"] = "unlabelled"
        for key in IDENTITY:
            if key not in config:
                self.lacking[f"config '{key}'"] += 1
        row.update({key: value for key, value in config.items() if key not in row})
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
            values_list = summary.get(key)
            for offset, value in enumerate(values_list if isinstance(values_list, list) else []):
                values[f"{prefix}_{first + offset}"] = _number(value)
        return values

    def results(self, path: Path, name: str, kind: str) -> Results:
        trials = pd.DataFrame(self.rows)
        for key in (*IDENTITY, *DIVERGED_COLUMNS.values()):
            if key not in trials:
                trials[key] = np.nan
        trials["strength"] = pd.to_numeric(trials["strength"], errors="coerce")
        trials["diverged_step"] = pd.to_numeric(trials["diverged_step"], errors="coerce").astype("Int64")
        for key in SUMMARY_COUNTS:  # integers, absent (NA) where a trial has no whole count
            counts = pd.to_numeric(trials[key], errors="coerce") if key in trials else pd.Series(np.nan, trials.index)
            trials[key] = counts.where((counts % 1 == 0) & (counts.abs() < 2**53)).astype("Int64")
        trials = trials[_column_order(trials)]
        ids = pa.array(np.repeat(self.trace_ids, [trace.num_rows for trace in self.traces]).astype(str), pa.string())
        steps = pa.concat_tables(self.traces, promote_options="permissive").append_column("trial_id", ids).to_pandas() \
            if self.traces else pd.DataFrame(columns=["trial_id"])
        steps = steps.merge(trials[["trial_id", "arm", *IDENTITY]], on="trial_id", how="left")
        steps = steps.reindex(columns=["trial_id", "arm", *IDENTITY, *TRACE_COLUMNS])  # a column no trace has: NaN
        warnings = [f"{what} absent in {count} trial(s); numbers that need it are left out"
                    for what, count in sorted(self.lacking.items())] + self.notes
        return Results(path=path, name=name, kind=kind, trials=trials, steps=steps, warnings=warnings)


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
    sweep = _read_object(path / SWEEP_FILE)
    listed = _listed_trials(path, sweep)
    loader = _Loader()
    loader.notes += remember(sweep.get("mitigations"))  # plugins' facts (never code), before the configs naming them
    for trial in listed:
        loader.add(trial["trial_id"], trial.get("config"), path / TRIALS_DIR / trial["trial_id"])
    known = {trial["trial_id"] for trial in listed}
    strays = [p.name for p in (path / TRIALS_DIR).glob("*") if p.is_dir() and p.name not in known]
    if strays:
        loader.notes.append(f"{len(strays)} folder(s) under {TRIALS_DIR}/ not listed in {SWEEP_FILE} ignored")
    name = sweep.get("name") if isinstance(sweep.get("name"), str) and SWEEP_NAME_PATTERN.fullmatch(sweep["name"]) \
        else path.name  # a name that is not a sweep's is not shown
    results = loader.results(path, name, "sweep")
    problem = sequential_problem(sweep["sequential"]) if sweep.get("sequential") is not None else None
    results.sequential = None if problem else sweep.get("sequential")
    results.warnings += [f"{SWEEP_FILE}'s sequential record is not used ({problem})"] if problem else []
    spec = sweep.get("spec")
    results.axes = _axes(spec.get("axes") if isinstance(spec, dict) else None, results)
    return _checked(results)


def _axes(declared: Any, results: Results) -> dict[str, list[Any]]:
    """The spec's axes (sweep.json's spec) where each names a trial setting the trials record, with a list of values; else none
    (with a loading note), and the report treats the folder as one level."""
    if declared is None:
        return {}
    settings = {f.name for f in dataclasses.fields(TrialConfig)} - set(IDENTITY)
    if not (isinstance(declared, dict) and all(isinstance(name, str) and name in settings and name in results.trials
                                               and axis_values_problem(name, values, results.trials[name]) is None
                                               for name, values in declared.items())):
        results.warnings.append(f"{SWEEP_FILE}'s axes are not a mapping from recorded trial settings to lists of "
                                "values; the report treats the folder as one level")
        return {}
    return dict(declared)


def _load_run(path: Path) -> Results:
    loader = _Loader()
    try:  # the facts of a plugin's mitigation `sublim run` recorded (never code); none of an earlier folder's apply
        summary = read_json(path / SUMMARY_FILE)
    except (OSError, ValueError):  # unreadable here: the trial is invalid, and says why
        summary = None
    loader.notes += remember(summary.get("mitigations") if isinstance(summary, dict) else None)
    loader.add(path.name, None, path)
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
