"""Starting Ray for a sweep: a private local Ray by default, or a running cluster joined by address.

A local Ray here listens on the loopback interface only and never reports usage; a cluster is
configured by whoever started it (see cluster.yaml: usage stats off, dashboard on localhost).
While Ray runs, SIGTERM stops the driver as Ctrl+C does, and a local Ray's processes end with the
driver however it ends (reaper.py).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import ray

from .reaper import start_time

# A local Ray turns token authentication on (other users of the machine can reach its loopback ports, so it
# stays on) and says so in a warning at every start; the README explains it once instead.
TOKEN_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
TERMINATED = threading.Event()  # set when this driver received SIGTERM
RAY_LOG = "ray.log"  # in the results folder's tune/: what Ray and Tune log on the driver


@contextmanager
def ray_log_to(path: Path) -> Iterator[None]:
    """For the block, Ray's and Tune's log lines on the driver go to `path` (appended), and only their warnings and
    errors to the terminal too: a sweep's output is its own lines. The file is never opened through a symbolic link
    (a results folder is untrusted input)."""
    logger = logging.getLogger("ray")  # Ray's handler sits here; ray.tune and the rest propagate to it
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644), "a",
                       encoding="utf-8")
    to_file = logging.StreamHandler(stream)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    terminal = [(handler, handler.level) for handler in logger.handlers]
    for handler, level in terminal:
        handler.setLevel(max(level, logging.WARNING))
    logger.addHandler(to_file)
    try:
        yield
    finally:
        logger.removeHandler(to_file)
        stream.close()
        for handler, level in terminal:
            handler.setLevel(level)


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Only errors from that logger for the block."""
    logger = logging.getLogger(logger_name)
    saved = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(saved)


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Make Ray's node address 127.0.0.1, so that every server it starts binds to loopback only.

    Ray picks the node address through `ray_constants.ENABLE_RAY_CLUSTER` (off, it uses loopback:
    Ray's own single-machine mode on macOS and Windows). The constant is read when `ray` is imported,
    so the driver's copy is switched here and the variable set for the processes Ray starts.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        with _environ({ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR: "0"}):
            yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _is_loopback(address: str) -> bool:
    """Whether a Ray address (HOST:PORT) names this machine's loopback interface."""
    host = address.rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    """SIGTERM does what Ctrl+C does: Tune's SIGINT handler stops the trials at their checkpoints and the driver
    closes as usual (outside Tune, KeyboardInterrupt). Ray's own handler would abort with a C++ stack dump."""
    TERMINATED.set()
    signal.raise_signal(signal.SIGINT)


def _start_reaper() -> subprocess.Popen | None:
    """The reaper of this driver's local Ray (reaper.py), given the PIDs of Ray's processes; None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    import psutil  # Ray's own copy, on the path once Ray is imported

    processes = [f"{p.pid} {start_time(p.pid)}\n" for p in psutil.Process().children(recursive=True)]
    reaper = subprocess.Popen([sys.executable, "-m", "sublim.sweeps.reaper"], stdin=subprocess.PIPE, text=True,
                              start_new_session=True)  # Ctrl+C in a terminal reaches the driver, not the reaper
    reaper.stdin.write("".join(processes))
    reaper.stdin.flush()
    return reaper


def local_resources() -> dict[str, float]:
    """The CPUs and GPUs a local Ray would give this machine, resolved as `ray.init` does (Ray's own detection,
    so containers' CPU quotas and CUDA_VISIBLE_DEVICES count), without starting Ray."""
    from ray._private.resource_and_label_spec import ResourceAndLabelSpec

    spec = ResourceAndLabelSpec().resolve(is_head=True, node_ip_address="127.0.0.1")
    return {"cpu": float(spec.num_cpus), "gpu": float(spec.num_gpus)}


def pending_trials(cpus: float) -> int:
    """How many trials Tune creates ahead of free CPUs on a local Ray (TUNE_MAX_PENDING_TRIALS_PG). Tune's own
    default, 200, is meant to trigger a cluster's autoscaling; on one machine it only adds work before the first
    trial starts, which grew with the grid (about 0.1 s per trial: 2 minutes of idle cores at 1,000 trials)."""
    return max(16, 2 * math.ceil(cpus))


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[float]:
    """Ray for the length of a sweep; yields the seconds its start took. Shut down on exit.

    Inside an outer session (the waves of `--until-resolved` share one), Ray is already up: that
    session is used as it is (0 seconds to start) and left running.
    """
    if ray.is_initialized():
        yield 0.0
        return
    settings = {"RAY_USAGE_STATS_ENABLED": "0",
                # The sweep prints its own live table; Tune's would interleave with it.
                "RAY_AIR_NEW_OUTPUT": "0",
                # Tune's default loggers, less its CSV copy of result.json (tune_run.fit adds the others back).
                "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
                # A sweep never reads Tune's experiment state back (it continues from the results folder), so
                # Tune writes it at the end only, not every 10 s (for 240 trials, a second of driver CPU each time).
                "TUNE_GLOBAL_CHECKPOINT_S": str(10**9)}
    if not address:
        settings["TUNE_MAX_PENDING_TRIALS_PG"] = str(pending_trials(num_cpus or local_resources()["cpu"]))
    with _environ(settings):
        start = time.perf_counter()
        if address and not _is_loopback(address):
            ray.init(address=address, log_to_driver=False)
        elif address:  # a cluster on this machine's loopback: the driver must not see itself at another address
            with _loopback_only():
                ray.init(address=address, log_to_driver=False)
        else:
            with _loopback_only(), _quiet(TOKEN_AUTH_LOGGER):
                ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        seconds = time.perf_counter() - start
        reaper = None if address else _start_reaper()
        handler = signal.signal(signal.SIGTERM, _stop_like_ctrl_c)  # after ray.init, which installs its own
        try:
            yield seconds
        finally:
            ray.shutdown()
            signal.signal(signal.SIGTERM, handler)
            if reaper:
                reaper.stdin.close()  # the reaper ends what shutting down left running
                reaper.wait()
