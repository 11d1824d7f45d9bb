"""MNIST through torchvision, held as in-memory tensors, and the per-trial split and noise set.

The raw dataset (uint8 images, int64 labels) is what a sweep loads once and ships to trials; each
trial turns it into its float tensors on its own device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from sublim.core.config import TrialConfig
from sublim.core.schema import IMAGE_PIXELS

from .seeding import generator

DATA_DIR_ENV = "SUBLIM_DATA_DIR"
DEFAULT_DOWNLOAD_ROOT = Path.home() / ".cache" / "sublim" / "datasets"


class DataError(RuntimeError):
    """MNIST could not be found or downloaded."""


@dataclass(frozen=True)
class Mnist:
    """The raw MNIST arrays: 60,000 training and 10,000 test images (uint8, 28×28) and labels."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load_mnist(data_dir: str | os.PathLike | None = None) -> Mnist:
    """Load MNIST from `data_dir` (or $SUBLIM_DATA_DIR) without downloading, else download it.

    An explicit folder must already hold torchvision's layout (`<dir>/MNIST/raw/...`): offline
    clusters point at a shared copy and must never try the network.
    """
    from torchvision.datasets import MNIST

    explicit = data_dir or os.environ.get(DATA_DIR_ENV)
    root = Path(explicit) if explicit else DEFAULT_DOWNLOAD_ROOT
    try:
        train = MNIST(str(root), train=True, download=not explicit)
        test = MNIST(str(root), train=False, download=not explicit)
    except Exception as error:  # torchvision raises RuntimeError, URLError, OSError, ...
        how = f"no MNIST in {root}/MNIST/raw" if explicit else f"download to {root} failed ({error})"
        raise DataError(
            f"cannot load MNIST: {how}; pass --data-dir DIR or set {DATA_DIR_ENV}=DIR to a folder "
            f"holding MNIST/raw, or run once with internet access to download it"
        ) from error
    return Mnist(train.data, train.targets, test.data, test.targets)


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

        def pixels(images: torch.Tensor) -> torch.Tensor:  # in place: one float copy, not three
            return images.reshape(len(images), -1).to(device, torch.float32).div_(127.5).sub_(1.0)

        return cls(
            train_x=pixels(mnist.train_images[train_idx]),
            train_y=mnist.train_labels[train_idx].to(device),
            val_x=pixels(mnist.train_images[val_idx]),
            val_y=mnist.train_labels[val_idx].to(device),
            test_x=pixels(mnist.test_images),
            test_y=mnist.test_labels.to(device),
        )


def noise_images(config: TrialConfig, device: torch.device) -> torch.Tensor:
    """The distillation inputs: i.i.d. uniform [-1, 1] images drawn from the trial seed."""
    noise = torch.empty(config.noise_count, IMAGE_PIXELS).uniform_(-1, 1, generator=generator(config.seed, "noise"))
    return noise.to(device)
