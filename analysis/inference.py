"""The tests the report runs, each on one number per seed (or per trial, seeds clustered), each returning
the same kind of row: `n`, `estimate`, `ci_low`, `ci_high`, `ci_level`, `statistic`, `df`, `p`; a model's test
returns (row, fitted model), so that a figure draws the model its row was answered with.

A test that needs more (or better) data than there is raises `Refusal` with what it needs and has. Models over
several trials of a seed cluster by seed; with 10 to 20 seeds the usual CR1 Wald tests reject a true null far too
often (`benchmarks/heterogeneity_size.py`), so one clustered coefficient is read with CR2 and a t on Bell–McCaffrey
degrees of freedom, and a joint test takes its p from a restricted wild-cluster bootstrap. `METHODS` says each in
one sentence. Designs come from statsmodels formulas over fixed column names (y, x, arm, seed, level, dose): no
value of a results folder is ever part of a formula.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats as scipy_stats
from statsmodels.genmod import families  # not statsmodels.api: it imports all of statsmodels
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.power import FTestPowerF2, TTestPower
from statsmodels.stats.weightstats import DescrStatsW

from .errors import need

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
MIN_SEEDS = 3  # a t-test with fewer than 2 degrees of freedom says nothing useful
MIN_DISTINCT_X = 3  # a line through 2 distinct x values fits perfectly and tests nothing
POWER = 0.8  # what seeds-needed plans for, at ALPHA
MAX_SEEDS = 10_000  # beyond this, seeds-needed says only that the observed effect is too small to chase
BOOTSTRAP_REPLICATES = 4999  # the wild-cluster bootstrap's draws: p resolves to 1/5000 (Monte Carlo SE 0.003 at 0.05)
BOOTSTRAP_SEED = 20180514  # fixed, so that a report is reproducible: the same trials give the same p-value
WEBB = np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)])  # each w.p. 1/6

METHODS = {
    "slope": "A slope within one arm (one trial per seed): OLS with HC3 standard errors and a t reference on n − 2 "
             "degrees of freedom (simulated size 0.05 at 10 seeds, where HC3 with a normal reference gives about "
             "0.08 and plain OLS errors over-reject when the spread of trait gain changes with alignment).",
    "clustered slope": "A slope over several trials per seed (a common slope with an intercept per arm, a trend or "
                       "tracking across levels): OLS with CR2 (Bell–McCaffrey) standard errors clustered by seed and "
                       "a t reference on Bell–McCaffrey's Satterthwaite degrees of freedom, closer to its nominal "
                       "size with 10 to 20 seeds than CR1 with t on seeds − 1, which rejects too often.",
    "exponent": "The exponent in P: a Gaussian GLM with log link and an intercept per group, CR2 standard errors of "
                "the linearised model clustered by seed, and a t reference on Satterthwaite degrees of freedom.",
    "heterogeneity": "Whether the arms' slopes differ: the OLS F statistic of the arm × regressor terms, its p-value "
                     f"from a restricted wild-cluster bootstrap over seeds (the common-slope null imposed, Webb's "
                     f"six-point weights, {BOOTSTRAP_REPLICATES} replicates, fixed seed {BOOTSTRAP_SEED}), which holds "
                     "its size with 10 to 20 seeds (simulated 0.03 to 0.05 at 0.05) where the cluster-robust Wald F "
                     "rejects a true common slope in 19% to 46% of simulated sweeps, and CR2 with an approximate "
                     "Hotelling test has almost no degrees of freedom left with nearly as many terms as seeds.",
    "level differences": "Whether an arm's means differ between the values of an axis: the OLS F statistic of the "
                         "value terms (an intercept per level of the other axes), its p-value from a restricted "
                         f"wild-cluster bootstrap over seeds (Webb's six-point weights, {BOOTSTRAP_REPLICATES} "
                         f"replicates, fixed seed {BOOTSTRAP_SEED}).",
}

Row = dict[str, Any]


def finite(values: Any) -> np.ndarray:
    x = np.asarray(values)  # an array of numbers as it is; other values each read as a number where it is one (slow)
    x = x if x.dtype.kind in "fi" else np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"))
    x = x.astype(float)
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


def mean_cis(frame: pd.DataFrame, columns: Any) -> Row:
    """`mean_ci` of each of `columns` (a dict: column → NAME) as NAME_n, NAME_mean, NAME_ci_low and NAME_ci_high."""
    names = columns if isinstance(columns, dict) else dict(zip(columns, columns))
    return {f"{name}_{key}": value for column, name in names.items()
            for key, value in mean_ci(frame.get(column, [])).items()}


def _spread(values: Any, what: str) -> tuple[np.ndarray, DescrStatsW]:
    x = finite(values)
    need(len(x) >= MIN_SEEDS, f"needs at least {MIN_SEEDS} seeds with a finite {what}, has {len(x)}")
    need(float(x.std(ddof=1)) > 0, f"all {len(x)} values of {what} are equal; a test needs some spread")
    return x, DescrStatsW(x)


def _mean_row(d: DescrStatsW, level: float, statistic: float, p: float, df: float, **more: Any) -> Row:
    """A mean's row: its t statistic, p and df (statsmodels' order), with its interval at `level`."""
    low, high = d.tconfint_mean(alpha=1 - level)
    return {"n": int(d.nobs), "estimate": float(d.mean), "ci_low": float(low), "ci_high": float(high),
            "ci_level": level, "statistic": float(statistic), "df": float(df), "p": float(p), **more}


def one_sample(values: Any, what: str, null: float = 0.0) -> Row:
    """Mean against `null`: two-sided t-test with its 95% interval; Cohen's d kept for seeds-needed."""
    x, d = _spread(values, what)
    return _mean_row(d, CONFIDENCE, *d.ttest_mean(null), effect_size=(float(d.mean) - null) / float(x.std(ddof=1)))


def equivalence(values: Any, what: str, margin: float) -> Row:
    """Two one-sided tests (TOST) of |mean| < margin. Equivalent at alpha when the 90% interval lies within
    ±margin; `flip_margin` is the smallest margin at which it would (the 90% interval's larger end)."""
    _, d = _spread(values, what)
    p, lower, upper = d.ttost_mean(-margin, margin)
    row = _mean_row(d, 1 - 2 * ALPHA, lower[0] if lower[1] >= upper[1] else upper[0], p, lower[2], margin=margin)
    return {**row, "flip_margin": max(abs(row["ci_low"]), abs(row["ci_high"]))}


def noninferiority(values: Any, what: str, margin: float) -> Row:
    """One-sided test that the mean (higher = worse) lies below `margin`; `flip_margin` is the one-sided 95%
    upper bound, the smallest margin at which the arm would be non-inferior."""
    x, d = _spread(values, what)
    row = _mean_row(d, 1 - 2 * ALPHA, *d.ttest_mean(margin, alternative="smaller"), margin=margin,
                    effect_size=(margin - float(d.mean)) / float(x.std(ddof=1)))
    return {**row, "flip_margin": row["ci_high"]}


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


def _clusters(seeds: pd.Series) -> np.ndarray:
    """Seeds as cluster codes 0..G-1 in sorted order (a bootstrap's draws do not depend on the trials' order);
    refused with too few seeds to cluster by."""
    need(seeds.nunique() >= MIN_SEEDS + 1, f"needs at least {MIN_SEEDS + 1} seeds to cluster by seed, "
         f"has {seeds.nunique()}")
    return pd.factorize(seeds, sort=True)[0]


def _fit(model: Any, seeds: pd.Series, focal: str | None = None) -> Any:
    """Fit an OLS model. Where a seed has several trials (its arms share a teacher): CR2 clustered by seed, t on
    the Bell–McCaffrey df of the coefficient `focal` (`cr2`). Else HC3 with t on the residual df."""
    need(np.linalg.matrix_rank(model.exog) == model.exog.shape[1], "the regressors are collinear in this sample")
    if seeds.value_counts().max() > 1:
        groups = _clusters(seeds)
        fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        _use_cr2(fit, model.exog, np.asarray(fit.resid), groups, focal)
    else:
        fit = model.fit(cov_type="HC3", use_t=True)
    need(bool(np.isfinite(fit.bse).all()), "the standard errors are undefined: a trial has leverage 1")
    return fit


def cr2(exog: np.ndarray, resid: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CR2 cluster-robust covariance of a least-squares fit and each coefficient's Bell–McCaffrey degrees of
    freedom: (covariance, df per coefficient). CR2 (Bell & McCaffrey 2002; Pustejovsky & Tipton 2018) rescales
    each cluster's residuals by (I − H_gg)^(−1/2), undoing their shrinkage toward the fit, where CR1's factor
    G/(G − 1) leaves 10 to 20 clusters' errors too small; the df is Satterthwaite's 2 E[V]² / Var[V] for the CR2
    variance V under independent equal-variance errors. On one trial per cluster CR2 is HC2. `exog` may be a
    linearised design (a GLM's ∂μ/∂β, `resid` its y − μ)."""
    x, e = np.asarray(exog, dtype=float), np.asarray(resid, dtype=float)
    n, k = x.shape
    bread = np.linalg.pinv(x.T @ x)
    residual_maker = np.eye(n) - x @ bread @ x.T
    clusters = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    adjusted = np.zeros((k, n))  # cluster g's columns: bread · X_g' · (I − H_gg)^(−1/2)
    for idx in clusters:
        values, vectors = np.linalg.eigh(residual_maker[np.ix_(idx, idx)])
        keep = values > 1e-12  # a pseudo-inverse root where a cluster alone determines some coefficient
        root = np.where(keep, 1 / np.sqrt(np.where(keep, values, 1.0)), 0.0)
        adjusted[:, idx] = bread @ x[idx].T @ ((vectors * root) @ vectors.T)
    scores = np.stack([adjusted[:, idx] @ e[idx] for idx in clusters])  # G × k
    # Coefficient c's CR2 variance is Σ_g (a_gc' ε)², a_gc = (I − H)_{·g} adjusted_cg': a quadratic form in ε
    # whose mean and variance under ε ~ N(0, I) are Σ_g m_ggc and 2 Σ_gh m_ghc², with m_ghc = a_gc' a_hc.
    a = np.stack([adjusted[:, idx] @ residual_maker[idx] for idx in clusters])  # G × k × n
    m = np.einsum("gcn,hcn->cgh", a, a)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.einsum("cgg->c", m) ** 2 / (m ** 2).sum(axis=(1, 2))
    return scores.T @ scores, df


def _use_cr2(fit: Any, exog: np.ndarray, resid: np.ndarray, groups: np.ndarray, focal: str | None) -> None:
    """Make a clustered statsmodels fit carry CR2: its covariance (so bse, conf_int, t_test and get_prediction
    use it), t on the Bell–McCaffrey df of `focal` (else seeds − 1), and `satterthwaite_df` per coefficient."""
    covariance, df = cr2(exog, resid, groups)
    results = getattr(fit, "_results", fit)
    names = list(fit.model.exog_names)
    results.cov_params_default = covariance
    results.satterthwaite_df = pd.Series(df, index=names)
    results.df_resid_inference = float(df[names.index(focal)]) if focal is not None else float(len(set(groups))) - 1
    results.cov_kwds = {**results.cov_kwds, "description": "Standard Errors are CR2 (Bell-McCaffrey) cluster-robust "
                        "by seed, t on Satterthwaite degrees of freedom"}
    results._cache = {}  # statsmodels' cached bse, tvalues, pvalues: computed again from the CR2 covariance


def slope_sample(trials: pd.DataFrame, x: str, y: str = "trait_gain") -> pd.DataFrame:
    """Columns y, x, seed and arm of the trials with a finite x and y, checked to hold a line."""
    need(x in trials and y in trials, f"needs {x} and {y} in the trials")
    sample = pd.DataFrame({"y": pd.to_numeric(trials[y], errors="coerce"),
                           "x": pd.to_numeric(trials[x], errors="coerce"),
                           "seed": trials["seed"], "arm": trials["arm"].astype(str)}).dropna()
    need(len(sample) >= MIN_SEEDS + 1, f"needs at least {MIN_SEEDS + 1} trials with finite {x} and {y}, "
         f"has {len(sample)}")
    need(sample["x"].nunique() >= MIN_DISTINCT_X,
         f"needs at least {MIN_DISTINCT_X} distinct values of {x}, has {sample['x'].nunique()}")
    return sample


def _row(fit: Any, sample: pd.DataFrame, name: str = "x", null: float = 0.0) -> Row:
    """The row of coefficient `name` of a fit with CR2 (clustered) or HC3 errors, tested against `null`."""
    clustered = fit.cov_type == "cluster"
    df = float(getattr(fit, "df_resid_inference", None) or fit.df_resid)
    estimate, se = float(fit.params[name]), float(fit.bse[name])
    low, high = fit.conf_int(alpha=ALPHA).loc[name]
    t = (estimate - null) / se
    return {"n": int(sample["seed"].nunique()), "trials": len(sample), "estimate": estimate, "ci_low": float(low),
            "ci_high": float(high), "ci_level": CONFIDENCE, "statistic": t, "df": df,
            "p": float(2 * scipy_stats.t.sf(abs(t), df)), "cov": fit.cov_type, "se": "CR2" if clustered else "HC3",
            "method": f"CR2 SEs clustered by seed, t on {df:.1f} Bell–McCaffrey df" if clustered
            else f"HC3 SEs, t on {df:.0f} df"}


def slope(trials: pd.DataFrame, x: str, y: str = "trait_gain") -> tuple[Row, Any]:
    """The slope of y on x in `y ~ x + C(arm)` (an intercept per arm), with `_fit`'s errors (METHODS says why);
    its row adds trials, r2, cov, se and method."""
    sample = slope_sample(trials, x, y)
    fit = _fit(smf.ols("y ~ x + C(arm)", sample), sample["seed"], focal="x")
    return {**_row(fit, sample), "r2": float(fit.rsquared)}, fit


def exponent(sample: pd.DataFrame, y: str, null: float, x: str = "parameter_count") -> tuple[Row, Any]:
    """The exponent b of E[y] = a_arm · x^b over trials: a Gaussian GLM with log link (a trial with y <= 0 still
    counts; only the means must be positive), `y ~ log(x) + C(arm)`, CR2 clustered by seed on the linearised model
    (design μ·X, residuals y − μ), t on b's Bell–McCaffrey df; tested against `null`."""
    sample = slope_sample(sample, x, y)
    groups = _clusters(sample["seed"])
    means = sample.groupby(["arm", "x"])["y"].transform("mean")
    need(bool((means > 0).all()), f"a mean of {y} at some {x} is not positive ({means.min():.3g}): a power law "
         "in it has no exponent")
    sample = sample.assign(x=np.log(sample["x"].astype(float)), log_mean=np.log(means))
    start = smf.ols("log_mean ~ x + C(arm)", sample).fit().params
    model = smf.glm("y ~ x + C(arm)", sample, family=families.Gaussian(families.links.Log()))
    fit = model.fit(start_params=start, cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    need(bool(fit.converged), "the power-law fit did not converge")
    mu = np.asarray(fit.fittedvalues, dtype=float)
    _use_cr2(fit, model.exog * mu[:, None], model.endog - mu, groups, "x")
    need(bool(np.isfinite(fit.bse).all()), "the power-law fit did not converge")
    return _row(fit, sample, null=null), fit


def heterogeneity(trials: pd.DataFrame, x: str, y: str = "trait_gain") -> tuple[Row, Any]:
    """Do the arms' slopes of y on x differ? The F of the arm × x terms of `y ~ x * C(arm)` (arms with at least
    MIN_DISTINCT_X values of x), p by a restricted wild-cluster bootstrap over seeds (`wild_bootstrap_f`)."""
    sample = slope_sample(trials, x, y)
    sample = sample[sample.groupby("arm")["x"].transform("nunique") >= MIN_DISTINCT_X]
    arms = sample["arm"].nunique()
    need(arms >= 2, f"needs at least 2 arms with {MIN_DISTINCT_X} distinct values of {x}, has {arms}")
    return _joint_test(smf.ols("y ~ x * C(arm)", sample), sample["seed"], "x:", f"arm × {x} terms")


def level_differences(trials: pd.DataFrame, y: str, by: str) -> tuple[Row, Any]:
    """Do the means of y differ between the values of `by`, whatever the shape (a hump as well as a trend)? The F
    of the value terms of `y ~ C(level) + C(arm)` (an intercept per `arm` group), p by the bootstrap."""
    need(y in trials, f"needs {y} in the trials")
    sample = pd.DataFrame({"y": pd.to_numeric(trials[y], errors="coerce"), "level": trials[by].astype(str),
                           "seed": trials["seed"], "arm": trials["arm"].astype(str)})[trials[by].notna()].dropna()
    need(sample["level"].nunique() >= 2, f"needs trials at 2 or more values of {by}, has {sample['level'].nunique()}")
    return _joint_test(smf.ols("y ~ C(level) + C(arm)", sample), sample["seed"], "C(level)", f"{by} terms")


def _joint_test(model: Any, seeds: pd.Series, prefix: str, what: str) -> tuple[Row, Any]:
    """The OLS F statistic that the coefficients named `prefix`... are all 0, with a restricted wild-cluster
    bootstrap p-value over seeds (each trial its own cluster where no seed repeats): (row, fitted OLS)."""
    exog, names = model.exog, model.exog_names
    tested = [i for i, name in enumerate(names) if name.startswith(prefix)]
    need(np.linalg.matrix_rank(exog) == exog.shape[1], "the regressors are collinear in this sample")
    clustered = bool(seeds.value_counts().max() > 1)
    groups = _clusters(seeds) if clustered else np.arange(len(seeds))
    need(len(seeds) > exog.shape[1], f"needs more trials than the {exog.shape[1]} coefficients, has {len(seeds)}")
    statistic, p = wild_bootstrap_f(exog, model.endog, groups, tested)
    need(bool(np.isfinite(statistic)), f"the F statistic of the {what} is undefined: the fit has no residual spread")
    unit = "seeds" if clustered else "trials"
    return ({"n": int(seeds.nunique()), "trials": len(seeds), "estimate": np.nan, "ci_low": np.nan,
             "ci_high": np.nan, "ci_level": np.nan, "statistic": float(statistic), "df": float(len(tested)),
             "p": float(p), "cov": "cluster" if clustered else "HC", "replicates": BOOTSTRAP_REPLICATES,
             "method": f"F of {len(tested)} {what}, p by restricted wild-cluster bootstrap over "
                       f"{groups.max() + 1} {unit} (Webb weights, {BOOTSTRAP_REPLICATES} replicates)"}, model.fit())


def wild_bootstrap_f(exog: np.ndarray, endog: np.ndarray, groups: np.ndarray, tested: list[int],
                     replicates: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """The OLS F statistic that the coefficients at columns `tested` are 0, and its restricted wild-cluster
    bootstrap p-value: (F, p). Each replicate is y* = ŷ + w_g ũ from the restricted fit, one Webb weight per
    cluster (6^10 distinct draws with 10 clusters where Rademacher's ±1 has 1,024), and p = (1 + #{F* >= F}) /
    (1 + replicates); vectorised: a replicate's estimates and residual sum of squares are linear and quadratic in
    the weights. The F is the plain one: the bootstrap supplies the clustering and the arms' unequal spreads,
    while a cluster-robust Wald of as many terms as seeds is near singular (its bootstrap size 0.07 at 10 seeds)."""
    x, y = np.asarray(exog, dtype=float), np.asarray(endog, dtype=float)
    n, k = x.shape
    q = len(tested)
    codes = pd.factorize(np.asarray(groups), sort=True)[0]
    g = int(codes.max()) + 1
    kept = [j for j in range(k) if j not in set(tested)]
    restricted = x[:, kept]
    u = y - restricted @ np.linalg.lstsq(restricted, y, rcond=None)[0]
    bread = np.linalg.pinv(x.T @ x)
    members = np.zeros((n, g))
    members[np.arange(n), codes] = 1.0
    scores = x.T @ (u[:, None] * members)  # k × G: X_g' ũ_g; a replicate's X'y* − X'ŷ is scores · w
    squares = members.T @ u ** 2  # G: ũ_g'ũ_g
    weights = np.vstack([np.ones(g), WEBB[np.random.default_rng(seed).integers(0, len(WEBB), (replicates, g))]])
    xu = weights @ scores.T  # (1 + B) × k; row 0 (all weights 1) is the sample itself: y* = ŷ + ũ = y
    beta = xu @ bread  # the replicates' estimates less the restricted fit's (whose tested coefficients are 0)
    rss = (weights ** 2) @ squares - (xu * beta).sum(axis=1)
    tested_beta = beta[:, tested]
    precision = np.linalg.inv(bread[np.ix_(tested, tested)])
    with np.errstate(invalid="ignore", divide="ignore"):
        f = ((tested_beta @ precision) * tested_beta).sum(axis=1) / q / (rss / (n - k))
    return float(f[0]), float((1 + np.sum(f[1:] >= f[0] * (1 - 1e-9))) / (1 + replicates))  # ties up to rounding count


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


def within_seed(frame: Any, seeds: pd.Series) -> Any:
    """Each column less its seed's mean: a regression on these is one with an intercept per seed (Frisch–Waugh–
    Lovell), at O(trials) cost where a dummy per seed costs O(trials × seeds)."""
    return frame - frame.groupby(seeds.to_numpy()).transform("mean")


def seed_effects_ols(y: pd.Series, x: pd.DataFrame, seeds: pd.Series) -> Any:
    """OLS of y on x with an intercept per seed, by within-seed centring: the coefficients of x, the residuals and
    their covariance of the model with a dummy per seed (the residual df counts the seeds' intercepts)."""
    model = OLS(within_seed(y.astype(float), seeds), within_seed(x.astype(float), seeds))
    model.df_resid = len(y) - x.shape[1] - seeds.nunique()
    return model.fit()


class DoseModel(NamedTuple):
    """trait_gain ~ dose + an intercept per seed on the scale the rule chose; drawn at the sample's average seed,
    where the prediction is mean(y) + slope (dose − mean(dose)), with variance σ²/n + (dose − mean(dose))² var(slope)."""

    scale: str  # "linear" or "log"
    aic: dict[str, float]
    s_min: float  # the smallest strength above 0: the log dose's unit
    fit: Any  # the slope's fit (within seeds)
    mean_y: float
    mean_dose: float

    def predict(self, strengths: Any) -> pd.DataFrame:
        """The average seed's mean and its 95% interval at `strengths`, in statsmodels' summary_frame's columns."""
        centred = DOSES[self.scale](np.asarray(strengths, dtype=float), self.s_min) - self.mean_dose
        mean = self.mean_y + self.fit.params["dose"] * centred
        se = np.sqrt(self.fit.scale / self.fit.nobs + centred ** 2 * self.fit.bse["dose"] ** 2)
        half = scipy_stats.t.ppf(1 - ALPHA / 2, self.fit.df_resid) * se
        return pd.DataFrame({"mean": mean, "mean_ci_lower": mean - half, "mean_ci_upper": mean + half})


def dose_model(sample: pd.DataFrame, y: str = "trait_gain") -> DoseModel:
    """The dose scale of y's dose-response, by a stated rule: y ~ dose + an intercept per seed by OLS on the linear
    dose s and on the log dose log(1 + s / s_min) (s_min the smallest strength above 0); the lower AIC, linear on a
    tie (two strengths make the two the same model)."""
    s_min, seeds = float(sample.loc[sample["strength"] > 0, "strength"].min()), sample["seed"]
    doses = {name: dose(sample["strength"].astype(float), s_min).rename("dose") for name, dose in DOSES.items()}
    fits = {name: seed_effects_ols(sample[y], dose.to_frame(), seeds) for name, dose in doses.items()}
    aic = {name: float(fit.aic) + 2 * seeds.nunique() for name, fit in fits.items()}  # + the seeds' intercepts
    scale = "log" if aic["log"] < aic["linear"] - 1e-9 * abs(aic["linear"]) else "linear"  # linear on a rounding tie
    return DoseModel(scale, aic, s_min, fits[scale], float(sample[y].mean()), float(doses[scale].mean()))


def mediation(sample: pd.DataFrame, mediator: str, scale: str, sims: int, rng_seed: int,
              outcome: str = "trait_gain") -> dict[str, Row]:
    """strength → mediator → outcome as statsmodels' parametric `Mediation` computes it for m ~ exposure + seed and
    y ~ exposure * m + seed (exposure: the dose scaled to 0 at strength 0 and 1 at the largest): the average ACME,
    ADE and total effect over `sims` simulations, with percentile intervals and simulated p. Vectorised: for linear
    models an effect depends only on a few coefficients and noise means, drawn from their exact joint distribution.
    Estimates, not tests: they assume no mediator–outcome confounding within a seed and no other path of the dose."""
    sample = sample[["strength", mediator, outcome, "seed"]].dropna()
    strengths = sorted(sample["strength"].unique())
    need(len(strengths) >= 2, f"needs at least 2 distinct strengths (none counts as 0), has {len(strengths)}")
    need(sample[mediator].nunique() >= MIN_DISTINCT_X, f"needs {MIN_DISTINCT_X} distinct values of {mediator}")
    s_min, seeds, n = float(min(s for s in strengths if s > 0)), sample["seed"], len(sample)
    exposure = DOSES[scale](sample["strength"], s_min) / DOSES[scale](strengths[-1], s_min)
    m = sample[mediator].astype(float)
    design = pd.DataFrame({"exposure": exposure, "m": m, "exposure:m": exposure * m})
    parameters = seeds.nunique() + 3
    need(n >= parameters + 2, f"needs at least {parameters + 2} trials to fit the outcome model with "
         f"{seeds.nunique()} seeds, has {n}")
    need(np.linalg.matrix_rank(within_seed(design, seeds).to_numpy()) == 3,
         "strength is confounded with seed in this sample")
    outcome_fit = seed_effects_ols(sample[outcome], design, seeds)
    mediator_fit = seed_effects_ols(m, design[["exposure"]], seeds)
    rng = np.random.default_rng(rng_seed)
    b_exposure, b_m, b_both = rng.multivariate_normal(outcome_fit.params, outcome_fit.cov_params(), sims).T
    theta = rng.normal(mediator_fit.params["exposure"], mediator_fit.bse["exposure"], sims)
    sd = math.sqrt(mediator_fit.scale / n)  # of the mediator model's mean fit, and of a mean of n simulated noises
    level, noise = rng.normal(0, sd, sims), rng.normal(0, sd, (2, sims))
    moved = theta + noise[1] - noise[0]  # the mean of M(1) − M(0) over the trials
    mean_m = [float(m.mean()) + level + (t - float(exposure.mean())) * theta + noise[t] for t in (0, 1)]
    acme, ade = [(b_m + b_both * t) * moved for t in (0, 1)], [b_exposure + b_both * mean_m[t] for t in (0, 1)]
    draws = {"ACME": (acme[0] + acme[1]) / 2, "ADE": (ade[0] + ade[1]) / 2, "total": (sum(acme) + sum(ade)) / 2}
    return {name: {"n": int(seeds.nunique()), "trials": n, "estimate": float(d.mean()),
                   "ci_low": float(np.percentile(d, 100 * ALPHA / 2)),
                   "ci_high": float(np.percentile(d, 100 * (1 - ALPHA / 2))),
                   "ci_level": CONFIDENCE, "statistic": np.nan, "df": np.nan,
                   "p": max(2 * min((d > 0).mean(), (d < 0).mean()), 1 / sims), "dose": scale,
                   "contrast_to": float(strengths[-1])} for name, d in draws.items()}


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
