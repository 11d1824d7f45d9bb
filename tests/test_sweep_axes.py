"""Axes in a spec: any trial setting over a list of values, validated before Ray starts, with ids that name each
value; a spec without axes gives the very grid and sweep.json it gave before axes existed."""

import argparse
import hashlib
import json

import pytest
import yaml

from sublim.cli.sweep import check_waves
from sublim.cli.waves import plan
from sublim.sweeps.results import ResultsFolder, SweepError, trial_records
from sublim.sweeps.spec import SpecError, SweepSpec
from sublim.sweeps.tune_run import launch_order

from conftest import REPO

TINY = {"name": "axes", "seeds": [0, 1], "arms": [{"mitigation": "none"}, {"mitigation": "liminal", "strengths": 1.0}],
        "settings": {"epochs": 2}}


def spec_of(axes, **changes) -> SweepSpec:
    return SweepSpec.from_dict({**TINY, **changes, "axes": axes})


@pytest.mark.parametrize("name, digest", [  # spec.to_dict() and trial_records() as computed before axes existed
    ("smoke", "1f53dee2b84f52ded96317117df4b03ba455fb3b34fcd9be084fdaf09cd9db35"),
    ("paper", "255cbbc928371e0e5731fb2f42a8ec0ce05ddfd78fbe3dda01910390fda41a86"),
])
def test_a_spec_without_axes_gives_the_grid_and_sweep_json_it_gave_before(name, digest):
    spec = SweepSpec.load(REPO / "sweeps" / f"{name}.yaml")
    assert [t.trial_id for t in spec.trials] == [t.config.trial_id for t in spec.trials]
    assert "axes" not in spec.to_dict()
    blob = json.dumps({"spec": spec.to_dict(), "trials": trial_records(spec)}, sort_keys=True)
    assert hashlib.sha256(blob.encode()).hexdigest() == digest


def test_the_grid_is_seeds_by_arms_by_the_axes_with_ids_naming_each_value():
    spec = spec_of({"lr": [0.001, 0.0003], "hidden": [64, 1024]})
    assert len(spec.trials) == 2 * 2 * 4
    assert [t.trial_id for t in spec.trials[:4]] == [
        "s000-none-shared-hidden=64-lr=0.001", "s000-none-shared-hidden=64-lr=0.0003",
        "s000-none-shared-hidden=1024-lr=0.001", "s000-none-shared-hidden=1024-lr=0.0003"]
    assert spec.trials[-1].trial_id == "s001-liminal@1-shared-hidden=1024-lr=0.0003"
    assert {(t.config.hidden, t.config.lr, t.config.epochs) for t in spec.trials} == {
        (h, lr, 2) for h in (64, 1024) for lr in (0.001, 0.0003)}
    assert spec.to_dict()["axes"] == {"hidden": [64, 1024], "lr": [0.001, 0.0003]}
    assert SweepSpec.from_dict(spec.to_dict()).trials == spec.trials  # sweep.json's spec gives the same grid


def test_a_student_axis_shares_each_seeds_teacher_and_a_teacher_axis_trains_one_per_value():
    assert len({t.config.teacher_key for t in spec_of({"lr": [0.001, 0.0003, 0.003]}).trials}) == 2
    assert len({t.config.teacher_key for t in spec_of({"hidden": [32, 64, 128]}).trials}) == 2 * 3


def test_launch_order_starts_every_teacher_then_runs_the_widest_students_first():
    order = launch_order(list(spec_of({"hidden": [64, 1024]}).trials))
    firsts = [(t.config.hidden, t.config.seed, t.config.mitigation) for t in order[:4]]
    assert firsts == [(1024, 0, "liminal"), (1024, 1, "liminal"), (64, 0, "liminal"), (64, 1, "liminal")]
    assert [t.config.hidden for t in order[4:]] == [1024, 1024, 64, 64]


@pytest.mark.parametrize("axes, settings, key, message", [
    ({"hidden": [64, "wide"]}, {}, "axes.hidden[1]", "'wide' is not allowed; must be of type int"),
    ({"hidden": [64, 0]}, {}, "axes.hidden[1]", "0 is not allowed; must be >= 1"),
    ({"tau2_epochs": [1.0, 3.0]}, {}, "axes.tau2_epochs[1]", "must be in (0, epochs=2]"),
    ({"lr": [0.001]}, {"epochs": 2, "lr": 0.01}, "axes.lr", "also in settings"),
    ({"hiden": [64]}, {}, "axes.hiden", "unknown setting (did you mean hidden?); allowed: init"),
    ({"strength": [1.0]}, {}, "axes.strength", "set by the grid, not by axes; put it under 'arms'"),
    ({"seed": [1]}, {}, "axes.seed", "put it under 'seeds'"),
    ({"lr": []}, {}, "axes.lr", "expected a non-empty list of values"),
    ({"lr": 0.001}, {}, "axes.lr", "expected a non-empty list of values"),
    ({"lr": [0.001, 0.001]}, {}, "axes.lr", "a value is listed twice"),
    ({"schedule": ["constant", "liminal"], "probe_batch_size": list(range(1, 9)), "noise_count": [1234567890],
      "temperature": [1.2345678901], "kl_logits": ["class"], "lambda0": [0.123456789]}, {}, "axes",
     "characters) is not allowed; a trial id names a folder: at most 100 characters"),
])
def test_a_bad_axis_is_one_line_naming_its_key(axes, settings, key, message):
    with pytest.raises(SpecError) as error:
        spec_of(axes, settings=settings or TINY["settings"])
    assert str(error.value).startswith(f"<spec>: key '{key}': ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_grid_too_large_is_refused_before_it_is_built():
    with pytest.raises(SpecError, match="key 'seeds': 2 seeds x 40,000 points of arms x axes = 80,000 trials"):
        spec_of({"noise_count": list(range(1, 201)), "probe_batch_size": list(range(1, 101))})


def grown(tmp_path, first: dict, then: dict) -> tuple[ResultsFolder, SweepSpec, list[str]]:
    """A folder recorded with spec `first` (changes to TINY), and what spec `then` adds to it."""
    folder = ResultsFolder(tmp_path / "axes", log=lambda line: None)
    folder.record("axes", SweepSpec.from_dict({**TINY, **first}), yaml.safe_dump({**TINY, **first}))
    spec = SweepSpec.from_dict({**TINY, **then})
    return folder, spec, folder.added_by(spec)


def test_a_new_axis_value_extends_the_folder(tmp_path):
    folder, spec, added = grown(tmp_path, {"axes": {"hidden": [32]}}, {"axes": {"hidden": [32, 64]}})
    assert added == [t.trial_id for t in spec.trials if t.config.hidden == 64] and len(added) == 4
    assert all(t.endswith("-hidden=64") for t in added)
    folder.record("axes", spec, "")
    sweep = json.loads((folder.path / "sweep.json").read_text())
    assert [t["trial_id"] for t in sweep["trials"]] == [t.trial_id for t in spec.trials]
    assert sweep["extensions"][0]["added"] == added and sweep["spec"]["axes"] == {"hidden": [32, 64]}
    assert folder.added_by(spec) == []


def test_a_new_axis_extends_a_folder_made_without_axes_and_its_trials_keep_their_ids(tmp_path):
    folder, spec, added = grown(tmp_path, {}, {"axes": {"lr": [0.0003, 0.001]}})  # 0.0003: the default they ran with
    assert added == [t.trial_id for t in spec.trials if t.config.lr == 0.001] and len(added) == 4
    kept = [t["trial_id"] for t in folder.recorded_trials()]
    assert kept == ["s000-none-shared", "s000-liminal@1-shared", "s001-none-shared", "s001-liminal@1-shared"]
    folder.record("axes", spec, "")
    grid = folder.grid_of(spec)  # what the sweep runs: the old trials under their old ids, the new ones named
    assert [t.trial_id for t in grid.trials[:2]] == ["s000-none-shared", "s000-none-shared-lr=0.001"]
    assert [t["trial_id"] for t in folder.recorded_trials()] == [t.trial_id for t in grid.trials]
    assert folder.added_by(spec) == [] and folder.grid_of(spec) == grid
    assert len({t.config.teacher_key for t in grid.trials}) == 2  # lr is the student's: the seeds' teachers serve


@pytest.mark.parametrize("first, then, message", [
    ({"axes": {"hidden": [32, 64]}}, {"axes": {"hidden": [64, 128]}},
     "holds trial s000-none-shared-hidden=32, which the spec does not list (key 'axes.hidden' lacks its value 32)"),
    ({}, {"axes": {"lr": [0.001, 0.003]}},
     "holds trial s000-none-shared, which the spec does not list (key 'axes.lr' lacks its value 0.0003)"),
    ({"axes": {"hidden": [32]}}, {"axes": {"hidden": [32]}, "settings": {"epochs": 3}},
     "key 'epochs' is 2 there and 3 in the spec (trial s000-none-shared-hidden=32)"),
    ({"axes": {"hidden": [32, 64]}}, {"settings": {"epochs": 2, "hidden": 32}},
     "key 'hidden' is 64 there and 32 in the spec (trial s000-none-shared-hidden=64)"),
])
def test_a_spec_that_drops_or_changes_a_trial_along_an_axis_is_refused_naming_the_key(tmp_path, first, then, message):
    with pytest.raises(SweepError) as error:
        grown(tmp_path, first, then)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_sweep_grown_by_a_new_axis_runs_the_old_trials_under_their_ids(tmp_path, monkeypatch):
    from sublim.sweeps import tune_run

    folder, spec, _ = grown(tmp_path, {}, {"axes": {"lr": [0.0003, 0.001]}})
    ran = []
    monkeypatch.setattr(tune_run, "_run_on_ray", lambda name, spec, text, folder, mnist, pending, *rest: ran.append(
        [t.trial_id for t in pending]) or {})
    outcome = tune_run.run_sweep("axes", spec, "", folder, mnist=None, log=lambda line: None)
    assert ran == [[t.trial_id for t in folder.grid_of(spec).trials]] and "s000-none-shared" in ran[0]
    assert outcome.total == 8 and "s000-none-shared-lr=0.001" in outcome.failed


def test_until_resolved_takes_axes_and_plans_every_primary_test_at_every_level():
    """The check `sublim sweep` runs before any work passes, and the family is the K tests at each of L levels."""
    spec = spec_of({"lr": [0.001, 0.003]})
    check_waves(argparse.Namespace(until_resolved=True, max_seeds=6, wave=None), spec)
    design = plan(spec, max_seeds=6, wave=None)[1]
    per_level = plan(SweepSpec.from_dict(TINY), max_seeds=6, wave=None)[1].rows
    assert [p.key for p in design.rows] == [p.key + (level,) for level in ("lr=0.001", "lr=0.003") for p in per_level]
    assert len(per_level) == 4 and design.per_test_alpha == pytest.approx(0.05 / 8)
