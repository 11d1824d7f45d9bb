"""`sublim sweep`: run a spec's seeds × arms with Ray Tune, locally or on a Ray cluster, resumably."""

from __future__ import annotations

import argparse
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from sublim.core.durations import duration_text
from sublim.core.files import DataError, DiskFull, InstallError, unwritable
from sublim.core.machine import gigabytes, memory_capacity
from sublim.core.mnist import load_mnist
from sublim.core.tracking import TRACKERS, TrackerError, check_trackers
from sublim.core.versions import check_torchvision
from sublim.sweeps.lock import LockHeld
from sublim.sweeps.results import ResultsFolder, SweepError
from sublim.sweeps.spec import SpecError, SweepSpec, name_problem, read_spec_text


if TYPE_CHECKING:
    from sublim.sweeps.tune_run import SweepOutcome

USER_ERRORS = (SpecError, SweepError, DataError, LockHeld, DiskFull, TrackerError, InstallError)
DEFAULT_STORAGE = "results"
EXAMPLES = """examples:
  sublim sweep smoke --dry-run                     the grid and its predicted time; nothing runs
  sublim sweep smoke                               a small sweep into results/smoke, then the command to report
  sublim sweep paper --data-dir /data/datasets     the published comparison, MNIST offline
  sublim sweep paper --tracker mlflow              also log every trial to MLflow (./mlruns)
  sublim sweep my-sweep.yaml --address auto        your spec, on a running Ray cluster
  sublim sweep paper --until-resolved --max-seeds 40 --wave 5   add seeds in waves until the claims are resolved"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("spec", type=Path, metavar="SPEC",
                        help="sweep spec (YAML file), or the name of a shipped one: " + ", ".join(shipped_specs()))
    parser.add_argument("--storage", default=DEFAULT_STORAGE, metavar="DIR",
                        help="folder holding results, one subfolder per sweep; on a cluster, a path that every "
                             "node mounts (default: %(default)s)")
    parser.add_argument("--name", metavar="NAME", help="results subfolder (default: the spec's name)")
    parser.add_argument("--address", metavar="ADDR",
                        help="join a running Ray cluster (e.g. auto, or HOST:6379) instead of starting a local Ray")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted sweep in STORAGE/NAME (running the same spec with the same "
                             "name and storage continues it too)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="folder holding MNIST/raw (else $SUBLIM_DATA_DIR, else download)")
    parser.add_argument("--tracker", action="append", choices=TRACKERS, default=[],
                        help="also log every trial as a run in MLflow (to $MLFLOW_TRACKING_URI, else ./mlruns) or "
                             "Weights & Biases (WANDB_MODE=offline honoured), through Tune's logger callbacks; "
                             "repeat for both")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the grid and its predicted time; run nothing")
    waves = parser.add_argument_group("growing in waves until the claims are resolved (a group-sequential design)")
    waves.add_argument("--until-resolved", action="store_true",
                       help="run the spec's arms over seeds in waves, stopping once every primary directional test "
                            "the arms can answer is resolved (supported or contradicted at its look's boundary, "
                            "family-wise alpha 0.05 by Holm-Bonferroni, or dropped as futile), or at --max-seeds; no "
                            "test is judged on fewer than 6 seeds; with axes, every such test at every level, each on "
                            "that level's trials (one family over tests x levels), every wave adding its seeds to "
                            "every level")
    waves.add_argument("--max-seeds", type=int, metavar="N", help="the planned maximum number of seeds")
    waves.add_argument("--wave", type=int, metavar="K", help="seeds per wave (default: the spec's number of seeds)")


def shipped_specs() -> dict[str, Path]:
    """The specs installed with the package (sweeps/*.yaml), by name: `sublim sweep paper` works from any folder."""
    folder = resources.files("sublim.sweeps")
    return {Path(entry.name).stem: Path(str(entry)) for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".yaml")}


def spec_path(given: Path) -> Path:
    """A spec file as given, else a shipped spec of that bare name (no folder, no suffix)."""
    if given.exists() or given.suffix or given.parent != Path("."):
        return given
    shipped = shipped_specs()
    if str(given) not in shipped:
        raise SpecError(f"{given}: no such spec file, and no shipped spec of that name; shipped: {', '.join(shipped)}")
    return shipped[str(given)]


def main(args: argparse.Namespace) -> int:
    args.spec = spec_path(args.spec)
    spec_text = read_spec_text(args.spec)  # read once: the sweep records the text it parsed
    if args.resume:
        refuse_missing_plugins(args, spec_text)
    spec = SweepSpec.parse(spec_text, str(args.spec))
    if args.dry_run:
        print(dry_run(spec))
        return 0
    check_waves(args, spec)
    check_trackers(args.tracker)
    check_torchvision()
    name = args.name or spec.name
    if name_problem(name):
        raise SweepError(f"--name {name_problem(name)}")
    check_storage(args.storage)
    if not args.address:
        check_local_resources(args.spec, spec)
    folder = ResultsFolder(Path(args.storage) / name)
    folder.check_entries(spec.trials)
    with folder.locked():  # one driver per results folder, from here to the end
        announce(args, name, spec, folder)
        outcome = run(args, name, spec, spec_text, folder)
    print()
    print(closing_paragraph(name, args, outcome), flush=True)
    from sublim.sweeps.session import TERMINATED

    if TERMINATED.is_set():
        return 143
    return 0 if outcome.finished == outcome.total else 2 if len(outcome.diverged) == outcome.total else 1


def refuse_missing_plugins(args: argparse.Namespace, spec_text: str) -> None:
    """--resume of a sweep whose trials use a mitigation plugin not installed here: refused in one line naming the
    plugin, before the spec (whose check could name only the mitigation)."""
    name = args.name
    if name is None:
        try:
            name = yaml.safe_load(spec_text).get("name")
        except (ValueError, yaml.YAMLError, AttributeError):
            return  # the spec's own check says what is wrong with it
    if name_problem(name):
        return
    folder = ResultsFolder(Path(args.storage) / name)
    missing = folder.plugins_missing()
    if missing:
        raise SweepError(f"--resume: {folder.path}'s trials use mitigation {missing[0]}, not installed here; install "
                         "it to resume (`sublim report` reads the folder without it)")


def run(args: argparse.Namespace, name: str, spec: SweepSpec, spec_text: str, folder: ResultsFolder) -> SweepOutcome:
    """The sweep (or its waves) on Ray, MNIST loaded once, here: trials get it through Ray's object store. Ray's and
    Tune's log lines go to tune/ray.log in the results folder."""
    from sublim.sweeps.session import RAY_LOG, ray_log_to, ray_session
    from sublim.sweeps.tune_run import run_sweep  # Ray loads only for a valid spec (torch only in Ray's workers)

    mnist = load_mnist(args.data_dir)
    with ray_log_to(folder.tune_dir / RAY_LOG):
        if args.until_resolved:
            from .waves import run_until_resolved

            with ray_session(args.address) as seconds:  # one Ray for every wave, not a start per wave
                print(f"Ray started in {seconds:.1f} s, for every wave", flush=True)
                return run_until_resolved(args, name, spec, folder, lambda *wave: run_sweep(
                    name, *wave, folder, mnist, address=args.address, trackers=args.tracker))
        return run_sweep(name, spec, spec_text, folder, mnist, address=args.address, trackers=args.tracker)


def dry_run(spec: SweepSpec) -> str:
    """The grid and its predicted cost (sweeps/cost.py), for sizing a cluster before anything runs."""
    from sublim.sweeps.cost import predicted_cost
    from sublim.core.config import label_value

    configs = [t.config for t in spec.trials]
    keys = [c.teacher_key for c in configs]  # once per trial: a grid may hold 50,000
    per_seed = len(configs) // len(spec.seeds)
    lines = [f"sweep {spec.name}: {len(configs)} trials ({len(spec.seeds)} seeds x {per_seed} "
             f"{'points of arms x axes' if spec.axes else 'arms'}), {len(set(keys))} "
             f"teacher(s); ids from {spec.trials[0].trial_id} to {spec.trials[-1].trial_id}"]
    for name, values in spec.axes.items():
        trials, teachers = dict.fromkeys(values, 0), {value: set() for value in values}
        for config, key in zip(configs, keys):
            trials[getattr(config, name)] += 1
            teachers[getattr(config, name)].add(key)
        lines.append(f"  {name}: " + "; ".join(f"{label_value(value)}: {trials[value]} trials, "
                                               f"{len(teachers[value])} teacher(s)" for value in values))
    cost, cores = predicted_cost(configs), len(os.sched_getaffinity(0))  # not Ray's count: a dry run loads no Ray
    lines.append(f"predicted cost: {cost.total / 3600:.2f} core-hours at one thread per trial, "
                 f"{duration_text(cost.total / cores)} on this machine's {cores:g} cores (of core time: students "
                 f"{duration_text(cost.students)}, teachers {duration_text(cost.teachers)}, per-trial overhead "
                 f"{duration_text(cost.overhead)}); Ray's and its workers' start not included; the model is in "
                 "the README ('Spec files')")
    if spec.resources.threads > 1 or spec.resources.gpus:
        lines.append(f"  the spec's {spec.resources.cpus:g} CPU(s) and {spec.resources.gpus:g} GPU(s) per trial are "
                     "not modeled: the prediction is for one thread per trial on a CPU")
    lines.append("nothing was run (--dry-run)")
    return "\n".join(lines)


def check_waves(args: argparse.Namespace, spec: SweepSpec) -> None:
    """--until-resolved, --max-seeds and --wave go together, and their plan must work: checked before any work."""
    if args.until_resolved != (args.max_seeds is not None) or (args.wave is not None and not args.until_resolved):
        raise SweepError("--until-resolved needs --max-seeds N (and takes --wave K); they go together")
    if args.until_resolved:
        from .waves import plan

        plan(spec, args.max_seeds, args.wave)


def announce(args: argparse.Namespace, name: str, spec: SweepSpec, folder: ResultsFolder) -> None:
    """Say whether the sweep starts, continues or grows the folder (a conflicting spec fails here)."""
    if folder.exists() and args.until_resolved:
        print(f"continuing the waves of sweep {name} in {folder.path}", flush=True)
    elif folder.exists():
        added = folder.added_by(spec)
        print(f"extending sweep {name} in {folder.path} by {len(added)} trial(s); finished ones are kept"
              if added else f"continuing sweep {name} in {folder.path}", flush=True)
    elif args.resume:
        raise SweepError(f"--resume: nothing to resume in {folder.path} (no sweep.json); drop --resume to start it")


def check_local_resources(path: Path, spec: SweepSpec) -> None:
    """A trial that needs more CPUs or GPUs than this machine has would wait for ever, and one that needs more memory
    would fail after its teacher trained: refused before any work."""
    from sublim.sweeps.session import local_resources

    largest, capacity = max((t.config for t in spec.trials), key=lambda c: c.memory_bytes), memory_capacity()
    if capacity is not None and largest.memory_bytes > capacity:
        raise SpecError(f"{path}: trial {largest.arm} with noise_count {largest.noise_count}, batch_size "
                        f"{largest.batch_size} and hidden {largest.hidden} needs at least "
                        f"{gigabytes(largest.memory_bytes)} of memory, and this machine holds {gigabytes(capacity)}: "
                        "use a smaller noise set, batch or width, or a Ray cluster whose nodes have the memory")
    have = local_resources()
    for key, need in spec.resources.tune().items():
        if need > have[key]:
            raise SpecError(f"{path}: key 'resources.{key}s': each trial needs {need:g} {key.upper()}(s), and this "
                            f"machine has {have[key]:g} (as Ray counts them): at most {have[key]:g} is allowed "
                            "here, or run it on a Ray cluster that has them (--address)")


def check_storage(storage: str) -> None:
    """Before any data is loaded or Ray starts: the storage is a folder (or can be one) that we may write to."""
    if "://" in storage:
        raise SweepError(f"--storage {storage}: URIs are not supported; give a folder (on a cluster, one "
                         "that every node mounts at the same path, such as EFS or NFS)")
    problem = unwritable(Path(storage))
    if problem:
        raise SweepError(f"--storage {storage}: {problem}")


def closing_paragraph(name: str, args: argparse.Namespace, outcome: SweepOutcome) -> str:
    """Where the results are and the command to run next."""
    minutes, seconds = divmod(round(outcome.seconds), 60)
    text = (f"Sweep {name}: {outcome.finished} of {outcome.total} trials finished in {minutes} min {seconds} s, "
            f"with {outcome.teachers} teacher(s) ({outcome.teachers_trained} trained in this run, the others reused). "
            # (no share of the cores' time when Ray started with none: an autoscaling cluster's workers come later)
            + (f"{outcome.profile.line()} " if outcome.profile and outcome.profile.trials and outcome.profile.capacity
               else "") +
            f"Results are in {outcome.folder}: sweep.json describes the grid and versions, "
            f"trials/<trial_id>/ holds each trial's summary.json and trace.parquet.")
    if outcome.diverged:
        text += (f" {len(outcome.diverged)} trial(s) diverged, e.g. {outcome.diverged[0]} (a non-finite loss, "
                 "gradient or parameter; trials/<trial_id>/diverged.json says where): being deterministic, they "
                 "are not run again.")
    if outcome.failed:
        again = f"sublim sweep {args.spec} --storage {args.storage} --name {name} --resume"
        text += (f" {len(outcome.failed)} trial(s) did not finish, e.g. {outcome.failed[0]} (a failed one "
                 f"has trials/<trial_id>/error.txt); continue or retry them with: {again}.")
        if outcome.disk_full:
            text += (" The disk holding the results filled up (the lines above say where): nothing was "
                     "half-written, each trial keeps its last checkpoint; free space before continuing.")
    if not outcome.finished:
        return f"{text} No trial has a result yet, so there is nothing to report."
    text += " Or report on what finished:" if outcome.finished < outcome.total else " Next:"
    return f"{text} sublim report {outcome.folder}"
