"""The reaper kills the processes it was given once its input ends, and never a later process with a reused PID."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sublim.sweeps.reaper import reap, start_time

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_the_reaper_kills_what_it_was_given_once_its_input_ends():
    given, other = (subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(2))
    try:
        reap([f"{given.pid} {start_time(given.pid)}\n", f"{other.pid} 1\n"])  # a start time that is not other's
        assert given.wait(timeout=60) == -9 and other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_the_reaper_runs_as_a_module_until_its_stdin_closes():
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    reaper = subprocess.Popen([sys.executable, "-m", "sublim.sweeps.reaper"], stdin=subprocess.PIPE, text=True)
    reaper.stdin.write(f"{victim.pid} {start_time(victim.pid)}\n")
    reaper.stdin.flush()
    assert victim.poll() is None and reaper.poll() is None  # waits while its input is open
    reaper.stdin.close()
    assert reaper.wait(timeout=60) == 0 and victim.wait(timeout=60) == -9
