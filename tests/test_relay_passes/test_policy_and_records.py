"""LoweringPolicy's dict form, the layer reports in the IR, and the pipeline's offload hook."""

import numpy as np
import pytest
import tvm
from relax_builders import conv_module, subbit_weight
from tvm import relax

import tvm_snn
from relay_passes.detect_subbit_conv import is_subbit_composite
from relay_passes.layer_records import read_reports
from relay_passes.pipeline import run_graph_passes
from relay_passes.policy import POLICY_VERSION, LoweringPolicy
from tvm_snn.errors import ConfigError

from common import needs_vbmi

TARGET = tvm.target.Target({"kind": "llvm", "mcpu": "skylake-avx512", "num-cores": 2})
VBMI_TARGET = tvm.target.Target({"kind": "llvm", "mcpu": "icelake-server", "num-cores": 2})


def test_policy_round_trips_and_is_public():
    policy = LoweringPolicy(max_tau_3x3=6, profit_ratio=0.5)
    data = policy.to_dict()
    assert data == {"max_tau_3x3": 6, "max_tau_1x1": 7, "profit_ratio": 0.5, "enabled": True, "version": POLICY_VERSION}
    assert LoweringPolicy.from_dict(data) == policy
    assert tvm_snn.LoweringPolicy is LoweringPolicy


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_tau_3x3": 6, "speed": 2}, r"unknown fields \['speed'\]"),
        ({"version": POLICY_VERSION + 1}, "version=2 is not supported"),
        ({"enabled": "yes"}, "enabled must be a bool"),
        ([("max_tau_3x3", 6)], "needs a dict"),
    ],
)
def test_bad_policy_dicts_are_config_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        LoweringPolicy.from_dict(data)


def two_convs(binary_second=False):
    """``conv(float weight) -> conv(sub-bit weight)``: one conv stays dense, one is lowered."""
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 64, 8, 8), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            first = builder.emit(relax.op.nn.conv2d(x, relax.const(dense), padding=1))
            source = builder.emit(relax.op.sign(first)) if binary_second else first
            second = builder.emit(relax.op.nn.conv2d(source, relax.const(subbit_weight(64, 64, tau=4)), padding=1))
            out = builder.emit_output(second)
        builder.emit_func_output(out)
    return builder.get()


def test_reports_come_back_in_graph_order_from_the_lowered_module():
    lowered = run_graph_passes(two_convs(), TARGET)
    first, second = read_reports(lowered)
    assert (first.name, first.lowered, first.reason[:10], first.snn_kernel) == ("conv0:lv", False, "not binary", "")
    assert (second.name, second.lowered, second.tau, second.snn_kernel) == ("conv1:lv1", True, 4, "pixel-lane")
    # The lowered report's bytes are the kernel's constants in the module.
    calls = []
    relax.analysis.post_order_visit(lowered["main"].body, lambda e: calls.append(e) if isinstance(e, relax.Call) else None)
    (kernel_call,) = [c for c in calls if c.op.name == "relax.call_tir"]
    constants = [arg.value.numpy() for arg in kernel_call.args[1] if isinstance(arg, tvm.ir.GenericConst)]
    assert [c.dtype for c in constants] == [np.uint8, np.int32, np.float32]
    assert second.stored_bytes == sum(c.nbytes for c in constants)


@needs_vbmi
def test_the_report_names_the_lane_kernel():
    mod = conv_module(subbit_weight(256, 256, tau=5), (1, 256, 4, 4), binary=True)
    (report,) = read_reports(run_graph_passes(mod, VBMI_TARGET))
    assert report.snn_kernel == "lane"
    cm = tvm_snn.compile(mod, target="llvm -mcpu=icelake-server -num-cores=2")
    assert cm.snn_layers[0].snn_kernel == "lane" and "lane" in cm.report()


def test_offload_passes_run_between_detection_and_lowering():
    seen = []

    @tvm.transform.module_pass(opt_level=0, name="test.Offload")
    def offload(mod, _ctx):
        seen.extend(gv.name_hint for gv, f in mod.functions_items() if is_subbit_composite(f))
        return mod

    lowered = run_graph_passes(two_convs(), TARGET, offload=[offload])
    assert seen == ["tvm_snn_subbit_conv2d"]
    assert not any(is_subbit_composite(f) for _, f in lowered.functions_items())
