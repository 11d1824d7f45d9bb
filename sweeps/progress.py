"""A running sweep's progress: one status line with done/total, the share of the predicted core-time done, and an ETA.

The ETA is the cost model's prediction of what is left (sweeps/cost.py: each trial's share, a running trial's by its
epochs left), corrected by the trials finished so far in this run (their measured time over their predicted), over
the trials that run at once. A line is printed when trials start, end or fail (at most every `every_s`), and at
least every `heartbeat_s`. Tune creates a trial only shortly before it can run (TUNE_MAX_PENDING_TRIALS_PG), so the
trials of this run it has not created yet count as pending, with all their cost left.

On a cluster, a trial that needs more than any node has (a GPU where no node has one, say) waits until the cluster
grows: it shows as waiting, naming what it needs, never as pending or done. A trial that Tune ended without its last
epoch (the sweep was stopped) counts as stopped, not done.
"""

from __future__ import annotations

import time

import ray
from ray import tune

from sublim.core.durations import duration_text

from .profile import ENDED, STARTED

STATES = {"RUNNING": "running", "TERMINATED": "done", "ERROR": "failed", "PENDING": "pending", "PAUSED": "pending"}


class SweepProgress(tune.Callback):
    """`costs`: every trial of the sweep (its id: predicted core-seconds), those not in `pending` done before this
    run; `slots`: how many trials run at once."""

    def __init__(self, name: str, costs: dict[str, float], pending: set[str], slots: float, every_s: float = 5.0,
                 heartbeat_s: float = 60.0):
        self.name, self.costs, self.slots, self.every_s, self.heartbeat_s = name, costs, slots, every_s, heartbeat_s
        self.total, self.done_before, self.pending = len(costs), len(costs) - len(pending), pending
        self.cost_done_before = sum(cost for trial_id, cost in costs.items() if trial_id not in pending)
        self.setup()

    def setup(self, **info) -> None:
        """Called by Tune when the run starts, and again when a driver continues it."""
        self.start = time.monotonic()
        self.last_print = 0.0
        self.last_view: tuple = ()

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        now = time.monotonic()
        if now - self.last_print < self.every_s:  # Tune steps many times a second: the clock first, it is cheap
            return
        view = tuple(state_of(t) for t in trials)
        if view != self.last_view or now - self.last_print >= self.heartbeat_s:
            self.last_view, self.last_print = view, now
            print(self.render(trials, nodes_now(trials)), flush=True)

    def on_experiment_end(self, trials: list, **info) -> None:
        print(self.render(trials, nodes_now(trials)), flush=True)

    def render(self, trials: list, nodes: list[dict[str, float]] = ()) -> str:
        """The status line; `nodes` (each alive node's resources) tells which pending trials no node can place."""
        counts = {state: 0 for state in ("running", "done", "failed", "pending", "stopped")}
        waiting = [t for t in trials if t.status == "PENDING" and nodes and unplaceable(t, nodes)]
        for trial in trials:
            counts[state_of(trial)] += 1
        counts["pending"] += len(self.not_created(trials)) - len(waiting)
        counts["done"] += self.done_before
        elapsed = time.strftime("%H:%M:%S", time.gmtime(time.monotonic() - self.start))
        done, eta = self.core_time_done(trials), self.eta(trials)
        lines = [f"[{self.name} {elapsed}] done {counts['done']}/{self.total} ({done:.0%} of the predicted core-time)"
                 + (f", ETA {duration_text(eta)}" if eta is not None else "")
                 + f"; running {counts['running']}, pending {counts['pending']}, failed {counts['failed']}"
                 + (f", stopped {counts['stopped']}" if counts["stopped"] else "")
                 + (f", waiting for resources {len(waiting)}" if waiting else "")]
        if waiting:
            more = f" (and {len(waiting) - 1} more)" if len(waiting) > 1 else ""
            lines.append(f"  waiting for resources: {trial_id_of(waiting[0])}{more} needs "
                         f"{resource_text(waiting[0].placement_group_factory.required_resources)}, which no node "
                         f"has (nodes: {'; '.join(map(resource_text, nodes))}); it starts when such a node joins")
        return "\n".join(lines)

    def left(self, trial) -> float:
        """Predicted core-seconds the trial has still to run: none once it ended, a running one's epochs left."""
        state = state_of(trial)
        if state in ("done", "failed", "stopped"):
            return 0.0
        epochs = trial.config["trial"]["config"]["epochs"]
        return self.costs[trial_id_of(trial)] * (1 - trial.last_result.get("epoch", 0) / epochs)

    def not_created(self, trials: list) -> set[str]:
        """This run's trials that Tune has not created yet."""
        return self.pending - {trial_id_of(t) for t in trials}

    def all_left(self, trials: list) -> list[float]:
        """Predicted core-seconds left of each of this run's trials, created or not."""
        return [*map(self.left, trials), *(self.costs[trial_id] for trial_id in self.not_created(trials))]

    def core_time_done(self, trials: list) -> float:
        """The share of the sweep's predicted core-time done: trials done before this run, and this run's trials but
        what they have left (a failed trial's share counts as done: nothing more of it runs)."""
        total = sum(self.costs.values())
        return 1 - sum(self.all_left(trials)) / total if total else 1.0

    def eta(self, trials: list) -> float | None:
        """Seconds until this run ends, by the model corrected by this run's finished trials; None without slots."""
        if not self.slots:
            return None
        finished = [t for t in trials if state_of(t) == "done" and STARTED in t.last_result]
        predicted = sum(self.costs[trial_id_of(t)] for t in finished)
        measured = sum(t.last_result[ENDED] - t.last_result[STARTED] for t in finished)
        correction = measured / predicted if predicted and measured else 1.0
        left = self.all_left(trials)
        return correction * max(sum(left) / self.slots, max(left, default=0.0))  # never less than the longest trial


def trial_id_of(trial) -> str:
    return trial.config["trial"]["trial_id"]


def state_of(trial) -> str:
    """running, done, failed or pending by Tune's status; a trial Tune ended before its last epoch is stopped."""
    state, result = STATES.get(trial.status, "pending"), trial.last_result
    last_epoch = "diverged" in result or result.get("epoch") == trial.config["trial"]["config"]["epochs"]
    return "stopped" if state == "done" and not last_epoch else state


def nodes_now(trials: list) -> list[dict[str, float]]:
    """The resources of each alive node, asked of Ray only while a trial is pending."""
    if not any(t.status == "PENDING" for t in trials):
        return []
    return [node["Resources"] for node in ray.nodes() if node["Alive"]]


def unplaceable(trial, nodes: list[dict[str, float]]) -> bool:
    """Whether some bundle of the trial's resource request fits on no node, however idle."""
    return any(not any(all(node.get(key, 0) >= amount for key, amount in bundle.items()) for node in nodes)
               for bundle in trial.placement_group_factory.bundles)


def resource_text(resources: dict[str, float]) -> str:
    return ", ".join(f"{resources.get(key, 0):g} {key}" for key in ("CPU", "GPU"))
