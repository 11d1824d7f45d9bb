"""What a trial costs relative to another, from its FLOPs: a sweep over widths or epochs launches its longest trials
first, so that it ends on its shortest. Kept free of torch and Ray."""

from __future__ import annotations

from sublim.core.config import TrialConfig

MNIST_PIXELS, CLASSES = 784, 10


def step_flops(config: TrialConfig) -> int:
    """Multiply-adds per image of the MLP's forward pass (784 -> h -> h -> 10 + m): its backward pass is a fixed
    multiple of it, so it ranks trials as their training time does."""
    h = config.hidden
    return MNIST_PIXELS * h + h * h + h * (CLASSES + config.aux_logits)


def student_work(config: TrialConfig) -> int:
    """The student's forward passes over its images, in multiply-adds: epochs x noise images x step_flops."""
    return config.epochs * config.noise_count * step_flops(config)
