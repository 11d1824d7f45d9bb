"""Outputs are written atomically, and states load without unpickling arbitrary objects."""

import json

import pandas as pd
import pytest
import torch

from sublim.core.schema import TRACE_COLUMNS
from sublim.trainable import Trial, write_trial_outputs
from sublim.core.files import atomic_write, write_json
from sublim.trainable.results import TeacherCache, load_state, save_state


def test_a_crash_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    write_json(target, {"trait_gain": 0.25})

    def crash(tmp):
        tmp.write_text('{"trait_gain": 0.')  # half a file, then the process dies
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert json.loads(target.read_text()) == {"trait_gain": 0.25}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_nan_is_written_as_json_null(tmp_path):
    write_json(tmp_path / "s.json", {"x": float("nan"), "y": [1.0, float("inf")]})
    assert json.loads((tmp_path / "s.json").read_text()) == {"x": None, "y": [1.0, None]}


def test_trial_outputs_round_trip(tmp_path, tiny):
    config, data, teacher = tiny
    trial = Trial(config, data, teacher)
    list(trial.run())
    write_trial_outputs(tmp_path, trial.summary(), trial.trace_columns())
    trace = pd.read_parquet(tmp_path / "trace.parquet")
    assert tuple(trace.columns) == TRACE_COLUMNS
    assert trace["step"].dtype == "int64" and trace["epoch"].tolist()[0] == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == len(trace) and summary["teacher_key"] == config.teacher_key


def test_teacher_cache_round_trip(tmp_path, tiny):
    config, _, teacher = tiny
    cache = TeacherCache(tmp_path)
    assert cache.get(config.teacher_key) is None
    assert cache.put_first(teacher) is teacher
    again = cache.get(config.teacher_key)
    assert torch.equal(again.params, teacher.params) and again.test_acc == teacher.test_acc


class Payload:
    """Stands for any object a shared results folder could smuggle into a pickle."""


def test_a_state_holding_arbitrary_objects_is_refused(tmp_path):
    torch.save({"evil": Payload()}, tmp_path / "state.pt")
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_state(tmp_path / "state.pt")
    save_state(tmp_path / "ok.pt", {"x": torch.ones(2), "epoch": 3, "name": "a"})
    assert load_state(tmp_path / "ok.pt")["epoch"] == 3
