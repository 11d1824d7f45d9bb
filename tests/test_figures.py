"""The report's figures: each draws from a synthetic sweep, refuses without its data (removing a stale PNG),
draws the model its verdict uses with the tests table's numbers, and draws labels from the data literally."""

from __future__ import annotations

import matplotlib.colors
import matplotlib.mathtext
import numpy as np
import pandas as pd
import pytest

from sublim.analysis import contrasts, figures
from sublim.analysis.contrasts import MEDIATORS, REFUSED, ZERO, Options
from sublim.analysis.descriptives import dose_table, epoch_table, trial_metrics
from sublim.analysis.load import load_results

from synthetic import ARMS, write_sweep

MATH = r"$\undefinedcmd{$ placebo"  # mathtext would fail on it


def analysed(root, **sweep) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(completed with per-trial metrics, steps, tests table) of a synthetic sweep written to `root`."""
    results = load_results(write_sweep(root, **sweep))
    completed = trial_metrics(results.completed, results.steps)
    return completed, results.steps, contrasts.tests_table(completed, Options(mediation_sims=20))  # not collected as a test


def draw(completed, steps, tests, folder) -> dict[str, dict[str, str]]:
    doses = dose_table(completed, contrasts.doses(completed))
    return figures.draw_all(completed, steps, epoch_table(completed), tests, doses, folder)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return analysed(tmp_path_factory.mktemp("results") / "demo", seeds=8, arms=ARMS + [("placebo", 1.0, "shared")])


def drawn_slopes(ax, kind: str) -> dict[str, float]:
    """{arm: slope} of the lines drawn with gid 'kind:arm', read back from their data."""
    lines = [line for line in ax.get_lines() if str(line.get_gid()).startswith(f"{kind}:")]
    return {line.get_gid().split(":", 1)[1]: float(np.polyfit(*line.get_data(), 1)[0]) for line in lines}


PER_LEVEL = set(figures.CAPTIONS) - {"across", "trait_gain"}  # drawn per axis, and once per report: below


def test_every_figure_draws_with_a_caption(sweep, tmp_path):
    drawn = draw(*sweep, tmp_path / "figures")
    assert set(drawn) == PER_LEVEL
    for name, result in drawn.items():
        assert result == {"file": f"figures/{name}.png"}
        assert (tmp_path / result["file"]).stat().st_size > 20_000, name
    assert not list(tmp_path.rglob("*.tmp"))


def test_gain_vs_alignment_draws_the_per_arm_slopes_of_the_tests_table(sweep):
    completed, _, tests = sweep
    fig = figures.gain_vs_alignment(completed, tests)
    for ax, x in zip(fig.axes, MEDIATORS):
        rows = tests[(tests["metric"] == f"trait_gain ~ {x}")]
        slopes = rows[rows["test"] == "slope"].set_index("arm")["estimate"]
        assert len(slopes) == 5 and drawn_slopes(ax, "arm") == pytest.approx(slopes.to_dict(), rel=1e-9)
        heterogeneity = rows.loc[rows["test"] == "slope heterogeneity", "p"].iloc[0]
        assert f"p = {heterogeneity:.2g}" in " ".join(ax.get_title().split())  # wrapped to the axes
        common = rows.loc[rows["test"] == "common slope", "verdict"].iloc[0]
        assert bool(drawn_slopes(ax, "common")) == (common != REFUSED)  # drawn only where the table answers it
        assert f"none/shared slope {slopes['none/shared']:.3g}" in " ".join(ax.get_title().split())


def test_common_slope_is_drawn_only_where_the_table_answers_it(tmp_path):
    completed, _, tests = analysed(tmp_path / "two", seeds=8, rng_seed=3,
                                   arms=[("none", 0.0, "shared"), ("placebo", 1.0, "shared")])
    fig = figures.gain_vs_alignment(completed, tests)
    for ax, x in zip(fig.axes, MEDIATORS):
        common = tests[(tests["metric"] == f"trait_gain ~ {x}") & (tests["test"] == "common slope")]
        assert common["verdict"].iloc[0] != REFUSED
        drawn = drawn_slopes(ax, "common")
        assert set(drawn) == {"none/shared", "placebo@1/shared"}
        assert list(drawn.values()) == pytest.approx([common["estimate"].iloc[0]] * 2, rel=1e-9)


def test_dose_response_draws_the_dose_model_the_mediation_used(sweep):
    completed, _, tests = sweep
    fig = figures.dose_response(completed, dose_table(completed, contrasts.doses(completed)), tests)
    drawn = {gid.split(":")[1]: gid.split(":")[2] for ax in fig.axes for line in ax.get_lines()
             if str(gid := line.get_gid()).startswith("dose:")}
    mediation = tests[tests["claim"] == "mediation"].set_index("arm")["note"]
    assert set(drawn) == set(contrasts.doses(completed)) and drawn["liminal"] == "log"
    for kind, scale in drawn.items():
        assert mediation[kind].iloc[0].startswith(f"dose {scale} ")


def test_a_layer_zero_by_construction_is_not_drawn(sweep):
    completed, _, tests = sweep
    (ax,) = figures.per_layer_alignment(tests, completed).axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fc1", "fc2", "out"]
    out = tests["metric"] == "mean_alignment_out"
    zeroed = tests.assign(verdict=tests["verdict"].where(~out, ZERO),
                          **{c: tests[c].where(~out) for c in ("estimate", "ci_low", "ci_high", "n")})
    (ax,) = figures.per_layer_alignment(zeroed, completed).axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fc1", "fc2"]  # no panel of zeros


def test_the_dose_line_stays_within_the_strengths_run(sweep):
    completed, _, tests = sweep
    doses = dose_table(completed, contrasts.doses(completed))
    fig = figures.dose_response(completed, doses, tests)
    lines = [line for ax in fig.axes for line in ax.get_lines() if str(line.get_gid()).startswith("dose:")]
    assert {line.get_gid().split(":")[1] for line in lines} == set(contrasts.doses(completed))
    for line in lines:
        kind, x = line.get_gid().split(":")[1], line.get_xdata()
        assert x.min() == 0 and x.max() == doses.loc[doses["mitigation"] == kind, "strength"].max()
        model = tests.loc[(tests["test"] == "mediation total") & (tests["arm"] == kind), "model"].iloc[0]
        dose = x.max() if model.scale == "linear" else np.log1p(x.max() / model.s_min)
        rise = line.get_ydata()[-1] - line.get_ydata()[0]  # the stored model's line, not a refit
        assert rise / dose == pytest.approx(model.fit.params["dose"], rel=1e-9)


def test_arms_differ_in_colour_and_marker_and_an_unknown_mitigation_has_its_own_colour(sweep):
    completed, _, _ = sweep
    styles = figures.arm_styles(completed)
    assert len(set(styles.values())) == len(styles)
    colours = [np.array(matplotlib.colors.to_rgb(styles[f"liminal@{s:g}/shared"][0])) for s in (0.5, 2.0)]
    assert np.abs(colours[0] - colours[1]).sum() > 0.3  # strengths of one mitigation far apart, not near-identical
    renamed = completed.assign(mitigation=completed["mitigation"].replace("placebo", "novel"))
    known = {matplotlib.colors.to_hex(colour) for arm, (colour, _) in figures.arm_styles(renamed).items()
             if "placebo" not in arm}
    assert matplotlib.colors.to_hex(figures.arm_styles(renamed)["placebo@1/shared"][0]) not in known


def test_figures_fit_the_page_and_the_lead_figure_has_every_arm(sweep, tmp_path):
    completed, steps, tests = sweep
    fig = figures.trait_gain_by_arm(completed, {})
    (ax,) = fig.axes
    assert len(ax.get_xticklabels()) == completed["arm"].nunique()
    assert any(np.allclose(line.get_ydata(), 0) for line in ax.get_lines())  # the line at 0
    for build in (lambda: fig, lambda: figures.alignment_over_steps(steps, completed),
                  lambda: figures.gain_vs_alignment(completed, tests)):
        assert build().get_figwidth() * figures.DPI <= 1220  # shown unscaled at 1,280 px, text at 10 pt or more
    assert figures.STYLE["font.size"] >= 10 and figures.STYLE["legend.fontsize"] >= 10


def test_first_order_puts_arms_that_dwarf_the_rest_on_their_own_panel(sweep):
    completed, _, tests = sweep
    assert len(figures.first_order(completed, tests).axes) == 1
    big = completed["arm"] == "projection@1/shared"
    scaled = completed.assign(**{c: completed[c].where(~big, completed[c] * 100) for c in
                                 ("measured_trait_loss_change", "predicted_trait_loss_change")})
    fig = figures.first_order(scaled, tests)
    assert len(fig.axes) == 2 and [t.get_text() for t in fig.axes[1].get_legend().get_texts()][0].startswith(
        "projection@1/shared")


def test_missing_data_refuses_with_a_reason_and_removes_the_stale_figure(tmp_path):
    completed, steps, tests = analysed(tmp_path / "thin", seeds=2,
                                       arms=[("none", 0.0, "shared"), ("none", 0.0, "independent")])
    folder = tmp_path / "figures"
    folder.mkdir()
    stale = ("dose_response", "per_layer_alignment", "update_alignment_steps")
    for name in stale:
        (folder / f"{name}.png").write_bytes(b"old")
    drawn = draw(completed, steps.drop(columns="update_alignment"), tests, folder)  # an older trace
    assert drawn["dose_response"] == {"refused": "needs completed shared-init trials of a mitigation, has none"}
    assert "3 seeds" in drawn["per_layer_alignment"]["refused"]
    assert "update_alignment" in drawn["update_alignment_steps"]["refused"]
    assert not any((folder / f"{name}.png").exists() for name in stale)
    assert {name for name, result in drawn.items() if "file" in result} == PER_LEVEL - set(stale)


def test_arm_labels_are_drawn_literally_not_as_mathtext(sweep, tmp_path):
    with pytest.raises(ValueError):
        matplotlib.mathtext.MathTextParser("agg").parse(MATH)
    completed, steps = (frame.assign(arm=frame["arm"].replace("placebo@1/shared", MATH)) for frame in sweep[:2])
    drawn = draw(completed, steps, contrasts.tests_table(completed, Options(mediation_sims=20)), tmp_path / "figures")
    assert all("file" in result for result in drawn.values()), drawn
