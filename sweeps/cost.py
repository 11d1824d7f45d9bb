"""What a trial costs, from its FLOPs: a sweep over widths or epochs launches its longest trials first (so that it
ends on its shortest), and `sublim sweep --dry-run` predicts a grid's core-hours. Kept free of torch and Ray.

The model: a trial's time is proportional to the multiply-adds of its MLP's passes (784 -> h -> h -> 10 + m) over
the images it trains on, scaled from a default trial measured on a 2-core AVX-512 Xeon at one thread (README,
"What a sweep costs"). It leaves out what does not grow with FLOPs (small matrices run below peak, a wide
one's memory traffic) and the arms' differences (liminal's second backward pass, projection's dot products):
the default figure is the mean over paper.yaml's arms.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from sublim.core.config import TrialConfig

STUDENT_CORE_SECONDS = 11.0  # a default trial's student, one thread, the mean over paper.yaml's arms
TEACHER_CORE_SECONDS = 4.6  # a default teacher, one thread
TRIAL_OVERHEAD_CORE_SECONDS = 0.54  # per trial of paper.yaml's sweep: set-up, checkpoints, reporting, idle cores


def step_flops(config: TrialConfig) -> int:
    """Multiply-adds per image of the MLP's forward pass: its backward pass is a fixed multiple of it, so it ranks
    trials as their training time does."""
    widths = config.layer_widths
    return sum(d_in * d_out for d_in, d_out in zip(widths[:-1], widths[1:]))


def student_work(config: TrialConfig) -> int:
    """The student's images (a batch of noise and one of held-out digits for the trait gradient, every step)
    times step_flops."""
    steps = config.epochs * math.ceil(config.noise_count / config.batch_size)
    return steps * (config.batch_size + config.probe_batch_size) * step_flops(config)


def teacher_work(config: TrialConfig) -> int:
    return config.teacher_epochs * config.train_size * step_flops(config)


@dataclass(frozen=True)
class Cost:
    """Predicted core-seconds at one thread per trial."""

    students: float
    teachers: float
    overhead: float

    @property
    def total(self) -> float:
        return self.students + self.teachers + self.overhead


def trial_costs(configs: Iterable[TrialConfig]) -> list[float]:
    """Each trial's share of `predicted_cost`, in core-seconds: its student and overhead, and its teacher split evenly
    among the trials that share it. A running sweep's progress line counts them done and left."""
    configs = list(configs)
    sharing = Counter(c.teacher_key for c in configs)
    alone = [predicted_cost([c]) for c in configs]
    return [one.students + one.overhead + one.teachers / sharing[c.teacher_key] for c, one in zip(configs, alone)]


def predicted_cost(configs: Iterable[TrialConfig]) -> Cost:
    """The grid's cost: each trial's student, each distinct teacher once, and the per-trial overhead."""
    configs = list(configs)
    default = TrialConfig()
    teachers = {c.teacher_key: c for c in configs}.values()
    return Cost(STUDENT_CORE_SECONDS * sum(map(student_work, configs)) / student_work(default),
                TEACHER_CORE_SECONDS * sum(map(teacher_work, teachers)) / teacher_work(default),
                TRIAL_OVERHEAD_CORE_SECONDS * len(configs))
