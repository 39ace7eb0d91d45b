"""The CPU schedule of the sub-bit kernel (see :mod:`schedules.subbit_tir`).

The output is cut into tiles (:class:`~schedules.subbit_tir.Tile`) and the
output channels into ``splits`` parts; a (tile, part) pair is one parallel
work item. Per item, units are taken ``chunk`` at a time:

1. the chunk's responses to every codeword are computed for the tile, from
   each unit's segment sums; they are sized to stay in L1
   (:func:`~schedules.subbit_tir.unit_group`);
2. output channels are taken ``block`` at a time: the block's accumulators
   stay in registers (``ACC_REGISTERS``) while each unit of the chunk adds
   one vector per channel, read at the unit's stored offset;
3. after the last chunk, the epilogue (alpha, bias, and what FuseOps
   appended: residual add, ReLU, the next sign) runs over the tile.

With few tiles, channels are split so every core has work; each part then
computes the tile's responses itself.
"""

import math

import tvm
import tvm_ffi
from tvm import tirx

from schedules.subbit_pad import MIN_PARALLEL_WORK
from schedules.subbit_tir import (
    BLOCK_ACC,
    BLOCK_IDX,
    BLOCK_OUT,
    BLOCK_PARTIAL,
    BLOCK_RESP,
    BLOCK_SEG,
)

# Vector registers for accumulators (of 32 on AVX-512 and NEON; half on AVX2).
ACC_REGISTERS = 24
AVX2_BYTES = 32
# Items per core that even out without equal counts, and the most channel parts.
ITEMS_PER_CORE = 4
MAX_SPLITS = 4
VECTOR_BYTES = 64


def has_block(sch, name):
    try:
        sch.get_sblock(name)
    except tvm.s_tir.schedule.ScheduleError:
        return False
    return True


def is_subbit_kernel(func):
    """Whether a PrimFunc contains the sub-bit kernel's stages (also after fusion)."""
    sch = tvm.s_tir.Schedule(func)
    return all(has_block(sch, name) for name in (BLOCK_RESP, BLOCK_ACC, BLOCK_OUT))


def work(sch, block):
    total = 1
    for extent in _extents(sch, block):
        total *= extent
    return total


def _extents(sch, block):
    return [int(iv.dom.extent) for iv in sch.get(block).iter_vars]


def _dtype_bytes(sch, block):
    return tvm.DataType(str(sch.get(block).writes[0].source.dtype)).bits // 8


def inline_epilogue(sch, block):
    """Merge the chain of elementwise consumers (bias, residual add, ReLU, sign) into ``block``."""
    while True:
        consumers = sch.get_consumers(block)
        if len(consumers) != 1:
            return
        try:
            sch.reverse_compute_inline(consumers[0])
        except tvm.s_tir.schedule.ScheduleError:
            return


def _has_partial(sch):
    return has_block(sch, BLOCK_PARTIAL)


def largest_divisor(n, at_most):
    """The largest divisor of ``n`` that is at most ``at_most`` (at least 1)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


def _channel_splits(tiles, out_channels, num_cores):
    """Parts to split the output channels into, so the cores get even work.

    Every part computes its tile's responses again, so the fewest parts
    that give each core the same number of items, or enough items to even
    out (``ITEMS_PER_CORE``). A power of two dividing the channels, at
    most ``MAX_SPLITS``.
    """
    splits = 1
    while splits < MAX_SPLITS and out_channels % (splits * 2) == 0:
        items = tiles * splits
        if items % num_cores == 0 or items >= ITEMS_PER_CORE * num_cores:
            break
        splits *= 2
    return splits


def _plan(sch, num_cores, vector_bytes=VECTOR_BYTES):
    """Tile geometry (from the buffers) and the chunk, block and split sizes."""
    n_batch, tiles_h, tiles_w, groups, span = _extents(sch, sch.get_sblock(BLOCK_RESP))
    register_block = sch.get_sblock(BLOCK_PARTIAL if _has_partial(sch) else BLOCK_ACC)
    (offsets,) = [r.source for r in sch.get(register_block).reads if r.source.name == BLOCK_IDX]
    units = int(offsets.shape[1])
    _, out_channels, out_h, row = _extents(sch, sch.get_sblock(BLOCK_ACC))[:4]
    rows, width = out_h // tiles_h, row // tiles_w
    pixels = rows * width
    partial = _has_partial(sch)  # binary: int8 sums per group of units
    acc_bytes = _dtype_bytes(sch, register_block)
    vectors = max(1, pixels * acc_bytes // vector_bytes)  # registers per channel's accumulator
    chunk = units // groups  # units whose responses are computed together (see unit_group)
    tiles = n_batch * tiles_h * tiles_w
    splits = _channel_splits(tiles, out_channels, num_cores)
    registers = ACC_REGISTERS if vector_bytes != AVX2_BYTES else ACC_REGISTERS // 2  # AVX2 has 16
    block = largest_divisor(out_channels // splits, max(1, registers // vectors))
    return {
        "tau": (span // (chunk * pixels)).bit_length() - 1,
        "rows": rows,
        "width": width,
        "chunk": chunk,
        "partial": partial,
        "splits": splits,
        "block": block,
    }


def schedule_kernel(func, num_cores=2, vector_bytes=VECTOR_BYTES):
    """Schedule a sub-bit kernel, alone or fused with an elementwise epilogue.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        A function for which :func:`is_subbit_kernel` holds.
    num_cores : int
        Cores to spread the work over.
    vector_bytes : int
        The target's SIMD register width (64 AVX-512, 32 AVX2, 16 NEON):
        how many output channels' accumulators fit in registers.

    Returns
    -------
    tvm.tirx.PrimFunc
    """
    sch = tvm.s_tir.Schedule(func)
    plan = _plan(sch, num_cores, vector_bytes)

    acc = sch.get_sblock(BLOCK_ACC)
    lanes = VECTOR_BYTES // _dtype_bytes(sch, acc)
    pixels = plan["rows"] * plan["width"]
    n, o, oh, ow, u = sch.get_loops(acc)
    oh_o, oh_i = sch.split(oh, [None, plan["rows"]])
    ow_o, ow_i = sch.split(ow, [None, plan["width"]])
    o_p, o_o, o_i = sch.split(o, [plan["splits"], None, plan["block"]])
    partial = plan["partial"]
    if partial:  # u is the group: the partial sums take the units below o_o
        u_o, units = u, []
    else:
        u_o, u_i = sch.split(u, [None, plan["chunk"]])
        units = [u_i]
    sch.reorder(n, oh_o, ow_o, o_p, u_o, o_o, *units, o_i, oh_i, ow_i)
    item = sch.fuse(n, oh_o, ow_o, o_p)
    pixel = sch.fuse(oh_i, ow_i)  # contiguous: a tile is whole rows or part of one
    p_o, p_i = sch.split(pixel, [None, min(lanes, pixels)])
    if partial:
        partial_units = _schedule_partial_sums(sch, o_o, pixels)

    out = sch.get_sblock(BLOCK_OUT)
    inline_epilogue(sch, out)
    sch.reverse_compute_at(out, item, preserve_unit_loops=True)
    _vectorize_epilogue(sch, out)

    _schedule_responses(sch, u_o, plan["chunk"], pixels)

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
        _unroll_unpack(sch, plan["tau"])
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
    out_w = _extents(sch, out)[-1]
    lanes = math.gcd(out_w, width)
    if lanes < width:
        last = sch.split(last, [None, lanes])[1]
    sch.vectorize(last)


def _schedule_partial_sums(sch, block_loop, pixels):
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
    lanes = min(VECTOR_BYTES // _dtype_bytes(sch, partial), pixels)
    p_o, p_i = sch.split(pixel, [None, lanes])
    sch.unroll(o)
    sch.unroll(p_o)
    sch.vectorize(p_i)
    return u


def _schedule_responses(sch, chunk_loop, chunk, pixels):
    """Compute a chunk's responses, and each unit's segment sums, inside the chunk loop."""
    resp = sch.get_sblock(BLOCK_RESP)
    sch.compute_at(resp, chunk_loop, preserve_unit_loops=True)
    r_u, r_j, r_t = sch.split(sch.get_loops(resp)[-1], [chunk, None, pixels])
    resp_lanes = min(VECTOR_BYTES // _dtype_bytes(sch, resp), pixels)
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
    _, s_lanes = sch.split(s_pixel, [None, min(VECTOR_BYTES // _dtype_bytes(sch, seg), pixels)])
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
    _, units = _extents(sch, block)
    period = 8 // math.gcd(tau, 8)
    if period > 1 and units % period == 0:
        _, inner = sch.split(sch.get_loops(block)[-1], [None, period])
        sch.unroll(inner)
