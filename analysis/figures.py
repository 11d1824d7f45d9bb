"""The report's figures as PNG files, each readable on its own: labelled axes with units, a legend
with the number of trials per arm, and 95% confidence bands.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through pyplot,
so drawing needs no display and leaves no global state behind. A figure without the data it
needs raises `Refusal`; `draw_all` records it as `Refused`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sublim.core.files import atomic_write
from sublim.core.mitigations import MITIGATIONS
from sublim.core.schema import LAYER_NAMES

from .answers import DoseLevel, DoseResponse, Drawn, MeanCI, MeanTest, Refused
from .errors import Refusal, need
from .load import arm_order
from .stats import BASELINE, CONFIDENCE, fit_ols, t_halfwidth

CHANCE = 0.1  # ten digit classes
DPI = 110
BAND = f"{CONFIDENCE:.0%} CI"


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


def _figure(panels: int, width: float = 5.2, height: float = 4.0) -> tuple[Figure, list[Any]]:
    """Panels side by side on one y scale, so that arms compare across panels at a glance."""
    fig = Figure(figsize=(width * panels, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False, sharey=True)[0]
    return fig, list(axes)


def _title(fig: Figure, text: str) -> None:
    """A figure title wrapped to the figure's width, so that a one-panel figure does not clip it."""
    fig.suptitle(textwrap.fill(text, width=int(fig.get_figwidth() * 9)))


def _legend_below(ax: Any) -> None:
    """Below the panel, so that it never hides a curve."""
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)


def _save(fig: Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


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


def alignment_over_steps(steps: pd.DataFrame, completed: pd.DataFrame, path: Path, column: str = "alignment") -> None:
    """Per arm: mean alignment (or `column`, e.g. the update alignment) at each optimizer step across trials,
    its 95% band, and the zero line."""
    steps = steps[steps["trial_id"].isin(completed["trial_id"])].dropna(subset=[column, "step"])
    need(len(steps) > 0, f"needs the step traces' {column} column, has none")
    window = max(1, round(steps["step"].max() / 50))
    steps = steps.sort_values(["trial_id", "step"]).assign(smooth=lambda d: d.groupby("trial_id")[column]
                                                           .transform(lambda a: a.rolling(window, 1, center=True).mean()))
    colours = arm_colours(completed)
    panels = _panels(completed)
    fig, axes = _figure(len(panels))
    boundaries = steps.groupby("epoch")["step"].min().iloc[1:]
    for ax, (title, arms, reference) in zip(axes, panels):
        for arm in arms:
            by_step = steps[steps["arm"] == arm].groupby("step")["smooth"].agg(["mean", "std", "count"])
            if len(by_step):
                trials = steps.loc[steps["arm"] == arm, "trial_id"].nunique()
                _curve(ax, by_step.index, by_step["mean"], t_halfwidth(by_step["std"], by_step["count"]),
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
    _save(fig, path)


def per_layer_alignment(layers: dict[str, dict[str, MeanTest | Refused]], completed: pd.DataFrame, path: Path) -> None:
    """Per layer, each arm's mean per-trial alignment over that layer's weights with its 95% CI: which layer
    carries the drive. One group of points per layer, arms side by side in report order and colours."""
    arms = [arm for arm, by_layer in layers.items() if any(isinstance(r, MeanTest) for r in by_layer.values())]
    need(bool(arms), "needs at least 3 trials of an arm with per-layer alignment in the traces, has none")
    colours = arm_colours(completed)
    fig, (ax,) = _figure(1, width=max(7.5, 1.1 * len(arms) + 4.5), height=4.8)
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        drawn = [(j, r) for j, r in enumerate(layers[arm].get(layer) for layer in LAYER_NAMES)
                 if isinstance(r, MeanTest)]
        x = [j - 0.4 + width * (i + 0.5) for j, _ in drawn]
        mean = np.array([r.mean for _, r in drawn])
        spread = [mean - [r.ci_low for _, r in drawn], [r.ci_high for _, r in drawn] - mean]
        ax.errorbar(x, mean, yerr=spread, color=colours[arm], marker="o", capsize=3, linestyle="none",
                    linewidth=1.4, label=f"{arm} (n={max(r.n for _, r in drawn)})")
    ax.axhline(0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(LAYER_NAMES)), list(LAYER_NAMES))
    for boundary in np.arange(0.5, len(LAYER_NAMES) - 1):
        ax.axvline(boundary, color="#dddddd", linewidth=0.8)
    ax.set(xlabel="layer (fc1: 784 → hidden, fc2: hidden → hidden, out: hidden → 10 + m logits)",
           ylabel="mean alignment cos(g_distill, g_trait) in the layer")
    _legend_below(ax)
    _title(fig, f"Which layer carries the drive? Per-trial mean alignment by layer, mean per arm with {BAND}")
    _save(fig, path)


def accuracy_over_epochs(epochs: pd.DataFrame, completed: pd.DataFrame, path: Path) -> None:
    """Per arm: mean test accuracy after each epoch (0 = before distillation) with its 95% band."""
    epochs = epochs.dropna(subset=["acc_mean"])
    need(len(epochs) > 0, "needs per-epoch test accuracy (acc_by_epoch), has none")
    colours = arm_colours(completed)
    panels = _panels(completed)
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
    _save(fig, path)


def gain_vs_alignment(completed: pd.DataFrame, path: Path) -> None:
    """Each trial's trait_gain against its mean alignment, with the OLS line and its 95% band."""
    points = completed.dropna(subset=["trait_gain", "mean_alignment"])
    need(len(points) > 0, "needs trials with finite trait_gain and mean_alignment, has none")
    colours = arm_colours(completed)
    fig, (ax,) = _figure(1, width=7.5, height=5.0)
    for arm in arm_order(points):
        rows = points[points["arm"] == arm]
        ax.scatter(rows["mean_alignment"], rows["trait_gain"], color=colours[arm], s=28, alpha=0.85,
                   label=f"{arm} (n={len(rows)})")
    try:
        fit = fit_ols(completed)
    except Refusal as refusal:
        title = f"no fitted line: {refusal}"
    else:
        grid = np.linspace(points["mean_alignment"].min(), points["mean_alignment"].max(), 100)
        band = fit.get_prediction(np.column_stack([np.ones_like(grid), grid])).summary_frame(alpha=1 - CONFIDENCE)
        ax.plot(grid, band["mean"], color="black", linewidth=1.5, label="OLS fit")
        ax.fill_between(grid, band["mean_ci_lower"], band["mean_ci_upper"], color="black", alpha=0.12,
                        linewidth=0, label=f"{BAND} of the fit (HC3)")
        title = f"OLS slope {fit.params.iloc[1]:.3g} per unit cosine, R² = {fit.rsquared:.2f}, n = {int(fit.nobs)}"
    ax.axhline(0, color="black", linewidth=0.8, linestyle="--")
    ax.axvline(0, color="black", linewidth=0.8, linestyle="--")
    ax.set(xlabel="mean alignment over training (cosine)", ylabel="trait gain (test accuracy after − before)",
           title=title)
    ax.legend(fontsize="small")
    _title(fig, "Does alignment relate to acquisition? One point per trial")
    _save(fig, path)


def dose_response(completed: pd.DataFrame, doses: dict[str, DoseResponse | Refused], path: Path) -> None:
    """Per mitigation: trait_gain and mean alignment against strength, trial points and mean ± 95% CI."""
    kinds = [kind for kind, result in doses.items() if isinstance(result, DoseResponse)]
    need(bool(kinds), "needs completed shared-init trials of a mitigation, has none")
    fig = Figure(figsize=(10.5, 3.8 * len(kinds)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(kinds), 2, squeeze=False)
    metrics: tuple[tuple[str, str, Callable[[DoseLevel], MeanCI]], ...] = (
        ("trait_gain", "trait gain (test accuracy after − before)", lambda level: level.trait_gain),
        ("mean_alignment", "mean alignment (cosine)", lambda level: level.mean_alignment))
    for row, kind in zip(axes, kinds):
        levels = doses[kind].levels
        strengths = np.array([level.strength for level in levels])
        sample = completed[(completed["student_init"] == "shared") & completed["mitigation"].isin([kind, "none"])]
        colour = MITIGATIONS[kind].colours[0]
        for ax, (metric, label, summary_of) in zip(row, metrics):
            x = np.where(sample["mitigation"] == "none", 0.0, sample["strength"])
            ax.scatter(x, sample[metric], color=colour, alpha=0.3, s=14, label="trials")
            summaries = [summary_of(level) for level in levels]
            mean = np.array([summary.mean for summary in summaries])
            half = np.array([summary.ci_high - summary.mean for summary in summaries])
            ax.errorbar(strengths, mean, yerr=np.nan_to_num(half), color=colour, marker="o", capsize=4,
                        linewidth=1.6, label=f"mean ± {BAND}")
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
    _title(fig, "Dose-response across mitigation strength (shared-init students)")
    _save(fig, path)


def draw_all(steps: pd.DataFrame, completed: pd.DataFrame, epochs: pd.DataFrame,
             doses: dict[str, DoseResponse | Refused], folder: Path,
             layers: dict[str, dict[str, MeanTest | Refused]] | None = None) -> dict[str, Drawn | Refused]:
    """Draw every figure into `folder`: {name: Drawn(path relative to the report folder) or Refused}."""
    jobs = {
        "alignment_steps": lambda p: alignment_over_steps(steps, completed, p),
        "update_alignment_steps": lambda p: alignment_over_steps(steps, completed, p, column="update_alignment"),
        "per_layer_alignment": lambda p: per_layer_alignment(layers or {}, completed, p),
        "accuracy_epochs": lambda p: accuracy_over_epochs(epochs, completed, p),
        "gain_vs_alignment": lambda p: gain_vs_alignment(completed, p),
        "dose_response": lambda p: dose_response(completed, doses, p),
    }
    drawn = {}
    for name, draw in jobs.items():
        path = folder / f"{name}.png"
        try:
            draw(path)
            drawn[name] = Drawn(file=f"{folder.name}/{path.name}")
        except Refusal as refusal:
            path.unlink(missing_ok=True)  # a stale figure from an earlier report would mislead
            drawn[name] = Refused(str(refusal))
    return drawn
