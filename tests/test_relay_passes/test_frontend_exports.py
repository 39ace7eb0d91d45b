"""The training frontend's own exports, compiled: detected, lowered, cross-checked, equal."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

import tvm_snn
from tvm_snn.train import SNNConfig, build_model, export

from common import FLOAT_ATOL, FLOAT_RTOL

SHAPE = (1, 3, 32, 32)
SUBBIT_CONVS = 16 + 3  # the 3x3 convs after the stem and the three 1x1 shortcuts


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    config = SNNConfig(tau_3x3=5, tau_1x1=5, seed=3)
    model = build_model("resnet18", 10, 3, config, stem="cifar", seed=3).eval()
    path = tmp_path_factory.mktemp("frontend") / "r18.onnx"
    export(model, torch.zeros(SHAPE), path, write_pt2=False)
    return path


def test_frontend_resnet18_is_lowered_and_matches(exported):
    cm = tvm_snn.compile(str(exported), target="x86")
    lowered = [layer for layer in cm.snn_layers if layer.lowered]
    assert len(lowered) == SUBBIT_CONVS, cm.report()
    assert all(layer.tau <= layer.frontend_tau == 5 for layer in lowered)
    assert cm.metadata_problems == []
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(cm(x), expected, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
