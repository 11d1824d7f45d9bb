"""The tests table on planted truths: each estimand recovers what was planted, "no effect" needs an equivalence
test, slopes are per arm unless shown equal, the seed is the unit, and verdicts follow the rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from sublim.analysis import contrasts
from sublim.analysis.contrasts import (CONTRADICTED, CONTRASTS, MIXED, NOT_SHOWN, REFUSED, SUPPORTED, ZERO, Contrast, Options,
                                       arm_frame, claim_verdict, plan)
from sublim.analysis.inference import dose_model, ratio

ARMS = {"none/shared": ("none", 0.0, "shared"), "none/independent": ("none", 0.0, "independent"),
        "projection@1/shared": ("projection", 1.0, "shared"), "placebo@1/shared": ("placebo", 1.0, "shared")}


def trials(values: dict[str, dict[str, np.ndarray]], arms: dict = ARMS) -> pd.DataFrame:
    """One row per (arm, seed): `values[arm][metric]` holds one value per seed."""
    rows = []
    for arm, metrics in values.items():
        mitigation, strength, init = arms[arm]
        for seed in range(len(next(iter(metrics.values())))):
            rows.append({"trial_id": f"s{seed}-{arm}", "arm": arm, "seed": seed, "mitigation": mitigation,
                         "strength": strength, "student_init": init, "epochs_done": 1,
                         **{m: float(v[seed]) for m, v in metrics.items()}})
    return pd.DataFrame(rows)


def only(table: pd.DataFrame, **where) -> dict:
    rows = table
    for key, value in where.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1, rows
    return rows.iloc[0].to_dict()


def run(frame: pd.DataFrame, *declared: Contrast, **options) -> pd.DataFrame:
    return contrasts.tests_table(frame, Options(**options), plan(arm_frame(frame), 1, list(declared)))


PLACEBO_EQUIVALENCE = Contrast("referee", "trait_gain", "TOST equivalence", "=", arms="placebo", reference="none/shared",
                               role="primary")


@pytest.mark.parametrize("shift, noise, seeds, verdict", [
    (0.0, 0.005, 12, SUPPORTED),      # equal arms, tight: equivalent within 0.03
    (0.0, 0.08, 4, NOT_SHOWN),        # equal arms, wide: a non-significant difference is not "no effect"
    (0.2, 0.005, 12, CONTRADICTED),   # clearly different beyond the margin
])
def test_equivalence_needs_the_interval_inside_the_margin(shift, noise, seeds, verdict):
    rng = np.random.default_rng(0)
    base = 0.3 + rng.normal(0, 0.05, seeds)
    frame = trials({"none/shared": {"trait_gain": base},
                    "placebo@1/shared": {"trait_gain": base - shift + rng.normal(0, noise, seeds)}})
    row = only(run(frame, PLACEBO_EQUIVALENCE), test="TOST equivalence")
    assert row["verdict"] == verdict
    assert row["alternative"] == "equivalence" and row["margin"] == 0.03 and row["ci_level"] == pytest.approx(0.9)
    difference = frame[frame.arm == "placebo@1/shared"].trait_gain.to_numpy() - base
    low, high = scipy_stats.t.interval(0.9, seeds - 1, difference.mean(), scipy_stats.sem(difference))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert row["flip_margin"] == pytest.approx(max(abs(low), abs(high)))
    # the verdict flips exactly at the margin it names
    flipped = only(run(frame, PLACEBO_EQUIVALENCE, equivalence_margin=row["flip_margin"] * 1.001), test="TOST equivalence")
    assert flipped["verdict"] == SUPPORTED


def slopes_frame(slopes: dict[str, float], seeds: int = 16, noise: float = 0.01, seed: int = 1) -> pd.DataFrame:
    """trait_gain = slope · alignment + a seed effect shared by the seed's arms + noise."""
    rng = np.random.default_rng(seed)
    seed_effect = rng.normal(0, 0.03, seeds)
    values = {}
    for arm, slope in slopes.items():
        alignment = rng.uniform(0.001, 0.01, seeds)
        values[arm] = {"mean_alignment": alignment,
                       "trait_gain": 0.2 + slope * alignment + seed_effect + rng.normal(0, noise, seeds)}
    return trials(values)


SLOPES = [c for c in CONTRASTS if "slope" in c.test and c.x == "mean_alignment"]  # as the report declares them


def test_heterogeneous_slopes_are_reported_per_arm_and_no_common_slope():
    table = run(slopes_frame({"none/shared": 40.0, "projection@1/shared": 0.0, "placebo@1/shared": 0.0}), *SLOPES)
    assert only(table, test="slope heterogeneity")["verdict"] == SUPPORTED
    assert only(table, test="common slope")["verdict"] == REFUSED
    per_arm = table[table["test"] == "slope"].set_index("arm")
    assert per_arm.loc["none/shared", "ci_low"] < 40 < per_arm.loc["none/shared", "ci_high"]
    assert per_arm.loc["projection@1/shared", "ci_low"] < 0 < per_arm.loc["projection@1/shared", "ci_high"]


def test_equal_slopes_of_the_pooled_arms_give_their_common_slope_whatever_projection_does():
    """The pool is declared in advance: arms that do not act on the trait direction. Projection's own slope (here
    opposite) neither enters the heterogeneity test nor blocks the common slope."""
    table = run(slopes_frame({"none/shared": 30.0, "projection@1/shared": -20.0, "placebo@1/shared": 30.0}), *SLOPES)
    het = only(table, test="slope heterogeneity")
    assert het["verdict"] == NOT_SHOWN and het["arm"] == "pooled arms"
    assert het["p_adjusted"] == het["p"] and "not adjusted" in het["note"]  # the gate of the common slope
    common = only(table, test="common slope")
    assert common["verdict"] == SUPPORTED and common["ci_low"] < 30 < common["ci_high"]
    assert common["n"] == 16 and "clustered by seed" in common["note"]
    assert "none/shared, placebo@1/shared" in common["note"] and "projection" not in common["note"]


def test_first_order_share_recovers_the_planted_share():
    rng = np.random.default_rng(2)
    measured = -0.3 + rng.normal(0, 0.05, 20)
    frame = trials({"none/shared": {"measured_trait_loss_change": measured,
                                    "predicted_trait_loss_change": 0.7 * measured + rng.normal(0, 0.01, 20)}})
    row = only(run(frame, Contrast("first-order", "predicted_trait_loss_change", "first-order share", ">",
                                   null=0.5)), test="first-order share")
    assert row["ci_low"] < 0.7 < row["ci_high"] and row["verdict"] == SUPPORTED
    assert row["n"] == 20


def test_first_order_share_is_refused_when_nothing_changed():
    with pytest.raises(Exception, match="not shown to differ from 0"):
        ratio(np.array([0.01, -0.01, 0.02, 0.0]), np.array([0.01, -0.02, 0.01, -0.001]), "x", 0.5)


def test_the_seed_is_the_unit_of_inference():
    """Several trials of one seed in an arm (e.g. settings swept on an axis) count as one seed, averaged."""
    rng = np.random.default_rng(3)
    frame = trials({"none/shared": {"mean_alignment": rng.normal(0.005, 0.002, 6)}})
    doubled = pd.concat([frame, frame.assign(trial_id=frame.trial_id + "-b",
                                             mean_alignment=frame.mean_alignment + 0.001)])
    row = only(run(doubled, Contrast("claim1", "mean_alignment", "t-test", ">")), metric="mean_alignment")
    assert row["n"] == 6
    assert row["estimate"] == pytest.approx(frame.mean_alignment.mean() + 0.0005)


def test_seeds_needed_says_when_the_effect_opposes_the_claim():
    rng = np.random.default_rng(4)
    base = 0.3 + rng.normal(0, 0.05, 5)
    frame = trials({"none/shared": {"trait_gain": base},
                    "projection@1/shared": {"trait_gain": base + 0.01 + rng.normal(0, 0.02, 5)}})
    row = only(run(frame, Contrast("claim2", "trait_gain", "paired t-test", "<", arms="projection",
                                   reference="none/shared", role="primary")), metric="trait_gain")
    assert np.isnan(row["seeds_needed"]) and "opposes the claim" in row["note"]
    flipped = frame.assign(trait_gain=np.where(frame.arm == "none/shared", frame.trait_gain,
                                               2 * np.tile(base, 2) - frame.trait_gain))
    row = only(run(flipped, Contrast("claim2", "trait_gain", "paired t-test", "<", arms="projection",
                                     reference="none/shared", role="primary")), metric="trait_gain")
    assert row["seeds_needed"] >= 3


def test_zero_by_construction_is_named_not_refused():
    frame = trials({"none/shared": {"mean_alignment_out": np.zeros(5)}})
    row = only(run(frame, Contrast("layers", "mean_alignment_out", "t-test", ">", arms="all")), arm="none/shared")
    assert row["verdict"] == ZERO and "exactly 0" in row["note"]


def test_primary_rows_are_holm_adjusted_and_make_the_claim_verdict():
    rng = np.random.default_rng(5)
    base = 0.3 + rng.normal(0, 0.05, 10)
    frame = trials({"none/shared": {"trait_gain": base, "mean_alignment": rng.normal(0.005, 0.002, 10)},
                    "none/independent": {"trait_gain": rng.normal(0, 0.005, 10)}})
    table = run(frame, Contrast("claim1", "mean_alignment", "t-test", ">", role="primary"),
                Contrast("control", "trait_gain", "paired t-test", ">", reference="none/independent", role="primary"),
                Contrast("control", "trait_gain", "TOST equivalence", "=", arms="none/independent", role="primary"))
    p = np.sort(table["p"].to_numpy())
    holm = np.maximum.accumulate(np.minimum(1, p * np.arange(len(p), 0, -1)))
    assert np.sort(table["p_adjusted"].to_numpy()) == pytest.approx(holm)
    assert claim_verdict(table, "control") == SUPPORTED
    assert claim_verdict(table, "claim3") == "undetermined"


def test_dose_scale_follows_the_shape_of_the_dose_response():
    rng = np.random.default_rng(6)
    strengths = np.array([0.0, 0.1, 0.3, 1.0, 3.0, 10.0])
    for shape, gain in (("log", lambda s: 0.3 - 0.05 * np.log1p(s / 0.1)), ("linear", lambda s: 0.3 - 0.02 * s)):
        rows = [{"seed": seed, "strength": s, "trait_gain": gain(s) + rng.normal(0, 0.005)}
                for seed in range(8) for s in strengths]
        assert dose_model(pd.DataFrame(rows)).scale == shape


def test_no_common_slope_without_a_heterogeneity_test():
    """Too few seeds to test whether the arms' slopes differ: the common slope is not assumed either."""
    table = run(slopes_frame({"none/shared": 30.0, "projection@1/shared": 30.0, "placebo@1/shared": 30.0}, seeds=3),
                *SLOPES)
    assert only(table, test="slope heterogeneity")["verdict"] == REFUSED
    common = only(table, test="common slope")
    assert common["verdict"] == REFUSED and "could not be tested" in common["note"]


REFEREE = (Contrast("referee", "trait_gain", "paired t-test", "<", arms="projection",
                    reference="same-strength placebo", role="primary"), PLACEBO_EQUIVALENCE)


@pytest.mark.parametrize("placebo_shift, projection_shift, verdict", [
    (0.0, -0.25, SUPPORTED),       # projection suppresses, placebo equivalent to none
    (-0.15, -0.35, MIXED),         # projection below placebo, but the placebo itself beyond the margin
    (0.0, +0.2, MIXED),            # the placebo holds, but projection raises acquisition: opposes the claim
    (-0.15, +0.1, CONTRADICTED),   # both rows against the claim
])
def test_a_contradicted_primary_row_is_never_rolled_up_into_support(placebo_shift, projection_shift, verdict):
    rng = np.random.default_rng(8)
    base = 0.3 + rng.normal(0, 0.05, 12)
    frame = trials({"none/shared": {"trait_gain": base},
                    "placebo@1/shared": {"trait_gain": base + placebo_shift + rng.normal(0, 0.005, 12)},
                    "projection@1/shared": {"trait_gain": base + projection_shift + rng.normal(0, 0.005, 12)}})
    assert claim_verdict(run(frame, *REFEREE), "referee") == verdict


def test_secondary_rows_are_adjusted_within_their_claim_and_mediation_is_descriptive():
    rng = np.random.default_rng(9)
    metrics = {f"m{i}": rng.normal(0.02 if i < 2 else 0.0, 0.05, 10) for i in range(6)}
    frame = trials({"none/shared": {**metrics, "other": metrics["m0"]}})
    table = run(frame, *(Contrast("layers", m, "t-test", ">") for m in metrics),
                Contrast("claim1", "other", "t-test", ">"))
    layers = table[table["claim"] == "layers"]
    p = layers["p"].to_numpy()
    order = np.argsort(p)
    bh = np.minimum.accumulate((p[order] * len(p) / np.arange(1, len(p) + 1))[::-1])[::-1]
    assert layers["p_adjusted"].to_numpy()[order] == pytest.approx(np.minimum(bh, 1))
    assert only(table, claim="claim1")["p_adjusted"] == only(table, claim="claim1")["p"]  # its own family of one
    for row in layers.to_dict("records"):
        assert row["verdict"] == (SUPPORTED if row["p_adjusted"] <= 0.05 and row["estimate"] > 0 else
                                  CONTRADICTED if row["p_adjusted"] <= 0.05 else NOT_SHOWN)
    mediated = [c for c in CONTRASTS if c.test.startswith("mediation")]
    assert mediated and all(c.role == "descriptive" and c.x == contrasts.MEDIATOR for c in mediated)
