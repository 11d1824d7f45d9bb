"""Damaged MNIST files are named with what is wrong, in one line, before any training.

Most cases use tiny synthetic IDX files (6 training, 4 test images) and the checker's count
parameters; the real-data cases link the real files into tmp_path and damage one copy.
"""

import gzip
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from sublim.core.files import DataError
from sublim.core.mnist import RAW_FILES, load_mnist, read_raw_mnist

TINY = dict(train_count=6, test_count=4)


def idx_bytes(magic: int, dims: list[int], payload: bytes) -> bytes:
    """An IDX file: big-endian magic and dims, then the unsigned bytes."""
    return struct.pack(f">{len(dims) + 1}I", magic, *dims) + payload


def images_file(count: int, rows: int = 28, cols: int = 28, magic: int = 0x803) -> bytes:
    return idx_bytes(magic, [count, rows, cols], bytes(i % 256 for i in range(count * rows * cols)))


def labels_file(count: int, labels: list[int] | None = None) -> bytes:
    return idx_bytes(0x801, [count], bytes(labels if labels is not None else [i % 10 for i in range(count)]))


@pytest.fixture
def raw(tmp_path):
    """A valid tiny MNIST/raw folder (counts as in TINY)."""
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for prefix, count in (("train", 6), ("t10k", 4)):
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(images_file(count))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(labels_file(count))
    return folder


def problem(raw, **counts) -> str:
    """The DataError message for `raw`, checked to be one line."""
    with pytest.raises(DataError) as caught:
        read_raw_mnist(raw, **{**TINY, **counts})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_valid_tiny_files_load_as_torchvision_types(raw):
    mnist = read_raw_mnist(raw, **TINY)
    assert mnist.train_images.shape == (6, 28, 28) and mnist.train_images.dtype == np.uint8
    assert mnist.test_labels.tolist() == [0, 1, 2, 3] and mnist.test_labels.dtype == np.int64
    assert mnist.train_images.flatten()[:3].tolist() == [0, 1, 2]


def test_truncated_images_file(raw):
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    assert problem(raw) == (f"MNIST file {path}: truncated: 4620 bytes, expected 4720 "
                            f"(16-byte header + 6 x 28 x 28 bytes)")


def test_trailing_bytes_in_labels_file(raw):
    path = raw / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\0\0")
    assert problem(raw) == f"MNIST file {path}: trailing bytes: 14 bytes, expected 12 (8-byte header + 4 bytes)"


def test_file_shorter_than_its_header(raw):
    path = raw / "train-labels-idx1-ubyte"
    path.write_bytes(b"\0\0\x08")
    assert problem(raw) == f"MNIST file {path}: truncated: 3 bytes, shorter than its 8-byte header"


def test_wrong_magic(raw):
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(images_file(4, magic=0x801))
    assert problem(raw) == (f"MNIST file {path}: magic number 0x00000801, expected 0x00000803 "
                            f"(IDX of unsigned bytes, 3 dimensions)")


def test_gzip_compressed_file_under_the_plain_name(raw):
    path = raw / "train-labels-idx1-ubyte"
    path.write_bytes(gzip.compress(path.read_bytes()))
    message = problem(raw)
    assert message.startswith(f"MNIST file {path}: magic number 0x1f8b")
    assert message.endswith("(the file is gzip-compressed: decompress it with gunzip)")


def test_wrong_count_in_header(raw):
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(images_file(5))
    assert problem(raw) == f"MNIST file {path}: 5 images, expected 6 (the MNIST training set)"


@pytest.mark.parametrize("rows, cols", [(28, 27), (32, 32)])
def test_wrong_rows_or_cols(raw, rows, cols):
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(images_file(4, rows, cols))
    assert problem(raw) == f"MNIST file {path}: images of {rows}x{cols} pixels, expected 28x28"


def test_label_out_of_range(raw):
    path = raw / "train-labels-idx1-ubyte"
    path.write_bytes(labels_file(6, [0, 1, 2, 12, 4, 255]))
    assert problem(raw) == (f"MNIST file {path}: label 12 at index 3 (2 labels outside 0-9); "
                            f"labels must be digits 0-9")


def test_labels_count_disagreeing_with_images(raw):
    path = raw / "t10k-labels-idx1-ubyte"
    path.write_bytes(labels_file(3))
    assert problem(raw) == f"MNIST file {path}: 3 labels, expected 4 (one per image of t10k-images-idx3-ubyte)"


@pytest.mark.parametrize("name", RAW_FILES)
def test_missing_one_file(raw, name):
    (raw / name).unlink()
    message = problem(raw)
    assert message.startswith(f"MNIST file {raw / name}: missing; MNIST/raw must hold train-images-idx3-ubyte, ")


def test_missing_file_with_only_its_gz_copy(raw):
    path = raw / "train-labels-idx1-ubyte"
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    assert f"{path}: missing (found train-labels-idx1-ubyte.gz: decompress it with gunzip);" in problem(raw)


def test_unreadable_file(raw):
    path = raw / "t10k-images-idx3-ubyte"
    path.unlink()
    path.mkdir()  # present by name, but not a file: reported as missing rather than a traceback
    assert problem(raw).startswith(f"MNIST file {path}: missing")


def test_no_mnist_folder_keeps_the_helpful_message(tmp_path):
    with pytest.raises(DataError) as caught:
        load_mnist(tmp_path / "nowhere")
    message = str(caught.value)
    assert message.startswith(f"cannot load MNIST: no MNIST in {tmp_path / 'nowhere'}/MNIST/raw; pass --data-dir")
    assert "SUBLIM_DATA_DIR=DIR" in message and "internet access" in message and "\n" not in message


def test_load_mnist_checks_mnist_counts(raw):
    """Through the public loader the counts are MNIST's own: a tiny valid set is refused by name."""
    with pytest.raises(DataError) as caught:
        load_mnist(raw.parent.parent)
    assert str(caught.value).endswith("train-images-idx3-ubyte: 6 images, expected 60000 (the MNIST training set)")


def test_cli_refuses_damaged_files_with_one_line_and_exit_2(raw, tmp_path):
    """The tiny set is refused for its count (MNIST's own through the CLI), before any training."""
    path = raw / "train-images-idx3-ubyte"
    command = [sys.executable, "-m", "sublim", "run", "--data-dir", str(raw.parent.parent),
               "--out", str(tmp_path / "run"), "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"sublim run: error: MNIST file {path}: 6 images, expected 60000 (the MNIST training set)"
    assert "Traceback" not in done.stderr and "training" not in done.stdout
    assert not (tmp_path / "run" / "summary.json").exists()


@pytest.fixture
def real_copy(data_dir, tmp_path):
    """tmp_path/MNIST/raw linking the real files, each replaceable by a damaged copy."""
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for name in RAW_FILES:
        (folder / name).symlink_to(data_dir / "MNIST" / "raw" / name)
    return folder


@pytest.mark.mnist
def test_loaded_tensors_are_exactly_torchvisions(mnist, data_dir):
    from torchvision.datasets import MNIST

    for train, images, labels in ((True, mnist.train_images, mnist.train_labels),
                                  (False, mnist.test_images, mnist.test_labels)):
        reference = MNIST(str(data_dir), train=train, download=False)
        images, labels = torch.from_numpy(images), torch.from_numpy(labels)
        assert images.dtype == reference.data.dtype and images.shape == reference.data.shape
        assert labels.dtype == reference.targets.dtype and labels.shape == reference.targets.shape
        assert torch.equal(images, reference.data) and torch.equal(labels, reference.targets)


@pytest.mark.mnist
def test_real_labels_file_one_label_short(real_copy, data_dir):
    path = real_copy / "train-labels-idx1-ubyte"
    data = (data_dir / "MNIST" / "raw" / path.name).read_bytes()
    path.unlink()
    path.write_bytes(struct.pack(">II", 0x801, 59_999) + data[8:-1])
    with pytest.raises(DataError) as caught:
        load_mnist(real_copy.parent.parent)
    assert str(caught.value) == (f"MNIST file {path}: 59999 labels, expected 60000 "
                                 f"(one per image of train-images-idx3-ubyte)")


@pytest.mark.mnist
def test_real_images_file_truncated(real_copy):
    path = real_copy / "t10k-images-idx3-ubyte"
    source = path.resolve()
    path.unlink()
    with open(source, "rb") as whole, open(path, "wb") as part:
        shutil.copyfileobj(whole, part)
        part.truncate(7_840_000)
    with pytest.raises(DataError) as caught:
        load_mnist(real_copy.parent.parent)
    assert str(caught.value) == (f"MNIST file {path}: truncated: 7840000 bytes, expected 7840016 "
                                 f"(16-byte header + 10000 x 28 x 28 bytes)")


def test_damaged_file_in_the_download_folder_says_how_to_refetch(raw, monkeypatch):
    monkeypatch.delenv("SUBLIM_DATA_DIR", raising=False)
    monkeypatch.setattr("sublim.core.mnist.DEFAULT_DOWNLOAD_ROOT", raw.parent.parent)
    with pytest.raises(DataError) as caught:
        load_mnist()  # all four files present: no download tried
    assert str(caught.value).endswith("6 images, expected 60000 (the MNIST training set); "
                                      "delete it and run again to download it afresh")


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried mirror A, got:\nno network\n")

    monkeypatch.delenv("SUBLIM_DATA_DIR", raising=False)
    monkeypatch.setattr("sublim.core.mnist.DEFAULT_DOWNLOAD_ROOT", tmp_path)
    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError) as caught:
        load_mnist()
    assert str(caught.value).startswith(f"cannot load MNIST: download to {tmp_path} failed (Error downloading "
                                        f"train-images-idx3-ubyte.gz: Tried mirror A, got: no network); pass")
