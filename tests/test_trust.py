"""Results you can trust, without Ray: divergence as a status, verified trial outputs, damaged teachers
and checkpoints set aside. (The same through `sublim sweep` is in test_sweep_ray.py.)"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch

from sublim.core.files import (CHECKPOINT_FILE, DIVERGED_FILE, SUMMARY_FILE, SWEEP_FILE, TRACE_FILE, UnreadableFile,
                               read_json, read_regular)
from sublim.core.trial_folder import read_trial
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
    assert results.status(other) == ("pending", "summary.json belongs to another config than sweep.json records "
                                                "for this trial")


@pytest.mark.parametrize("damage, problem", [
    (lambda d: (d / SUMMARY_FILE).write_text((d / SUMMARY_FILE).read_text()[:80]), "summary.json does not parse"),
    (lambda d: (d / TRACE_FILE).unlink(), "trace.parquet is missing"),
    (lambda d: (d / TRACE_FILE).write_bytes((d / TRACE_FILE).read_bytes()[:300]), "trace.parquet does not read"),
    (lambda d: _edit_summary(d, lambda s: s.pop("trait_gain")), "summary.json lacks trait_gain"),
    (lambda d: _edit_summary(d, lambda s: s.update(steps=3)), "summary.json holds 3 steps of 2 epochs, expected 8"),
    (lambda d: _edit_summary(d, lambda s: s.update(trait_gain=10 ** 400)), "summary.json: trait_gain is 1000"),
    (lambda d: _edit_summary(d, lambda s: s.update(teacher_acc="high")), "summary.json: teacher_acc is 'high', not a"),
    (lambda d: _edit_summary(d, lambda s: s.update(final_distill_loss=1e308)), "summary.json: final_distill_loss is"),
    (lambda d: _edit_trace(d, lambda t: pd.concat([t] * 10)), "trace.parquet holds 80 rows, expected 8"),
    (lambda d: _edit_trace(d, lambda t: t.assign(epoch=t["epoch"].to_numpy()[::-1])), "trace.parquet: epochs are not"),
    (lambda d: _edit_trace(d, lambda t: t.assign(step=t["step"].astype(float))), "trace.parquet holds columns of"),
    (lambda d: _edit_trace(d, lambda t: t.assign(alignment_fc1=t["alignment_fc1"] * 1e4)),
     "trace.parquet: alignment_fc1 outside [-1, 1]"),
    (lambda d: _edit_trace(d, lambda t: t.iloc[:1]), "trace.parquet holds 1 rows, expected 8"),
])
def test_damaged_outputs_are_not_a_result(folder, damage, problem):
    """The sweep rebuilds what the one check finds damaged, and the report's loader, reading the same check,
    lists it as invalid with the same reason."""
    results, grid_trial, _ = folder
    damage(results.trial_dir(grid_trial.trial_id))
    status, found = results.status(grid_trial)
    assert status == "pending" and found.startswith(problem), found
    assert read_trial(results.trial_dir(grid_trial.trial_id), grid_trial.config.to_dict()).status == "invalid"
    results.clear_outputs(grid_trial.trial_id)
    assert results.status(grid_trial) == ("pending", None)


def _edit_trace(folder, change) -> None:
    change(pd.read_parquet(folder / TRACE_FILE)).to_parquet(folder / TRACE_FILE, index=False)


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
    assert results.status(other) == ("pending", "diverged.json belongs to another config than sweep.json records "
                                                "for this trial")


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
    assert len(lines) == 1 and "unusable" in lines[0] and "training the teacher again" in lines[0]
    assert "\n" not in lines[0] and lines[0].count(". ") == 0, lines[0]  # one sentence, not torch's several
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


# --- only regular files are read; nothing outside a results folder is written or deleted -------------------------


def returns(call, *args):
    """`call(*args)`, failing the test instead of hanging when it blocks (as opening a FIFO for reading does)."""
    import threading

    outcome = []

    def run():
        try:
            outcome.append((call(*args), None))
        except Exception as error:
            outcome.append((None, error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)  # a safety net: a call that does not block returns at once
    assert outcome, f"{call.__name__} blocked"
    value, error = outcome[0]
    if error is not None:
        raise error
    return value


def deep_json(levels: int = 100_000) -> str:
    return "[" * levels + "]" * levels


def make_fifo(path):
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def make_link(path, target):
    path.unlink(missing_ok=True)
    path.symlink_to(target)


def test_read_helpers_read_regular_files_only_within_limits(tmp_path):
    path = tmp_path / "x.json"
    make_fifo(path)
    with pytest.raises(UnreadableFile, match="x.json is not a regular file"):
        returns(read_json, path)
    make_link(path, tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text("{}")
    with pytest.raises(UnreadableFile, match="x.json is a symbolic link"):
        read_json(path)
    path.unlink()
    path.write_text(deep_json())
    with pytest.raises(UnreadableFile, match="x.json is nested deeper than 32 levels"):
        read_json(path)
    path.write_text(deep_json(33))
    with pytest.raises(UnreadableFile, match="nested deeper than 32 levels"):
        read_json(path)
    path.write_text(json.dumps({"a": [1, {"b": 2}]}))
    assert read_json(path) == {"a": [1, {"b": 2}]}
    with pytest.raises(UnreadableFile, match="x.json is larger than 10 bytes"):
        read_regular(path, max_bytes=10)
    with pytest.raises(UnreadableFile, match="is not a regular file"):
        read_regular(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "absent")


@pytest.mark.parametrize("name", [SUMMARY_FILE, TRACE_FILE, DIVERGED_FILE])
@pytest.mark.parametrize("kind", ["fifo", "link", "deep"])
def test_a_fifo_link_or_deep_json_in_a_trial_folder_is_a_problem_not_a_hang(folder, tmp_path, name, kind):
    results, grid_trial, _ = folder
    path = results.trial_dir(grid_trial.trial_id) / name
    outside = tmp_path / "someone-elses" / name
    outside.parent.mkdir()
    outside.write_bytes(path.read_bytes() if path.exists() else b"{}")
    {"fifo": make_fifo, "link": lambda p: make_link(p, outside), "deep": lambda p: p.write_text(deep_json())}[kind](path)
    status, problem = returns(results.status, grid_trial)
    expected = {"fifo": "is not a regular file", "link": "is a symbolic link",
                "deep": "does not read" if name == TRACE_FILE else "is nested deeper than"}[kind]
    assert status == "pending" and problem.startswith(name) and expected in problem, problem
    results.clear_outputs(grid_trial.trial_id)
    assert not os.path.lexists(path) and outside.exists()  # the link went, never what it pointed to


@pytest.mark.parametrize("kind", ["fifo", "link", "dangling link"])
def test_teachers_checkpoints_and_records_that_are_not_regular_files_are_set_aside(tmp_path, tiny, kind):
    config, data, teacher = tiny
    lines = []
    cache = TeacherCache(tmp_path / "teachers", log=lines.append)
    cache.folder.mkdir()
    other = tmp_path / "other.pt"
    save_state(other, teacher.state_dict())
    damage = {"fifo": make_fifo, "link": lambda p: make_link(p, other),
              "dangling link": lambda p: make_link(p, tmp_path / "gone")}[kind]
    damage(cache.path(teacher.key))
    stored = returns(cache.put_first, teacher)  # a dangling link used to make this loop for ever
    assert stored is teacher and torch.equal(cache.get(teacher.key).params, teacher.params)
    assert other.exists() and len(lines) == 1 and "set aside" in lines[0]
    damage(cache.divergence_path(teacher.key))
    assert returns(cache.divergence, teacher.key) is None and other.exists()

    results = ResultsFolder(tmp_path / "sweep", log=lines.append)
    results.trial_dir("t").mkdir(parents=True)
    damage(results.trial_dir("t") / CHECKPOINT_FILE)
    fresh = Trial(config, data, teacher)
    returns(results.restore, "t", fresh)
    assert fresh.epoch == 0 and "t: checkpoint unusable" in lines[-1] and other.exists()


def test_deep_or_incomplete_sweep_json_is_one_line(folder):
    results, grid_trial, _ = folder
    sweep = results.path / SWEEP_FILE
    for text, message in [(deep_json(), "nested deeper than 32 levels"),
                          (json.dumps({"trials": [{"trial_id": grid_trial.trial_id}]}), "KeyError: 'config'")]:
        sweep.write_text(text)
        with pytest.raises(SweepError, match="sweep.json: damaged") as error:
            results.recorded_trials()
        assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("entry", ["trial folder", "trials", "teachers", "a file's name"])
def test_a_results_folder_whose_entries_lead_elsewhere_is_refused_and_nothing_there_touched(folder, tmp_path, entry):
    results, grid_trial, _ = folder
    trial_folder = results.trial_dir(grid_trial.trial_id)
    victim = tmp_path / "their-run"
    shutil.copytree(trial_folder, victim)
    before = {p.name: p.read_bytes() for p in victim.iterdir()}
    if entry == "trial folder":
        shutil.rmtree(trial_folder)
        trial_folder.symlink_to(victim)
    elif entry == "trials":
        (tmp_path / "their-trials").mkdir()
        os.replace(victim, tmp_path / "their-trials" / grid_trial.trial_id)
        victim = tmp_path / "their-trials" / grid_trial.trial_id
        shutil.rmtree(results.path / "trials")
        (results.path / "trials").symlink_to(tmp_path / "their-trials")
    elif entry == "teachers":
        results.teachers.folder.symlink_to(victim)
    else:
        (trial_folder / SUMMARY_FILE).unlink()
        (trial_folder / SUMMARY_FILE).mkdir()
    with pytest.raises(SweepError) as error:
        results.check_entries((grid_trial,))
    message = str(error.value)
    assert "\n" not in message and ("symbolic link" in message or "is a folder where" in message), message
    assert {p.name: p.read_bytes() for p in victim.iterdir()} == before


def test_sublim_sweep_refuses_a_linked_trial_folder_in_one_line_before_any_work(folder, tmp_path, capsys):
    from sublim import cli

    results, grid_trial, _ = folder
    victim = tmp_path / "their-run"
    os.replace(results.trial_dir(grid_trial.trial_id), victim)
    results.trial_dir(grid_trial.trial_id).symlink_to(victim)
    before = {p.name: p.read_bytes() for p in victim.iterdir()}
    settings = {k: v for k, v in grid_trial.config.to_dict().items()
                if k not in ("seed", "mitigation", "strength", "student_init")}
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({"name": "sweep", "seeds": [grid_trial.config.seed], "arms": [{"mitigation": "none"}],
                                "settings": settings}))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", str(spec), "--storage", str(tmp_path), "--data-dir", str(tmp_path / "no-mnist")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert f"trials/{grid_trial.trial_id} is a symbolic link (to {victim})" in err
    assert {p.name: p.read_bytes() for p in victim.iterdir()} == before
