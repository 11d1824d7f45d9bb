"""The mitigation API: declarations checked at registration, one step hook that always runs, plugins through entry
points, and the built-ins' numbers unchanged by becoming examples of that API."""

from __future__ import annotations

import json
import math
from importlib import metadata

import pytest
import torch

from sublim.core import mitigations as registry_module
from sublim.core.config import ConfigError, TrialConfig
from sublim.core.mitigations import (BUILT_IN, ENTRY_POINT_GROUP, MITIGATIONS, Liminal, Mitigation, MitigationError,
                                     Registry, Step, check_mitigation, project_out_trait)
from sublim.trainable import Trial, train_teacher

from conftest import REPO, tiny_config, tiny_data

REFERENCE = REPO / "tests" / "reference" / "builtin_trials.json"
NOT_IN_REFERENCE = {"teacher_seconds", "student_seconds", "seconds", "versions", "ran_on"}


class Flip(Mitigation):
    """A plugin-like mitigation for these tests: the trait-aligned component reflected (projection at 2s)."""

    description = "flip the trait-aligned component"
    title = "flip"
    colours = ("#123456",)
    max_strength = 1.0
    typical_strengths = (1.0,)
    needs_trait_gradient = True
    placebo_ratio = 2.0

    def step(self, config, s):
        return project_out_trait(s.distill_grad, s.trait_grad, 2 * config.strength)


class LiminalThenProjection(Liminal):
    """A loss term and a gradient transform in one step: liminal's pull, then projection of the sum."""

    name = ""
    description = "liminal's KL pull, then projection of the combined gradient"
    title = "liminal + projection"
    needs_trait_gradient = True
    acts_on_trait_direction = True

    def step(self, config, s):
        combined, weight = super().step(config, s)
        return project_out_trait(combined, s.trait_grad, 1.0)[0], weight


def _declared(**attributes) -> type:
    return type("Declared", (Flip,), attributes)


@pytest.mark.parametrize("attributes, problem", [
    ({"step": Mitigation.step}, "defines no step(config, s)"),
    ({"step": lambda self, s: (s.distill_grad, 0.0)}, "step must take (self, config, s)"),
    ({"base_targets": lambda self, config, logits: logits}, "defines base_targets() but no loss()"),
    ({"needs_trait_gradient": 1}, "needs_trait_gradient must be True or False"),
    ({"typical_strengths": (3.0,)}, "typical_strengths (3.0,) must be numbers in [0, max_strength=1]"),
    ({"typical_strengths": ()}, "declares no typical_strengths"),
    ({"max_strength": 0.0, "typical_strengths": ()}, "dose = True, but max_strength is 0"),
    ({"colours": ("red",)}, "colours ('red',) are not allowed; 1 to 12 colours, each '#rrggbb'"),
    ({"title": "two\nlines"}, "title must be one printable line"),
    ({"name": "other"}, "its class declares name 'other'"),
    ({"placebo_ratio": -1.0}, "placebo_ratio -1.0 is not allowed"),
    ({"claims": {"flip": ("Flip works",)}}, "claim flip: expected (heading, sentence)"),
    ({"contrasts": ({"claim": "flip", "metric": "trait_gain", "test": "t-test", "expect": "<"},)},
     "contrasts[0]: claim 'flip' is not allowed"),
    ({"claims": {"flip": ("Flip", "Flip stops it.")},
      "contrasts": ({"claim": "flip", "metric": "trait_gain", "test": "t-test", "expect": "<", "arms": "other"},)},
     "contrasts[0]: arms 'other' is not allowed; allowed: flip"),
])
def test_an_inconsistent_declaration_fails_at_registration_in_one_line(attributes, problem):
    with pytest.raises(MitigationError) as error:
        check_mitigation(_declared(**attributes), "flip", "plugin of flip-pkg 1.0")
    message = str(error.value)
    assert message.startswith("mitigation 'flip' (plugin of flip-pkg 1.0): ") and problem in message
    assert "\n" not in message


def test_a_consistent_declaration_registers_and_its_facts_are_plain_values():
    flip = check_mitigation(_declared(claims={"flip": ("Flip", "Flip stops acquisition.")}, contrasts=(
        {"claim": "flip", "metric": "trait_gain", "test": "paired t-test", "expect": "<", "arms": "flip",
         "reference": "matched placebo", "role": "primary"},)), "flip", "test")
    facts = flip.facts()
    assert facts["name"] == "flip" and facts["placebo_ratio"] == 2.0 and facts["dose"] is True
    assert json.loads(json.dumps(facts))["claims"] == {"flip": ["Flip", "Flip stops acquisition."]}


def test_every_built_in_passes_the_same_registration_as_a_plugin():
    assert list(MITIGATIONS)[:len(BUILT_IN)] == list(BUILT_IN)
    for name, cls in BUILT_IN.items():
        assert type(check_mitigation(cls, name, "test")) is cls


def test_reading_an_undeclared_gradient_raises_naming_the_declaration():
    s = Step("flip", torch.ones(3), None, None, 0.5, None)
    with pytest.raises(MitigationError, match="does not declare needs_trait_gradient = True"):
        s.trait_grad
    with pytest.raises(MitigationError, match="defines no loss()"):
        s.loss_grad


def _registry(monkeypatch, *entries: tuple[str, str]) -> Registry:
    points = metadata.EntryPoints(metadata.EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in entries)
    monkeypatch.setattr(registry_module.metadata, "entry_points", lambda group: points if group == ENTRY_POINT_GROUP
                        else metadata.EntryPoints(()))
    return Registry()


def test_a_plugin_registers_under_its_entry_point_name(monkeypatch):
    found = _registry(monkeypatch, ("flip", "test_mitigations:Flip"))
    assert list(found) == [*BUILT_IN, "flip"] and found["flip"].name == "flip"
    assert found.record(["flip", "none"])["flip"]["plugin"] == {"distribution": "unknown", "version": "unknown"}


@pytest.mark.parametrize("entry, problem", [
    (("projection", "test_mitigations:Flip"), "the name is taken by a built-in"),
    (("flip", "test_mitigations:NoSuchClass"), "cannot be loaded: AttributeError"),
    (("flip", "test_mitigations:Step"), "is not a subclass of sublim.core.mitigations.Mitigation"),
    (("Flip", "test_mitigations:Flip"), "name 'Flip' is not allowed"),
])
def test_a_plugin_that_collides_or_does_not_load_is_refused_in_one_line(monkeypatch, entry, problem):
    with pytest.raises(MitigationError, match=f"^mitigation '{entry[0]}' .*{problem}"):
        list(_registry(monkeypatch, entry))


def test_the_config_refuses_a_mitigation_that_is_not_installed_naming_the_installed_ones():
    with pytest.raises(ConfigError, match=f"mitigation: 'flip' is not allowed; allowed: {', '.join(MITIGATIONS)} "):
        TrialConfig(mitigation="flip", strength=1.0)


# --- the step hook in a trial ------------------------------------------------------------------------------------

def _install(monkeypatch, cls: type, name: str) -> None:
    """`cls` in this process's registry under `name`, as an installed plugin would be, for one test."""
    monkeypatch.setitem(MITIGATIONS._load(), name, check_mitigation(cls, name, "test"))


def _run(config, data) -> Trial:
    trial = Trial(config, data, train_teacher(config, data))
    list(trial.run())
    return trial


def test_a_loss_term_and_a_transform_compose_in_one_step(monkeypatch):
    """The step gets its own loss gradient beside g_d and g_t: projecting liminal's combined gradient leaves no
    positive trait drive, where projecting g_d alone would have dropped the loss term's gradient."""
    _install(monkeypatch, LiminalThenProjection, "liminal_projection")
    data = tiny_data()
    config = tiny_config(mitigation="liminal", strength=3.0)
    trace = _run(config.replace(mitigation="liminal_projection"), data).trace_columns()
    liminal = _run(config, data).trace_columns()
    assert torch.equal(trace["mitigation_weight"], liminal["mitigation_weight"])  # liminal's weight, recorded
    assert trace["mitigation_loss"][0] == 0 and (trace["mitigation_loss"][1:] > 0).all()  # its loss term ran
    assert (trace["applied_alignment"] <= 1e-6).all()  # then the projection of the sum
    assert (liminal["applied_alignment"] > 1e-3).any()
    projection = _run(config.replace(mitigation="projection", strength=1.0), data).trace_columns()
    assert not torch.equal(trace["applied_alignment"], projection["applied_alignment"])  # the loss gradient counts


def test_the_step_runs_without_tracking_and_at_strength_zero(monkeypatch):
    calls = []

    class Counted(Flip):
        def step(self, config, s):
            calls.append(s.t)
            return super().step(config, s)

    _install(monkeypatch, Counted, "counted")
    data = tiny_data()
    config = tiny_config(mitigation="counted", strength=0.0)
    trial = Trial(config, data, train_teacher(config, data), track_alignment=False)
    list(trial.run())
    assert calls == [step / trial.total_steps for step in range(trial.total_steps)]


def test_a_step_that_returns_the_wrong_thing_fails_in_one_line(monkeypatch):
    class Bad(Flip):
        def step(self, config, s):
            return s.distill_grad[:3], 0.0

    _install(monkeypatch, Bad, "bad")
    with pytest.raises(MitigationError, match=r"^mitigation 'bad': step must return \(a gradient shaped like"):
        _run(tiny_config(mitigation="bad", strength=1.0), tiny_data())


# --- the built-ins' numbers, against values recorded before the step hook ----------------------------------------

def _same(recorded, now, exact: bool) -> bool:
    if isinstance(recorded, float) and isinstance(now, float):
        return (math.isnan(recorded) and math.isnan(now)) or (recorded == now if exact else
                                                              math.isclose(recorded, now, rel_tol=1e-5, abs_tol=1e-9))
    if isinstance(recorded, list):
        return len(recorded) == len(now) and all(_same(a, b, exact) for a, b in zip(recorded, now))
    if isinstance(recorded, dict):
        return recorded.keys() == now.keys() and all(_same(recorded[k], now[k], exact) for k in recorded)
    return recorded == now


def test_built_ins_give_the_trace_and_summary_recorded_before_they_became_plugins():
    """Identical to the last bit on a machine like the one that recorded them (same torch, same CPU capability,
    one thread); elsewhere float rounding may differ, and they agree to 1e-5."""
    reference = json.loads(REFERENCE.read_text())
    meta = reference["meta"]
    threads = torch.get_num_threads()
    torch.set_num_threads(meta["threads"])
    exact = (torch.__version__, torch.backends.cpu.get_cpu_capability()) == (meta["torch"], meta["cpu_capability"])
    data = tiny_data()
    try:
        for recorded in reference["trials"]:
            config = TrialConfig.from_dict(recorded["config"])
            trial = Trial(config, data, train_teacher(config, data), track_alignment=recorded["track"])
            list(trial.run())
            trace = {name: values.tolist() for name, values in trial.trace_columns().items()}
            summary = {k: v for k, v in trial.summary().items() if k not in NOT_IN_REFERENCE}
            assert _same(recorded["trace"], trace, exact), f"trace of {config.arm}, tracked={recorded['track']}"
            assert _same(recorded["summary"], summary, exact), f"summary of {config.arm}, tracked={recorded['track']}"
    finally:
        torch.set_num_threads(threads)
    assert {r["config"]["mitigation"] for r in reference["trials"]} == set(BUILT_IN)


def test_resume_without_a_recorded_plugin_is_refused_naming_it_before_any_work(tmp_path, capsys):
    from sublim import cli

    folder = tmp_path / "results" / "flip"
    folder.mkdir(parents=True)
    record = {"flip": {**check_mitigation(Flip, "flip", "test").facts(),
                       "plugin": {"distribution": "sublim-flip", "version": "0.3"}}}
    (folder / "sweep.json").write_text(json.dumps({"name": "flip", "trials": [], "mitigations": record}))
    spec = tmp_path / "flip.yaml"
    spec.write_text("name: flip\nseeds: [0]\narms: [{mitigation: flip, strengths: 1.0}]\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", str(spec), "--storage", str(tmp_path / "results"), "--resume"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "trials use mitigation 'flip' (plugin sublim-flip 0.3), not installed here; install it to resume" in err
    assert sorted(p.name for p in folder.iterdir()) == ["sweep.json"]
