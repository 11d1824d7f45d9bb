"""The trial configuration rejects bad values before any work, naming the field and what is allowed."""

import pytest

from sublim.trainable import ConfigError, TrialConfig


def test_defaults_are_the_published_protocol():
    config = TrialConfig()
    assert (config.epochs, config.teacher_epochs, config.batch_size, config.lr) == (5, 5, 1024, 3e-4)
    assert (config.hidden, config.aux_logits, config.noise_count, config.probe_batch_size) == (256, 3, 50_000, 1024)
    assert (config.temperature, config.schedule, config.lambda0, config.kl_logits) == (2.0, "liminal", 1.0, "all")
    assert (config.init, config.student_init, config.train_size) == ("normal", "shared", 50_000)


@pytest.mark.parametrize("values, message", [
    ({"mitigation": "dropout"}, "mitigation: 'dropout' is not allowed; allowed: none, projection, liminal"),
    ({"mitigation": "liminal", "strength": -0.5}, "strength: -0.5 is not allowed; must be >= 0"),
    ({"mitigation": "projection", "strength": 1.5}, "strength: 1.5 is not allowed; projection strength must be in [0, 1]"),
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
    ({"sede": 1}, "sede: unknown setting; allowed: seed, mitigation"),
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
