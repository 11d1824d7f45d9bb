"""The group-sequential rule of `sublim sweep --until-resolved` on planted folders: the family counted from the
spec's arms, waves that stop when resolved (a strong effect early, a null by futility) and replay after an
interruption, and the report judging each family row at the look that decided it (its estimate, repeated
confidence interval and n at that look). The rule's own numbers (boundaries, `decide`, the benchmark) are in
test_sequential_rule.py."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from scipy import stats as scipy_stats

from sublim.analysis import analyse, build_report, load_results, sequential
from sublim.analysis.contrasts import FUTILE
from sublim.cli.waves import plan, run_in_waves
from sublim.sweeps.results import ResultsFolder, SweepError
from sublim.sweeps.spec import SweepSpec

from synthetic import EPOCHS, trial_outputs, write_trial

FIVE_ARMS = [{"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"},
             {"mitigation": "projection", "strengths": 1.0}, {"mitigation": "placebo", "strengths": 1.0},
             {"mitigation": "liminal", "strengths": 1.0}]


def spec_of(arms, seeds=(0, 1, 2), axes=None) -> SweepSpec:
    return SweepSpec.from_dict({"name": "waves", "seeds": list(seeds), "arms": arms,
                                "settings": {"epochs": EPOCHS, "noise_count": 8192},  # as the synthetic trials
                                **({"axes": axes} if axes else {})})


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
    assert len(stored["boundaries_t"]) == 7 and stored["boundaries_t"][0][0] is None  # no test on 5 seeds
    assert stored["nominal_p"] == pytest.approx(
        [0.0] + [2 * scipy_stats.t.sf(b, n - 1) for n, b in zip((10, 15, 20), stored["boundaries_t"][0][1:])])
    # without none/independent the control row can never be computed: it takes no share of alpha
    assert plan(spec_of([{"mitigation": "none"}]), 12, 3)[1].to_json()["family_size"] == 2
    with pytest.raises(SweepError, match="no primary directional test"):
        plan(spec_of([{"mitigation": "none", "student_init": "independent"}]), 12, 3)


def test_a_design_without_axes_stores_what_it_stored_before_axes():
    """A folder grown in waves before axes compares its stored design with the planned one: it must stay equal."""
    stored = plan(spec_of([{"mitigation": "none"}]), 12, 3)[1].to_json()
    assert list(stored) == ["method", "alpha", "family_size", "per_test_alpha", "family", "seeds", "first_look",
                            "spending_rho", "reference_skewness", "simulations", "calibration_seed", "futility_power",
                            "nominal_p", "boundaries_t", "futility_t"]
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
    assert design.boundaries.shape == (6, 4) and design.futility.shape == (4,)
    assert design.describe().startswith(
        "group-sequential design over 6 primary tests (3 at hidden=64, 3 at hidden=256; each level on its own "
        "trials) at family-wise alpha 0.05 (Holm-Bonferroni: 0.05 / 6 over every level's tests = 0.00833 each")


@pytest.mark.parametrize("max_seeds, wave", [(2, 1), (10, 0), (10, 11)])
def test_a_plan_that_cannot_work_is_refused(max_seeds, wave):
    with pytest.raises(SweepError, match="is not allowed"):
        plan(spec_of([{"mitigation": "none"}]), max_seeds, wave)


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


def test_a_large_effect_stops_once_every_test_is_resolved_and_a_null_is_dropped_as_futile(tmp_path):
    lines = []
    arms = ({"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"})
    record, written, folder = waves_of(tmp_path / "large", alignment=0.01, arms=arms, lines=lines)
    # no test before 6 seeds; on 6 every planted effect crosses: 6 of the 12 seeds run
    assert [w["seeds"] for w in record["waves"]] == [3, 6] and len(written) == 12
    assert record["stopped"] == "every primary test resolved after 6 seeds"
    assert [t["status"] for t in record["waves"][1]["tests"]] == ["supported"] * 3
    assert {t["status"] for t in record["waves"][0]["tests"]} == {"open"}
    assert lines[0].startswith("group-sequential design over 3 primary tests")
    assert lines[1].splitlines()[1].endswith(": no test before 6 seeds")
    look_2 = lines[2].splitlines()
    assert look_2[0] == "wave 2/4, 6 seeds:" and all(line.endswith(": supported") for line in look_2[1:])
    assert look_2[3].startswith("  control trait_gain (none/shared vs none/independent): +0.296 [repeated 99.")
    assert json.loads((folder.path / "sweep.json").read_text())["sequential"] == record

    record, written, _ = waves_of(tmp_path / "null", alignment=0.0)
    assert [w["seeds"] for w in record["waves"]] == [3, 6] and len(written) == 6  # not the planned 12
    assert [t["status"] for t in record["waves"][1]["tests"]] == ["futile"] * 2
    assert record["stopped"] == "every primary test resolved after 6 seeds, 2 of them futile"


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
    assert tests[0]["alpha_share"] == pytest.approx(0.05)  # Holm: claim1's share passed on


def test_waves_continue_from_the_folder_and_keep_their_design(tmp_path):
    record, written, folder = waves_of(tmp_path, alignment=0.0, max_seeds=6)
    again, rewritten, _ = waves_of(tmp_path, alignment=0.0, max_seeds=6)
    assert again == record and rewritten == []  # every wave replayed from its stored results
    with pytest.raises(SweepError, match="a design cannot change once waves have run"):
        waves_of(tmp_path, alignment=0.0, max_seeds=9)
    with pytest.raises(SweepError, match="a design cannot change once waves have run"):  # another family
        waves_of(tmp_path, alignment=0.0, max_seeds=6,
                 arms=({"mitigation": "none"}, {"mitigation": "liminal", "strengths": 1.0}))


def test_waves_replay_with_the_stored_boundaries_and_refuse_an_older_rule(tmp_path):
    record, _, folder = waves_of(tmp_path, alignment=0.0, max_seeds=6)
    sweep = json.loads((folder.path / "sweep.json").read_text())
    for level in sweep["sequential"]["design"]["boundaries_t"]:  # a replay goes by the stored boundaries
        level[1] = 0.1
    (folder.path / "sweep.json").write_text(json.dumps(sweep))
    again, _, _ = waves_of(tmp_path, alignment=0.0, max_seeds=6)
    # t = -1.12 (claim1 expects > 0) and +0.245 both cross 0.1
    assert [t["status"] for t in again["waves"][1]["tests"]] == ["contradicted", "supported"]
    sweep["sequential"]["design"] = {k: v for k, v in sweep["sequential"]["design"].items()
                                     if k not in ("boundaries_t", "futility_t")}
    (folder.path / "sweep.json").write_text(json.dumps(sweep))
    with pytest.raises(SweepError, match="older version of the stopping rule"):
        waves_of(tmp_path, alignment=0.0, max_seeds=6)


def grown_after_stopping(tmp_path, alignment: float, seeds: int = 12):
    """Waves of 3 that stop at 6 seeds, then the folder grown to `seeds` seeds (as `sublim sweep` with more seeds
    would): the report's table holds every seed, the family rows only what their look saw."""
    arms = ({"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"})
    record, _, folder = waves_of(tmp_path, alignment=alignment, arms=arms)
    assert record["waves"][-1]["seeds"] == 6
    run_wave = planted_run_wave(folder, alignment, [])
    grown = spec_of(list(arms), seeds=range(seeds))
    run_wave(grown, "")
    return record, folder


def family_rows(tests, record):
    in_family = tests.apply(lambda r: [r["claim"], r["arm"], r["reference"], r["metric"], r["test"]]
                            in record["design"]["family"], axis=1)
    return tests[in_family], tests[~in_family]


def test_the_report_judges_the_family_at_the_look_that_decided_it(tmp_path):
    record, folder = grown_after_stopping(tmp_path, alignment=0.01)
    results = load_results(folder.path)
    assert results.sequential == record
    family, others = family_rows(analyse(results)[1], record)
    looked = {t["metric"]: t for t in record["waves"][1]["tests"]}  # look 2: 6 seeds
    assert len(family) == 3 and (family["verdict"] == "supported").all() and (family["n"] == 6).all()
    for row in family.to_dict("records"):
        test = looked[row["metric"]]
        assert row["estimate"] == test["estimate"] and (row["ci_low"], row["ci_high"]) == (test["ci_low"],
                                                                                            test["ci_high"])
        assert row["alpha"] == test["nominal_p"] and row["ci_level"] == pytest.approx(1 - test["nominal_p"])
        assert row["ci_low"] < row["estimate"] < row["ci_high"] and row["p"] == test["p"]
        assert row["note"].startswith("sequential design: resolved at look 2 (6 seeds): |t| ")
        assert "repeated 99." in row["note"] and "last look reached" not in row["note"]
    # the repeated interval is the look's t interval at its nominal level
    claim1 = family[family["claim"] == "claim1"].iloc[0]
    half = scipy_stats.t.ppf(1 - claim1["alpha"] / 2, 5) * abs(claim1["estimate"]) / abs(claim1["statistic"])
    assert (claim1["ci_high"] - claim1["ci_low"]) / 2 == pytest.approx(half, rel=1e-6)
    assert (others["n"].dropna() == 12).all() and others["alpha"].tolist() == pytest.approx([0.05] * len(others))
    report = build_report(folder.path, tmp_path / "report", mediation_sims=20).markdown.read_text()
    assert "claim1 mean_alignment (none/shared): supported" in report  # the looks' table names what each compares


def test_the_report_names_a_futile_row_and_its_look(tmp_path):
    record, _, folder = waves_of(tmp_path, alignment=0.0)
    family, _ = family_rows(analyse(load_results(folder.path))[1], record)
    assert (family["verdict"] == FUTILE).all() and (family["n"] == 6).all()
    assert family["note"].str.startswith("sequential design: futile at look 2 (6 seeds): |t| ").all()


def test_the_report_keeps_a_row_the_rule_held_open_open(tmp_path):
    """Whatever the table's own t-test says on all seeds, a family row the rule left open is not shown."""
    record, _, folder = waves_of(tmp_path, alignment=0.0, max_seeds=6)
    results = load_results(folder.path)
    key = record["waves"][-1]["tests"][0]
    record["waves"][-1]["tests"][0] = {**key, "status": "open"}
    tests = sequential.judged_by_design(record, analyse(results)[1].assign(verdict="supported"))
    row = tests[(tests["claim"] == key["claim"]) & (tests["metric"] == key["metric"]) & (tests["arm"] == key["arm"])]
    assert row["verdict"].tolist() == ["not shown"]
    assert row["note"].iloc[0].startswith("sequential design: open at the last look (6 seeds): |t| ")
    interrupted = {**record, "design": {**record["design"], "seeds": [3, 6, 9]}, "stopped": None}
    note = sequential.judged_by_design(interrupted, analyse(results)[1]).loc[row.index[0], "note"]
    assert note.startswith("sequential design: open at look 2 (6 seeds), the sweep not finished")


def test_a_record_of_the_older_design_is_still_judged_by_its_statuses(tmp_path):
    """sweep.json of the earlier rule (O'Brien-Fleming z boundaries, t-test and skewness guard): its verdicts and
    nominal p stand, the numbers stay the table's, the note says so."""
    record, _, folder = waves_of(tmp_path, alignment=0.0, max_seeds=6)
    family = record["design"]["family"]
    old_test = lambda status, key: {"claim": key[0], "arm": key[1], "reference": key[2], "metric": key[3],
                                    "test": key[4], "expect": ">", "n": 6, "estimate": 0.1, "ci_low": 0.0,
                                    "ci_high": 0.2, "df": 5.0, "p": 1e-4, "skew_p": 1e-4, "nominal_p": 0.0012,
                                    "status": status}
    old = {"design": {"method": "Bonferroni over the primary directional tests; each a two-sided group-sequential "
                                "test with O'Brien-Fleming-type Lan-DeMets spending", "alpha": 0.05, "family_size": 2,
                      "per_test_alpha": 0.025, "family": family, "seeds": [3, 6], "boundaries_z": [5.2, 2.2],
                      "nominal_p": [2e-7, 0.0012]},
           "waves": [{"look": 2, "seeds": 6, "tests": [old_test("supported", family[0]), old_test("open", family[1])]}],
           "stopped": "the planned maximum of 6 seeds reached with 1 test(s) still open"}
    table = analyse(load_results(folder.path))[1]
    judged = sequential.judged_by_design(old, table)
    rows = {r["claim"]: r for r in judged.to_dict("records") if [r["claim"], r["arm"], r["reference"], r["metric"],
                                                                 r["test"]] in family}
    assert rows["claim1"]["verdict"] == "supported" and rows["claim3"]["verdict"] == "not shown"
    assert rows["claim1"]["alpha"] == 0.0012 and rows["claim1"]["estimate"] == table.loc[
        table["claim"] == "claim1", "estimate"].iloc[0]
    assert rows["claim1"]["note"].startswith("sequential design: resolved at look 2 (6 seeds), nominal p 0.0012")
    assert rows["claim3"]["note"].startswith("sequential design: open at the last look (6 seeds)")
    assert "older design" in rows["claim1"]["note"]
    assert sequential.line(old_test("supported", family[0])).endswith("against 0.0012: supported")
    per_test = {**old, "design": {k: v for k, v in old["design"].items() if k != "family"}}
    assert sequential.judged_by_design(per_test, table).equals(table)  # the per-test design before it: unchanged


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
    assert [t["status"] for t in at["hidden=64"]] == ["futile"] * 2
    assert at["hidden=256"][0]["estimate"] == pytest.approx(0.01, abs=0.001)  # not pooled with hidden=64's 0
    assert record["stopped"] == "every primary test resolved after 6 seeds, 2 of them futile"
    logged = lines[2].splitlines()[3]  # look 2's first row at hidden=256
    assert logged.startswith("  claim1 mean_alignment (none/shared) at hidden=256: +0.0098") and logged.endswith(
        ": supported")


def test_the_report_of_an_axes_folder_judges_the_family_at_each_level(grown_at_one_level):
    record, _, folder = grown_at_one_level
    tests = analyse(load_results(folder.path))[1]
    in_family = tests["hidden"].notna() & tests["claim"].isin(["claim1", "claim3"]) & (tests["role"] == "primary")
    notes = tests.loc[in_family].set_index(["hidden", "claim"])["note"]
    assert tests.loc[in_family].set_index(["hidden", "claim"])["verdict"].to_dict() == {
        (64, "claim1"): FUTILE, (64, "claim3"): FUTILE, (256, "claim1"): "supported", (256, "claim3"): "supported"}
    assert notes[256].str.startswith("sequential design: resolved at look 2 (6 seeds)").all()
    assert notes[64].str.startswith("sequential design: futile at look 2 (6 seeds)").all()
    assert (tests.loc[in_family, "alpha"] < 0.05).all() and (tests.loc[in_family, "n"] == 6).all()
    across = tests["claim"].str.startswith("across")
    assert across.any() and tests.loc[across, "alpha"].tolist() == pytest.approx([0.05] * across.sum())
    assert not tests.loc[across, "note"].fillna("").str.startswith("sequential design").any()
