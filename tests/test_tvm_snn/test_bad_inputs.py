"""Bad models and bad inputs get typed errors that name the problem."""

import numpy as np
import onnx
import pytest
import torch

import tvm_snn
import tvm_snn.compiled as compiled
from tvm_snn.errors import InputError, ModelImportError, SNNError, UnsupportedOpError

from onnx_models import plain_cnn, unsupported_op_model


@pytest.fixture(scope="module")
def cm():
    return tvm_snn.compile(plain_cnn(), target="x86")


def test_corrupt_onnx_file(tmp_path):
    good = plain_cnn().SerializeToString()
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(good[: len(good) // 3] + b"\xff\xfe garbage")
    with pytest.raises(ModelImportError, match="corrupt.onnx"):
        tvm_snn.compile(str(path))


def test_missing_onnx_file(tmp_path):
    with pytest.raises(ModelImportError, match="not found"):
        tvm_snn.compile(str(tmp_path / "missing.onnx"))


def test_invalid_onnx_graph():
    model = plain_cnn()
    model.graph.node[0].input[0] = "no_such_tensor"
    with pytest.raises(ModelImportError, match="invalid ONNX model"):
        tvm_snn.compile(model)


def test_unsupported_onnx_op_is_named():
    with pytest.raises(UnsupportedOpError, match=r"Celu \(node celu_\d+\)"):
        tvm_snn.compile(unsupported_op_model())


def test_unsupported_torch_op_is_named():
    class Det(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.det(x)

    with pytest.raises(UnsupportedOpError, match="_linalg_det"):
        tvm_snn.compile(Det(), example_inputs=torch.randn(2, 3, 3))


def test_torch_module_needs_example_inputs():
    with pytest.raises(ModelImportError, match="example_inputs"):
        tvm_snn.compile(torch.nn.Conv2d(3, 4, 3))


def test_unknown_model_type():
    with pytest.raises(ModelImportError, match="cannot import a dict"):
        tvm_snn.compile({"not": "a model"})


def test_symbolic_onnx_shape_needs_examples():
    model = plain_cnn()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    with pytest.raises(ModelImportError, match="symbolic shape"):
        tvm_snn.compile(onnx.ModelProto.FromString(model.SerializeToString()))
    fixed = tvm_snn.compile(model, example_inputs=np.zeros((3, 4, 12, 12), np.float32))
    assert fixed.inputs[0].shape == (3, 4, 12, 12)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (np.zeros((1, 4, 12, 13), np.float32), r"shape \(1, 4, 12, 12\), got \(1, 4, 12, 13\)"),
        (np.zeros((4, 12, 12), np.float32), "shape"),
        (np.zeros((1, 4, 12, 12), np.float64), "must be float32, got float64"),
        (np.zeros((1, 4, 12, 12), np.int32), "must be float32, got int32"),
    ],
)
def test_wrong_input_shape_or_dtype(cm, value, fragment):
    with pytest.raises(InputError, match=fragment):
        cm(value)


def test_wrong_input_count_or_names(cm):
    x = np.zeros((1, 4, 12, 12), np.float32)
    with pytest.raises(InputError, match="takes 1 input"):
        cm(x, x)
    with pytest.raises(InputError, match="missing"):
        cm({"other": x})


def test_hierarchy():
    for error in (InputError, ModelImportError, UnsupportedOpError):
        assert issubclass(error, SNNError)


def test_calls_do_not_reparse_the_target(cm, monkeypatch):
    # Parsing a target costs ~0.15 ms, more than a small layer: it happens once.
    x = cm.random_inputs()[0]
    expected = cm(x).copy()

    def fail(*_):
        raise AssertionError("target parsed during a call")

    monkeypatch.setattr(compiled, "target_arch", fail)
    monkeypatch.setattr(compiled, "runs_on_host", fail)
    np.testing.assert_array_equal(cm(x), expected)
    assert cm.arch == "x86_64"
