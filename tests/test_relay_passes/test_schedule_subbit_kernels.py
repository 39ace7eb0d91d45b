"""ScheduleSubBitKernels: the fused epilogue lands in the kernel, which is then scheduled."""

import dataclasses

import numpy as np
import pytest
import tvm
from relax_builders import conv_epilogue_module, subbit_weight
from tir_helpers import masked_offset_loads
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline

from relay_passes.detect_subbit_conv import DetectSubBitConv
from relay_passes.lower_subbit_conv import LowerSubBitConv
from relay_passes.pipeline import build_pipeline, target_has_vbmi, target_vector_bytes
from relay_passes.schedule_subbit_kernels import ScheduleSubBitKernels
from schedules.reference import conv2d_reference
from schedules.subbit import SubBitConv
from schedules.subbit_schedule import is_subbit_kernel, schedule_kernel
from tvm_snn.target import parse_target

from common import KERNEL_ATOL, KERNEL_RTOL, needs_vbmi

SHAPE = (1, 64, 8, 8)
TARGET = tvm.target.Target({"kind": "llvm"})


def block_module(weight, bias, residual):
    """``relu(conv2d(x, W) + bias + residual)``: the epilogue of a ResNet block."""
    return conv_epilogue_module(weight, SHAPE, bias, residual)


def fused(mod):
    mod = LowerSubBitConv()(DetectSubBitConv()(mod))
    with TARGET:
        return tvm.transform.Sequential(cpu_pipeline.library_dispatch_passes(TARGET) + cpu_pipeline.legalize_passes(TARGET))(mod)


def inputs():
    rng = np.random.default_rng(0)
    weight = subbit_weight(64, 64, tau=5, seed=4)
    bias = rng.standard_normal(64).astype(np.float32)
    residual = rng.standard_normal(SHAPE).astype(np.float32)
    return weight, bias, residual


def test_epilogue_is_fused_into_the_kernel_and_scheduled():
    mod = fused(block_module(*inputs()))
    kernels = [(gv, f) for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc) and is_subbit_kernel(f)]
    (gv, func), = kernels
    assert "add" in gv.name_hint and "relu" in gv.name_hint
    after = ScheduleSubBitKernels()(mod)
    tvm.ir.assert_structural_equal(after[gv], schedule_kernel(func))
    assert masked_offset_loads(func) and not masked_offset_loads(after[gv])  # found after FuseTIR too
    for other, f in mod.functions_items():
        if other.name_hint != gv.name_hint:
            tvm.ir.assert_structural_equal(after[other], f)


def test_must_not_fire_on_dense_kernels():
    weight = np.random.default_rng(1).standard_normal((64, 64, 3, 3)).astype(np.float32)
    _, bias, residual = inputs()
    mod = fused(block_module(weight, bias, residual))
    tvm.ir.assert_structural_equal(ScheduleSubBitKernels()(mod), mod)


def test_fused_block_matches_reference():
    weight, bias, residual = inputs()
    layers = []
    executable = tvm.compile(block_module(weight, bias, residual), target=TARGET, relax_pipeline=build_pipeline(TARGET, layers))
    assert [layer.lowered for layer in layers] == [True]
    x = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    got = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    conv = SubBitConv.from_dense(weight, bias=bias, padding=1)
    expected = np.maximum(conv2d_reference(x, conv) + residual, 0)
    np.testing.assert_allclose(got, expected, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)


@pytest.mark.parametrize(
    ("target", "width"),
    [("llvm -mcpu=skylake-avx512", 64), ("llvm -mcpu=haswell", 32), ("aarch64", 16), ("pynq", 16)],
)
def test_register_blocking_follows_the_target_vector_width(target, width):
    assert target_vector_bytes(parse_target(target)) == width


@pytest.mark.parametrize(
    ("target", "lane"), [pytest.param("x86", True, marks=needs_vbmi), ("llvm -mcpu=skylake-avx512", False)]
)
def test_binary_4x4_block_takes_the_lane_kernel_where_the_target_has_vbmi(target, lane):
    shape = (1, 256, 4, 4)
    rng = np.random.default_rng(5)
    weight = subbit_weight(256, 256, tau=5, seed=6)
    bias = rng.standard_normal(256).astype(np.float32)
    residual = rng.standard_normal(shape).astype(np.float32)
    mod = conv_epilogue_module(weight, shape, bias, residual, binary=True)
    target = tvm.target.Target(parse_target(target))
    lowered = build_pipeline(target, [])(mod)
    # Block names are gone once lowered; the buffers keep the stage names.
    scripts = [f.script() for f in lowered.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
    assert ["snn_lane" in s for s in scripts].count(True) == int(lane)
    assert ["snn_resp" in s for s in scripts].count(True) == int(not lane)
    executable = tvm.compile(mod, target=target, relax_pipeline=build_pipeline(target, []))
    x = rng.standard_normal(shape).astype(np.float32)
    x[:, :, ::2] = 0.0
    got = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    conv = dataclasses.replace(SubBitConv.from_dense(weight, bias=bias, padding=1), activation="binary")
    expected = np.maximum(conv2d_reference(x, conv) + residual, 0)
    np.testing.assert_allclose(got, expected, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)


@pytest.mark.parametrize(
    ("target", "vbmi"),
    [("llvm -mcpu=icelake-server", True), ("llvm -mcpu=skylake-avx512", False), ("aarch64", False), ("pynq", False)],
)
def test_lane_kernels_need_avx512_vbmi(target, vbmi):
    assert target_has_vbmi(parse_target(target)) == vbmi
