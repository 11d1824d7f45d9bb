"""Sweeps end to end on real MNIST with Ray: smoke, driver crash and resume, two nodes losing one.

Every sweep runs as `sublim sweep` in a subprocess (its own driver, as a user runs it). Trials are
tiny (hidden 64, a few thousand noise images) so that the whole file takes a few minutes on 2 cores;
waits poll files with timeouts, never fixed sleeps.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sublim.core.config import TrialConfig

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
SWEEP_TIMEOUT_S = 900  # a safety net only: every wait is on an event


def write_spec(folder: Path, spec: dict = TINY) -> Path:
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# `sublim` as `python -m sublim` runs it, writing the names of every module the driver imported to the file given first.
RECORDING_MODULES = ("import atexit, runpy, sys; out = sys.argv.pop(1); "
                     "atexit.register(lambda: open(out, 'w').write('\\n'.join(sorted(sys.modules)))); "
                     "runpy.run_module('sublim', run_name='__main__', alter_sys=True)")


def start_sweep(spec: Path, storage: Path, data_dir: Path, *extra: str,
                modules_to: Path | None = None) -> tuple[subprocess.Popen, Path]:
    """`sublim sweep` in a subprocess; with `modules_to`, that file gets the modules its driver imported."""
    log = storage.parent / f"sweep-{time.monotonic_ns()}.log"
    python = [sys.executable, *(("-c", RECORDING_MODULES, str(modules_to)) if modules_to else ("-m", "sublim"))]
    command = [*python, "sweep", str(spec), "--storage", str(storage), "--data-dir", str(data_dir), *extra]
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def finish(proc: subprocess.Popen, log: Path, returncode: int = 0) -> str:
    try:
        proc.wait(timeout=SWEEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"sweep did not finish in {SWEEP_TIMEOUT_S} s:\n{log.read_text()[-5000:]}")
    output = log.read_text()
    assert proc.returncode == returncode, output[-5000:]
    return output


def wait_for(condition, proc: subprocess.Popen, log: Path, what: str, timeout: float = 900):
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
    """The per-epoch results Tune logged for a trial, over every invocation of the sweep in turn."""
    runs = sorted((folder / "tune").glob(f"run-*/{trial_id}/result.json"), key=lambda p: p.parent.parent.name)
    return [json.loads(line) for path in runs for line in path.read_text().splitlines()]


def checkpoint_epoch(folder: Path, trial_id: str) -> int | None:
    """The epoch of a trial's checkpoint in the results folder (None without one)."""
    import torch

    path = folder / "trials" / trial_id / "checkpoint.pt"
    return torch.load(path, weights_only=True)["epoch"] if path.exists() else None


def checkpoint_epoch_or_none(folder: Path, trial_id: str) -> int | None:
    """`checkpoint_epoch`, or None when the checkpoint went (its trial finished) while being read."""
    try:
        return checkpoint_epoch(folder, trial_id)
    except (FileNotFoundError, RuntimeError, EOFError):
        return None


EXPLOIT = "exploit-ran"


def plant_pickles(folder: Path, marker: Path) -> int:
    """Overwrite every pickle in the folder, and tune/tuner.pkl, with one that would create `marker` if loaded."""
    import pickle

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Exploit())
    targets = set(folder.rglob("*.pkl")) | {folder / "tune" / "tuner.pkl"}
    for path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    return len(targets)


def started_by(proc: subprocess.Popen) -> list:
    """Every process a driver started (Ray's among them), now."""
    import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
    import psutil

    return psutil.Process(proc.pid).children(recursive=True)


def assert_all_end(processes: list, when: str) -> None:
    """Within a minute: no Ray process outlives its driver by more."""
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=60)
    assert not alive, f"still running a minute {when}: {[p.pid for p in alive]}"


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
    """One uninterrupted tiny sweep through `sublim sweep`: (results folder, spec file, output); the modules its
    driver imported are in driver-modules.txt beside the spec."""
    root = tmp_path_factory.mktemp("reference")
    spec = write_spec(root)
    proc, log = start_sweep(spec, root / "results", data_dir, modules_to=root / "driver-modules.txt")
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
        assert summary["ran_on"] == {"device": "cpu", "threads": 1}  # one CPU per trial, one thread
        trace = pd.read_parquet(folder / "trials" / trial_id / "trace.parquet")
        assert len(trace) == summary["steps"] == EPOCHS * 12

    # Exactly one teacher per seed, reused by all four arms of the seed.
    teacher_files = sorted(p.name for p in (folder / "teachers").glob("teacher-*.pt"))
    keys = {t["teacher_key"] for t in sweep["trials"]}
    assert teacher_files == sorted(f"teacher-{key}.pt" for key in keys) and len(keys) == 2
    # Arms of one seed report the very same teacher (its training time is that one run's).
    assert len({(s["teacher_key"], s["teacher_seconds"]) for s in found.values()}) == 2
    assert "2 teacher(s) (2 trained in this run" in output
    # Each seed's distillation targets were built by one trial; every other arm, on either worker, reused them.
    built = [t for t in found if tune_results(folder, t)[-1]["targets_built"]]
    assert sorted(expected[t]["config"]["seed"] for t in built) == [0, 1], built
    assert output.count("  teacher of seed") == 2 and "of the cores' time" in output  # where the time went

    assert "done 8/8 (100% of the predicted core-time)" in output and ", ETA " in output
    assert " INFO " not in output  # Ray's and Tune's log lines go to tune/ray.log
    assert "Token authentication" not in output  # Ray's warning at every start, explained in the README instead
    assert output.rstrip().endswith(f"Next: sublim report {folder}")


def test_the_driver_never_imports_torch(reference):
    """Trials load torch in Ray's workers; the driver (MNIST, Tune's loop, the live table) stays without its 700 MB."""
    folder, spec, output = reference
    modules = set((spec.parent / "driver-modules.txt").read_text().split())
    assert {"ray.tune", "sublim.sweeps.tune_run", "sublim.core.mnist"} <= modules  # the record is the sweep's
    assert not {"torch", "torchvision", "sublim.trainable", "sublim.sweeps.worker"} & modules
    assert "8 of 8 trials finished" in output


def test_rerun_of_a_finished_sweep_reruns_nothing(reference, data_dir, tmp_path):
    folder, spec, _ = reference
    before = {p: p.stat().st_mtime_ns for p in folder.glob("trials/*/*")}
    proc, log = start_sweep(spec, folder.parent, data_dir)
    output = finish(proc, log)
    assert "8 of 8 trials finished" in output and "0 trained in this run" in output
    assert {p: p.stat().st_mtime_ns for p in folder.glob("trials/*/*")} == before


def test_local_ray_listens_on_loopback_only_reports_no_usage_and_serves_no_dashboard():
    import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
    import psutil
    from ray._common.usage import usage_lib
    from ray._private.worker import get_dashboard_url

    from sublim.sweeps.session import ray_session

    names = ("RAY_USAGE_STATS_ENABLED", "RAY_AIR_NEW_OUTPUT", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS",
             "TUNE_GLOBAL_CHECKPOINT_S", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    environ = {name: os.environ.get(name) for name in names}
    with ray_session(num_cpus=1):
        assert not usage_lib.usage_stats_enabled()
        assert not get_dashboard_url()  # no web UI (its agent and a head without it start regardless, with Ray)
        listening = [(p.name(), c.laddr.ip) for p in psutil.Process().children(recursive=True)
                     for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening  # the GCS and the raylet at least
        assert all(ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for _, ip in listening), listening
    assert {name: os.environ.get(name) for name in names} == environ  # the settings were the session's only


def test_driver_killed_mid_sweep_resumes_from_its_own_checkpoints_and_never_unpickles(reference, data_dir, tmp_path):
    reference_folder, spec, _ = reference
    storage = tmp_path / "results"
    folder = storage / "tiny"
    proc, log = start_sweep(spec, storage, data_dir)

    def kill_point():
        """A finished trial, and a running one checkpointed at epoch 2 or later with epochs to go (read from its
        own checkpoint: Tune's logs lag the trials)."""
        if not summaries(folder):
            return None
        running = [path.parent.name for path in folder.glob("trials/*/checkpoint.pt")
                   if 2 <= (checkpoint_epoch_or_none(folder, path.parent.name) or 0) < EPOCHS - 1]
        return running or None

    wait_for(kill_point, proc, log, "a finished trial and a checkpointed running one")
    ray_processes = started_by(proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert_all_end(ray_processes, "after the driver was killed")

    finished_before = {t: (folder / "trials" / t / "summary.json").stat().st_mtime_ns for t in summaries(folder)}
    resumable = {t["trial_id"]: checkpoint_epoch(folder, t["trial_id"]) for t in
                 json.loads((folder / "sweep.json").read_text())["trials"]}
    resumable = {t: epoch for t, epoch in resumable.items() if epoch}
    assert finished_before and resumable
    marker = tmp_path / EXPLOIT
    assert plant_pickles(folder, marker) >= 1  # Tune's state is no input: crafted pickles there never run

    proc, log = start_sweep(spec, storage, data_dir, "--resume")
    output = finish(proc, log)
    assert "8 of 8 trials finished" in output and "0 trained in this run" in output
    assert "taking over the lock of driver" in output and "(its process is no longer running)" in output
    assert not marker.exists()

    second_run = sorted((folder / "tune").glob("run-*"))[-1]
    rerun = {p.parent.name for p in second_run.glob("*/result.json")}
    assert not rerun & finished_before.keys()  # finished trials are not run again at all
    for trial_id, mtime in finished_before.items():
        assert (folder / "trials" / trial_id / "summary.json").stat().st_mtime_ns == mtime
    for trial_id, epoch in resumable.items():  # unfinished ones continue from their own last checkpoint
        if trial_id in rerun:  # (the killed driver's workers may still finish an epoch or the trial before they go)
            new = [json.loads(line) for line in (second_run / trial_id / "result.json").read_text().splitlines()]
            assert new[0]["restored_from_epoch"] >= epoch and new[0]["epoch"] == new[0]["restored_from_epoch"] + 1
            assert new[-1]["epoch"] == EPOCHS
    assert rerun and all(r["restored_from_epoch"] >= 1 for t in rerun & resumable.keys()
                         for r in [json.loads((second_run / t / "result.json").read_text().splitlines()[0])])
    assert not list(folder.glob("trials/*/checkpoint.pt"))  # a finished trial keeps no checkpoint
    assert_same_results(folder, reference_folder)


def test_sigterm_stops_the_driver_like_ctrl_c_and_ray_ends_with_it(data_dir, tmp_path):
    spec = write_spec(tmp_path, {**TINY, "name": "term", "seeds": [0], "arms": TINY["arms"][:2],
                                 "settings": {**TINY["settings"], "epochs": 50}})
    folder = tmp_path / "results" / "term"
    proc, log = start_sweep(spec, folder.parent, data_dir)
    wait_for(lambda: list(folder.glob("trials/*/checkpoint.pt")), proc, log, "a trial's first checkpoint")
    ray_processes = started_by(proc)
    os.kill(proc.pid, signal.SIGTERM)
    output = finish(proc, log, returncode=143)
    assert "SIGTERM received" not in output and "Tuner.restore" not in output and "Traceback" not in output
    # stopped in the first of 50 epochs: no trial has finished, so the closing paragraph offers no report
    assert output.rstrip().endswith("No trial has a result yet, so there is nothing to report.")
    assert f"continue or retry them with: sublim sweep {spec} --storage {folder.parent} --name term --resume" in output
    assert list(folder.glob("trials/*/checkpoint.pt")) and not (folder / "driver.lock").exists()
    assert_all_end(ray_processes, "after the driver stopped")


def test_damaged_results_are_repaired_and_tune_state_is_disposable(reference, data_dir, tmp_path):
    reference_folder, spec, _ = reference
    folder = tmp_path / "results" / "tiny"
    shutil.copytree(reference_folder, folder)
    trials = sorted(summaries(folder))
    truncated, untraced, foreign, fifo, linked = trials[0], trials[1], trials[2], trials[4], trials[5]
    summary = folder / "trials" / truncated / "summary.json"
    summary.write_text(summary.read_text()[:100])  # a crash of some other writer, say
    (folder / "trials" / untraced / "trace.parquet").unlink()
    other = json.loads((folder / "trials" / trials[3] / "summary.json").read_text())
    (folder / "trials" / foreign / "summary.json").write_text(json.dumps(other))  # another trial's result
    (folder / "trials" / fifo / "summary.json").unlink()
    os.mkfifo(folder / "trials" / fifo / "summary.json")  # reading it would block for ever
    theirs = tmp_path / "their-summary.json"
    os.replace(folder / "trials" / linked / "summary.json", theirs)
    (folder / "trials" / linked / "summary.json").symlink_to(theirs)  # never followed, never deleted
    their_bytes = theirs.read_bytes()
    recorded = json.loads((folder / "sweep.json").read_text())["trials"]
    teachers = {t["trial_id"][:4]: t["teacher_key"] for t in recorded}  # s000 and s001
    for key in teachers.values():
        (folder / "teachers" / f"teacher-{key}.pt").write_bytes(b"not a teacher")
    for state in (folder / "tune").rglob("experiment_state-*.json"):
        state.write_text(state.read_text()[:50])
    marker = tmp_path / EXPLOIT
    plant_pickles(folder, marker)

    proc, log = start_sweep(spec, folder.parent, data_dir)
    output = finish(proc, log)
    assert not marker.exists()
    repaired = {line.split()[1].rstrip(":") for line in output.splitlines() if line.startswith("repairing ")}
    assert repaired == {truncated, untraced, foreign, fifo, linked}, output
    assert f"repairing {fifo}: summary.json is not a regular file" in output
    assert f"repairing {linked}: summary.json is a symbolic link" in output and theirs.read_bytes() == their_bytes
    assert "8 of 8 trials finished" in output and "(2 trained in this run" in output  # the damaged teachers
    for seed, key in teachers.items():  # a teacher is loaded only when a pending trial needs it
        needed = any(t.startswith(seed) for t in repaired)
        assert (f"teacher-{key}.pt unusable" in output) == needed
        assert (folder / "teachers" / f"teacher-{key}.pt.bad").exists() == needed
    assert_same_results(folder, reference_folder)


def test_a_diverging_trial_is_recorded_once_and_never_retried(data_dir, tmp_path):
    spec = write_spec(tmp_path, {**TINY, "name": "diverge", "seeds": [0], "arms": [{"mitigation": "none"}],
                                 "settings": {**TINY["settings"], "lr": 1e30}})
    storage = tmp_path / "results"
    proc, log = start_sweep(spec, storage, data_dir)
    proc.wait(timeout=SWEEP_TIMEOUT_S)
    output = log.read_text()
    assert proc.returncode == 2 and "1 trial(s) diverged, e.g. s000-none-shared" in output, output[-3000:]
    assert output.rstrip().endswith("No trial has a result yet, so there is nothing to report.")  # every one diverged
    record = json.loads((storage / "diverge" / "trials" / "s000-none-shared" / "diverged.json").read_text())
    assert record["model"] == "student" and record["config"]["lr"] == 1e30 and "not finite" in record["message"]
    assert len(tune_results(storage / "diverge", "s000-none-shared")) == 1  # one attempt: no retry

    proc, log = start_sweep(spec, storage, data_dir)
    proc.wait(timeout=SWEEP_TIMEOUT_S)
    assert proc.returncode == 2 and "0 of 1 trials finished" in log.read_text()
    assert len(list((storage / "diverge" / "tune").glob("run-*"))) == 1  # nothing was run again


def test_a_diverging_teacher_stops_every_arm_of_its_seed_and_leaves_its_record(data_dir, tmp_path):
    spec = write_spec(tmp_path, {**TINY, "name": "teacher", "seeds": [0],
                                 "arms": [{"mitigation": "none"}, {"mitigation": "projection", "strengths": 1.0}],
                                 "settings": {**TINY["settings"], "teacher_lr": 1e30}})
    storage = tmp_path / "results"
    proc, log = start_sweep(spec, storage, data_dir)
    proc.wait(timeout=SWEEP_TIMEOUT_S)
    assert proc.returncode == 2 and "2 trial(s) diverged" in log.read_text(), log.read_text()[-3000:]
    folder = storage / "teacher"
    records = [json.loads((folder / "trials" / t / "diverged.json").read_text())
               for t in ("s000-none-shared", "s000-projection@1-shared")]
    assert [r["model"] for r in records] == ["teacher", "teacher"] and records[0]["step"] == records[1]["step"]
    key = TrialConfig.from_dict(records[0]["config"]).teacher_key
    assert [p.name for p in (folder / "teachers").iterdir()] == [f"teacher-{key}.diverged.json"]  # no teacher

def listening_addresses() -> set[str]:
    """The addresses that processes started by this test process listen on."""
    import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
    import psutil

    found = set()
    for process in psutil.Process().children(recursive=True):
        try:
            found |= {c.laddr.ip for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:  # a process that ended meanwhile
            pass
    return found


def node_processes(node) -> list:
    """A node's raylet and every process it started (its trials among them)."""
    import psutil

    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    return [raylet, *raylet.children(recursive=True)]


def running_on(node, trial_ids: set[str]) -> str | None:
    """The trial among `trial_ids` that a process of `node` is running (Tune runs it in its own folder)."""
    import psutil

    for process in node_processes(node):
        try:
            name = Path(process.cwd()).name
        except psutil.Error:  # ended meanwhile, or not ours to read
            continue
        if name in trial_ids:
            return name
    return None


def freeze(node) -> None:
    """Suspend a node's raylet and every process it started: its trials stop where they are."""
    for process in node_processes(node):
        process.suspend()


def test_two_node_sweep_survives_losing_the_worker_node(data_dir, tmp_path):
    from ray.cluster_utils import Cluster

    epochs = 20  # a trial on the worker is frozen at its first epochs: it has many to go
    spec = write_spec(tmp_path, {**TINY, "name": "twonode", "settings": {**TINY["settings"], "epochs": epochs,
                                                                          "noise_count": 4096}})
    storage = tmp_path / "results"
    folder = storage / "twonode"
    loopback = {"node_ip_address": "127.0.0.1", "num_cpus": 1}
    cluster = Cluster(initialize_head=True, head_node_args={**loopback, "include_dashboard": False})
    try:
        worker = cluster.add_node(**loopback)
        cluster.wait_for_nodes()
        assert listening_addresses() <= {"127.0.0.1", "::ffff:127.0.0.1"}  # every Ray node on loopback only
        head_id = cluster.head_node.node_id
        proc, log = start_sweep(spec, storage, data_dir, "--address", cluster.address)

        def checkpointed_on_worker():
            """A trial with a checkpoint whose process runs on the worker node, known from that process's own
            working directory (Tune's per-trial folder, named by the trial id): no lagging log involved."""
            trial = running_on(worker, {p.parent.name for p in folder.glob("trials/*/checkpoint.pt")})
            return trial if trial and (folder / "trials" / trial / "checkpoint.pt").exists() else None

        victim = wait_for(checkpointed_on_worker, proc, log, "a trial on the worker node with a checkpoint")
        freeze(worker)  # the event: the victim is mid-run from here on, however loaded the machine
        frozen_at = checkpoint_epoch(folder, victim)
        assert 1 <= frozen_at < epochs and not (folder / "trials" / victim / "summary.json").exists()
        cluster.remove_node(worker, allow_graceful=False)
        output = finish(proc, log)
    finally:
        cluster.shutdown()

    assert "8 of 8 trials finished" in output
    found = summaries(folder)
    assert len(found) == 8 and all(s["epochs_done"] == epochs for s in found.values())
    # (The victim ran on the worker: its process there was found and frozen. Tune's own log may not hold
    # the worker's last results: under load the driver logs them late, and the node went first.)
    after = [r for r in tune_results(folder, victim) if r["node_id"] == head_id]
    # Resumed from its checkpoint, not restarted: from the epoch it had when frozen (or a later one, should its
    # last write have landed as the node went).
    assert after and after[0]["restored_from_epoch"] >= frozen_at >= 1
    assert after[-1]["epoch"] == epochs
    assert len(list((folder / "teachers").glob("teacher-*.pt"))) == 2


def test_a_grown_spec_runs_only_the_added_trials_and_keeps_earlier_outputs_byte_identical(reference, data_dir,
                                                                                           tmp_path):
    reference_folder, _, _ = reference
    folder = tmp_path / "results" / "tiny"
    shutil.copytree(reference_folder, folder)
    before = {p: p.read_bytes() for p in (folder / "trials").rglob("*") if p.is_file()}
    before.update({p: p.read_bytes() for p in (folder / "teachers").glob("*.pt")})
    grown = write_spec(tmp_path, {**TINY, "seeds": [0, 1, 2], "arms": [*TINY["arms"], {"mitigation": "placebo",
                                                                                        "strengths": 1.0}]})
    proc, log = start_sweep(grown, folder.parent, data_dir)
    output = finish(proc, log)
    assert "extending sweep tiny" in output and "by 7 trial(s)" in output
    assert "15 of 15 trials finished" in output and "(1 trained in this run" in output  # seed 2's teacher only
    assert {p: p.read_bytes() for p in before} == before
    run = sorted((folder / "tune").glob("run-*"))[-1]
    ran = {p.parent.name for p in run.glob("*/result.json")}
    assert ran == {t for t in summaries(folder) if t.startswith("s002") or "placebo" in t} and len(ran) == 7
    sweep = json.loads((folder / "sweep.json").read_text())
    assert len(sweep["trials"]) == 15 and sweep["extensions"][0]["added"] == sorted(ran, key=[
        t["trial_id"] for t in sweep["trials"]].index)


def test_until_resolved_grows_a_real_sweep_in_waves_and_records_its_design(data_dir, tmp_path):
    spec = write_spec(tmp_path, {**TINY, "name": "waves", "seeds": [0, 1, 2], "arms": [{"mitigation": "none"}],
                                 "settings": {**TINY["settings"], "epochs": 2, "noise_count": 2048}})
    storage = tmp_path / "results"
    proc, log = start_sweep(spec, storage, data_dir, "--until-resolved", "--max-seeds", "6", "--wave", "3")
    output = finish(proc, log)
    record = json.loads((storage / "waves" / "sweep.json").read_text())["sequential"]
    assert "group-sequential design" in output and f"stopped: {record['stopped']}" in output
    assert record["design"]["seeds"] == [3, 6] and [w["seeds"] for w in record["waves"]][0] == 3
    ran = len(record["waves"]) * 3
    assert len(summaries(storage / "waves")) == ran and f"{ran} of {ran} trials finished" in output
    assert output.count("started in") == 1 and output.count("already running") == len(record["waves"])  # one Ray


def test_trials_given_a_gpu_fraction_run_on_cuda(data_dir, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    spec = write_spec(tmp_path, {**TINY, "name": "gpu", "resources": {"cpus": 1, "gpus": 0.25}})
    proc, log = start_sweep(spec, tmp_path / "results", data_dir)
    output = finish(proc, log)
    found = summaries(tmp_path / "results" / "gpu")
    assert len(found) == 8 and "8 of 8 trials finished" in output
    assert {s["ran_on"]["device"] for s in found.values()} == {"cuda:0"}
