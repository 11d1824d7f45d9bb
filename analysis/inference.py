"""The tests the report runs, each on one number per seed (or per trial, seeds clustered), each returning
the same kind of row: `n`, `estimate`, `ci_low`, `ci_high`, `ci_level`, `statistic`, `df`, `p`.

A test that needs more (or better) data than there is raises `Refusal` with what it needs and has;
the tests table turns that into a refused row, never a number that means nothing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as scipy_stats
from statsmodels.stats.mediation import Mediation
from statsmodels.stats.power import FTestPowerF2, TTestPower
from statsmodels.stats.weightstats import DescrStatsW

from .errors import need

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
MIN_SEEDS = 3  # a t-test with fewer than 2 degrees of freedom says nothing useful
MIN_DISTINCT_X = 3  # a line through 2 distinct x values fits perfectly and tests nothing
POWER = 0.8  # what seeds-needed plans for, at ALPHA
MAX_SEEDS = 10_000  # beyond this, seeds-needed says only that the observed effect is too small to chase

Row = dict[str, Any]


def finite(values: Any) -> np.ndarray:
    x = np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=float)
    return x[np.isfinite(x)]


def t_halfwidth(sd: Any, n: Any, confidence: float = CONFIDENCE) -> np.ndarray:
    """Half-width of the t-based interval of a mean (NaN below 2 values)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        quantile = scipy_stats.t.ppf(1 - (1 - confidence) / 2, np.where(n >= 2, n - 1, np.nan))
        return quantile * np.asarray(sd, dtype=float) / np.sqrt(n)


def mean_ci(values: Any) -> Row:
    """Descriptive mean with its interval (none below 2 values): what the descriptive tables print."""
    x = finite(values)
    mean = float(x.mean()) if len(x) else np.nan
    half = float(t_halfwidth(x.std(ddof=1), len(x))) if len(x) >= 2 else np.nan
    return {"n": len(x), "mean": mean, "ci_low": mean - half, "ci_high": mean + half}


def _spread(x: np.ndarray, what: str) -> DescrStatsW:
    need(len(x) >= MIN_SEEDS, f"needs at least {MIN_SEEDS} seeds with a finite {what}, has {len(x)}")
    need(float(x.std(ddof=1)) > 0, f"all {len(x)} values of {what} are equal; a test needs some spread")
    return DescrStatsW(x)


def one_sample(values: Any, what: str, null: float = 0.0) -> Row:
    """Mean against `null`: two-sided t-test with its 95% interval; Cohen's d kept for seeds-needed."""
    x = finite(values)
    d = _spread(x, what)
    low, high = d.tconfint_mean(alpha=ALPHA)
    t, p, df = d.ttest_mean(null)
    return {"n": len(x), "estimate": float(d.mean), "ci_low": float(low), "ci_high": float(high),
            "ci_level": CONFIDENCE, "statistic": float(t), "df": float(df), "p": float(p),
            "effect_size": (float(d.mean) - null) / float(x.std(ddof=1))}


def equivalence(values: Any, what: str, margin: float) -> Row:
    """Two one-sided tests (TOST) of |mean| < margin. Equivalent at alpha when the 90% interval lies within
    ±margin; `flip_margin` is the smallest margin at which it would (the 90% interval's larger end)."""
    x = finite(values)
    d = _spread(x, what)
    p, lower, upper = d.ttost_mean(-margin, margin)
    low, high = d.tconfint_mean(alpha=2 * ALPHA)
    t = lower[0] if lower[1] >= upper[1] else upper[0]
    return {"n": len(x), "estimate": float(d.mean), "ci_low": float(low), "ci_high": float(high),
            "ci_level": 1 - 2 * ALPHA, "statistic": float(t), "df": float(lower[2]), "p": float(p),
            "margin": margin, "flip_margin": float(max(abs(low), abs(high)))}


def noninferiority(values: Any, what: str, margin: float) -> Row:
    """One-sided test that the mean (higher = worse) lies below `margin`; `flip_margin` is the one-sided 95%
    upper bound, the smallest margin at which the arm would be non-inferior."""
    x = finite(values)
    d = _spread(x, what)
    low, high = d.tconfint_mean(alpha=2 * ALPHA)
    t, p, df = d.ttest_mean(margin, alternative="smaller")
    return {"n": len(x), "estimate": float(d.mean), "ci_low": float(low), "ci_high": float(high),
            "ci_level": 1 - 2 * ALPHA, "statistic": float(t), "df": float(df), "p": float(p), "margin": margin,
            "flip_margin": float(high), "effect_size": (margin - float(d.mean)) / float(x.std(ddof=1))}


def per_seed(trials: pd.DataFrame, arms: list[str], metric: str) -> pd.DataFrame:
    """One row per seed, one column per arm: the arm's mean `metric` over that seed's trials, seeds with a
    finite value in every arm only (trials of a seed share teacher, split and noise, so they pair)."""
    need(metric in trials, f"needs {metric} in the trials, has none")
    for arm in arms:
        need(bool((trials["arm"] == arm).any()), f"needs completed trials of {arm}, has none")
    chosen = trials[trials["arm"].isin(arms)]
    table = pd.to_numeric(chosen[metric], errors="coerce").groupby([chosen["seed"], chosen["arm"]]).mean().unstack()
    need(all(arm in table for arm in arms), f"needs a finite {metric} in {' and '.join(arms)}")
    return table[arms].dropna()


def _fit(formula_y: pd.Series, exog: pd.DataFrame, seeds: pd.Series) -> Any:
    """OLS with standard errors clustered by seed where a seed has several trials (its arms share a teacher),
    with t on seeds − 1 degrees of freedom, else HC3; refused when the covariance is undefined."""
    need(np.linalg.matrix_rank(exog.to_numpy()) == exog.shape[1], "the regressors are collinear in this sample")
    model = sm.OLS(formula_y.to_numpy(dtype=float), exog)
    if seeds.value_counts().max() > 1:
        need(seeds.nunique() >= MIN_SEEDS + 1, f"needs at least {MIN_SEEDS + 1} seeds to cluster by seed, "
             f"has {seeds.nunique()}")
        fit = model.fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(seeds)[0]}, use_t=True)
    else:
        fit = model.fit(cov_type="HC3")
    need(bool(np.isfinite(fit.bse).all()), "the standard errors are undefined: a trial has leverage 1")
    return fit


def slope_sample(trials: pd.DataFrame, x: str, y: str = "trait_gain") -> pd.DataFrame:
    need(x in trials and y in trials, f"needs {x} and {y} in the trials")
    sample = trials[[y, x, "seed", "arm"]].assign(**{
        column: pd.to_numeric(trials[column], errors="coerce") for column in (x, y)}).dropna()
    need(len(sample) >= MIN_SEEDS + 1, f"needs at least {MIN_SEEDS + 1} trials with finite {x} and {y}, "
         f"has {len(sample)}")
    need(sample[x].nunique() >= MIN_DISTINCT_X,
         f"needs at least {MIN_DISTINCT_X} distinct values of {x}, has {sample[x].nunique()}")
    return sample


def arm_design(sample: pd.DataFrame, x: str, interactions: bool = False) -> pd.DataFrame:
    """Intercept, x, one intercept shift per arm after the first and (with `interactions`) one slope shift."""
    arms = list(dict.fromkeys(sample["arm"]))
    columns = {"const": 1.0, x: sample[x]}
    for arm in arms[1:]:
        columns[f"arm={arm}"] = (sample["arm"] == arm).astype(float)
        if interactions:
            columns[f"{x}:arm={arm}"] = columns[f"arm={arm}"] * sample[x]
    return pd.DataFrame(columns, index=sample.index)


def slope(trials: pd.DataFrame, x: str, y: str = "trait_gain") -> tuple[Row, Any]:
    """The slope of y on x, with an intercept per arm when several arms are given: (row, fitted model)."""
    sample = slope_sample(trials, x, y)
    fit = _fit(sample[y], arm_design(sample, x), sample["seed"])
    low, high = fit.conf_int(alpha=ALPHA).loc[x]
    return ({"n": int(sample["seed"].nunique()), "trials": len(sample), "estimate": float(fit.params[x]),
             "ci_low": float(low), "ci_high": float(high), "ci_level": CONFIDENCE,
             "statistic": float(fit.tvalues[x]), "df": float(_inference_df(fit)), "p": float(fit.pvalues[x]),
             "r2": float(fit.rsquared), "cov": fit.cov_type}, fit)


def _inference_df(fit: Any) -> float:
    """The t distribution's degrees of freedom: seeds − 1 when clustered by seed, else the residual df."""
    return float(getattr(fit, "df_resid_inference", None) or fit.df_resid)


def exponent(sample: pd.DataFrame, y: str, null: float, x: str = "parameter_count") -> tuple[Row, Any]:
    """The exponent b of E[y] = a_arm · x^b over trials: a Gaussian GLM with log link (so a trial with y <= 0
    still counts; only the means must be positive), an intercept per `arm` value, SEs clustered by seed (t on
    seeds − 1 df); tested against `null`. Returns (row, fitted model)."""
    sample = slope_sample(sample, x, y)
    need(sample["seed"].nunique() >= MIN_SEEDS + 1, f"needs at least {MIN_SEEDS + 1} seeds to cluster by seed, "
         f"has {sample['seed'].nunique()}")
    means = sample.groupby(["arm", x])[y].mean()
    need(bool((means > 0).all()), f"a mean of {y} at some {x} is not positive ({means.min():.3g}): a power law "
         "in it has no exponent")
    exog = arm_design(sample.assign(**{x: np.log(sample[x].astype(float))}), x)
    start = sm.OLS(np.log(sample.groupby(["arm", x])[y].transform("mean")), exog).fit().params
    model = sm.GLM(sample[y].to_numpy(dtype=float), exog, family=sm.families.Gaussian(sm.families.links.Log()))
    fit = model.fit(start_params=start, cov_type="cluster", cov_kwds={"groups": pd.factorize(sample["seed"])[0]},
                    use_t=True)
    need(bool(fit.converged) and bool(np.isfinite(fit.bse).all()), "the power-law fit did not converge")
    b, se, df = float(fit.params[x]), float(fit.bse[x]), _inference_df(fit)
    low, high = fit.conf_int(alpha=ALPHA).loc[x]
    t = (b - null) / se
    return ({"n": int(sample["seed"].nunique()), "trials": len(sample), "estimate": b, "ci_low": float(low),
             "ci_high": float(high), "ci_level": CONFIDENCE, "statistic": t, "df": df,
             "p": float(2 * scipy_stats.t.sf(abs(t), df)), "cov": fit.cov_type}, fit)


def heterogeneity(trials: pd.DataFrame, x: str, y: str = "trait_gain") -> Row:
    """Do the arms' slopes of y on x differ? Wald F-test of the arm × x interactions, seeds clustered."""
    sample = slope_sample(trials, x, y)
    informative = sample.groupby("arm")[x].transform("nunique") >= MIN_DISTINCT_X
    sample = sample[informative]
    arms = sample["arm"].nunique()
    need(arms >= 2, f"needs at least 2 arms with {MIN_DISTINCT_X} distinct values of {x}, has {arms}")
    exog = arm_design(sample, x, interactions=True)
    return _joint_test(sample, y, exog, [c for c in exog if c.startswith(f"{x}:")], "slope differences")


def level_differences(trials: pd.DataFrame, y: str, by: str) -> Row:
    """Do the means of y differ between the values of `by`, whatever the shape (a hump as well as a trend)? Wald
    F-test of the value terms, with an intercept per `arm` group, seeds clustered."""
    need(y in trials, f"needs {y} in the trials")
    sample = trials[[y, by, "seed", "arm"]].assign(**{y: pd.to_numeric(trials[y], errors="coerce")}).dropna()
    need(sample[by].nunique() >= 2, f"needs trials at 2 or more values of {by}, has {sample[by].nunique()}")
    values = pd.get_dummies(sample[by].astype(str), prefix=by, drop_first=True, dtype=float)
    groups = pd.get_dummies(sample["arm"].astype(str), prefix="group", drop_first=True, dtype=float)
    exog = pd.concat([pd.Series(1.0, index=sample.index, name="const"), values, groups], axis=1)
    return _joint_test(sample, y, exog, list(values.columns), f"differences between values of {by}")


def _joint_test(sample: pd.DataFrame, y: str, exog: pd.DataFrame, names: list[str], what: str) -> Row:
    """Wald F-test that the coefficients `names` of y ~ exog are all 0, with `_fit`'s standard errors."""
    fit = _fit(sample[y], exog, sample["seed"])
    if fit.cov_type == "cluster":
        need(sample["seed"].nunique() - 1 >= len(names), f"needs more seeds than the {len(names)} {what} it tests "
             f"with seeds clustered, has {sample['seed'].nunique()} seeds")
    restriction = np.zeros((len(names), exog.shape[1]))
    for i, name in enumerate(names):
        restriction[i, list(exog).index(name)] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wald = fit.wald_test(restriction, use_f=True, scalar=True)
    return {"n": int(sample["seed"].nunique()), "trials": len(sample), "estimate": np.nan, "ci_low": np.nan,
            "ci_high": np.nan, "ci_level": np.nan, "statistic": float(wald.statistic), "df": float(len(names)),
            "p": float(wald.pvalue), "cov": fit.cov_type}


def ratio(numerator: Any, denominator: Any, what: str, null: float) -> Row:
    """Ratio of two per-seed means, mean(numerator) / mean(denominator), with a delta-method t interval and a
    t-test against `null`; refused when the denominator's mean is not shown to differ from 0."""
    both = pd.DataFrame({"a": numerator, "b": denominator}).apply(pd.to_numeric, errors="coerce").dropna()
    n = len(both)
    need(n >= MIN_SEEDS, f"needs at least {MIN_SEEDS} seeds with a finite {what}, has {n}")
    a, b = both["a"].to_numpy(), both["b"].to_numpy()
    ma, mb = a.mean(), b.mean()
    half_b = float(t_halfwidth(b.std(ddof=1), n))
    need(abs(mb) > half_b, f"the measured change ({mb:.3g} ± {half_b:.3g}) is not shown to differ from 0, "
         "so a share of it means nothing")
    r = ma / mb
    cov = np.cov(a, b, ddof=1)
    se = math.sqrt(max((cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / n, 0.0)) / abs(mb)
    need(se > 0, f"all {n} ratios of {what} are equal; a test needs some spread")
    df = n - 1
    q = float(scipy_stats.t.ppf(1 - ALPHA / 2, df))
    t = (r - null) / se
    return {"n": n, "estimate": float(r), "ci_low": r - q * se, "ci_high": r + q * se, "ci_level": CONFIDENCE,
            "statistic": float(t), "df": float(df), "p": float(2 * scipy_stats.t.sf(abs(t), df)),
            "effect_size": (r - null) / (se * math.sqrt(n))}


DOSES = {"linear": lambda s, s_min: s, "log": lambda s, s_min: np.log1p(s / s_min)}


@dataclass(frozen=True)
class DoseModel:
    """The dose-response model the rule chose: its scale ('linear' or 'log'), both AICs, the smallest strength
    above 0 (the log dose's unit), and the fitted OLS of y ~ dose + seed with its design."""

    scale: str
    aic: dict[str, float]
    s_min: float
    fit: Any
    exog: pd.DataFrame


def dose_model(sample: pd.DataFrame, y: str = "trait_gain") -> DoseModel:
    """The dose scale of y's dose-response, by a stated rule: y ~ dose + seed by OLS on the linear dose s and on
    the log dose log(1 + s / s_min) (s_min the smallest strength above 0); the one with the lower AIC, linear on a
    tie."""
    s_min = float(sample.loc[sample["strength"] > 0, "strength"].min())
    seeds = pd.get_dummies(sample["seed"].astype(str), prefix="seed", drop_first=True, dtype=float)
    fits = {}
    for name, dose in DOSES.items():
        exog = pd.concat([pd.Series(1.0, index=sample.index, name="const"),
                          dose(sample["strength"], s_min).rename("dose"), seeds], axis=1)
        fits[name] = (sm.OLS(sample[y].to_numpy(dtype=float), exog).fit(), exog)
    aic = {name: float(fit.aic) for name, (fit, _) in fits.items()}
    scale = "log" if aic["log"] < aic["linear"] else "linear"
    return DoseModel(scale, aic, s_min, *fits[scale])


def mediation(sample: pd.DataFrame, mediator: str, scale: str, sims: int, rng_seed: int,
              outcome: str = "trait_gain") -> dict[str, Row]:
    """strength → mediator → outcome (statsmodels' Mediation, OLS models with seed fixed effects): the ACME, ADE
    and total effect of moving the dose from 0 to the largest strength tested, on the given dose scale."""
    sample = sample[["strength", mediator, outcome, "seed"]].dropna()
    strengths = sorted(sample["strength"].unique())
    need(len(strengths) >= 2, f"needs at least 2 distinct strengths (none counts as 0), has {len(strengths)}")
    need(sample[mediator].nunique() >= MIN_DISTINCT_X, f"needs {MIN_DISTINCT_X} distinct values of {mediator}")
    s_min = float(min(s for s in strengths if s > 0))
    dose = DOSES[scale](sample["strength"], s_min)
    exposure = (dose / DOSES[scale](strengths[-1], s_min)).rename("exposure")
    seeds = pd.get_dummies(sample["seed"].astype(str), prefix="seed", drop_first=True, dtype=float)
    const = pd.Series(1.0, index=sample.index, name="const")
    outcome_exog = pd.concat([const, sample[mediator], exposure, seeds], axis=1)
    need(len(sample) >= outcome_exog.shape[1] + 2, f"needs at least {outcome_exog.shape[1] + 2} trials to fit the "
         f"outcome model with {seeds.shape[1] + 1} seeds, has {len(sample)}")
    need(np.linalg.matrix_rank(outcome_exog.to_numpy()) == outcome_exog.shape[1],
         "strength is confounded with seed in this sample")
    fitted = Mediation(sm.OLS(sample[outcome], outcome_exog),
                       sm.OLS(sample[mediator], pd.concat([const, exposure, seeds], axis=1)),
                       exposure="exposure", mediator=mediator).fit(n_rep=sims, rng=rng_seed)
    table = fitted.summary(alpha=ALPHA)
    rows = {}
    for name, label in (("ACME", "ACME (average)"), ("ADE", "ADE (average)"), ("total", "Total effect")):
        estimate, low, high, p = (float(v) for v in table.loc[label])
        rows[name] = {"n": int(sample["seed"].nunique()), "trials": len(sample), "estimate": estimate,
                      "ci_low": low, "ci_high": high, "ci_level": CONFIDENCE, "statistic": np.nan, "df": np.nan,
                      "p": max(p, 1 / sims), "dose": scale, "contrast_to": float(strengths[-1])}
    return rows


def _t_power(size: float, n: float) -> float:
    """statsmodels' two-sided power; where its lower tail is NaN (large noncentrality), the upper tail alone."""
    value = float(TTestPower().power(effect_size=size, nobs=n, alpha=ALPHA, alternative="two-sided"))
    if np.isnan(value):
        value = float(TTestPower().power(effect_size=size, nobs=n, alpha=ALPHA / 2, alternative="larger"))
    return value


def seeds_needed(row: Row) -> int:
    """Seeds for POWER at ALPHA if the true effect were the observed one: one-sample and paired tests from
    Cohen's d (statsmodels TTestPower), slopes from Cohen's f² = t² / df (FTestPowerF2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if np.isfinite(row.get("effect_size", np.nan)):
            size = abs(float(row["effect_size"]))
            need(size > 0, "the observed effect is 0: no number of seeds would detect it")
            if _t_power(size, MIN_SEEDS) >= POWER:
                return MIN_SEEDS
            solved = float(TTestPower().solve_power(effect_size=size, alpha=ALPHA, power=POWER))
            extra = 0
        else:
            f2 = row["statistic"] ** 2 / row["df"]
            need(f2 > 0, "the observed slope is 0: no number of seeds would detect it")
            solver = FTestPowerF2()
            if solver.power(effect_size=f2, df_num=1, df_denom=2, alpha=ALPHA, ncc=0) >= POWER:
                return MIN_SEEDS + 1
            solved = float(solver.solve_power(effect_size=f2, df_num=1, df_denom=None, alpha=ALPHA, power=POWER,
                                              ncc=0))
            extra = row["n"] - row["df"]  # parameters: seeds = residual df + parameters
    need(np.isfinite(solved), "the power equation did not solve for the observed effect")
    needed = max(MIN_SEEDS, math.ceil(solved + extra - 1e-9))
    need(needed <= MAX_SEEDS, f"the observed effect would need more than {MAX_SEEDS:,} seeds")
    return needed
