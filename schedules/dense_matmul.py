"""The dense matmul with a constant weight (the classifier): ``x [N, K] @ W [K, M]``.

The weight is packed at compile time (:func:`pack_weight`) into column blocks,
``[M / block, K, block]``, zero columns padding the last one, so a work item
(one block of columns for a block of rows) streams one contiguous run of
weights; the batch rows of a block share each weight vector loaded.

Stages (scheduled by :mod:`schedules.dense_matmul_schedule` from the
:class:`DenseMatmulPlan` on the output block):

1. ``matmul_acc``: the sums on the padded grid ``[N, blocks * block]``;
2. ``matmul_out``: the real ``[N, M]`` outputs; FuseOps appends what follows
   (the bias add, a ReLU).
"""

from dataclasses import dataclass

import numpy as np
from tvm import te

from schedules.dense_conv_plan import ceil_div, check_accumulators
from schedules.knobs import DENSE_MATMUL_ACCUMULATORS, DENSE_MATMUL_MIN_ITEMS, VECTOR_WIDTHS
from schedules.plan import PLAN_ANNOTATION, Plan
from schedules.tir_build import FLOAT_DTYPE, TIR_INDEX_DTYPE
from tvm_snn.errors import FormatError
from tvm_snn.schema import FLOAT_BYTES

DENSE_MATMUL_KIND = "dense-matmul"
MATMUL_BLOCK_ACC = "matmul_acc"
MATMUL_BLOCK_OUT = "matmul_out"


@dataclass(frozen=True)
class DenseMatmulGeometry:
    """``[rows, depth] @ [depth, columns]`` in float32."""

    rows: int
    depth: int
    columns: int

    def __post_init__(self):
        if min(self.rows, self.depth, self.columns) < 1:
            raise FormatError(f"DenseMatmulGeometry needs positive sizes, got {self}")


@dataclass(frozen=True)
class DenseMatmulPlan(Plan):
    """The knobs of one dense matmul kernel.

    Attributes
    ----------
    column_vectors : int
        Vectors of output columns per work item (the packed weight's block).
    row_block : int
        Batch rows per work item; ``row_block x column_vectors`` accumulators
        stay in registers over the whole reduction.
    vector_bytes : int
        The target's SIMD width.
    """

    KIND = DENSE_MATMUL_KIND

    column_vectors: int
    row_block: int
    vector_bytes: int

    @property
    def block(self):
        """Output columns per work item."""
        return self.column_vectors * self.vector_bytes // FLOAT_BYTES

    @classmethod
    def default(cls, geometry, data_shape, cpu):
        """Rows of the batch (up to the accumulators), then the widest column block leaving enough items.

        A block of ``r`` rows x ``v`` vectors keeps ``r * v`` accumulators
        (at most ``DENSE_MATMUL_ACCUMULATORS``); ``v`` shrinks until there are
        ``DENSE_MATMUL_MIN_ITEMS`` work items per core, so the cores share
        the weight stream evenly.
        """
        del data_shape
        lanes = cpu.vector_bytes // FLOAT_BYTES
        registers = min(cpu.acc_registers, DENSE_MATMUL_ACCUMULATORS)
        row_block = min(geometry.rows, registers)
        vectors = max(1, min(registers // row_block, ceil_div(geometry.columns, lanes)))
        row_items = ceil_div(geometry.rows, row_block)
        while vectors > 1 and row_items * ceil_div(geometry.columns, vectors * lanes) < DENSE_MATMUL_MIN_ITEMS * cpu.num_cores:
            vectors -= 1
        return cls(column_vectors=vectors, row_block=row_block, vector_bytes=cpu.vector_bytes)

    @classmethod
    def space(cls, geometry, data_shape, cpu):
        """``{knob: legal values}`` for ``geometry`` on ``cpu``."""
        del data_shape
        lanes = cpu.vector_bytes // FLOAT_BYTES
        return {
            "column_vectors": tuple(range(1, min(cpu.acc_registers, ceil_div(geometry.columns, lanes)) + 1)),
            "row_block": tuple(range(1, min(geometry.rows, cpu.acc_registers) + 1)),
            "vector_bytes": VECTOR_WIDTHS,
        }

    def check_joint(self, geometry, data_shape):
        """The block's accumulators fit the registers its vector width gives."""
        del geometry, data_shape
        check_accumulators("DenseMatmulPlan", f"{self.row_block} rows", self.row_block, self.column_vectors, self.vector_bytes)


@dataclass(frozen=True)
class DenseMatmulKernel:
    """A built dense matmul: ``func(data, packed_weight, out)`` and its packed weight."""

    func: object
    packed_weight: np.ndarray
    out_shape: tuple
    plan: DenseMatmulPlan


def pack_weight(weight, block):
    """``[K, M]`` -> ``[ceil(M / block), K, block]``, zero columns padding the last block."""
    weight = np.asarray(weight, np.float32)
    depth, columns = weight.shape
    blocks = ceil_div(columns, block)
    padded = np.zeros((depth, blocks * block), np.float32)
    padded[:, :columns] = weight
    return np.ascontiguousarray(padded.reshape(depth, blocks, block).transpose(1, 0, 2))


def build_dense_matmul(geometry, plan, weight):
    """The unscheduled kernel for ``x @ weight`` (``weight`` is ``[K, M]``).

    Returns
    -------
    DenseMatmulKernel
    """
    weight = np.asarray(weight, np.float32)
    if weight.shape != (geometry.depth, geometry.columns):
        raise FormatError(f"build_dense_matmul: weight {weight.shape} is not ({geometry.depth}, {geometry.columns})")
    block = plan.block
    blocks = ceil_div(geometry.columns, block)
    data = te.placeholder((geometry.rows, geometry.depth), FLOAT_DTYPE, name="data")
    packed = te.placeholder((blocks, geometry.depth, block), FLOAT_DTYPE, name="packed_weight")
    k = te.reduce_axis((0, geometry.depth), name="k")
    acc = te.compute(
        (geometry.rows, blocks * block),
        lambda n, m: te.sum(data[n, k] * packed[m // block, k, m % block], axis=k),
        name=MATMUL_BLOCK_ACC,
    )
    out_shape = (geometry.rows, geometry.columns)
    out = te.compute(out_shape, lambda n, m: acc[n, m], name=MATMUL_BLOCK_OUT, attrs={PLAN_ANNOTATION: plan.to_json()})
    func = te.create_prim_func([data, packed, out], index_dtype_override=TIR_INDEX_DTYPE)
    return DenseMatmulKernel(func=func, packed_weight=pack_weight(weight, block), out_shape=out_shape, plan=plan)
