"""LowerSubBitConv: expected IR, must-not-fire, and numerics against the NumPy reference."""

import numpy as np
import pytest
import tvm
from relax_builders import conv_module, subbit_weight
from tvm import relax

from relay_passes.detect_subbit_conv import DetectSubBitConv
from relay_passes.layer_records import ATTR_REPORT, report_record
from relay_passes.lower_subbit_conv import (
    ATTR_OP_PATTERN,
    KERNEL_FUNC_NAME,
    OP_PATTERN_OUT_ELEMWISE_FUSABLE,
    LowerSubBitConv,
)
from relay_passes.report import LayerReport
from schedules import kernels
from schedules.cpu import CpuSpec
from schedules.reference import conv2d_reference
from schedules.subbit import SubBitConv
from schedules.subbit_plan import SubBitPlan

from common import KERNEL_ATOL, KERNEL_RTOL

SHAPE = (1, 64, 8, 8)
TARGET = tvm.target.Target({"kind": "llvm"})


def expected_report(conv, kernel):
    """The report the kernel carries: the detector's, with the kernel and its real bytes."""
    report = LayerReport(
        name="conv0:gv",
        kernel="3x3",
        tau=5,
        bits_per_weight=5 / 9,
        activation=conv.activation,
        lowered=True,
        weights=64 * 64 * 9,
        # 64 x 64 indices of 5 bits, the unpacking tail, 32 x 3 int32 row patterns, alpha.
        stored_bytes=64 * 64 * 5 // 8 + 64 + 32 * 3 * 4 + 64 * 4,
        snn_kernel="pixel-lane",
    )
    assert report.stored_bytes == kernel.stored_bytes
    return report_record(0, report)


def expected_module(conv):
    """The kernel called on ``x``: with binary activations it applies the sign itself."""
    kernel = kernels.build(conv, SHAPE, SubBitPlan.default(conv, SHAPE, CpuSpec()))
    builder = relax.BlockBuilder()
    func = (
        kernel.func.without_attr("global_symbol")
        .with_attr(ATTR_OP_PATTERN, OP_PATTERN_OUT_ELEMWISE_FUSABLE)
        .with_attr(ATTR_REPORT, expected_report(conv, kernel))
    )
    gv = builder.add_func(func, KERNEL_FUNC_NAME)
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            consts = [relax.const(a) for a in kernel.constants]
            call = relax.call_tir(gv, [x, *consts], relax.TensorType(kernel.out_shape, "float32"))
            out = builder.emit_output(call)
        builder.emit_func_output(out)
    return builder.get()


@pytest.mark.parametrize("binary", [False, True])
def test_expected_ir(binary):
    weight = subbit_weight(64, 64, tau=5, seed=1)
    detected = DetectSubBitConv()(conv_module(weight, SHAPE, binary=binary))
    lowered = LowerSubBitConv()(detected)
    conv = SubBitConv.from_dense(weight, padding=1, activation="binary" if binary else "float")
    tvm.ir.assert_structural_equal(lowered, expected_module(conv))
    # The dense weight is gone: uint8 indices, the int32 segment table and float32 alpha remain.
    consts = []
    relax.analysis.post_order_visit(lowered["main"].body, lambda e: consts.append(e) if isinstance(e, tvm.ir.GenericConst) else None)
    assert sorted(str(c.value.dtype) for c in consts) == ["float32", "int32", "uint8"]
    assert all(c.value.numpy().nbytes < weight.nbytes / 40 for c in consts)


def test_must_not_fire_without_composites():
    before = conv_module(np.random.default_rng(0).standard_normal((64, 64, 3, 3)).astype(np.float32), SHAPE)
    detected = DetectSubBitConv()(before)
    tvm.ir.assert_structural_equal(LowerSubBitConv()(detected), detected)


@pytest.mark.parametrize(
    ("kernel", "cin", "stride", "binary"),
    [(3, 64, 1, False), (3, 64, 2, True), (1, 64, 2, False), (1, 64, 1, True)],
)
def test_lowered_module_matches_reference(kernel, cin, stride, binary):
    weight = subbit_weight(64, cin, kernel=kernel, tau=4, seed=kernel)
    padding = 1 if kernel == 3 else 0
    mod = LowerSubBitConv()(DetectSubBitConv()(conv_module(weight, SHAPE, binary, padding=padding, stride=stride)))
    assert any(isinstance(f, tvm.tirx.PrimFunc) for _, f in mod.functions_items())
    x = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    vm = relax.VirtualMachine(tvm.compile(mod, target=TARGET), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x)).numpy()
    conv = SubBitConv.from_dense(weight, padding=padding, stride=stride, activation="binary" if binary else "float")
    np.testing.assert_allclose(got, conv2d_reference(x, conv), rtol=KERNEL_RTOL, atol=KERNEL_ATOL)


def test_a_sign_with_other_readers_stays():
    """The conv takes x; the sign op stays for its other reader."""
    weight = subbit_weight(64, 64, tau=5, seed=1)
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            signs = builder.emit(relax.op.sign(x))
            conv = builder.emit(relax.op.nn.conv2d(signs, relax.const(weight), padding=1))
            out = builder.emit_output(relax.Tuple([conv, relax.op.sum(signs)]))
        builder.emit_func_output(out)
    lowered = LowerSubBitConv()(DetectSubBitConv()(builder.get()))
    calls = []
    relax.analysis.post_order_visit(lowered["main"].body, lambda e: calls.append(e) if isinstance(e, relax.Call) else None)
    (kernel_call,) = [c for c in calls if c.op.name == "relax.call_tir"]
    assert kernel_call.args[1][0].same_as(lowered["main"].params[0])
    assert [c.op.name for c in calls].count("relax.sign") == 1
    vm = relax.VirtualMachine(tvm.compile(lowered, target=TARGET), tvm.cpu())
    x_np = np.random.default_rng(3).standard_normal(SHAPE).astype(np.float32)
    got, total = vm["main"](tvm.runtime.tensor(x_np))
    conv = SubBitConv.from_dense(weight, padding=1, activation="binary")
    np.testing.assert_allclose(got.numpy(), conv2d_reference(x_np, conv), rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
    assert total.numpy() == np.sign(x_np).sum()
