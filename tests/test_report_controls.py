"""The report's options and the controls' tests on synthetic folders: non-inferiority against a one-sided t-test
by hand, margins that reach their rows, bad options refused before any work, old folders still reporting."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from sublim import cli
from sublim.analysis import build_report, load_results, report
from synthetic import STEPS_PER_EPOCH, EPOCHS, write_sweep

CONTROLS = [("none", 0.0, "shared"), ("none", 0.0, "independent"), ("projection", 1.0, "shared"),
            ("placebo", 1.0, "shared")]


def rows(stats: dict, **where) -> list[dict]:
    return [row for row in stats["tests"] if all(row[k] == v for k, v in where.items())]


@pytest.fixture(scope="module")
def controls(tmp_path_factory):
    root = write_sweep(tmp_path_factory.mktemp("c") / "controls", seeds=6, arms=CONTROLS)
    files = build_report(root, mediation_sims=20, noninferiority_margin=0.2, equivalence_margin=0.05)
    return root, json.loads(files.stats.read_text())


def test_non_inferiority_matches_a_one_sided_t_test_by_hand(controls):
    root, stats = controls
    trials = load_results(root).completed.set_index(["arm", "seed"])["final_distill_loss"]
    difference = (trials["projection@1/shared"] - trials["none/shared"]).to_numpy()
    margin = 0.2 * trials["none/shared"].mean()
    t = (difference.mean() - margin) / scipy_stats.sem(difference)
    (row,) = rows(stats, arm="projection@1/shared", metric="final_distill_loss")
    assert row["margin"] == pytest.approx(margin) and row["alternative"] == "non-inferiority"
    assert row["p"] == pytest.approx(scipy_stats.t.cdf(t, len(difference) - 1))
    upper = difference.mean() + scipy_stats.t.ppf(0.95, len(difference) - 1) * scipy_stats.sem(difference)
    assert row["flip_margin"] == pytest.approx(upper)
    assert f"flips at {upper / trials['none/shared'].mean():.3g} × that mean" in row["note"]


def test_margins_reach_their_rows(controls):
    _, stats = controls
    assert stats["meta"]["noninferiority_margin"] == 0.2 and stats["meta"]["equivalence_margin"] == 0.05
    assert {row["margin"] for row in rows(stats, test="TOST equivalence")} == {0.05}
    assert [row["arm"] for row in rows(stats, test="TOST equivalence")] == ["placebo@1/shared", "none/independent"]


@pytest.mark.parametrize("option, value, words", [("--margin", "0", "noninferiority margin"),
                                                  ("--margin", "nan", "noninferiority margin"),
                                                  ("--equivalence-margin", "-0.1", "equivalence margin"),
                                                  ("--equivalence-margin", "inf", "equivalence margin"),
                                                  ("--mediation-sims", "3", "mediation simulations")])
def test_bad_option_is_one_line_exit_2_before_any_work(tmp_path, monkeypatch, capsys, option, value, words):
    root = write_sweep(tmp_path / "m", seeds=3, arms=CONTROLS[:1])
    monkeypatch.setattr(report, "load_results", lambda *a: pytest.fail("results read before the options were checked"))
    with pytest.raises(SystemExit) as caught:
        cli.main(["report", str(root), option, value])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err
    assert not (root / "report").exists()


def test_old_results_folder_without_update_alignment_still_reports(tmp_path):
    root = write_sweep(tmp_path / "old", seeds=4, arms=CONTROLS[:3])
    for folder in (root / "trials").iterdir():
        summary = json.loads((folder / "summary.json").read_text())
        del summary["mean_update_alignment"], summary["update_alignment_by_epoch"]
        (folder / "summary.json").write_text(json.dumps(summary))
        trace = pd.read_parquet(folder / "trace.parquet").drop(columns=["update_alignment", "update_trait_change"])
        trace.to_parquet(folder / "trace.parquet", index=False)
    assert (load_results(root).trials["status"] == "completed").all()
    stats = json.loads(build_report(root, mediation_sims=20).stats.read_text())
    warnings = " ".join(stats["data"]["warnings"])
    assert "summary.json 'mean_update_alignment' absent in 12 trial(s)" in warnings
    (update,) = rows(stats, arm="none/shared", metric="mean_update_alignment")
    assert update["verdict"] == "refused" and update["note"] == ("needs at least 3 seeds with a finite "
                                                               "mean_update_alignment in none/shared, has 0")
    assert "refused" in stats["figures"]["update_alignment_steps"]
    (first_order,) = rows(stats, arm="none/shared", test="first-order share")
    assert first_order["verdict"] == "refused"
    assert rows(stats, arm="projection@1/shared", metric="final_distill_loss")[0]["verdict"] != "refused"


def test_null_update_alignment_is_missing_not_invalid(tmp_path):
    root = write_sweep(tmp_path / "nulls", seeds=3, arms=CONTROLS[:1])
    path = root / "trials" / "t0_none_0_shared" / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(mean_update_alignment=None, update_alignment_by_epoch=[None, None, None])
    path.write_text(json.dumps(summary))
    trials = load_results(root).trials.set_index("trial_id")
    assert trials.at["t0_none_0_shared", "status"] == "completed"
    assert math.isnan(trials.at["t0_none_0_shared", "mean_update_alignment"])


def test_projection_against_placebo_is_the_primary_causal_row(controls):
    _, stats = controls
    (row,) = rows(stats, claim="referee", test="paired t-test")
    assert (row["arm"], row["reference"], row["role"], row["expect"]) == (
        "projection@1/shared", "placebo@1/shared", "primary", "<")
    assert np.isfinite(row["p"])


def drive_row(markdown: str, arm: str) -> list[str]:
    """The arm's row of the table of what the step did: its cells."""
    (line,) = [line for line in markdown.splitlines() if line.startswith(f"| {arm} |") and line.count("|") == 7]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_projection_words_follow_its_numbers_where_the_update_stays_aligned(controls):
    root, stats = controls  # planted: projection lowers alignment, but the step Adam applies stays aligned
    (arm,) = [a for a in stats["arms"] if a["arm"] == "projection@1/shared"]
    assert arm["mean_update_alignment_ci_low"] > 0 and arm["measured_trait_loss_change_ci_high"] < 0
    row = drive_row((root / "report" / "report.md").read_text(), "projection@1/shared")
    assert row[1].startswith("0.0")  # the update alignment, beside the words that follow it
    assert row[-1] == "update aligned with the trait gradient, probe trait loss falls: leaves a trait-aligned drive"


def test_projection_that_reverses_the_drive_is_said_to_reverse_it(tmp_path):
    root = write_sweep(tmp_path / "reversed", seeds=6, arms=CONTROLS)
    steps = EPOCHS * STEPS_PER_EPOCH
    for folder in (root / "trials").glob("*_projection_*"):
        trace = pd.read_parquet(folder / "trace.parquet")
        trace["update_alignment"] = -0.08 - 0.01 * np.abs(trace["alignment"])  # anti-aligned at every step
        trace["trait_loss"] = np.linspace(2.3, 2.3 + 8.9, steps)  # the probe trait loss rises
        trace.to_parquet(folder / "trace.parquet", index=False)
        summary = json.loads((folder / "summary.json").read_text())
        summary["mean_update_alignment"] = float(trace["update_alignment"].mean())
        summary["update_alignment_by_epoch"] = trace.groupby("epoch")["update_alignment"].mean().tolist()
        (folder / "summary.json").write_text(json.dumps(summary))
    markdown = build_report(root, mediation_sims=20).markdown.read_text()
    row = drive_row(markdown, "projection@1/shared")
    assert row[1].startswith("\u22120.080") and row[3].startswith("8.9")  # update alignment; trait-loss change
    assert row[-1] == ("update anti-aligned with the trait gradient, probe trait loss rises: reverses the drive: it "
                       "does not merely remove it")
    assert "anti-aligned" not in drive_row(markdown, "placebo@1/shared")[-1]  # each arm by its own numbers


def test_a_drive_the_interval_cannot_sign_is_not_given_one():
    record = {"arm": "projection@1/shared", "mitigation": "projection", "strength": 1.0,
              "mean_update_alignment_mean": -0.01, "mean_update_alignment_ci_low": -0.03,
              "mean_update_alignment_ci_high": 0.01, "measured_trait_loss_change_mean": 0.2,
              "measured_trait_loss_change_ci_low": -0.1, "measured_trait_loss_change_ci_high": 0.5}
    assert report.drive_reading(record) == ("update not distinguishable from orthogonal to the trait gradient, probe "
                                            "trait loss does not change detectably: removes the drive to first order")


def test_a_quantity_zero_by_construction_is_named_once_in_the_appendix_never_a_column_of_zeros(tmp_path):
    root = write_sweep(tmp_path / "zero", seeds=4, arms=CONTROLS)
    for folder in (root / "trials").glob("*"):
        trace = pd.read_parquet(folder / "trace.parquet")
        trace["alignment_out"] = 0.0  # as the real model gives: the output layer's dot product is exactly 0
        trace.to_parquet(folder / "trace.parquet", index=False)
    markdown = build_report(root, mediation_sims=20).markdown.read_text()
    appendix = markdown[markdown.index("## Appendix"):]
    assert "mean_alignment_out > 0" not in appendix and "| zero by construction" not in appendix
    assert "Not tested: mean_alignment_out, exactly 0 by construction (" in appendix
    assert "mean_alignment_fc1 > 0" in appendix  # the other layers' rows stay


def test_a_sweep_at_the_defaults_is_told_the_defaults_trial_config_holds():
    from sublim.core.config import TrialConfig
    from sublim.core.trial_folder import STATUSES
    defaults = TrialConfig()
    stats = {"settings": [], "axes": [], "arms": [],
             "data": {"totals": {"expected": 2, **dict.fromkeys(STATUSES, 0), "completed": 2}, "seeds": 2,
                      "teacher_acc": {"mean": 0.94, "min": 0.93, "max": 0.95, "n": 2}, "failed": [], "diverged": [],
                      "invalid": [], "warnings": []}}
    text = report._settings_section(stats)[1].text
    assert text.startswith("Every setting is the default of `sublim run`")
    assert f"{defaults.teacher_epochs} teacher and {defaults.epochs} student epochs" in text
    assert f"{defaults.noise_count:,} noise images" in text and f"hidden {defaults.hidden}," in text
