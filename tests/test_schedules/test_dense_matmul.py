"""The dense matmul (the classifier): its plan, its weight packing, and the scheduled kernel against NumPy."""

import numpy as np
import pytest
import tvm

from schedules.cpu import CpuSpec
from schedules.dense_matmul import (
    DenseMatmulGeometry,
    DenseMatmulPlan,
    build_dense_matmul,
    pack_weight,
)
from schedules.dense_matmul_schedule import is_dense_matmul, schedule_dense_matmul
from tvm_snn.errors import FormatError

from common import DENSE_CONV_ATOL, DENSE_CONV_RTOL

TARGET = tvm.target.Target({"kind": "llvm"})

# (rows, depth, columns): the ImageNet classifier at batch 1 and 8, and sizes off every block.
SHAPES = [(1, 512, 1000), (8, 512, 1000), (3, 7, 17), (13, 64, 10), (2, 1, 1)]


def run(geo, plan, x, weight):
    kernel = build_dense_matmul(geo, plan, weight)
    lib = tvm.compile(schedule_dense_matmul(kernel.func), target=TARGET)
    out = tvm.runtime.tensor(np.zeros(kernel.out_shape, np.float32))
    lib(tvm.runtime.tensor(x), tvm.runtime.tensor(kernel.packed_weight), out)
    return out.numpy()


def random_case(geo, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((geo.rows, geo.depth)).astype(np.float32)
    weight = (rng.standard_normal((geo.depth, geo.columns)) / np.sqrt(geo.depth)).astype(np.float32)
    return x, weight


@pytest.mark.parametrize("vector_bytes", [64, 32, 16], ids=["avx512", "avx2", "neon-width"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{r}x{k}x{m}" for r, k, m in SHAPES])
def test_kernel_matches_numpy(shape, vector_bytes):
    geo = DenseMatmulGeometry(*shape)
    x, weight = random_case(geo, seed=sum(shape))
    plan = DenseMatmulPlan.default(geo, None, CpuSpec(vector_bytes=vector_bytes))
    expected = x.astype(np.float64) @ weight.astype(np.float64)
    np.testing.assert_allclose(run(geo, plan, x, weight), expected, rtol=DENSE_CONV_RTOL, atol=DENSE_CONV_ATOL)


@pytest.mark.parametrize(("vectors", "rows"), [(1, 1), (3, 2), (2, 5)])
def test_non_default_plans_compute_the_same(vectors, rows):
    geo = DenseMatmulGeometry(6, 33, 70)
    x, weight = random_case(geo, seed=vectors * rows)
    plan = DenseMatmulPlan(column_vectors=vectors, row_block=rows, vector_bytes=64).validate(geo, None, CpuSpec())
    np.testing.assert_allclose(run(geo, plan, x, weight), x @ weight, rtol=DENSE_CONV_RTOL, atol=DENSE_CONV_ATOL)


def test_pack_weight_layout():
    """Element [b, k, j] is weight[k, b * block + j]; the last block's missing columns are zero."""
    weight = np.arange(3 * 5, dtype=np.float32).reshape(3, 5) + 1
    packed = pack_weight(weight, 2)
    assert packed.shape == (3, 3, 2)
    for b, k, j in np.ndindex(packed.shape):
        m = b * 2 + j
        assert packed[b, k, j] == (weight[k, m] if m < 5 else 0)


def test_default_plan_by_hand():
    """The 512 -> 1000 classifier on AVX-512, 2 cores (at least 4 items each).

    Batch 1: one row; 16 vectors (256 columns) would give 4 items, 8 vectors
    (128 columns) give the 8 needed. Batch 8: 8 rows x 2 vectors fill the 16
    accumulators, 32 items of 32 columns.
    """
    cpu = CpuSpec()
    assert DenseMatmulPlan.default(DenseMatmulGeometry(1, 512, 1000), None, cpu) == DenseMatmulPlan(8, 1, 64)
    assert DenseMatmulPlan.default(DenseMatmulGeometry(8, 512, 1000), None, cpu) == DenseMatmulPlan(2, 8, 64)


def test_plan_validation():
    geo = DenseMatmulGeometry(4, 16, 40)
    with pytest.raises(FormatError, match="column_vectors"):
        DenseMatmulPlan(4, 1, 64).validate(geo, None, CpuSpec())  # 40 columns are 3 vectors of 16
    with pytest.raises(FormatError, match="registers"):
        DenseMatmulPlan(4, 4, 32).validate(DenseMatmulGeometry(8, 16, 64), None, CpuSpec(vector_bytes=32))  # 16 > 12
    assert DenseMatmulPlan.from_json(DenseMatmulPlan(2, 3, 64).to_json()) == DenseMatmulPlan(2, 3, 64)


def test_geometry_and_weight_errors():
    with pytest.raises(FormatError, match="positive"):
        DenseMatmulGeometry(0, 4, 4)
    geo = DenseMatmulGeometry(1, 4, 4)
    with pytest.raises(FormatError, match="weight"):
        build_dense_matmul(geo, DenseMatmulPlan.default(geo, None, CpuSpec()), np.zeros((4, 5), np.float32))


def test_kernel_is_told_by_its_plan():
    geo = DenseMatmulGeometry(2, 8, 20)
    kernel = build_dense_matmul(geo, DenseMatmulPlan.default(geo, None, CpuSpec()), random_case(geo, 0)[1])
    assert is_dense_matmul(kernel.func) and is_dense_matmul(schedule_dense_matmul(kernel.func))
