"""A full disk during a sweep: one line per trial saying which folder is full and that nothing was half-written, and
a closing line from the driver; never a traceback. ENOSPC is simulated: the atomic writer's write raises it."""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sublim import cli
from sublim.cli.sweep import closing_paragraph
from sublim.core import files
from sublim.core.files import DiskFull, atomic_write, write_text
from sublim.sweeps.results import ResultsFolder
from sublim.sweeps.tune_run import RunRecord, SweepOutcome
from sublim.trainable.results import save_state


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_line_naming_the_folder_and_the_old_file_stays(tmp_path, monkeypatch):
    path = tmp_path / "trials" / "s000-none-shared" / "summary.json"
    write_text(path, "the old complete file")
    with pytest.raises(DiskFull) as error:
        atomic_write(path, no_space)
    assert str(error.value) == (f"no space left on the disk holding {path.parent}: summary.json was not written, and "
                                "nothing was half-written")
    assert path.read_text() == "the old complete file" and [p.name for p in path.parent.iterdir()] == [path.name]
    monkeypatch.setattr(Path, "write_bytes", no_space)  # torch's own writer would say "enforce fail at ..."
    with pytest.raises(DiskFull, match="checkpoint.pt was not written"):
        save_state(path.with_name("checkpoint.pt"), {"epoch": 1})
    with pytest.raises(OSError) as other:  # any other error passes through as it was
        atomic_write(path, lambda tmp: (_ for _ in ()).throw(PermissionError(errno.EACCES, "denied")))
    assert type(other.value) is PermissionError


def failed_trial(trial_id: str, error: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(config={"trial": {"trial_id": trial_id, "config": {"seed": 0}}}, get_error=lambda: error)


def test_a_trial_failing_on_a_full_disk_is_one_line_even_when_error_txt_cannot_be_written(tmp_path, monkeypatch):
    lines = []
    record = RunRecord(tmp_path / "sweep", lines.append)
    remote = ("Traceback (most recent call last):\n  File \"sweeps/results.py\", line 1, in save_epoch\n"
              f"sublim.core.files.DiskFull: no space left on the disk holding {tmp_path}/sweep/trials/s000-none-shared: "
              "checkpoint.pt was not written, and nothing was half-written\n")
    assert not record.filter(SimpleNamespace(getMessage=lambda: "Trial task failed for trial s000-none-shared",
                                             exc_info=(None, RuntimeError(remote), None)))  # Tune's traceback: dropped
    monkeypatch.setattr(files, "_atomic_write", no_space)
    record.on_trial_error(0, [], failed_trial("s000-none-shared"))  # Tune's own error file was not written either
    assert lines == [f"s000-none-shared failed: {remote.splitlines()[-1]}; error.txt not written either"]
    assert record.disk_full

    monkeypatch.undo()
    record = RunRecord(tmp_path / "sweep", lines.append)
    record.on_trial_error(0, [], failed_trial("s001-none-shared", "Failure # 1\nTraceback ...\nValueError: bad\n"))
    assert lines[-1] == "s001-none-shared failed: ValueError: bad" and not record.disk_full
    assert (ResultsFolder(tmp_path / "sweep").trial_dir("s001-none-shared") / "error.txt").read_text().startswith(
        "Failure # 1")
    assert record.filter(SimpleNamespace(getMessage=lambda: "Trial s0 finished", exc_info=None))
    assert not record.filter(SimpleNamespace(getMessage=lambda: "Resume experiment with: Tuner.restore(path=x)",
                                             exc_info=None))


def test_the_driver_closes_saying_the_disk_is_full(tmp_path):
    outcome = SweepOutcome(folder=tmp_path, total=2, finished=0, diverged=[], failed=["a", "b"], teachers=1,
                           seconds=3.0, disk_full=True)
    args = SimpleNamespace(spec="s.yaml", storage="results")
    text = closing_paragraph("s", args, outcome)
    assert "\n" not in text and "The disk holding the results filled up" in text and "nothing was half-written" in text
    assert "--resume" in text


def test_sublim_sweep_on_a_full_disk_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "full.yaml"
    spec.write_text(yaml.safe_dump({"name": "full", "seeds": [0], "arms": [{"mitigation": "none"}]}))
    monkeypatch.setattr(files, "_atomic_write", no_space)  # the driver's first write: its lock
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", str(spec), "--storage", str(tmp_path / "results"), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err == (f"sublim sweep: error: no space left on the disk holding {tmp_path / 'results' / 'full'}: "
                   "driver.lock was not written, and nothing was half-written\n")
