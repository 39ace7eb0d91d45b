"""The ready-made models of the demo and the benchmarks: exported, frozen, at the stated tau."""

import numpy as np
import onnx
import pytest
import torch

from tvm_snn.errors import ConfigError
from tvm_snn.train import Sign, SNNConv2d, build_float_resnet18, build_resnet18
from tvm_snn.train.data import CIFAR_CLASSES
from tvm_snn.train.exporter import read_layers
from tvm_snn.train.zoo import (
    FLOAT_NAME,
    RESNET18_TAU,
    SNN_A1_NAME,
    SNN_A32_NAME,
    build_snn_resnet,
    cifar_input_shape,
    input_shape,
)

# The CIFAR ResNet-18's sub-bit convs: 16 3x3 convs after the stem, 3 1x1 shortcuts.
SUBBIT_CONVS = 19
BATCH = 2


def test_cifar_input_shape():
    assert cifar_input_shape() == (1, 3, 32, 32)
    assert cifar_input_shape(BATCH) == (BATCH, 3, 32, 32)


@pytest.mark.parametrize("binary", [False, True])
def test_resnet18_is_frozen_and_exported_at_tau(tmp_path, binary):
    model, path = build_resnet18(binary, tmp_path)
    assert path == str(tmp_path / f"{SNN_A1_NAME if binary else SNN_A32_NAME}.onnx")
    assert not model.training
    assert not any(isinstance(module, SNNConv2d) for module in model.modules())
    assert any(isinstance(module, Sign) for module in model.modules()) == binary
    with torch.no_grad():
        assert model(torch.zeros(cifar_input_shape(BATCH))).shape == (BATCH, CIFAR_CLASSES)
    layers = read_layers(path)
    assert len(layers) == SUBBIT_CONVS
    assert {layer["tau"] for layer in layers} == {RESNET18_TAU}
    assert {layer["activation"] for layer in layers} == {"binary" if binary else "float"}


def test_the_seed_fixes_the_model(tmp_path):
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(cifar_input_shape()).astype(np.float32))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, _ = build_resnet18(False, tmp_path / "a", seed=1)
    second, _ = build_resnet18(False, tmp_path / "b", seed=1)
    with torch.no_grad():
        torch.testing.assert_close(first(x), second(x), rtol=0, atol=0)


def test_float_resnet18_has_no_subbit_layers(tmp_path):
    path = build_float_resnet18(tmp_path)
    assert path == str(tmp_path / f"{FLOAT_NAME}.onnx")
    assert read_layers(path) == []


@pytest.mark.parametrize(("name", "subbit"), [("resnet18", 19), ("resnet34", 35)])
def test_imagenet_resnets_export_at_their_batch(tmp_path, name, subbit):
    # ResNet-18: 16 3x3 convs after the stem and 3 1x1 shortcuts; ResNet-34: 32 and 3.
    model, path = build_snn_resnet(name, "imagenet", binary=True, out_dir=tmp_path, batch=BATCH)
    assert path.endswith(f"{name}_imagenet_snn_a1_b{BATCH}.onnx")
    assert input_shape("imagenet", BATCH) == (BATCH, 3, 224, 224)
    layers = read_layers(path)
    assert len(layers) == subbit and {layer["tau"] for layer in layers} == {RESNET18_TAU}
    graph = onnx.load(path).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [BATCH, 3, 224, 224]
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [BATCH, 1000]
    assert not model.training


def test_the_zoo_names_what_it_has(tmp_path):
    with pytest.raises(ConfigError, match="resnet50"):
        build_snn_resnet("resnet50", "imagenet", binary=False, out_dir=tmp_path)
