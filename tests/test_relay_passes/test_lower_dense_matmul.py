"""LowerDenseMatmul: expected IR, must-not-fire cases, and numerics through the whole pipeline."""

import numpy as np
import pytest
import torch
import tvm
from tvm import relax

import tvm_snn
from relay_passes.lower_dense_matmul import MATMUL_KERNEL_NAME, LowerDenseMatmul
from relay_passes.lower_subbit_conv import ATTR_OP_PATTERN, OP_PATTERN_OUT_ELEMWISE_FUSABLE
from relay_passes.pipeline import lowering_pipeline, run_graph_passes
from schedules.cpu import CpuSpec
from schedules.dense_matmul import DenseMatmulGeometry, DenseMatmulPlan, build_dense_matmul
from schedules.dense_matmul_schedule import is_dense_matmul
from tvm_snn.importers import to_relax
from tvm_snn.target import parse_target

from common import FLOAT_ATOL, FLOAT_RTOL

ROWS, DEPTH, COLUMNS = 2, 24, 40


def weight(seed=0, shape=(DEPTH, COLUMNS)):
    return (np.random.default_rng(seed).standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)


def matmul_module(w, data_shape=(ROWS, DEPTH), weight_is_input=False):
    """``main(x) = x @ W`` (W a constant, or a second input)."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(data_shape, "float32"))
    params = [x]
    right = relax.const(w)
    if weight_is_input:
        right = relax.Var("w", relax.TensorType(w.shape, "float32"))
        params.append(right)
    with builder.function("main", params):
        with builder.dataflow():
            out = builder.emit_output(relax.op.matmul(x, right))
        builder.emit_func_output(out)
    return builder.get()


def packed_by_hand(w, block):
    """[K, M] -> [M / block, K, block], element by element."""
    depth, columns = w.shape
    packed = np.zeros((-(-columns // block), depth, block), np.float32)
    for k, m in np.ndindex(w.shape):
        packed[m // block, k, m % block] = w[k, m]
    return packed


def expected_module(w):
    """``main(x) = call_tir(dense_matmul, (x, packed W))`` with the 2-core AVX-512 plan."""
    geo = DenseMatmulGeometry(ROWS, DEPTH, COLUMNS)
    plan = DenseMatmulPlan.default(geo, None, CpuSpec())
    # Both rows in one block; no width gives 2 cores 4 items each (40 columns are 3 vectors), so the narrowest.
    assert plan == DenseMatmulPlan(column_vectors=1, row_block=2, vector_bytes=64)
    func = build_dense_matmul(geo, plan, w).func
    func = func.without_attr("global_symbol").with_attr(ATTR_OP_PATTERN, OP_PATTERN_OUT_ELEMWISE_FUSABLE)
    builder = relax.BlockBuilder()
    gv = builder.add_func(func, MATMUL_KERNEL_NAME)
    x = relax.Var("x", relax.TensorType((ROWS, DEPTH), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            packed = relax.const(packed_by_hand(w, plan.block))
            out = builder.emit_output(relax.call_tir(gv, [x, packed], relax.TensorType((ROWS, COLUMNS), "float32")))
        builder.emit_func_output(out)
    return builder.get()


def test_expected_ir():
    w = weight()
    tvm.ir.assert_structural_equal(LowerDenseMatmul(CpuSpec())(matmul_module(w)), expected_module(w))


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(lambda: matmul_module(weight(), weight_is_input=True), id="weight-is-an-input"),
        pytest.param(lambda: matmul_module(weight(), data_shape=(3, ROWS, DEPTH)), id="batched"),
    ],
)
def test_must_not_fire(module):
    before = module()
    tvm.ir.assert_structural_equal(LowerDenseMatmul(CpuSpec())(before), before)


class Classifier(torch.nn.Module):
    """Global pooling, then ``relu(linear)``, then another linear: two classifier matmuls with bias epilogues."""

    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(16, 33)
        self.out = torch.nn.Linear(33, 10)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x.mean(dim=(2, 3)))))


@pytest.mark.parametrize("batch", [1, 5])
def test_torch_classifier_matches_pytorch(batch):
    torch.manual_seed(batch)
    model = Classifier().eval()
    x = torch.randn(batch, 16, 4, 4)
    cm = tvm_snn.compile(model, target="x86", example_inputs=(x,))
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(cm(x.numpy()), expected, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)


def test_both_linears_are_dense_kernels_with_their_epilogues_fused():
    target = parse_target("x86")
    x = torch.randn(2, 16, 4, 4)
    mod = lowering_pipeline(target)(run_graph_passes(to_relax(Classifier().eval(), (x,)), target))
    kernels = sorted(gv.name_hint for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc) and is_dense_matmul(f))
    assert kernels == ["fused_dense_matmul1_add1", "fused_dense_matmul_add_relu"]
