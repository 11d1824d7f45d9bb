"""Every mitigation, defined once: its name, the strengths it allows, what it does to a training
step, and what the report says of it. The trial config, sweep specs, the trial itself and the report
all read `MITIGATIONS`: the built-ins below, then those installed packages register under the entry-point
group `sublim.mitigations` (the entry's name is the mitigation's name, its value the class). A built-in
is written exactly as a plugin is: a `Mitigation` subclass with one `step` method.

The step arithmetic is written with tensor methods only, so this module never imports torch: the
trial hands it the tensors of a step. A strength s = 0 always means no mitigation.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Iterator

from .schema import NUM_CLASSES
from .suggest import did_you_mean

if TYPE_CHECKING:
    from .config import TrialConfig

ENTRY_POINT_GROUP = "sublim.mitigations"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")  # a mitigation's name enters arm labels, trial ids and file names
COLOUR_PATTERN = re.compile(r"#[0-9a-fA-F]{6}")
MAX_TEXT = 300  # a title, description or claim sentence: one line of the report
MARKUP = set("$<>`[]|*\\")  # characters that would be markup in the report's Markdown, HTML or figure titles
# What a declared contrast may set (the report's `Contrast` fields), with the type of each.
CONTRAST_FIELDS = {"claim": str, "metric": str, "test": str, "expect": str, "arms": str, "reference": str,
                   "role": str, "null": float, "x": str}
CONTRAST_TESTS = ("t-test", "paired t-test", "TOST equivalence", "non-inferiority")
CONTRAST_METRICS = ("trait_gain", "mean_alignment", "mean_applied_alignment", "mean_update_alignment",
                    "final_distill_loss", "alignment_epoch_1", "frac_positive_steps")


class MitigationError(ValueError):
    """A mitigation (a plugin's, usually) is declared inconsistently, or cannot be used: one line saying why."""


class Step:
    """What a mitigation's `step` sees of one optimizer step. A value it did not declare raises, naming the
    declaration: the trait gradient needs `needs_trait_gradient = True`, the loss gradient a `loss` method."""

    __slots__ = ("distill_grad", "t", "rng", "_loss_grad", "_trait_grad", "_name")

    def __init__(self, name: str, distill_grad: Any, loss_grad: Any, trait_grad: Any, t: float, rng: Any):
        self._name, self.distill_grad, self._loss_grad, self._trait_grad = name, distill_grad, loss_grad, trait_grad
        self.t, self.rng = t, rng  # fraction of training done, in [0, 1); the trial's own CPU generator

    @property
    def loss_grad(self) -> Any:
        """Gradient of the mitigation's own `loss` (unweighted); zero at strength 0, where no loss is computed."""
        if self._loss_grad is None:
            raise MitigationError(f"mitigation {self._name!r} reads s.loss_grad but defines no loss()")
        return self._loss_grad

    @property
    def trait_grad(self) -> Any:
        """g_t: gradient of the trait loss on this step's probe batch."""
        if self._trait_grad is None:
            raise MitigationError(f"mitigation {self._name!r} reads s.trait_grad but does not declare "
                                  "needs_trait_gradient = True")
        return self._trait_grad


class Mitigation:
    """A mitigation: subclass, set the declarations, and write `step` (and `loss`, for a loss term).

    `step(config, s)` runs at every optimizer step (strength 0 included) and returns (the gradient handed to
    the optimizer, the coefficient recorded as `mitigation_weight`). `s` holds the distillation gradient g_d
    (never including a mitigation term), the gradient of `loss` when the mitigation has one, the trait
    gradient g_t when `needs_trait_gradient`, the fraction t of training done and the trial's generator.
    """

    name: str = ""  # a plugin's is its entry point's name
    description: str = ""  # one line, for --help and the report
    title: str = ""  # the report's name for it (panel titles)
    colours: tuple[str, ...] = ("#7f7f7f",)  # "#rrggbb", one per arm of this mitigation, in report order
    max_strength: float = math.inf
    typical_strengths: tuple[float, ...] = ()  # named when a strength is missing (`sublim run`)
    needs_trait_gradient: bool = False  # `step` reads s.trait_grad: it is computed at every step
    # Its strength is a dose: the report fits its dose-response and a mediation strength → alignment → trait_gain.
    dose: bool = True
    # It acts on the step's component along the trait gradient. The report pre-specifies that only arms which do
    # not may share a slope of trait gain on alignment: acting on that component changes the relation itself.
    acts_on_trait_direction: bool = False
    # At strength s it changes the step by the norm the placebo changes it by at strength placebo_ratio · s; the
    # report's contrast reference "matched placebo" is that placebo arm. None: no placebo matches it.
    placebo_ratio: float | None = None
    claims: Mapping[str, tuple[str, str]] = {}  # claim id -> (heading, the claim in one sentence), for the report
    contrasts: tuple[Mapping[str, Any], ...] = ()  # the report's rows for it: `Contrast` fields (CONTRAST_FIELDS)

    def strength_problem(self, strength: float) -> str | None:
        """Why `strength` is not allowed for this mitigation, or None."""
        if self.max_strength == 0 and strength != 0:
            return f"must be 0 when mitigation is '{self.name}'"
        if strength > self.max_strength:
            return f"{self.name} strength must be in [0, {self.max_strength:g}]"
        return None

    @property
    def adds_loss(self) -> bool:
        """It has a loss term (and a frozen base): it defines `loss`."""
        return type(self).loss is not Mitigation.loss

    def base_targets(self, config: TrialConfig, base_logits: Any) -> Any:
        """What `loss` needs of the frozen pre-distillation student, from its logits on the whole noise set
        (computed once per trial; `loss` gets the batch's rows)."""
        return base_logits

    def loss(self, config: TrialConfig, t: float, student_logits: Any, base_targets: Any) -> Any:
        """The loss term (a scalar tensor, before any weight) on one batch at training fraction t; its gradient
        reaches `step` as s.loss_grad. Computed only at strength > 0."""
        raise NotImplementedError

    def step(self, config: TrialConfig, s: Step) -> tuple[Any, Any]:
        """(gradient handed to the optimizer, coefficient recorded as mitigation_weight)."""
        raise NotImplementedError

    def facts(self) -> dict[str, Any]:
        """What the report needs of it, as plain values: recorded in a results folder, so that a folder reports
        where the mitigation is not installed."""
        return Facts(self.name, self.title, self.description, tuple(self.colours), bool(self.dose),
                     bool(self.acts_on_trait_direction), self.placebo_ratio, dict(self.claims),
                     tuple(dict(c) for c in self.contrasts)).to_dict()


@dataclass(frozen=True)
class Facts:
    """A mitigation as the report knows it: from the installed class, or from a results folder's record."""

    name: str
    title: str
    description: str
    colours: tuple[str, ...]
    dose: bool = True
    acts_on_trait_direction: bool = True  # unknown: assumed to (it leaves the slope pool)
    placebo_ratio: float | None = None
    claims: dict[str, tuple[str, str]] = field(default_factory=dict)
    contrasts: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text_problem(value: Any) -> str | None:
    if not (isinstance(value, str) and value.strip() and len(value) <= MAX_TEXT and value.isprintable()
            and not MARKUP & set(value)):
        return (f"must be one printable line of 1 to {MAX_TEXT} characters without {''.join(sorted(MARKUP))}, "
                f"not {value!r:.60}")
    return None


def facts_problem(facts: Mapping[str, Any]) -> str | None:
    """Why these facts (a class's, or a results folder's record: untrusted) cannot be used, or None."""
    if not isinstance(facts, Mapping) or set(facts) - set(Facts.__dataclass_fields__):
        return f"expected a mapping with keys {', '.join(Facts.__dataclass_fields__)}"
    if not (isinstance(facts.get("name"), str) and NAME_PATTERN.fullmatch(facts["name"])):
        return f"name {facts.get('name')!r:.40} is not allowed; {NAME_PATTERN.pattern} (lower case, digits, _)"
    for key in ("title", "description"):
        if problem := _text_problem(facts.get(key)):
            return f"{key} {problem}"
    colours = facts.get("colours")
    if not (isinstance(colours, (list, tuple)) and 1 <= len(colours) <= 12
            and all(isinstance(c, str) and COLOUR_PATTERN.fullmatch(c) for c in colours)):
        return f"colours {colours!r:.60} are not allowed; 1 to 12 colours, each '#rrggbb'"
    for key in ("dose", "acts_on_trait_direction"):
        if not isinstance(facts.get(key, True), bool):
            return f"{key} must be True or False"
    ratio = facts.get("placebo_ratio")
    if ratio is not None and not (isinstance(ratio, (int, float)) and not isinstance(ratio, bool)
                                  and 0 < ratio < math.inf):
        return f"placebo_ratio {ratio!r:.40} is not allowed; None or a number > 0"
    claims = facts.get("claims", {})
    if not isinstance(claims, Mapping) or len(claims) > 8:
        return "claims must map at most 8 claim ids to (heading, sentence)"
    for claim, texts in claims.items():
        if not (isinstance(claim, str) and NAME_PATTERN.fullmatch(claim)):
            return f"claim id {claim!r:.40} is not allowed; {NAME_PATTERN.pattern}"
        if not (isinstance(texts, (list, tuple)) and len(texts) == 2) or any(map(_text_problem, texts)):
            return f"claim {claim}: expected (heading, sentence), each one printable line"
    contrasts = facts.get("contrasts", ())
    if not isinstance(contrasts, (list, tuple)) or len(contrasts) > 16:
        return "contrasts must be a list of at most 16 mappings"
    for i, contrast in enumerate(contrasts):
        if problem := _contrast_problem(contrast, facts["name"], set(claims)):
            return f"contrasts[{i}]: {problem}"
    return None


def _contrast_problem(contrast: Any, name: str, claims: set[str]) -> str | None:
    if not isinstance(contrast, Mapping) or not {"claim", "metric", "test", "expect"} <= set(contrast):
        return "expected a mapping with at least claim, metric, test and expect"
    for key, value in contrast.items():
        kind = CONTRAST_FIELDS.get(key)
        if kind is None:
            return f"{key!r:.40} is not allowed; allowed: {', '.join(CONTRAST_FIELDS)}"
        if not isinstance(value, (int, float) if kind is float else str) or isinstance(value, bool):
            return f"{key} must be a {kind.__name__}"
    checks = {"claim": claims, "metric": CONTRAST_METRICS, "test": CONTRAST_TESTS, "expect": (">", "<", "=", "<="),
              "arms": (name,), "reference": ("0", "none/shared", "matched placebo"),
              "role": ("primary", "secondary")}
    for key, allowed in checks.items():
        if key in contrast and contrast[key] not in allowed:
            return f"{key} {contrast[key]!r:.40} is not allowed; allowed: {', '.join(sorted(allowed)) or 'none'}"
    return None


def check_mitigation(cls: Any, name: str, source: str) -> Mitigation:
    """An instance of the mitigation class `cls` registered as `name`, or a MitigationError in one line naming
    `source` and the first inconsistent declaration. Run once per mitigation, when the registry is built."""
    def fail(problem: str) -> MitigationError:
        return MitigationError(f"mitigation {name!r} ({source}): {problem}")

    if not (isinstance(cls, type) and issubclass(cls, Mitigation)):
        raise fail(f"{cls!r:.60} is not a subclass of {Mitigation.__module__}.Mitigation")
    if cls.name not in ("", name):
        raise fail(f"its class declares name {cls.name!r:.40}, not the name it is registered under")
    if cls.step is Mitigation.step:
        raise fail("defines no step(config, s): every mitigation acts through its step")
    if len(inspect.signature(cls.step).parameters) != 3:
        raise fail("step must take (self, config, s)")
    if cls.base_targets is not Mitigation.base_targets and cls.loss is Mitigation.loss:
        raise fail("defines base_targets() but no loss(): base targets serve only a loss term")
    for flag in ("needs_trait_gradient", "dose", "acts_on_trait_direction"):
        if not isinstance(getattr(cls, flag), bool):
            raise fail(f"{flag} must be True or False, not {getattr(cls, flag)!r:.40}")
    limit = cls.max_strength
    if not (isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit >= 0):
        raise fail(f"max_strength {limit!r:.40} is not allowed; a number >= 0 (math.inf: no limit)")
    if not all(isinstance(s, (int, float)) and 0 <= s <= limit for s in cls.typical_strengths):
        raise fail(f"typical_strengths {cls.typical_strengths!r:.60} must be numbers in [0, max_strength={limit:g}]")
    if limit > 0 and not cls.typical_strengths:
        raise fail("declares no typical_strengths: `sublim run` names them when a strength is missing")
    if cls.dose and limit == 0:
        raise fail("dose = True, but max_strength is 0: a strength that is always 0 is no dose")
    try:
        mitigation = cls()
    except Exception as error:  # a plugin's constructor: any failure is the plugin's, said in one line
        raise fail(f"{cls.__name__}() failed: {type(error).__name__}: {error}") from None
    mitigation.name = name
    if problem := facts_problem(mitigation.facts()):
        raise fail(problem)
    return mitigation


class NoMitigation(Mitigation):
    name = "none"
    description = "no mitigation (strength 0)"
    title = "no mitigation"
    colours = ("#222222", "#8c8c8c")
    max_strength = 0.0
    dose = False

    def step(self, config: TrialConfig, s: Step) -> tuple[Any, Any]:
        return s.distill_grad, 0.0


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

    def base_targets(self, config: TrialConfig, base_logits: Any) -> Any:
        return (base_logits[:, logit_columns(config)] / config.temperature).log_softmax(dim=1)

    def loss(self, config: TrialConfig, t: float, student_logits: Any, base_targets: Any) -> Any:
        return liminal_kl(base_targets, student_logits[:, logit_columns(config)], config.temperature)

    def step(self, config: TrialConfig, s: Step) -> tuple[Any, Any]:
        weight = config.strength * liminal_weight(config, s.t)
        return s.distill_grad + weight * s.loss_grad, weight


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
    placebo_ratio = 1.0  # the placebo at the same strength changes the step by the norm projection removes

    def step(self, config: TrialConfig, s: Step) -> tuple[Any, Any]:
        return project_out_trait(s.distill_grad, s.trait_grad, config.strength, config.projection_when == "always")


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

    def step(self, config: TrialConfig, s: Step) -> tuple[Any, Any]:
        return placebo_step(s.distill_grad, s.trait_grad, config.strength, s.rng, config.projection_when == "always")


BUILT_IN = {"none": NoMitigation, "projection": Projection, "placebo": Placebo, "liminal": Liminal}


@dataclass(frozen=True)
class Plugin:
    """Where an installed mitigation comes from: its distribution's name and version."""

    distribution: str
    version: str


class Registry(Mapping):
    """Name -> Mitigation: the built-ins in report order, then the installed plugins by name. Built on first use
    (a plugin's module imports this one), each class checked by `check_mitigation`; a broken plugin or one named
    like a built-in fails the first use in one line naming it. Only installed entry points supply code."""

    def __init__(self) -> None:
        self._mitigations: dict[str, Mitigation] | None = None
        self._plugins: dict[str, Plugin] = {}

    @property
    def plugins(self) -> dict[str, Plugin]:
        """Name -> distribution and version of each installed plugin's mitigation."""
        self._load()
        return self._plugins

    def _load(self) -> dict[str, Mitigation]:
        if self._mitigations is None:
            found = {name: check_mitigation(cls, name, "built-in") for name, cls in BUILT_IN.items()}
            plugins = {}
            for entry in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                dist = entry.dist
                plugin = Plugin(dist.name if dist else "unknown", dist.version if dist else "unknown")
                source = f"plugin {entry.value} of {plugin.distribution} {plugin.version}"
                if entry.name in found:
                    raise MitigationError(f"mitigation {entry.name!r} ({source}): the name is taken by "
                                          f"{'a built-in' if entry.name in BUILT_IN else 'another plugin'}; "
                                          "rename its entry point")
                try:
                    cls = entry.load()
                except Exception as error:  # an installed plugin that does not import: said in one line
                    raise MitigationError(f"mitigation {entry.name!r} ({source}): cannot be loaded: "
                                          f"{type(error).__name__}: {error}") from None
                found[entry.name] = check_mitigation(cls, entry.name, source)
                plugins[entry.name] = plugin
            self._mitigations, self._plugins = found, plugins
        return self._mitigations

    def __getitem__(self, name: str) -> Mitigation:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def reload(self) -> None:
        """Forget what was found: the next use looks at the installed entry points again (after a pip install)."""
        self._mitigations, self._plugins = None, {}

    def unknown(self, name: Any) -> MitigationError:
        """Why `name` is no mitigation here, in one line: neither built in nor installed."""
        return MitigationError(f"{name!r:.40} is not allowed{did_you_mean(name, self)}; allowed: {', '.join(self)} "
                               f"(built in, or installed under the entry-point group {ENTRY_POINT_GROUP})")

    def record(self, names: Any) -> dict[str, Any]:
        """What a results folder keeps of the mitigations `names`: each one's report facts, and for a plugin its
        distribution and version."""
        return {name: {**self[name].facts(), **({"plugin": asdict(self.plugins[name])} if name in self.plugins
                                                else {})} for name in dict.fromkeys(names)}


MITIGATIONS = Registry()
# Facts of mitigations a results folder records and this environment lacks: plain values, each checked.
_RECORDED: dict[str, Facts] = {}
_NAMED: set[str] = set()  # every plugin the folder being read records, its facts usable or not


def remember(record: Any) -> list[str]:
    """Take a results folder's record of its plugins' facts (sweep.json's "mitigations": untrusted, never code), in
    place of any earlier folder's; a warning for each entry refused."""
    _RECORDED.clear()
    _NAMED.clear()
    if record is None:
        return []
    if not isinstance(record, Mapping):
        return ["the folder's record of its mitigations is not a mapping; ignored"]
    warnings = []
    for name, entry in record.items():
        if isinstance(name, str) and NAME_PATTERN.fullmatch(name) and name not in BUILT_IN:
            _NAMED.add(name)  # its trials stay readable, under a stand-in's facts if these are not usable
        facts = {k: v for k, v in entry.items() if k != "plugin"} if isinstance(entry, Mapping) else entry
        problem = facts_problem(facts) or (None if facts["name"] == name else f"names itself {facts['name']!r}")
        if problem:
            warnings.append(f"the folder's record of mitigation {name!r:.40} is not usable ({problem}); its arms "
                            "are named and coloured as an unknown mitigation's")
        elif name not in BUILT_IN:
            _RECORDED[name] = Facts(**{**facts, "colours": tuple(facts["colours"]),
                                       "claims": {k: tuple(v) for k, v in facts.get("claims", {}).items()},
                                       "contrasts": tuple(dict(c) for c in facts.get("contrasts", ()))})
    return warnings


@functools.cache
def _built_in_facts(name: str) -> Facts:
    return Facts(**check_mitigation(BUILT_IN[name], name, "built-in").facts())


def recorded(name: str) -> bool:
    """Whether the results folder being read records mitigation `name` (`remember`): its trials' configs are then
    valid here, without its code, whose own strength limit is the folder's to have kept."""
    return name in _NAMED


def report_facts(name: str) -> Facts:
    """What the report says of mitigation `name`: a built-in's facts, else the results folder's record (`remember`),
    else the installed plugin's, else a stand-in titled by its name, with no colours of its own (the report picks
    unused ones) and no dose."""
    if name in BUILT_IN:  # without loading the plugins: the report needs none when the folder records them
        return _built_in_facts(name)
    if name in _RECORDED:  # the facts the sweep ran with
        return _RECORDED[name]
    if name in MITIGATIONS:
        return Facts(**MITIGATIONS[name].facts())
    return Facts(str(name), str(name), f"mitigation {name} (not installed here)", (), dose=False)
