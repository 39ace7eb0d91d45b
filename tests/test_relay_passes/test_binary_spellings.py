"""Binary activations in their common spellings: detected, lowered with the right kernel input, exact."""

import numpy as np
import pytest
import tvm
from relax_builders import subbit_weight
from tvm import relax

import tvm_snn
from relay_passes.detect_subbit_conv import DetectSubBitConv
from relay_passes.layer_records import read_reports
from relay_passes.pipeline import run_graph_passes

from common import KERNEL_ATOL, KERNEL_RTOL

SHAPE = (1, 64, 8, 8)
TARGET = tvm.target.Target({"kind": "llvm"})
# Integer inputs: many exact zeros, where sign(0) = 0 but where(x >= 0, 1, -1) = +1.
INPUT_SCALE = 2


def _ge_zero(x):
    return relax.op.greater_equal(x, relax.const(0.0))


def _as_float(cond):
    return relax.op.astype(cond, "float32")


SPELLINGS = {
    "sign": lambda x, b: relax.op.sign(x),
    "sign-bias": lambda x, b: relax.op.sign(relax.op.add(x, b)),
    "where": lambda x, b: relax.op.where(_ge_zero(x), relax.const(1.0), relax.const(-1.0)),
    "where-bias": lambda x, b: relax.op.where(_ge_zero(relax.op.add(x, b)), relax.const(1.0), relax.const(-1.0)),
    "2c-1": lambda x, b: relax.op.subtract(relax.op.multiply(_as_float(_ge_zero(x)), relax.const(2.0)), relax.const(1.0)),
    "2*c-1": lambda x, b: relax.op.subtract(relax.op.multiply(relax.const(2.0), _as_float(_ge_zero(x))), relax.const(1.0)),
}
NOT_BINARY = {
    "where-1-0": lambda x, b: relax.op.where(_ge_zero(x), relax.const(1.0), relax.const(0.0)),
    "3c-1": lambda x, b: relax.op.subtract(relax.op.multiply(_as_float(_ge_zero(x)), relax.const(3.0)), relax.const(1.0)),
    "tanh": lambda x, b: relax.op.tanh(x),
}


def _module(spelling):
    """``main(x) = conv2d(act(x), W) * scale``: a sub-bit conv with a per-channel scale after it."""
    rng = np.random.default_rng(0)
    bias = relax.const((rng.integers(-2, 3, (1, SHAPE[1], 1, 1)) / 2).astype(np.float32))
    scale = relax.const(rng.uniform(0.5, 1.5, (1, SHAPE[1], 1, 1)).astype(np.float32))
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            act = builder.emit(spelling(x, bias))
            conv = builder.emit(relax.op.nn.conv2d(act, relax.const(subbit_weight(64, 64, tau=4, seed=2)), padding=1))
            out = builder.emit_output(relax.op.multiply(conv, scale))
        builder.emit_func_output(out)
    return builder.get()


@pytest.mark.parametrize("name", list(SPELLINGS))
def test_spelling_is_binary(name):
    (report,) = read_reports(DetectSubBitConv()(_module(SPELLINGS[name])))
    assert (report.activation, report.lowered, report.tau) == ("binary", True, 4)


@pytest.mark.parametrize("name", list(NOT_BINARY))
def test_must_not_fire(name):
    (report,) = read_reports(DetectSubBitConv()(_module(NOT_BINARY[name])))
    assert (report.activation, report.lowered) == ("float", True)


def _kernel_input(mod):
    """The op that produces the first argument of the SNN kernel's ``call_tir``."""
    var2val = relax.analysis.get_var2val(mod["main"])
    calls = [b.value for b in mod["main"].body.blocks[0].bindings if isinstance(b.value, relax.Call)]
    (kernel,) = [c for c in calls if getattr(c.op, "name", "") == "relax.call_tir" and "snn_conv2d" in c.args[0].name_hint]
    data = kernel.args[1].fields[0]
    return var2val[data].op.name if data in var2val else "input"


@pytest.mark.parametrize(
    ("name", "producer"),
    [("sign", "input"), ("sign-bias", "relax.add"), ("where", "relax.where"), ("2c-1", "relax.subtract")],
)
def test_only_a_real_sign_is_skipped(name, producer):
    """The kernel applies sign itself: it takes the pre-sign tensor, or a +-1 tensor as it is."""
    assert _kernel_input(run_graph_passes(_module(SPELLINGS[name]), TARGET)) == producer


@pytest.mark.parametrize("name", list(SPELLINGS))
def test_lowered_spelling_computes_the_same(name):
    mod = _module(SPELLINGS[name])
    x = np.round(np.random.default_rng(1).standard_normal(SHAPE) * INPUT_SCALE).astype(np.float32)
    vm = relax.VirtualMachine(tvm.compile(mod, target=TARGET), tvm.cpu())
    expected = vm["main"](tvm.runtime.tensor(x)).numpy()
    cm = tvm_snn.compile(mod, target="x86")
    assert all(layer.lowered for layer in cm.snn_layers)
    np.testing.assert_allclose(cm(x), expected, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
