"""A default CPU schedule for the kernels the SNN path does not cover.

TVM's default Relax pipeline leaves legalized ops (the stem conv, pooling,
the classifier, elementwise ops) as plain serial loop nests. This schedule
gives each block of such a function the same simple treatment:

* reduction loops move inside the spatial loops, except the innermost
  spatial loop, which stays innermost so it can be vectorized;
* the outer spatial loops are fused and run in parallel;
* the innermost spatial loop is vectorized when it is short enough to be
  one or a few vectors (``MAX_VECTOR_EXTENT``).

A block the schedule cannot handle is left as it is.
"""

import tvm

MAX_VECTOR_EXTENT = 64
# Parallelize only when there is enough work: a fork and a join cost more than
# a small loop nest (elements of the block's iteration space).
MIN_PARALLEL_EXTENT = 2
MIN_PARALLEL_WORK = 1 << 16


def _iter_kinds(sch, block):
    return [int(iv.iter_type) for iv in sch.get(block).iter_vars]


def _schedule_block(sch, block):
    loops = sch.get_loops(block)
    kinds = _iter_kinds(sch, block)
    if len(loops) != len(kinds) or not loops:
        return
    spatial = [loop for loop, kind in zip(loops, kinds, strict=True) if kind == 0]
    reduction = [loop for loop, kind in zip(loops, kinds, strict=True) if kind == 2]
    if len(spatial) + len(reduction) != len(loops) or not spatial:
        return
    inner = spatial[-1]
    if reduction:
        sch.reorder(*spatial[:-1], *reduction, inner)
    work = 1
    for iter_var in sch.get(block).iter_vars:
        work *= int(iter_var.dom.extent)
    outer = spatial[:-1]
    if outer:
        fused = sch.fuse(*outer)
        if int(sch.get(fused).extent) >= MIN_PARALLEL_EXTENT and work >= MIN_PARALLEL_WORK:
            sch.parallel(fused)
    if int(sch.get(inner).extent) <= MAX_VECTOR_EXTENT:
        sch.vectorize(inner)
    if reduction:
        sch.decompose_reduction(block, reduction[0])


def schedule_dense(func):
    """Apply the default schedule to every block of ``func``.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc

    Returns
    -------
    tvm.tirx.PrimFunc
    """
    sch = tvm.s_tir.Schedule(func)
    root = sch.get_sblock("root") if _has_root(sch) else None
    blocks = sch.get_child_blocks(root) if root is not None else []
    for block in blocks:
        try:
            _schedule_block(sch, block)
        except tvm.s_tir.schedule.ScheduleError:
            continue  # the block keeps its serial loop nest
    return sch.mod["main"]


def _has_root(sch):
    try:
        sch.get_sblock("root")
    except tvm.s_tir.schedule.ScheduleError:
        return False
    return True
