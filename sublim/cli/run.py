"""`sublim run`: one trial in this process, with a progress bar, a summary and its outputs on disk."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from types import NoneType
from typing import Any, Callable

import torch
from tqdm import tqdm

from sublim.core.config import field_help, type_options
from sublim.core.files import DIVERGED_FILE, SUMMARY_FILE, TRACE_FILE, DiskFull, unwritable
from sublim.core.machine import gigabytes, memory_capacity
from sublim.core.mitigations import MITIGATIONS
from sublim.core.tracking import TRACKERS, TrackerError, check_trackers, final_summary
from sublim.trainable import (ConfigError, DataError, Diverged, InstallError, Teacher, Trial, TrialConfig, TrialData,
                              check_torchvision, load_mnist, resolve_device, train_teacher, write_trial_outputs)
from sublim.trainable.results import TeacherCache, write_diverged

from .tracking import tracked


class RunError(ValueError):
    """The output folder or a run option cannot be used."""


USER_ERRORS = (ConfigError, DataError, RunError, DiskFull, TrackerError, InstallError)
RUN_OUTPUTS = (SUMMARY_FILE, TRACE_FILE, DIVERGED_FILE)  # what a run writes into --out, and replaces only with --force
EXAMPLES = """examples:
  sublim run --seed 0                                          no mitigation: the trait is acquired
  sublim run --seed 0 --student-init independent               the control: a student of another init
  sublim run --seed 0 --mitigation projection --strength 1     remove the trait-aligned gradient component
  sublim run --seed 0 --mitigation liminal --strength 3 --out runs/liminal3
  sublim run --seed 1 --teacher-cache teachers                 reuse trained teachers across runs
  sublim run --seed 0 --tracker mlflow                         also log the trial to MLflow (./mlruns)
  sublim run --epochs 1 --noise-count 4096 --data-dir /data/datasets   a quick check, MNIST offline"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per trial setting, straight from TrialConfig, plus where data and outputs go."""
    parser.epilog = mitigations_help() + "\n\n" + EXAMPLES
    add_settings(parser.add_argument_group("trial settings (defaults are the published protocol)"), TrialConfig,
                 no_default={"strength": "required with any mitigation but none"})
    parser.add_argument("--data-dir", metavar="DIR", help="folder holding MNIST/raw (else $SUBLIM_DATA_DIR, else download)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: runs/<arm>-seed<N>-<time>)")
    parser.add_argument("--force", action="store_true", help="overwrite results already in --out")
    parser.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--teacher-cache", type=Path, metavar="DIR",
                        help="folder of trained teachers to reuse across runs (default: always train)")
    parser.add_argument("--tracker", action="append", choices=TRACKERS, default=[],
                        help="also log the trial as a run in MLflow (to $MLFLOW_TRACKING_URI, else ./mlruns) or "
                             "Weights & Biases (WANDB_MODE=offline honoured; its run folder in --out); repeat for both")


def mitigations_help() -> str:
    """Every mitigation here, built in or an installed plugin's (with its distribution and version)."""
    plugins = MITIGATIONS.plugins
    lines = [f"  {name:<12} {m.description}" + (f" [plugin: {plugins[name].distribution} {plugins[name].version}]"
                                                  if name in plugins else "") for name, m in MITIGATIONS.items()]
    return "mitigations (--mitigation):\n" + "\n".join(lines)


def add_settings(group: Any, cls: type, no_default: dict[str, str] | None = None) -> None:
    """One option per field of the settings class `cls`, e.g. --teacher-lr for teacher_lr. A field in `no_default`
    (name: why) defaults to None, for the caller to decide."""
    no_default = no_default or {}
    for name, (kind, default, help_text) in field_help(cls).items():
        action = group.add_argument("--" + name.replace("_", "-"), default=None if name in no_default else default,
                                    help=help_text, **option_for(kind))
        if name == "mitigation":  # the registry's names, installed plugins' included
            action.choices, action.metavar = tuple(MITIGATIONS), None
        if name in no_default:
            action.help += f" ({no_default[name]})"
        elif "%(default)" not in action.help:  # BooleanOptionalAction adds it itself on some Pythons
            action.help += " (default: %(default)s)"


def option_for(kind: Any) -> dict[str, Any]:
    """argparse keywords for a setting of type `kind`: --x/--no-x for a bool, choices for an enum, a
    number or text otherwise, and the word 'none' for None where the type is Optional."""
    options = type_options(kind)
    (inner,) = [o for o in options if o is not NoneType]  # a setting is one type, or Optional of one
    if inner is bool:
        return {"action": argparse.BooleanOptionalAction}
    choices = inner if isinstance(inner, tuple) else None
    if NoneType not in options:
        return {"choices": choices} if choices else {"type": inner, "metavar": inner.__name__.upper()}

    def parse(text: str) -> Any:
        return None if text == "none" else text if choices else inner(text)

    parse.__name__ = "none or " + ("choice" if choices else inner.__name__)  # argparse names it in errors
    words = ",".join(choices or [inner.__name__.upper()])
    return {"type": parse, "choices": choices and (*choices, None), "metavar": f"{{{words},none}}"}


def settings_from_args(args: argparse.Namespace, cls: type) -> Any:
    """The settings object of parsed options, checked by `cls` itself."""
    return cls.from_dict({name: getattr(args, name) for name in field_help(cls)})


def main(args: argparse.Namespace) -> int:
    args.strength = strength_of(args.mitigation, args.strength)
    config = settings_from_args(args, TrialConfig)
    out = args.out or Path("runs") / f"{config.arm.replace('/', '-')}-seed{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_before_work(args, out)
    check_fits(config, memory_capacity(), "this machine")
    device = resolve_device(config.device)  # a GPU that is not here fails now, not after loading data
    if device.type == "cuda":
        check_fits(config, torch.cuda.mem_get_info(device)[1], str(device))
    if args.threads:
        torch.set_num_threads(args.threads)
    data = TrialData.from_mnist(load_mnist(args.data_dir), config, device)
    try:
        with tracked(args.tracker, out.name, {"trial": {"trial_id": out.name, "config": config.to_dict()}}, out) as log:
            trial = Trial(config, data, teacher_for(config, data, args.teacher_cache))
            summary = train_with_progress(trial, log)
    except Diverged as error:
        write_diverged(out, config, error)
        raise RunError(f"{config.arm}, seed {config.seed}: {error}; wrote {out / DIVERGED_FILE}") from None
    # with what the report needs of its mitigation, as sweep.json keeps for a sweep: a plugin's facts, read without it
    write_trial_outputs(out, {**summary, "mitigations": MITIGATIONS.record([config.mitigation])},
                        trial.trace_columns())
    (out / DIVERGED_FILE).unlink(missing_ok=True)  # of an earlier run overwritten with --force
    print(
        f"\n{config.arm}, seed {config.seed}: student accuracy {summary['student_acc_before']:.4f} -> "
        f"{summary['student_acc']:.4f} (trait_gain {summary['trait_gain']:+.4f}); mean alignment "
        f"{summary['mean_alignment']:+.3e}, positive on {summary['frac_positive_steps']:.0%} of "
        f"{summary['steps']} steps; {summary['seconds']:.1f} s\nwrote {out}/summary.json and {out}/trace.parquet"
    )
    return 0


def strength_of(mitigation: str, strength: float | None) -> float:
    """The strength given; a mitigation named without one is refused, not run at strength 0 (no mitigation)."""
    if strength is not None or MITIGATIONS[mitigation].max_strength == 0:
        return 0.0 if strength is None else strength
    typical = ", ".join(f"{s:g}" for s in MITIGATIONS[mitigation].typical_strengths)
    raise RunError(f"--strength: missing; --mitigation {mitigation} needs a strength, typically {typical} "
                   "(--strength 0 runs it at no strength, which is no mitigation)")


def check_before_work(args: argparse.Namespace, out: Path) -> None:
    """Every option that could fail the run after training, checked before any data is loaded."""
    held = [name for name in RUN_OUTPUTS if os.path.lexists(out / name)]  # any file there: a user's trace too
    if held and not args.force:
        raise RunError(f"--out {out} already holds a {held[0]}; pass --force to overwrite or choose another folder")
    for flag, folder in (("--out", out), ("--teacher-cache", args.teacher_cache)):
        problem = folder is not None and unwritable(folder)
        if problem:
            raise RunError(f"{flag} {folder}: {problem}")
    if args.threads is not None and args.threads < 1:
        raise RunError(f"--threads {args.threads} is not allowed; must be >= 1")
    check_trackers(args.tracker)
    check_torchvision()


def check_fits(config: TrialConfig, capacity: int | None, where: str) -> None:
    """A trial larger than the memory of `where` is refused before the teacher trains, not failed after."""
    if capacity is not None and config.memory_bytes > capacity:
        raise RunError(f"--noise-count {config.noise_count} with --batch-size {config.batch_size} and --hidden "
                       f"{config.hidden}: a trial needs at least {gigabytes(config.memory_bytes)} of memory and "
                       f"{where} holds {gigabytes(capacity)}; use a smaller noise set, batch or width")


def teacher_for(config: TrialConfig, data: TrialData, cache_folder: Path | None) -> Teacher:
    """The cached teacher of this config when there is a usable one, else a newly trained one (then cached)."""
    def train() -> Teacher:
        print(f"training teacher ({config.teacher_epochs} epochs on {data.train_x.device}) ...", flush=True)
        return train_teacher(config, data)

    teacher = TeacherCache(cache_folder).get_or_train(config.teacher_key, train)[0] if cache_folder else train()
    print(f"teacher test accuracy {teacher.test_acc:.4f} ({teacher.seconds:.1f} s)", flush=True)
    return teacher


def train_with_progress(trial: Trial, log: Callable[[dict[str, Any], int], None]) -> dict[str, Any]:
    """Distil with a progress bar showing each epoch's accuracy and alignment; the trial's summary. Each epoch's
    metrics, then the summary's numbers, go to `log` (the trackers)."""
    config = trial.config
    with tqdm(total=config.epochs, desc=f"student {config.arm}", unit="epoch") as bar:
        bar.set_postfix(acc=f"{trial.acc_by_epoch[0]:.3f}")
        for metrics in trial.run():
            bar.set_postfix(acc=f"{metrics['student_acc']:.3f}", align=f"{metrics['mean_alignment']:+.2e}")
            bar.update()
            log(metrics, trial.epoch)
    summary = trial.summary()
    log({"summary": final_summary(summary)}, trial.epoch)
    return summary
