"""The trial configuration rejects bad values before any work, naming the field and what is allowed."""

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Literal, Optional

import pytest

from sublim.cli.run import add_settings, settings_from_args
from sublim.core.config import check_value, setting
from sublim.core.mitigations import MITIGATIONS
from sublim.trainable import ConfigError, TrialConfig


def test_defaults_are_the_published_protocol():
    config = TrialConfig()
    assert (config.epochs, config.teacher_epochs, config.batch_size, config.lr) == (5, 5, 1024, 3e-4)
    assert (config.hidden, config.aux_logits, config.noise_count, config.probe_batch_size) == (256, 3, 50_000, 1024)
    assert (config.temperature, config.schedule, config.lambda0, config.kl_logits) == (2.0, "liminal", 1.0, "all")
    assert (config.init, config.student_init, config.train_size) == ("normal", "shared", 50_000)


@pytest.mark.parametrize("values, message", [
    ({"mitigation": "dropout"}, f"mitigation: 'dropout' is not allowed; allowed: {', '.join(MITIGATIONS)}"),
    ({"mitigation": "liminal", "strength": -0.5}, "strength: -0.5 is not allowed; must be >= 0"),
    ({"mitigation": "projection", "strength": 2.5}, "strength: 2.5 is not allowed; projection strength must be in [0, 2]"),
    ({"strength": 0.3}, "must be 0 when mitigation is 'none'"),
    ({"epochs": 0}, "epochs: 0 is not allowed; must be >= 1"),
    ({"epochs": 2.5}, "epochs: 2.5 is not allowed; must be of type int"),
    ({"seed": True}, "seed: True is not allowed; must be of type int"),
    ({"student_init": "random"}, "student_init: 'random' is not allowed; allowed: shared, independent"),
    ({"lr": 0}, "lr: 0.0 is not allowed; must be > 0"),
    ({"tau2_epochs": 6.0}, "tau2_epochs: 6.0 is not allowed; must be in (0, epochs=5]"),
    ({"kl_logits": "hidden"}, "kl_logits: 'hidden' is not allowed; allowed: all, class, aux"),
    ({"device": "tpu"}, "device: 'tpu' is not allowed; allowed: auto, cpu, cuda, cuda:N"),
    ({"train_size": 60_000}, "train_size: 60000 is not allowed"),
    ({"probe_batch_size": 20_000}, "probe_batch_size: 20000 is not allowed; must be <= the validation subset size (10000)"),
    ({"sede": 1}, "sede: unknown setting (did you mean seed?); allowed: seed, mitigation"),
])
def test_bad_values_are_rejected_with_the_field_and_what_is_allowed(values, message):
    with pytest.raises(ConfigError) as error:
        TrialConfig.from_dict(values)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_round_trip_through_plain_values_and_float_fields_accept_ints():
    config = TrialConfig.from_dict({"seed": 7, "mitigation": "liminal", "strength": 2})
    assert config.strength == 2.0 and isinstance(config.strength, float)
    assert TrialConfig.from_dict(config.to_dict()) == config


def test_teacher_key_is_shared_across_arms_of_a_seed_and_differs_across_seeds():
    base = TrialConfig(seed=1)
    arms = [base.replace(mitigation="liminal", strength=3.0), base.replace(student_init="independent"),
            base.replace(mitigation="projection", strength=1.0, epochs=2, tau2_epochs=1.0)]
    assert {arm.teacher_key for arm in arms} == {base.teacher_key}
    assert base.replace(seed=2).teacher_key != base.teacher_key
    assert base.replace(teacher_epochs=2).teacher_key != base.teacher_key
    assert base.replace(init="torch").teacher_key != base.teacher_key


def test_arm_labels():
    assert TrialConfig().arm == "none/shared"
    assert TrialConfig(mitigation="liminal", strength=0.5).arm == "liminal@0.5/shared"
    assert TrialConfig(student_init="independent").arm == "none/independent"


# Settings of every kind. TrialConfig has no bool or Optional field yet, so a subclass adds one of each:
# the checks, the CLI options and the spec settings are all derived from the field types.
@dataclass(frozen=True)
class Toy(TrialConfig):
    verbose: bool = setting(False, "a bool")
    limit: int | None = setting(None, "an optional number")
    rate: Optional[float] = setting(0.5, "an optional float")
    style: Optional[Literal["plain", "fancy"]] = setting("plain", "an optional enum")


@pytest.mark.parametrize("values, message", [
    ({"verbose": 1}, "verbose: 1 is not allowed; must be of type bool"),
    ({"verbose": "yes"}, "verbose: 'yes' is not allowed; must be of type bool"),
    ({"limit": True}, "limit: True is not allowed; must be of type int or None"),
    ({"limit": 2.5}, "limit: 2.5 is not allowed; must be of type int or None"),
    ({"rate": "fast"}, "rate: 'fast' is not allowed; must be of type float or None"),
    ({"style": "gaudy"}, "style: 'gaudy' is not allowed; allowed: plain, fancy, None"),
    ({"style": True}, "style: True is not allowed; allowed: plain, fancy, None"),
    ({"epochs": None}, "epochs: None is not allowed; must be of type int"),
    ({"mitigation": None}, "mitigation: None is not allowed; must be of type str"),
])
def test_bool_optional_and_enum_settings_are_checked_by_type(values, message):
    with pytest.raises(ConfigError) as error:
        Toy.from_dict(values)
    assert str(error.value) == message


def test_bool_optional_and_enum_settings_round_trip_and_stay_out_of_the_teacher_key():
    toy = Toy.from_dict({"verbose": True, "limit": 3, "rate": 1, "style": None, "seed": 4})
    assert (toy.verbose, toy.limit, toy.rate, toy.style) == (True, 3, 1.0, None) and isinstance(toy.rate, float)
    assert Toy.from_dict(toy.to_dict()) == toy
    assert Toy(rate=None, limit=None).rate is None
    assert toy.teacher_key == TrialConfig(seed=4).teacher_key  # unmarked fields never enter the key


def test_check_value_on_its_own():
    assert check_value("x", 2, float) == 2.0 and type(check_value("x", 2, float)) is float
    assert check_value("x", 2, int | float) == 2 and type(check_value("x", 2, int | float)) is int
    assert check_value("x", None, Optional[bool]) is None and check_value("x", False, Optional[bool]) is False
    with pytest.raises(ConfigError, match=r"^x: 0 is not allowed; must be of type bool or None$"):
        check_value("x", 0, Optional[bool])


def _parse(cls, *argv):
    parser = argparse.ArgumentParser()
    add_settings(parser, cls)
    return settings_from_args(parser.parse_args(list(argv)), cls)


def test_cli_options_cover_bool_optional_and_enum_settings():
    assert _parse(Toy) == Toy()
    toy = _parse(Toy, "--verbose", "--limit", "7", "--rate", "none", "--style", "none", "--epochs", "3")
    assert toy == Toy(verbose=True, limit=7, rate=None, style=None, epochs=3)
    assert _parse(Toy, "--no-verbose", "--limit", "none", "--style", "fancy", "--rate", "2") == \
        Toy(limit=None, style="fancy", rate=2.0)
    assert _parse(TrialConfig, "--mitigation", "liminal", "--strength", "2", "--teacher-lr", "1e-3") == \
        TrialConfig(mitigation="liminal", strength=2.0, teacher_lr=1e-3)


@pytest.mark.parametrize("argv", [["--style", "gaudy"], ["--limit", "x"], ["--verbose", "yes"], ["--mitigation", "x"]])
def test_cli_rejects_a_bad_setting(argv, capsys):
    with pytest.raises(SystemExit):
        _parse(Toy, *argv)
    assert "--" + argv[0].lstrip("-") in capsys.readouterr().err


def test_cli_help_names_every_setting_and_its_default():
    parser = argparse.ArgumentParser(formatter_class=lambda prog: argparse.HelpFormatter(prog, width=1000))
    add_settings(parser, Toy)
    text = parser.format_help()
    assert "--verbose, --no-verbose" in text and "--style {plain,fancy,none}" in text
    assert "--limit {INT,none}" in text and text.count("(default: ") == len(dataclasses.fields(Toy))


@pytest.mark.parametrize("mitigation, typical", [(name, ", ".join(f"{s:g}" for s in m.typical_strengths))
                                                 for name, m in MITIGATIONS.items() if m.max_strength > 0])
def test_sublim_run_refuses_a_mitigation_without_a_strength_naming_typical_ones(tmp_path, capsys, mitigation, typical):
    from sublim import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--mitigation", mitigation, "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err == (f"sublim run: error: --strength: missing; --mitigation {mitigation} needs a strength, typically "
                   f"{typical} (--strength 0 runs it at no strength, which is no mitigation)\n")
    assert list(tmp_path.iterdir()) == []


def test_an_explicit_strength_0_and_mitigation_none_need_no_strength():
    from sublim.cli.run import strength_of

    assert strength_of("projection", 0.0) == 0.0 and strength_of("none", None) == 0.0
    assert strength_of("liminal", 3.0) == 3.0


def test_sublim_run_help_ends_with_examples(capsys):
    from sublim import cli

    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    help_text = capsys.readouterr().out
    examples = help_text[help_text.index("\nexamples:\n"):].strip().splitlines()[1:]
    assert len(examples) >= 4 and all(line.strip().startswith("sublim run") for line in examples)
    assert "(required with any mitigation but none)" in " ".join(help_text.split())
