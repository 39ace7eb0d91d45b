"""The CPU schedule of the lane kernel (see :mod:`schedules.subbit_lane`).

The index unpacking and the gather (``snn_idx``, ``snn_lane``) are
hand-written TIR and come scheduled. This schedules the TE stages around
them: the segment tables (a vector of 16 pixels per row pattern) and the
epilogue with what FuseOps appended. The cores come from the kernel's
:class:`~schedules.lane_plan.LanePlan`, annotated on its output block.
"""

import tvm

from schedules.knobs import MIN_PARALLEL_WORK
from schedules.lane_plan import TILE_PIXELS, LanePlan
from schedules.plan import plan_of
from schedules.schedule_helpers import inline_epilogue, work
from schedules.subbit_lane import BLOCK_LANE_SEG
from schedules.subbit_tir import BLOCK_OUT


def _parallel_if_large(sch, block, loop):
    if work(sch, block) >= MIN_PARALLEL_WORK:
        sch.parallel(loop)


def schedule_lane_kernel(func):
    """Schedule a lane kernel, alone or fused with an elementwise epilogue.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        A function for which :func:`is_lane_kernel` holds.

    Returns
    -------
    tvm.tirx.PrimFunc
    """
    sch = tvm.s_tir.Schedule(func)
    plan = plan_of(sch, BLOCK_OUT, LanePlan)
    seg = sch.get_sblock(BLOCK_LANE_SEG)
    n, th, tw, u, _, f = sch.get_loops(seg)
    patterns, pixels = sch.split(f, [None, TILE_PIXELS])
    sch.unroll(patterns)
    sch.vectorize(pixels)
    outer = sch.fuse(n, th, tw, u)

    out = sch.get_sblock(BLOCK_OUT)
    inline_epilogue(sch, out)
    n, o, oh, ow = sch.get_loops(out)
    channel_loop = sch.fuse(n, o)
    sch.vectorize(sch.fuse(oh, ow))

    if plan.num_cores > 1:
        _parallel_if_large(sch, seg, outer)
        _parallel_if_large(sch, out, channel_loop)
    return sch.mod["main"]
