"""The binary sub-bit conv on small images: output channels in the vector lanes.

The kernel of :mod:`schedules.subbit_tir` puts pixels in the lanes. On a 4x4
image a tile has 16 pixels, so its 64-lane int8 vectors are a quarter full,
and every (channel, unit) pair costs a scalar offset load and a vector add
for 16 useful lanes. This kernel (x86 with AVX-512 VBMI) puts 64 output
channels in the lanes instead:

1. ``snn_pad``, as in the pixel-lane kernel: ``sign(x)`` in int8, one plane
   per column tap;
2. ``snn_lane_seg[n, th, tw, u, s, q * 16 + t]``: segment ``s`` of unit ``u``
   under each of the 4 row patterns ``q`` (k/-k symmetry), at the 16 pixels
   ``t`` of tile ``(th, tw)``: one 64-byte table per segment;
3. ``snn_idx[u, o]``: the codeword index of (channel ``o``, unit ``u``), one
   byte, unpacked (:mod:`schedules.subbit_unpack`) from a tau-bit stream
   stored unit-major;
4. ``snn_lane`` (hand-written TIR): per unit, the responses of all 2**tau
   codewords at every pixel, each ``vpermt2b`` of a segment table and its
   negation (a pixel's codewords fill ``2**tau`` bytes of a 64-byte
   table); then per block of 64 channels and per pixel, one ``vpermb`` of
   the pixel's table keyed by the block's 64 indices, added in int8 over
   a chunk of units (exact: at most 14 units of |response| <= 9) and
   widened into the int16 accumulator ``[n, th, tw, t, o]``;
5. ``snn_out = alpha[o] * acc + bias[o]``, and what FuseOps appends.

A (channel, unit, pixel) triple costs 1/64 of a permute and an add, where
the pixel-lane kernel spends 1/16 of an add and 1/16 of a scalar load.
"""

import numpy as np
from tvm import te, tirx

from schedules.knobs import MIN_PARALLEL_WORK
from schedules.lane_plan import (
    CHANNEL_LANES,
    ROW_LENGTH,
    ROWS,
    TABLE_BYTES,
    TILE_PIXELS,
    lane_kernel_fits,
    lane_tile,
)
from schedules.plan import PLAN_ANNOTATION
from schedules.subbit import pack_indices
from schedules.subbit_pad import tiled_input
from schedules.subbit_tir import (
    BLOCK_IDX,
    BLOCK_OUT,
    SubBitKernel,
    checked_output_hw,
    kernel_placeholders,
    segment_table,
    segment_value,
    with_scales,
)
from schedules.subbit_unpack import VPERMB, byte_lanes, unpack_bytes
from schedules.tir_build import (
    BYTE_DTYPE,
    FLOAT_DTYPE,
    TIR_INDEX_DTYPE,
    index,
    loop,
    ramp,
    seq,
    unrolled,
)
from tvm_snn.errors import FormatError

BLOCK_LANE_SEG = "snn_lane_seg"
BLOCK_LANE = "snn_lane"
LANE_ACC_DTYPE = "int16"
VPERMT2B = "llvm.x86.avx512.vpermi2var.qi.512"


def pixels_per_table(tau):
    """Pixels whose ``2**tau`` responses share one 64-byte table."""
    return min(TABLE_BYTES >> tau, TILE_PIXELS)


def permute_table(conv):
    """``perm[s, b, lane]``: where lane ``(h, j)`` of response table ``b`` reads
    segment ``s`` in ``[table | -table]`` (int8, for ``vpermt2b``).

    Lane ``h * 2**tau + j`` is codeword ``j`` at pixel ``b * P + h``
    (``P`` = :func:`pixels_per_table`); its segment pattern, with the last
    element made positive by a negation (bit 6), picks row pattern ``q``
    at that pixel: byte ``q * 16 + pixel`` of the segment table.
    """
    codewords, per_table = 1 << conv.tau, pixels_per_table(conv.tau)
    patterns = segment_table(conv)  # [codewords, segments], bit e set: element e negative
    last = 1 << (ROW_LENGTH - 1)  # the pattern bit of the last element of a row
    flip = (patterns & last) != 0
    rows = np.where(flip, patterns ^ (2 * last - 1), patterns) & (last - 1)
    perm = np.zeros((patterns.shape[1], TILE_PIXELS // per_table, TABLE_BYTES), np.int8)
    for table in range(perm.shape[1]):
        for h in range(per_table):
            pixel = table * per_table + h
            lanes = slice(h * codewords, (h + 1) * codewords)
            perm[:, table, lanes] = (flip * TABLE_BYTES + rows * TILE_PIXELS + pixel).T
    return perm


def lane_constants(conv):
    """The constants the lane kernel reads: indices packed unit-major (tau
    bits each), the permute table, alpha[, bias]."""
    packed = pack_indices(np.ascontiguousarray(conv.indices.T), conv.tau)
    return with_scales(conv, packed, permute_table(conv))


def _gather_body(conv, shape, plan):
    """The TIR of ``snn_lane``: builds ``acc`` from the segment tables, indices and permute table."""
    n_batch, tiles_h, tiles_w = shape
    units, out_channels = conv.num_units, conv.out_channels
    codewords, per_table = 1 << conv.tau, pixels_per_table(conv.tau)
    tables = TILE_PIXELS // per_table
    chunk, parts = plan.chunk, plan.parts
    chunks = units // chunk // parts  # per part
    blocks = out_channels // CHANNEL_LANES
    items = n_batch * tiles_h * tiles_w * parts
    work = items * chunks * chunk * out_channels * TILE_PIXELS
    parallel = plan.num_cores > 1 and items > 1 and work >= MIN_PARALLEL_WORK
    kind = tirx.ForKind.PARALLEL if parallel else tirx.ForKind.SERIAL
    byte_vec, acc_vec = f"{BYTE_DTYPE}x{TABLE_BYTES}", f"{LANE_ACC_DTYPE}x{CHANNEL_LANES}"

    def build(seg, idx, perm, acc):
        def item_body(item):
            part = item % parts
            tile = tirx.floordiv(item, index(parts))
            n, th, tw = (
                tirx.floordiv(tile, index(tiles_h * tiles_w)),
                tirx.floordiv(tile, index(tiles_w)) % tiles_h,
                tile % tiles_w,
            )
            tables_buf = tirx.decl_buffer((chunk, tables, TABLE_BYTES), BYTE_DTYPE, "snn_tables")
            signed = tirx.decl_buffer((ROWS, 2 * TABLE_BYTES), BYTE_DTYPE, "snn_signed", scope="local")
            sums = tirx.decl_buffer((TILE_PIXELS, CHANNEL_LANES), BYTE_DTYPE, "snn_sums", scope="local")

            def zero_acc(t):
                return loop(
                    blocks,
                    lambda b: tirx.BufferStore(
                        acc,
                        tirx.Broadcast(tirx.const(0, LANE_ACC_DTYPE), CHANNEL_LANES),
                        [part, n, th, tw, index(t), ramp(b * CHANNEL_LANES, CHANNEL_LANES)],
                    ),
                    "zb",
                )

            def unit_tables(c, uc):
                u = c * chunk + uc
                stmts = []
                for s in range(ROWS):
                    table = tirx.BufferLoad(seg, [n, th, tw, u, index(s), ramp(0, TABLE_BYTES)])
                    stmts.append(tirx.BufferStore(signed, table, [index(s), ramp(0, TABLE_BYTES)]))
                    negated = byte_lanes(0) - table
                    stmts.append(tirx.BufferStore(signed, negated, [index(s), ramp(TABLE_BYTES, TABLE_BYTES)]))
                for b in range(tables):
                    total = None
                    for s in range(ROWS):
                        term = tirx.call_llvm_pure_intrin(
                            byte_vec,
                            VPERMT2B,
                            tirx.BufferLoad(signed, [index(s), ramp(0, TABLE_BYTES)]),
                            tirx.BufferLoad(perm, [index(s), index(b), ramp(0, TABLE_BYTES)]),
                            tirx.BufferLoad(signed, [index(s), ramp(TABLE_BYTES, TABLE_BYTES)]),
                        )
                        total = term if total is None else total + term
                    stmts.append(tirx.BufferStore(tables_buf, total, [uc, index(b), ramp(0, TABLE_BYTES)]))
                return seq(stmts)

            def block_sums(c, b):
                channel = b * CHANNEL_LANES

                def add_unit(uc):
                    keys = tirx.BufferLoad(idx, [c * chunk + uc, ramp(channel, CHANNEL_LANES)])

                    def add_pixel(t):
                        h, table = t % per_table, t // per_table
                        shifted = keys if h == 0 else keys + byte_lanes(h * codewords)
                        picked = tirx.call_llvm_pure_intrin(
                            byte_vec, VPERMB, tirx.BufferLoad(tables_buf, [uc, index(table), ramp(0, TABLE_BYTES)]), shifted
                        )
                        row = [index(t), ramp(0, CHANNEL_LANES)]
                        return tirx.BufferStore(sums, tirx.BufferLoad(sums, row) + picked, row)

                    return unrolled(TILE_PIXELS, add_pixel)

                def widen(t):
                    at = [part, n, th, tw, index(t), ramp(channel, CHANNEL_LANES)]
                    wide = tirx.Cast(acc_vec, tirx.BufferLoad(sums, [index(t), ramp(0, CHANNEL_LANES)]))
                    return tirx.BufferStore(acc, tirx.BufferLoad(acc, at) + wide, at)

                clear = unrolled(
                    TILE_PIXELS, lambda t: tirx.BufferStore(sums, byte_lanes(0), [index(t), ramp(0, CHANNEL_LANES)])
                )
                return seq([clear, loop(chunk, add_unit, "uc"), unrolled(TILE_PIXELS, widen)])

            def chunk_body(c):
                return seq(
                    [
                        loop(chunk, lambda uc: unit_tables(c, uc), "ut"),
                        loop(blocks, lambda b: block_sums(c, b), "b"),
                    ]
                )

            return seq(
                [
                    tirx.AllocBuffer(tables_buf),
                    tirx.AllocBuffer(signed),
                    tirx.AllocBuffer(sums),
                    unrolled(TILE_PIXELS, zero_acc),
                    loop(chunks, lambda c: chunk_body(part * chunks + c), "c"),
                ]
            )

        return loop(items, item_body, "item", kind)

    return build


def build_lane_te(conv, data_shape, plan):
    """Define the lane kernel in TE (see the module docstring).

    Parameters
    ----------
    conv : SubBitConv
        A conv for which :func:`~schedules.lane_plan.lane_kernel_fits` holds.
    data_shape : tuple of int
        The NCHW input shape.
    plan : LanePlan
        The unit chunks, their parts and the cores (annotated on the
        output block for the schedule).

    Returns
    -------
    list of te.Tensor
        Placeholders (data, packed, perm, alpha[, bias]) then the output.
    """
    n_batch = data_shape[0]
    out_hw = checked_output_hw(conv, data_shape)
    reason = lane_kernel_fits(conv, out_hw)
    if reason is not None:
        raise FormatError(f"the lane kernel does not apply: {reason}")
    plan.check_joint(conv, data_shape)
    tile = lane_tile(out_hw)
    data, packed, perm, alpha, bias = kernel_placeholders(conv, data_shape, lane_constants(conv), "perm")

    padded = tiled_input(data, conv, tile, binary=True)
    segment = segment_value(padded, conv, tile, BYTE_DTYPE)
    tiles_h, tiles_w = tile.grid

    def lane_segment(n, th, tw, u, s, f):
        q, t = f // TILE_PIXELS, f % TILE_PIXELS
        return segment(n, u, s, q, th * tile.rows + t // tile.width, tw * tile.width + t % tile.width)

    seg_shape = (n_batch, tiles_h, tiles_w, conv.num_units, ROWS, TABLE_BYTES)
    seg = te.compute(seg_shape, lane_segment, name=BLOCK_LANE_SEG)
    idx = unpack_bytes(packed, (conv.num_units, conv.out_channels), conv.tau, plan.num_cores, name=BLOCK_IDX)
    parts = plan.parts
    acc = te.extern(
        [(parts, n_batch, tiles_h, tiles_w, TILE_PIXELS, conv.out_channels)],
        [seg, idx, perm],
        lambda ins, outs: _gather_body(conv, (n_batch, tiles_h, tiles_w), plan)(*ins, outs[0]),
        name=BLOCK_LANE,
        dtype=[LANE_ACC_DTYPE],
    )

    def epilogue(n, o, oh, ow):
        t = (oh % tile.rows) * tile.width + ow % tile.width
        total = None
        for part in range(parts):
            term = acc[part, n, oh // tile.rows, ow // tile.width, t, o]
            total = term if total is None else total + term
        value = total.astype(FLOAT_DTYPE) * alpha[o]
        return value + bias[o] if bias is not None else value

    out = te.compute(
        (n_batch, conv.out_channels, *out_hw), epilogue, name=BLOCK_OUT, attrs={PLAN_ANNOTATION: plan.to_json()}
    )
    inputs = [data, packed, perm, alpha] + ([bias] if bias is not None else [])
    return [*inputs, out]


def build_lane_kernel(conv, data_shape, plan):
    """Build the unscheduled lane kernel for ``conv`` on inputs of ``data_shape``
    (see :func:`build_lane_te`; the schedule is in :mod:`schedules.subbit_lane_schedule`).

    Returns
    -------
    SubBitKernel
    """
    args = build_lane_te(conv, tuple(int(d) for d in data_shape), plan)
    func = te.create_prim_func(args, index_dtype_override=TIR_INDEX_DTYPE)
    out_shape = tuple(int(d) for d in args[-1].shape)
    return SubBitKernel(func=func, constants=lane_constants(conv), out_shape=out_shape, plan=plan)
