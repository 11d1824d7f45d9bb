"""Growing a sweep: a spec whose grid is a superset of a results folder's extends it; one that changes what
a recorded trial means, or drops one, is refused with the key that differs."""

from __future__ import annotations

import json

import pytest
import yaml

from sublim import cli
from sublim.sweeps.results import ResultsFolder, SweepError
from sublim.sweeps.spec import SweepSpec

BASE = {"name": "grow", "seeds": [0, 1], "arms": [{"mitigation": "none"}, {"mitigation": "projection", "strengths": 1.0}],
        "settings": {"epochs": 2, "noise_count": 64}}


def spec_of(**changes) -> tuple[SweepSpec, str]:
    raw = {**BASE, **changes}
    return SweepSpec.from_dict(raw), yaml.safe_dump(raw)


@pytest.fixture
def folder(tmp_path):
    results = ResultsFolder(tmp_path / "grow", log=lambda line: None)
    results.record("grow", *spec_of())
    return results


def test_the_same_spec_adds_nothing_and_records_no_extension(folder):
    spec, text = spec_of()
    assert folder.added_by(spec) == []
    before = (folder.path / "sweep.json").read_bytes()
    folder.record("grow", spec, text)
    assert (folder.path / "sweep.json").read_bytes() == before


def test_more_seeds_and_arms_extend_the_sweep_and_are_recorded(folder):
    spec, text = spec_of(seeds=[0, 1, 2], arms=[*BASE["arms"], {"mitigation": "placebo", "strengths": [1.0, 2.0]}])
    added = folder.added_by(spec)
    assert added == [t.trial_id for t in spec.trials if t.config.seed == 2 or t.config.mitigation == "placebo"]
    assert len(added) == len(spec.trials) - 4
    folder.record("grow", spec, text)
    sweep = json.loads((folder.path / "sweep.json").read_text())
    assert [t["trial_id"] for t in sweep["trials"]] == [t.trial_id for t in spec.trials]
    (extension,) = sweep["extensions"]
    assert extension["added"] == added and extension["seeds"] == [0, 1, 2]
    assert extension["arms"] == ["none/shared", "placebo@1/shared", "placebo@2/shared", "projection@1/shared"]
    assert {"when", "spec", "versions"} <= extension.keys() and yaml.safe_load(extension["spec"])["seeds"] == [0, 1, 2]
    assert folder.added_by(spec) == []  # the grown folder now holds this grid


@pytest.mark.parametrize("changes, message", [
    ({"settings": {"epochs": 3, "noise_count": 64}}, "key 'epochs' is 2 there and 3 in the spec"),
    ({"settings": {"epochs": 2, "noise_count": 64, "split_seed": 5}}, "key 'split_seed' is 0 there and 5 in the spec"),
    ({"arms": [{"mitigation": "none"}]}, "holds trial s000-projection@1-shared, which the spec does not list"),
    ({"seeds": [1, 2]}, "holds trial s000-none-shared, which the spec does not list"),
])
def test_a_spec_that_changes_or_drops_recorded_trials_is_refused(folder, changes, message):
    with pytest.raises(SweepError, match=message.replace("[", r"\[").replace("(", r"\(")):
        folder.added_by(spec_of(**changes)[0])


def test_the_cli_refuses_a_conflicting_spec_in_one_line_and_writes_nothing(folder, tmp_path, capsys):
    path = tmp_path / "changed.yaml"
    path.write_text(spec_of(settings={"epochs": 3, "noise_count": 64})[1])
    before = {p: p.read_bytes() for p in folder.path.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", str(path), "--storage", str(folder.path.parent)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "key 'epochs' is 2 there and 3 in the spec" in err
    assert {p: p.read_bytes() for p in folder.path.rglob("*") if p.is_file()} == before


# --- growing in waves until resolved: the group-sequential rule -----------------------------------------

import argparse  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from sublim.analysis.sequential import obrien_fleming, z_of  # noqa: E402
from sublim.cli.waves import plan, run_in_waves  # noqa: E402
from test_analysis_report import EPOCHS, trial_outputs, write_trial  # noqa: E402


def test_the_design_spends_alpha_like_obrien_fleming():
    assert obrien_fleming([20]).boundaries == pytest.approx((1.95996,), abs=1e-4)  # one look: a plain test
    design = obrien_fleming([5, 10, 15, 20])
    assert design.boundaries[0] == pytest.approx(1.95996 / np.sqrt(0.25), abs=1e-4)  # alpha(t1) spent at look 1
    assert list(design.boundaries) == sorted(design.boundaries, reverse=True)
    assert 1.96 < design.boundaries[-1] < 2.1  # the last look pays little for the earlier ones
    assert design.to_json()["nominal_p"][-1] == pytest.approx(2 * scipy_stats.norm.sf(design.boundaries[-1]))
    with pytest.raises(ValueError, match="increasing"):
        obrien_fleming([10, 5])


def test_looking_after_every_wave_keeps_the_false_positive_rate_at_alpha():
    """Simulated nulls: t-tests on 3, 6, 9 and 12 seeds, stopping at the first crossing."""
    looks = [3, 6, 9, 12]
    design, rng, simulations, rejected = obrien_fleming(looks), np.random.default_rng(3), 3000, 0
    for _ in range(simulations):
        values = rng.normal(0.0, 1.0, looks[-1])
        rejected += any(abs(z_of(*_t_test(values[:n]))) >= c for n, c in zip(looks, design.boundaries))
    rate, error = rejected / simulations, np.sqrt(0.05 * 0.95 / simulations)
    assert rate <= 0.05 + 3 * error, rate
    naive = sum(any(scipy_stats.ttest_1samp(rng.normal(0, 1, 12)[:n], 0).pvalue < 0.05 for n in looks)
                for _ in range(1000)) / 1000
    assert naive > 0.08  # what looking without the design would cost


def _t_test(values: np.ndarray) -> tuple[float, float]:
    result = scipy_stats.ttest_1samp(values, 0)
    return float(result.statistic), float(result.pvalue)


def planted_run_wave(folder: ResultsFolder, alignment: float, written: list[str]):
    """A stand-in for `sublim sweep`'s wave: stored results, no training, of a planted mean alignment (sd
    0.0005 across seeds) and, unless it is 0 (the null), a gain made in epoch 1 that follows it."""
    def run_wave(wave_spec: SweepSpec, text: str) -> None:
        folder.record(wave_spec.name, wave_spec, text)
        for trial in wave_spec.trials:
            target = folder.trial_dir(trial.trial_id)
            if (target / "summary.json").exists():
                continue
            rng = np.random.default_rng(trial.config.seed)
            summary, trace = trial_outputs(trial.config.seed, "none", 0.0, "shared", rng, seed_effect=0.0)
            mean = alignment + rng.normal(0, 0.0005)
            gain = 0.3 + 200 * (mean - alignment) + rng.normal(0, 0.005) if alignment else 0.0
            accuracy = [0.1 + gain * (e > 0) + (0.0 if alignment else rng.normal(0, 0.01)) for e in range(EPOCHS + 1)]
            summary.update(config=trial.config.to_dict(), mean_alignment=mean, alignment_by_epoch=[mean] * EPOCHS,
                           acc_by_epoch=accuracy, student_acc_before=accuracy[0], student_acc=accuracy[-1],
                           trait_gain=accuracy[-1] - accuracy[0])
            write_trial(target, summary, trace)
            written.append(trial.trial_id)
    return run_wave


def waves_of(tmp_path, alignment: float, max_seeds: int = 12, wave: int = 3, lines=None):
    spec = SweepSpec.from_dict({"name": "waves", "seeds": [0, 1, 2], "arms": [{"mitigation": "none"}],
                                "settings": {"epochs": EPOCHS}})
    folder, written = ResultsFolder(tmp_path / "waves", log=lambda line: None), []
    args = argparse.Namespace(max_seeds=max_seeds, wave=wave)
    record = run_in_waves(args, spec, folder, planted_run_wave(folder, alignment, written),
                          log=(lines if lines is not None else []).append)
    return record, written, folder


def test_a_large_effect_stops_at_the_first_look_and_a_null_runs_to_the_maximum(tmp_path):
    lines = []
    record, written, folder = waves_of(tmp_path / "large", alignment=0.01, lines=lines)
    # O'Brien-Fleming spends almost nothing at the first look (|z| >= 3.92 on 3 seeds): the second stops it
    assert [w["seeds"] for w in record["waves"]] == [3, 6] and len(written) == 6
    assert record["stopped"] == "every claim's primary test resolved after 6 seeds"
    assert {t["status"] for t in record["waves"][1]["tests"]} == {"supported", "undetermined"}  # no control arm
    assert any(line.startswith("group-sequential design") for line in lines)
    assert any("claim1 mean alignment against 0 (none/shared)" in line and "supported" in line for line in lines)
    assert json.loads((folder.path / "sweep.json").read_text())["sequential"] == record

    record, written, _ = waves_of(tmp_path / "null", alignment=0.0)
    assert [w["seeds"] for w in record["waves"]] == [3, 6, 9, 12] and len(written) == 12
    assert record["stopped"].startswith("the planned maximum of 12 seeds reached")


def test_waves_continue_from_the_folder_and_keep_their_design(tmp_path):
    record, written, folder = waves_of(tmp_path, alignment=0.0, max_seeds=6)
    again, rewritten, _ = waves_of(tmp_path, alignment=0.0, max_seeds=6)
    assert again == record and rewritten == []  # every wave replayed from its stored results
    with pytest.raises(SweepError, match="a design cannot change once waves have run"):
        waves_of(tmp_path, alignment=0.0, max_seeds=9)


@pytest.mark.parametrize("max_seeds, wave", [(2, 1), (10, 0), (10, 11)])
def test_a_plan_that_cannot_work_is_refused(max_seeds, wave):
    spec = SweepSpec.from_dict({"name": "w", "seeds": [0, 1, 2], "arms": [{"mitigation": "none"}]})
    with pytest.raises(SweepError, match="is not allowed"):
        plan(spec, max_seeds, wave)


def test_the_report_states_the_design_each_look_and_why_it_stopped(tmp_path):
    from sublim.analysis import build_report

    record, _, folder = waves_of(tmp_path, alignment=0.01)
    files = build_report(folder.path, tmp_path / "report", mediation_sims=20)
    stats = json.loads(files.stats.read_text())
    assert stats["sequential"] == record
    markdown = files.markdown.read_text()
    assert "## Sequential design" in markdown and f"**Stopped:** {record['stopped']}." in markdown
    assert "| 4 | 12 | 2.04 | 0.0411 | not reached |" in markdown  # the planned look it never needed
