"""The lane kernel (binary convs on small images, channels in the lanes) against the NumPy reference."""

import dataclasses

import numpy as np
import pytest
import tvm
from guarded import guarded_tensors, run_on_guarded_input
from test_schedules.subbit_strategies import make_conv, make_input

from schedules import kernels
from schedules.cpu import CpuSpec
from schedules.lane_plan import MAX_LANE_TAU, lane_kernel_fits
from schedules.reference import accumulate_binary, conv2d_reference
from schedules.subbit import KERNEL_1X1, KERNEL_3X3, unpack_indices
from schedules.subbit_lane import lane_constants, permute_table
from schedules.subbit_tir import UNPACK_TAIL_BYTES
from tvm_snn.errors import FormatError
from tvm_snn.target import parse_target

from common import KERNEL_ATOL, KERNEL_RTOL, needs_vbmi

TARGET = tvm.target.Target(parse_target("x86"))

CASES = [
    # tau, C, O, N, HxW, geometry
    (5, 64, 256, 1, (4, 4), {"padding": 1}),
    (6, 40, 320, 2, (8, 8), {"padding": 1, "stride": 2}),
    (1, 7, 256, 1, (4, 4), {"padding": 1}),
    (3, 30, 256, 2, (7, 7), {"padding": 1, "stride": 2}),
    (4, 13, 256, 1, (6, 6), {"padding": (0, 0, 0, 0)}),
    (2, 16, 384, 1, (8, 8), {"padding": 2, "dilation": 2, "stride": 2}),
    (5, 9, 256, 2, (4, 8), {"padding": 1}),  # two 2x8 tiles per image
    (6, 12, 256, 1, (3, 3), {"padding": 1}),  # 3x3 outputs on a 4x4 grid
]


def build_lane(conv, shape, num_cores=2):
    """The scheduled lane kernel, as the pipeline builds it on a VBMI CPU."""
    return kernels.build_scheduled(conv, shape, plan=kernels.select_plan(conv, shape, CpuSpec(num_cores), "lane"))


def run(conv, x, num_cores=2):
    kernel = build_lane(conv, x.shape, num_cores)
    lib = tvm.compile(kernel.func, target=TARGET)
    out = tvm.runtime.tensor(np.zeros(kernel.out_shape, np.float32))
    lib(tvm.runtime.tensor(x), *[tvm.runtime.tensor(c) for c in kernel.constants], out)
    return out.numpy()


@needs_vbmi
@pytest.mark.parametrize("num_cores", [1, 2])
@pytest.mark.parametrize(("tau", "cin", "cout", "batch", "hw", "geometry"), CASES)
def test_lane_kernel_matches_reference(tau, cin, cout, batch, hw, geometry, num_cores):
    conv = make_conv(KERNEL_3X3, tau, cin, cout, seed=tau + cin, activation="binary", **geometry)
    x = make_input((batch, cin, *hw), seed=cout, activation="float") * 2
    x[:, :, ::3] = 0.0  # sign(0) = 0, and zero padding is not -1
    np.testing.assert_allclose(run(conv, x, num_cores), conv2d_reference(x, conv), rtol=KERNEL_RTOL, atol=KERNEL_ATOL)


@needs_vbmi
@pytest.mark.parametrize(("tau", "cin", "cout", "batch", "hw", "geometry"), CASES[:3])
def test_lane_accumulator_is_bit_exact(tau, cin, cout, batch, hw, geometry):
    """With alpha = 1 and no bias, the float output is the integer accumulator itself."""
    conv = make_conv(KERNEL_3X3, tau, cin, cout, seed=tau, activation="binary", bias=False, **geometry)
    unit_alpha = dataclasses.replace(conv, alpha=np.ones(cout, np.float32))
    x = make_input((batch, cin, *hw), seed=tau, activation="binary")
    np.testing.assert_array_equal(run(unit_alpha, x), accumulate_binary(x, unit_alpha).astype(np.float32))


@needs_vbmi
def test_lane_kernel_reads_only_its_inputs():
    """Input and packed indices against unmapped pages: an out-of-bounds read would crash."""
    conv = make_conv(KERNEL_3X3, 5, 24, 256, seed=1, activation="binary", padding=1, stride=2)
    x = make_input((2, 24, 8, 8), seed=2, activation="binary")
    kernel = build_lane(conv, x.shape)
    lib = tvm.compile(kernel.func, target=TARGET)
    expected = conv2d_reference(x, conv)
    for got in run_on_guarded_input(lib, x, kernel.constants, kernel.out_shape):
        np.testing.assert_allclose(got, expected, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
    packed, *rest = kernel.constants
    with guarded_tensors(packed) as placements:
        for placed in placements:
            out = tvm.runtime.tensor(np.zeros(kernel.out_shape, np.float32))
            lib(tvm.runtime.tensor(x), placed, *[tvm.runtime.tensor(c) for c in rest], out)
            np.testing.assert_allclose(out.numpy(), expected, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)


def test_lane_constants_store_tau_bits_per_unit_unit_major():
    conv = make_conv(KERNEL_3X3, 5, 64, 256, seed=0, activation="binary", bias=False)
    packed, perm, alpha = lane_constants(conv)
    assert packed.size == 64 * 256 * 5 // 8 + UNPACK_TAIL_BYTES
    assert not packed[-UNPACK_TAIL_BYTES:].any()
    stream = packed[:-UNPACK_TAIL_BYTES]
    np.testing.assert_array_equal(unpack_indices(stream, 5, 64 * 256).reshape(64, 256), conv.indices.T)
    assert perm.shape == (3, 8, 64) and alpha.shape == (256,)


@pytest.mark.parametrize("tau", range(1, MAX_LANE_TAU + 1))
def test_permute_table_picks_each_codewords_rows(tau):
    """Lane (h, j) of table b, read through [segment table | its negation], sums to
    codeword j's response at pixel b * P + h."""
    conv = make_conv(KERNEL_3X3, tau, 4, 256, seed=tau, activation="binary")
    perm = permute_table(conv)
    rng = np.random.default_rng(tau)
    taps = rng.integers(-1, 2, (3, 3, 16))  # [row s, element e, pixel]
    patterns = np.array([[1 - 2 * ((q >> e) & 1) for e in range(3)] for q in range(4)])  # q: last element +
    tables = np.einsum("qe,sep->sqp", patterns, taps).reshape(3, 64)
    signed = np.concatenate([tables, -tables], axis=1)
    codewords, per_table = 1 << tau, min(64 >> tau, 16)
    for b in range(perm.shape[1]):
        got = sum(signed[s, perm[s, b]] for s in range(3))
        for h in range(per_table):
            pixel = b * per_table + h
            for j in range(conv.num_codewords):
                expected = (conv.codebook[j].reshape(3, 3) * taps[:, :, pixel]).sum()
                assert got[h * codewords + j] == expected


@pytest.mark.parametrize(
    ("change", "out_hw", "reason"),
    [
        ({"activation": "float"}, (4, 4), "float activations"),
        ({"tau": 7}, (4, 4), "tau 7 > 6"),
        ({"out_channels": 128}, (4, 4), "128 output channels"),
        ({"out_channels": 320 + 8}, (4, 4), "not whole vectors"),
        ({}, (8, 8), "fills its vectors"),
        ({}, (2, 2), "tiles of 4 pixels"),
        ({"kernel": KERNEL_1X1}, (4, 4), "not a 3x3 kernel"),
    ],
)
def test_lane_kernel_fits_says_why_not(change, out_hw, reason):
    args = {"kernel": KERNEL_3X3, "tau": 5, "out_channels": 256, "activation": "binary"}
    args.update(change)
    cin = 16
    conv = make_conv(args["kernel"], args["tau"], cin, args["out_channels"], seed=0, activation=args["activation"])
    assert reason in lane_kernel_fits(conv, out_hw)
    with pytest.raises(FormatError, match="the lane kernel does not apply"):
        kernels.select_plan(conv, (1, cin, *out_hw), kind="lane")


def test_lane_kernel_fits_a_resnet_4x4_layer():
    conv = make_conv(KERNEL_3X3, 5, 512, 512, seed=0, activation="binary", padding=1)
    assert lane_kernel_fits(conv, (4, 4)) is None


def test_lane_kernel_is_told_apart_from_the_pixel_lane_kernel():
    conv = make_conv(KERNEL_3X3, 5, 16, 256, seed=0, activation="binary", padding=1)
    lane = kernels.build(conv, (1, 16, 4, 4), kernels.select_plan(conv, (1, 16, 4, 4), kind="lane"))
    pixel_lane = kernels.build(conv, (1, 16, 4, 4), kernels.select_plan(conv, (1, 16, 4, 4), kind="pixel-lane"))
    assert kernels.kernel_kind(lane.func) == "lane" and kernels.kernel_kind(pixel_lane.func) == "pixel-lane"


def test_wrong_input_channels():
    conv = make_conv(KERNEL_3X3, 5, 16, 256, seed=0, activation="binary", padding=1)
    with pytest.raises(FormatError, match="input has 8 channels, the conv takes 16"):
        build_lane(conv, (1, 8, 4, 4))
