"""Results you can trust, without Ray: divergence as a status, verified trial outputs, damaged teachers
and checkpoints set aside. (The same through `sublim sweep` is in test_sweep_ray.py.)"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest
import torch

from sublim.core.files import CHECKPOINT_FILE, DIVERGED_FILE, SUMMARY_FILE, TRACE_FILE
from sublim.sweeps.results import ResultsFolder, SweepError
from sublim.sweeps.spec import GridTrial
from sublim.trainable import Diverged, Trial, train_teacher, write_trial_outputs
from sublim.trainable.results import TeacherCache, save_state

from conftest import tiny_config, tiny_data


def finished_trial(tiny) -> Trial:
    config, data, teacher = tiny
    trial = Trial(config, data, teacher)
    for _ in trial.run():
        pass
    return trial


@pytest.fixture
def folder(tmp_path, tiny):
    """A results folder holding one finished tiny trial: (folder, its grid trial, the trial)."""
    trial = finished_trial(tiny)
    grid_trial = GridTrial(trial.config.trial_id, trial.config)
    results = ResultsFolder(tmp_path / "sweep", log=lambda line: None)
    write_trial_outputs(results.trial_dir(grid_trial.trial_id), trial.summary(), trial.trace_columns())
    return results, grid_trial, trial


def test_a_huge_learning_rate_stops_the_student_naming_step_and_quantity(tiny):
    config, data, teacher = tiny
    trial = Trial(config.replace(lr=1e30), data, teacher)
    with pytest.raises(Diverged) as caught:
        for _ in trial.run():
            pass
    error = caught.value
    assert error.model == "student" and error.step <= 2 and error.quantity in ("distillation loss", "trait loss")
    assert str(error).startswith(f"the student diverged at step {error.step}: its ")
    assert trial.epoch == 0  # stopped within the first epoch, not after it


def test_a_diverging_teacher_is_named_too():
    with pytest.raises(Diverged, match=r"the teacher diverged at step \d+: its (loss|parameters) is not finite"):
        train_teacher(tiny_config(teacher_lr=1e30, teacher_epochs=2), tiny_data())


def test_a_teacher_that_diverged_is_recorded_and_never_trained_again(tmp_path):
    config, data, calls = tiny_config(teacher_lr=1e30, teacher_epochs=2), tiny_data(), []

    def train():
        calls.append(1)
        return train_teacher(config, data)

    cache = TeacherCache(tmp_path)
    with pytest.raises(Diverged) as trained:
        cache.get_or_train(config.teacher_key, train)
    with pytest.raises(Diverged) as recorded:  # another arm of the seed: the record, not a second training
        cache.get_or_train(config.teacher_key, train)
    assert len(calls) == 1 and recorded.value.record() == trained.value.record()
    assert trained.value.model == "teacher" and not cache.path(config.teacher_key).exists()


def diverges():
    """A teacher's training that stops at step 3 on a non-finite loss."""
    raise Diverged("teacher", 3, "loss")


def test_a_teacher_with_a_divergence_record_is_not_counted_as_one_to_train(folder):
    results, grid_trial, _ = folder
    key = grid_trial.config.teacher_key
    assert results.teachers_missing([grid_trial]) == [key]
    with pytest.raises(Diverged):
        results.teachers.get_or_train(key, diverges)
    assert results.teachers_missing([grid_trial]) == []


@pytest.mark.parametrize("damage", [
    lambda text: text[:20],  # cut short
    lambda text: text.replace('"teacher"', '"student"', 1),  # not a teacher's record
    lambda text: text.replace('"step": ', '"step": 1', 1),  # a step its message does not name
])
def test_a_damaged_divergence_record_is_set_aside_and_the_teacher_trained_again(tmp_path, tiny, damage):
    _, _, teacher = tiny
    lines = []
    cache = TeacherCache(tmp_path, log=lines.append)
    with pytest.raises(Diverged):
        cache.get_or_train(teacher.key, diverges)
    path = cache.divergence_path(teacher.key)
    path.write_text(damage(path.read_text()))
    assert cache.get_or_train(teacher.key, lambda: teacher) == (teacher, True)
    assert path.with_name(path.name + ".bad").exists() and len(lines) == 1 and "unusable" in lines[0]
    stored, trained = cache.get_or_train(teacher.key, lambda: pytest.fail("a stored teacher was trained again"))
    assert not trained and torch.equal(stored.params, teacher.params)


def test_finished_outputs_are_verified_against_the_trial(folder):
    results, grid_trial, _ = folder
    assert results.status(grid_trial) == ("finished", None)
    other = GridTrial(grid_trial.trial_id, grid_trial.config.replace(lr=1e-3))
    assert results.status(other) == ("pending", "summary.json belongs to another config")


@pytest.mark.parametrize("damage, problem", [
    (lambda d: (d / SUMMARY_FILE).write_text((d / SUMMARY_FILE).read_text()[:80]), "summary.json is missing or does not parse"),
    (lambda d: (d / TRACE_FILE).unlink(), "trace.parquet does not read (FileNotFoundError)"),
    (lambda d: (d / TRACE_FILE).write_bytes((d / TRACE_FILE).read_bytes()[:300]), "trace.parquet does not read"),
    (lambda d: _edit_summary(d, lambda s: s.pop("trait_gain")), "summary.json lacks trait_gain"),
    (lambda d: _edit_summary(d, lambda s: s.update(steps=3)), "summary.json holds 3 steps of 2 epochs, expected 8"),
])
def test_damaged_outputs_are_not_a_result(folder, damage, problem):
    results, grid_trial, _ = folder
    damage(results.trial_dir(grid_trial.trial_id))
    status, found = results.status(grid_trial)
    assert status == "pending" and found.startswith(problem), found
    results.clear_outputs(grid_trial.trial_id)
    assert results.status(grid_trial) == ("pending", None)


def _edit_summary(folder, change) -> None:
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    change(summary)
    (folder / SUMMARY_FILE).write_text(json.dumps(summary))


def test_a_diverged_record_is_a_status_for_its_config_only(folder):
    results, grid_trial, _ = folder
    results.clear_outputs(grid_trial.trial_id)
    results.store_diverged(grid_trial.trial_id, grid_trial.config, Diverged("student", 7, "applied gradient"))
    record = json.loads((results.trial_dir(grid_trial.trial_id) / DIVERGED_FILE).read_text())
    assert record["step"] == 7 and record["quantity"] == "applied gradient" and "versions" in record
    assert results.status(grid_trial) == ("diverged", None)
    other = GridTrial(grid_trial.trial_id, grid_trial.config.replace(seed=9))
    assert results.status(other) == ("pending", "diverged.json belongs to another config")


@pytest.mark.parametrize("trial_id", ["../escape", "a/b", ".hidden", "", "a\n", "s" * 300])
def test_trial_ids_that_are_not_plain_folder_names_are_refused(tmp_path, trial_id):
    with pytest.raises(SweepError, match="is not allowed"):
        ResultsFolder(tmp_path).trial_dir(trial_id)


def test_a_checkpoint_continues_the_trial_and_a_damaged_one_starts_it_over(tmp_path, tiny):
    config, data, teacher = tiny
    lines = []
    results = ResultsFolder(tmp_path, log=lines.append)
    first = Trial(config, data, teacher)
    next(first.run())
    results.save_epoch("t", first)
    assert (results.trial_dir("t") / CHECKPOINT_FILE).exists() and first.epoch == 1
    resumed = Trial(config, data, teacher)
    results.restore("t", resumed)
    assert resumed.epoch == 1 and not lines

    (results.trial_dir("t") / CHECKPOINT_FILE).write_bytes(pickle.dumps({"epoch": 1}))  # not tensors only
    fresh = Trial(config, data, teacher)
    results.restore("t", fresh)
    assert fresh.epoch == 0 and len(lines) == 1 and "t: checkpoint unusable" in lines[0]
    assert not (results.trial_dir("t") / CHECKPOINT_FILE).exists()

    save_state(results.trial_dir("t") / CHECKPOINT_FILE, {**first.state_dict(), "config": {**config.to_dict(), "lr": 1.0}})
    results.restore("t", fresh)
    assert fresh.epoch == 0 and "different trial configuration" in lines[-1]


def test_the_last_epoch_leaves_outputs_and_no_checkpoint(tmp_path, tiny):
    results = ResultsFolder(tmp_path, log=lambda line: None)
    config, data, teacher = tiny
    trial = Trial(config, data, teacher)
    for _ in trial.run():
        results.save_epoch("t", trial)
    assert sorted(p.name for p in results.trial_dir("t").iterdir()) == [SUMMARY_FILE, TRACE_FILE]


@pytest.mark.parametrize("content", [b"", b"garbage", pickle.dumps({"key": "x"}), "wrong key"])
def test_an_unusable_teacher_file_is_set_aside_with_a_line(tmp_path, tiny, content):
    _, _, teacher = tiny
    lines = []
    cache = TeacherCache(tmp_path, log=lines.append)
    if content == "wrong key":
        save_state(cache.path("0123456789abcdef"), teacher.state_dict())
        key = "0123456789abcdef"
    else:
        key = teacher.key
        cache.path(key).write_bytes(content)
    assert cache.get(key) is None
    assert not cache.path(key).exists() and cache.path(key).with_name(cache.path(key).name + ".bad").exists()
    assert len(lines) == 1 and "unusable" in lines[0] and "training it again" in lines[0]
    assert cache.put_first(teacher) is teacher
    assert torch.equal(cache.get(teacher.key).params, teacher.params)


@pytest.mark.mnist
def test_sublim_run_that_diverges_exits_2_in_one_line_with_its_record(data_dir, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sublim", "run", "--data-dir", str(data_dir), "--out", str(out), "--lr", "1e30",
               "--epochs", "1", "--teacher-epochs", "1", "--noise-count", "2048", "--threads", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("sublim run: error: none/shared, seed 0: the student diverged at step ") and "wrote" in last
    assert sorted(p.name for p in out.iterdir()) == [DIVERGED_FILE]
