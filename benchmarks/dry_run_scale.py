"""`sublim sweep SPEC --dry-run` at the trial cap: a 50,000-trial axes grid, and one seed more (refused).

    python benchmarks/dry_run_scale.py              # each command in a fresh process, timed end to end

Prints one line per command: its wall time and its CPU time (a loaded machine stretches the first, not the
second), and what it printed first. Target: each within 5 s. The spec is written to a temporary folder.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sublim.sweeps.spec import MAX_TRIALS

ARMS = [{"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"},
        {"mitigation": "projection", "strengths": [0.5, 1.0]}, {"mitigation": "liminal", "strengths": [1.0]}]
AXES = {"hidden": [64, 128, 256, 512, 1024], "lr": [0.0001, 0.0003, 0.001, 0.003, 0.01], "aux_logits": [1, 2, 3, 5]}
POINTS = 5 * 5 * 5 * 4  # arms x strengths, times the axes' points: 500 per seed


def timed(spec_path: Path) -> tuple[float, float, int, str]:
    """Wall and CPU seconds of `sublim sweep SPEC --dry-run` in a fresh process, its exit code and first line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "import sys; from sublim.cli import main; sys.exit(main())", "sweep",
                           str(spec_path), "--dry-run"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode, (done.stdout or done.stderr).splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    seeds = MAX_TRIALS // POINTS
    with tempfile.TemporaryDirectory() as folder:
        for label, stop in (("dry-run", seeds), ("refusal", seeds + 1)):
            path = Path(folder) / f"{label}.yaml"
            path.write_text(yaml.safe_dump({"name": "scale", "seeds": {"start": 0, "stop": stop}, "arms": ARMS,
                                            "axes": AXES}))
            wall, cpu, code, first = timed(path)
            print(f"{label} of {stop * POINTS:,} trials: {wall:.1f} s wall, {cpu:.1f} s CPU, exit {code}: {first[:100]}",
                  flush=True)


if __name__ == "__main__":
    main()
