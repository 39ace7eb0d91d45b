"""The BNN XOR/popcount baseline kernel against PyTorch and NumPy, bit for bit."""

import numpy as np
import pytest
import torch
import tvm
from bnn_helpers import random_binary_conv
from guarded import run_on_guarded_input

from schedules.bnn_xnor import BinaryConv, binarize_lce, bnn_reference, build_kernel
from tvm_snn.errors import FormatError

TARGET = tvm.target.Target({"kind": "llvm"})


def run(conv, x):
    func, constants, out_shape = build_kernel(conv, x.shape)
    lib = tvm.compile(func, target=TARGET)
    out = tvm.runtime.tensor(np.zeros(out_shape, np.float32))
    lib(tvm.runtime.tensor(x), *[tvm.runtime.tensor(c) for c in constants], out)
    return out.numpy()


def torch_reference(x, conv):
    weight = torch.from_numpy(conv.signs.astype(np.float64) * conv.alpha[:, None, None, None].astype(np.float64))
    top, left, bottom, right = conv.padding
    data = torch.nn.functional.pad(torch.from_numpy(binarize_lce(x).astype(np.float64)), (left, right, top, bottom))
    return torch.nn.functional.conv2d(data, weight, stride=conv.stride).numpy().astype(np.float32)


CASES = [
    # O, C, kernel, HxW, geometry
    (16, 64, 3, (14, 14), {"padding": 1}),
    (5, 37, 3, (9, 11), {"padding": 1}),  # C not a multiple of 32, odd sizes
    (8, 32, 3, (8, 8), {"padding": 1, "stride": 2}),
    (3, 70, 3, (10, 7), {"padding": (0, 1, 2, 1)}),
    (7, 16, 3, (6, 6), {}),
    (4, 96, 1, (7, 9), {"stride": 2}),
    (6, 33, 1, (5, 5), {"padding": 1}),  # 1x1 with padding: the border is all padding
]


@pytest.mark.parametrize(("out_channels", "in_channels", "kernel", "hw", "geometry"), CASES)
def test_bnn_kernel_is_bit_exact(out_channels, in_channels, kernel, hw, geometry):
    conv = random_binary_conv(out_channels, in_channels, kernel, seed=in_channels, **geometry)
    x = np.random.default_rng(out_channels).standard_normal((2, in_channels, *hw)).astype(np.float32)
    x[np.random.default_rng(1).random(x.shape) < 0.1] = 0.0  # binarizes to +1
    ours = run(conv, x)
    np.testing.assert_array_equal(ours, torch_reference(x, conv))
    np.testing.assert_array_equal(ours, bnn_reference(x, conv))


def test_padding_is_zero_not_minus_one():
    """An all-negative input: the border outputs differ from padding with -1."""
    conv = random_binary_conv(2, 32, 3, seed=0, padding=1)
    x = -np.ones((1, 32, 4, 4), np.float32)
    ours = run(conv, x)
    np.testing.assert_array_equal(ours, torch_reference(x, conv))
    interior = -conv.signs.reshape(2, -1).sum(1).astype(np.float32) * conv.alpha
    np.testing.assert_array_equal(ours[0, :, 1, 1], interior)
    assert not np.array_equal(ours[0, :, 0, 0], interior)


def test_packed_weight_bits():
    conv = random_binary_conv(3, 40, 3, seed=2)
    words = conv.packed_weight()
    assert words.shape == (3, 3, 3, 2) and words.dtype == np.uint32
    bits = (words[..., None] >> np.arange(32, dtype=np.uint32)) & 1
    bits = bits.reshape(3, 3, 3, 64)[..., :40].transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(bits, conv.signs < 0)
    assert not (words[..., 1] >> 8).any()  # spare bits stay 0


def test_non_binary_weight_is_refused():
    weight = np.ones((2, 4, 3, 3), np.float32)
    weight[0, 0, 0, 0] = 0.5
    with pytest.raises(FormatError, match="not binary"):
        BinaryConv.from_dense(weight)


def test_wrong_input_channels():
    conv = random_binary_conv(2, 8, 3, seed=0)
    with pytest.raises(FormatError, match="input has 9 channels, the conv takes 8"):
        build_kernel(conv, (1, 9, 8, 8))


@pytest.mark.parametrize(("out_channels", "in_channels", "kernel", "hw", "geometry"), CASES[:2])
def test_kernel_reads_only_its_input(out_channels, in_channels, kernel, hw, geometry):
    """With the input against unmapped pages, an out-of-bounds read would crash the test run."""
    conv = random_binary_conv(out_channels, in_channels, kernel, seed=kernel, **geometry)
    x = np.random.default_rng(1).standard_normal((2, in_channels, *hw)).astype(np.float32)
    func, constants, out_shape = build_kernel(conv, x.shape)
    lib = tvm.compile(func, target=TARGET)
    for got in run_on_guarded_input(lib, x, constants, out_shape):
        np.testing.assert_array_equal(got, bnn_reference(x, conv))
