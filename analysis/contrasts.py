"""Every inferential statement of the report, declared once as data and answered as one row of the tests table.

`plan` expands CONTRASTS (and the rows a plugin's facts declare) over a sweep's arms before any data, so that the
sequential design can count its family; `tests_table` answers each planned row from the completed trials and keeps
the model it was answered with, which the verdicts, the sequential looks and the figures all read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from sublim.core.config import level_label
from sublim.core.mitigations import BUILT_IN, report_facts
from sublim.core.schema import LAYER_NAMES

from . import inference as inf
from .axes import RANDOM_EXPONENT, RELATION_METRICS, at_level, levels, trial_groups, with_axis_columns
from .errors import Refusal
from .load import arm_order

BASELINE = "none/shared"
CONTROL = "none/independent"
MITIGATIONS_WITH_DOSE = tuple(kind for kind, mitigation in BUILT_IN.items() if mitigation.dose)
MEDIATORS = ("mean_alignment", "mean_update_alignment")  # the raw gradient's cosine; the step Adam applied
# The mediation's one mediator, declared before any data: every mitigation acts on the step the optimizer applies
# (a loss term or a gradient transform), never on g_d itself, whose alignment changes only through the trajectory;
# and the trait loss moves, to first order, by g_t·Δθ. So a mitigation acts through alignment, if at all, through
# the applied step's alignment.
MEDIATOR = "mean_update_alignment"
SECONDARY_ADJUSTMENT = ("Benjamini–Hochberg within each claim's secondary rows (false discovery rate 0.05); "
                        "a row's verdict reads its adjusted p")
ZERO_BY_CONSTRUCTION = {"mean_alignment_out": "the distillation gradient reaches only the output layer's auxiliary "
                        "rows and the trait gradient only its class rows, so their dot product there is exactly 0"}
FIRST_ORDER_NULL = 0.5  # "the first-order drive dominates": it predicts more than half the measured change

SUPPORTED, CONTRADICTED, NOT_SHOWN, REFUSED = "supported", "contradicted", "not shown", "refused"
PARTLY, MIXED, UNDETERMINED, ZERO = "partly supported", "mixed", "undetermined", "zero by construction"
FUTILE, DESCRIPTIVE = "not shown (futility)", "descriptive"
VERDICTS = {
    SUPPORTED: "the test shows what the row expects at alpha (after the multiplicity adjustment of primary tests)",
    CONTRADICTED: "the test shows the opposite of what the row expects (a directional effect of the other sign, "
                  "a difference beyond the equivalence margin, or an arm shown inferior)",
    NOT_SHOWN: "the data do not decide at alpha: neither what the row expects nor its opposite is shown",
    FUTILE: "(sweeps grown in waves) the sequential design's futility rule stopped the row: at the planned maximum "
            "of seeds it would very likely not be shown either",
    REFUSED: "the data cannot support the test (too few seeds, no spread, an arm missing); the note says why",
    ZERO: "the quantity is exactly 0 by the model's construction, so nothing is tested",
    DESCRIPTIVE: "an estimate with its interval that rests on untestable assumptions (mediation): described, not "
                 "judged",
    PARTLY: "(claims) some primary tests supported and the others not shown, none contradicted; or every primary "
            "test supported but not in every epoch",
    MIXED: "(claims) some primary tests supported and at least one contradicted: the data speak against part of it",
    UNDETERMINED: "(claims) no primary test could be computed from this folder's arms and trials",
}
COLUMNS = ("claim", "role", "arm", "reference", "metric", "test", "expect", "alternative", "margin", "n",
           "estimate", "ci_low", "ci_high", "ci_level", "statistic", "df", "p", "p_adjusted", "alpha", "verdict",
           "flip_margin", "seeds_needed", "note")
ACROSS = "across"  # a contrast of this claim is planned once per axis of a sweep, as claim "across AXIS"
EXPONENT_TEST, TRACKING_ACROSS, TRACKING_WITHIN, TREND, DIFFERENCES = (
    "exponent in P", "tracking across levels", "tracking within levels", "trend", "level differences")


@dataclass(frozen=True)
class Contrast:
    """One declared comparison. `arms`: an arm label, a mitigation name (its shared-init arms with a dose),
    'shared' (every shared-init arm), 'pooled' (the shared-init arms whose mitigation does not act on the trait
    direction: pre-specified to share a slope) or 'all'. `reference`: '0' (or `null`), an arm label, 'same-strength
    KIND' (the KIND arm of the row arm's strength) or 'matched placebo' (the placebo at the row arm's strength × its
    mitigation's `placebo_ratio`); the estimate is arm minus reference. `role`: primary (a claim's verdict, in the
    multiplicity family), sustained (joins the claim's verdict as an intersection-union test: every one must hold),
    secondary (reported, not judged into a claim; adjusted within its claim) or descriptive (never judged)."""

    claim: str
    metric: str
    test: str
    expect: str  # ">", "<", "=", "<=", "!="
    arms: str = BASELINE
    reference: str = "0"
    role: str = "secondary"
    null: float = 0.0
    x: str | None = None  # a slope's regressor, a mediation's mediator
    epochs: bool = False  # expand `metric` (holding "{epoch}") over the folder's epochs
    min_epochs: int = 1  # fewer epochs and the metric does not exist: the row is not planned
    adjusted: bool = True  # a secondary row joins its claim's Benjamini–Hochberg family (False: judged at alpha)


def _mediation(kind: str) -> list[Contrast]:
    """A dose mitigation's mediation rows: strength → the mediator → trait_gain, described, never judged."""
    return [Contrast("mediation", "trait_gain", f"mediation {effect}", "!=", arms=kind, role="descriptive", x=MEDIATOR)
            for effect in ("ACME", "ADE", "total")]


CONTRASTS: list[Contrast] = [
    # Claim 1: alignment is positive, and in every epoch
    Contrast("claim1", "mean_alignment", "t-test", ">", role="primary"),
    Contrast("claim1", "alignment_epoch_{epoch}", "t-test", ">", role="sustained", epochs=True),
    Contrast("claim1", "frac_positive_steps", "t-test", ">", arms="all", null=0.5),
    Contrast("claim1", "mean_alignment", "t-test", ">", arms="all"),
    Contrast("update", "mean_update_alignment", "t-test", ">", arms="all"),
    Contrast("update", "update_alignment_epoch_{epoch}", "t-test", ">", epochs=True),
    # Claim 2: projection suppresses acquisition without hurting distillation
    Contrast("claim2", "trait_gain", "paired t-test", "<", arms="projection", reference=BASELINE, role="primary"),
    Contrast("claim2", "final_distill_loss", "non-inferiority", "<=", arms="projection", reference=BASELINE,
             role="primary"),
    Contrast("claim2", "mean_applied_alignment", "paired t-test", "<", arms="projection", reference=BASELINE),
    # Claim 3: acquisition is fastest in the first epoch
    Contrast("claim3", "epoch1_gain_minus_later", "t-test", ">", role="primary", min_epochs=2),
    # Claim 4: liminal training attenuates early alignment but acquisition continues
    Contrast("claim4", "alignment_epoch_1", "paired t-test", "<", arms="liminal", reference=BASELINE, role="primary"),
    Contrast("claim4", "trait_gain", "t-test", ">", arms="liminal", role="primary"),
    # The referee: does alignment cause acquisition? The intervention first, at equal step norm.
    Contrast("referee", "trait_gain", "paired t-test", "<", arms="projection", reference="matched placebo",
             role="primary"),
    Contrast("referee", "trait_gain", "TOST equivalence", "=", arms="placebo", reference=BASELINE, role="primary"),
    Contrast("referee", "final_distill_loss", "non-inferiority", "<=", arms="placebo", reference=BASELINE),
    *(c for x in MEDIATORS for c in (
        Contrast("referee", "trait_gain", "slope", ">", arms="shared", x=x),
        # A check of the common slope's model, judged at alpha unadjusted: pooling is refused whenever the data
        # speak against it, and the row's verdict says the same as the common slope's refusal.
        Contrast("referee", "trait_gain", "slope heterogeneity", "!=", arms="pooled", x=x, adjusted=False),
        Contrast("referee", "trait_gain", "common slope", ">", arms="pooled", x=x),
    )),
    *(c for kind in MITIGATIONS_WITH_DOSE for c in _mediation(kind)),
    # First-order accounting: does Σ g_t·Δθ account for the measured change of the trait loss?
    Contrast("first-order", "predicted_trait_loss_change", "first-order share", ">", arms="all",
             null=FIRST_ORDER_NULL),
    # Which layer carries the drive?
    *(Contrast("layers", f"mean_alignment_{layer}", "t-test", ">", arms="all") for layer in LAYER_NAMES),
    # Control: transfer needs the shared initialization
    Contrast("control", "trait_gain", "paired t-test", ">", reference=CONTROL, role="primary"),
    Contrast("control", "trait_gain", "TOST equivalence", "=", arms=CONTROL, role="primary"),
    # Across each axis: do the arms' alignment and acquisition differ between its values (any shape), and trend
    # along it? Does trait gain track alignment across its levels in none/shared, and within them? For an axis
    # that changes P: the exponent b of alignment ∝ P^b, against random directions' −1/2.
    *(Contrast(ACROSS, metric, test, "!=", arms="all") for test in (DIFFERENCES, TREND) for metric in RELATION_METRICS),
    *(Contrast(ACROSS, "trait_gain", test, ">", x="mean_alignment") for test in (TRACKING_ACROSS, TRACKING_WITHIN)),
    *(Contrast(ACROSS, metric, EXPONENT_TEST, ">", null=RANDOM_EXPONENT) for metric in MEDIATORS),
]


@dataclass(frozen=True)
class Options:
    """What a researcher may set: the smallest trait_gain of interest for "no effect", the non-inferiority
    margin, and the mediation's simulations."""

    equivalence_margin: float = 0.03
    noninferiority_margin: float = 0.05
    mediation_sims: int = 500
    mediation_seed: int = 0


@dataclass(frozen=True)
class Planned:
    """A contrast placed on a sweep's arms: one row of the tests table before any data."""

    contrast: Contrast
    arm: str
    reference: str
    metric: str
    arms: tuple[str, ...] = field(default=())  # the arms a slope or mediation pools
    level: tuple[tuple[str, Any], ...] = ()  # (axis, value) pairs of the level the row is answered at, if any
    axis: str | None = None  # a row about an axis (claim ACROSS): answered on every level's trials

    @property
    def claim(self) -> str:
        return f"{ACROSS} {self.axis}" if self.axis else self.contrast.claim

    @property
    def level_label(self) -> str:
        """The level's label, as trial ids and the tests table's axis columns name it ('' without a level)."""
        return level_label(dict(self.level))

    @property
    def key(self) -> tuple[str, ...]:
        """What names the row in a sequential design; the level's label only with a level, so that designs of
        sweeps without axes keep their stored keys."""
        return (self.claim, self.arm, self.reference, self.metric, self.contrast.test) + (
            (self.level_label,) if self.level else ())


def _selected(arms: pd.DataFrame, selector: str) -> list[str]:
    shared = arms[arms["student_init"] == "shared"]
    if selector == "all":
        return list(arms["arm"])
    if selector == "shared":
        return list(shared["arm"])
    if selector == "pooled":
        return list(arms.loc[in_pool(arms), "arm"])
    if selector in set(arms["mitigation"]):
        return list(shared.loc[(shared["mitigation"] == selector) & (shared["strength"] > 0), "arm"])
    return [selector] if selector in set(arms["arm"]) else []


def in_pool(frame: pd.DataFrame) -> pd.Series:
    """Which arms (or trials) the slope pool holds, declared before any data: the shared-init ones whose mitigation
    does not act on the step's trait-aligned component (one not installed here is assumed to)."""
    acts = frame["mitigation"].map(lambda kind: report_facts(kind).acts_on_trait_direction)
    return (frame["student_init"] == "shared") & ~acts.astype(bool)


def _plugins(kinds: Any) -> dict[str, Any]:
    """The facts of each mitigation among `kinds` that is not built in (its rows and claims are not in this module)."""
    return {kind: report_facts(kind) for kind in dict.fromkeys(kinds) if kind not in BUILT_IN}


def declared(arms: pd.DataFrame) -> list[Contrast]:
    """The rows the arms' plugins declare in their facts, and their mediation where their strength is a dose."""
    return [row for kind, facts in _plugins(arms["mitigation"]).items()
            for row in [*(Contrast(**c) for c in facts.contrasts), *(_mediation(kind) if facts.dose else [])]]


def doses(arms: pd.DataFrame) -> tuple[str, ...]:
    """The mitigations whose strength is a dose: the built-ins', then those of the plugins among `arms` (or trials)."""
    return MITIGATIONS_WITH_DOSE + tuple(kind for kind, facts in _plugins(arms["mitigation"]).items() if facts.dose)


def claims(kinds: Any) -> dict[str, tuple[str, str]]:
    """Every claim: the study's (CLAIMS), then those the plugins among the mitigations `kinds` declare."""
    return {**CLAIMS, **{claim: texts for facts in _plugins(kinds).values()
                         for claim, texts in facts.claims.items() if claim not in CLAIMS}}


def _reference(arms: pd.DataFrame, arm: str, reference: str) -> str | None:
    """The reference arm's label: a 'same-strength KIND' arm, or the 'matched placebo' (the placebo at the strength
    the arm's mitigation declares its step norm matches), or `reference` as given."""
    if reference == "matched placebo":
        ratio = report_facts(arms.loc[arms["arm"] == arm, "mitigation"].iloc[0]).placebo_ratio
        reference = f"same-strength placebo {ratio}" if ratio else None
    if reference is None or not reference.startswith("same-strength "):
        return reference
    kind, *ratio = reference.split()[1:]
    strength = float(arms.loc[arms["arm"] == arm, "strength"].iloc[0]) * float(ratio[0] if ratio else 1)
    match = arms[(arms["mitigation"] == kind) & (arms["student_init"] == "shared")
                 & np.isclose(arms["strength"].astype(float), strength)]
    return str(match["arm"].iloc[0]) if len(match) else None


def arm_frame(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per arm (label, mitigation, strength, student_init) in reading order."""
    firsts = trials.groupby("arm", sort=False)[["mitigation", "strength", "student_init"]].first()
    return firsts.loc[arm_order(trials)].reset_index()


class Axis(NamedTuple):
    """What planning the rows about an axis needs: its name, the regressor of its trend (None: not numeric), and
    whether it changes the parameter count P."""

    name: str
    regressor: str | None
    changes_p: bool


def plan(arms: pd.DataFrame, epochs: int, contrasts: list[Contrast] | None = None,
         axis: Axis | None = None) -> list[Planned]:
    """Every row the tests table will hold for these arms (`arm_frame`) and number of epochs; with `axis`, the
    rows about that axis (claim ACROSS) instead."""
    rows = []
    for c in [*CONTRASTS, *declared(arms)] if contrasts is None else contrasts:
        if epochs < c.min_epochs or (c.claim == ACROSS) != (axis is not None):
            continue
        metrics = [c.metric.format(epoch=e) for e in range(1, epochs + 1)] if c.epochs else [c.metric]
        chosen, on_x = _selected(arms, c.arms), f"{c.metric} ~ {c.x}"  # on_x: a slope's metric
        if axis is not None:
            if (c.test == TREND and axis.regressor is None) or (c.test == EXPONENT_TEST and not axis.changes_p):
                continue
            metric = {DIFFERENCES: f"{c.metric} by {axis.name}", TREND: f"{c.metric} ~ {axis.regressor}",
                      EXPONENT_TEST: f"{c.metric} ∝ P^b"}.get(c.test, on_x)
            rows += [Planned(c, arm, f"{c.null:g}", metric, axis=axis.name) for arm in chosen]
            continue
        if c.test in ("slope heterogeneity", "common slope"):
            if len(chosen) >= 2:
                label = "pooled arms" if c.arms == "pooled" else "shared-init arms"
                rows.append(Planned(c, label, "0", on_x, tuple(chosen)))
            continue
        if c.test == "slope":
            rows += [Planned(c, arm, "0", on_x, (arm,)) for arm in chosen]
            continue
        if c.test.startswith("mediation"):
            if chosen and BASELINE in set(arms["arm"]):
                rows.append(Planned(c, c.arms, "0", f"strength → {c.x} → {c.metric}", (BASELINE, *chosen)))
            continue
        for arm in chosen:
            reference = _reference(arms, arm, c.reference)
            if reference is None or reference == arm:
                continue
            rows += [Planned(c, arm, reference if reference != "0" else f"{c.null:g}", metric) for metric in metrics]
    unique = {(p.arm, p.reference, p.metric, p.contrast.test): p for p in reversed(rows)}  # the first declared wins
    return [p for p in rows if unique[(p.arm, p.reference, p.metric, p.contrast.test)] is p]


def axis_of(trials: pd.DataFrame, axes: dict[str, list[Any]], name: str) -> Axis:
    """An axis as `plan` needs it, from the trials (the folder's values decide the trend's scale)."""
    fitted, base = regressor(trials[name], name), _arm_sample(trials, axes, name, BASELINE)
    return Axis(name, fitted and fitted[0], bool(base.groupby("arm")["parameter_count"].nunique().gt(1).any()))


LOG_SPAN = 4  # an axis whose positive values span this ratio or more is fitted (and drawn) on a log scale


def regressor(values: pd.Series, axis: str) -> tuple[str, pd.Series] | None:
    """How a trend along `axis` is fitted: (name, values) on log2 when the positive values span LOG_SPAN or more,
    else as they are; None for an axis that is not numeric."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any() or values.map(lambda v: isinstance(v, bool)).any():
        return None
    if (numbers > 0).all() and numbers.max() / numbers.min() >= LOG_SPAN:
        return f"log2 {axis}", np.log2(numbers.astype(float))
    return axis, numbers.astype(float)


# --- answering one planned row ----------------------------------------------------------------------

def per_seed_values(trials: pd.DataFrame, p: Planned) -> pd.Series:
    """Per seed: the arm's metric, or the arm minus its reference arm (paired by seed)."""
    reference = p.reference if p.reference in set(trials["arm"]) else None
    if p.contrast.reference not in ("0",) and reference is None:
        raise Refusal(f"needs completed trials of {p.reference}, has none")
    table = inf.per_seed(trials, [p.arm] + ([reference] if reference else []), p.metric)
    return table[p.arm] - table[reference] if reference else table[p.arm]


def _mean_test(trials: pd.DataFrame, p: Planned, options: Options) -> dict[str, Any]:
    c, paired = p.contrast, p.reference in set(trials["arm"])
    what = f"{p.metric} in {p.arm}" + (f" and {p.reference}" if paired else "")
    values = per_seed_values(trials, p)
    if c.test == "TOST equivalence":
        return inf.equivalence(values - c.null, what, options.equivalence_margin)
    if c.test == "non-inferiority":
        reference_mean = float(inf.per_seed(trials, [p.reference], p.metric)[p.reference].mean())
        if not reference_mean > 0:
            raise Refusal(f"the margin is a fraction of {p.reference}'s mean {p.metric}, which is {reference_mean:g}")
        row = inf.noninferiority(values, what, options.noninferiority_margin * reference_mean)
        return {**row, "note": f"margin {options.noninferiority_margin:g} × {p.reference}'s mean "
                               f"{reference_mean:.4g}; flips at {row['flip_margin'] / reference_mean:.3g} × that mean"}
    return inf.one_sample(values, what, c.null)


def _slope_test(trials: pd.DataFrame, p: Planned, context: dict[str, Any]) -> dict[str, Any]:
    c = p.contrast
    chosen = trials[trials["arm"].isin(p.arms)]
    if c.test == "slope heterogeneity":
        row, model = inf.heterogeneity(chosen, c.x, c.metric)
        context[("heterogeneity", c.x)] = row
        return {**row, "model": model, "note": f"{row['method']}; arms {', '.join(p.arms)}; judged at alpha, not "
                                               "adjusted: it decides whether the common slope is fitted"}
    if c.test == "common slope":
        het = context.get(("heterogeneity", c.x))
        if het is None:
            raise Refusal("the heterogeneity of the arms' slopes could not be tested, so a common slope is not assumed")
        if het["p"] <= inf.ALPHA:
            raise Refusal(f"the arms' slopes differ (heterogeneity p = {het['p']:.2g}): no common slope; "
                          "read the per-arm slopes")
    row, model = inf.slope(chosen, c.x, c.metric)
    return {**row, "model": model, "note": f"OLS, {'intercept per arm, ' if len(p.arms) > 1 else ''}{row['method']}"
                                           + (f"; arms {', '.join(p.arms)}" if c.arms == "pooled" else "")}


def mitigation_sample(trials: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Shared-init trials of `kind` at every strength, with none/shared as strength 0."""
    shared = trials[trials["student_init"] == "shared"]
    sample = shared[shared["mitigation"].isin([kind, "none"])].copy()
    sample.loc[sample["mitigation"] == "none", "strength"] = 0.0
    return sample


def _mediation_test(trials: pd.DataFrame, p: Planned, options: Options, context: dict[str, Any]) -> dict[str, Any]:
    """A mediation row; its model is the dose model (`inference.dose_model`'s fit) the figure draws."""
    c = p.contrast
    key = ("mediation", p.arm, c.x)
    if key not in context:
        sample = mitigation_sample(trials, p.arm)
        try:
            dose = inf.dose_model(sample.dropna(subset=["trait_gain", "strength"]))
            context[key] = (inf.mediation(sample, c.x, dose.scale, options.mediation_sims, options.mediation_seed),
                            dose)
        except (Refusal, ValueError, np.linalg.LinAlgError) as error:
            context[key] = error
    if isinstance(context[key], Exception):
        raise context[key]
    rows, dose = context[key]
    row = rows[c.test.split()[1]]
    return {**row, "model": dose, "note": f"dose {row['dose']} (AIC linear {dose.aic['linear']:.1f}, log "
                                          f"{dose.aic['log']:.1f}); strength 0 → {row['contrast_to']:g}; exposure × "
                                          f"mediator interaction allowed; {options.mediation_sims} simulations"}


def _arm_sample(trials: pd.DataFrame, axes: dict[str, list[Any]], axis: str, arm: str) -> pd.DataFrame:
    """An arm's trials with `arm` holding their level of the other axes: the fits' intercept groups."""
    return trials[trials["arm"] == arm].assign(arm=trial_groups(trials, axes, axis))


def _across_test(trials: pd.DataFrame, p: Planned, axes: dict[str, list[Any]]) -> dict[str, Any]:
    """A row about an axis, on the trials of every level: an F of its value terms, a trend on its regressor,
    none/shared's tracking of alignment across (or within) its levels, or its exponent in P."""
    c, axis = p.contrast, p.axis
    sample = _arm_sample(trials, axes, axis, p.arm)
    if c.test == DIFFERENCES:
        row, model = inf.level_differences(sample, c.metric, axis)
    elif c.test == TREND:
        x, values = regressor(trials[axis], axis)  # one scale for every arm
        row, model = inf.slope(sample.assign(**{x: values}), x, c.metric)
    elif c.test == EXPONENT_TEST:
        row, model = inf.exponent(sample, c.metric, c.null)
    else:
        within = sample.assign(arm=sample["arm"] + "|" + sample[axis].astype(str))
        row, model = inf.slope(within if c.test == TRACKING_WITHIN else sample, c.x, c.metric)
    others = ", an intercept per level of the other axes" if len(axes) > 1 else ""
    return {**row, "model": model, "note": row["method"] + (others if c.test != TRACKING_WITHIN else "")}


def _first_order_test(trials: pd.DataFrame, p: Planned) -> dict[str, Any]:
    both = trials[trials["arm"] == p.arm].groupby("seed")[["predicted_trait_loss_change",
                                                           "measured_trait_loss_change"]].mean()
    return inf.ratio(both["predicted_trait_loss_change"], both["measured_trait_loss_change"],
                     f"first-order trait-loss change in {p.arm}", p.contrast.null)


def _answer(trials: pd.DataFrame, p: Planned, options: Options, context: dict[str, Any]) -> dict[str, Any]:
    test = p.contrast.test
    if p.axis:
        return _across_test(trials, p, context["axes"])
    if p.metric in ZERO_BY_CONSTRUCTION and (finite := inf.finite(trials.loc[trials["arm"] == p.arm, p.metric])).size \
            and not finite.any():
        return {"verdict": ZERO, "note": ZERO_BY_CONSTRUCTION[p.metric], "p": np.nan}  # named as such, never tested
    if "slope" in test:
        return _slope_test(trials, p, context)
    if test.startswith("mediation"):
        return _mediation_test(trials, p, options, context)
    if test == "first-order share":
        return _first_order_test(trials, p)
    return _mean_test(trials, p, options)


# --- verdicts -------------------------------------------------------------------------------------

def judge(row: dict[str, Any], alpha: float) -> str:
    """The row's verdict at `alpha` from its p-value, the sign of its estimate and its interval."""
    p, expect = row["p"], row["expect"]
    if not np.isfinite(p):
        return REFUSED
    shown = p <= alpha
    if expect in (">", "<") and shown:
        return SUPPORTED if (row["estimate"] - row["null"]) * (1 if expect == ">" else -1) > 0 else CONTRADICTED
    beyond = {"=": row["ci_low"] > row["margin"] or row["ci_high"] < -row["margin"],  # not equivalent
              "<=": row["ci_low"] > row["margin"]}.get(expect, False)  # inferior
    return SUPPORTED if shown else CONTRADICTED if beyond else NOT_SHOWN


def _seeds(row: dict[str, Any]) -> tuple[Any, str | None]:
    """Seeds needed by a primary directional row, or why not (e.g. the effect opposes the claim)."""
    if row["role"] != "primary" or row["verdict"] in (REFUSED, ZERO) or row["expect"] == "=":
        return None, None
    effect = row["estimate"] - row["null"] if row["expect"] != "<=" else row["margin"] - row["estimate"]
    wanted = -1 if row["expect"] == "<" else 1
    if np.sign(effect) != wanted:
        return None, "the observed effect opposes the claim: no number of seeds would show the claim if it is the truth"
    try:
        return inf.seeds_needed(row), None
    except Refusal as refusal:
        return None, str(refusal)


def tests_table(trials: pd.DataFrame, options: Options = Options(), rows: list[Planned] | None = None,
                alphas: dict[tuple, float] | None = None, axes: dict[str, list[Any]] | None = None) -> pd.DataFrame:
    """Answer `rows` (default: every planned row for these trials' arms) from completed `trials` (with the
    per-trial metrics of `descriptives.trial_metrics`), each row with the model it was answered with (`model`).
    Primary rows are judged on Holm-adjusted p-values, or at `alphas[row key]` where a sequential design sets each
    test's level. Over `axes`: every planned row within each level (its values in the axis columns; each level its
    own family), then the rows about each axis, on every level's trials (their axis columns empty)."""
    epochs = int(trials["epochs_done"].max()) if "epochs_done" in trials and len(trials) else 0
    if axes:
        across = [p for name in axes for p in plan(arm_frame(trials), epochs, axis=axis_of(trials, axes, name))]
        parts = [tests_table(at_level(trials, level), options).assign(**level) for level in levels(trials, axes)]
        return with_axis_columns(pd.concat([*parts, _answered(trials, across, options, None, axes)],
                                           ignore_index=True), axes)
    return _answered(trials, plan(arm_frame(trials), epochs) if rows is None else rows, options, alphas, {})


def _answered(trials: pd.DataFrame, planned: list[Planned], options: Options, alphas: dict[tuple, float] | None,
              axes: dict[str, list[Any]]) -> pd.DataFrame:
    context: dict[str, Any] = {"axes": axes}
    out = []
    for p in planned:
        c = p.contrast
        row = {"claim": p.claim, "role": c.role, "arm": p.arm, "reference": p.reference, "metric": p.metric,
               "test": c.test, "expect": c.expect, "null": c.null, "margin": np.nan, "note": None,
               "adjusted": c.adjusted, "model": None}
        try:
            row.update(_answer(trials, p, options, context))
        except Refusal as refusal:
            row.update(verdict=REFUSED, note=str(refusal), p=np.nan)
        except (ValueError, np.linalg.LinAlgError) as error:
            row.update(verdict=REFUSED, note=f"the model could not be fitted ({error})", p=np.nan)
        out.append(row)
    return tabulate(out, planned, alphas)


def tabulate(rows: list[dict[str, Any]], planned: list[Planned] | None = None,
             alphas: dict[tuple, float] | None = None) -> pd.DataFrame:
    """Answered rows as the tests table: every column, the alternative, Holm over the primary rows (or the
    sequential levels of `planned` rows), verdicts and seeds-needed."""
    table = pd.DataFrame(rows)
    for column in (*COLUMNS, "null", "effect_size", "model"):
        if column not in table:
            table[column] = np.nan
    table["alternative"] = table["test"].map(_alternative)
    _adjust(table, planned, alphas)
    needed = [_seeds(row) for row in table.to_dict("records")]
    table["seeds_needed"] = pd.to_numeric(pd.Series([n for n, _ in needed], index=table.index, dtype=object))
    table["note"] = ["; ".join(text for text in (note, why) if isinstance(text, str) and text) or None
                     for note, (_, why) in zip(table["note"], needed)]
    return table[list(COLUMNS) + ["null", "effect_size", "model"]]


def _alternative(test: str) -> str:
    return {"TOST equivalence": "equivalence", "non-inferiority": "non-inferiority"}.get(test, "two-sided")


def _adjust(table: pd.DataFrame, planned: list[Planned] | None, alphas: dict[tuple, float] | None) -> None:
    """Holm over the primary rows (or each test's sequential level), Benjamini–Hochberg within each claim's
    secondary rows (those `adjusted`), then every row's verdict (descriptive rows are not judged)."""
    table["alpha"] = inf.ALPHA
    table["p_adjusted"] = table["p"]
    primary = (table["role"] == "primary") & table["p"].notna()
    if alphas is not None and planned is not None:
        table["alpha"] = [alphas.get(p.key, inf.ALPHA) for p in planned]
    elif primary.sum() > 1:
        table.loc[primary, "p_adjusted"] = multipletests(table.loc[primary, "p"], alpha=inf.ALPHA, method="holm")[1]
    secondary = (table["role"] == "secondary") & table["p"].notna() & table.get("adjusted", True)
    for _, index in table[secondary].groupby("claim").groups.items():
        table.loc[index, "p_adjusted"] = multipletests(table.loc[index, "p"], alpha=inf.ALPHA, method="fdr_bh")[1]
    table["verdict"] = [row["verdict"] if row.get("verdict") in (REFUSED, ZERO)
                        else DESCRIPTIVE if row["role"] == "descriptive"
                        else judge({**row, "p": row["p_adjusted"]}, row["alpha"]) for row in table.to_dict("records")]


# --- claims ------------------------------------------------------------------------------------------

CLAIMS: dict[str, tuple[str, str]] = {
    "claim1": ("Claim 1: alignment stays weakly but consistently positive",
               "Alignment between the distillation gradient and the trait gradient stays weakly but consistently "
               "positive throughout multi-step training."),
    "claim2": ("Claim 2: projection suppresses acquisition without hurting distillation",
               "Projecting the trait-aligned component out of the distillation gradient suppresses trait "
               "acquisition without hurting distillation progress."),
    "claim3": ("Claim 3: acquisition is fastest early (a critical period)",
               "Trait acquisition is fastest early: a critical period in the first epoch."),
    "claim4": ("Claim 4: liminal training attenuates alignment early but does not stop acquisition",
               "Liminal training attenuates alignment (early on) but does not stop acquisition."),
    "referee": ("The referee: the step's direction, not its size, carries the trait",
                "Projection suppresses acquisition against a placebo of equal step norm, and the placebo leaves "
                "acquisition as it is (equivalent within the margin)."),
    "control": ("Control: transfer needs the shared initialization",
                "Shared-init students acquire more than independent-init ones, which do not acquire "
                "(equivalent to 0 within the margin)."),
}


def claim_verdict(table: pd.DataFrame, claim: str) -> str:
    """A claim's verdict from its primary rows (see VERDICTS): any contradicted row makes it contradicted (none
    supported) or mixed (some supported), so a contradiction is never rolled up into support; its sustained rows
    are an intersection-union test: every one must be supported for the claim to be supported in full."""
    rows = table[table["claim"] == claim]
    primary = rows.loc[rows["role"] == "primary", "verdict"]
    judged = primary[primary != REFUSED]
    if judged.empty:
        return UNDETERMINED
    supported, contradicted = (judged == SUPPORTED).any(), (judged == CONTRADICTED).any()
    if contradicted:
        return MIXED if supported else CONTRADICTED
    if not (judged == SUPPORTED).all():
        return PARTLY if supported else NOT_SHOWN
    sustained = rows.loc[rows["role"] == "sustained", "verdict"]
    return PARTLY if len(primary) > len(judged) or (sustained != SUPPORTED).any() else SUPPORTED
