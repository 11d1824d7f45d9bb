"""A group-sequential design for sweeps that grow in waves of seeds, planned before the first wave, so that looking
after every wave, stopping once the claims are decided and dropping rows that cannot be decided keeps the
family-wise error rate at alpha.

- The family: the tests table's primary directional rows the spec's arms can answer, at every level of its axes.
- Multiplicity: Holm-Bonferroni in its group-sequential form (Ye et al. 2013; Maurer and Bretz 2013): each of the
  K rows starts with alpha / K, and a rejected row's share passes to the others. A shortcut of closed testing
  with Bonferroni tests, it holds under any dependence between the rows (they share seeds and arms).
- Each row: a two-sided group-sequential t-test of its per-seed numbers, alpha spent in proportion to seeds
  (Kim and DeMets' power family, rho = 1), no row judged on fewer than FIRST_LOOK seeds but at the last look (at
  p about 1e-4 a t-test on 3 to 5 seeds needs |t| above 9).
- Calibration: far in the tail a t-test errs 3 to 7 times too often on skewed per-seed numbers, and Hall's
  correction is itself off by 1.6 to 5 times, so the |t| boundaries are simulated (SIMULATIONS paths of a
  standardized gamma of skewness REFERENCE_SKEWNESS): conservative for normal numbers (family-wise error about
  0.012), about 0.05 at skewness 1, not protected beyond (0.25 to 0.29 at skewness 2; per-seed means over a run's
  steps had a root mean square skewness of 0.48 on a 10-seed paper sweep). A look's boundary b is its nominal
  p and its repeated confidence interval, mean ± b sd / sqrt(n) (Jennison and Turnbull 1989).
- Futility, non-binding: an open row is dropped ("not shown (futility)") when its predictive power of reaching
  the final boundary at its own share alpha / K is below FUTILITY_POWER (Spiegelhalter, Freedman and Blackburn
  1986); the efficacy boundaries ignore futility, so alpha holds whether or not it is obeyed.

The sweep stops when every family row is resolved or at the planned maximum. `decide` is the whole per-look
decision on numpy arrays: the rule (`advance`) and benchmarks/sequential_error.py both call it; the benchmark
measures the numbers above.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from .axes import at_level, level_of
from .document import percent
from .contrasts import (CONTRADICTED, FUTILE, NOT_SHOWN, REFUSED, SUPPORTED, Planned, per_seed_values,
                        tests_table)
from .errors import Refusal
from .inference import ALPHA, finite

FIRST_LOOK = 6  # seeds: no row is judged on fewer, except at a design's last look
SPENDING_RHO = 1.0  # alpha spent by look j: alpha (n_j / N) ** rho
REFERENCE_SKEWNESS = 1.0  # the per-seed skewness the boundaries are calibrated for (a standardized gamma)
SIMULATIONS = 2 ** 19  # paths of the calibration
CALIBRATION_SEED = 20240601
MIN_EVENTS = 50  # a look gets a boundary only where this many simulated paths calibrate it
FUTILITY_POWER = 0.10  # an open row whose predictive power at the maximum is below this is futile
METHOD = (f"Holm-Bonferroni over the primary directional tests (alpha/K each; a rejected test's share passes to the "
          f"others), each a two-sided group-sequential t-test on its per-seed numbers with alpha spent in proportion "
          f"to seeds from {FIRST_LOOK} seeds on and |t| boundaries calibrated by simulation for per-seed numbers of "
          f"skewness up to {REFERENCE_SKEWNESS:g} (conservative for normal ones); a test is futile (non-binding) when "
          f"its predictive power at the planned maximum is below {FUTILITY_POWER:.0%}; estimates with repeated "
          f"confidence intervals at the look that decided")
FUTILE_STATUS = "futile"
STATUSES = ("open", SUPPORTED, CONTRADICTED, FUTILE_STATUS, "undetermined")  # the codes of `decide`
OPEN, SUPPORTED_CODE, CONTRADICTED_CODE, FUTILE_CODE, UNDETERMINED_CODE = range(5)
RESOLVED = (SUPPORTED, CONTRADICTED)  # a test rejected: its share of alpha passes on
_CHUNK = 2 ** 15


def spent(alpha: float, t: float) -> float:
    """Two-sided alpha spent by information fraction t (seeds / planned maximum): alpha t^rho."""
    return float(alpha * min(max(t, 0.0), 1.0) ** SPENDING_RHO)


def studentized(values: Any, null: float = 0.0) -> np.ndarray:
    """The one-sample t statistic of the last axis, (mean - null) sqrt(n) / sd (ddof 1): of one row's per-seed
    numbers, or of many at once (NaN or infinite where the numbers have no spread)."""
    x = np.asarray(values, dtype=float) - null
    n = x.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return x.mean(axis=-1) * math.sqrt(n) / x.std(axis=-1, ddof=1)


def reference_draws(rng: np.random.Generator, shape: tuple[int, ...],
                    skewness: float = REFERENCE_SKEWNESS) -> np.ndarray:
    """Standardized gamma numbers (mean 0, sd 1) of the given skewness (shape 4 / skewness^2); normal for 0."""
    if skewness == 0:
        return rng.standard_normal(shape)
    k = 4.0 / skewness ** 2
    return (rng.standard_gamma(k, size=shape) - k) / math.sqrt(k)


@functools.lru_cache(maxsize=16)
def calibrated(seeds: tuple[int, ...], alpha: float, tests: int) -> tuple[np.ndarray, np.ndarray]:
    """(boundaries, futility): the |t| boundaries, shape (tests, looks), row r for r tests rejected (level
    alpha / (tests - r)), inf where a look tests nothing; and per look the |t| below which an open row is futile
    (0 where none is dropped: the last look, looks before FIRST_LOOK seeds)."""
    if not seeds or seeds[0] < 2 or any(b <= a for a, b in zip(seeds, seeds[1:])):
        raise ValueError(f"looks must be increasing seed counts of at least 2, got {list(seeds)}")
    if not 0 < alpha < 1 or tests < 1:
        raise ValueError(f"alpha must be in (0, 1) and the family non-empty, got {alpha} and {tests}")
    last, looks = seeds[-1], len(seeds)
    rng = np.random.default_rng(CALIBRATION_SEED)
    paths = np.empty((looks, SIMULATIONS))  # |t| of every path at every look
    at = np.asarray(seeds)
    for start in range(0, SIMULATIONS, _CHUNK):
        draws = reference_draws(rng, (_CHUNK, last))
        sums, squares = np.cumsum(draws, axis=1)[:, at - 1], np.cumsum(draws ** 2, axis=1)[:, at - 1]
        mean = sums / at
        paths[:, start:start + _CHUNK] = (np.abs(mean) * np.sqrt(at) / np.sqrt((squares - at * mean ** 2) / (at - 1))).T
    # A boundary at any level is at least the (alpha SIMULATIONS)-th largest |t| of its look: only those compete.
    top = min(SIMULATIONS, math.ceil(alpha * SIMULATIONS) + 1)
    candidates = [np.argpartition(paths[j], SIMULATIONS - top)[SIMULATIONS - top:] for j in range(looks)]
    bounds = np.full((tests, looks), np.inf)
    for r in range(tests):
        level = alpha / (tests - r)
        stopped = np.zeros(SIMULATIONS, dtype=bool)
        for j, n in enumerate(seeds):
            final = j == looks - 1
            wanted = spent(level, n / last) * SIMULATIONS - stopped.sum()
            if not final and (n < FIRST_LOOK or wanted < MIN_EVENTS):
                continue  # this look tests nothing; its spending moves on
            values = np.where(stopped[candidates[j]], -1.0, paths[j, candidates[j]])
            k = min(max(int(round(wanted)), 1), top)
            bound = float(np.partition(values, top - k)[top - k])
            bounds[r, j] = math.ceil(bound * 1e4) / 1e4  # stored to 4 decimals, rounded up
            stopped[candidates[j][values >= bounds[r, j]]] = True
    return bounds, _futility(np.asarray(seeds), bounds[0, -1])


def predictive_power(z: Any, fraction: Any, final: Any) -> np.ndarray:
    """The chance that |Z| at the planned maximum reaches `final`, given |t| = z at information `fraction`: Z
    normal with mean z / sqrt(fraction) and variance (1 - fraction) / fraction (a flat prior on the effect)."""
    z, fraction, final = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (z, fraction, final)))
    with np.errstate(divide="ignore", invalid="ignore"):  # at the maximum itself (fraction 1) nothing is predicted
        mean, sd = z / np.sqrt(fraction), np.sqrt((1 - fraction) / fraction)
        return scipy_stats.norm.sf((final - mean) / sd) + scipy_stats.norm.cdf((-final - mean) / sd)


def _futility(seeds: np.ndarray, final: float) -> np.ndarray:
    """Per look, the |t| below which an open row is futile: predictive power below FUTILITY_POWER of reaching
    `final`, the last look's boundary at a row's own share alpha / K (not the larger share Holm may pass it
    later: a row is dropped when on its own share it would very likely not be shown). Bisection on
    [0, final sqrt(fraction)], where the power is about 1/2; stored rounded down."""
    fraction = seeds / seeds[-1]
    low, high = np.zeros(len(seeds)), final * np.sqrt(fraction)
    for _ in range(60):
        middle = (low + high) / 2
        below = predictive_power(middle, fraction, final) < FUTILITY_POWER
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    bounds = np.floor(low * 1e4) / 1e4
    bounds[(seeds < FIRST_LOOK) | (seeds == seeds[-1])] = 0.0
    return bounds


def decide(t: np.ndarray, status: np.ndarray, look: int, boundaries: np.ndarray, futility: np.ndarray,
           signs: np.ndarray, drop_futile: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One look of the rule on any number of families at once: `t` (..., K) the rows' t statistics at this look
    (NaN: not computable), `status` (..., K) their codes before it (OPEN, SUPPORTED_CODE, CONTRADICTED_CODE,
    FUTILE_CODE, UNDETERMINED_CODE; a row decided at an earlier look is left as it is), `boundaries` and `futility`
    the design's arrays ((K, looks) and (looks,)), `signs` (K,) +1 where a row expects > and -1 where it expects <.

    Holm: with r rows rejected, an open row crosses at |t| >= boundaries[r, look]; each crossing raises r and
    the others are tried again, until none crosses. A crossing row is supported when t has its expected sign,
    else contradicted. Then, unless `drop_futile` is off (the non-binding rule ignored), an open row with
    |t| < futility[look] is futile. Returns the new codes and, per row, the r of the level it was judged at."""
    status = np.array(status, dtype=np.int8, copy=True)
    t = np.asarray(t, dtype=float)
    tests = boundaries.shape[0]
    pending = (status == OPEN) | (status == UNDETERMINED_CODE)
    computable = np.isfinite(t)
    status[pending & ~computable] = UNDETERMINED_CODE
    status[pending & computable] = OPEN
    size = np.abs(np.where(computable, t, 0.0))
    rejected = lambda: np.minimum(((status == SUPPORTED_CODE) | (status == CONTRADICTED_CODE)).sum(axis=-1),
                                  tests - 1)
    level = np.broadcast_to(rejected()[..., None], status.shape).copy()
    while True:
        r = rejected()
        crossing = (status == OPEN) & (size >= boundaries[r, look][..., None])
        if not crossing.any():
            break
        level[crossing] = np.broadcast_to(r[..., None], status.shape)[crossing]
        status[crossing] = np.where((np.sign(t) == signs)[crossing], SUPPORTED_CODE, CONTRADICTED_CODE)
    r = rejected()
    still = status == OPEN
    level[still] = np.broadcast_to(r[..., None], status.shape)[still]
    if drop_futile:
        status[still & (size < futility[look])] = FUTILE_CODE
    return status, level


def family(planned: list[Planned], arms: set[str] | None = None) -> list[Planned]:
    """The rows the design controls: primary, directional (two-sided tests of > or <), and, given the sweep's
    `arms`, only those whose reference arm is among them (the others can never be computed: no alpha for them)."""
    return [p for p in planned if p.contrast.role == "primary" and p.contrast.expect in (">", "<")
            and (arms is None or p.contrast.reference == "0" or p.reference in arms)]


def nominal_p(boundary: float | None, seeds: int) -> float:
    """The two-sided t-test p a row must reach at a boundary |t| (0 where the look tests nothing)."""
    return 0.0 if boundary is None or not math.isfinite(boundary) else float(2 * scipy_stats.t.sf(boundary, seeds - 1))


@dataclass(frozen=True, eq=False)
class Design:
    """The family's rows, the planned looks (cumulative seeds), by rows rejected (Holm) and look the |t|
    boundaries, and by look the futility bounds."""

    alpha: float
    rows: tuple[Planned, ...]
    seeds: tuple[int, ...]
    boundaries: np.ndarray
    futility: np.ndarray

    @property
    def per_test_alpha(self) -> float:
        return self.alpha / len(self.rows)

    @property
    def signs(self) -> np.ndarray:
        return np.array([1 if p.contrast.expect == ">" else -1 for p in self.rows])

    @property
    def nominal_p(self) -> tuple[float, ...]:
        """Each look's nominal p with no test rejected yet (alpha / K each)."""
        return tuple(nominal_p(b, n) for n, b in zip(self.seeds, self.boundaries[0]))

    def describe(self) -> str:
        """The design in words for the log: its family, METHOD, and each look's boundary with no test rejected."""
        looks = "; ".join(
            f"{n} seeds: " + (f"|t| >= {b:.3g} (p <= {p:.2g})" if math.isfinite(b) else "no test")
            + (f", futile below |t| {f:.3g}" if f > 0 else "")
            for n, b, p, f in zip(self.seeds, self.boundaries[0], self.nominal_p, self.futility))
        per_level = Counter(p.level_label for p in self.rows if p.level)
        where = ("(" + ", ".join(f"{n} at {label}" for label, n in per_level.items())
                 + "; each level on its own trials) ") if per_level else ""
        share = f"{self.alpha:g} / {len(self.rows)} over every level's tests = " if per_level else ""
        return (f"group-sequential design over {len(self.rows)} primary tests {where}at family-wise alpha "
                f"{self.alpha:g} (Holm-Bonferroni: {share}{self.per_test_alpha:.3g} each to start); the rule: {METHOD}. "
                f"With no test rejected: {looks}")

    def plan(self) -> dict[str, Any]:
        """What fixes the design before any data: equal plans give equal boundaries."""
        return {"method": METHOD, "alpha": self.alpha, "family_size": len(self.rows),
                "per_test_alpha": self.per_test_alpha, "family": [list(p.key) for p in self.rows],
                "seeds": list(self.seeds), "first_look": FIRST_LOOK, "spending_rho": SPENDING_RHO,
                "reference_skewness": REFERENCE_SKEWNESS, "simulations": SIMULATIONS,
                "calibration_seed": CALIBRATION_SEED, "futility_power": FUTILITY_POWER}

    def to_json(self) -> dict[str, Any]:
        return {**self.plan(), "nominal_p": list(self.nominal_p),
                "boundaries_t": [[_number(b) for b in row] for row in self.boundaries],
                "futility_t": [float(f) for f in self.futility]}

    @classmethod
    def from_json(cls, stored: dict[str, Any], rows: list[Planned]) -> Design:
        """The design a folder stored (its `rows`, in its family's order): its boundaries, not recomputed."""
        bounds = np.array([[np.inf if b is None else b for b in row] for row in stored["boundaries_t"]], dtype=float)
        return cls(stored["alpha"], tuple(rows), tuple(stored["seeds"]), bounds,
                   np.array(stored["futility_t"], dtype=float))


def design(planned: list[Planned], seeds: list[int], arms: set[str], alpha: float = ALPHA) -> Design:
    """The design for the rows planned on `arms` (at each level of the axes, where the rows carry levels),
    looking after `seeds[j]` seeds (increasing; the last the planned maximum)."""
    rows = family(planned, arms)
    if not rows:
        raise ValueError("no primary directional test can be computed from these arms: nothing for waves to decide")
    bounds, futility = calibrated(tuple(seeds), alpha, len(rows))
    return Design(alpha, tuple(rows), tuple(seeds), bounds.copy(), futility.copy())


def is_current(stored: dict[str, Any]) -> bool:
    """Whether a stored design is of this rule (else an older one: judged by its own stored statuses)."""
    return stored.get("method") == METHOD and "boundaries_t" in stored


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _codes(record: dict[str, Any], design: Design) -> np.ndarray:
    """Each family row's code after the record's looks: its last status (open where never tested)."""
    last = {_key(t): t["status"] for wave in record["waves"] for t in wave["tests"]}
    return np.array([STATUSES.index(last.get(p.key, "open")) for p in design.rows], dtype=np.int8)


def _answers(trials: pd.DataFrame, rows: list[Planned]) -> dict[tuple[str, ...], tuple[dict[str, Any], np.ndarray]]:
    """Each row's tests-table row and its finite per-seed numbers minus the null (empty where refused), each on
    its level's trials only."""
    out = {}
    for level in dict.fromkeys(p.level for p in rows):
        here, mine = at_level(trials, dict(level)), [p for p in rows if p.level == level]
        table = tests_table(here, rows=mine)
        for row, p in zip(table.to_dict("records"), mine):
            values = np.empty(0)
            if row["verdict"] != REFUSED:
                try:
                    values = finite(per_seed_values(here, p)) - p.contrast.null
                except Refusal:
                    pass
            out[p.key] = (row, values)
    return out


def new_record(design: Design) -> dict[str, Any]:
    """What sweep.json keeps: the design, each look's tests, why it stopped."""
    return {"design": design.to_json(), "waves": [], "stopped": None}


def advance(record: dict[str, Any], design: Design, trials: pd.DataFrame, index: int) -> list[dict[str, Any]]:
    """Look `index` on `trials` (the look's seeds only): tests the rows no earlier look decided (a decision is
    final), adds the wave to `record` and says in `record["stopped"]` whether the rule stops: no row left open
    (each supported, contradicted, futile, or not computable from the trials), or the last planned look."""
    before = _codes(record, design)
    pending = [i for i, code in enumerate(before) if code in (OPEN, UNDETERMINED_CODE)]
    answers = _answers(trials, [design.rows[i] for i in pending])
    t = np.full(len(design.rows), np.nan)
    for i in pending:
        values = answers[design.rows[i].key][1]
        t[i] = studentized(values) if len(values) >= 2 else np.nan
    after, level = decide(t, before, index, design.boundaries, design.futility, design.signs)
    n = design.seeds[index]
    tests = [_test(design, design.rows[i], *answers[design.rows[i].key], float(t[i]), int(after[i]), int(level[i]),
                   index) for i in pending]
    record["waves"].append({"look": index + 1, "seeds": n, "tests": tests})
    still_open = int((after == OPEN).sum())
    undetermined = int((after == UNDETERMINED_CODE).sum())
    futile = int((after == FUTILE_CODE).sum())
    if not still_open:
        record["stopped"] = (
            "no primary test can be computed from the trials" if undetermined == len(design.rows)
            else f"every primary test resolved after {n} seeds" + (f", {futile} of them futile" if futile else "") + (
                f", but {undetermined} that cannot be computed from the trials" if undetermined else ""))
    elif index == len(design.seeds) - 1:
        record["stopped"] = f"the planned maximum of {n} seeds reached with {still_open} test(s) still open"
    return tests


def _test(design: Design, planned: Planned, row: dict[str, Any], values: np.ndarray, t: float, code: int,
          level: int, index: int) -> dict[str, Any]:
    """A row at a look as the record keeps it: its numbers, the repeated confidence interval and nominal p of the
    look's boundary at the row's level, the futility bound, its status."""
    test = {k: row[k] for k in ("claim", "arm", "reference", "metric", "test", "expect")}
    if planned.level:
        test["level"] = planned.level_label
    if code == UNDETERMINED_CODE:
        return {**test, "status": "undetermined", "reason": row["note"] or "the per-seed numbers have no spread"}
    n, bound = len(values), float(design.boundaries[level, index])
    mean, sd = float(values.mean()) + planned.contrast.null, float(values.std(ddof=1))
    nominal, half = nominal_p(bound, n), bound * sd / math.sqrt(n)
    low, high, ci_level = (mean - half, mean + half, 1 - nominal) if math.isfinite(bound) else (None, None, None)
    return {**test, "n": n, "estimate": mean, "ci_low": low, "ci_high": high, "ci_level": ci_level, "t": t,
            "df": n - 1, "p": float(row["p"]), "boundary_t": _number(bound), "nominal_p": nominal,
            "futility_t": float(design.futility[index]), "alpha_share": design.alpha / (len(design.rows) - level),
            "status": STATUSES[code]}


def _key(test: dict[str, Any]) -> tuple[str, ...]:
    """A look's test (or a tests-table row given its "level") by its family member's `Planned.key`."""
    return tuple(test[k] for k in ("claim", "arm", "reference", "metric", "test")) + (
        (test["level"],) if test.get("level") else ())


def _estimate(test: dict[str, Any]) -> str:
    """A look's estimate with its repeated confidence interval at the boundary it was judged at."""
    if test["ci_level"] is None:
        return f"{test['estimate']:+.3g} (no interval: the look tested nothing)"
    return (f"{test['estimate']:+.3g} [repeated {percent(test['ci_level'])} CI {test['ci_low']:+.3g}, "
            f"{test['ci_high']:+.3g}]")


def _crossing(test: dict[str, Any]) -> str:
    """A look's |t| against the boundary it was judged at, or against the futility bound that dropped it."""
    if test["boundary_t"] is None:
        return f"no test before {FIRST_LOOK} seeds"
    size = f"|t| {abs(test['t']):.3g}"
    if test["status"] == FUTILE_STATUS:
        return f"{size} < {test['futility_t']:.3g}, predictive power at the planned maximum below {FUTILITY_POWER:.0%}"
    futility = f", futile below {test['futility_t']:.3g}" if test["status"] == "open" and test["futility_t"] > 0 else ""
    return (f"{size} {'>=' if test['status'] in RESOLVED else '<'} {test['boundary_t']:.3g} (nominal p "
            f"{test['nominal_p']:.2g}, alpha share {test['alpha_share']:.2g}){futility}")


def name(test: dict[str, Any]) -> str:
    """A look's test by what it compares: 'claim2 trait_gain (projection@1/shared vs none/shared) at hidden=64'."""
    return f"{test['claim']} {test['metric']} ({test['arm']}" + (
        f" vs {test['reference']})" if test["reference"] != "0" else ")") + (
        f" at {test['level']}" if "level" in test else "")


def line(test: dict[str, Any]) -> str:
    """A look's test in one line."""
    head = name(test)
    if test["status"] == "undetermined":
        return f"{head}: undetermined ({test['reason']})"
    if "boundary_t" not in test:  # a look of the older design
        return (f"{head}: {test['estimate']:+.3g} [95% CI {test['ci_low']:+.3g}, {test['ci_high']:+.3g}], "
                f"n = {test['n']}, p = {test['p']:.2g} against {test['nominal_p']:.2g}: {test['status']}")
    status = f": {test['status']}" if test["boundary_t"] is not None else ""  # before FIRST_LOOK nothing is tested
    return f"{head}: {_estimate(test)}, n = {test['n']}, p = {test['p']:.2g}: {_crossing(test)}{status}"


def _state(status: str, wave: dict[str, Any], last_planned: int) -> str:
    """Where the design left a row: resolved or futile at a look, or open at the last look reached."""
    at = f"look {wave['look']} ({wave['seeds']} seeds)"
    if status in RESOLVED or status == FUTILE_STATUS:
        return f"{'futile' if status == FUTILE_STATUS else 'resolved'} at {at}"
    return (f"open at the last look ({wave['seeds']} seeds)" if wave["look"] == last_planned
            else f"open at {at}, the sweep not finished")


def judged_by_design(record: dict[str, Any], tests: pd.DataFrame,
                     axes: dict[str, list[Any]] | None = None) -> pd.DataFrame:
    """The tests table of a sweep grown in waves, each family row (over `axes`, at its level) judged at the look
    that decided it, with that look's numbers and nominal p (as `alpha`); a row still open reads "not shown", a
    futile one "not shown (futility)". A record of the older per-test design (no stored family) changes nothing;
    one of the older sequential design (no boundaries) keeps the full-data numbers beside its look's verdict."""
    stored = record["design"]
    if "family" not in stored:
        return tests
    final = {_key(t): (wave, t) for wave in record["waves"] for t in wave["tests"]}
    current, last_planned = is_current(stored), len(stored["seeds"])
    tests = tests.copy()
    if current:  # the looks' numbers replace the table's
        for column in ("n", "estimate", "ci_low", "ci_high", "ci_level", "statistic", "df", "p", "p_adjusted", "alpha"):
            tests[column] = tests[column].astype(float)
    for index, row in zip(tests.index, tests.to_dict("records")):
        key = _key({**row, "level": level_of(row, axes)})
        if key not in final or list(key) not in stored["family"] or final[key][1]["status"] == "undetermined":
            continue
        wave, test = final[key]
        state = f"sequential design: {_state(test['status'], wave, last_planned)}"
        status = test["status"]
        verdict = FUTILE if status == FUTILE_STATUS else status if status in RESOLVED else NOT_SHOWN
        if current:  # None (no interval: the look tested nothing) is stored as NaN
            tests.loc[index, ["verdict", "alpha", "note", "n", "estimate", "ci_low", "ci_high", "ci_level", "statistic",
                              "df", "p", "p_adjusted"]] = [
                verdict, test["nominal_p"], f"{state}: {_crossing(test)}; estimate {_estimate(test)} at that look",
                *(test[k] for k in ("n", "estimate", "ci_low", "ci_high", "ci_level", "t", "df", "p", "p"))]
        else:
            tests.loc[index, ["verdict", "alpha", "note"]] = [
                verdict, test["nominal_p"], f"{state}, nominal p {test['nominal_p']:.2g}, t-test and skewness-"
                                            "corrected test (an older design: the estimate and 95% CI are from every "
                                            "seed)"]
    return tests
