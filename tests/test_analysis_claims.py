"""Verdicts follow the intervals: supported only when the interval excludes the null in the claimed
direction, undetermined (with the reason) when the statistic was refused."""

from __future__ import annotations

from types import SimpleNamespace

from sublim.analysis import claims
from sublim.analysis.answers import (AlignmentByEpoch, Comparisons, Coefficient, LiminalComparison, MeanTest, Paired,
                                     PositiveSteps, Positivity, ProjectionComparison, Refused, SimulatedEffect)


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


def comparisons(projection=None, liminal=None) -> SimpleNamespace:
    return SimpleNamespace(comparisons=Comparisons(shared_vs_independent=Refused("unused"),
                                                   independent_gain=Refused("unused"),
                                                   projection=projection or {}, liminal=liminal or {}))


def projection(gain: MeanTest, loss: MeanTest) -> SimpleNamespace:
    metrics = ProjectionComparison(trait_gain=paired(gain), final_distill_loss=paired(loss),
                                   mean_applied_alignment=Refused("unused"))
    return comparisons(projection={"projection@1/shared": metrics})


def test_claim2_needs_suppression_and_no_cost():
    lower, no_cost, cost = interval(-0.1, -0.15, -0.05), interval(0.0, -0.01, 0.01), interval(0.02, 0.01, 0.03)
    assert claims.projection_suppresses(projection(lower, no_cost))["verdict"] == "supported"
    assert claims.projection_suppresses(projection(lower, cost))["verdict"] == "partly supported"
    assert claims.projection_suppresses(projection(interval(-0.01, -0.03, 0.01), no_cost))["verdict"] == "not supported"
    assert claims.projection_suppresses(comparisons())["verdict"] == "undetermined"


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
