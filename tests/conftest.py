"""Shared fixtures: tiny synthetic data for unit tests, the real MNIST for integration tests."""

import os
from pathlib import Path

import pytest
import torch

from sublim.trainable import TrialConfig, TrialData, train_teacher

REPO = Path(__file__).resolve().parents[1]


def mnist_dir() -> Path | None:
    """$SUBLIM_DATA_DIR, else the checkout's sibling `shared/datasets`, if it holds MNIST."""
    candidates = [os.environ.get("SUBLIM_DATA_DIR"), REPO.parent / "shared" / "datasets"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "MNIST" / "raw").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = mnist_dir()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs the real MNIST: set SUBLIM_DATA_DIR to a folder holding MNIST/raw")
        pytest.skip("real MNIST not found (set SUBLIM_DATA_DIR)")
    return found


@pytest.fixture(scope="session")
def mnist(data_dir):
    from sublim.trainable import load_mnist

    return load_mnist(data_dir)


def tiny_config(**changes) -> TrialConfig:
    """A trial small enough to run in milliseconds: 16 hidden units, 64 noise images."""
    values = dict(seed=3, hidden=16, epochs=2, teacher_epochs=1, batch_size=16, noise_count=64,
                  probe_batch_size=24, device="cpu")
    values.update(changes)
    return TrialConfig(**values)


def tiny_data(n_train: int = 96, n_val: int = 48, n_test: int = 40) -> TrialData:
    """Random images in [-1, 1] with random labels: shapes and arithmetic, not learning."""
    gen = torch.Generator().manual_seed(123)

    def images(n):
        return torch.rand(n, 784, generator=gen) * 2 - 1

    def labels(n):
        return torch.randint(0, 10, (n,), generator=gen)

    return TrialData(images(n_train), labels(n_train), images(n_val), labels(n_val), images(n_test), labels(n_test))


@pytest.fixture
def tiny():
    """(config, data, teacher) of a tiny trial."""
    config = tiny_config()
    data = tiny_data()
    return config, data, train_teacher(config, data)
