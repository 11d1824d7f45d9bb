"""One driver per results folder: a second driver refuses naming the holder, a stale lock is taken over with a
line, the lock is refreshed while its driver runs, and extending a folder happens under it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml

from sublim import cli
from sublim.sweeps import lock as lock_module
from sublim.sweeps.lock import LOCK_FILE, DriverLock, LockHeld
from sublim.sweeps.results import ResultsFolder
from sublim.sweeps.spec import SweepSpec

SPEC = {"name": "locked", "seeds": [0], "arms": [{"mitigation": "none"}], "settings": {"epochs": 2}}


def write_lock(folder, host: str, pid: int, age_s: float = 0.0, **identity) -> None:
    """A lock as a driver writes it; on this host, with this machine's identity unless `identity` says otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    here = lock_module.machine_identity() if host == socket.gethostname() else {}
    path.write_text(json.dumps({"host": host, "pid": pid, **here, **identity, "started": "2026-01-01T00:00:00Z"}))
    os.utime(path, (time.time() - age_s, time.time() - age_s))


@pytest.fixture
def live_pid():
    """The PID of a process that runs for the length of the test: another driver, as far as a lock can tell."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield process.pid
    process.stdin.close()
    process.wait()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def zombie_pid():
    """The PID of a killed process not yet reaped, as a driver that Ray's job stop killed stays where nothing reaps
    it: kill(pid, 0) still succeeds on it."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    process.kill()
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # ended, left unreaped
    os.kill(process.pid, 0)
    yield process.pid
    process.wait()


def test_a_second_driver_refuses_naming_the_holder_until_the_first_releases(tmp_path):
    first, second = DriverLock(tmp_path, print), DriverLock(tmp_path, print)
    first.acquire()
    record = json.loads((tmp_path / LOCK_FILE).read_text())
    assert record == {"host": socket.gethostname(), "pid": os.getpid(), **lock_module.machine_identity(),
                      "token": record["token"], "started": record["started"]}
    with pytest.raises(LockHeld, match=rf"in use by the sweep driver {os.getpid()} on {socket.gethostname()}, "
                                       rf"started {record['started']}"):
        second.acquire()
    first.release()
    assert not (tmp_path / LOCK_FILE).exists()
    second.acquire()
    second.release()


@pytest.mark.parametrize("host, pid, age_s, why", [
    ("here", "dead", 0, "its process is no longer running"),
    ("another-host", 12345, 3600, "not refreshed for 60 min"),
    ("here", "dead", 3600, "its process is no longer running"),
    ("here", "zombie", 0, "its process is no longer running"),
])
def test_a_stale_lock_is_taken_over_with_a_line(tmp_path, request, host, pid, age_s, why):
    pid = {"dead": dead_pid, "zombie": lambda: request.getfixturevalue("zombie_pid")}.get(pid, lambda: pid)()
    write_lock(tmp_path, socket.gethostname() if host == "here" else host, pid, age_s)
    lines = []
    lock = DriverLock(tmp_path, lines.append)
    lock.acquire()
    assert len(lines) == 1 and lines[0].startswith("taking over the lock of driver ") and why in lines[0], lines
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]
    lock.release()


def test_a_live_or_recently_refreshed_lock_is_not_taken_over(tmp_path, live_pid):
    write_lock(tmp_path, socket.gethostname(), live_pid, age_s=60)
    with pytest.raises(LockHeld, match=f"driver {live_pid} on {socket.gethostname()}"):
        DriverLock(tmp_path, print).acquire()
    write_lock(tmp_path, "another-host", 12345, age_s=60)  # its PID means nothing here: only its age counts
    with pytest.raises(LockHeld, match="driver 12345 on another-host, started 2026-01-01T00:00:00Z") as held:
        DriverLock(tmp_path, print).acquire()
    assert str(held.value).endswith("if that driver is gone (a head that died), the lock is taken over once 10 min "
                                    "unrefreshed, in 9 min")


def test_the_lock_is_refreshed_while_its_driver_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "REFRESH_S", 0.01)
    lock = DriverLock(tmp_path, print)
    lock.acquire()
    path = tmp_path / LOCK_FILE
    os.utime(path, (0, 0))
    deadline = time.monotonic() + 60  # a safety net: the refresh comes within milliseconds
    while path.stat().st_mtime == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert time.time() - path.stat().st_mtime < 60
    lock.release()
    assert not path.exists()


def test_extending_a_folder_happens_under_the_lock(tmp_path):
    spec = SweepSpec.from_dict(SPEC)
    holder, other = ResultsFolder(tmp_path / "locked"), ResultsFolder(tmp_path / "locked")
    with holder.locked():
        with pytest.raises(LockHeld, match="in use by the sweep driver"):
            other.record("locked", spec, yaml.safe_dump(SPEC))
        holder.record("locked", spec, yaml.safe_dump(SPEC))  # re-entrant for its holder
    assert holder.recorded_trials() and not (holder.path / LOCK_FILE).exists()


def test_sublim_sweep_refuses_a_held_folder_in_one_line_and_touches_nothing(tmp_path, capsys, live_pid):
    spec = tmp_path / "locked.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    folder = tmp_path / "results" / "locked"
    write_lock(folder, socket.gethostname(), live_pid)
    before = (folder / LOCK_FILE).read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", str(spec), "--storage", str(tmp_path / "results"), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"sublim sweep: error: {folder} is in use by the sweep driver {live_pid} on ")
    assert [p.name for p in folder.iterdir()] == [LOCK_FILE] and (folder / LOCK_FILE).read_bytes() == before


@pytest.mark.parametrize("age_s", [0, 3600])
def test_a_folder_where_the_lock_belongs_is_reported_with_how_to_clear_it_and_left_alone(tmp_path, age_s):
    (tmp_path / LOCK_FILE).mkdir()
    (tmp_path / LOCK_FILE / "theirs.txt").write_text("kept")
    os.utime(tmp_path / LOCK_FILE, (time.time() - age_s, time.time() - age_s))
    with pytest.raises(LockHeld, match=rf"{LOCK_FILE} is not a lock file .* remove it \(rm -r "):
        DriverLock(tmp_path, print).acquire()
    assert (tmp_path / LOCK_FILE / "theirs.txt").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]


@pytest.mark.parametrize("content", ["garbage", "[]", '{"host": "h"}', '{"host": "h", "pid": "7"}'])
def test_a_lock_file_naming_no_driver_is_refused_as_such_until_stale_then_taken_over(tmp_path, content):
    path = tmp_path / LOCK_FILE
    path.write_text(content)
    with pytest.raises(LockHeld, match="is a lock file that names no sweep driver .* delete it") as held:
        DriverLock(tmp_path, print).acquire()
    assert "?" not in str(held.value) and path.read_text() == content
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    lines = []
    lock = DriverLock(tmp_path, lines.append)
    lock.acquire()
    assert lines == [f"taking over the lock file {path}, which names no driver (not refreshed for 60 min)"]
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_a_lock_naming_this_pid_in_another_pid_namespace_is_judged_by_its_age(tmp_path):
    """Containers on one host share its name and boot, and each may run its driver as PID 1: a PID from another
    namespace says nothing here, so the lock is neither this driver's nor dead by its PID."""
    write_lock(tmp_path, socket.gethostname(), os.getpid(), age_s=60, pid_namespace=-1)
    with pytest.raises(LockHeld, match=rf"driver {os.getpid()} on {socket.gethostname()} \(in another PID namespace"):
        DriverLock(tmp_path, print).acquire()
    write_lock(tmp_path, socket.gethostname(), os.getpid(), age_s=3600, pid_namespace=-1)
    lines = []
    lock = DriverLock(tmp_path, lines.append)
    lock.acquire()
    assert len(lines) == 1 and "not refreshed for 60 min" in lines[0]
    lock.release()


def test_a_lock_naming_this_process_that_it_does_not_hold_is_taken_over_at_once(tmp_path):
    """An earlier driver that had this PID (in this namespace, since this boot) is gone: this process is alive,
    but it is not that driver."""
    write_lock(tmp_path, socket.gethostname(), os.getpid(), age_s=0)
    lines = []
    lock = DriverLock(tmp_path, lines.append)
    lock.acquire()
    assert len(lines) == 1 and "it names this process, which holds no such lock" in lines[0]
    lock.release()
