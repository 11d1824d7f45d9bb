"""The report across a sweep's axes, on synthetic folders with a planted scaling: every claim tested within each
level, the exponent of alignment in P recovered and judged against random directions' -1/2, whether gain
tracks alignment across levels, and a figure per axis that draws the table's fits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sublim.analysis import analyse, build_report, contrasts, figures, load_results
from sublim.analysis.axes import level_table, levels
from sublim.analysis.contrasts import DIFFERENCES, EXPONENT_TEST, NOT_SHOWN, SUPPORTED, TRACKING_ACROSS, Options
from sublim.analysis.descriptives import trial_metrics
from sublim.core.config import TrialConfig, level_label

from synthetic import ARMS, write_sweep

WIDTHS = (64, 256, 1024)
OPTIONS = Options(mediation_sims=20)


def analysed(root, **sweep) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    results = load_results(write_sweep(root, hidden=WIDTHS, **sweep))
    trials, tests = analyse(results, OPTIONS)
    return trials, tests, results.axes


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Alignment ∝ P^-0.3 (slower than random directions), gain following alignment."""
    return analysed(tmp_path_factory.mktemp("axes") / "slow", seeds=10, arms=ARMS[:3], alignment_exponent=-0.3)


def row(tests: pd.DataFrame, **match) -> pd.Series:
    chosen = tests[np.logical_and.reduce([tests[column] == value for column, value in match.items()])]
    assert len(chosen) == 1, match
    return chosen.iloc[0]


def test_every_claim_is_tested_within_each_level_with_a_column_for_the_axis(planted):
    trials, tests, axes = planted
    assert axes == {"hidden": list(WIDTHS)}
    assert list(tests.columns[:3]) == ["claim", "role", "hidden"]
    assert levels(trials, axes) == [{"hidden": w} for w in WIDTHS]
    within = tests[tests["hidden"].notna()]
    for width in WIDTHS:
        alone = contrasts.tests_table(trials[trials["hidden"] == width], OPTIONS).drop(columns="model")  # as a sweep
        mine = within[within["hidden"] == width].drop(columns="hidden").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine[alone.columns], alone, check_dtype=False)
    assert set(tests.loc[tests["hidden"].isna(), "claim"]) == {"across hidden"}


def test_the_planted_exponent_is_recovered_and_judged_slower_than_random_directions(planted):
    trials, tests, _ = planted
    exponent = row(tests, claim="across hidden", test=EXPONENT_TEST, metric="mean_alignment ∝ P^b")
    assert exponent["ci_low"] < -0.3 < exponent["ci_high"]
    assert exponent["null"] == -0.5 and exponent["verdict"] == SUPPORTED and exponent["n"] == 10
    tracking = row(tests, claim="across hidden", test=TRACKING_ACROSS)
    assert tracking["verdict"] == SUPPORTED and tracking["ci_low"] > 0


def test_alignment_at_random_directions_rate_is_not_called_slower(tmp_path):
    _, tests, _ = analysed(tmp_path / "random", seeds=10, arms=ARMS[:1], alignment_exponent=-0.5)
    exponent = row(tests, claim="across hidden", test=EXPONENT_TEST, metric="mean_alignment ∝ P^b")
    assert exponent["ci_low"] < -0.5 < exponent["ci_high"] and exponent["verdict"] == NOT_SHOWN


def test_gain_that_does_not_follow_alignment_is_not_said_to_track_it_or_to_differ_by_width(tmp_path):
    _, tests, _ = analysed(tmp_path / "flat", seeds=10, arms=ARMS[:1],
                           gain_per_alignment={"none/shared": 0.0})
    assert row(tests, claim="across hidden", test=TRACKING_ACROSS)["verdict"] == NOT_SHOWN
    assert row(tests, test=DIFFERENCES, metric="trait_gain by hidden")["verdict"] == NOT_SHOWN
    differs = row(tests, test=DIFFERENCES, metric="mean_alignment by hidden")  # alignment still falls with P
    assert differs["verdict"] == SUPPORTED and differs["df"] == len(WIDTHS) - 1


def test_the_level_table_gives_parameter_counts_and_alignment_times_root_p(planted):
    trials, _, axes = planted
    table = level_table(trials, axes, "hidden")
    base = table[table["arm"] == "none/shared"]
    assert list(base["hidden"]) == list(WIDTHS)
    assert list(base["parameter_count"]) == [TrialConfig(hidden=w).parameter_count for w in WIDTHS]
    np.testing.assert_allclose(base["alignment_x_sqrt_p"],
                               base["mean_alignment_mean"] * np.sqrt(base["parameter_count"]))
    assert (np.diff(base["alignment_x_sqrt_p"]) > 0).all()  # decays slower than P^-1/2


def test_the_axis_figure_draws_the_tables_exponent_and_tracking_fits(planted):
    trials, tests, axes = planted
    fig = figures.across_axis(trials, tests, level_table(trials, axes, "hidden"), "hidden")
    assert isinstance(fig, Figure)
    lines = {str(line.get_gid()): line for ax in fig.axes for line in ax.get_lines()}
    exponent = row(tests, claim="across hidden", test=EXPONENT_TEST, metric="mean_alignment ∝ P^b")
    x, y = lines["exponent:mean_alignment"].get_data()
    power = np.array([TrialConfig(hidden=int(w)).parameter_count for w in x])
    assert np.polyfit(np.log(power), np.log(y), 1)[0] == pytest.approx(exponent["estimate"], abs=1e-9)
    tracking = row(tests, claim="across hidden", test=TRACKING_ACROSS)
    assert np.polyfit(*lines["tracking"].get_data(), 1)[0] == pytest.approx(tracking["estimate"], rel=1e-9)
    trend = row(tests, claim="across hidden", test="trend", arm="none/shared", metric="trait_gain ~ log2 hidden")
    x, y = lines["trend:none/shared:trait_gain"].get_data()
    assert np.polyfit(np.log2(x), y, 1)[0] == pytest.approx(trend["estimate"], rel=1e-9)


def test_a_report_over_axes_has_verdicts_per_level_figures_per_level_and_one_per_axis(tmp_path):
    folder = write_sweep(tmp_path / "sweep", seeds=6, arms=ARMS[:3], hidden=WIDTHS, alignment_exponent=-0.3)
    files = build_report(folder, mediation_sims=20)
    stats = json.loads(files.stats.read_text())
    assert stats["axes"] == {"hidden": list(WIDTHS)}
    assert {(c["id"], c["hidden"]) for c in stats["claims"]} == {(c, w) for c in {c["id"] for c in stats["claims"]}
                                                                 for w in WIDTHS}
    names = {path.name for path in files.figures}
    assert "across_hidden.png" in names
    assert {f"gain_vs_alignment-{level_label({'hidden': w})}.png" for w in WIDTHS} <= names
    assert (files.folder / "tables" / "across_hidden.csv").is_file()
    tests = pd.read_csv(files.folder / "tables" / "tests.csv")
    assert set(tests["hidden"].dropna().astype(int)) == set(WIDTHS)
    text = files.markdown.read_text()
    assert text.split("\n\n")[1].startswith("| claim | hidden=64 | hidden=256 | hidden=1024 |")  # the lead table
    assert "## At hidden=1024" in text and "## Across hidden" in text


def test_rows_of_an_axis_need_enough_seeds(tmp_path):
    results = load_results(write_sweep(tmp_path / "few", seeds=3, arms=ARMS[:1], hidden=WIDTHS))
    trials = trial_metrics(results.completed, results.steps)
    across = contrasts.tests_table(trials, OPTIONS, axes=results.axes)
    exponent = row(across, test=EXPONENT_TEST, metric="mean_alignment ∝ P^b")
    assert exponent["verdict"] == "refused" and "4 seeds" in exponent["note"]
