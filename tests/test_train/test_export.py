"""Tests of ONNX / torch.export export: ONNX Runtime agrees, weights stay in the codebook."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from tvm_snn.errors import FormatError
from tvm_snn.schema import SCHEMA_VERSION, parse_layers_metadata
from tvm_snn.train import SNNConfig, SNNConv2d, build_model, export
from tvm_snn.train.exporter import (
    LAYERS_KEY,
    MAX_IR_VERSION,
    ONNX_OPSET,
    SCHEMA_KEY,
    check_weight,
    read_layers,
    scope_of,
)

from common import FLOAT_ATOL, FLOAT_RTOL

SHAPE = (3, 1, 8, 8)
WIDTH = 8  # 1x1 shortcuts have 8 and 16 input channels: sub-bit too
TAU_3X3 = 4
TAU_1X1 = 3


def _trained_like(config):
    """A prepared ResNet-20 with batch norms that flip some output channels (negative gamma)."""
    model = build_model("resnet20", 10, 1, config, width=WIDTH, seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                size = module.num_features
                module.weight.copy_(torch.rand(size, generator=generator) * 2 - 0.6)
                module.bias.copy_(torch.rand(size, generator=generator) - 0.5)
                module.running_mean.copy_(torch.rand(size, generator=generator) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
    return model.eval()


@pytest.fixture(scope="module", params=[False, True], ids=["float-act", "binary-act"])
def exported(request, tmp_path_factory):
    config = SNNConfig(tau_3x3=TAU_3X3, tau_1x1=TAU_1X1, binary_act=request.param, seed=4)
    model = _trained_like(config)
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    result = export(model, torch.zeros(SHAPE), path, dynamic_batch=True)
    return model, result, onnx.load(str(path))


def _ort(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def test_onnx_runtime_matches_pytorch(exported):
    model, result, _ = exported
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_ort(result.onnx_path, x), expected, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)


def test_every_sub_bit_conv_uses_at_most_2_to_the_tau_patterns_up_to_channel_sign(exported):
    model, _, proto = exported
    initializers = {item.name: numpy_helper.to_array(item) for item in proto.graph.initializer}
    layers = json.loads({p.key: p.value for p in proto.metadata_props}[LAYERS_KEY])
    expected = {name: m for name, m in model.named_modules() if isinstance(m, SNNConv2d)}
    assert len(layers) == len(expected)
    flipped_channels = 0
    for entry in layers:
        weight = initializers[entry["weight"]]
        layer = expected[entry["module"].removesuffix(".1")]  # binary act: Sequential(Sign, conv)
        assert weight.shape == tuple(layer.weight.shape)
        assert (entry["tau"], entry["unit"]) == (layer.tau, layer.unit)
        assert entry["kernel"] == ("1x1" if layer.unit == 8 else "3x3")
        codebook = {tuple(row) for row in entry["codebook"]}
        assert len(codebook) <= 2 ** entry["tau"]
        units = weight.reshape(weight.shape[0], -1, entry["unit"])
        patterns = set()
        for channel in units:
            signs = [tuple(int(s) for s in row) for row in np.where(channel >= 0, 1, -1)]
            if not set(signs) <= codebook:  # batch-norm folding flipped this channel
                signs = [tuple(-s for s in row) for row in signs]
                flipped_channels += 1
            assert set(signs) <= codebook, entry["module"]
            patterns.update(signs)
        assert len(patterns) <= 2 ** entry["tau"]
    assert flipped_channels, "no channel was flipped: the test did not exercise folding"


def test_metadata_names_real_nodes_and_binary_activations_export_as_sign(exported):
    model, result, proto = exported
    assert proto.ir_version <= MAX_IR_VERSION
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [ONNX_OPSET]
    assert {p.key: p.value for p in proto.metadata_props}[SCHEMA_KEY] == "1"
    nodes = {node.name: node for node in proto.graph.node}
    producers = {output: node for node in proto.graph.node for output in node.output}
    binary = any(isinstance(m, SNNConv2d) and m.binary_act for m in model.modules())
    for entry in read_layers(result.onnx_path):
        node = nodes[entry["node"]]
        assert node.op_type == "Conv" and node.input[1] == entry["weight"]
        assert entry["activation"] == ("binary" if binary else "float")
        assert (producers[node.input[0]].op_type == "Sign") == binary


def test_torch_export_program_runs_and_carries_the_same_layers(exported):
    model, result, _ = exported
    extra = {SCHEMA_KEY: "", LAYERS_KEY: ""}
    program = torch.export.load(result.pt2_path, extra_files=extra)
    assert parse_layers_metadata(extra)[1] is None
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
    pt2_layers = json.loads(extra[LAYERS_KEY])
    assert [e["module"] for e in pt2_layers] == [e["module"] for e in result.layers]
    assert [e["codebook"] for e in pt2_layers] == [e["codebook"] for e in result.layers]
    parameters = set(program.graph_signature.parameters)
    assert all(entry["weight"] in parameters for entry in pt2_layers)


def test_read_layers_rejects_another_schema_version(exported, tmp_path):
    _, _, proto = exported
    changed = onnx.ModelProto()
    changed.CopyFrom(proto)
    for prop in changed.metadata_props:
        if prop.key == SCHEMA_KEY:
            prop.value = str(SCHEMA_VERSION + 1)
    path = tmp_path / "future.onnx"
    onnx.save(changed, str(path))
    with pytest.raises(FormatError, match=r"future.onnx: .* is '2'; this reader supports version 1"):
        read_layers(path)


def test_float_model_exports_without_snn_layers(tmp_path):
    model = build_model("vgg_small", 10, 1, width=4, seed=0).eval()
    result = export(model, torch.zeros(1, 1, 8, 8), tmp_path / "float.onnx", write_pt2=False)
    assert result.layers == () and result.pt2_path is None
    assert read_layers(result.onnx_path) == []
    assert not (tmp_path / "float.pt2").exists()


def test_scope_names_follow_the_torchscript_exporter():
    assert scope_of("layer1.0.conv1") == "/layer1/layer1.0/conv1/"
    assert scope_of("3.0.1") == "/3/3.0/3.0.1/"
    assert scope_of("features.2.1") == "/features/features.2/features.2.1/"


def test_weight_outside_the_codebook_is_a_format_error():
    codebook = np.array([[1] * 9, [-1] * 9])
    good = np.stack([np.full((2, 3, 3), 0.5), np.full((2, 3, 3), -2.0)])
    check_weight(good, codebook, "layer")
    bad = good.copy()
    bad[1, 0, 0, 0] = 1.0
    with pytest.raises(FormatError, match="output channel 1"):
        check_weight(bad, codebook, "layer")
