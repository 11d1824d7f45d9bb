"""What makes a sweep cheap: the launch order, shared teachers and distillation targets, the profile (Ray only where
the targets are shared between workers)."""

import dataclasses

import pytest
import torch

from sublim.core.files import atomic_write
from sublim.sweeps.profile import ENDED, STARTED, SweepProfile
from sublim.sweeps.spec import SweepSpec
from sublim.sweeps.tune_run import InLaunchOrder, launch_order, tune_configs
from sublim.trainable import DistillationTargets, Trial, train_teacher
from sublim.trainable.results import TeacherCache

from conftest import tiny_config


def test_launch_order_starts_every_seed_once_then_runs_seed_by_seed_longest_arms_first():
    spec = SweepSpec.from_dict({"name": "x", "seeds": [0, 1, 2], "arms": [
        {"mitigation": "none"}, {"mitigation": "projection", "strengths": [1.0]},
        {"mitigation": "liminal", "strengths": [0.0, 1.0]}]})
    order = launch_order(list(spec.trials))
    assert sorted(t.trial_id for t in order) == sorted(t.trial_id for t in spec.trials)
    # One trial per seed first (each trains its seed's teacher), the longest arm of the seed.
    assert [t.trial_id for t in order[:3]] == [f"s00{s}-liminal@1-shared" for s in range(3)]
    rest = order[3:]
    assert [t.config.seed for t in rest] == sorted(t.config.seed for t in rest)
    # liminal@0 adds no loss: it is as short as none, so it does not go first.
    assert [t.trial_id for t in rest[:3]] == ["s000-none-shared", "s000-projection@1-shared", "s000-liminal@0-shared"]


def test_tune_creates_the_sweeps_trials_in_launch_order_each_with_its_own_config():
    """The sweep's search algorithm, driven by Tune's own search generator as tune.Tuner drives it (no Ray started):
    every config once, in order, then no more trials."""
    from ray.tune.experiment import Experiment
    from ray.tune.search import SearchGenerator

    spec = SweepSpec.from_dict({"name": "x", "seeds": [0, 1], "arms": [
        {"mitigation": "none"}, {"mitigation": "liminal", "strengths": [0.0, 1.0]}]})
    configs = tune_configs(list(spec.trials))
    search = SearchGenerator(InLaunchOrder(configs))
    search.add_configurations([Experiment("x", run=lambda config: None, num_samples=len(configs))])
    trials = [search.next_trial() for _ in configs]
    assert [trial.config for trial in trials] == configs
    assert search.next_trial() is None and search.is_finished()
    trials[0].config["trial"]["config"]["seed"] = 99  # Tune's copy, not the sweep's
    assert configs[0]["trial"]["config"]["seed"] == 0


def test_a_sweep_gives_tune_its_pending_trials_through_that_search_algorithm(tmp_path, monkeypatch):
    """No grid_search (its cost grows with the square of the trials): the Tuner that `fit` builds gets the pending
    trials, in launch order, from InLaunchOrder. Tune's Tuner is replaced by a recorder; no Ray is started."""
    from ray import tune

    from sublim.sweeps.results import ResultsFolder
    from sublim.sweeps.tune_run import RunRecord, fit

    built = {}

    class Recorder:
        def __init__(self, trainable, **options):
            built.update(options)

        def fit(self):
            built["fitted"] = True

    monkeypatch.setattr(tune, "Tuner", Recorder)
    spec = SweepSpec.from_dict({"name": "x", "seeds": [0, 1], "arms": [
        {"mitigation": "none"}, {"mitigation": "liminal", "strengths": [0.0, 1.0]}]})
    pending = list(spec.trials)[1:]
    folder = ResultsFolder(tmp_path / "x")
    fit("x", spec, folder, None, pending, RunRecord(folder.path, print), "run-test", 2.0)
    search, tune_config = built["tune_config"].search_alg, built["tune_config"]
    assert built["fitted"] and "param_space" not in built and isinstance(search, InLaunchOrder)
    assert tune_config.num_samples == len(pending) == len(search.configs)
    assert [c["trial"]["trial_id"] for c in search.configs] == [t.trial_id for t in launch_order(pending)]
    assert search.configs[0]["trial"]["config"] == launch_order(pending)[0].config.to_dict()


def test_a_teacher_stored_first_is_the_one_every_trial_of_the_seed_uses(tmp_path, tiny):
    config, data, teacher = tiny
    cache = TeacherCache(tmp_path)
    assert cache.put_first(teacher) is teacher
    twin = dataclasses.replace(teacher, seconds=teacher.seconds + 1.0)  # trained again, elsewhere, at the same time
    stored = cache.put_first(twin)
    assert stored.seconds == teacher.seconds and torch.equal(stored.params, teacher.params)
    assert [p.name for p in tmp_path.iterdir()] == [cache.path(teacher.key).name]  # no temporary file left


def test_a_damaged_stored_teacher_is_set_aside_and_replaced(tmp_path, tiny):
    _, _, teacher = tiny
    lines = []
    cache = TeacherCache(tmp_path, log=lines.append)
    cache.path(teacher.key).write_bytes(b"half a file")
    assert cache.put_first(teacher) is teacher
    assert torch.equal(cache.get(teacher.key).params, teacher.params) and "unusable" in lines[0]


def test_creating_a_file_that_exists_leaves_it_alone(tmp_path):
    path = tmp_path / "f"
    assert atomic_write(path, lambda tmp: tmp.write_text("first"), replace=False)
    assert not atomic_write(path, lambda tmp: tmp.write_text("second"), replace=False)
    assert path.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_creating_a_file_works_where_hard_links_do_not(tmp_path, monkeypatch):
    def no_links(source, target):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("os.link", no_links)
    path = tmp_path / "f"
    assert atomic_write(path, lambda tmp: tmp.write_text("first"), replace=False)
    assert not atomic_write(path, lambda tmp: tmp.write_text("second"), replace=False)
    assert path.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.parametrize("mitigation, strength", [("none", 0.0), ("liminal", 1.0), ("placebo", 1.0)])
def test_shared_distillation_targets_give_the_same_trial_bit_for_bit(tiny, mitigation, strength):
    config, data, teacher = tiny
    config = config.replace(mitigation=mitigation, strength=strength)
    targets = DistillationTargets.of(config, teacher, torch.device("cpu"))
    for _ in Trial(config.replace(mitigation="liminal", strength=0.5), data, teacher, targets=targets).run():
        pass  # an earlier arm of the seed on this worker, whose frozen base the liminal arm reuses
    shared = Trial(config, data, teacher, targets=targets)
    own = Trial(config, data, teacher)
    for trial in (shared, own):
        for _ in trial.run():
            pass
    assert torch.equal(shared.student.flat, own.student.flat)
    for name, column in own.trace_columns().items():
        torch.testing.assert_close(shared.trace_columns()[name], column, rtol=0, atol=0, equal_nan=True, msg=name)
    assert torch.equal(targets.noise, own.noise)  # a trial never writes to the tensors it is given


def test_targets_of_another_seed_or_teacher_are_refused(tiny):
    config, data, teacher = tiny
    other_seed = DistillationTargets.of(config.replace(seed=config.seed + 1), teacher, torch.device("cpu"))
    with pytest.raises(ValueError, match="do not belong to this trial"):
        Trial(config, data, teacher, targets=other_seed)
    other_teacher = train_teacher(tiny_config(teacher_lr=1e-2), data)
    with pytest.raises(ValueError, match="do not belong to this trial"):
        Trial(config, data, teacher, targets=DistillationTargets.of(config, other_teacher, torch.device("cpu")))


@pytest.fixture(scope="module")
def local_ray():
    from sublim.sweeps.session import ray_session

    with ray_session(num_cpus=1):
        yield


@pytest.mark.ray
def test_a_seeds_targets_are_built_once_and_shared_with_other_workers_bit_for_bit(tiny, local_ray):
    import ray

    from sublim.sweeps import worker
    from sublim.sweeps.target_store import TargetStore

    config, data, teacher = tiny
    liminal, cpu = config.replace(mitigation="liminal", strength=1.0), torch.device("cpu")
    store = TargetStore.remote(10**9)
    worker._targets.clear()
    built, built_here = worker.distillation_targets(liminal, teacher, cpu, store)
    worker._targets.clear()  # as if on another worker: only the store holds them
    fetched, built_there = worker.distillation_targets(liminal, teacher, cpu, store)
    assert built_here and not built_there and fetched is not built
    fresh = DistillationTargets.of(liminal, teacher, cpu)
    assert torch.equal(fetched.noise, fresh.noise) and torch.equal(fetched.teacher_log_probs, fresh.teacher_log_probs)
    assert torch.equal(fetched.initial_logits_by_stream["shared_init"], fresh.initial_logits(liminal))
    shared, own = Trial(liminal, data, teacher, targets=fetched), Trial(liminal, data, teacher)
    for trial in (shared, own):
        for _ in trial.run():
            pass
    assert torch.equal(shared.student.flat, own.student.flat)
    ray.kill(store)


@pytest.mark.ray
def test_targets_the_store_cannot_deliver_are_built_again(tiny, local_ray):
    import ray

    from sublim.sweeps import worker
    from sublim.sweeps.target_store import TargetStore

    config, _, teacher = tiny
    cpu = torch.device("cpu")

    @ray.remote
    def lost():  # stands for an object whose node or owner went away: reading it raises a RayError
        raise OSError("gone")

    store = TargetStore.remote(10**9)
    ray.get(store.put.remote(DistillationTargets.key_of(config, teacher, cpu), [lost.remote()], 1))
    worker._targets.clear()
    targets, built = worker.distillation_targets(config, teacher, cpu, store)
    assert built and torch.equal(targets.noise, DistillationTargets.of(config, teacher, cpu).noise)
    worker._targets.clear()
    assert not worker.distillation_targets(config, teacher, cpu, store)[1]  # the rebuilt ones replaced the entry
    ray.kill(store)  # takes effect asynchronously: wait until the store answers with its death
    for _ in range(1000):
        try:
            ray.get(store.get.remote(()))
        except ray.exceptions.RayActorError:
            break
    else:
        pytest.fail("the killed store kept answering")
    worker._targets.clear()
    assert worker.distillation_targets(config, teacher, cpu, store)[1]  # without a store, a trial builds its own


@pytest.mark.ray
def test_the_target_store_drops_its_oldest_entries_beyond_its_budget(local_ray):
    import ray

    from sublim.sweeps.target_store import TargetStore

    store = TargetStore.remote(250)
    refs = {key: ray.put(key) for key in "abc"}
    for key in "abc":
        ray.get(store.put.remote((key,), [refs[key]], 100))
    assert [bool(ray.get(store.get.remote((key,)))) for key in "abc"] == [False, True, True]
    ray.kill(store)


def timed(started: float, ended: float, **parts: float) -> dict[str, float]:
    return {STARTED: started, ENDED: ended, **{f"time_{name}": value for name, value in parts.items()}}


def test_the_profile_splits_the_cores_time_into_training_the_rest_of_each_trial_and_idle_phases():
    # Two cores from t=0 to t=20. Trials (1 CPU each): a 1-9, b 2-10, c 9.5-17 (the last to start), nothing after 17.
    results = {"a": timed(1, 9, teacher=3, train=4, setup=0.5, save=0.25, report=0.25),
               "b": timed(2, 10, train=7, setup=0.5),
               "c": timed(9.5, 17, train=7, setup=0.25)}
    profile = SweepProfile.of(results, cpus_per_trial=1, cores=2, start=0, end=20)
    assert profile.capacity == 40 and profile.trials == 3
    assert profile.training == 3 + 4 + 7 + 7 and profile.setup == 1.25 and profile.save == 0.25
    assert profile.in_trial_other == pytest.approx(8 + 8 + 7.5 - 21 - 1.25 - 0.25 - 0.25)
    assert profile.idle_start == 2 * 1                       # 0-1, no trial yet
    assert profile.idle_between == pytest.approx(1 + 0.5)   # one core free 1-2, and 9-9.5
    assert profile.idle_tail == pytest.approx(7)           # 10-17: one trial left on two cores
    assert profile.idle_finish == 2 * 3                     # 17-20: Tune finishing
    accounted = profile.training + profile.setup + profile.save + profile.report + profile.in_trial_other + profile.idle
    assert accounted == pytest.approx(profile.capacity) and profile.overhead == pytest.approx(40 - 21)


def test_trials_of_two_cpus_count_twice_and_a_run_without_trials_is_all_idle():
    profile = SweepProfile.of({"a": timed(0, 10, train=9)}, cpus_per_trial=2, cores=2, start=0, end=10)
    assert profile.training == 18 and profile.idle == 0
    empty = SweepProfile.of({}, cpus_per_trial=1, cores=2, start=0, end=5)
    assert empty.trials == 0 and empty.idle == 10 and empty.training == 0


def test_the_many_trials_benchmark_runs_one_step_trials_over_ten_seeds_with_shared_teachers():
    import importlib.util

    from sublim.core.trial_folder import expected_steps

    from conftest import REPO

    found = importlib.util.spec_from_file_location("sweep_throughput", REPO / "benchmarks" / "sweep_throughput.py")
    benchmark = importlib.util.module_from_spec(found)
    found.loader.exec_module(benchmark)
    spec = SweepSpec.from_dict(benchmark.many_spec(1000))
    configs = [t.config for t in spec.trials]
    assert len(configs) == 1000 and len({t.trial_id for t in spec.trials}) == 1000
    assert len({c.seed for c in configs}) == 10 and len({c.teacher_key for c in configs}) == 10
    assert {expected_steps(c.to_dict()) for c in configs} == {1}


@pytest.mark.ray
def test_a_local_tune_run_creates_few_trials_ahead_of_free_cpus(local_ray):
    """Tune's default keeps 200 trials pending (for a cluster's autoscaling): on one machine that only delayed the
    first trial, by about 0.1 s per trial of the grid."""
    from ray.tune.execution.tune_controller import _get_max_pending_trials
    from ray.tune.search import BasicVariantGenerator

    from sublim.sweeps.session import pending_trials

    assert _get_max_pending_trials(BasicVariantGenerator()) == pending_trials(1) == 16
    assert pending_trials(24) == 48
