"""The report's figures as PNG files, each readable on its own: labelled axes with units, a legend with the number
of trials per arm, and 95% confidence bands. A figure that draws a fit draws the model a row of the tests table
answers with, and quotes that row's numbers, so that the picture and the verdict say the same.

Figures are built on `matplotlib.figure.Figure` objects with the Agg canvas, never through pyplot, so drawing
needs no display and leaves no global state behind; labels from the data are drawn literally, never as mathtext.
A figure without the data it needs raises `Refusal`; `draw_all` records the reason and removes a stale PNG.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Callable

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sublim.core.files import atomic_write
from sublim.core.mitigations import MITIGATIONS

from . import inference as inf
from .axes import (EXPONENT_TEST, RANDOM_EXPONENT, RELATION_METRICS, TRACKING_ACROSS, TREND, exponent_fit, regressor,
                   tracking_fit, trend_fit)
from .contrasts import BASELINE, MEDIATORS, REFUSED, ZERO, mitigation_sample
from .errors import Refusal, need
from .load import arm_order

CHANCE = 0.1  # ten digit classes
DPI = 110
BAND = f"{inf.CONFIDENCE:.0%} CI"
X_LABELS = {"mean_alignment": "mean alignment cos(g_distill, g_trait) over training",
            "mean_update_alignment": "mean update alignment cos(−Δθ, g_trait) over training"}
GAIN = "trait gain (test accuracy after − before)"

MEAN_BAND = f"mean across trials per arm with its {BAND} band across trials (descriptive, no test)"
CAPTIONS = {
    "alignment_steps": f"Alignment cos(g_distill, g_trait) at each optimizer step: {MEAN_BAND}; dashed: 0.",
    "update_alignment_steps": "Update alignment cos(−Δθ, g_trait), the step Adam applied against the trait gradient, "
                              f"at each optimizer step: {MEAN_BAND}; dashed: 0.",
    "accuracy_epochs": f"Student test accuracy after each distillation epoch: {MEAN_BAND}; dotted: chance.",
    "gain_vs_alignment": "Trait gain against mean alignment (left: the raw gradient's; right: the update Adam "
                         "applied), one point per trial. Solid: each shared-init arm's OLS line over its own trials "
                         f"(HC3 SEs, clustered by seed where a seed has several trials) with its {BAND} band, the "
                         "tests table's per-arm slope rows. Dashed, only where the heterogeneity test (Wald F of the "
                         "arm × alignment terms, seeds clustered) does not show the slopes differ: the common slope "
                         "with an intercept per arm, the table's common-slope row. Panel titles quote these rows.",
    "dose_response": f"Trait gain and mean alignment against strength (shared-init; none/shared as 0): trials, mean ± "
                     f"{BAND}. On trait gain, the mediation's dose model: OLS of trait_gain on the dose (s or "
                     "log(1 + s/s_min), the lower AIC) with seed fixed effects, at the average seed, with its "
                     f"{BAND} band.",
    "per_layer_alignment": "Per-trial mean alignment within each layer: the tests table's layer rows (mean over "
                           f"seeds per arm, {BAND}). A cross marks a layer that is 0 by construction (not tested); "
                           "dashed: 0.",
    "first_order": "Per trial, the measured change of the probe trait loss (last step − first) against the "
                   "first-order change the steps predict (Σ g_t·Δθ over the same steps); the line is y = x. Legend: "
                   f"each arm's share mean(predicted) / mean(measured) over seeds with its {BAND} (delta method), "
                   "the tests table's first-order rows.",
    "across": "Along the axis: each arm's mean alignment, update alignment and trait gain at each level, mean ± "
              f"{BAND} over seeds; thin lines with {BAND} bands: each arm's trend along the axis (OLS over trials on "
              "log2 of the axis where its values span 4x or more, SEs clustered by seed), the tests table's trend "
              "rows. On the alignments, dashed: none/shared's power law in the parameter count P, the table's "
              "exponent row (Gaussian GLM with log link, SEs clustered by seed), at each level's P; "
              "dotted: the P^-1/2 of random directions from the fit's first level. Right: none/shared's trait gain "
              "against mean alignment, one point per trial coloured by level, and the table's across-levels "
              "tracking slope with its band.",
}


def arm_colours(trials: pd.DataFrame) -> dict[str, str]:
    """One colour per arm, the same in every figure: grey for none, blues for projection, reds for liminal."""
    colours, used = {}, {kind: 0 for kind in MITIGATIONS}
    firsts = trials.groupby("arm").first()
    for arm in arm_order(trials):
        kind = firsts.at[arm, "mitigation"] if firsts.at[arm, "mitigation"] in MITIGATIONS else "liminal"
        palette = MITIGATIONS[kind].colours
        colours[arm] = palette[used[kind] % len(palette)]
        used[kind] += 1
    return colours


def _panels(completed: pd.DataFrame) -> list[tuple[str, list[str], str | None]]:
    """(title, arms, reference arm): one panel per mitigation; mitigated panels repeat the baseline as reference."""
    arms, firsts = arm_order(completed), completed.groupby("arm").first()
    panels = []
    for kind, mitigation in MITIGATIONS.items():
        chosen = [arm for arm in arms if firsts.at[arm, "mitigation"] == kind]
        reference = BASELINE if kind != "none" and BASELINE in arms else None
        if chosen:
            panels.append((mitigation.title, [reference, *chosen] if reference else chosen, reference))
    others = [arm for arm in arms if firsts.at[arm, "mitigation"] not in MITIGATIONS]
    return panels + ([("other", others, None)] if others else [])


def _figure(panels: int, width: float = 5.2, height: float = 4.0, sharey: bool = True) -> tuple[Figure, list[Any]]:
    """Panels side by side (on one y scale by default, so that arms compare across panels at a glance)."""
    fig = Figure(figsize=(width * panels, height), dpi=DPI, layout="constrained")
    return fig, list(fig.subplots(1, panels, squeeze=False, sharey=sharey)[0])


def _title(fig: Figure, text: str) -> None:
    """A figure title wrapped to the figure's width, so that a one-panel figure does not clip it."""
    fig.suptitle(textwrap.fill(text, width=int(fig.get_figwidth() * 9)))


def _legend_below(ax: Any, columns: int = 2) -> None:
    """Below the panel, so that it never hides a curve."""
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=columns, frameon=False)


def _interval(row: pd.Series) -> str:
    return f"{row['estimate']:.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}]"


def _rows(tests: pd.DataFrame, answered: bool = False, **match: str) -> pd.DataFrame:
    """The tests table's rows with these values (`answered`: neither refused nor zero by construction)."""
    chosen = tests[np.logical_and.reduce([tests[column] == value for column, value in match.items()])]
    return chosen[~chosen["verdict"].isin([REFUSED, ZERO])] if answered else chosen


def _curve(ax: Any, x: Any, mean: Any, half: Any, colour: str, label: str, reference: bool,
           marker: str | None = None) -> None:
    """A mean line with its band; a panel's reference arm is a dashed line without band, to keep it legible."""
    if reference:
        ax.plot(x, mean, color=colour, label=f"{label}, reference", linewidth=1.2, linestyle="--", marker=marker)
        return
    ax.plot(x, mean, color=colour, label=label, marker=marker, linewidth=1.6)
    ax.fill_between(x, mean - half, mean + half, color=colour, alpha=0.2, linewidth=0)


STEP_SERIES = {  # trace column -> (y label, figure title)
    "alignment": ("alignment cos(g_distill, g_trait)", "Gradient alignment during distillation"),
    "update_alignment": ("update alignment cos(−Δθ, g_trait)",
                         "Update alignment during distillation (the step Adam applied, against the trait gradient)"),
}


def alignment_over_steps(steps: pd.DataFrame, completed: pd.DataFrame, column: str = "alignment") -> Figure:
    """Per arm: the mean of `column` at each optimizer step across trials, its 95% band, and the zero line."""
    steps = steps[steps["trial_id"].isin(completed["trial_id"])] if column in steps else steps.iloc[:0]
    steps = steps.dropna(subset=[column, "step"]) if len(steps) else steps
    need(len(steps) > 0, f"needs the step traces' {column} column, has none")
    window = max(1, round(steps["step"].max() / 50))
    steps = steps.sort_values(["trial_id", "step"]).assign(smooth=lambda d: d.groupby("trial_id")[column]
                                                           .transform(lambda a: a.rolling(window, 1, center=True).mean()))
    colours, panels = arm_colours(completed), _panels(completed)
    fig, axes = _figure(len(panels))
    boundaries = steps.groupby("epoch")["step"].min().iloc[1:]
    for ax, (title, arms, reference) in zip(axes, panels):
        for arm in arms:
            by_step = steps[steps["arm"] == arm].groupby("step")["smooth"].agg(["mean", "std", "count"])
            if len(by_step):
                trials = steps.loc[steps["arm"] == arm, "trial_id"].nunique()
                _curve(ax, by_step.index, by_step["mean"], inf.t_halfwidth(by_step["std"], by_step["count"]),
                       colours[arm], f"{arm} (n={trials})", arm == reference)
        ax.axhline(0, color="black", linewidth=0.8, linestyle="--")
        for step in boundaries:
            ax.axvline(step, color="#bbbbbb", linewidth=0.6, linestyle=":")
        ax.set(title=title, xlabel="optimizer step (dotted lines: epoch boundaries)")
        _legend_below(ax)
    label, heading = STEP_SERIES[column]
    axes[0].set_ylabel(label)
    smoothing = f", rolling mean over {window} steps" if window > 1 else ""
    _title(fig, f"{heading}: mean across trials with {BAND} band{smoothing}")
    return fig


def accuracy_over_epochs(epochs: pd.DataFrame, completed: pd.DataFrame) -> Figure:
    """Per arm: mean test accuracy after each epoch (0 = before distillation) with its 95% band."""
    epochs = epochs.dropna(subset=["acc_mean"]) if "acc_mean" in epochs else epochs.iloc[:0]
    need(len(epochs) > 0, "needs per-epoch test accuracy (acc_by_epoch), has none")
    colours, panels = arm_colours(completed), _panels(completed)
    fig, axes = _figure(len(panels))
    for ax, (title, arms, reference) in zip(axes, panels):
        for arm in arms:
            rows = epochs[epochs["arm"] == arm]
            _curve(ax, rows["epoch"], rows["acc_mean"], (rows["acc_ci_high"] - rows["acc_ci_low"]) / 2, colours[arm],
                   f"{arm} (n={int(rows['acc_n'].max())})", arm == reference, marker="o")
        ax.axhline(CHANCE, color="black", linewidth=0.8, linestyle=":", label="chance (0.1)")
        ax.set(title=title, xlabel="distillation epoch (0 = before)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        _legend_below(ax)
    axes[0].set_ylabel("student test accuracy (fraction)")
    _title(fig, f"Trait acquisition: student MNIST test accuracy, mean across trials with {BAND} band")
    return fig


def slope_lines(completed: pd.DataFrame, tests: pd.DataFrame, x: str) -> list[tuple[str, bool, Any]]:
    """The fits the verdicts on trait_gain ~ x use, as (arm, common, fitted model): each shared-init arm's own
    line where its slope row is answered; and where the common-slope row is answered (heterogeneity not shown),
    the common slope over the shared-init arms with an intercept per arm, once per arm."""
    metric = f"trait_gain ~ {x}"
    lines = [(arm, False, inf.slope(completed[completed["arm"] == arm], x)[1])
             for arm in _rows(tests, answered=True, test="slope", metric=metric)["arm"]]
    if len(_rows(tests, answered=True, test="common slope", metric=metric)):
        shared = completed[completed["student_init"] == "shared"]
        common = inf.slope(shared, x)[1]
        lines += [(arm, True, common) for arm in arm_order(shared)]
    return lines


def _fit_line(ax: Any, fit: Any, exog: pd.DataFrame, grid: np.ndarray, colour: str, band: bool = True,
              **style: Any) -> None:
    """A fitted model's mean at the rows of `exog` drawn over `grid`, with the 95% band of that mean."""
    line = fit.get_prediction(exog).summary_frame(alpha=inf.ALPHA)
    ax.plot(grid, line["mean"], color=colour, **style)
    if band:
        ax.fill_between(grid, line["mean_ci_lower"], line["mean_ci_upper"], color=colour, alpha=0.15, linewidth=0)


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
    return "\n".join(textwrap.fill(part, width=60) for part in parts) or "no slope in the tests table"


def gain_vs_alignment(completed: pd.DataFrame, tests: pd.DataFrame) -> Figure:
    """Each trial's trait_gain against its mean alignment, raw and applied, with the per-arm (and, where the
    table allows it, common) fits the tests table's slope rows answer with."""
    xs = [x for x in MEDIATORS if x in completed and completed[["trait_gain", x]].notna().all(axis=1).any()]
    need(bool(xs), f"needs trials with finite trait_gain and {' or '.join(MEDIATORS)}, has none")
    colours = arm_colours(completed)
    fig, axes = _figure(len(xs), width=6.4, height=5.6, sharey=False)
    for ax, x in zip(axes, xs):
        points = completed.dropna(subset=["trait_gain", x])
        slopes = _rows(tests, answered=True, test="slope", metric=f"trait_gain ~ {x}").set_index("arm")
        for arm in arm_order(points):
            rows = points[points["arm"] == arm]
            slope = f": slope {_interval(slopes.loc[arm])}" if arm in slopes.index else ""
            ax.scatter(rows[x], rows["trait_gain"], color=colours[arm], s=24, alpha=0.85,
                       label=f"{arm} (n={len(rows)}){slope}")
        for arm, common, fit in slope_lines(completed, tests, x):  # the arm's own line, or its common-slope line
            own = points.loc[points["arm"] == arm, x]
            grid = np.linspace(own.min(), own.max(), 50)
            exog = pd.DataFrame({name: grid if name == x else float(name in ("const", f"arm={arm}"))
                                 for name in fit.model.exog_names})
            _fit_line(ax, fit, exog, grid, colours[arm], band=not common, linewidth=1.2 if common else 1.6,
                      linestyle="--" if common else "-", gid=f"{'common' if common else 'arm'}:{arm}")
        ax.axhline(0, color="black", linewidth=0.8, linestyle=":")
        ax.axvline(0, color="black", linewidth=0.8, linestyle=":")
        ax.set(xlabel=X_LABELS[x], ylabel=GAIN, title=_slope_title(tests, x))
        ax.locator_params(axis="x", nbins=5)
        _legend_below(ax, columns=1)
    _title(fig, f"Does alignment relate to acquisition? One point per trial; per-arm OLS lines with {BAND} bands "
                "(solid), the common slope with arm intercepts where the arms' slopes do not differ (dashed)")
    return fig


def _dose_line(ax: Any, completed: pd.DataFrame, kind: str, top: float, colour: str) -> None:
    """The dose model the mediation rows of `kind` use (`inference.dose_model`: trait_gain ~ dose + an intercept
    per seed, by OLS, on the scale its rule chose) at the sample's average seed, with its band; or why there is
    none."""
    sample = mitigation_sample(completed, kind).dropna(subset=["trait_gain", "strength"])
    if not (sample["strength"] > 0).any() or len(sample) <= sample["seed"].nunique() + 1:
        ax.plot([], [], " ", label="no dose model: needs more trials than seeds + 1, some at strength > 0")
        return
    model = inf.dose_model(sample)
    grid = np.unique(np.concatenate([np.linspace(0, top, 60), np.geomspace(model.s_min, top, 60)]))
    exog = pd.DataFrame([model.exog.mean()] * len(grid)).assign(dose=inf.DOSES[model.scale](grid, model.s_min))
    dose = "s" if model.scale == "linear" else f"log(1 + s/{model.s_min:g})"
    _fit_line(ax, model.fit, exog, grid, colour, linewidth=1.2, linestyle="-.", gid=f"dose:{kind}:{model.scale}",
              label=f"dose model: trait_gain ~ {dose} + seed, slope {model.fit.params['dose']:.3g}")


def dose_response(completed: pd.DataFrame, doses: pd.DataFrame) -> Figure:
    """Per mitigation: trait_gain and mean alignment against strength, trial points and mean ± 95% CI, and on
    trait_gain the dose model its mediation rows use."""
    kinds = list(dict.fromkeys(doses["mitigation"])) if len(doses) else []
    need(bool(kinds), "needs completed shared-init trials of a mitigation, has none")
    fig = Figure(figsize=(10.5, 3.9 * len(kinds)), dpi=DPI, layout="constrained")
    for row, kind in zip(fig.subplots(len(kinds), 2, squeeze=False), kinds):
        levels = doses[doses["mitigation"] == kind].sort_values("strength")
        strengths = levels["strength"].to_numpy(dtype=float)
        sample, colour = mitigation_sample(completed, kind), MITIGATIONS[kind].colours[0]
        for ax, (metric, label) in zip(row, (("trait_gain", GAIN), ("mean_alignment", "mean alignment (cosine)"))):
            ax.scatter(sample["strength"], sample[metric], color=colour, alpha=0.3, s=14, label="trials")
            mean = levels[f"{metric}_mean"].to_numpy(dtype=float)
            ax.errorbar(strengths, mean, yerr=np.nan_to_num(levels[f"{metric}_ci_high"].to_numpy(dtype=float) - mean),
                        color=colour, marker="o", capsize=4, linewidth=1.6, label=f"mean ± {BAND}")
            if metric == "trait_gain":
                _dose_line(ax, completed, kind, float(strengths.max()), colour)
            ax.axhline(0, color="black", linewidth=0.8, linestyle="--")
            positive, scale = strengths[strengths > 0], ""
            if len(positive) and positive.max() / positive.min() > 20:  # e.g. 0.1 to 10: spread them out
                ax.set_xscale("symlog", linthresh=positive.min())
                ax.set_xlim(-0.5 * positive.min(), positive.max() * 1.6)
                scale = f"; log scale above {positive.min():g}"
            ax.set_xticks(strengths, [f"{s:g}" for s in strengths])
            ax.minorticks_off()
            ax.set(xlabel=f"{kind} strength s (0 = no mitigation{scale})", ylabel=label,
                   title=f"{MITIGATIONS[kind].title}: {label.split(' (')[0]}")
            ax.legend(fontsize="small")
    _title(fig, "Dose-response across mitigation strength (shared-init students), with the dose model of the "
                "mediation on trait gain")
    return fig


def per_layer_alignment(tests: pd.DataFrame, completed: pd.DataFrame) -> Figure:
    """Per layer, each arm's mean per-trial alignment over that layer's weights with its 95% CI, from the tests
    table's layer rows; a layer that is 0 by construction is marked as such, not drawn as a measurement."""
    rows = _rows(tests, claim="layers").assign(layer=lambda r: r["metric"].str.removeprefix("mean_alignment_"))
    rows = rows[rows["verdict"] != REFUSED]
    need(len(rows) > 0, "needs at least 3 seeds of an arm with per-layer alignment in the traces, has none")
    layers, arms = list(dict.fromkeys(rows["layer"])), [a for a in arm_order(completed) if a in set(rows["arm"])]
    fig, (ax,) = _figure(1, width=max(7.5, 1.1 * len(arms) + 4.5), height=4.8)
    for i, (arm, colour) in enumerate((arm, arm_colours(completed)[arm]) for arm in arms):
        mine = rows[rows["arm"] == arm].assign(x=lambda r: r["layer"].map(layers.index) - 0.4
                                               + 0.8 * (i + 0.5) / len(arms))
        zero, tested = mine[mine["verdict"] == ZERO], mine[mine["verdict"] != ZERO]
        ax.errorbar(tested["x"], tested["estimate"], yerr=[tested["estimate"] - tested["ci_low"],
                    tested["ci_high"] - tested["estimate"]], color=colour, marker="o", capsize=3, linestyle="none",
                    linewidth=1.4, label=f"{arm} (n={mine['n'].max():.0f} seeds)")
        ax.scatter(zero["x"], np.zeros(len(zero)), color=colour, marker="x", s=50, zorder=3)
    for layer in set(rows.loc[rows["verdict"] == ZERO, "layer"]):
        ax.annotate("0 by construction\n(not tested)", (layers.index(layer), 0), xytext=(0, 14),
                    textcoords="offset points", ha="center", fontsize="small")
    ax.axhline(0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(layers)), layers)
    for boundary in np.arange(0.5, len(layers) - 1):
        ax.axvline(boundary, color="#dddddd", linewidth=0.8)
    ax.set(xlabel="layer (fc1: 784 → hidden, fc2: hidden → hidden, out: hidden → 10 + m logits)",
           ylabel="mean alignment cos(g_distill, g_trait) in the layer")
    _legend_below(ax)
    _title(fig, f"Which layer carries the drive? Per-trial mean alignment by layer, mean per arm with {BAND}")
    return fig


def first_order(completed: pd.DataFrame, tests: pd.DataFrame) -> Figure:
    """Per trial the measured change of the probe trait loss against the first-order prediction, with y = x and
    each arm's share from the tests table's first-order rows."""
    columns = ["measured_trait_loss_change", "predicted_trait_loss_change"]
    points = completed.dropna(subset=columns) if set(columns) <= set(completed) else completed.iloc[:0]
    need(len(points) > 0, "needs traces with the probe trait loss and update_trait_change, has none")
    shares, colours = _rows(tests, answered=True, test="first-order share").set_index("arm"), arm_colours(completed)
    fig, (ax,) = _figure(1, width=8.0, height=7.0)
    for arm in arm_order(points):
        rows = points[points["arm"] == arm]
        said = f"share {_interval(shares.loc[arm])}" if arm in shares.index else "no share (see the tests table)"
        ax.scatter(rows[columns[0]], rows[columns[1]], color=colours[arm], s=24, alpha=0.85,
                   label=f"{arm} (n={len(rows)}): {said}")
    ends = [float(points[columns].min().min()), float(points[columns].max().max())]
    ax.plot(ends, ends, color="black", linewidth=1.0, label="y = x: first order accounts for all")
    ax.axhline(0, color="black", linewidth=0.6, linestyle=":")
    ax.axvline(0, color="black", linewidth=0.6, linestyle=":")
    ax.set(xlabel="measured change of the probe trait loss (last step − first step, nats)",
           ylabel="predicted first-order change Σ g_t·Δθ (nats)")
    _legend_below(ax, columns=1)
    _title(fig, "First-order accounting: does the first-order drive Σ g_t·Δθ account for the measured change of the "
                "trait loss? One point per trial")
    return fig


Y_LABELS = {"mean_alignment": "mean alignment cos(g_distill, g_trait)",
            "mean_update_alignment": "mean update alignment cos(−Δθ, g_trait)", "trait_gain": GAIN}


def across_axis(completed: pd.DataFrame, tests: pd.DataFrame, table: pd.DataFrame, axis: str,
                axes: dict[str, list[Any]]) -> Figure:
    """Along one axis: each arm's mean alignment, update alignment and trait gain per level (mean ± 95% CI over
    seeds) with the trend the tests table fits; on the alignments, none/shared's power law in P (the exponent
    row) beside the slope −1/2 of random directions; and trait gain against mean alignment in none/shared with
    the across-levels tracking line: each line the fit of its tests-table row (`axes`' fit functions)."""
    need(len(table) > 0 and table[axis].nunique() >= 2, f"needs completed trials at 2 or more values of {axis}")
    claim, colours = f"across {axis}", arm_colours(completed)
    fitted = regressor(completed[axis], axis)
    numeric = fitted is not None
    fig = Figure(figsize=(13.5, 12.5), dpi=DPI, layout="constrained")
    panels = list(fig.subplots(2, 2).flat)
    positions = {value: i for i, value in enumerate(dict.fromkeys(table[axis]))}
    for ax, metric in zip(panels, RELATION_METRICS):
        for arm in arm_order(completed):
            rows = table[table["arm"] == arm]
            if rows.empty:
                continue
            x = rows[axis].astype(float) if numeric else rows[axis].map(positions)
            mean = rows[f"{metric}_mean"].to_numpy(dtype=float)
            trend = _rows(tests, answered=True, claim=claim, arm=arm, test=TREND, metric=f"{metric} ~ {fitted[0]}"
                          ) if numeric else tests.iloc[:0]
            said = f": trend {_interval(trend.iloc[0])} per {'doubling' if fitted[0].startswith('log2') else 'unit'}" \
                if len(trend) else ""
            ax.errorbar(x, mean, yerr=[mean - rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"] - mean],
                        color=colours[arm], marker="o", capsize=3, linestyle="none" if len(trend) else "-",
                        label=f"{arm} (n={int(rows[f'{metric}_n'].max())} per level){said}")
            if len(trend):
                fit = trend_fit(completed, axes, axis, arm, metric)[1]
                grid = np.geomspace(x.min(), x.max(), 50) if fitted[0].startswith("log2") else np.linspace(
                    x.min(), x.max(), 50)
                exog = pd.DataFrame({name: (np.log2(grid) if fitted[0].startswith("log2") else grid)
                                     if name == fitted[0] else float(name == "const") for name in fit.model.exog_names})
                _fit_line(ax, fit, exog, grid, colours[arm], linewidth=1.0, gid=f"trend:{arm}:{metric}")
        exponent = _rows(tests, answered=True, claim=claim, test=EXPONENT_TEST, metric=f"{metric} ∝ P^b")
        if len(exponent):
            rows = table[table["arm"] == BASELINE].drop_duplicates(axis)
            x, power = rows[axis].astype(float), rows["parameter_count"].to_numpy(dtype=float)
            fit = exponent_fit(completed, axes, axis, metric)[1]
            exog = pd.DataFrame({name: np.log(power) if name == "parameter_count" else float(name == "const")
                                 for name in fit.model.exog_names})
            curve = fit.predict(exog)
            ax.plot(x, curve, color="black", linestyle="--", linewidth=1.2, gid=f"exponent:{metric}",
                    label=f"{BASELINE} fit ∝ P^b, b = {_interval(exponent.iloc[0])}")
            ax.plot(x, curve[0] * (power / power[0]) ** RANDOM_EXPONENT, color="#888888", linestyle=":",
                    linewidth=1.2, label=f"∝ P^{RANDOM_EXPONENT:g} (random directions), for comparison")
        ax.axhline(0, color="black", linewidth=0.6, linestyle=":")
        if numeric and fitted[0].startswith("log2"):
            ax.set_xscale("log", base=2)
        ticks = sorted(positions) if numeric else list(positions.values())
        ax.set_xticks([float(t) for t in ticks] if numeric else ticks, [str(v) for v in positions])
        ax.minorticks_off()
        ax.set(xlabel=axis, ylabel=Y_LABELS[metric], title=f"{Y_LABELS[metric].split(' cos')[0]} along {axis}")
        _legend_below(ax, columns=1)
    ax = panels[-1]
    base = completed[completed["arm"] == BASELINE].dropna(subset=["trait_gain", "mean_alignment"])
    for value in positions:
        rows = base[base[axis] == value]
        ax.scatter(rows["mean_alignment"], rows["trait_gain"], s=22, alpha=0.85,
                   label=f"{axis} = {value} (n={len(rows)})")
    tracking = _rows(tests, answered=True, claim=claim, test=TRACKING_ACROSS)
    if len(tracking) and len(base):
        fit = tracking_fit(completed, axes, axis)[1]
        grid = np.linspace(base["mean_alignment"].min(), base["mean_alignment"].max(), 50)
        exog = pd.DataFrame({name: grid if name == "mean_alignment" else float(name == "const")
                             for name in fit.model.exog_names})
        _fit_line(ax, fit, exog, grid, "black", linewidth=1.4, gid="tracking",
                  label=f"across levels: slope {_interval(tracking.iloc[0])}")
    ax.set(xlabel=X_LABELS["mean_alignment"], ylabel=GAIN,
           title=f"{BASELINE}: does trait gain track alignment across {axis}?")
    _legend_below(ax, columns=1)
    _title(fig, f"Along {axis}: mean ± {BAND} over seeds per level; lines: the tests table's fits (trend per arm; "
                f"{BASELINE}'s power law in P; tracking), SEs clustered by seed")
    return fig


def draw(name: str, build: Callable[[], Figure], folder: Path) -> dict[str, str]:
    """One figure into `folder` as NAME.png: {"file": path relative to the report folder} or {"refused": why},
    a stale PNG removed. Text is drawn literally (no mathtext), so that a label holding `$` cannot break it."""
    path = folder / f"{name}.png"
    try:
        with matplotlib.rc_context({"text.parse_math": False}):
            fig = build()
            atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
        return {"file": f"{folder.name}/{path.name}"}
    except Refusal as refusal:
        path.unlink(missing_ok=True)  # a stale figure from an earlier report would mislead
        return {"refused": str(refusal)}


def draw_all(completed: pd.DataFrame, steps: pd.DataFrame, epochs: pd.DataFrame, tests: pd.DataFrame,
             doses: pd.DataFrame, folder: Path, suffix: str = "") -> dict[str, dict[str, str]]:
    """Draw every figure into `folder`, each named NAME + `suffix` (a level's, in a sweep over axes):
    {name: {"file": path relative to the report folder} or {"refused": why}}."""
    jobs: dict[str, Callable[[], Figure]] = {
        "alignment_steps": lambda: alignment_over_steps(steps, completed),
        "update_alignment_steps": lambda: alignment_over_steps(steps, completed, column="update_alignment"),
        "accuracy_epochs": lambda: accuracy_over_epochs(epochs, completed),
        "gain_vs_alignment": lambda: gain_vs_alignment(completed, tests),
        "dose_response": lambda: dose_response(completed, doses),
        "per_layer_alignment": lambda: per_layer_alignment(tests, completed),
        "first_order": lambda: first_order(completed, tests),
    }
    return {name + suffix: draw(name + suffix, build, folder) for name, build in jobs.items()}
