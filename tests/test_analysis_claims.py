"""Verdicts follow the intervals: supported only when the interval excludes the null in the claimed
direction, undetermined (with the reason) when the statistic was refused."""

from __future__ import annotations

from types import SimpleNamespace

from sublim.analysis import claims
from sublim.analysis.answers import (AlignmentByEpoch, Comparisons, Coefficient, FixedEffectsRegression,
                                     LiminalComparison, MeanTest, NonInferiority, Paired, PlaceboComparison,
                                     PositiveSteps, Positivity, ProjectionComparison, Refused, Regressions,
                                     SimulatedEffect)


def interval(mean: float, low: float, high: float) -> MeanTest:
    return MeanTest(n=8, mean=mean, sd=0.01, se=0.004, ci_low=low, ci_high=high, null=0.0, t=2.0, df=7.0, p=0.01,
                    cohens_d=1.0, wilcoxon=Refused("too few"))


def paired(test: MeanTest, mean_arm: float = 0.1, mean_reference: float = 0.2) -> Paired:
    return Paired(arm="arm", reference="none/shared", metric="metric", mean_arm=mean_arm,
                  mean_reference=mean_reference, difference=test)


def positivity(mean_alignment, sustained) -> SimpleNamespace:
    epochs = AlignmentByEpoch(epochs=[], epochs_tested=3, epochs_positive=3 if sustained else 1, sustained=sustained)
    steps = PositiveSteps(n=8, steps=800, positive=500, fraction=0.625, ci_low=0.59, ci_high=0.66, p_steps=1e-12,
                          trials_mostly_positive=7, p_trials=0.07)
    return SimpleNamespace(positivity={"none/shared": Positivity(mean_alignment=mean_alignment, by_epoch=epochs,
                                                                 positive_steps=steps)})


def test_claim1_verdicts():
    positive = interval(0.004, 0.003, 0.005)
    assert claims.alignment_positive(positivity(positive, True))["verdict"] == "supported"
    assert claims.alignment_positive(positivity(positive, False))["verdict"] == "partly supported"
    assert claims.alignment_positive(positivity(positive, None))["verdict"] == "partly supported"
    null = claims.alignment_positive(positivity(interval(0.001, -0.001, 0.003), True))
    assert null["verdict"] == "not supported" and "not shown to be positive" in null["words"]
    refused = claims.alignment_positive(positivity(Refused("needs at least 3 trials, has 2"), None))
    assert refused["verdict"] == "undetermined" and "has 2" in refused["words"]
    assert claims.alignment_positive(SimpleNamespace(positivity={}))["verdict"] == "undetermined"


def comparisons(projection=None, liminal=None, placebo=None, noninferiority=None) -> SimpleNamespace:
    return SimpleNamespace(comparisons=Comparisons(shared_vs_independent=Refused("unused"),
                                                   independent_gain=Refused("unused"),
                                                   projection=projection or {}, liminal=liminal or {},
                                                   placebo=placebo or {}),
                           noninferiority=noninferiority or {}, meta=SimpleNamespace(margin=0.05))


def inferiority(difference: float, upper: float, margin: float = 5e-5) -> NonInferiority:
    """Final distillation loss against none/shared (mean 1e-3): non-inferior when `upper` < `margin`."""
    return NonInferiority(arm="projection@1/shared", reference="none/shared", metric="final_distill_loss", n=8,
                          mean_arm=1e-3 + difference, mean_reference=1e-3, margin_fraction=0.05, margin=margin,
                          difference=difference, sd=1e-6, se=4e-7, upper=upper, t=-3.0, df=7.0, p=0.01,
                          cohens_d=1.0, noninferior=upper < margin)


def projection(gain: MeanTest, loss: NonInferiority | Refused, placebo=None) -> SimpleNamespace:
    # the difference test of the loss is a significant 6e-6 rise: it no longer decides the verdict
    metrics = ProjectionComparison(trait_gain=paired(gain), final_distill_loss=paired(interval(6e-6, 5e-6, 7e-6)),
                                   mean_applied_alignment=Refused("unused"))
    return comparisons(projection={"projection@1/shared": metrics}, placebo=placebo,
                       noninferiority={"projection@1/shared": loss})


def test_claim2_needs_suppression_and_non_inferior_distillation():
    lower = interval(-0.1, -0.15, -0.05)
    within, beyond = inferiority(6e-6, 7e-6), inferiority(2e-4, 2.5e-4)
    supported = claims.projection_suppresses(projection(lower, within))
    assert supported["verdict"] == "supported" and "non-inferior: no material cost" in supported["words"]
    assert claims.projection_suppresses(projection(lower, beyond))["verdict"] == "partly supported"
    refused = claims.projection_suppresses(projection(lower, Refused("needs at least 3 seeds")))
    assert refused["verdict"] == "partly supported" and "needs at least 3 seeds" in refused["words"]
    assert claims.projection_suppresses(projection(interval(-0.01, -0.03, 0.01), within))["verdict"] == "not supported"
    assert claims.projection_suppresses(comparisons())["verdict"] == "undetermined"


def placebo_arm(placebo_gain: MeanTest, projection_minus_placebo: MeanTest) -> dict[str, PlaceboComparison]:
    return {"placebo@1/shared": PlaceboComparison(
        trait_gain=paired(placebo_gain), final_distill_loss=Refused("unused"), mean_applied_alignment=Refused("unused"),
        projection_vs_placebo=Paired(arm="projection@1/shared", reference="placebo@1/shared", metric="trait_gain",
                                     mean_arm=0.1, mean_reference=0.2, difference=projection_minus_placebo))}


def referee(placebo: dict, slope: MeanTest | Refused) -> dict[str, str]:
    stats = comparisons(placebo=placebo)
    fit = slope if isinstance(slope, Refused) else FixedEffectsRegression(
        n=24, seeds=8, arms=["none/shared"], slope=slope.mean, se=1.0, ci_low=slope.ci_low, ci_high=slope.ci_high,
        p=0.01, r2=0.5, cov_type="HC3")
    stats.regression = Regressions(ols=Refused("unused"), mixed=Refused("unused"), within_shared=fit)
    stats.mediation = {}
    return claims.alignment_mediates(stats)


def test_referee_uses_the_within_shared_slope_and_the_placebo_direction():
    intact, reduced = interval(0.0, -0.05, 0.05), interval(-0.1, -0.15, -0.05)
    positive, null = interval(40.0, 10.0, 70.0), interval(0.0, -30.0, 30.0)
    causal = referee(placebo_arm(intact, reduced), positive)
    assert causal["verdict"] == "supported" and "Direction causal" in causal["words"]
    assert referee(placebo_arm(intact, reduced), null)["verdict"] == "partly supported"
    placebo_hurts_too = referee(placebo_arm(reduced, reduced), positive)
    assert placebo_hurts_too["verdict"] == "partly supported" and "not shown causal" in placebo_hurts_too["words"]
    assert referee(placebo_arm(intact, interval(0.0, -0.05, 0.05)), null)["verdict"] == "not supported"
    assert referee({}, Refused("too few"))["verdict"] == "undetermined"


def test_claim2_reports_placebo_beside_projection():
    words = claims.projection_suppresses(projection(interval(-0.1, -0.15, -0.05), inferiority(0.0, 1e-6),
                                                    placebo=placebo_arm(interval(0.0, -0.05, 0.05),
                                                                        interval(-0.1, -0.15, -0.05))))["words"]
    assert "placebo@1/shared changes trait_gain by 0 (95% CI -0.05 to 0.05" in words
    assert "projection@1/shared minus placebo@1/shared in trait_gain: -0.1" in words


def test_claim4_combines_strengths():
    def arm(attenuated: bool, acquires: bool) -> LiminalComparison:
        early = interval(-0.001, -0.002, -0.0005) if attenuated else interval(0.0, -0.001, 0.001)
        gain = interval(0.1, 0.05, 0.15) if acquires else interval(0.0, -0.02, 0.02)
        return LiminalComparison(alignment_epoch_1=paired(early), mean_alignment=Refused("unused"),
                                 trait_gain=Refused("unused"), gain_vs_zero=gain)

    def verdict(*arms: LiminalComparison) -> str:
        liminal = {f"liminal@{i}/shared": a for i, a in enumerate(arms)}
        return claims.liminal_attenuates(comparisons(liminal=liminal))["verdict"]

    assert verdict(arm(True, True), arm(True, True)) == "supported"
    assert verdict(arm(True, True), arm(False, True)) == "partly supported"
    assert verdict(arm(False, False)) == "not supported"
    too_few = LiminalComparison(alignment_epoch_1=Refused("too few"), mean_alignment=Refused("too few"),
                                trait_gain=Refused("too few"), gain_vs_zero=Refused("too few"))
    assert verdict(too_few) == "undetermined"


def test_simulated_p_of_zero_is_printed_as_a_bound():
    assert claims.p_value(SimulatedEffect(estimate=0.1, ci_low=0.05, ci_high=0.15, p=0.0, resolution=0.002)) \
        == "p < 0.002"
    assert claims.p_value(Coefficient(estimate=0.1, ci_low=0.05, ci_high=0.15, p=0.0312)) == "p = 0.0312"
