"""ScheduleDenseFallback: dense kernels get the default schedule; sub-bit kernels are left alone."""

import numpy as np
import pytest
import tvm
from relax_builders import conv_epilogue_module, conv_module, subbit_weight
from tir_helpers import block_names
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline
from tvm.script import ir as I
from tvm.script import tirx as T

from relay_passes.detect_subbit_conv import DetectSubBitConv
from relay_passes.lower_subbit_conv import LowerSubBitConv
from relay_passes.schedule_dense_fallback import ScheduleDenseFallback
from schedules.cpu import CpuSpec
from schedules.dense_cpu import schedule_dense
from schedules.kernels import kernel_kind
from schedules.reference import conv2d_dense_reference

from common import FLOAT_ATOL, FLOAT_RTOL, KERNEL_ATOL, KERNEL_RTOL, SCHEDULED_ATOL, SCHEDULED_RTOL

SHAPE = (1, 64, 8, 8)
TARGET = tvm.target.Target({"kind": "llvm"})


def legalized(mod):
    mod = LowerSubBitConv()(DetectSubBitConv()(mod))
    with TARGET:
        passes = cpu_pipeline.library_dispatch_passes(TARGET) + cpu_pipeline.legalize_passes(TARGET)
        return tvm.transform.Sequential(passes)(mod)


def prim_funcs(mod):
    return {gv.name_hint: f for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)}


def test_dense_conv_is_scheduled():
    weight = np.random.default_rng(0).standard_normal((64, 64, 3, 3)).astype(np.float32)
    before = legalized(conv_module(weight, SHAPE))
    after = ScheduleDenseFallback()(before)
    for name, func in prim_funcs(before).items():
        tvm.ir.assert_structural_equal(prim_funcs(after)[name], schedule_dense(func))
        assert "T.parallel" in prim_funcs(after)[name].script()
        assert "T.parallel" not in func.script()


def test_must_not_fire_on_subbit_kernels():
    before = legalized(conv_module(subbit_weight(64, 64, tau=5), SHAPE))
    kernels = {name: f for name, f in prim_funcs(before).items() if kernel_kind(f) == "pixel-lane"}
    assert kernels
    after = prim_funcs(ScheduleDenseFallback()(before))
    for name, func in kernels.items():
        tvm.ir.assert_structural_equal(after[name], func)


def test_scheduled_dense_conv_computes_the_same():
    weight = np.random.default_rng(1).standard_normal((64, 64, 3, 3)).astype(np.float32)
    mod = conv_module(weight, SHAPE)
    x = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    outputs = []
    for schedule in (False, True):
        lowered = legalized(mod)
        if schedule:
            lowered = ScheduleDenseFallback()(lowered)
        executable = tvm.compile(lowered, target=TARGET)
        outputs.append(relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy())
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=SCHEDULED_RTOL, atol=SCHEDULED_ATOL)


def test_conv_epilogue_runs_in_the_conv_parallel_loop():
    """Bias and ReLU are merged and computed under the conv's one parallel loop; same result."""
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((64, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(64).astype(np.float32)
    shape = (1, 3, 32, 32)
    lowered = legalized(conv_epilogue_module(weight, shape, bias))
    (func,) = [f for f in prim_funcs(lowered).values() if "conv2d" in f.script()]
    scheduled = schedule_dense(func).script()
    assert scheduled.count("T.parallel") == 1 and "T_add" in scheduled
    x = rng.standard_normal(shape).astype(np.float32)
    executable = tvm.compile(ScheduleDenseFallback()(lowered), target=TARGET)
    got = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    expected = np.maximum(conv2d_dense_reference(x, weight, bias, padding=1), 0)
    np.testing.assert_allclose(got, expected, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)


def test_must_not_fire_on_lane_kernels():
    shape = (1, 256, 4, 4)
    mod = LowerSubBitConv(CpuSpec(vbmi=True))(DetectSubBitConv()(conv_module(subbit_weight(256, 256, tau=5), shape, binary=True)))
    with TARGET:
        passes = cpu_pipeline.library_dispatch_passes(TARGET) + cpu_pipeline.legalize_passes(TARGET)
        before = tvm.transform.Sequential(passes)(mod)
    kernels = {name: f for name, f in prim_funcs(before).items() if kernel_kind(f) == "lane"}
    assert kernels
    after = prim_funcs(ScheduleDenseFallback()(before))
    for name, func in kernels.items():
        tvm.ir.assert_structural_equal(after[name], func)


# Hand-written expected IR. The thresholds of schedules.dense_cpu decide each case:
# an outer loop nest runs in parallel with at least 2**16 elements of work, innermost
# loops of at most 64 are vectorized, reductions of at most 64 steps are unrolled.


@I.ir_module
class ElementwiseBefore:
    """``relu`` on 1x16x64x64 (2**16 elements): enough work for the parallel loop."""

    @T.prim_func(private=True, s_tir=True)
    def relu(x: T.Buffer((1, 16, 64, 64), "float32"), y: T.Buffer((1, 16, 64, 64), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i0, i1, i2, i3 in T.grid(1, 16, 64, 64):
            with T.sblock("compute"):
                v0, v1, v2, v3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                y[v0, v1, v2, v3] = T.max(x[v0, v1, v2, v3], T.float32(0))


@I.ir_module
class ElementwiseExpected:
    """The outer three loops fused (1 * 16 * 64) and parallel, the row of 64 one vector loop."""

    @T.prim_func(private=True, s_tir=True)
    def relu(x: T.Buffer((1, 16, 64, 64), "float32"), y: T.Buffer((1, 16, 64, 64), "float32")):
        T.func_attr({"tirx.noalias": True})
        for fused in T.parallel(1024):
            for i3 in T.vectorized(64):
                with T.sblock("compute"):
                    v0 = T.axis.spatial(1, 0)
                    v1 = T.axis.spatial(16, fused // 64)
                    v2 = T.axis.spatial(64, fused % 64)
                    v3 = T.axis.spatial(64, i3)
                    y[v0, v1, v2, v3] = T.max(x[v0, v1, v2, v3], T.float32(0))


@I.ir_module
class SmallElementwiseBefore:
    """``relu`` on 1x16x8x8 (1024 elements): too little work to fork threads for."""

    @T.prim_func(private=True, s_tir=True)
    def relu(x: T.Buffer((1, 16, 8, 8), "float32"), y: T.Buffer((1, 16, 8, 8), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i0, i1, i2, i3 in T.grid(1, 16, 8, 8):
            with T.sblock("compute"):
                v0, v1, v2, v3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                y[v0, v1, v2, v3] = T.max(x[v0, v1, v2, v3], T.float32(0))


@I.ir_module
class SmallElementwiseExpected:
    """Fused and vectorized as the large case, but the fused loop stays serial."""

    @T.prim_func(private=True, s_tir=True)
    def relu(x: T.Buffer((1, 16, 8, 8), "float32"), y: T.Buffer((1, 16, 8, 8), "float32")):
        T.func_attr({"tirx.noalias": True})
        for fused in range(128):
            for i3 in T.vectorized(8):
                with T.sblock("compute"):
                    v0 = T.axis.spatial(1, 0)
                    v1 = T.axis.spatial(16, fused // 8)
                    v2 = T.axis.spatial(8, fused % 8)
                    v3 = T.axis.spatial(8, i3)
                    y[v0, v1, v2, v3] = T.max(x[v0, v1, v2, v3], T.float32(0))


@I.ir_module
class DenseEpilogueBefore:
    """``relu(x @ w + b)`` as FuseTIR leaves it: 64x64 outputs of 16 steps (2**16 work)."""

    @T.prim_func(private=True, s_tir=True)
    def fused_matmul_add_relu(
        x: T.Buffer((64, 16), "float32"),
        w: T.Buffer((16, 64), "float32"),
        b: T.Buffer((64,), "float32"),
        y: T.Buffer((64, 64), "float32"),
    ):
        T.func_attr({"tirx.noalias": True})
        acc = T.sblock_alloc_buffer((64, 64))
        biased = T.sblock_alloc_buffer((64, 64))
        for i, j, k in T.grid(64, 64, 16):
            with T.sblock("matmul"):
                vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                with T.init():
                    acc[vi, vj] = T.float32(0)
                acc[vi, vj] = acc[vi, vj] + x[vi, vk] * w[vk, vj]
        for i, j in T.grid(64, 64):
            with T.sblock("T_add"):
                vi, vj = T.axis.remap("SS", [i, j])
                biased[vi, vj] = acc[vi, vj] + b[vj]
        for i, j in T.grid(64, 64):
            with T.sblock("compute"):
                vi, vj = T.axis.remap("SS", [i, j])
                y[vi, vj] = T.max(biased[vi, vj], T.float32(0))


@I.ir_module
class DenseEpilogueExpected:
    """Per row ``i`` (parallel): zero the row, 16 unrolled vector steps, then bias + ReLU.

    The reduction loop moves outside the output row, which stays innermost and becomes
    one vector loop; the initialization is split off in front of the reduction; the
    ReLU is inlined into the bias add, and that epilogue runs under the row loop,
    vectorized, so the intermediate sum is only read back from cache.
    """

    @T.prim_func(private=True, s_tir=True)
    def fused_matmul_add_relu(
        x: T.Buffer((64, 16), "float32"),
        w: T.Buffer((16, 64), "float32"),
        b: T.Buffer((64,), "float32"),
        y: T.Buffer((64, 64), "float32"),
    ):
        T.func_attr({"tirx.noalias": True})
        acc = T.sblock_alloc_buffer((64, 64))
        for i in T.parallel(64):
            for j_init in T.vectorized(64):
                with T.sblock("matmul_init"):
                    vi, vj = T.axis.remap("SS", [i, j_init])
                    acc[vi, vj] = T.float32(0)
            for k in T.unroll(16):
                for j in T.vectorized(64):
                    with T.sblock("matmul_update"):
                        vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                        acc[vi, vj] = acc[vi, vj] + x[vi, vk] * w[vk, vj]
            for i_unit in range(1):  # reverse_compute_at keeps the unit loop of the row
                for j in T.vectorized(64):
                    with T.sblock("T_add"):
                        vi = T.axis.spatial(64, i + i_unit)
                        vj = T.axis.spatial(64, j)
                        y[vi, vj] = T.max(acc[vi, vj] + b[vj], T.float32(0))


@I.ir_module
class SmallDenseEpilogueBefore:
    """``x @ w + b`` with 8x8 outputs of 8 steps (512 work)."""

    @T.prim_func(private=True, s_tir=True)
    def fused_matmul_add(
        x: T.Buffer((8, 8), "float32"),
        w: T.Buffer((8, 8), "float32"),
        b: T.Buffer((8,), "float32"),
        y: T.Buffer((8, 8), "float32"),
    ):
        T.func_attr({"tirx.noalias": True})
        acc = T.sblock_alloc_buffer((8, 8))
        for i, j, k in T.grid(8, 8, 8):
            with T.sblock("matmul"):
                vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                with T.init():
                    acc[vi, vj] = T.float32(0)
                acc[vi, vj] = acc[vi, vj] + x[vi, vk] * w[vk, vj]
        for i, j in T.grid(8, 8):
            with T.sblock("T_add"):
                vi, vj = T.axis.remap("SS", [i, j])
                y[vi, vj] = acc[vi, vj] + b[vj]


@I.ir_module
class SmallDenseEpilogueExpected:
    """The same loop structure as the large case, with the row loop serial."""

    @T.prim_func(private=True, s_tir=True)
    def fused_matmul_add(
        x: T.Buffer((8, 8), "float32"),
        w: T.Buffer((8, 8), "float32"),
        b: T.Buffer((8,), "float32"),
        y: T.Buffer((8, 8), "float32"),
    ):
        T.func_attr({"tirx.noalias": True})
        acc = T.sblock_alloc_buffer((8, 8))
        for i in range(8):
            for j_init in T.vectorized(8):
                with T.sblock("matmul_init"):
                    vi, vj = T.axis.remap("SS", [i, j_init])
                    acc[vi, vj] = T.float32(0)
            for k in T.unroll(8):
                for j in T.vectorized(8):
                    with T.sblock("matmul_update"):
                        vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                        acc[vi, vj] = acc[vi, vj] + x[vi, vk] * w[vk, vj]
            for i_unit in range(1):  # reverse_compute_at keeps the unit loop of the row
                for j in T.vectorized(8):
                    with T.sblock("T_add"):
                        vi = T.axis.spatial(8, i + i_unit)
                        vj = T.axis.spatial(8, j)
                        y[vi, vj] = acc[vi, vj] + b[vj]


@I.ir_module
class LongRowBefore:
    """``x @ w`` with 8 rows of 1024 outputs over 64 steps (2**19 work): the row is too long for one vector loop."""

    @T.prim_func(private=True, s_tir=True)
    def matmul(x: T.Buffer((8, 64), "float32"), w: T.Buffer((64, 1024), "float32"), y: T.Buffer((8, 1024), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i, j, k in T.grid(8, 1024, 64):
            with T.sblock("matmul"):
                vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                with T.init():
                    y[vi, vj] = T.float32(0)
                y[vi, vj] = y[vi, vj] + x[vi, vk] * w[vk, vj]


@I.ir_module
class LongRowExpected:
    """The row of 1024 is cut into vectors of 16 float32 (64 bytes, dividing 1024).

    The batch loop (8 rows, at most 8 accumulator vectors) moves inside the
    reduction, so a block is 8 // 8 = 1 vector of each row: the 64 blocks run in
    parallel; per step (64: unrolled) each weight vector is loaded once and added
    into the 8 rows' accumulators (the row loop unrolled).
    """

    @T.prim_func(private=True, s_tir=True)
    def matmul(x: T.Buffer((8, 64), "float32"), w: T.Buffer((64, 1024), "float32"), y: T.Buffer((8, 1024), "float32")):
        T.func_attr({"tirx.noalias": True})
        for j_0 in T.parallel(64):
            for i_init in T.unroll(8):
                for j_1_init in T.vectorized(16):
                    with T.sblock("matmul_init"):
                        vi = T.axis.spatial(8, i_init)
                        vj = T.axis.spatial(1024, j_0 * 16 + j_1_init)
                        y[vi, vj] = T.float32(0)
            for k in T.unroll(64):
                for i in T.unroll(8):
                    for j_1 in T.vectorized(16):
                        with T.sblock("matmul_update"):
                            vi = T.axis.spatial(8, i)
                            vj = T.axis.spatial(1024, j_0 * 16 + j_1)
                            vk = T.axis.reduce(64, k)
                            y[vi, vj] = y[vi, vj] + x[vi, vk] * w[vk, vj]


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        (ElementwiseBefore, ElementwiseExpected),
        (SmallElementwiseBefore, SmallElementwiseExpected),
        (DenseEpilogueBefore, DenseEpilogueExpected),
        (SmallDenseEpilogueBefore, SmallDenseEpilogueExpected),
        (LongRowBefore, LongRowExpected),
    ],
    ids=[
        "elementwise",
        "small-elementwise-stays-serial",
        "reduction-with-epilogue",
        "small-reduction-stays-serial",
        "long-row-in-vectors",
    ],
)
def test_expected_ir(before, expected):
    after = ScheduleDenseFallback()(before)
    tvm.ir.assert_structural_equal(after, expected)
    (gv,) = expected.get_global_vars()
    assert block_names(after[gv.name_hint]) == block_names(expected[gv])  # not compared above


def test_dense_conv_kernels_get_their_own_schedule():
    """A LowerDenseConv kernel, fused with its bias and ReLU, gets schedules.dense_conv_schedule."""
    from relay_passes.lower_dense_conv import LowerDenseConv
    from schedules.dense_conv_schedule import is_dense_conv, schedule_dense_conv

    rng = np.random.default_rng(4)
    weight = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    mod = LowerDenseConv(CpuSpec())(conv_epilogue_module(weight, (1, 3, 16, 16), rng.standard_normal(16).astype(np.float32)))
    with TARGET:
        before = tvm.transform.Sequential(cpu_pipeline.legalize_passes(TARGET))(mod)
    (name,) = [name for name, f in prim_funcs(before).items() if is_dense_conv(f)]
    after = prim_funcs(ScheduleDenseFallback()(before))
    tvm.ir.assert_structural_equal(after[name], schedule_dense_conv(prim_funcs(before)[name]))


def _one_op_model(node, x_shape, y_shape, initializers=()):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [node],
        "one_op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(y_shape))],
        [numpy_helper.from_array(value, name) for name, value in initializers],
    )
    from tvm_snn.train.exporter import MAX_IR_VERSION, ONNX_OPSET

    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], ir_version=MAX_IR_VERSION)


def test_fc_and_pools_compute_the_same():
    """The classifier (long rows in vectors, batch rows sharing the weight loads) and the pools, against NumPy."""
    from onnx import helper

    import tvm_snn

    rng = np.random.default_rng(5)
    weight = (rng.standard_normal((1000, 512)) / np.sqrt(512)).astype(np.float32)
    bias = rng.standard_normal(1000).astype(np.float32)
    x = rng.standard_normal((8, 512)).astype(np.float32)
    gemm = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
    got = tvm_snn.compile(_one_op_model(gemm, x.shape, (8, 1000), [("w", weight), ("b", bias)]))(x)
    np.testing.assert_allclose(got, x @ weight.T + bias, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)

    x = rng.standard_normal((8, 64, 7, 7)).astype(np.float32)
    pool = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    got = tvm_snn.compile(_one_op_model(pool, x.shape, (8, 64, 1, 1)))(x)
    np.testing.assert_allclose(got, x.mean(axis=(2, 3), keepdims=True), rtol=FLOAT_RTOL, atol=FLOAT_ATOL)

    x = rng.standard_normal((1, 8, 112, 112)).astype(np.float32)
    pool = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    got = tvm_snn.compile(_one_op_model(pool, x.shape, (1, 8, 56, 56)))(x)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    np.testing.assert_allclose(got, windows.max(axis=(-1, -2)), rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
