"""`sublim run --tracker`: the trial as one run in MLflow or Weights & Biases, through the trackers' own clients.

It sends what a sweep's Tune callbacks send (sublim.core.tracking): params `trial/config/<setting>` and
`trial/trial_id`, each epoch's metrics at step = epoch, and with the last epoch the summary's numbers as
`summary/<field>`.
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from sublim.core.tracking import mlflow_uri

EXPERIMENT = "sublim-run"  # the MLflow experiment and W&B project of `sublim run`'s trials


def flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of `a/b` keys, as Tune's logger callbacks flatten them."""
    out = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        out.update(flat(value, name + "/") if isinstance(value, dict) else {name: value})
    return out


@contextmanager
def _mlflow_run(name: str, params: dict[str, Any]) -> Iterator[Callable[[dict, int], None]]:
    import mlflow

    mlflow.set_tracking_uri(mlflow_uri())
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    with mlflow.start_run(run_name=name):  # ended FAILED when the block raises
        mlflow.log_params(flat(params))
        yield lambda metrics, step: mlflow.log_metrics(flat(metrics), step=step)


@contextmanager
def _wandb_run(name: str, params: dict[str, Any], folder: Path) -> Iterator[Callable[[dict, int], None]]:
    import wandb

    folder.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", EXPERIMENT), name=name, config=params, dir=folder)
    try:
        yield lambda metrics, step: run.log(flat(metrics), step=step)
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()


@contextmanager
def tracked(trackers: list[str], name: str, params: dict[str, Any],
            out: Path) -> Iterator[Callable[[dict[str, Any], int], None]]:
    """A function that logs (metrics, step) to every tracker named, each holding one run for the block; W&B's run
    folder goes in `out`."""
    with ExitStack() as stack:
        loggers = [stack.enter_context(_mlflow_run(name, params) if tracker == "mlflow"
                                       else _wandb_run(name, params, out)) for tracker in trackers]

        def log(metrics: dict[str, Any], step: int) -> None:
            for logger in loggers:
                logger(metrics, step)

        yield log
