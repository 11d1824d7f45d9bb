"""The live table of a running sweep: counts by state, then the latest metrics of the active trials."""

from __future__ import annotations

import time

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
            print(self.render(trials), flush=True)

    def on_experiment_end(self, trials: list, **info) -> None:
        print(self.render(trials), flush=True)

    def render(self, trials: list) -> str:
        counts = {state: 0 for state in ("running", "done", "failed", "pending")}
        for trial in trials:
            counts[STATES.get(trial.status, "pending")] += 1
        counts["done"] += self.done_before
        elapsed = time.strftime("%H:%M:%S", time.gmtime(time.monotonic() - self.start))
        lines = [f"[{self.name} {elapsed}] done {counts['done']}/{self.total}  running {counts['running']}  "
                 f"pending {counts['pending']}  failed {counts['failed']}"]
        running = [t for t in trials if t.status == "RUNNING"]
        failed = [t for t in trials if t.status == "ERROR"]
        done = sorted((t for t in trials if t.status == "TERMINATED"), key=lambda t: t.last_result.get("timestamp", 0))
        shown = running + failed + done[-RECENT_DONE:]
        if shown:
            lines.append(f"  {'trial':<30} {'state':<8} {'epoch':>6} {'accuracy':>9} {'alignment':>10}  node")
        for trial in shown:
            result = trial.last_result
            epochs = trial.config["trial"]["config"]["epochs"]
            epoch = f"{result['epoch']}/{epochs}" if "epoch" in result else f"-/{epochs}"
            acc = f"{result['student_acc']:.4f}" if "student_acc" in result else "-"
            alignment = f"{result['mean_alignment']:+.2e}" if "mean_alignment" in result else "-"
            state = "diverged" if "diverged" in result else STATES.get(trial.status, "pending")
            lines.append(f"  {trial.config['trial']['trial_id']:<30} {state:<8} "
                         f"{epoch:>6} {acc:>9} {alignment:>10}  {result.get('node_id', '')[:8]}")
        return "\n".join(lines)
