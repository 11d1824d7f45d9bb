"""Size of the slope-heterogeneity test under a true common slope, simulated through the project's own functions.

Each simulated sweep has the report's shape: 10 or 20 seeds, and the arms of a sweep of 8 or of 12 arms (the
paper's: none/shared, none/independent, projection at 4 strengths, placebo@1, liminal at 5 strengths), of
which the shared-init ones enter the test (`contrasts` tests slope heterogeneity over arms='shared': 7 or 11
arms, so 6 or 10 arm × alignment terms). Per trial, alignment x has an arm-specific mean (0.008 in none/shared
and placebo, 0.008·(1 − s) under projection at strength s, 0.008 / (1 + s) under liminal) plus a seed effect
shared by the seed's arms and the trial's own noise (each sd 0.002: x ~ 0.008 ± 0.003). Trait gain is
y = a_arm + 30·x + a seed effect shared by the seed's arms (the teacher, sd 0.03) + noise whose sd differs
between arms (0.01 to 0.04): one slope for every arm, so each rejection is an error. Every sweep is tested
with `inference.heterogeneity`; beside it, the rate of the cluster-robust (CR1) Wald F the project used
before. Each design's second line: the size of the common-slope row (`inference.slope` over the shared-init
arms with an intercept per arm, seeds clustered: CR2, t on Bell–McCaffrey df), with CR1 and t on seeds − 1
beside it, and of the per-arm slope row (`inference.slope` on none/shared alone, n = seeds: HC3, t on n − 2),
with the old normal reference beside it; both tested against the true slope. Ends with one line: the worse
design's size of the heterogeneity test.

    python benchmarks/heterogeneity_size.py [--sims 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one thread per worker is fastest
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import statsmodels.api as sm  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402

from sublim.analysis import inference as inf  # noqa: E402
from sublim.analysis.errors import Refusal  # noqa: E402

ALPHA = 0.05
SLOPE = 30.0
# (label, mitigation, strength, student_init)
ARMS_12 = [("none/shared", "none", 0.0, "shared"), ("none/independent", "none", 0.0, "independent"),
           *((f"projection@{s:g}/shared", "projection", s, "shared") for s in (0.25, 0.5, 1.0, 2.0)),
           ("placebo@1/shared", "placebo", 1.0, "shared"),
           *((f"liminal@{s:g}/shared", "liminal", s, "shared") for s in (0.1, 0.3, 1.0, 3.0, 10.0))]
ARMS_8 = [arm for arm in ARMS_12 if arm[0] not in (
    "projection@0.25/shared", "projection@2/shared", "liminal@0.1/shared", "liminal@10/shared")]
DESIGNS = [(seeds, arms) for seeds in (10, 20) for arms in (ARMS_8, ARMS_12)]
KEYS = ("new", "old", "common", "common_cr1", "slope", "slope_normal")


def mean_alignment(mitigation: str, strength: float) -> float:
    if mitigation == "projection":
        return 0.008 * (1 - strength)
    if mitigation == "liminal":
        return 0.008 / (1 + strength)
    return 0.0 if mitigation == "none" and strength < 0 else 0.008


def sweep(seeds: int, arms: list[tuple], rng: np.random.Generator) -> pd.DataFrame:
    """One simulated sweep's trials (arm, seed, mean_alignment, trait_gain) under a common slope."""
    seed_x, seed_y = rng.normal(0, 0.002, seeds), rng.normal(0, 0.03, seeds)
    rows = []
    for i, (label, mitigation, strength, init) in enumerate(arms):
        independent = init == "independent"
        mean = 0.0 if independent else mean_alignment(mitigation, strength)
        noise = 0.01 + 0.03 * i / (len(arms) - 1)  # each arm its own spread: 0.01 to 0.04
        x = mean + seed_x + rng.normal(0, 0.002, seeds)
        y = (0.0 if independent else 0.1 + 0.01 * i) + SLOPE * x + seed_y + rng.normal(0, noise, seeds)
        rows += [{"arm": label, "seed": s, "student_init": init, "mean_alignment": x[s], "trait_gain": y[s]}
                 for s in range(seeds)]
    return pd.DataFrame(rows)


def old_cr1(sample: pd.DataFrame) -> float | None:
    """The test the project ran before: Wald F of the arm × x terms with CR1 SEs clustered by seed, F on
    (terms, seeds − 1) df; None where it refused (seeds − 1 fewer than the terms)."""
    exog = smf.ols("trait_gain ~ mean_alignment * C(arm)", sample).data.orig_exog
    names = [c for c in exog if c.startswith("mean_alignment:")]
    if sample["seed"].nunique() - 1 < len(names):
        return None
    fit = sm.OLS(sample["trait_gain"].to_numpy(), exog).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(sample["seed"])[0]}, use_t=True)
    restriction = np.zeros((len(names), exog.shape[1]))
    for i, name in enumerate(names):
        restriction[i, list(exog).index(name)] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fit.wald_test(restriction, use_f=True, scalar=True).pvalue)


def chunk(design: int, part: int, sims: int) -> dict[str, list]:
    """`sims` sweeps of one design: each test's p-value (None where refused)."""
    seeds, arms = DESIGNS[design]
    rng = np.random.default_rng([design, part])
    out: dict[str, list] = {key: [] for key in KEYS}
    for _ in range(sims):
        trials = sweep(seeds, arms, rng)
        shared = trials[trials["student_init"] == "shared"]
        try:
            out["new"].append(inf.heterogeneity(shared, "mean_alignment")[0]["p"])
        except Refusal:
            out["new"].append(None)
        out["old"].append(old_cr1(shared))
        null = shared.assign(trait_gain=shared["trait_gain"] - SLOPE * shared["mean_alignment"])  # true slope 0
        row, fit = inf.slope(null, "mean_alignment")
        out["common"].append(row["p"])
        cr1 = sm.OLS(fit.model.endog, fit.model.exog).fit(
            cov_type="cluster", cov_kwds={"groups": pd.factorize(null["seed"])[0]}, use_t=True)
        out["common_cr1"].append(float(cr1.pvalues[fit.model.exog_names.index("x")]))
        row, fit = inf.slope(null[null["arm"] == "none/shared"], "mean_alignment")
        out["slope"].append(row["p"])
        out["slope_normal"].append(float(fit.get_robustcov_results("HC3", use_t=False).pvalues[1]))  # y ~ x: x is 2nd
    return out


def rate(ps: list) -> tuple[float, float, float]:
    """(rejection rate at ALPHA with a refusal counted as no rejection, its SE, the share refused)."""
    refused = np.array([p is None for p in ps])
    rejected = np.array([p is not None and p <= ALPHA for p in ps], dtype=float)
    size = float(rejected.mean())
    return size, float(np.sqrt(size * (1 - size) / len(ps))), float(refused.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=1000, help="simulated sweeps per design")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    parts = max(1, args.workers) * 4
    sizes = [args.sims // parts + (i < args.sims % parts) for i in range(parts)]
    started = time.time()
    with ProcessPoolExecutor(args.workers) as pool:
        futures = {d: [pool.submit(chunk, d, i, n) for i, n in enumerate(sizes) if n] for d in range(len(DESIGNS))}
        results = {d: {key: sum((f.result()[key] for f in fs), []) for key in KEYS} for d, fs in futures.items()}
    worst = (-1.0, 0.0)
    print(f"heterogeneity of the shared-init arms' slopes on mean_alignment under a true common slope, "
          f"{args.sims} sweeps per design, alpha {ALPHA}")
    for d, (seeds, arms) in enumerate(DESIGNS):
        shared = sum(init == "shared" for *_, init in arms)
        new, old = rate(results[d]["new"]), rate(results[d]["old"])
        common, common_cr1 = rate(results[d]["common"]), rate(results[d]["common_cr1"])
        slope, normal = rate(results[d]["slope"]), rate(results[d]["slope_normal"])
        said_old = "refused (seeds − 1 < terms)" if old[2] == 1 else f"{old[0]:.3f} (SE {old[1]:.3f})"
        print(f"{seeds} seeds, {len(arms)} arms ({shared} shared, {shared - 1} terms): heterogeneity size "
              f"{new[0]:.3f} (SE {new[1]:.3f}), refused {new[2]:.3f}; old CR1 Wald F {said_old}")
        print(f"    common slope size {common[0]:.3f} (SE {common[1]:.3f}), CR1 with t on seeds − 1 "
              f"{common_cr1[0]:.3f}; per-arm slope (n = {seeds}) size {slope[0]:.3f} (SE {slope[1]:.3f}), "
              f"HC3 with the old normal reference {normal[0]:.3f}")
        worst = max(worst, new[:2])
    print(f"wall time {time.time() - started:.0f} s")
    print(f"size at 0.05: {worst[0]:.3f} (SE {worst[1]:.3f})")


if __name__ == "__main__":
    main()
