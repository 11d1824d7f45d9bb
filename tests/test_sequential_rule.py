"""The numbers of the sequential rule, on synthetic per-seed numbers (no Ray, no folders): the calibrated boundaries
spend alpha as planned on the reference distribution, `decide` (Holm, signs, futility, rows not computable), the
benchmark's simulation applying exactly the rule's decision, and its error rate and stopping at a small size."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pandas as pd
import pytest

from sublim.analysis import sequential
from sublim.analysis.contrasts import per_seed_values
from sublim.cli.waves import plan
from sublim.sweeps.spec import SweepSpec

from synthetic import EPOCHS, REPO

FIVE_ARMS = [{"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"},
             {"mitigation": "projection", "strengths": 1.0}, {"mitigation": "placebo", "strengths": 1.0},
             {"mitigation": "liminal", "strengths": 1.0}]
OPEN, SUPPORTED, CONTRADICTED, FUTILE, UNDETERMINED = range(5)


@pytest.fixture(scope="module")
def benchmark():
    loaded = importlib.util.spec_from_file_location("sequential_error", REPO / "benchmarks" / "sequential_error.py")
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def first_crossings(bounds: np.ndarray, seeds: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    """Per look, the share of paths `x` (paths x seeds) whose |t| first crosses that look's boundary."""
    alive, shares = np.ones(len(x), dtype=bool), []
    for n, b in zip(seeds, bounds):
        crossed = alive & (np.abs(sequential.studentized(x[:, :n])) >= b)
        shares.append(crossed.mean())
        alive &= ~crossed
    return np.array(shares)


def test_the_boundaries_spend_alpha_in_proportion_to_seeds_on_the_reference_and_less_on_normal_numbers():
    seeds, alpha, tests = (3, 6, 9, 12), 0.05, 2
    bounds, futility = sequential.calibrated(seeds, alpha, tests)
    assert bounds.shape == (2, 4) and np.isinf(bounds[:, 0]).all()  # nothing judged on 3 seeds
    assert (bounds[1, 1:] < bounds[0, 1:]).all()  # the whole alpha (one test rejected) is an easier level
    assert futility[0] == futility[-1] == 0 and 0 < futility[1] < futility[2] < bounds[0, 2]
    rng = np.random.default_rng(1)  # not the calibration's paths
    paths = 400_000
    for r, level in enumerate((alpha / 2, alpha)):
        spent = np.cumsum(first_crossings(bounds[r], seeds, sequential.reference_draws(rng, (paths, 12))))
        planned = np.array([0.0] + [level * n / 12 for n in seeds[1:]])
        assert spent == pytest.approx(planned, abs=4 * math.sqrt(level / paths))
        normal = np.cumsum(first_crossings(bounds[r], seeds, rng.standard_normal((paths, 12))))
        assert normal[-1] < 0.75 * level  # skewness 1 allowed for: conservative for normal numbers


def test_a_design_judges_its_only_or_last_look_even_below_the_first_look():
    bounds, futility = sequential.calibrated((3, 4), 0.05, 1)
    assert np.isinf(bounds[0, 0]) and np.isfinite(bounds[0, 1]) and not futility.any()
    assert sequential.nominal_p(bounds[0, 1], 4) <= 0.05


def test_decide_passes_a_rejected_rows_share_on_and_keeps_signs():
    bounds = np.array([[5.0], [3.0], [2.0]])  # one look; level r: r rows already rejected
    futility = np.array([1.5])
    signs = np.array([1, 1, -1])
    status, level = sequential.decide(np.array([6.0, 4.0, 2.5]), np.zeros(3), 0, bounds, futility, signs)
    assert status.tolist() == [SUPPORTED, SUPPORTED, CONTRADICTED] and level.tolist() == [0, 1, 2]
    status, level = sequential.decide(np.array([4.0, -6.0, 1.0]), np.zeros(3), 0, bounds, futility, signs)
    assert status.tolist() == [SUPPORTED, CONTRADICTED, FUTILE] and level.tolist() == [1, 0, 2]
    status, _ = sequential.decide(np.array([4.0, -6.0, 1.0]), np.zeros(3), 0, bounds, futility, signs,
                                  drop_futile=False)
    assert status.tolist() == [SUPPORTED, CONTRADICTED, OPEN]  # non-binding: the efficacy part alone
    # a row decided earlier is left alone (and counts as rejected); one that cannot be computed is undetermined
    status, level = sequential.decide(np.array([np.nan, 2.0, np.nan]), np.array([SUPPORTED, OPEN, OPEN]), 0,
                                      bounds, futility, signs)
    assert status.tolist() == [SUPPORTED, OPEN, UNDETERMINED] and level[1] == 1
    # many families at once decide as each alone
    rng = np.random.default_rng(0)
    t, before = rng.normal(0, 4, (50, 3)), rng.choice([OPEN, SUPPORTED, FUTILE], (50, 3), p=[0.8, 0.1, 0.1])
    together, _ = sequential.decide(t, before, 0, bounds, futility, signs)
    assert together.tolist() == [sequential.decide(t[i], before[i], 0, bounds, futility, signs)[0].tolist()
                                 for i in range(50)]


def trials_of(spec: SweepSpec, design: sequential.Design, values: np.ndarray) -> pd.DataFrame:
    """Completed trials (one per seed and arm) whose family rows' per-seed numbers are `values` (rows x seeds): a
    one-sample row sets its arm's metric, a paired row whichever of its two arms is unset (relative to the other;
    an arm set by neither gets a normal base)."""
    seeds, rng, set_ = values.shape[1], np.random.default_rng(0), {}
    for p, d in zip(design.rows, values):
        if p.contrast.reference == "0":
            set_[p.metric, p.arm] = p.contrast.null + d
        elif (p.metric, p.arm) in set_:
            set_[p.metric, p.reference] = set_[p.metric, p.arm] - d
        else:
            set_[p.metric, p.arm] = set_.setdefault((p.metric, p.reference), rng.standard_normal(seeds)) + d
    configs = {t.config.arm: t.config for t in spec.trials}
    return pd.DataFrame([{"seed": seed, "arm": arm, "mitigation": c.mitigation, "strength": c.strength,
                          "student_init": c.student_init, "epochs_done": c.epochs,
                          **{metric: v[seed] for (metric, a), v in set_.items() if a == arm}}
                         for seed in range(seeds) for arm, c in configs.items()])


def test_the_benchmark_applies_exactly_the_rules_decision(benchmark):
    spec = SweepSpec.from_dict({"name": "rule", "seeds": [0, 1, 2], "arms": FIVE_ARMS,
                                "settings": {"epochs": EPOCHS}})
    design = plan(spec, 12, 3)[1]
    effects = np.array([3.0, -2.5, 0.0, 0.1, 2.0, -1.0, 1.5])  # design.rows' order: claim1, claim2, claim3, ...
    rng = np.random.default_rng(5)
    statuses, ran, sims = [], [], 4
    seen = np.empty((sims, len(design.rows), 12))
    for s in range(sims):
        trials = trials_of(spec, design, rng.standard_normal((len(design.rows), 12)) + effects[:, None])
        # the numbers as the rule sees them, recomputed from the trials (paired rows: arm minus reference)
        seen[s] = [per_seed_values(trials, p).to_numpy() for p in design.rows]
        record = sequential.new_record(design)
        for j, n in enumerate(design.seeds):
            sequential.advance(record, design, trials[trials["seed"] < n], j)
            if record["stopped"]:
                break
        last = {sequential._key(t): t["status"] for w in record["waves"] for t in w["tests"]}
        statuses.append([sequential.STATUSES.index(last[p.key]) for p in design.rows])
        ran.append(record["waves"][-1]["seeds"])
    status, seeds = benchmark.run(design, seen)
    assert status.tolist() == statuses and seeds.tolist() == ran
    assert {FUTILE, SUPPORTED} <= set(status.ravel())  # the comparison covers both kinds of decision


@pytest.fixture(scope="module")
def paper(benchmark):
    spec = SweepSpec.load(REPO / "sweeps" / "paper.yaml")
    return {wave: benchmark.design_of(spec, wave, 20) for wave in (3, 5)}


def test_the_simulated_family_wise_error_on_the_paper_family_is_under_alpha(benchmark, paper):
    """200 null sweeps per cell (the benchmark's full size is 4,000); bound: alpha plus 3 standard errors."""
    design = paper[5]
    assert len(design.rows) == 18 and design.seeds == (5, 10, 15, 20)
    for distribution in ("normal", "skewness 1"):
        assert benchmark.error_rate(design, distribution, 200, rng_seed=3) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)


def test_near_null_rows_are_futile_and_strong_ones_resolve_before_the_maximum(benchmark, paper):
    for wave, design in paper.items():
        effects = np.array([benchmark.built_in_effect(p) for p in design.rows])
        status, seeds = benchmark.simulate(design, effects, benchmark.DRAWS["normal"], 200, np.random.default_rng(2))
        near_null, strong = np.abs(effects) < 0.5, np.abs(effects) >= 2
        assert (status[:, near_null] == FUTILE).mean() > 0.9
        assert (status[:, strong] == SUPPORTED).mean() > 0.99
        assert seeds.mean() <= 0.8 * 20 and np.median(seeds) <= 15  # most sweeps stop before the maximum
