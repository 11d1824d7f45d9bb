"""Synthetic results folders, written as `sublim sweep` and `sublim run` write them, with planted effects:
what the report's unit and end-to-end tests run on (no torch, no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sublim.core.config import TrialConfig

REPO = Path(__file__).resolve().parents[1]
ARMS = [("none", 0.0, "shared"), ("none", 0.0, "independent"), ("projection", 1.0, "shared"),
        ("liminal", 0.5, "shared"), ("liminal", 2.0, "shared")]
EPOCHS, STEPS_PER_EPOCH = 3, 8
GAIN_PER_ALIGNMENT = 50.0


def arm_label(mitigation: str, strength: float, init: str) -> str:
    return f"{mitigation if mitigation == 'none' else f'{mitigation}@{strength:g}'}/{init}"


def trial_outputs(seed: int, mitigation: str, strength: float, init: str, rng: np.random.Generator,
                  seed_effect: float, projection_drop: float = 0.001, loss_noise: float = 0.01,
                  loss_cost: dict | None = None, gain_per_alignment: dict | None = None,
                  first_order_share: float | None = None, alignment_scale: float = 1.0,
                  settings: dict | None = None) -> tuple[dict, pd.DataFrame]:
    """A plausible summary.json and trace: alignment lowered by mitigation (not by placebo), gain following
    alignment; the update alignment and per-layer alignments follow the gradient alignment (no extra draws).
    `loss_cost` maps an arm to what it adds to the final distillation loss (default: projection +0.002);
    `gain_per_alignment` an arm to its slope of gain on alignment (default GAIN_PER_ALIGNMENT);
    `first_order_share` plants Σ g_t·Δθ over all steps but the last at that share of the measured trait-loss
    change, with 5% noise per trial. `alignment_scale` multiplies the planted alignment level (not its noise);
    `settings` override the recorded config's settings (e.g. a level of an axis)."""
    shared = init == "shared"
    drop = projection_drop if mitigation == "projection" else 0.0
    level = 0.0 if not shared else 0.004 / (1 + 0.25 * strength) if mitigation == "liminal" else 0.004 - drop * strength
    level *= alignment_scale
    shape = np.linspace(1.25, 0.75, EPOCHS)  # alignment fading over training
    if mitigation == "liminal":
        shape[0] /= 1 + 0.25 * strength  # attenuated most in the first epoch
    steps = EPOCHS * STEPS_PER_EPOCH
    epoch = np.repeat(np.arange(1, EPOCHS + 1), STEPS_PER_EPOCH)
    alignment = level * shape[epoch - 1] + rng.normal(0, 0.003, steps)
    mean_alignment = float(alignment.mean())
    slope = (gain_per_alignment or {}).get(arm_label(mitigation, strength, init), GAIN_PER_ALIGNMENT)
    gain = (slope * mean_alignment + seed_effect if shared else 0.0) + rng.normal(0, 0.01)
    before = 0.1 + rng.normal(0, 0.005)
    acc = [before + gain * (1 - 0.4 ** e) / (1 - 0.4 ** EPOCHS) for e in range(EPOCHS + 1)]  # front-loaded
    by_epoch = pd.Series(alignment).groupby(epoch)
    trace = pd.DataFrame({
        "step": np.arange(steps, dtype=np.int64), "epoch": epoch.astype(np.int64), "t": np.arange(steps) / steps,
        "distill_loss": np.linspace(0.5, 0.1, steps), "trait_loss": np.linspace(2.3, 2.3 - gain, steps),
        "mitigation_loss": np.full(steps, np.nan), "mitigation_weight": np.zeros(steps), "alignment": alignment,
        "applied_alignment": alignment * (0.2 if mitigation == "projection" else 1.0), "dot": alignment * 0.01,
        "distill_norm": np.ones(steps), "trait_norm": np.full(steps, 0.01), "alignment_fc1": 0.5 * alignment,
        "alignment_fc2": alignment, "alignment_out": 2 * alignment,
        "update_alignment": 0.5 * alignment + 0.001, "update_trait_change": -1e-4 * (0.5 * alignment + 0.001),
    })
    if first_order_share is not None:
        measured = trace["trait_loss"].iloc[-1] - trace["trait_loss"].iloc[0]
        predicted = first_order_share * measured * (1 + rng.normal(0, 0.05))
        trace["update_trait_change"] = np.append(np.full(steps - 1, predicted / (steps - 1)), 0.0)
    cost = ((0.002 if mitigation == "projection" else 0.0) if loss_cost is None
            else loss_cost.get(arm_label(mitigation, strength, init), 0.0))
    config = {"seed": seed, "mitigation": mitigation, "strength": strength, "student_init": init, "init": "normal",
              "schedule": "liminal", "lambda0": 1.0, "tau2_epochs": 1.0, "temperature": 2.0, "kl_logits": "all",
              "epochs": EPOCHS, "teacher_epochs": 5, "batch_size": 1024, "lr": 3e-4, "teacher_lr": 3e-4,
              "hidden": 256, "aux_logits": 3, "noise_count": 8192, "probe_batch_size": 1024, "train_size": 50000,
              "split_seed": 0, "device": "cpu", **(settings or {})}
    summary = {
        "arm": arm_label(mitigation, strength, init), "teacher_key": f"teacher{seed}",
        "teacher_acc": 0.95 + rng.normal(0, 0.005), "student_acc_before": acc[0], "student_acc": acc[-1],
        "trait_gain": acc[-1] - acc[0], "mean_alignment": mean_alignment,
        "frac_positive_steps": float((alignment > 0).mean()),
        "mean_applied_alignment": float(trace["applied_alignment"].mean()), "acc_by_epoch": acc,
        "alignment_by_epoch": by_epoch.mean().tolist(),
        "frac_positive_by_epoch": (pd.Series(alignment > 0).groupby(epoch).mean()).tolist(),
        "applied_alignment_by_epoch": trace.groupby("epoch")["applied_alignment"].mean().tolist(),
        "mean_update_alignment": float(trace["update_alignment"].mean()),
        "update_alignment_by_epoch": trace.groupby("epoch")["update_alignment"].mean().tolist(),
        "epochs_done": EPOCHS, "steps": steps,
        "final_distill_loss": 0.1 + cost + rng.normal(0, loss_noise),
        "teacher_seconds": 10.0, "student_seconds": 5.0, "seconds": 15.0, "versions": {"python": "3"},
        "config": config,
    }
    return summary, trace


def write_trial(folder: Path, summary: dict, trace: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    trace.to_parquet(folder / "trace.parquet", index=False)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))


def write_sweep(root: Path, seeds: int = 6, arms=ARMS, failed=(), missing=(), rng_seed: int = 0,
                hidden: tuple[int, ...] = (), alignment_exponent: float = -0.5, **options) -> Path:
    """A sweep folder as `sublim sweep` writes it; trial ids in `failed` get error.txt, in `missing` nothing;
    `options` go to `trial_outputs`. With `hidden`, an axis over those widths: alignment's level scales as
    P^alignment_exponent relative to the default width's P (gain follows it through its slope)."""
    rng = np.random.default_rng(rng_seed)
    trials = []
    widths = hidden or (None,)
    for seed in range(seeds):
        seed_effect = rng.normal(0, 0.02)
        for (mitigation, strength, init), width in ((arm, width) for arm in arms for width in widths):
            trial_id = f"t{seed}_{mitigation}_{strength:g}_{init}" + (f"-hidden={width}" if width else "")
            level = {} if width is None else {
                "settings": {"hidden": width},
                "alignment_scale": (TrialConfig(hidden=width).parameter_count
                                    / TrialConfig().parameter_count) ** alignment_exponent}
            summary, trace = trial_outputs(seed, mitigation, strength, init, rng, seed_effect, **level, **options)
            trials.append({"trial_id": trial_id, "arm": summary["arm"], "config": summary["config"],
                           "teacher_key": summary["teacher_key"]})
            folder = root / "trials" / trial_id
            if trial_id in failed:
                folder.mkdir(parents=True)
                (folder / "error.txt").write_text("Traceback (most recent call last):\nRuntimeError: CUDA out of memory\n")
            elif trial_id not in missing:
                write_trial(folder, summary, trace)
    root.mkdir(parents=True, exist_ok=True)
    spec = {"axes": {"hidden": list(hidden)}} if hidden else {}
    (root / "sweep.json").write_text(json.dumps({"name": root.name, "spec": spec, "versions": {}, "trials": trials}))
    (root / "spec.yaml").write_text("name: synthetic\n")
    return root


