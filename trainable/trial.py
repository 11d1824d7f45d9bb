"""One trial: train (or reuse) the teacher, distil the student on noise, measure alignment every step.

Read top to bottom: `train_teacher`, then `Trial`, whose `run()` yields once per epoch so that a
caller (the CLI's progress bar, a Tune trainable) can report and checkpoint between epochs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from sublim.core.config import ConfigError, TrialConfig
from sublim.core.mitigations import MITIGATIONS, MitigationError, Step
from sublim.core.schema import LAYER_NAMES, NUM_CLASSES, TRACE_COLUMNS
from sublim.core.versions import library_versions

from .data import TrialData, noise_images
from .model import MLP, accuracy, init_parameters, logits
from .seeding import generator

STATE_FORMAT = 1

# What each step records, before the cosines are formed from the dot products at the epoch's end.
_RAW = ["distill_loss", "trait_loss", "mitigation_loss", "mitigation_weight", "dot", "distill_sq", "trait_sq",
        "applied_dot", "applied_sq"] + [f"{kind}_{name}" for kind in ("dot", "distill_sq", "trait_sq")
                                        for name in LAYER_NAMES] + ["update_dot", "update_sq"]
_UPDATE = slice(len(_RAW) - 2, len(_RAW))  # g_t·Δθ and ‖Δθ‖², known only after the optimizer's step


# Quantities of a step that must stay finite, by their column in the step record, and as named in errors.
_CHECKED = {"distill_loss": "distillation loss", "trait_loss": "trait loss", "mitigation_loss": "mitigation loss",
            "distill_sq": "distillation gradient", "trait_sq": "trait gradient", "applied_sq": "applied gradient"}


class Diverged(RuntimeError):
    """A loss, gradient or parameter became non-finite. The run stops: being deterministic, it would diverge again."""

    def __init__(self, model: str, step: int, quantity: str):
        super().__init__(f"the {model} diverged at step {step}: its {quantity} is not finite")
        self.model, self.step, self.quantity = model, step, quantity

    def record(self) -> dict[str, Any]:
        return {"model": self.model, "step": self.step, "quantity": self.quantity, "message": str(self)}


def _check_finite(model: str, step: int, values: dict[str, torch.Tensor]) -> None:
    """Raise `Diverged` naming the first non-finite quantity (a cheap check of a few scalars per step)."""
    finite = torch.isfinite(torch.stack(list(values.values())))
    if not bool(finite.all()):
        raise Diverged(model, step, list(values)[int((~finite).nonzero()[0])])


def resolve_device(name: str) -> torch.device:
    """The config's device on this machine; a ConfigError when it asks for a GPU that is not here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device: {name!r} is not allowed; this machine has {torch.cuda.device_count()} CUDA "
                          "GPU(s); use auto or cpu")
    return device


def distillation_loss(student_logits: torch.Tensor, teacher_aux_log_probs: torch.Tensor) -> torch.Tensor:
    """KL(softmax(teacher_aux) ‖ softmax(student_aux)) over the auxiliary logits only, batch mean."""
    student_aux = F.log_softmax(student_logits[:, NUM_CLASSES:], dim=1)
    return F.kl_div(student_aux, teacher_aux_log_probs, log_target=True, reduction="batchmean")


@dataclass(frozen=True)
class Teacher:
    """A trained teacher: its flat parameters (on CPU), test accuracy and training time."""

    key: str
    params: torch.Tensor
    test_acc: float
    seconds: float

    def state_dict(self) -> dict[str, Any]:
        return {"key": self.key, "params": self.params, "test_acc": self.test_acc, "seconds": self.seconds}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Teacher":
        """A teacher from `state_dict()`'s output; TypeError when it is something else."""
        params, key, acc, seconds = (state.get(k) if isinstance(state, dict) else None
                                     for k in ("params", "key", "test_acc", "seconds"))
        if not (isinstance(params, torch.Tensor) and params.dim() == 1 and params.dtype == torch.float32
                and isinstance(key, str) and isinstance(acc, float) and isinstance(seconds, float)):
            raise TypeError("not a teacher state (float32 params vector, key, test_acc, seconds)")
        return cls(key, params, acc, seconds)


def train_teacher(config: TrialConfig, data: TrialData) -> Teacher:
    """Train a copy of the shared init with cross-entropy on the class logits only.

    The auxiliary logits are not in the loss, so their output rows never move from the init.
    """
    start = time.perf_counter()
    device = data.train_x.device
    model = MLP(config, init_parameters(config, "shared_init")).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.teacher_lr)
    shuffle = generator(config.seed, "teacher_shuffle")
    n, step = len(data.train_x), 0
    for _ in range(config.teacher_epochs):
        order = torch.randperm(n, generator=shuffle).to(device)
        for i in range(0, n, config.batch_size):
            idx = order[i:i + config.batch_size]
            loss = F.cross_entropy(model(data.train_x[idx])[:, :NUM_CLASSES], data.train_y[idx])
            _check_finite("teacher", step, {"loss": loss.detach()})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        _check_finite("teacher", step - 1, {"parameters": model.flat.detach().abs().amax()})
    test_acc = accuracy(model, data.test_x, data.test_y)
    return Teacher(config.teacher_key, model.flat.detach().cpu(), test_acc, time.perf_counter() - start)


def student_init_stream(config: TrialConfig) -> str:
    """The seeding stream of the student's initial parameters: the teacher's init (shared) or its own."""
    return "shared_init" if config.student_init == "shared" else "independent_init"


def initial_student(config: TrialConfig, device: torch.device) -> MLP:
    return MLP(config, init_parameters(config, student_init_stream(config))).to(device)


@dataclass(frozen=True)
class DistillationTargets:
    """The noise set and the teacher's auxiliary log-probabilities on it: what every arm of a seed distils on.

    Built once per trial by default; a caller running many trials of one seed (a sweep's worker) may
    build it once and pass it to each: the tensors are never written to.
    """

    key: tuple  # `key_of` its config, teacher and device
    noise: torch.Tensor
    teacher_log_probs: torch.Tensor
    # The initial students' logits on the noise, by init stream: computed on first use, or supplied by a caller.
    initial_logits_by_stream: dict[str, torch.Tensor] = field(default_factory=dict, init=False, compare=False,
                                                              repr=False)

    def initial_logits(self, config: TrialConfig) -> torch.Tensor:
        """Logits on the noise of the student of `config` at its initialization: liminal training's frozen base.
        Computed once per init stream (all liminal arms of a seed share it)."""
        stream = student_init_stream(config)
        if stream not in self.initial_logits_by_stream:
            self.initial_logits_by_stream[stream] = logits(initial_student(config, self.noise.device), self.noise)
        return self.initial_logits_by_stream[stream]

    @staticmethod
    def key_of(config: TrialConfig, teacher: Teacher, device: torch.device) -> tuple:
        """What the targets of `config` depend on; `cuda` and `cuda:0` (its current GPU) are one device."""
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        return config.seed, config.noise_count, teacher.key, str(device)

    @classmethod
    def of(cls, config: TrialConfig, teacher: Teacher, device: torch.device) -> "DistillationTargets":
        noise = noise_images(config, device)
        teacher_model = MLP(config, teacher.params).to(device)
        log_probs = F.log_softmax(logits(teacher_model, noise)[:, NUM_CLASSES:], dim=1)
        return cls(cls.key_of(config, teacher, device), noise, log_probs)


class Trial:
    """The student's distillation on the teacher's auxiliary logits, with per-step alignment."""

    def __init__(self, config: TrialConfig, data: TrialData, teacher: Teacher, track_alignment: bool = True,
                 targets: "DistillationTargets | None" = None):
        if teacher.key != config.teacher_key:
            raise ValueError(f"teacher {teacher.key} does not belong to this config (needs {config.teacher_key})")
        self.config, self.data, self.teacher = config, data, teacher
        # Off only for benchmarking the cost of measuring: the trace then holds no alignment.
        self.track_alignment = track_alignment
        device = data.train_x.device

        if targets is None:
            targets = DistillationTargets.of(config, teacher, device)
        if targets.key != DistillationTargets.key_of(config, teacher, device):
            raise ValueError(f"distillation targets {targets.key} do not belong to this trial")
        self.noise, self.teacher_log_probs = targets.noise, targets.teacher_log_probs

        self.student = initial_student(config, device)
        self.layer_sizes = self.student.layer_index().bincount().tolist()
        self.optimizer = torch.optim.Adam(self.student.parameters(), lr=config.lr)
        self.shuffle = generator(config.seed, "student_shuffle")
        self.probe = generator(config.seed, "probe")
        self.mitigation_rng = generator(config.seed, "mitigation")  # for mitigations that draw (placebo)

        self.mitigation = MITIGATIONS[config.mitigation]
        self.adds_loss = config.adds_loss  # the loss term is computed at strength > 0 only
        self.has_loss = self.mitigation.adds_loss  # its step reads s.loss_grad: zero at strength 0
        self.needs_trait = self.mitigation.needs_trait_gradient
        # What each step checks for finiteness, by its column in the step record (looked up once, not per step).
        self.checked_columns = {label: _RAW.index(name) for name, label in _CHECKED.items()
                                if name != "mitigation_loss" or self.adds_loss}
        if self.adds_loss:  # the frozen base is the student before distillation: its logits never change
            self.base_targets = self.mitigation.base_targets(config, targets.initial_logits(config))

        self.steps_per_epoch = math.ceil(config.noise_count / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.epoch = 0
        self.acc_by_epoch = [accuracy(self.student, data.test_x, data.test_y)]
        self.trace: dict[str, list[torch.Tensor]] = {name: [] for name in TRACE_COLUMNS}
        self.student_seconds = 0.0

    # --- training -------------------------------------------------------------------------------

    def run(self) -> Iterator[dict[str, Any]]:
        """Train the remaining epochs, yielding each epoch's metrics when it ends."""
        while self.epoch < self.config.epochs:
            start = time.perf_counter()
            raw = self._train_epoch()
            self.epoch += 1
            self.acc_by_epoch.append(accuracy(self.student, self.data.test_x, self.data.test_y))
            self._append_trace(raw.cpu().double())
            self.student_seconds += time.perf_counter() - start
            yield self.epoch_metrics(self.epoch)

    def _train_epoch(self) -> torch.Tensor:
        config, device = self.config, self.noise.device
        raw = torch.zeros(self.steps_per_epoch, len(_RAW), device=device)
        order = torch.randperm(config.noise_count, generator=self.shuffle).to(device)
        flat = self.student.flat
        for i in range(self.steps_per_epoch):
            step = self.epoch * self.steps_per_epoch + i
            idx = order[i * config.batch_size:(i + 1) * config.batch_size]
            out = self.student(self.noise[idx])
            distill_loss = distillation_loss(out, self.teacher_log_probs[idx])
            (distill_grad,) = torch.autograd.grad(distill_loss, flat, retain_graph=self.adds_loss)
            t = step / self.total_steps

            mitigation_loss, loss_grad = torch.full((), math.nan, device=device), None
            if self.adds_loss:
                mitigation_loss = self.mitigation.loss(config, t, out, self.base_targets[idx])
                (loss_grad,) = torch.autograd.grad(mitigation_loss, flat)
            elif self.has_loss:
                loss_grad = torch.zeros_like(distill_grad)
            trait_loss, trait_grad = (self._trait_gradient() if self.track_alignment or self.needs_trait
                                      else (None, None))
            applied, mitigation_weight = self._mitigated(Step(config.mitigation, distill_grad, loss_grad,
                                                              trait_grad if self.needs_trait else None, t,
                                                              self.mitigation_rng))
            if self.track_alignment:
                raw[i, :_UPDATE.start] = self._step_record(distill_loss, trait_loss, mitigation_loss, mitigation_weight,
                                                           distill_grad, trait_grad, applied)
            self._check_step(step, raw[i], distill_loss, applied)
            flat.grad = applied
            before = flat.detach().clone() if self.track_alignment else None
            self.optimizer.step()
            if before is not None:  # the step Adam actually took, against the trait gradient
                delta = flat.detach() - before
                raw[i, _UPDATE] = torch.stack([delta.dot(trait_grad), delta.dot(delta)])
        _check_finite("student", step, {"parameters": flat.detach().abs().amax()})
        return raw

    def _mitigated(self, s: Step) -> tuple[torch.Tensor, torch.Tensor]:
        """The mitigation's step: the gradient to apply and its coefficient as a scalar tensor, or a one-line error
        when the step returns something else."""
        result = self.mitigation.step(self.config, s)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.Tensor)
                and result[0].shape == s.distill_grad.shape and result[0].dtype == s.distill_grad.dtype):
            raise MitigationError(f"mitigation {self.config.mitigation!r}: step must return (a gradient shaped like "
                                  f"s.distill_grad, {tuple(s.distill_grad.shape)}, a number), not {result!r:.80}")
        applied, coefficient = result
        coefficient = torch.as_tensor(coefficient, dtype=s.distill_grad.dtype, device=s.distill_grad.device)
        if coefficient.dim():
            raise MitigationError(f"mitigation {self.config.mitigation!r}: step's coefficient must be one number, "
                                  f"not shape {tuple(coefficient.shape)}")
        return applied, coefficient

    def _check_step(self, step: int, record: torch.Tensor, distill_loss: torch.Tensor, applied: torch.Tensor) -> None:
        """Stop at the first non-finite loss or gradient: from the step record, or directly when it is not kept."""
        if not self.track_alignment:
            _check_finite("student", step, {"distillation loss": distill_loss.detach(),
                                            "applied gradient": applied.dot(applied)})
            return
        _check_finite("student", step, {label: record[column] for label, column in self.checked_columns.items()})

    def _trait_gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of the class logits on a fresh probe batch from the validation subset."""
        data = self.data
        idx = torch.randperm(len(data.val_x), generator=self.probe)[: self.config.probe_batch_size]
        idx = idx.to(data.val_x.device)
        trait_loss = F.cross_entropy(self.student(data.val_x[idx])[:, :NUM_CLASSES], data.val_y[idx])
        (trait_grad,) = torch.autograd.grad(trait_loss, self.student.flat)
        return trait_loss.detach(), trait_grad

    def _step_record(self, distill_loss, trait_loss, mitigation_loss, mitigation_weight, distill_grad, trait_grad,
                     applied) -> torch.Tensor:
        """One row of raw sums: whole-vector and per-layer dot products, all kept on the device."""
        products = torch.stack([distill_grad * trait_grad, distill_grad * distill_grad, trait_grad * trait_grad])
        per_layer = torch.stack([chunk.sum(1) for chunk in products.split(self.layer_sizes, dim=1)], dim=1)
        totals = per_layer.sum(1)
        return torch.cat([
            torch.stack([distill_loss.detach(), trait_loss, mitigation_loss.detach(), mitigation_weight]),
            totals, torch.stack([applied.dot(trait_grad), applied.dot(applied)]), per_layer.flatten(),
        ])

    def _append_trace(self, raw: torch.Tensor) -> None:
        col = {name: raw[:, j] for j, name in enumerate(_RAW)}
        start = (self.epoch - 1) * self.steps_per_epoch
        steps = torch.arange(start, start + len(raw), dtype=torch.float64)
        columns = {
            "step": steps, "epoch": torch.full_like(steps, self.epoch), "t": steps / self.total_steps,
            "distill_loss": col["distill_loss"], "trait_loss": col["trait_loss"],
            "mitigation_loss": col["mitigation_loss"], "mitigation_weight": col["mitigation_weight"],
            "alignment": col["dot"] / (col["distill_sq"] * col["trait_sq"]).sqrt(),
            "applied_alignment": col["applied_dot"] / (col["applied_sq"] * col["trait_sq"]).sqrt(),
            "dot": col["dot"], "distill_norm": col["distill_sq"].sqrt(), "trait_norm": col["trait_sq"].sqrt(),
            "update_alignment": -col["update_dot"] / (col["update_sq"] * col["trait_sq"]).sqrt(),
            "update_trait_change": col["update_dot"],
        }
        for name in LAYER_NAMES:
            columns[f"alignment_{name}"] = col[f"dot_{name}"] / (col[f"distill_sq_{name}"] * col[f"trait_sq_{name}"]).sqrt()
        if not self.track_alignment:
            columns = {name: (values if name in ("step", "epoch", "t") else torch.full_like(values, math.nan))
                       for name, values in columns.items()}
        for name in TRACE_COLUMNS:
            self.trace[name].append(columns[name])

    # --- results ---------------------------------------------------------------------------------

    def trace_columns(self) -> dict[str, torch.Tensor]:
        """The step trace so far, one float64 tensor per column (step and epoch are whole numbers)."""
        return {name: torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
                for name, parts in self.trace.items()}

    def epoch_metrics(self, epoch: int) -> dict[str, Any]:
        """Metrics of epoch `epoch` (1-based): accuracy after it, alignment during it."""
        alignment = self.trace["alignment"][epoch - 1]
        applied = self.trace["applied_alignment"][epoch - 1]
        return {
            "epoch": epoch,
            "student_acc": self.acc_by_epoch[epoch],
            "mean_alignment": float(alignment.mean()),
            "frac_positive_steps": float((alignment > 0).double().mean()),
            "mean_applied_alignment": float(applied.mean()),
            "mean_update_alignment": float(self.trace["update_alignment"][epoch - 1].mean()),
            "distill_loss": float(self.trace["distill_loss"][epoch - 1].mean()),
        }

    def summary(self) -> dict[str, Any]:
        """The trial's result: what `summary.json` holds."""
        trace = self.trace_columns()
        per_epoch = [self.epoch_metrics(e) for e in range(1, self.epoch + 1)]
        return {
            "arm": self.config.arm,
            "teacher_key": self.teacher.key,
            "teacher_acc": self.teacher.test_acc,
            "student_acc_before": self.acc_by_epoch[0],
            "student_acc": self.acc_by_epoch[-1],
            "trait_gain": self.acc_by_epoch[-1] - self.acc_by_epoch[0],
            "mean_alignment": float(trace["alignment"].mean()),
            "frac_positive_steps": float((trace["alignment"] > 0).double().mean()),
            "mean_applied_alignment": float(trace["applied_alignment"].mean()),
            "acc_by_epoch": list(self.acc_by_epoch),
            "alignment_by_epoch": [m["mean_alignment"] for m in per_epoch],
            "frac_positive_by_epoch": [m["frac_positive_steps"] for m in per_epoch],
            "applied_alignment_by_epoch": [m["mean_applied_alignment"] for m in per_epoch],
            "mean_update_alignment": float(trace["update_alignment"].mean()),
            "update_alignment_by_epoch": [m["mean_update_alignment"] for m in per_epoch],
            "epochs_done": self.epoch,
            "steps": len(trace["step"]),
            "final_distill_loss": per_epoch[-1]["distill_loss"] if per_epoch else math.nan,
            "teacher_seconds": self.teacher.seconds,
            "student_seconds": self.student_seconds,
            "seconds": self.teacher.seconds + self.student_seconds,
            "versions": library_versions(self.config.mitigation),  # a plugin's distribution too
            # Numbers are a function of the config and of these (the last bits differ between CPU and GPU, and
            # with the thread count for a few reductions): recorded, though not required of older results.
            "ran_on": {"device": str(self.noise.device), "threads": torch.get_num_threads()},
            "config": self.config.to_dict(),
        }

    # --- checkpointing at an epoch boundary -----------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: tensors, numbers and strings only (loads with weights_only)."""
        return {
            "format": STATE_FORMAT,
            "config": self.config.to_dict(),
            "teacher_key": self.teacher.key,
            "epoch": self.epoch,
            "student": self.student.flat.detach().cpu().clone(),
            "optimizer": self.optimizer.state_dict(),
            "shuffle_rng": self.shuffle.get_state(),
            "probe_rng": self.probe.get_state(),
            "mitigation_rng": self.mitigation_rng.get_state(),
            "acc_by_epoch": list(self.acc_by_epoch),
            "trace": self.trace_columns(),
            "student_seconds": self.student_seconds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT or state["config"] != self.config.to_dict():
            raise ValueError("checkpoint belongs to a different trial configuration or format")
        with torch.no_grad():
            self.student.flat.copy_(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.shuffle.set_state(state["shuffle_rng"])
        self.probe.set_state(state["probe_rng"])
        self.mitigation_rng.set_state(state["mitigation_rng"])
        self.epoch = state["epoch"]
        self.acc_by_epoch = list(state["acc_by_epoch"])
        steps = self.steps_per_epoch
        self.trace = {name: list(values.split(steps)) if len(values) else []
                      for name, values in state["trace"].items()}
        self.student_seconds = state["student_seconds"]
