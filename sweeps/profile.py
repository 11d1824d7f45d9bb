"""Where a sweep's time went: each trial times its own parts, and the sweep adds up the cores' time.

A trial reports, with its metrics, the seconds it spent on each part of its work (`TrialClock`);
`SweepProfile` turns those and the trials' start and end times into core-seconds: training
(teachers and students), the rest of each trial (set-up, checkpoints and outputs, reporting), and
the cores' time outside any trial (Tune starting, between trials, the tail when too few trials are
left to fill the cores, Tune finishing).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Iterator

# The parts a trial times, as reported in its results under "time_<part>".
PARTS = ("teacher", "setup", "train", "save", "report")
STARTED, ENDED = "time_started", "time_ended"  # wall-clock times (time.time()) of the trial function
TIMINGS = (STARTED, ENDED, *(f"time_{part}" for part in PARTS))  # what SweepProfile reads of a trial's results


def trial_timings(result: dict) -> dict[str, float]:
    """The part of a trial's result that SweepProfile reads: a sweep keeps that much of each trial's last result."""
    return {key: result[key] for key in TIMINGS if key in result}


class TrialClock:
    """Seconds a trial spends on each part, reported with every result (the last one counts)."""

    def __init__(self):
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self.started = time.time()

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def metrics(self) -> dict[str, float]:
        return {STARTED: self.started, ENDED: time.time(), **{f"time_{k}": v for k, v in self.seconds.items()}}


@dataclass(frozen=True)
class SweepProfile:
    """Core-seconds of one Tune run, by where they went; `capacity` = cores x the run's wall time."""

    cores: float
    wall: float
    trials: int
    teacher: float
    train: float
    setup: float
    save: float
    report: float
    in_trial_other: float  # inside a trial function but none of the parts above (e.g. waiting on Ray's object store)
    idle_start: float  # before the first trial started: Tune setting up
    idle_between: float  # while trials were still being launched: Tune's bookkeeping between trials
    idle_tail: float  # after the last trial started: cores with no trial left to run
    idle_finish: float  # after the last trial ended: Tune finishing

    @classmethod
    def of(cls, results: dict[str, dict[str, float]], cpus_per_trial: float, cores: float, start: float,
           end: float) -> "SweepProfile":
        """From each trial's last timed result (wall-clock `start` and `end` bound the Tune run)."""
        timed = [r for r in results.values() if STARTED in r and ENDED in r]
        parts = {name: cpus_per_trial * sum(r.get(f"time_{name}", 0.0) for r in timed) for name in PARTS}
        in_trials = cpus_per_trial * sum(r[ENDED] - r[STARTED] for r in timed)
        starts = [r[STARTED] for r in timed]
        bounds = ([start, min(starts), max(starts), max(r[ENDED] for r in timed), end] if timed
                  else [start, end, end, end, end])
        idle = [idle_between(lo, hi, timed, cores, cpus_per_trial) for lo, hi in zip(bounds, bounds[1:])]
        return cls(cores, end - start, len(timed), **parts, in_trial_other=in_trials - sum(parts.values()),
                   idle_start=idle[0], idle_between=idle[1], idle_tail=idle[2], idle_finish=idle[3])

    @property
    def capacity(self) -> float:
        return self.cores * self.wall

    @property
    def training(self) -> float:
        return self.teacher + self.train

    @property
    def overhead(self) -> float:
        """Every core-second that trained neither a teacher nor a student."""
        return self.capacity - self.training

    def record(self) -> dict[str, float]:
        """Every field, and the totals (what profile.json holds)."""
        return {**asdict(self), "capacity": self.capacity, "training": self.training,
                "overhead": self.overhead, "overhead_per_trial": self.overhead / max(self.trials, 1)}

    def breakdown(self) -> dict[str, float]:
        """Each part's core-seconds, in the order they are reported."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("cores", "wall", "trials")}

    @property
    def idle(self) -> float:
        return self.idle_start + self.idle_between + self.idle_tail + self.idle_finish

    def line(self) -> str:
        """One sentence for the sweep's closing paragraph."""
        n = max(self.trials, 1)
        return (f"{self.training / self.capacity:.0%} of the cores' time ({self.cores:g} x {self.wall:.0f} s) trained "
                f"teachers and students; the rest came to {self.overhead / n:.1f} core-s per trial (set-up "
                f"{self.setup / n:.1f}, checkpoints and outputs {self.save / n:.1f}, idle cores {self.idle / n:.1f}).")


def idle_between(lo: float, hi: float, timed: list[dict[str, float]], cores: float, cpus_per_trial: float) -> float:
    """Core-seconds in [lo, hi] that no trial held: the integral of cores minus the trials' CPUs then."""
    if hi <= lo:
        return 0.0
    held = sum(max(0.0, min(hi, r[ENDED]) - max(lo, r[STARTED])) for r in timed)
    return max(0.0, cores * (hi - lo) - cpus_per_trial * held)
