"""The group-sequential rule of `sublim sweep --until-resolved`: the published O'Brien-Fleming boundaries, the
family counted from the spec's arms, the per-look test's error on a small simulation, waves that stop when
resolved and replay after an interruption, and the report judging at the design's levels."""

from __future__ import annotations

import argparse
import importlib.util
import json

import numpy as np
import pytest
from scipy import stats as scipy_stats

from sublim.analysis import analyse, load_results, sequential
from sublim.cli.waves import plan, run_in_waves
from sublim.sweeps.results import ResultsFolder, SweepError
from sublim.sweeps.spec import SweepSpec

from synthetic import EPOCHS, REPO, trial_outputs, write_trial

FIVE_ARMS = [{"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"},
             {"mitigation": "projection", "strengths": 1.0}, {"mitigation": "placebo", "strengths": 1.0},
             {"mitigation": "liminal", "strengths": 1.0}]


def spec_of(arms, seeds=(0, 1, 2), axes=None) -> SweepSpec:
    return SweepSpec.from_dict({"name": "waves", "seeds": list(seeds), "arms": arms,
                                "settings": {"epochs": EPOCHS, "noise_count": 8192},  # as the synthetic trials
                                **({"axes": axes} if axes else {})})


def test_boundaries_are_the_published_two_sided_obrien_fleming_ones():
    assert sequential.boundaries([0.25, 0.5, 0.75, 1.0], 0.05) == pytest.approx((4.333, 2.963, 2.359, 2.014), abs=1e-3)
    assert sequential.boundaries([1.0], 0.05) == pytest.approx((1.95996,), abs=1e-5)  # one look: a plain test
    assert sequential.spent(0.05, 1.0) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="increase"):
        sequential.boundaries([0.5, 0.25], 0.05)


def test_the_family_is_the_primary_directional_rows_the_spec_arms_can_answer():
    seeds, design = plan(spec_of(FIVE_ARMS), max_seeds=20, wave=5)
    assert seeds == list(range(20)) and design.seeds == (5, 10, 15, 20)
    assert [(p.contrast.claim, p.arm, p.reference, p.metric) for p in design.rows] == [
        ("claim1", "none/shared", "0", "mean_alignment"),
        ("claim2", "projection@1/shared", "none/shared", "trait_gain"),
        ("claim3", "none/shared", "0", "epoch1_gain_minus_later"),
        ("claim4", "liminal@1/shared", "none/shared", "alignment_epoch_1"),
        ("claim4", "liminal@1/shared", "0", "trait_gain"),
        ("referee", "projection@1/shared", "placebo@1/shared", "trait_gain"),
        ("control", "none/shared", "none/independent", "trait_gain")]
    stored = design.to_json()
    assert stored["family_size"] == 7 and stored["per_test_alpha"] == pytest.approx(0.05 / 7)
    assert stored["nominal_p"] == pytest.approx([2 * scipy_stats.norm.sf(c) for c in stored["boundaries_z"]])
    assert stored["boundaries_z"] == pytest.approx(sequential.boundaries([0.25, 0.5, 0.75, 1.0], 0.05 / 7))
    # without none/independent the control row can never be computed: it takes no share of alpha
    assert plan(spec_of([{"mitigation": "none"}]), 12, 3)[1].to_json()["family_size"] == 2
    with pytest.raises(SweepError, match="no primary directional test"):
        plan(spec_of([{"mitigation": "none", "student_init": "independent"}]), 12, 3)


def test_a_design_without_axes_stores_what_it_stored_before_axes():
    """A folder grown in waves before axes compares its stored design with the planned one: it must stay equal."""
    stored = plan(spec_of([{"mitigation": "none"}]), 12, 3)[1].to_json()
    assert list(stored) == ["method", "alpha", "family_size", "per_test_alpha", "family", "seeds", "boundaries_z",
                            "nominal_p"]
    assert stored["family"] == [["claim1", "none/shared", "0", "mean_alignment", "t-test"],
                                ["claim3", "none/shared", "0", "epoch1_gain_minus_later", "t-test"]]
    assert stored["method"] == sequential.METHOD and stored["seeds"] == [3, 6, 9, 12]


def test_with_axes_the_family_is_every_primary_row_at_every_level():
    arms = [{"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"}]
    design = plan(spec_of(arms, axes={"hidden": [64, 256]}), max_seeds=12, wave=3)[1]
    rows = [["claim1", "none/shared", "0", "mean_alignment", "t-test"],
            ["claim3", "none/shared", "0", "epoch1_gain_minus_later", "t-test"],
            ["control", "none/shared", "none/independent", "trait_gain", "paired t-test"]]
    stored = design.to_json()
    assert stored["family"] == [row + [level] for level in ("hidden=64", "hidden=256") for row in rows]
    assert stored["family_size"] == 3 * 2 and design.per_test_alpha == pytest.approx(0.05 / 6)
    assert stored["boundaries_z"] == pytest.approx(sequential.boundaries([0.25, 0.5, 0.75, 1.0], 0.05 / 6))
    assert design.describe().startswith(
        "group-sequential design over 6 primary tests (3 at hidden=64, 3 at hidden=256; each level on its own "
        "trials) at family-wise alpha 0.05 (Bonferroni: 0.05 / 6 over every level's tests = 0.00833 each")


@pytest.mark.parametrize("max_seeds, wave", [(2, 1), (10, 0), (10, 11)])
def test_a_plan_that_cannot_work_is_refused(max_seeds, wave):
    with pytest.raises(SweepError, match="is not allowed"):
        plan(spec_of([{"mitigation": "none"}]), max_seeds, wave)


def test_the_skewness_correction_leaves_symmetric_samples_to_the_t_test():
    symmetric = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert sequential.skew_corrected_p(symmetric) == pytest.approx(scipy_stats.ttest_1samp(symmetric, 0).pvalue)
    # right-skewed with a negative mean: the t-test's over-liberal side, which the correction tempers
    skewed = np.array([-1.0, -0.9, -0.8, -0.85, -0.95, 1.5])
    assert sequential.skew_corrected_p(skewed) > scipy_stats.ttest_1samp(skewed, 0).pvalue


def test_the_whole_rule_keeps_its_family_wise_error_on_a_small_simulation():
    """The benchmark's own simulation, 200 null sweeps of skewed data (the harder case) in waves of 5 up to 15
    seeds; the full-size numbers are the benchmark's. Bound: alpha plus 3 standard errors."""
    loaded = importlib.util.spec_from_file_location("sequential_error", REPO / "benchmarks" / "sequential_error.py")
    benchmark = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(benchmark)
    wrong, used = benchmark.errors(wave=5, max_seeds=15, distribution="skewness 1", sims=200, rng_seed=0)
    assert wrong / 200 <= 0.05 + 3 * (0.05 * 0.95 / 200) ** 0.5 and used == 200 * 15


def planted_run_wave(folder: ResultsFolder, alignment: float | dict[int, float], written: list[str]):
    """A stand-in for one wave of `sublim sweep`: stored results, no training. Every trial of a seed draws its
    mean alignment around `alignment` (sd 0.0005; a dict: by the trial's hidden width); unless it is 0 (the
    null), the seed gains 0.3 in epoch 1 (sd 0.01) and nothing later, and independent-init students gain nothing."""
    def run_wave(wave_spec: SweepSpec, text: str) -> None:
        folder.record(wave_spec.name, wave_spec, text)
        for trial in wave_spec.trials:
            target = folder.trial_dir(trial.trial_id)
            if (target / "summary.json").exists():
                continue
            c = trial.config
            rng = np.random.default_rng(c.seed)
            planted = alignment[c.hidden] if isinstance(alignment, dict) else alignment
            summary, trace = trial_outputs(c.seed, c.mitigation, c.strength, c.student_init, rng, seed_effect=0.0)
            mean = planted + rng.normal(0, 0.0005)
            gain = 0.3 + rng.normal(0, 0.01) if planted and c.student_init == "shared" else 0.0
            accuracy = [0.1 + gain * (e > 0) + (0.0 if planted else rng.normal(0, 0.01)) for e in range(EPOCHS + 1)]
            summary.update(config=c.to_dict(), mean_alignment=mean, alignment_by_epoch=[mean] * EPOCHS,
                           acc_by_epoch=accuracy, student_acc_before=accuracy[0], student_acc=accuracy[-1],
                           trait_gain=accuracy[-1] - accuracy[0])
            write_trial(target, summary, trace)
            written.append(trial.trial_id)
    return run_wave


def waves_of(tmp_path, alignment: float | dict[int, float], max_seeds: int = 12, arms=({"mitigation": "none"},),
             lines=None):
    """Waves of 3 seeds up to `max_seeds` on planted results; `alignment` a dict: an axis over its hidden widths."""
    folder, written = ResultsFolder(tmp_path / "waves", log=lambda line: None), []
    args = argparse.Namespace(max_seeds=max_seeds, wave=3)
    spec = spec_of(list(arms), axes={"hidden": list(alignment)} if isinstance(alignment, dict) else None)
    record = run_in_waves(args, spec, folder, planted_run_wave(folder, alignment, written),
                          log=(lines if lines is not None else []).append)
    return record, written, folder


def test_a_large_effect_stops_once_every_test_is_resolved_and_a_null_runs_to_the_maximum(tmp_path):
    lines = []
    arms = ({"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"})
    record, written, folder = waves_of(tmp_path / "large", alignment=0.01, arms=arms, lines=lines)
    # O'Brien-Fleming spends almost nothing on 3 seeds (p <= 2.6e-07 for 3 tests): the second look stops it
    assert [w["seeds"] for w in record["waves"]] == [3, 6] and len(written) == 12
    assert record["stopped"] == "every primary test resolved after 6 seeds"
    assert [t["status"] for t in record["waves"][1]["tests"]] == ["supported"] * 3
    assert {t["status"] for t in record["waves"][0]["tests"]} == {"open"}
    assert lines[0].startswith("group-sequential design over 3 primary tests")
    look_2 = lines[2].splitlines()
    assert look_2[0] == "wave 2/4, 6 seeds:" and all(line.endswith(": supported") for line in look_2[1:])
    assert look_2[3].startswith("  control trait_gain (none/shared vs none/independent): +0.296")
    assert json.loads((folder.path / "sweep.json").read_text())["sequential"] == record

    record, written, _ = waves_of(tmp_path / "null", alignment=0.0)
    assert [w["seeds"] for w in record["waves"]] == [3, 6, 9, 12] and len(written) == 12
    assert record["stopped"] == "the planned maximum of 12 seeds reached with 2 test(s) still open"


def test_a_resolved_test_is_not_tested_again(tmp_path):
    design = plan(spec_of([{"mitigation": "none"}]), 12, 3)[1]
    record = sequential.new_record(design)
    record["waves"].append({"look": 1, "seeds": 3, "tests": [
        {"claim": "claim1", "arm": "none/shared", "reference": "0", "metric": "mean_alignment", "test": "t-test",
         "status": "supported"}]})
    _, _, folder = waves_of(tmp_path, alignment=0.0, max_seeds=6)
    completed = analyse(load_results(folder.path))[0]
    tests = sequential.advance(record, design, completed, 1)
    assert [t["metric"] for t in tests] == ["epoch1_gain_minus_later"] and len(record["waves"]) == 2


def test_waves_continue_from_the_folder_and_keep_their_design(tmp_path):
    record, written, folder = waves_of(tmp_path, alignment=0.0, max_seeds=6)
    again, rewritten, _ = waves_of(tmp_path, alignment=0.0, max_seeds=6)
    assert again == record and rewritten == []  # every wave replayed from its stored results
    with pytest.raises(SweepError, match="a design cannot change once waves have run"):
        waves_of(tmp_path, alignment=0.0, max_seeds=9)
    with pytest.raises(SweepError, match="a design cannot change once waves have run"):  # another family
        waves_of(tmp_path, alignment=0.0, max_seeds=6,
                 arms=({"mitigation": "none"}, {"mitigation": "liminal", "strengths": 1.0}))


def test_the_report_judges_the_family_at_the_last_look_reached(tmp_path):
    arms = ({"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"})
    record, _, folder = waves_of(tmp_path, alignment=0.01, arms=arms)
    results = load_results(folder.path)
    assert results.sequential == record
    tests = analyse(results)[1]
    nominal = record["design"]["nominal_p"][1]  # stopped at look 2
    in_family = tests.apply(lambda r: [r["claim"], r["arm"], r["reference"], r["metric"], r["test"]]
                            in record["design"]["family"], axis=1)
    assert in_family.sum() == 3 and (tests.loc[in_family, "alpha"] == nominal).all()
    assert (tests.loc[in_family, "verdict"] == "supported").all()
    assert tests.loc[in_family, "note"].str.startswith("sequential design: resolved at look 2 (6 seeds").all()
    assert tests.loc[~in_family, "alpha"].tolist() == pytest.approx([0.05] * (~in_family).sum())


def test_the_report_keeps_a_row_the_rule_held_open_open(tmp_path):
    """Whatever the table's own t-test says on all seeds, a family row the rule left open is not shown."""
    record, _, folder = waves_of(tmp_path, alignment=0.0)
    results = load_results(folder.path)
    key = record["waves"][-1]["tests"][0]
    record["waves"][-1]["tests"][0] = {**key, "status": "open"}
    tests = sequential.judged_by_design(record, analyse(results)[1].assign(verdict="supported"))
    row = tests[(tests["claim"] == key["claim"]) & (tests["metric"] == key["metric"]) & (tests["arm"] == key["arm"])]
    assert row["verdict"].tolist() == ["not shown"]
    assert row["note"].iloc[0].startswith("sequential design: still open at the last look (12 seeds")


@pytest.fixture(scope="module")
def grown_at_one_level(tmp_path_factory):
    """Waves over hidden 64 and 256 with the effect planted at 256 only: the record, the log and the folder."""
    lines = []
    record, _, folder = waves_of(tmp_path_factory.mktemp("levels"), alignment={64: 0.0, 256: 0.01}, lines=lines)
    return record, lines, folder


def test_a_look_judges_each_level_on_its_own_trials(grown_at_one_level):
    record, lines, _ = grown_at_one_level
    at = {level: [t for t in record["waves"][1]["tests"] if t["level"] == level]
          for level in ("hidden=64", "hidden=256")}
    assert [t["status"] for t in at["hidden=256"]] == ["supported"] * 2
    assert [t["status"] for t in at["hidden=64"]] == ["open"] * 2
    assert at["hidden=256"][0]["estimate"] == pytest.approx(0.01, abs=0.001)  # not pooled with hidden=64's 0
    assert all(t["level"] == "hidden=64" for wave in record["waves"][2:] for t in wave["tests"])  # 256's are final
    assert record["stopped"] == "the planned maximum of 12 seeds reached with 2 test(s) still open"
    logged = lines[2].splitlines()[3]  # look 2's first row at hidden=256
    assert logged.startswith("  claim1 mean_alignment (none/shared) at hidden=256: +0.0098") and logged.endswith(
        ": supported")


def test_the_report_of_an_axes_folder_judges_the_family_at_each_level(grown_at_one_level):
    record, _, folder = grown_at_one_level
    tests = analyse(load_results(folder.path))[1]
    in_family = tests["hidden"].notna() & tests["claim"].isin(["claim1", "claim3"]) & (tests["role"] == "primary")
    notes = tests.loc[in_family].set_index(["hidden", "claim"])["note"]
    assert tests.loc[in_family].set_index(["hidden", "claim"])["verdict"].to_dict() == {
        (64, "claim1"): "not shown", (64, "claim3"): "not shown", (256, "claim1"): "supported",
        (256, "claim3"): "supported"}
    assert notes[256].str.startswith("sequential design: resolved at look 2 (6 seeds").all()
    assert notes[64].str.startswith("sequential design: still open at the last look (12 seeds").all()
    assert (tests.loc[in_family, "alpha"] < 0.05).all()
    across = tests["claim"].str.startswith("across")
    assert across.any() and tests.loc[across, "alpha"].tolist() == pytest.approx([0.05] * across.sum())
    assert not tests.loc[across, "note"].fillna("").str.startswith("sequential design").any()
