"""A tiny axes sweep end to end on real MNIST with Ray, then grown along an axis: its trials, teachers and ids,
and the report across its axes."""

import json

import pandas as pd
import pytest

from sublim.cli import main

from test_sweep_ray import finish, start_sweep, summaries, write_spec

pytestmark = [pytest.mark.ray, pytest.mark.mnist]

AXES = {"name": "axes", "seeds": [0, 1], "arms": [{"mitigation": "none"}],
        "settings": {"epochs": 1, "teacher_epochs": 1, "noise_count": 2048},
        "axes": {"lr": [0.001, 0.003], "hidden": [16, 32]}}


def test_an_axes_sweep_trains_a_teacher_per_seed_and_width_and_grows_by_a_new_width(data_dir, tmp_path):
    proc, log = start_sweep(write_spec(tmp_path, AXES), tmp_path / "results", data_dir)
    output = finish(proc, log)
    folder = tmp_path / "results" / "axes"
    expected = {f"s00{s}-none-shared-hidden={h}-lr={lr}" for s in (0, 1) for h in (16, 32) for lr in (0.001, 0.003)}
    found = summaries(folder)
    assert found.keys() == expected and "8 of 8 trials finished" in output
    for trial_id, summary in found.items():  # each id names the values its trial ran with
        assert trial_id.endswith(f"-hidden={summary['config']['hidden']}-lr={summary['config']['lr']}")
    assert "4 teacher(s) to train" in output and len(list((folder / "teachers").glob("teacher-*.pt"))) == 4
    before = {p: p.read_bytes() for p in (folder / "trials").rglob("*") if p.is_file()}

    wider = write_spec(tmp_path, {**AXES, "axes": {"lr": [0.001, 0.003], "hidden": [16, 32, 48]}})
    proc, log = start_sweep(wider, tmp_path / "results", data_dir)
    output = finish(proc, log)
    assert "extending sweep axes" in output and "by 4 trial(s)" in output and "2 teacher(s) to train" in output
    assert "12 of 12 trials finished" in output and {p: p.read_bytes() for p in before} == before
    sweep = json.loads((folder / "sweep.json").read_text())
    assert sorted(sweep["extensions"][0]["added"]) == sorted(set(summaries(folder)) - expected)
    assert all("-hidden=48-" in t for t in sweep["extensions"][0]["added"])

    assert main(["report", str(folder), "--mediation-sims", "10"]) == 0  # the report across both axes
    report = folder / "report"
    tests = pd.read_csv(report / "tables" / "tests.csv")
    within = tests.dropna(subset=["hidden", "lr"])
    assert {(int(h), lr) for h, lr in zip(within["hidden"], within["lr"])} == {
        (h, lr) for h in (16, 32, 48) for lr in (0.001, 0.003)}
    assert {"across hidden", "across lr"} <= set(tests["claim"])
    assert (report / "figures" / "across_hidden.png").is_file() and (report / "figures" / "across_lr.png").is_file()
    assert "## At hidden=48-lr=0.003" in (report / "report.md").read_text()
