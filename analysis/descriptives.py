"""What the report describes without testing: per-trial numbers the traces add, per-arm and per-epoch means
with intervals, dose-response levels, the trials no statistic sees, and the settings the sweep ran. Step-level
quantities appear here as descriptives only; every test is one number per seed (`contrasts`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import pandas as pd

from sublim.core.config import TrialConfig
from sublim.core.schema import LAYER_NAMES
from sublim.core.trial_folder import STATUSES

from .contrasts import arm_frame, mitigation_sample
from .inference import mean_ci, mean_cis
from .load import DIVERGED_COLUMNS, Results

ARM_METRICS = ("teacher_acc", "student_acc_before", "student_acc", "trait_gain", "mean_alignment",
               "frac_positive_steps", "mean_applied_alignment", "mean_update_alignment", "final_distill_loss",
               "measured_trait_loss_change", "predicted_trait_loss_change")
EPOCH_METRICS = ("acc_epoch", "alignment_epoch", "frac_positive_epoch", "update_alignment_epoch")
# what makes an arm and a seed, and where a trial ran (recorded, but not a setting of the experiment)
NOT_SETTINGS = ("seed", "mitigation", "strength", "student_init", "device")


def trial_metrics(completed: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """The completed trials with what the step traces and per-epoch accuracies add, per trial:
    each layer's mean alignment; the positive share of update-alignment steps; the first-order change of
    the probe trait loss that the steps predict (Σ g_t·Δθ over every step but the last) beside the change
    measured over the same steps (the last step's probe loss minus the first's, each before its update);
    epoch 1's accuracy gain minus the mean gain of later epochs; and the model's parameter count P."""
    steps = steps.dropna(subset=["trial_id"]).sort_values(["trial_id", "step"])
    by_trial, ids = steps.groupby("trial_id"), steps["trial_id"]  # whole columns at once, never a call per trial
    first, last = ~ids.duplicated().to_numpy(), ~ids.duplicated(keep="last").to_numpy()
    extra = pd.DataFrame({f"mean_alignment_{layer}": by_trial[f"alignment_{layer}"].mean() for layer in LAYER_NAMES})
    extra["frac_positive_update_steps"] = ((steps["update_alignment"] > 0).groupby(ids).sum()
                                           / by_trial["update_alignment"].count().replace(0, np.nan))
    extra["predicted_trait_loss_change"] = steps[~last].groupby("trial_id")["update_trait_change"].sum(min_count=1)
    loss = steps.set_index("trial_id")["trait_loss"]
    extra["measured_trait_loss_change"] = (loss[last] - loss[first]).where(by_trial.size() > 1)
    out = completed.merge(extra, left_on="trial_id", right_index=True, how="left").set_axis(completed.index)
    if (final_epoch := _last_epoch(completed)) >= 2:
        gains = {e: out[f"acc_epoch_{e}"] - out[f"acc_epoch_{e - 1}"] for e in range(1, final_epoch + 1)}
        out["epoch1_gain_minus_later"] = gains[1] - pd.concat(
            [gains[e] for e in range(2, final_epoch + 1)], axis=1).mean(axis=1, skipna=False)
    else:
        out["epoch1_gain_minus_later"] = np.nan
    widths = [out[name] if name in out else pd.Series(np.nan, index=out.index) for name in ("hidden", "aux_logits")]
    out["parameter_count"] = [parameter_count(h, m) for h, m in zip(*widths)]
    return out


@functools.cache  # once per width, not per trial
def parameter_count(hidden: Any, aux_logits: Any) -> float:
    """P of a trial's MLP from its recorded widths (NaN when the record lacks them)."""
    try:
        return float(TrialConfig(hidden=int(hidden), aux_logits=int(aux_logits)).parameter_count)
    except (TypeError, ValueError):
        return np.nan


def _last_epoch(completed: pd.DataFrame) -> int:
    """The last epoch with an accuracy column (acc_epoch_0 is before distillation; -1 without any)."""
    return max((int(c.rsplit("_", 1)[1]) for c in completed if c.startswith("acc_epoch_")), default=-1)


def _status_counts(trials: pd.DataFrame) -> dict[str, int]:
    return {"expected": len(trials), **{status: int((trials["status"] == status).sum()) for status in STATUSES}}


def arm_table(trials: pd.DataFrame, completed: pd.DataFrame) -> pd.DataFrame:
    """One row per arm of `trials`: counts by status and, over its `completed` trials (with `trial_metrics`'
    per-trial numbers), mean and interval of each metric."""
    return pd.DataFrame([{"arm": a.arm, "mitigation": a.mitigation, "strength": a.strength,
                          "student_init": a.student_init, **_status_counts(trials[trials["arm"] == a.arm]),
                          **mean_cis(completed[completed["arm"] == a.arm], ARM_METRICS)}
                         for a in arm_frame(trials).itertuples()])


def epoch_table(completed: pd.DataFrame) -> pd.DataFrame:
    """One row per arm and epoch (0 = before distillation): accuracy after it, alignment during it."""
    return pd.DataFrame([{"arm": arm, "epoch": epoch, **mean_cis(completed[completed["arm"] == arm], {
        f"{prefix}_{epoch}": prefix.rsplit("_", 1)[0] for prefix in EPOCH_METRICS})}
        for arm in (arm_frame(completed)["arm"] if len(completed) else [])
        for epoch in range(_last_epoch(completed) + 1)])


def dose_table(completed: pd.DataFrame, kinds: tuple[str, ...]) -> pd.DataFrame:
    """Per mitigation and strength (none/shared as strength 0): trait_gain and both alignments, mean and interval."""
    return pd.DataFrame([{"mitigation": kind, "strength": float(strength),
                          **mean_cis(group, ("trait_gain", "mean_alignment", "mean_update_alignment"))}
        for kind in kinds for sample in [mitigation_sample(completed, kind)] if (sample["mitigation"] == kind).any()
        for strength, group in sample.groupby("strength")])


def data_summary(results: Results) -> dict[str, Any]:
    """What there is to analyse: counts by status, the trials no statistic sees and why, teachers, warnings."""
    trials, completed = results.trials, results.completed

    def listed(status: str, columns: dict[str, str]) -> list[dict[str, Any]]:
        rows = trials.loc[trials["status"] == status, ["trial_id", "arm", *columns]].rename(columns=columns)
        return rows.astype(object).where(rows.notna(), None).to_dict("records")

    teachers = completed.drop_duplicates("teacher_key") if completed["teacher_key"].notna().all() else completed
    repeated = completed.groupby(["arm", "seed"]).size()
    notes = list(results.warnings) + (["some arms have several completed trials for one seed; tests average them "
                                       "per seed"] if (repeated > 1).any() else [])
    return {
        "source": results.kind, "totals": _status_counts(trials), "seeds": int(completed["seed"].nunique()),
        "failed": listed("failed", {"error": "error"}),
        "diverged": listed("diverged", {**{c: c.removeprefix("diverged_") for c in DIVERGED_COLUMNS.values()},
                                        "error": "message"}),
        "invalid": listed("invalid", {"error": "reason"}),
        "teacher_acc": {**mean_ci(teachers["teacher_acc"]), "min": float(teachers["teacher_acc"].min()),
                        "max": float(teachers["teacher_acc"].max())},
        "warnings": notes,
    }


def settings(completed: pd.DataFrame) -> list[dict[str, Any]]:
    """Every trial setting that differs from the protocol's default in some completed trial: the values used,
    and the default (seed and arm settings aside: they make the grid)."""
    rows = []
    for f in dataclasses.fields(TrialConfig):
        if f.name in NOT_SETTINGS or f.name not in completed:
            continue
        used = sorted({repr(v) if not isinstance(v, (int, float, str)) else v
                       for v in completed[f.name].dropna()}, key=str)
        if used and used != [f.default]:
            rows.append({"setting": f.name, "values": used, "default": f.default, "help": f.metadata["help"]})
    return rows
