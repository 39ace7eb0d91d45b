"""Tests of ``summary`` against the SNN paper's ResNet-18 figures."""

import pytest
import torch
from torch import nn

from tvm_snn.train import SNNConfig, SNNConv2d, convert, prepare, summary
from tvm_snn.train.models import resnet18
from tvm_snn.train.summary import FLOAT_BITS

from common import BITOPS_G_ATOL

IMAGENET_INPUT = (1, 3, 224, 224)
BINARY_3X3_CONVS = 16

# The README of yikaiw/SNN prints #Params in Mbit and Bit-OPs in G, rounded.
# Params match to every printed digit. The Bit-OPs reconstruction (min of BNN and
# precompute + half-weighted gather) lies within one unit of the last printed
# digit (BITOPS_G_ATOL) of every README figure, e.g. 1.6763 vs 1.677.
PAPER = {9: ("10.99", 1.677), 6: ("7.324", 0.883), 5: ("6.103", 0.501), 4: ("4.882", 0.297)}


@pytest.mark.parametrize("tau", sorted(PAPER))
def test_resnet18_figures_match_the_paper(tau):
    model = prepare(resnet18(stem="imagenet"), SNNConfig(tau_3x3=tau, tau_1x1=None))
    result = summary(model, IMAGENET_INPUT)
    counted = result.counted
    assert len(counted) == BINARY_3X3_CONVS
    assert all(row.kernel == "3x3" and row.tau == tau for row in counted)
    params, bitops = PAPER[tau]
    decimals = len(params.split(".")[1])
    assert f"{result.params_mbit:.{decimals}f}" == params
    assert result.bitops / 1e9 == pytest.approx(bitops, abs=BITOPS_G_ATOL)
    assert result.params_reduction == pytest.approx(9 / tau)
    assert result.bnn_bitops / 1e9 == pytest.approx(PAPER[9][1], abs=BITOPS_G_ATOL)
    assert result.bitops_reduction == pytest.approx(result.bnn_bitops / result.bitops)
    assert "total" in str(result) and "layer4.1.conv2" in str(result)


def test_uncounted_layers_are_listed_in_full_precision():
    model = prepare(resnet18(stem="imagenet"), SNNConfig(tau_3x3=5, tau_1x1=None))
    rows = {row.name: row for row in summary(model, IMAGENET_INPUT[1:]).layers}
    for name in ("conv1", "layer2.0.downsample.0", "fc"):
        assert not rows[name].counted and rows[name].bits_per_weight == FLOAT_BITS
    assert rows["layer4.1.conv2"].output_size == (7, 7)


def test_1x1_and_3x3_counting_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        SNNConv2d(16, 32, 1, tau=3),
        SNNConv2d(32, 8, 3, padding=1, stride=2, tau=2),
    )
    rows = {row.name: row for row in summary(model, (3, 8, 8)).layers}
    pointwise, conv = rows["1"], rows["2"]
    positions = 8 * 8
    assert pointwise.bits_per_weight == 3 / 8
    assert pointwise.params_mbit == 32 * 16 * 3 / 8 / 1e6
    assert pointwise.bnn_bitops == positions * 16 * 32
    assert pointwise.snn_bitops == positions * 2 * (2**3 * 8) + 0.5 * positions * 32 * 2
    assert pointwise.bitops == min(pointwise.bnn_bitops, pointwise.snn_bitops)
    positions = 4 * 4
    assert conv.bnn_bitops == positions * 32 * 8 * 9
    assert conv.snn_bitops == positions * 32 * 2**2 * 9 + 0.5 * positions * 32 * 8


def test_summary_restores_modes_and_does_not_count_steps():
    model = prepare(resnet18(stem="cifar", num_classes=10), SNNConfig(tau_3x3=5))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summary(model, (3, 32, 32))
    assert all(module.training for module in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_converted_model_gives_the_same_summary():
    model = prepare(resnet18(stem="cifar", num_classes=10), SNNConfig(tau_3x3=5, tau_1x1=4))
    prepared = summary(model, (3, 32, 32))
    frozen = summary(convert(model), (3, 32, 32))
    assert prepared.params_mbit == frozen.params_mbit
    assert prepared.bitops == frozen.bitops
    assert len(prepared.counted) == BINARY_3X3_CONVS + 3
