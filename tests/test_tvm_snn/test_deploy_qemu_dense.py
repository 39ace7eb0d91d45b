"""The dense direct conv cross-compiled for aarch64 and ARMv7 with NEON's 16-byte vectors, run under qemu-user."""

import numpy as np
import pytest

from schedules.cpu import CpuSpec
from schedules.dense_conv import DenseConvGeometry, build_dense_conv
from schedules.dense_conv_plan import DenseConvPlan
from schedules.dense_conv_schedule import schedule_dense_conv
from schedules.reference import conv2d_dense_reference
from tvm_snn.deploy.archs import ARCHS
from tvm_snn.deploy.qemu import run_under_qemu

from common import DENSE_CONV_ATOL, DENSE_CONV_RTOL

NEON = CpuSpec(num_cores=2, vector_bytes=16)
# (data shape, out channels, kernel, stride, padding): a strided 3x3, the stem's 7x7/2, a 1x1/2.
CASES = {
    "3x3/2": ((1, 16, 9, 10), 12, 3, 2, 1),
    "7x7/2": ((1, 3, 20, 18), 8, 7, 2, 3),
    "1x1/2": ((2, 8, 10, 10), 20, 1, 2, 0),
}


@pytest.mark.qemu
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_dense_conv_matches_numpy(arch, case):
    data_shape, out_channels, kernel, stride, padding = CASES[case]
    geometry = DenseConvGeometry(
        data_shape, (out_channels, data_shape[1], kernel, kernel), (stride, stride), (padding,) * 4
    )
    rng = np.random.default_rng(out_channels)
    weight = (
        rng.standard_normal(geometry.weight_shape) / np.sqrt(data_shape[1] * kernel * kernel)
    ).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32)
    x = rng.standard_normal(data_shape).astype(np.float32)
    built = build_dense_conv(
        geometry, DenseConvPlan.default(geometry, data_shape, NEON), weight, bias
    )
    (out,) = run_under_qemu(
        schedule_dense_conv(built.func), arch, [x, *built.constants], [(built.out_shape, "float32")]
    )
    expected = conv2d_dense_reference(x, weight, bias, stride=stride, padding=padding)
    np.testing.assert_allclose(out, expected, rtol=DENSE_CONV_RTOL, atol=DENSE_CONV_ATOL)
