"""Sweep specs: the shipped ones load, and every class of mistake is one clear message, before Ray starts."""

import re
import json
from pathlib import Path

import pytest
import yaml

from sublim import cli
from sublim.core.config import TrialConfig
from sublim.core.mitigations import MITIGATIONS
from sublim.sweeps import spec as spec_module
from sublim.sweeps.spec import SpecError, SweepSpec

from conftest import REPO
from test_config import Toy

GOOD = {
    "name": "tiny",
    "seeds": [0, 1],
    "arms": [{"mitigation": "none"}, {"mitigation": "none", "student_init": "independent"},
             {"mitigation": "liminal", "strengths": [0.5, 2]}],
    "settings": {"epochs": 2},
}


def spec_with(**changes):
    spec = {**GOOD, **changes}
    return {k: v for k, v in spec.items() if v is not None}


def test_shipped_specs_load():
    smoke = SweepSpec.load(REPO / "sweeps" / "smoke.yaml")
    assert len(smoke.seeds) >= 2 and len(smoke.trials) == len(smoke.seeds) * 4
    paper = SweepSpec.load(REPO / "sweeps" / "paper.yaml")
    assert paper.seeds == tuple(range(20)) and paper.settings == {}
    arms = {(t.config.mitigation, t.config.strength, t.config.student_init) for t in paper.trials}
    assert {("none", 0.0, "shared"), ("none", 0.0, "independent"), ("projection", 1.0, "shared")} <= arms
    liminal = sorted(strength for mitigation, strength, _ in arms if mitigation == "liminal")
    assert len(liminal) >= 3 and liminal[0] == 0.1 and liminal[-1] == 10.0
    projection = sorted(strength for mitigation, strength, _ in arms if mitigation == "projection")
    assert projection == [0.25, 0.5, 1.0, 2.0] and ("placebo", 1.0, "shared") in arms  # five levels with none
    assert len({t.config.teacher_key for t in paper.trials}) == 20


def test_grid_is_seeds_by_arms_with_readable_stable_ids():
    spec = SweepSpec.from_dict(spec_with(seeds={"start": 3, "stop": 5}))
    ids = [t.trial_id for t in spec.trials]
    assert ids == ["s003-none-shared", "s003-none-independent", "s003-liminal@0.5-shared", "s003-liminal@2-shared",
                   "s004-none-shared", "s004-none-independent", "s004-liminal@0.5-shared", "s004-liminal@2-shared"]
    assert all(t.config.epochs == 2 and t.config.hidden == 256 for t in spec.trials)  # settings over defaults
    assert len({t.config.teacher_key for t in spec.trials}) == 2  # arms of a seed share one teacher
    assert spec.resources.tune() == {"cpu": 1.0, "gpu": 0.0}


@pytest.mark.parametrize("changes, key, message", [
    ({"seedz": [1]}, "seedz",
     "unknown key (did you mean seeds?); allowed: name, description, seeds, arms, settings, resources"),
    ({"arms": [{"mitigation": "none", "strenght": 1}]}, "arms[0].strenght",
     "unknown key (did you mean strengths?); allowed: mitigation, strengths"),
    ({"settings": {"epoch": 3}}, "settings.epoch", "unknown setting (did you mean epochs?); allowed: init, schedule"),
    ({"resources": {"cpu": 1}}, "resources.cpu", "unknown key (did you mean cpus?); allowed: cpus, gpus"),
    ({"seeds": "0-19"}, "seeds", "expected a list of integers, or {start: A, stop: B}"),
    ({"seeds": [0, 1.5]}, "seeds", "is not allowed; allowed: a list of integers"),
    ({"arms": {"mitigation": "none"}}, "arms", "expected a list of arms"),
    ({"arms": [{"mitigation": "liminal", "strengths": "high"}]}, "arms[0].strengths",
     "expected a number; got str 'high'"),
    ({"settings": {"epochs": "five"}}, "settings.epochs", "'five' is not allowed; must be of type int"),
    ({"resources": {"cpus": "one"}}, "resources.cpus", "expected a number"),
    ({"name": 7}, "name", "7 is not allowed; letters, digits"),
    ({"seeds": []}, "seeds", "no seeds: the grid would be empty"),
    ({"seeds": {"start": 5, "stop": 5}}, "seeds", "no seeds: the grid would be empty"),
    ({"arms": []}, "arms", "no arms: the grid would be empty"),
    ({"arms": [{"mitigation": "liminal", "strengths": []}]}, "arms[0].strengths",
     "empty list: the grid would be empty"),
    ({"arms": [{"mitigation": "limnal", "strengths": 1}]}, "arms[0].mitigation",
     f"'limnal' is not allowed (did you mean liminal?); allowed: {', '.join(MITIGATIONS)}"),
    ({"arms": [{"mitigation": "projection", "strengths": [2.5]}]}, "arms[0].strengths",
     "2.5 is not allowed; projection strength must be in [0, 2]"),
    ({"arms": [{"mitigation": "none", "strengths": 0.5}]}, "arms[0].strengths", "must be 0 when mitigation is 'none'"),
    ({"arms": [{"mitigation": "liminal"}]}, "arms[0].strengths", "missing; mitigation 'liminal' needs one strength"),
    ({"arms": [{"mitigation": "none", "student_init": "fresh"}]}, "arms[0].student_init",
     "'fresh' is not allowed; allowed: shared, independent"),
    ({"arms": [{"mitigation": "none"}, {"mitigation": "none"}]}, "arms[1]", "arm none/shared appears twice"),
    ({"settings": {"seed": 4}}, "settings.seed", "set by the grid, not by settings; put it under 'seeds'"),
    ({"settings": {"epochs": 2, "tau2_epochs": 3.0}}, "settings.tau2_epochs", "must be in (0, epochs=2]"),
    ({"seeds": [-1]}, "seeds", "-1 is not allowed; seeds must be >= 0"),
    ({"resources": {"gpus": 1.5}}, "resources.gpus", "a fraction below 1 (e.g. 0.25) or a whole number"),
    ({"settings": {"device": "cuda"}}, "resources.gpus", "0 while settings.device is 'cuda'"),
    ({"name": None}, "name", "missing; it is required"),
])
def test_each_mistake_names_the_file_the_key_and_what_is_allowed(changes, key, message):
    with pytest.raises(SpecError) as error:
        SweepSpec.from_dict(spec_with(**changes), "specs/bad.yaml")
    text = str(error.value)
    assert text.startswith(f"specs/bad.yaml: key '{key}': "), text
    assert message in text
    assert "\n" not in text


def test_fractional_resources_are_allowed():
    spec = SweepSpec.from_dict(spec_with(resources={"cpus": 0.5, "gpus": 0.25}))
    assert spec.resources.tune() == {"cpu": 0.5, "gpu": 0.25} and spec.resources.threads == 1


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\nseeds: [0]\narms: []\n")
    with pytest.raises(SpecError, match=r"evil.yaml: not valid YAML at line 1"):
        SweepSpec.load(path)


def _sweep_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", *map(str, args)])
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    (yaml.safe_dump(spec_with(seedz=[1])), "key 'seedz': unknown key"),
    (yaml.safe_dump(spec_with(seeds="many")), "key 'seeds': expected a list of integers"),
    (yaml.safe_dump(spec_with(arms=[])), "key 'arms': no arms: the grid would be empty"),
    (yaml.safe_dump(spec_with(arms=[{"mitigation": "projection", "strengths": 3}])),
     "key 'arms[0].strengths': 3.0 is not allowed; projection strength must be in [0, 2]"),
    ("name: [unclosed\n", "not valid YAML"),
    (yaml.safe_dump(spec_with(seeds={"start": 0, "stop": 10**12})), "a sweep holds at most 50,000 trials"),
    (yaml.safe_dump(spec_with(seeds={"start": 0, "stop": 20_000},
                              arms=[{"mitigation": "none"}, {"mitigation": "liminal", "strengths": [1, 2]}])),
     "20,000 seeds x 3 arms = 60,000 trials; a sweep holds at most 50,000"),
    (yaml.safe_dump(spec_with(settings={"lr": float("inf")})), "key 'settings.lr': inf is not allowed; must be a finite"),
])
def test_cli_rejects_a_bad_spec_with_exit_2_and_writes_nothing(tmp_path, capsys, text, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    storage = tmp_path / "results"
    code, err = _sweep_cli([spec, "--storage", storage], capsys)
    assert code == 2
    assert err.startswith(f"sublim sweep: error: {spec}: ") and message in err and err.count("\n") == 1
    assert not storage.exists()


def alias_bomb() -> str:
    """A 1.3 KB spec whose settings expand, through aliases, to 10**10 strings."""
    levels = ["&l0 [" + ", ".join(['"lol-lol-lol"'] * 10) + "]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "name: bomb\nseeds: [0]\narms: [{mitigation: none}]\nsettings:\n  epochs: [" + ",\n    ".join(levels) + "]\n"


@pytest.mark.parametrize("text, message", [
    (alias_bomb(), "not valid YAML at line 6: aliases (*name) are not allowed in a spec"),
    ("name: deep\nseeds: [0]\narms: [{mitigation: none}]\ndescription: " + "[" * 100_000 + "]" * 100_000,
     "not valid YAML at line 4: nested deeper than 20 levels"),
    (yaml.safe_dump(spec_with(name="tiny\n")), "key 'name': 'tiny\\n' is not allowed; letters, digits"),
    (yaml.safe_dump(spec_with(name="a" * 101)), "key 'name': 'aaaa"),
])
def test_alias_bombs_deep_nesting_and_names_that_do_not_paste_are_one_line(tmp_path, capsys, text, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    assert len(alias_bomb()) < 1400
    code, err = _sweep_cli([spec, "--storage", tmp_path / "results"], capsys)
    assert code == 2 and err.startswith(f"sublim sweep: error: {spec}: ") and message in err, err
    assert err.count("\n") == 1 and len(err) < 300
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", ["tiny\n", "a" * 101, "../up", ".hidden"])
def test_names_must_match_in_full_and_are_at_most_100_characters(tmp_path, capsys, name):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(GOOD))
    code, err = _sweep_cli([spec, "--storage", tmp_path / "results", "--name", name], capsys)
    assert code == 2 and err.startswith("sublim sweep: error: --name ") and "at most 100 characters" in err
    assert err.count("\n") == 1 and not (tmp_path / "results").exists()
    assert SweepSpec.from_dict(spec_with(name="a" * 100)).name == "a" * 100


def test_cli_rejects_a_missing_spec_and_a_resume_of_nothing(tmp_path, capsys):
    code, err = _sweep_cli([tmp_path / "nope.yaml"], capsys)
    assert code == 2 and "nope.yaml: cannot read the spec file" in err
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(GOOD))
    code, err = _sweep_cli([spec, "--storage", tmp_path / "results", "--resume"], capsys)
    assert code == 2 and "--resume: nothing to resume in" in err
    code, err = _sweep_cli([spec, "--storage", tmp_path / "results", "--name", "../up"], capsys)
    assert code == 2 and "--name '../up' is not allowed" in err
    code, err = _sweep_cli([spec, "--storage", "s3://bucket/results"], capsys)
    assert code == 2 and "URIs are not supported" in err
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["tiny.yaml"]


def test_cli_checks_storage_text_and_an_earlier_sweep_before_any_work(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(GOOD))
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    code, err = _sweep_cli([spec, "--storage", a_file], capsys)
    assert code == 2 and err == f"sublim sweep: error: --storage {a_file}: {a_file} is a file; give a folder\n"
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: café\n".encode("latin-1"))
    code, err = _sweep_cli([latin1, "--storage", tmp_path / "results"], capsys)
    assert code == 2 and "latin1.yaml: not UTF-8 text (byte 9)" in err and err.count("\n") == 1
    damaged = tmp_path / "results" / GOOD["name"]
    damaged.mkdir(parents=True)
    (damaged / "sweep.json").write_text('{"trials": [')
    code, err = _sweep_cli([spec, "--storage", tmp_path / "results"], capsys)
    assert code == 2 and "sweep.json: damaged (JSONDecodeError" in err and err.count("\n") == 1
    (damaged / "sweep.json").write_text(json.dumps({"trials": [{"trial_id": "../../escape"}]}))
    code, err = _sweep_cli([spec, "--storage", tmp_path / "results"], capsys)
    assert code == 2 and "trial id '../../escape' is not allowed" in err
    (damaged / "sweep.json").write_text(json.dumps({"trials": [{"trial_id": "s" * 300}]}))  # ENAMETOOLONG as a folder
    code, err = _sweep_cli([spec, "--storage", tmp_path / "results"], capsys)
    assert code == 2 and "trial id 'ssss" in err and "at most 100 characters" in err and err.count("\n") == 1
    code, err = _sweep_cli(["no-such-shipped-spec"], capsys)
    assert code == 2 and "no shipped spec of that name; shipped: paper, scaling, smoke" in err
    assert sorted(p.name for p in damaged.iterdir()) == ["sweep.json"]


def test_bool_optional_and_enum_settings_reach_every_trial(tmp_path, monkeypatch):
    monkeypatch.setattr(spec_module, "TrialConfig", Toy)  # TrialConfig plus a bool, Optionals and an enum
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(spec_with(settings={"epochs": 2, "verbose": True, "limit": None, "style": None})))
    spec = SweepSpec.load(path)
    assert {(t.config.verbose, t.config.limit, t.config.style, t.config.epochs) for t in spec.trials} == \
        {(True, None, None, 2)}
    assert spec.to_dict()["settings"] == {"epochs": 2, "verbose": True, "limit": None, "style": None}
    for settings, message in [({"verbose": 1}, "key 'settings.verbose': 1 is not allowed; must be of type bool"),
                              ({"limit": "many"}, "key 'settings.limit': 'many' is not allowed; must be of type int"),
                              ({"style": "gaudy"}, "key 'settings.style': 'gaudy' is not allowed; allowed: plain")]:
        with pytest.raises(SpecError, match="^specs/toy.yaml: " + re.escape(message)):
            SweepSpec.from_dict(spec_with(settings=settings), "specs/toy.yaml")


def test_grid_configs_equal_configs_built_in_full():
    spec = SweepSpec.from_dict(spec_with(seeds=[4, 0, 9]))
    assert [t.config for t in spec.trials] == [TrialConfig.from_dict(t.config.to_dict()) for t in spec.trials]
    assert [t.config.seed for t in spec.trials] == [4] * 4 + [0] * 4 + [9] * 4


@pytest.mark.parametrize("resources, key", [({"gpus": 64}, "resources.gpus"), ({"cpus": 100_000}, "resources.cpus")])
def test_a_local_sweep_needing_more_than_this_machine_has_is_refused_before_any_work(tmp_path, capsys, resources, key):
    spec = tmp_path / "big.yaml"
    spec.write_text(yaml.safe_dump(spec_with(resources=resources)))
    code, err = _sweep_cli([spec, "--storage", tmp_path / "results", "--data-dir", tmp_path], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"sublim sweep: error: {spec}: key '{key}': "), err
    assert "this machine has" in err and "--address" in err and not (tmp_path / "results").exists()
