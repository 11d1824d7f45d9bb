"""The notebook API of a results folder: per-epoch metrics long as well as wide, counts as integers, and the steps
table carrying each trial's mitigation, strength and student init."""

import pandas as pd

from sublim.analysis import load_results

from synthetic import write_sweep


def test_the_epochs_table_is_the_wide_per_epoch_columns_long(tmp_path):
    results = load_results(write_sweep(tmp_path / "sweep", seeds=2))
    epochs, trials = results.epochs, results.trials.set_index("trial_id")
    assert list(epochs.columns[:8]) == ["trial_id", "arm", "status", "seed", "mitigation", "strength", "student_init",
                                        "epoch"]
    n_epochs = sum(c.startswith("acc_epoch_") for c in trials)
    assert len(epochs) == len(trials) * n_epochs and list(epochs["epoch"][:n_epochs]) == list(range(n_epochs))
    for row in epochs.itertuples():
        wide = trials.loc[row.trial_id]
        assert row.acc == wide[f"acc_epoch_{row.epoch}"] and row.mitigation == wide["mitigation"]
        for metric in ("alignment", "frac_positive", "applied_alignment", "update_alignment"):
            assert (pd.isna(getattr(row, metric)) if row.epoch == 0  # before distillation: accuracy only
                    else getattr(row, metric) == wide[f"{metric}_epoch_{row.epoch}"])


def test_counts_are_integers_and_absent_where_a_trial_has_none(tmp_path):
    results = load_results(write_sweep(tmp_path / "sweep", seeds=2, missing=("t1_none_0_shared",)))
    trials = results.trials.set_index("trial_id")
    for count in ("steps", "epochs_done"):
        assert trials[count].dtype == "Int64"
    assert pd.isna(trials.loc["t1_none_0_shared", "steps"])
    completed = results.completed.set_index("trial_id")
    assert (completed["steps"] == results.steps.groupby("trial_id").size().loc[completed.index]).all()


def test_the_steps_table_names_each_rows_mitigation_strength_and_init(tmp_path):
    results = load_results(write_sweep(tmp_path / "sweep", seeds=2))
    steps, trials = results.steps, results.trials.set_index("trial_id")
    identity = ["seed", "mitigation", "strength", "student_init"]
    assert list(steps.columns[:6]) == ["trial_id", "arm", *identity]
    per_trial = steps.groupby("trial_id")[identity].nunique()
    assert (per_trial == 1).all().all()  # one trial, one arm
    first = steps.drop_duplicates("trial_id").set_index("trial_id")[identity]
    pd.testing.assert_frame_equal(first, trials.loc[first.index, identity], check_names=False)
