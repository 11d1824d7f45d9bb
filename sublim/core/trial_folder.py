"""What a trial folder must hold to count as a result: one check, read by the sweep (which rebuilds anything
short of a result) and by the report (which lists it, with the reason, and never feeds it to a statistic).

Files are read only when they are regular files of a sane size (`files.read_regular`). A summary must belong
to the trial's config, hold every field with numbers in their ranges, and its trace must have the trace's
schema, one row per step, steps 0, 1, ... and epochs 1, 2, ... in equal runs, and cosines within [-1, 1].
Fields and columns newer than a folder (update alignment) may be absent: numbers missing, not a damaged trial.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .config import ConfigError, TrialConfig
from .files import DIVERGED_FILE, ERROR_FILE, SUMMARY_FILE, SWEEP_FILE, TRACE_FILE, UnreadableFile, read_json, read_regular
from .schema import LAYER_NAMES, SUMMARY_FIELDS, TRACE_SCHEMA
from .text import short_repr

# completed: a result; incomplete: stopped before its last epoch; diverged: stopped on a non-finite number
# (diverged.json); invalid: files that are no result of this trial; failed: error.txt; missing: nothing there.
STATUSES = ("completed", "incomplete", "diverged", "invalid", "failed", "missing")
OPTIONAL_FIELDS = ("mean_update_alignment", "update_alignment_by_epoch", "ran_on")
OPTIONAL_COLUMNS = ("update_alignment", "update_trait_change")
COSINE_COLUMNS = ("alignment", "applied_alignment", "update_alignment", *(f"alignment_{n}" for n in LAYER_NAMES))
UNIT = (0.0, 1.0)
COSINE = (-1.0, 1.0)
# summary number -> the range it must lie in; null (a NaN when written) is allowed only outside REQUIRED
RANGES: dict[str, tuple[float, float]] = {
    "teacher_acc": UNIT, "student_acc_before": UNIT, "student_acc": UNIT, "trait_gain": COSINE,
    "mean_alignment": COSINE, "frac_positive_steps": UNIT, "mean_applied_alignment": COSINE,
    "mean_update_alignment": COSINE, "final_distill_loss": (0.0, 1e6), "teacher_seconds": (0.0, 1e9),
    "student_seconds": (0.0, 1e9), "seconds": (0.0, 1e9),
}
LIST_RANGES = {"acc_by_epoch": UNIT, "alignment_by_epoch": COSINE, "frac_positive_by_epoch": UNIT,
               "applied_alignment_by_epoch": COSINE, "update_alignment_by_epoch": COSINE}
REQUIRED = ("trait_gain", "mean_alignment", "student_acc", "student_acc_before", "teacher_acc")
ROUNDING = 1e-6  # cosines computed in float32 may stray this far past ±1


def expected_steps(config: Mapping[str, Any]) -> int:
    """Optimizer steps of a full trial: every epoch is one pass over the noise set in batches."""
    return int(config["epochs"]) * math.ceil(int(config["noise_count"]) / int(config["batch_size"]))


@dataclass
class TrialFiles:
    """What a trial folder holds, as verified: its status, why it is no result (if so) and what was read."""

    status: str
    problem: str | None = None
    summary: dict[str, Any] | None = None
    trace: pa.Table | None = None
    record: dict[str, Any] | None = None  # diverged.json
    config: dict[str, Any] | None = None  # the trial's config (sweep.json's, else the files' own), valid or None
    trial_config: TrialConfig | None = None  # `config` as read: its arm and teacher key computed, never a folder's

    @property
    def is_result(self) -> bool:
        return self.status == "completed"


class ConfigChecks:
    """Trial configs read with the validation a spec gets, once per distinct config but its seed, as a sweep's grid
    checks one config per point: a folder's configs differ in their seed only, per arm. One per reading of a folder,
    since what is valid depends on the plugins it records."""

    def __init__(self) -> None:
        self._unseeded: dict[str, TrialConfig | str] = {}  # the config, or why it is none

    def read(self, config: dict[str, Any]) -> TrialConfig:
        """`config` as a TrialConfig, or the ConfigError saying why it is none."""
        unseeded = {key: value for key, value in config.items() if key != "seed"}
        key = json.dumps(unseeded, sort_keys=True)  # JSON values: equal text, equal config
        if key not in self._unseeded:
            try:
                self._unseeded[key] = TrialConfig.from_dict(unseeded)
            except ConfigError as error:
                self._unseeded[key] = str(error)
        checked = self._unseeded[key]
        if isinstance(checked, str):
            raise ConfigError(checked)
        return checked.with_seed(config["seed"]) if "seed" in config else checked

    def problem(self, config: Any, where: str) -> str | None:
        """Why `config`, read from the file `where`, is no trial config, or None."""
        if config is None:
            return f"{where} holds no trial config"
        if not isinstance(config, dict):
            return f"{where} holds a trial config that is not a mapping"
        try:
            self.read(config)
        except ConfigError as error:
            return f"{where} holds a trial config that is not allowed ({error})"
        return None


def read_trial(folder: Path, config: Mapping[str, Any] | None, checks: ConfigChecks | None = None) -> TrialFiles:
    """Verify `folder` against the trial's `config` (sweep.json's record of it; None for a `sublim run` folder,
    whose files then say which config they hold), each config read by `checks` (a reader's of the whole folder).
    diverged.json is read first, as the sweep writes it last."""
    checks = checks or ConfigChecks()
    found = _read_trial(folder, config, checks)
    found.trial_config = checks.read(found.config) if found.config is not None else None
    return found


def _read_trial(folder: Path, config: Mapping[str, Any] | None, checks: ConfigChecks) -> TrialFiles:
    problem = checks.problem(config, SWEEP_FILE) if config is not None else None
    if problem:  # checked before any value of it is used (a batch size of 0, a string for a number)
        return TrialFiles("invalid", problem)
    expected = dict(config) if config is not None else None
    if folder.is_symlink():
        return TrialFiles("invalid", f"{folder.name} is a symbolic link; never followed", config=expected)
    if os.path.lexists(folder / DIVERGED_FILE):  # lexists: a link there is reported, never followed
        return _diverged(folder, expected, checks)
    if os.path.lexists(folder / SUMMARY_FILE) or os.path.lexists(folder / TRACE_FILE):
        return _finished(folder, expected, checks)
    if os.path.lexists(folder / ERROR_FILE):
        return TrialFiles("failed", _last_line(folder / ERROR_FILE), config=expected)
    return TrialFiles("missing", config=expected)


def _object(path: Path) -> dict[str, Any] | str:
    """A JSON object from `path`, or why there is none."""
    try:
        value = read_json(path)
    except UnreadableFile as error:
        return str(error)
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError) as error:
        return f"{path.name} does not parse ({type(error).__name__})"
    return value if isinstance(value, dict) else f"{path.name} is not a JSON object"


def _foreign(held: dict[str, Any], expected: dict[str, Any] | None, name: str, checks: ConfigChecks) -> str | None:
    """Why the file `name` holding `held` is not of the trial `expected` (sweep.json's config; None for a run
    folder, whose files must hold a valid config of their own), or None."""
    if expected is None:
        return checks.problem(held.get("config"), name)
    if held.get("config") == expected:
        return None
    if held.get("config") is None:
        return f"{name} holds no trial config, while {SWEEP_FILE} records one for this trial"
    return f"{name} belongs to another config than {SWEEP_FILE} records for this trial"


def _diverged(folder: Path, expected: dict[str, Any] | None, checks: ConfigChecks) -> TrialFiles:
    record = _object(folder / DIVERGED_FILE)
    if isinstance(record, str):
        return TrialFiles("invalid", record, config=expected)
    problem = _foreign(record, expected, DIVERGED_FILE, checks)
    config = expected if expected is not None else None if problem else record["config"]
    return TrialFiles("invalid" if problem else "diverged", problem, record=record, config=config)


def _number_problem(name: str, value: Any, limits: tuple[float, float], required: bool) -> str | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name} is {_shown(value)}, not a number"
    if not (isinstance(value, int) or math.isfinite(value)) or not limits[0] - ROUNDING <= value <= limits[1] + ROUNDING:
        return f"{name} is {_shown(value)}, outside [{limits[0]:g}, {limits[1]:g}]"
    return None


def _shown(value: Any) -> str:
    return "null" if value is None else short_repr(value)


def summary_problem(summary: dict[str, Any], config: dict[str, Any]) -> str | None:
    """Why a summary is no complete result of `config`, or None; 'incomplete: ...' when it stopped early."""
    missing = [name for name in SUMMARY_FIELDS if name not in summary and name not in OPTIONAL_FIELDS]
    if missing:
        return f"{SUMMARY_FILE} lacks {', '.join(missing)}"
    for name, limits in RANGES.items():
        problem = _number_problem(name, summary.get(name), limits, name in REQUIRED)
        if problem:
            return f"{SUMMARY_FILE}: {problem}"
    epochs, done, steps = config.get("epochs"), summary["epochs_done"], summary["steps"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (epochs, done, steps)):
        return f"{SUMMARY_FILE}: epochs_done and steps must be whole numbers"
    if done < epochs:
        return f"incomplete: {done} of {epochs} epochs"
    if done != epochs or steps != expected_steps(config):
        return (f"{SUMMARY_FILE} holds {steps} steps of {done} epochs, expected {expected_steps(config)} of "
                f"{epochs}")
    for name, limits in LIST_RANGES.items():
        values = summary.get(name)
        if values is None and name in OPTIONAL_FIELDS:
            continue
        length = epochs + 1 if name == "acc_by_epoch" else epochs
        if not isinstance(values, list) or len(values) != length:
            return f"{SUMMARY_FILE}: {name} is not a list of {length} numbers"
        for value in values:
            problem = _number_problem(name, value, limits, name not in OPTIONAL_FIELDS)
            if problem:
                return f"{SUMMARY_FILE}: {problem}"
    return None


def trace_problem(trace: pa.Table, config: dict[str, Any]) -> str | None:
    """Why a trace is no full trace of `config`, or None: schema (newer columns may be absent), one row per
    step in order, epochs in equal runs, cosines within [-1, 1] and a finite alignment."""
    names = trace.schema.names
    expected = [(f.name, f.type) for f in TRACE_SCHEMA if f.name not in OPTIONAL_COLUMNS or f.name in names]
    if [(f.name, f.type) for f in trace.schema] != expected:
        return f"{TRACE_FILE} holds columns of another schema than the trace's (names, order or types)"
    steps = expected_steps(config)
    if trace.num_rows != steps:
        return f"{TRACE_FILE} holds {trace.num_rows} rows, expected {steps} steps"
    step = trace.column("step").to_numpy()
    per_epoch = steps // int(config["epochs"])
    if not np.array_equal(step, np.arange(steps)):
        return f"{TRACE_FILE}: steps are not 0 to {steps - 1} in order"
    if not np.array_equal(trace.column("epoch").to_numpy(), step // per_epoch + 1):
        return f"{TRACE_FILE}: epochs are not 1 to {config['epochs']} in runs of {per_epoch} steps"
    for name in COSINE_COLUMNS:
        if name not in trace.schema.names:
            continue
        values = trace.column(name).to_numpy(zero_copy_only=False)
        finite = np.isfinite(values)
        if name == "alignment" and not finite.all():
            return (f"{TRACE_FILE}: alignment not finite at {int((~finite).sum())} of {steps} steps (first at step "
                    f"{int(np.argmin(finite))})")
        if (np.abs(values[finite]) > 1 + ROUNDING).any():
            return f"{TRACE_FILE}: {name} outside [-1, 1]"
    return None


def _finished(folder: Path, expected: dict[str, Any] | None, checks: ConfigChecks) -> TrialFiles:
    summary = _object(folder / SUMMARY_FILE)
    if isinstance(summary, str):
        return TrialFiles("invalid", summary, config=expected)
    problem = _foreign(summary, expected, SUMMARY_FILE, checks)
    if problem and expected is None:
        return TrialFiles("invalid", problem, summary=summary)
    config = expected if expected is not None else summary["config"]
    problem = problem or summary_problem(summary, config)
    if problem and problem.startswith("incomplete"):
        return TrialFiles("incomplete", problem, summary=summary, config=config)
    if problem:
        return TrialFiles("invalid", problem, summary=summary, config=config)
    try:
        # ParquetFile in one thread, not read_table: its dataset layer and threads cost more than a small trace
        trace = pq.ParquetFile(pa.BufferReader(read_regular(folder / TRACE_FILE))).read(use_threads=False)
    except UnreadableFile as error:
        return TrialFiles("invalid", str(error), summary=summary, config=config)
    except FileNotFoundError:
        return TrialFiles("invalid", f"{TRACE_FILE} is missing", summary=summary, config=config)
    except Exception as error:  # pyarrow raises several types for a damaged file
        return TrialFiles("invalid", f"{TRACE_FILE} does not read ({type(error).__name__})", summary=summary,
                          config=config)
    problem = trace_problem(trace, config)
    return TrialFiles("invalid" if problem else "completed", problem, summary=summary, trace=trace, config=config)


def _last_line(path: Path) -> str:
    """The last non-empty line of an error file (usually the exception's message), at most 300 characters."""
    try:
        text = read_regular(path, 1 << 20).decode("utf-8", errors="replace")
    except (OSError, UnreadableFile) as error:
        return f"{path.name} unreadable: {error}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else f"(empty {ERROR_FILE})"
