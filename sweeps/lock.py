"""One driver per results folder: a lock file naming its driver, refreshed while the driver runs.

Results folders live on shared storage, where two people may start the same sweep: two drivers would
run every trial twice and race on sweep.json. The lock is a file created only where none exists (by a
hard link, atomic even on NFS: see `atomic_write`), naming the host, PID and start of its driver, with
what tells its machine and PID namespace apart (the kernel's boot id and the PID namespace's inode: two
containers may share a host name and PIDs) and a token of the lock, which the driver touches every
REFRESH_S. A lock whose driver is gone (in this PID namespace of this machine, its PID runs no process, or
a zombie, or this process, which holds no such lock; anywhere, it has not been touched for STALE_S) is
taken over, with a line. A lock file that names no driver is taken over only once stale; a folder or link
in its place is never touched: the message says how to clear it.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any, Callable

from sublim.core.files import atomic_write, read_json, read_regular

LOCK_FILE = "driver.lock"
REFRESH_S = 30.0
STALE_S = 600.0  # twenty missed refreshes: generous for a loaded machine and for clocks that differ between hosts


class LockHeld(ValueError):
    """Another driver holds the results folder."""


def machine_identity() -> dict[str, Any]:
    """What tells this machine's boot and this PID namespace apart from every other: a PID means something only
    where both are equal (on a system without /proc, only the host name is recorded)."""
    identity: dict[str, Any] = {}
    try:
        identity["boot_id"] = read_regular(Path("/proc/sys/kernel/random/boot_id"), 64,
                                           follow_links=True).decode("ascii").strip()
        identity["pid_namespace"] = os.stat("/proc/self/ns/pid").st_ino
    except (OSError, ValueError):
        identity.clear()
    return identity


HELD: set[str] = set()  # tokens of the locks this process holds


class DriverLock:
    def __init__(self, folder: Path, log: Callable[[str], None]):
        self.path = Path(folder) / LOCK_FILE
        self.log = log
        self.record = {"host": socket.gethostname(), "pid": os.getpid(), **machine_identity(),
                       "token": uuid.uuid4().hex, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.stop = threading.Event()

    def acquire(self) -> None:
        """Take the lock, taking over a stale one; LockHeld naming the holder when a live driver has it."""
        for _ in range(3):  # a stale lock taken over, or a lock released meanwhile, then try again
            if atomic_write(self.path, lambda tmp: tmp.write_text(json.dumps(self.record)), replace=False):
                HELD.add(self.record["token"])
                threading.Thread(target=self._refresh, name="sublim-lock", daemon=True).start()
                return
            holder, age = self._holder()
            if holder is not None and not _names_a_driver(holder):
                if age <= STALE_S:
                    raise LockHeld(f"{self.path} is a lock file that names no sweep driver (not one sublim wrote); if "
                                   f"no driver uses {self.path.parent}, delete it, or it is taken over once "
                                   f"{STALE_S / 60:.0f} min unrefreshed, in {max(STALE_S - age, 0) / 60:.0f} min")
                self.log(f"taking over the lock file {self.path}, which names no driver (not refreshed for "
                         f"{age / 60:.0f} min)")
                self._remove(holder)
                continue
            gone = holder is not None and self._gone(holder, age)
            if holder is not None and not gone:
                elsewhere = "" if self._same_place(holder) else (
                    f"; if that driver is gone (a head that died), the lock is taken over once {STALE_S / 60:.0f} min "
                    f"unrefreshed, in {max(STALE_S - age, 0) / 60:.0f} min")
                other = " (in another PID namespace or boot of it)" if holder["host"] == self.record["host"] \
                    and not self._same_place(holder) else ""
                raise LockHeld(f"{self.path.parent} is in use by the sweep driver {holder['pid']} on "
                               f"{holder['host']}{other}, started {holder.get('started', '?')} (its lock "
                               f"{self.path.name} was refreshed {age:.0f} s ago); wait for it to end, or stop it"
                               + elsewhere)
            if gone:
                self.log(f"taking over the lock of driver {holder['pid']} on {holder['host']} "
                         f"({gone})")
                self._remove(holder)
        raise LockHeld(f"{self.path}: other drivers are taking this lock at the same time; try again")

    def release(self) -> None:
        self.stop.set()
        HELD.discard(self.record["token"])
        with suppress(LockHeld):  # something else stands where the lock was: not ours to remove
            if self._holder()[0] == self.record:
                self.path.unlink(missing_ok=True)

    def _refresh(self) -> None:
        while not self.stop.wait(REFRESH_S):
            try:
                os.utime(self.path)
            except OSError:  # taken over by a driver that judged it stale: nothing left to refresh
                pass

    def _holder(self) -> tuple[dict[str, Any] | None, float]:
        """The lock's record (see `_record`) and its age in seconds; (None, 0) when there is no lock. A folder,
        link or other non-file in its place is refused: it is no lock, and never removed."""
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return None, 0.0
        if not stat.S_ISREG(info.st_mode):
            raise LockHeld(f"{self.path} is not a lock file (a folder, link or other non-file stands where the "
                           f"driver lock belongs); if no sweep driver uses {self.path.parent}, remove it "
                           f"(rm -r {self.path}) and start again")
        return _record(self.path), time.time() - info.st_mtime

    def _gone(self, holder: dict[str, Any], age: float) -> str:
        """Why the lock's driver is gone, or '' when it may still run."""
        pid, here, same_place = holder["pid"], self.record, self._same_place(holder)
        if same_place and pid == here["pid"] and holder.get("token") not in HELD:
            return "it names this process, which holds no such lock: an earlier process of the same PID left it"
        if same_place and pid != here["pid"] and not _alive(pid):
            return "its process is no longer running"
        return f"not refreshed for {age / 60:.0f} min" if age > STALE_S else ""

    def _same_place(self, holder: dict[str, Any]) -> bool:
        """Whether the lock's driver ran on this machine, since its boot, in this PID namespace: where its PID means
        what it means here. (A lock of an older version, which records only the host, is judged by its age.)"""
        return all(holder.get(key) == self.record.get(key) for key in ("host", "boot_id", "pid_namespace"))

    def _remove(self, holder: dict[str, Any]) -> None:
        """Remove the stale lock `holder`: moved aside first, so that of several drivers taking it over only one
        removes it, and put back should it be a fresh lock taken meanwhile."""
        aside = self.path.with_name(f"{LOCK_FILE}.{self.record['pid']}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(os.lstat(aside).st_mode):  # replaced by a folder meanwhile: never removed
            os.rename(aside, self.path)
            return
        if _record(aside) != holder:
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink()


def _record(path: Path) -> dict[str, Any]:
    """A lock file's record: {} when it does not parse, {"content": value} when it is JSON but no object."""
    try:
        record = read_json(path, max_bytes=1 << 16)  # a lock sublim writes is about 200 bytes
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {"content": record}


def _names_a_driver(record: dict[str, Any]) -> bool:
    """Whether a lock's record names the host and PID of a driver, as every lock sublim writes does."""
    pid = record.get("pid")
    return isinstance(record.get("host"), str) and type(pid) is int and 0 < pid < 2**31


def _alive(pid: int) -> bool:
    """Whether the process `pid` still runs. A zombie does not: it has ended and only waits to be reaped, which may
    never happen (a driver that Ray's job stop kills is not reaped where PID 1 reaps nothing), yet kill(pid, 0)
    succeeds on it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    try:  # the state is the field after the command name, which may itself hold ")"
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:  # ended meanwhile where there is /proc; where there is none, kill(pid, 0) is all we know
        return not Path("/proc").is_dir()
    return not fields or fields[0] not in ("Z", "X")  # zombie, dead
