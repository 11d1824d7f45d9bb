"""`sublim sweep SPEC --dry-run`: the grid's counts and its predicted cost, and nothing run or written."""

import pytest
import yaml

from sublim import cli
from sublim.core.config import ConfigError, TrialConfig
from sublim.core.durations import duration_text
from sublim.sweeps.cost import STUDENT_CORE_SECONDS, TEACHER_CORE_SECONDS, TRIAL_OVERHEAD_CORE_SECONDS, predicted_cost
from sublim.sweeps.spec import SweepSpec


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


def test_a_grid_reseeds_its_checked_configs_into_the_configs_that_full_checks_build(tmp_path, capsys):
    """The grid checks one config per point and only re-seeds it per trial: every trial must still be the config
    that building it field by field gives, and the dry-run's counts and cost must be those of those configs."""
    spec = {"name": "grid", "seeds": [0, 3, 7], "arms": [{"mitigation": "none", "student_init": "independent"},
                                                         {"mitigation": "liminal", "strengths": [0.5, 2.0]}],
            "settings": {"epochs": 2, "tau2_epochs": 0.5},
            "axes": {"hidden": [32, 64], "teacher_lr": [0.001, 0.003]}}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    grid = SweepSpec.load(path)
    built = [TrialConfig.from_dict({**spec["settings"], "seed": seed, "mitigation": mitigation, "strength": strength,
                                    "student_init": init, "hidden": hidden, "teacher_lr": teacher_lr})
             for seed in spec["seeds"]
             for mitigation, strength, init in [("none", 0.0, "independent"), ("liminal", 0.5, "shared"),
                                                ("liminal", 2.0, "shared")]
             for hidden in (32, 64) for teacher_lr in (0.001, 0.003)]
    assert [t.config for t in grid.trials] == built
    assert [t.config.teacher_key for t in grid.trials] == [c.teacher_key for c in built]
    assert len({t.trial_id for t in grid.trials}) == len(built) == 36
    assert cli.main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "sweep grid: 36 trials (3 seeds x 12 points of arms x axes), 12 teacher(s)" in out
    assert "  hidden: 32: 18 trials, 6 teacher(s); 64: 18 trials, 6 teacher(s)" in out
    assert "  teacher_lr: 0.001: 18 trials, 6 teacher(s); 0.003: 18 trials, 6 teacher(s)" in out
    cost = predicted_cost(built)
    assert f"predicted cost: {cost.total / 3600:.2f} core-hours" in out
    assert f"students {duration_text(cost.students)}, teachers {duration_text(cost.teachers)}" in out


def test_reseeding_checks_the_seed():
    config = TrialConfig(mitigation="projection", strength=1.0, hidden=32)
    assert config.with_seed(9) == config.replace(seed=9)
    assert config.with_seed(9).teacher_key == config.replace(seed=9).teacher_key != config.teacher_key
    for bad in (-1, True, 1.5, "3"):
        with pytest.raises(ConfigError, match="seed"):
            config.with_seed(bad)


def test_a_dry_run_and_a_refused_spec_import_neither_torch_nor_ray(tmp_path):
    """Checking a spec is the quick part of a sweep: torch's import alone takes seconds, so it waits for a run."""
    import subprocess
    import sys

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"name": "light", "seeds": [0], "arms": [{"mitigation": "none"}]}))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "light", "seeds": {"start": 0, "stop": 50_001}, "arms": [{"mitigation": "none"}]}))
    for spec, code in ((path, 0), (bad, 2)):
        done = subprocess.run([sys.executable, "-c", "import sys; from sublim.cli import main\n"
                               "try:\n    main(['sweep', sys.argv[1], '--dry-run'])\nexcept SystemExit as stop:\n"
                               "    print('exit', stop.code)\n"
                               "print('heavy', [m for m in ('torch', 'ray') if m in sys.modules])", str(spec)],
                              capture_output=True, text=True)
        assert "heavy []" in done.stdout, done.stdout + done.stderr
        assert (f"exit {code}" in done.stdout) == (code != 0), done.stdout
