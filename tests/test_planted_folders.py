"""Planted truths through whole results folders and `build_report`: equivalent arms read as equivalent,
heterogeneous slopes give per-arm slopes and no common slope, and the first-order share set is the one found."""

from __future__ import annotations

import json

from sublim.analysis import build_report
from synthetic import write_sweep

NONE, PLACEBO, PROJECTION = ("none", 0.0, "shared"), ("placebo", 1.0, "shared"), ("projection", 1.0, "shared")


def rows(files, **where) -> list[dict]:
    stats = json.loads(files.stats.read_text())
    return [row for row in stats["tests"] if all(row[k] == v for k, v in where.items())]


def test_equivalent_arms_are_reported_equivalent(tmp_path):
    """Placebo leaves alignment and gain as they are (planted): with enough seeds, TOST says equivalent."""
    files = build_report(write_sweep(tmp_path / "eq", seeds=24, arms=[NONE, PLACEBO]), mediation_sims=20)
    (row,) = rows(files, test="TOST equivalence", arm="placebo@1/shared")
    assert row["verdict"] == "supported" and -0.03 < row["ci_low"] < row["ci_high"] < 0.03
    assert row["flip_margin"] < 0.03


def test_heterogeneous_slopes_are_reported_per_arm(tmp_path):
    slopes = {"none/shared": 50.0, "placebo@1/shared": 0.0}
    files = build_report(write_sweep(tmp_path / "het", seeds=16, arms=[NONE, PLACEBO], gain_per_alignment=slopes),
                         mediation_sims=20)
    (het,) = rows(files, test="slope heterogeneity", metric="trait_gain ~ mean_alignment")
    assert het["verdict"] == "supported"
    (common,) = rows(files, test="common slope", metric="trait_gain ~ mean_alignment")
    assert common["verdict"] == "refused" and "slopes differ" in common["note"]
    for arm, slope in slopes.items():
        (row,) = rows(files, test="slope", arm=arm, metric="trait_gain ~ mean_alignment")
        assert row["ci_low"] < slope < row["ci_high"]


def test_the_planted_first_order_share_is_found(tmp_path):
    files = build_report(write_sweep(tmp_path / "fo", seeds=8, arms=[NONE, PROJECTION], first_order_share=0.7),
                         mediation_sims=20)
    for arm in ("none/shared", "projection@1/shared"):
        (row,) = rows(files, test="first-order share", arm=arm)
        assert row["ci_low"] < 0.7 < row["ci_high"] and row["verdict"] == "supported"  # > 0.5: first order dominates
