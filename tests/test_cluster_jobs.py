"""The cluster path as a user runs it, on this machine: a sweep submitted through Ray's Jobs API to an
autoscaling cluster made of cluster.yaml's own node types.

The cluster is Ray's fake multi-node provider (`RAY_FAKE_CLUSTER=1`, provider type `fake_multinode`),
started as cluster.yaml starts its head (`ray start --head --autoscaling-config=...`): worker nodes are
real raylets on this machine that the autoscaler adds for the sweep's demand and removes when idle.
Node types, min/max workers and every resource but the CPU count (scaled to one per node) come from
cluster.yaml, so the test breaks when the config does. Everything listens on 127.0.0.1; waits poll
cluster state and files, never fixed sleeps.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
import psutil
import yaml
from ray.job_submission import JobStatus, JobSubmissionClient  # the Jobs API: ray[default], a project dependency

from conftest import REPO

pytestmark = [pytest.mark.cluster, pytest.mark.ray, pytest.mark.mnist]

HEAD_TYPE = "ray.head.default"  # the fake provider's name for the head it did not launch
TIMEOUT_S = 300  # a safety net only: every wait is on an event
SPEC = {"name": "clustered", "seeds": [0, 1], "arms": [{"mitigation": "none"}],
        "settings": {"epochs": 1, "teacher_epochs": 1, "noise_count": 2048, "hidden": 64}}
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_cluster_config(cluster: dict, gcs_port: int) -> dict:
    """cluster.yaml's autoscaling part on the fake provider: its node types, one CPU per worker node.

    Workers are scaled down to fit 2 cores (a GPU node keeps its GPU count: fake GPUs, trials placed on
    them run on the CPU). Idle workers go after 3 s, not cluster.yaml's minutes.
    """
    types = cluster["available_node_types"]
    workers = {name: {"resources": {**node["resources"], "CPU": 1, "object_store_memory": 200 * 2**20},
                      "node_config": {}, "min_workers": node["min_workers"], "max_workers": node["max_workers"]}
               for name, node in types.items() if name != cluster["head_node_type"]}
    head = {"resources": types[cluster["head_node_type"]]["resources"], "node_config": {}, "max_workers": 0}
    commands = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands")
    return {"cluster_name": cluster["cluster_name"], "max_workers": cluster["max_workers"],
            "upscaling_speed": cluster["upscaling_speed"], "idle_timeout_minutes": 0.05,
            "provider": {"type": "fake_multinode", "gcs_address": f"127.0.0.1:{gcs_port}",
                         # as Ray's own fake-cluster config: no SSH set-up of nodes, no config-change check, and
                         # nodes told apart by id (all share 127.0.0.1; by address, none is ever seen idle)
                         "disable_node_updaters": True, "disable_launch_config_check": True,
                         "use_node_id_as_ip": True},
            "auth": {"ssh_user": "ubuntu"}, "available_node_types": {**workers, HEAD_TYPE: head},
            "head_node_type": HEAD_TYPE, "file_mounts": {}, "cluster_synced_files": [],
            "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
            **{name: [] for name in commands}}


class FakeCluster:
    """A head started like cluster.yaml's (no CPUs, autoscaler, dashboard on loopback), in its own session."""

    def __init__(self, folder: Path, data_dir: Path):
        self.folder, self.data_dir = folder, data_dir
        self.start()

    def start(self) -> None:
        folder, data_dir = self.folder, self.data_dir
        cluster = yaml.safe_load((REPO / "cluster.yaml").read_text())
        gcs_port, dashboard_port = free_port(), free_port()
        config = folder / "autoscaling.yaml"
        config.write_text(json.dumps(fake_cluster_config(cluster, gcs_port)))
        token = secrets.token_hex(16)
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every node's address is 127.0.0.1 (see sweeps/session.py)
               "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0",
               "SUBLIM_DATA_DIR": str(data_dir), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        self.log = folder / "head.log"
        with self.log.open("a") as out:
            self.head = subprocess.Popen(
                [f"{bin_dir}/ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs_port}",
                 f"--num-cpus={cluster['available_node_types'][cluster['head_node_type']]['resources']['CPU']}",
                 "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", "--object-store-memory=200000000",
                 # not Ray's fixed defaults (52365, 10001), which another Ray on this machine may hold: the Jobs API
                 # needs the head's agent
                 f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
                 f"--autoscaling-config={config}", "--disable-usage-stats"],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.jobs = self.wait(lambda: self._client(dashboard_port, token), "the Jobs API")
        self.wait(lambda: HEAD_TYPE in self.nodes().values(), "the head's raylet")  # it starts after the dashboard

    @staticmethod
    def _client(port: int, token: str) -> JobSubmissionClient | None:
        try:
            return JobSubmissionClient(f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
        except ConnectionError:  # the dashboard is not up yet
            return None

    def wait(self, condition, what: str):
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            assert self.head.poll() is None, f"the head ended before {what}:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}")

    def processes(self) -> list:
        return psutil.Process(self.head.pid).children(recursive=True)

    def nodes(self) -> dict[str, str]:
        """Node id -> node type of every raylet running now (the head's own is HEAD_TYPE)."""
        found = {}
        for process in self.processes():
            try:
                if process.name() != "raylet":
                    continue
                node_id = next(a.split("=", 1)[1] for a in process.cmdline() if a.startswith("--node_id="))
                found[node_id] = process.environ().get("RAY_NODE_TYPE_NAME", HEAD_TYPE)
            except (psutil.Error, StopIteration):  # ended meanwhile
                pass
        return found

    def listening(self) -> set[str]:
        found = set()
        for process in self.processes():
            try:
                found |= {c.laddr.ip for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
            except psutil.Error:
                pass
        return found

    def shutdown(self) -> None:
        """Kill the head and every node process at once (a graceful stop drains for up to 30 s; the worker nodes
        the autoscaler started would outlive the head); their Ray workers end with their raylets."""
        processes = [psutil.Process(self.head.pid), *self.processes()]
        for process in processes:
            try:
                process.kill()
            except psutil.Error:  # ended meanwhile
                pass
        self.head.wait()
        _, alive = psutil.wait_procs(processes, timeout=60)
        assert not alive, [p.pid for p in alive]

    def restart(self) -> None:
        """The head dies and is started again from the same config: every process of the cluster killed at once
        (the head machine's Ray, the driver running there and the job records its GCS held; the worker nodes,
        which on a real cluster end by themselves once the GCS is gone), then a fresh head, with no worker."""
        self.shutdown()
        self.start()

    def driver(self) -> psutil.Process:
        """The job's driver: the process running `sublim sweep` (not the shell of the job's entrypoint, if any)."""
        found = []
        for process in self.processes():
            try:
                args = process.cmdline()
            except psutil.Error:  # ended meanwhile
                continue
            if any(Path(a).name == "sublim" and b == "sweep" for a, b in zip(args, args[1:])):
                found.append(process)
        assert len(found) == 1, found
        return found[0]

    def trials_running(self) -> bool:
        """Whether a trial's Ray worker (an actor of Tune's function trainable) runs on any node."""
        for process in self.processes():
            try:
                if process.cmdline()[:1] and process.cmdline()[0].startswith("ray::ImplicitFunc"):
                    return True
            except psutil.Error:  # ended meanwhile
                pass
        return False

    def job_end(self, job: str, what: str) -> JobStatus:
        """Wait for the job to end: its final status."""
        return self.wait(lambda: (status := self.jobs.get_job_status(job)).is_terminal() and status, what)


@pytest.fixture
def cluster(tmp_path, data_dir):
    cluster = FakeCluster(tmp_path, data_dir)
    try:
        yield cluster
    finally:
        cluster.shutdown()


def submit_sweep(cluster: FakeCluster, tmp_path: Path, spec: dict) -> tuple[Path, dict[str, str]]:
    """Submit the README's command line (only the spec and the storage path differ) on a cluster with no worker;
    wait for the job to succeed: (results folder, node id -> node type of every node seen meanwhile)."""
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    storage = tmp_path / "results"
    assert list(cluster.nodes().values()) == [HEAD_TYPE]  # no worker before the sweep asks for one
    assert cluster.listening() <= LOOPBACK
    job = cluster.jobs.submit_job(entrypoint=f"sublim sweep {path} --storage {storage} --address auto")

    seen: dict[str, str] = {}

    def finished():
        nodes = cluster.nodes()
        if len(nodes) > 1:
            assert cluster.listening() <= LOOPBACK  # the nodes the autoscaler added too
        seen.update(nodes)
        status = cluster.jobs.get_job_status(job)
        return status if status.is_terminal() else None

    status = cluster.wait(finished, "the job to end")
    logs = cluster.jobs.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-5000:]
    trials = len(spec["seeds"]) * len(spec["arms"])
    assert f"{trials} of {trials} trials finished" in logs
    return storage / spec["name"], seen


def tune_results(folder: Path) -> list[dict]:
    return [json.loads(line) for path in (folder / "tune").glob("run-*/*/result.json")
            for line in path.read_text().splitlines()]


def test_a_submitted_sweep_scales_workers_up_from_zero_runs_on_them_and_they_go_when_idle(cluster, tmp_path):
    folder, seen = submit_sweep(cluster, tmp_path, SPEC)
    workers = {node for node, kind in seen.items() if kind != HEAD_TYPE}
    assert workers and {seen[node] for node in workers} == {"cpu_worker"}  # added for the demand, CPU type only
    ran_on = {r["node_id"] for r in tune_results(folder)}
    assert ran_on and ran_on <= workers  # the head ran no trial
    assert len(list(folder.glob("trials/*/summary.json"))) == 2

    report = subprocess.run([sys.executable, "-m", "sublim", "report", str(folder)], capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]

    cluster.wait(lambda: list(cluster.nodes().values()) == [HEAD_TYPE], "idle workers to be removed")


def test_gpu_fraction_trials_go_to_the_gpu_node_type_at_most_four_per_gpu(cluster, tmp_path):
    spec = {**SPEC, "name": "fractions", "seeds": [0, 1, 2, 3, 4], "resources": {"cpus": 0.25, "gpus": 0.25}}
    folder, seen = submit_sweep(cluster, tmp_path, spec)
    results = tune_results(folder)
    ran_on = {r["node_id"] for r in results}
    assert ran_on and {seen[node] for node in ran_on} == {"gpu_worker"}
    assert len(ran_on) < len(spec["seeds"])  # fractions share a GPU node
    spans: dict[str, list[tuple[float, float]]] = {}  # node id -> each trial's (start, end) there
    for r in results:
        spans.setdefault(r["node_id"], []).append((r["time_started"], r["time_ended"]))
    for node, intervals in spans.items():  # a node has one (fake) GPU: at most four trials on it at any time
        assert max(sum(lo <= start < hi for lo, hi in intervals) for start, _ in intervals) <= 4, node
    summaries = [json.loads(p.read_text()) for p in folder.glob("trials/*/summary.json")]
    assert len(summaries) == 5 and {s["ran_on"]["device"] for s in summaries} == {"cpu"}  # no CUDA here


INTERRUPTED = {**SPEC, "name": "interrupted",
               "arms": [{"mitigation": "none"}, {"mitigation": "projection", "strengths": 1.0}],
               "settings": {**SPEC["settings"], "epochs": 20}}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_dir) -> Path:
    """INTERRUPTED swept once on a private local Ray, uninterrupted: its results folder."""
    from test_sweep_ray import finish, start_sweep, write_spec

    root = tmp_path_factory.mktemp("uninterrupted")
    finish(*start_sweep(write_spec(root, INTERRUPTED), root / "results", data_dir))
    return root / "results" / INTERRUPTED["name"]


def stop_job(cluster: FakeCluster, job: str) -> None:
    """`ray job stop`: the driver is told to stop (SIGTERM), stops its trials and removes its lock; the job is given
    all the time it takes (see STOP_WAIT_S)."""
    cluster.jobs.stop_job(job)
    assert cluster.job_end(job, "the job to stop") == JobStatus.STOPPED


def stop_job_at_once(cluster: FakeCluster, job: str) -> None:
    """`ray job stop` where Ray kills the driver before it has shut down (its stop wait is over before the driver
    is): a killed driver, left unreaped where nothing reaps it (a zombie), whose lock stays behind."""
    stop_job(cluster, job)


STOP_WAIT_S = {stop_job: TIMEOUT_S, stop_job_at_once: 0}  # RAY_JOB_STOP_WAIT_TIME_S in the first job's environment


def kill_driver(cluster: FakeCluster, job: str) -> None:
    """The driver's process killed (SIGKILL): its lock stays behind, and Ray ends the job and its trials."""
    cluster.driver().kill()
    assert cluster.job_end(job, "the job to fail") == JobStatus.FAILED


def kill_head(cluster: FakeCluster, job: str) -> None:
    """The head dies (the driver with it), and is started again from the same config."""
    cluster.restart()


@pytest.mark.parametrize("interrupt", [stop_job, stop_job_at_once, kill_driver, kill_head],
                         ids=["job_stopped", "job_stopped_at_once", "driver_killed", "head_killed"])
def test_an_interrupted_job_submitted_again_continues_and_ends_with_an_uninterrupted_runs_numbers(
        cluster, tmp_path, uninterrupted, interrupt):
    from test_sweep_ray import assert_same_results, checkpoint_epoch_or_none, write_spec

    epochs = INTERRUPTED["settings"]["epochs"]
    trials = len(INTERRUPTED["seeds"]) * len(INTERRUPTED["arms"])
    folder = tmp_path / "results" / INTERRUPTED["name"]
    # Seed 0's trials finish in a first job; the job interrupted grows the folder by seed 1, whose trials run side
    # by side: the interrupt then finds finished trials and running ones between checkpoints however loaded the
    # machine (trials that all run at once finish within a second of each other).
    path = write_spec(tmp_path, {**INTERRUPTED, "seeds": INTERRUPTED["seeds"][:1]})
    command = f"sublim sweep {path} --storage {folder.parent} --address auto"
    assert cluster.job_end(cluster.jobs.submit_job(entrypoint=command), "the first job to end") == JobStatus.SUCCEEDED
    write_spec(tmp_path, INTERRUPTED)
    stop_wait = {"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S[interrupt])}} if interrupt in STOP_WAIT_S \
        else None
    job = cluster.jobs.submit_job(entrypoint=command, runtime_env=stop_wait)

    def interrupt_point():
        """A running trial checkpointed with over half its epochs to go (read from its own checkpoint): a killed
        driver's trials may run on for seconds before Ray ends them, and must not finish meanwhile."""
        assert not cluster.jobs.get_job_status(job).is_terminal(), cluster.jobs.get_job_logs(job)[-3000:]
        return [p.parent.name for p in folder.glob("trials/*/checkpoint.pt")
                if 1 <= (checkpoint_epoch_or_none(folder, p.parent.name) or 0) < epochs // 2] or None

    cluster.wait(interrupt_point, "a checkpointed running trial")
    finished = {p.parent.name: p.stat().st_mtime_ns for p in folder.glob("trials/*/summary.json")}
    assert finished
    interrupt(cluster, job)
    cluster.wait(lambda: not cluster.trials_running(), "the interrupted job's trials to end")
    resumable = {p.parent.name: checkpoint_epoch_or_none(folder, p.parent.name)
                 for p in folder.glob("trials/*/checkpoint.pt")}
    resumable = {trial: epoch for trial, epoch in resumable.items() if epoch}
    assert resumable
    # A killed driver leaves its lock behind: the next one takes it over. A stopped job's driver removes its lock.
    left = (folder / "driver.lock").exists()
    assert left == (interrupt is not stop_job)

    again = cluster.jobs.submit_job(entrypoint=command)  # the same command
    status = cluster.job_end(again, "the second job to end")
    logs = cluster.jobs.get_job_logs(again)
    assert status == JobStatus.SUCCEEDED and f"{trials} of {trials} trials finished" in logs, logs[-5000:]
    assert left == ("taking over the lock of driver" in logs and "(its process is no longer running)" in logs)
    for trial, mtime in finished.items():  # finished trials are not rerun
        assert (folder / "trials" / trial / "summary.json").stat().st_mtime_ns == mtime
    second_run = sorted((folder / "tune").glob("run-*"))[-1]
    assert not {p.parent.name for p in second_run.glob("*/result.json")} & finished.keys()
    restored = {trial: json.loads((second_run / trial / "result.json").read_text().splitlines()[0])
                ["restored_from_epoch"] for trial in resumable if (second_run / trial / "result.json").exists()}
    # Unfinished ones continue from their checkpoints (an interrupted trial may have finished as it went).
    assert restored and all(restored[trial] >= resumable[trial] for trial in restored)
    assert_same_results(folder, uninterrupted)
