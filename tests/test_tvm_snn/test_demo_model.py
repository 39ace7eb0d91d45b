"""The model the demo trains runs on SNN kernels: every sub-bit conv is lowered."""

import numpy as np
import onnxruntime as ort

import tvm_snn
from tvm_snn.train import load_dataset, snn_metadata, train_digits_snn
from tvm_snn.train.recipes import DIGITS_IMAGE_SIZE

from common import FLOAT_ATOL, FLOAT_RTOL


def test_the_demo_recipe_is_lowered_and_matches_onnx_runtime(tmp_path):
    model, _, onnx_path = train_digits_snn(tmp_path, epochs=1, seed=0)
    cm = tvm_snn.compile(str(onnx_path))
    lowered = [layer for layer in cm.snn_layers if layer.lowered]
    # The frontend made 18 sub-bit 3x3 convs (ResNet-20 without its stem); all run on SNN kernels.
    assert len(snn_metadata(model)) == 18 and len(lowered) == 18
    assert {layer.tau for layer in lowered} == {5}
    x = load_dataset("digits", image_size=DIGITS_IMAGE_SIZE).example_input().numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"input": x})
    np.testing.assert_allclose(cm(x), expected, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
