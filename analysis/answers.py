"""What each statistic answers: a small frozen dataclass, or `Refused` with the reason it could not.

Callers ask `isinstance(answer, Refused)` and read attributes, so a misspelt key is an
AttributeError at once instead of a silent miss. An answer's fields, in order, are its keys in
stats.json; `jsonable` turns answers (and anything holding them) into that JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from sublim.core.files import json_safe

FLAT = {"flat": True}  # field metadata: the field's keys stand in the parent's JSON object, not under its name


@dataclass(frozen=True)
class Answer:
    """Base of every answer; its JSON object has one key per field, in order."""

    def to_json(self) -> dict[str, Any]:
        """This answer's stats.json object; nested answers stay objects for `jsonable` to serialise."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("flat"):
                out.update(value.to_json())
            else:
                out[f.name] = value
        return out


@dataclass(frozen=True)
class Refused(Answer):
    """The data cannot support the statistic; `reason` says what it needs and what there is."""

    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"refused": self.reason}


def _plain(value: Any) -> Any:
    """What json cannot encode by itself: answers, numpy scalars, pandas' missing values."""
    if isinstance(value, Answer):
        return json_safe(value.to_json())
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if value is pd.NA or value is pd.NaT:
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def jsonable(value: Any) -> Any:
    """`value` as plain JSON values, answers in their stats.json shape.

    NaN and infinity become null by the project's one rule, `sublim.core.files.json_safe`; this
    only adds what the statistics hold beyond plain Python (answers, numpy and pandas scalars).
    """
    return json.loads(json.dumps(json_safe(value), default=_plain, allow_nan=False))


@dataclass(frozen=True)
class Estimate(Answer):
    """An answer with a point estimate and its interval; `POINT` names the field holding the estimate.

    Each subclass declares its own fields, `ci_low` and `ci_high` among them, in its stats.json order.
    """

    POINT: ClassVar[str] = "mean"
    if TYPE_CHECKING:  # not dataclass fields here: they would come first in every subclass's JSON
        ci_low: float
        ci_high: float

    @property
    def point(self) -> float:
        return getattr(self, self.POINT)


# --- descriptive --------------------------------------------------------------------------------

@dataclass(frozen=True)
class MeanCI(Estimate):
    """A mean with its t-based confidence interval (NaN bounds below 2 values); no test."""

    n: int
    mean: float
    ci_low: float
    ci_high: float

    def columns(self, prefix: str, with_n: bool = True) -> dict[str, float]:
        """Table columns `prefix_n`, `prefix_mean`, `prefix_ci_low`, `prefix_ci_high`."""
        return {f"{prefix}_{key}": value for key, value in self.to_json().items() if with_n or key != "n"}


@dataclass(frozen=True)
class MeanRange(MeanCI):
    """A mean with its interval and the smallest and largest value."""

    min: float
    max: float


@dataclass(frozen=True)
class EpochGain(Answer):
    epoch: int
    gain: MeanCI = field(metadata=FLAT)


# --- tests of a mean ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Wilcoxon(Answer):
    statistic: float
    p: float


@dataclass(frozen=True)
class MeanTest(Estimate):
    """A mean against `null`: CI, one-sample t-test, Cohen's d and a Wilcoxon signed-rank test."""

    n: int
    mean: float
    sd: float
    se: float
    ci_low: float
    ci_high: float
    null: float
    t: float
    df: float
    p: float
    cohens_d: float
    wilcoxon: Wilcoxon | Refused


@dataclass(frozen=True)
class Paired(Answer):
    """`arm` minus `reference` in `metric`, paired by seed: the per-seed differences' test."""

    arm: str
    reference: str
    metric: str
    mean_arm: float
    mean_reference: float
    difference: MeanTest = field(metadata=FLAT)


@dataclass(frozen=True)
class PositiveSteps(Estimate):
    """Positive-alignment steps against one half: pooled over steps, and a sign test over trials."""

    POINT = "fraction"
    n: int
    steps: int
    positive: int
    fraction: float
    ci_low: float
    ci_high: float
    p_steps: float
    trials_mostly_positive: int
    p_trials: float


# --- claim 1 and claim 3 ----------------------------------------------------------------------------

@dataclass(frozen=True)
class EpochTest(Answer):
    """One epoch's mean alignment against 0, and its positive steps."""

    epoch: int
    test: MeanTest | Refused = field(metadata=FLAT)
    positive_steps: PositiveSteps | Refused


@dataclass(frozen=True)
class AlignmentByEpoch(Answer):
    """Per-epoch tests; `sustained` is None when some epoch could not be tested."""

    epochs: list[EpochTest]
    epochs_tested: int
    epochs_positive: int
    sustained: bool | None


@dataclass(frozen=True)
class Positivity(Answer):
    """Claim 1 for one arm."""

    mean_alignment: MeanTest | Refused
    positive_steps: PositiveSteps | Refused
    by_epoch: AlignmentByEpoch | Refused


@dataclass(frozen=True)
class CriticalPeriod(Answer):
    """Claim 3 for one arm; `share_first_epoch` is None unless the total gain is shown positive."""

    epochs: int
    gain_by_epoch: list[EpochGain]
    first_minus_later: MeanTest | Refused
    share_first_epoch: float | None


# --- comparisons between arms -----------------------------------------------------------------------

@dataclass(frozen=True)
class ArmComparison(Answer):
    """One mitigated arm's comparisons, each under the name of what it compares."""

    def by_metric(self) -> dict[str, Paired | MeanTest | Refused]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ProjectionComparison(ArmComparison):
    trait_gain: Paired | Refused
    final_distill_loss: Paired | Refused
    mean_applied_alignment: Paired | Refused


@dataclass(frozen=True)
class LiminalComparison(ArmComparison):
    alignment_epoch_1: Paired | Refused
    mean_alignment: Paired | Refused
    trait_gain: Paired | Refused
    gain_vs_zero: MeanTest | Refused


@dataclass(frozen=True)
class PlaceboComparison(ArmComparison):
    """A placebo arm against none/shared, and the projection arm of its strength against it: projection
    minus placebo in trait_gain below 0 says the direction removed, not the step's size, carries the trait."""

    trait_gain: Paired | Refused
    final_distill_loss: Paired | Refused
    mean_applied_alignment: Paired | Refused
    projection_vs_placebo: Paired | Refused


@dataclass(frozen=True)
class Comparisons(Answer):
    """The contrasts claims 2 and 4 and the init control rest on, keyed by arm where per arm."""

    shared_vs_independent: Paired | Refused
    independent_gain: MeanTest | Refused
    projection: dict[str, ProjectionComparison]
    liminal: dict[str, LiminalComparison]
    placebo: dict[str, PlaceboComparison]


@dataclass(frozen=True)
class NonInferiority(Answer):
    """`arm` minus `reference` in `metric`, paired by seed, against a margin: non-inferior when the one-sided
    (1 - alpha) upper bound of the mean difference lies below +`margin` (one-sided t-test of H0: difference
    >= margin). A difference test would call any detectable cost a cost; this asks whether it matters.

    `margin` = `margin_fraction` × the reference's mean over the paired seeds; `cohens_d` = (margin -
    mean difference) / sd, the effect the test detects (positive when the arm is inside the margin)."""

    arm: str
    reference: str
    metric: str
    n: int
    mean_arm: float
    mean_reference: float
    margin_fraction: float
    margin: float
    difference: float
    sd: float
    se: float
    upper: float
    t: float
    df: float
    p: float
    cohens_d: float
    noninferior: bool


# --- regression and mediation -----------------------------------------------------------------------

@dataclass(frozen=True)
class Regression(Estimate):
    """trait_gain ~ mean_alignment by OLS."""

    POINT = "slope"
    n: int
    slope: float
    se: float
    ci_low: float
    ci_high: float
    p: float
    intercept: float
    r2: float
    cov_type: str


@dataclass(frozen=True)
class MixedRegression(Estimate):
    """trait_gain ~ mean_alignment with a random intercept per seed."""

    POINT = "slope"
    n: int
    seeds: int
    slope: float
    se: float
    ci_low: float
    ci_high: float
    p: float
    intercept: float
    var_seed: float
    var_residual: float
    r2_marginal: float
    r2_conditional: float
    converged: bool
    fit_warnings: list[str]


@dataclass(frozen=True)
class FixedEffectsRegression(Estimate):
    """trait_gain ~ alignment + one intercept per arm, over shared-init trials only, by OLS with HC3 SEs.

    The slope then comes from seed-to-seed variation within each arm: neither the independent-init
    control (no transfer whatever its alignment) nor an arm's own shift in gain can make it."""

    POINT = "slope"
    n: int
    seeds: int
    arms: list[str]
    slope: float
    se: float
    ci_low: float
    ci_high: float
    p: float
    r2: float
    cov_type: str


@dataclass(frozen=True)
class Regressions(Answer):
    """Pooled over every arm (OLS, mixed), and within shared-init trials with arm fixed effects."""

    ols: Regression | Refused
    mixed: MixedRegression | Refused
    within_shared: FixedEffectsRegression | Refused


@dataclass(frozen=True)
class Coefficient(Estimate):
    """A fitted coefficient with its interval and p-value."""

    POINT = "estimate"
    estimate: float
    ci_low: float
    ci_high: float
    p: float


@dataclass(frozen=True)
class SimulatedEffect(Coefficient):
    """An effect from simulation: its p-value cannot go below `resolution` (1 / simulations) except to 0."""

    resolution: float


@dataclass(frozen=True)
class ProportionMediated(SimulatedEffect):
    """`interpretable` only when the total effect's interval excludes 0."""

    interpretable: bool


@dataclass(frozen=True)
class MediationResult(Answer):
    """strength → mean_alignment → trait_gain for one mitigation, from strength 0 to `contrast_to`."""

    kind: str
    n: int
    seeds: int
    strengths: list[float]
    contrast_to: float
    sims: int
    rng_seed: int
    acme: SimulatedEffect
    ade: SimulatedEffect
    total: SimulatedEffect
    prop_mediated: ProportionMediated
    strength_to_alignment: Coefficient
    alignment_to_gain: Coefficient


@dataclass(frozen=True)
class DoseLevel(Answer):
    strength: float
    trait_gain: MeanCI
    mean_alignment: MeanCI


@dataclass(frozen=True)
class DoseResponse(Answer):
    kind: str
    levels: list[DoseLevel]


# --- update alignment, layers, power ---------------------------------------------------------------

@dataclass(frozen=True)
class UpdateAlignment(Answer):
    """Claim 1's questions asked of the step Adam applied, cos(-Δθ, g_t), for one arm; and the summed
    first-order change of the probe trait loss the steps predict (g_t·Δθ over steps; below 0 = lowered)."""

    mean_update_alignment: MeanTest | Refused
    positive_steps: PositiveSteps | Refused
    by_epoch: AlignmentByEpoch | Refused
    predicted_trait_loss_change: MeanTest | Refused


@dataclass(frozen=True)
class UpdateAlignments(Answer):
    """Update alignment per arm, and trait_gain regressed on it as on the gradient alignment."""

    by_arm: dict[str, UpdateAlignment]
    regression: Regressions


@dataclass(frozen=True)
class SeedsNeeded(Answer):
    """Seeds for `power` at `alpha` if the effect is as observed: `cohens_d` of the test (for a paired test, of
    the per-seed differences), `power_now` at the `n` there are, `seeds_needed` rounded up (never below the
    3 a test needs)."""

    n: int
    cohens_d: float
    alternative: str
    alpha: float
    power: float
    power_now: float
    seeds_needed: int


@dataclass(frozen=True)
class PowerEntry(Answer):
    """One primary test of a claim: what it tests and the seeds it needs, or why that cannot be said."""

    claim: str
    test: str
    arm: str
    result: SeedsNeeded | Refused = field(metadata=FLAT)


# --- the whole ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Meta(Answer):
    name: str
    source: str
    confidence: float
    alpha: float
    baseline: str
    control: str
    mediation_sims: int
    mediation_seed: int
    results: str
    margin: float  # non-inferiority margin, a fraction of the reference's mean


@dataclass(frozen=True)
class DataSummary(Answer):
    """What there is to analyse; `arms`, `failures`, `diverged` and `invalid` are table rows: the trials
    no statistic sees, each with what happened to it."""

    source: str
    arms: list[dict[str, Any]]
    totals: dict[str, int]
    failures: list[dict[str, Any]]  # trial_id, arm, error
    diverged: list[dict[str, Any]]  # trial_id, arm, model, step, quantity, message
    invalid: list[dict[str, Any]]  # trial_id, arm, reason
    seeds: int
    teacher_acc: MeanRange
    warnings: list[str]


@dataclass(frozen=True)
class Stats(Answer):
    """Every number of the report, keyed by the question it answers; `arms` and `epochs` are table rows."""

    meta: Meta
    data: DataSummary
    arms: list[dict[str, Any]]
    epochs: list[dict[str, Any]]
    positivity: dict[str, Positivity]
    critical_period: dict[str, CriticalPeriod | Refused]
    comparisons: Comparisons
    regression: Regressions
    mediation: dict[str, MediationResult | Refused]
    dose_response: dict[str, DoseResponse | Refused]
    noninferiority: dict[str, NonInferiority | Refused]
    update_alignment: UpdateAlignments
    per_layer: dict[str, dict[str, MeanTest | Refused]]
    power: list[PowerEntry]
    sequential: dict[str, Any] | None  # as sweep.json records it, for a sweep grown in waves


@dataclass(frozen=True)
class Drawn(Answer):
    """A figure that was drawn: its path relative to the report folder."""

    file: str


