"""Sweeps end to end on real MNIST with Ray: smoke, driver crash and resume, two nodes losing one.

Every sweep runs as `sublim sweep` in a subprocess (its own driver, as a user runs it). Trials are
tiny (hidden 64, a few thousand noise images) so that the whole file takes a few minutes on 2 cores;
waits poll files with timeouts, never fixed sleeps.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.mnist]

TINY = {
    "name": "tiny",
    "seeds": [0, 1],
    "arms": [{"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"},
             {"mitigation": "projection", "strengths": 1.0}, {"mitigation": "liminal", "strengths": [1.0]}],
    "settings": {"epochs": 5, "teacher_epochs": 1, "noise_count": 12288, "hidden": 64},
}
EPOCHS = TINY["settings"]["epochs"]
TIMING_FIELDS = ("teacher_seconds", "student_seconds", "seconds")  # the only fields allowed to differ
SWEEP_TIMEOUT_S = 300


def write_spec(folder: Path, spec: dict = TINY) -> Path:
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def start_sweep(spec: Path, storage: Path, data_dir: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = storage.parent / f"sweep-{time.monotonic_ns()}.log"
    command = [sys.executable, "-m", "sublim", "sweep", str(spec), "--storage", str(storage),
               "--data-dir", str(data_dir), *extra]
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def finish(proc: subprocess.Popen, log: Path) -> str:
    try:
        proc.wait(timeout=SWEEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"sweep did not finish in {SWEEP_TIMEOUT_S} s:\n{log.read_text()[-5000:]}")
    output = log.read_text()
    assert proc.returncode == 0, output[-5000:]
    return output


def wait_for(condition, proc: subprocess.Popen, log: Path, what: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"sweep ended (rc {proc.returncode}) before {what}:\n{log.read_text()[-5000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-5000:]}")


def summaries(folder: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in folder.glob("trials/*/summary.json")}


def tune_results(folder: Path, trial_id: str) -> list[dict]:
    """The per-epoch results Tune logged for a trial (appended to across restores)."""
    path = folder / "tune" / trial_id / "result.json"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def tune_state(folder: Path) -> dict[str, tuple[str, int]] | None:
    """trial_id -> (status, epoch of its last checkpoint) from Tune's latest saved experiment state."""
    files = sorted((folder / "tune").glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
    try:
        data = json.loads(files[-1].read_text())
    except (IndexError, OSError, json.JSONDecodeError):
        return None
    state = {}
    for trial_json, run_json in data["trial_data"]:
        trial, run = json.loads(trial_json), json.loads(run_json)
        state[trial["config"]["trial"]["trial_id"]] = (trial["status"], run["last_result"].get("epoch", 0))
    return state


def assert_same_results(folder: Path, reference: Path) -> None:
    ours, theirs = summaries(folder), summaries(reference)
    assert ours.keys() == theirs.keys()
    for trial_id in ours:
        a = {k: v for k, v in ours[trial_id].items() if k not in TIMING_FIELDS}
        b = {k: v for k, v in theirs[trial_id].items() if k not in TIMING_FIELDS}
        assert a == b, trial_id
        pd.testing.assert_frame_equal(pd.read_parquet(folder / "trials" / trial_id / "trace.parquet"),
                                      pd.read_parquet(reference / "trials" / trial_id / "trace.parquet"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """One uninterrupted tiny sweep through `sublim sweep`: (results folder, spec file, output)."""
    root = tmp_path_factory.mktemp("reference")
    spec = write_spec(root)
    proc, log = start_sweep(spec, root / "results", data_dir)
    return root / "results" / "tiny", spec, finish(proc, log)


def test_smoke_sweep_writes_every_trial_and_trains_one_teacher_per_seed(reference):
    folder, spec, output = reference
    sweep = json.loads((folder / "sweep.json").read_text())
    assert (folder / "spec.yaml").read_text() == spec.read_text()
    assert sweep["name"] == "tiny" and sweep["spec"]["seeds"] == [0, 1]
    assert {"python", "torch", "ray", "sublim"} <= sweep["versions"].keys()
    expected = {t["trial_id"]: t for t in sweep["trials"]}
    assert len(expected) == 2 * 4

    found = summaries(folder)
    assert found.keys() == expected.keys()
    for trial_id, summary in found.items():
        assert summary["config"] == expected[trial_id]["config"] and summary["epochs_done"] == EPOCHS
        assert summary["teacher_key"] == expected[trial_id]["teacher_key"]
        trace = pd.read_parquet(folder / "trials" / trial_id / "trace.parquet")
        assert len(trace) == summary["steps"] == EPOCHS * 12

    # Exactly one teacher per seed, reused by all four arms of the seed.
    teacher_files = sorted(p.name for p in (folder / "teachers").glob("teacher-*.pt"))
    keys = {t["teacher_key"] for t in sweep["trials"]}
    assert teacher_files == sorted(f"teacher-{key}.pt" for key in keys) and len(keys) == 2
    # Arms of one seed report the very same teacher (its training time is that one run's).
    assert len({(s["teacher_key"], s["teacher_seconds"]) for s in found.values()}) == 2
    assert "2 teacher(s) (2 trained in this run" in output

    assert "accuracy" in output and "alignment" in output and "done 8/8" in output
    assert output.rstrip().endswith(f"Next: sublim report {folder}")


def test_rerun_of_a_finished_sweep_reruns_nothing(reference, data_dir, tmp_path):
    folder, spec, _ = reference
    before = {p: p.stat().st_mtime_ns for p in folder.glob("trials/*/*")}
    proc, log = start_sweep(spec, folder.parent, data_dir)
    output = finish(proc, log)
    assert "8 of 8 trials finished" in output and "0 trained in this run" in output
    assert {p: p.stat().st_mtime_ns for p in folder.glob("trials/*/*")} == before


def test_local_ray_listens_on_loopback_only_and_reports_no_usage():
    import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
    import psutil
    from ray._common.usage import usage_lib

    from sublim.sweeps.session import ray_session

    names = ("RAY_USAGE_STATS_ENABLED", "TUNE_GLOBAL_CHECKPOINT_S", "RAY_AIR_NEW_OUTPUT",
             "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    environ = {name: os.environ.get(name) for name in names}
    with ray_session(num_cpus=1):
        assert not usage_lib.usage_stats_enabled()
        listening = [(p.name(), c.laddr.ip) for p in psutil.Process().children(recursive=True)
                     for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening  # the GCS and the raylet at least
        assert all(ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for _, ip in listening), listening
    assert {name: os.environ.get(name) for name in names} == environ  # the settings were the session's only


def test_driver_killed_mid_sweep_resumes_to_the_uninterrupted_results(reference, data_dir, tmp_path):
    reference_folder, spec, _ = reference
    storage = tmp_path / "results"
    folder = storage / "tiny"
    proc, log = start_sweep(spec, storage, data_dir)

    def kill_point():
        """Tune saved a state with a finished trial and a running one that reported two epochs or more.

        (Tune registers an epoch's checkpoint just after its result: a state saved in between has
        the result without the checkpoint. Once epoch 2 is in, the checkpoint of epoch 1 is registered.)
        """
        statuses = (tune_state(folder) or {}).values()
        return (any(s == "TERMINATED" for s, _ in statuses) and any(s == "RUNNING" and 2 <= e < EPOCHS
                                                                    for s, e in statuses) and summaries(folder))

    wait_for(kill_point, proc, log, "a finished trial and a checkpointed running one")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    state = tune_state(folder)
    finished_before = {t: p.stat().st_mtime_ns for t in summaries(folder)
                       for p in [folder / "trials" / t / "summary.json"]}
    results_before = {t: len(tune_results(folder, t)) for t in state}
    terminated = [t for t, (status, _) in state.items() if status == "TERMINATED"]
    resumable = {t: epoch for t, (status, epoch) in state.items() if status == "RUNNING" and epoch >= 2}
    assert terminated and resumable

    proc, log = start_sweep(spec, storage, data_dir, "--resume")
    output = finish(proc, log)
    assert "8 of 8 trials finished" in output and "0 trained in this run" in output

    for trial_id in terminated:  # finished trials are not run again at all
        assert len(tune_results(folder, trial_id)) == results_before[trial_id]
    for trial_id in finished_before:  # nor are the ones that finished after Tune's last save: no epoch trained
        new = tune_results(folder, trial_id)[results_before[trial_id]:]
        assert all(r["restored_from_epoch"] == EPOCHS for r in new), new
        assert (folder / "trials" / trial_id / "summary.json").stat().st_mtime_ns == finished_before[trial_id]
    for trial_id, epoch in resumable.items():  # unfinished ones continue from their last epoch checkpoint
        new = tune_results(folder, trial_id)[results_before[trial_id]:]
        if trial_id not in finished_before:
            assert new and new[0]["restored_from_epoch"] in (epoch - 1, epoch), new
            assert new[0]["epoch"] == new[0]["restored_from_epoch"] + 1 and new[-1]["epoch"] == EPOCHS
    assert_same_results(folder, reference_folder)


def test_two_node_sweep_survives_losing_the_worker_node(data_dir, tmp_path):
    from ray.cluster_utils import Cluster

    # Epochs long enough (about half a second) that the worker goes while the chosen trial runs.
    spec = write_spec(tmp_path, {**TINY, "name": "twonode", "settings": {**TINY["settings"], "noise_count": 32768}})
    storage = tmp_path / "results"
    folder = storage / "twonode"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        head_id, worker_id = cluster.head_node.node_id, worker.node_id
        proc, log = start_sweep(spec, storage, data_dir, "--address", cluster.address)

        def running_on_worker():
            """A trial on the worker node with a registered checkpoint (see kill_point) and epochs to go."""
            for trial_dir in (folder / "tune").glob("s*"):
                results = tune_results(folder, trial_dir.name)
                if results and results[-1]["node_id"] == worker_id and 2 <= results[-1]["epoch"] <= EPOCHS - 3:
                    return trial_dir.name
            return None

        victim = wait_for(running_on_worker, proc, log, "a trial running on the worker node")
        epoch_lost_at = tune_results(folder, victim)[-1]["epoch"]
        cluster.remove_node(worker, allow_graceful=False)
        output = finish(proc, log)
    finally:
        cluster.shutdown()

    assert "8 of 8 trials finished" in output
    found = summaries(folder)
    assert len(found) == 8 and all(s["epochs_done"] == EPOCHS for s in found.values())
    nodes = {r["node_id"] for t in found for r in tune_results(folder, t)}
    assert nodes == {head_id, worker_id}  # trials ran on both nodes
    after = [r for r in tune_results(folder, victim) if r["node_id"] == head_id]
    assert after and after[0]["restored_from_epoch"] >= epoch_lost_at - 1 >= 1  # resumed, not restarted
    assert after[-1]["epoch"] == EPOCHS
    assert len(list((folder / "teachers").glob("teacher-*.pt"))) == 2
