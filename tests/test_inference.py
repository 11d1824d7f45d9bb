"""The statistical tests on planted truths: a common slope is not called heterogeneous and is recovered, different
slopes are, per-arm slopes use t on n − 2 df, the heterogeneity test holds its size with few seeds, the bootstrap
is reproducible, and the clustered fits carry the CR2 covariance and df their rows report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as scipy_stats

from sublim.analysis import inference as inf


def sweep(slopes: list[float], seeds: int = 10, seed: int = 0, noise: tuple[float, float] = (0.01, 0.03),
          rng: np.random.Generator | None = None) -> pd.DataFrame:
    """Trials of one sweep: per arm, alignment ~ 0.008 ± 0.003 (a seed effect shared by the seed's arms plus the
    trial's own), trait_gain = an arm intercept + the arm's slope · alignment + a seed effect (the teacher)
    + noise whose sd differs between arms (from noise[0] to noise[1])."""
    rng = np.random.default_rng(seed) if rng is None else rng
    seed_x, seed_y = rng.normal(0, 0.002, seeds), rng.normal(0, 0.03, seeds)
    rows = []
    for i, slope in enumerate(slopes):
        x = 0.008 - 0.001 * i + seed_x + rng.normal(0, 0.002, seeds)
        sd = noise[0] + (noise[1] - noise[0]) * i / max(len(slopes) - 1, 1)
        y = 0.1 + 0.02 * i + slope * x + seed_y + rng.normal(0, sd, seeds)
        rows += [{"arm": f"arm{i}", "seed": s, "mean_alignment": x[s], "trait_gain": y[s]} for s in range(seeds)]
    return pd.DataFrame(rows)


def test_a_common_slope_is_not_called_heterogeneous_and_is_recovered():
    trials = sweep([30.0] * 5, seeds=12, seed=1)
    het = inf.heterogeneity(trials, "mean_alignment")[0]
    assert het["p"] > 0.05 and het["df"] == 4 and het["n"] == 12
    row, fit = inf.slope(trials, "mean_alignment")
    assert row["ci_low"] < 30 < row["ci_high"] and row["estimate"] == pytest.approx(30, abs=6)
    assert row["cov"] == "cluster" and row["se"] == "CR2"


def test_clearly_different_slopes_are_called_heterogeneous():
    het = inf.heterogeneity(sweep([0.0, 30.0, 60.0, 90.0], seeds=10, seed=2, noise=(0.005, 0.01)), "mean_alignment")[0]
    assert het["p"] < 0.01


def test_the_common_slope_reads_t_on_its_bell_mccaffrey_df_and_the_model_carries_it():
    trials = sweep([30.0] * 4, seeds=10, seed=3)
    row, fit = inf.slope(trials, "mean_alignment")
    df = fit.satterthwaite_df["x"]
    assert row["df"] == pytest.approx(df) and 1 < df < 10
    se = float(fit.bse["x"])
    cov, dfs = inf.cr2(fit.model.exog, fit.resid, trials["seed"].to_numpy())
    i = fit.model.exog_names.index("x")
    assert se == pytest.approx(np.sqrt(cov[i, i])) and dfs[i] == pytest.approx(df)
    assert row["statistic"] == pytest.approx(row["estimate"] / se)
    assert row["p"] == pytest.approx(2 * scipy_stats.t.sf(abs(row["statistic"]), df))
    half = scipy_stats.t.ppf(0.975, df) * se
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((row["estimate"] - half, row["estimate"] + half))


def test_cr2_is_hc2_on_singleton_clusters_and_gives_g_minus_1_df_to_a_balanced_mean():
    rng = np.random.default_rng(4)
    x = np.column_stack([np.ones(12), rng.normal(size=12)])
    y = x @ [1.0, 2.0] + rng.normal(size=12) * (1 + np.abs(x[:, 1]))
    fit = sm.OLS(y, x).fit(cov_type="HC2")
    assert inf.cr2(x, fit.resid, np.arange(12))[0] == pytest.approx(fit.cov_params())
    resid = rng.normal(size=21)
    assert inf.cr2(np.ones((21, 1)), resid - resid.mean(), np.repeat(np.arange(7), 3))[1] == pytest.approx([6.0])


def test_a_per_arm_slope_is_hc3_with_t_on_n_minus_2_df():
    trials = sweep([30.0], seeds=10, seed=5)
    row, fit = inf.slope(trials, "mean_alignment")
    assert row["df"] == 8 and row["cov"] == "HC3" and row["se"] == "HC3" and row["n"] == 10
    x = np.column_stack([np.ones(10), trials["mean_alignment"]])
    e = np.asarray(fit.resid)
    bread = np.linalg.inv(x.T @ x)
    leverage = np.einsum("ij,jk,ik->i", x, bread, x)
    hc3 = bread @ (x.T * (e / (1 - leverage)) ** 2) @ x @ bread
    assert row["statistic"] == pytest.approx(row["estimate"] / np.sqrt(hc3[1, 1]))
    assert row["p"] == pytest.approx(2 * scipy_stats.t.sf(abs(row["statistic"]), 8))
    half = scipy_stats.t.ppf(0.975, 8) * np.sqrt(hc3[1, 1])
    assert row["ci_high"] - row["ci_low"] == pytest.approx(2 * half)


def test_heterogeneity_holds_its_size_under_a_common_slope():
    rng = np.random.default_rng(6)
    sims = 200
    rejected = sum(inf.heterogeneity(sweep([30.0] * 4, seeds=8, rng=rng), "mean_alignment")[0]["p"] <= 0.05
                   for _ in range(sims))
    assert rejected / sims <= 0.10


def test_the_bootstrap_is_reproducible_whatever_the_order_of_the_trials():
    trials = sweep([30.0, 40.0, 20.0], seeds=10, seed=7)
    first = inf.heterogeneity(trials, "mean_alignment")[0]
    shuffled = trials.sample(frac=1.0, random_state=3)
    assert inf.heterogeneity(shuffled, "mean_alignment")[0]["p"] == first["p"]
    assert first["replicates"] == inf.BOOTSTRAP_REPLICATES
    draws = first["p"] * (1 + inf.BOOTSTRAP_REPLICATES)
    assert draws == pytest.approx(round(draws))  # p = (1 + replicates at least as large) / (1 + replicates)
    row, fit = inf.heterogeneity(trials, "mean_alignment")
    names = [n for n in fit.model.exog_names if n.startswith("x:")]
    tested = [fit.model.exog_names.index(n) for n in names]
    assert row["statistic"] == pytest.approx(float(np.squeeze(fit.f_test(np.eye(len(fit.params))[tested]).fvalue)))
    groups = trials["seed"].to_numpy()
    again = inf.wild_bootstrap_f(fit.model.exog, fit.model.endog, groups, tested)
    other = inf.wild_bootstrap_f(fit.model.exog, fit.model.endog, groups, tested, seed=inf.BOOTSTRAP_SEED + 1)
    assert again == (row["statistic"], row["p"]) and other[0] == row["statistic"]


def test_level_differences_find_a_planted_hump_and_not_a_flat_line():
    rng = np.random.default_rng(8)
    seeds, levels = 10, [64, 256, 1024]
    seed_effect = rng.normal(0, 0.03, seeds)
    for bump, expect_rejected in ((0.05, True), (0.0, False)):
        rows = [{"arm": "", "seed": s, "hidden": h, "trait_gain": 0.3 + bump * (h == 256) + seed_effect[s]
                 + rng.normal(0, 0.01)} for s in range(seeds) for h in levels]
        row = inf.level_differences(pd.DataFrame(rows), "trait_gain", "hidden")[0]
        assert row["df"] == 2 and (row["p"] <= 0.05) == expect_rejected


def test_the_exponent_is_recovered_with_cr2_and_its_satterthwaite_df():
    rng = np.random.default_rng(9)
    seeds, widths = 10, np.array([50_000.0, 200_000.0, 800_000.0])
    rows = [{"arm": "", "seed": s, "parameter_count": p,
             "mean_alignment": 0.008 * (p / 50_000) ** -0.3 * np.exp(rng.normal(0, 0.05)) + rng.normal(0, 0.0002)}
            for s in range(seeds) for p in widths]
    row, fit = inf.exponent(pd.DataFrame(rows), "mean_alignment", null=-0.5)
    assert row["ci_low"] < -0.3 < row["ci_high"] and row["se"] == "CR2"
    assert row["df"] == pytest.approx(fit.satterthwaite_df["x"])
    assert row["p"] == pytest.approx(2 * scipy_stats.t.sf(abs(row["statistic"]), row["df"]))
    half = scipy_stats.t.ppf(0.975, row["df"]) * float(fit.bse["x"])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((row["estimate"] - half, row["estimate"] + half))


def test_every_method_has_one_sentence_for_the_report():
    assert {"slope", "clustered slope", "exponent", "heterogeneity", "level differences"} <= set(inf.METHODS)
    assert all(text.endswith(".") and text.count(". ") == 0 for text in inf.METHODS.values())
