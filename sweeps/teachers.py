"""The teachers of a sweep: one per seed, trained once, shared by every arm, and kept in teachers/.

Missing teachers train as Ray tasks on the driver's node while the trials already start: a trial
waits (in `ray.get`) only for its own seed's teacher, so no core idles until the slowest teacher is
done. The tasks reserve no CPU, so a waiting trial can never starve the teacher it waits for (no
deadlock however many trials start); instead they run in lanes, one task after another per core
of this machine. Running on the driver's node, their results never need recomputing when a worker
node goes away. Each trains on the CPU with one thread, so a teacher is the same however and
wherever the sweep is scheduled.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

import ray
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from sublim.core.config import TrialConfig
from sublim.trainable import Mnist, Teacher, TrialData, train_teacher

from .results import ResultsFolder
from .spec import GridTrial


@ray.remote(num_cpus=0)
def _train_teacher(config: dict[str, Any], mnist: Mnist, after: Any = None) -> dict[str, Any]:
    """`after` is the previous teacher of the same lane: Ray starts this task once that one is done."""
    torch.set_num_threads(1)
    teacher_config = TrialConfig.from_dict(config).replace(device="cpu")
    data = TrialData.from_mnist(mnist, teacher_config, torch.device("cpu"))
    return train_teacher(teacher_config, data).state_dict()


class Teachers:
    """Object refs of the teachers that the pending trials need, read back from teachers/ or training now."""

    def __init__(self, pending: list[GridTrial], folder: ResultsFolder, mnist: ray.ObjectRef,
                 log: Callable[[str], None]):
        self.folder, self.log = folder, log
        self.refs: dict[str, ray.ObjectRef] = {}
        self.training: dict[ray.ObjectRef, TrialConfig] = {}
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        lanes: list[ray.ObjectRef | None] = [None] * (os.cpu_count() or 1)
        needed: dict[str, TrialConfig] = {}
        for trial in pending:
            needed.setdefault(trial.config.teacher_key, trial.config)
        for key, config in needed.items():
            cached = folder.teachers.get(key)
            if cached is not None:
                self.refs[key] = ray.put(cached.state_dict())
                continue
            lane = len(self.training) % len(lanes)
            lanes[lane] = _train_teacher.options(scheduling_strategy=here).remote(config.to_dict(), mnist, lanes[lane])
            self.refs[key] = lanes[lane]
            self.training[lanes[lane]] = config
        if len(self.training) < len(self.refs):
            log(f"reusing {len(self.refs) - len(self.training)} teacher(s) from {folder.teachers.folder}")
        if self.training:
            log(f"training {len(self.training)} teacher(s), one per seed, {min(len(lanes), len(self.training))} "
                "at a time on this node; trials start as their seed's teacher is ready")
        self.start = time.perf_counter()
        self.seconds = 0.0
        self._storing = threading.Thread(target=self._store_as_trained, name="store-teachers", daemon=True)
        self._storing.start()

    def _store_as_trained(self) -> None:
        pending = list(self.training)
        while pending:
            [done], pending = ray.wait(pending, num_returns=1)
            seed = self.training[done].seed
            try:
                teacher = Teacher.from_state_dict(ray.get(done))
            except ray.exceptions.RayError as error:  # its trials fail with the same error, into error.txt
                self.log(f"  teacher of seed {seed} failed: {error}")
                continue
            self.folder.teachers.put(teacher)
            self.log(f"  teacher of seed {seed}: test accuracy {teacher.test_acc:.4f} ({teacher.seconds:.1f} s)")
        self.seconds = time.perf_counter() - self.start

    def wait(self) -> None:
        """Return once every teacher trained in this run is stored in teachers/."""
        self._storing.join()
