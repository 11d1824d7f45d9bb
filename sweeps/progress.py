"""The live table of a running sweep: counts by state, then the latest metrics of the active trials.

On a cluster, a trial that needs more than any node has (a GPU where no node has one, say) waits until
the cluster grows: it shows as waiting, naming what it needs, never as pending or done. A trial that
Tune ended without its last epoch (the sweep was stopped) counts as stopped, not done.
"""

from __future__ import annotations

import time

import ray
from ray import tune

STATES = {"RUNNING": "running", "TERMINATED": "done", "ERROR": "failed", "PENDING": "pending", "PAUSED": "pending"}
RECENT_DONE = 3  # finished trials shown below the running ones


class ProgressTable(tune.Callback):
    """Prints the table when trials change state or advance an epoch, at most every `every_s`."""

    def __init__(self, name: str, total: int, done_before: int = 0, every_s: float = 5.0):
        self.name, self.total, self.done_before, self.every_s = name, total, done_before, every_s
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
        view = tuple((t.status, t.last_result.get("epoch")) for t in trials)
        if view != self.last_view:
            self.last_view, self.last_print = view, now
            print(self.render(trials, nodes_now(trials)), flush=True)

    def on_experiment_end(self, trials: list, **info) -> None:
        print(self.render(trials, nodes_now(trials)), flush=True)

    def render(self, trials: list, nodes: list[dict[str, float]] = ()) -> str:
        """The table; `nodes` (each alive node's resources) tells which pending trials no node can place."""
        counts = {state: 0 for state in ("running", "done", "failed", "pending")}
        waiting = [t for t in trials if t.status == "PENDING" and nodes and unplaceable(t, nodes)]
        counts["stopped"] = 0
        for trial in trials:
            counts[state_of(trial)] += 1
        counts["pending"] -= len(waiting)
        counts["done"] += self.done_before
        elapsed = time.strftime("%H:%M:%S", time.gmtime(time.monotonic() - self.start))
        lines = [f"[{self.name} {elapsed}] done {counts['done']}/{self.total}  running {counts['running']}  "
                 f"pending {counts['pending']}  failed {counts['failed']}"
                 + (f"  stopped {counts['stopped']}" if counts["stopped"] else "")
                 + (f"  waiting for resources {len(waiting)}" if waiting else "")]
        if waiting:
            more = f" (and {len(waiting) - 1} more)" if len(waiting) > 1 else ""
            lines.append(f"  waiting for resources: {waiting[0].config['trial']['trial_id']}{more} needs "
                         f"{resource_text(waiting[0].placement_group_factory.required_resources)}, which no node "
                         f"has (nodes: {'; '.join(map(resource_text, nodes))}); it starts when such a node joins")
        running = [t for t in trials if t.status == "RUNNING"]
        failed = [t for t in trials if t.status == "ERROR"]
        done = sorted((t for t in trials if state_of(t) == "done"), key=lambda t: t.last_result.get("timestamp", 0))
        shown = running + failed + done[-RECENT_DONE:]
        if shown:
            lines.append(f"  {'trial':<30} {'state':<8} {'epoch':>6} {'accuracy':>9} {'alignment':>10}  node")
        for trial in shown:
            result = trial.last_result
            epochs = trial.config["trial"]["config"]["epochs"]
            epoch = f"{result['epoch']}/{epochs}" if "epoch" in result else f"-/{epochs}"
            acc = f"{result['student_acc']:.4f}" if "student_acc" in result else "-"
            alignment = f"{result['mean_alignment']:+.2e}" if "mean_alignment" in result else "-"
            state = "diverged" if "diverged" in result else state_of(trial)
            lines.append(f"  {trial.config['trial']['trial_id']:<30} {state:<8} "
                         f"{epoch:>6} {acc:>9} {alignment:>10}  {result.get('node_id', '')[:8]}")
        return "\n".join(lines)


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
