"""ScheduleSubBitKernels: the fused epilogue lands in the kernel, which is then scheduled."""

import dataclasses
import json

import numpy as np
import pytest
import tvm
from relax_builders import conv_epilogue_module, conv_module, subbit_weight
from tir_helpers import block_names, masked_offset_loads
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline
from tvm.script import tirx as T

from relay_passes.detect_subbit_conv import DetectSubBitConv
from relay_passes.layer_records import ATTR_REPORT, read_reports
from relay_passes.lower_subbit_conv import LowerSubBitConv
from relay_passes.pipeline import build_pipeline, run_graph_passes
from relay_passes.schedule_subbit_kernels import ScheduleSubBitKernels
from schedules.cpu import CpuSpec
from schedules.kernels import kernel_kind
from schedules.reference import conv2d_reference
from schedules.subbit import SubBitConv
from schedules.subbit_schedule import schedule_kernel
from tvm_snn.target import parse_target

from common import KERNEL_ATOL, KERNEL_RTOL, needs_avx512, needs_vbmi

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
# channels (2 units of 8) to 4, tau=1, float activations, on a 4x4 image.
TINY_SHAPE = (1, 16, 4, 4)

# The tiny kernel's PrimFunc, written by hand in TVMScript (the house standard: Expected
# IR is never produced by the code under test), before and after the pass. The plan
# annotation and the function attributes are written out, but for the layer report
# (``tvm_snn.report``, a JSON record whose fields grow with the report), which is
# stripped from the kernel before comparing: the test checks apart that the pass keeps
# it, and reads the fields the kernel decides (kernel kind, stored bytes).
#
# The knobs (schedules/subbit_plan.py, SubBitPlan.default on CpuSpec(): 2 cores, 64-byte
# vectors): the 4x4 output is padded to rows of 4 (a power of two) and 4 rows stack into
# one tile of 16 pixels (one float32 vector); one tile on 2 cores: channel_splits 2; a
# 16-pixel float accumulator is one register, so register_block is the part's 2
# channels; the 2 units' 2 codewords x 16 pixels x 4 bytes fit the response budget:
# unit_group 2 (of 2).
TINY_PLAN = json.dumps(
    {
        "kind": "pixel-lane",
        "tile_rows": 4,
        "tile_width": 4,
        "unit_group": 2,
        "channel_splits": 2,
        "register_block": 2,
        "unroll_unpack": True,
        "vector_bytes": 64,
        "byte_unpack": False,
        "num_cores": 2,
    },
    sort_keys=True,
)
# LowerSubBitConv: no global symbol (private), fusable as "output elementwise" (4).
TINY_ATTRS = {"op_pattern": 4, "tirx.noalias": True}
# The constants' bytes: 1 byte of 8 one-bit indices and the stream's zero tail of 64
# (UNPACK_TAIL_BYTES), the 2x2 int32 segment table, 4 float32 alphas.
TINY_STORED_BYTES = 65 + 2 * 2 * 4 + 4 * 4

# The codebook of the tiny conv (subbit_weight(4, 16, kernel=1, tau=1, seed=0)), per
# codeword j and segment s (a half unit of 4 input channels) the sign pattern, bit e set
# where element e is -1 (schedules/subbit_tir.segment_table):
#   codeword 0: + + + - | - + - -  ->  8, 13
#   codeword 1: - - + + | + - + -  ->  3, 10
# baked 4 bits per codeword into one immediate per segment (_baked_lookup):
# 8 | 3 << 4 = 56 and 13 | 10 << 4 = 173.
#
# The stage bodies are as create_prim_func's simplifier leaves the TE: constants on the
# right, (index + (u % 2) * 2) * 16 distributed, f // 16 % 2 as f % 32 // 16, and so on.


@T.prim_func(private=True, s_tir=True)
def tiny_before(
    data_handle: T.handle,
    packed: T.Buffer((T.int64(65),), "uint8"),
    segments: T.Buffer((T.int64(2), T.int64(2)), "int32"),
    alpha: T.Buffer((T.int64(4),), "float32"),
    snn_out: T.Buffer((T.int64(1), T.int64(4), T.int64(4), T.int64(4)), "float32"),
):
    """The kernel as LowerSubBitConv emits it (and FuseTIR keeps it): one serial nest per stage."""
    T.func_attr(TINY_ATTRS)
    # The input is read only by the pad, a te.extern stage, whose input buffer has a free
    # element offset (int64, as every index).
    elem_offset = T.int64()
    data = T.match_buffer(data_handle, (T.int64(1), T.int64(16), T.int64(4), T.int64(4)), "float32", elem_offset=elem_offset)
    snn_idx = T.sblock_alloc_buffer((T.int64(4), T.int64(2)), "int16")
    snn_pad = T.sblock_alloc_buffer((T.int64(1), T.int64(16), T.int64(1), T.int64(1), T.int64(4), T.int64(4)))
    snn_seg = T.sblock_alloc_buffer((T.int64(1), T.int64(2), T.int64(2), T.int64(8), T.int64(4), T.int64(4)))
    snn_resp = T.sblock_alloc_buffer((T.int64(1), T.int64(1), T.int64(1), T.int64(1), T.int64(64)))
    snn_acc = T.sblock_alloc_buffer((T.int64(1), T.int64(4), T.int64(4), T.int64(4)))
    # Offsets: index o * 2 + u of the 1-bit stream, (idx + (u % 2) * 2) * 16 in int16.
    for o, u in T.grid(T.int64(4), T.int64(2)):
        with T.sblock("snn_idx"):
            v_o, v_u = T.axis.remap("SS", [o, u])
            T.reads(packed[(v_o * T.int64(2) + v_u) // T.int64(8) : (v_o * T.int64(2) + v_u) // T.int64(8) + T.int64(2)])
            T.writes(snn_idx[v_o, v_u])
            bit = T.meta_var(v_o * T.int64(2) + v_u)
            low = T.meta_var(T.Cast("int32", packed[bit // T.int64(8)]))
            high = T.meta_var(T.Cast("int32", packed[bit // T.int64(8) + T.int64(1)]))
            index = T.meta_var(T.Cast("int64", low | high << 8) >> bit % T.int64(8) & T.int64(1))
            snn_idx[v_o, v_u] = T.Cast("int16", v_u % T.int64(2) * T.int64(32) + index * T.int64(16))
    # The hand-written pad (schedules/subbit_pad.py): channel-major [n, c, ry, k, y, x] (a
    # tile of stacked rows), one phase, one plane, no padding; 256 elements, so serial. Per
    # row the branch on the row being inside the image (always, here): a copy of 4 lanes,
    # else zeros.
    with T.sblock("snn_pad"):
        T.reads()
        T.writes()
        for nc, y in T.grid(T.int64(16), T.int64(4)):
            if y >= T.int64(0) and y < T.int64(4):
                for xv in T.vectorized(T.int64(4)):
                    snn_pad[nc // T.int64(16), nc % T.int64(16), T.int64(0), T.int64(0), y, xv] = data[nc // T.int64(16), nc % T.int64(16), y, xv]
            else:
                for xv in T.vectorized(T.int64(4)):
                    snn_pad[nc // T.int64(16), nc % T.int64(16), T.int64(0), T.int64(0), y, xv] = T.float32(0.0)
    # Segment sums: both halves of both units under the 8 patterns with element 3 positive.
    for n, u, seg, q, oh, ow in T.grid(T.int64(1), T.int64(2), T.int64(2), T.int64(8), T.int64(4), T.int64(4)):
        with T.sblock("snn_seg"):
            v_n, v_u, v_seg, v_q, v_oh, v_ow = T.axis.remap("SSSSSS", [n, u, seg, q, oh, ow])
            T.reads(snn_pad[v_n, v_u * T.int64(8) + v_seg * T.int64(4) : v_u * T.int64(8) + v_seg * T.int64(4) + T.int64(4), T.int64(0), T.int64(0), v_oh, v_ow])
            T.writes(snn_seg[v_n, v_u, v_seg, v_q, v_oh, v_ow])
            c = T.meta_var(v_u * T.int64(8) + v_seg * T.int64(4))
            snn_seg[v_n, v_u, v_seg, v_q, v_oh, v_ow] = (
                snn_pad[v_n, c, T.int64(0), T.int64(0), v_oh, v_ow] * T.Cast("float32", T.int64(1) - (v_q & T.int64(1)) * T.int64(2))
                + snn_pad[v_n, c + T.int64(1), T.int64(0), T.int64(0), v_oh, v_ow] * T.Cast("float32", T.int64(1) - (v_q >> T.int64(1) & T.int64(1)) * T.int64(2))
                + snn_pad[v_n, c + T.int64(2), T.int64(0), T.int64(0), v_oh, v_ow] * T.Cast("float32", T.int64(1) - (v_q >> T.int64(2) & T.int64(1)) * T.int64(2))
                + snn_pad[v_n, c + T.int64(3), T.int64(0), T.int64(0), v_oh, v_ow] * T.Cast("float32", T.int64(1) - (v_q >> T.int64(3) & T.int64(1)) * T.int64(2))
            )
    # Responses of the one tile: f = unit * 32 + codeword * 16 + pixel; per segment the
    # baked pattern, folded to a pattern with element 3 positive and negated if flipped.
    for n, th, tw, g, f in T.grid(T.int64(1), T.int64(1), T.int64(1), T.int64(1), T.int64(64)):
        with T.sblock("snn_resp"):
            v_n, v_th, v_tw, v_g, v_f = T.axis.remap("SSSSS", [n, th, tw, g, f])
            T.reads(snn_seg[v_n, v_g * T.int64(2) + v_f // T.int64(32), T.int64(0) : T.int64(2), T.int64(0) : T.int64(8), v_th * T.int64(4) + v_f % T.int64(16) // T.int64(4), v_tw * T.int64(4) + v_f % T.int64(4)])
            T.writes(snn_resp[v_n, v_th, v_tw, v_g, v_f])
            unit = T.meta_var(v_g * T.int64(2) + v_f // T.int64(32))
            code = T.meta_var(v_f % T.int64(32) // T.int64(16))
            row = T.meta_var(v_th * T.int64(4) + v_f % T.int64(16) // T.int64(4))
            col = T.meta_var(v_tw * T.int64(4) + v_f % T.int64(4))
            p0 = T.meta_var(T.int64(56) >> code * T.int64(4) & T.int64(15))
            p1 = T.meta_var(T.int64(173) >> code * T.int64(4) & T.int64(15))
            s0 = T.meta_var(snn_seg[v_n, unit, T.int64(0), (p0 ^ (p0 >> T.int64(3)) * T.int64(15)) & T.int64(7), row, col])
            s1 = T.meta_var(snn_seg[v_n, unit, T.int64(1), (p1 ^ (p1 >> T.int64(3)) * T.int64(15)) & T.int64(7), row, col])
            snn_resp[v_n, v_th, v_tw, v_g, v_f] = T.Select(p0 >> T.int64(3) == T.int64(1), -s0, s0) + T.Select(p1 >> T.int64(3) == T.int64(1), -s1, s1)
    # The gather: per unit, the response at the stored offset (masked to the group's
    # 48 + 16 responses, for the region analysis) plus the pixel's place in the tile.
    for n, o, oh, ow, u in T.grid(T.int64(1), T.int64(4), T.int64(4), T.int64(4), T.int64(2)):
        with T.sblock("snn_acc"):
            v_n, v_o, v_oh, v_ow, v_u = T.axis.remap("SSSSR", [n, o, oh, ow, u])
            T.reads(snn_resp[v_n, v_oh // T.int64(4), v_ow // T.int64(4), v_u // T.int64(2), T.int64(0) : T.int64(64)], snn_idx[v_o, v_u])
            T.writes(snn_acc[v_n, v_o, v_oh, v_ow])
            with T.init():
                snn_acc[v_n, v_o, v_oh, v_ow] = T.float32(0.0)
            snn_acc[v_n, v_o, v_oh, v_ow] = snn_acc[v_n, v_o, v_oh, v_ow] + snn_resp[v_n, v_oh // T.int64(4), v_ow // T.int64(4), v_u // T.int64(2), v_oh % T.int64(4) * T.int64(4) + (T.Cast("int64", snn_idx[v_o, v_u]) & T.int64(48)) + v_ow % T.int64(4)]
    # The epilogue (no bias), carrying the plan.
    for n, o, oh, ow in T.grid(T.int64(1), T.int64(4), T.int64(4), T.int64(4)):
        with T.sblock("snn_out"):
            v_n, v_o, v_oh, v_ow = T.axis.remap("SSSS", [n, o, oh, ow])
            T.reads(snn_acc[v_n, v_o, v_oh, v_ow], alpha[v_o])
            T.writes(snn_out[v_n, v_o, v_oh, v_ow])
            T.sblock_attr({"tvm_snn.plan": TINY_PLAN})
            snn_out[v_n, v_o, v_oh, v_ow] = snn_acc[v_n, v_o, v_oh, v_ow] * alpha[v_o]


@T.prim_func(private=True, s_tir=True)
def tiny_expected(
    data_handle: T.handle,
    packed: T.Buffer((T.int64(65),), "uint8"),
    segments: T.Buffer((T.int64(2), T.int64(2)), "int32"),
    alpha: T.Buffer((T.int64(4),), "float32"),
    snn_out: T.Buffer((T.int64(1), T.int64(4), T.int64(4), T.int64(4)), "float32"),
):
    """The kernel after schedules/subbit_schedule.schedule_kernel, step by step."""
    T.func_attr(TINY_ATTRS)
    elem_offset = T.int64()
    data = T.match_buffer(data_handle, (T.int64(1), T.int64(16), T.int64(4), T.int64(4)), "float32", elem_offset=elem_offset)
    snn_idx = T.sblock_alloc_buffer((T.int64(4), T.int64(2)), "int16")
    snn_pad = T.sblock_alloc_buffer((T.int64(1), T.int64(16), T.int64(1), T.int64(1), T.int64(4), T.int64(4)))
    snn_seg = T.sblock_alloc_buffer((T.int64(1), T.int64(2), T.int64(2), T.int64(8), T.int64(4), T.int64(4)))
    snn_resp = T.sblock_alloc_buffer((T.int64(1), T.int64(1), T.int64(1), T.int64(1), T.int64(64)))
    snn_acc = T.sblock_alloc_buffer((T.int64(1), T.int64(4), T.int64(4), T.int64(4)))
    # The unpacking is left as it was: 8 indices are below MIN_PARALLEL_WORK (no parallel),
    # and the period of a 1-bit stream is 8 indices, which the 2 units do not fill (no
    # split for unrolling).
    for o, u in T.grid(T.int64(4), T.int64(2)):
        with T.sblock("snn_idx"):
            v_o, v_u = T.axis.remap("SS", [o, u])
            T.reads(packed[(v_o * T.int64(2) + v_u) // T.int64(8) : (v_o * T.int64(2) + v_u) // T.int64(8) + T.int64(2)])
            T.writes(snn_idx[v_o, v_u])
            bit = T.meta_var(v_o * T.int64(2) + v_u)
            low = T.meta_var(T.Cast("int32", packed[bit // T.int64(8)]))
            high = T.meta_var(T.Cast("int32", packed[bit // T.int64(8) + T.int64(1)]))
            index = T.meta_var(T.Cast("int64", low | high << 8) >> bit % T.int64(8) & T.int64(1))
            snn_idx[v_o, v_u] = T.Cast("int16", v_u % T.int64(2) * T.int64(32) + index * T.int64(16))
    # The pad is not touched by the schedule (it decided its loops itself).
    with T.sblock("snn_pad"):
        T.reads()
        T.writes()
        for nc, y in T.grid(T.int64(16), T.int64(4)):
            if y >= T.int64(0) and y < T.int64(4):
                for xv in T.vectorized(T.int64(4)):
                    snn_pad[nc // T.int64(16), nc % T.int64(16), T.int64(0), T.int64(0), y, xv] = data[nc // T.int64(16), nc % T.int64(16), y, xv]
            else:
                for xv in T.vectorized(T.int64(4)):
                    snn_pad[nc // T.int64(16), nc % T.int64(16), T.int64(0), T.int64(0), y, xv] = T.float32(0.0)
    # The gather's loops n, o, oh, ow, u: oh and ow split by the tile (4 x 4: oh_0 = ow_0 = 1),
    # o into channel_splits x blocks x register_block (2 x 1 x 2), u into groups x
    # unit_group (1 x 2); reordered to n, oh_0, ow_0, o_0, u_0, o_1, u_1, o_2, oh_1, ow_1;
    # the first four fused into the item loop (2 items, parallel; n binds to 0), oh_1 and
    # ow_1 into the tile's 16 pixels, split into vectors of 16 lanes: p_o (1, unrolled) x
    # p_i (16, vectorized); o_2 unrolled.
    for item in T.parallel(T.int64(2)):
        # decompose_reduction at u_0: the accumulators zeroed in front of the unit loop,
        # over the spatial loops below it, kinds kept: o_1, o_2, p_o, p_i.
        for o_1_init in range(T.int64(1)):
            for o_2_init in T.unroll(T.int64(2)):
                for p_o_init in T.unroll(T.int64(1)):
                    for p_i_init in T.vectorized(T.int64(16)):
                        with T.sblock("snn_acc_init"):
                            v_n = T.axis.spatial(T.int64(1), T.int64(0))
                            v_o = T.axis.spatial(T.int64(4), item * T.int64(2) + o_1_init * T.int64(2) + o_2_init)
                            v_oh = T.axis.spatial(T.int64(4), (p_o_init * T.int64(16) + p_i_init) // T.int64(4))
                            v_ow = T.axis.spatial(T.int64(4), (p_o_init * T.int64(16) + p_i_init) % T.int64(4))
                            T.reads()
                            T.writes(snn_acc[v_n, v_o, v_oh, v_ow])
                            snn_acc[v_n, v_o, v_oh, v_ow] = T.float32(0.0)
        for u_0 in range(T.int64(1)):
            # _schedule_responses: the responses computed at the unit-group loop u_0 (unit
            # loops kept: n, th, tw, g of 1), their 64 = 2 units x 2 codewords x 16 pixels
            # split, the pixels into vectors (1 x 16), reordered to unit, vector, codeword
            # (unrolled: the baked patterns fold to constants), 16 lanes (vectorized).
            for r_n, r_th, r_tw, r_g, r_u in T.grid(T.int64(1), T.int64(1), T.int64(1), T.int64(1), T.int64(2)):
                # The unit's segment sums, computed at the unit loop r_u (unit loops kept:
                # n, u of 1), per segment (2) its 8 patterns (unrolled), the 16 pixels
                # (oh and ow fused) as one vector.
                for s_n, s_u, s_seg in T.grid(T.int64(1), T.int64(1), T.int64(2)):
                    for s_q in T.unroll(T.int64(8)):
                        for s_p_o in range(T.int64(1)):
                            for s_p_i in T.vectorized(T.int64(16)):
                                with T.sblock("snn_seg"):
                                    v_n = T.axis.spatial(T.int64(1), s_n)
                                    v_u = T.axis.spatial(T.int64(2), r_u + s_u)
                                    v_seg, v_q = T.axis.remap("SS", [s_seg, s_q])
                                    v_oh = T.axis.spatial(T.int64(4), (s_p_o * T.int64(16) + s_p_i) // T.int64(4))
                                    v_ow = T.axis.spatial(T.int64(4), (s_p_o * T.int64(16) + s_p_i) % T.int64(4))
                                    T.reads(snn_pad[v_n, v_u * T.int64(8) + v_seg * T.int64(4) : v_u * T.int64(8) + v_seg * T.int64(4) + T.int64(4), T.int64(0), T.int64(0), v_oh, v_ow])
                                    T.writes(snn_seg[v_n, v_u, v_seg, v_q, v_oh, v_ow])
                                    c = T.meta_var(v_u * T.int64(8) + v_seg * T.int64(4))
                                    snn_seg[v_n, v_u, v_seg, v_q, v_oh, v_ow] = (
                                        snn_pad[v_n, c, T.int64(0), T.int64(0), v_oh, v_ow] * T.Cast("float32", T.int64(1) - (v_q & T.int64(1)) * T.int64(2))
                                        + snn_pad[v_n, c + T.int64(1), T.int64(0), T.int64(0), v_oh, v_ow] * T.Cast("float32", T.int64(1) - (v_q >> T.int64(1) & T.int64(1)) * T.int64(2))
                                        + snn_pad[v_n, c + T.int64(2), T.int64(0), T.int64(0), v_oh, v_ow] * T.Cast("float32", T.int64(1) - (v_q >> T.int64(2) & T.int64(1)) * T.int64(2))
                                        + snn_pad[v_n, c + T.int64(3), T.int64(0), T.int64(0), v_oh, v_ow] * T.Cast("float32", T.int64(1) - (v_q >> T.int64(3) & T.int64(1)) * T.int64(2))
                                    )
                for r_t_o in range(T.int64(1)):
                    for r_j in T.unroll(T.int64(2)):
                        for r_t_i in T.vectorized(T.int64(16)):
                            with T.sblock("snn_resp"):
                                v_n, v_th, v_tw, v_g = T.axis.remap("SSSS", [r_n, r_th, r_tw, r_g])
                                v_f = T.axis.spatial(T.int64(64), r_u * T.int64(32) + r_j * T.int64(16) + r_t_o * T.int64(16) + r_t_i)
                                T.reads(snn_seg[v_n, v_g * T.int64(2) + v_f // T.int64(32), T.int64(0) : T.int64(2), T.int64(0) : T.int64(8), v_th * T.int64(4) + v_f % T.int64(16) // T.int64(4), v_tw * T.int64(4) + v_f % T.int64(4)])
                                T.writes(snn_resp[v_n, v_th, v_tw, v_g, v_f])
                                unit = T.meta_var(v_g * T.int64(2) + v_f // T.int64(32))
                                code = T.meta_var(v_f % T.int64(32) // T.int64(16))
                                row = T.meta_var(v_th * T.int64(4) + v_f % T.int64(16) // T.int64(4))
                                col = T.meta_var(v_tw * T.int64(4) + v_f % T.int64(4))
                                p0 = T.meta_var(T.int64(56) >> code * T.int64(4) & T.int64(15))
                                p1 = T.meta_var(T.int64(173) >> code * T.int64(4) & T.int64(15))
                                s0 = T.meta_var(snn_seg[v_n, unit, T.int64(0), (p0 ^ (p0 >> T.int64(3)) * T.int64(15)) & T.int64(7), row, col])
                                s1 = T.meta_var(snn_seg[v_n, unit, T.int64(1), (p1 ^ (p1 >> T.int64(3)) * T.int64(15)) & T.int64(7), row, col])
                                snn_resp[v_n, v_th, v_tw, v_g, v_f] = T.Select(p0 >> T.int64(3) == T.int64(1), -s0, s0) + T.Select(p1 >> T.int64(3) == T.int64(1), -s1, s1)
            # The gather's update, after the responses under u_0: o_1, u_1 (2), o_2, p_o,
            # p_i. The mask on the stored offset is dropped (_drop_offset_masks); the read
            # region is still the one the mask bounded (the group's 64 responses).
            for o_1, u_1 in T.grid(T.int64(1), T.int64(2)):
                for o_2 in T.unroll(T.int64(2)):
                    for p_o in T.unroll(T.int64(1)):
                        for p_i in T.vectorized(T.int64(16)):
                            with T.sblock("snn_acc_update"):
                                v_n = T.axis.spatial(T.int64(1), T.int64(0))
                                v_o = T.axis.spatial(T.int64(4), item * T.int64(2) + o_1 * T.int64(2) + o_2)
                                v_oh = T.axis.spatial(T.int64(4), (p_o * T.int64(16) + p_i) // T.int64(4))
                                v_ow = T.axis.spatial(T.int64(4), (p_o * T.int64(16) + p_i) % T.int64(4))
                                v_u = T.axis.reduce(T.int64(2), u_0 * T.int64(2) + u_1)
                                T.reads(snn_acc[v_n, v_o, v_oh, v_ow], snn_resp[v_n, v_oh // T.int64(4), v_ow // T.int64(4), v_u // T.int64(2), T.int64(0) : T.int64(64)], snn_idx[v_o, v_u])
                                T.writes(snn_acc[v_n, v_o, v_oh, v_ow])
                                snn_acc[v_n, v_o, v_oh, v_ow] = snn_acc[v_n, v_o, v_oh, v_ow] + snn_resp[v_n, v_oh // T.int64(4), v_ow // T.int64(4), v_u // T.int64(2), v_oh % T.int64(4) * T.int64(4) + T.Cast("int64", snn_idx[v_o, v_u]) + v_ow % T.int64(4)]
        # The epilogue: reverse_compute_at the item (unit loops kept): n (1), the part's 2
        # channels, the 4 rows, each row one vector of gcd(4, 4) = 4 lanes.
        for e_n, e_o, e_oh in T.grid(T.int64(1), T.int64(2), T.int64(4)):
            for e_ow in T.vectorized(T.int64(4)):
                with T.sblock("snn_out"):
                    v_n = T.axis.spatial(T.int64(1), e_n)
                    v_o = T.axis.spatial(T.int64(4), item * T.int64(2) + e_o)
                    v_oh, v_ow = T.axis.remap("SS", [e_oh, e_ow])
                    T.reads(snn_acc[v_n, v_o, v_oh, v_ow], alpha[v_o])
                    T.writes(snn_out[v_n, v_o, v_oh, v_ow])
                    T.sblock_attr({"tvm_snn.plan": TINY_PLAN})
                    snn_out[v_n, v_o, v_oh, v_ow] = snn_acc[v_n, v_o, v_oh, v_ow] * alpha[v_o]


def tiny_kernel():
    """The legalized module of the tiny conv, the kernel's GlobalVar, and the conv."""
    weight = subbit_weight(4, 16, kernel=1, tau=1, seed=0)
    mod = fused(conv_module(weight, TINY_SHAPE, padding=0))
    (gv,) = [gv for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc) and "snn_resp" in block_names(f)]
    return mod, gv, SubBitConv.from_dense(weight)


def kernel_only(func):
    """``func`` without its layer report (see TINY_ATTRS), the rest as it is."""
    return func.without_attr(ATTR_REPORT)


def test_expected_ir_of_the_smallest_kernel():
    """The tiny kernel before and after the pass, against the hand-written TVMScript.

    ``assert_structural_equal`` does not compare block names: compared apart (the
    reduction split into ``snn_acc_init`` and ``snn_acc_update``).
    """
    mod, gv, conv = tiny_kernel()
    assert (conv.tau, conv.num_units, conv.out_channels) == (1, 2, 4)
    tvm.ir.assert_structural_equal(kernel_only(mod[gv]), tiny_before)  # tiny_before is the kernel
    assert block_names(mod[gv]) == block_names(tiny_before)
    after = ScheduleSubBitKernels()(mod)
    tvm.ir.assert_structural_equal(kernel_only(after[gv]), tiny_expected)
    assert block_names(after[gv]) == block_names(tiny_expected)
    assert len(masked_offset_loads(mod[gv])) == 1 and masked_offset_loads(after[gv]) == []  # as written above
    assert after[gv].attrs[ATTR_REPORT] == mod[gv].attrs[ATTR_REPORT]
    (report,) = read_reports(after)
    assert (report.snn_kernel, report.stored_bytes) == ("pixel-lane", TINY_STORED_BYTES)
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
    ("target", "lane"),
    [
        pytest.param("x86", True, marks=needs_vbmi),
        pytest.param("llvm -mcpu=skylake-avx512", False, marks=needs_avx512),
        ("llvm -mcpu=haswell", False),
    ],
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
