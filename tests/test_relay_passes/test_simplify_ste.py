"""SimplifySTE: expected IR, cases where it must not fire, and numerics against ONNX Runtime."""

import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
import tvm
from qat_models import BinaryAct
from tvm import relax

import tvm_snn
from relay_passes.simplify_ste import SimplifySTE

from common import STE_RESIDUE_ATOL, STE_RESIDUE_RTOL

SHAPE = (1, 64, 8, 8)
CHANNELS = 64


def _residue_module(association, soft=relax.op.clip, duplicate=False):
    """``main(x)`` returning the STE residue of ``sign(x)`` around ``soft(x)``, in one association."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            hard = builder.emit(relax.op.sign(x))
            make_soft = (lambda: soft(x, -1.0, 1.0)) if soft is relax.op.clip else (lambda: soft(x))
            b = builder.emit(make_soft())
            b_again = builder.emit(make_soft()) if duplicate else b
            if association == "(a-b)+b":
                out = relax.op.add(builder.emit(relax.op.subtract(hard, b)), b_again)
            elif association == "b+(a-b)":
                out = relax.op.add(b_again, builder.emit(relax.op.subtract(hard, b)))
            else:  # (a + (-b)) + b
                out = relax.op.add(builder.emit(relax.op.add(hard, relax.op.negative(b))), b_again)
            out = builder.emit_output(out)
        builder.emit_func_output(out)
    return builder.get()


def _sign_module():
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            out = builder.emit_output(relax.op.sign(x))
        builder.emit_func_output(out)
    return builder.get()


@pytest.mark.parametrize("duplicate", [False, True], ids=["same-var", "recomputed"])
@pytest.mark.parametrize("association", ["(a-b)+b", "b+(a-b)", "(a+(-b))+b"])
def test_expected_ir(association, duplicate):
    after = SimplifySTE()(_residue_module(association, duplicate=duplicate))
    tvm.ir.assert_structural_equal(after, _sign_module())


def _mismatched_module():
    """``(sign(x) - clip(x)) + tanh(x)``: not a residue."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            diff = builder.emit(relax.op.subtract(relax.op.sign(x), relax.op.clip(x, -1.0, 1.0)))
            out = builder.emit_output(relax.op.add(diff, relax.op.tanh(x)))
        builder.emit_func_output(out)
    return builder.get()


@pytest.mark.parametrize("make_module", [_mismatched_module, _sign_module], ids=["different-b", "no-residue"])
def test_must_not_fire(make_module):
    before = make_module()
    tvm.ir.assert_structural_equal(SimplifySTE()(before), before)


def test_matches_onnxruntime_within_the_residue_rounding(tmp_path):
    """A float conv of ``sign(x).detach() - clamp(x).detach() + clamp(x)``, against ONNX Runtime."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(BinaryAct("sign"), torch.nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1, bias=False)).eval()
    path = str(tmp_path / "ste.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(SHAPE),), path, input_names=["input"], dynamo=False)
    cm = tvm_snn.compile(path, target="x86")
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    expected = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(cm(x), expected, rtol=STE_RESIDUE_RTOL, atol=STE_RESIDUE_ATOL)
