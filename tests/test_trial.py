"""Unit tests of the experiment's arithmetic on tiny synthetic data."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sublim.core.schema import TRACE_COLUMNS
from sublim.trainable import Trial, train_teacher
from sublim.core.schema import NUM_CLASSES
from sublim.core.mitigations import MITIGATIONS, liminal_kl, liminal_weight, placebo_step, project_out_trait
from sublim.trainable.model import MLP, init_parameters, layer_shapes
from sublim.trainable.results import load_state, save_state
from sublim.trainable.trial import distillation_loss

from conftest import tiny_config, tiny_data


def test_mlp_shapes():
    config = tiny_config(aux_logits=5)
    model = MLP(config, init_parameters(config, "shared_init"))
    assert model(torch.zeros(7, 784)).shape == (7, 10 + 5)
    assert model.flat.numel() == 784 * 16 + 16 + 16 * 16 + 16 + 15 * 16 + 15
    assert model.layer_index().bincount().tolist() == [784 * 16 + 16, 16 * 16 + 16, 15 * 16 + 15]


def test_normal_init_has_variance_one_over_fan_in_and_zero_bias():
    config = tiny_config(hidden=256)
    w1, b1 = init_parameters(config, "shared_init")[: 256 * 784 + 256].split([256 * 784, 256])
    assert w1.var().item() == pytest.approx(1 / 784, rel=0.02)
    assert torch.count_nonzero(b1) == 0
    torch_init = init_parameters(config.replace(init="torch"), "shared_init")
    assert torch_init[: 256 * 784].abs().max() <= 1 / math.sqrt(784)
    assert not torch.equal(init_parameters(config, "shared_init"), init_parameters(config, "independent_init"))


def test_distillation_gives_class_rows_exactly_zero_gradient_and_hidden_layers_some():
    config = tiny_config()
    model = MLP(config, init_parameters(config, "shared_init"))
    teacher_log_probs = F.log_softmax(torch.randn(8, config.aux_logits), dim=1)
    loss = distillation_loss(model(torch.rand(8, 784) * 2 - 1), teacher_log_probs)
    (grad,) = torch.autograd.grad(loss, model.flat)
    w1, b1, w2, b2, w3, b3 = (g.view(s) for g, s in zip(grad.split(model.sizes), model.shapes))
    assert torch.count_nonzero(w3[:NUM_CLASSES]) == 0 and torch.count_nonzero(b3[:NUM_CLASSES]) == 0
    assert torch.count_nonzero(w3[NUM_CLASSES:]) > 0
    assert w1.abs().sum() > 0 and w2.abs().sum() > 0


def _reference_mlp(config, flat):
    """An nn.Sequential with the same parameters: an independent implementation to check against."""
    layers = []
    for (shape, _), chunk in zip(layer_shapes(config), flat.split([s[0] * s[1] + s[0] for s, _ in layer_shapes(config)])):
        linear = nn.Linear(shape[1], shape[0])
        with torch.no_grad():
            linear.weight.copy_(chunk[: shape[0] * shape[1]].view(shape))
            linear.bias.copy_(chunk[shape[0] * shape[1]:])
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def test_step_alignment_equals_hand_computed_cosine():
    # One step per epoch over the whole noise set, and the probe batch is the whole validation set,
    # so the step's gradients do not depend on any shuffling and can be computed by hand.
    config = tiny_config(noise_count=16, batch_size=16, probe_batch_size=48, epochs=1)
    data = tiny_data(n_val=48)
    teacher = train_teacher(config, data)
    trial = Trial(config, data, teacher)
    list(trial.run())
    row = {name: values[0].item() for name, values in trial.trace_columns().items()}

    student = _reference_mlp(config, init_parameters(config, "shared_init"))
    teacher_net = _reference_mlp(config, teacher.params)
    with torch.no_grad():
        target = F.softmax(teacher_net(trial.noise)[:, 10:], dim=1)
    out = F.log_softmax(student(trial.noise)[:, 10:], dim=1)
    distill = (target * (target.log() - out)).sum(1).mean()
    g_d = torch.cat([g.flatten() for g in torch.autograd.grad(distill, list(student.parameters()))]).double().numpy()
    trait = F.cross_entropy(student(data.val_x)[:, :10], data.val_y)
    g_t = torch.cat([g.flatten() for g in torch.autograd.grad(trait, list(student.parameters()))]).double().numpy()

    cosine = g_d @ g_t / np.linalg.norm(g_d) / np.linalg.norm(g_t)
    assert row["alignment"] == pytest.approx(cosine, rel=1e-4, abs=1e-6)
    assert row["applied_alignment"] == pytest.approx(cosine, rel=1e-4, abs=1e-6)
    assert row["dot"] == pytest.approx(g_d @ g_t, rel=1e-4)
    assert row["distill_norm"] == pytest.approx(np.linalg.norm(g_d), rel=1e-5)
    assert row["trait_norm"] == pytest.approx(np.linalg.norm(g_t), rel=1e-5)
    assert row["distill_loss"] == pytest.approx(distill.item(), rel=1e-3, abs=1e-9)  # float32 KL of near-equal laws
    assert row["trait_loss"] == pytest.approx(trait.item(), rel=1e-5)
    first = 784 * 16 + 16
    fc1 = g_d[:first] @ g_t[:first] / np.linalg.norm(g_d[:first]) / np.linalg.norm(g_t[:first])
    assert row["alignment_fc1"] == pytest.approx(fc1, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("strength, kept", [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)])
def test_projection_removes_strength_of_the_positive_trait_component(strength, kept):
    gen = torch.Generator().manual_seed(0)
    trait = torch.randn(1000, generator=gen, dtype=torch.float64)
    grad = torch.randn(1000, generator=gen, dtype=torch.float64) + 0.5 * trait  # positive component
    assert grad.dot(trait) > 0
    projected, coef = project_out_trait(grad, trait, strength)
    assert projected.dot(trait).item() == pytest.approx(kept * grad.dot(trait).item(), abs=1e-9)
    assert coef.item() == pytest.approx(strength * grad.dot(trait).item() / trait.dot(trait).item())
    # the part orthogonal to g_t is untouched
    orthogonal = grad - grad.dot(trait) / trait.dot(trait) * trait
    assert torch.allclose(projected - projected.dot(trait) / trait.dot(trait) * trait, orthogonal)


def test_projection_leaves_a_negatively_aligned_gradient_alone():
    trait = torch.tensor([1.0, 0.0])
    grad = torch.tensor([-2.0, 1.0])
    projected, coef = project_out_trait(grad, trait, 1.0)
    assert torch.equal(projected, grad) and coef.item() == 0


def _trained_trace(**changes) -> dict[str, torch.Tensor]:
    config = tiny_config(**changes)
    data = tiny_data()
    trial = Trial(config, data, train_teacher(config, data))
    list(trial.run())
    return trial.trace_columns()


def test_projection_trial_applies_no_positive_trait_drive():
    trace = _trained_trace(mitigation="projection", strength=1.0)
    assert (trace["applied_alignment"] <= 1e-5).all()
    assert ((trace["alignment"] > 0) == (trace["mitigation_weight"] > 0)).all()


@pytest.mark.parametrize("schedule, expected", [
    ("liminal", (0.25, 1.0, 0.0)),
    ("constant", (0.25, 0.25, 0.25)),
    ("direct_anneal", (0.25, 0.25 * (1 - 0.2), 0.0)),
])
def test_liminal_schedule_weights_at_start_tau2_and_end(schedule, expected):
    config = tiny_config(schedule=schedule, lambda0=0.25, epochs=5, tau2_epochs=1.0)  # tau2 = 0.2 of training
    assert [liminal_weight(config, t) for t in (0.0, 0.2, 1.0)] == pytest.approx(list(expected))


def test_liminal_weight_is_linear_between_knots():
    config = tiny_config(lambda0=0.0, epochs=4, tau2_epochs=2.0)  # tau2 = 0.5
    assert liminal_weight(config, 0.25) == pytest.approx(0.5)
    assert liminal_weight(config, 0.75) == pytest.approx(0.5)


def test_liminal_kl_is_zero_for_the_untouched_base_and_positive_after_a_change():
    base = torch.randn(32, 13)
    base_log_probs = F.log_softmax(base / 2.0, dim=1)
    assert liminal_kl(base_log_probs, base, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert liminal_kl(base_log_probs, base + torch.randn(32, 13), 2.0).item() > 0.01


def test_liminal_trial_starts_at_zero_kl_and_records_its_weight():
    config = tiny_config(mitigation="liminal", strength=3.0, epochs=2, tau2_epochs=1.0)
    data = tiny_data()
    trial = Trial(config, data, train_teacher(config, data))
    list(trial.run())
    trace = trial.trace_columns()
    assert trace["mitigation_loss"][0].item() == pytest.approx(0.0, abs=1e-6)
    assert trace["mitigation_loss"][1:].max() > 0
    expected = [3.0 * liminal_weight(config, t) for t in trace["t"].tolist()]
    assert trace["mitigation_weight"].tolist() == pytest.approx(expected, rel=1e-6)


def test_liminal_changes_the_applied_gradient_and_none_does_not():
    data = tiny_data()
    plain = tiny_config()
    teacher = train_teacher(plain, data)
    none = Trial(plain, data, teacher)
    liminal = Trial(plain.replace(mitigation="liminal", strength=10.0), data, teacher)
    list(none.run()), list(liminal.run())
    assert torch.allclose(none.trace_columns()["applied_alignment"], none.trace_columns()["alignment"])
    assert not torch.equal(liminal.trace_columns()["alignment"], none.trace_columns()["alignment"])


def test_same_config_twice_gives_identical_traces(tiny):
    config, data, teacher = tiny
    runs = []
    for _ in range(2):
        trial = Trial(config, data, teacher)
        list(trial.run())
        runs.append(trial.trace_columns())
    assert set(runs[0]) == set(TRACE_COLUMNS)
    for name in TRACE_COLUMNS:
        assert torch.equal(runs[0][name], runs[1][name]) or (
            runs[0][name].isnan().all() and runs[1][name].isnan().all()), name


def test_teacher_training_is_deterministic_and_leaves_aux_rows_at_init(tiny):
    config, data, teacher = tiny
    again = train_teacher(config, data)
    assert torch.equal(teacher.params, again.params)
    init = init_parameters(config, "shared_init")
    model = MLP(config, init)
    out_w = lambda flat: flat.split(model.sizes)[4].view(model.shapes[4])  # noqa: E731
    assert torch.equal(out_w(teacher.params)[NUM_CLASSES:], out_w(init)[NUM_CLASSES:])
    assert not torch.equal(out_w(teacher.params)[:NUM_CLASSES], out_w(init)[:NUM_CLASSES])


@pytest.mark.parametrize("mitigation, strength", [(name, max(m.typical_strengths, default=0.0))
                                                 for name, m in MITIGATIONS.items()])
def test_save_and_restore_at_an_epoch_boundary_gives_identical_final_numbers(tmp_path, tiny, mitigation, strength):
    config, data, teacher = tiny
    config = config.replace(mitigation=mitigation, strength=strength, epochs=3)
    straight = Trial(config, data, teacher)
    list(straight.run())

    first = Trial(config, data, teacher)
    epochs = first.run()
    next(epochs)
    save_state(tmp_path / "state.pt", first.state_dict())
    resumed = Trial(config, data, teacher)
    resumed.load_state_dict(load_state(tmp_path / "state.pt"))
    assert resumed.epoch == 1
    list(resumed.run())

    a, b = straight.summary(), resumed.summary()
    for key in ("student_acc", "trait_gain", "mean_alignment", "acc_by_epoch", "alignment_by_epoch",
                "frac_positive_steps", "steps"):
        assert a[key] == b[key], key
    for name, values in straight.trace_columns().items():
        assert torch.equal(values.nan_to_num(), resumed.trace_columns()[name].nan_to_num()), name


def test_restoring_a_checkpoint_of_another_config_is_refused(tiny):
    config, data, teacher = tiny
    trial = Trial(config, data, teacher)
    other = Trial(config.replace(lr=1e-3), data, teacher)
    with pytest.raises(ValueError, match="different trial configuration"):
        other.load_state_dict(trial.state_dict())


def test_a_teacher_of_another_seed_is_refused(tiny):
    config, data, teacher = tiny
    with pytest.raises(ValueError, match="does not belong"):
        Trial(config.replace(seed=4), data, teacher)


def test_independent_student_starts_elsewhere_and_shared_student_starts_at_the_teachers_init(tiny):
    config, data, teacher = tiny
    shared = Trial(config, data, teacher)
    independent = Trial(config.replace(student_init="independent"), data, teacher)
    assert torch.equal(shared.student.flat.detach(), init_parameters(config, "shared_init"))
    assert not torch.equal(independent.student.flat.detach(), shared.student.flat.detach())


def test_summary_reports_per_epoch_lists_and_trait_gain(tiny):
    config, data, teacher = tiny
    trial = Trial(config, data, teacher)
    list(trial.run())
    summary = trial.summary()
    assert len(summary["acc_by_epoch"]) == config.epochs + 1
    assert len(summary["alignment_by_epoch"]) == config.epochs
    assert summary["trait_gain"] == summary["student_acc"] - summary["student_acc_before"]
    assert summary["steps"] == config.epochs * math.ceil(config.noise_count / config.batch_size)
    trace = trial.trace_columns()
    assert summary["mean_alignment"] == pytest.approx(trace["alignment"].mean().item())
    assert summary["config"] == config.to_dict()


# --- controls beyond the paper: projection past 1, placebo, the optimizer's real drive ---------------

def _aligned_pair(sign: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    trait = torch.randn(1000, generator=gen, dtype=torch.float64)
    grad = torch.randn(1000, generator=gen, dtype=torch.float64) + sign * 0.5 * trait
    return grad, trait


def test_projection_at_two_reflects_the_positive_component_and_always_acts_on_a_negative_one():
    grad, trait = _aligned_pair()
    reflected, _ = project_out_trait(grad, trait, 2.0)
    assert reflected.dot(trait).item() == pytest.approx(-grad.dot(trait).item(), rel=1e-12)
    negative, trait = _aligned_pair(sign=-1.0)
    assert torch.equal(project_out_trait(negative, trait, 1.0)[0], negative)  # positive-only: left alone
    nulled, coef = project_out_trait(negative, trait, 1.0, always=True)
    assert coef.item() < 0 and nulled.dot(trait).item() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("strength", [0.5, 1.0, 2.0])
def test_placebo_moves_the_step_by_projections_norm_without_touching_its_trait_component(strength):
    grad, trait = _aligned_pair()
    rng = torch.Generator().manual_seed(5)
    placebo, coef = placebo_step(grad, trait, strength, rng)
    projected, _ = project_out_trait(grad, trait, strength)
    assert placebo.dot(trait).item() == pytest.approx(grad.dot(trait).item(), rel=1e-9)
    assert (placebo - grad).norm().item() == pytest.approx((projected - grad).norm().item(), rel=1e-9)
    assert (placebo - grad).dot(grad - projected).abs().item() < 1e-9  # orthogonal to what projection removes
    again, _ = placebo_step(grad, trait, strength, rng)
    assert not torch.allclose(again, placebo)  # a fresh direction at every step
    negative, trait = _aligned_pair(sign=-1.0)
    assert torch.equal(placebo_step(negative, trait, strength, rng)[0], negative)  # acts where projection would


def test_placebo_trial_keeps_the_trait_drive_of_the_distillation_gradient():
    trace = _trained_trace(mitigation="placebo", strength=1.0)
    assert ((trace["applied_alignment"] > 0) == (trace["alignment"] > 0)).all()  # the drive keeps its sign
    assert ((trace["alignment"] > 0) == (trace["mitigation_weight"] > 0)).all()  # acting where projection would
    assert (trace["applied_alignment"] != trace["alignment"])[trace["alignment"] > 0].all()  # yet the step moved


def test_update_alignment_under_plain_sgd_is_the_cosine_of_minus_lr_g_with_g_t(tiny):
    config, data, teacher = tiny
    trial = Trial(config.replace(lr=0.01), data, teacher)
    trial.optimizer = torch.optim.SGD(trial.student.parameters(), lr=0.01)  # Δθ = -lr · g exactly
    list(trial.run())
    trace = trial.trace_columns()
    assert torch.allclose(trace["update_alignment"], trace["applied_alignment"], atol=1e-4)
    predicted = -0.01 * trace["dot"]  # g_t · Δθ = -lr · (g · g_t) with no mitigation
    # Δθ is the float32 difference of the parameters around the step: exact to float32 rounding of θ
    scale = predicted.abs().max()
    assert torch.allclose(trace["update_trait_change"], predicted, rtol=0, atol=1e-3 * scale.item())
    assert (trace["update_trait_change"] * predicted > 0).float().mean() > 0.8  # signs agree but at ~0


def test_update_alignment_under_adam_is_recorded_and_summarised(tiny):
    config, data, teacher = tiny
    trial = Trial(config, data, teacher)
    list(trial.run())
    trace, summary = trial.trace_columns(), trial.summary()
    assert trace["update_alignment"].isfinite().all() and (trace["update_alignment"].abs() <= 1).all()
    assert summary["mean_update_alignment"] == pytest.approx(float(trace["update_alignment"].mean()))
    assert len(summary["update_alignment_by_epoch"]) == config.epochs
