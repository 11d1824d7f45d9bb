"""The sweep on Ray: every trial as a Tune function trainable; a seed's first trial trains its teacher.

Trials get MNIST from Ray's object store (no trial reads the dataset from disk), share teachers and
write their epoch checkpoints and outputs through the results folder (see results.py and worker.py).
A sweep continues from those alone: each invocation is a fresh Tune run of the trials still pending,
so nothing Tune saved (pickles included) is ever read back.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback, TBXLoggerCallback
from ray.tune.search import Searcher
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from sublim.core.files import ERROR_FILE, PROFILE_FILE, DiskFull, write_json
from sublim.core.mnist import Mnist

from .profile import SweepProfile, trial_timings
from .cost import student_work, trial_costs
from .progress import SweepProgress, trial_id_of
from .results import ResultsFolder
from .spec import GridTrial, SweepSpec
from .target_store import TargetStore
from .trackers import tracker_callbacks

MAX_FAILURES = 3  # retries of a trial (e.g. its node went away) before it counts as errored
TARGETS_SHARE = 0.25  # of the object store, at most, for the seeds' distillation targets (oldest dropped first)


@dataclass(frozen=True)
class TrialInputs:
    """What every trial receives: a ref to MNIST in the object store, its threads, the sweep's target store, and the
    results folder."""

    mnist: ray.ObjectRef
    threads: int
    targets: ray.actor.ActorHandle  # a TargetStore: each seed's distillation targets, built once for the sweep
    folder: str  # every node mounts it at this path: trials write their checkpoints and outputs there


def trainable(config: dict[str, Any], inputs: TrialInputs) -> None:
    """Tune's function trainable: the trial itself is in worker.py, which only Ray's worker processes import (it
    loads torch; the driver never does)."""
    from .worker import run_trial

    run_trial(config, inputs)


def launch_order(trials: list[GridTrial]) -> list[GridTrial]:
    """The first trial of every teacher (one per seed, and per value of a teacher's axis), then the rest, longest
    first so that a sweep ends on its shortest trials: the widest or longest students (their FLOPs) first, then
    seed by seed, within a seed the arms that add a loss term (a second backward pass) first."""
    costly_first = sorted(trials, key=lambda t: (-student_work(t.config), t.config.seed, not t.config.adds_loss))
    firsts = list({t.config.teacher_key: t for t in reversed(costly_first)}.values())[::-1]
    chosen = {t.trial_id for t in firsts}
    return firsts + [t for t in costly_first if t.trial_id not in chosen]


def tune_configs(trials: list[GridTrial]) -> list[dict[str, Any]]:
    """Each trial's config as Tune holds it (progress.trial_id_of reads it back), in launch order."""
    return [{"trial": {"trial_id": t.trial_id, "config": t.config.to_dict()}} for t in launch_order(trials)]


class InLaunchOrder(Searcher):
    """Tune's search algorithm for a fixed list of trial configs: each trial Tune creates gets the next one. Tune's
    own grid_search copies the whole grid for every trial it creates, all of them before the first starts: 12 s of
    driver time before the first of 1,000 trials, 2 min before the first of 3,000 (benchmarks/trial_creation.py)."""

    def __init__(self, configs: list[dict[str, Any]]):
        super().__init__()
        self.configs, self.given = configs, 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str:
        if self.given == len(self.configs):
            return Searcher.FINISHED
        self.given += 1
        return self.configs[self.given - 1]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Nothing to learn from a result: the grid is fixed."""

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: a sweep never reads Tune's saved state back (each invocation is a fresh Tune run)."""


class RunRecord(tune.Callback):
    """Each trial's last timings (for the profile; no more of its results: Tune keeps its own), a line for each
    teacher a trial trained, and for each trial that fails for good (after its retries) a line with its error, which
    error.txt holds in full."""

    def __init__(self, folder: Path, log: Callable[[str], None]):
        self.folder, self.log = str(folder), log  # a path: Tune pickles its callbacks
        self.results: dict[str, dict[str, Any]] = {}
        self.teachers_announced: set[str] = set()
        self.failures: dict[str, str] = {}  # each trial's latest error, as Tune logged it
        self.disk_full = False

    def filter(self, record: logging.LogRecord) -> bool:
        """As a filter of Tune's loggers, drops what the sweep says its own way: a trial failure's traceback (kept
        for on_trial_error: Tune's own error file is not written on a full disk) and 'Resume experiment with:
        Tuner.restore(...)' (a sweep continues by running its command again)."""
        message = record.getMessage()
        if message.startswith("Trial task failed for trial ") and record.exc_info:
            self.failures[message.rsplit(" ", 1)[1]] = str(record.exc_info[1])
            return False
        return "Tuner.restore" not in message

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        error = str(trial.get_error() or self.failures.get(trial_id_of(trial)) or "the trial failed (no message)")
        line = next((line.strip() for line in reversed(error.splitlines()) if line.strip()), error)
        try:
            ResultsFolder(self.folder).store_error(trial_id_of(trial), f"{error}\n")
        except DiskFull:
            line += f"; {ERROR_FILE} not written either"
            self.disk_full = True
        self.disk_full |= DiskFull.__name__ in line
        self.log(f"{trial_id_of(trial)} failed: {line}")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        self.results[trial_id_of(trial)] = trial_timings(result)
        if result.get("teacher_trained") and result["teacher_key"] not in self.teachers_announced:
            self.teachers_announced.add(result["teacher_key"])
            self.log(f"  teacher of seed {trial.config['trial']['config']['seed']}: test accuracy "
                     f"{result['teacher_acc']:.4f} "
                     f"({result['teacher_seconds']:.1f} s, trained by {trial_id_of(trial)})")


def tensorboard_logger() -> TBXLoggerCallback:
    """Tune's TensorBoard logger, its tensorboardX imported with torch hidden: tensorboardX imports torch when it can,
    only to accept torch tensors, which no result holds, and the driver never loads torch (700 MB)."""
    hide = "torch" not in sys.modules
    if hide:
        sys.modules["torch"] = None  # `import torch` raises ImportError, which tensorboardX expects
    try:
        return TBXLoggerCallback()
    finally:
        if hide:
            del sys.modules["torch"]


def fit(name: str, spec: SweepSpec, folder: ResultsFolder, inputs: TrialInputs, pending: list[GridTrial],
        record: RunRecord, run_name: str, slots: float, trackers: list[str] = ()) -> None:
    """Run the pending trials as a fresh Tune run: Tune's saved state of an earlier run is never read. Each
    tracker named (sublim.core.tracking.TRACKERS) logs every trial as a run of the experiment `name`; `slots` is how
    many trials run at once (for the progress line's ETA)."""
    resourced = tune.with_resources(tune.with_parameters(trainable, inputs=inputs), spec.resources.tune())
    grid = tune_configs(pending)
    costs = dict(zip((t.trial_id for t in spec.trials), trial_costs(t.config for t in spec.trials)))
    progress = SweepProgress(name, costs, {t.trial_id for t in pending}, slots)
    tuner = tune.Tuner(
        resourced,
        tune_config=tune.TuneConfig(search_alg=InLaunchOrder(grid), num_samples=len(grid), reuse_actors=True,
                                    trial_name_creator=trial_id_of, trial_dirname_creator=trial_id_of),
        run_config=tune.RunConfig(
            name=run_name, storage_path=str(folder.tune_dir), verbose=0,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            callbacks=[JsonLoggerCallback(), tensorboard_logger(),
                       *tracker_callbacks(trackers, name, folder.tune_dir / run_name), record, progress],
        ),
    )
    loggers = [logging.getLogger(name) for name in ("ray.tune.tune", "ray.tune.execution.tune_controller")]
    for logger in loggers:
        logger.addFilter(record)
    try:
        tuner.fit()
    finally:
        for logger in loggers:
            logger.removeFilter(record)


@dataclass(frozen=True)
class SweepOutcome:
    folder: Path
    total: int
    finished: int
    diverged: list[str]
    failed: list[str]  # neither finished nor diverged: failed for good, or not run yet
    teachers: int
    seconds: float
    teachers_trained: int = 0
    ray_start_seconds: float = 0.0
    profile: SweepProfile | None = None  # of the Tune run, when one ran
    disk_full: bool = False  # a trial failed on a full disk


def pending_trials(spec: SweepSpec, folder: ResultsFolder, log: Callable[[str], None]) -> list[GridTrial]:
    """The trials without a verified result; damaged outputs are removed, one line each, and rebuilt."""
    pending = []
    for trial in spec.trials:
        status, problem = folder.status(trial)
        if problem:
            folder.clear_outputs(trial.trial_id)
            log(f"repairing {trial.trial_id}: {problem}; running it again (from its checkpoint, if it has one)")
        if status == "pending":
            pending.append(trial)
    return pending


def run_sweep(name: str, spec: SweepSpec, spec_text: str, folder: ResultsFolder, mnist: Mnist,
              address: str | None = None, num_cpus: int | None = None,
              log: Callable[[str], None] = print, trackers: list[str] = ()) -> SweepOutcome:
    """Run (or continue) a sweep into `folder`; trials with a verified result there are never rerun."""
    start = time.perf_counter()
    with folder.locked():
        spec = folder.grid_of(spec) if folder.exists() else spec  # trials the folder holds keep their ids there
        folder.check_entries(spec.trials)
        pending = pending_trials(spec, folder, log) if folder.exists() else list(spec.trials)
        teachers_before = _teacher_files(folder)
        timings = (_run_on_ray(name, spec, spec_text, folder, mnist, pending, address, num_cpus, log, trackers)
                   if pending else {})
        statuses = {trial.trial_id: folder.status(trial)[0] for trial in spec.trials}
        teachers = _teacher_files(folder)  # those trained by trials that failed later too
    return SweepOutcome(
        folder=folder.path, total=len(spec.trials), finished=sum(s == "finished" for s in statuses.values()),
        diverged=sorted(t for t, s in statuses.items() if s == "diverged"),
        failed=sorted(t for t, s in statuses.items() if s == "pending"),
        teachers=len(teachers), teachers_trained=len(teachers - teachers_before),
        seconds=time.perf_counter() - start, **timings,
    )


def _teacher_files(folder: ResultsFolder) -> set[tuple[str, int, int]]:
    """Each stored teacher by name, inode and modification time: a damaged teacher trained again is a new file
    under the old name."""
    return {(p.name, (info := p.stat()).st_ino, info.st_mtime_ns) for p in folder.teachers_dir.glob("teacher-*.pt")}


def teachers_missing(folder: ResultsFolder, pending: list[GridTrial], log: Callable[[str], None]) -> list[str]:
    """ResultsFolder.teachers_missing, its lines logged here. Loading a stored teacher needs torch, which the driver
    never imports: teachers/ is checked in a Ray worker, and only when it holds anything."""
    if not folder.holds_teachers():
        return folder.teachers_missing(pending)  # loads nothing
    missing, lines = ray.get(_teachers_missing.remote(str(folder.path), pending))
    for line in lines:
        log(line)
    return missing


@ray.remote(num_cpus=0)
def _teachers_missing(path: str, pending: list[GridTrial]) -> tuple[list[str], list[str]]:
    lines = []
    return ResultsFolder(path, lines.append).teachers_missing(pending), lines


def slots_for(spec: SweepSpec, resources: dict[str, float]) -> float:
    """How many of the spec's trials Ray's resources run at once."""
    return min((resources.get(key.upper(), 0) // need for key, need in spec.resources.tune().items() if need),
               default=0)


def _run_on_ray(name: str, spec: SweepSpec, spec_text: str, folder: ResultsFolder, mnist: Mnist,
                pending: list[GridTrial], address: str | None, num_cpus: int | None,
                log: Callable[[str], None], trackers: list[str]) -> dict[str, Any]:
    from .session import ray_session

    with ray_session(address, num_cpus) as ray_start:
        resources = ray.cluster_resources()
        # On the driver's node, which lasts as long as the sweep; started first, so that its process starts
        # while the driver checks the folder.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        targets = TargetStore.options(scheduling_strategy=here).remote(
            int(TARGETS_SHARE * resources.get("object_store_memory", 0)))
        try:
            folder.record(name, spec, spec_text)
            log(f"Ray: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs "
                f"({'cluster ' + address if address else 'local, loopback only'}), "
                + (f"started in {ray_start:.1f} s" if ray_start else "already running"))
            missing = teachers_missing(folder, pending, log)
            log(f"running {len(pending)} of {len(spec.trials)} trials ({len(spec.trials) - len(pending)} already "
                f"done); {len(missing)} teacher(s) to train, each by its seed's first trial")
            record, run_name = RunRecord(folder.path, log), folder.new_tune_run()
            start = time.time()
            fit(name, spec, folder, TrialInputs(ray.put(mnist), spec.resources.threads, targets, str(folder.path)),
                pending, record, run_name, slots_for(spec, resources), trackers)
        finally:
            ray.kill(targets)
        profile = SweepProfile.of(record.results, spec.resources.cpus, resources.get("CPU", 0), start, time.time())
        try:
            write_json(folder.tune_dir / run_name / PROFILE_FILE, {"ray_start_seconds": ray_start, **profile.record()})
        except DiskFull as error:
            record.disk_full = True
            log(str(error))
    return {"ray_start_seconds": ray_start, "profile": profile, "disk_full": record.disk_full}
