"""The dense direct conv: its plan, its weight packing, and the scheduled kernel against PyTorch."""

import numpy as np
import pytest
import torch
import tvm
from guarded import run_on_guarded_input

from schedules.cpu import CpuSpec
from schedules.dense_conv import DenseConvGeometry, build_dense_conv, pack_weight
from schedules.dense_conv_plan import DenseConvPlan
from schedules.dense_conv_schedule import is_dense_conv, schedule_dense_conv
from tvm_snn.errors import FormatError

from common import DENSE_CONV_ATOL, DENSE_CONV_RTOL

TARGET = tvm.target.Target({"kind": "llvm"})

# (name, data shape, out channels, kernel, stride, padding)
SHAPES = {
    "7x7/2 stem": ((1, 3, 32, 30), 16, 7, 2, 3),
    "3x3/1": ((1, 16, 12, 12), 16, 3, 1, 1),
    "3x3/2": ((2, 8, 11, 13), 24, 3, 2, 1),
    "1x1/2": ((1, 16, 14, 14), 32, 1, 2, 0),
    "1x1/1 odd": ((1, 5, 7, 9), 13, 1, 1, 0),
    "3x3 odd, channels off the block": ((1, 7, 9, 11), 29, 3, 1, 1),
    "5x3 rectangular, asymmetric pad": ((1, 4, 10, 17), 6, (5, 3), (1, 2), (2, 1, 1, 0)),
    "wide row": ((1, 2, 4, 150), 3, 3, 1, 1),
}


def geometry(data_shape, out_channels, kernel, stride, padding):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    strides = (stride, stride) if isinstance(stride, int) else stride
    pads = (padding,) * 4 if isinstance(padding, int) else padding
    return DenseConvGeometry(data_shape, (out_channels, data_shape[1], kh, kw), strides, pads)


def random_case(geo, seed):
    rng = np.random.default_rng(seed)
    fan_in = int(np.prod(geo.weight_shape[1:]))
    weight = (rng.standard_normal(geo.weight_shape) / np.sqrt(fan_in)).astype(np.float32)
    bias = rng.standard_normal(geo.out_channels).astype(np.float32)
    x = rng.standard_normal(geo.data_shape).astype(np.float32)
    return x, weight, bias


def torch_conv(x, weight, bias, geo):
    top, left, bottom, right = geo.padding
    padded = torch.nn.functional.pad(torch.from_numpy(x), (left, right, top, bottom))
    out = torch.nn.functional.conv2d(padded, torch.from_numpy(weight), torch.from_numpy(bias), stride=geo.strides)
    return out.numpy()


def build_and_run(geo, plan, x, weight, bias):
    kernel = build_dense_conv(geo, plan, weight, bias)
    lib = tvm.compile(schedule_dense_conv(kernel.func), target=TARGET)
    return run_on_guarded_input(lib, x, kernel.constants, kernel.out_shape)


@pytest.mark.parametrize("vector_bytes", [64, 32, 16], ids=["avx512", "avx2", "neon-width"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_kernel_matches_torch(name, vector_bytes):
    geo = geometry(*SHAPES[name])
    plan = DenseConvPlan.default(geo, geo.data_shape, CpuSpec(vector_bytes=vector_bytes))
    x, weight, bias = random_case(geo, seed=len(name))
    expected = torch_conv(x, weight, bias, geo)
    for got in build_and_run(geo, plan, x, weight, bias):
        np.testing.assert_allclose(got, expected, rtol=DENSE_CONV_RTOL, atol=DENSE_CONV_ATOL)


@pytest.mark.parametrize(("block", "vectors"), [(1, 1), (3, 2), (7, 1), (4, 3)])
def test_non_default_plans_compute_the_same(block, vectors):
    geo = geometry((1, 6, 9, 40), 10, 3, 1, 1)
    x, weight, bias = random_case(geo, seed=block)
    expected = torch_conv(x, weight, bias, geo)
    plan = DenseConvPlan(channel_block=block, pixel_vectors=vectors, vector_bytes=64).validate(geo, geo.data_shape, CpuSpec())
    for got in build_and_run(geo, plan, x, weight, bias):
        np.testing.assert_allclose(got, expected, rtol=DENSE_CONV_RTOL, atol=DENSE_CONV_ATOL)


def test_kernel_without_bias():
    geo = geometry((1, 4, 8, 8), 8, 3, 1, 1)
    x, weight, _ = random_case(geo, seed=3)
    plan = DenseConvPlan.default(geo, geo.data_shape, CpuSpec())
    kernel = build_dense_conv(geo, plan, weight)
    assert len(kernel.constants) == 1
    lib = tvm.compile(schedule_dense_conv(kernel.func), target=TARGET)
    (got, _) = run_on_guarded_input(lib, x, kernel.constants, kernel.out_shape)
    np.testing.assert_allclose(got, torch_conv(x, weight, np.zeros(8, np.float32), geo), rtol=DENSE_CONV_RTOL, atol=DENSE_CONV_ATOL)


def test_pack_weight_layout():
    """Element [b, i, y, x, j] is weight[b * block + j, i, y, x]; the last block's missing channels are zero."""
    weight = np.arange(5 * 2 * 3 * 3, dtype=np.float32).reshape(5, 2, 3, 3) + 1
    packed = pack_weight(weight, 2)
    assert packed.shape == (3, 2, 3, 3, 2)
    for b, i, y, x, j in np.ndindex(packed.shape):
        o = b * 2 + j
        assert packed[b, i, y, x, j] == (weight[o, i, y, x] if o < 5 else 0)


def test_default_plan_by_hand():
    """64x56x56 3x3 on AVX-512 (16 lanes, 24 accumulators): 4 vectors cover the row of 56;
    5 channels x 4 vectors fills 20 registers with 9 loads per 20 FMAs (64 of 65 channels real)."""
    geo = geometry((1, 64, 56, 56), 64, 3, 1, 1)
    assert DenseConvPlan.default(geo, geo.data_shape, CpuSpec()) == DenseConvPlan(5, 4, 64)
    # AVX2 has 12 accumulator registers: 3 channels x 4 vectors of 8 lanes.
    assert DenseConvPlan.default(geo, geo.data_shape, CpuSpec(vector_bytes=32)) == DenseConvPlan(3, 4, 32)


def test_plan_space_json_and_validation():
    geo = geometry((1, 8, 20, 20), 10, 3, 1, 1)
    space = DenseConvPlan.space(geo, geo.data_shape, CpuSpec())
    assert space["pixel_vectors"] == (1, 2)  # a row of 20 is 2 vectors of 16
    assert space["channel_block"] == tuple(range(1, 11))
    plan = DenseConvPlan(channel_block=4, pixel_vectors=2, vector_bytes=64)
    assert DenseConvPlan.from_json(plan.to_json()) == plan
    with pytest.raises(FormatError, match="pixel_vectors"):
        DenseConvPlan(4, 3, 64).validate(geo, geo.data_shape, CpuSpec())
    with pytest.raises(FormatError, match="registers"):
        DenseConvPlan(8, 2, 32).validate(geo, geo.data_shape, CpuSpec(vector_bytes=32))


def test_geometry_errors():
    with pytest.raises(FormatError, match="channels"):
        DenseConvGeometry((1, 3, 8, 8), (4, 2, 3, 3))
    with pytest.raises(FormatError, match="larger"):
        DenseConvGeometry((1, 3, 2, 2), (4, 3, 3, 3))


def test_kernel_is_told_by_its_plan():
    geo = geometry((1, 4, 8, 8), 8, 3, 1, 1)
    kernel = build_dense_conv(geo, DenseConvPlan.default(geo, geo.data_shape, CpuSpec()), random_case(geo, 0)[1])
    assert is_dense_conv(kernel.func) and is_dense_conv(schedule_dense_conv(kernel.func))
