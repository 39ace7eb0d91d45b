"""DetectSubBitConv: expected IR, cases where it must not fire, and numerics."""

import numpy as np
import pytest
import tvm
from relax_builders import conv_module, subbit_weight
from tvm import relax

from relay_passes.detect_subbit_conv import (
    ATTR_ACTIVATION,
    ATTR_COMPOSITE,
    ATTR_LAYER,
    ATTR_TAU,
    COMPOSITE_FUNC_NAME,
    COMPOSITE_NAME,
    DetectSubBitConv,
)
from relay_passes.policy import LoweringPolicy
from tvm_snn.errors import ConfigError

SHAPE = (1, 64, 8, 8)
TARGET = tvm.target.Target({"kind": "llvm"})


def expected_module(weight, binary):
    """What the pass must produce for ``conv_module(weight, SHAPE, binary)``."""
    builder = relax.BlockBuilder()
    data = relax.Var("data", relax.TensorType(SHAPE, "float32"))
    attrs = {
        ATTR_COMPOSITE: COMPOSITE_NAME,
        ATTR_TAU: 5,
        ATTR_ACTIVATION: "binary" if binary else "float",
        ATTR_LAYER: "conv0:gv",
    }
    const = relax.const(weight)
    with builder.function(COMPOSITE_FUNC_NAME, [data], attrs=attrs, private=True):
        with builder.dataflow():
            out = builder.emit_output(relax.op.nn.conv2d(data, const, padding=1))
        builder.emit_func_output(out)
    gv = builder.get().get_global_var(COMPOSITE_FUNC_NAME)
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            source = builder.emit(relax.op.sign(x)) if binary else x
            out = builder.emit_output(relax.Call(gv, [source]))
        builder.emit_func_output(out)
    return builder.get(), const


@pytest.mark.parametrize("binary", [False, True])
def test_expected_ir(binary):
    weight = subbit_weight(64, 64, tau=5)
    before = conv_module(weight, SHAPE, binary=binary)
    layers = []
    after = DetectSubBitConv(layers)(before)
    expected, _ = expected_module(weight, binary)
    # The composite holds the very constant of the input module.
    conv = next(b.value for b in after[COMPOSITE_FUNC_NAME].body.blocks[0].bindings)
    expected_conv = next(b.value for b in expected[COMPOSITE_FUNC_NAME].body.blocks[0].bindings)
    np.testing.assert_array_equal(conv.args[1].value.numpy(), expected_conv.args[1].value.numpy())
    tvm.ir.assert_structural_equal(after, expected, map_free_vars=True)
    (report,) = layers
    assert (report.kernel, report.tau, report.activation, report.lowered) == ("3x3", 5, "binary" if binary else "float", True)
    assert report.bits_per_weight == pytest.approx(5 / 9)


def weight_with_per_element_scale():
    weight = subbit_weight(64, 64, tau=5)
    scale = np.linspace(0.5, 1.5, 9, dtype=np.float32).reshape(1, 1, 3, 3)
    return weight * scale


@pytest.mark.parametrize(
    ("make_module", "reason"),
    [
        (lambda: conv_module(np.random.default_rng(0).standard_normal((64, 64, 3, 3)).astype(np.float32), SHAPE), "not binary"),
        (lambda: conv_module(weight_with_per_element_scale(), SHAPE), "scale not per-channel"),
        (lambda: conv_module(subbit_weight(64, 64, patterns=300), SHAPE), "too many patterns: 300 patterns need tau=9 > 8"),
        (lambda: conv_module(subbit_weight(64, 64), SHAPE, weight_is_param=True), "weight is not a constant"),
        (lambda: conv_module(subbit_weight(64, 32), SHAPE, groups=2), "unsupported shape: groups=2"),
        (lambda: conv_module(np.sign(subbit_weight(16, 16, kernel=1, tau=3))[:, :12], (1, 12, 8, 8), padding=0), "unsupported shape: 1x1 with 12 input channels"),
        (lambda: conv_module(subbit_weight(8, 8, tau=5), (1, 8, 8, 8)), "unprofitable"),
    ],
    ids=["float", "per-element-scale", "300-patterns", "param-weight", "groups", "1x1-c12", "small"],
)
def test_must_not_fire(make_module, reason):
    before = make_module()
    layers = []
    after = DetectSubBitConv(layers)(before)
    tvm.ir.assert_structural_equal(after, before)
    (report,) = layers
    assert not report.lowered and report.reason.startswith(reason)


def test_tau_cap_is_a_policy():
    before = conv_module(subbit_weight(64, 64, tau=6), SHAPE)
    layers = []
    DetectSubBitConv(layers, LoweringPolicy(max_tau_3x3=5))(before)
    assert layers[0].reason.startswith("too many patterns") and layers[0].tau == 6


def test_disabled_policy_keeps_everything_dense():
    before = conv_module(subbit_weight(64, 64, tau=5), SHAPE)
    layers = []
    after = DetectSubBitConv(layers, LoweringPolicy(enabled=False))(before)
    tvm.ir.assert_structural_equal(after, before)
    assert layers[0].tau == 5 and layers[0].reason == "SNN lowering disabled by the policy"


def test_detected_module_computes_the_same():
    weight = subbit_weight(64, 64, tau=4, seed=3)
    before = conv_module(weight, SHAPE, binary=True)
    after = DetectSubBitConv()(before)
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    outputs = []
    for mod in (before, after):
        vm = relax.VirtualMachine(tvm.compile(mod, target=TARGET), tvm.cpu())
        outputs.append(vm["main"](tvm.runtime.tensor(x)).numpy())
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"max_tau_3x3": 0}, "max_tau_3x3"), ({"max_tau_1x1": 9}, "max_tau_1x1"), ({"profit_ratio": -1.0}, "profit_ratio")],
)
def test_bad_policy_is_a_config_error(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        LoweringPolicy(**kwargs)


def test_compile_takes_a_policy_and_checks_its_type():
    import tvm_snn

    mod = conv_module(subbit_weight(64, 64, tau=6), SHAPE)
    cm = tvm_snn.compile(mod, snn_policy=LoweringPolicy(max_tau_3x3=5))
    assert cm.snn_layers[0].reason.startswith("too many patterns")
    with pytest.raises(ConfigError, match="LoweringPolicy"):
        tvm_snn.compile(mod, snn_policy={"max_tau_3x3": 5})
