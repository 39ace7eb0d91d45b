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
from relay_passes.layer_records import (
    ATTR_ALPHA,
    ATTR_CODEBOOK,
    ATTR_DENSE_CONVS,
    ATTR_INDICES,
    ATTR_REPORT,
    read_reports,
    report_record,
)
from relay_passes.policy import LoweringPolicy
from relay_passes.report import LayerReport
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
        # 64 x 64 units of 5 bits, stored as the pixel-lane kernel's constants: indices,
        # their 64-byte unpacking tail, 32 x 3 int32 row patterns, alpha.
        ATTR_REPORT: report_record(
            0,
            LayerReport(
                "conv0:gv", "3x3", 5, 5 / 9, "binary" if binary else "float", True, "", 64 * 64 * 9,
                64 * 64 * 5 // 8 + 64 + 32 * 3 * 4 + 64 * 4,
            ),
        ),
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
    after = DetectSubBitConv()(before)
    layers = read_reports(after)
    expected, _ = expected_module(weight, binary)
    # The composite also carries the sub-bit format it found: it rebuilds the weight.
    composite = after[COMPOSITE_FUNC_NAME]
    codebook, indices, alpha = (composite.attrs[key].numpy() for key in (ATTR_CODEBOOK, ATTR_INDICES, ATTR_ALPHA))
    rebuilt = codebook[indices].astype(np.float32) * alpha[:, None, None]
    np.testing.assert_array_equal(rebuilt.reshape(weight.shape), weight)
    for key in (ATTR_CODEBOOK, ATTR_INDICES, ATTR_ALPHA):
        composite = composite.without_attr(key)
    after = tvm.IRModule({gv: (composite if gv.name_hint == COMPOSITE_FUNC_NAME else f) for gv, f in after.functions_items()})
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
        (lambda: conv_module(subbit_weight(64, 64), SHAPE, weight_is_param=True), "weight depends on input 'w'"),
        (lambda: conv_module(subbit_weight(64, 32), SHAPE, groups=2), "unsupported shape: groups=2"),
        (lambda: conv_module(np.sign(subbit_weight(16, 16, kernel=1, tau=3))[:, :12], (1, 12, 8, 8), padding=0), "unsupported shape: 1x1 with 12 input channels"),
        (lambda: conv_module(subbit_weight(8, 8, tau=5), (1, 8, 8, 8)), "unprofitable"),
    ],
    ids=["float", "per-element-scale", "300-patterns", "param-weight", "groups", "1x1-c12", "small"],
)
def test_must_not_fire(make_module, reason):
    before = make_module()
    after = DetectSubBitConv()(before)
    # The graph is unchanged; the enclosing function only records why the conv stays dense.
    assert ATTR_DENSE_CONVS in after["main"].attrs
    tvm.ir.assert_structural_equal(after["main"].without_attr(ATTR_DENSE_CONVS), before["main"])
    (report,) = read_reports(after)
    assert not report.lowered and report.reason.startswith(reason)


def test_tau_cap_is_a_policy():
    before = conv_module(subbit_weight(64, 64, tau=6), SHAPE)
    layers = read_reports(DetectSubBitConv(LoweringPolicy(max_tau_3x3=5))(before))
    assert layers[0].reason.startswith("too many patterns") and layers[0].tau == 6


def test_disabled_policy_keeps_everything_dense():
    before = conv_module(subbit_weight(64, 64, tau=5), SHAPE)
    after = DetectSubBitConv(LoweringPolicy(enabled=False))(before)
    layers = read_reports(after)
    tvm.ir.assert_structural_equal(after["main"].without_attr(ATTR_DENSE_CONVS), before["main"])
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
