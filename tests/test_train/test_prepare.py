"""Tests of ``prepare`` (swapping convs) and ``convert`` (freezing for export)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tvm_snn.errors import ConfigError
from tvm_snn.train import (
    BinaryActivation,
    Sign,
    SNNConfig,
    SNNConv2d,
    SNNMeta,
    convert,
    default_filter,
    prepare,
    snn_metadata,
)
from tvm_snn.train.subset import UNIT_1X1, UNIT_3X3

from common import TRAIN_MAX_EXAMPLES


class TinyNet(nn.Module):
    """Covers every default-filter rule: first conv, 3x3, 1x1 (C_in % 8 == 0 or not),
    depthwise, 5x5, and a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.block = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.block2 = nn.Conv2d(16, 16, 3, padding=1)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pointwise = nn.Conv2d(16, 12, 1)
        self.odd_pointwise = nn.Conv2d(12, 16, 1)
        self.wide = nn.Conv2d(16, 16, 5, padding=2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.block2(self.block(self.stem(x)))
        x = self.wide(self.odd_pointwise(self.pointwise(self.depthwise(x))))
        return self.fc(x.mean(dim=(2, 3)))


SWAPPED = ["block.0", "block2", "pointwise"]
KEPT = ["stem", "depthwise", "odd_pointwise", "wide"]


def _modules(model):
    return dict(model.named_modules())


def test_default_prepare_swaps_exactly_the_supported_convs_after_the_first():
    torch.manual_seed(0)
    model = TinyNet()
    prepared = prepare(model, SNNConfig(tau_3x3=4, tau_1x1=3))
    modules = _modules(prepared)
    for name in SWAPPED:
        assert type(modules[name]) is SNNConv2d, name
        assert torch.equal(modules[name].weight, _modules(model)[name].weight)
    for name in KEPT:
        assert type(modules[name]) is nn.Conv2d, name
    assert type(modules["fc"]) is nn.Linear
    assert modules["block.0"].tau == 4 and modules["pointwise"].tau == 3
    assert not any(isinstance(m, SNNConv2d) for m in model.modules()), "input model was modified"


def test_tau_1x1_none_keeps_pointwise_convs_in_full_precision():
    prepared = prepare(TinyNet(), SNNConfig(tau_1x1=None))
    assert type(_modules(prepared)["pointwise"]) is nn.Conv2d
    assert type(_modules(prepared)["block2"]) is SNNConv2d


def test_binary_act_puts_a_binarizer_in_front_of_each_swapped_conv():
    prepared = prepare(TinyNet(), SNNConfig(binary_act=True, act_estimator="ste"))
    for name in SWAPPED:
        quantizer = _modules(prepared)[name].input_quantizer
        assert isinstance(quantizer, BinaryActivation) and quantizer.estimator == "ste"


def test_forced_filter_on_unsupported_conv_names_layer_and_shape():
    select_all = SNNConfig(
        filter_fn=lambda module, fqn: isinstance(module, nn.Conv2d) and fqn != "wide"
    )
    with pytest.raises(ConfigError, match=r"odd_pointwise.*\(16, 12, 1, 1\)"):
        prepare(TinyNet(), select_all)
    with pytest.raises(ConfigError, match=r"wide.*\(5, 5\)"):
        prepare(TinyNet(), SNNConfig(filter_fn=lambda module, fqn: fqn == "wide"))


def test_custom_filter_replaces_the_default_and_default_filter_is_composable():
    model = TinyNet()
    keep = default_filter(model)
    config = SNNConfig(filter_fn=lambda module, fqn: keep(module, fqn) and fqn != "block2")
    modules = _modules(prepare(model, config))
    assert type(modules["block2"]) is nn.Conv2d and type(modules["block.0"]) is SNNConv2d


def test_prepare_rejects_non_configs_and_is_idempotent():
    with pytest.raises(ConfigError, match="SNNConfig"):
        prepare(TinyNet(), {"tau_3x3": 5})
    once = prepare(TinyNet())
    twice = prepare(once)
    assert set(once.state_dict()) == set(twice.state_dict())


def test_per_layer_seeds_are_derived_and_reproducible():
    model = TinyNet()
    first = prepare(model, SNNConfig(seed=3))
    again = prepare(model, SNNConfig(seed=3))
    other = prepare(model, SNNConfig(seed=4))
    memory = {name: _modules(first)[name].weight_quantizer.memory for name in SWAPPED}
    for name in SWAPPED:
        assert torch.equal(memory[name], _modules(again)[name].weight_quantizer.memory)
    assert not torch.equal(memory["block.0"], memory["block2"])
    assert not torch.equal(memory["block.0"], _modules(other)["block.0"].weight_quantizer.memory)


def test_frequent_sampling_in_prepare_sees_the_copied_weights():
    model = TinyNet()
    with torch.no_grad():
        model.block2.weight.copy_(torch.ones_like(model.block2.weight))
    layer = _modules(prepare(model, SNNConfig(sampling="frequent", tau_3x3=1)))["block2"]
    assert bool((layer.weight_quantizer.memory == 1).all(dim=1).any())


def _trained(config, steps=3):
    torch.manual_seed(0)
    model = prepare(TinyNet(), config)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(4, 3, 8, 8)).square().mean().backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("binary_act", [False, True])
def test_convert_reproduces_the_prepared_model_exactly(binary_act):
    model = _trained(SNNConfig(tau_3x3=3, tau_1x1=2, binary_act=binary_act, refine_period=1))
    frozen = convert(model)
    assert not any(isinstance(m, (SNNConv2d, BinaryActivation)) for m in frozen.modules())
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(frozen(x), model(x))
    assert any(isinstance(m, SNNConv2d) for m in model.modules()), "convert modified its input"


def test_converted_layers_are_plain_convs_with_metadata():
    model = _trained(SNNConfig(tau_3x3=3, tau_1x1=2, binary_act=True))
    frozen = convert(model)
    meta = snn_metadata(frozen)
    assert sorted(meta) == sorted(f"{name}.1" for name in SWAPPED)
    for name in SWAPPED:
        sequence = _modules(frozen)[name]
        assert isinstance(sequence, nn.Sequential) and isinstance(sequence[0], Sign)
        assert type(sequence[1]) is nn.Conv2d
        layer = _modules(model)[name]
        info = meta[f"{name}.1"]
        assert isinstance(info, SNNMeta) and info.tau == layer.tau and info.activation == "binary"
        assert info.codebook.dtype == torch.int8 and info.codebook.shape == (
            1 << layer.tau,
            layer.unit,
        )
        assert set(info.codebook.unique().tolist()) <= {-1, 1}
        rebuilt = info.alpha[:, None, None] * info.codebook.float()[info.indices]
        assert torch.equal(rebuilt.reshape(layer.weight.shape), sequence[1].weight.detach())
        assert not any("snn" in key for key in sequence.state_dict())
    float_frozen = convert(_trained(SNNConfig(binary_act=False), steps=0))
    assert type(_modules(float_frozen)["block2"]) is nn.Conv2d
    assert snn_metadata(float_frozen)["block2"].activation == "float"


def test_exported_graph_has_sign_before_each_sub_bit_conv():
    frozen = convert(_trained(SNNConfig(binary_act=True), steps=0))
    program = torch.export.export(frozen, (torch.randn(1, 3, 8, 8),))
    nodes = list(program.graph.nodes)
    convs = [n for n in nodes if n.op == "call_function" and "conv2d" in str(n.target)]
    fed_by_sign = [c for c in convs if "sign" in str(c.args[0].target)]
    assert len(convs) == len(SWAPPED) + len(KEPT)
    assert len(fed_by_sign) == len(SWAPPED)


@settings(max_examples=TRAIN_MAX_EXAMPLES, deadline=None)
@given(
    kernel=st.sampled_from([3, 1]),
    tau_fraction=st.floats(0.0, 1.0),
    out_channels=st.integers(1, 24),
    in_units=st.integers(1, 12),
    balance=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_converted_weights_use_at_most_2_tau_sign_patterns(
    kernel, tau_fraction, out_channels, in_units, balance, seed
):
    unit = UNIT_3X3 if kernel == 3 else UNIT_1X1
    tau = 1 + round(tau_fraction * (unit - 1))
    in_channels = in_units * (1 if kernel == 3 else UNIT_1X1)
    torch.manual_seed(seed)
    layer = SNNConv2d(in_channels, out_channels, kernel, tau=tau, ir_net_balance=balance, seed=seed)
    frozen = convert(layer)
    meta = frozen.snn_meta
    weight = frozen.weight.detach().reshape(out_channels, -1, unit)
    channel_sign = torch.sign(meta.alpha)[:, None, None]
    patterns = (torch.sign(weight) * channel_sign).reshape(-1, unit)
    distinct = patterns.unique(dim=0)
    assert distinct.shape[0] <= 1 << tau
    codebook = meta.codebook.float()
    assert bool((distinct[:, None, :] == codebook[None]).all(dim=2).any(dim=1).all())
