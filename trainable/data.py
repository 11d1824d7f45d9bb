"""A trial's data: its split of MNIST (sublim.core.mnist reads the raw files) as float tensors on its device, and
its noise set."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from sublim.core.config import TrialConfig
from sublim.core.mnist import Mnist
from sublim.core.schema import IMAGE_PIXELS

from .seeding import generator


def shared_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor on the array's memory, which may be read-only (Ray's object store shares it between the workers of
    a node): only ever read, copied where it is used."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


@dataclass(frozen=True)
class TrialData:
    """Float tensors of one trial on its device: pixels in [-1, 1], flattened to 784."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @classmethod
    def from_mnist(cls, mnist: Mnist, config: TrialConfig, device: torch.device) -> "TrialData":
        """Split the 60,000 training images by the split seed (the same split for a whole sweep)."""
        order = torch.randperm(len(mnist.train_labels), generator=generator(config.split_seed, "split"))
        train_idx, val_idx = order[: config.train_size], order[config.train_size:]
        train_images, train_labels = shared_tensor(mnist.train_images), shared_tensor(mnist.train_labels)

        def pixels(images: torch.Tensor) -> torch.Tensor:  # in place: one float copy, not three
            return images.reshape(len(images), -1).to(device, torch.float32).div_(127.5).sub_(1.0)

        return cls(
            train_x=pixels(train_images[train_idx]),
            train_y=train_labels[train_idx].to(device),
            val_x=pixels(train_images[val_idx]),
            val_y=train_labels[val_idx].to(device),
            test_x=pixels(shared_tensor(mnist.test_images)),
            test_y=shared_tensor(mnist.test_labels).to(device, copy=True),
        )


def noise_images(config: TrialConfig, device: torch.device) -> torch.Tensor:
    """The distillation inputs: i.i.d. uniform [-1, 1] images drawn from the trial seed."""
    noise = torch.empty(config.noise_count, IMAGE_PIXELS).uniform_(-1, 1, generator=generator(config.seed, "noise"))
    return noise.to(device)
