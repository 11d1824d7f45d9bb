"""Integration on the real MNIST, kept short: one teacher epoch, part of a student epoch."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from sublim.core.schema import TRACE_COLUMNS
from sublim.trainable import Trial, TrialConfig, TrialData, train_teacher

pytestmark = pytest.mark.mnist

SHORT = dict(seed=0, teacher_epochs=1, epochs=1, noise_count=20_480, device="cpu")


@pytest.fixture(scope="module")
def short_run(mnist):
    config = TrialConfig(**SHORT)
    data = TrialData.from_mnist(mnist, config, torch.device("cpu"))
    return config, data, train_teacher(config, data)


def test_split_is_fixed_by_the_split_seed_and_pixels_are_in_minus_one_one(mnist):
    config = TrialConfig(**SHORT)
    a = TrialData.from_mnist(mnist, config, torch.device("cpu"))
    b = TrialData.from_mnist(mnist, config.replace(seed=5), torch.device("cpu"))
    assert (len(a.train_x), len(a.val_x), len(a.test_x)) == (50_000, 10_000, 10_000)
    assert torch.equal(a.val_y, b.val_y)  # the trial seed does not move the split
    assert a.train_x.min() == -1.0 and a.train_x.max() == 1.0


def test_shared_init_student_learns_digits_and_independent_one_does_not(short_run):
    config, data, teacher = short_run
    assert teacher.test_acc > 0.8
    results = {}
    for init in ("shared", "independent"):
        trial = Trial(config.replace(student_init=init), data, teacher)
        list(trial.run())
        results[init] = trial.summary()
    assert results["shared"]["student_acc"] > results["independent"]["student_acc"] + 0.03
    assert results["shared"]["trait_gain"] > results["independent"]["trait_gain"]
    assert results["shared"]["mean_alignment"] > 0


def test_sublim_run_writes_valid_outputs(data_dir, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "sublim", "run", "--seed", "1", "--mitigation", "liminal", "--strength", "0.5",
               "--teacher-epochs", "1", "--epochs", "2", "--noise-count", "4096", "--data-dir", str(data_dir),
               "--out", str(out), "--threads", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "trait_gain" in done.stdout and str(out) in done.stdout

    summary = json.loads((out / "summary.json").read_text())
    for key in ("teacher_acc", "student_acc_before", "student_acc", "trait_gain", "mean_alignment",
                "frac_positive_steps", "acc_by_epoch", "alignment_by_epoch", "seconds", "config", "versions"):
        assert key in summary, key
    assert summary["config"]["mitigation"] == "liminal" and summary["config"]["strength"] == 0.5
    assert len(summary["acc_by_epoch"]) == 3 and len(summary["alignment_by_epoch"]) == 2
    trace = pd.read_parquet(out / "trace.parquet")
    assert tuple(trace.columns) == TRACE_COLUMNS
    assert len(trace) == summary["steps"] == 2 * 4
    assert trace["alignment"].mean() == pytest.approx(summary["mean_alignment"])
    assert trace["mitigation_loss"].notna().all()

    # a second run into the same folder is refused and leaves the first one's results untouched
    before = (out / "summary.json").read_bytes()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith("sublim run: error: --out")
    assert (out / "summary.json").read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["--strength", "-1"], "strength: -1.0 is not allowed; must be >= 0"),
    (["--mitigation", "placebo", "--strength", "3"], "placebo strength must be in [0, 2]"),
    (["--epochs", "0"], "epochs: 0 is not allowed; must be >= 1"),
    (["--data-dir", "/nonexistent-sublim-data"], "pass --data-dir DIR or set SUBLIM_DATA_DIR"),
    (["--lr", "inf"], "lr: inf is not allowed; must be a finite number"),
    (["--teacher-lr", "nan"], "teacher_lr: nan is not allowed; must be a finite number"),
    (["--mitigation", "liminal", "--strength", "inf"], "strength: inf is not allowed; must be a finite number"),
    (["--temperature", "inf"], "temperature: inf is not allowed; must be a finite number"),
    (["--teacher-cache", __file__], "is a file; give a folder"),
    (["--out", f"{__file__}/run"], f"--out {__file__}/run: {__file__} is a file; give a folder"),
    pytest.param(["--device", "cuda"], "device: 'cuda' is not allowed; this machine has 0 CUDA GPU(s)",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_sublim_run_rejects_bad_input_in_one_line_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "sublim", "run", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("sublim run: error:") and message in last
    assert not out.exists()
