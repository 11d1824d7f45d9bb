"""`sublim sweep SPEC --until-resolved --max-seeds N [--wave K]`: the spec's arms over seeds in waves of K,
stopping when every primary directional test (at every level of the spec's axes) is resolved (supported,
contradicted, or dropped as futile) or N seeds are reached. A wave's spec keeps the axes: it adds its seeds to
every level.

The stopping rule is a group-sequential design (sublim.analysis.sequential) planned before the first wave
from the spec's arms and stored in sweep.json with its boundaries, so looking after every wave keeps the
family-wise error rate at alpha. Each wave grows the results folder (finished trials are kept), so an
interrupted run, started again, replays the finished waves' decisions from their results with the stored
boundaries and continues with the next wave. A folder planned under an older version of the rule is not
continued (its record is still read by the report).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd
import yaml

from sublim.analysis import sequential
from sublim.analysis.axes import at_level, levels
from sublim.analysis.contrasts import arm_frame, plan as plan_rows
from sublim.analysis.descriptives import trial_metrics
from sublim.analysis.inference import MIN_SEEDS
from sublim.analysis.errors import ReportError
from sublim.analysis.load import load_results
from sublim.core.records import sequential_problem
from sublim.sweeps.results import ResultsFolder, SweepError
from sublim.sweeps.spec import SweepSpec

if TYPE_CHECKING:
    from sublim.sweeps.tune_run import SweepOutcome


def plan(spec: SweepSpec, max_seeds: int, wave: int | None) -> tuple[list[int], sequential.Design]:
    """All seeds the sweep may use (from the spec's first) and the design over its looks, its family counted
    from the spec's arms and epochs (the tests table's rows before any data) at every level of its axes."""
    wave = len(spec.seeds) if wave is None else wave
    if max_seeds < MIN_SEEDS or wave < 1 or wave > max_seeds:
        raise SweepError(f"--max-seeds {max_seeds} --wave {wave} is not allowed; need max-seeds >= {MIN_SEEDS} and "
                         "1 <= wave <= max-seeds (wave defaults to the spec's number of seeds)")
    looks = sorted({min(n, max_seeds) for n in range(max(wave, MIN_SEEDS), max_seeds + wave, wave)})
    grid = pd.DataFrame([{"arm": c.arm, "mitigation": c.mitigation, "strength": c.strength,
                          "student_init": c.student_init, "epochs": c.epochs,
                          **{name: getattr(c, name) for name in spec.axes}} for c in (t.config for t in spec.trials)])
    arms = arm_frame(grid)  # the same at every level: the grid is seeds x arms x the axes' product
    rows = [dataclasses.replace(p, level=tuple(level.items())) for level in levels(grid, spec.axes)
            for p in plan_rows(arms, int(at_level(grid, level)["epochs"].iloc[0]))]
    try:
        design = sequential.design(rows, looks, set(arms["arm"]))
    except ValueError as error:
        raise SweepError(f"--until-resolved: {error} (the spec's arms: {', '.join(arms['arm'])})") from None
    return list(range(spec.seeds[0], spec.seeds[0] + max_seeds)), design


def run_in_waves(args: argparse.Namespace, spec: SweepSpec, folder: ResultsFolder,
                 run_wave: Callable[[SweepSpec, str], Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run wave after wave (`run_wave(spec, spec_text)` runs one) until the rule stops; the sequential record,
    which sweep.json keeps up to date after every wave."""
    seeds, design = plan(spec, args.max_seeds, args.wave)
    stored = folder.sequential() if folder.exists() else None
    if stored is not None and sequential_problem(stored):
        raise SweepError(f"{folder.path}: sweep.json's sequential record is damaged ({sequential_problem(stored)}); "
                         "choose another --name")
    planned = stored["design"] if stored is not None else None
    if planned is not None:
        if not sequential.is_current(planned):
            raise SweepError(f"{folder.path} was planned under an older version of the stopping rule "
                             f"({planned.get('method', 'a per-test design')}); this version cannot continue its "
                             "waves (the report still reads them): choose another --name")
        if {k: planned.get(k) for k in design.plan()} != design.plan():
            raise SweepError(f"{folder.path} was planned with {planned.get('seeds')} seeds per look and "
                             f"{planned.get('family_size', 'other')} primary tests; a design cannot change once waves "
                             "have run: repeat its --max-seeds and --wave, its arms and its axes, or choose another "
                             "--name")
        try:
            design = sequential.Design.from_json(planned, list(design.rows))  # the stored boundaries decide
        except (KeyError, TypeError, ValueError) as error:
            raise SweepError(f"{folder.path}: the design in sweep.json is damaged ({type(error).__name__}: "
                             f"{error}); choose another --name") from None
    log(design.describe())
    record = sequential.new_record(design)
    for j, n in enumerate(design.seeds):
        ran = len({t["config"]["seed"] for t in folder.recorded_trials()}) if folder.exists() else 0
        # A replayed wave keeps every seed the folder holds (a sweep only grows); its look uses its own seeds.
        wave_spec = SweepSpec.from_dict({**spec.to_dict(), "seeds": seeds[:max(n, ran)]}, f"{spec.name} (wave {j + 1})")
        run_wave(wave_spec, yaml.safe_dump(wave_spec.to_dict(), sort_keys=False))
        try:
            results = load_results(folder.path)
        except ReportError as error:  # no trial has a result (every one diverged, say): more seeds would not help
            record["stopped"] = f"nothing to judge after wave {j + 1}: {error}"
            folder.record_sequential(record)
            break
        completed = trial_metrics(results.completed, results.steps)
        tests = sequential.advance(record, design, completed[completed["seed"].isin(seeds[:n])], j)
        log(f"wave {j + 1}/{len(design.seeds)}, {n} seeds:\n" + "\n".join(f"  {sequential.line(t)}" for t in tests))
        folder.record_sequential(record)
        if record["stopped"]:
            break
    log(f"stopped: {record['stopped']}")
    return record


def run_until_resolved(args: argparse.Namespace, name: str, spec: SweepSpec, folder: ResultsFolder,
                       run_sweep: Callable[[SweepSpec, str], SweepOutcome]) -> SweepOutcome:
    """`run_in_waves` with each wave a sweep run (`run_sweep(spec, spec_text)`); the last wave's outcome."""
    outcomes: list[SweepOutcome] = []

    def run_wave(wave_spec: SweepSpec, text: str) -> None:
        if folder.exists():
            folder.added_by(wave_spec)  # a conflicting folder fails before Ray starts
        outcomes.append(run_sweep(wave_spec, text))

    run_in_waves(args, spec, folder, run_wave)
    return outcomes[-1]
