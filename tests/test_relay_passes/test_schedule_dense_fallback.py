"""ScheduleDenseFallback: dense kernels get the default schedule; sub-bit kernels are left alone."""

import numpy as np
import tvm
from relax_builders import conv_epilogue_module, conv_module, subbit_weight
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline

from relay_passes.detect_subbit_conv import DetectSubBitConv
from relay_passes.lower_subbit_conv import LowerSubBitConv
from relay_passes.schedule_dense_fallback import ScheduleDenseFallback
from schedules.dense_cpu import schedule_dense
from schedules.reference import conv2d_dense_reference
from schedules.subbit_lane_schedule import is_lane_kernel
from schedules.subbit_schedule import is_subbit_kernel

from common import KERNEL_ATOL, KERNEL_RTOL, SCHEDULED_ATOL, SCHEDULED_RTOL

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
    kernels = {name: f for name, f in prim_funcs(before).items() if is_subbit_kernel(f)}
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
    mod = LowerSubBitConv(vbmi=True)(DetectSubBitConv()(conv_module(subbit_weight(256, 256, tau=5), shape, binary=True)))
    with TARGET:
        passes = cpu_pipeline.library_dispatch_passes(TARGET) + cpu_pipeline.legalize_passes(TARGET)
        before = tvm.transform.Sequential(passes)(mod)
    kernels = {name: f for name, f in prim_funcs(before).items() if is_lane_kernel(f)}
    assert kernels
    after = prim_funcs(ScheduleDenseFallback()(before))
    for name, func in kernels.items():
        tvm.ir.assert_structural_equal(after[name], func)
