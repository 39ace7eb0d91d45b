"""The kernel front (schedules.kernels): which kernel a function holds, and bad input."""

import numpy as np
import pytest
import tvm_ffi
from test_schedules.subbit_strategies import make_conv
from tvm import te

from schedules import kernels
from schedules.cpu import CpuSpec
from schedules.subbit import KERNEL_3X3
from tvm_snn.errors import FormatError

from common import needs_vbmi


def test_kernel_kind_before_and_after_scheduling():
    conv = make_conv(KERNEL_3X3, 4, 8, 8, seed=0, padding=1)
    plan = kernels.select_plan(conv, (1, 8, 6, 6))
    unscheduled = kernels.build(conv, (1, 8, 6, 6), plan)
    assert unscheduled.kind == "pixel-lane"
    assert kernels.kernel_kind(unscheduled.func) == "pixel-lane"
    assert kernels.kernel_kind(kernels.schedule(unscheduled.func)) == "pixel-lane"


@needs_vbmi
def test_lane_kernel_kind():
    conv = make_conv(KERNEL_3X3, 5, 256, 256, seed=1, activation="binary", padding=1)
    kernel = kernels.build_scheduled(conv, (1, 256, 4, 4), CpuSpec(vbmi=True))
    assert kernel.kind == "lane" and kernels.kernel_kind(kernel.func) == "lane"


def test_schedule_refuses_a_function_without_a_kernel():
    a = te.placeholder((4,), "float32", "a")
    func = te.create_prim_func([a, te.compute((4,), lambda i: a[i] + 1, name="b")])
    assert kernels.kernel_kind(func) is None
    with pytest.raises(FormatError, match="no sub-bit kernel"):
        kernels.schedule(func)


def test_bad_input_is_named():
    conv = make_conv(KERNEL_3X3, 4, 8, 8, seed=2, padding=1)
    with pytest.raises(FormatError, match="input has 5 channels, the conv takes 8"):
        kernels.select_plan(conv, (1, 5, 6, 6))
    with pytest.raises(FormatError, match="unknown sub-bit kernel 'fast'"):
        kernels.select_plan(conv, (1, 8, 6, 6), kind="fast")
    with pytest.raises(FormatError, match="the lane kernel does not apply: float activations"):
        kernels.select_plan(conv, (1, 8, 6, 6), kind="lane")
    with pytest.raises(TypeError, match="SubBitConv"):
        kernels.select_plan(np.zeros((8, 8, 3, 3)), (1, 8, 6, 6))


def test_stored_bytes_are_the_constants():
    # 8 output channels x 8 units x 4 bits = 32 bytes of indices and the 64-byte
    # unpacking tail; 16 codewords x 3 row patterns as int32; alpha and bias.
    conv = make_conv(KERNEL_3X3, 4, 8, 8, seed=3, padding=1)
    kernel = kernels.build(conv, (1, 8, 6, 6), kernels.select_plan(conv, (1, 8, 6, 6)))
    assert kernel.stored_bytes == 32 + 64 + 16 * 3 * 4 + 8 * 4 + 8 * 4
    assert tvm_ffi.structural_equal(kernel.func, kernels.build(conv, (1, 8, 6, 6), kernel.plan).func)
