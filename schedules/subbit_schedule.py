"""The CPU schedule of the pixel-lane sub-bit kernel (see :mod:`schedules.subbit_tir`).

Every knob comes from the kernel's :class:`~schedules.subbit_plan.SubBitPlan`,
annotated on its output block. The output is cut into tiles
(:class:`~schedules.subbit_plan.Tile`) and the output channels into
``channel_splits`` parts; a (tile, part) pair is one parallel work item. Per
item, units are taken ``unit_group`` at a time:

1. the group's responses to every codeword are computed for the tile, from
   each unit's segment sums; they are sized to stay in L1
   (:func:`~schedules.subbit_plan.unit_group`);
2. output channels are taken ``register_block`` at a time: the block's
   accumulators stay in registers while each unit of the group adds one
   vector per channel, read at the unit's stored offset;
3. after the last chunk, the epilogue (alpha, bias, and what FuseOps
   appended: residual add, ReLU, the next sign) runs over the tile.

With few tiles, channels are split so every core has work; each part then
computes the tile's responses itself.
"""

import math

import tvm
import tvm_ffi
from tvm import tirx

from schedules.knobs import MIN_PARALLEL_WORK
from schedules.plan import plan_of
from schedules.schedule_helpers import (
    dtype_bytes,
    extents,
    has_block,
    inline_epilogue,
    work,
)
from schedules.subbit_plan import SubBitPlan
from schedules.subbit_tir import (
    BLOCK_ACC,
    BLOCK_IDX,
    BLOCK_OUT,
    BLOCK_PARTIAL,
    BLOCK_RESP,
    BLOCK_SEG,
)


def _tau(sch, plan):
    """The kernel's tau, from its response block: ``group * 2**tau * pixels`` per group."""
    span = extents(sch, sch.get_sblock(BLOCK_RESP))[-1]
    return (span // (plan.unit_group * plan.tile_rows * plan.tile_width)).bit_length() - 1


def schedule_kernel(func):
    """Schedule a pixel-lane kernel, alone or fused with an elementwise epilogue.

    Every knob comes from the :class:`~schedules.subbit_plan.SubBitPlan`
    annotated on the kernel's output block.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        A function for which :func:`is_subbit_kernel` holds.

    Returns
    -------
    tvm.tirx.PrimFunc
    """
    sch = tvm.s_tir.Schedule(func)
    plan = plan_of(sch, BLOCK_OUT, SubBitPlan)

    acc = sch.get_sblock(BLOCK_ACC)
    lanes = plan.vector_bytes // dtype_bytes(sch, acc)
    pixels = plan.tile_rows * plan.tile_width
    n, o, oh, ow, u = sch.get_loops(acc)
    oh_o, oh_i = sch.split(oh, [None, plan.tile_rows])
    ow_o, ow_i = sch.split(ow, [None, plan.tile_width])
    o_p, o_o, o_i = sch.split(o, [plan.channel_splits, None, plan.register_block])
    partial = has_block(sch, BLOCK_PARTIAL)  # binary: int8 sums per group of units
    if partial:  # u is the group: the partial sums take the units below o_o
        u_o, units = u, []
    else:
        u_o, u_i = sch.split(u, [None, plan.unit_group])
        units = [u_i]
    sch.reorder(n, oh_o, ow_o, o_p, u_o, o_o, *units, o_i, oh_i, ow_i)
    item = sch.fuse(n, oh_o, ow_o, o_p)
    pixel = sch.fuse(oh_i, ow_i)  # contiguous: a tile is whole rows or part of one
    p_o, p_i = sch.split(pixel, [None, min(lanes, pixels)])
    if partial:
        partial_units = _schedule_partial_sums(sch, o_o, pixels, plan.vector_bytes)

    out = sch.get_sblock(BLOCK_OUT)
    inline_epilogue(sch, out)
    sch.reverse_compute_at(out, item, preserve_unit_loops=True)
    _vectorize_epilogue(sch, out)

    _schedule_responses(sch, u_o, plan.unit_group, pixels, plan.vector_bytes)

    for loop in (o_i, p_o):
        sch.unroll(loop)
    sch.vectorize(p_i)
    sch.parallel(item)
    sch.decompose_reduction(acc, u_o)
    if partial:
        sch.decompose_reduction(sch.get_sblock(BLOCK_PARTIAL), partial_units)
    # Unpacking the O x U indices runs on every call; a parallel region costs a
    # fork and a join, so only a large one is spread over the cores (the padding
    # decides the same for itself, see schedules.subbit_pad).
    # (With VBMI the unpacking is hand-written TIR, scheduled already.)
    unpack = sch.get_sblock(BLOCK_IDX)
    if sch.get_loops(unpack):
        if work(sch, unpack) >= MIN_PARALLEL_WORK:
            sch.parallel(sch.get_loops(unpack)[0])
        if plan.unroll_unpack:
            _unroll_unpack(sch, _tau(sch, plan))
    return _drop_offset_masks(sch.mod["main"])


def _drop_offset_masks(func):
    """Remove the mask on the stored offsets from the gather's index.

    ``offset & last`` only bounds the index for the schedule's region
    analysis (see :func:`schedules.subbit_tir.build_te`): offsets are built
    within it. Once the schedule is done it is a wasted instruction per
    gathered vector (1.05x-1.09x faster without).
    """

    def unmask(node):
        offset = masked_offset(node)
        return node if offset is None else offset

    return tvm_ffi.structural_map(func, (tirx.BitwiseAnd, unmask))


def masked_offset(node):
    """The stored offset that ``node`` (an ``a & b``) masks, or None if it masks something else."""
    value = node.a
    if isinstance(value, tirx.Cast) and getattr(getattr(value.value, "source", None), "name", None) == BLOCK_IDX:
        return value
    return None


def _vectorize_epilogue(sch, out):
    """Vectorize the epilogue along a tile row, in pieces that divide the output width.

    A row's last tile may reach past the output; with pieces of
    ``gcd(out_w, tile width)`` lanes the bound check is the same for every
    lane of a piece, so the piece stays a vector (a per-lane check would
    scalarize it).
    """
    last = sch.get_loops(out)[-1]
    width = int(sch.get(last).extent)
    out_w = extents(sch, out)[-1]
    lanes = math.gcd(out_w, width)
    if lanes < width:
        last = sch.split(last, [None, lanes])[1]
    sch.vectorize(last)


def _schedule_partial_sums(sch, block_loop, pixels, vector_bytes):
    """Sum a group's int8 responses for a block of channels in registers, under ``block_loop``.

    Per unit of the group, each channel of the block adds one vector of
    responses at its offset; the widened sums are then added to the
    accumulator. Returns the unit loop (to decompose the reduction at).
    """
    partial = sch.get_sblock(BLOCK_PARTIAL)
    sch.compute_at(partial, block_loop, preserve_unit_loops=True)
    o, _, oh, ow, u = sch.get_loops(partial)[-5:]
    pixel = sch.fuse(oh, ow)
    sch.reorder(u, o, pixel)
    lanes = min(vector_bytes // dtype_bytes(sch, partial), pixels)
    p_o, p_i = sch.split(pixel, [None, lanes])
    sch.unroll(o)
    sch.unroll(p_o)
    sch.vectorize(p_i)
    return u


def _schedule_responses(sch, chunk_loop, chunk, pixels, vector_bytes):
    """Compute a chunk's responses, and each unit's segment sums, inside the chunk loop."""
    resp = sch.get_sblock(BLOCK_RESP)
    sch.compute_at(resp, chunk_loop, preserve_unit_loops=True)
    r_u, r_j, r_t = sch.split(sch.get_loops(resp)[-1], [chunk, None, pixels])
    resp_lanes = min(vector_bytes // dtype_bytes(sch, resp), pixels)
    if _codebook_is_baked(sch, resp):
        # Per unit, every codeword unrolled: its segment patterns are constants
        # and the unit's segment sums stay in L1.
        r_t_o, r_t_i = sch.split(r_t, [None, resp_lanes])
        sch.reorder(r_u, r_t_o, r_j, r_t_i)
        sch.unroll(r_j)
        seg_at = r_u
    else:
        # Codeword outermost: its segment patterns are read once for the chunk,
        # whose segment sums stay in L1 while all codewords read them.
        sch.reorder(r_j, r_u, r_t)
        r_t_o, r_t_i = sch.split(r_t, [None, resp_lanes])
        seg_at = chunk_loop
    sch.vectorize(r_t_i)
    seg = sch.get_sblock(BLOCK_SEG)
    sch.compute_at(seg, seg_at, preserve_unit_loops=True)
    s_q, s_oh, s_ow = sch.get_loops(seg)[-3:]
    s_pixel = sch.fuse(s_oh, s_ow)  # contiguous, like the tile
    _, s_lanes = sch.split(s_pixel, [None, min(vector_bytes // dtype_bytes(sch, seg), pixels)])
    sch.unroll(s_q)
    sch.vectorize(s_lanes)


def _codebook_is_baked(sch, resp):
    """Whether the responses take the codebook from immediates, not the int32 table."""
    return all(str(region.source.dtype) != "int32" for region in sch.get(resp).reads)


def _unroll_unpack(sch, tau):
    """Unroll the index unpacking over one period of the bit stream.

    ``8 / gcd(tau, 8)`` indices fill whole bytes; with the loop unrolled over
    them, each index's byte offset and shift are constants.
    """
    block = sch.get_sblock(BLOCK_IDX)
    _, units = extents(sch, block)
    period = 8 // math.gcd(tau, 8)
    if period > 1 and units % period == 0:
        _, inner = sch.split(sch.get_loops(block)[-1], [None, period])
        sch.unroll(inner)
