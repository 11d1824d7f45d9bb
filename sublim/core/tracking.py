"""Experiment trackers (MLflow, Weights & Biases): which there are, where they log, and what a trial sends them.

A sweep logs through Ray Tune's own logger callbacks (sweeps/trackers.py), `sublim run` through the trackers' own
clients (sublim/cli/tracking.py); both send the same: the trial's config as params (`trial/config/<setting>`), each
epoch's metrics at step = epoch, and with the last epoch the final summary's numbers (`summary/<field>`).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

TRACKERS = ("mlflow", "wandb")  # each the name of its package's import and of sublim's optional extra
MLFLOW_DEFAULT_STORE = "mlruns"  # a local file store in the working folder, when MLFLOW_TRACKING_URI is unset


class TrackerError(ValueError):
    """A tracker was asked for that is not installed."""


def check_trackers(trackers: list[str]) -> None:
    """Before any work: each tracker asked for is installed (its optional extra)."""
    for name in trackers:
        if importlib.util.find_spec(name) is None:
            raise TrackerError(f"--tracker {name}: the {name} package is not installed; "
                               f"pip install 'sublim[{name}]' (or pip install {name})")


def mlflow_uri() -> str:
    """MLFLOW_TRACKING_URI, else a file store `./mlruns` (as an absolute URI: the store does not move with the
    working folder of whoever opens it). MLflow 3 refuses file stores unless MLFLOW_ALLOW_FILE_STORE is set, which
    this sets for them: a local store needs no database (nor the full mlflow package)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or Path(MLFLOW_DEFAULT_STORE).resolve().as_uri()
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def final_summary(summary: dict[str, Any]) -> dict[str, float]:
    """The summary's numbers (trait_gain, student_acc_before, mean_alignment over all steps, ...): what a tracker
    logs, under `summary/`, with a trial's last epoch; lists, text and the config stay in summary.json."""
    return {key: value for key, value in summary.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}
