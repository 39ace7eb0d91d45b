"""ONNX models built in the tests, compiled for this CPU, against ONNX Runtime."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tvm

import tvm_snn
from tvm_snn.importers import to_relax

from common import FLOAT_ATOL, FLOAT_RTOL, HOST_CPU_TARGET
from onnx_models import plain_cnn, resnet_cnn


def run_ort(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("build", [resnet_cnn, plain_cnn], ids=["resnet", "plain"])
@pytest.mark.parametrize("batch", [1, 2])
def test_matches_onnxruntime(build, batch):
    model = build(batch=batch)
    cm = tvm_snn.compile(model, target="x86")
    x = np.random.default_rng(batch).standard_normal(cm.inputs[0].shape).astype(np.float32)
    got = cm(x)
    np.testing.assert_allclose(got, run_ort(model, x), rtol=FLOAT_RTOL, atol=FLOAT_ATOL)


def test_path_and_cli_string_target(tmp_path):
    model = resnet_cnn()
    path = tmp_path / "resnet.onnx"
    onnx.save(model, path)
    cm = tvm_snn.compile(str(path), target=HOST_CPU_TARGET)
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(cm(x), run_ort(model, x), rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
    assert cm.target == {"kind": "llvm", "mcpu": HOST_CPU_TARGET.split("=")[1]}
    assert [(spec.shape, spec.dtype) for spec in cm.inputs] == [((1, 3, 16, 16), "float32")]


def test_relax_module_input_and_constants_bound():
    model = plain_cnn()
    mod = to_relax(model)
    assert isinstance(mod, tvm.IRModule)
    assert len(mod["main"].params) == 1  # weights are constants, not inputs
    cm = tvm_snn.compile(mod, target="x86")
    x = np.random.default_rng(4).standard_normal((1, 4, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(cm(x), run_ort(model, x), rtol=FLOAT_RTOL, atol=FLOAT_ATOL)


def test_inputs_by_name_and_report():
    cm = tvm_snn.compile(plain_cnn(), target="x86")
    x = np.zeros((1, 4, 12, 12), np.float32)
    np.testing.assert_array_equal(cm({cm.inputs[0].name: x}), cm(x))
    report = cm.report()
    assert "input input: float32[1, 4, 12, 12]" in report
    assert "2 conv(s), 0 lowered" in report
    assert [layer.lowered for layer in cm.snn_layers] == [False, False]
    assert all(layer.reason.startswith("not binary") for layer in cm.snn_layers)
    stats = cm.benchmark(repeat=3, warmup=1)
    assert stats["repeat"] == 3 and 0 < stats["min_ms"] <= stats["median_ms"]
