"""The CPU schedule of the sub-bit kernel (see :mod:`schedules.subbit_tir`).

Work is split into tiles of ``rows x vectors`` output pixels of one image.
Per tile:

1. the responses of every unit to every codeword are computed for the tile
   (kept small enough for L2: ``RESP_BUDGET_BYTES``), unit by unit, from
   the unit's segment sums, which stay in L1;
2. output channels are taken ``OB`` at a time; for each unit, ``OB``
   indices are read and ``OB x tile`` vectors gathered and added, the
   accumulators held in registers (``ACC_REGISTERS``);
3. the epilogue (alpha, bias, and what FuseOps appended: residual add, ReLU,
   the next sign) runs on the accumulators before they leave registers.

Tiles run in parallel when there are enough of them; otherwise the units of
step 1 and the output channels of step 2 are split over the cores.
"""

import tvm

from schedules.subbit_tir import (
    BLOCK_ACC,
    BLOCK_IDX,
    BLOCK_OUT,
    BLOCK_PAD,
    BLOCK_RESP,
    BLOCK_SEG,
    BLOCK_SIGNS,
    vector_lanes,
)

RESP_BUDGET_BYTES = 512 * 1024
# Elements below which a side stage stays serial (a fork/join costs more).
MIN_PARALLEL_WORK = 1 << 16
ACC_REGISTERS = 24


def _has_block(sch, name):
    try:
        sch.get_sblock(name)
    except tvm.s_tir.schedule.ScheduleError:
        return False
    return True


def is_subbit_kernel(func):
    """Whether a PrimFunc contains the sub-bit kernel's stages (also after fusion)."""
    sch = tvm.s_tir.Schedule(func)
    return all(_has_block(sch, name) for name in (BLOCK_RESP, BLOCK_ACC, BLOCK_OUT))


def _work(sch, block):
    total = 1
    for extent in _extents(sch, block):
        total *= extent
    return total


def _extents(sch, block):
    return [int(iv.dom.extent) for iv in sch.get(block).iter_vars]


def _inline_epilogue(sch, block):
    """Merge the chain of elementwise consumers (bias, residual add, ReLU, sign) into ``block``."""
    while True:
        consumers = sch.get_consumers(block)
        if len(consumers) != 1:
            return
        try:
            sch.reverse_compute_inline(consumers[0])
        except tvm.s_tir.schedule.ScheduleError:
            return


def _tiling(sch, num_cores):
    """Choose rows per tile, vectors per tile row and output channels per block."""
    _, units, codewords, out_h, row = _extents(sch, sch.get_sblock(BLOCK_RESP))
    _, out_channels, _, out_w = _extents(sch, sch.get_sblock(BLOCK_OUT))
    lanes = vector_lanes(out_w)
    elem_bytes = tvm.DataType(str(sch.get(sch.get_sblock(BLOCK_RESP)).writes[0].source.dtype)).bits // 8
    per_vector = units * codewords * lanes * max(elem_bytes, 1)
    vectors = row // lanes
    width = max(1, min(vectors, RESP_BUDGET_BYTES // per_vector))
    while vectors % width:
        width -= 1
    rows = max(1, min(out_h, RESP_BUDGET_BYTES // (per_vector * width))) if width == vectors else 1
    while out_h % rows:
        rows -= 1
    block = 1
    while block * 2 * rows * width <= ACC_REGISTERS and out_channels % (block * 2) == 0:
        block *= 2
    return lanes, rows, width, block


def schedule_kernel(func, num_cores=2):
    """Schedule a sub-bit kernel, alone or fused with an elementwise epilogue.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        A function for which :func:`is_subbit_kernel` holds.
    num_cores : int
        Cores to spread the work over.

    Returns
    -------
    tvm.tirx.PrimFunc
    """
    sch = tvm.s_tir.Schedule(func)
    lanes, rows, width, block = _tiling(sch, num_cores)
    if _has_block(sch, BLOCK_SIGNS):
        sch.compute_inline(sch.get_sblock(BLOCK_SIGNS))

    acc = sch.get_sblock(BLOCK_ACC)
    n, o, oh, ow, u = sch.get_loops(acc)
    _, out_h, row = _extents(sch, acc)[1:4]
    oh_o, oh_i = sch.split(oh, [None, rows])
    o_o, o_i = sch.split(o, [None, block])
    ow_t, ow_o, ow_i = sch.split(ow, [None, width, lanes])
    sch.reorder(n, oh_o, ow_t, o_o, u, o_i, oh_i, ow_o, ow_i)
    tile = sch.fuse(n, oh_o, ow_t)
    tiles = _extents(sch, acc)[0] * (out_h // rows) * (row // (lanes * width))

    local = sch.cache_write(acc, 0, "local")
    sch.compute_inline(local)  # the epilogue reads the register accumulators
    out = sch.get_sblock(BLOCK_OUT)
    _inline_epilogue(sch, out)
    sch.reverse_compute_at(out, o_o, preserve_unit_loops=True)

    resp = sch.get_sblock(BLOCK_RESP)
    sch.compute_at(resp, tile, preserve_unit_loops=True)
    _, _, r_u, r_j, r_oh, r_ow = sch.get_loops(resp)
    r_ow_o, r_ow_i = sch.split(r_ow, [None, lanes])
    sch.vectorize(r_ow_i)
    # A unit's segment sums stay in L1 while all codewords read them.
    seg = sch.get_sblock(BLOCK_SEG)
    sch.compute_at(seg, r_u, preserve_unit_loops=True)
    s_loops = sch.get_loops(seg)
    s_q, s_ow = s_loops[-3], s_loops[-1]
    s_ow_o, s_ow_i = sch.split(s_ow, [None, lanes])
    sch.unroll(s_q)
    sch.vectorize(s_ow_i)

    for loop in (o_i, oh_i, ow_o):
        sch.unroll(loop)
    sch.vectorize(ow_i)
    if tiles >= 2 * num_cores:
        sch.parallel(tile)
    else:
        sch.parallel(o_o)
        sch.parallel(r_u)
    sch.decompose_reduction(acc, u)
    # Padding and unpacking the O x U indices run on every call; a parallel region
    # costs a fork and a join, so only large ones are spread over the cores.
    for name, axis in ((BLOCK_PAD, 1), (BLOCK_IDX, 0)):
        block = sch.get_sblock(name)
        if _work(sch, block) >= MIN_PARALLEL_WORK:
            sch.parallel(sch.get_loops(block)[axis])
    return sch.mod["main"]
