"""`sublim report` at 240, 2,400 and 24,000 trials: the paper sweep's arms over 20, 200 and 2,000 seeds.

    python benchmarks/report_scale.py                                  # 240 2400 24000 trials
    python benchmarks/report_scale.py 240 2400 --mediation-sims 500    # some sizes; the report's default sims
    python benchmarks/report_scale.py 240 --keep /tmp/scale            # keep the folders (and their reports)

Each folder is a valid results folder, built by cloning a small synthetic sweep (tests/synthetic.py: the
paper's 12 arms over 20 seeds, planted effects, 24-step traces) seed by seed: clone k of seed s is seed k,
with its own trial ids, config seed and teacher key, and the same numbers and trace bytes as seed s (a
trace holds no seed, so its file is hard-linked where the file system allows). The report then runs on
each folder in a fresh process, and one line per size is printed:

    trials N: X s, Y MB peak, Z ms/trial  (C s CPU; folder built in B s)

X is the report's wall time, Y the peak resident memory of its process, C the processor time it used: on a
machine others share, X well above C is their load, not the report's. Targets on 2 cores: 2,400 trials within
15 s and 1 GB; 24,000 within 150 s and 4 GB. Folders are built in a temporary folder unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from synthetic import arm_label, trial_outputs, write_trial  # noqa: E402

from sublim.core.files import SUMMARY_FILE, SWEEP_FILE, TRACE_FILE  # noqa: E402

PAPER_ARMS = [("none", 0.0, "shared"), ("none", 0.0, "independent"),
              *(("projection", s, "shared") for s in (0.25, 0.5, 1.0, 2.0)), ("placebo", 1.0, "shared"),
              *(("liminal", s, "shared") for s in (0.1, 0.3, 1.0, 3.0, 10.0))]
SOURCE_SEEDS = 20  # the paper sweep's
REPORT = "import sys; from sublim.cli import main; sys.exit(main())"


def trial_id(seed: int, mitigation: str, strength: float, init: str) -> str:
    """The id `sublim sweep` gives (e.g. 's003-liminal@0.5-shared'), so the folder reads as a sweep's."""
    return f"s{seed:03d}-{arm_label(mitigation, strength, init).replace('/', '-')}"


def write_source(root: Path, seeds: int) -> list[list[tuple[dict, Path]]]:
    """The small sweep's trials, per seed: each arm's summary and the path of its written trace."""
    rng = np.random.default_rng(0)
    source = []
    for seed in range(seeds):
        seed_effect = rng.normal(0, 0.02)
        trials = []
        for arm in PAPER_ARMS:
            summary, trace = trial_outputs(seed, *arm, rng, seed_effect)
            folder = root / trial_id(seed, *arm)
            write_trial(folder, summary, trace)
            trials.append((summary, folder / TRACE_FILE))
        source.append(trials)
    return source


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: the same bytes, copied
        shutil.copyfile(source, target)


def build(folder: Path, trials: int, source: list[list[tuple[dict, Path]]]) -> None:
    """A results folder of `trials` trials (a multiple of the arms), seed k cloned from source seed k mod 20."""
    records = []
    for seed in range(trials // len(PAPER_ARMS)):
        for summary, trace in source[seed % len(source)]:
            config = {**summary["config"], "seed": seed}
            clone = {**summary, "config": config, "teacher_key": f"teacher{seed}"}
            tid = trial_id(seed, config["mitigation"], config["strength"], config["student_init"])
            target = folder / "trials" / tid
            target.mkdir(parents=True)
            (target / SUMMARY_FILE).write_text(json.dumps(clone))
            link_or_copy(trace, target / TRACE_FILE)
            records.append({"trial_id": tid, "arm": clone["arm"], "config": config, "teacher_key": clone["teacher_key"]})
    (folder / SWEEP_FILE).write_text(json.dumps({"name": folder.name, "spec": {}, "versions": {}, "trials": records}))
    (folder / "spec.yaml").write_text(f"name: {folder.name}\n")


def report(folder: Path, mediation_sims: int | None) -> tuple[float, float, float]:
    """Wall seconds, peak resident MB and CPU seconds of `sublim report FOLDER` in a fresh process; exits if it
    fails."""
    command = [sys.executable, "-c", REPORT, "report", str(folder)]
    if mediation_sims is not None:
        command += ["--mediation-sims", str(mediation_sims)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # this child's own peak memory, not the largest child's so far
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    if process.returncode:
        sys.stdout.write(output.decode(errors="replace"))
        raise SystemExit(f"report_scale: sublim report failed on {folder} (exit {process.returncode})")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # kilobytes on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", type=int, nargs="*", default=[240, 2400, 24000], metavar="TRIALS",
                        help=f"trial counts, each a multiple of the {len(PAPER_ARMS)} arms (default: 240 2400 24000)")
    parser.add_argument("--mediation-sims", type=int, metavar="N", help="the report's --mediation-sims (default: its own)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="build the folders in DIR (new or empty) and keep them, with their reports")
    args = parser.parse_args(argv)
    if args.keep and args.keep.exists() and (not args.keep.is_dir() or any(args.keep.iterdir())):
        parser.error(f"--keep {args.keep}: not a new or empty folder")
    for trials in args.sizes:
        if trials <= 0 or trials % len(PAPER_ARMS):
            parser.error(f"{trials} trials is not allowed; a positive multiple of the {len(PAPER_ARMS)} arms")
    with tempfile.TemporaryDirectory(prefix="report-scale-") as scratch:
        root = args.keep or Path(scratch)
        source = write_source(Path(scratch) / "source", min(SOURCE_SEEDS, max(args.sizes) // len(PAPER_ARMS)))
        for trials in args.sizes:
            folder = root / f"scale-{trials}"
            start = time.perf_counter()
            build(folder, trials, source)
            built = time.perf_counter() - start
            seconds, megabytes, cpu = report(folder, args.mediation_sims)
            print(f"trials {trials}: {seconds:.1f} s, {megabytes:.0f} MB peak, {1000 * seconds / trials:.1f} ms/trial"
                  f"  ({cpu:.1f} s CPU; folder built in {built:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
