"""Trackers: `sublim run` and `sublim sweep` log each trial to MLflow (a local file store, read back with
`mlflow.search_runs`) and to W&B (an offline run folder, read back from its records); nothing goes to the network."""

import json
from pathlib import Path

import pytest

from sublim.cli import main
from sublim.core import tracking

from test_sweep_ray import finish, start_sweep, write_spec

QUICK = ["--epochs", "2", "--noise-count", "2048", "--teacher-epochs", "1", "--train-size", "2000", "--hidden", "32"]


@pytest.fixture
def offline_trackers(tmp_path, monkeypatch) -> str:
    """A local MLflow store and W&B in offline mode, for this test only; the store's URI."""
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for reading it here; sublim sets it for itself
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return uri


def mlflow_runs(uri: str):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(search_all_experiments=True)


def metric_history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    import mlflow

    return [(m.step, m.value) for m in mlflow.MlflowClient(uri).get_metric_history(run_id, key)]


def wandb_run(run_file: Path) -> tuple[str, list[dict]]:
    """An offline run's name and the `wandb.log` calls it recorded: its .wandb file is a W&B header (7 bytes), then
    LevelDB-log records (32 KiB blocks of crc32c, length, type, data) holding protobuf `Record`s."""
    from wandb.proto import wandb_internal_pb2

    raw, pos, pending, name, rows = run_file.read_bytes(), 7, b"", None, []
    while pos + 7 <= len(raw):
        if 32768 - pos % 32768 < 7:  # a block's trailer
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(raw[pos + 4:pos + 6], "little"), raw[pos + 6]
        pending += raw[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
            elif record.WhichOneof("record_type") == "run":
                name = record.run.display_name
    return name, rows


@pytest.mark.mnist
def test_sublim_run_logs_its_config_epochs_and_summary_to_mlflow_and_wandb(tmp_path, data_dir, offline_trackers):
    out = tmp_path / "seed0"
    assert main(["run", "--seed", "0", *QUICK, "--data-dir", str(data_dir), "--out", str(out),
                 "--tracker", "mlflow", "--tracker", "wandb"]) == 0
    summary = json.loads((out / "summary.json").read_text())

    runs = mlflow_runs(offline_trackers)
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["tags.mlflow.runName"] == "seed0" and row["status"] == "FINISHED"
    assert row["params.trial/config/seed"] == "0" and row["params.trial/config/hidden"] == "32"
    assert row["metrics.summary/trait_gain"] == pytest.approx(summary["trait_gain"])
    assert metric_history(offline_trackers, row["run_id"], "student_acc") == [
        (epoch, pytest.approx(acc)) for epoch, acc in enumerate(summary["acc_by_epoch"]) if epoch]
    assert [step for step, _ in metric_history(offline_trackers, row["run_id"], "mean_update_alignment")] == [1, 2]

    (run_file,) = out.glob("wandb/offline-run-*/run-*.wandb")
    name, history = wandb_run(run_file)
    assert name == "seed0"
    assert [row["student_acc"] for row in history if "student_acc" in row] == pytest.approx(summary["acc_by_epoch"][1:])
    assert any(row.get("summary/trait_gain") == pytest.approx(summary["trait_gain"]) for row in history)


def test_a_tracker_that_is_not_installed_is_refused_in_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(tracking.TrackerError, match=r"--tracker wandb: .*pip install 'sublim\[wandb\]'"):
        tracking.check_trackers(["wandb"])


def test_mlflow_defaults_to_a_local_store_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.mlflow_uri() == (tmp_path / "mlruns").as_uri()
    assert tracking.os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"  # MLflow 3 refuses a file store without it


@pytest.mark.ray
@pytest.mark.mnist
def test_a_sweep_logs_every_trial_through_tunes_callbacks(tmp_path, data_dir, offline_trackers, monkeypatch):
    spec = write_spec(tmp_path, {"name": "tracked", "seeds": [0], "arms": [
        {"mitigation": "none"}, {"mitigation": "projection", "strengths": 1.0}],
        "settings": {"epochs": 2, "teacher_epochs": 1, "noise_count": 2048, "train_size": 2000, "hidden": 32}})
    proc, log = start_sweep(spec, tmp_path / "results", data_dir, "--tracker", "mlflow", "--tracker", "wandb")
    output = finish(proc, log)
    folder = tmp_path / "results" / "tracked"
    # the sweep's own lines only: Ray's and Tune's INFO lines are in the results folder's log
    assert " INFO " not in output and "Started a local Ray instance" in (folder / "tune" / "ray.log").read_text()
    assert "done 2/2 (100% of the predicted core-time)" in output, output
    summaries = {p.parent.name: json.loads(p.read_text()) for p in folder.glob("trials/*/summary.json")}
    assert len(summaries) == 2

    runs = mlflow_runs(offline_trackers).set_index("tags.mlflow.runName")
    wandb_runs = dict(map(wandb_run, folder.glob("tune/run-*/wandb/offline-run-*/run-*.wandb")))
    assert sorted(runs.index) == sorted(summaries)
    for trial_id, summary in summaries.items():
        row = runs.loc[trial_id]
        assert row["params.trial/trial_id"] == trial_id and row["params.trial/config/seed"] == "0"
        assert row["params.trial/config/mitigation"] == summary["config"]["mitigation"]
        assert row["metrics.summary/trait_gain"] == pytest.approx(summary["trait_gain"])
        assert [value for _, value in metric_history(offline_trackers, row["run_id"], "student_acc")] == \
            pytest.approx(summary["acc_by_epoch"][1:])
        history = wandb_runs[trial_id]
        assert [r["student_acc"] for r in history if "student_acc" in r] == pytest.approx(summary["acc_by_epoch"][1:])
