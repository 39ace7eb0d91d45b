"""LowerDenseConv: expected IR, must-not-fire cases, and numerics through the whole pipeline."""

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper
from relax_builders import conv_module
from tvm import relax

import tvm_snn
from relay_passes.lower_dense_conv import DENSE_KERNEL_NAME, LowerDenseConv, dense_conv_passes
from relay_passes.lower_subbit_conv import ATTR_OP_PATTERN, OP_PATTERN_OUT_ELEMWISE_FUSABLE
from relay_passes.pipeline import lowering_pipeline, run_graph_passes
from schedules.cpu import CpuSpec
from schedules.dense_conv import DenseConvGeometry, build_dense_conv
from schedules.dense_conv_plan import DenseConvPlan
from schedules.dense_conv_schedule import is_dense_conv
from tvm_snn.benchmarking import onnxruntime_runner
from tvm_snn.importers import to_relax
from tvm_snn.target import parse_target

from common import FLOAT_ATOL, FLOAT_RTOL
from onnx_models import GraphBuilder

SHAPE = (1, 8, 10, 10)
OUT_CHANNELS = 12
TARGET = tvm.target.Target({"kind": "llvm"})


def weight(seed=0, shape=(OUT_CHANNELS, SHAPE[1], 3, 3)):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def packed_by_hand(w, block):
    """[O, I, KH, KW] -> [O / block, I, KH, KW, block], element by element."""
    out_channels, channels, kh, kw = w.shape
    blocks = -(-out_channels // block)
    packed = np.zeros((blocks, channels, kh, kw, block), np.float32)
    for o, i, y, x in np.ndindex(w.shape):
        packed[o // block, i, y, x, o % block] = w[o, i, y, x]
    return packed


def expected_module(w):
    """``main(x) = call_tir(dense_conv2d, (x, packed W))`` with the 2-core AVX-512 plan."""
    geo = DenseConvGeometry(SHAPE, w.shape, (1, 1), (1, 1, 1, 1))
    plan = DenseConvPlan.default(geo, SHAPE, CpuSpec())
    # A row of 10 is one vector; all 12 channels in one block: 12 accumulators, 13 loads per 12 FMAs.
    assert plan == DenseConvPlan(channel_block=12, pixel_vectors=1, vector_bytes=64)
    func = build_dense_conv(geo, plan, w).func
    func = func.without_attr("global_symbol").with_attr(ATTR_OP_PATTERN, OP_PATTERN_OUT_ELEMWISE_FUSABLE)
    builder = relax.BlockBuilder()
    gv = builder.add_func(func, DENSE_KERNEL_NAME)
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            packed = relax.const(packed_by_hand(w, plan.channel_block))
            out = builder.emit_output(relax.call_tir(gv, [x, packed], relax.TensorType((1, OUT_CHANNELS, 10, 10), "float32")))
        builder.emit_func_output(out)
    return builder.get()


def test_expected_ir():
    w = weight()
    after = LowerDenseConv(CpuSpec())(conv_module(w, SHAPE))
    tvm.ir.assert_structural_equal(after, expected_module(w))


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(lambda: conv_module(weight(), SHAPE, weight_is_param=True), id="weight-is-an-input"),
        pytest.param(lambda: conv_module(weight(shape=(OUT_CHANNELS, SHAPE[1] // 2, 3, 3)), SHAPE, groups=2), id="grouped"),
    ],
)
def test_must_not_fire(module):
    before = module()
    tvm.ir.assert_structural_equal(LowerDenseConv(CpuSpec())(before), before)


def test_must_not_fire_on_dilated_convs():
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            out = builder.emit_output(relax.op.nn.conv2d(x, relax.const(weight()), padding=2, dilation=2))
        builder.emit_func_output(out)
    before = builder.get()
    tvm.ir.assert_structural_equal(LowerDenseConv(CpuSpec())(before), before)


def resnet_like_onnx(batch):
    """Stem (7x7/2 conv + BN + ReLU), maxpool, a block (3x3 conv + BN + ReLU, 3x3 conv + BN,
    residual add, ReLU), a 1x1/2 downsampling conv with a bias, global pooling and the classifier."""
    g = GraphBuilder(seed=batch)
    y = g.node("Relu", [g.bn(g.conv("x", 3, 16, 7, stride=2, pad=3, bias=False), 16)])
    y = g.node("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    h = g.node("Relu", [g.bn(g.conv(y, 16, 16, 3, bias=False), 16)])
    h = g.bn(g.conv(h, 16, 16, 3, bias=False), 16)
    y = g.node("Relu", [g.node("Add", [h, y])])
    y = g.conv(y, 16, 24, 1, stride=2, pad=0)
    y = g.node("Flatten", [g.node("GlobalAveragePool", [y])])
    fc = g.const(g.rng.standard_normal((10, 24)).astype(np.float32) * 0.2)
    y = g.node("Gemm", [y, fc], transB=1)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 40, 36])]
    return g.model(inputs, y, [batch, 10])


@pytest.mark.parametrize("batch", [1, 3])
def test_resnet_like_model_matches_onnxruntime(batch):
    model = resnet_like_onnx(batch)
    onnx.checker.check_model(model)
    x = np.random.default_rng(batch).standard_normal((batch, 3, 40, 36)).astype(np.float32)
    got = tvm_snn.compile(model, target="x86")(x)
    np.testing.assert_allclose(got, onnxruntime_runner(model)(x), rtol=FLOAT_RTOL, atol=FLOAT_ATOL)


def test_every_conv_is_a_dense_kernel_with_its_epilogue_fused():
    """Four convs, four dense kernel calls (the block's two 3x3 convs share one kernel, ``dense_conv2d1``):
    BN folded into a bias, and the bias, the residual add and the ReLU fused into them."""
    target = parse_target("x86")
    mod = lowering_pipeline(target)(run_graph_passes(to_relax(resnet_like_onnx(1), None), target))
    kernels = sorted(gv.name_hint for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc) and is_dense_conv(f))
    assert kernels == [
        "fused_dense_conv2d1_add1_add2_relu1",  # second 3x3: BN shift, residual, ReLU
        "fused_dense_conv2d1_add1_relu1",  # first 3x3: BN shift, ReLU
        "fused_dense_conv2d2_add3",  # 1x1/2 with its bias
        "fused_dense_conv2d_add_relu",  # the stem
    ]


def test_batch_norm_is_folded_first():
    """conv -> BN becomes one kernel call and a bias add: no batch_norm is left."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    ones = np.ones(OUT_CHANNELS, np.float32)
    with builder.function("main", [x]):
        with builder.dataflow():
            conv = builder.emit(relax.op.nn.conv2d(x, relax.const(weight()), padding=1))
            bn = builder.emit(relax.op.nn.batch_norm(conv, *[relax.const(a) for a in (ones * 2, ones, ones * 0.5, ones)], axis=1))
            out = builder.emit_output(relax.TupleGetItem(bn, 0))
        builder.emit_func_output(out)
    with TARGET:
        after = tvm.transform.Sequential(dense_conv_passes(TARGET))(builder.get())
    script = after.script()
    assert "batch_norm" not in script and "R.call_tir(cls.dense_conv2d" in script and "R.add(" in script
