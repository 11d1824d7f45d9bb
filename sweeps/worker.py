"""What a Ray worker builds for its trials, kept between the trials it runs (Tune reuses the worker).

A sweep's trials differ only in their arm, so consecutive trials of one seed on a worker share the
split, the teacher and the distillation targets (the noise set and the teacher's log-probabilities
on it, and liminal training's base). The split is built once per worker; the targets once per sweep:
the first trial to build a seed's puts them in Ray's object store for every worker (target_store.py).
A worker keeps only the latest of each (and a GPU trial's CPU split for its teacher), so its memory
stays that of one trial.

Teachers are trained by the trials themselves: the first trial of a seed to run finds no teacher in
the results folder's teachers/, trains it on the CPU with one thread (so that a teacher is the same
wherever it is trained) on the CPU it holds, and stores it for the seed's other arms. A sweep
launches the first trial of every teacher before the others (tune_run.launch_order), so with at least as
many teachers as trials running at once, no trial ever waits for, or repeats, another's teacher.

Only Ray's worker processes import this module (it loads torch): a sweep's driver never does.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import ray
import torch
from ray import tune

from sublim.core.config import TrialConfig
from sublim.core.tracking import final_summary
from sublim.trainable import (DistillationTargets, Diverged, Teacher, Trial, TrialData, student_init_stream,
                              train_teacher)
from sublim.trainable.data import shared_tensor
from sublim.trainable.results import TeacherCache

from .profile import TrialClock
from .results import ResultsFolder

if TYPE_CHECKING:
    from .tune_run import TrialInputs

CPU = torch.device("cpu")


def start_up() -> None:
    """What a worker process pays once, before its first trial's clock starts, so that the profile counts it as
    the worker's start-up: torch.optim imports torch._dynamo when a process builds its first optimizer (about
    2 CPU-seconds, which would otherwise count as the first teacher's training)."""
    import torch._dynamo  # noqa: F401


def trial_device(config: TrialConfig) -> torch.device:
    """`auto` means CUDA only when Ray gave this trial a GPU (a CPU trial never crowds a GPU) and CUDA works here
    (a node that advertises a GPU torch cannot use, e.g. no driver, runs its trials on the CPU)."""
    if config.device == "auto":
        return torch.device("cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def run_trial(config: dict[str, Any], inputs: TrialInputs) -> None:
    """One trial (tune_run.trainable), continuing from its own checkpoint in the results folder if it has one.

    Each epoch's state goes to trials/<id>/checkpoint.pt (the latest only), the outputs there after the
    last; a diverged trial leaves diverged.json and ends normally, so Tune never retries it. Every result
    carries the trial's timings (profile.py) and its teacher's; the last, the summary's numbers (for trackers).
    """
    start_up()
    clock = TrialClock()
    trial_config = TrialConfig.from_dict(config["trial"]["config"])
    trial_id = config["trial"]["trial_id"]
    folder = ResultsFolder(inputs.folder)
    node = {"node_id": ray.get_runtime_context().get_node_id()}
    torch.set_num_threads(inputs.threads)
    try:
        with clock.part("setup"):
            device = trial_device(trial_config)
            data = trial_data(inputs.mnist, trial_config, device)
        with clock.part("teacher"):
            teacher, trained = teacher_for(trial_config, folder.teachers, inputs.mnist, inputs.threads)
        with clock.part("setup"):
            targets, built = distillation_targets(trial_config, teacher, device, inputs.targets)
            trial = Trial(trial_config, data, teacher, targets=targets)
            folder.restore(trial_id, trial)
        restored_seconds = trial.student_seconds
        where = {**node, "restored_from_epoch": trial.epoch, "teacher_key": teacher.key, "teacher_trained": trained,
                 "teacher_acc": teacher.test_acc, "teacher_seconds": teacher.seconds, "targets_built": built}
        for metrics in trial.run():
            clock.seconds["train"] = trial.student_seconds - restored_seconds
            with clock.part("save"):
                folder.save_epoch(trial_id, trial)
            with clock.part("report"):
                last = {"summary": final_summary(trial.summary())} if trial.epoch == trial_config.epochs else {}
                tune.report({**metrics, **where, **last, **clock.metrics()})
    except Diverged as diverged:
        folder.store_diverged(trial_id, trial_config, diverged)
        tune.report({"diverged": str(diverged), **node, **clock.metrics()})


@functools.lru_cache(maxsize=2)  # a GPU trial holds two: the CPU split its teacher trains on, and its own
def split(mnist: ray.ObjectRef, split_seed: int, train_size: int, device: str) -> TrialData:
    return TrialData.from_mnist(ray.get(mnist), TrialConfig(split_seed=split_seed, train_size=train_size),
                                torch.device(device))


def trial_data(mnist: ray.ObjectRef, config: TrialConfig, device: torch.device) -> TrialData:
    return split(mnist, config.split_seed, config.train_size, str(device))


_targets: list[DistillationTargets] = []


def distillation_targets(config: TrialConfig, teacher: Teacher, device: torch.device,
                         store: ray.actor.ActorHandle) -> tuple[DistillationTargets, bool]:
    """The seed's noise set and teacher log-probabilities (and, for an arm that adds a loss, its initial student's
    logits), and whether this trial built them: this worker's last, else the sweep's `store` (built by another
    worker), else built here and shared."""
    key, built = DistillationTargets.key_of(config, teacher, device), False
    if not _targets or _targets[0].key != key:
        shared = _fetch(store, key)
        if shared:
            _targets[:] = [DistillationTargets(key, *(shared_tensor(array).to(device) for array in shared))]
        else:
            _targets[:], built = [DistillationTargets.of(config, teacher, device)], True
            _share(store, key, _targets[0].noise, _targets[0].teacher_log_probs)
    targets = _targets[0]
    stream = student_init_stream(config)
    if config.adds_loss and stream not in targets.initial_logits_by_stream:
        shared = _fetch(store, (*key, stream))
        if shared:
            targets.initial_logits_by_stream[stream] = shared_tensor(shared[0]).to(device)
        else:
            _share(store, (*key, stream), targets.initial_logits(config))
    return targets, built


def _fetch(store: ray.actor.ActorHandle, key: tuple) -> tuple[np.ndarray, ...] | None:
    """The arrays stored under `key`; None when there are none or they cannot be read (their builder's node, or
    the store's, went away): the trial then builds its own, so the store only ever saves time."""
    try:
        found = ray.get(store.get.remote(key))
        return ray.get(found[0]) if found else None
    except ray.exceptions.RayError:
        return None


def _share(store: ray.actor.ActorHandle, key: tuple, *tensors: torch.Tensor) -> None:
    arrays = tuple(tensor.cpu().numpy() for tensor in tensors)
    store.put.remote(key, [ray.put(arrays)], sum(array.nbytes for array in arrays))


_teacher: list[Teacher] = []


def teacher_for(config: TrialConfig, cache: TeacherCache, mnist: ray.ObjectRef,
                threads: int) -> tuple[Teacher, bool]:
    """This trial's teacher and whether this trial trained it: from this worker's last trial, teachers/, or trained
    here (one CPU thread) and stored there, unless another trial stored it first. A teacher that diverged raises
    `Diverged`, from teachers/ once another trial of its seed has recorded it."""
    key = config.teacher_key
    if _teacher and _teacher[0].key == key:
        return _teacher[0], False
    teacher, trained = cache.get_or_train(key, lambda: _train_on_one_thread(config, mnist, threads))
    _teacher[:] = [teacher]
    return teacher, trained


def _train_on_one_thread(config: TrialConfig, mnist: ray.ObjectRef, threads: int) -> Teacher:
    teacher_config = config.replace(device="cpu")
    torch.set_num_threads(1)
    try:
        return train_teacher(teacher_config, trial_data(mnist, teacher_config, CPU))
    finally:
        torch.set_num_threads(threads)
