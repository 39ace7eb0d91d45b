"""A CIFAR ResNet-18 quantized by the tests' own quantizer, compiled end to end.

Every sub-bit conv (all 3x3 convs but the stem, tau=5, and the three 1x1
downsamples, tau'=5) must be detected and lowered, through ONNX (batch norm
folded by the exporter, some gammas negative) and through torch.export.
"""

import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import tvm
from snn_models import make_dyadic_, quantize_, randomize_bn_, resnet18_cifar
from tvm import relax

import tvm_snn
from relay_passes.pipeline import run_graph_passes
from tvm_snn.importers import to_relax

from common import FLOAT_ATOL, FLOAT_RTOL

SHAPE = (1, 3, 32, 32)
SUBBIT_3X3 = 16
SUBBIT_1X1 = 3


def build(binary):
    model = randomize_bn_(quantize_(resnet18_cifar(binary=binary), tau_3x3=5, tau_1x1=5))
    if binary:
        make_dyadic_(model)  # exact arithmetic: outputs must agree bit for bit
    return model.eval()


def export(model, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(SHAPE),), path, input_names=["input"], dynamo=False)
    return path


def sample(binary, seed=0):
    x = np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)
    return np.round(x * 4) if binary else x


@pytest.fixture(scope="module", params=[False, True], ids=["float-act", "sign-act"])
def compiled(request, tmp_path_factory):
    binary = request.param
    model = build(binary)
    path = export(model, str(tmp_path_factory.mktemp("r18") / "r18.onnx"))
    return binary, model, path, tvm_snn.compile(path, target="x86")


def test_every_subbit_conv_is_detected_and_lowered(compiled):
    binary, _, _, cm = compiled
    layers = cm.snn_layers
    assert len(layers) == 1 + SUBBIT_3X3 + SUBBIT_1X1
    stem, rest = layers[0], layers[1:]
    assert not stem.lowered and stem.tau is None
    assert all(layer.lowered and layer.tau == 5 for layer in rest), cm.report()
    assert sum(layer.kernel == "3x3" for layer in rest) == SUBBIT_3X3
    assert sum(layer.kernel == "1x1" for layer in rest) == SUBBIT_1X1
    assert {layer.activation for layer in rest} == {"binary" if binary else "float"}


def test_output_matches_onnxruntime(compiled):
    binary, _, path, cm = compiled
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for seed in range(2):
        x = sample(binary, seed)
        expected = session.run(None, {"input": x})[0]
        if binary:
            np.testing.assert_array_equal(cm(x), expected)
        else:
            np.testing.assert_allclose(cm(x), expected, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)


def test_report_totals(compiled):
    _, _, _, cm = compiled
    lowered = [layer for layer in cm.snn_layers if layer.lowered]
    mbit = sum(layer.mbit for layer in lowered)
    weights = sum(layer.weights for layer in lowered)
    three = sum(layer.weights for layer in lowered if layer.kernel == "3x3")
    assert mbit == pytest.approx((three * 5 / 9 + (weights - three) * 5 / 8) / 1e6)
    stored = sum(layer.stored_bytes for layer in lowered)
    assert stored < weights * 4 / 40  # far below float32
    assert stored < 1.1 * mbit * 1e6 / 8 + 64 * 1024  # tau bits per unit + codebooks and alphas
    assert "19 lowered to SNN kernels" in cm.report()


@pytest.mark.parametrize("compiled", [False], ids=["float-act"], indirect=True)
def test_artifact_is_smaller_than_the_dense_model(compiled, tmp_path):
    binary, model, path, cm = compiled
    snn_path = cm.export_library(tmp_path / "snn.so")
    dense = resnet18_cifar().eval()
    dense_path = tvm_snn.compile(export(dense, str(tmp_path / "dense.onnx"))).export_library(tmp_path / "dense.so")
    ratio = os.path.getsize(dense_path) / os.path.getsize(snn_path)
    assert ratio > 10, ratio
    reloaded = tvm_snn.load(snn_path)
    x = sample(binary)
    np.testing.assert_array_equal(reloaded(x), cm(x))
    assert [layer.lowered for layer in reloaded.snn_layers] == [layer.lowered for layer in cm.snn_layers]


def test_torch_export_path():
    model = build(binary=False)
    x = torch.from_numpy(sample(False, seed=3))
    cm = tvm_snn.compile(model, target="x86", example_inputs=(x,))
    assert sum(layer.lowered for layer in cm.snn_layers) == SUBBIT_3X3 + SUBBIT_1X1
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(cm(x.numpy()), expected, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)


def test_sign_ops_are_taken_into_the_binary_kernels(compiled):
    """The binary kernels read the pre-sign activations; no standalone sign op is left."""
    binary, _, path, _ = compiled
    mod = to_relax(onnx.load(path))
    signs_before = _sign_calls(mod)
    mod = run_graph_passes(mod, tvm.target.Target({"kind": "llvm"}))
    assert bool(signs_before) == binary
    assert _sign_calls(mod) == []


def _sign_calls(mod):
    calls = []
    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(
                func.body, lambda e: calls.append(e) if isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.sign" else None
            )
    return calls
