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
launches the first trial of every teacher before the others (see `launch_order`), so with at least as
many teachers as trials running at once, no trial ever waits for, or repeats, another's teacher.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import ray
import torch

from sublim.core.config import TrialConfig
from sublim.trainable import DistillationTargets, Teacher, TrialData, student_init_stream, train_teacher
from sublim.trainable.results import TeacherCache

from .cost import student_work
from .spec import GridTrial

CPU = torch.device("cpu")


def start_up() -> None:
    """What a worker process pays once, before its first trial's clock starts, so that the profile counts it as
    the worker's start-up: torch.optim imports torch._dynamo when a process builds its first optimizer (about
    2 CPU-seconds, which would otherwise count as the first teacher's training)."""
    import torch._dynamo  # noqa: F401


def launch_order(trials: list[GridTrial]) -> list[GridTrial]:
    """The first trial of every teacher (one per seed, and per value of a teacher's axis), then the rest, longest
    first so that a sweep ends on its shortest trials: the widest or longest students (their FLOPs) first, then
    seed by seed, within a seed the arms that add a loss term (a second backward pass) first."""
    costly_first = sorted(trials, key=lambda t: (-student_work(t.config), t.config.seed, not t.config.adds_loss))
    firsts = list({t.config.teacher_key: t for t in reversed(costly_first)}.values())[::-1]
    chosen = {t.trial_id for t in firsts}
    return firsts + [t for t in costly_first if t.trial_id not in chosen]


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
            _targets[:] = [DistillationTargets(key, *(_tensor(array, device) for array in shared))]
        else:
            _targets[:], built = [DistillationTargets.of(config, teacher, device)], True
            _share(store, key, _targets[0].noise, _targets[0].teacher_log_probs)
    targets = _targets[0]
    stream = student_init_stream(config)
    if config.adds_loss and stream not in targets.initial_logits_by_stream:
        shared = _fetch(store, (*key, stream))
        if shared:
            targets.initial_logits_by_stream[stream] = _tensor(shared[0], device)
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


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A tensor on the object store's read-only shared memory (on the CPU; a GPU gets a copy): never written to."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array).to(device)


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
