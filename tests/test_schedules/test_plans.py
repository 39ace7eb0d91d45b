"""The kernel plans: hand choices, legal ranges, JSON, and that the schedules obey them."""

import dataclasses

import numpy as np
import pytest
import tvm
import tvm_ffi
from test_schedules.subbit_strategies import make_conv, make_input

from schedules import kernels
from schedules.bnn_xnor import BinaryConv, BnnPlan
from schedules.cpu import CpuSpec
from schedules.lane_plan import LanePlan
from schedules.plan import PLAN_ANNOTATION
from schedules.reference import conv2d_reference
from schedules.subbit import KERNEL_1X1, KERNEL_3X3
from schedules.subbit_plan import SubBitPlan
from tvm_snn.errors import ConfigError, FormatError

from common import KERNEL_ATOL, KERNEL_RTOL, needs_vbmi

TARGET = tvm.target.Target({"kind": "llvm"})
VBMI_TARGET = tvm.target.Target({"kind": "llvm", "mcpu": "icelake-server"})


def run(kernel, x, target=TARGET):
    lib = tvm.compile(kernel.func, target=target)
    out = tvm.runtime.tensor(np.zeros(kernel.out_shape, np.float32))
    lib(tvm.runtime.tensor(x), *[tvm.runtime.tensor(c) for c in kernel.constants], out)
    return out.numpy()


def test_default_plan_of_a_float_3x3_layer():
    # 64 channels, 32x32 outputs, float: a tile is one vector of 16 float32
    # pixels of a row; 24 KiB of responses hold 24576 / (32 codewords * 16
    # pixels * 4 bytes) = 12 units, so groups of 8 (a power of two dividing
    # 64); 64 tiles give both cores work without splitting the channels; one
    # zmm per channel's accumulator leaves 24 registers, so blocks of 16
    # channels (the largest divisor of 64 up to 24).
    conv = make_conv(KERNEL_3X3, 5, 64, 64, seed=0, padding=1)
    plan = kernels.select_plan(conv, (1, 64, 32, 32), CpuSpec(num_cores=2))
    assert plan == SubBitPlan(
        tile_rows=1, tile_width=16, unit_group=8, channel_splits=1, register_block=16, num_cores=2
    )


def test_default_plan_of_a_small_binary_layer():
    # 512 channels on 4x4, binary: 4 rows of 4 (padded to a power of two)
    # stack into one 16-pixel tile; one tile for two cores, so the channels
    # split in 2; int8 sums: a group has at most 127 // 9 = 14 units, so 8;
    # 16 pixels of int8 take a quarter zmm: 24 channels per block, the
    # largest divisor of 256 up to 24 is 16. On AVX2 half the registers: 12 -> 8.
    conv = make_conv(KERNEL_3X3, 5, 512, 512, seed=1, activation="binary", padding=1)
    plan = kernels.select_plan(conv, (1, 512, 4, 4), CpuSpec(num_cores=2))
    assert (plan.tile_rows, plan.tile_width, plan.unit_group, plan.channel_splits, plan.register_block) == (4, 4, 8, 2, 16)
    avx2 = kernels.select_plan(conv, (1, 512, 4, 4), CpuSpec(num_cores=2, vector_bytes=32))
    assert avx2.register_block == 8


def test_vbmi_picks_the_lane_kernel_where_it_fits():
    conv = make_conv(KERNEL_3X3, 5, 256, 256, seed=2, activation="binary", padding=1)
    plan = kernels.select_plan(conv, (1, 256, 4, 4), CpuSpec(vbmi=True))
    # 256 units in chunks of the largest divisor up to 14 (8); one tile: the
    # 32 chunks split in 2 so both cores work.
    assert plan == LanePlan(chunk=8, parts=2, num_cores=2)
    float_conv = dataclasses.replace(conv, activation="float")
    assert isinstance(kernels.select_plan(float_conv, (1, 256, 4, 4), CpuSpec(vbmi=True)), SubBitPlan)
    assert isinstance(kernels.select_plan(conv, (1, 256, 4, 4), CpuSpec(vbmi=False)), SubBitPlan)
    assert kernels.select_plan(conv, (1, 256, 16, 16), CpuSpec(vbmi=True)).byte_unpack


@pytest.mark.parametrize(
    ("kernel", "cin", "hw", "activation"),
    [(KERNEL_3X3, 64, 56, "float"), (KERNEL_3X3, 128, 7, "binary"), (KERNEL_1X1, 96, 9, "float"), (KERNEL_3X3, 24, 3, "binary")],
)
@pytest.mark.parametrize("cpu", [CpuSpec(1, 16), CpuSpec(2, 32), CpuSpec(4, 64, True)])
def test_every_default_plan_lies_in_its_space(kernel, cin, hw, activation, cpu):
    conv = make_conv(kernel, 5, cin, 2 * cin, seed=3, activation=activation, padding=1 if kernel == KERNEL_3X3 else 0)
    shape = (2, cin, hw, hw)
    plan = SubBitPlan.default(conv, shape, cpu)
    assert plan.validate(conv, shape, cpu) is plan
    space = SubBitPlan.space(conv, shape, cpu)
    assert set(space) == {field.name for field in dataclasses.fields(SubBitPlan)}


@pytest.mark.parametrize(
    ("change", "knob"),
    [
        ({"unit_group": 3}, "unit_group"),
        ({"channel_splits": 8}, "channel_splits"),
        ({"register_block": 25}, "register_block"),
        ({"vector_bytes": 8}, "vector_bytes"),
        ({"byte_unpack": True}, "byte_unpack"),
        ({"num_cores": 3}, "num_cores"),
        ({"tile_width": 32}, "tile_width"),
        ({"tile_width": 4}, "stacked rows"),
        ({"register_block": 8, "channel_splits": 4}, "does not divide"),
    ],
)
def test_a_plan_outside_its_space_names_the_knob(change, knob):
    conv = make_conv(KERNEL_3X3, 4, 16, 48, seed=4, padding=1)
    shape, cpu = (1, 16, 8, 8), CpuSpec(num_cores=2)
    plan = dataclasses.replace(SubBitPlan.default(conv, shape, cpu), **change)
    with pytest.raises(FormatError, match=knob):
        kernels.build_scheduled(conv, shape, cpu, plan)


def test_plans_round_trip_through_json_and_refuse_another_kind():
    plan = SubBitPlan(tile_rows=2, tile_width=8, unit_group=4, channel_splits=1, register_block=6)
    assert SubBitPlan.from_json(plan.to_json()) == plan
    lane = LanePlan(chunk=7, parts=1, num_cores=2)
    assert LanePlan.from_json(lane.to_json()) == lane
    with pytest.raises(FormatError, match="'lane' plan is not a 'pixel-lane' plan"):
        SubBitPlan.from_json(lane.to_json())
    with pytest.raises(FormatError, match="fields"):
        LanePlan.from_json('{"kind": "lane", "chunk": 7}')


@pytest.mark.parametrize("activation", ["float", "binary"])
def test_the_schedule_reads_the_plan_it_is_given(activation):
    # Non-default knobs give another loop nest, and the same numbers.
    conv = make_conv(KERNEL_3X3, 4, 32, 24, seed=5, activation=activation, padding=1)
    shape, cpu = (2, 32, 12, 12), CpuSpec(num_cores=2)
    default = kernels.build_scheduled(conv, shape, cpu)
    other_plan = dataclasses.replace(
        default.plan, unit_group=2, channel_splits=2, register_block=3, unroll_unpack=False, vector_bytes=32
    )
    other = kernels.build_scheduled(conv, shape, cpu, other_plan)
    assert other.plan == other_plan
    assert not tvm_ffi.structural_equal(default.func, other.func)
    x = make_input(shape, seed=6, activation=activation)
    expected = conv2d_reference(x, conv)
    for kernel in (default, other):
        np.testing.assert_allclose(run(kernel, x), expected, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)


def test_the_plan_travels_on_the_output_block():
    conv = make_conv(KERNEL_1X1, 3, 16, 8, seed=7)
    kernel = kernels.build(conv, (1, 16, 4, 4), kernels.select_plan(conv, (1, 16, 4, 4)))
    sch = tvm.s_tir.Schedule(kernel.func)
    annotations = sch.get(sch.get_sblock("snn_out")).annotations
    assert SubBitPlan.from_json(annotations[PLAN_ANNOTATION]) == kernel.plan


@needs_vbmi
def test_a_lane_plan_with_other_parts_and_chunks_computes_the_same():
    conv = make_conv(KERNEL_3X3, 5, 256, 256, seed=8, activation="binary", padding=1, bias=False)
    shape, cpu = (1, 256, 4, 4), CpuSpec(num_cores=2, vbmi=True)
    x = make_input(shape, seed=9, activation="binary")
    expected = conv2d_reference(x, conv)
    for plan in (LanePlan(chunk=8, parts=2, num_cores=2), LanePlan(chunk=4, parts=4, num_cores=1)):
        kernel = kernels.build_scheduled(conv, shape, cpu, plan)
        np.testing.assert_allclose(run(kernel, x, VBMI_TARGET), expected, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
    with pytest.raises(FormatError, match="parts=3"):
        kernels.build_scheduled(conv, shape, cpu, LanePlan(chunk=8, parts=3, num_cores=2))


def test_bnn_plan_defaults_and_range():
    rng = np.random.default_rng(10)
    conv = BinaryConv.from_dense(rng.choice([-1.0, 1.0], (40, 16, 3, 3)), padding=1)
    # A 20-wide output row pads to 2 vectors of 16; 24 registers over 4 channels
    # give up to 6 vectors per block (2 divides 2); then 24 // 2 = 12 channels:
    # the largest divisor of 40 up to 12 is 10.
    assert BnnPlan.default(conv, (1, 16, 20, 20), CpuSpec()) == BnnPlan(pixel_vectors=2, channel_block=10, num_cores=2)
    with pytest.raises(FormatError, match="channel_block"):
        BnnPlan(pixel_vectors=2, channel_block=7, num_cores=2).validate(conv, (1, 16, 20, 20), CpuSpec())


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"num_cores": 0}, "num_cores"), ({"vector_bytes": 48}, "vector_bytes"), ({"vbmi": 1}, "vbmi")]
)
def test_bad_cpu_spec_is_a_config_error(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        CpuSpec(**kwargs)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"kind": "llvm", "mcpu": "skylake-avx512", "num-cores": 3}, CpuSpec(3, 64, False)),
        ({"kind": "llvm", "mcpu": "icelake-server", "num-cores": 2}, CpuSpec(2, 64, True)),
        ({"kind": "llvm", "mcpu": "haswell", "num-cores": 4}, CpuSpec(4, 32, False)),
        ({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"], "num-cores": 4}, CpuSpec(4, 16, False)),
    ],
)
def test_cpu_spec_from_target(target, expected):
    assert CpuSpec.from_target(tvm.target.Target(target)) == expected
