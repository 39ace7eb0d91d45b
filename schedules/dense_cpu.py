"""A default CPU schedule for the kernels the SNN path does not cover.

TVM's default Relax pipeline leaves legalized ops (the stem conv, pooling,
the classifier, elementwise ops) as plain serial loop nests. This schedule
gives each block of such a function the same simple treatment:

* reduction loops move inside the spatial loops, except the innermost
  spatial loop, which stays innermost so it can be vectorized;
* the outer spatial loops are fused and run in parallel;
* the innermost spatial loop is vectorized when it is short enough to be
  one or a few vectors (``DensePlan.max_vector_extent``); a longer one is
  cut into vectors, in blocks that run in parallel; a reduction also moves
  its innermost outer spatial loops (the batch rows) inside its steps, so a
  block of ``DensePlan.row_vectors`` accumulators shares each loaded vector;
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
    DENSE_MIN_ROW_LANES,
    DENSE_ROW_VECTORS,
    VECTOR_BYTES,
)
from schedules.schedule_helpers import dtype_bytes, has_block, largest_divisor, work


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
    vector_bytes : int
        Bytes of a vector, for the lanes a long innermost loop is split into.
    row_vectors : int
        A longer innermost spatial loop is split into blocks of at most this
        many vectors; in a reduction, vectors times the rows moved inside
        (the accumulators).
    min_row_lanes : int
        A long loop is cut into the widest power-of-two vectors dividing it;
        with fewer lanes than this it stays scalar.
    """

    max_vector_extent: int = DENSE_MAX_VECTOR_EXTENT
    max_unrolled_reduction: int = DENSE_MAX_UNROLLED_REDUCTION
    min_parallel_extent: int = DENSE_MIN_PARALLEL_EXTENT
    min_parallel_work: int = DENSE_MIN_PARALLEL_WORK
    vector_bytes: int = VECTOR_BYTES
    row_vectors: int = DENSE_ROW_VECTORS
    min_row_lanes: int = DENSE_MIN_ROW_LANES


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


def _extent_product(sch, loops):
    """The product of the extents of ``loops``."""
    total = 1
    for loop in loops:
        total *= int(sch.get(loop).extent)
    return total


def _register_rows(sch, outer, plan):
    """The innermost outer spatial loops whose rows share a reduction's loads (at most ``row_vectors`` rows)."""
    rows = []
    for loop in reversed(outer):
        if _extent_product(sch, [*rows, loop]) > plan.row_vectors:
            break
        rows.insert(0, loop)
    return rows


def _row_block(sch, block, inner, plan, rows=1):
    """The block a long innermost loop is split into (whole vectors dividing it), or None."""
    extent = int(sch.get(inner).extent)
    if extent <= plan.max_vector_extent:
        return None
    lanes = plan.vector_bytes // dtype_bytes(sch, block)
    while extent % lanes:
        lanes //= 2  # a power of two, whole vectors
    if lanes < plan.min_row_lanes:
        return None
    return lanes * largest_divisor(extent // lanes, max(1, plan.row_vectors // rows))


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
    outer = spatial[:-1]
    rows = []
    if reduction:
        rows = _register_rows(sch, outer, plan)
    row = _row_block(sch, block, inner, plan, _extent_product(sch, rows))
    if row is None:
        rows = []
    else:
        row_outer, inner = sch.split(inner, factors=[None, row])
        outer = [loop for loop in outer if loop not in rows] + [row_outer]
    if reduction:
        sch.reorder(*outer, *reduction, *rows, inner)
        for loop in rows:
            sch.unroll(loop)
    size = work(sch, block)
    fused = None
    if outer:
        fused = sch.fuse(*outer)
        if (
            int(sch.get(fused).extent) >= plan.min_parallel_extent
            and size >= plan.min_parallel_work
        ):
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
    return dense_schedule(func, plan).mod["main"]


def dense_schedule(func, plan=None):
    """:func:`schedule_dense` as a ``tvm.s_tir.Schedule`` (its trace is the hand schedule, for a tuner to seed with)."""
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
    return sch
