"""The CPU schedule of the dense direct conv (see :mod:`schedules.dense_conv`).

Every knob comes from the kernel's :class:`~schedules.dense_conv_plan.DenseConvPlan`,
annotated on its output block. A parallel work item is one output row of
one block of output channels (of one image); items of the same row are
adjacent, so the input rows they read stay in cache. Per item, the row is
cut into tiles of ``pixel_vectors`` vectors; per tile the block's
``channel_block x pixel_vectors`` accumulators stay in registers over the
whole reduction (input channels, then kernel rows, then kernel columns,
unrolled), each step loading the tile's input vectors once and broadcasting
each channel's weight into an FMA. The epilogue (bias, and what FuseOps
appended: residual add, ReLU) then runs over the item's outputs, still in
cache.
"""

import tvm

from schedules.dense_conv import DENSE_BLOCK_ACC, DENSE_BLOCK_OUT, DENSE_BLOCK_PAD
from schedules.dense_conv_plan import DENSE_CONV_KIND, DenseConvPlan
from schedules.knobs import DENSE_EPILOGUE_MAX_LANES, MIN_PARALLEL_WORK
from schedules.plan import plan_kind, plan_of
from schedules.schedule_helpers import inline_epilogue, largest_divisor, work


def is_dense_conv(func):
    """Whether the PrimFunc holds a dense conv kernel (a dense-conv plan on its output block)."""
    return plan_kind(tvm.s_tir.Schedule(func), DENSE_BLOCK_OUT) == DENSE_CONV_KIND


def schedule_dense_conv(func):
    """Schedule a dense conv kernel, alone or fused with an elementwise epilogue.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        A function holding a planned ``dense_out`` block.

    Returns
    -------
    tvm.tirx.PrimFunc
    """
    sch = tvm.s_tir.Schedule(func)
    plan = plan_of(sch, DENSE_BLOCK_OUT, DenseConvPlan)

    acc = sch.get_sblock(DENSE_BLOCK_ACC)
    n, o, y, x, ic, ry, rx = sch.get_loops(acc)
    o_o, o_i = sch.split(o, [None, plan.channel_block])
    x_o, x_v, x_l = sch.split(x, [None, plan.pixel_vectors, plan.lanes])
    sch.reorder(n, y, o_o, x_o, ic, ry, rx, o_i, x_v, x_l)
    item = sch.fuse(n, y, o_o)
    sch.parallel(item)
    for loop in (rx, o_i, x_v):
        sch.unroll(loop)
    sch.vectorize(x_l)
    sch.decompose_reduction(acc, ic)

    out = sch.get_sblock(DENSE_BLOCK_OUT)
    inline_epilogue(sch, out)
    sch.reverse_compute_at(out, item, preserve_unit_loops=True)
    _vectorize_row(sch, out)

    _schedule_pad(sch, sch.get_sblock(DENSE_BLOCK_PAD))
    return sch.mod["main"]


def _vectorize_row(sch, block):
    """Vectorize ``block``'s innermost loop (an output row): whole, or in equal pieces."""
    last = sch.get_loops(block)[-1]
    width = int(sch.get(last).extent)
    if width > DENSE_EPILOGUE_MAX_LANES:
        last = sch.split(last, [None, largest_divisor(width, DENSE_EPILOGUE_MAX_LANES)])[1]
    sch.vectorize(last)


def _schedule_pad(sch, pad):
    """The padded input: rows in parallel (when there is enough of it), each row one vector loop."""
    loops = sch.get_loops(pad)
    rows = sch.fuse(*loops[:4])
    if work(sch, pad) >= MIN_PARALLEL_WORK:
        sch.parallel(rows)
    _vectorize_row(sch, pad)
