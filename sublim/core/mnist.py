"""MNIST from torchvision's raw files, checked file by file, as numpy arrays: no torch, so that a sweep's driver
loads it (and ships it to the trials through Ray's object store) without importing torch.

The raw dataset (uint8 images, int64 labels) is what a sweep loads once and ships to trials; each
trial turns it into its float tensors on its own device (sublim.trainable's TrialData). The four IDX
files are parsed here rather than by torchvision so that a damaged one (truncated, wrong header,
labels out of range) stops the run before training with a one-line error naming the file and what is
wrong, instead of a bare "not found", an assertion, or a silently shorter dataset.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from .files import DataError, UnreadableFile, os_problem, read_regular

DATA_DIR_ENV = "SUBLIM_DATA_DIR"
DEFAULT_DOWNLOAD_ROOT = Path.home() / ".cache" / "sublim" / "datasets"
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TRAIN_COUNT, TEST_COUNT = 60_000, 10_000
IMAGE_SIDE = 28
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # IDX: unsigned bytes, 3 (images) or 1 (labels) dimensions
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Mnist:
    """The raw MNIST arrays: 60,000 training and 10,000 test images (uint8, 28×28) and labels (int64), the dtypes
    torchvision gives. Read-only where Ray's object store holds them: a trial copies what it uses."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


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
    """Fetch the four raw files with torchvision (which skips what is already there). The only use of torch here:
    once per machine, when no MNIST is there yet."""
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


def _read_split(raw: Path, prefix: str, count: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split, the labels one per image and digits 0-9."""
    images_path, labels_path = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
    images = _read_idx(images_path, IMAGES_MAGIC, (count, IMAGE_SIDE, IMAGE_SIDE), f"({what})")
    labels = _read_idx(labels_path, LABELS_MAGIC, (len(images),), f"(one per image of {images_path.name})")
    bad = np.flatnonzero(labels > 9)
    if len(bad):
        first = int(bad[0])
        raise DataError(f"MNIST file {labels_path}: label {int(labels[first])} at index {first} "
                        f"({len(bad)} labels outside 0-9); labels must be digits 0-9")
    return images, labels.astype(np.int64)


def _read_idx(path: Path, magic: int, shape: tuple[int, ...], why: str) -> np.ndarray:
    """One IDX file of unsigned bytes, its header and size checked against `shape`.

    Parsed the way torchvision's `read_sn3_pascalvincent_tensor` does (a uint8 view past the
    header), so the arrays hold what torchvision's tensors hold, from one read of the file.
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
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _check_dims(path: Path, dims: list[int], shape: tuple[int, ...], why: str) -> None:
    """The header's count first (the usual damage), then the image size."""
    what = "images" if len(shape) == 3 else "labels"
    if dims[0] != shape[0]:
        raise DataError(f"MNIST file {path}: {dims[0]} {what}, expected {shape[0]} {why}")
    if dims[1:] != list(shape[1:]):
        raise DataError(f"MNIST file {path}: images of {dims[1]}x{dims[2]} pixels, "
                        f"expected {shape[1]}x{shape[2]}")


def _read_bytes(path: Path, max_bytes: int) -> bytearray:
    """The whole file into one writable buffer (the arrays share it), read only when it is a regular file
    (or a link to one) of at most `max_bytes`: a FIFO or device is refused without blocking."""
    try:
        return bytearray(read_regular(path, max_bytes, follow_links=True))
    except UnreadableFile as error:
        raise DataError(f"MNIST file {path}: {error}") from None
    except OSError as error:
        raise DataError(f"MNIST file {path}: cannot read it ({os_problem(error)})") from None
