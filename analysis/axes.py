"""The report across a sweep's axes (a spec's `axes:`): every claim's tests within each level, and how alignment
and acquisition move from level to level.

A level is one point of the axes (`hidden=256`; `hidden=256-lr=0.001` with two axes). The tests table gains a
column per axis: a row answered within a level holds the level's values there and is judged within it (Holm over
that level's primary rows: each level is the study rerun at that setting). Rows about an axis (claim
"across AXIS") leave that column empty:

- whether each arm's mean alignment, update alignment and trait gain differ between the axis's values at all
  (an F of the value terms, p by a wild-cluster bootstrap over seeds: any shape, a hump as well as a trend), and
  their trend along the axis (on log2 of its values when they span 4x or more), with an intercept per level of
  any other axis;
- whether trait gain tracks mean alignment across the axis's levels in none/shared: the slope over its trials at
  every level, beside the slope within levels (an intercept per level), which a confound of the axis would split;
- for an axis that changes the parameter count P: the exponent b of mean alignment ∝ P^b in none/shared, against
  the −1/2 of random directions (their cosines in P dimensions are of order P^−1/2).

Every fit is to per-trial numbers with seeds clustered (CR2 standard errors, or the bootstrap over seeds): the seed
stays the unit of inference.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from sublim.core.config import level_label

from . import inference as inf
from .contrasts import BASELINE, COLUMNS, REFUSED, Options, tabulate, tests_table
from .errors import Refusal
from .load import arm_order

RELATION_METRICS = ("mean_alignment", "mean_update_alignment", "trait_gain")
EXPONENT_METRICS = ("mean_alignment", "mean_update_alignment")
RANDOM_EXPONENT = -0.5  # cosines of random directions in P dimensions: of order P^(-1/2)
LOG_SPAN = 4  # an axis whose positive values span this ratio or more is fitted (and drawn) on a log scale
EXPONENT_TEST, TRACKING_ACROSS, TRACKING_WITHIN, TREND, DIFFERENCES = (
    "exponent in P", "tracking across levels", "tracking within levels", "trend", "level differences")


def levels(trials: pd.DataFrame, axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The points of `axes` that `trials` hold, in the order of the axes' declared values ([{}] without axes);
    each value as declared (64, not 64.0), so that its label matches the trial ids'."""
    if not axes:
        return [{}]
    points = [{name: _declared(axes[name], value) for name, value in point.items()}
              for point in trials[list(axes)].drop_duplicates().to_dict("records")]
    return sorted(points, key=lambda point: tuple(_position(axes[name], point[name]) for name in axes))


def _declared(values: list[Any], value: Any) -> Any:
    return next((declared for declared in values if declared == value), value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def level_of(row: dict[str, Any], axes: dict[str, list[Any]]) -> str:
    """The label of the level a row (of the tests table, or any table with the axis columns) belongs to; '' for a
    row about an axis, or without axes."""
    if not axes or any(_missing(row.get(name)) for name in axes):
        return ""
    return level_label({name: _declared(axes[name], row[name]) for name in axes})


def _position(values: list[Any], value: Any) -> int:
    return values.index(value) if value in values else len(values)


def at_level(frame: pd.DataFrame, level: dict[str, Any]) -> pd.DataFrame:
    """The rows of `frame` at `level` (all rows for the empty level)."""
    mask = np.ones(len(frame), dtype=bool)
    for name, value in level.items():
        mask &= (frame[name] == value).to_numpy()
    return frame[mask]


def with_axis_columns(table: pd.DataFrame, axes: dict[str, list[Any]]) -> pd.DataFrame:
    """The tests table's columns with one per axis after claim and role (empty where a row is not of a level)."""
    for name in axes:
        values = table[name] if name in table else pd.Series(None, index=table.index, dtype=object)
        table[name] = values.map(lambda v, name=name: None if _missing(v) else _declared(axes[name], v)).astype(object)
    head = list(COLUMNS[:2]) + list(axes)
    return table[head + [c for c in table if c not in head]]


def tests_by_level(completed: pd.DataFrame, axes: dict[str, list[Any]], options: Options) -> pd.DataFrame:
    """Every planned row answered within each level, the level's values in the axis columns."""
    parts = [tests_table(at_level(completed, level), options).assign(**level) for level in levels(completed, axes)]
    return with_axis_columns(pd.concat(parts, ignore_index=True), axes)


def trial_groups(frame: pd.DataFrame, axes: dict[str, list[Any]], axis: str) -> pd.Series:
    """Each row's level of the axes other than `axis`, as a label ('' with one axis): the fits' intercept groups."""
    others = [name for name in axes if name != axis]
    return pd.Series([level_label(dict(zip(others, values))) for values in frame[others].itertuples(index=False)]
                     if others else [""] * len(frame), index=frame.index, dtype=object)


def regressor(values: pd.Series, axis: str) -> tuple[str, pd.Series] | None:
    """How a trend along `axis` is fitted: (name, values) on log2 when the positive values span LOG_SPAN or more,
    else as they are; None for an axis that is not numeric."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any() or values.map(lambda v: isinstance(v, bool)).any():
        return None
    if (numbers > 0).all() and numbers.max() / numbers.min() >= LOG_SPAN:
        return f"log2 {axis}", np.log2(numbers.astype(float))
    return axis, numbers.astype(float)


def _row(claim: str, arm: str, metric: str, test: str, expect: str, note: str,
         compute: Callable[[], dict[str, Any]], null: float = 0.0) -> dict[str, Any]:
    row = {"claim": claim, "role": "secondary", "arm": arm, "reference": f"{null:g}", "metric": metric, "test": test,
           "expect": expect, "null": null, "margin": np.nan, "note": note}
    try:
        row.update(compute())
        row["note"] = f"{note}; {row['method']}"
    except Refusal as refusal:
        row.update(verdict=REFUSED, note=str(refusal), p=np.nan)
    except (ValueError, np.linalg.LinAlgError) as error:
        row.update(verdict=REFUSED, note=f"the model could not be fitted ({error})", p=np.nan)
    return row


def _arm_sample(completed: pd.DataFrame, axes: dict[str, list[Any]], axis: str, arm: str) -> pd.DataFrame:
    """An arm's trials with `arm` holding their level of the other axes: the fits' intercept groups."""
    return completed[completed["arm"] == arm].assign(arm=trial_groups(completed, axes, axis))


def trend_fit(completed: pd.DataFrame, axes: dict[str, list[Any]], axis: str, arm: str, metric: str) -> tuple[Any, Any]:
    """The arm's trend of `metric` along a numeric `axis` (`regressor`'s scale): (row, fitted OLS)."""
    x, values = regressor(completed[axis], axis)  # one scale for every arm: the folder's values decide it
    return inf.slope(_arm_sample(completed, axes, axis, arm).assign(**{x: values}), x, metric)


def tracking_fit(completed: pd.DataFrame, axes: dict[str, list[Any]], axis: str,
                 within: bool = False) -> tuple[Any, Any]:
    """none/shared's trait_gain on mean_alignment over the trials of every level of `axis`, or (`within`) with an
    intercept per level: (row, fitted OLS)."""
    base = _arm_sample(completed, axes, axis, BASELINE)
    if within:
        base = base.assign(arm=base["arm"] + "|" + base[axis].astype(str))
    return inf.slope(base, "mean_alignment")


def exponent_fit(completed: pd.DataFrame, axes: dict[str, list[Any]], axis: str, metric: str) -> tuple[Any, Any]:
    """none/shared's exponent b of `metric` ∝ P^b along `axis`, against random directions': (row, fitted GLM)."""
    return inf.exponent(_arm_sample(completed, axes, axis, BASELINE), metric, RANDOM_EXPONENT)


def across_tests(completed: pd.DataFrame, axes: dict[str, list[Any]]) -> pd.DataFrame:
    """The rows about each axis (claim 'across AXIS'), as tests-table rows with the axis columns empty."""
    rows = []
    for axis in axes:
        claim = f"across {axis}"
        within = ", an intercept per level of the other axes" if len(axes) > 1 else ""
        for arm in arm_order(completed):
            rows += [_row(claim, arm, f"{metric} by {axis}", DIFFERENCES, "!=",
                          f"the {axis} terms{within}",
                          lambda arm=arm, metric=metric: inf.level_differences(
                              _arm_sample(completed, axes, axis, arm), metric, axis))
                     for metric in RELATION_METRICS]
        fitted = regressor(completed[axis], axis)
        if fitted is not None:
            for arm in arm_order(completed):
                rows += [_row(claim, arm, f"{metric} ~ {fitted[0]}", TREND, "!=",
                              f"OLS over trials{within}",
                              lambda arm=arm, metric=metric: trend_fit(completed, axes, axis, arm, metric)[0])
                         for metric in RELATION_METRICS]
        rows += [_row(claim, BASELINE, "trait_gain ~ mean_alignment", TRACKING_ACROSS, ">",
                      f"OLS over trials at every {axis}{within}",
                      lambda: tracking_fit(completed, axes, axis)[0]),
                 _row(claim, BASELINE, "trait_gain ~ mean_alignment", TRACKING_WITHIN, ">",
                      "OLS with an intercept per level",
                      lambda: tracking_fit(completed, axes, axis, within=True)[0])]
        base = _arm_sample(completed, axes, axis, BASELINE)
        if base.groupby("arm")["parameter_count"].nunique().gt(1).any():  # the axis changes P
            rows += [_row(claim, BASELINE, f"{metric} ∝ P^b", EXPONENT_TEST, ">",
                          f"GLM, log link{within}; random directions: {RANDOM_EXPONENT:g}",
                          lambda metric=metric: exponent_fit(completed, axes, axis, metric)[0],
                          null=RANDOM_EXPONENT)
                     for metric in EXPONENT_METRICS]
    return with_axis_columns(tabulate(rows), axes)


def level_table(completed: pd.DataFrame, axes: dict[str, list[Any]], axis: str) -> pd.DataFrame:
    """Per arm, level of the other axes and value of `axis`: trials, P, and mean [95% CI] of the relation's
    metrics, with mean alignment × √P (constant along the axis if alignment scales as random directions do)."""
    frame = completed.assign(_others=trial_groups(completed, axes, axis))
    rows = []
    for arm in arm_order(frame):
        mine = frame[frame["arm"] == arm]
        for others in sorted(mine["_others"].unique()):
            for value in axes[axis]:
                group = mine[(mine["_others"] == others) & (mine[axis] == value)]
                if group.empty:
                    continue
                row = {"arm": arm, **({"other_axes": others} if len(axes) > 1 else {}), axis: value,
                       "parameter_count": float(group["parameter_count"].mean())}
                for metric in RELATION_METRICS:
                    row.update({f"{metric}_{key}": v for key, v in inf.mean_ci(group.get(metric, [])).items()})
                row["alignment_x_sqrt_p"] = row["mean_alignment_mean"] * math.sqrt(row["parameter_count"])
                rows.append(row)
    return pd.DataFrame(rows)
