"""MNIST from torchvision's raw files, checked file by file, as in-memory tensors; the per-trial split and noise set.

The raw dataset (uint8 images, int64 labels) is what a sweep loads once and ships to trials; each
trial turns it into its float tensors on its own device. The four IDX files are parsed here rather
than by torchvision so that a damaged one (truncated, wrong header, labels out of range) stops the
run before training with a one-line error naming the file and what is wrong, instead of a bare
"not found", an assertion, or a silently shorter dataset.
"""

from __future__ import annotations

import os
import struct
from importlib import metadata
from dataclasses import dataclass
from math import prod
from pathlib import Path

import torch

from sublim.core.config import TrialConfig
from sublim.core.files import DataError, InstallError, UnreadableFile, os_problem, read_regular
from sublim.core.schema import IMAGE_PIXELS

from .seeding import generator

DATA_DIR_ENV = "SUBLIM_DATA_DIR"
DEFAULT_DOWNLOAD_ROOT = Path.home() / ".cache" / "sublim" / "datasets"
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TRAIN_COUNT, TEST_COUNT = 60_000, 10_000
IMAGE_SIDE = 28
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # IDX: unsigned bytes, 3 (images) or 1 (labels) dimensions
GZIP_MAGIC = b"\x1f\x8b"


def check_torchvision() -> None:
    """Before any work: torchvision's compiled operators load with this torch. Versions built for one another (torch
    2.M.P and torchvision 0.(M+15).P, the same build tag such as +cpu) pass at once; otherwise torchvision is imported
    to see (that takes seconds), and a failure is one line naming both versions and the fix."""
    torch_version, vision_version = metadata.version("torch"), metadata.version("torchvision")
    pair = _torchvision_for(torch_version)
    if vision_version == pair + torch_version[len(torch_version.split("+")[0]):]:
        return
    try:
        import torchvision  # noqa: F401
    except Exception as error:  # RuntimeError: operator torchvision::nms does not exist; ImportError; OSError
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        base = torch_version.split("+")[0]
        raise InstallError(
            f"torch {torch_version} and torchvision {vision_version} do not work together ({reason}); install the "
            f"pair built together from one index: pip install torch=={base} torchvision=={pair} (PyPI's build), or "
            f"add --index-url https://download.pytorch.org/whl/cpu for the CPU-only pair") from None


def _torchvision_for(torch_version: str) -> str:
    """The torchvision release built with torch `torch_version` (2.14.1 -> 0.29.1)."""
    major, minor, patch = (torch_version.split("+")[0].split(".") + ["0", "0"])[:3]
    return f"0.{int(minor) + 15}.{patch}" if major == "2" else "?"


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
    clusters point at a shared copy and must never try the network. Every file is checked before
    any training starts, so a bad copy fails in seconds, not after a sweep has been scheduled.
    """
    explicit = data_dir or os.environ.get(DATA_DIR_ENV)
    root = Path(explicit) if explicit else DEFAULT_DOWNLOAD_ROOT
    raw = root / "MNIST" / "raw"
    if not explicit and not all((raw / name).is_file() for name in RAW_FILES):
        _download(root)
    if not any((raw / name).exists() or (raw / f"{name}.gz").exists() for name in RAW_FILES):
        raise DataError(_not_found(f"no MNIST in {raw}{_layout_hint(root)}"))
    try:
        return read_raw_mnist(raw)
    except DataError as error:
        if explicit:
            raise
        raise DataError(f"{error}; delete it and run again to download it afresh") from None


def _layout_hint(root: Path) -> str:
    """For a folder inside torchvision's layout (`.../MNIST` or `.../MNIST/raw`): the folder to pass instead."""
    parts = root.resolve().parts
    above = [Path(*parts[:i]) for i in range(1, len(parts)) if parts[i] == "MNIST" and parts[i + 1:] in ((), ("raw",))]
    if not above or not (above[0] / "MNIST" / "raw").is_dir():
        return ""
    return f" (that folder is inside the layout: did you mean --data-dir {above[0]}?)"


def _not_found(how: str) -> str:
    """The message for no MNIST at all: say every way to provide it."""
    return (f"cannot load MNIST: {how}; pass --data-dir DIR or set {DATA_DIR_ENV}=DIR to a folder "
            f"holding MNIST/raw, or run once with internet access to download it")


def _download(root: Path) -> None:
    """Fetch the four raw files with torchvision (which skips what is already there)."""
    from torchvision.datasets import MNIST

    try:
        MNIST(str(root), train=False, download=True)  # downloads all four files; loads only the small test set
    except Exception as error:  # torchvision raises RuntimeError, URLError, OSError, ...
        reason = " ".join(str(error).split())  # torchvision's message spans lines: one per mirror
        raise DataError(_not_found(f"download to {root} failed ({reason})")) from error


def read_raw_mnist(raw: Path, train_count: int = TRAIN_COUNT, test_count: int = TEST_COUNT) -> Mnist:
    """Read and check the four IDX files in `raw`, exactly as torchvision would load them.

    The counts are parameters only so that tests can check tiny synthetic files; real runs use
    MNIST's 60,000 / 10,000.
    """
    for name in RAW_FILES:  # all present before reading any: a missing file is named at once
        if not (raw / name).is_file():
            raise DataError(f"MNIST file {raw / name}: missing{_gzip_hint(raw / name)}; MNIST/raw must hold "
                            f"{', '.join(RAW_FILES)}")
    train_images, train_labels = _read_split(raw, "train", train_count, "the MNIST training set")
    test_images, test_labels = _read_split(raw, "t10k", test_count, "the MNIST test set")
    return Mnist(train_images, train_labels, test_images, test_labels)


def _gzip_hint(path: Path) -> str:
    """torchvision reads only the decompressed files; a lone .gz copy is a common half-done setup."""
    return f" (found {path.name}.gz: decompress it with gunzip)" if path.with_name(f"{path.name}.gz").exists() else ""


def _read_split(raw: Path, prefix: str, count: int, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one split, the labels one per image and digits 0-9."""
    images_path, labels_path = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
    images = _read_idx(images_path, IMAGES_MAGIC, (count, IMAGE_SIDE, IMAGE_SIDE), f"({what})")
    labels = _read_idx(labels_path, LABELS_MAGIC, (len(images),), f"(one per image of {images_path.name})")
    bad = torch.nonzero(labels > 9).flatten()
    if len(bad):
        first = int(bad[0])
        raise DataError(f"MNIST file {labels_path}: label {int(labels[first])} at index {first} "
                        f"({len(bad)} labels outside 0-9); labels must be digits 0-9")
    return images, labels.long()


def _read_idx(path: Path, magic: int, shape: tuple[int, ...], why: str) -> torch.Tensor:
    """One IDX file of unsigned bytes, its header and size checked against `shape`.

    Parsed the way torchvision's `read_sn3_pascalvincent_tensor` does (a uint8 view past the
    header), so the tensors are the ones torchvision gives, from one read of the file.
    """
    header = 4 * (len(shape) + 1)
    data = _read_bytes(path, 2 * (header + prod(shape)) + (1 << 20))  # anything larger is no MNIST file
    if len(data) < header:
        raise DataError(f"MNIST file {path}: truncated: {len(data)} bytes, shorter than its {header}-byte header")
    found, *dims = struct.unpack(f">{len(shape) + 1}I", data[:header])
    if found != magic:
        hint = " (the file is gzip-compressed: decompress it with gunzip)" if data[:2] == GZIP_MAGIC else ""
        raise DataError(f"MNIST file {path}: magic number 0x{found:08x}, expected 0x{magic:08x} "
                        f"(IDX of unsigned bytes, {len(shape)} dimensions){hint}")
    _check_dims(path, dims, shape, why)
    expected = header + prod(shape)
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "trailing bytes"
        raise DataError(f"MNIST file {path}: {problem}: {len(data)} bytes, expected {expected} "
                        f"({header}-byte header + {' x '.join(map(str, shape))} bytes)")
    return torch.frombuffer(data, dtype=torch.uint8, offset=header).view(*shape)


def _check_dims(path: Path, dims: list[int], shape: tuple[int, ...], why: str) -> None:
    """The header's count first (the usual damage), then the image size."""
    what = "images" if len(shape) == 3 else "labels"
    if dims[0] != shape[0]:
        raise DataError(f"MNIST file {path}: {dims[0]} {what}, expected {shape[0]} {why}")
    if dims[1:] != list(shape[1:]):
        raise DataError(f"MNIST file {path}: images of {dims[1]}x{dims[2]} pixels, "
                        f"expected {shape[1]}x{shape[2]}")


def _read_bytes(path: Path, max_bytes: int) -> bytearray:
    """The whole file into one writable buffer (torch.frombuffer shares it), read only when it is a regular file
    (or a link to one) of at most `max_bytes`: a FIFO or device is refused without blocking."""
    try:
        return bytearray(read_regular(path, max_bytes, follow_links=True))
    except UnreadableFile as error:
        raise DataError(f"MNIST file {path}: {error}") from None
    except OSError as error:
        raise DataError(f"MNIST file {path}: cannot read it ({os_problem(error)})") from None


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
