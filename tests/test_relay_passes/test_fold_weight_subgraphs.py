"""FoldWeightSubgraphs: expected IR, cases where it must not fire, and numerics."""

import numpy as np
import pytest
import tvm
from relax_builders import subbit_weight
from tvm import relax

from relay_passes.detect_subbit_conv import DetectSubBitConv
from relay_passes.fold_weight_subgraphs import FoldWeightSubgraphs
from relay_passes.layer_records import ATTR_FOLDED, fingerprint, read_reports

SHAPE = (1, 64, 8, 8)
TARGET = tvm.target.Target({"kind": "llvm"})
TAU = 5
CODEWORDS = 1 << TAU
UNIT = 9
OUT = 64
# Latent weights on a power-of-two grid: every folded value below is exact in float32.
LATENT_STEP = 1 / 16


def _latent(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(-8, 9, (OUT, SHAPE[1], 3, 3)) * LATENT_STEP).astype(np.float32)


def _subset(seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.choice(1 << UNIT, CODEWORDS, replace=False)
    return (1 - 2 * ((codes[:, None] >> np.arange(UNIT)) & 1)).astype(np.float32)


def _main(emit_weight, *, binary_input=False):
    """``main(x) = conv2d(x, W)`` with ``W = emit_weight(builder, x)`` emitted in the dataflow block."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            weight = emit_weight(builder, x)
            out = builder.emit_output(relax.op.nn.conv2d(x, weight, padding=1))
        builder.emit_func_output(out)
    return builder.get()


def _sign_times_mean_abs(builder, latent):
    """``sign(w) * mean(|w|, per output channel)``: XNOR-Net's weight, as QAT code computes it."""
    w = relax.const(latent)
    signs = builder.emit(relax.op.sign(w))
    magnitude = builder.emit(relax.op.abs(w))
    alpha = builder.emit(relax.op.mean(magnitude, axis=[1, 2, 3], keepdims=True))
    return builder.emit(relax.op.multiply(signs, alpha))


def _nearest_pattern(builder, latent, subset, gather):
    """The full quantizer: nearest pattern by distance (argmin), gathered or one-hot, a clamp, a where."""
    units = builder.emit(relax.op.reshape(relax.const(latent), (OUT, SHAPE[1], UNIT)))
    scores = builder.emit(relax.op.matmul(units, relax.op.permute_dims(relax.const(subset))))
    norms = builder.emit(relax.op.sum(relax.op.multiply(units, units), axis=[-1], keepdims=True))
    distance = builder.emit(relax.op.subtract(norms, relax.op.multiply(scores, relax.const(2.0))))
    idx = builder.emit(relax.op.argmin(distance, axis=-1))
    if gather == "take":
        chosen = builder.emit(relax.op.take(relax.const(subset), idx, axis=0))
    else:
        one_hot = relax.op.one_hot(idx, relax.prim_value(tvm.tirx.FloatImm("float32", 1.0)), relax.prim_value(tvm.tirx.FloatImm("float32", 0.0)), CODEWORDS)
        chosen = builder.emit(relax.op.matmul(one_hot, relax.const(subset)))
    positive = builder.emit(relax.op.astype(relax.op.greater_equal(chosen, relax.const(0.0)), "float32"))
    signs = builder.emit(relax.op.where(relax.op.greater(positive, relax.const(0.5)), relax.const(1.0), relax.const(-1.0)))
    clamped = builder.emit(relax.op.clip(relax.const(latent), -1.0, 1.0))
    alpha = builder.emit(relax.op.mean(relax.op.abs(clamped), axis=[1, 2, 3], keepdims=True))
    return builder.emit(relax.op.multiply(relax.op.reshape(signs, latent.shape), alpha))


def _numpy_nearest_pattern(latent, subset):
    units = latent.reshape(OUT, SHAPE[1], UNIT)
    distance = (units * units).sum(-1, keepdims=True) - 2 * units @ subset.T
    chosen = subset[distance.argmin(-1)]
    alpha = np.abs(np.clip(latent, -1, 1)).mean(axis=(1, 2, 3), keepdims=True)
    return (chosen.reshape(latent.shape) * alpha).astype(np.float32)


def test_expected_ir():
    latent = _latent()
    before = _main(lambda builder, _x: _sign_times_mean_abs(builder, latent))
    after = FoldWeightSubgraphs()(before)
    folded = (np.sign(latent) * np.abs(latent).mean(axis=(1, 2, 3), keepdims=True)).astype(np.float32)
    record = f'{{"{fingerprint(folded)}": "sign,abs,mean,multiply"}}'
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x], attrs={ATTR_FOLDED: record}):
        with builder.dataflow():
            out = builder.emit_output(relax.op.nn.conv2d(x, relax.const(folded), padding=1))
        builder.emit_func_output(out)
    tvm.ir.assert_structural_equal(after, builder.get())


@pytest.mark.parametrize("gather", ["take", "one_hot"])
def test_quantizer_ops_fold_to_the_numpy_value(gather):
    latent, subset = _latent(1), _subset(1)
    after = FoldWeightSubgraphs()(_main(lambda builder, _x: _nearest_pattern(builder, latent, subset, gather)))
    (conv,) = [b.value for b in after["main"].body.blocks[0].bindings]
    np.testing.assert_array_equal(conv.args[1].value.numpy(), _numpy_nearest_pattern(latent, subset))
    (report,) = read_reports(DetectSubBitConv()(after))
    assert report.lowered and report.tau == TAU
    expected_ops = {"argmin", "matmul", "clip", "mean", "where", "astype", "greater_equal"}
    expected_ops.add("take" if gather == "take" else "one_hot")
    assert expected_ops <= set(report.folded.split(",")), report.folded


def _depends_on_input(builder, x):
    scale = builder.emit(relax.op.mean(x))
    return builder.emit(relax.op.multiply(relax.const(subbit_weight(OUT, SHAPE[1])), scale))


@pytest.mark.parametrize(
    "make_module",
    [
        lambda: _main(lambda _builder, _x: relax.const(subbit_weight(OUT, SHAPE[1]))),
        lambda: _main(_depends_on_input),
    ],
    ids=["plain-constant", "depends-on-input"],
)
def test_must_not_fire(make_module):
    before = make_module()
    after = FoldWeightSubgraphs()(before)
    tvm.ir.assert_structural_equal(after, before)


def test_weight_depending_on_an_input_is_reported_precisely():
    after = DetectSubBitConv()(FoldWeightSubgraphs()(_main(_depends_on_input)))
    (report,) = read_reports(after)
    assert not report.lowered
    assert report.reason == "weight depends on input 'x' through mean -> multiply"


def test_folded_module_computes_the_same():
    latent, subset = _latent(2), _subset(2)
    before = _main(lambda builder, _x: _nearest_pattern(builder, latent, subset, "take"))
    after = FoldWeightSubgraphs()(before)
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    outputs = []
    for mod in (before, after):
        vm = relax.VirtualMachine(tvm.compile(mod, target=TARGET), tvm.cpu())
        outputs.append(vm["main"](tvm.runtime.tensor(x)).numpy())
    np.testing.assert_array_equal(outputs[0], outputs[1])
