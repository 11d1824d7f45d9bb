"""Growing a sweep: a spec whose grid is a superset of a results folder's extends it; one that changes what
a recorded trial means, or drops one, is refused with the key that differs."""

from __future__ import annotations

import json

import pytest
import yaml

from sublim import cli
from sublim.sweeps.results import ResultsFolder, SweepError
from sublim.sweeps.spec import SweepSpec

BASE = {"name": "grow", "seeds": [0, 1], "arms": [{"mitigation": "none"}, {"mitigation": "projection", "strengths": 1.0}],
        "settings": {"epochs": 2, "noise_count": 64}}


def spec_of(**changes) -> tuple[SweepSpec, str]:
    raw = {**BASE, **changes}
    return SweepSpec.from_dict(raw), yaml.safe_dump(raw)


@pytest.fixture
def folder(tmp_path):
    results = ResultsFolder(tmp_path / "grow", log=lambda line: None)
    results.record("grow", *spec_of())
    return results


def test_the_same_spec_adds_nothing_and_records_no_extension(folder):
    spec, text = spec_of()
    assert folder.added_by(spec) == []
    before = (folder.path / "sweep.json").read_bytes()
    folder.record("grow", spec, text)
    assert (folder.path / "sweep.json").read_bytes() == before


def test_more_seeds_and_arms_extend_the_sweep_and_are_recorded(folder):
    spec, text = spec_of(seeds=[0, 1, 2], arms=[*BASE["arms"], {"mitigation": "placebo", "strengths": [1.0, 2.0]}])
    added = folder.added_by(spec)
    assert added == [t.trial_id for t in spec.trials if t.config.seed == 2 or t.config.mitigation == "placebo"]
    assert len(added) == len(spec.trials) - 4
    folder.record("grow", spec, text)
    sweep = json.loads((folder.path / "sweep.json").read_text())
    assert [t["trial_id"] for t in sweep["trials"]] == [t.trial_id for t in spec.trials]
    (extension,) = sweep["extensions"]
    assert extension["added"] == added and extension["seeds"] == [0, 1, 2]
    assert extension["arms"] == ["none/shared", "placebo@1/shared", "placebo@2/shared", "projection@1/shared"]
    assert {"when", "spec", "versions"} <= extension.keys() and yaml.safe_load(extension["spec"])["seeds"] == [0, 1, 2]
    assert folder.added_by(spec) == []  # the grown folder now holds this grid


@pytest.mark.parametrize("changes, message", [
    ({"settings": {"epochs": 3, "noise_count": 64}}, "key 'epochs' is 2 there and 3 in the spec"),
    ({"settings": {"epochs": 2, "noise_count": 64, "split_seed": 5}}, "key 'split_seed' is 0 there and 5 in the spec"),
    ({"arms": [{"mitigation": "none"}]}, "holds trial s000-projection@1-shared, which the spec does not list"),
    ({"seeds": [1, 2]}, "holds trial s000-none-shared, which the spec does not list"),
])
def test_a_spec_that_changes_or_drops_recorded_trials_is_refused(folder, changes, message):
    with pytest.raises(SweepError, match=message.replace("[", r"\[").replace("(", r"\(")):
        folder.added_by(spec_of(**changes)[0])


def test_the_cli_refuses_a_conflicting_spec_in_one_line_and_writes_nothing(folder, tmp_path, capsys):
    path = tmp_path / "changed.yaml"
    path.write_text(spec_of(settings={"epochs": 3, "noise_count": 64})[1])
    before = {p: p.read_bytes() for p in folder.path.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", str(path), "--storage", str(folder.path.parent)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "key 'epochs' is 2 there and 3 in the spec" in err
    assert {p: p.read_bytes() for p in folder.path.rglob("*") if p.is_file()} == before

