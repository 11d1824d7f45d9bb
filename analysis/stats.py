"""The report's statistics: each function answers one question of the protocol with an effect size,
an interval and a test, as one of the small answers of `answers` (plain Python values, ready for JSON).

A statistic that needs more data than there is raises `Refusal`; `attempt` turns that into the
answer `Refused(reason)`, so the report says what is missing instead of printing a number that
means nothing. Every statistic uses completed trials only.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as scipy_stats
from statsmodels.stats.mediation import Mediation
from statsmodels.stats.power import FTestPowerF2, TTestPower
from statsmodels.stats.weightstats import DescrStatsW

from sublim.core.mitigations import MITIGATIONS as REGISTRY
from sublim.core.schema import LAYER_NAMES

from .answers import (AlignmentByEpoch, Coefficient, Comparisons, CriticalPeriod, DataSummary, DoseLevel,
                      DoseResponse, EpochGain, EpochTest, FixedEffectsRegression, LiminalComparison, MeanCI,
                      MeanRange, MeanTest, MediationResult, Meta, MixedRegression, NonInferiority, Paired,
                      PlaceboComparison, PositiveSteps, Positivity, PowerEntry, ProjectionComparison,
                      ProportionMediated, Refused, Regression, Regressions, SeedsNeeded, SimulatedEffect, Stats,
                      UpdateAlignment, UpdateAlignments, Wilcoxon)
from .errors import Refusal, need
from .load import DIVERGED_COLUMNS, STATUSES, Results, arm_order

T = TypeVar("T")

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
BASELINE = "none/shared"
CONTROL = "none/independent"
MITIGATIONS = tuple(name for name, m in REGISTRY.items() if m.max_strength > 0)  # those with a dose
MIN_TEST_N = 3  # a t-test with fewer than 2 degrees of freedom says nothing useful
MIN_WILCOXON_N = 6  # below 6, a two-sided signed-rank test cannot reach p < 0.05 whatever the data
MIN_REGRESSION_N = 4  # slope and intercept leave at least 2 residual degrees of freedom
MIN_DISTINCT_X = 3  # a line through 2 distinct x values fits perfectly and tests nothing
MEDIATION_SIMS = 500  # parametric draws per mediation: percentile intervals settle to about 2 digits
EXPOSURE, MEDIATOR, OUTCOME = "exposure", "mean_alignment", "trait_gain"  # the mediation's named columns
ARM_METRICS = ("teacher_acc", "student_acc_before", "student_acc", "trait_gain", "mean_alignment",
               "frac_positive_steps", "mean_applied_alignment", "final_distill_loss", "mean_update_alignment")
UPDATE = "update_alignment"  # `of` for the statistics of the step the optimizer applied, cos(-Δθ, g_t)
MARGIN = 0.05  # non-inferiority margin: a fraction of the reference arm's mean (sublim report --margin)
POWER = 0.8  # the power `seeds_needed` plans for, at ALPHA
MAX_SEEDS = 10_000  # beyond this, "seeds needed" says only that the observed effect is too small to chase


def attempt(statistic: Callable[..., T], *args: Any, **kwargs: Any) -> T | Refused:
    """The statistic's answer, or `Refused(reason)` when the data cannot support it."""
    try:
        return statistic(*args, **kwargs)
    except Refusal as refusal:
        return Refused(str(refusal))


def _finite(values: Any) -> np.ndarray:
    x = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    return x[np.isfinite(x)]


def t_halfwidth(sd: Any, n: Any) -> np.ndarray:
    """Half-width of the t-based confidence interval of a mean (NaN below 2 values)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        quantile = scipy_stats.t.ppf(1 - ALPHA / 2, np.where(n >= 2, n - 1, np.nan))
        return quantile * np.asarray(sd, dtype=float) / np.sqrt(n)


def mean_ci(values: Any) -> MeanCI:
    """Descriptive mean with its confidence interval (no interval below 2 values)."""
    x = _finite(values)
    mean = float(x.mean()) if len(x) else np.nan
    half = float(t_halfwidth(x.std(ddof=1), len(x))) if len(x) >= 2 else np.nan
    return MeanCI(n=len(x), mean=mean, ci_low=mean - half, ci_high=mean + half)


def describe(values: Any, what: str, null: float = 0.0, units: str = "trials") -> MeanTest:
    """Mean against `null`: CI, one-sample t-test, Wilcoxon signed-rank test and Cohen's d."""
    x = _finite(values)
    need(len(x) >= MIN_TEST_N, f"needs at least {MIN_TEST_N} {units} with a finite {what}, has {len(x)}")
    sd = float(x.std(ddof=1))
    need(sd > 0, f"all {len(x)} values of {what} are equal; a test needs some spread")
    d = DescrStatsW(x)
    low, high = d.tconfint_mean(alpha=ALPHA)
    t, p, df = d.ttest_mean(null)
    return MeanTest(n=len(x), mean=float(d.mean), sd=sd, se=float(d.std_mean), ci_low=float(low),
                    ci_high=float(high), null=null, t=float(t), df=float(df), p=float(p),
                    cohens_d=(float(d.mean) - null) / sd, wilcoxon=attempt(_wilcoxon, x - null, what))


def _wilcoxon(differences: np.ndarray, what: str) -> Wilcoxon:
    n = int(np.count_nonzero(differences))
    need(n >= MIN_WILCOXON_N, f"needs at least {MIN_WILCOXON_N} non-zero values of {what}, has {n}")
    result = scipy_stats.wilcoxon(differences)
    return Wilcoxon(statistic=float(result.statistic), p=float(result.pvalue))


def _by_arm(trials: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(arm, trials[trials["arm"] == arm]) for arm in arm_order(trials)] if len(trials) else []


# --- data ----------------------------------------------------------------------------------------

def data_summary(results: Results) -> DataSummary:
    """What there is to analyse: trials per arm by status, failed, diverged and invalid trials, teachers, and
    loading warnings."""
    trials = results.trials
    completed = results.completed
    repeated = completed.groupby(["arm", "seed"]).size()
    notes = list(results.warnings)
    if (repeated > 1).any():
        notes.append("some arms have several completed trials for one seed (settings other than the arm "
                     "vary); paired comparisons average them per seed")
    teachers = completed.drop_duplicates("teacher_key") if completed["teacher_key"].notna().all() else completed
    accuracy = teachers["teacher_acc"]
    return DataSummary(
        source=results.kind,
        arms=arm_table(trials)[["arm", "expected", *STATUSES]].to_dict("records"),
        totals=_status_counts(trials),
        failures=trials.loc[trials["status"] == "failed", ["trial_id", "arm", "error"]].to_dict("records"),
        diverged=_listed(trials, "diverged", {**{c: c.removeprefix("diverged_") for c in DIVERGED_COLUMNS.values()},
                                              "error": "message"}),
        invalid=_listed(trials, "invalid", {"error": "reason"}),
        seeds=int(completed["seed"].nunique()),
        teacher_acc=MeanRange(**vars(mean_ci(accuracy)), min=float(accuracy.min()), max=float(accuracy.max())),
        warnings=notes,
    )


def _listed(trials: pd.DataFrame, status: str, columns: dict[str, str]) -> list[dict[str, Any]]:
    """The trials of one status as stats.json rows: id, arm and the columns (renamed) that say what happened."""
    rows = trials.loc[trials["status"] == status, ["trial_id", "arm", *columns]].rename(columns=columns)
    return rows.astype(object).where(rows.notna(), None).to_dict("records")


def _status_counts(trials: pd.DataFrame) -> dict[str, int]:
    return {"expected": len(trials), **{status: int((trials["status"] == status).sum()) for status in STATUSES}}


def arm_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per arm: counts by status and, over completed trials, mean and CI of each metric."""
    rows = []
    for arm, group in _by_arm(trials):
        done = group[group["status"] == "completed"]
        row = {"arm": arm, **{key: group[key].iloc[0] for key in ("mitigation", "strength", "student_init")},
               **_status_counts(group)}
        for metric in ARM_METRICS:
            row.update((mean_ci(done[metric]) if metric in done else mean_ci([])).columns(metric, with_n=False))
        rows.append(row)
    return pd.DataFrame(rows)


def epoch_table(completed: pd.DataFrame) -> pd.DataFrame:
    """One row per arm and epoch: test accuracy after it, alignment and positive steps during it."""
    rows = []
    for arm, group in _by_arm(completed):
        for epoch in range(_epochs(group, "acc_epoch", first=0) + 1):
            row = {"arm": arm, "epoch": epoch}
            for prefix in ("acc_epoch", "alignment_epoch", "frac_positive_epoch", "update_alignment_epoch"):
                row.update(mean_ci(group.get(f"{prefix}_{epoch}", [])).columns(prefix.rsplit("_", 1)[0]))
            rows.append(row)
    return pd.DataFrame(rows)


def _epochs(trials: pd.DataFrame, prefix: str, first: int) -> int:
    """The last epoch with a finite `prefix_<epoch>` value in any trial (first - 1 if none)."""
    last = first - 1
    while f"{prefix}_{last + 1}" in trials and trials[f"{prefix}_{last + 1}"].notna().any():
        last += 1
    return last


# --- claim 1: is alignment positive, and in every epoch? -----------------------------------------

def alignment_positivity(group: pd.DataFrame) -> Positivity:
    """Per-trial mean alignment against 0, positive steps against one half, and the same per epoch."""
    return Positivity(mean_alignment=attempt(describe, group["mean_alignment"], "mean_alignment"),
                      positive_steps=attempt(positive_steps, group),
                      by_epoch=attempt(alignment_by_epoch, group))


def _step_counts(group: pd.DataFrame, epoch: int | None, of: str) -> tuple[str, pd.Series, pd.Series]:
    """(column, fraction of positive steps, steps) per trial, of the gradient alignment (from the summaries) or
    of the update alignment (counted from the traces by `trace_metrics`), overall or in one epoch."""
    if of == "alignment":
        column = "frac_positive_steps" if epoch is None else f"frac_positive_epoch_{epoch}"
        need(column in group, f"needs {column} in the summaries, has none")
        # each epoch has an equal share of a trial's steps
        steps = group["steps"] if epoch is None else (group["steps"] / group["epochs_done"]).round()
        return column, group[column], steps
    column, count = (("frac_positive_update_steps", "update_steps") if epoch is None
                     else (f"frac_positive_update_epoch_{epoch}", f"update_steps_epoch_{epoch}"))
    need(column in group and group[column].notna().any(), f"needs {of} in the step traces, has none")
    return column, group[column], group[count]


def positive_steps(group: pd.DataFrame, epoch: int | None = None, of: str = "alignment") -> PositiveSteps:
    """Binomial tests of positive steps against one half: pooled over steps, and per trial (a sign test);
    over the whole training, or in one epoch; of the gradient alignment or (`of`) the update alignment.

    Steps of one trial are autocorrelated, so the pooled p-value is optimistic; the trial-level
    test (how many trials have mostly positive steps) is the one with independent units.
    """
    column, frac, steps = _step_counts(group, epoch, of)
    g = pd.DataFrame({"frac": frac, "steps": steps}).dropna()
    g = g[g["steps"] > 0]
    need(len(g) >= MIN_TEST_N, f"needs at least {MIN_TEST_N} trials with {column} and steps, has {len(g)}")
    positive, total = int(round((g["frac"] * g["steps"]).sum())), int(g["steps"].sum())
    pooled = scipy_stats.binomtest(positive, total, 0.5)
    interval = pooled.proportion_ci(CONFIDENCE, method="wilson")
    majority = int((g["frac"] > 0.5).sum())
    return PositiveSteps(n=len(g), steps=total, positive=positive, fraction=positive / total,
                         ci_low=float(interval.low), ci_high=float(interval.high), p_steps=float(pooled.pvalue),
                         trials_mostly_positive=majority,
                         p_trials=float(scipy_stats.binomtest(majority, len(g), 0.5).pvalue))


def alignment_by_epoch(group: pd.DataFrame, of: str = "alignment") -> AlignmentByEpoch:
    """Mean alignment (or, with `of`, update alignment) per epoch against 0; "sustained" when every epoch's
    CI lies above 0.

    Requiring every epoch to be significant is an intersection-union test, so the joint claim
    keeps the 5% error rate without a multiplicity correction.
    """
    words = of.replace("_", " ")
    last = _epochs(group, f"{of}_epoch", first=1)
    need(last >= 1, f"needs per-epoch {words} ({of}_by_epoch) in the summaries, has none")
    rows = [EpochTest(epoch=epoch,
                      test=attempt(describe, group[f"{of}_epoch_{epoch}"], f"{words} in epoch {epoch}"),
                      positive_steps=attempt(positive_steps, group, epoch, of))
            for epoch in range(1, last + 1)]
    tested = [row.test for row in rows if isinstance(row.test, MeanTest)]
    above = sum(test.ci_low > 0 for test in tested)
    sustained = None if len(tested) < len(rows) else above == len(rows)
    return AlignmentByEpoch(epochs=rows, epochs_tested=len(tested), epochs_positive=above, sustained=sustained)


# --- claim 3: is acquisition fastest in the first epoch? -----------------------------------------

def critical_period(group: pd.DataFrame) -> CriticalPeriod:
    """Accuracy gained per epoch, and epoch 1's gain against the mean gain of later epochs (paired).

    Epoch 1's share of the total gain is given only when the total gain is shown to be positive:
    a share of a gain indistinguishable from 0 is noise.
    """
    last = _epochs(group, "acc_epoch", first=0)
    need(last >= 2, f"needs accuracy after at least 2 epochs (acc_by_epoch), has {max(last, 0)}")
    gains = pd.DataFrame({e: group[f"acc_epoch_{e}"] - group[f"acc_epoch_{e - 1}"] for e in range(1, last + 1)})
    total = attempt(describe, gains.sum(axis=1, min_count=last), "total gain")
    shown = isinstance(total, MeanTest) and total.ci_low > 0
    return CriticalPeriod(
        epochs=last,
        gain_by_epoch=[EpochGain(epoch=e, gain=mean_ci(gains[e])) for e in gains],
        first_minus_later=attempt(describe, gains[1] - gains.loc[:, 2:].mean(axis=1, skipna=False),
                                  "epoch-1 gain minus mean later-epoch gain"),
        share_first_epoch=float(gains[1].mean() / total.mean) if shown else None,
    )


# --- comparisons between arms (claims 2 and 4, the init control) ---------------------------------

def _paired_table(completed: pd.DataFrame, arm: str, reference: str, metric: str) -> pd.DataFrame:
    """Per seed, the mean `metric` of `arm` and of `reference`, for the seeds with a finite value in both."""
    need(metric in completed, f"needs {metric} in the summaries, has none")
    for name in (arm, reference):
        need(bool((completed["arm"] == name).any()), f"needs completed trials of arm {name}, has none")
    table = completed[completed["arm"].isin([arm, reference])].pivot_table(
        index="seed", columns="arm", values=metric, aggfunc="mean")
    need(arm in table and reference in table, f"needs a finite {metric} in both {arm} and {reference}")
    return table[[arm, reference]].dropna()


def paired(completed: pd.DataFrame, arm: str, reference: str, metric: str) -> Paired:
    """`arm` minus `reference` in `metric`, paired by seed (trials of a seed share teacher and init)."""
    both = _paired_table(completed, arm, reference, metric)
    difference = describe(both[arm] - both[reference], f"{metric} in both {arm} and {reference}", units="seeds")
    return Paired(arm=arm, reference=reference, metric=metric, mean_arm=float(both[arm].mean()),
                  mean_reference=float(both[reference].mean()), difference=difference)


def noninferiority(completed: pd.DataFrame, arm: str, margin_fraction: float = MARGIN, reference: str = BASELINE,
                   metric: str = "final_distill_loss") -> NonInferiority:
    """Is `arm` no worse than `reference` in `metric` (lower is better) by more than the margin, paired by seed?

    "Without hurting distillation" is a claim of no material cost, which a difference test cannot
    show: with tight intervals it flags a 6e-6 change in a loss of 1e-3. So the margin is a fraction of
    the reference's mean, and the arm is non-inferior when the one-sided upper bound of the difference
    lies below it (one-sided paired t-test at alpha).
    """
    both = _paired_table(completed, arm, reference, metric)
    what = f"{metric} in both {arm} and {reference}"
    need(len(both) >= MIN_TEST_N, f"needs at least {MIN_TEST_N} seeds with a finite {what}, has {len(both)}")
    x = (both[arm] - both[reference]).to_numpy(dtype=float)
    sd = float(x.std(ddof=1))
    need(sd > 0, f"all {len(x)} differences of {what} are equal; a test needs some spread")
    reference_mean = float(both[reference].mean())
    need(reference_mean > 0, f"the margin is a fraction of {reference}'s mean {metric}, which is {reference_mean:g}")
    margin = margin_fraction * reference_mean
    d = DescrStatsW(x)
    _, upper = d.tconfint_mean(alpha=ALPHA, alternative="smaller")
    t, p, df = d.ttest_mean(margin, alternative="smaller")
    return NonInferiority(arm=arm, reference=reference, metric=metric, n=len(x), mean_arm=float(both[arm].mean()),
                          mean_reference=reference_mean, margin_fraction=margin_fraction, margin=margin,
                          difference=float(d.mean), sd=sd, se=float(d.std_mean), upper=float(upper), t=float(t),
                          df=float(df), p=float(p), cohens_d=(margin - float(d.mean)) / sd,
                          noninferior=bool(upper < margin))


def _shared_arms(completed: pd.DataFrame, kind: str) -> list[str]:
    chosen = completed[(completed["mitigation"] == kind) & (completed["student_init"] == "shared")]
    return [arm for arm, _ in _by_arm(chosen)]


def _counterpart(completed: pd.DataFrame, placebo_arm: str) -> str:
    """The shared-init projection arm of the placebo arm's strength (its label, even when it has no trials)."""
    strength = float(completed.loc[completed["arm"] == placebo_arm, "strength"].iloc[0])
    shared = completed[(completed["mitigation"] == "projection") & (completed["student_init"] == "shared")]
    found = shared.loc[np.isclose(shared["strength"].astype(float), strength), "arm"].unique()
    return str(found[0]) if len(found) else f"projection@{strength:g}/shared"


def comparisons(completed: pd.DataFrame) -> Comparisons:
    """The contrasts the claims rest on, each paired by seed against the unmitigated shared-init arm; and
    each placebo arm's projection counterpart against it."""
    def against_baseline(arm: str, metrics: tuple[str, ...]) -> dict[str, Paired | Refused]:
        return {metric: attempt(paired, completed, arm, BASELINE, metric) for metric in metrics}

    def gain(arm: str) -> MeanTest | Refused:
        return attempt(describe, completed[completed["arm"] == arm]["trait_gain"], f"trait_gain in {arm}")

    projection_metrics = ("trait_gain", "final_distill_loss", "mean_applied_alignment")
    return Comparisons(
        shared_vs_independent=attempt(paired, completed, BASELINE, CONTROL, "trait_gain"),
        independent_gain=gain(CONTROL),
        projection={arm: ProjectionComparison(**against_baseline(arm, projection_metrics))
                    for arm in _shared_arms(completed, "projection")},
        liminal={arm: LiminalComparison(**against_baseline(arm, ("alignment_epoch_1", "mean_alignment", "trait_gain")),
                                        gain_vs_zero=gain(arm))
                 for arm in _shared_arms(completed, "liminal")},
        placebo={arm: PlaceboComparison(**against_baseline(arm, projection_metrics),
                                        projection_vs_placebo=attempt(paired, completed, _counterpart(completed, arm),
                                                                      arm, "trait_gain"))
                 for arm in _shared_arms(completed, "placebo")},
    )


def noninferiority_by_arm(completed: pd.DataFrame, margin_fraction: float) -> dict[str, NonInferiority | Refused]:
    """Final distillation loss of each shared-init projection and placebo arm against none/shared."""
    arms = [arm for kind in ("projection", "placebo") for arm in _shared_arms(completed, kind)]
    return {arm: attempt(noninferiority, completed, arm, margin_fraction) for arm in arms}


# --- does alignment relate to acquisition? -------------------------------------------------------

def _regression_sample(completed: pd.DataFrame, x: str = MEDIATOR) -> pd.DataFrame:
    for column in ("trait_gain", x):
        need(column in completed, f"needs {column} in the summaries, has none")
    sample = completed[["trait_gain", x, "seed", "arm"]].dropna()
    need(len(sample) >= MIN_REGRESSION_N,
         f"needs at least {MIN_REGRESSION_N} trials with finite trait_gain and {x}, has {len(sample)}")
    distinct = sample[x].nunique()
    need(distinct >= MIN_DISTINCT_X, f"needs at least {MIN_DISTINCT_X} trials with distinct {x}, has {distinct}")
    return sample


def fit_ols(completed: pd.DataFrame, x: str = MEDIATOR) -> Any:
    """trait_gain ~ x (mean alignment by default) by OLS with HC3 robust standard errors (the fitted results)."""
    sample = _regression_sample(completed, x)
    fit = sm.OLS(sample["trait_gain"], sm.add_constant(sample[x])).fit(cov_type="HC3")
    need(bool(np.isfinite(fit.bse).all()), "HC3 standard errors are undefined: a trial has leverage 1")
    return fit


def ols_gain_on_alignment(completed: pd.DataFrame, x: str = MEDIATOR) -> Regression:
    fit = fit_ols(completed, x)
    low, high = fit.conf_int(alpha=ALPHA).loc[x]
    return Regression(n=int(fit.nobs), slope=float(fit.params[x]), se=float(fit.bse[x]), ci_low=float(low),
                      ci_high=float(high), p=float(fit.pvalues[x]), intercept=float(fit.params["const"]),
                      r2=float(fit.rsquared), cov_type="HC3")


def mixed_gain_on_alignment(completed: pd.DataFrame, x: str = MEDIATOR) -> MixedRegression:
    """The same slope with a random intercept per seed (trials of a seed share a teacher).

    R² is Nakagawa and Schielzeth's: marginal (fixed effect only) and conditional (with the seed).
    """
    sample = _regression_sample(completed, x)
    seeds = sample["seed"].nunique()
    need(seeds >= MIN_TEST_N, f"needs trials from at least {MIN_TEST_N} seeds, has {seeds}")
    need(int(sample["seed"].value_counts().max()) >= 2,
         "needs a seed with at least 2 trials: with one trial per seed the seed intercept is the residual")
    exog = sm.add_constant(sample[x])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.MixedLM(sample["trait_gain"], exog, groups=sample["seed"]).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as error:
            raise Refusal(f"the mixed model could not be fitted ({error})") from None
    need(bool(np.isfinite(fit.bse_fe).all()), "the mixed model's standard errors are undefined")
    low, high = fit.conf_int(alpha=ALPHA).loc[x]
    var_fixed = float(np.var(exog.to_numpy() @ fit.fe_params.to_numpy()))
    var_seed, var_resid = float(fit.cov_re.iloc[0, 0]), float(fit.scale)
    total = var_fixed + var_seed + var_resid
    return MixedRegression(n=int(fit.nobs), seeds=seeds, slope=float(fit.fe_params[x]), se=float(fit.bse_fe[x]),
                           ci_low=float(low), ci_high=float(high), p=float(fit.pvalues[x]),
                           intercept=float(fit.fe_params["const"]), var_seed=var_seed, var_residual=var_resid,
                           r2_marginal=var_fixed / total, r2_conditional=(var_fixed + var_seed) / total,
                           converged=bool(fit.converged),
                           fit_warnings=sorted({str(w.message).splitlines()[0] for w in caught}))


def within_shared_gain_on_alignment(completed: pd.DataFrame, x: str = MEDIATOR) -> FixedEffectsRegression:
    """trait_gain ~ x + arm over shared-init trials, OLS with HC3 SEs: the slope the referee verdict uses.

    Pooling every arm lets the independent-init control (alignment near 0, no transfer at any
    alignment) and each mitigation's own shift in gain pull the line; with an intercept per arm, among
    shared-init students only, the slope is how gain follows alignment within an arm, across seeds.
    Arms with fewer than 2 distinct values of x carry no within-arm information and are left out.
    """
    shared = completed[completed["student_init"] == "shared"]
    sample = _regression_sample(shared, x)
    informative = sample.groupby("arm")[x].transform("nunique") >= 2
    sample = sample[informative]
    arms = [arm for arm in arm_order(shared) if arm in set(sample["arm"])]
    parameters = 1 + len(arms)
    need(len(arms) >= 1 and len(sample) >= parameters + 2,
         f"needs at least {parameters + 2} shared-init trials in arms with 2 or more distinct {x} values "
         f"(an intercept per arm and a slope, 2 residual degrees of freedom), has {len(sample)}")
    dummies = pd.get_dummies(pd.Categorical(sample["arm"], categories=arms), dtype=float).iloc[:, 1:]
    dummies.index = sample.index
    exog = pd.concat([sm.add_constant(sample[x]), dummies], axis=1)
    need(np.linalg.matrix_rank(exog.to_numpy()) == exog.shape[1], f"{x} is confounded with arm in this sample")
    fit = sm.OLS(sample["trait_gain"], exog).fit(cov_type="HC3")
    need(bool(np.isfinite(fit.bse).all()), "HC3 standard errors are undefined: a trial has leverage 1")
    low, high = fit.conf_int(alpha=ALPHA).loc[x]
    return FixedEffectsRegression(n=int(fit.nobs), seeds=int(sample["seed"].nunique()), arms=arms,
                                  slope=float(fit.params[x]), se=float(fit.bse[x]), ci_low=float(low),
                                  ci_high=float(high), p=float(fit.pvalues[x]), r2=float(fit.rsquared),
                                  cov_type="HC3")


def regressions(completed: pd.DataFrame, x: str = MEDIATOR) -> Regressions:
    """trait_gain on `x`: pooled OLS and mixed model over every arm, and within shared init with arm effects."""
    return Regressions(ols=attempt(ols_gain_on_alignment, completed, x),
                       mixed=attempt(mixed_gain_on_alignment, completed, x),
                       within_shared=attempt(within_shared_gain_on_alignment, completed, x))


# --- does mitigation act through alignment? ------------------------------------------------------

def _mitigation_sample(completed: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Shared-init trials of `kind` at all strengths, plus shared-init `none` trials as strength 0."""
    shared = completed[completed["student_init"] == "shared"]
    need(bool((shared["mitigation"] == kind).any()), f"needs completed shared-init {kind} trials, has none")
    sample = shared[shared["mitigation"].isin([kind, "none"])].copy()
    sample.loc[sample["mitigation"] == "none", "strength"] = 0.0
    return sample


def dose_response(completed: pd.DataFrame, kind: str) -> DoseResponse:
    """trait_gain and mean alignment by strength (none as strength 0), each with its CI."""
    sample = _mitigation_sample(completed, kind)
    return DoseResponse(kind=kind, levels=[DoseLevel(strength=float(strength), trait_gain=mean_ci(group["trait_gain"]),
                                                     mean_alignment=mean_ci(group["mean_alignment"]))
                                           for strength, group in sample.groupby("strength")])


def _mediation_models(sample: pd.DataFrame, top: float) -> tuple[Any, Any, int]:
    """OLS mediator and outcome models with named columns, and the number of seeds.

    The exposure is strength / `top`, so each effect is that of going from no mitigation to the
    strongest one tested. Seeds enter both models as fixed effects: trials of a seed share a teacher.
    """
    seeds = pd.get_dummies(sample["seed"].astype(str), prefix="seed", drop_first=True, dtype=float)
    parameters = 3 + seeds.shape[1]
    need(len(sample) >= parameters + 2, f"needs at least {parameters + 2} trials to fit the outcome model "
         f"with {seeds.shape[1] + 1} seeds and leave 2 residual degrees of freedom, has {len(sample)}")
    distinct = sample[MEDIATOR].nunique()
    need(distinct >= MIN_DISTINCT_X, f"needs at least {MIN_DISTINCT_X} trials with distinct {MEDIATOR}, has {distinct}")
    exposure = (sample["strength"] / top).rename(EXPOSURE)
    const = pd.Series(1.0, index=sample.index, name="const")
    mediator_exog = pd.concat([const, exposure, seeds], axis=1)
    outcome_exog = pd.concat([const, sample[MEDIATOR], exposure, seeds], axis=1)
    need(np.linalg.matrix_rank(outcome_exog.to_numpy()) == outcome_exog.shape[1],
         "strength is confounded with seed in this sample (each seed has a single strength)")
    return sm.OLS(sample[MEDIATOR], mediator_exog), sm.OLS(sample[OUTCOME], outcome_exog), seeds.shape[1] + 1


def _coefficient(model: Any, name: str) -> Coefficient:
    """The coefficient of column `name` in the fitted `model`, with its interval and p-value."""
    fit = model.fit()
    low, high = fit.conf_int(alpha=ALPHA).loc[name]
    return Coefficient(estimate=float(fit.params[name]), ci_low=float(low), ci_high=float(high),
                       p=float(fit.pvalues[name]))


def mediation(completed: pd.DataFrame, kind: str, sims: int, seed: int) -> MediationResult:
    """strength → mean_alignment → trait_gain with statsmodels' Mediation (OLS models, seed effects).

    Effects are of going from strength 0 to the largest strength tested (see `_mediation_models`).
    Simulation is parametric, `sims` draws from generator seed `seed`, so a p-value resolves
    down to 1 / `sims`.
    """
    sample = _mitigation_sample(completed, kind)[["strength", MEDIATOR, OUTCOME, "seed"]].dropna()
    strengths = sorted(sample["strength"].unique())
    need(len(strengths) >= 2, f"needs at least 2 distinct strengths (none counts as 0), has {len(strengths)}")
    mediator_model, outcome_model, seeds = _mediation_models(sample, strengths[-1])
    table = (Mediation(outcome_model, mediator_model, exposure=EXPOSURE, mediator=MEDIATOR)
             .fit(n_rep=sims, rng=seed).summary(alpha=ALPHA))

    def effect(row: str) -> SimulatedEffect:
        estimate, low, high, p = (float(v) for v in table.loc[row])
        return SimulatedEffect(estimate=estimate, ci_low=low, ci_high=high, p=p, resolution=1 / sims)

    total, share = effect("Total effect"), effect("Prop. mediated (average)")
    return MediationResult(
        kind=kind, n=len(sample), seeds=seeds, strengths=[float(s) for s in strengths],
        contrast_to=float(strengths[-1]), sims=sims, rng_seed=seed,
        acme=effect("ACME (average)"), ade=effect("ADE (average)"), total=total,
        prop_mediated=ProportionMediated(**vars(share), interpretable=bool(total.ci_low > 0 or total.ci_high < 0)),
        strength_to_alignment=_coefficient(mediator_model, EXPOSURE),
        alignment_to_gain=_coefficient(outcome_model, MEDIATOR),
    )


# --- what the traces add: layers and the optimizer's step ----------------------------------------

def trace_metrics(steps: pd.DataFrame) -> pd.DataFrame:
    """Per trial (indexed by trial_id), what the summaries do not hold: each layer's mean alignment, the
    steps with a finite and with a positive update alignment (overall and per epoch), and the summed
    update_trait_change. Columns a trace lacks (older results folders) give NaN, never an error."""
    steps = steps.dropna(subset=["trial_id"])
    finite, positive = steps["update_alignment"].notna(), steps["update_alignment"] > 0
    steps = steps.assign(update_finite=finite.astype(float), update_positive=positive.astype(float))
    by_trial = steps.groupby("trial_id")
    out = pd.DataFrame({f"mean_alignment_{layer}": by_trial[f"alignment_{layer}"].mean() for layer in LAYER_NAMES})
    out["predicted_trait_loss_change"] = by_trial["update_trait_change"].sum(min_count=1)
    counts = by_trial[["update_finite", "update_positive"]].sum()
    out["update_steps"] = counts["update_finite"]
    out["frac_positive_update_steps"] = counts["update_positive"] / counts["update_finite"].where(lambda c: c > 0)
    per_epoch = steps.groupby(["trial_id", "epoch"])[["update_finite", "update_positive"]].sum()
    for epoch in sorted(per_epoch.index.get_level_values("epoch").unique()):
        counts = per_epoch.xs(epoch, level="epoch")
        out[f"update_steps_epoch_{int(epoch)}"] = counts["update_finite"]
        out[f"frac_positive_update_epoch_{int(epoch)}"] = (counts["update_positive"]
                                                           / counts["update_finite"].where(lambda c: c > 0))
    return out


def with_trace_metrics(completed: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """The completed trials with `trace_metrics` as columns (NaN for a trial without a trace)."""
    metrics = trace_metrics(steps)
    return completed.merge(metrics, left_on="trial_id", right_index=True, how="left").set_axis(completed.index)


def per_layer(completed: pd.DataFrame) -> dict[str, dict[str, MeanTest | Refused]]:
    """Per arm and layer, the per-trial mean of that layer's alignment against 0: which layer carries the drive."""
    return {arm: {layer: attempt(describe, group.get(f"mean_alignment_{layer}", []), f"alignment of layer {layer}")
                  for layer in LAYER_NAMES}
            for arm, group in _by_arm(completed)}


def update_alignment(completed: pd.DataFrame) -> UpdateAlignments:
    """Claim 1's statistics of the step Adam applied, beside those of the gradient, and trait_gain on it.

    Adam preconditions the gradient, so a positive gradient alignment need not mean the step taken
    lowers the trait loss; this asks whether the step itself does."""
    def of_arm(group: pd.DataFrame) -> UpdateAlignment:
        return UpdateAlignment(
            mean_update_alignment=attempt(describe, group["mean_update_alignment"], "mean_update_alignment"),
            positive_steps=attempt(positive_steps, group, None, UPDATE),
            by_epoch=attempt(alignment_by_epoch, group, UPDATE),
            predicted_trait_loss_change=attempt(describe, group.get("predicted_trait_loss_change", []),
                                                "predicted_trait_loss_change"))

    return UpdateAlignments(by_arm={arm: of_arm(group) for arm, group in _by_arm(completed)},
                            regression=regressions(completed, "mean_update_alignment"))


# --- how many seeds next? ----------------------------------------------------------------------------

def _t_power(size: float, n: int, alternative: str) -> float:
    """statsmodels' power of the t-test; where its two-sided lower tail is NaN (scipy's noncentral t fails at
    large noncentrality, where that tail is negligible), the upper tail at alpha / 2 alone."""
    solver = TTestPower()
    value = float(solver.power(effect_size=size, nobs=n, alpha=ALPHA, alternative=alternative))
    if np.isnan(value) and alternative == "two-sided":
        value = float(solver.power(effect_size=size, nobs=n, alpha=ALPHA / 2, alternative="larger"))
    return value


def seeds_needed(n: int, d: float, alternative: str = "two-sided") -> SeedsNeeded:
    """Seeds for POWER at ALPHA if the true effect were the observed Cohen's d (one-sample or paired t-test).

    statsmodels' TTestPower solves for n; it is rounded up, and never below the MIN_TEST_N a test
    needs. An observed d is a noisy, and when significant an optimistic, estimate: a planning figure.
    """
    need(np.isfinite(d) and d != 0, "the observed effect size is 0: no number of seeds would detect it")
    if alternative == "larger":
        need(d > 0, "the observed effect lies on the wrong side of the null for this one-sided test: "
             "no number of seeds would show it if that is the truth")
    size = abs(d)
    now = _t_power(size, n, alternative)
    if _t_power(size, MIN_TEST_N, alternative) >= POWER:
        needed = MIN_TEST_N
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solved = float(TTestPower().solve_power(effect_size=size, alpha=ALPHA, power=POWER,
                                                    alternative=alternative))
        need(np.isfinite(solved), f"the power equation did not solve for d = {d:.3g}")
        needed = max(MIN_TEST_N, math.ceil(solved - 1e-9))
    need(needed <= MAX_SEEDS, f"the observed effect (d = {d:.3g}) would need more than {MAX_SEEDS:,} seeds")
    return SeedsNeeded(n=n, cohens_d=d, alternative=alternative, alpha=ALPHA, power=POWER, power_now=now,
                       seeds_needed=needed)


def _power_of(test: PrimaryTest) -> PowerEntry:
    """One primary test's seeds needed, from its MeanTest, NonInferiority or slope, or why not."""
    result = test.result
    if isinstance(result, Refused):
        seeds: SeedsNeeded | Refused = Refused(f"the test is refused: {result.reason}")
    elif isinstance(result, FixedEffectsRegression):
        seeds = attempt(slope_seeds_needed, result)
    else:
        seeds = attempt(seeds_needed, result.n, result.cohens_d, test.alternative)
    return PowerEntry(claim=test.claim, test=test.test, arm=test.arm, result=seeds)


def _difference(result: Paired | Refused) -> MeanTest | Refused:
    return result if isinstance(result, Refused) else result.difference


def slope_seeds_needed(fit: FixedEffectsRegression) -> SeedsNeeded:
    """Seeds for the within-shared slope: Cohen's f² = t² / df_resid of the slope, the F-test's residual
    degrees of freedom solved by statsmodels' FTestPowerF2 (ncc = 0, as a Wald test), then one trial per
    arm per seed. Reported as the slope's `cohens_d` slot: the f² is kept in its square root, f."""
    df_resid = fit.n - 1 - len(fit.arms)
    f2 = (fit.slope / fit.se) ** 2 / df_resid
    need(f2 > 0, "the observed slope is 0: no number of seeds would detect it")
    solver = FTestPowerF2()
    now = float(solver.power(effect_size=f2, df_num=1, df_denom=df_resid, alpha=ALPHA, ncc=0))
    if solver.power(effect_size=f2, df_num=1, df_denom=2, alpha=ALPHA, ncc=0) >= POWER:
        solved = 2.0  # the fewest residual degrees of freedom a fit here is allowed
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solved = float(solver.solve_power(effect_size=f2, df_num=1, df_denom=None, alpha=ALPHA, power=POWER,
                                              ncc=0))
        need(np.isfinite(solved), f"the power equation did not solve for f² = {f2:.3g}")
    trials = solved + 1 + len(fit.arms)
    needed = max(MIN_TEST_N, math.ceil(trials / len(fit.arms) - 1e-9))
    need(needed <= MAX_SEEDS, f"the observed slope (f² = {f2:.3g}) would need more than {MAX_SEEDS:,} seeds")
    return SeedsNeeded(n=fit.seeds, cohens_d=math.sqrt(f2), alternative="two-sided", alpha=ALPHA, power=POWER,
                       power_now=now, seeds_needed=needed)


@dataclass(frozen=True)
class PrimaryTest:
    """One claim's primary test: what it tests, on which arm, the sign the claim predicts, and its result.

    The one list of them serves the seeds-needed table and the stopping rule of sweeps grown in waves."""

    claim: str
    test: str
    arm: str
    direction: int  # +1: the claim predicts a positive estimate; -1: a negative one
    result: MeanTest | NonInferiority | FixedEffectsRegression | Refused
    alternative: str = "two-sided"


def primary_tests(positivity: dict[str, Positivity], critical: dict[str, CriticalPeriod | Refused],
                  compared: Comparisons, noninferior: dict[str, NonInferiority | Refused],
                  regression: Regressions) -> list[PrimaryTest]:
    """Each claim's primary test, in the report's order of claims."""
    absent = Refused(f"no completed trials in {BASELINE}")
    baseline, period = positivity.get(BASELINE), critical.get(BASELINE, absent)
    tests = [PrimaryTest("claim1", "mean alignment against 0", BASELINE, +1,
                         baseline.mean_alignment if baseline else absent)]
    for arm, result in compared.projection.items():
        tests.append(PrimaryTest("claim2", "trait_gain minus none/shared", arm, -1, _difference(result.trait_gain)))
        tests.append(PrimaryTest("claim2", "final_distill_loss non-inferiority", arm, +1,
                                 noninferior.get(arm, Refused("not computed")), alternative="larger"))
    tests.append(PrimaryTest("claim3", "epoch-1 gain minus later epochs", BASELINE, +1,
                             period.first_minus_later if isinstance(period, CriticalPeriod) else period))
    for arm, liminal in compared.liminal.items():
        tests.append(PrimaryTest("claim4", "epoch-1 alignment minus none/shared", arm, -1,
                                 _difference(liminal.alignment_epoch_1)))
        tests.append(PrimaryTest("claim4", "trait_gain against 0", arm, +1, liminal.gain_vs_zero))
    tests.append(PrimaryTest("referee", "slope of trait_gain on mean_alignment within shared init",
                             "shared-init arms", +1, regression.within_shared))
    for arm, placebo in compared.placebo.items():
        tests.append(PrimaryTest("referee", "trait_gain of projection minus placebo", arm, -1,
                                 _difference(placebo.projection_vs_placebo)))
    tests.append(PrimaryTest("control", "trait_gain minus none/independent", BASELINE, +1,
                             _difference(compared.shared_vs_independent)))
    return tests


def power(tests: list[PrimaryTest]) -> list[PowerEntry]:
    """Seeds needed by each claim's primary test."""
    return [_power_of(test) for test in tests]


# --- everything --------------------------------------------------------------------------------

def compute_stats(results: Results, mediation_sims: int = MEDIATION_SIMS, mediation_seed: int = 0,
                  margin: float = MARGIN) -> Stats:
    """Every number of the report, keyed by the question it answers."""
    completed = with_trace_metrics(results.completed, results.steps)
    arms = _by_arm(completed)
    positivity = {arm: alignment_positivity(group) for arm, group in arms}
    critical = {arm: attempt(critical_period, group) for arm, group in arms}
    compared, fits = comparisons(completed), regressions(completed)
    noninferior = noninferiority_by_arm(completed, margin)
    return Stats(
        meta=Meta(name=results.name, source=results.kind, confidence=CONFIDENCE, alpha=ALPHA, baseline=BASELINE,
                  control=CONTROL, mediation_sims=mediation_sims, mediation_seed=mediation_seed,
                  results=str(results.path), margin=margin),
        data=data_summary(results),
        arms=arm_table(results.trials).to_dict("records"),
        epochs=epoch_table(completed).to_dict("records"),
        positivity=positivity,
        critical_period=critical,
        comparisons=compared,
        regression=fits,
        mediation={kind: attempt(mediation, completed, kind, mediation_sims, mediation_seed) for kind in MITIGATIONS},
        dose_response={kind: attempt(dose_response, completed, kind) for kind in MITIGATIONS},
        noninferiority=noninferior,
        update_alignment=update_alignment(completed),
        per_layer=per_layer(completed),
        power=power(primary_tests(positivity, critical, compared, noninferior, fits)),
        sequential=results.sequential,
    )


def primary_tests_of(results: Results, seeds: list[int] | None = None, margin: float = MARGIN) -> list[PrimaryTest]:
    """The claims' primary tests alone, on the completed trials of `seeds` (default: all): what the
    stopping rule of a sweep grown in waves looks at, without the report's other statistics."""
    completed = results.completed if seeds is None else results.completed[results.completed["seed"].isin(seeds)]
    completed = with_trace_metrics(completed, results.steps)
    baseline = completed[completed["arm"] == BASELINE]
    positivity = {BASELINE: alignment_positivity(baseline)} if len(baseline) else {}
    critical = {BASELINE: attempt(critical_period, baseline)} if len(baseline) else {}
    return primary_tests(positivity, critical, comparisons(completed), noninferiority_by_arm(completed, margin),
                         regressions(completed))
