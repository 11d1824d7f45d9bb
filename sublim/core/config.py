"""The trial configuration: one typed, validated object that the CLI, sweep specs and results share.

Every default is the published setting of the protocol. A configuration is frozen and validated on
construction, so a bad value fails before any data is loaded or any model is trained. A setting may
be an int, float, str, bool, a Literal enum, or Optional of these; the checks follow the field types.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Any, Iterable, Literal, Mapping, Union

from .mitigations import BUILT_IN, MITIGATIONS, MitigationError, recorded
from .schema import IMAGE_PIXELS, NUM_CLASSES
from .suggest import did_you_mean
from .text import short_repr

StudentInit = Literal["shared", "independent"]
InitScheme = Literal["normal", "torch"]
Schedule = Literal["liminal", "constant", "direct_anneal"]
KlLogits = Literal["all", "class", "aux"]
ProjectionWhen = Literal["positive", "always"]

MNIST_TRAIN_IMAGES = 60_000
MNIST_IMAGES = 70_000  # training and test


class ConfigError(ValueError):
    """A configuration value is not allowed; the message names the field and what is allowed."""


def _strength_help() -> str:
    limits = "; ".join(f"{name}: s <= {m.max_strength:g}" for name, m in BUILT_IN.items()
                       if 0 < m.max_strength < math.inf)
    return f"mitigation strength s >= 0 (0 = no mitigation; {limits}; a plugin's own limit)"


def setting(default: Any, help: str, teacher: bool = False) -> Any:
    """A config field. `teacher=True` marks a field the teacher depends on: it enters the teacher key,
    so trials differing in it never share a cached teacher."""
    return field(default=default, metadata={"help": help, "teacher": teacher})


class Settings:
    """Base of a frozen dataclass of settings: type checks from the annotations, plain-value round trips."""

    def __post_init__(self) -> None:
        for name, kind in field_types(type(self)).items():
            object.__setattr__(self, name, check_value(name, getattr(self, name), kind))
        self._check_values()

    def _check_values(self) -> None:
        """Rules a field's type cannot say (ranges, rules between fields); none by default."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Any:
        """Build from plain values (YAML, JSON, CLI); an unknown key is an error, not ignored."""
        names = list(field_types(cls))
        for key in values:
            if key not in names:
                raise ConfigError(f"{key}: unknown setting{did_you_mean(key, names)}; allowed: {', '.join(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TrialConfig(Settings):
    """One trial of the experiment: a seed, an arm (mitigation, strength, student init) and settings."""

    seed: int = setting(0, "trial seed; every random draw of the trial derives from it", teacher=True)
    mitigation: str = setting("none", "mitigation applied during distillation: a built-in or an installed plugin's")
    strength: float = setting(0.0, _strength_help())
    student_init: StudentInit = setting("shared", "student starts from the teacher's init (shared) or a fresh one")
    init: InitScheme = setting(
        "normal", "weight init: normal = N(0, 1/d_in) weights and zero biases; torch = nn.Linear default",
        teacher=True)
    schedule: Schedule = setting("liminal", "liminal weight schedule w(t)")
    lambda0: float = setting(1.0, "liminal schedule's starting weight lambda0")
    tau2_epochs: float = setting(1.0, "liminal schedule: epochs over which w rises from lambda0 to 1 (tau2)")
    temperature: float = setting(2.0, "liminal KL temperature T")
    kl_logits: KlLogits = setting("all", "logits the liminal KL covers")
    projection_when: ProjectionWhen = setting(
        "positive", "projection and placebo act where g.g_t > 0 (positive) or at every step (always)")
    epochs: int = setting(5, "student distillation epochs over the noise set")
    teacher_epochs: int = setting(5, "teacher training epochs over the training subset", teacher=True)
    batch_size: int = setting(1024, "batch size for teacher and student", teacher=True)
    lr: float = setting(3e-4, "student Adam learning rate")
    teacher_lr: float = setting(3e-4, "teacher Adam learning rate", teacher=True)
    hidden: int = setting(256, "width of both hidden layers", teacher=True)
    aux_logits: int = setting(3, "number m of auxiliary logits", teacher=True)
    noise_count: int = setting(50_000, "number of noise images distilled on")
    probe_batch_size: int = setting(1024, "validation images per step for the trait gradient g_t")
    train_size: int = setting(50_000, "training subset size; the rest of MNIST's 60,000 is validation",
                              teacher=True)
    split_seed: int = setting(0, "seed of the train/validation split (same for a sweep)", teacher=True)
    # Not a teacher field: a teacher trained on another device is the same teacher up to float rounding.
    device: str = setting("auto", "auto (CUDA when present), cpu, cuda or cuda:N")

    def _check_values(self) -> None:
        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"{name}: {short_repr(getattr(self, name))} is not allowed; {allowed}")

        try:
            mitigation = MITIGATIONS[self.mitigation]
        except KeyError:
            if not recorded(self.mitigation):  # a plugin a results folder records, not installed here
                raise ConfigError(f"mitigation: {MITIGATIONS.unknown(self.mitigation)}") from None
            mitigation = None
        except MitigationError as error:
            raise ConfigError(str(error)) from None
        need(self.strength >= 0, "strength", "must be >= 0")
        problem = mitigation and mitigation.strength_problem(self.strength)
        need(problem is None, "strength", problem or "")
        for name in ("epochs", "teacher_epochs", "batch_size", "hidden", "aux_logits", "noise_count",
                     "probe_batch_size"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("lr", "teacher_lr", "temperature"):
            need(getattr(self, name) > 0, name, "must be > 0")
        need(self.lambda0 >= 0, "lambda0", "must be >= 0")
        need(0 < self.tau2_epochs <= self.epochs, "tau2_epochs", f"must be in (0, epochs={self.epochs}]")
        need(1 <= self.train_size < MNIST_TRAIN_IMAGES, "train_size",
             f"must be in [1, {MNIST_TRAIN_IMAGES - 1}] so that a validation subset remains")
        need(self.probe_batch_size <= MNIST_TRAIN_IMAGES - self.train_size, "probe_batch_size",
             f"must be <= the validation subset size ({MNIST_TRAIN_IMAGES - self.train_size})")
        need(self.seed >= 0, "seed", "must be >= 0")
        need(self.split_seed >= 0, "split_seed", "must be >= 0")
        need(self.device == "auto" or self.device == "cpu" or self.device == "cuda"
             or (self.device.startswith("cuda:") and self.device[5:].isdigit()),
             "device", "allowed: auto, cpu, cuda, cuda:N")

    @classmethod
    def teacher_fields(cls) -> tuple[str, ...]:
        """The fields marked `teacher=True`: all that the trained teacher depends on."""
        return _teacher_fields(cls)

    @property
    def teacher_key(self) -> str:
        """Hash of the teacher fields: trials with equal keys share one teacher (results folders name
        stored teachers by it, so its formula must not change)."""
        names = self.teacher_fields()
        return _teacher_key(names, tuple(getattr(self, name) for name in names))

    def with_seed(self, seed: int) -> TrialConfig:
        """This config at another seed. No rule ties the seed to another field, so only the seed is checked:
        a sweep's grid re-seeds one checked config per point instead of checking every field of every trial."""
        check_value("seed", seed, int)
        if seed < 0:
            raise ConfigError(f"seed: {seed!r} is not allowed; must be >= 0")
        config = copy.copy(self)
        object.__setattr__(config, "seed", seed)
        return config

    @property
    def adds_loss(self) -> bool:
        """Whether the mitigation adds a loss term, and with it a second backward pass every step."""
        return MITIGATIONS[self.mitigation].adds_loss and self.strength > 0

    @property
    def arm(self) -> str:
        """Human label of the arm: mitigation@strength/student_init, e.g. 'liminal@0.5/shared'."""
        return f"{self._mitigation_label}/{self.student_init}"

    @property
    def trial_id(self) -> str:
        """The trial's id within a sweep, also its folder name: seed and arm, e.g. 's003-liminal@0.5-shared'."""
        return f"s{self.seed:03d}-{self._mitigation_label}-{self.student_init}"

    @property
    def layer_widths(self) -> tuple[int, ...]:
        """The MLP's widths, 784 → h → h → 10 + m: the model builds its layers from them."""
        return (IMAGE_PIXELS, self.hidden, self.hidden, NUM_CLASSES + self.aux_logits)

    @property
    def parameter_count(self) -> int:
        """Weights and biases of the MLP: the P over which alignment is a cosine (270,093 at the defaults)."""
        widths = self.layer_widths
        return sum(d_in * d_out + d_out for d_in, d_out in zip(widths[:-1], widths[1:]))

    @property
    def memory_bytes(self) -> int:
        """A lower bound on the memory one trial holds at once: MNIST (bytes and floats), the noise set with the
        teacher's full forward pass over it and its shuffle, a batch's activations, the models with their gradients
        and Adam's state, and the trace. Checked against the machine before any work."""
        width = IMAGE_PIXELS + 2 * self.hidden + 2 * (NUM_CLASSES + self.aux_logits)
        batch = min(max(self.batch_size, self.probe_batch_size), max(self.noise_count, self.train_size))
        steps = self.epochs * math.ceil(self.noise_count / self.batch_size)
        return (MNIST_IMAGES * IMAGE_PIXELS * 5 + self.noise_count * (4 * width + 8) + 3 * 4 * batch * width
                + 8 * 4 * self.parameter_count + 32 * 8 * steps)

    @property
    def _mitigation_label(self) -> str:
        return self.mitigation if self.mitigation == "none" else f"{self.mitigation}@{self.strength:g}"


def level_label(values: Mapping[str, Any]) -> str:
    """A point of a sweep's axes as text, each value by name in sorted order ('hidden=1024-lr=0.001'): trial ids
    end with it, and the report names a level's rows and figures by it."""
    return "-".join(f"{name}={label_value(values[name])}" for name in sorted(values))


def axis_values_problem(name: str, values: Any, held: Iterable[Any]) -> str | None:
    """Why `values`, a results folder's record of the values of its axis over the setting `name`, cannot be used,
    or None: they must be a non-empty list of distinct values of the setting's type, each held by some trial
    (`held`: the trials' validated values of `name`). Checked before a value names a level or a figure."""
    if not isinstance(values, list) or not values:
        return f"axis {name}: not a non-empty list of values"
    try:
        checked = [check_value(name, value, field_types(TrialConfig)[name]) for value in values]
    except ConfigError as error:
        return f"axis {error}"
    if len(set(checked)) != len(checked) or not set(checked) <= set(held):
        return f"axis {name}: values listed twice, or held by no trial"
    return None


def label_value(value: Any) -> str:
    """A float as its shortest exact form (0.001, 1e-05: distinct values, distinct labels), the rest as written."""
    return repr(value) if isinstance(value, float) else str(value)


@functools.cache
def _teacher_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("teacher"))


@functools.lru_cache(maxsize=4096)
def _teacher_key(names: tuple[str, ...], values: tuple[Any, ...]) -> str:
    """The teacher key's hash, once per distinct teacher: a grid of 50,000 trials has a few thousand teachers.
    Field values are stored by type (a float field holds a float), so equal tuples give the same JSON."""
    blob = json.dumps(dict(zip(names, values)), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """Each field's resolved type, once per class: resolving annotations is the slow part of a check."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


@functools.cache
def type_options(kind: Any) -> tuple[Any, ...]:
    """What a value of `kind` may be, each a type or a tuple of enum values, computed once per type:
    int -> (int,); Optional[Literal["a", "b"]] -> (("a", "b"), NoneType)."""
    args = typing.get_args(kind) if typing.get_origin(kind) in (Union, UnionType) else (kind,)
    return tuple(typing.get_args(o) if typing.get_origin(o) is Literal else o for o in args)


def check_value(name: str, value: Any, kind: Any) -> Any:
    """`value` as stored (a number as float for a float field, so stored configs compare equal),
    or a ConfigError naming the field and what is allowed."""
    for option in type_options(kind):
        if _accepts(value, option) and option is float and not math.isfinite(value):
            raise ConfigError(f"{name}: {short_repr(value)} is not allowed; must be a finite number")
        if _accepts(value, option):
            return float(value) if option is float else value
    enum = [v for option in type_options(kind) if isinstance(option, tuple) for v in option]
    hint = did_you_mean(value, enum) if isinstance(value, str) else ""  # a mistyped name, not a wrong type
    raise ConfigError(f"{name}: {short_repr(value)} is not allowed{hint}; {_allowed(kind)}")


def accepts(value: Any, kind: Any) -> bool:
    """Whether `value` is a `kind` by the settings' rules: bool is not int, int is float."""
    return any(_accepts(value, option) for option in type_options(kind))


def _accepts(value: Any, option: Any) -> bool:
    if isinstance(option, tuple):  # an enum: equal value and type, so True is not 1
        return any(value == allowed and type(value) is type(allowed) for allowed in option)
    if isinstance(value, bool):  # bool subclasses int, but True is not a number of epochs
        return option is bool
    return isinstance(value, (int, float) if option is float else option)


def _allowed(kind: Any) -> str:
    """'allowed: a, b' for an enum, 'must be of type int' (or 'int or None') for the rest."""
    options = type_options(kind)
    values = [v for o in options if isinstance(o, tuple) for v in o] + [None] * (NoneType in options)
    types = [o.__name__ for o in options if not isinstance(o, tuple) and o is not NoneType]
    if types:
        return "must be of type " + " or ".join(types + [str(v) for v in values])
    return "allowed: " + ", ".join(map(str, values))


def field_help(cls: type = TrialConfig) -> dict[str, tuple[Any, Any, str]]:
    """(type, default, help) per field, for building command-line options from the config."""
    types = field_types(cls)
    return {f.name: (types[f.name], f.default, f.metadata["help"]) for f in dataclasses.fields(cls)}
