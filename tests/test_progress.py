"""The progress line: done/total, the share of the predicted core-time done and an ETA corrected by measured trial
times; a trial that no node of the cluster can place shows as waiting for resources, naming what it needs, and is
never counted as pending or done."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.execution.placement_groups import PlacementGroupFactory

from sublim.core.durations import duration_text
from sublim.sweeps.progress import SweepProgress


def trial(trial_id: str, status: str, gpus: float = 0.0, **result) -> SimpleNamespace:
    return SimpleNamespace(status=status, last_result=result,
                           config={"trial": {"trial_id": trial_id, "config": {"epochs": 5}}},
                           placement_group_factory=PlacementGroupFactory([{"CPU": 1.0, "GPU": gpus}]))


def progress(name: str, costs: dict[str, float], done_before: tuple[str, ...] = (), slots: float = 1) -> SweepProgress:
    return SweepProgress(name, costs, set(costs) - set(done_before), slots)


def test_trials_no_node_can_place_show_as_waiting_never_done():
    ids = ("s000-none-shared", "s001-none-shared", "s002-none-shared")
    line = progress("gpu", dict.fromkeys(ids, 10.0))
    trials = [trial(trial_id, "PENDING", gpus=1) for trial_id in ids]
    nodes = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 1.0}]
    header, waiting = line.render(trials, nodes).splitlines()
    assert header.endswith("running 0, pending 0, failed 0, waiting for resources 3"), header
    assert waiting == ("  waiting for resources: s000-none-shared (and 2 more) needs 1 CPU, 1 GPU, which no node has "
                       "(nodes: 2 CPU, 0 GPU; 1 CPU, 0 GPU); it starts when such a node joins")
    nodes.append({"CPU": 4.0, "GPU": 1.0})  # a GPU node joined: the trials only wait for their turn
    assert "waiting" not in line.render(trials, nodes) and "pending 3" in line.render(trials, nodes)


def test_trials_tune_ended_before_their_last_epoch_are_stopped_not_done():
    ids = ("s000-none-shared", "s001-none-shared", "s002-none-shared")
    trials = [trial(ids[0], "TERMINATED", epoch=5), trial(ids[1], "TERMINATED", epoch=2), trial(ids[2], "TERMINATED")]
    assert progress("stop", dict.fromkeys(ids, 1.0)).render(trials).endswith(
        "running 0, pending 0, failed 0, stopped 2")
    assert "done 1/1" in progress("d", {"s003-none-shared": 1.0}).render(
        [trial("s003-none-shared", "TERMINATED", diverged="x")])


def test_the_line_counts_done_trials_and_their_predicted_core_time_with_the_models_eta_before_any_finished():
    costs = {"a": 30.0, "b": 10.0, "c": 60.0, "d": 100.0}  # "a" finished in an earlier run
    line = progress("p", costs, done_before=("a",), slots=2)
    trials = [trial("b", "RUNNING", epoch=1), trial("c", "PENDING"), trial("d", "PENDING")]
    # done: a, and a fifth of b; left: 8 + 60 + 100 = 168 core-seconds, 84 s on 2 slots at the model's rate, but
    # never less than the longest trial left (d, 100 s)
    assert line.render(trials).split("] ", 1)[1] == (
        "done 1/4 (16% of the predicted core-time), ETA 1 min 40 s; running 1, pending 2, failed 0")


def test_the_eta_is_corrected_by_the_measured_times_of_finished_trials():
    costs = {"a": 10.0, "b": 10.0, "c": 40.0}
    line = progress("p", costs, slots=1)
    # "a" took 3x its predicted 10 s: the 40 s left of "c" and half of "b" are predicted at 3x too
    trials = [trial("a", "TERMINATED", epoch=5, time_started=100.0, time_ended=130.0),
              trial("b", "RUNNING", epoch=2), trial("c", "PENDING")]
    assert line.eta(trials) == 3 * (6 + 40)
    assert "done 1/3 (23% of the predicted core-time), ETA 2 min 18 s" in line.render(trials)
    # a single trial left is not shared by the slots: it takes as long as it takes
    assert progress("p", {"x": 100.0}, slots=4).eta([trial("x", "PENDING")]) == 100


def test_durations_read_in_seconds_minutes_or_hours():
    assert [duration_text(s) for s in (0.4, 42, 425, 2520, 11100)] == ["0 s", "42 s", "7 min 5 s", "42 min",
                                                                        "3 h 5 min"]


def test_trials_tune_has_not_created_yet_count_as_pending_with_all_their_cost_left():
    costs = {"a": 10.0, "b": 10.0, "c": 40.0, "d": 40.0}  # Tune has created a and b only
    line = progress("p", costs, slots=2)
    trials = [trial("a", "TERMINATED", epoch=5, time_started=0.0, time_ended=10.0), trial("b", "RUNNING", epoch=0)]
    assert line.render(trials).split("] ", 1)[1] == (
        "done 1/4 (10% of the predicted core-time), ETA 45 s; running 1, pending 2, failed 0")
