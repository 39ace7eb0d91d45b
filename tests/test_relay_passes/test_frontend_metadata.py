"""Cross-checking detection against the training frontend's metadata."""

import json

import onnx
import pytest
from relax_builders import subbit_weight

import tvm_snn
from relay_passes.frontend_metadata import LAYERS_KEY, cross_check, read_entries
from relay_passes.report import LayerReport


def report(name, kernel, tau, weights):
    return LayerReport(name, kernel, tau, 0.5, "float", tau is not None, "", weights)


def entry(module, kernel, tau, out_channels, in_channels):
    return {"module": module, "kernel": kernel, "tau": tau, "out_channels": out_channels, "in_channels": in_channels}


def test_matches_in_order_and_flags_disagreements():
    layers = [
        report("stem", "3x3", None, 3 * 16 * 9),
        report("a", "3x3", 5, 16 * 16 * 9),
        report("b", "3x3", None, 16 * 16 * 9),
        report("c", "1x1", 6, 32 * 16),
    ]
    entries = [entry("l1", "3x3", 5, 16, 16), entry("l2", "3x3", 5, 16, 16), entry("down", "1x1", 5, 32, 16), entry("x", "3x3", 4, 99, 99)]
    problems = cross_check(layers, entries)
    assert [layer.frontend_tau for layer in layers] == [None, 5, 5, 5]
    assert problems == [
        "b: the frontend says tau=5, the detector found no sub-bit form",
        "c: detected tau=6 > frontend tau=5",
        "frontend layer 'x' matches no conv in the graph",
    ]
    assert layers[2].reason.endswith("(frontend metadata: tau=5)")


def test_read_entries_ignores_foreign_or_broken_metadata():
    model = onnx.ModelProto()
    assert read_entries(model.metadata_props) is None
    prop = model.metadata_props.add()
    prop.key, prop.value = LAYERS_KEY, "{not json"
    assert read_entries(model.metadata_props) is None
    prop.value = json.dumps([entry("l1", "3x3", 5, 16, 16)])
    assert read_entries(model.metadata_props)[0]["tau"] == 5


@pytest.fixture
def onnx_with_metadata(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    weight = subbit_weight(64, 64, tau=5)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], name="conv")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 8, 8])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    prop = model.metadata_props.add()
    prop.key, prop.value = LAYERS_KEY, json.dumps([entry("conv", "3x3", 4, 64, 64)])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path


def test_compile_reports_the_cross_check(onnx_with_metadata, tmp_path):
    cm = tvm_snn.compile(str(onnx_with_metadata))
    assert cm.snn_layers[0].frontend_tau == 4
    assert cm.metadata_problems == ["conv0:gv: detected tau=5 > frontend tau=4"]
    assert "frontend metadata: 1 conv(s) matched, 1 disagreement(s)" in cm.report()
    loaded = tvm_snn.load(cm.export_library(tmp_path / "m.so"))
    assert loaded.report() == cm.report()
