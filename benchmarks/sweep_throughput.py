"""Sweep throughput: a seeds × arms grid through the Ray sweep vs. the same trials back to back without Ray.

The baseline is what a user without the sweep machinery would write: one Python process, the trials
one after another, each training its own teacher (torch using all cores). The sweep trains one
teacher per seed and runs one single-threaded trial per core. Both write the same trial outputs.

    python benchmarks/sweep_throughput.py --data-dir DIR                 # 3 seeds x 5 arms, protocol defaults
    python benchmarks/sweep_throughput.py --data-dir DIR --epochs 1 --teacher-epochs 1 --noise-count 10000

Prints both times, their ratio, Ray's start-up time and its per-trial overhead; --json saves them.
The machine should be otherwise idle: other load on the cores makes both timings noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import yaml

from sublim.sweeps.spec import SweepSpec
from sublim.trainable import Trial, TrialData, load_mnist, resolve_device, train_teacher, write_trial_outputs

ARMS = [{"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"},
        {"mitigation": "projection", "strengths": 1.0}, {"mitigation": "liminal", "strengths": [1.0, 10.0]}]


def plain(spec: SweepSpec, mnist, out: Path) -> dict:
    """Every trial in this process, one after another, each with its own teacher."""
    start = time.perf_counter()
    teacher_s = student_s = 0.0
    for grid_trial in spec.trials:
        config = grid_trial.config
        data = TrialData.from_mnist(mnist, config, resolve_device(config.device))
        teacher = train_teacher(config, data)
        trial = Trial(config, data, teacher)
        for _ in trial.run():
            pass
        write_trial_outputs(out / grid_trial.trial_id, trial.summary(), trial.trace_columns())
        teacher_s, student_s = teacher_s + teacher.seconds, student_s + trial.student_seconds
        print(f"  plain {grid_trial.trial_id}: {time.perf_counter() - start:.1f} s so far", flush=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "teacher_seconds": teacher_s, "student_seconds": student_s,
            # Per trial, what is neither teacher nor student training: data, model set-up, outputs.
            "other_per_trial_seconds": (seconds - teacher_s - student_s) / len(spec.trials)}


def with_ray(spec: SweepSpec, mnist, out: Path) -> dict:
    from sublim.sweeps.results import ResultsFolder
    from sublim.sweeps.tune_run import run_sweep

    folder = ResultsFolder(out / spec.name)
    outcome = run_sweep(spec.name, spec, yaml.safe_dump(spec.to_dict()), folder, mnist)
    assert outcome.finished == outcome.total, outcome
    summaries = [json.loads(p.read_text()) for p in folder.path.glob("trials/*/summary.json")]
    student_s = sum(s["student_seconds"] for s in summaries)
    teacher_s = sum({s["teacher_key"]: s["teacher_seconds"] for s in summaries}.values())
    cores = os.cpu_count()  # one single-threaded trial or teacher per core
    return {
        "seconds": outcome.seconds, "ray_start_seconds": outcome.ray_start_seconds,
        "teachers_seconds": outcome.teachers_seconds, "trials_seconds": outcome.trials_seconds,
        "teacher_seconds": teacher_s, "student_seconds": student_s,
        # Per trial, core-seconds of the run that trained neither a teacher nor a student: data and model
        # set-up in the trial (as in the plain run), Tune's scheduling, idle cores at the end.
        "other_per_trial_core_seconds": (outcome.trials_seconds * cores - teacher_s - student_s) / len(summaries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="folder holding MNIST/raw (else $SUBLIM_DATA_DIR)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="student epochs (default: the protocol's)")
    parser.add_argument("--teacher-epochs", type=int, help="teacher epochs (default: the protocol's)")
    parser.add_argument("--noise-count", type=int, help="noise images (default: the protocol's)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    settings = {name: value for name, value in (("epochs", args.epochs), ("teacher_epochs", args.teacher_epochs),
                                                ("noise_count", args.noise_count)) if value is not None}
    spec = SweepSpec.from_dict({"name": "throughput", "seeds": list(range(args.seeds)), "arms": ARMS,
                                "settings": settings}, "benchmark")
    mnist = load_mnist(args.data_dir)
    print(f"{len(spec.trials)} trials ({args.seeds} seeds x {len(spec.trials) // args.seeds} arms), settings "
          f"{settings or 'protocol defaults'}; torch threads in the plain run: {torch.get_num_threads()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = plain(spec, mnist, Path(tmp) / "plain")
        ray_figures = with_ray(spec, mnist, Path(tmp) / "ray")
    figures = {"trials": len(spec.trials), "settings": settings, "plain": base, "ray": ray_figures,
               "ratio": ray_figures["seconds"] / base["seconds"]}
    n = len(spec.trials)
    print(f"\nplain, back to back, a teacher per trial: {base['seconds']:.1f} s "
          f"(teachers {base['teacher_seconds']:.1f} s, students {base['student_seconds']:.1f} s, "
          f"the rest {base['other_per_trial_seconds']:.2f} s per trial)")
    print(f"Ray sweep, a teacher per seed:           {ray_figures['seconds']:.1f} s (Ray start "
          f"{ray_figures['ray_start_seconds']:.1f} s, then teachers and trials {ray_figures['trials_seconds']:.1f} s; "
          f"the last teacher was ready after {ray_figures['teachers_seconds']:.1f} s)")
    print(f"ratio Ray / plain: {figures['ratio']:.2f}  (target <= 0.7)")
    print(f"single-threaded compute in the sweep: teachers {ray_figures['teacher_seconds']:.1f} s, students "
          f"{ray_figures['student_seconds']:.1f} s ({ray_figures['student_seconds'] / n:.1f} s per trial)")
    print(f"per-trial overhead of the sweep: {ray_figures['other_per_trial_core_seconds']:.2f} core-seconds besides "
          f"training (set-up, Tune, idle cores), against {base['other_per_trial_seconds']:.2f} s in the plain run")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
