"""The TensorIR sub-bit kernel against the NumPy reference."""

import dataclasses

import numpy as np
import pytest
import tvm
from guarded import run_on_guarded_input
from test_schedules.subbit_strategies import make_conv, make_input

from schedules.kernels import build_scheduled
from schedules.knobs import MAX_BAKED_TAU, RESP_BUDGET_BYTES
from schedules.reference import accumulate_binary, conv2d_reference
from schedules.subbit import KERNEL_1X1, KERNEL_3X3
from schedules.subbit_plan import unit_group
from schedules.subbit_tir import UNPACK_TAIL_BYTES
from tvm_snn.errors import FormatError

from common import KERNEL_ATOL, KERNEL_RTOL

TARGET = tvm.target.Target({"kind": "llvm"})


def run_kernel(conv, x):
    kernel = build_scheduled(conv, x.shape)
    lib = tvm.compile(kernel.func, target=TARGET)
    out = tvm.runtime.tensor(np.zeros(kernel.out_shape, np.float32))
    lib(tvm.runtime.tensor(x), *[tvm.runtime.tensor(c) for c in kernel.constants], out)
    return out.numpy()


CASES = [
    # kernel, tau, C, O, HxW, geometry
    (KERNEL_3X3, 5, 16, 32, (14, 14), {"padding": 1}),
    (KERNEL_3X3, 1, 5, 7, (9, 11), {"padding": 1}),
    (KERNEL_3X3, 8, 6, 9, (8, 8), {"padding": 1, "stride": 2}),
    (KERNEL_3X3, 3, 4, 4, (10, 7), {"padding": (0, 1, 2, 1)}),
    (KERNEL_3X3, 4, 3, 5, (11, 11), {"padding": 2, "dilation": 2}),
    (KERNEL_3X3, 6, 17, 3, (5, 5), {}),
    (KERNEL_3X3, 7, 33, 20, (7, 7), {"padding": 1, "stride": 2}),
    (KERNEL_3X3, 5, 12, 8, (8, 8), {"padding": 1}),  # stacked rows: one plane, row ends masked
    (KERNEL_3X3, 2, 3, 6, (4, 4), {"padding": 2, "dilation": 2}),
    (KERNEL_3X3, 4, 5, 4, (2, 2), {"padding": 2, "dilation": 2}),  # taps reach a whole row past
    (KERNEL_1X1, 5, 16, 12, (6, 6), {}),
    (KERNEL_1X1, 2, 24, 5, (7, 9), {"stride": 2}),
    (KERNEL_1X1, 7, 8, 3, (4, 4), {"padding": 1}),
]


@pytest.mark.parametrize("activation", ["float", "binary"])
@pytest.mark.parametrize(("kernel", "tau", "cin", "cout", "hw", "geometry"), CASES)
def test_kernel_matches_reference(kernel, tau, cin, cout, hw, geometry, activation):
    conv = make_conv(kernel, tau, cin, cout, seed=tau + cin, activation=activation, **geometry)
    x = make_input((2, cin, *hw), seed=cout, activation=activation)
    np.testing.assert_allclose(run_kernel(conv, x), conv2d_reference(x, conv), rtol=KERNEL_RTOL, atol=KERNEL_ATOL)


@pytest.mark.parametrize(("kernel", "tau", "cin", "cout", "hw", "geometry"), CASES[::3])
def test_binary_accumulator_is_bit_exact(kernel, tau, cin, cout, hw, geometry):
    """With alpha = 1 and no bias, the float output is the int32 accumulator itself."""
    conv = make_conv(kernel, tau, cin, cout, seed=tau, activation="binary", bias=False, **geometry)
    unit_alpha = dataclasses.replace(conv, alpha=np.ones(cout, np.float32))
    x = make_input((1, cin, *hw), seed=tau, activation="binary")
    np.testing.assert_array_equal(run_kernel(unit_alpha, x), accumulate_binary(x, unit_alpha).astype(np.float32))


@pytest.mark.parametrize(("kernel", "tau", "cin", "cout", "hw", "geometry"), CASES[:2] + CASES[7:8] + CASES[10:11])
def test_binary_kernel_applies_the_sign_itself(kernel, tau, cin, cout, hw, geometry):
    """On raw floats (with exact zeros) the binary kernel computes conv(sign(x))."""
    conv = make_conv(kernel, tau, cin, cout, seed=tau, activation="binary", **geometry)
    x = make_input((2, cin, *hw), seed=cout, activation="float") * 3
    x[:, :, ::3] = 0.0
    np.testing.assert_allclose(run_kernel(conv, x), conv2d_reference(x, conv), rtol=KERNEL_RTOL, atol=KERNEL_ATOL)


def test_kernel_stores_packed_indices_not_dense_weights():
    conv = make_conv(KERNEL_3X3, 5, 64, 64, seed=0, bias=False, padding=1)
    kernel = build_scheduled(conv, (1, 64, 8, 8))
    packed, segments, alpha = kernel.constants
    assert packed.dtype == np.uint8 and packed.size == 64 * 64 * 5 // 8 + UNPACK_TAIL_BYTES
    assert segments.shape == (32, 3) and alpha.shape == (64,)
    # The segment table is the codebook: bit e of [j, s] is element 3s+e < 0.
    bits = (segments[:, :, None] >> np.arange(3)) & 1
    np.testing.assert_array_equal(1 - 2 * bits.reshape(32, 9)[: conv.num_codewords], conv.codebook)
    dense_bytes = conv.to_dense().nbytes
    assert sum(c.nbytes for c in kernel.constants) < dense_bytes / 40


def test_wrong_input_channels():
    conv = make_conv(KERNEL_3X3, 3, 4, 4, seed=0)
    with pytest.raises(FormatError, match="input has 5 channels, the conv takes 4"):
        build_scheduled(conv, (1, 5, 8, 8))


@pytest.mark.parametrize("tau", [MAX_BAKED_TAU, MAX_BAKED_TAU + 1])
def test_codebook_is_compiled_in_up_to_max_baked_tau(tau):
    """Up to MAX_BAKED_TAU the kernel ignores the segment-table argument; above, it reads it."""
    conv = make_conv(KERNEL_3X3, tau, 4, 6, seed=tau, bias=False, padding=1)
    x = make_input((1, 4, 6, 6), seed=0, activation="float")
    kernel = build_scheduled(conv, x.shape)
    lib = tvm.compile(kernel.func, target=TARGET)
    packed, segments, alpha = kernel.constants
    out = tvm.runtime.tensor(np.zeros(kernel.out_shape, np.float32))
    lib(*[tvm.runtime.tensor(a) for a in (x, packed, np.zeros_like(segments), alpha)], out)
    matches = np.allclose(out.numpy(), conv2d_reference(x, conv), rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
    assert matches == (tau <= MAX_BAKED_TAU)


@pytest.mark.parametrize("activation", ["float", "binary"])
@pytest.mark.parametrize(
    ("kernel", "tau", "cin", "cout", "hw", "geometry"), [CASES[0], CASES[2], CASES[3], CASES[7], CASES[11]]
)
def test_kernel_reads_only_its_input(kernel, tau, cin, cout, hw, geometry, activation):
    """With the input against unmapped pages, an out-of-bounds read would crash the test run."""
    conv = make_conv(kernel, tau, cin, cout, seed=tau, activation=activation, **geometry)
    x = make_input((2, cin, *hw), seed=cout, activation=activation)
    built = build_scheduled(conv, x.shape)
    lib = tvm.compile(built.func, target=TARGET)
    expected = run_kernel(conv, x)
    for got in run_on_guarded_input(lib, x, built.constants, built.out_shape):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("activation", ["float", "binary"])
@pytest.mark.parametrize(("cin", "tau", "pixels"), [(64, 5, 16), (96, 4, 64), (7, 6, 16), (512, 7, 64), (256, 1, 64)])
def test_unit_group_is_exact_and_fits_l1(cin, tau, pixels, activation):
    conv = make_conv(KERNEL_3X3, tau, cin, 4, seed=1, activation=activation, padding=1)
    group = unit_group(conv, pixels)
    assert group & (group - 1) == 0 and conv.num_units % group == 0  # a power of two dividing the units
    resp_bytes = 1 if activation == "binary" else 4
    assert group == 1 or group * (1 << tau) * pixels * resp_bytes <= RESP_BUDGET_BYTES
    if activation == "binary":  # the int8 sum of a group's responses cannot overflow
        assert group * conv.unit_size <= 127
