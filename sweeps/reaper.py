"""Ends what a local Ray leaves behind when its driver dies without shutting it down (SIGKILL, say).

Ray's GCS and raylet die with the driver (Linux fate sharing), but the raylet's agents (dashboard and
runtime-env agents) outlive it by a minute: they wait 60 s to report the raylet's death to the GCS,
which died too. The driver starts this small process (`python -m sublim.sweeps.reaper`) with the PIDs
of its Ray processes on stdin and keeps the pipe open; when the pipe closes (the driver shut Ray down
or died), it kills those still running. Torch- and Ray-free: it starts in milliseconds.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Iterable


def start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot): it tells a process from a later one with its PID."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]  # field 22; the name before ')' may hold spaces
    except (OSError, IndexError):
        return None


def reap(lines: Iterable[str]) -> None:
    """Read 'PID START' lines to the end of the input, then kill each of those processes still running."""
    for pid, started in [line.split() for line in lines]:
        if start_time(int(pid)) == started:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:  # ended meanwhile
                pass


if __name__ == "__main__":
    reap(sys.stdin)
