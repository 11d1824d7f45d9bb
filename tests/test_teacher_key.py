"""The teacher key derives from the fields marked `teacher`, and every field that changes the teacher is marked.

A field left unmarked while it changes the teacher would let two trials share the wrong cached teacher;
here each field is changed on its own, the teacher trained again, and the outcome compared with the marks.
"""

import functools
import hashlib
import json

import pytest
import torch

from sublim.trainable import TrialConfig, TrialData, train_teacher

from conftest import tiny_config, tiny_data

# Liminal at 0.5 as the base, so that mitigation and strength can each change alone and stay valid.
BASE = tiny_config(mitigation="liminal", strength=0.5, train_size=300)

# One other valid value per field of TrialConfig; a new field must be added here, so that it is tested.
CHANGES = {
    "seed": 4, "mitigation": "projection", "strength": 1.0, "student_init": "independent", "init": "torch",
    "projection_when": "always",
    "schedule": "constant", "lambda0": 0.5, "tau2_epochs": 0.5, "temperature": 3.0, "kl_logits": "aux",
    "epochs": 3, "teacher_epochs": 2, "batch_size": 32, "lr": 1e-3, "teacher_lr": 1e-3, "hidden": 8,
    "aux_logits": 2, "noise_count": 32, "probe_batch_size": 12, "train_size": 200, "split_seed": 1,
    # train_teacher runs where the data lies; config.device only tells the caller where to put it.
    "device": "auto",
}

# They act through the train/validation split (TrialData.from_mnist), which synthetic data does not
# have: the real-MNIST test below exercises them.
SPLIT_FIELDS = {"train_size", "split_seed"}

# The teacher key of the results folders written so far: the formula must never change.
LEGACY_FIELDS = ("seed", "init", "hidden", "aux_logits", "teacher_epochs", "teacher_lr", "batch_size",
                 "train_size", "split_seed")


def legacy_key(config: TrialConfig) -> str:
    blob = json.dumps({name: getattr(config, name) for name in LEGACY_FIELDS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def changed_configs() -> dict[str, TrialConfig]:
    return {name: BASE.replace(**{name: value}) for name, value in CHANGES.items()}


def teacher_changers(data_for) -> set[str]:
    """The fields whose change alone changes the trained teacher's parameters or test accuracy."""
    base = train_teacher(BASE, data_for(BASE))
    again = train_teacher(BASE, data_for(BASE))
    assert torch.equal(base.params, again.params), "teacher training must be deterministic for this test"
    changers = set()
    for name, config in changed_configs().items():
        teacher = train_teacher(config, data_for(config))
        if teacher.test_acc != base.test_acc or not torch.equal(teacher.params, base.params):
            changers.add(name)
    return changers


def test_every_field_has_a_change_to_test():
    assert set(CHANGES) == {f for f in TrialConfig.__dataclass_fields__}
    assert all(getattr(BASE, name) != value for name, value in CHANGES.items())


def test_the_marks_are_the_legacy_teacher_fields_and_the_key_value_is_unchanged():
    assert set(TrialConfig.teacher_fields()) == set(LEGACY_FIELDS)
    assert TrialConfig().teacher_key == "e98cf7d704ce9d11"
    other = TrialConfig(seed=5, init="torch", hidden=16, teacher_lr=1e-3, train_size=1000, split_seed=2)
    assert other.teacher_key == "f8dc4f6909fdb516"
    for config in [BASE, *changed_configs().values()]:
        assert config.teacher_key == legacy_key(config)


def test_the_key_changes_exactly_with_the_marked_fields():
    changed = {name for name, config in changed_configs().items() if config.teacher_key != BASE.teacher_key}
    assert changed == set(TrialConfig.teacher_fields())


def test_every_field_that_changes_the_teacher_is_marked():
    data = tiny_data()
    changers = teacher_changers(lambda config: data)
    marked = set(TrialConfig.teacher_fields())
    assert not changers - marked, f"change the teacher but are not marked teacher=True: {changers - marked}"
    # Conversely no mark is idle, except those that act through the split, tested on real data below.
    assert marked - changers == SPLIT_FIELDS


@pytest.mark.mnist
def test_every_field_that_changes_the_teacher_is_marked_on_real_mnist(mnist):
    @functools.cache
    def split(train_size: int, split_seed: int) -> TrialData:
        return TrialData.from_mnist(mnist, BASE.replace(train_size=train_size, split_seed=split_seed),
                                    torch.device("cpu"))

    changers = teacher_changers(lambda config: split(config.train_size, config.split_seed))
    assert changers == set(TrialConfig.teacher_fields())
