"""Tests of the model zoo and the registry."""

import pytest
import torch
from torch import nn

from tvm_snn.errors import ConfigError
from tvm_snn.train import MODEL_REGISTRY, ModelSpec, SNNConfig, SNNConv2d, build_model
from tvm_snn.train.quantizers import BinaryActivation

DIGITS_SHAPE = (2, 1, 8, 8)
CLASSES = 10
NARROW = 8
# Parameter counts of torchvision's resnet18/34/50 (1000 classes, ImageNet stem).
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}
RESNET20_CONVS = 1 + 18 + 2  # stem, 9 blocks of two, two downsample shortcuts


def _convs(model, kind=nn.Conv2d):
    return [m for m in model.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
@pytest.mark.parametrize("variant", ["float", "subbit", "binary"])
def test_every_model_and_variant_classifies_digits(name, variant):
    model = build_model(name, CLASSES, in_channels=1, config=variant, width=NARROW, seed=0)
    snn = _convs(model, SNNConv2d)
    assert bool(snn) == (variant != "float")
    assert all(layer.binary_act == (variant == "binary") for layer in snn)
    model.train()
    logits = model(torch.randn(DIGITS_SHAPE))
    assert logits.shape == (DIGITS_SHAPE[0], CLASSES)
    logits.sum().backward()


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_imagenet_resnets_match_torchvision_sizes(name):
    model = build_model(name, 1000, stem="imagenet")
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[name]


def test_resnet20_has_twenty_weight_layers_plus_shortcuts():
    model = build_model("resnet20")
    assert len(_convs(model)) == RESNET20_CONVS
    assert [m.out_channels for m in _convs(model)][:2] == [16, 16]


def test_resnet50_bottleneck_1x1_convs_become_sub_bit():
    model = build_model("resnet50", CLASSES, stem="cifar", config=SNNConfig(tau_3x3=5, tau_1x1=4))
    pointwise = [m for m in _convs(model, SNNConv2d) if tuple(m.kernel_size) == (1, 1)]
    assert len(pointwise) == 16 * 2 + 4  # reduce + expand per block, and every downsample
    assert {m.tau for m in pointwise} == {4}


def test_vgg_small_has_six_convs_and_only_the_first_stays_float():
    model = build_model("vgg_small", CLASSES, config="binary")
    assert len(_convs(model)) == 6
    assert type(model.features[0]) is nn.Conv2d
    assert len(_convs(model, SNNConv2d)) == 5
    assert sum(isinstance(m, BinaryActivation) for m in model.modules()) == 5


def test_seeded_builds_are_identical_and_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    first = build_model("resnet20", width=NARROW, config="subbit", seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    second = build_model("resnet20", width=NARROW, config="subbit", seed=5)
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    other = build_model("resnet20", width=NARROW, config="subbit", seed=6)
    assert not torch.equal(other.conv1.weight, first.conv1.weight)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"name": "resnet99"}, "model"),
        ({"name": "resnet20", "config": "ternary"}, "variant"),
        ({"name": "resnet20", "config": 5}, "config"),
        ({"name": "resnet20", "stem": "mobile"}, "stem"),
        ({"name": "vgg_small", "stem": "cifar"}, "stem"),
        ({"name": "resnet20", "width": 0}, "width"),
    ],
)
def test_bad_arguments_raise_config_errors(arguments, match):
    with pytest.raises(ConfigError, match=match):
        build_model(**arguments)


def test_model_spec_round_trips_and_rebuilds_the_same_model():
    spec = ModelSpec("resnet20", CLASSES, 1, SNNConfig(tau_3x3=4, binary_act=True), width=NARROW, seed=2)
    again = ModelSpec.from_dict(spec.to_dict())
    assert again == spec
    for a, b in zip(spec.build().state_dict().values(), again.build().state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="unknown fields"):
        ModelSpec.from_dict(spec.to_dict() | {"depth": 3})
