"""A sweep's axes (a spec's `axes:`): its levels, and the per-level table of how alignment and acquisition move.

A level is one point of the axes (`hidden=256`; `hidden=256-lr=0.001` with two axes). Every claim is tested within
each level (Holm over that level's primary rows: each level is the study rerun at that setting); the rows about an
axis (claim "across AXIS", declared in `contrasts.CONTRASTS`) are answered on every level's trials, seeds
clustered, and leave the axis columns empty.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sublim.core.config import level_label

from . import inference as inf
from .load import arm_order

RELATION_METRICS = ("mean_alignment", "mean_update_alignment", "trait_gain")
RANDOM_EXPONENT = -0.5  # cosines of random directions in P dimensions: of order P^(-1/2)


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
    return frame[frame[list(level)].eq(pd.Series(level, dtype=object)).all(axis=1)]


def with_axis_columns(table: pd.DataFrame, axes: dict[str, list[Any]]) -> pd.DataFrame:
    """The tests table's columns with one per axis after claim and role (empty where a row is not of a level)."""
    for name in axes:
        values = table[name] if name in table else pd.Series(None, index=table.index, dtype=object)
        table[name] = values.map(lambda v, name=name: None if _missing(v) else _declared(axes[name], v)).astype(object)
    head = ["claim", "role", *axes]
    return table[head + [c for c in table if c not in head]]


def trial_groups(frame: pd.DataFrame, axes: dict[str, list[Any]], axis: str) -> pd.Series:
    """Each row's level of the axes other than `axis`, as a label ('' with one axis): the fits' intercept groups."""
    others = [name for name in axes if name != axis]
    return pd.Series([level_label(dict(zip(others, values))) for values in frame[others].itertuples(index=False)]
                     if others else [""] * len(frame), index=frame.index, dtype=object)


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
                       "parameter_count": float(group["parameter_count"].mean()),
                       **inf.mean_cis(group, RELATION_METRICS)}
                row["alignment_x_sqrt_p"] = row["mean_alignment_mean"] * math.sqrt(row["parameter_count"])
                rows.append(row)
    return pd.DataFrame(rows)
