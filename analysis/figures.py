"""The report's figures as PNG files, readable at the size report.html shows them (WIDTH inches at DPI: unscaled on
a 1,280-px page, text at 10 pt or more), one panel per row; an arm keeps its colour and marker in every figure (its
mitigation's hue, darker with strength). A fit drawn is the model a row of the tests table answers with. Built on
`matplotlib.figure.Figure` (Agg), never pyplot; labels drawn literally, never as mathtext. A figure without its data
raises `Refusal`; `draw` records the reason and removes a stale PNG.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Callable

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from sublim.core.config import level_label
from sublim.core.text import file_stem
from sublim.core.files import atomic_write
from sublim.core.mitigations import report_facts

from . import inference as inf
from .axes import RANDOM_EXPONENT, RELATION_METRICS, at_level, levels
from .contrasts import (BASELINE, EXPONENT_TEST, MEDIATOR, MEDIATORS, REFUSED, TRACKING_ACROSS, TREND, ZERO,
                        mitigation_sample, regressor)
from .errors import Refusal, need
from .load import arm_order

CHANCE = 0.1  # ten digit classes
DPI = 110
WIDTH = 11.0  # inches: 1,210 px, which report.html's column shows unscaled
STYLE = {"font.size": 11, "legend.fontsize": 10, "axes.titlesize": 11, "figure.titlesize": 12,
         "text.parse_math": False}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
OTHER_COLOURS = ("#9467bd", "#8c564b", "#bcbd22", "#e377c2")  # for mitigations the project does not define
BAND = f"{inf.CONFIDENCE:.0%} CI"
GAIN = "trait gain (test accuracy after − before)"
LABELS = {"mean_alignment": "mean alignment cos(g_distill, g_trait)",
          "mean_update_alignment": "mean update alignment cos(−Δθ, g_trait)", "trait_gain": GAIN}

MEAN_BAND = f"mean across trials per arm with its {BAND} band; one panel per mitigation"
CAPTIONS = {
    "trait_gain": f"Trait gain per arm: a point per seed, the mean with its {BAND} over seeds; line: 0 (none "
                  "acquired). Arms grouped and coloured by mitigation, darker at higher strength.",
    "alignment_steps": f"Alignment cos(g_distill, g_trait) at each optimizer step: {MEAN_BAND}.",
    "update_alignment_steps": f"Update alignment cos(−Δθ, g_trait), the step Adam applied: {MEAN_BAND}.",
    "accuracy_epochs": f"Student test accuracy after each epoch: {MEAN_BAND}; dotted: chance.",
    "gain_vs_alignment": "Trait gain against the raw gradient's (top) and the applied update's (bottom) alignment, "
                         f"a point per trial; lines: each arm's slope row with its {BAND} band; dashed: the common "
                         "slope, where the table gives one.",
    "dose_response": f"Trait gain and the mediator, update alignment, against strength (none/shared as 0): trials, "
                     f"mean ± {BAND}; on trait gain, the mediation's dose model at the average seed, over the strengths run only; its "
                     "legend names the strengths where it misses the mean's interval (read the means there).",
    "per_layer_alignment": f"Mean alignment within each layer, per arm, with its {BAND} over seeds (the layer rows).",
    "first_order": "Per trial, the measured change of the probe trait loss against the first-order change the "
                   f"steps predict (Σ g_t·Δθ); line: y = x; legend: each arm's share with its {BAND}. Arms with "
                   "changes far larger than the others' are on a panel of their own.",
    "across": f"Along the axis: each arm's means ± {BAND} over seeds per level and its trend row; dashed: "
              "none/shared's power law in P; dotted: P^-1/2 of random directions; last: none/shared's trait gain "
              "against mean alignment by level, with the across-levels tracking slope.",
}


def _shade(colour: Any, lift: float) -> tuple[float, ...]:
    """`colour` lightened toward white (lift > 0) or darkened toward black (lift < 0)."""
    rgb = np.array(to_rgb(colour))
    return tuple(rgb + (1 - rgb) * lift if lift > 0 else rgb * (1 + lift))


def arm_styles(trials: pd.DataFrame) -> dict[str, tuple[Any, str]]:
    """(colour, marker) per arm, the same in every figure: the mitigation's hue (its own for one the project does
    not define), light to dark with the strength, and a marker per arm of the mitigation."""
    arms, kinds = arm_order(trials), trials.groupby("arm")["mitigation"].first()
    unknown, styles = [kind for kind in dict.fromkeys(kinds[arms]) if not report_facts(kind).colours], {}
    for kind in dict.fromkeys(kinds[arms]):
        mine = [arm for arm in arms if kinds[arm] == kind]
        palette = report_facts(kind).colours or (OTHER_COLOURS[unknown.index(kind) % 4],)
        for i, arm in enumerate(mine):
            colour = (palette[i % len(palette)] if kind == "none" else palette[0] if len(mine) == 1
                      else _shade(palette[0], 0.5 - 0.95 * i / (len(mine) - 1)))
            styles[arm] = (colour, MARKERS[i % len(MARKERS)])
    return styles


def _panels(completed: pd.DataFrame) -> list[tuple[str, list[str], str | None]]:
    """(title, arms, reference arm): one panel per mitigation; mitigated panels repeat the baseline as reference."""
    arms, kinds = arm_order(completed), completed.groupby("arm")["mitigation"].first()
    reference = BASELINE if BASELINE in arms and "none" in set(kinds) else None
    return [(report_facts(kind).title,
             [reference] * (kind != "none" and bool(reference)) + [a for a in arms if kinds[a] == kind],
             reference if kind != "none" else None)
            for kind in dict.fromkeys(kinds[arms])]


def _stack(panels: int, height: float, width: float = WIDTH, **shared: Any) -> tuple[Figure, list[Any]]:
    """Panels one per row, each the figure's full width."""
    fig = Figure(figsize=(width, height * panels + 0.6), dpi=DPI, layout="constrained")
    return fig, list(fig.subplots(panels, 1, squeeze=False, **shared)[:, 0])


def _title(fig: Figure, text: str) -> None:
    """A figure title wrapped to the figure's width."""
    fig.suptitle(textwrap.fill(text, width=int(fig.get_figwidth() * 9)))


def _legend(ax: Any) -> None:
    """Beside the panel, never over a curve."""
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))


def _interval(row: pd.Series) -> str:
    return f"{row['estimate']:.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}]"


def _rows(tests: pd.DataFrame, answered: bool = False, **match: str) -> pd.DataFrame:
    """The tests table's rows with these values (`answered`: neither refused nor zero by construction)."""
    chosen = at_level(tests, match)
    return chosen[~chosen["verdict"].isin([REFUSED, ZERO])] if answered else chosen


def _fit_line(ax: Any, fit: Any, x: Any, grid: np.ndarray, colour: Any, band: bool = True, group: str | None = None,
              **style: Any) -> None:
    """A tests-table row's fitted model (`y ~ x + C(arm)`) drawn at `x` over `grid`, for the intercept group `group`
    (default: the model's reference group), with the 95% band of its mean."""
    group = min(fit.model.data.frame["arm"]) if group is None else group
    _mean_band(ax, grid, fit.get_prediction(pd.DataFrame({"x": x, "arm": group})).summary_frame(alpha=inf.ALPHA),
               colour, band, **style)


def _mean_band(ax: Any, grid: np.ndarray, line: pd.DataFrame, colour: Any, band: bool = True, **style: Any) -> None:
    """A model's mean over `grid` with its 95% band, from a prediction frame (mean, mean_ci_lower, mean_ci_upper)."""
    ax.plot(grid, line["mean"], color=colour, **style)
    if band:
        ax.fill_between(grid, line["mean_ci_lower"], line["mean_ci_upper"], color=colour, alpha=0.15, linewidth=0)


def _bar(ax: Any, x: Any, summary: Any, style: tuple[Any, str], prefix: str = "", **kw: Any) -> None:
    """Means with their intervals, from a summary's mean, ci_low and ci_high (each prefixed by `prefix`)."""
    mean, low, high = (np.atleast_1d(np.asarray(summary[prefix + key], dtype=float)) for key in ("mean", "ci_low",
                                                                                                 "ci_high"))
    ax.errorbar(x, mean, yerr=np.nan_to_num([mean - low, high - mean]), color=style[0], marker=style[1], **kw)


def trait_gain_by_arm(completed: pd.DataFrame, axes: dict[str, list[Any]]) -> Figure:
    """The report's answer at a glance: each arm's trait gain, a point per seed and the mean with its 95% CI over
    seeds, arms grouped by mitigation; one panel per level of the axes."""
    points = completed.dropna(subset=["trait_gain"])
    need(len(points) > 0, "needs completed trials with a trait_gain, has none")
    styles, arms, kinds = arm_styles(points), arm_order(points), points.groupby("arm")["mitigation"].first()
    x = np.arange(len(arms)) + np.cumsum([0] + [kinds[a] != kinds[b] for a, b in zip(arms, arms[1:])]) * 0.6
    places = levels(points, axes)
    fig, panels = _stack(len(places), 4.2 if len(places) == 1 else 3.4, sharey=True)
    for ax, level in zip(panels, places):
        here = at_level(points, level)
        for position, arm in zip(x, arms):
            per_seed = here[here["arm"] == arm].groupby("seed")["trait_gain"].mean()
            if per_seed.empty:
                continue
            jitter = np.random.default_rng(0).uniform(-0.18, 0.18, len(per_seed))
            ax.scatter(position + jitter, per_seed, color=styles[arm][0], marker=styles[arm][1], s=16, alpha=0.35)
            _bar(ax, position, inf.mean_ci(per_seed), styles[arm], markersize=8, capsize=5, linewidth=2)
        ax.axhline(0, color="black", linewidth=0.9)
        ax.set_xticks(x, [arm.replace("/shared", "").replace("/", "\n") for arm in arms], rotation=30, ha="right")
        ax.set(ylabel=GAIN, title=f"at {level_label(level)}" if level else None)
        ax.grid(axis="y", color="#e5e5e5")
    _title(fig, f"Trait gain by arm: mean with {BAND} over seeds (points: seeds)")
    return fig


def _over_time(series: dict[str, tuple[Any, Any, Any, int]], completed: pd.DataFrame, labels: tuple[str, str, str],
               line: float, ticks: Any = ()) -> Figure:
    """One panel per mitigation: each arm's mean over x with its band ({arm: (x, mean, half-width, trials)}); in a
    mitigated panel the baseline is a dashed reference without band."""
    styles, panels = arm_styles(completed), _panels(completed)
    fig, axes = _stack(len(panels), 3.0, sharex=True, sharey=True)
    for ax, (title, arms, reference) in zip(axes, panels):
        for arm in (arm for arm in arms if arm in series):
            x, mean, half, n = series[arm]
            (colour, marker), base = styles[arm], arm == reference
            ax.plot(x, mean, color=colour, marker=marker, markevery=max(1, len(x) // 12),
                    linewidth=1.2 if base else 1.8, linestyle="--" if base else "-",
                    label=f"{arm} (n={n}){', reference' if base else ''}")
            if not base:
                ax.fill_between(x, mean - half, mean + half, color=colour, alpha=0.18, linewidth=0)
        ax.axhline(line, color="black", linewidth=0.8, linestyle=":")
        for tick in ticks:
            ax.axvline(tick, color="#bbbbbb", linewidth=0.6, linestyle=":")
        ax.set(title=title, ylabel=labels[1])
        _legend(ax)
    axes[-1].set_xlabel(labels[0])
    _title(fig, labels[2])
    return fig


def alignment_over_steps(steps: pd.DataFrame, completed: pd.DataFrame, column: str = "alignment") -> Figure:
    """Per arm: the mean of `column` at each optimizer step across trials, its 95% band, and the zero line."""
    steps = steps[steps["trial_id"].isin(completed["trial_id"])] if column in steps else steps.iloc[:0]
    steps = steps.dropna(subset=[column, "step"]) if len(steps) else steps
    need(len(steps) > 0, f"needs the step traces' {column} column, has none")
    window = max(1, round(steps["step"].max() / 50))
    steps = steps.sort_values(["trial_id", "step"]).assign(smooth=lambda d: d.groupby("trial_id")[column].rolling(
        window, 1, center=True).mean().droplevel(0))  # one pass over every trial, not a call per trial
    series = {arm: (by.index, by["mean"], inf.t_halfwidth(by["std"], by["count"]), rows["trial_id"].nunique())
              for arm, rows in steps.groupby("arm")
              for by in [rows.groupby("step")["smooth"].agg(["mean", "std", "count"])]}
    label = column.replace("_", " ").capitalize() + (
        " cos(−Δθ, g_trait), the step Adam applied" if "update" in column else " cos(g_distill, g_trait)")
    smoothing = f", rolling mean over {window} steps" if window > 1 else ""
    return _over_time(series, completed, ("optimizer step (dotted: epoch boundaries)", column.replace("_", " "),
                                          f"{label}: mean with {BAND} band{smoothing}"), 0,
                      steps.groupby("epoch")["step"].min().iloc[1:])


def accuracy_over_epochs(epochs: pd.DataFrame, completed: pd.DataFrame) -> Figure:
    """Per arm: mean test accuracy after each epoch (0 = before distillation) with its 95% band."""
    epochs = epochs.dropna(subset=["acc_mean"]) if "acc_mean" in epochs else epochs.iloc[:0]
    need(len(epochs) > 0, "needs per-epoch test accuracy (acc_by_epoch), has none")
    series = {arm: (rows["epoch"], rows["acc_mean"], (rows["acc_ci_high"] - rows["acc_ci_low"]) / 2,
                    int(rows["acc_n"].max())) for arm, rows in epochs.groupby("arm")}
    fig = _over_time(series, completed, ("distillation epoch (0 = before)", "test accuracy",
                                         f"Trait acquisition: student test accuracy, mean with {BAND} band"), CHANCE)
    fig.axes[-1].xaxis.get_major_locator().set_params(integer=True)
    return fig


def slope_lines(tests: pd.DataFrame, x: str) -> list[tuple[str, bool, Any]]:
    """The fits the verdicts on trait_gain ~ x use, as (arm, common, fitted model), from the tests table: each arm's
    own line where its slope row is answered; where the common-slope row is, its fit once per arm it pools."""
    metric = f"trait_gain ~ {x}"
    lines = [(row["arm"], False, row["model"]) for row in _rows(tests, True, test="slope", metric=metric).to_dict(
        "records")]
    for fit in _rows(tests, answered=True, test="common slope", metric=metric)["model"]:
        lines += [(arm, True, fit) for arm in dict.fromkeys(fit.model.data.frame["arm"])]
    return lines


def _slope_title(tests: pd.DataFrame, x: str) -> str:
    """What the verdicts on trait_gain ~ x say: the none/shared slope, the heterogeneity test, the common slope."""
    metric, parts = f"trait_gain ~ {x}", []
    for test, arm, say in (("slope", BASELINE, lambda r: f"{BASELINE} slope {_interval(r)}"),
                           ("slope heterogeneity", None, lambda r: f"slope heterogeneity p = {r['p']:.2g}"),
                           ("common slope", None, lambda r: f"common slope (dashed) {_interval(r)}")):
        rows = _rows(tests, test=test, metric=metric, **({"arm": arm} if arm else {}))
        refused = len(rows) and rows["verdict"].iloc[0] in (REFUSED, ZERO)
        if len(rows) and not (refused and test == "common slope"):  # the heterogeneity p says why there is none
            parts.append(f"{test} refused: {rows['note'].iloc[0]}" if refused else say(rows.iloc[0]))
    return "; ".join(parts) or "no slope in the tests table"


def gain_vs_alignment(completed: pd.DataFrame, tests: pd.DataFrame) -> Figure:
    """Each trial's trait_gain against its mean alignment, raw and applied, with the per-arm (and, where the
    table allows it, common) fits the tests table's slope rows answer with."""
    xs = [x for x in MEDIATORS if x in completed and completed[["trait_gain", x]].notna().all(axis=1).any()]
    need(bool(xs), f"needs trials with finite trait_gain and {' or '.join(MEDIATORS)}, has none")
    styles = arm_styles(completed)
    fig, axes = _stack(len(xs), 5.0)
    for ax, x in zip(axes, xs):
        points = completed.dropna(subset=["trait_gain", x])
        slopes = _rows(tests, answered=True, test="slope", metric=f"trait_gain ~ {x}").set_index("arm")
        for arm in arm_order(points):
            rows, (colour, marker) = points[points["arm"] == arm], styles[arm]
            slope = f": slope {_interval(slopes.loc[arm])}" if arm in slopes.index else ""
            ax.scatter(rows[x], rows["trait_gain"], color=colour, marker=marker, s=28, alpha=0.85,
                       label=f"{arm} (n={len(rows)}){slope}")
        for arm, common, fit in slope_lines(tests, x):  # the arm's own line, or its common-slope line
            own = points.loc[points["arm"] == arm, x]
            grid = np.linspace(own.min(), own.max(), 50)
            _fit_line(ax, fit, grid, grid, styles[arm][0], group=arm if common else None,
                      band=not common, linewidth=1.2 if common else 1.6, linestyle="--" if common else "-",
                      gid=f"{'common' if common else 'arm'}:{arm}")
        ax.axhline(0, color="black", linewidth=0.8, linestyle=":")
        ax.axvline(0, color="black", linewidth=0.8, linestyle=":")
        ax.set(xlabel=LABELS[x] + " over training", ylabel=GAIN, title=textwrap.fill(_slope_title(tests, x), 60))
        _legend(ax)
    _title(fig, "Does alignment relate to acquisition? A point per trial, each arm's OLS line")
    return fig


def _dose_line(ax: Any, tests: pd.DataFrame, kind: str, levels: pd.DataFrame, colour: Any) -> None:
    """The dose model of `kind`'s mediation rows (`inference.DoseModel`) at the sample's average seed, with its band,
    over the strengths run only (never extrapolated), naming the strengths whose mean's interval it misses; or why
    there is none."""
    rows = _rows(tests, test="mediation total", arm=kind)
    if not len(rows) or rows["verdict"].iloc[0] == REFUSED:
        ax.plot([], [], " ", label=f"no dose model: {rows['note'].iloc[0] if len(rows) else 'no mediation row'}")
        return
    model, top = rows["model"].iloc[0], float(levels["strength"].max())
    fitted = model.predict(levels["strength"])["mean"]
    missed = [f"{s:g}" for s, y, low, high in zip(levels["strength"], fitted, levels["trait_gain_ci_low"],
                                                 levels["trait_gain_ci_high"]) if not low <= y <= high]
    grid = np.unique(np.clip(np.concatenate([np.linspace(0, top, 60), np.geomspace(model.s_min, top, 60)]), 0, top))
    misses = f";\nmisses the mean's CI at s = {', '.join(missed)}" if missed else ""
    _mean_band(ax, grid, model.predict(grid), colour, linewidth=1.2, linestyle="-.", gid=f"dose:{kind}:{model.scale}",
               label=f"dose model on {'s' if model.scale == 'linear' else f'log(1 + s/{model.s_min:g})'}, slope "
                     f"{model.fit.params['dose']:.3g}{misses}")


def dose_response(completed: pd.DataFrame, doses: pd.DataFrame, tests: pd.DataFrame) -> Figure:
    """Per mitigation: trait_gain and the mediation's mediator against strength, trial points and mean ± 95% CI in
    each arm's style, and on trait_gain the dose model its mediation rows use."""
    kinds = list(dict.fromkeys(doses["mitigation"])) if len(doses) else []
    need(bool(kinds), "needs completed shared-init trials of a mitigation, has none")
    styles = arm_styles(completed)
    fig = Figure(figsize=(WIDTH, 4.0 * len(kinds) + 0.6), dpi=DPI, layout="constrained")
    for row, kind in zip(fig.subplots(len(kinds), 2, squeeze=False), kinds):
        sample = mitigation_sample(completed, kind)
        levels = doses[doses["mitigation"] == kind].sort_values("strength")
        arms, strengths = sample.groupby("strength")["arm"].first(), levels["strength"].to_numpy(dtype=float)
        darkest = styles[arms.iloc[-1]][0]
        for ax, metric in zip(row, ("trait_gain", MEDIATOR)):
            for level in levels.to_dict("records"):
                style, values = styles[arms[level["strength"]]], sample.loc[sample["strength"] == level["strength"]]
                ax.scatter(values["strength"], values[metric], color=style[0], marker=style[1], alpha=0.3, s=16)
                _bar(ax, level["strength"], level, style, f"{metric}_", markersize=7, capsize=4, linewidth=1.6)
            ax.plot(strengths, levels[f"{metric}_mean"], color=darkest, linewidth=1, alpha=0.6,
                    label=f"mean ± {BAND} per strength")
            if metric == "trait_gain":
                _dose_line(ax, tests, kind, levels, darkest)
            ax.axhline(0, color="black", linewidth=0.8, linestyle="--")
            positive, scale = strengths[strengths > 0], ""
            if len(positive) and positive.max() / positive.min() > 20:  # e.g. 0.1 to 10: spread them out
                ax.set_xscale("symlog", linthresh=positive.min())
                ax.set_xlim(-0.5 * positive.min(), positive.max() * 1.6)
                scale = f"; log above {positive.min():g}"
            ax.set_xticks(strengths, [f"{s:g}" for s in strengths])
            ax.minorticks_off()
            ax.set(xlabel=f"{kind} strength s (0 = none{scale})", ylabel=LABELS[metric].split(" (")[0],
                   title=f"{report_facts(kind).title}: {metric.replace('_', ' ')}")
            ax.legend(frameon=False)
    _title(fig, "Dose-response across mitigation strength (shared-init students)")
    return fig


def per_layer_alignment(tests: pd.DataFrame, completed: pd.DataFrame) -> Figure:
    """Per layer, each arm's mean per-trial alignment within that layer with its 95% CI, from the tests table's
    layer rows; a layer that is 0 by construction in every arm is left out (the caption says so)."""
    rows = _rows(tests, claim="layers").assign(layer=lambda r: r["metric"].str.removeprefix("mean_alignment_"))
    zero = rows.groupby("layer")["verdict"].agg(lambda v: (v == ZERO).all())
    rows = rows[rows["layer"].isin(zero.index[~zero]) & ~rows["verdict"].isin([REFUSED, ZERO])]
    need(len(rows) > 0, "needs at least 3 seeds of an arm with per-layer alignment in the traces, has none")
    layers, arms = list(dict.fromkeys(rows["layer"])), [a for a in arm_order(completed) if a in set(rows["arm"])]
    styles, (fig, (ax,)) = arm_styles(completed), _stack(1, 5.0)
    for i, arm in enumerate(arms):
        mine = rows[rows["arm"] == arm].rename(columns={"estimate": "mean"})
        _bar(ax, mine["layer"].map(layers.index) - 0.4 + 0.8 * (i + 0.5) / len(arms), mine, styles[arm], capsize=3,
             linestyle="none", linewidth=1.4, label=f"{arm} (n={mine['n'].max():.0f} seeds)")
    ax.axhline(0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(layers)), layers)
    ax.set(xlabel="layer (fc1: 784 → hidden, fc2: hidden → hidden)", ylabel="mean alignment in the layer")
    _legend(ax)
    _title(fig, f"Which layer carries the drive? Per-trial mean alignment by layer, mean per arm with {BAND}")
    return fig


def first_order(completed: pd.DataFrame, tests: pd.DataFrame) -> Figure:
    """Per trial the measured change of the probe trait loss against the first-order prediction, with y = x and
    each arm's share from the tests table's first-order rows; arms whose changes dwarf the rest (over 4 times the
    median arm's largest) on a panel of their own, so that the others are not squeezed to 0."""
    columns = ["measured_trait_loss_change", "predicted_trait_loss_change"]
    points = completed.dropna(subset=columns) if set(columns) <= set(completed) else completed.iloc[:0]
    need(len(points) > 0, "needs traces with the probe trait loss and update_trait_change, has none")
    shares, styles = _rows(tests, answered=True, test="first-order share").set_index("arm"), arm_styles(completed)
    reach = points.assign(r=points[columns].abs().max(axis=1)).groupby("arm")["r"].max()
    groups = [g for g in ([a for a in arm_order(points) if reach[a] <= 4 * reach.median()],
                          [a for a in arm_order(points) if reach[a] > 4 * reach.median()]) if g]
    fig, axes = _stack(len(groups), 5.0)
    for ax, arms in zip(axes, groups):
        mine = points[points["arm"].isin(arms)]
        for arm in arms:
            rows, said = mine[mine["arm"] == arm], f"share {_interval(shares.loc[arm])}" if arm in shares.index else ""
            ax.scatter(rows[columns[0]], rows[columns[1]], color=styles[arm][0], marker=styles[arm][1], s=28,
                       alpha=0.85, label=f"{arm} (n={len(rows)}){': ' + said if said else ''}")
        ends = [float(mine[columns].min().min()), float(mine[columns].max().max())]
        ax.plot(ends, ends, color="black", linewidth=1.0, label="y = x")
        ax.axhline(0, color="black", linewidth=0.6, linestyle=":")
        ax.axvline(0, color="black", linewidth=0.6, linestyle=":")
        ax.set(xlabel="measured change of the probe trait loss, last step − first (nats)", ylabel="predicted Σ "
               "g_t·Δθ (nats)", title=None if arms is groups[0] else "arms on a scale of their own")
        _legend(ax)
    _title(fig, "First-order accounting: does Σ g_t·Δθ account for the measured change of the trait loss?")
    return fig


def across_axis(completed: pd.DataFrame, tests: pd.DataFrame, table: pd.DataFrame, axis: str) -> Figure:
    """Along one axis: each arm's mean alignment, update alignment and trait gain per level (mean ± 95% CI over
    seeds) with the trend the tests table fits; on the alignments, none/shared's power law in P (the exponent
    row) beside the slope −1/2 of random directions; and trait gain against mean alignment in none/shared with
    the across-levels tracking line: each line the model of its tests-table row."""
    need(len(table) > 0 and table[axis].nunique() >= 2, f"needs completed trials at 2 or more values of {axis}")
    claim, styles, fitted = f"across {axis}", arm_styles(completed), regressor(completed[axis], axis)
    numeric, log2 = fitted is not None, fitted is not None and fitted[0].startswith("log2")
    fig, panels = _stack(len(RELATION_METRICS) + 1, 4.0)
    positions = {value: i for i, value in enumerate(dict.fromkeys(table[axis]))}
    for ax, metric in zip(panels, RELATION_METRICS):
        for arm in (arm for arm in arm_order(completed) if (table["arm"] == arm).any()):
            rows = table[table["arm"] == arm]
            x = rows[axis].astype(float) if numeric else rows[axis].map(positions)
            trend = _rows(tests, answered=True, claim=claim, arm=arm, test=TREND, metric=f"{metric} ~ {fitted[0]}"
                          ) if numeric else tests.iloc[:0]
            said = f": trend {_interval(trend.iloc[0])} per {'doubling' if log2 else 'unit'}" if len(trend) else ""
            _bar(ax, x, rows, styles[arm], f"{metric}_", capsize=3, linestyle="none" if len(trend) else "-",
                 label=f"{arm} (n={int(rows[f'{metric}_n'].max())} per level){said}")
            if len(trend):
                grid = np.geomspace(x.min(), x.max(), 50) if log2 else np.linspace(x.min(), x.max(), 50)
                _fit_line(ax, trend["model"].iloc[0], np.log2(grid) if log2 else grid, grid, styles[arm][0],
                          linewidth=1.0, gid=f"trend:{arm}:{metric}")
        exponent = _rows(tests, answered=True, claim=claim, test=EXPONENT_TEST, metric=f"{metric} ∝ P^b")
        if len(exponent):
            rows = table[table["arm"] == BASELINE].drop_duplicates(axis)
            x, power = rows[axis].astype(float), rows["parameter_count"].to_numpy(dtype=float)
            fit = exponent["model"].iloc[0]
            curve = np.asarray(fit.predict(pd.DataFrame({"x": np.log(power), "arm": min(fit.model.data.frame["arm"])})))
            ax.plot(x, curve, color="black", linestyle="--", linewidth=1.2, gid=f"exponent:{metric}",
                    label=f"{BASELINE} fit ∝ P^b, b = {_interval(exponent.iloc[0])}")
            ax.plot(x, curve[0] * (power / power[0]) ** RANDOM_EXPONENT, color="#888888", linestyle=":",
                    linewidth=1.2, label=f"∝ P^{RANDOM_EXPONENT:g} (random directions)")
        ax.axhline(0, color="black", linewidth=0.6, linestyle=":")
        if log2:
            ax.set_xscale("log", base=2)
        ax.set_xticks([float(t) for t in sorted(positions)] if numeric else list(positions.values()),
                      [str(v) for v in positions])
        ax.minorticks_off()
        ax.set(xlabel=axis, ylabel=LABELS[metric].split(" cos")[0], title=f"{LABELS[metric]} along {axis}")
        _legend(ax)
    ax, base = panels[-1], completed[completed["arm"] == BASELINE].dropna(subset=["trait_gain", "mean_alignment"])
    for value in positions:
        rows = base[base[axis] == value]
        ax.scatter(rows["mean_alignment"], rows["trait_gain"], s=22, alpha=0.85,
                   label=f"{axis} = {value} (n={len(rows)})")
    tracking = _rows(tests, answered=True, claim=claim, test=TRACKING_ACROSS)
    if len(tracking) and len(base):
        grid = np.linspace(base["mean_alignment"].min(), base["mean_alignment"].max(), 50)
        _fit_line(ax, tracking["model"].iloc[0], grid, grid, "black", linewidth=1.4, gid="tracking",
                  label=f"across levels: slope {_interval(tracking.iloc[0])}")
    ax.set(xlabel=LABELS["mean_alignment"], ylabel=GAIN, title=f"{BASELINE}: does trait gain track alignment across "
                                                               f"{axis}?")
    _legend(ax)
    _title(fig, f"Along {axis}: mean ± {BAND} over seeds per level; lines: the tests table's fits")
    return fig


def draw(name: str, build: Callable[[], Figure], folder: Path) -> dict[str, str]:
    """One figure into `folder` as NAME.png: {"file": path relative to the report folder} or {"refused": why},
    a stale PNG removed. Text is drawn literally (no mathtext), so that a label holding `$` cannot break it."""
    path = folder / f"{file_stem(name)}.png"  # a level's label is taken from the results folder: never a path
    try:
        with matplotlib.rc_context(STYLE):
            fig = build()
            atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
        return {"file": f"{folder.name}/{path.name}"}
    except Refusal as refusal:
        path.unlink(missing_ok=True)  # a stale figure from an earlier report would mislead
        return {"refused": str(refusal)}


def draw_all(completed: pd.DataFrame, steps: pd.DataFrame, epochs: pd.DataFrame, tests: pd.DataFrame,
             doses: pd.DataFrame, folder: Path, suffix: str = "") -> dict[str, dict[str, str]]:
    """Draw every figure of a level into `folder`, each named NAME + `suffix` (a level's, in a sweep over axes):
    {name: {"file": path relative to the report folder} or {"refused": why}}."""
    jobs: dict[str, Callable[[], Figure]] = {
        "alignment_steps": lambda: alignment_over_steps(steps, completed), "update_alignment_steps": lambda:
        alignment_over_steps(steps, completed, "update_alignment"), "accuracy_epochs": lambda:
        accuracy_over_epochs(epochs, completed), "gain_vs_alignment": lambda: gain_vs_alignment(completed, tests),
        "dose_response": lambda: dose_response(completed, doses, tests), "per_layer_alignment": lambda:
        per_layer_alignment(tests, completed), "first_order": lambda: first_order(completed, tests)}
    return {name + suffix: draw(name + suffix, build, folder) for name, build in jobs.items()}
