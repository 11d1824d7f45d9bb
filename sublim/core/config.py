"""The trial configuration: one typed, validated object that the CLI, sweep specs and results share.

Every default is the published setting of the protocol. A configuration is frozen and validated on
construction, so a bad value fails before any data is loaded or any model is trained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .mitigations import MITIGATIONS

Mitigation = Literal[tuple(MITIGATIONS)]  # type: ignore[valid-type]  # the registry's names
StudentInit = Literal["shared", "independent"]
InitScheme = Literal["normal", "torch"]
Schedule = Literal["liminal", "constant", "direct_anneal"]
KlLogits = Literal["all", "class", "aux"]

MNIST_TRAIN_IMAGES = 60_000


class ConfigError(ValueError):
    """A configuration value is not allowed; the message names the field and what is allowed."""


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class TrialConfig:
    """One trial of the experiment: a seed, an arm (mitigation, strength, student init) and settings."""

    seed: int = field(default=0, metadata=_doc("trial seed; every random draw of the trial derives from it"))
    mitigation: Mitigation = field(default="none", metadata=_doc("mitigation applied during distillation"))
    strength: float = field(
        default=0.0, metadata=_doc("mitigation strength s >= 0 (0 = no mitigation; projection: s <= 1)")
    )
    student_init: StudentInit = field(
        default="shared", metadata=_doc("student starts from the teacher's init (shared) or a fresh one")
    )
    init: InitScheme = field(
        default="normal",
        metadata=_doc("weight init: normal = N(0, 1/d_in) weights and zero biases; torch = nn.Linear default"),
    )
    schedule: Schedule = field(default="liminal", metadata=_doc("liminal weight schedule w(t)"))
    lambda0: float = field(default=1.0, metadata=_doc("liminal schedule's starting weight lambda0"))
    tau2_epochs: float = field(
        default=1.0, metadata=_doc("liminal schedule: epochs over which w rises from lambda0 to 1 (tau2)")
    )
    temperature: float = field(default=2.0, metadata=_doc("liminal KL temperature T"))
    kl_logits: KlLogits = field(default="all", metadata=_doc("logits the liminal KL covers"))
    epochs: int = field(default=5, metadata=_doc("student distillation epochs over the noise set"))
    teacher_epochs: int = field(default=5, metadata=_doc("teacher training epochs over the training subset"))
    batch_size: int = field(default=1024, metadata=_doc("batch size for teacher and student"))
    lr: float = field(default=3e-4, metadata=_doc("student Adam learning rate"))
    teacher_lr: float = field(default=3e-4, metadata=_doc("teacher Adam learning rate"))
    hidden: int = field(default=256, metadata=_doc("width of both hidden layers"))
    aux_logits: int = field(default=3, metadata=_doc("number m of auxiliary logits"))
    noise_count: int = field(default=50_000, metadata=_doc("number of noise images distilled on"))
    probe_batch_size: int = field(
        default=1024, metadata=_doc("validation images per step for the trait gradient g_t")
    )
    train_size: int = field(
        default=50_000, metadata=_doc("training subset size; the rest of MNIST's 60,000 is validation")
    )
    split_seed: int = field(default=0, metadata=_doc("seed of the train/validation split (same for a sweep)"))
    device: str = field(default="auto", metadata=_doc("auto (CUDA when present), cpu, cuda or cuda:N"))

    def __post_init__(self) -> None:
        types = _field_types()
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), types[f.name])
            if types[f.name] is float:  # store 1 as 1.0 so that stored configs compare equal
                object.__setattr__(self, f.name, float(getattr(self, f.name)))
        self._check_values()

    def _check_values(self) -> None:
        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"{name}: {getattr(self, name)!r} is not allowed; {allowed}")

        need(self.strength >= 0, "strength", "must be >= 0")
        problem = MITIGATIONS[self.mitigation].strength_problem(self.strength)
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
    def from_dict(cls, values: dict[str, Any]) -> "TrialConfig":
        """Build from plain values (YAML, JSON, CLI); an unknown key is an error, not ignored."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                raise ConfigError(f"{key}: unknown setting; allowed: {', '.join(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrialConfig":
        return dataclasses.replace(self, **changes)

    @property
    def arm(self) -> str:
        """Human label of the arm: mitigation@strength/student_init, e.g. 'liminal@0.5/shared'."""
        return f"{self._mitigation_label}/{self.student_init}"

    @property
    def trial_id(self) -> str:
        """The trial's id within a sweep, also its folder name: seed and arm, e.g. 's003-liminal@0.5-shared'."""
        return f"s{self.seed:03d}-{self._mitigation_label}-{self.student_init}"

    @property
    def _mitigation_label(self) -> str:
        return self.mitigation if self.mitigation == "none" else f"{self.mitigation}@{self.strength:g}"

    @property
    def teacher_key(self) -> str:
        """Hash of everything the teacher depends on: trials with equal keys share one teacher."""
        teacher_fields = ("seed", "init", "hidden", "aux_logits", "teacher_epochs", "teacher_lr",
                          "batch_size", "train_size", "split_seed")
        blob = json.dumps({name: getattr(self, name) for name in teacher_fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrialConfig)


def _check_type(name: str, value: Any, expected: Any) -> None:
    if typing.get_origin(expected) is Literal:
        allowed = typing.get_args(expected)
        if value not in allowed:
            raise ConfigError(f"{name}: {value!r} is not allowed; allowed: {', '.join(allowed)}")
        return
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[expected]
    if not ok:
        raise ConfigError(f"{name}: {value!r} is not allowed; must be of type {expected.__name__}")


def field_help() -> dict[str, tuple[Any, Any, str]]:
    """(type, default, help) per field, for building command-line options from the config."""
    types = _field_types()
    return {f.name: (types[f.name], f.default, f.metadata["help"]) for f in dataclasses.fields(TrialConfig)}
