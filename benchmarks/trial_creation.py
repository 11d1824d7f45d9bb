"""How long Tune takes to create a sweep's trials, with the sweep's search algorithm and with Tune's grid_search.

    python benchmarks/trial_creation.py                 # 300, 1,000 and 2,000 trials
    python benchmarks/trial_creation.py 1000 50000      # other sizes (grid_search only up to 3,000: hours at 50,000)

Tune creates trials in the driver, before and while they run. A grid_search over the trials' configs copies the
whole grid for every trial it creates, and creates all of them before the first can start: its cost grows with
the square of the trial count. The sweep hands Tune each config once (`tune_run.InLaunchOrder`). The trials here
are `benchmarks/sweep_throughput.py --many N`'s; no Ray is started and nothing runs. One line per size:

    trials N: search algorithm X s (first trial after F s); grid_search Y s (first after G s); Y/X times
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ray import tune
from ray.tune.experiment import Experiment
from ray.tune.search import BasicVariantGenerator, SearchGenerator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_throughput import many_spec  # noqa: E402

from sublim.sweeps.spec import SweepSpec  # noqa: E402
from sublim.sweeps.tune_run import InLaunchOrder, tune_configs  # noqa: E402

GRID_UP_TO = 3000  # grid_search's cost grows with the square of the trials: 2 min at 3,000, hours at 50,000


def create_all(search, experiment: Experiment, n: int) -> tuple[float, float]:
    """Seconds until Tune's search algorithm gave the first trial, and all n."""
    start = time.perf_counter()
    search.add_configurations([experiment])
    trials = [search.next_trial()]
    first = time.perf_counter() - start
    trials += [search.next_trial() for _ in range(n - 1)]
    assert all(trials) and search.next_trial() is None, "the search gave fewer trials than asked"
    return first, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[300, 1000, 2000], help="trial counts (multiples of 10)")
    args = parser.parse_args()
    for n in args.sizes:
        configs = tune_configs(list(SweepSpec.from_dict(many_spec(n), "benchmark").trials))
        ours = create_all(SearchGenerator(InLaunchOrder(configs)),
                          Experiment("ours", run=lambda config: None, num_samples=n), n)
        line = f"trials {n}: search algorithm {ours[1]:.2f} s (first trial after {ours[0]:.2f} s)"
        if n <= GRID_UP_TO:
            grid = create_all(BasicVariantGenerator(), Experiment(
                "grid", run=lambda config: None, config={"trial": tune.grid_search([c["trial"] for c in configs])}), n)
            line += f"; grid_search {grid[1]:.2f} s (first after {grid[0]:.2f} s); {grid[1] / ours[1]:.0f} times"
        print(line, flush=True)


if __name__ == "__main__":
    main()
