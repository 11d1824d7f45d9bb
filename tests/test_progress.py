"""The live table: a trial that no node of the cluster can place shows as waiting for resources, naming what it
needs, and is never counted as pending or done."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.execution.placement_groups import PlacementGroupFactory

from sublim.sweeps.progress import ProgressTable


def trial(trial_id: str, status: str, gpus: float = 0.0, **result) -> SimpleNamespace:
    return SimpleNamespace(status=status, last_result=result,
                           config={"trial": {"trial_id": trial_id, "config": {"epochs": 5}}},
                           placement_group_factory=PlacementGroupFactory([{"CPU": 1.0, "GPU": gpus}]))


def test_trials_no_node_can_place_show_as_waiting_never_done():
    table = ProgressTable("gpu", total=3)
    trials = [trial("s000-none-shared", "PENDING", gpus=1), trial("s001-none-shared", "PENDING", gpus=1),
              trial("s002-none-shared", "PENDING", gpus=1)]
    nodes = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 1.0}]
    text = table.render(trials, nodes)
    header, waiting = text.splitlines()[:2]
    assert header.endswith("done 0/3  running 0  pending 0  failed 0  waiting for resources 3"), header
    assert waiting == ("  waiting for resources: s000-none-shared (and 2 more) needs 1 CPU, 1 GPU, which no node has "
                       "(nodes: 2 CPU, 0 GPU; 1 CPU, 0 GPU); it starts when such a node joins")
    nodes.append({"CPU": 4.0, "GPU": 1.0})  # a GPU node joined: the trials only wait for their turn
    assert "waiting" not in table.render(trials, nodes) and "pending 3" in table.render(trials, nodes)


def test_a_trial_that_fits_a_busy_node_is_pending_and_the_table_needs_no_nodes_otherwise():
    table = ProgressTable("cpu", total=2, done_before=1)
    trials = [trial("s000-none-shared", "RUNNING", epoch=2, student_acc=0.5, mean_alignment=0.01, node_id="ab"),
              trial("s001-none-shared", "PENDING")]
    text = table.render(trials, [{"CPU": 1.0}])
    assert "done 1/2  running 1  pending 1  failed 0\n" in text + "\n" and "waiting" not in text
    assert "waiting" not in table.render(trials)


def test_trials_tune_ended_before_their_last_epoch_are_stopped_not_done():
    table = ProgressTable("stop", total=3)
    trials = [trial("s000-none-shared", "TERMINATED", epoch=5), trial("s001-none-shared", "TERMINATED", epoch=2),
              trial("s002-none-shared", "TERMINATED")]
    header = table.render(trials).splitlines()[0]
    assert header.endswith("done 1/3  running 0  pending 0  failed 0  stopped 2"), header
    assert "done 1/1" in ProgressTable("d", total=1).render([trial("s003-none-shared", "TERMINATED", diverged="x")])
