"""Verdicts follow the intervals: supported only when the interval excludes the null in the claimed
direction, undetermined (with the reason) when the statistic was refused."""

from __future__ import annotations

from sublim.analysis import claims


def interval(mean: float, low: float, high: float, **extra) -> dict:
    return {"n": 8, "mean": mean, "ci_low": low, "ci_high": high, "p": 0.01, "cohens_d": 1.0, **extra}


def positivity(mean_alignment: dict, sustained) -> dict:
    epochs = {"epochs": [], "epochs_tested": 3, "epochs_positive": 3 if sustained else 1, "sustained": sustained}
    steps = {"n": 8, "steps": 800, "positive": 500, "fraction": 0.625, "p_trials": 0.07, "trials_mostly_positive": 7}
    return {"positivity": {"none/shared": {"mean_alignment": mean_alignment, "by_epoch": epochs,
                                           "positive_steps": steps}}}


def test_claim1_verdicts():
    positive = interval(0.004, 0.003, 0.005)
    assert claims.alignment_positive(positivity(positive, True))["verdict"] == "supported"
    assert claims.alignment_positive(positivity(positive, False))["verdict"] == "partly supported"
    assert claims.alignment_positive(positivity(positive, None))["verdict"] == "partly supported"
    null = claims.alignment_positive(positivity(interval(0.001, -0.001, 0.003), True))
    assert null["verdict"] == "not supported" and "not shown to be positive" in null["words"]
    refused = claims.alignment_positive(positivity({"refused": "needs at least 3 trials, has 2"}, None))
    assert refused["verdict"] == "undetermined" and "has 2" in refused["words"]
    assert claims.alignment_positive({"positivity": {}})["verdict"] == "undetermined"


def projection(gain: dict, loss: dict) -> dict:
    metrics = {"trait_gain": {**gain, "mean_arm": 0.1, "mean_reference": 0.2}, "final_distill_loss": loss}
    return {"comparisons": {"projection": {"projection@1/shared": metrics}}}


def test_claim2_needs_suppression_and_no_cost():
    lower, no_cost, cost = interval(-0.1, -0.15, -0.05), interval(0.0, -0.01, 0.01), interval(0.02, 0.01, 0.03)
    assert claims.projection_suppresses(projection(lower, no_cost))["verdict"] == "supported"
    assert claims.projection_suppresses(projection(lower, cost))["verdict"] == "partly supported"
    assert claims.projection_suppresses(projection(interval(-0.01, -0.03, 0.01), no_cost))["verdict"] == "not supported"
    assert claims.projection_suppresses({"comparisons": {"projection": {}}})["verdict"] == "undetermined"


def test_claim4_combines_strengths():
    def arm(attenuated: bool, acquires: bool) -> dict:
        early = interval(-0.001, -0.002, -0.0005) if attenuated else interval(0.0, -0.001, 0.001)
        gain = interval(0.1, 0.05, 0.15) if acquires else interval(0.0, -0.02, 0.02)
        return {"alignment_epoch_1": early, "gain_vs_zero": gain}

    def verdict(*arms: dict) -> str:
        liminal = {f"liminal@{i}/shared": a for i, a in enumerate(arms)}
        return claims.liminal_attenuates({"comparisons": {"liminal": liminal}})["verdict"]

    assert verdict(arm(True, True), arm(True, True)) == "supported"
    assert verdict(arm(True, True), arm(False, True)) == "partly supported"
    assert verdict(arm(False, False)) == "not supported"
    assert verdict({"alignment_epoch_1": {"refused": "too few"}, "gain_vs_zero": {"refused": "too few"}}) == "undetermined"


def test_simulated_p_of_zero_is_printed_as_a_bound():
    assert claims.p_value({"p": 0.0, "resolution": 0.002}) == "p < 0.002"
    assert claims.p_value({"p": 0.0312}) == "p = 0.0312"
