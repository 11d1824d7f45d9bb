"""A group-sequential design for sweeps that grow in waves of seeds, planned before the first wave, so that
looking after every wave and stopping once the claims are decided keeps the family-wise error rate at alpha.

The family: the tests table's primary directional rows (`expect` > or <, two-sided tests) that the spec's arms
can answer. Each gets alpha / K (Bonferroni): the rows share seeds and arms, so they depend on each other in
ways that change with the arms; Bonferroni holds under any dependence and loses little in the worst case
(independent rows: 1 - (1 - alpha / K)^K = 0.049 for K = 7). Over a spec's axes the family is every such row
at every level, K rows x L levels at alpha / (K L) each, a level's rows answered on its own trials (the rows
across an axis are secondary, outside the family). Each row is a two-sided group-sequential test with
the conventional O'Brien-Fleming-type Lan-DeMets spending, alpha_k / 2 per side; the boundaries come from
numerical integration of the z values' Brownian motion in information time t_j = n_j / N (n_j seeds at look j).

Seeds are few, so a look's statistic is not the normal z the boundaries assume. A row crosses look j when its
t-test p (the tests table's) is at most the look's nominal two-sided p, 2 Phi(-c_j): |t| against the t quantile
of its df, not |z| against c_j. So far in the tail, skewed per-seed numbers still inflate a t-test (skewness 1
doubles its error at p = 0.004 on 20 seeds; simulated, the rule with the t-test alone errs in 0.10 of null
sweeps), so the row must also cross with Hall's (1992) skewness-corrected statistic (about 0.06; on normal
data about 0.04, the little power the guard costs). A minimum first look changed nothing in that simulation:
O'Brien-Fleming's first boundaries (p below 1e-7 on 3-6 seeds for 7 rows) are out of a t-test's reach.
benchmarks/sequential_error.py measures the whole rule.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate, optimize
from scipy import stats as scipy_stats

from .axes import at_level, level_of
from .contrasts import CONTRADICTED, NOT_SHOWN, REFUSED, SUPPORTED, Planned, per_seed_values, tests_table
from .inference import ALPHA

METHOD = ("Bonferroni over the primary directional tests; each a two-sided group-sequential test with "
          "O'Brien-Fleming-type Lan-DeMets spending, alpha/2 per side; per look, the t-test's p and Hall's "
          "skewness-corrected p both at most the look's nominal p")
RESOLVED = (SUPPORTED, CONTRADICTED)
GRID = 801  # points of the numerical integration per look (boundaries to ~1e-6)


def spent(alpha: float, t: float) -> float:
    """Two-sided alpha spent by information fraction t: alpha/2 per side, O'Brien-Fleming-type,
    2 * (2 - 2 Phi(z_{1 - alpha/4} / sqrt(t)))."""
    return float(4 * scipy_stats.norm.sf(scipy_stats.norm.isf(alpha / 4) / math.sqrt(t)))


def boundaries(fractions: list[float], alpha: float) -> tuple[float, ...]:
    """The |z| boundary of each look: the chance of first crossing at look j is spent(t_j) - spent(t_{j-1}).

    The density of the not-yet-stopped score S_j = Z_j sqrt(t_j) is carried on a grid over (-b_j, b_j), and
    the crossing chance is integrated with normal tails (relative precision at 1e-12: Bonferroni's first
    looks spend that little)."""
    if not fractions or any(b <= a for a, b in zip(fractions, fractions[1:])) or not 0 < fractions[0] \
            or fractions[-1] > 1:
        raise ValueError(f"information fractions must increase within (0, 1], got {fractions}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    found: list[float] = []
    grid = density = np.empty(0)
    for j, t in enumerate(fractions):
        target = spent(alpha, t) - (spent(alpha, fractions[j - 1]) if j else 0.0)
        if j == 0:
            c = float(scipy_stats.norm.isf(target / 2))
        else:
            sd = math.sqrt(t - fractions[j - 1])

            def crossing(c: float) -> float:
                b = c * math.sqrt(t)
                tails = scipy_stats.norm.sf((b - grid) / sd) + scipy_stats.norm.sf((b + grid) / sd)
                return float(integrate.simpson(density * tails, x=grid))

            c = float(optimize.brentq(lambda c: math.log(max(crossing(c), 1e-300)) - math.log(target),
                                      0.5, 30.0, xtol=1e-10))
        bound = c * math.sqrt(t)
        new = np.linspace(-bound, bound, GRID)
        if j == 0:
            density = scipy_stats.norm.pdf(new, scale=math.sqrt(t))
        else:
            kernel = scipy_stats.norm.pdf((new[:, None] - grid[None, :]) / sd) / sd
            density = integrate.simpson(density[None, :] * kernel, x=grid, axis=1)
        grid = new
        found.append(c)
    return tuple(found)


def family(planned: list[Planned], arms: set[str] | None = None) -> list[Planned]:
    """The rows the design controls: primary, directional (two-sided tests of > or <), and, given the sweep's
    `arms`, only those whose reference arm is among them (the others can never be computed: no alpha for them)."""
    return [p for p in planned if p.contrast.role == "primary" and p.contrast.expect in (">", "<")
            and (arms is None or p.contrast.reference == "0" or p.reference in arms)]


@dataclass(frozen=True)
class Design:
    """The family's rows, the planned looks (cumulative seeds) and each look's |z| boundary."""

    alpha: float
    rows: tuple[Planned, ...]
    seeds: tuple[int, ...]
    boundaries: tuple[float, ...]

    @property
    def per_test_alpha(self) -> float:
        return self.alpha / len(self.rows)

    @property
    def nominal_p(self) -> tuple[float, ...]:
        """Each boundary as the two-sided p a test must reach at that look."""
        return tuple(float(2 * scipy_stats.norm.sf(c)) for c in self.boundaries)

    def describe(self) -> str:
        looks = ", ".join(f"{n} seeds: p <= {p:.2g} (|z| {c:.2f})"
                          for n, c, p in zip(self.seeds, self.boundaries, self.nominal_p))
        per_level = Counter(p.level_label for p in self.rows if p.level)
        where = ("(" + ", ".join(f"{n} at {label}" for label, n in per_level.items())
                 + "; each level on its own trials) ") if per_level else ""
        share = f"{self.alpha:g} / {len(self.rows)} over every level's tests = " if per_level else ""
        return (f"group-sequential design over {len(self.rows)} primary tests {where}at family-wise alpha "
                f"{self.alpha:g} (Bonferroni: {share}{self.per_test_alpha:.3g} each, O'Brien-Fleming-type spending, "
                "alpha/2 per side); a test is resolved when its t-test and its skewness-corrected test reach the "
                f"look's p: {looks}")

    def to_json(self) -> dict[str, Any]:
        return {"method": METHOD, "alpha": self.alpha, "family_size": len(self.rows),
                "per_test_alpha": self.per_test_alpha, "family": [list(p.key) for p in self.rows],
                "seeds": list(self.seeds), "boundaries_z": list(self.boundaries), "nominal_p": list(self.nominal_p)}


def design(planned: list[Planned], seeds: list[int], arms: set[str], alpha: float = ALPHA) -> Design:
    """The design for the rows planned on `arms` (at each level of the axes, where the rows carry levels),
    looking after `seeds[j]` seeds (increasing; the last the planned maximum)."""
    rows = family(planned, arms)
    if not rows:
        raise ValueError("no primary directional test can be computed from these arms: nothing for waves to decide")
    if not seeds or seeds[0] < 1:
        raise ValueError(f"looks must be increasing positive seed counts, got {seeds}")
    return Design(alpha, tuple(rows), tuple(seeds), boundaries([n / seeds[-1] for n in seeds], alpha / len(rows)))


def skew_corrected_p(values: Any, null: float = 0.0) -> float:
    """Two-sided p of Hall's (1992) transformation of the studentized mean, which removes the first-order
    effect of skewness: T = sqrt(n) (S + g S^2 / 3 + g^2 S^3 / 27 + g / (6 n)), S = (mean - null) / sd,
    g the adjusted sample skewness; T against t with n - 1 df. T is monotone in S."""
    x = np.asarray(values, dtype=float) - null
    n = len(x)
    s = x.std(ddof=1)
    g = float(scipy_stats.skew(x, bias=False))
    z = x.mean() / s
    t = math.sqrt(n) * (z + g * z ** 2 / 3 + g ** 2 * z ** 3 / 27 + g / (6 * n))
    return float(2 * scipy_stats.t.sf(abs(t), n - 1))


def _judged(row: dict[str, Any], planned: Planned, trials: pd.DataFrame, nominal: float) -> dict[str, Any]:
    """One row of the tests table at a look: resolved (its verdict) when both tests cross, else open."""
    test = {k: row[k] for k in ("claim", "arm", "reference", "metric", "test", "expect")}
    if planned.level:
        test["level"] = planned.level_label
    if row["verdict"] == REFUSED:
        return {**test, "status": "undetermined", "reason": row["note"]}
    numbers = {"n": int(row["n"]), **{k: float(row[k]) for k in ("estimate", "ci_low", "ci_high", "df", "p")}}
    status = "open"
    if row["verdict"] in RESOLVED:
        numbers["skew_p"] = skew_corrected_p(per_seed_values(trials, planned), planned.contrast.null)
        status = row["verdict"] if numbers["skew_p"] <= nominal else "open"
    return {**test, **numbers, "nominal_p": nominal, "status": status}


def look(trials: pd.DataFrame, rows: list[Planned], design: Design, index: int) -> list[dict[str, Any]]:
    """`rows` (of the family) on these completed trials (with `trial_metrics`), each on its level's trials only,
    judged at look `index`; in the order of `rows` (the design's: level by level)."""
    nominal = design.nominal_p[index]
    tests = []
    for level in dict.fromkeys(p.level for p in rows):
        here, mine = at_level(trials, dict(level)), [p for p in rows if p.level == level]
        table = tests_table(here, rows=mine, alphas={p.key: nominal for p in mine})
        tests += [_judged(row, p, here, nominal) for row, p in zip(table.to_dict("records"), mine)]
    return tests


def new_record(design: Design) -> dict[str, Any]:
    """What sweep.json keeps: the design, each look's tests, why it stopped."""
    return {"design": design.to_json(), "waves": [], "stopped": None}


def advance(record: dict[str, Any], design: Design, trials: pd.DataFrame, index: int) -> list[dict[str, Any]]:
    """Look `index` on `trials` (the look's seeds only): tests the rows not resolved at an earlier look (a
    crossing is final), adds the wave to `record` and says in `record["stopped"]` whether the rule stops: no
    row left open (each resolved, or not computable from the arms), or the last planned look."""
    earlier = {_key(t) for wave in record["waves"] for t in wave["tests"] if t["status"] in RESOLVED}
    tests = look(trials, [p for p in design.rows if p.key not in earlier], design, index)
    n = design.seeds[index]
    record["waves"].append({"look": index + 1, "seeds": n, "tests": tests})
    still_open = sum(t["status"] == "open" for t in tests)
    undetermined = sum(t["status"] == "undetermined" for t in tests)
    if not still_open:
        record["stopped"] = (
            "no primary test can be computed from the trials" if undetermined == len(design.rows)
            else f"every primary test resolved after {n} seeds" + (
                f", but {undetermined} that cannot be computed from the trials" if undetermined else ""))
    elif index == len(design.seeds) - 1:
        record["stopped"] = f"the planned maximum of {n} seeds reached with {still_open} test(s) still open"
    return tests


def _key(test: dict[str, Any]) -> tuple[str, ...]:
    """A look's test (or a tests-table row given its "level") by its family member's `Planned.key`."""
    return tuple(test[k] for k in ("claim", "arm", "reference", "metric", "test")) + (
        (test["level"],) if test.get("level") else ())


def line(test: dict[str, Any]) -> str:
    """A look's test in one line."""
    head = f"{test['claim']} {test['metric']} ({test['arm']}" + (
        f" vs {test['reference']})" if test["reference"] != "0" else ")") + (
        f" at {test['level']}" if "level" in test else "")
    if test["status"] == "undetermined":
        return f"{head}: undetermined ({test['reason']})"
    return (f"{head}: {test['estimate']:+.3g} [95% CI {test['ci_low']:+.3g}, {test['ci_high']:+.3g}], "
            f"n = {test['n']}, p = {test['p']:.2g}" + (f", skewness-corrected p = {test['skew_p']:.2g}"
                                                          if "skew_p" in test else "")
            + f" against {test['nominal_p']:.2g}: {test['status']}")


def judged_by_design(record: dict[str, Any], tests: pd.DataFrame,
                     axes: dict[str, list[Any]] | None = None) -> pd.DataFrame:
    """The tests table of a sweep grown in waves, its family's rows judged as the stopping rule judged them: a
    row resolved at a look keeps that look's verdict (a crossing is final), a row still open at the last look
    reads "not shown"; `alpha` is the nominal p of that look. Over `axes` a row is its family member at its
    level (rows across an axis are not in the family). Other rows keep the table's own verdicts. A record of
    the older per-test design (no stored family) changes nothing."""
    design_json = record["design"]
    if "family" not in design_json:
        return tests
    final = {_key(t): (wave, t) for wave in record["waves"] for t in wave["tests"]}
    tests = tests.copy()
    for index, row in zip(tests.index, tests.to_dict("records")):
        key = _key({**row, "level": level_of(row, axes)})
        if key not in final or list(key) not in design_json["family"]:
            continue
        wave, test = final[key]
        if test["status"] == "undetermined":
            continue
        verdict = test["status"] if test["status"] in RESOLVED else NOT_SHOWN
        state = f"resolved at look {wave['look']}" if test["status"] in RESOLVED else "still open at the last look"
        tests.loc[index, ["verdict", "alpha", "note"]] = [
            verdict, test["nominal_p"], f"sequential design: {state} ({wave['seeds']} seeds, nominal p "
                                        f"{test['nominal_p']:.2g}, t-test and skewness-corrected test)"]
    return tests
