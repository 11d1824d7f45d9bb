"""Sweep throughput: where a Ray sweep's time goes, against the same trials back to back without Ray.

The plain loop is what a user without the sweep machinery would write: one Python process, the
trials one after another, each training its own teacher, torch using every core. The sweep trains
one teacher per seed (in the seed's first trial) and runs one single-threaded trial per core (or
`--cpus` threads per trial). Both write the same trial outputs.

    python benchmarks/sweep_throughput.py --data-dir DIR            # 3 seeds x 5 arms, protocol defaults
    python benchmarks/sweep_throughput.py --data-dir DIR --epochs 1 --teacher-epochs 1 --noise-count 10000
    python benchmarks/sweep_throughput.py --data-dir DIR --spec sweeps/paper.yaml   # a spec; sweep only
    python benchmarks/sweep_throughput.py --data-dir DIR --spec sweeps/paper.yaml --seeds 4 --gpus 0.25
    python benchmarks/sweep_throughput.py --data-dir DIR --spec sweeps/scaling.yaml --seeds 2  # widths 64-1024
    python benchmarks/sweep_throughput.py --data-dir DIR --many 1000   # 1,000 one-step trials: Tune at scale
    python benchmarks/sweep_throughput.py --data-dir DIR --many 100 300 1000 --figure many.png   # its growth

Prints, in core-seconds per trial, where each one's time went; the ratio of the sweep's wall time to
the plain loop's beside the bound that teacher reuse and perfect packing allow; and the targets:
at least 90% of the cores' time training, at most 1 core-second of overhead per trial; and trials
per second (per GPU, with --gpus: the fraction of a GPU each trial holds). --json saves the figures.
The machine should be otherwise idle: other load makes every timing noisy.

--many N runs N one-step trials (liminal at N/10 strengths over 10 seeds, tiny teachers shared by each seed's
trials), sweep only: nearly all of their time is overhead, so it shows how Tune's per-trial cost grows with the
number of trials, and it prints the driver's own CPU time and peak memory (target: below 1 GB at 1,000 trials).
With several N, each runs in a fresh process (its own driver peak), then one table row per N, and --figure draws
the overhead per trial and the driver's peak against N.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sublim.core.mnist import load_mnist
from sublim.sweeps.session import local_resources
from sublim.sweeps.spec import SweepSpec

ARMS = [{"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"},
        {"mitigation": "projection", "strengths": 1.0}, {"mitigation": "liminal", "strengths": [1.0, 10.0]}]


def plain(spec: SweepSpec, mnist, out: Path) -> dict:
    """Every trial in this process, one after another, each with its own teacher. The only use of torch here: the
    sweep's driver never imports it, and without the plain loop this process is that driver."""
    import torch

    from sublim.trainable import Trial, TrialData, resolve_device, train_teacher, write_trial_outputs

    cores = torch.get_num_threads()
    parts = dict.fromkeys(("teacher", "setup", "train", "save"), 0.0)
    start = time.perf_counter()
    for grid_trial in spec.trials:
        config = grid_trial.config
        began = time.perf_counter()
        data = TrialData.from_mnist(mnist, config, resolve_device(config.device))
        teacher = train_teacher(config, data)
        trial = Trial(config, data, teacher)
        parts["setup"] += time.perf_counter() - began - teacher.seconds
        for _ in trial.run():
            pass
        began = time.perf_counter()
        write_trial_outputs(out / grid_trial.trial_id, trial.summary(), trial.trace_columns())
        parts["save"] += time.perf_counter() - began
        parts["teacher"] += teacher.seconds
        parts["train"] += trial.student_seconds
        print(f"  plain {grid_trial.trial_id}: {time.perf_counter() - start:.1f} s so far", flush=True)
    seconds = time.perf_counter() - start
    core_seconds = {name: cores * value for name, value in parts.items()}
    return {"seconds": seconds, "cores": cores, "core_seconds": core_seconds,
            "other": cores * seconds - sum(core_seconds.values())}


MANY_SEEDS = 10
# One optimizer step per trial (a batch of noise), a teacher trained one epoch on 2,048 images: what is left of
# a trial's time is its set-up, its outputs and Tune's bookkeeping.
MANY_SETTINGS = {"epochs": 1, "noise_count": 1024, "teacher_epochs": 1, "train_size": 2048}


def many_spec(trials: int) -> dict:
    """`trials` one-step trials over 10 seeds: liminal at trials / 10 strengths, 0, 0.1, 0.2, ..."""
    return {"name": "many", "seeds": list(range(MANY_SEEDS)), "settings": MANY_SETTINGS,
            "arms": [{"mitigation": "liminal", "strengths": [round(0.1 * k, 1) for k in range(trials // MANY_SEEDS)]}],
            "resources": {"cpus": 1, "gpus": 0}}


def with_ray(spec: SweepSpec, mnist, out: Path) -> dict:
    from sublim.sweeps.results import ResultsFolder
    from sublim.sweeps.tune_run import run_sweep

    before = resource.getrusage(resource.RUSAGE_SELF)
    outcome = run_sweep(spec.name, spec, yaml.safe_dump(spec.to_dict()), ResultsFolder(out / spec.name), mnist)
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert outcome.finished == outcome.total and outcome.profile, outcome
    profile = outcome.profile
    return {"seconds": outcome.seconds, "ray_start_seconds": outcome.ray_start_seconds, "tune_seconds": profile.wall,
            "cores": profile.cores, "trials": profile.trials, "core_seconds": profile.breakdown(),
            "training": profile.training, "overhead": profile.overhead, "teachers_trained": outcome.teachers_trained,
            # This process only (Ray's own processes not counted); its peak includes MNIST, loaded before (and torch
            # after the plain loop).
            "driver_cpu_seconds": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            "driver_peak_megabytes": after.ru_maxrss / 1024, "driver_peak_before_megabytes": before.ru_maxrss / 1024}


def folder_megabytes(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


ROWS = {"teacher": "training teachers", "train": "training students", "setup": "trial set-up (data, noise, model)",
        "save": "checkpoints and outputs", "report": "reporting to Tune", "in_trial_other": "rest inside trials",
        "idle_start": "idle: Tune starting", "idle_between": "idle: between trials (Tune)",
        "idle_tail": "idle: tail (no trial left)", "idle_finish": "idle: Tune finishing", "other": "rest"}


def print_table(n: int, sweep: dict, base: dict | None) -> None:
    print(f"\nwhere the time went, in core-seconds per trial ({n} trials):")
    print(f"  {'':38} {'sweep':>8} {'plain':>8}" if base else f"  {'':38} {'sweep':>8}")
    for key, label in ROWS.items():
        ours = sweep["core_seconds"].get(key)
        theirs = base["core_seconds"].get(key, base["other"] if key == "other" else None) if base else None
        if ours is None and theirs is None:
            continue
        cells = [f"{v / n:8.2f}" if v is not None else f"{'-':>8}" for v in ([ours, theirs] if base else [ours])]
        print(f"  {label:38} {' '.join(cells)}")


MANY_COLUMNS = {"overhead per trial": ("overhead_per_trial", "{:.2f} core-s"),
                "of it: idle while Tune starts": ("idle_start_per_trial", "{:.2f}"),
                "between trials": ("idle_between_per_trial", "{:.2f}"),
                "driver CPU per trial": ("driver_cpu_per_trial", "{:.3f} s"),
                "driver peak": ("driver_peak_megabytes", "{:,.0f} MB")}


def many_figures(figures: dict) -> dict:
    """The --many table's numbers, per trial, from one run's figures."""
    sweep, n = figures["sweep"], figures["trials"]
    return {"trials": n, "overhead_per_trial": figures["overhead_per_trial"],
            "idle_start_per_trial": sweep["core_seconds"]["idle_start"] / n,
            "idle_between_per_trial": sweep["core_seconds"]["idle_between"] / n,
            "driver_cpu_per_trial": sweep["driver_cpu_seconds"] / n,
            "driver_peak_megabytes": sweep["driver_peak_megabytes"]}


def many_sizes(sizes: list[int], data_dir: str | None, figure: Path | None) -> None:
    """Each size in a fresh process (--many N --json), then their table and, with `figure`, the figure."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            out = Path(tmp) / f"{n}.json"
            subprocess.run([sys.executable, __file__, "--many", str(n), "--json", str(out),
                            *(["--data-dir", data_dir] if data_dir else [])], check=True)
            rows.append(many_figures(json.loads(out.read_text())))
    print("\n| trials | " + " | ".join(MANY_COLUMNS) + " |\n|" + "---|" * (len(MANY_COLUMNS) + 1))
    for row in rows:
        print(f"| {row['trials']:,} | " + " | ".join(form.format(row[key]) for key, form in MANY_COLUMNS.values())
              + " |")
    if figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        trials = [row["trials"] for row in rows]
        fig, (cost, memory) = plt.subplots(1, 2, figsize=(10, 4))
        for label, (key, _) in list(MANY_COLUMNS.items())[:4]:
            cost.plot(trials, [row[key] for row in rows], marker="o", label=label)
        cost.set(xscale="log", xlabel="trials", ylabel="core-seconds per trial", ylim=(0, None),
                 title="Overhead per trial (target <= 1)")
        cost.legend()
        memory.plot(trials, [row["driver_peak_megabytes"] for row in rows], marker="o")
        memory.axhline(1024, color="grey", linestyle="--", label="1 GB")
        memory.set(xscale="log", xlabel="trials", ylabel="MB", ylim=(0, None), title="Driver's peak memory")
        memory.legend()
        fig.tight_layout()
        fig.savefig(figure, dpi=100)
        print(f"figure: {figure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="folder holding MNIST/raw (else $SUBLIM_DATA_DIR)")
    parser.add_argument("--spec", type=Path, help="run this spec file's sweep instead (no plain loop)")
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 3; with --spec, its first N seeds)")
    parser.add_argument("--cpus", type=float, help="CPUs (threads) per trial in the sweep (default 1 or the spec's)")
    parser.add_argument("--gpus", type=float, help="GPU fraction per trial in the sweep (default 0 or the spec's)")
    parser.add_argument("--epochs", type=int, help="student epochs (default: the protocol's)")
    parser.add_argument("--teacher-epochs", type=int, help="teacher epochs (default: the protocol's)")
    parser.add_argument("--noise-count", type=int, help="noise images (default: the protocol's)")
    parser.add_argument("--many", type=int, nargs="+", metavar="N",
                        help=f"N one-step trials over {MANY_SEEDS} seeds, sweep only: Tune's overhead at N trials")
    parser.add_argument("--figure", type=Path, help="with several --many sizes: draw their overheads to this PNG")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    bad = [n for n in args.many or [] if n < MANY_SEEDS or n % MANY_SEEDS]
    if bad or (args.many and args.spec):
        parser.error(f"--many {' '.join(map(str, args.many))} is not allowed; multiples of {MANY_SEEDS} trials (one "
                     "per seed and strength), without --spec")
    if (args.many and len(args.many) > 1) or args.figure:
        if args.json or not args.many:
            parser.error("--figure needs --many with sizes, and several sizes take no --json")
        return many_sizes(args.many, args.data_dir, args.figure)

    if args.many:
        raw = many_spec(args.many[0])
    elif args.spec:
        raw = SweepSpec.load(args.spec).to_dict()
        raw["seeds"] = raw["seeds"][:args.seeds]
    else:
        settings = {name: value for name, value in (("epochs", args.epochs), ("teacher_epochs", args.teacher_epochs),
                                                    ("noise_count", args.noise_count)) if value is not None}
        raw = {"name": "throughput", "seeds": list(range(args.seeds or 3)), "arms": ARMS, "settings": settings,
               "resources": {"cpus": 1, "gpus": 0}}
    raw["resources"] = {"cpus": args.cpus or raw["resources"]["cpus"],
                        "gpus": raw["resources"]["gpus"] if args.gpus is None else args.gpus}
    spec = SweepSpec.from_dict(raw, str(args.spec or "benchmark"))
    settings = spec.settings
    mnist = load_mnist(args.data_dir)
    n = len(spec.trials)
    machine_gpus = local_resources()["gpu"]
    points = "points of arms x axes" if spec.axes else "arms"
    print(f"{n} trials ({len(spec.seeds)} seeds x {n // len(spec.seeds)} {points}), settings "
          f"{settings or 'protocol defaults'}, {spec.resources.cpus:g} CPU(s) and {spec.resources.gpus:g} GPU per "
          f"trial in the sweep; {os.cpu_count()} cores, {machine_gpus:g} GPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = None if args.spec or args.many else plain(spec, mnist, Path(tmp) / "plain")
        sweep = with_ray(spec, mnist, Path(tmp) / "ray")
        sweep["megabytes_per_trial"] = folder_megabytes(Path(tmp) / "ray") / n

    print_table(n, sweep, base)
    cores, tune_s = sweep["cores"], sweep["tune_seconds"]
    ideal = sweep["training"] / cores  # every core training from the first second to the last
    figures = {"trials": n, "settings": settings, "sweep": sweep, "plain": base,
               "efficiency": sweep["training"] / (cores * tune_s), "overhead_per_trial": sweep["overhead"] / n,
               "wall_over_ideal": tune_s / ideal}
    print(f"\nsweep: {sweep['seconds']:.1f} s wall = Ray start {sweep['ray_start_seconds']:.1f} s + Tune run "
          f"{tune_s:.1f} s (+ {sweep['seconds'] - sweep['ray_start_seconds'] - tune_s:.1f} s checking the folder "
          f"and shutting Ray down); {sweep['teachers_trained']} teachers trained; "
          f"{sweep['megabytes_per_trial']:.2f} MB per trial in the folder")
    print(f"cores' time training: {figures['efficiency']:.1%} (target >= 90%); Tune run / (training / cores): "
          f"{figures['wall_over_ideal']:.3f} (target <= 1.10)")
    print(f"overhead: {figures['overhead_per_trial']:.2f} core-s per trial (target <= 1)")
    print(f"driver: {sweep['driver_cpu_seconds']:.1f} CPU-s ({sweep['driver_cpu_seconds'] / n:.3f} per trial), "
          f"{sweep['driver_peak_megabytes']:.0f} MB peak (target < 1 GB; {sweep['driver_peak_before_megabytes']:.0f} MB "
          "before the sweep: MNIST, and torch where the plain loop ran)")
    figures["trials_per_second"] = n / tune_s
    gpus = machine_gpus if spec.resources.gpus else 0
    print(f"throughput: {n / tune_s:.3f} trials/s during the Tune run, {n / sweep['seconds']:.3f} end to end"
          + (f"; {n / tune_s / gpus:.3f} trials/s per GPU at {spec.resources.gpus:g} GPU per trial" if gpus else ""))
    if base:
        bound = (sweep["ray_start_seconds"] + ideal) / base["seconds"]
        # The plain loop's own work per trial, with one teacher per seed instead of per trial, on every core.
        parts = base["core_seconds"]
        reused = parts["train"] + parts["setup"] + parts["save"] + parts["teacher"] * len(spec.seeds) / n
        plain_bound = (sweep["ray_start_seconds"] + reused / base["cores"]) / base["seconds"]
        figures.update(ratio=sweep["seconds"] / base["seconds"], bound=bound, plain_bound=plain_bound)
        print(f"plain loop: {base['seconds']:.1f} s on {base['cores']} threads")
        print(f"ratio sweep / plain: {figures['ratio']:.3f}; bound {bound:.3f} (Ray start + the sweep's own training "
              f"on every core, no idle second), {figures['ratio'] - bound:+.3f} from it (target <= +0.03)")
        print(f"  and {plain_bound:.3f} if the plain loop's trials, set-up included, merely shared teachers and filled "
              f"every core at its thread count ({figures['ratio'] - plain_bound:+.3f} from that)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
