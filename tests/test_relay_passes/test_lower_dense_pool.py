"""LowerMaxPool: expected IR, must-not-fire cases, and the kernel through the whole pipeline."""

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper
from tvm import relax

import tvm_snn
from relay_passes.lower_dense_pool import POOL_KERNEL_NAME, LowerMaxPool
from relay_passes.pipeline import lowering_pipeline, run_graph_passes
from schedules.dense_pool import PoolGeometry, build_max_pool, is_scheduled_pool
from tvm_snn.benchmarking import onnxruntime_runner
from tvm_snn.importers import to_relax
from tvm_snn.target import parse_target
from tvm_snn.train.exporter import MAX_IR_VERSION, ONNX_OPSET

from common import FLOAT_ATOL, FLOAT_RTOL

SHAPE = (1, 4, 10, 9)


def pool_module(shape=SHAPE, **attrs):
    """``main(x) = max_pool2d(x)`` (3x3/2, padding 1 unless told otherwise)."""
    options = {"pool_size": (3, 3), "strides": (2, 2), "padding": (1, 1, 1, 1), **attrs}
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            out = builder.emit_output(relax.op.nn.max_pool2d(x, **options))
        builder.emit_func_output(out)
    return builder.get()


def expected_module():
    """``main(x) = call_tir(max_pool, (x,))``, the kernel opaque to FuseOps."""
    geo = PoolGeometry(SHAPE, (3, 3), (2, 2), (1, 1, 1, 1))
    assert geo.out_shape == (1, 4, 5, 5)
    func = build_max_pool(geo).with_attr("op_pattern", 8)
    builder = relax.BlockBuilder()
    gv = builder.add_func(func, POOL_KERNEL_NAME)
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            out = builder.emit_output(relax.call_tir(gv, [x], relax.TensorType((1, 4, 5, 5), "float32")))
        builder.emit_func_output(out)
    return builder.get()


def test_expected_ir():
    tvm.ir.assert_structural_equal(LowerMaxPool(pool_module()), expected_module())


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(lambda: pool_module(ceil_mode=True), id="ceil-mode"),
        pytest.param(lambda: pool_module(dilation=(2, 2)), id="dilated"),
        pytest.param(lambda: pool_module(shape=(1, 10, 9, 4), layout="NHWC"), id="nhwc"),
    ],
)
def test_must_not_fire(module):
    before = module()
    tvm.ir.assert_structural_equal(LowerMaxPool(before), before)


def conv_relu_pool_onnx(batch):
    """Conv, ReLU, then a 3x3/2 max pool with padding 1: the ImageNet stem's pattern at a small size."""
    rng = np.random.default_rng(batch)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [6, 3, 3, 3], rng.standard_normal(162).astype(np.float32))
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4),
    ]
    graph = helper.make_graph(
        nodes,
        "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 17, 14])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 6, 9, 7])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], ir_version=MAX_IR_VERSION)
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("batch", [1, 3])
def test_matches_onnxruntime(batch):
    """A max picks one of its inputs: the pool adds no rounding to the conv's (float tolerance)."""
    model = conv_relu_pool_onnx(batch)
    cm = tvm_snn.compile(model, target="x86")
    x = np.random.default_rng(batch).standard_normal((batch, 3, 17, 14)).astype(np.float32)
    reference = onnxruntime_runner(model)(x)
    np.testing.assert_allclose(cm(x), reference, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)


def test_the_pool_is_the_kernel_after_the_pipeline():
    target = parse_target("x86")
    mod = lowering_pipeline(target)(run_graph_passes(to_relax(conv_relu_pool_onnx(1), None), target))
    pools = [gv.name_hint for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc) and is_scheduled_pool(f)]
    assert pools == [POOL_KERNEL_NAME]
