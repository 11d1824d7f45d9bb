"""One driver per results folder: a lock file naming its driver, refreshed while the driver runs.

Results folders live on shared storage, where two people may start the same sweep: two drivers would
run every trial twice and race on sweep.json. The lock is a file created only where none exists (by a
hard link, atomic even on NFS: see `atomic_write`), naming the host, PID and start of its driver,
which touches it every REFRESH_S. A lock whose driver is gone (on this host, its PID is not alive; on
any host, it has not been touched for STALE_S) is taken over, with a line.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

from sublim.core.files import atomic_write, read_json

LOCK_FILE = "driver.lock"
REFRESH_S = 30.0
STALE_S = 600.0  # twenty missed refreshes: generous for a loaded machine and for clocks that differ between hosts


class LockHeld(ValueError):
    """Another driver holds the results folder."""


class DriverLock:
    def __init__(self, folder: Path, log: Callable[[str], None]):
        self.path = Path(folder) / LOCK_FILE
        self.log = log
        self.record = {"host": socket.gethostname(), "pid": os.getpid(),
                       "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.stop = threading.Event()

    def acquire(self) -> None:
        """Take the lock, taking over a stale one; LockHeld naming the holder when a live driver has it."""
        for _ in range(3):  # a stale lock taken over, or a lock released meanwhile, then try again
            if atomic_write(self.path, lambda tmp: tmp.write_text(json.dumps(self.record)), replace=False):
                threading.Thread(target=self._refresh, name="sublim-lock", daemon=True).start()
                return
            holder, age = self._holder()
            gone = holder is not None and self._gone(holder, age)
            if holder is not None and not gone:
                elsewhere = "" if holder.get("host") == self.record["host"] else (
                    f"; if that host is gone (a head that died), the lock is taken over once {STALE_S / 60:.0f} min "
                    f"unrefreshed, in {max(STALE_S - age, 0) / 60:.0f} min")
                raise LockHeld(f"{self.path.parent} is in use by the sweep driver {holder.get('pid', '?')} on "
                               f"{holder.get('host', '?')}, started {holder.get('started', '?')} (its lock "
                               f"{self.path.name} was refreshed {age:.0f} s ago); wait for it to end, or stop it"
                               + elsewhere)
            if gone:
                self.log(f"taking over the lock of driver {holder.get('pid', '?')} on {holder.get('host', '?')} "
                         f"({gone})")
                self._remove(holder)
        raise LockHeld(f"{self.path}: other drivers are taking this lock at the same time; try again")

    def release(self) -> None:
        self.stop.set()
        if self._holder()[0] == self.record:
            self.path.unlink(missing_ok=True)

    def _refresh(self) -> None:
        while not self.stop.wait(REFRESH_S):
            try:
                os.utime(self.path)
            except OSError:  # taken over by a driver that judged it stale: nothing left to refresh
                pass

    def _holder(self) -> tuple[dict[str, Any] | None, float]:
        """The lock's record ({} when unreadable) and its age in seconds; (None, 0) when there is no lock."""
        try:
            age = time.time() - os.lstat(self.path).st_mtime
        except FileNotFoundError:
            return None, 0.0
        try:
            record = read_json(self.path)
        except (OSError, ValueError):
            record = {}
        return (record if isinstance(record, dict) else {}), age

    def _gone(self, holder: dict[str, Any], age: float) -> str:
        """Why the lock's driver is gone, or '' when it may still run."""
        pid = holder.get("pid")
        if holder.get("host") == self.record["host"] and type(pid) is int and 0 < pid < 2**31 and not _alive(pid):
            return "its process is no longer running"
        return f"not refreshed for {age / 60:.0f} min" if age > STALE_S else ""

    def _remove(self, holder: dict[str, Any]) -> None:
        """Remove the stale lock `holder`: moved aside first, so that of several drivers taking it over only one
        removes it, and put back should it be a fresh lock taken meanwhile."""
        aside = self.path.with_name(f"{LOCK_FILE}.{self.record['pid']}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = read_json(aside)
        except (OSError, ValueError):
            moved = {}
        if moved != holder:
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
