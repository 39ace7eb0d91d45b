"""Tests of ``train_digits_snn``, the demo's recipe (one short epoch)."""

import numpy as np
import onnxruntime as ort
import torch

from tvm_snn.train import SNNConv2d, load_dataset, snn_metadata, train_digits_snn
from tvm_snn.train.exporter import read_layers
from tvm_snn.train.recipes import DIGITS_IMAGE_SIZE

from common import FLOAT_ATOL, FLOAT_RTOL

TAU = 5


def test_train_digits_snn_returns_a_frozen_model_its_accuracy_and_an_onnx_file(tmp_path):
    model, accuracy, onnx_path = train_digits_snn(tmp_path, epochs=1, tau=TAU, seed=0)
    assert 0.0 <= accuracy <= 1.0
    assert not any(isinstance(m, SNNConv2d) for m in model.modules()) and not model.training
    metas = snn_metadata(model)
    assert metas and {meta.tau for meta in metas.values()} == {TAU}
    assert {meta.kernel for meta in metas.values()} == {"3x3"}
    assert {meta.activation for meta in metas.values()} == {"float"}
    assert [entry["module"] for entry in read_layers(onnx_path)] == list(metas)
    images, _ = load_dataset("digits", image_size=DIGITS_IMAGE_SIZE).test.take(torch.arange(8))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = model(images).detach().numpy()
    for index in range(len(images)):
        (logits,) = session.run(None, {"input": images[index : index + 1].numpy()})
        np.testing.assert_allclose(logits[0], expected[index], rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
    assert (tmp_path / "last.pt").is_file() and onnx_path.with_suffix(".pt2").is_file()
