"""A group-sequential design for sweeps that grow in waves of seeds: an O'Brien-Fleming-type boundary
(Lan-DeMets alpha spending), planned before the first wave, so that looking at the results after every
wave and stopping once a claim's test crosses its boundary keeps each claim's error rate at alpha.

Each look's test statistic is turned into a z value with the same two-sided p-value; under the null the
z values of successive looks behave like a Brownian motion observed at the information fractions
t_j = n_j / N (n_j seeds so far, N planned), with correlation sqrt(t_i / t_j). Boundary j is the
|z| that spends alpha(t_j) - alpha(t_{j-1}) of the error rate, where alpha(t) = 2 - 2 Phi(z_{1-a/2} / sqrt(t)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

from .answers import Refused
from .load import Results
from .stats import PrimaryTest, primary_tests_of


@dataclass(frozen=True)
class SequentialDesign:
    """Planned looks (cumulative seeds after each wave) and the |z| boundary of each."""

    alpha: float
    seeds: tuple[int, ...]
    boundaries: tuple[float, ...]

    @property
    def nominal_p(self) -> tuple[float, ...]:
        """Each boundary as the two-sided p-value a test must reach at that look."""
        return tuple(float(2 * scipy_stats.norm.sf(c)) for c in self.boundaries)

    def describe(self) -> str:
        looks = ", ".join(f"{n} seeds: |z| >= {c:.3f} (p <= {p:.2g})"
                          for n, c, p in zip(self.seeds, self.boundaries, self.nominal_p))
        return (f"group-sequential design, O'Brien-Fleming-type alpha spending (Lan-DeMets) at two-sided alpha "
                f"{self.alpha:g} over {len(self.seeds)} planned looks: {looks}")

    def to_json(self) -> dict:
        return {"method": "O'Brien-Fleming-type alpha spending (Lan-DeMets)", "alpha": self.alpha,
                "seeds": list(self.seeds), "boundaries_z": list(self.boundaries), "nominal_p": list(self.nominal_p)}


def spent(alpha: float, t: float) -> float:
    """The O'Brien-Fleming-type spending function: alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))."""
    return float(2 * scipy_stats.norm.sf(scipy_stats.norm.isf(alpha / 2) / math.sqrt(t)))


def _continuing(boundaries: list[float], fractions: list[float]) -> float:
    """P(|Z_i| < c_i at every look i) under the null, Z a Brownian motion in information time."""
    t = np.array(fractions)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    c = np.array(boundaries)
    if len(c) == 1:
        return float(1 - 2 * scipy_stats.norm.sf(c[0]))
    mvn = scipy_stats.multivariate_normal(mean=np.zeros(len(c)), cov=cov, seed=0)
    return float(mvn.cdf(c, lower_limit=-c))


def obrien_fleming(seeds: list[int], alpha: float = 0.05) -> SequentialDesign:
    """The design for looks after `seeds[j]` seeds (increasing; the last is the planned maximum)."""
    if not seeds or any(b <= a for a, b in zip(seeds, seeds[1:])) or seeds[0] < 1:
        raise ValueError(f"looks must be increasing positive seed counts, got {seeds}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    fractions = [n / seeds[-1] for n in seeds]
    boundaries: list[float] = []
    for j, t in enumerate(fractions):
        target = 1 - spent(alpha, t)  # the chance of never having stopped by look j
        if j == 0:
            boundaries.append(float(scipy_stats.norm.isf((1 - target) / 2)))
            continue
        gap = lambda c: _continuing(boundaries + [c], fractions[: j + 1]) - target  # noqa: E731
        boundaries.append(float(optimize.brentq(gap, 0.5, 12.0, xtol=1e-6)))
    return SequentialDesign(alpha, tuple(seeds), tuple(boundaries))


def z_of(estimate: float, p: float) -> float:
    """The signed z value with the same two-sided p-value as a test of `estimate` against its null."""
    return float(math.copysign(scipy_stats.norm.isf(max(p, 1e-300) / 2), estimate))


@dataclass(frozen=True)
class TestLook:
    """One claim's primary test at one look: the estimate, its interval and p, its z against the boundary."""

    claim: str
    test: str
    arm: str
    status: str  # supported | contradicted (both resolved: the boundary is crossed) | open | undetermined
    n: int | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    z: float | None = None
    boundary: float | None = None
    reason: str | None = None

    @property
    def resolved(self) -> bool:
        return self.status in ("supported", "contradicted")

    def line(self) -> str:
        head = f"{self.claim} {self.test} ({self.arm})"
        if self.status == "undetermined":
            return f"{head}: undetermined ({self.reason})"
        return (f"{head}: {self.estimate:+.3g} [95% CI {self.ci_low:+.3g}, {self.ci_high:+.3g}], n = {self.n}, "
                f"p = {self.p:.2g}, |z| = {abs(self.z):.2f} against {self.boundary:.2f}: {self.status}")

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def judge_look(test: PrimaryTest, boundary: float) -> TestLook:
    """A two-sided primary test against a look's boundary: resolved in the claimed direction or against it."""
    result = test.result
    if isinstance(result, Refused):
        return TestLook(test.claim, test.test, test.arm, "undetermined", reason=result.reason)
    z = z_of(result.point, result.p)
    status = "open" if abs(z) < boundary else "supported" if z * test.direction > 0 else "contradicted"
    return TestLook(test.claim, test.test, test.arm, status, n=result.n, estimate=result.point,
                    ci_low=result.ci_low, ci_high=result.ci_high, p=result.p, z=z, boundary=boundary)


def look(results: Results, seeds: list[int], design: SequentialDesign, index: int) -> list[TestLook]:
    """Every claim's two-sided primary test on the trials of `seeds` only, judged at look `index` of `design`.

    (The one-sided non-inferiority test of distillation cost is left to the report: the design is two-sided.)"""
    return [judge_look(test, design.boundaries[index]) for test in primary_tests_of(results, seeds)
            if test.alternative == "two-sided"]
