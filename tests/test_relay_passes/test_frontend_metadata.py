"""Cross-checking detection against the training frontend's metadata."""

import json

import onnx
import pytest
from relax_builders import subbit_weight

import tvm_snn
from relay_passes.frontend_metadata import cross_check, read_entries
from relay_passes.report import LayerReport
from tvm_snn.errors import FormatError
from tvm_snn.schema import LAYERS_KEY, SCHEMA_KEY, SCHEMA_VERSION


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


def metadata(**props):
    """ONNX ``metadata_props`` holding ``props``."""
    model = onnx.ModelProto()
    for key, value in props.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return model.metadata_props


def valid(layers=None):
    layers = [entry("l1", "3x3", 5, 16, 16)] if layers is None else layers
    return {SCHEMA_KEY: str(SCHEMA_VERSION), LAYERS_KEY: json.dumps(layers)}


def test_read_entries_returns_the_layers_of_valid_metadata():
    assert read_entries(metadata(**valid()))[0]["tau"] == 5
    assert read_entries(metadata(**valid([]))) == []


def test_read_entries_ignores_foreign_metadata():
    assert read_entries(metadata()) is None
    assert read_entries(metadata(author="someone else")) is None


@pytest.mark.parametrize(
    ("props", "match"),
    [
        ({**valid(), SCHEMA_KEY: "2"}, r"'tvm_snn.schema'\) is '2'; this reader supports version 1"),
        ({**valid(), SCHEMA_KEY: "one"}, r"'tvm_snn.schema'\) is 'one'; this reader supports version 1"),
        ({LAYERS_KEY: valid()[LAYERS_KEY]}, r"'tvm_snn.schema'\) is missing; this reader supports version 1"),
        ({SCHEMA_KEY: str(SCHEMA_VERSION)}, r"key 'tvm_snn.layers' is missing"),
        ({**valid(), LAYERS_KEY: "{not json"}, r"key 'tvm_snn.layers' is corrupt JSON"),
        ({**valid(), LAYERS_KEY: "{}"}, r"key 'tvm_snn.layers' must hold a JSON list, got dict"),
        (valid([5]), r"entry 0 must be a JSON object, got int"),
        (valid([entry("l1", "5x5", 5, 16, 16)]), r"entry 0: kernel must be one of \['1x1', '3x3'\], got '5x5'"),
        (valid([entry("l1", "3x3", 5, 16, 16), entry("l2", "1x1", "5", 16, 16)]), r"entry 1: tau must be an integer, got '5'"),
        (valid([{"module": "l1", "kernel": "3x3", "tau": 5, "out_channels": 16}]), r"entry 0: in_channels must be an integer, got None"),
    ],
)
def test_read_entries_rejects_broken_metadata(props, match):
    with pytest.raises(FormatError, match=match):
        read_entries(metadata(**props))


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
    for key, value in valid([entry("conv", "3x3", 4, 64, 64)]).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
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


def test_compile_rejects_metadata_of_another_schema_version(onnx_with_metadata):
    model = onnx.load(onnx_with_metadata)
    for prop in model.metadata_props:
        if prop.key == SCHEMA_KEY:
            prop.value = str(SCHEMA_VERSION + 1)
    with pytest.raises(FormatError, match=r"is '2'; this reader supports version 1"):
        tvm_snn.compile(model)
