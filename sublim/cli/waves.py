"""`sublim sweep SPEC --until-resolved --max-seeds N [--wave K]`: the spec's arms over seeds in waves of K,
stopping when every claim's primary test is resolved or N seeds are reached.

The stopping rule is a group-sequential design (sublim.analysis.sequential) planned before the first
wave and stored in sweep.json, so looking after every wave keeps each test's error rate at alpha. Each
wave grows the results folder (finished trials are kept), so an interrupted run, started again, replays
the finished waves' decisions from their results and continues with the next wave.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable

import yaml

from sublim.analysis.load import load_results
from sublim.analysis.sequential import SequentialDesign, look, obrien_fleming
from sublim.analysis.stats import ALPHA
from sublim.sweeps.results import ResultsFolder, SweepError
from sublim.sweeps.spec import SweepSpec

if TYPE_CHECKING:
    from sublim.sweeps.tune_run import SweepOutcome


def plan(spec: SweepSpec, max_seeds: int, wave: int | None) -> tuple[list[int], SequentialDesign]:
    """All seeds the sweep may use (from the spec's first) and the design over its looks."""
    wave = len(spec.seeds) if wave is None else wave
    if max_seeds < 3 or wave < 1 or wave > max_seeds:
        raise SweepError(f"--max-seeds {max_seeds} --wave {wave} is not allowed; need max-seeds >= 3 and "
                         "1 <= wave <= max-seeds (wave defaults to the spec's number of seeds)")
    looks = sorted({min(n, max_seeds) for n in range(max(wave, 3), max_seeds + wave, wave)})
    seeds = list(range(spec.seeds[0], spec.seeds[0] + max_seeds))
    return seeds, obrien_fleming(looks, ALPHA)


def run_in_waves(args: argparse.Namespace, spec: SweepSpec, folder: ResultsFolder,
                 run_wave: Callable[[SweepSpec, str], Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run wave after wave (`run_wave(spec, spec_text)` runs one) until the rule stops; the sequential record,
    which sweep.json keeps up to date after every wave."""
    seeds, design = plan(spec, args.max_seeds, args.wave)
    planned = (folder.sequential() or {}).get("design") if folder.exists() else None
    if planned is not None and planned != design.to_json():
        raise SweepError(f"{folder.path} was planned with {planned['seeds']} seeds per look; a design cannot change "
                         "once waves have run: repeat its --max-seeds and --wave, or choose another --name")
    log(f"{design.describe()}; a test is resolved when it crosses its look's boundary")
    record: dict[str, Any] = {"design": design.to_json(), "waves": [], "stopped": None}
    for j, n in enumerate(design.seeds):
        ran = len({t["config"]["seed"] for t in folder.recorded_trials()}) if folder.exists() else 0
        # A replayed wave keeps every seed the folder holds (a sweep only grows); its look uses its own seeds.
        wave_spec = SweepSpec.from_dict({**spec.to_dict(), "seeds": seeds[:max(n, ran)]}, f"{spec.name} (wave {j + 1})")
        run_wave(wave_spec, yaml.safe_dump(wave_spec.to_dict(), sort_keys=False))
        tests = look(load_results(folder.path), seeds[:n], design, j)
        record["waves"].append({"look": j + 1, "seeds": n, "tests": [t.to_json() for t in tests]})
        log(f"wave {j + 1}/{len(design.seeds)}, {n} seeds:\n" + "\n".join(f"  {t.line()}" for t in tests))
        open_ = [t for t in tests if t.status == "open"]
        if not any(t.resolved for t in tests) and j == 0 and not open_:
            record["stopped"] = "no claim's primary test can be computed from the spec's arms"
        elif not open_ and any(t.resolved for t in tests):  # those the arms cannot test stay undetermined
            record["stopped"] = f"every claim's primary test resolved after {n} seeds"
        elif j == len(design.seeds) - 1:
            record["stopped"] = f"the planned maximum of {n} seeds reached with {len(open_)} test(s) still open"
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
