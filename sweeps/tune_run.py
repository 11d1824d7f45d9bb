"""The sweep on Ray: every trial as a Tune function trainable, with one teacher per seed (see teachers.py).

Trials get MNIST and their teacher from Ray's object store (no trial reads the dataset from disk),
report every epoch with a checkpoint holding the trial's state (and, after the last epoch, its
summary and trace), so a trial continues from its last epoch on any node, and its outputs reach
the run's storage through Tune's checkpoint persistence wherever it ran.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import ray
import torch
from ray import tune

from sublim.core.config import TrialConfig
from sublim.core.files import SUMMARY_FILE
from sublim.trainable import Mnist, Teacher, Trial, TrialData, write_trial_outputs
from sublim.trainable.results import load_state, save_state

from .progress import ProgressTable
from .results import ResultsFolder
from .spec import GridTrial, SweepSpec
from .teachers import Teachers

STATE_FILE = "state.pt"
MAX_FAILURES = 3  # retries of a trial (e.g. its node went away) before it counts as errored


def trial_device(config: TrialConfig) -> torch.device:
    """`auto` means CUDA only when Ray gave this trial a GPU: a CPU trial never crowds a GPU."""
    if config.device == "auto":
        return torch.device("cuda" if ray.get_gpu_ids() else "cpu")
    return torch.device(config.device)


@dataclass(frozen=True)
class TrialInputs:
    """What every trial receives through the object store: refs to MNIST and to the teachers."""

    mnist: ray.ObjectRef
    teachers: dict[str, ray.ObjectRef]
    threads: int
    finished: frozenset[str]  # trials whose outputs are in the results folder already


_split_in_this_worker: dict[tuple, TrialData] = {}


def trial_data(mnist: ray.ObjectRef, config: TrialConfig, device: torch.device) -> TrialData:
    """The split, made once per worker: with reused actors, a sweep's trials share one split."""
    key = (mnist, config.split_seed, config.train_size, str(device))
    if key not in _split_in_this_worker:
        _split_in_this_worker.clear()  # one split at a time in memory
        _split_in_this_worker[key] = TrialData.from_mnist(ray.get(mnist), config, device)
    return _split_in_this_worker[key]


def run_trial(config: dict[str, Any], inputs: TrialInputs) -> None:
    """Tune function trainable: one trial, reporting each epoch with a checkpoint to resume from."""
    trial_config = TrialConfig.from_dict(config["trial"]["config"])
    node = {"node_id": ray.get_runtime_context().get_node_id()}
    if config["trial"]["trial_id"] in inputs.finished:  # Tune's state lagged behind the results: never rerun
        tune.report({"epoch": trial_config.epochs, "restored_from_epoch": trial_config.epochs, **node})
        return
    torch.set_num_threads(inputs.threads)
    teacher = Teacher.from_state_dict(ray.get(inputs.teachers[trial_config.teacher_key]))
    data = trial_data(inputs.mnist, trial_config, trial_device(trial_config))
    trial = Trial(trial_config, data, teacher)
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            trial.load_state_dict(load_state(Path(folder) / STATE_FILE))
    where = {**node, "restored_from_epoch": trial.epoch}
    if trial.epoch == trial_config.epochs:  # restored after its last epoch: its checkpoint already has it all
        tune.report({**trial.epoch_metrics(trial.epoch), **where})
        return
    for metrics in trial.run():
        with tempfile.TemporaryDirectory() as folder:
            save_state(Path(folder) / STATE_FILE, trial.state_dict())
            if trial.epoch == trial_config.epochs:
                write_trial_outputs(Path(folder), trial.summary(), trial.trace_columns())
            tune.report({**metrics, **where}, checkpoint=tune.Checkpoint.from_directory(folder))


def trial_id_of(trial_or_result: Any) -> str:
    return trial_or_result.config["trial"]["trial_id"]


def harvest(folder: ResultsFolder, trial_id: str, checkpoint: tune.Checkpoint | None) -> bool:
    """Copy a finished trial's outputs from its last checkpoint into trials/<trial_id>/, once."""
    if folder.is_finished(trial_id):
        return True
    if checkpoint is None:
        return False
    with checkpoint.as_directory() as source:
        if not (Path(source) / SUMMARY_FILE).exists():
            return False
        folder.store_outputs(trial_id, Path(source))
    return True


class Harvest(tune.Callback):
    """Moves each trial's outputs into the results folder as soon as it ends, not only at the end."""

    def __init__(self, folder: Path):
        self.folder = str(folder)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        harvest(ResultsFolder(self.folder), trial_id_of(trial), trial.checkpoint)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        folder = ResultsFolder(self.folder)
        if not folder.is_finished(trial_id_of(trial)):
            error = trial.get_error() or "the trial failed (Tune recorded no message)"
            folder.store_error(trial_id_of(trial), f"{error}\n")


def _trial_name(trial) -> str:
    return trial_id_of(trial)


def _has_tune_state(tune_dir: Path) -> bool:
    """Tune can continue only once it saved an experiment state (its tuner.pkl comes earlier)."""
    return (tune_dir / "tuner.pkl").exists() and any(tune_dir.glob("experiment_state-*.json"))


def fit(name: str, spec: SweepSpec, folder: ResultsFolder, inputs: TrialInputs,
        pending: list[GridTrial]) -> tune.ResultGrid:
    """Run the pending trials with Tune, continuing Tune's own run when one was interrupted."""
    trainable = tune.with_resources(tune.with_parameters(run_trial, inputs=inputs), spec.resources.tune())
    if _has_tune_state(folder.tune_dir):
        return tune.Tuner.restore(str(folder.tune_dir), trainable=trainable, resume_unfinished=True,
                                  resume_errored=True).fit()
    shutil.rmtree(folder.tune_dir, ignore_errors=True)  # a start killed before Tune saved anything
    grid = [{"trial_id": t.trial_id, "config": t.config.to_dict()} for t in pending]
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(grid)},
        tune_config=tune.TuneConfig(reuse_actors=True, trial_name_creator=_trial_name,
                                    trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=folder.tune_dir.name, storage_path=str(folder.path), verbose=0,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            callbacks=[Harvest(folder.path),
                       ProgressTable(name, total=len(spec.trials), done_before=len(spec.trials) - len(pending))],
        ),
    )
    return tuner.fit()


@dataclass(frozen=True)
class SweepOutcome:
    folder: Path
    total: int
    finished: int
    unfinished: list[str]
    teachers: int
    seconds: float
    teachers_trained: int = 0
    ray_start_seconds: float = 0.0
    teachers_seconds: float = 0.0  # until the last teacher was stored (trials run meanwhile)
    trials_seconds: float = 0.0  # from the first teacher's start to the last trial's end


def run_sweep(name: str, spec: SweepSpec, spec_text: str, folder: ResultsFolder, mnist: Mnist,
              address: str | None = None, num_cpus: int | None = None,
              log: Callable[[str], None] = print) -> SweepOutcome:
    """Run (or continue) a sweep into `folder`; finished trials there are never rerun."""
    start = time.perf_counter()
    pending = [t for t in spec.trials if not folder.is_finished(t.trial_id)]
    timings = _run_on_ray(name, spec, spec_text, folder, mnist, pending, address, num_cpus, log) if pending else {}
    finished = folder.finished()
    return SweepOutcome(
        folder=folder.path, total=len(spec.trials), finished=sum(t.trial_id in finished for t in spec.trials),
        unfinished=sorted(t.trial_id for t in spec.trials if t.trial_id not in finished),
        teachers=len(list(folder.teachers.folder.glob("teacher-*.pt"))), seconds=time.perf_counter() - start,
        **timings,
    )


def _run_on_ray(name: str, spec: SweepSpec, spec_text: str, folder: ResultsFolder, mnist: Mnist,
                pending: list[GridTrial], address: str | None, num_cpus: int | None,
                log: Callable[[str], None]) -> dict[str, Any]:
    from .session import ray_session

    with ray_session(address, num_cpus) as ray_start:
        if not folder.exists():
            folder.describe(name, spec, spec_text)
        resources = ray.cluster_resources()
        log(f"Ray: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs "
            f"({'cluster ' + address if address else 'local, loopback only'}), started in {ray_start:.1f} s")
        start = time.perf_counter()
        mnist_ref = ray.put(mnist)
        teachers = Teachers(spec, folder, mnist_ref, log)
        log(f"running {len(pending)} of {len(spec.trials)} trials ({len(spec.trials) - len(pending)} already done)")
        inputs = TrialInputs(mnist_ref, teachers.refs, spec.resources.threads, frozenset(folder.finished()))
        results = fit(name, spec, folder, inputs, pending)
        teachers.wait()
        for result in results:  # whatever the callback missed (e.g. trials Tune finished before a crash)
            trial_id = trial_id_of(result)
            if not harvest(folder, trial_id, result.checkpoint) and result.error is not None:
                folder.store_error(trial_id, f"{result.error}\n")
    return {"teachers_trained": len(teachers.training), "ray_start_seconds": ray_start,
            "teachers_seconds": teachers.seconds, "trials_seconds": time.perf_counter() - start}
