"""`sublim sweep SPEC --dry-run`: the grid's counts and its predicted cost, and nothing run or written."""

import pytest
import yaml

from sublim import cli
from sublim.core.config import TrialConfig
from sublim.sweeps.cost import STUDENT_CORE_SECONDS, TEACHER_CORE_SECONDS, TRIAL_OVERHEAD_CORE_SECONDS, predicted_cost


def test_a_dry_run_prints_the_grid_per_axis_and_its_cost_and_starts_nothing(tmp_path, capsys):
    spec = {"name": "dry", "seeds": [0, 1, 2], "arms": [{"mitigation": "none"}, {"mitigation": "projection",
                                                                                 "strengths": 1.0}],
            "axes": {"hidden": [64, 1024], "lr": [0.0003, 0.001]}}
    path = tmp_path / "dry.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert cli.main(["sweep", str(path), "--storage", str(tmp_path / "results"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "sweep dry: 24 trials (3 seeds x 8 points of arms x axes), 6 teacher(s)" in out
    assert "  hidden: 64: 12 trials, 3 teacher(s); 1024: 12 trials, 3 teacher(s)" in out
    assert "  lr: 0.0003: 12 trials, 6 teacher(s); 0.001: 12 trials, 6 teacher(s)" in out
    assert "core-hours" in out and out.rstrip().endswith("nothing was run (--dry-run)")
    assert not (tmp_path / "results").exists()


def test_the_cost_model_scales_a_default_trial_by_its_flops():
    default = predicted_cost([TrialConfig()])
    assert default.total == pytest.approx(STUDENT_CORE_SECONDS + TEACHER_CORE_SECONDS + TRIAL_OVERHEAD_CORE_SECONDS)
    twice = predicted_cost([TrialConfig(epochs=10, teacher_epochs=10)])
    assert (twice.students, twice.teachers) == pytest.approx((2 * default.students, 2 * default.teachers))
    wide = predicted_cost([TrialConfig(hidden=1024)]).students / default.students
    assert wide == pytest.approx((784 * 1024 + 1024**2 + 1024 * 13) / (784 * 256 + 256**2 + 256 * 13))
    shared = predicted_cost([TrialConfig(lr=lr) for lr in (0.001, 0.003)])  # one teacher for both
    assert shared.teachers == pytest.approx(default.teachers)
