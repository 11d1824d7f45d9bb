"""A sweep's trials in MLflow or Weights & Biases, through Ray Tune's own logger callbacks (see sublim.core.tracking).

Every trial is a run named by its trial id, in an experiment (MLflow) or project (W&B) named by the sweep: params are
Tune's config of the trial (`trial/config/<setting>`, `trial/trial_id`), metrics every result it reports (one per
epoch; the last also carries `summary/<field>`). The callbacks run on the driver: a local MLflow store is written
there, and W&B's logging actors run on the driver's node, writing straight into the Tune run's folder in the results
(Tune's copy of a trial's own folder is taken before W&B has written its run there).
"""

from __future__ import annotations

import os
from pathlib import Path

from ray import tune

from sublim.core.tracking import mlflow_uri


def tracker_callbacks(trackers: list[str], experiment: str, folder: Path) -> list[tune.Callback]:
    """The callbacks of the trackers named; W&B writes its runs in `folder`/wandb/."""
    callbacks = []
    if "mlflow" in trackers:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(MLflowLoggerCallback(tracking_uri=mlflow_uri(), experiment_name=experiment))
    if "wandb" in trackers:  # WANDB_MODE=offline reaches the logging actors through a local Ray's environment
        from ray.air.integrations.wandb import WandbLoggerCallback

        folder.mkdir(parents=True, exist_ok=True)
        callbacks.append(WandbLoggerCallback(project=os.environ.get("WANDB_PROJECT", experiment), dir=str(folder)))
    return callbacks
