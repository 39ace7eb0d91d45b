"""Tests of ``SNNConv2d`` against the float conv (larq style) and its invariants."""

import inspect

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tvm_snn.errors import ConfigError
from tvm_snn.train import BinaryActivation, SNNConv2d
from tvm_snn.train.layers import DEFAULT_TAU_1X1, DEFAULT_TAU_3X3
from tvm_snn.train.subset import UNIT_1X1, UNIT_3X3

from common import TRAIN_MAX_EXAMPLES

# Both paths run the very same conv on the very same tensors.
EXACT = {"rtol": 0.0, "atol": 0.0}


def test_signature_accepts_every_conv2d_argument_with_the_same_defaults():
    conv = inspect.signature(nn.Conv2d.__init__).parameters
    snn = inspect.signature(SNNConv2d.__init__).parameters
    for name, param in conv.items():
        assert name in snn, name
        assert snn[name].kind == param.kind, name
        assert snn[name].default == param.default, name
    extra = [p for name, p in snn.items() if name not in conv]
    assert extra and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extra)
    assert all(p.default is not inspect.Parameter.empty for p in extra)


def test_accepts_conv2d_arguments_positionally_and_behaves_as_a_conv2d():
    layer = SNNConv2d(8, 16, 3, 2, 1, 1, 1, False, "reflect", None, torch.float32)
    assert isinstance(layer, nn.Conv2d)
    assert layer.stride == (2, 2) and layer.padding_mode == "reflect" and layer.bias is None
    assert layer(torch.randn(1, 8, 9, 9)).shape == (1, 16, 5, 5)
    assert SNNConv2d(8, 8, 3).tau == DEFAULT_TAU_3X3
    assert SNNConv2d(8, 8, 1).tau == DEFAULT_TAU_1X1


LAYER_CASES = st.fixed_dictionaries(
    {
        "kernel": st.sampled_from([3, 1]),
        "in_units": st.integers(1, 3),
        "out_channels": st.integers(1, 6),
        "stride": st.integers(1, 2),
        "padding": st.integers(0, 1),
        "dilation": st.integers(1, 2),
        "bias": st.booleans(),
        "tau_fraction": st.floats(0.0, 1.0),
        "refine": st.booleans(),
        "balance": st.booleans(),
        "seed": st.integers(0, 2**31),
    }
)


def _build(case, binary_act=True):
    unit = UNIT_3X3 if case["kernel"] == 3 else UNIT_1X1
    in_channels = case["in_units"] * (1 if case["kernel"] == 3 else UNIT_1X1)
    tau = 1 + round(case["tau_fraction"] * (unit - 1))
    torch.manual_seed(case["seed"])
    return SNNConv2d(
        in_channels,
        case["out_channels"],
        case["kernel"],
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
        bias=case["bias"],
        tau=tau,
        binary_act=binary_act,
        refine=case["refine"],
        ir_net_balance=case["balance"],
        seed=case["seed"],
    )


@settings(max_examples=TRAIN_MAX_EXAMPLES, deadline=None)
@given(case=LAYER_CASES, train=st.booleans())
def test_matches_float_conv_on_projected_weights_and_sign_inputs(case, train):
    layer = _build(case, binary_act=True)
    layer.train(train)
    x = torch.randn(2, layer.in_channels, 7, 7, generator=torch.Generator().manual_seed(1))
    y = layer(x)
    parts = layer.weight_quantizer.quantize(layer.weight)
    weight = parts.alpha[:, None, None] * parts.codebook[parts.indices]
    expected = F.conv2d(
        torch.sign(x),
        weight.reshape(layer.weight.shape),
        layer.bias,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
    )
    torch.testing.assert_close(y, expected, **EXACT)


@settings(max_examples=TRAIN_MAX_EXAMPLES, deadline=None)
@given(case=LAYER_CASES)
def test_every_effective_unit_is_alpha_times_a_subset_row(case):
    layer = _build(case, binary_act=False)
    quantizer = layer.weight_quantizer
    effective = quantizer(layer.weight).detach()
    out_channels = layer.out_channels
    units = effective.reshape(out_channels, -1, layer.unit)
    alpha = quantizer.preprocess(layer.weight).detach().abs().mean(dim=(1, 2, 3))
    subset = quantizer.codebook()
    for o in range(out_channels):
        matches = (units[o][:, None, :] == alpha[o] * subset[None, :, :]).all(dim=2)
        assert bool(matches.any(dim=1).all()), f"output channel {o} has a unit outside the subset"


def test_float_activation_layer_passes_input_unchanged():
    layer = SNNConv2d(8, 4, 3, padding=1)
    x = torch.randn(1, 8, 5, 5)
    expected = F.conv2d(x, layer.effective_weight(), layer.bias, padding=1)
    torch.testing.assert_close(layer(x), expected, **EXACT)
    assert isinstance(layer.input_quantizer, nn.Identity)
    assert isinstance(SNNConv2d(8, 4, 3, binary_act=True).input_quantizer, BinaryActivation)


def test_from_conv_copies_weights_and_options():
    conv = nn.Conv2d(16, 8, 1, stride=2, bias=True)
    layer = SNNConv2d.from_conv(conv, tau=3, seed=4)
    assert torch.equal(layer.weight, conv.weight) and torch.equal(layer.bias, conv.bias)
    assert layer.stride == (2, 2) and layer.tau == 3 and layer.unit == UNIT_1X1


def test_1x1_units_are_eight_consecutive_input_channels():
    layer = SNNConv2d(16, 2, 1, tau=UNIT_1X1, bias=False)
    effective = layer.effective_weight().reshape(2, 2, UNIT_1X1)
    signs = torch.where(layer.weight.detach() >= 0, 1.0, -1.0).reshape(2, 2, UNIT_1X1)
    alpha = layer.weight.detach().abs().mean(dim=(1, 2, 3))
    assert torch.equal(effective, alpha[:, None, None] * signs)
    assert layer.weight_quantizer.quantize(layer.weight).indices.shape == (2, 2)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((12, 8, 1), {}, r"weight shape \(8, 12, 1, 1\).*divisible by 8"),
        ((16, 8, 1), {"groups": 4}, "divisible by 8"),
        ((8, 8, 5), {}, r"\(5, 5\)"),
        ((8, 8, 3), {"tau": 0}, "tau=0"),
        ((8, 8, 3), {"tau": 10}, "tau=10"),
        ((8, 8, 1), {"tau": 9}, "tau=9"),
        ((8, 8, 3), {"act_estimator": "relu"}, "act_estimator"),
        ((8, 8, 3), {"binary_act": "yes"}, "binary_act"),
        ((8, 8, 3), {"seed": -1}, "seed"),
        ((8, 8, 3), {"seed": 2**63}, "seed"),
    ],
)
def test_rejects_unsupported_layers_and_options(args, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SNNConv2d(*args, **kwargs)
