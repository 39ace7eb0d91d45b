"""A default CPU schedule for the kernels the SNN path does not cover.

TVM's default Relax pipeline leaves legalized ops (the stem conv, pooling,
the classifier, elementwise ops) as plain serial loop nests. This schedule
gives each block of such a function the same simple treatment:

* reduction loops move inside the spatial loops, except the innermost
  spatial loop, which stays innermost so it can be vectorized;
* the outer spatial loops are fused and run in parallel;
* the innermost spatial loop is vectorized when it is short enough to be
  one or a few vectors (``DensePlan.max_vector_extent``);
* short reductions are unrolled (``DensePlan.max_unrolled_reduction``);
* a reduction's chain of elementwise consumers (bias, ReLU) is merged and
  computed under the reduction's parallel loop, on data still in cache.

A block the schedule cannot handle is left as it is.
"""

from dataclasses import dataclass

import tvm

from schedules.knobs import (
    DENSE_MAX_UNROLLED_REDUCTION,
    DENSE_MAX_VECTOR_EXTENT,
    DENSE_MIN_PARALLEL_EXTENT,
    DENSE_MIN_PARALLEL_WORK,
)
from schedules.schedule_helpers import has_block, work


@dataclass(frozen=True)
class DensePlan:
    """The knobs of the dense fallback, the same for every block.

    Attributes
    ----------
    max_vector_extent : int
        Innermost spatial loops up to this extent are vectorized.
    max_unrolled_reduction : int
        Reductions up to this many steps are unrolled, so the accumulator
        vector stays in a register instead of a load and a store per step.
    min_parallel_extent, min_parallel_work : int
        The fused outer loop runs in parallel only with at least this extent,
        and a block of at least this much work (a fork and a join cost more
        than a small loop nest).
    """

    max_vector_extent: int = DENSE_MAX_VECTOR_EXTENT
    max_unrolled_reduction: int = DENSE_MAX_UNROLLED_REDUCTION
    min_parallel_extent: int = DENSE_MIN_PARALLEL_EXTENT
    min_parallel_work: int = DENSE_MIN_PARALLEL_WORK


def _iter_kinds(sch, block):
    return [int(iv.iter_type) for iv in sch.get(block).iter_vars]


def _merge_epilogue(sch, block):
    """Merge ``block``'s chain of elementwise consumers into one block, and return it (or None)."""
    consumers = sch.get_consumers(block)
    if len(consumers) != 1:
        return None
    epilogue = consumers[0]
    while True:
        following = sch.get_consumers(epilogue)
        if len(following) != 1:
            return epilogue
        try:
            sch.reverse_compute_inline(following[0])
        except tvm.s_tir.schedule.ScheduleError:
            return epilogue


def _epilogue_at(sch, epilogue, loop, plan):
    """Compute ``epilogue`` under ``loop`` (a reduction's parallel loop), its last loop vectorized."""
    sch.reverse_compute_at(epilogue, loop, preserve_unit_loops=True)
    inner = sch.get_loops(epilogue)[-1]
    if int(sch.get(inner).extent) <= plan.max_vector_extent:
        sch.vectorize(inner)


def _schedule_block(sch, block, plan):
    """Schedule one block; return its parallel loop, if it has one."""
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
    size = work(sch, block)
    outer = spatial[:-1]
    fused = None
    if outer:
        fused = sch.fuse(*outer)
        if int(sch.get(fused).extent) >= plan.min_parallel_extent and size >= plan.min_parallel_work:
            sch.parallel(fused)
    if int(sch.get(inner).extent) <= plan.max_vector_extent:
        sch.vectorize(inner)
    if reduction:
        sch.decompose_reduction(block, reduction[0])
        steps = 1
        for loop in reduction:
            steps *= int(sch.get(loop).extent)
        if steps <= plan.max_unrolled_reduction:
            for loop in reduction:
                sch.unroll(loop)
    return fused


def schedule_dense(func, plan=None):
    """Apply the default schedule to every block of ``func``.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
    plan : DensePlan, optional
        The knobs; ``DensePlan()`` by default.

    Returns
    -------
    tvm.tirx.PrimFunc
    """
    plan = plan or DensePlan()
    sch = tvm.s_tir.Schedule(func)
    root = sch.get_sblock("root") if has_block(sch, "root") else None
    blocks = sch.get_child_blocks(root) if root is not None else []
    names = [sch.get(block).name_hint for block in blocks]
    done = set()
    for name in names:
        if name in done or not has_block(sch, name):
            continue  # merged into another block's loops
        block = sch.get_sblock(name)
        reduces = 2 in _iter_kinds(sch, block)
        epilogue = _merge_epilogue(sch, block) if reduces else None
        try:
            loop = _schedule_block(sch, block, plan)
        except tvm.s_tir.schedule.ScheduleError:
            continue  # the block keeps its serial loop nest
        if epilogue is not None and loop is not None:
            try:
                _epilogue_at(sch, epilogue, loop, plan)
                done.add(sch.get(epilogue).name_hint)
            except tvm.s_tir.schedule.ScheduleError:
                pass  # scheduled on its own
    return sch.mod["main"]
