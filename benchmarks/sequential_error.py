"""Family-wise type-I error of `sublim sweep --until-resolved`, simulated through the project's own functions.

The spec's arms (none/shared, none/independent, projection@1, placebo@1, liminal@1) give the design its family
(`sublim.cli.waves.plan`, as the CLI plans it). Each simulated sweep draws null per-seed numbers for every
family row, waves of 3 or of 5 seeds up to --max-seeds, and runs the stopping rule look by look
(`sequential.advance`: the tests table's rows, the t-based boundary, the skewness guard); an error is any row
resolved (supported or contradicted) at any look. Each row's per-seed quantity (an arm's value, or an arm
minus its reference) is its own independent draw, normal or skewness 1 (a standardized gamma, shape 4):
independent rows are the worst case for a Bonferroni family, and the skewness is that of the number each
test sees. Ends with one line: the worse of the two wave sizes for each distribution.

    python benchmarks/sequential_error.py [--sims 1500] [--max-seeds 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import numpy as np
import pandas as pd

from sublim.analysis import sequential
from sublim.cli.waves import plan
from sublim.sweeps.spec import SweepSpec

ARMS = [{"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"},
        {"mitigation": "projection", "strengths": 1.0}, {"mitigation": "placebo", "strengths": 1.0},
        {"mitigation": "liminal", "strengths": 1.0}]
WAVES = (3, 5)
Draw = Callable[[np.random.Generator, int], np.ndarray]
DRAWS: dict[str, Draw] = {
    "normal": lambda rng, n: rng.standard_normal(n),
    "skewness 1": lambda rng, n: (rng.gamma(4.0, size=n) - 4.0) / 2.0,  # mean 0, sd 1, skewness 2 / sqrt(4)
}


def design_of(wave: int, max_seeds: int) -> tuple[SweepSpec, sequential.Design]:
    spec = SweepSpec.from_dict({"name": "null", "seeds": list(range(wave)), "arms": ARMS})
    return spec, plan(spec, max_seeds, wave)[1]


def null_trials(spec: SweepSpec, design: sequential.Design, seeds: int, draw: Draw,
                rng: np.random.Generator) -> pd.DataFrame:
    """Completed trials (one per seed and arm) whose family rows are all null, each row's per-seed quantity an
    independent `draw`: a one-sample row sets its arm's metric, a paired row whichever of its two arms is unset
    (relative to the other; an arm set by neither gets a normal base)."""
    values: dict[tuple[str, str], np.ndarray] = {}
    for p in design.rows:
        d, arm, ref, metric = draw(rng, seeds), p.arm, p.reference, p.metric
        if p.contrast.reference == "0":
            assert (metric, arm) not in values, f"{p.key}: its arm's {metric} is already set by another row"
            values[metric, arm] = p.contrast.null + d
            continue
        assert not ((metric, arm) in values and (metric, ref) in values), f"{p.key}: both arms already set"
        if (metric, arm) in values:
            values[metric, ref] = values[metric, arm] - d
        else:
            base = values.setdefault((metric, ref), rng.standard_normal(seeds))
            values[metric, arm] = base + d
    configs = {t.config.arm: t.config for t in spec.trials}
    rows = [{"seed": seed, "arm": arm, "mitigation": c.mitigation, "strength": c.strength,
             "student_init": c.student_init, "epochs_done": c.epochs,
             **{metric: v[seed] for (metric, a), v in values.items() if a == arm}}
            for seed in range(seeds) for arm, c in configs.items()]
    return pd.DataFrame(rows)


def errors(wave: int, max_seeds: int, distribution: str, sims: int, rng_seed: int) -> tuple[int, int]:
    """(sweeps with a family-wise error, seeds they used in all) over `sims` simulated sweeps."""
    spec, design = design_of(wave, max_seeds)
    rng = np.random.default_rng(rng_seed)
    wrong = used = 0
    for _ in range(sims):
        trials = null_trials(spec, design, max_seeds, DRAWS[distribution], rng)
        record = sequential.new_record(design)
        for j, n in enumerate(design.seeds):
            sequential.advance(record, design, trials[trials["seed"] < n], j)
            if record["stopped"]:
                break
        wrong += any(t["status"] in sequential.RESOLVED for w in record["waves"] for t in w["tests"])
        used += record["waves"][-1]["seeds"]
    return wrong, used


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=1500, help="simulated sweeps per wave size and distribution")
    parser.add_argument("--max-seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="processes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    worst: dict[str, tuple[float, float]] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for wave in WAVES:
            design = design_of(wave, args.max_seeds)[1]
            print(f"waves of {wave}: {design.describe()}", flush=True)
            cells = []
            for k, distribution in enumerate(DRAWS):
                chunks = [args.sims // args.workers + (i < args.sims % args.workers) for i in range(args.workers)]
                jobs = [pool.submit(errors, wave, args.max_seeds, distribution, size, 1000 * wave + 10 * k + i)
                        for i, size in enumerate(chunks) if size]
                wrong, used = map(sum, zip(*(job.result() for job in jobs)))
                rate = wrong / args.sims
                se = (rate * (1 - rate) / args.sims) ** 0.5
                worst[distribution] = max(worst.get(distribution, (-1.0, 0.0)), (rate, se))
                cells.append(f"{distribution} {rate:.4f} (SE {se:.4f}), mean seeds {used / args.sims:.1f}")
            print(f"waves of {wave}, {args.sims} sweeps each: " + "; ".join(cells), flush=True)
    print(f"{time.perf_counter() - start:.0f} s; the line below gives the worse wave size for each distribution")
    (x, sx), (y, sy) = worst["normal"], worst["skewness 1"]
    print(f"family-wise type-I error: normal {x:.4f} (SE {sx:.4f}), skewness 1 {y:.4f} (SE {sy:.4f})")


if __name__ == "__main__":
    main()
