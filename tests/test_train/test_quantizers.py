"""Tests of the sign estimators, the activation binarizer and the weight quantizer."""

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tvm_snn.errors import ConfigError
from tvm_snn.train import SNNConv2d
from tvm_snn.train.quantizers import (
    CLIP,
    DEFAULT_REFINE_PERIOD,
    LATENT_BOUND,
    MEMORY_THRESHOLD,
    BinaryActivation,
    SubsetWeightQuantizer,
    ede_constants,
    set_progress,
)
from tvm_snn.train.subset import UNIT_3X3, kernel_codes

from common import STATISTIC_ATOL, TRAIN_MAX_EXAMPLES

# Keep sampled inputs away from the clip boundary, where the derivative jumps.
BOUNDARY_MARGIN = 1e-3
VALUES = st.floats(-3.0, 3.0, allow_nan=False).filter(
    lambda v: abs(abs(v) - CLIP) > BOUNDARY_MARGIN
)


def _act_grad(estimator, values):
    x = torch.tensor(values, requires_grad=True)
    y = BinaryActivation(estimator)(x)
    y.sum().backward()
    return x, y, x.grad


def test_binary_activation_forward_is_torch_sign_including_zero():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.25, 3.0])
    for estimator in ("ste", "approxsign", "ede"):
        assert torch.equal(BinaryActivation(estimator)(x), torch.sign(x))
    assert BinaryActivation()(torch.zeros(1)).item() == 0.0


@settings(max_examples=TRAIN_MAX_EXAMPLES, deadline=None)
@given(values=st.lists(VALUES, min_size=1, max_size=16))
def test_ste_activation_gradient_is_one_inside_and_zero_outside_the_clip_range(values):
    x, _, grad = _act_grad("ste", values)
    inside = x.detach().abs() <= CLIP
    assert torch.equal(grad, inside.float())


@settings(max_examples=TRAIN_MAX_EXAMPLES, deadline=None)
@given(values=st.lists(VALUES, min_size=1, max_size=16))
def test_approxsign_gradient_is_triangular_inside_and_zero_outside(values):
    x, _, grad = _act_grad("approxsign", values)
    xd = x.detach()
    expected = torch.where(xd.abs() < CLIP, 2 - 2 * xd.abs(), torch.zeros_like(xd))
    torch.testing.assert_close(grad, expected)
    assert bool((grad[xd.abs() > CLIP] == 0).all())
    assert bool((grad[xd.abs() < CLIP] > 0).all())


@pytest.mark.parametrize("progress", [0.0, 0.5, 1.0])
def test_ede_gradient_follows_irnet_formula(progress):
    act = BinaryActivation("ede")
    act.set_progress(progress)
    x = torch.linspace(-2, 2, 41, requires_grad=True)
    act(x).sum().backward()
    t, k = ede_constants(torch.tensor(progress))
    expected = k * t * (1 - torch.tanh(t * x.detach()) ** 2)
    torch.testing.assert_close(x.grad, expected)
    assert float(t) == pytest.approx(0.1 * 100**progress)


def test_set_progress_reaches_every_quantizer_and_validates():
    layer = SNNConv2d(8, 8, 3, binary_act=True, act_estimator="ede", weight_estimator="ede")
    set_progress(layer, 0.25)
    assert layer.input_quantizer.progress.item() == 0.25
    assert layer.weight_quantizer.progress.item() == 0.25
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(ConfigError, match="progress"):
            set_progress(layer, bad)


@settings(max_examples=TRAIN_MAX_EXAMPLES, deadline=None)
@given(seed=st.integers(0, 2**31), tau=st.integers(1, UNIT_3X3))
def test_weight_ste_gradient_is_alpha_inside_and_zero_outside_the_clip_range(seed, tau):
    generator = torch.Generator().manual_seed(seed)
    layer = SNNConv2d(4, 3, 3, tau=tau, refine=False)
    with torch.no_grad():
        layer.weight.copy_(2.0 * torch.randn(layer.weight.shape, generator=generator))
    assume(bool(((layer.weight.abs() - CLIP).abs() > BOUNDARY_MARGIN).all()))
    upstream = torch.randn(layer.weight.shape, generator=generator)
    (layer.weight_quantizer(layer.weight) * upstream).sum().backward()
    alpha = layer.weight.detach().abs().mean(dim=(1, 2, 3))[:, None, None, None]
    inside = (layer.weight.detach().abs() <= CLIP).float()
    torch.testing.assert_close(layer.weight.grad, upstream * alpha * inside)


def test_weight_ede_gradient_follows_irnet_formula():
    layer = SNNConv2d(4, 3, 3, tau=4, refine=False, weight_estimator="ede")
    layer.weight_quantizer.set_progress(0.5)
    upstream = torch.randn(layer.weight.shape)
    (layer.weight_quantizer(layer.weight) * upstream).sum().backward()
    t, k = ede_constants(torch.tensor(0.5))
    w = layer.weight.detach()
    alpha = w.abs().mean(dim=(1, 2, 3))[:, None, None, None]
    expected = upstream * alpha * k * t * (1 - torch.tanh(t * w) ** 2)
    torch.testing.assert_close(layer.weight.grad, expected)


def test_irnet_balance_and_standardize_center_and_scale_each_channel():
    torch.manual_seed(0)  # fixed weights: float32 cancellation of the +5 offset is near atol
    layer = SNNConv2d(8, 4, 3, ir_net_balance=True, ir_net_standardize=True)
    processed = layer.weight_quantizer.preprocess(layer.weight.detach() + 5.0)
    torch.testing.assert_close(processed.mean(dim=(1, 2, 3)), torch.zeros(4), rtol=0, atol=STATISTIC_ATOL)
    torch.testing.assert_close(processed.std(dim=(1, 2, 3)), torch.ones(4))


def _train_steps(layer, steps, lr, target):
    """SGD on a toy loss that pulls the effective weight toward ``target``."""
    optimizer = torch.optim.SGD(layer.parameters(), lr=lr)
    grads = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -(layer.weight_quantizer(layer.weight) * target).sum()
        loss.backward()
        latent = layer.weight_quantizer.latent
        grads.append(None if latent is None or latent.grad is None else latent.grad.clone())
        optimizer.step()
    return grads


def test_refinement_gives_latent_gradient_only_every_k_steps_and_changes_the_subset():
    period = 3
    layer = SNNConv2d(4, 4, 3, tau=3, refine_period=period, seed=1)
    quantizer = layer.weight_quantizer
    before = quantizer.quantize(layer.weight).codebook.clone()
    target = torch.ones_like(layer.weight)
    grads = _train_steps(layer, period, lr=10.0, target=target)
    assert [g is None for g in grads] == [True] * (period - 1) + [False]
    assert quantizer.step.item() == period
    after = quantizer.quantize(layer.weight).codebook
    assert not torch.equal(before, after)


def test_refinement_gradient_sums_alpha_times_upstream_over_assigned_units():
    layer = SNNConv2d(5, 3, 3, tau=3, refine_period=1)
    upstream = torch.randn(layer.weight.shape)
    (layer.weight_quantizer(layer.weight) * upstream).sum().backward()
    parts = layer.weight_quantizer.quantize(layer.weight)
    weighted = (upstream * parts.alpha[:, None, None, None]).reshape(-1, UNIT_3X3)
    expected = torch.zeros_like(parts.codebook).index_add_(0, parts.indices.reshape(-1), weighted)
    torch.testing.assert_close(layer.weight_quantizer.latent.grad, expected)


def test_default_refine_period_is_the_official_25():
    assert DEFAULT_REFINE_PERIOD == 25
    assert SNNConv2d(8, 8, 3).weight_quantizer.refine_period == DEFAULT_REFINE_PERIOD


def test_steps_are_counted_only_in_training_mode():
    layer = SNNConv2d(8, 8, 3)
    x = torch.randn(1, 8, 5, 5)
    layer.eval()
    layer(x)
    assert layer.weight_quantizer.step.item() == 0
    layer.train()
    layer(x)
    layer(x)
    assert layer.weight_quantizer.step.item() == 2


def test_memory_keeps_the_old_sign_of_near_zero_latents():
    layer = SNNConv2d(8, 8, 3, tau=3)
    quantizer = layer.weight_quantizer
    old = quantizer.memory[0, 0].item()
    with torch.no_grad():
        quantizer.latent[0, 0] = -old * MEMORY_THRESHOLD / 10
    assert quantizer.codebook()[0, 0].item() == old
    with torch.no_grad():
        quantizer.latent[0, 0] = -old * MEMORY_THRESHOLD * 10
    assert quantizer.codebook()[0, 0].item() == -old
    assert quantizer.memory[0, 0].item() == -old  # written back in training mode


@settings(max_examples=TRAIN_MAX_EXAMPLES, deadline=None)
@given(seed=st.integers(0, 2**31), tau=st.integers(1, 6), copies=st.integers(2, 4))
def test_dedup_and_refill_leave_distinct_rows_and_clamped_latents(seed, tau, copies):
    layer = SNNConv2d(4, 4, 3, tau=tau, seed=seed)
    quantizer = layer.weight_quantizer
    rows = 1 << tau
    with torch.no_grad():
        quantizer.latent[: min(copies, rows)] = quantizer.latent[0] * 5.0
    quantizer.refresh()
    codes = kernel_codes(quantizer.memory)
    assert codes.unique().numel() == rows
    assert torch.equal(kernel_codes(quantizer.latent.detach()), codes)
    assert float(quantizer.latent.detach().abs().max()) <= LATENT_BOUND
    assert set(quantizer.memory.unique().tolist()) <= {-1.0, 1.0}


def test_refill_is_seeded_by_layer_seed_and_step():
    def refreshed(seed):
        layer = SNNConv2d(4, 4, 3, tau=4, seed=seed)
        with torch.no_grad():
            layer.weight_quantizer.latent[:] = layer.weight_quantizer.latent[0]
        layer.weight_quantizer.refresh()
        return layer.weight_quantizer.memory

    assert torch.equal(refreshed(3), refreshed(3))
    assert not torch.equal(refreshed(3), refreshed(4))


def test_state_dict_round_trip_carries_step_memory_and_subset():
    layer = SNNConv2d(8, 8, 3, tau=3, refine_period=2, seed=5)
    x = torch.randn(2, 8, 5, 5)
    _train_steps(layer, 3, lr=1.0, target=torch.randn(layer.weight.shape))
    with torch.no_grad():
        layer.weight_quantizer.latent[1, 2] = MEMORY_THRESHOLD / 10
    layer.weight_quantizer.codebook()
    state = layer.state_dict()
    assert {"weight_quantizer.step", "weight_quantizer.memory", "weight_quantizer.latent"} <= set(
        state
    )
    clone = SNNConv2d(8, 8, 3, tau=3, refine_period=2, seed=99)
    clone.load_state_dict(state)
    for name in ("step", "memory", "latent", "seed"):
        assert torch.equal(
            getattr(clone.weight_quantizer, name), getattr(layer.weight_quantizer, name)
        )
    layer.eval()
    clone.eval()
    assert torch.equal(clone(x), layer(x))


def test_vanilla_snn_keeps_a_fixed_subset_buffer():
    layer = SNNConv2d(8, 8, 3, tau=4, refine=False)
    quantizer = layer.weight_quantizer
    assert quantizer.latent is None
    assert "weight_quantizer.memory" in layer.state_dict()
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    before = quantizer.memory.clone()
    _train_steps(layer, DEFAULT_REFINE_PERIOD, lr=10.0, target=torch.ones_like(layer.weight))
    assert torch.equal(quantizer.memory, before)


def test_seeded_sampling_is_reproducible():
    first = SNNConv2d(8, 8, 3, tau=5, seed=11).weight_quantizer.memory
    second = SNNConv2d(8, 8, 3, tau=5, seed=11).weight_quantizer.memory
    other = SNNConv2d(8, 8, 3, tau=5, seed=12).weight_quantizer.memory
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_frequent_sampling_uses_the_layer_weights():
    layer = SNNConv2d(16, 16, 3, tau=2, sampling="frequent")
    chosen = kernel_codes(layer.weight_quantizer.memory)
    counts = torch.bincount(
        kernel_codes(layer.weight.detach().reshape(-1, UNIT_3X3)), minlength=512
    )
    assert counts[chosen].min() >= counts.sort(descending=True).values[len(chosen) - 1]


def test_full_set_is_plain_binary_weights_without_refinement():
    layer = SNNConv2d(8, 4, 3, tau=UNIT_3X3)
    quantizer = layer.weight_quantizer
    assert quantizer.latent is None and not quantizer.refine
    w = layer.weight.detach()
    alpha = w.abs().mean(dim=(1, 2, 3))[:, None, None, None]
    expected = alpha * torch.where(w >= 0, 1.0, -1.0)
    assert torch.equal(layer.effective_weight(), expected)


def test_quantizer_rejects_bad_options():
    weight = torch.randn(4, 8, 3, 3)
    with pytest.raises(ConfigError, match="weight_estimator"):
        SubsetWeightQuantizer(weight, 4, estimator="approxsign")
    with pytest.raises(ConfigError, match="refine_period"):
        SubsetWeightQuantizer(weight, 4, refine_period=0)
    with pytest.raises(ConfigError, match="sampling"):
        SubsetWeightQuantizer(weight, 4, sampling="kmeans")
