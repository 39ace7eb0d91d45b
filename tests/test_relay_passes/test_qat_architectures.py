"""Quantizer-in-forward ImageNet architectures, compiled on the ONNX and the torch path.

The models (``tests/qat_models.py``) compute every sub-bit weight in
``forward()`` and spell their binary activations as STE residues. Each one is
detected layer by layer as the architecture says, and its numbers match ONNX
Runtime and PyTorch: bit for bit with binary activations (the models are made
dyadic, see ``qat_models.make_dyadic_``; Bi-Real's logits within one rounding
of its classifier's sums), within the float tolerances otherwise.
Numerics run at 64x64 (the same architecture as at 224x224); one 224x224
ResNet-34 is checked by the graph passes alone.

The full networks are exported with ``do_constant_folding=False``: the exporter
would otherwise store each layer's ``[out, units, 2**tau]`` pattern distances
as an initializer (150 MB for ResNet-18). The ResNet-50 blocks use the
exporter's defaults, so both forms of the graph are covered.
"""

import copy
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import tvm
from qat_models import (
    RESNET18_BLOCKS,
    RESNET34_BLOCKS,
    bireal_resnet18,
    freeze_,
    make_dyadic_,
    resnet50_blocks,
    resnet_imagenet,
)
from tvm import relax

import tvm_snn
from relay_passes.layer_records import read_reports
from relay_passes.pipeline import run_graph_passes
from tvm_snn.importers import to_relax

from common import (
    DYADIC_LOGITS_ATOL,
    DYADIC_LOGITS_RTOL,
    FLOAT_ATOL,
    FLOAT_RTOL,
    FOLDED_ALPHA_RTOL,
    LOGIT_SCALE_ATOL,
)

TAU = 5
SMALL = (1, 3, 64, 64)
IMAGENET = (1, 3, 224, 224)
TARGET = tvm.target.Target({"kind": "llvm"})
INPUT_SCALE = 4  # integer inputs for the dyadic (exact) models
STEM = ("7x7", None, "float", False)


def _basic_resnet_layers(blocks, act):
    """Stem, then per basic block conv1, conv2 and (first block of stages 2-4) the 1x1 shortcut."""
    layers = [STEM]
    for stage, count in enumerate(blocks):
        for block in range(count):
            layers += [("3x3", TAU, act, True)] * 2
            if stage > 0 and block == 0:
                layers.append(("1x1", TAU, act, True))
    return layers


def _bireal_layers():
    """Stem, then per unit its binary 3x3 and (first unit of stages 2-4) the float 1x1 shortcut."""
    layers = [STEM]
    for stage, count in enumerate(RESNET18_BLOCKS):
        for unit in range(2 * count):
            layers.append(("3x3", TAU, "binary", True))
            if stage > 0 and unit == 0:
                layers.append(("1x1", None, "float", False))
    return layers


def _bottleneck_layers(blocks):
    """Stem, then per bottleneck its 1x1, 3x3 and 1x1 and the 1x1 shortcut, all sub-bit."""
    return [STEM] + [
        ("1x1", TAU, "float", True),
        ("3x3", TAU, "float", True),
        ("1x1", TAU, "float", True),
        ("1x1", TAU, "float", True),
    ] * blocks


ARCHITECTURES = {
    # name: (model builder, binary activations, the expected layers, export with the exporter's folding)
    "resnet18": (
        lambda: resnet_imagenet(RESNET18_BLOCKS, act="sign"),
        True,
        _basic_resnet_layers(RESNET18_BLOCKS, "binary"),
        False,
    ),
    "resnet18-float": (
        lambda: resnet_imagenet(RESNET18_BLOCKS, act="float"),
        False,
        _basic_resnet_layers(RESNET18_BLOCKS, "float"),
        False,
    ),
    "resnet18-where": (
        lambda: resnet_imagenet(RESNET18_BLOCKS, act="where"),
        True,
        _basic_resnet_layers(RESNET18_BLOCKS, "binary"),
        False,
    ),
    "resnet34": (
        lambda: resnet_imagenet(RESNET34_BLOCKS, act="compare"),
        True,
        _basic_resnet_layers(RESNET34_BLOCKS, "binary"),
        False,
    ),
    "bireal18": (lambda: bireal_resnet18(), True, _bireal_layers(), False),
    "resnet50": (lambda: resnet50_blocks(), False, _bottleneck_layers(2), True),
}
FAST = ("resnet18", "bireal18", "resnet50")
# Dyadic binary models whose logits are rounded (see DYADIC_LOGITS_RTOL); the others are exact.
ROUNDED_LOGITS = ("bireal18",)
SLOW = ("resnet18-float", "resnet18-where", "resnet34")


def _build(name):
    make, binary, _, _ = ARCHITECTURES[name]
    model = make()
    return make_dyadic_(model) if binary else model


def _export(model, path, shape, fold):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(shape),),
            path,
            input_names=["input"],
            dynamo=False,
            do_constant_folding=fold,
        )
    return path


def _sample(binary, seed=0):
    x = np.random.default_rng(seed).standard_normal(SMALL).astype(np.float32)
    return np.round(x * INPUT_SCALE) if binary else x


def _summary(layers):
    return [(layer.kernel, layer.tau, layer.activation, layer.lowered) for layer in layers]


def _assert_matches(actual, expected, binary, exact=True):
    if binary and not exact:
        np.testing.assert_allclose(
            actual, expected, rtol=DYADIC_LOGITS_RTOL, atol=DYADIC_LOGITS_ATOL
        )
    elif binary:
        np.testing.assert_array_equal(actual, expected)
    else:
        atol = max(FLOAT_ATOL, LOGIT_SCALE_ATOL * float(np.abs(expected).max()))
        np.testing.assert_allclose(actual, expected, rtol=FLOAT_RTOL, atol=atol)


def _check_architecture(name, path, tmp_path):
    _, binary, expected_layers, fold = ARCHITECTURES[name]
    model = _build(name)
    x = _sample(binary)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    if path == "onnx":
        onnx_path = _export(model, str(tmp_path / f"{name}.onnx"), SMALL, fold)
        cm = tvm_snn.compile(onnx_path, target="x86")
        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        _assert_matches(
            cm(x), session.run(None, {"input": x})[0], binary, name not in ROUNDED_LOGITS
        )
    else:
        cm = tvm_snn.compile(model, target="x86", example_inputs=(torch.from_numpy(x),))
    assert _summary(cm.snn_layers) == expected_layers, cm.report()
    assert all(layer.folded for layer in cm.snn_layers if layer.lowered), cm.report()
    _assert_matches(cm(x), reference, binary, name not in ROUNDED_LOGITS)


# Every architecture on the ONNX path; the torch path on resnet18 here, on the others with
# the slow ones (the suite's time on 2 cores: each of those takes about 30 s).
TORCH_FAST = ("resnet18",)


@pytest.mark.parametrize(
    ("name", "path"),
    [(name, "onnx") for name in FAST] + [(name, "torch") for name in TORCH_FAST],
)
def test_architecture(name, path, tmp_path):
    _check_architecture(name, path, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in FAST if name not in TORCH_FAST])
def test_architecture_torch_slow(name, tmp_path):
    _check_architecture(name, "torch", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["onnx", "torch"])
@pytest.mark.parametrize("name", SLOW)
def test_architecture_slow(name, path, tmp_path):
    _check_architecture(name, path, tmp_path)


def test_imagenet_resnet34_is_detected_at_224(tmp_path):
    """The graph passes on a 224x224 ResNet-34: every 3x3 and 1x1 conv lowered, stem dense."""
    model = _build("resnet34")
    mod = to_relax(onnx.load(_export(model, str(tmp_path / "r34.onnx"), IMAGENET, fold=False)))
    layers = read_reports(run_graph_passes(mod, TARGET))
    assert _summary(layers) == ARCHITECTURES["resnet34"][2]
    assert layers[0].reason == "unsupported shape: kernel 7x7"


@pytest.mark.slow
def test_imagenet_resnet18_is_detected_at_224_on_the_torch_path():
    model = _build("resnet18")
    layers = read_reports(run_graph_passes(to_relax(model, (torch.zeros(IMAGENET),)), TARGET))
    assert _summary(layers) == ARCHITECTURES["resnet18"][2]


def _kernel_constants(mod):
    """The constants of every SNN kernel call, in graph order."""
    calls = []
    relax.analysis.post_order_visit(
        mod["main"].body,
        lambda e: (
            calls.append(e)
            if isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.call_tir"
            else None
        ),
    )
    kernels = [c for c in calls if "snn_conv2d" in c.args[0].name_hint]
    return [
        [arg.value.numpy() for arg in c.args[1].fields if isinstance(arg, tvm.ir.GenericConst)]
        for c in kernels
    ]


@pytest.mark.parametrize("act", ["sign", "float"])
def test_quantizer_in_forward_lowers_as_if_frozen(act, tmp_path):
    """The same model with its binary weights frozen into plain convs: the same layers and kernels.

    With binary activations the model is dyadic, so PyTorch's frozen alphas are TVM's folded
    ones exactly; otherwise the two means differ in summation order (``FOLDED_ALPHA_RTOL``).
    """
    model = resnet_imagenet(RESNET18_BLOCKS, act=act, stages=2)
    if act != "float":
        make_dyadic_(model)
    frozen = freeze_(copy.deepcopy(model))
    example = (torch.zeros(SMALL),)
    in_forward, plain = (run_graph_passes(to_relax(m, example), TARGET) for m in (model, frozen))
    layers = read_reports(in_forward)
    assert _summary(layers) == _summary(read_reports(plain))
    assert [layer.folded != "" for layer in layers] == [layer.lowered for layer in layers]
    assert not any(layer.folded for layer in read_reports(plain))
    for mine, theirs in zip(_kernel_constants(in_forward), _kernel_constants(plain), strict=True):
        for a, b in zip(mine, theirs, strict=True):
            if act == "float" and a.dtype == np.float32:
                np.testing.assert_allclose(a, b, rtol=FOLDED_ALPHA_RTOL)
            else:
                np.testing.assert_array_equal(a, b)
    # Through ONNX the exporter folds the frozen model's batch norms into its conv weights
    # (other alphas, a bias), so the layers agree, not the kernels' constants.
    onnx_layers = [
        read_reports(
            run_graph_passes(
                to_relax(onnx.load(_export(m, str(tmp_path / f"{tag}.onnx"), SMALL, True))), TARGET
            )
        )
        for tag, m in (("forward", model), ("frozen", frozen))
    ]
    assert _summary(onnx_layers[0]) == _summary(onnx_layers[1]) == _summary(layers)
