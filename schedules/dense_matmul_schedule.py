"""The CPU schedule of the dense matmul (see :mod:`schedules.dense_matmul`).

A parallel work item is one block of output columns for one block of batch
rows. Over the whole reduction its ``row_block x column_vectors``
accumulators stay in registers: per step, the block's weight vectors are
loaded once (a contiguous run of the packed weight) and each row's input is
broadcast into an FMA. The epilogue (what FuseOps appended: bias, ReLU) runs
on the item's outputs while they are in cache.
"""

import tvm

from schedules.dense_matmul import (
    DENSE_MATMUL_KIND,
    MATMUL_BLOCK_ACC,
    MATMUL_BLOCK_OUT,
    DenseMatmulPlan,
)
from schedules.plan import plan_kind, plan_of
from schedules.schedule_helpers import inline_epilogue


def is_dense_matmul(func):
    """Whether the PrimFunc holds a dense matmul kernel (a dense-matmul plan on its output block)."""
    return plan_kind(tvm.s_tir.Schedule(func), MATMUL_BLOCK_OUT) == DENSE_MATMUL_KIND


def schedule_dense_matmul(func):
    """Schedule a dense matmul kernel, alone or fused with an elementwise epilogue.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        A function holding a planned ``matmul_out`` block.

    Returns
    -------
    tvm.tirx.PrimFunc
    """
    sch = tvm.s_tir.Schedule(func)
    plan = plan_of(sch, MATMUL_BLOCK_OUT, DenseMatmulPlan)
    lanes = plan.block // plan.column_vectors
    acc = sch.get_sblock(MATMUL_BLOCK_ACC)
    n, m, k = sch.get_loops(acc)
    n_o, n_i = sch.split(n, [None, plan.row_block])
    m_o, m_v, m_l = sch.split(m, [None, plan.column_vectors, lanes])
    sch.reorder(m_o, n_o, k, n_i, m_v, m_l)
    item = sch.fuse(m_o, n_o)
    sch.parallel(item)
    for loop in (n_i, m_v):
        sch.unroll(loop)
    sch.vectorize(m_l)
    sch.decompose_reduction(acc, k)

    out = sch.get_sblock(MATMUL_BLOCK_OUT)
    inline_epilogue(sch, out)
    sch.reverse_compute_at(out, item, preserve_unit_loops=True)
    sch.vectorize(sch.get_loops(out)[-1])
    return sch.mod["main"]
