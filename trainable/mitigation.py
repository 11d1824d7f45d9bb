"""The two mitigations: liminal training (an annealed KL pull to the frozen base) and projection."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import NUM_CLASSES, TrialConfig


def liminal_weight(config: TrialConfig, t: float) -> float:
    """Schedule weight w(t) at fraction t in [0, 1] of training done.

    liminal: λ0 → 1 linearly over [0, τ2], then 1 → 0 linearly over [τ2, 1];
    constant: λ0 throughout; direct_anneal: λ0 → 0 linearly over [0, 1].
    """
    lambda0 = config.lambda0
    if config.schedule == "constant":
        return lambda0
    if config.schedule == "direct_anneal":
        return lambda0 * (1 - t)
    tau2 = config.tau2_epochs / config.epochs
    if t <= tau2:
        return lambda0 + (1 - lambda0) * t / tau2
    return (1 - t) / (1 - tau2)


def logit_columns(config: TrialConfig) -> slice:
    """The outputs the liminal KL covers: all 10 + m, the 10 class or the m auxiliary logits."""
    return {"all": slice(None), "class": slice(0, NUM_CLASSES), "aux": slice(NUM_CLASSES, None)}[config.kl_logits]


def liminal_kl(base_log_probs: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(base/T) ‖ softmax(student/T)), averaged over the batch.

    `base_log_probs` are log_softmax(base/T) of the frozen pre-distillation student, computed once.
    """
    student_log_probs = F.log_softmax(student_logits / temperature, dim=1)
    kl = F.kl_div(student_log_probs, base_log_probs, log_target=True, reduction="batchmean")
    return temperature**2 * kl


def project_out_trait(grad: torch.Tensor, trait_grad: torch.Tensor, strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove `strength` of the trait-aligned component of `grad` when it is positive.

    Returns the new gradient and the coefficient c in g - c·g_t (0 when g·g_t <= 0), computed
    without a host synchronisation.
    """
    trait_sq = trait_grad.dot(trait_grad)
    coef = strength * grad.dot(trait_grad).clamp_min(0) / trait_sq
    coef = torch.where(trait_sq > 0, coef, torch.zeros_like(coef))
    return grad - coef * trait_grad, coef
