"""Every mitigation, defined once: its name, the strengths it allows, what it does to a training
step, and how the report names and colours it. The trial config, sweep specs, the trial itself and
the report all read `MITIGATIONS`; adding a mitigation is one definition here (plus its claim in
the report, if it carries one).

The step arithmetic is written with tensor methods only, so this module never imports torch: the
trial hands it the tensors of a step. A strength s = 0 always means no mitigation.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .schema import NUM_CLASSES

if TYPE_CHECKING:
    from .config import TrialConfig


class Mitigation:
    """What a mitigation is. A subclass overrides `loss_term` or `transform_gradient` (or neither)."""

    name: str = ""
    description: str = ""  # one line, for --help and the report
    title: str = ""  # the report's name for it (panel titles)
    colours: tuple[str, ...] = ("#7f7f7f",)  # one per arm of this mitigation, in report order
    max_strength: float = math.inf
    typical_strengths: tuple[float, ...] = ()  # named when a strength is missing (`sublim run`)
    needs_trait_gradient: bool = False  # its step uses g_t, so g_t is computed even when not traced
    adds_loss: bool = False  # it has a loss term (and a frozen base) when its strength is > 0
    # It acts on the step's component along the trait gradient. The report pre-specifies that only arms which do
    # not may share a slope of trait gain on alignment: acting on that component changes the relation itself.
    acts_on_trait_direction: bool = False

    def strength_problem(self, strength: float) -> str | None:
        """Why `strength` is not allowed for this mitigation, or None."""
        if self.max_strength == 0 and strength != 0:
            return f"must be 0 when mitigation is '{self.name}'"
        if strength > self.max_strength:
            return f"{self.name} strength must be in [0, {self.max_strength:g}]"
        return None

    def base_targets(self, config: TrialConfig, base_logits: Any) -> Any:
        """What the loss term needs of the frozen pre-distillation student, from its logits on the noise set."""
        raise NotImplementedError

    def loss_term(self, config: TrialConfig, t: float, student_logits: Any, base_targets: Any) -> tuple[float, Any]:
        """(weight, loss) added to the distillation loss at training fraction t, for one batch."""
        raise NotImplementedError

    def transform_gradient(self, config: TrialConfig, grad: Any, trait_grad: Any, rng: Any) -> tuple[Any, Any]:
        """(gradient handed to the optimizer, the coefficient recorded as mitigation_weight). `rng` is the
        trial's own CPU generator for mitigations that draw at random."""
        return grad, None


class NoMitigation(Mitigation):
    name = "none"
    description = "no mitigation (strength 0)"
    title = "no mitigation"
    colours = ("#222222", "#8c8c8c")
    max_strength = 0.0


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


def liminal_kl(base_log_probs: Any, student_logits: Any, temperature: float) -> Any:
    """T² · KL(softmax(base/T) ‖ softmax(student/T)), averaged over the batch.

    `base_log_probs` are log_softmax(base/T) of the frozen pre-distillation student, computed once.
    The same arithmetic as torch's kl_div(log_target=True, reduction="batchmean").
    """
    student_log_probs = (student_logits / temperature).log_softmax(dim=1)
    kl = (base_log_probs.exp() * (base_log_probs - student_log_probs)).sum() / len(student_logits)
    return temperature**2 * kl


class Liminal(Mitigation):
    """loss = L_distill + s · w(t) · T² · KL(softmax(base/T) ‖ softmax(student/T)) on the distillation batch."""

    name = "liminal"
    description = "liminal training: an annealed KL pull towards the frozen pre-distillation student"
    title = "liminal training"
    colours = ("#d62728", "#ff7f0e", "#e377c2", "#8c564b", "#bcbd22", "#9467bd")
    typical_strengths = (0.3, 1.0, 3.0)
    adds_loss = True

    def base_targets(self, config: TrialConfig, base_logits: Any) -> Any:
        return (base_logits[:, logit_columns(config)] / config.temperature).log_softmax(dim=1)

    def loss_term(self, config: TrialConfig, t: float, student_logits: Any, base_targets: Any) -> tuple[float, Any]:
        weight = config.strength * liminal_weight(config, t)
        return weight, liminal_kl(base_targets, student_logits[:, logit_columns(config)], config.temperature)


def trait_coefficient(grad: Any, trait_grad: Any, strength: float, always: bool = False) -> tuple[Any, Any]:
    """(c, ‖g_t‖²) with c = s · (g·g_t) / ‖g_t‖², the multiple of g_t that projection removes: 0 where
    g·g_t <= 0 unless `always`, and 0 when g_t = 0. No host synchronisation."""
    trait_sq = trait_grad.dot(trait_grad)
    dot = grad.dot(trait_grad)
    coef = strength * (dot if always else dot.clamp_min(0)) / trait_sq
    return coef.where(trait_sq > 0, 0.0), trait_sq


def project_out_trait(grad: Any, trait_grad: Any, strength: float, always: bool = False) -> tuple[Any, Any]:
    """g − c · g_t: `strength` 1 removes the trait-aligned component, 2 reflects it. Returns it and c."""
    coef, _ = trait_coefficient(grad, trait_grad, strength, always)
    return grad - coef * trait_grad, coef


class Projection(Mitigation):
    """Where g·g_t > 0 (or always), g ← g − s · (g·g_t / ‖g_t‖²) · g_t: the causal intervention on alignment.

    s = 1 removes the trait-aligned component; s = 2 reflects it, so the applied alignment is <= 0."""

    name = "projection"
    description = "projection: remove (s = 1) or reflect (s = 2) the gradient's trait-aligned component"
    title = "projection"
    colours = ("#1f77b4", "#17becf", "#6baed6", "#08519c", "#9ecae1")
    max_strength = 2.0
    typical_strengths = (0.5, 1.0, 2.0)
    needs_trait_gradient = True
    acts_on_trait_direction = True

    def transform_gradient(self, config: TrialConfig, grad: Any, trait_grad: Any, rng: Any) -> tuple[Any, Any]:
        return project_out_trait(grad, trait_grad, config.strength, config.projection_when == "always")


def placebo_step(grad: Any, trait_grad: Any, strength: float, rng: Any, always: bool = False) -> tuple[Any, Any]:
    """g − ‖c · g_t‖ · u, u a fresh random unit vector orthogonal to g_t: the step changes by exactly the
    norm projection would remove, where projection would act, while g·g_t stays as it was. Returns it and c.

    The direction is drawn at every step from `rng` (on the CPU, so a trial draws the same on any device)."""
    coef, trait_sq = trait_coefficient(grad, trait_grad, strength, always)
    draw = trait_grad.new_empty(trait_grad.shape, device="cpu").normal_(generator=rng).to(trait_grad.device)
    orthogonal = draw - (draw.dot(trait_grad) / trait_sq).where(trait_sq > 0, 0.0) * trait_grad
    unit = orthogonal / orthogonal.dot(orthogonal).sqrt()
    return grad - (coef.abs() * trait_sq.sqrt()) * unit, coef


class Placebo(Mitigation):
    """Projection's step size without its direction: if acquisition survives this but not projection,
    the direction of the trait-aligned component, not the size of the step, carries the trait."""

    name = "placebo"
    description = "placebo: change the gradient by projection's removed norm, in a random direction orthogonal to g_t"
    title = "placebo (random direction)"
    colours = ("#2ca02c", "#98df8a", "#006d2c", "#74c476")
    max_strength = 2.0
    typical_strengths = (1.0, 2.0)
    needs_trait_gradient = True

    def transform_gradient(self, config: TrialConfig, grad: Any, trait_grad: Any, rng: Any) -> tuple[Any, Any]:
        return placebo_step(grad, trait_grad, config.strength, rng, config.projection_when == "always")


# In report order: panels, tables and arm order follow it.
MITIGATIONS: dict[str, Mitigation] = {m.name: m for m in (NoMitigation(), Projection(), Placebo(), Liminal())}
