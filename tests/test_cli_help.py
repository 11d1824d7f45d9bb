"""Help that teaches: examples at the end of every --help, one-line usage errors that name the close option, choice,
spec key or mitigation, a data folder inside MNIST's layout answered with the right one, and --dry-run's time."""

import re

import pytest
import yaml

from sublim import cli
from sublim.trainable import DataError, load_mnist


def help_text(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def usage_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(argv))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no usage dump
    return err


@pytest.mark.parametrize("command", [(), ("run",), ("sweep",), ("report",)], ids=["sublim", "run", "sweep", "report"])
def test_every_commands_help_ends_with_examples(capsys, command):
    examples = help_text(capsys, *command).rstrip().rsplit("\nexamples:\n", 1)[1].splitlines()
    assert len(examples) >= 3 and all(line.startswith("  sublim ") for line in examples)


def test_dry_runs_help_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    lines = help_text(capsys, "sweep").splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("--dry-run"))
    assert len(lines[at]) <= 80 and not lines[at + 1].startswith(" " * 20), lines[at:at + 2]


@pytest.mark.parametrize("argv, hint", [
    (["run", "--sed", "0"], "unrecognized arguments: --sed 0 (did you mean --seed?)"),
    (["run", "--mitigation", "projecton"], "(did you mean projection?)"),
    (["sweep", "smoke", "--dryrun"], "(did you mean --dry-run?)"),
    (["swep", "smoke"], "(did you mean sweep?)"),
])
def test_a_mistyped_option_or_choice_is_one_line_naming_the_close_one(capsys, argv, hint):
    err = usage_error(capsys, *argv)
    assert hint in err and err.startswith(f"sublim {argv[0]}: error: " if argv[0] != "swep" else "sublim: error: ")


@pytest.mark.parametrize("spec, hint", [
    ({"settings": {"epoch": 2}}, "key 'settings.epoch': unknown setting (did you mean epochs?)"),
    ({"setings": {}}, "key 'setings': unknown key (did you mean settings?)"),
    ({"arms": [{"mitigation": "projecton", "strengths": 1}]},
     "key 'arms[0].mitigation': 'projecton' is not allowed (did you mean projection?)"),
    ({"arms": [{"mitigation": "liminal", "strengths": 1}], "settings": {"schedule": "constnt"}},
     "'constnt' is not allowed (did you mean constant?)"),
])
def test_a_mistyped_spec_key_setting_or_mitigation_names_the_close_one(tmp_path, capsys, spec, hint):
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump({"name": "typo", "seeds": [0], "arms": [{"mitigation": "none"}], **spec}))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sweep", str(path), "--dry-run"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and hint in err, err


@pytest.mark.parametrize("inside", ["MNIST", "MNIST/raw"])
def test_a_data_dir_inside_mnists_layout_suggests_the_folder_above_it(tmp_path, inside):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    with pytest.raises(DataError, match=re.escape(f"did you mean --data-dir {tmp_path.resolve()}?")):
        load_mnist(tmp_path / inside)
    with pytest.raises(DataError) as elsewhere:  # a folder that is not inside the layout gets no such hint
        load_mnist(tmp_path / "elsewhere")
    assert "did you mean" not in str(elsewhere.value)


def test_a_dry_run_gives_its_time_in_minutes_or_seconds_beside_core_hours(capsys):
    assert cli.main(["sweep", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"predicted cost: 0\.79 core-hours at one thread per trial, (\d+ h )?\d+ min( \d+ s)? on this "
                     r"machine's \d+ cores \(of core time: students 44 min, teachers 1 min 32 s", out), out
