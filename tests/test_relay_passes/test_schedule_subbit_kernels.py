"""ScheduleSubBitKernels: the fused epilogue lands in the kernel, which is then scheduled."""

import dataclasses
import textwrap

import numpy as np
import pytest
import tvm
from relax_builders import conv_epilogue_module, conv_module, subbit_weight
from tir_helpers import block_names, loop_outline, masked_offset_loads
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline

from relay_passes.detect_subbit_conv import DetectSubBitConv
from relay_passes.layer_records import read_reports
from relay_passes.lower_subbit_conv import LowerSubBitConv
from relay_passes.pipeline import build_pipeline, run_graph_passes
from relay_passes.schedule_subbit_kernels import ScheduleSubBitKernels
from schedules.cpu import CpuSpec
from schedules.kernels import kernel_kind
from schedules.reference import conv2d_reference
from schedules.subbit import SubBitConv
from schedules.subbit_schedule import schedule_kernel
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
    kernels = [(gv, f) for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc) and kernel_kind(f) == "pixel-lane"]
    (gv, func), = kernels
    assert "add" in gv.name_hint and "relu" in gv.name_hint
    after = ScheduleSubBitKernels()(mod)
    tvm.ir.assert_structural_equal(after[gv], schedule_kernel(func))
    assert masked_offset_loads(func) and not masked_offset_loads(after[gv])  # found after FuseTIR too
    for other, f in mod.functions_items():
        if other.name_hint != gv.name_hint:
            tvm.ir.assert_structural_equal(after[other], f)


# The smallest kernel with every knob of the schedule above 1: a 1x1 conv of 16 input
# channels (2 units of 8) to 4, tau=1, float activations, on a 4x4 image. Its plan:
# the 4x4 output stacks into one tile of 16 pixels (one float32 vector); one tile on
# 2 cores splits the channels in 2 parts (2 items); each part keeps its 2 channels'
# accumulators in registers; both units form one group.
TINY_SHAPE = (1, 16, 4, 4)

# The unscheduled kernel as LowerSubBitConv emits it: one serial loop nest per stage
# (index unpacking o x u, the hand-built pad, segment sums n x u x segment x pattern x
# oh x ow, responses n x tile x tile x group x (2 units * 2 codewords * 16 pixels),
# the gather n x o x oh x ow x u, the epilogue).
TINY_BEFORE = """
    serial 4
      serial 2
        block snn_idx
    block snn_pad
      serial 16
        serial 4
          if
            vectorized 4
          else
            vectorized 4
    serial 1
      serial 2
        serial 2
          serial 8
            serial 4
              serial 4
                block snn_seg
    serial 1
      serial 1
        serial 1
          serial 1
            serial 64
              block snn_resp
    serial 1
      serial 4
        serial 4
          serial 4
            serial 2
              block snn_acc
    serial 1
      serial 4
        serial 4
          serial 4
            block snn_out
"""

# Scheduled (schedules/subbit_schedule.py), written from the schedule's steps:
# - the unpacking (8 indices, below MIN_PARALLEL_WORK) stays serial, and is not split
#   for unrolling (its 2 units are no whole period of 8 one-bit indices); the pad
#   keeps its own loops;
# - the gather's n, tile rows, tile columns and channel part fuse into the parallel
#   item loop (2); the accumulators' initialization is split off in front of the unit
#   loop: channel blocks (1), the register block (2, unrolled), the tile's pixels as
#   vectors (1 unrolled x 16 vectorized);
# - per unit group (1): the responses computed under it, n x tile x tile x group unit
#   loops kept, then per unit (2) its segment sums (2 segments x 8 patterns unrolled x
#   one vector of 16 pixels), then its responses: vectors of pixels (1) x the 2
#   codewords unrolled x 16 lanes;
# - the gather: channel blocks (1) x units of the group (2) x register block (2,
#   unrolled) x pixel vectors (1, unrolled) x 16 lanes;
# - the epilogue under the item: n (1) x the part's 2 channels x 4 rows x a row of 4
#   lanes (gcd of the output width and the tile width).
TINY_EXPECTED = """
    serial 4
      serial 2
        block snn_idx
    block snn_pad
      serial 16
        serial 4
          if
            vectorized 4
          else
            vectorized 4
    parallel 2
      serial 1
        unroll 2
          unroll 1
            vectorized 16
              block snn_acc_init
      serial 1
        serial 1
          serial 1
            serial 1
              serial 1
                serial 2
                  serial 1
                    serial 1
                      serial 2
                        unroll 8
                          serial 1
                            vectorized 16
                              block snn_seg
                  serial 1
                    unroll 2
                      vectorized 16
                        block snn_resp
        serial 1
          serial 2
            unroll 2
              unroll 1
                vectorized 16
                  block snn_acc_update
      serial 1
        serial 2
          serial 4
            vectorized 4
              block snn_out
"""


def outline(text):
    return textwrap.dedent(text).strip("\n").splitlines()


def tiny_kernel():
    """The legalized module of the tiny conv, the kernel's GlobalVar, and the conv."""
    weight = subbit_weight(4, 16, kernel=1, tau=1, seed=0)
    mod = fused(conv_module(weight, TINY_SHAPE, padding=0))
    (gv,) = [gv for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc) and "snn_resp" in block_names(f)]
    return mod, gv, SubBitConv.from_dense(weight)


def test_expected_loop_structure_of_the_smallest_kernel():
    """Hand-written expected loop structure, before and after the pass.

    Not the TVMScript: the kernel's Before and Expected print as about 150 lines and 17k
    characters (the baked codebook lookups alone are lines of 1.7k), over 300 lines wrapped.
    """
    mod, gv, conv = tiny_kernel()
    assert (conv.tau, conv.num_units, conv.out_channels) == (1, 2, 4)
    assert loop_outline(mod[gv]) == outline(TINY_BEFORE)
    after = ScheduleSubBitKernels()(mod)
    assert loop_outline(after[gv]) == outline(TINY_EXPECTED)
    assert len(masked_offset_loads(mod[gv])) == 1 and masked_offset_loads(after[gv]) == []
    for other, f in mod.functions_items():
        if other.name_hint != gv.name_hint:
            tvm.ir.assert_structural_equal(after[other], f)


def test_smallest_kernel_matches_reference():
    mod, _, conv = tiny_kernel()
    executable = tvm.compile(ScheduleSubBitKernels()(mod), target=TARGET)
    x = np.random.default_rng(7).standard_normal(TINY_SHAPE).astype(np.float32)
    got = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    np.testing.assert_allclose(got, conv2d_reference(x, conv), rtol=KERNEL_RTOL, atol=KERNEL_ATOL)

def test_must_not_fire_on_dense_kernels():
    weight = np.random.default_rng(1).standard_normal((64, 64, 3, 3)).astype(np.float32)
    _, bias, residual = inputs()
    mod = fused(block_module(weight, bias, residual))
    tvm.ir.assert_structural_equal(ScheduleSubBitKernels()(mod), mod)


def test_fused_block_matches_reference():
    weight, bias, residual = inputs()
    mod = block_module(weight, bias, residual)
    assert [layer.lowered for layer in read_reports(run_graph_passes(mod, TARGET))] == [True]
    executable = tvm.compile(mod, target=TARGET, relax_pipeline=build_pipeline(TARGET))
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
    assert CpuSpec.from_target(parse_target(target)).vector_bytes == width


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
    lowered = build_pipeline(target)(mod)
    # Block names are gone once lowered; the buffers keep the stage names.
    scripts = [f.script() for f in lowered.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
    assert ["snn_lane" in s for s in scripts].count(True) == int(lane)
    assert ["snn_resp" in s for s in scripts].count(True) == int(not lane)
    executable = tvm.compile(mod, target=target, relax_pipeline=build_pipeline(target))
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
    assert CpuSpec.from_target(parse_target(target)).vbmi == vbmi
