"""Axes in a spec: any trial setting over a list of values, validated before Ray starts, with ids that name each
value; a spec without axes gives the very grid and sweep.json it gave before axes existed."""

import hashlib
import json

import pytest

from sublim.sweeps.results import trial_records
from sublim.sweeps.spec import SpecError, SweepSpec
from sublim.sweeps.worker import launch_order

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
    ({"hiden": [64]}, {}, "axes.hiden", "unknown setting; allowed: init"),
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
